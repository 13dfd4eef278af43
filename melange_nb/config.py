"""Project paths in one place (cookiecutter-data-science's config.py).

`MELANGE_NB_OUTPUTS` moves the outputs folder (e.g. for tests); it is the package's one variable of its own.
Others it heeds belong to the libraries: the Hugging Face ones (HF_TOKEN, HF_HUB_OFFLINE, HF_ENDPOINT,
and the proxy variables, which `hub` also reads to tell whether the hub can be reached).
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
GPUS_DIR = PARAMS_DIR / "gpus"
WORKLOADS_DIR = PARAMS_DIR / "workloads"
SWEEPS_DIR = PARAMS_DIR / "sweeps"


def outputs_dir() -> Path:
    """Where derived files go: `outputs/` in the project unless MELANGE_NB_OUTPUTS says otherwise."""
    return Path(os.environ.get("MELANGE_NB_OUTPUTS", PROJECT_ROOT / "outputs"))
