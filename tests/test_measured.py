"""Measured profiles: benchmark result files in (vllm bench serve, AIPerf), max rate per bucket, plans out."""
import json
from pathlib import Path

import numpy as np
import pytest

from melange_nb.errors import InputError
from melange_nb.profiles.measured import (BenchmarkRun, bucket_max_rate, group_runs, import_profile,
                                          plan_commands, read_runs, write_benchmark_plan)

TPOT40 = [{"metric": "tpot", "stat": "mean", "ms": 40.0}]


def run(rate, tpot, *, ttft=100.0, p99_tpot=None, isl=50, osl=50):
    metrics = {("tpot", "mean"): tpot, ("ttft", "mean"): ttft}
    if p99_tpot is not None:
        metrics[("tpot", "p99")] = p99_tpot
    return BenchmarkRun(file="f.json", tool="vllm bench serve", tool_version="unknown", model="m",
                        input_len=isl, output_len=osl, rate=rate, completed=100, metrics=metrics)


# ---------------------------------------------------------------- interpolation rules (hand-computed)

def test_crossing_interpolated_between_last_pass_and_first_fail():
    rate, how = bucket_max_rate([run(3, 50), run(1, 20), run(2, 30)], TPOT40)   # order does not matter
    assert rate == pytest.approx(2 + (40 - 30) / (50 - 30) * (3 - 2))        # 2.5
    assert "interpolated" in how


def test_no_failing_run_gives_highest_passing_rate_never_extrapolated():
    rate, how = bucket_max_rate([run(1, 10), run(2, 20), run(4, 39)], TPOT40)
    assert rate == 4
    assert "not extrapolated" in how


def test_runs_but_none_passing_is_zero():
    rate, how = bucket_max_rate([run(1, 45), run(2, 60)], TPOT40)
    assert rate == 0 and "no run met" in how


def test_no_runs_is_zero():
    assert bucket_max_rate([], TPOT40) == (0.0, "no runs")


def test_threshold_exactly_met_passes():
    assert bucket_max_rate([run(1, 30), run(2, 40)], TPOT40)[0] == 2


def test_every_condition_must_hold_lowest_crossing_wins():
    slo = TPOT40 + [{"metric": "ttft", "stat": "mean", "ms": 500.0}]
    runs = [run(1, 20, ttft=100), run(2, 30, ttft=300), run(4, 60, ttft=1300)]
    rate, _ = bucket_max_rate(runs, slo)
    # tpot crosses 40 at 2 + 10/30 * 2 = 2.67; ttft crosses 500 at 2 + 200/1000 * 2 = 2.4: the lower wins
    assert rate == pytest.approx(2.4)


def test_passing_run_above_first_failure_is_ignored_and_said():
    rate, how = bucket_max_rate([run(1, 20), run(2, 60), run(3, 30)], TPOT40)
    assert rate == pytest.approx(1 + 20 / 40)                                # 1.5, not 3
    assert "ignored" in how


def test_percentile_condition_uses_that_statistic():
    slo = [{"metric": "tpot", "stat": "p99", "ms": 60.0}]
    rate, _ = bucket_max_rate([run(1, 20, p99_tpot=50), run(2, 30, p99_tpot=70)], slo)
    assert rate == pytest.approx(1.5)


def test_missing_statistic_names_file_and_field():
    with pytest.raises(InputError, match=r"f\.json: p90_tpot_ms.*--metric-percentiles"):
        bucket_max_rate([run(1, 20)], [{"metric": "tpot", "stat": "p90", "ms": 60.0}])


def test_runs_grouped_by_mean_lengths_into_labelled_buckets():
    runs = [run(1, 10, isl=10, osl=10), run(1, 10, isl=30, osl=10), run(1, 10, isl=99, osl=200), run(1, 10, isl=500)]
    index, columns, groups, outside = group_runs(runs, [0, 25, 100], [0, 25, 250])
    assert index == ["0-25", "25-100"] and columns == ["0-25", "25-250"]
    assert [len(groups[k]) for k in [("0-25", "0-25"), ("25-100", "0-25"), ("25-100", "25-250"), ("0-25", "25-250")]] \
        == [1, 1, 1, 0]
    assert outside == [runs[3]]                       # 500 input tokens: beyond the last edge, reported
    _, _, groups, outside = group_runs(runs, [0, 25, 100], [0, 25, 250], open_last_input=True)
    assert not outside and len(groups[("100+", "25-250")]) == 1


# ---------------------------------------------------------------- vllm bench serve files

def vllm_result(*, rate, tpot, isl=50, osl=50, completed=100, duration=None, model="meta-llama/Llama-3.1-8B", **extra):
    """A result as `vllm bench serve --save-result` writes it (keys from vllm/benchmarks/serve.py)."""
    duration = duration if duration is not None else completed / rate
    doc = {"date": "20261124-101500", "endpoint_type": "vllm", "backend": "vllm", "label": None,
           "model_id": model, "tokenizer_id": model, "num_prompts": completed, "request_rate": rate,
           "burstiness": 1.0, "max_concurrency": None, "duration": duration, "completed": completed, "failed": 0,
           "total_input_tokens": isl * completed, "total_output_tokens": osl * completed,
           "request_throughput": completed / duration, "request_goodput": None,
           "input_lens": [isl] * completed, "output_lens": [osl] * completed,
           "mean_ttft_ms": 80.0, "median_ttft_ms": 75.0, "std_ttft_ms": 5.0, "p99_ttft_ms": 120.0,
           "mean_tpot_ms": tpot, "median_tpot_ms": tpot, "std_tpot_ms": 1.0, "p99_tpot_ms": tpot * 1.3,
           "mean_itl_ms": tpot, "median_itl_ms": tpot, "std_itl_ms": 1.0, "p99_itl_ms": tpot * 1.5}
    doc.update(extra)
    return doc


def write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_vllm_file_read_with_its_fields(tmp_path):
    path = write(tmp_path, "a.json", vllm_result(rate=2, tpot=30, duration=40))
    (r,) = read_runs([path])
    assert (r.tool, r.model, r.input_len, r.output_len, r.completed) == ("vllm bench serve", "meta-llama/Llama-3.1-8B",
                                                                          50, 50, 100)
    assert r.rate == pytest.approx(100 / 40) and r.offered_rate == 2 and r.date == "2026-11-24"
    assert r.metric("tpot", "p50") == 30 and r.metric("tpot", "p99") == pytest.approx(39)


def test_import_profile_from_vllm_files(tmp_path):
    files = [write(tmp_path, f"r{rate}.json", vllm_result(rate=rate, tpot=tpot))
             for rate, tpot in [(1, 20), (2, 30), (4, 50)]]
    files += [write(tmp_path, "long.json", vllm_result(rate=1, tpot=45, isl=150))]
    profile, warnings = import_profile(files, gpu="L4", cost=0.8, slo="tpot_ms=40",
                                       input_edges=[0, 100, 200], output_edges=[0, 100, 200])
    assert profile.tputs.index.name == "input_tokens" and profile.tputs.columns.name == "output_tokens"
    assert profile.tputs.loc["0-100", "0-100"] == pytest.approx(3.0)       # 2 + (10/20) * 2
    assert profile.tputs.loc["100-200", "0-100"] == 0                       # runs, none passing
    assert profile.tputs.loc["0-100", "100-200"] == 0                       # no runs
    assert [w for w in warnings if "no benchmark runs" in w] == [
        "bucket input 0-100 x output 100-200: no benchmark runs; set to 0 (cannot serve)",
        "bucket input 100-200 x output 100-200: no benchmark runs; set to 0 (cannot serve)"]
    meta = profile.meta
    assert meta["source"] == "measured" and meta["model"] == "meta-llama/Llama-3.1-8B"
    assert meta["tool"] == {"name": "vllm bench serve", "version": "unknown"}
    assert meta["slo"] == TPOT40
    notes = {(c["input"], c["output"]): c["note"] for c in meta["cell_notes"]}
    assert notes[("0-100", "100-200")].startswith("0: no benchmark runs")
    assert notes[("100-200", "0-100")].startswith("0: no run met the SLO")


# ---------------------------------------------------------------- bad input: one line naming file and field

@pytest.mark.parametrize("doc, match", [
    (vllm_result(rate=1, tpot=20, completed=0, duration=10), r"a\.json: completed: is 0"),
    ({k: v for k, v in vllm_result(rate=1, tpot=20).items() if k != "model_id"}, r"a\.json: model_id: is missing"),
    ({k: v for k, v in vllm_result(rate=1, tpot=20).items() if k != "mean_tpot_ms"}, r"a\.json: mean_tpot_ms: is missing"),
    ({**vllm_result(rate=1, tpot=20), "duration": "x"}, r"a\.json: duration: is missing or not a number"),
    ({"benchmarks": [], "metadata": {}}, r"result file .*a\.json: is not a vllm bench serve.*top-level keys"),
    ([1, 2], r"result file .*a\.json: is not a vllm bench serve"),
])
def test_bad_result_files(tmp_path, doc, match):
    path = write(tmp_path, "a.json", doc)
    with pytest.raises(InputError, match=match):
        import_profile([path], gpu="L4", cost=1, slo="tpot_ms=40", input_edges=[0, 100], output_edges=[0, 100])


def test_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text("Successful requests: 100\n")
    with pytest.raises(InputError, match=r"a\.json: is not valid JSON"):
        read_runs([bad])
    with pytest.raises(InputError, match=r"nothere\.json: not found"):
        read_runs([tmp_path / "nothere.json"])
    with pytest.raises(InputError, match=r"is a folder; pass the JSON files in it"):
        read_runs([tmp_path])


def test_two_models_in_one_import(tmp_path):
    a = write(tmp_path, "a.json", vllm_result(rate=1, tpot=20))
    b = write(tmp_path, "b.json", vllm_result(rate=2, tpot=20, model="Qwen/Qwen3-8B"))
    with pytest.raises(InputError, match=r"b\.json: model_id: is 'Qwen/Qwen3-8B' but .*a\.json is 'meta-llama"):
        read_runs([a, b])


def test_slo_required_and_checked(tmp_path):
    a = write(tmp_path, "a.json", vllm_result(rate=1, tpot=20))
    with pytest.raises(InputError, match="--slo"):
        import_profile([a], gpu="L4", cost=1, slo=None, input_edges=[0, 100], output_edges=[0, 100])
    with pytest.raises(InputError, match="--slo"):
        import_profile([a], gpu="L4", cost=1, slo="tpot<40", input_edges=[0, 100], output_edges=[0, 100])


# ---------------------------------------------------------------- plan

def test_plan_one_command_per_bucket_pair_and_rate(tmp_path):
    runs = plan_commands(model="meta-llama/Llama-3.1-8B", base_url="http://gpu-box:8000",
                         input_edges=[0, 25, 100], output_edges=[0, 50], rates=[4, 1, 2])
    assert len(runs) == 2 * 1 * 3
    first = runs[0]
    assert (first["input"], first["output"], first["input_len"], first["output_len"], first["rate"]) == ("0-25", "0-50", 12, 25, 1)
    argv = first["argv"]
    flag = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1) if argv[i].startswith("--")}
    assert argv[:3] == ["vllm", "bench", "serve"]
    assert flag["--dataset-name"] == "random" and flag["--random-input-len"] == "12"
    assert flag["--random-output-len"] == "25" and flag["--random-range-ratio"] == "0"
    assert flag["--request-rate"] == "1" and flag["--result-filename"] == first["file"]
    assert "--save-result" in argv and "--ignore-eos" in argv
    paths = write_benchmark_plan(tmp_path / "plan", gpu="L4", model="meta-llama/Llama-3.1-8B",
                                 base_url="http://gpu-box:8000", input_edges=[0, 25, 100], output_edges=[0, 50],
                                 rates=[1, 2, 4])
    script = (tmp_path / "plan" / "run_benchmarks.sh").read_text()
    assert script.count("|| vllm bench serve") == 6 and script.startswith("#!/usr/bin/env bash")
    assert "melange-nb profile import results/*.json --gpu L4" in (tmp_path / "plan" / "README.md").read_text()
    assert len(paths) == 2


def test_plan_rejects_bad_rates():
    with pytest.raises(InputError, match="--rates"):
        plan_commands(model="m", base_url="http://x", input_edges=[0, 10], output_edges=[0, 10], rates=[0, 1])


# ---------------------------------------------------------------- AIPerf files (keys as AIPerf 0.13 writes them)

def aiperf_result(*, rate, tpot, isl=31, osl=8, count=40, models=("llama-test",)):
    stats = lambda avg: {"unit": "ms", "avg": avg, "p50": avg, "p90": avg * 1.2, "p99": avg * 1.5, "min": avg / 2}
    return {"schema_version": "1.4", "aiperf_version": "0.13.0", "benchmark_id": "x",
            "request_throughput": {"unit": "requests/sec", "avg": rate}, "request_count": {"unit": "requests", "avg": count},
            "benchmark_duration": {"unit": "sec", "avg": count / rate},
            "time_to_first_token": stats(20.0), "inter_token_latency": stats(tpot), "inter_chunk_latency": stats(tpot),
            "request_latency": stats(20 + tpot * (osl - 1)),
            "input_sequence_length": {"unit": "tokens", "avg": isl}, "output_sequence_length": {"unit": "tokens", "avg": osl},
            "input_config": {"models": {"items": [{"name": m} for m in models]},
                             "endpoint": {"type": "completions", "streaming": True},
                             "phases": [{"name": "profiling", "kind": "profiling", "type": "concurrency",
                                         "requests": count, "concurrency": 4}]},
            "start_time": "2026-11-25T01:31:15.653845", "error_summary": []}


def test_aiperf_file_read_with_its_fields(tmp_path):
    (r,) = read_runs([write(tmp_path, "profile_export_aiperf.json", aiperf_result(rate=32.0, tpot=13.0))])
    assert (r.tool, r.tool_version, r.model, r.input_len, r.output_len) == ("aiperf", "0.13.0", "llama-test", 31, 8)
    assert (r.rate, r.completed, r.max_concurrency, r.date) == (32.0, 40, 4, "2026-11-25")
    assert r.metric("tpot", "mean") == 13.0 and r.metric("tpot", "p90") == pytest.approx(15.6)
    assert r.metric("e2e", "mean") == pytest.approx(20 + 13 * 7)


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(request_count={"unit": "requests", "avg": 0}), r"request_count\.avg: is 0"),
    (lambda d: d["input_config"].update(models={"items": [{"name": "a"}, {"name": "b"}]}), r"input_config\.models: must name exactly one"),
    (lambda d: d.pop("input_sequence_length"), r"input_sequence_length\.avg: is missing"),
    (lambda d: d.pop("inter_token_latency"), r"inter_token_latency\.avg: is missing but the SLO needs mean tpot"),
])
def test_bad_aiperf_files(tmp_path, change, match):
    doc = aiperf_result(rate=10, tpot=20)
    change(doc)
    with pytest.raises(InputError, match=match):
        import_profile([write(tmp_path, "p.json", doc)], gpu="L4", cost=1, slo="tpot_ms=40",
                       input_edges=[0, 100], output_edges=[0, 100])


def test_aiperf_and_vllm_mixed_models_named(tmp_path):
    a = write(tmp_path, "v.json", vllm_result(rate=1, tpot=20))
    b = write(tmp_path, "p.json", aiperf_result(rate=2, tpot=20))
    with pytest.raises(InputError, match=r"p\.json: input_config\.models: is 'llama-test'"):
        read_runs([a, b])


# ---------------------------------------------------------------- the command line

def test_cli_import_writes_a_profile_that_solve_reads(tmp_path, capsys):
    from melange_nb.cli import main
    from melange_nb.profiles import load_gpus

    files = [str(write(tmp_path, f"r{rate}.json", vllm_result(rate=rate, tpot=tpot)))
             for rate, tpot in [(1, 20), (2, 30), (4, 50)]]
    out = tmp_path / "l4.yaml"
    assert main(["profile", "import", *files, "--gpu", "L4", "--cost", "0.8", "--slo", "tpot_ms=40",
                 "--edges", "0,100", "--output-edges", "0,100", "--system", "l4", "--engine", "vllm=0.11.0",
                 "-o", str(out)]) == 0
    gpus = load_gpus(out)
    assert gpus["L4"].tputs.loc["0-100", "0-100"] == pytest.approx(3.0) and gpus["L4"].cost == 0.8
    assert gpus["L4"].meta["source"] == "measured" and gpus["L4"].meta["engine"] == {"name": "vllm", "version": "0.11.0"}
    # a second GPU into the same file, priced from a price file
    assert main(["profile", "import", *files, "--gpu", "A10G", "--prices", "params/prices/seed.yaml", "--slo", "tpot_ms=40",
                 "--edges", "0,100", "--output-edges", "0,100", "--add", "-o", str(out)]) == 0
    assert set(load_gpus(out)) == {"L4", "A10G"}
    workload = tmp_path / "w.csv"
    workload.write_text("input_tokens,0-100\n0-100,1.0\n")
    capsys.readouterr()
    assert main(["solve", "--workload", str(workload), "--gpus", str(out), "--rate", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "optimal"


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    from melange_nb.cli import main

    bad = write(tmp_path, "a.json", vllm_result(rate=1, tpot=20, completed=0, duration=1))
    out = tmp_path / "x.yaml"
    assert main(["profile", "import", str(bad), "--gpu", "L4", "--cost", "1", "--slo", "tpot_ms=40", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "a.json: completed: is 0" in err
    assert not out.exists()
    assert main(["profile", "import", str(bad), "--gpu", "H200", "--prices", "params/prices/seed.yaml",
                 "--slo", "tpot_ms=40", "-o", str(out)]) == 2
    assert "no price for GPU 'H200'" in capsys.readouterr().err


def test_cli_plan_writes_script_and_readme(tmp_path, capsys):
    from melange_nb.cli import main

    assert main(["profile", "plan", "--gpu", "L4", "--model", "meta-llama/Llama-3.1-8B", "--base-url",
                 "http://127.0.0.1:8000", "--edges", "0,25,100", "--output-edges", "0,100", "--rates", "1,2",
                 "-o", str(tmp_path / "plan")]) == 0
    script = (tmp_path / "plan" / "run_benchmarks.sh").read_text()
    assert script.count("|| vllm bench serve") == 4 and "--random-input-len 62" in script


# ---------------------------------------------------------------- proof on real tool output: AIPerf vs a test server
#
# AIPerf (NVIDIA, PyPI `aiperf`, in its own venv .venv-bench made by `make bench-client`, which
# `make test` depends on) runs a closed-loop sweep against tests/llm_test_server.py: 2 input x 2
# output lengths x 4 concurrency levels, one AIPerf invocation. The server's per-token delay is
# a + b x (requests in flight), so the closed form of each bucket's max rate under a mean-TPOT
# threshold is known (Latency.true_max_rate). We import AIPerf's profile_export_aiperf.json files
# and compare.
#
# Each request also spends time outside the law (HTTP, JSON, AIPerf's turnaround, the stream's
# end): measured per bucket at the levels around N* as latency - (output - 1) x TPOT - prefill
# and added to the closed form's latency; the table prints the law-only value too.
# Tolerance 15%: linear interpolation between the bracketing levels (concurrency 5 and 8 around
# N* = 6.5) sits ~1.3% below the closed form because TPOT is convex in the achieved rate; the
# overhead grows with load (20-100 ms per request seen on a busy 2-core machine) and is averaged
# over the two levels; timer jitter adds noise. Seen with a=12, b=4 ms: -3% to -11%, too close to
# the bound on a loaded machine. The law is therefore slow (a=24, b=8 ms, T=76 ms: the same N*):
# the overhead and the jitter are absolute times, so against twice the law's time they weigh half.
# Seen with this law on the 2-core machine at load average ~10: -2.5% to -6.6%.

from conftest import AIPERF_BIN as BENCH_BIN  # noqa: E402
LEVELS = (2, 5, 8, 10)             # concurrency ladder; 40 requests per level = whole waves at every level
TPOT_SLO_MS = 76.0                 # with a=24, b=8: N* = (76 - 24) / 8 = 6.5
BRACKET = (5, 8)                   # the levels around N*


@pytest.fixture(scope="module")
def aiperf_results(tmp_path_factory):
    import subprocess
    import sys

    from conftest import aiperf_env, aiperf_or_skip, aiperf_tokenizer

    aiperf_or_skip()
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_test_server import Latency, LlmTestServer

    work = tmp_path_factory.mktemp("aiperf")
    count_tokens = aiperf_tokenizer(work / "tokenizer")
    latency = Latency(a_ms=24.0, b_ms=8.0, prefill_ms_per_token=1.0)
    env = aiperf_env()
    with LlmTestServer(count_tokens, latency) as server:
        cmd = [str(BENCH_BIN), "profile", "--model", "llama-test", "--url", server.base_url,
               "--endpoint-type", "completions", "--streaming", "--tokenizer", str(work / "tokenizer"),
               "--isl", "32,160", "--isl-stddev", "0", "--osl", "8,32", "--osl-stddev", "0",
               "--extra-inputs", "ignore_eos:true", "--prompt-corpus", "random",
               "--concurrency", ",".join(map(str, LEVELS)), "--request-count", "40",
               "--artifact-dir", str(work / "artifacts"), "--ui-type", "none",
               "--no-server-metrics", "--no-gpu-telemetry", "--workers-max", "1", "--record-processors", "1"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted((work / "artifacts").glob("*/profile_export_aiperf.json"))
    version = subprocess.run([str(BENCH_BIN), "--version"], capture_output=True, text=True).stdout.strip()
    return files, latency, version


@pytest.mark.slow
def test_aiperf_round_trip_recovers_closed_form_max_rates(aiperf_results):
    files, latency, version = aiperf_results
    assert len(files) == 2 * 2 * len(LEVELS)
    profile, warnings = import_profile(files, gpu="TEST", cost=1.0, slo=f"tpot_ms={TPOT_SLO_MS}",
                                       input_edges=[0, 64, 256], output_edges=[0, 16, 48])
    assert not warnings
    assert profile.meta["tool"] == {"name": "aiperf", "version": version.split()[-1]}
    runs = read_runs(files)
    rows = []
    for (i_label, o_label), isl, osl in [(("0-64", "0-16"), 32, 8), (("0-64", "16-48"), 32, 32),
                                         (("64-256", "0-16"), 160, 8), (("64-256", "16-48"), 160, 32)]:
        bucket = [r for r in runs if abs(r.output_len - osl) < 0.5 and abs(r.input_len - isl) < 3]
        assert len(bucket) == len(LEVELS)
        # the law as AIPerf measured it: TPOT = a + b x N, N = requests in flight at the server, which by
        # Little's law is achieved rate x mean latency (client turnaround keeps it a little under the
        # nominal concurrency; the closed form of the max rate depends on N only)
        for run in bucket:
            in_flight = run.rate * run.metric("e2e", "mean") / 1000.0
            assert run.metric("tpot", "mean") == pytest.approx(latency.tpot_ms(in_flight), rel=0.12)
        isl_mean = np.mean([r.input_len for r in bucket])
        # per-request time outside the law, as measured at the two levels around N* (it grows with load):
        # latency - (output - 1) x TPOT - prefill
        around = [r for r in bucket if r.max_concurrency in BRACKET]
        overhead = np.mean([r.metric("e2e", "mean") - (osl - 1) * r.metric("tpot", "mean") for r in around]) \
            - latency.prefill_ms_per_token * isl_mean
        rows.append((i_label, o_label, profile.tputs.loc[i_label, o_label], overhead,
                     latency.true_max_rate(TPOT_SLO_MS, isl_mean, osl),
                     latency.true_max_rate(TPOT_SLO_MS, isl_mean, osl, overhead_ms=overhead)))
    print(f"\nAIPerf {version} round trip, max req/s at mean TPOT <= {TPOT_SLO_MS:g} ms (closed form: "
          "law only / law + measured per-request overhead):")
    for i_label, o_label, got, overhead, bare, true in rows:
        print(f"  in {i_label:>6} out {o_label:>5}: recovered {got:6.2f}  closed form {bare:6.2f} / {true:6.2f} "
              f"(overhead {overhead:5.1f} ms/request; recovered {got / true - 1:+.1%})")
    for i_label, o_label, got, overhead, bare, true in rows:
        assert got == pytest.approx(true, rel=0.15), (i_label, o_label)
