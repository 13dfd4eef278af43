"""The simulator wired into runs, sweeps and pages: options, a solved plan's attainment, the answer sentence."""
import dataclasses
import json
import math

import pytest
import yaml

from melange_nb.attainment import (check_html, check_options, check_plan, check_target, latency_missing, read_check,
                                   summary_frame)
from melange_nb.errors import InputError
from melange_nb.profiles import load_gpus, save_profiles
from melange_nb.profiles.latency import parse_latency
from melange_nb.run import load_params
from melange_nb.solver import solve
from melange_nb.workload import read_workload

SEED_GPUS = "params/gpus/llama2-7b-seed.yaml"
ARENA = "params/workloads/arena-seed.csv"
# TPOT = 12 ms + 0.4 ms per sequence in the batch: with an SLO of TPOT <= 14 ms a replica holds about
# 5 sequences before requests miss, so the throughput-only plan at 4 req/s misses for some of them.
SLOW = {"step_ms": {"base": 12.0, "per_seq": 0.4, "per_prefill_token": 0.02, "per_context_token": 0.0},
        "max_seqs": 256, "kv_tokens": 400000, "max_step_tokens": 8192, "source": "hand"}


def gpus_with_latency(latency=SLOW, slo_ms=14.0):
    return {k: dataclasses.replace(v, latency=parse_latency(latency),
                                   meta={**v.meta, "slo": [{"metric": "tpot", "stat": "mean", "ms": slo_ms}]})
            for k, v in load_gpus(SEED_GPUS).items()}


@pytest.fixture(scope="module")
def arena():
    return read_workload(ARENA)


def test_simulate_options_are_completed_and_bad_ones_name_their_field():
    assert check_options(None) is None and check_options(False) is None
    assert check_options(True) == {"duration_s": 600.0, "arrival": "poisson", "seed": 0, "routing": "least"}
    assert check_options({"duration_s": 60, "arrival": "gamma:2"})["arrival"] == "gamma:2"
    for bad, match in [({"duration_s": 0}, r"^simulate\.duration_s: must be simulated seconds"),
                       ({"duration_s": True}, r"^simulate\.duration_s:"),
                       ({"arrival": "bursty"}, r"^simulate\.arrival: must be poisson, gamma:CV"),
                       ({"seed": -1}, r"^simulate\.seed: must be a whole number"),
                       ({"routing": "random"}, r"^simulate\.routing: must be one of \('least', 'round-robin'\)"),
                       ({"rate": 3}, r"^simulate\.rate: is not a simulate option; known:"),
                       ([600], r"^simulate: must be a mapping")]:
        with pytest.raises(InputError, match=match):
            check_options(bad)
    assert check_target(None) is None and check_target(0.99) == 0.99
    for bad in (0, 1.5, "x", True):
        with pytest.raises(InputError, match=r"^target_attainment: must be a share of requests in \(0, 1\]"):
            check_target(bad)


def test_run_params_take_simulate_and_target_and_refuse_bad_values(tmp_path):
    doc = {"workload": ARENA, "gpus": SEED_GPUS, "rate": 4, "simulate": {"duration_s": 30}, "target_attainment": 0.9}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    params = load_params(tmp_path / "p.yaml")
    assert params["simulate"] == {"duration_s": 30.0, "arrival": "poisson", "seed": 0, "routing": "least"}
    assert params["target_attainment"] == 0.9
    for key, value, match in [("simulate", {"duration_s": -1}, r"p\.yaml: simulate\.duration_s: must be"),
                              ("target_attainment", 2, r"p\.yaml: target_attainment: must be a share")]:
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({**doc, key: value}))
        with pytest.raises(InputError, match=match):
            load_params(tmp_path / "p.yaml")


def test_check_plan_simulates_the_solved_plan_and_says_it_first(arena):
    gpus = gpus_with_latency()
    result = solve(arena, gpus, 4.0)
    check = check_plan(arena, gpus, 4.0, result, {"duration_s": 120, "seed": 3})
    cols = check.columns()
    assert check.status == "ok" and cols["sim_status"] == "ok"
    assert 0 < cols["attainment"] < 1                      # this latency model makes some requests miss 14 ms
    assert cols["attainment"] == pytest.approx(check.result.requests["slo_met"].mean())
    assert cols["p99_tpot_ms"] == pytest.approx(check.result.requests["tpot_ms"].quantile(0.99))
    assert math.isnan(cols["found_cost_per_hour"]) and cols["found_mix"] == ""
    assert check.sentence.startswith(f"1×A10G + 1×A100 ($4.68/h) meets TPOT ≤ 14 ms for {cols['attainment']:.1%} of requests")
    again = check_plan(arena, gpus, 4.0, result, {"duration_s": 120, "seed": 3})
    assert again.columns() == {**cols, "sim_seconds": again.columns()["sim_seconds"]}     # seeded: reproducible
    table = summary_frame(check)
    assert list(table.index) == ["A10G", "A100", "all"] and table.index.name == "GPU type"
    html = check_html(check, 4.0)
    assert "meets TPOT ≤ 14 ms" in html and "simulated 120 s of Poisson arrivals at 4 requests/s" in html
    json.dumps(check.to_dict())                            # JSON-ready (NaN as null)


@pytest.mark.slow
def test_check_plan_with_a_target_finds_a_plan_that_reaches_it(arena):
    gpus = gpus_with_latency()
    result = solve(arena, gpus, 4.0)
    check = check_plan(arena, gpus, 4.0, result, {"duration_s": 120}, 0.95)
    cols = check.columns()
    assert check.status == "met" and cols["attainment"] < 0.95 <= cols["found_attainment"]
    assert cols["found_mix"] != "1×A10G + 1×A100" and cols["target_attainment"] == 0.95
    assert f"; {cols['found_mix']} (${cols['found_cost_per_hour']:.2f}/h) meets it for " in check.sentence
    assert all(n["attainment"] < 0.95 for n in check.search.neighbours)


def test_a_saved_check_reads_back_as_the_page_shows_it_and_refuses_other_options(arena, tmp_path):
    """A sweep's worker saves its check (to_dict as JSON); the point's page reads it back (read_check)
    and shows the same sentence, numbers and tables as the check itself, without simulating again."""
    gpus = gpus_with_latency()
    result = solve(arena, gpus, 4.0)
    for target in (None, 0.95):
        check = check_plan(arena, gpus, 4.0, result, {"duration_s": 30}, target)
        path = tmp_path / "check.json"
        path.write_text(json.dumps(check.to_dict()))
        back = read_check(path, {"duration_s": 30}, target)
        assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(check.to_dict(), sort_keys=True)
        assert back.sentence == check.sentence and check_html(back, 4.0) == check_html(check, 4.0)
        assert summary_frame(back).equals(summary_frame(check))
        assert back.result.requests.empty       # the per-request rows are not saved: nothing was simulated here
        assert (back.search is None) == (target is None)
    for options, target, match in [({"duration_s": 60}, 0.95, r"^simulation_check: check\.json was simulated with other options"),
                                   ({"duration_s": 30}, None, r"^simulation_check: .*target 0\.95\) than this page's"),
                                   ({"duration_s": 30}, 0.9, r"^simulation_check: .*; set simulation_check to None")]:
        with pytest.raises(InputError, match=match):
            read_check(path, options, target)
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"^simulation_check: cannot read the saved check check\.json"):
        read_check(path, {"duration_s": 30})


def test_no_latency_model_is_one_line_and_check_plan_refuses(arena):
    gpus = dict(gpus_with_latency(), A100=load_gpus(SEED_GPUS)["A100"])
    line = latency_missing(gpus)
    assert line.startswith("No SLO attainment: GPU type A100 has no latency model; add a `latency:` section")
    assert "\n" not in line and latency_missing(gpus_with_latency()) is None
    with pytest.raises(InputError, match=r"^simulate: GPU type A100 has no latency model"):
        check_plan(arena, gpus, 4.0, solve(arena, gpus, 4.0), {"duration_s": 10})
    with pytest.raises(InputError, match=r"^simulate\.duration_s: .* more than 5,000,000 requests"):
        check_plan(arena, gpus, 4e4, solve(arena, gpus, 4.0), {"duration_s": 1e3})


def write_latency_profiles(path):
    save_profiles(path, gpus_with_latency())
    return path


@pytest.mark.slow
def test_allocation_notebook_shows_attainment_first(tmp_path):
    from melange_nb.run import run_allocation

    gpus = write_latency_profiles(tmp_path / "gpus.yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"workload": ARENA, "gpus": str(gpus), "rate": 4,
                                                     "simulate": {"duration_s": 60}}))
    run = run_allocation(load_params(tmp_path / "p.yaml"), tmp_path / "run")
    sim = json.loads((run / "simulation.json").read_text())
    assert sim["status"] == "ok" and 0 < sim["attainment"] < 1
    page = (run / "02_allocation-shared.html").read_text()
    assert page.index("1×A10G + 1×A100 ($4.68/h) meets TPOT ≤ 14 ms") < page.index("Will it hold its SLO?")
    assert page.index('class="mnb-headline"') < page.index('class="mnb-attainment"')     # the cost, then attainment


@pytest.mark.slow
def test_plan_simulate_replays_the_trace_through_the_window_plan(shared_data, tmp_path, capsys):
    import pandas as pd

    from melange_nb.cli import main

    gpus = tmp_path / "gpus.yaml"
    save_profiles(gpus, gpus_with_latency(slo_ms=40.0))
    trace, out = shared_data / "azure_llm_inference_conv_2023.csv", tmp_path / "plan"
    code = main(["plan", "--trace", str(trace), "--gpus", str(gpus), "--window", "15min", "--simulate", "-o", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    check = json.loads((out / "simulation" / "attainment.json").read_text())
    requests = pd.read_parquet(out / "simulation" / "requests.parquet")
    assert len(requests) == check["options"]["requests"] == len(pd.read_csv(trace))   # every request replayed
    assert sorted(requests["window"].unique()) == [0, 1, 2, 3]                      # the plan's four windows
    assert check["attainment"] == pytest.approx(requests["slo_met"].mean()) and 0 < check["attainment"] <= 1
    assert check["sentence"].startswith("The per-window plan (mean $") and check["sentence"] in stdout
    # no latency model: one line, exit 2, before the trace is read; nothing written
    code = main(["plan", "--trace", str(trace), "--gpus", SEED_GPUS, "--simulate", "-o", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "--simulate: GPU type A10G has no latency model" in err
    assert err.count("\n") == 1 and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_plan_report_shows_the_simulated_attainment(shared_data, tmp_path, capsys):
    from melange_nb.cli import main

    gpus = tmp_path / "gpus.yaml"
    save_profiles(gpus, gpus_with_latency(slo_ms=40.0))
    out = tmp_path / "plan"
    assert main(["plan", "--trace", str(shared_data / "azure_llm_inference_conv_2023.csv"), "--gpus", str(gpus),
                 "--window", "15min", "--simulate", "--report", "-o", str(out)]) == 0
    page = (out / "04_time_varying-shared.html").read_text()
    sentence = json.loads((out / "simulation" / "attainment.json").read_text())["sentence"]
    # in the answer, next to the cost: before the totals table
    body = page[page.index("<body"):]
    assert (body.index("Autoscaling 15-min windows costs") < body.index("The per-window plan (mean $")
            < body.index("<table") < body.index("Rate, GPUs and cost"))
    assert "The per-window plan (mean $" in page and sentence.split(" (p99")[0].replace("$", "") in page.replace("$", "")


@pytest.mark.slow
def test_progress_bar_leaves_a_long_simulation_unchanged(arena):
    from melange_nb.simulate import plan_from_result, simulate, stream_from_workload

    gpus = gpus_with_latency(slo_ms=40.0)
    stream = stream_from_workload(arena, 40.0, 600, seed=1)            # 24,000 requests: the bar is drawn
    plan = plan_from_result(solve(arena, gpus, 40.0), gpus)
    quiet, shown = (simulate(stream, plan, gpus, progress=p) for p in (False, True))
    assert len(stream) >= 20_000
    from pandas.testing import assert_frame_equal
    assert_frame_equal(quiet.requests, shown.requests)


def test_plan_simulate_needs_no_model_for_a_type_that_serves_nothing(shared_data, tmp_path, capsys):
    """L4 serves no bucket at TPOT 40 ms in the predicted Llama-3.1 file and has no latency model: it is in
    no plan, so `plan --simulate` runs (the attainment search already skipped it)."""
    from melange_nb.cli import main
    from melange_nb.config import PROJECT_ROOT

    predicted = str(PROJECT_ROOT / "params/gpus/llama3.1-8b-tpot40.yaml")
    gpus = load_gpus(predicted)
    assert gpus["L4"].latency is None and float(gpus["L4"].tputs.to_numpy().max()) == 0
    out = tmp_path / "plan"
    assert main(["plan", "--trace", str(shared_data / "azure_llm_inference_conv_2023.csv"), "--gpus",
                 predicted, "--simulate", "-o", str(out)]) == 0
    assert "meets TPOT ≤ 40 ms for" in capsys.readouterr().out
    assert json.loads((out / "simulation" / "attainment.json").read_text())["sim_status"] == "ok"


def test_not_simulated_line_renders_code_escaped():
    from melange_nb.attainment import not_simulated
    from melange_nb.report import code_html

    line = code_html(not_simulated())
    assert "<code>simulate: {duration_s: 600}</code>" in line and "`" not in line and ".py" not in line
    assert code_html("a `<script>x</script>` b <img onerror=1>") == (
        '<p class="mnb-note tex2jax_ignore mathjax_ignore">a <code>&lt;script&gt;x&lt;/script&gt;</code> b '
        '&lt;img onerror=1&gt;</p>')
