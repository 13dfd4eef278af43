"""Sweeps with `simulate:`: attainment columns from real simulations in the worker pool, resume, bad keys."""
import json

import pandas as pd
import pytest
from test_attainment import ARENA, SEED_GPUS, write_latency_profiles

from melange_nb.cli import main
from melange_nb.errors import InputError
from melange_nb.sweep import collect_results, load_spec, run_sweep


def spec_doc(tmp_path, **extra) -> dict:
    gpus = write_latency_profiles(tmp_path / "seed-latency.yaml")
    return {"name": "sim", "rates": [2, 4, 6], "render": "none", "solvers": ["exact"],
            "workloads": {"arena": ARENA}, "gpus": {"seed": str(gpus)}, **extra}


def write(tmp_path, doc) -> str:
    (tmp_path / "spec.yaml").write_text(json.dumps(doc))
    return str(tmp_path / "spec.yaml")


@pytest.mark.slow
def test_simulated_sweep_in_the_pool_has_attainment_columns_and_resumes(tmp_path):
    doc = spec_doc(tmp_path, simulate={"duration_s": 60}, render=[4])
    out = tmp_path / "out"
    state = run_sweep(load_spec(write(tmp_path, doc)), out, workers=2, log=lambda m: None)
    assert all(p["status"] == "done" for p in state["points"].values())
    results = collect_results(out)
    ref = results[results["policy"] == results["reference"]].set_index("rate")
    assert list(ref.index) == [2.0, 4.0, 6.0] and (ref["sim_status"] == "ok").all()
    assert ref["attainment"].between(0, 1).all() and (ref["p99_tpot_ms"] > 12).all()   # TPOT >= the 12 ms base
    from melange_nb.attainment import check_plan                  # the worker's numbers = this process's
    from melange_nb.profiles import load_gpus
    from melange_nb.solver import solve
    from melange_nb.workload import read_workload
    gpus, workload = load_gpus(tmp_path / "seed-latency.yaml"), read_workload(ARENA)
    here = check_plan(workload, gpus, 4.0, solve(workload, gpus, 4.0), {"duration_s": 60}).columns()
    assert ref.at[4.0, "attainment"] == pytest.approx(here["attainment"]) and ref.at[4.0, "mix"] == "1xA10G + 1xA100"
    assert ref.at[4.0, "p99_tpot_ms"] == pytest.approx(here["p99_tpot_ms"])
    assert results.loc[results["policy"] != results["reference"], "attainment"].isna().all()
    saved = pd.read_csv(out / "results.csv")
    assert {"attainment", "p99_ttft_ms", "p99_tpot_ms"} <= set(saved.columns)
    index = (out / "index.html").read_text()
    assert "SLO attainment" in index and "TPOT ≤ 14 ms" in index
    assert f"$4.68/h, meets TPOT ≤ 14 ms for {ref.at[4.0, 'attainment']:.1%}" in index       # the points table
    page = (out / ref.at[4.0, "point"] / "02_allocation-shared.html").read_text()                # rendered in a worker
    assert f"meets TPOT ≤ 14 ms for {ref.at[4.0, 'attainment']:.1%} of requests" in page
    summary = (out / "03_sweep_summary-shared.html").read_text()
    assert "Will it hold its SLO?" in summary and "not simulated" not in summary and "TPOT ≤ 14 ms" in summary
    # unchanged: nothing re-runs; changed simulate options: every point re-runs
    log = []
    run_sweep(load_spec(write(tmp_path, doc)), out, workers=1, log=log.append)
    assert "solving 0" in log[0]
    log = []
    run_sweep(load_spec(write(tmp_path, {**doc, "simulate": {"duration_s": 30}})), out, workers=1, log=log.append)
    assert "solving 3 (3 re-run because their inputs changed)" in log[0]


@pytest.mark.slow
def test_target_attainment_in_a_sweep_adds_the_found_plan(tmp_path):
    doc = spec_doc(tmp_path, rates=[4], target_attainment=0.95, simulate={"duration_s": 60})
    run_sweep(load_spec(write(tmp_path, doc)), tmp_path / "out", workers=1, log=lambda m: None)
    ref = collect_results(tmp_path / "out").query("policy == reference").iloc[0]
    assert ref["target_attainment"] == 0.95 and ref["found_attainment"] >= 0.95 > ref["attainment"]
    assert ref["found_mix"] and ref["found_cost_per_hour"] > 0


@pytest.mark.slow
def test_point_pages_show_the_workers_check_not_a_second_simulation(tmp_path):
    """Each rendered page shows the attainment its worker simulated (simulations/<point>.json): the numbers
    of results.csv, to the last digit, and the worker's own wall-clock seconds, which a second simulation
    in the page's kernel would not reproduce."""
    doc = spec_doc(tmp_path, rates=[4, 6], render="all", simulate={"duration_s": 60}, target_attainment=0.95)
    out = tmp_path / "out"
    run_sweep(load_spec(write(tmp_path, doc)), out, workers=1, log=lambda m: None)
    ref = collect_results(out).query("policy == reference")
    assert len(ref) == 2
    for _, row in ref.iterrows():
        saved = json.loads((out / "simulations" / f"{row['point']}.json").read_text())
        shown = json.loads((out / row["point"] / "simulation.json").read_text())     # written by the page's kernel
        assert json.dumps(shown, sort_keys=True) == json.dumps(saved, sort_keys=True)
        for col in ("attainment", "p99_ttft_ms", "p99_tpot_ms", "sim_seconds", "found_cost_per_hour", "found_attainment"):
            assert shown[col] == row[col], col
        assert shown["found_mix"] == row["found_mix"] and shown["sim_status"] == row["sim_status"] == "ok"
        page = (out / row["point"] / "02_allocation-shared.html").read_text()
        assert f"meets TPOT ≤ 14 ms for {row['attainment']:.1%} of requests" in page
        assert f"{row['found_mix']} (${row['found_cost_per_hour']:.2f}/h) meets it for {row['found_attainment']:.1%}" in page
        executed = (out / row["point"] / "02_allocation.ipynb").read_text()
        params = json.loads(executed)["metadata"]["papermill"]["parameters"]
        assert params["simulation_check"] == f"../simulations/{row['point']}.json"    # relative: no local folder
        assert str(tmp_path) not in page and str(tmp_path) not in executed


def test_bad_simulate_keys_fail_before_any_work(tmp_path, capsys):
    for extra, message in [({"simulate": {"duration_s": 0}}, "spec.yaml: simulate.duration_s: must be simulated seconds"),
                           ({"simulate": {"arrival": "bursts"}}, "spec.yaml: simulate.arrival: must be poisson"),
                           ({"simulate": {"routing": "x"}}, "spec.yaml: simulate.routing: must be one of"),
                           ({"simulate": {"duration": 60}}, "spec.yaml: simulate.duration: is not a simulate option"),
                           ({"simulate": 5}, "spec.yaml: simulate: must be a mapping"),
                           ({"target_attainment": 1.2}, "spec.yaml: target_attainment: must be a share")]:
        with pytest.raises(InputError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
            load_spec(write(tmp_path, spec_doc(tmp_path, **extra)))
    # GPU types without a latency model: refused by the CLI in one line, nothing written
    doc = {**spec_doc(tmp_path, simulate=True), "gpus": {"seed": SEED_GPUS}}
    out = tmp_path / "nolatency"
    code = main(["sweep", "-p", write(tmp_path, doc), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "gpus.seed: simulate: GPU type A10G has no latency model" in err and err.count("\n") == 1
    assert not out.exists()
    assert load_spec(write(tmp_path, spec_doc(tmp_path, target_attainment=0.9)))["simulate"]["duration_s"] == 600
