"""Predicted profiles: real aiconfigurator-core estimates on small cases (no mocks)."""
import json
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("aiconfigurator_core")

from melange_nb.cli import main
from melange_nb.config import PARAMS_DIR
from melange_nb.errors import InputError
from melange_nb.profiles import load_gpus, load_prices
from melange_nb.profiles.predict import PredictorUnavailable, predict_profiles, representative_lengths

LLAMA = "meta-llama/Meta-Llama-3.1-8B"
SMALL = dict(edges=[0, 100, 1000], output_edges=[0, 100, 500])


@pytest.fixture(autouse=True)
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def test_representative_lengths_are_midpoints_and_twice_an_open_edge():
    assert representative_lengths([0, 25, 100], False, minimum=1) == [12, 62]
    assert representative_lengths([0, 2, 2000], True, minimum=2) == [2, 1001, 4000]


def test_looser_slo_never_lowers_a_rate_and_memory_rules_long_inputs():
    tight = predict_profiles(LLAMA, ["a100_sxm=A100"], slo="tpot_ms=20", **SMALL)["A100"].tputs
    loose = predict_profiles(LLAMA, ["a100_sxm=A100"], slo="tpot_ms=120", **SMALL)["A100"].tputs
    assert (loose.to_numpy() >= tight.to_numpy()).all() and (loose.to_numpy() > tight.to_numpy()).any()
    assert (loose.to_numpy() > 0).all()
    # longer prompts cost more prefill: per output bucket, the rate falls as inputs grow
    assert (np.diff(loose.to_numpy(), axis=0) < 0).all()
    assert list(loose.index) == ["0-100", "100-1000"] and loose.index.name == "input_tokens"


def test_kv_cache_overflow_is_zero_with_a_note(tmp_path):
    cfg = json.loads((PARAMS_DIR / "models" / "llama-2-7b" / "config.json").read_text())
    cfg["max_position_embeddings"] = 1_000_000        # 200k-token prompts: ~100 GB of KV cache per request
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "config.json").write_text(json.dumps(cfg))
    gpu = predict_profiles(tmp_path / "big", ["a100_sxm=A100"], slo="tpot_ms=120",
                           edges=[0, 1000, 400_000], output_edges=[0, 100])["A100"]
    assert gpu.tputs.iloc[0, 0] > 0 and gpu.tputs.iloc[1, 0] == 0
    assert gpu.meta["cell_notes"] == [{"input": "1000-400000", "output": "0-100",
                                       "note": "KV cache does not fit (not even one request)"}]
    assert gpu.meta["model"] == "big" and gpu.meta["source"] == "predicted"


def test_model_that_does_not_fit_is_all_zero_with_a_note():
    gpu = predict_profiles("meta-llama/Meta-Llama-3.1-70B", ["l40s=L40S"], slo="tpot_ms=120",
                           edges=[0, 100], output_edges=[0, 100])["L40S"]
    assert (gpu.tputs.to_numpy() == 0).all()
    assert any("does not fit one replica of 1 x l40s" in n for n in gpu.meta["notes"])


def test_context_window_and_speed_of_light_label():
    gpu = predict_profiles(PARAMS_DIR / "models" / "llama-2-7b", ["l4=L4"], slo="tpot_ms=120",
                           edges=[0, 100, 8000], output_edges=[0, 100])["L4"]
    assert gpu.tputs.iloc[0, 0] > 0 and gpu.tputs.iloc[1, 0] == 0
    assert "context window (4096 tokens)" in gpu.meta["cell_notes"][0]["note"]
    assert any("SPEED-OF-LIGHT" in n for n in gpu.meta["notes"])
    assert gpu.meta["price"]["provider"].startswith("RunPod") and gpu.cost == pytest.approx(0.684)


def test_cli_writes_a_profile_that_loads_with_provenance_and_reads_the_cache(tmp_path, outputs, capsys):
    out = tmp_path / "p.yaml"
    argv = ["profile", "predict", "--model", LLAMA, "--gpu", "a100_sxm=A100-80GB", "--slo", "tpot_ms=60",
            "--slo", "p99_ttft_ms=5000", "--edges", "0,100,1000", "--output-edges", "0,100,500", "--tp", "2", "-o", str(out)]
    assert main(argv) == 0
    assert "A100-80GB (a100_sxm, $5.472/h)" in capsys.readouterr().out
    gpu = load_gpus(out)["A100-80GB"]
    m = gpu.meta
    assert m["source"] == "predicted" and m["gpus_per_replica"] == 2 and m["system"] == "a100_sxm"
    assert m["slo"] == [{"metric": "tpot", "stat": "mean", "ms": 60.0}, {"metric": "ttft", "stat": "p99", "ms": 5000.0}]
    assert m["tool"]["name"] == "aiconfigurator-core" and m["engine"]["name"] == "vllm"
    assert gpu.cost == pytest.approx(2 * load_prices(PARAMS_DIR / "prices" / "runpod-serverless.yaml")["A100-80GB"].usd_per_hour)
    assert any("mean-field" in n for n in m["notes"])
    # the cache is keyed by the inputs and really read: doctor it and the next call returns the doctored numbers
    cached = sorted((outputs / "cache" / "profiles").glob("a100_sxm-silicon-*.json"))
    assert len(cached) == 1
    doc = json.loads(cached[0].read_text())
    doc["rates"] = [[7.0, 7.0], [7.0, 7.0]]
    cached[0].write_text(json.dumps(doc))
    assert main(argv) == 0
    assert (load_gpus(out)["A100-80GB"].tputs.to_numpy() == 7.0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(gpus=["h999"]), r"^gpu: unknown system 'h999'; available offline: .*h100_sxm"),
    (dict(backend="tgi"), r"^backend: unknown backend 'tgi'; available offline: vllm, sglang, trtllm"),
    (dict(model="nobody/NoModel-1B"), r"^model: 'nobody/NoModel-1B' is not available offline; .*Meta-Llama-3.1-8B"),
    (dict(slo="tpot<40"), r"^slo: cannot parse 'tpot<40'; use \[STAT_\]METRIC_ms=NUMBER"),
    (dict(gpus=["h100_sxm=H100"], prices=PARAMS_DIR / "prices" / "seed.yaml"),
     r"^prices: no price for GPU 'H100' \(system h100_sxm\) in seed.yaml; add it there or pick one of \['A100', 'A10G'\]"),
    (dict(gpus=["b60=B60"]), r"^prices: no price for GPU 'B60' \(system b60\) in runpod-serverless.yaml"),
    (dict(tp=0), r"^tp: must be a whole number from 1 to 64"),
])
def test_bad_input_is_one_line_before_any_estimate(kwargs, match, outputs):
    args = dict(model=LLAMA, gpus=["a100_sxm"], slo="tpot_ms=40", **SMALL) | kwargs
    with pytest.raises(InputError, match=match) as err:
        predict_profiles(args.pop("model"), args.pop("gpus"), **args)
    assert "\n" not in str(err.value)
    assert not (outputs / "cache").exists()


def test_cli_bad_model_exits_2_with_one_line(tmp_path, capsys):
    assert main(["profile", "predict", "--model", str(tmp_path), "--gpu", "h100_sxm", "--slo", "tpot_ms=40",
                 "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("melange-nb: error: model: folder") and "config.json" in err and "\n" not in err
    assert not (tmp_path / "x.yaml").exists()


def test_missing_aiconfigurator_says_so_in_one_line(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("aiconfigurator_core")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)     # what an install without the wheel looks like
    with pytest.raises(PredictorUnavailable, match="not installed .*not Windows"):
        predict_profiles(LLAMA, ["h100_sxm"], slo="tpot_ms=40")


def test_speed_of_light_calibrated_by_a_sibling_is_slower_and_says_so():
    args = dict(slo="tpot_ms=200", edges=[0, 100, 1000], output_edges=[0, 100])
    labelled = predict_profiles(LLAMA, ["l4=L4"], **args)["L4"]
    calibrated = predict_profiles(LLAMA, ["l4=L4"], sol="calibrate", **args)["L4"]
    served = labelled.tputs.to_numpy() > 0
    assert served.all() and (calibrated.tputs.to_numpy() < labelled.tputs.to_numpy()).all()
    assert any("scaled per bucket by l40s's measured/speed-of-light ratio" in n for n in calibrated.meta["notes"])
    assert not any("SPEED-OF-LIGHT" in n for n in calibrated.meta["notes"])


def test_cli_latency_option_writes_a_profile_simulate_can_use(tmp_path, outputs, capsys):
    """`profile predict --latency` fits a latency model per GPU type in the same command: the file then
    simulates, and the model reproduces the profile's own rates in most buckets."""
    from melange_nb.simulate import load_plan, simulate, stream_from_workload

    out = tmp_path / "p.yaml"
    assert main(["profile", "predict", "--model", LLAMA, "--gpu", "h100_sxm=H100", "--slo", "tpot_ms=40",
                 "--edges", "0,100,1000", "--output-edges", "0,100,500", "--latency", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "H100: fit: profile rates + aiconfigurator-core" in printed and "buckets within 15%" in printed
    gpus = load_gpus(out)
    model = gpus["H100"].latency
    assert model is not None and model.source.startswith("fit: profile rates")
    workload = pd.DataFrame(0.25, index=gpus["H100"].tputs.index, columns=gpus["H100"].tputs.columns)
    stream = stream_from_workload(workload, rate=2.0, duration_s=30, seed=1)
    result = simulate(stream, load_plan(None, gpus, workload=workload, rate=2.0), gpus, seed=1)
    assert result.status == "ok" and len(result.requests) == len(stream)
    assert result.summary.loc["all", "attainment"] > 0.9
