"""Plans per time window: clock-aligned windows, hand-computed mixes and totals, smoothing, bad input."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from melange_nb.config import GPUS_DIR
from melange_nb.errors import InputError
from melange_nb.plan import (cut_windows, parse_smoothing, parse_window, plan_trace, read_timed_trace,
                             smooth_counts)
from melange_nb.profiles import load_gpus
from melange_nb.solver import Constraints
from melange_nb.workload import histogram

SEED = GPUS_DIR / "llama2-7b-seed.yaml"
SEED_EDGES = [0, 25, 100, 250, 500, 1000, 2000]

# Two GPU types, two input buckets x one output bucket that matters:
#   S ($1/h): 10 req/s of small requests (input 0-100), 1 req/s of large ones (input 100-1000);
#   L ($3/h): 20 req/s small, 6 req/s large.
PROFILE = """model: toy
source: hand-made for tests
input_edges: [0, 100, 1000]
output_edges: [0, 100, 1000]
gpus:
  S: {cost: 1.0, tputs: [[10, 10], [1, 1]]}
  L: {cost: 3.0, tputs: [[20, 20], [6, 6]]}
"""


def _trace(tmp_path, rows, name="trace.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["TIMESTAMP", "ContextTokens", "GeneratedTokens"]).to_csv(path, index=False)
    return path


def _hand_case(tmp_path, extra=()):
    """Minute 0: 10 small req/s; minute 1: nothing; minute 2: 6 large req/s (starts on the clock)."""
    t0 = pd.Timestamp("2024-01-01 10:00:00")
    rows = [(t0 + pd.Timedelta(seconds=k / 10), 50, 50) for k in range(600)]
    rows += [(t0 + pd.Timedelta(seconds=120 + k / 6), 500, 50) for k in range(360)]
    rows += list(extra)
    gpus_path = tmp_path / "toy.yaml"
    gpus_path.write_text(PROFILE)
    return _trace(tmp_path, rows), load_gpus(gpus_path), gpus_path


@pytest.mark.parametrize("solver", ["exact", "melange"])
def test_hand_computed_plan_and_totals(tmp_path, solver):
    trace, gpus, _ = _hand_case(tmp_path, extra=[(pd.Timestamp("2024-01-01 10:00:30"), 5000, 50)])
    plan = plan_trace(trace, gpus, window="1min", solver=solver)
    t = plan.table
    assert list(t["start"].dt.strftime("%H:%M")) == ["10:00", "10:01", "10:02"]
    assert list(t["requests"]) == [601, 0, 360]
    assert t["rate"].tolist() == pytest.approx([601 / 60, 0, 6])
    assert t["planned_rate"].tolist() == pytest.approx([10, 0, 6])      # the 5000-token request is dropped
    assert list(t["overflow"]) == [1, 0, 0]
    assert list(t["partial"]) == [False, False, True]                 # starts on the clock; the end is unknown
    assert list(t["S"]) == [1, 0, 0] and list(t["L"]) == [0, 0, 1]    # small -> S, empty -> none, large -> L
    assert list(t["status"]) == ["optimal", "empty", "optimal"]
    assert t["cost_per_hour"].tolist() == [1.0, 0.0, 3.0]
    tot = plan.totals
    assert tot["autoscaled"]["cost"] == pytest.approx(4 / 60, abs=1e-6)
    # One L serves both busy minutes (load 0.5 small, 1.0 large): $3/h, below the per-type maxima (1 S + 1 L = $4/h).
    assert tot["static_peak"]["counts"] == {"S": 0, "L": 1} and tot["static_peak"]["cost_per_hour"] == 3.0
    assert tot["static_peak"]["cost"] == pytest.approx(3 * 3 / 60, abs=1e-6)
    # The busiest minute (10 req/s) is solved with 1 S, which cannot serve the large minute.
    peak = tot["peak_window"]
    assert peak["counts"] == {"S": 1, "L": 0} and not peak["covers_all_windows"] and peak["windows_not_covered"] == 1
    assert tot["single"]["S"]["autoscaled_cost"] == pytest.approx((1 + 0 + 6) / 60, abs=1e-6)   # 6 large req/s need 6 S
    assert tot["single"]["S"]["static_counts"] == {"S": 6, "L": 0}
    assert tot["single"]["L"]["autoscaled_cost"] == pytest.approx((3 + 0 + 3) / 60, abs=1e-6)
    savings = {r["against"]: r["savings_pct"] for r in tot["savings"]}
    assert savings["static peak (mix)"] == pytest.approx((9 - 4) / 9 * 100, abs=1e-3)
    assert tot["headline"] == ("Autoscaling 1-min windows costs $0.07 for 0.05 hours (3 windows), "
                               "55.6% below static peak provisioning ($0.15)")


def test_empty_windows_keep_min_instances_and_min_total(tmp_path):
    trace, gpus, _ = _hand_case(tmp_path)
    plan = plan_trace(trace, gpus, window="1min", constraints=Constraints(min_instances={"S": 1}))
    assert list(plan.table["S"]) == [1, 1, 1] and list(plan.table["L"]) == [0, 0, 1]
    assert plan.table["cost_per_hour"].tolist() == [1.0, 1.0, 4.0]
    plan = plan_trace(trace, gpus, window="1min", constraints=Constraints(min_total=2))
    assert plan.table.loc[1, ["S", "L"]].tolist() == [2, 0]            # the cheapest type fills min_total


def test_windows_match_pandas_resample_on_the_azure_trace(shared_data):
    requests, report = read_timed_trace(shared_data / "azure_llm_inference_conv_2023.csv")
    windows = cut_windows(requests, "5min", load_gpus(SEED))
    expected = requests.set_index("timestamp").resample("5min").size()
    assert list(windows.table["start"]) == list(expected.index)
    assert list(windows.table["requests"]) == list(expected)
    assert windows.table["rate"].tolist() == pytest.approx((expected / 300).tolist())
    assert windows.table["partial"].tolist() == [True] + [False] * (len(expected) - 2) + [True]
    over = int(((requests["input_tokens"] >= 2000) | (requests["output_tokens"] >= 2000)).sum())
    assert windows.overflow["dropped"] == over == int(windows.table["overflow"].sum()) and over > 0
    assert report["out_of_order_rows"] == 0
    stamps = requests["timestamp"]
    for w in (0, 5, len(expected) - 1):                  # each window's histogram is workload.histogram's
        start = windows.table.at[w, "start"]
        part = requests[(stamps >= start) & (stamps < start + pd.Timedelta("5min"))]
        expected_hist, rep = histogram(part, input_edges=SEED_EDGES, overflow="drop")
        pd.testing.assert_frame_equal(windows.workloads[w], expected_hist)
        assert windows.table.at[w, "overflow"] == rep["dropped"]


def test_azure_totals_are_consistent(shared_data):
    plan = plan_trace(shared_data / "azure_llm_inference_conv_2023.csv", load_gpus(SEED), window="5min",
                      smoothing="calm:2")
    t, tot = plan.table, plan.totals
    assert plan.ok and (t["status"] == "optimal").all()
    hours = 5 / 60
    assert tot["autoscaled"]["cost"] == pytest.approx(t["cost_per_hour"].sum() * hours, abs=1e-6)
    static = tot["static_peak"]
    # The static fleet serves every window, so it costs at least the dearest window's own mix per hour ...
    assert static["cost_per_hour"] >= t["cost_per_hour"].max() - 1e-9
    # ... and at most the per-type maxima, which serve every window with its own routing.
    assert static["cost_per_hour"] <= sum(load_gpus(SEED)[g].cost * t[g].max() for g in ("A10G", "A100")) + 1e-9
    assert tot["autoscaled"]["cost"] <= static["cost"]
    for g, s in tot["single"].items():
        assert s["autoscaled_cost"] <= s["static_cost"] + 1e-9
        assert tot["autoscaled"]["cost"] <= s["autoscaled_cost"] + 1e-9   # the mix is optimal per window
    smoothed = tot["smoothed"]
    assert smoothed["cost"] >= tot["autoscaled"]["cost"] - 1e-9 and smoothed["mix_changes"] <= tot["mix_changes"]
    for g in ("A10G", "A100"):
        assert (t[f"smoothed_{g}"] >= t[g]).all()


def test_two_workers_plan_exactly_like_one(shared_data):
    trace, gpus = shared_data / "azure_llm_inference_conv_2023.csv", load_gpus(SEED)
    one = plan_trace(trace, gpus, window="1min")
    two = plan_trace(trace, gpus, window="1min", workers=2)
    assert len(one.table) >= 50                                        # enough windows to use the processes
    pd.testing.assert_frame_equal(one.table, two.table)
    assert one.totals["static_peak"] == two.totals["static_peak"]


def test_single_type_counts_agree_with_solve_single(shared_data):
    from melange_nb.plan import single_type_counts
    from melange_nb.solver import solve_single

    gpus = load_gpus(SEED)
    requests, _ = read_timed_trace(shared_data / "azure_llm_inference_conv_2023.csv")
    windows = cut_windows(requests, "10min", gpus)
    for constraints in (Constraints(), Constraints(utilization_cap=0.7, min_instances={"A100": 1}, max_instances={"A10G": 12})):
        singles = single_type_counts(windows, gpus, constraints)
        for w, workload in enumerate(windows.workloads):
            for g in gpus:
                one = solve_single(workload, gpus, windows.table.at[w, "planned_rate"], g, constraints=constraints)
                assert singles[g][w] == (one.counts if one.has_allocation else False), (w, g, constraints)
    assert any(singles["A10G"][w] is False for w in range(len(windows.workloads)))   # the A10G quota binds somewhere


def test_smoothing_rules_by_hand():
    counts = pd.DataFrame({"A": [1, 3, 1, 1, 2, 1], "B": [0, 0, 2, 0, 0, 0]})
    calm = smooth_counts(counts, ("calm", 1))
    assert calm["A"].tolist() == [1, 3, 3, 1, 2, 2] and calm["B"].tolist() == [0, 0, 2, 2, 0, 0]
    hold = smooth_counts(counts, ("hold", 2))
    assert hold["A"].tolist() == [3, 3, 1, 1, 2, 2] and hold["B"].tolist() == [0, 0, 2, 2, 0, 0]
    assert parse_smoothing(None) is None and parse_smoothing("hold:3") == ("hold", 3)
    with pytest.raises(InputError, match="smoothing: 'hold'"):
        parse_smoothing("hold")


def test_out_of_order_rows_are_sorted_and_reported(tmp_path):
    path = _trace(tmp_path, [("2024-01-01 10:00:00", 1, 1), ("2024-01-01 10:00:05", 2, 2),
                             ("2024-01-01 10:00:03", 3, 3), ("2024-01-01 10:00:09", 4, 4)])
    requests, report = read_timed_trace(path)
    assert requests["input_tokens"].tolist() == [1, 3, 2, 4]
    assert report["out_of_order_rows"] == 1 and report["first_out_of_order_row"] == 4
    assert "sorted" in report["note"]


def test_numeric_and_other_timestamp_formats(tmp_path):
    seconds = _trace(tmp_path, [(0.5, 1, 1), (61.0, 2, 2), (125.25, 3, 3)], name="s.csv")
    requests, _ = read_timed_trace(seconds)
    assert requests["timestamp"].tolist() == [pd.Timestamp(0.5, unit="s"), pd.Timestamp(61, unit="s"),
                                              pd.Timestamp(125.25, unit="s")]
    us = _trace(tmp_path, [("11/16/2023 18:15:46", 1, 1), ("11/16/2023 18:20:00", 2, 2)], name="us.csv")
    assert read_timed_trace(us)[0]["timestamp"].tolist() == [pd.Timestamp("2023-11-16 18:15:46"),
                                                            pd.Timestamp("2023-11-16 18:20:00")]


def test_window_parsing():
    assert parse_window("5min") == pd.Timedelta(minutes=5) and parse_window("1h") == pd.Timedelta(hours=1)
    for bad in ("5", "five minutes", "0s", "5 parsecs"):
        with pytest.raises(InputError, match="window"):
            parse_window(bad)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "melange_nb.cli", "plan", *map(str, args)], capture_output=True,
                          text=True)


@pytest.mark.parametrize("case, rows, args, message", [
    ("no timestamp column", None, ["--timestamp-column", "time"], "trace.csv: time: no such column"),
    ("bad timestamp", [("2024-01-01 10:00:00", 1, 1), ("yesterday", 1, 1)], [],
     "trace.csv: TIMESTAMP: row 3 holds 'yesterday', not a timestamp"),
    ("bad window", None, ["--window", "5 fortnights"], "window: '5 fortnights' is not a length"),
    ("long window", None, ["--window", "1h"], "window: 1h is longer than the trace (2024-01-01 10:00:00 to"),
    ("bad tokens", [("2024-01-01 10:00:00", -1, 1), ("2024-01-01 10:05:00", 1, 1)], [],
     "trace.csv: ContextTokens: row 2 holds -1"),
    ("bad smoothing", None, ["--smooth", "calm"], "smoothing: 'calm'"),
    ("bad workers", None, ["-j", "0"], "workers: must be a whole number >= 1 and <= 64, got 0"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case, rows, args, message):
    trace, _, gpus_path = _hand_case(tmp_path)
    if rows is not None:
        trace = _trace(tmp_path, rows)
    out_dir = tmp_path / "out"
    res = cli("--trace", trace, "--gpus", gpus_path, "--window", "1min", *args, "-o", out_dir)
    assert res.returncode == 2, (case, res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert not out_dir.exists()


def test_a_window_no_mix_can_serve_is_recorded_and_exits_1(tmp_path):
    trace, _, gpus_path = _hand_case(tmp_path)
    out_dir = tmp_path / "out"
    res = cli("--trace", trace, "--gpus", gpus_path, "--window", "1min", "--max-instances", "S=3,L=0", "-o", out_dir)
    assert res.returncode == 1, res.stderr
    assert "window 2024-01-01 10:02:00: infeasible" in res.stdout
    table = pd.read_csv(out_dir / "plan.csv")
    assert table["status"].tolist() == ["optimal", "empty", "infeasible"]
    assert table.loc[0, "S"] == 1 and pd.isna(table.loc[2, "S"])
    doc = json.loads((out_dir / "plan.json").read_text())
    bad = doc["totals"]["windows_without_plan"]
    assert len(bad) == 1 and "max_instances" in bad[0]["reason"]
    assert doc["totals"]["static_peak"]["counts"] == {"S": 1, "L": 0}   # over the windows that have a plan


def test_cli_plan_writes_the_files(tmp_path):
    trace, _, gpus_path = _hand_case(tmp_path)
    out_dir = tmp_path / "out"
    res = cli("--trace", trace, "--gpus", gpus_path, "--window", "1min", "--smooth", "hold:3", "-o", out_dir)
    assert res.returncode == 0, res.stderr
    assert "55.6% below static peak provisioning" in res.stdout
    assert sorted(p.name for p in out_dir.iterdir()) == ["deploy.json", "plan.csv", "plan.json",
                                                         "skyserve-l.yaml", "skyserve-s.yaml"]
    table = pd.read_csv(out_dir / "plan.csv")
    assert {"start", "end", "requests", "rate", "planned_rate", "overflow", "partial", "S", "L",
            "cost_per_hour", "status", "smoothed_S", "smoothed_L", "smoothed_cost_per_hour"} <= set(table.columns)
    assert table["smoothed_cost_per_hour"].tolist() == [4.0, 4.0, 4.0]
    doc = json.loads((out_dir / "plan.json").read_text())
    assert doc["totals"]["smoothed"]["cost"] == pytest.approx(12 / 60, abs=1e-6)
    assert doc["profiles"]["file"] == "toy.yaml" and doc["solver"] == "exact"
    assert np.isclose(doc["totals"]["hours"], 3 / 60)


def test_a_folder_another_plan_is_writing_is_refused(tmp_path):
    from melange_nb.files import folder_lock, lock_path

    trace, _, gpus_path = _hand_case(tmp_path)
    out_dir = tmp_path / "out"
    with folder_lock(out_dir, by="plan"):             # another plan holds the folder (this process)
        res = cli("--trace", trace, "--gpus", gpus_path, "--window", "1min", "-o", out_dir)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "is in use by another plan (" in res.stderr and "choose another -o" in res.stderr   # (pid N) with filelock 4
    assert not out_dir.exists() and lock_path(out_dir).parent == tmp_path and lock_path(out_dir).read_text() == ""


@pytest.mark.slow
def test_plan_report_notebook_renders_the_answer_first(tmp_path):
    trace, _, gpus_path = _hand_case(tmp_path)
    out_dir = tmp_path / "out"
    res = cli("--trace", trace, "--gpus", gpus_path, "--window", "1min", "--report", "-o", out_dir)
    assert res.returncode == 0, res.stderr
    # the files --report adds are the ones the README's table lists for it
    import re

    from melange_nb.config import PROJECT_ROOT
    row = next(line for line in (PROJECT_ROOT / "README.md").read_text().splitlines() if "with `--report`" in line)
    listed = re.findall(r"`(04_time_varying[^`]*)`", row.split("|")[1])
    assert listed and sorted(listed) == sorted(p.name for p in out_dir.glob("04_time_varying*")), listed
    nb = json.loads((out_dir / "04_time_varying.ipynb").read_text())
    assert nb["metadata"]["papermill"]["parameters"] == {"plan_dir": "."}      # relative: no local folder recorded
    assert str(tmp_path) not in (out_dir / "04_time_varying.ipynb").read_text()
    page = (out_dir / "04_time_varying-shared.html").read_text()
    body = page[page.index("<body"):]
    first = body.index("Autoscaling 1-min windows costs $0.07")
    assert first < body.index("static peak (cheapest fleet serving every window)") < body.index("<img")
    assert "$0.15" in body and "1×L" in body and "misses 1 window" in body
    for leak in (str(tmp_path), "Warning", "<melange_nb", "object at 0x"):
        assert leak not in body


def test_window_lengths_read_in_their_own_unit():
    from melange_nb.plan import window_text

    assert [window_text(pd.Timedelta(x)) for x in ("1s", "30s", "90s", "5min", "1h", "2h")] == \
        ["1-s", "30-s", "1.5-min", "5-min", "1-h", "2-h"]
