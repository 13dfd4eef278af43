"""The profile-file contract: provenance keys, SLO syntax, save/load round trip, prices."""
import numpy as np
import pandas as pd
import pytest

from melange_nb.config import GPUS_DIR, PARAMS_DIR
from melange_nb.errors import InputError
from melange_nb.profiles import (GpuProfile, find_price, format_slo, load_gpus, load_prices, parse_slo,
                                 provenance_lines, save_profiles)
from melange_nb.workload import bucket_labels, labelled_matrix


def test_parse_slo_forms():
    assert parse_slo("tpot_ms=40") == [{"metric": "tpot", "stat": "mean", "ms": 40.0}]
    assert parse_slo("p99_tpot_ms=60") == [{"metric": "tpot", "stat": "p99", "ms": 60.0}]
    assert parse_slo(["ttft_ms=2000", "tpot_ms=40"]) == [{"metric": "tpot", "stat": "mean", "ms": 40.0},
                                                         {"metric": "ttft", "stat": "mean", "ms": 2000.0}]
    assert parse_slo("tpot_ms=40,p90_itl_ms=55.5")[0]["metric"] == "itl"
    assert parse_slo({"tpot_ms": 120}) == parse_slo("tpot_ms=120")          # older files' mapping form
    assert parse_slo([{"metric": "e2e", "stat": "p50", "ms": 9000}]) == parse_slo("median_e2el_ms=9000")
    assert parse_slo(None) == "unknown" and parse_slo("unknown") == "unknown"
    assert format_slo("p99_ttft_ms=2000,tpot_ms=40") == "mean TPOT <= 40 ms and p99 TTFT <= 2000 ms"
    assert format_slo(parse_slo("p99_ttft_ms=2000,tpot_ms=40"), compact=True) == "tpot_ms=40,p99_ttft_ms=2000"


@pytest.mark.parametrize("bad", ["tpot=40", "tpot_ms:40", "p95_tpot_ms=40", "latency_ms=3", "tpot_ms=-1",
                                 "tpot_ms=abc", "", [{"metric": "tpot", "stat": "p95", "ms": 40}]])
def test_parse_slo_errors_show_the_syntax(bad):
    with pytest.raises(InputError, match=r"^slo: .*\[STAT_\]METRIC_ms=NUMBER|^slo: condition"):
        parse_slo(bad)


def test_seed_profile_says_what_is_unknown():
    gpus = load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")
    a100 = gpus["A100"].meta
    assert a100["source"] == "seed" and a100["slo"] == "unknown" and a100["engine"] == "unknown"
    assert a100["model"] == "Llama-2-7B" and a100["gpus_per_replica"] == 1
    assert a100["price"]["provider"] == "Azure" and gpus["A10G"].meta["price"]["provider"] == "AWS"
    lines = provenance_lines(gpus)
    assert lines[0].startswith("A10G: seed; model Llama-2-7B; 1 GPU/replica; engine unknown; SLO unknown")
    assert "$3.67/h (Azure, unknown, 2024-04)" in lines[1]


def test_old_files_without_provenance_still_load(tmp_path):
    (tmp_path / "old.yaml").write_text(
        "model: M\nslo: {tpot_ms: 120}\nsource: my lab notebook\ninput_edges: [0, 10]\noutput_edges: [0, 5, 9]\n"
        "gpus:\n  G: {cost: 2, tputs: [[1.5, 0.5]]}\n")
    meta = load_gpus(tmp_path / "old.yaml")["G"].meta
    assert meta["slo"] == [{"metric": "tpot", "stat": "mean", "ms": 120.0}]
    assert meta["source"] == "unknown" and meta["notes"] == ["source: my lab notebook"]
    assert meta["engine"] == meta["tool"] == meta["date"] == meta["price"] == "unknown"


def _profile(name, values, index, columns, **meta):
    return GpuProfile(name, 2.5, labelled_matrix(values, index, columns, field="t"), meta)


def test_save_load_round_trip(tmp_path):
    index, columns = bucket_labels([0, 100, 16000], open_last=True), bucket_labels([0, 25, 2000])
    values = np.array([[1 / 3, 2.0], [0.1, 0.0], [0.0, 0.0]])
    a = _profile("H100", values, index, columns, system="h100_sxm", gpus_per_replica=1,
                 cell_notes=[{"input": "16000+", "output": "0-25", "note": "KV cache does not fit"}],
                 price={"provider": "RunPod", "date": "2026-11-25"})
    b = _profile("L40S", values * 0.5, index, columns, system="l40s", gpus_per_replica=2)
    prov = {"model": "Llama-3.1-8B", "source": "predicted", "slo": parse_slo("tpot_ms=40"),
            "engine": {"name": "vllm", "version": "0.10"}, "tool": {"name": "aiconfigurator-core", "version": "0.12.0"},
            "date": "2026-11-25", "notes": ["test"]}
    path = save_profiles(tmp_path / "p.yaml", {"H100": a, "L40S": b}, prov, header="predicted\nby a test")
    text = path.read_text()
    assert text.startswith("# predicted\n# by a test\n") and "open_last_input: true" in text
    assert not list(tmp_path.glob(".*.tmp"))
    back = load_gpus(path)
    assert list(back) == ["H100", "L40S"]
    for orig in (a, b):
        got = back[orig.name]
        pd.testing.assert_frame_equal(got.tputs, orig.tputs)
        assert got.cost == orig.cost
        assert got.meta["model"] == "Llama-3.1-8B" and got.meta["slo"] == prov["slo"]
    assert back["H100"].meta["cell_notes"] == a.meta["cell_notes"] and back["L40S"].meta["cell_notes"] == []
    assert back["L40S"].meta["gpus_per_replica"] == 2 and back["H100"].meta["system"] == "h100_sxm"
    # saving what was loaded writes the same file again
    again = save_profiles(tmp_path / "q.yaml", back, header="predicted\nby a test")
    assert again.read_text() == text


def test_save_rejects_mismatched_buckets_and_bad_cell_notes(tmp_path):
    a = _profile("A", [[1.0]], ["0-10"], ["0-5"])
    b = _profile("B", [[1.0]], ["0-20"], ["0-5"])
    with pytest.raises(InputError, match="gpus.B.tputs: has other buckets than A"):
        save_profiles(tmp_path / "x.yaml", [a, b])
    bad = _profile("A", [[1.0]], ["0-10"], ["0-5"], cell_notes=[{"input": "10-20", "output": "0-5", "note": "x"}])
    with pytest.raises(InputError, match=r"cell_notes\[0\]: bucket 10-20 x 0-5 is not one of"):
        save_profiles(tmp_path / "x.yaml", [bad])
    assert not (tmp_path / "x.yaml").exists()


def test_prices_files_load_and_a_missing_price_names_the_gpu(tmp_path):
    runpod = load_prices(PARAMS_DIR / "prices" / "runpod-serverless.yaml")
    assert {"L4", "L40S", "A100-80GB", "H100", "H200"} <= set(runpod)
    assert runpod["H100"].usd_per_hour == pytest.approx(0.00116 * 3600)
    assert all(p.date == "2026-11-25" and p.provider.startswith("RunPod") for p in runpod.values())
    assert find_price(runpod, "whatever", "h100_sxm").name == "H100"       # found by system name
    seed = load_prices(PARAMS_DIR / "prices" / "seed.yaml")
    assert (seed["A10G"].usd_per_hour, seed["A100"].usd_per_hour) == (1.01, 3.67)
    with pytest.raises(InputError, match=r"no price for GPU 'A10G'.*runpod-serverless.yaml"):
        find_price(runpod, "A10G")
    (tmp_path / "p.yaml").write_text("gpus:\n  X: {usd_per_hour: -1, date: 2026-01-01}\n")
    with pytest.raises(InputError, match=r"p.yaml: gpus.X.usd_per_hour: must be a positive number"):
        load_prices(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text("gpus:\n  X: {usd_per_hour: 1}\n")
    with pytest.raises(InputError, match=r"gpus.X.date: is missing"):
        load_prices(tmp_path / "p.yaml")
