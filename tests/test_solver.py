"""Solver correctness against hand computations and the seed's own printed numbers."""
import json

import numpy as np
import pandas as pd
import pytest

from melange_nb.errors import InputError
from melange_nb.profiles import parse_gpu_info, read_melange_config
from melange_nb.solver import Constraints, compare, solve, solve_single
from melange_nb.workload import read_workload

from conftest import matrix

TOY_GPUS = {"A10G": {"cost": 1.01, "tputs": [[5, 1], [10, 5]]},
            "A100": {"cost": 3.67, "tputs": [[20, 2], [50, 20]]}}


def toy_gpus():
    return parse_gpu_info(TOY_GPUS, ["s", "l"], ["s", "l"])


def test_seed_toy_example_gives_ten_a10g():
    # The seed's toy shares [[.25,.5],[.25,.25]] sum to 1.25, so at rate 16 its per-bucket rates are
    # [[4,8],[4,4]] = 20 req/s. The same demand as a proper distribution: shares / 1.25 at rate 20.
    # A10G load = 4/5 + 8/1 + 4/10 + 4/5 = 10 GPUs; A100 load = 4.48 -> 5 GPUs ($18.35).
    w = matrix([[0.2, 0.4], [0.2, 0.2]])
    result = solve(w, toy_gpus(), 20)
    assert result.status == "optimal"
    assert result.counts == {"A10G": 10, "A100": 0}
    assert result.cost == pytest.approx(10.10)
    assert solve_single(w, toy_gpus(), 20, "A100").counts == {"A10G": 0, "A100": 5}


def test_seed_toy_shares_are_rejected_because_they_sum_to_125():
    with pytest.raises(InputError, match=r"shares sum to 1\.25"):
        solve(matrix([[0.25, 0.5], [0.25, 0.25]]), toy_gpus(), 16)


def test_melange_release_example_by_hand(shared_data):
    w, gpus, rate, sf = read_melange_config(shared_data / "melange_release_example.json")
    assert (rate, sf) == (30.0, 1)
    # Demand [[6,3],[15,6]]. A10G loads 3,3,3,3; A100 loads .3,.15,.375,.3 (sum 1.125).
    # sf=1: one A100 takes all but bucket (0,1), whose 3 A10G-loads need 3 A10G: 3.67 + 3.03.
    r1 = solve(w, gpus, rate, solver="melange", slice_factor=1)
    assert (r1.status, r1.counts, r1.cost) == ("optimal", {"A10G": 3, "A100-80GB": 1}, pytest.approx(6.70))
    # sf=4: quarter slices; the A100 fits (0,1), (0,0), (1,1) and 2 of 4 slices of (1,0) (load .9375);
    # the other 2 slices (A10G load 1.5) need 2 A10G: 3.67 + 2.02.
    r4 = solve(w, gpus, rate, solver="melange", slice_factor=4)
    assert (r4.counts, r4.cost) == ({"A10G": 2, "A100-80GB": 1}, pytest.approx(5.69))
    # exact: the A100 runs at exactly 1.0 with 2/3 of bucket (1,0); the last third (A10G load 1) fits 1 A10G.
    rx = solve(w, gpus, rate, solver="exact")
    assert (rx.status, rx.counts, rx.cost) == ("optimal", {"A10G": 1, "A100-80GB": 1}, pytest.approx(4.68))
    shares = rx.routing.set_index(["input_tokens", "output_tokens", "gpu"])["share"]
    assert shares[("1", "0", "A100-80GB")] == pytest.approx(2 / 3)
    assert rx.utilization["A100-80GB"] == pytest.approx(1.0)


def test_orientation_hand_computed():
    # All demand is short-input / long-output: bucket (input s, output l). The GPU serves it at 5 req/s,
    # but (input l, output s) at only 1 req/s and (s, s) at 10: a transposed matrix buys 10 GPUs,
    # the seed's display layout (T[::-1]) buys 1; the right answer is 10 / 5 = 2.
    gpus = parse_gpu_info({"G": {"cost": 1.0, "tputs": [[10, 5], [1, 1]]}}, ["s", "l"], ["s", "l"])
    w = matrix([[0.0, 1.0], [0.0, 0.0]])
    assert solve(w, gpus, 10).counts == {"G": 2}
    assert solve(matrix(w.to_numpy().T), gpus, 10).counts == {"G": 10}
    assert solve(matrix(w.to_numpy().T[::-1]), gpus, 10).counts == {"G": 1}


def test_seed_display_layout_reproduces_the_seeds_printed_table(arena_csv, seed_gpus):
    # DESIGN trap 1: the seed handed its display matrix (rows = output, descending) to the solver and
    # printed ILP 1xA10G + 2xA100 = $8.35, A100-only $11.01 (24.16%), A10G-only $9.09 (8.14%).
    w = read_workload(arena_csv)
    display = pd.DataFrame(w.to_numpy().T[::-1], index=w.index, columns=w.columns)
    table = compare(display, seed_gpus, 4).savings()
    assert table.loc["melange", ["A10G", "A100", "cost_per_hour"]].tolist() == [1, 2, pytest.approx(8.35)]
    assert table.loc["single:A100", "cost_per_hour"] == pytest.approx(11.01)
    assert table.loc["single:A10G", "cost_per_hour"] == pytest.approx(9.09)
    assert table.loc["single:A100", "savings_pct"] == pytest.approx(24.16, abs=0.005)
    assert table.loc["single:A10G", "savings_pct"] == pytest.approx(8.14, abs=0.005)
    # Correctly oriented, the same data needs 1 A10G + 1 A100.
    right = compare(w, seed_gpus, 4).mix
    assert (right.counts, right.cost) == ({"A10G": 1, "A100": 1}, pytest.approx(4.68))


def test_single_gpu_count_ignores_float_noise():
    # 0.8 + 8 + 0.4 + 0.8 is 10.000000000000002 in floating point; that must not buy an 11th GPU.
    w = matrix([[0.2, 0.4], [0.2, 0.2]])
    assert solve_single(w, toy_gpus(), 20, "A10G").counts["A10G"] == 10


def test_unservable_bucket_is_infeasible_and_named():
    gpus = parse_gpu_info({"A": {"cost": 1, "tputs": [[5, 0], [5, 5]]}, "B": {"cost": 2, "tputs": [[5, 0], [5, 5]]}},
                          ["s", "l"], ["s", "l"])
    w = matrix([[0.5, 0.5], [0.0, 0.0]])
    for solver in ("melange", "exact"):
        r = solve(w, gpus, 1, solver=solver)
        assert r.status == "infeasible" and "input s x output l" in r.message
        assert not r.has_allocation and np.isnan(r.cost)
    # Zero throughput on a bucket without demand is fine.
    assert solve(matrix([[1.0, 0.0], [0.0, 0.0]]), gpus, 1).status == "optimal"


def test_time_limited_melange_is_never_reported_optimal():
    # DESIGN trap 7: 10x10 buckets x 6 GPU types at slice factor 8 does not finish quickly with CBC.
    rng = np.random.default_rng(7)
    labels = [str(i) for i in range(10)]
    w = matrix(rng.dirichlet(np.ones(100)).reshape(10, 10), labels, labels)
    gpus = parse_gpu_info({f"g{k}": {"cost": float(rng.uniform(0.5, 5)), "tputs": rng.uniform(0.5, 20, (10, 10)).tolist()}
                           for k in range(6)}, labels, labels)
    r = solve(w, gpus, 100, solver="melange", slice_factor=8, time_limit=1)
    # CBC starts from the best single-GPU plan, so an allocation always exists; "optimal" only with a proof
    # (the exact solver's bound met, or HiGHS proving the same cost on the same ILP).
    assert r.status in ("time_limit", "optimal")
    exact = solve(w, gpus, 100, solver="exact")
    assert exact.status == "optimal" and exact.cost <= r.cost + 1e-9
    if r.status == "time_limit":
        assert "not proven optimal" in r.message and r.bound is not None and r.bound <= r.cost
    else:
        assert "proved optimal" in r.message


def test_cbc_alone_never_makes_a_plan_optimal(arena_csv, seed_gpus):
    # DESIGN trap 10: CBC can call a dearer plan "Optimal". With a check budget of 0 neither the exact
    # solver's bound nor HiGHS runs, so CBC's word is all there is: the plan is not called optimal.
    from melange_nb.solver import solve_melange

    w = read_workload(arena_csv)
    unchecked = solve_melange(w, seed_gpus, 4.0, check_seconds=0)
    assert unchecked.status == "time_limit" and unchecked.has_allocation
    assert "not proven optimal within the 0 s check budget" in unchecked.message
    assert "CBC called it optimal, which neither the exact solver's bound nor HiGHS confirmed" in unchecked.message
    checked = solve_melange(w, seed_gpus, 4.0)
    assert checked.status == "optimal" and "proved optimal" in checked.message
    assert unchecked.counts == checked.counts == {"A10G": 1, "A100": 1}
    with pytest.raises(InputError, match="check_seconds: must be a number of seconds >= 0"):
        solve_melange(w, seed_gpus, 4.0, check_seconds=-1)


def test_savings_table_matches_the_seed_formula():
    w = matrix([[0.2, 0.4], [0.2, 0.2]])
    c = compare(w, toy_gpus(), 20)
    table = c.savings()
    # The default: the exact solver is the reference, the Mélange ILP its comparison.
    assert list(table.index) == ["exact", "melange", "single:A10G", "single:A100"]
    assert table.loc["single:A100", "savings_pct"] == pytest.approx((18.35 - 10.10) / 18.35 * 100)
    assert table.loc["exact", "savings_pct"] == 0 and table.loc["melange", "savings_pct"] == 0


def test_constraints_apply_to_every_policy():
    w = matrix([[0.2, 0.4], [0.2, 0.2]])
    c = Constraints(max_instances={"A10G": 4})
    r = compare(w, toy_gpus(), 20, constraints=c)
    assert r.results["single:A10G"].status == "infeasible"
    assert "max_instances.A10G" in r.results["single:A10G"].message
    assert r.mix.counts["A10G"] <= 4 and r.mix.status == "optimal"
    with pytest.raises(InputError, match="min_instances.A10G"):
        compare(w, toy_gpus(), 20, constraints=Constraints(max_instances={"A10G": 1}, min_instances={"A10G": 2}))


@pytest.mark.parametrize("kwargs, match", [
    ({"rate": 0}, "rate: must be a positive"),
    ({"rate": float("nan")}, "rate: must be a positive"),
    ({"rate": -3}, "rate: must be a positive"),
    ({"slice_factor": 2.5}, "slice_factor: must be a whole number"),
    ({"slice_factor": 0}, "slice_factor: must be a whole number"),
    ({"solver": "gurobi"}, "solver: unknown solver"),
    ({"solver": "single:H100"}, "gpu: unknown GPU name 'H100'"),
    ({"constraints": Constraints(max_instances={"H100": 1})}, "max_instances: names unknown GPU"),
    ({"constraints": Constraints(utilization_cap=0)}, r"utilization_cap: must be in \(0, 1\]"),
])
def test_bad_solver_arguments(kwargs, match):
    args = {"rate": 20, **kwargs}
    rate = args.pop("rate")
    with pytest.raises(InputError, match=match):
        solve(matrix([[0.2, 0.4], [0.2, 0.2]]), toy_gpus(), rate, **args)


def test_mismatched_labels_are_an_error_not_a_reshape():
    w = matrix([[0.2, 0.4], [0.2, 0.2]], index=("0-25", "25-100"))
    with pytest.raises(InputError, match="buckets differ"):
        solve(w, toy_gpus(), 20)


def test_results_serialise_to_json():
    c = compare(matrix([[0.2, 0.4], [0.2, 0.2]]), toy_gpus(), 20, solvers=("exact", "melange"))
    doc = json.loads(json.dumps(c.to_dict()))
    assert doc["solver"] == "exact" and doc["allocation"] == {"A10G": 10, "A100": 0}
    assert {row["policy"] for row in doc["savings"]} == {"exact", "melange", "single:A10G", "single:A100"}


def test_time_limited_exact_is_never_reported_optimal():
    from instances import random_instance

    w, gpus = random_instance(101, 20, 10)
    r = solve(w, gpus, 100, solver="exact", time_limit=1e-3)
    assert r.status in ("time_limit", "no_solution")
    assert "not proven optimal" in r.message or "without an allocation" in r.message
    assert solve(w, gpus, 100, solver="exact").status == "optimal"


def test_open_last_bucket_profiles_match_open_histograms(tmp_path):
    from melange_nb.profiles import load_gpus
    from melange_nb.workload import histogram

    requests = pd.DataFrame({"input_tokens": [10, 3000], "output_tokens": [10, 50]})
    w, _ = histogram(requests, input_edges=[0, 100, 1000], overflow="open")
    (tmp_path / "g.yaml").write_text("input_edges: [0, 100, 1000]\noutput_edges: [0, 100, 1000]\n"
                                     "open_last_input: true\nopen_last_output: true\n"
                                     "gpus:\n  G: {cost: 1.0, tputs: [[10, 5, 1], [5, 2, 1], [0.5, 0.25, 0]]}\n")
    gpus = load_gpus(tmp_path / "g.yaml")
    assert list(gpus["G"].tputs.index) == ["0-100", "100-1000", "1000+"]
    # rate 2: one request/s at (0-100, 0-100) on 10/s, one at (1000+, 0-100) on 0.5/s -> 0.1 + 2 = 2.1 -> 3 GPUs
    assert solve(w, gpus, 2).counts == {"G": 3}
