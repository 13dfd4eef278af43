"""Like-for-like predicted sets: kernel-data versions, the physics check and --backend auto, on
aiconfigurator-core's real database (no mocks)."""
import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("aiconfigurator_core")

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR, PROJECT_ROOT
from melange_nb.explore import build_explorer
from melange_nb.profiles import GpuProfile, load_gpus, save_profiles
from melange_nb.profiles.consistency import (INCONSISTENT, PredictionAboveBound, check_bounds, hardware_range,
                                             hardware_spec, model_shape, set_caveat, upper_bounds)
from melange_nb.profiles.predict import choose_backend, predict_profiles
from melange_nb.report import headline_html, sweep_data_caveat
from melange_nb.sweep import load_spec, run_sweep

LLAMA = "meta-llama/Meta-Llama-3.1-8B"
GRID = dict(edges=[0, 25, 100, 250, 500], output_edges=[0, 25, 100, 250, 500])   # 16 buckets


@pytest.fixture(autouse=True)
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def _flags(gpu):
    return [c for c in gpu.meta["cell_notes"] if c["note"].startswith(INCONSISTENT)]


def test_specs_come_from_aiconfigurators_system_files():
    h100, a100 = hardware_spec("h100_sxm"), hardware_spec("a100_sxm")
    assert h100.flops == 989e12 and a100.flops == 312e12 and h100.mem_bw == 3.35e12 and a100.mem_bw == 2.039e12
    assert a100.file.startswith("aiconfigurator-core ") and a100.file.endswith("systems/a100_sxm.yaml")
    rng = hardware_range(h100, a100)
    assert rng["compute"] == pytest.approx(3.17, abs=0.01) and rng["bandwidth"] == pytest.approx(1.64, abs=0.01)
    assert rng["low"] == pytest.approx(1.643 / 1.25, rel=1e-3) and rng["high"] == pytest.approx(3.17 * 1.25, rel=1e-3)
    assert hardware_spec("no_such_gpu") is None


def test_vllm_a100_h100_mixes_versions_and_is_flagged(tmp_path, capsys):
    out = tmp_path / "mixed.yaml"
    assert main(["profile", "predict", "--model", LLAMA, "--gpu", "a100_sxm=A100", "--gpu", "h100_sxm=H100",
                 "--backend", "vllm", "--slo", "tpot_ms=40", "--edges", "0,25,100,250,500",
                 "--output-edges", "0,25,100,250,500", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: Predicted data not like for like: this GPU set mixes kernel-data versions" in err
    assert "A100: vllm 0.14.0 measured kernels" in err and "H100: vllm 0.24.0 measured kernels" in err
    assert "systems/a100_sxm.yaml" in err and "H100/A100 hardware range" in err
    gpus = load_gpus(out)                      # kernel data and flags round-trip through the file
    assert gpus["A100"].meta["kernel_data"] == {"backend": "vllm", "version": "0.14.0", "kernels": "measured"}
    assert gpus["H100"].meta["kernel_data"]["version"] == "0.24.0"
    flagged = _flags(gpus["H100"])
    assert flagged and len(flagged) == len(_flags(gpus["A100"]))
    ratios = gpus["H100"].tputs / gpus["A100"].tputs
    for cell in flagged:                       # a flagged bucket really lies above the widest hardware ratio
        assert ratios.loc[cell["input"], cell["output"]] > 3.17 * 1.25
    assert "Predicted data not like for like" in set_caveat(gpus)
    assert set_caveat({"H100": gpus["H100"]}) == ""      # one GPU of the set alone compares with nothing
    assert "# WARNING: Predicted data not like for like" in out.read_text()


def test_like_for_like_h100_h200_is_not_flagged():
    gpus = predict_profiles(LLAMA, ["h100_sxm=H100", "h200_sxm=H200"], slo="tpot_ms=40", backend="vllm", **GRID)
    assert {g.meta["kernel_data"]["version"] for g in gpus.values()} == {"0.24.0"}
    assert not _flags(gpus["H100"]) and not _flags(gpus["H200"])
    assert set_caveat(gpus) == ""
    assert any("every bucket is below its compute and memory bound" in n for n in gpus["H200"].meta["notes"])


def test_auto_on_a100_h100_picks_agreeing_versions_within_the_hardware_range():
    backend, sentence = choose_backend(["a100_sxm=A100", "h100_sxm=H100"])
    assert backend == "sglang"                 # 0.5.10 vs 0.5.14 agree better than vllm 0.14/0.24 or trtllm 1.0/1.3
    assert "A100 0.5.10, H100 0.5.14" in sentence and "vllm: A100 0.14.0, H100 0.24.0" in sentence
    # at TPOT 120 ms every bucket lies in the range (at 40 ms, bucket 0-25 x 0-25 at the 512-request
    # concurrency cap is 3.99x against 3.96x: flagged, and the committed profiles say so)
    gpus = predict_profiles(LLAMA, ["a100_sxm=A100", "h100_sxm=H100"], slo="tpot_ms=120", backend="auto", **GRID)
    assert {g.meta["kernel_data"]["backend"] for g in gpus.values()} == {"sglang"}
    assert not _flags(gpus["A100"]) and not _flags(gpus["H100"])
    ratio = (gpus["H100"].tputs / gpus["A100"].tputs).to_numpy()
    rng = hardware_range(hardware_spec("h100_sxm"), hardware_spec("a100_sxm"))
    assert (ratio >= rng["low"]).all() and (ratio <= rng["high"]).all()
    assert any(n.startswith("--backend auto chose sglang") for n in gpus["A100"].meta["notes"])
    caveat = set_caveat(gpus)                  # versions still differ (0.5.10 vs 0.5.14): said, without flags
    assert "sglang 0.5.10" in caveat and "outside the hardware range" not in caveat


def test_per_gpu_backends_are_labelled(tmp_path, capsys):
    gpus = predict_profiles(LLAMA, ["a100_sxm=A100", "h100_sxm=H100"], slo="tpot_ms=120",
                            backend={"A100": "trtllm", "H100": "vllm"}, edges=[0, 100], output_edges=[0, 100])
    assert gpus["A100"].meta["engine"]["name"] == "trtllm" and gpus["H100"].meta["engine"]["name"] == "vllm"
    assert any("backend chosen per GPU by the user" in n for n in gpus["H100"].meta["notes"])
    assert "A100: trtllm 1.0.0 measured kernels" in set_caveat(gpus)
    back = load_gpus(save_profiles(tmp_path / "p.yaml", gpus))
    assert set_caveat(back) == set_caveat(gpus)
    # the CLI: a bare --backend is the default, NAME=BACKEND one GPU's; auto does not mix with per-GPU choices
    argv = ["profile", "predict", "--model", LLAMA, "--gpu", "a100_sxm=A100", "--gpu", "h100_sxm=H100", "--slo",
            "tpot_ms=120", "--edges", "0,100", "--output-edges", "0,100", "-o", str(tmp_path / "cli.yaml")]
    assert main(argv + ["--backend", "A100=trtllm", "--backend", "vllm"]) == 0
    assert {n: g.meta["engine"]["name"] for n, g in load_gpus(tmp_path / "cli.yaml").items()} == \
        {"A100": "trtllm", "H100": "vllm"}
    assert main(argv[:-2] + ["-o", str(tmp_path / "x.yaml"), "--backend", "auto", "--backend", "A100=vllm"]) == 2
    assert main(argv[:-2] + ["-o", str(tmp_path / "x.yaml"), "--backend", "B200=vllm"]) == 2
    assert not (tmp_path / "x.yaml").exists()


def test_a_rate_above_the_physical_bound_is_refused_with_its_numbers():
    spec = hardware_spec("a100_sxm")
    shape = model_shape({"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256})
    compute, memory = upper_bounds(spec, shape, 12000, 12)
    # 2 x ~7e9 block parameters x 12,011 tokens at 312 TFLOP/s: under 2 requests/s, whatever the model says
    assert compute == pytest.approx(1.86, abs=0.01) and memory > compute
    with pytest.raises(PredictionAboveBound, match=r"^A100: predicted 3.294 requests/s on bucket 8000-16000 x 0-25 "
                                                   r"\(12000 in, 12 out\) is above its physical bound 1.86.*312 "
                                                   r"TFLOP/s.*systems/a100_sxm.yaml"):
        check_bounds("A100", np.array([[3.294]]), spec, shape, [12000], [12], ["8000-16000"], ["0-25"])
    check_bounds("A100", np.array([[1.0]]), spec, shape, [12000], [12], ["8000-16000"], ["0-25"])


# ---------------------------------------------------------------- the caveat in every report

TPOT40 = GPUS_DIR / "llama3.1-8b-tpot40.yaml"


def _long_workload(path):
    """A workload CSV on the committed predictions' buckets (inputs to 16,000 tokens)."""
    gpu = next(iter(load_gpus(TPOT40).values()))
    shares = pd.DataFrame(0.0, index=gpu.tputs.index, columns=gpu.tputs.columns)
    shares.iloc[1, 1], shares.iloc[3, 2] = 0.7, 0.3
    shares.to_csv(path)
    return path


def test_the_committed_predictions_carry_their_data(capsys):
    gpus = load_gpus(TPOT40)
    assert {n: g.meta["kernel_data"]["version"] for n, g in gpus.items()} == \
        {"A100-80GB": "0.5.10", "H100": "0.5.14", "L40S": "0.5.14", "L4": "0.5.14"}
    assert gpus["L4"].meta["kernel_data"] == {"backend": "sglang", "version": "0.5.14", "kernels": "speed-of-light",
                                              "scaled_by": "l40s"}
    caveat = set_caveat(gpus)
    assert "mixes measured kernels with speed-of-light estimates" in caveat and "A100-80GB/H100" in caveat
    assert "--backend auto chose sglang" in TPOT40.read_text() and "# WARNING: Predicted data" in TPOT40.read_text()
    assert set_caveat(load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")) == ""


def test_headline_html_escapes_the_caveat():
    evil = "<script>alert(1)</script>"
    gpus = {name: GpuProfile(name, 1.0, pd.DataFrame([[1.0]], index=["0-10"], columns=["0-5"]),
                             {"source": "predicted", "kernel_data": {"backend": "vllm", "version": v}})
            for name, v in ((evil, "0.14.0"), ("H100", "0.24.0"))}
    html = headline_html("At 1 req/s: 1×H100.", data_caveat=set_caveat(gpus))
    assert "Data caveat:" in html and "&lt;script&gt;" in html and evil not in html


def test_solve_prints_the_caveat_in_text_and_json(tmp_path, capsys):
    w = str(_long_workload(tmp_path / "w.csv"))
    assert main(["solve", "--workload", w, "--gpus", str(TPOT40), "--rate", "4", "--format", "text"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("At 4 req/s: ") and text[1].startswith("Data caveat: Predicted data not like for like")
    assert main(["solve", "--workload", w, "--gpus", str(TPOT40), "--rate", "4", "--format", "json"]) == 0
    assert "sglang 0.5.10" in json.loads(capsys.readouterr().out)["data_caveat"]
    # one GPU type of the set: nothing to compare, no caveat
    assert main(["solve", "--workload", w, "--gpus", str(TPOT40), "--rate", "4", "--gpu", "H100", "--format", "json"]) == 0
    assert "data_caveat" not in json.loads(capsys.readouterr().out)


def test_plan_records_and_prints_the_caveat(tmp_path, capsys):
    rows = pd.DataFrame({"TIMESTAMP": pd.date_range("2023-11-16 18:00", periods=60, freq="10s").astype(str),
                         "ContextTokens": [60, 300] * 30, "GeneratedTokens": [50, 200] * 30})
    rows.to_csv(tmp_path / "trace.csv", index=False)
    assert main(["plan", "--trace", str(tmp_path / "trace.csv"), "--window", "5min", "--gpus", str(TPOT40),
                 "-o", str(tmp_path / "plan")]) == 0
    assert "\nData caveat: Predicted data not like for like" in capsys.readouterr().out
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert "sglang 0.5.10" in doc["profiles"]["data_caveat"]


def test_sweep_pages_find_the_caveat_of_each_gpu_set_and_slo():
    spec = load_spec(PROJECT_ROOT / "params" / "sweeps" / "paper.yaml")
    at40 = sweep_data_caveat(spec, "llama31-8b-predicted", "mean TPOT <= 40 ms")
    at120 = sweep_data_caveat(spec, "llama31-8b-predicted", "mean TPOT <= 120 ms")
    assert "sglang 0.5.10" in at40 and "sglang 0.5.10" in at120 and at40 != at120   # flags differ per SLO
    assert sweep_data_caveat({**spec, "gpu_names": ["H100"]}, "llama31-8b-predicted", "mean TPOT <= 40 ms") == ""


def test_explorer_headline_shows_the_caveat(tmp_path):
    ex = build_explorer(workload=str(_long_workload(tmp_path / "w.csv")), gpus=str(TPOT40), outputs=tmp_path / "o")
    assert ex.view.comparison is not None and "Data caveat:" in ex.headline.value
    view = ex.update(gpu_names=["H100"])
    assert view.comparison is not None and "Data caveat:" not in ex.headline.value


@pytest.mark.slow
def test_sweep_index_and_summary_show_the_caveat(tmp_path):
    (tmp_path / "tpot40.yaml").write_text(TPOT40.read_text())          # a sweep names a GPU set by its file stem
    spec = load_spec(None, workload=str(_long_workload(tmp_path / "w.csv")), gpus=str(tmp_path / "tpot40.yaml"),
                     rates=[4])
    run_sweep(spec, tmp_path / "sweep", render="none", log=lambda *_: None)
    for page in ("index.html", "03_sweep_summary-shared.html"):
        assert "Data caveat:</b> Predicted data not like for like" in (tmp_path / "sweep" / page).read_text(), page
