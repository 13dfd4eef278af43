"""Shared fixtures: project paths, the shared test data folder, the seed's GPU profiles."""
from pathlib import Path

import pytest

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.profiles import load_gpus
from melange_nb.workload import labelled_matrix

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (only present on the project's machines)")
    return SHARED_DATA


@pytest.fixture
def seed_gpus():
    return load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")


@pytest.fixture
def arena_csv() -> Path:
    return WORKLOADS_DIR / "arena-seed.csv"


def matrix(values, index=("s", "l"), columns=("s", "l")):
    """A labelled input x output matrix for hand-made cases."""
    return labelled_matrix(values, list(index), list(columns), field="test")
