"""Voilà settings, read when `voila notebooks/00_explore.ipynb` runs from the project root (`make explore`).

The explorer's page template (melange_nb/jupyter/voila/templates/explorer) is Voilà's lab page without
the two Font Awesome stylesheets it requests from a CDN: the page loads nothing from the network.
"""
import os
from pathlib import Path

_templates = Path(__file__).resolve().parent / "melange_nb" / "jupyter"
os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(_templates), os.environ.get("JUPYTER_PATH")]))
c.VoilaConfiguration.template = "explorer"  # noqa: F821 (`c` is the config object traitlets provides)
