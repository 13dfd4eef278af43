"""compare_profiles and calibrated_fill on hand-computed cases and on the seed's A100 matrix."""
import numpy as np
import pandas as pd
import pytest

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR
from melange_nb.errors import InputError
from melange_nb.profiles import GpuProfile, load_gpus
from melange_nb.profiles.calibrate import calibrated_fill, calibration_curve, compare_profiles, format_comparison
from melange_nb.workload import labelled_matrix

IN, OUT = ["0-100", "100-1000"], ["0-50", "50-500"]


def _gpu(name, values):
    return {name: GpuProfile(name, 1.0, labelled_matrix(values, IN, OUT, field=name))}


def test_compare_hand_computed():
    [c] = compare_profiles(_gpu("G", [[2, 0], [3, 4]]), _gpu("G", [[1, 1], [3, 8]]))
    assert c.ratio.iloc[0, 0] == 2 and np.isnan(c.ratio.iloc[0, 1]) and c.ratio.iloc[1, 1] == 0.5
    assert c.median == pytest.approx(1.0) and c.zero_in_one == 1
    assert c.worst in (2.0, 0.5) and c.worst_bucket in (("0-100", "0-50"), ("100-1000", "50-500"))
    text = format_comparison([c], labels=("pred", "meas"))
    assert text.startswith("G / G (pred / meas): median ratio 1.00") and "served by only one of them" in text


def test_compare_errors_name_the_problem():
    with pytest.raises(InputError, match="share no GPU name"):
        compare_profiles(_gpu("A", [[1, 1], [1, 1]]), _gpu("B", [[1, 1], [1, 1]]))
    other = {"B": GpuProfile("B", 1.0, labelled_matrix([[1.0]], ["0-5"], ["0-5"], field="b"))}
    with pytest.raises(InputError, match="different buckets"):
        compare_profiles(_gpu("A", [[1, 1], [1, 1]]), other, pairs={"A": "B"})


def test_calibrated_fill_recovers_a_constant_factor_exactly():
    pred = labelled_matrix([[10, 4], [5, 2]], IN, OUT, field="p")
    measured = pd.DataFrame([[5.0, np.nan], [np.nan, np.nan]], index=pred.index, columns=pred.columns)
    filled, prov = calibrated_fill(pred, measured)
    np.testing.assert_allclose(filled.to_numpy(), [[5, 2], [2.5, 1]])
    assert [c["input"] + "|" + c["output"] for c in prov["cell_notes"]] == ["0-100|50-500", "100-1000|0-50", "100-1000|50-500"]
    assert all(c["note"] == "filled: calibrated prediction" for c in prov["cell_notes"])
    assert "fit on 1 measured buckets" in prov["notes"][0] and prov["fit"]["n"] == 1


def test_calibrated_fill_on_the_seed_a100_matrix():
    seed = load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")["A100"].tputs
    pred = load_gpus(GPUS_DIR / "llama2-7b-a100-predicted-tpot40.yaml")["A100"].tputs
    mask = pd.DataFrame(False, index=seed.index, columns=seed.columns)
    mask.iloc[::2, ::2] = True                                    # measure 9 of 36 buckets
    filled, prov = calibrated_fill(pred, seed.where(mask), mask)
    assert (filled[mask] == seed[mask]).to_numpy()[mask.to_numpy()].all()
    raw = np.abs(pred / seed - 1).to_numpy()[~mask.to_numpy()]
    fixed = np.abs(filled / seed - 1).to_numpy()[~mask.to_numpy()]
    assert np.median(raw) > 1.0 and np.median(fixed) < 0.25        # ~2.8x off before, far closer after
    assert len(prov["cell_notes"]) == 27 and "leave-one-out error" in prov["notes"][0]
    curve = calibration_curve(pred, seed, sizes=(2, 12), trials=30)
    assert curve["median_error"].iloc[1] < curve["median_error"].iloc[0]


def test_cli_compare_prints_the_ratios(capsys):
    assert main(["profile", "compare", str(GPUS_DIR / "llama2-7b-a100-predicted-tpot40.yaml"),
                 str(GPUS_DIR / "llama2-7b-seed.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("A100 / A100 (llama2-7b-a100-predicted-tpot40 / llama2-7b-seed): median ratio 2.77")
