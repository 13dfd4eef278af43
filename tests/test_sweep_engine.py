"""The sweep engine: SLO and constraint axes, blends, render choice, up-front checks, the folder lock, Ctrl-C."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.errors import InputError
from melange_nb.sweep import check_inputs, collect_results, load_spec, points_to_render, run_sweep

GOOD = GPUS_DIR / "llama2-7b-seed.yaml"
ARENA = WORKLOADS_DIR / "arena-seed.csv"
CLI = [sys.executable, "-m", "melange_nb.cli"]
needs_aiconfigurator = pytest.mark.skipif(importlib.util.find_spec("aiconfigurator_core") is None,
                                          reason="aiconfigurator-core (profile predict's performance model) "
                                                 "is not installed")


def write_spec(tmp: Path, doc: dict) -> Path:
    path = tmp / "spec.yaml"
    path.write_text(json.dumps(doc))   # JSON is YAML
    return path


def long_csv(tmp: Path) -> Path:
    """Every request in one long bucket (input 1000-2000, output 250-500), on the arena's labels."""
    w = pd.read_csv(ARENA, index_col=0, comment="#") * 0.0
    w.loc["1000-2000", "250-500"] = 1.0
    w.to_csv(tmp / "long.csv")
    return tmp / "long.csv"


@pytest.mark.slow
def test_slo_axis_blend_and_constraint_sets(tmp_path):
    cheap = tmp_path / "tpot120.yaml"
    cheap.write_text(GOOD.read_text().replace("cost: 3.67", "cost: 3.00"))
    spec = load_spec(write_spec(tmp_path, {
        "name": "axes", "rates": [4, 8], "render": "none", "solvers": ["exact"],
        "workloads": {"arena": str(ARENA), "long": str(long_csv(tmp_path)),
                      "mixed": {"blend": {"arena": 0.8, "long": 0.2}}},
        "gpus": {"seed": {40: str(GOOD), 120: str(cheap)}},
        "constraints": {"free": {}, "quota": {"max_instances": {"A100": 1}}}}))
    state = run_sweep(spec, tmp_path / "out", workers=1, log=lambda m: None)
    assert len(state["points"]) == 3 * 2 * 2 * 2 and all(p["status"] == "done" for p in state["points"].values())
    results = collect_results(tmp_path / "out")
    assert len(results) == 24 * 3            # exact, single:A10G, single:A100
    assert set(results["slo"]) == {"mean TPOT <= 40 ms", "mean TPOT <= 120 ms"}
    assert set(results["constraints"]) == {"free", "quota"}
    assert not [p for p in (tmp_path / "out").iterdir() if "__rate" in p.name]   # render none: no point folders

    def cost(workload, slo, constraints, policy, rate=4.0):
        row = results.query("workload == @workload and slo == @slo and constraints == @constraints "
                            "and policy == @policy and rate == @rate")
        assert len(row) == 1
        return row.iloc[0]

    # hand-checked: arena at 4 req/s on the seed profiles, 1 x A10G + 1 x A100 ($4.68/h); 2 x A100 alone
    assert cost("arena", "mean TPOT <= 40 ms", "free", "exact")["cost_per_hour"] == 4.68
    assert cost("arena", "mean TPOT <= 40 ms", "free", "single:A100")["cost_per_hour"] == 7.34
    assert cost("arena", "mean TPOT <= 120 ms", "free", "single:A100")["cost_per_hour"] == 6.00
    # long: 4 req/s in a bucket where A10G does 0.22/s and A100 0.97/s -> 19 x A10G ($19.19) or 5 x A100
    # ($18.35) alone; the mix: 4 x A100 carry 3.88/s, one A10G the other 0.12/s -> $15.69
    assert cost("long", "mean TPOT <= 40 ms", "free", "single:A10G")["n_A10G"] == 19
    assert cost("long", "mean TPOT <= 40 ms", "free", "single:A100")["cost_per_hour"] == pytest.approx(18.35)
    row = cost("long", "mean TPOT <= 40 ms", "free", "exact")
    assert row["mix"] == "1xA10G + 4xA100" and row["cost_per_hour"] == pytest.approx(15.69)
    # at most one A100: it carries 0.97/s, A10Gs the other 3.03/s -> 14 x A10G + 1 x A100 = $17.81
    row = cost("long", "mean TPOT <= 40 ms", "quota", "exact")
    assert row["mix"] == "14xA10G + 1xA100" and row["cost_per_hour"] == pytest.approx(17.81)
    quota = results.query("constraints == 'quota' and status == 'optimal'")
    assert (quota["n_A100"] <= 1).all() and len(quota) > 0
    mixed = pd.read_csv(tmp_path / "out" / "workloads" / "mixed" / "workload.csv", index_col=0)
    expected = pd.read_csv(ARENA, index_col=0, comment="#") * 0.8 + pd.read_csv(tmp_path / "long.csv", index_col=0) * 0.2
    assert (mixed - expected).abs().to_numpy().max() < 1e-12
    index = (tmp_path / "out" / "index.html").read_text()
    assert "Pages for 0 points" in index


def test_points_to_render_picks_first_last_and_changes():
    mixes = ["1xA", "2xA", "3xB", "none", "4xB", "1xA + 4xB", "2xA + 5xB", "3xA + 5xB"]
    counts = [(1, 0), (2, 0), (0, 3), (0, 0), (0, 4), (1, 4), (2, 5), (3, 5)]     # n_A, n_B as results.csv has them
    rows = [{"point": f"p{r}", "workload": "w", "gpu_set": "g", "slo": "s", "constraints": "none", "slice_factor": 1,
             "rate": float(r), "reference": "exact", "policy": policy, "mix": mix, "n_A": a, "n_B": b,
             "status": "infeasible" if mix == "none" else "optimal"}
            for r, mix, (a, b) in zip(range(1, 9), mixes, counts) for policy in ("exact", "single:A")]
    results = pd.DataFrame(rows)
    # first, new types (B), no plan, a plan again, A joins B, last; counts alone changing is no new page
    assert points_to_render(results, "changes") == ["p1", "p3", "p4", "p5", "p6", "p8"]
    assert points_to_render(results, "all") == [f"p{r}" for r in range(1, 9)]
    assert points_to_render(results, "none") == []
    assert points_to_render(results, [2.0, 4.0]) == ["p2", "p4"]


def _bad_cases(tmp: Path):
    half = tmp / "half.csv"
    (pd.read_csv(ARENA, index_col=0, comment="#") * 0.5).to_csv(half)
    base = {"name": "bad", "rates": [1, 2], "workloads": {"arena": str(ARENA)}, "gpus": {"seed": str(GOOD)}}
    return [
        ({**base, "constraints": {"utilization_cap": 1.5}}, "utilization_cap: must be in (0, 1]"),
        ({**base, "gpu_names": ["H200"]}, "unknown GPU name(s) ['H200']"),
        ({**base, "time_limit": 0}, "time_limit: must be a positive number of seconds"),
        ({**base, "constraints": {"max_instance": {"A100": 1}}}, "constraints.max_instance: is not a constraint"),
        ({**base, "workloads": {"half": str(half)}}, "shares sum to 0.5, not 1"),
        ({**base, "workloads": {"gone": str(tmp / "gone.csv")}}, "gone.csv: not found"),
        ({**base, "gpus": {"gone": str(tmp / "gone.yaml")}}, "gone.yaml: not found"),
        ({**base, "name": None}, "name: must be a folder name"),
        ({**base, "name": "../escape"}, "name: must be a folder name"),
        ({**base, "gpus": {"seed": {40: str(GOOD)}}, "render": [3]}, "render: rates ['3'] are not in the sweep's rates"),
        ({**base, "workloads": {"arena": str(ARENA), "mix": {"blend": {"arena": 1, "nope": 1}}}}, "blend.nope: must name another"),
    ]


def test_bad_specs_fail_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from melange_nb import config

    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "project")   # default output folder: under tmp
    for doc, message in _bad_cases(tmp_path):
        out = tmp_path / "out"
        code = main(["sweep", "-p", str(write_spec(tmp_path, doc))] + (["-o", str(out)] if doc.get("name") else []))
        err = capsys.readouterr().err
        assert code == 2 and message in err, (doc, err)
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists() and not (tmp_path / "project").exists() and not (tmp_path / "escape").exists()


def test_bad_quick_form_options(tmp_path, capsys):
    quick = ["sweep", "--workload", str(ARENA), "--gpus", str(GOOD), "--rates", "1,2", "-o", str(tmp_path / "q")]
    for extra, message in ((["--utilization-cap", "1.5"], "utilization_cap: must be in (0, 1]"),
                           (["--gpu", "H200"], "unknown GPU name(s) ['H200']"),
                           (["--time-limit", "0"], "time_limit: must be a positive number"),
                           (["--slice-factor", "0"], "slice_factors: must be whole numbers >= 1"),
                           (["--max-instances", "A100"], "--max-instances: expects NAME=COUNT"),
                           (["--render", "7"], "rates ['7'] are not in the sweep's rates")):
        assert main(quick + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (extra, err)
        assert not (tmp_path / "q").exists()


def _quick(out: Path, rates: str, *extra: str) -> list[str]:
    return [*CLI, "sweep", "--workload", str(ARENA), "--gpus", str(GOOD), "--rates", rates, "-o", str(out),
            "--solver", "exact", *extra]


def _wait_for(predicate, timeout: float, what: str):
    """Poll until `predicate()` is true; fail (not hang) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_two_concurrent_sweeps_into_one_folder(tmp_path):
    out = tmp_path / "shared"
    first = subprocess.Popen(_quick(out, "2,4,8", "--render", "all", "-j", "1"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".shared.lock"                   # beside the folder, not in it
    _wait_for(lambda: lock.is_file() and "pid" in lock.read_text(), 120, "the first sweep's lock")
    second = subprocess.run(_quick(out, "2,4,8", "--render", "none"), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2 and "in use by another sweep" in second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    results = pd.read_csv(out / "results.csv")
    done = {k for k, v in manifest["points"].items() if v["status"] == "done"}
    assert len(done) == 3 and set(results["point"]) == done
    assert all((out / pid / "allocation.json").is_file() for pid in done)
    assert not (out / ".lock").exists() and not list(out.glob("*.lock")) and lock.read_text() == ""
    # once the first has finished, the folder is free again: a re-run resumes it
    again = subprocess.run(_quick(out, "2,4,8", "--render", "all"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "3 already done or failed, solving 0" in again.stdout


def _running_in_group(pgid: int) -> list[int]:
    """PIDs of processes of process group `pgid` that still run (zombies awaiting a reaper excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def _processes_in(folder: Path) -> list[int]:
    """PIDs whose working directory is inside `folder` (kernels run in their point's folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder) in os.readlink(proc / "cwd"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _default_sigint():
    """In the child: SIGINT back to its default. A suite started in the background (`nohup make test &`)
    inherits SIGINT ignored, and Python would then never raise KeyboardInterrupt (DESIGN trap 16)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_stops_workers_records_and_cleans_up(tmp_path):
    out = tmp_path / "sigint"
    proc = subprocess.Popen(_quick(out, ",".join(str(r) for r in range(1, 13)), "--render", "all", "-j", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    _wait_for(lambda: list(out.glob(".*.tmp")), 300, "the first point report to start")
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)          # what Ctrl-C in a terminal does: the whole process group
    stdout, stderr = proc.communicate(timeout=120)
    seconds = time.monotonic() - start
    print(f"stopped {seconds:.1f} s after SIGINT")
    assert proc.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("melange-nb: interrupted:"), stderr
    assert "Traceback" not in stdout + stderr
    _wait_for(lambda: not _running_in_group(proc.pid), 10, "the workers to end")
    _wait_for(lambda: not _processes_in(out), 30, "kernels started by the workers to exit")
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*/.*.tmp"))
    manifest = json.loads((out / "manifest.json").read_text())
    results = pd.read_csv(out / "results.csv")
    done = {k for k, v in manifest["points"].items() if v["status"] == "done"}
    assert len(done) == 12 and set(results["point"]) == done      # every point was solved before rendering began
    rendered = {k for k, v in manifest["points"].items() if v.get("rendered")}
    assert rendered == {p.name for p in out.iterdir() if p.is_dir() and "__rate" in p.name}
    assert len(rendered) < 12
    # a re-run resumes: nothing is solved again, the missing reports are rendered
    again = subprocess.run(_quick(out, ",".join(str(r) for r in range(1, 13)), "--render", "none"),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "12 already done or failed, solving 0" in again.stdout


@needs_aiconfigurator
@pytest.mark.slow
def test_a_failed_point_report_names_no_local_folder(tmp_path):
    """A point whose report fails (its workload's shares sum to 0.7): failed/<point>/ keeps the traceback
    and the partial notebook, with paths from the project root, the package, or the sweep folder."""
    from melange_nb.config import PROJECT_ROOT
    from melange_nb.sweep.engine import render_point

    bad = tmp_path / "w.csv"
    bad.write_text("input_tokens,0-25\n0-25,0.7\n")
    out = tmp_path / "out"
    status = render_point(str(out), "p", {"workload": str(bad), "gpus": str(GOOD), "rate": 4.0}, False)
    assert status["error"].startswith("NotebookError: 02_allocation.ipynb: cell"), status
    failed = out / "failed" / "p"
    assert sorted(p.name for p in failed.iterdir()) == ["02_allocation.ipynb", "traceback.txt"]
    for path in failed.iterdir():
        text = path.read_text()
        assert str(tmp_path) not in text and str(PROJECT_ROOT) not in text and "site-packages" not in text, path
    tb = (failed / "traceback.txt").read_text()
    assert 'File "melange_nb/sweep/engine.py", line' in tb and 'File "papermill/execute.py", line' in tb, tb
    assert "File melange_nb/workload.py:" in tb and "workload file ../w.csv: " in tb, tb
    nb = json.loads((failed / "02_allocation.ipynb").read_text())
    assert nb["metadata"]["papermill"]["input_path"] == "notebooks/02_allocation.ipynb"
    shown = "".join(line for cell in nb["cells"] for o in cell.get("outputs", []) for line in o.get("traceback", []))
    assert "melange_nb/workload.py:" in shown and "workload file ../w.csv: " in shown


def test_paper_spec_loads_and_its_long_workload_must_exist(tmp_path, capsys, monkeypatch):
    """params/sweeps/paper.yaml is valid; where ../shared/data is absent it stops in one line, writing nothing."""
    from melange_nb.config import PROJECT_ROOT

    spec = load_spec(PROJECT_ROOT / "params" / "sweeps" / "paper.yaml")
    assert set(spec["workloads"]) == {"short", "long", "mixed"} and spec["published"]["savings_pct"]["short"] == [9, 77]
    assert list(spec["gpus"]["llama31-8b-predicted"]) == ["40", "120"]
    doc = (PROJECT_ROOT / "params" / "sweeps" / "paper.yaml").read_text()
    (tmp_path / "paper.yaml").write_text(doc.replace("../shared/data/", str(tmp_path / "absent") + "/"))
    out = tmp_path / "out"
    assert main(["sweep", "-p", str(tmp_path / "paper.yaml"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "workloads.long.trace" in err and "not found" in err and err.count("\n") == 1 and not out.exists()


@needs_aiconfigurator
def test_paper_spec_pads_the_short_workload_to_the_predicted_buckets(shared_data):
    from melange_nb.config import PROJECT_ROOT

    if not (shared_data / "vidur_arxiv_summarization_llama2.csv").is_file():
        pytest.skip("the paper spec's long-document trace is not in the shared data folder")
    checked = check_inputs(load_spec(PROJECT_ROOT / "params" / "sweeps" / "paper.yaml"))
    short = checked["workloads"]["short"]    # padded to the predicted profiles' buckets
    assert list(short.index)[-3:] == ["2000-4000", "4000-8000", "8000-16000"]
    assert short.loc["2000-4000":].to_numpy().sum() == 0 and abs(short.to_numpy().sum() - 1) < 1e-6


def test_savings_vs_published_ranges():
    from melange_nb.sweep import savings_vs_published

    rows = [{"workload": "short", "slo": "s", "gpu_set": "g", "policy": p, "savings_pct": v, "rate": r}
            for r, (a, b) in enumerate([(0.0, None), (25.0, None), (50.0, None)])
            for p, v in (("single:A", a), ("single:B", b))]
    table = savings_vs_published(pd.DataFrame(rows), {"source": "x", "savings_pct": {"short": [9, 77]}})
    a = table[table["against"] == "A only"].iloc[0]
    assert a["measured %"] == "0.0 to 50.0" and a["published %"] == "9 to 77" and a["rates with both plans"] == 3
    assert table[table["against"] == "B only"].iloc[0]["measured %"].startswith("no plan")


@pytest.mark.slow
@needs_aiconfigurator
def test_predicted_gpu_set_in_a_spec_is_predicted_once_and_solved(tmp_path, monkeypatch):
    # A `predict:` GPU set runs aiconfigurator-core (real) once, is saved as a profile YAML in the cache,
    # and is solved like any profile file; its SLO comes from the key (mean TPOT ms).
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    edges = [0, 100, 1000]
    w = pd.DataFrame([[0.5, 0.2], [0.2, 0.1]], index=pd.Index(["0-100", "100-1000"], name="input_tokens"),
                     columns=pd.Index(["0-100", "100-1000"], name="output_tokens"))
    w.to_csv(tmp_path / "w.csv")
    request = {"model": "meta-llama/Meta-Llama-3.1-8B", "gpus": ["h100_sxm=H100", "l40s=L40S"],
               "edges": edges, "output_edges": edges}
    doc = {"name": "pred", "rates": [2, 20], "render": "none", "solvers": ["exact"],
           "workloads": {"w": str(tmp_path / "w.csv")}, "gpus": {"llama": {40: {"predict": request}}}}
    spec = load_spec(write_spec(tmp_path, doc))
    cached = Path(spec["gpus"]["llama"]["40"])
    assert cached.parent == tmp_path / "outputs" / "cache" / "profiles" and not cached.exists()  # checked, not run
    state = run_sweep(spec, tmp_path / "out", workers=1, log=lambda m: None)   # predicts, as a step of the run
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    again = load_spec(write_spec(tmp_path, doc))
    assert again["gpus"]["llama"]["40"] == str(cached)
    check_inputs(again)
    assert cached.stat().st_mtime_ns == stamp                       # predicted once
    assert all(p["status"] == "done" for p in state["points"].values())
    results = collect_results(tmp_path / "out")
    assert set(results["slo"]) == {"mean TPOT <= 40 ms"}
    exact = results.query("policy == 'exact'").set_index("rate")["cost_per_hour"]
    singles = results.query("policy != 'exact'").groupby("rate")["cost_per_hour"].min()
    assert (exact > 0).all() and (exact <= singles + 1e-9).all() and exact[20.0] >= exact[2.0]


@pytest.mark.parametrize("predict, message", [
    ({"model": "meta-llama/Meta-Llama-3.1-8B"}, "at least model and gpus"),
    ({"model": "meta-llama/Meta-Llama-3.1-8B", "gpus": ["h100_sxm"], "colour": 1}, "not a profile predict option"),
    pytest.param({"model": "meta-llama/Meta-Llama-3.1-8B", "gpus": ["nope_gpu"]}, "unknown system",
                 marks=needs_aiconfigurator),
])
def test_bad_predict_request_in_a_spec(tmp_path, monkeypatch, predict, message):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    doc = {"name": "pred", "rates": [2], "workloads": {"a": str(ARENA)}, "gpus": {"llama": {40: {"predict": predict}}}}
    with pytest.raises(InputError, match=message):
        load_spec(write_spec(tmp_path, doc))
    assert not (tmp_path / "outputs" / "cache" / "profiles").exists() or not any((tmp_path / "outputs" / "cache" / "profiles").glob("sweep-*"))
