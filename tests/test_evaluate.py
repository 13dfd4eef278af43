"""eval: per-pool AIPerf load tests out (trace JSONL, commands, run_eval.sh), AIPerf records back in.

The round trip on real tool output (two test servers, AIPerf, the simulator) is in
tests/test_eval_roundtrip.py; these are the fast checks of each piece.
"""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melange_nb import evaluate as ev
from melange_nb.errors import InputError

from conftest import page_problems

HOSTILE = "$(touch pwned) `touch pwned2` <script>alert(1)</script> onerror=x\nnext"


def stream(gpus=("A10G", "A100"), n=20, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"arrival_s": 3.0 + np.cumsum(rng.exponential(0.25, n)), "input_tokens": rng.integers(10, 500, n),
                         "output_tokens": rng.integers(1, 90, n), "gpu": rng.choice(list(gpus), n)})


def write(tmp_path, s=None, *, endpoints=None, plan_shares=None, name="ev", **kw):
    s = stream() if s is None else s
    gpus = sorted(s["gpu"].unique())
    endpoints = endpoints or {g: f"http://10.0.0.{i + 1}:8000" for i, g in enumerate(gpus)}
    plan_shares = plan_shares or {g: 1 / len(gpus) for g in gpus}
    ev.write_eval(tmp_path / name, s, endpoints=endpoints, model=kw.pop("model", "meta-llama/Llama-3.1-8B"),
                  tokenizer=kw.pop("tokenizer", None), plan={"mix": " + ".join(f"1×{g}" for g in gpus), "cost_per_hour": 4.68,
                                                             "source": "counts", "counts": {g: 1 for g in gpus}},
                  plan_shares=plan_shares, slo="tpot_ms=40", stream_info={"source": "poisson at 4 req/s", "seed": 7}, **kw)
    return tmp_path / name


# ---------------------------------------------------------------- writing side

def test_every_request_in_exactly_one_pool_with_mooncake_lines(tmp_path):
    s = stream(n=40)
    d = write(tmp_path, s)
    manifest = json.loads((d / "eval.json").read_text())
    lines = {g: [json.loads(x) for x in (d / p["folder"] / "trace.jsonl").read_text().splitlines()]
             for g, p in manifest["pools"].items()}
    assert sum(len(v) for v in lines.values()) == len(s)
    ids = [x["session_id"] for v in lines.values() for x in v]
    assert len(set(ids)) == len(s)
    first = s["arrival_s"].min()
    requests = pd.read_csv(d / "requests.csv")
    for g, rows in lines.items():
        assert set(rows[0]) == {"timestamp", "input_length", "output_length", "session_id"}
        mine = requests[requests["gpu"] == g].sort_values("arrival_s")
        assert [x["timestamp"] for x in rows] == pytest.approx(((mine["arrival_s"] - first) * 1000).tolist(), abs=1e-3)
        assert [x["input_length"] for x in rows] == mine["input_tokens"].tolist()
        assert [x["output_length"] for x in rows] == mine["output_tokens"].tolist()
        assert manifest["pools"][g]["requests"] == len(rows)
    assert min(x["timestamp"] for v in lines.values() for x in v) == 0


def test_aiperf_command_has_the_fixed_schedule_flags():
    argv = ev.aiperf_command(url="http://h:8000", model="m", tokenizer="t", trace="pools/A/trace.jsonl",
                             artifact_dir="pools/A/aiperf.partial", seed=3)
    flags = " ".join(argv)
    for part in ("--custom-dataset-type mooncake_trace", "--input-file pools/A/trace.jsonl", "--fixed-schedule ",
                 "--fixed-schedule-start-offset 0", "--extra-inputs ignore_eos:true", "--streaming",
                 "--artifact-dir pools/A/aiperf.partial", "--url http://h:8000", "--random-seed 3"):
        assert part in flags


def test_readme_states_routed_and_plan_shares(tmp_path):
    s = stream(n=100)
    d = write(tmp_path, s, plan_shares={"A10G": 0.7, "A100": 0.3})
    text = (d / "README.md").read_text()
    n = (s["gpu"] == "A10G").sum()
    assert f"| A10G | http://10.0.0.2:8000 | {n} | {n / 100:.1%} | 70.0% | {(n / 100 - 0.7) * 100:+.1f} |" in text
    assert "bash run_eval.sh" in text and "melange-nb eval import ." in text


RECORDER = """import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
Path(os.environ["ARGV_LOG"]).open("a").write(json.dumps(argv) + "\\n")
out = Path(argv[argv.index("--artifact-dir") + 1])
if os.environ.get("FAIL") not in argv[argv.index("--url") + 1]:
    out.mkdir(parents=True)
    (out / "profile_export.jsonl").write_text("")
else:
    sys.exit(3)
"""


def test_run_script_quotes_every_value_and_resumes(tmp_path):
    """run_eval.sh run by bash with a recording program in AIPerf's place: every argument arrives intact,
    nothing in a name runs, a failed pool is said and retried on the next run, finished ones are skipped."""
    gpus = (f"A10G {HOSTILE}", "A100'; touch pwned3; '")
    s = stream(gpus=gpus, n=30)
    url = "http://10.0.0.1:8000/v1?x=$(touch${IFS}pwned4)&y=`touch${IFS}pwned5`;touch${IFS}pwned6"
    d = write(tmp_path, s, endpoints={gpus[0]: url, gpus[1]: "http://10.0.0.2:8000"},
              model=f"model {HOSTILE}", tokenizer="tok'\"en", aiperf_args=["--workers-max", "1; touch pwned5"])
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    program = tmp_path / "aiperf"
    program.write_text(f"#!/bin/sh\nexec {sys.executable} {recorder} \"$@\"\n")
    program.chmod(0o755)
    log = tmp_path / "argv.jsonl"
    env = {**os.environ, "AIPERF": str(program), "ARGV_LOG": str(log), "FAIL": "10.0.0.2"}
    first = subprocess.run(["bash", str(d / "run_eval.sh")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 1
    manifest = json.loads((d / "eval.json").read_text())
    pools = manifest["pools"]
    assert f"{pools[gpus[1]]['folder']}: AIPerf failed (exit 3)" in first.stderr
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    expected = {g: argv[1:] for g, argv in ev.pool_commands(manifest).items()}
    assert sorted(map(json.dumps, calls)) == sorted(map(json.dumps, expected.values()))
    assert expected[gpus[0]][expected[gpus[0]].index("--model") + 1] == f"model {HOSTILE}"
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))
    assert (d / pools[gpus[0]]["folder"] / "aiperf" / "profile_export.jsonl").is_file()
    # resume: the finished pool is skipped, the failed one runs again
    env["FAIL"] = "no-such-host"
    second = subprocess.run(["bash", str(d / "run_eval.sh")], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "finished before, skipped" in second.stdout and "every pool done" in second.stdout
    assert len(log.read_text().splitlines()) == 3


@pytest.mark.parametrize("endpoints, match", [
    ({"A10G": "http://a:1", "A100": "http://b:1", "H100": "http://c:1"}, r"--endpoint: names GPU type 'H100', which the plan does not use"),
    ({"A10G": "http://a:1"}, r"--endpoint: no URL for GPU type 'A100'"),
    ({"A10G": "http://a:1", "A100": "10.0.0.1:8000"}, r"--endpoint: 'A100': '10.0.0.1:8000' is not an http\(s\) base URL"),
    ({"A10G": "http://a:1", "A100": "http://b:1/\nx"}, r"is not an http\(s\) base URL"),
])
def test_bad_endpoints_write_nothing(tmp_path, endpoints, match):
    with pytest.raises(InputError, match=match):
        write(tmp_path, endpoints=endpoints)
    assert not list(tmp_path.iterdir())


def test_an_eval_folder_is_written_once(tmp_path):
    d = write(tmp_path)
    before = sorted(p.name for p in d.rglob("*"))
    with pytest.raises(InputError, match=r"-o: .* is not empty"):
        write(tmp_path)
    assert sorted(p.name for p in d.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ev"]          # no temporary folder left


# ---------------------------------------------------------------- reading side
# Records in AIPerf 0.13's profile_export.jsonl form (MetricRecordInfo: metadata, metrics as {value, unit},
# error as ErrorDetails), as seen in its real output; the round trip test reads real ones.

def record(rid, sent_ms, *, ttft=30.0, itl=20.0, osl=10, error=None):
    meta = {"session_num": 0, "x_request_id": "x", "x_correlation_id": f"fixed-schedule-{rid}", "conversation_id": rid,
            "turn_index": 0, "credit_issued_ns": int(sent_ms * 1e6), "request_start_ns": int(sent_ms * 1e6) + 1000,
            "request_end_ns": int(sent_ms * 1e6) + 10**8, "worker_id": "w", "record_processor_id": "r",
            "benchmark_phase": "profiling"}
    if error:
        return {"metadata": meta, "metrics": {"error_isl": {"value": 20, "unit": "tokens"}},
                "error": {"type": error, "message": "Connect call failed", "cause": "x", "cause_chain": [error]}}
    return {"metadata": meta, "metrics": {"time_to_first_token": {"value": ttft, "unit": "ms"},
                                          "inter_token_latency": {"value": itl, "unit": "ms"},
                                          "request_latency": {"value": ttft + itl * (osl - 1), "unit": "ms"},
                                          "output_sequence_length": {"value": osl, "unit": "tokens"}}}


def put_records(d, gpu, docs):
    manifest = json.loads((d / "eval.json").read_text())
    out = d / manifest["pools"][gpu]["folder"] / "aiperf"
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile_export.jsonl").write_text("".join(json.dumps(x) + "\n" for x in docs))
    return out / "profile_export.jsonl"


def pool_rows(d, gpu):
    req = pd.read_csv(d / "requests.csv")
    return req[req["gpu"] == gpu]


def fill(d, gpu, start_ms=5_000.0, **kw):
    return put_records(d, gpu, [record(r.request, start_ms + r.timestamp_ms, osl=r.output_tokens, **kw)
                                for r in pool_rows(d, gpu).itertuples()])


def test_import_counts_errors_and_missing_records_as_misses(tmp_path):
    d = write(tmp_path, stream(n=40))
    fill(d, "A100", itl=20.0)                                    # every A100 request meets TPOT <= 40
    rows = pool_rows(d, "A10G")
    docs = [record(r.request, 9_000 + r.timestamp_ms, itl=35.0 if k % 2 else 45.0, osl=r.output_tokens)
            for k, r in enumerate(rows.itertuples())]
    docs[0] = record(rows["request"].iloc[0], 9_000, error="ClientConnectorError")
    put_records(d, "A10G", docs[:-1])                            # the last request has no record
    res = ev.import_eval(d)
    m = res.measured_summary
    n = len(rows)
    assert (m.at["A10G", "errors"], m.at["A10G", "missing"], m.at["A10G", "requests"]) == (1, 1, n)
    met = sum(1 for k in range(1, n - 1) if k % 2)
    assert m.at["A10G", "attainment"] == pytest.approx(met / n)
    assert m.at["A100", "attainment"] == 1.0
    assert m.at["all", "attainment"] == pytest.approx((met + len(pool_rows(d, "A100"))) / 40)
    assert "2 of 40 requests failed or have no record (1 errors, 1 missing), counted as misses" in res.headline
    ev.write_import(res)
    measured = pd.read_csv(d / "measured.csv")
    assert len(measured) == 40 and set(measured["status"]) == {"ok", "error", "missing"}


def test_percentiles_over_completed_requests():
    frame = pd.DataFrame({"gpu": ["A"] * 5, "status": ["ok"] * 4 + ["error"], "output_tokens": [10] * 5,
                          "ttft_ms": [10.0, 20.0, 30.0, 40.0, np.nan], "tpot_ms": [1.0, 2.0, 3.0, 50.0, np.nan],
                          "e2e_ms": [100.0, 200.0, 300.0, 400.0, np.nan]})
    s = ev.summarize(frame, "tpot_ms=40")
    assert s.at["A", "attainment"] == pytest.approx(3 / 5)
    assert s.at["A", "p50_ttft_ms"] == pytest.approx(25.0)
    assert s.at["A", "p99_e2e_ms"] == pytest.approx(np.percentile([100, 200, 300, 400], 99))


def test_one_token_replies_meet_a_tpot_condition_but_not_a_ttft_they_miss():
    frame = pd.DataFrame({"status": ["ok", "ok"], "output_tokens": [1, 1], "ttft_ms": [10.0, 900.0],
                          "tpot_ms": [np.nan, np.nan], "e2e_ms": [10.0, 900.0]})
    assert ev.slo_met(frame, "tpot_ms=40,ttft_ms=500").tolist() == [True, False]


def test_records_of_another_run_are_refused_naming_the_file(tmp_path):
    d = write(tmp_path, stream(n=40))
    fill(d, "A100")
    rows = pool_rows(d, "A10G")
    path = fill(d, "A10G")
    good = path.read_text()
    # more records than the trace has requests
    path.write_text(good + good.splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"records .*A10G/aiperf/profile_export\.jsonl: has \d+ records for a trace of"):
        ev.import_eval(d)
    # a request id the trace does not have
    put_records(d, "A10G", [record("r999999", 1000.0)])
    with pytest.raises(InputError, match=r"not in this pool's trace \(e\.g\. 'r999999'\): records from another run"):
        ev.import_eval(d)
    # the other pool's records
    other = (d / json.loads((d / "eval.json").read_text())["pools"]["A100"]["folder"] / "aiperf" / "profile_export.jsonl")
    path.write_text(other.read_text())
    with pytest.raises(InputError, match="records from another run"):
        ev.import_eval(d)
    # the same ids on another schedule (the stream's order reversed)
    put_records(d, "A10G", [record(r.request, 5_000 + (rows["timestamp_ms"].max() - r.timestamp_ms) * 3)
                            for r in rows.itertuples()])
    with pytest.raises(InputError, match=r"sent more than 1 s off the trace's timestamps"):
        ev.import_eval(d)
    assert not (d / "report.html").exists() and not (d / "measured.csv").exists()


def test_a_pool_without_records_and_records_of_another_tool(tmp_path):
    d = write(tmp_path, stream(n=20))
    fill(d, "A100")
    with pytest.raises(InputError, match=r"pool 'A10G' .*A10G/aiperf/profile_export\.jsonl: not found: this pool has no records"):
        ev.import_eval(d)
    path = put_records(d, "A10G", [])
    with pytest.raises(InputError, match=r"profile_export\.jsonl: has no records"):
        ev.import_eval(d)
    path.write_text(json.dumps({"date": "20261124-101500", "backend": "vllm", "completed": 100, "mean_ttft_ms": 80}) + "\n")
    with pytest.raises(InputError, match=r"profile_export\.jsonl: line 1 has no metadata.*\(records of another tool\?\)"):
        ev.import_eval(d)
    path.write_text("request,ttft\n1,2\n")
    with pytest.raises(InputError, match=r"line 1 is not JSON"):
        ev.import_eval(d)
    assert not (d / "report.html").exists()


def test_report_escapes_names_and_shows_the_answer_first(tmp_path):
    gpus = (f"A10G {HOSTILE}", "A100")
    d = write(tmp_path, stream(gpus=gpus, n=30), model=f"m {HOSTILE}", tokenizer=str(tmp_path / "tok"))
    for g in gpus:
        fill(d, g)
    res = ev.import_eval(d)
    ev.write_import(res)
    html = (d / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.index('class="mnb-headline">Measured: 100.0% of requests met TPOT ≤ 40 ms') \
        < html.index("<h2>")
    assert not page_problems(html)


# ---------------------------------------------------------------- the command line (parse and call)

SEED = ["--gpus", "params/gpus/llama2-7b-seed.yaml", "--workload", "params/workloads/arena-seed.csv", "--rate", "4",
        "--duration", "20", "--slo", "tpot_ms=40", "--model", "meta-llama/Llama-2-7b-chat-hf"]
URLS = ["--endpoint", "A10G=http://10.0.0.5:8000", "--endpoint", "A100=http://10.0.0.6:8000"]


def cli(capsys, argv):
    from melange_nb.cli import main

    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_eval_plan_writes_the_folder_without_a_latency_model(tmp_path, capsys):
    code, out, err = cli(capsys, ["eval", "plan", *SEED, "--counts", "A10G=1,A100=1", *URLS, "-o", str(tmp_path / "ev")])
    assert code == 0, err
    assert "in 2 pools: A10G" in out and "No simulation: a GPU type of the plan has no latency model" in out
    manifest = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert manifest["slo_text"] == "TPOT ≤ 40 ms" and not (tmp_path / "ev" / "simulated.csv").exists()
    # import without a simulation: measured only, said so
    for g in manifest["pools"]:
        fill(tmp_path / "ev", g)
    code, out, err = cli(capsys, ["eval", "import", str(tmp_path / "ev"), "--format", "text"])
    assert code == 0, err
    assert out.startswith("Measured: 100.0% of requests met TPOT ≤ 40 ms;")
    assert "No simulation to compare: a GPU type of the plan has no latency model." in \
        (tmp_path / "ev" / "report.html").read_text()


@pytest.mark.parametrize("extra, match", [
    (["--counts", "A10G=1", *URLS], r"--endpoint: names GPU type 'A100', which the plan does not use"),
    (["--counts", "A10G=1,A100=1", "--endpoint", "A10G=http://x:1"], r"--endpoint: no URL for GPU type 'A100'"),
    (["--counts", "A10G=1,A100=1", "--endpoint", "A10G"], r"--endpoint: expects GPU=URL"),
    (["--counts", "A10G=1,A100=1", *URLS, "--aiperf-args", "'unclosed"], r"--aiperf-args: cannot be split"),
    (["--plan", "NOROUTES", *URLS], r"plan: .* has no routing shares"),
    (["--plan", "NOROUTING", *URLS], r"plan norouting\.json: has no `routing`"),
])
def test_cli_eval_plan_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, extra, match):
    (tmp_path / "noroutes.json").write_text(json.dumps({"solver": "exact", "routing": {
        "gpus": {"A10G": {"count": 1}, "A100": {"count": 1}}, "routes": []}}))
    (tmp_path / "norouting.json").write_text(json.dumps({"A10G": 1, "A100": 1, "cost": 4.68}))
    extra = [str(tmp_path / f"{x.lower()}.json") if x in ("NOROUTES", "NOROUTING") else x for x in extra]
    code, out, err = cli(capsys, ["eval", "plan", *SEED, *extra, "-o", str(tmp_path / "ev")])
    assert code == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert not (tmp_path / "ev").exists() and not list(tmp_path.glob(".ev*"))


def test_cli_eval_import_bad_input_names_the_file(tmp_path, capsys):
    d = write(tmp_path, stream(n=20))
    fill(d, "A100")
    code, out, err = cli(capsys, ["eval", "import", str(d)])
    assert code == 2 and err.count("\n") == 1 and "A10G/aiperf/profile_export.jsonl: not found" in err
    put_records(d, "A10G", [{"date": "x", "completed": 3}])
    code, out, err = cli(capsys, ["eval", "import", str(d)])
    assert code == 2 and "records of another tool" in err and "A10G/aiperf/profile_export.jsonl" in err
    code, out, err = cli(capsys, ["eval", "import", str(tmp_path / "nothing")])
    assert code == 2 and "not found; write one with `melange-nb eval plan" in err
    assert not (d / "report.html").exists()
