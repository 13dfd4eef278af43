"""Solver honesty (DESIGN traps 6 and 10): never a plan dearer than a known feasible one called
optimal, and any positive demand buys at least one GPU, in every policy alike."""
import pytest

from melange_nb.profiles import parse_gpu_info
from melange_nb.solver import compare, solve

from conftest import matrix
from instances import random_instance


def test_cbc_bad_instance_is_fixed():
    # Found by a random search: CBC alone returned 1 x gpu0 + 3 x gpu1 = $7.14/h "Optimal", while 2 x gpu0
    # (the single-GPU baseline in the same output) costs $6.66/h, which is the true optimum.
    w, gpus = random_instance(19, 6, 4)
    c = compare(w, gpus, 4.0, solvers=("melange", "exact"))
    mix = c.results["melange"]
    assert mix.status == "optimal" and "proved optimal" in mix.message
    assert mix.cost == pytest.approx(6.66) and mix.counts == {"gpu0": 2, "gpu1": 0, "gpu2": 0, "gpu3": 0}
    assert c.results["exact"].cost == pytest.approx(6.66)
    assert mix.cost <= min(r.cost for k, r in c.results.items() if k.startswith("single:") and r.has_allocation)


@pytest.mark.parametrize("seed", range(6))
def test_melange_is_never_dearer_than_a_single_gpu_type_nor_cheaper_than_exact(seed):
    w, gpus = random_instance(200 + seed, 5, 3)
    for slice_factor in (1, 2):
        c = compare(w, gpus, 3.0, solvers=("melange", "exact"), slice_factor=slice_factor)
        mix, exact = c.results["melange"], c.results["exact"]
        singles = [r.cost for k, r in c.results.items() if k.startswith("single:") and r.has_allocation]
        assert mix.has_allocation and exact.status == "optimal"
        assert exact.cost <= mix.cost + 1e-6 and (not singles or mix.cost <= min(singles) + 1e-6)
        if mix.status == "optimal":
            assert "proved optimal" in mix.message
        else:
            assert mix.status == "time_limit" and "not proven optimal" in mix.message


@pytest.mark.parametrize("rate, tput", [(1e-12, 2.0), (1.0, 1e300), (1e-300, 1.0)])
def test_any_positive_demand_needs_a_gpu_in_every_policy(rate, tput):
    # One bucket; A ($1/h) and B ($2/h) both serve it with room to spare: every policy buys exactly one GPU.
    w = matrix([[1.0]], ["0-25"], ["0-25"])
    gpus = parse_gpu_info({"A": {"cost": 1.0, "tputs": [[tput]]}, "B": {"cost": 2.0, "tputs": [[tput]]}},
                          ["0-25"], ["0-25"])
    c = compare(w, gpus, rate, solvers=("melange", "exact"))
    for name, expected in (("melange", {"A": 1, "B": 0}), ("exact", {"A": 1, "B": 0}),
                           ("single:A", {"A": 1, "B": 0}), ("single:B", {"A": 0, "B": 1})):
        r = c.results[name]
        assert r.status == "optimal" and r.counts == expected, (name, r.counts, r.message)
    assert c.results["exact"].routing["gpu"].tolist() == ["A"]
    assert solve(w, gpus, rate, solver="melange", slice_factor=4).counts == {"A": 1, "B": 0}


def test_a_failing_cbc_keeps_the_single_gpu_plan_and_says_so(monkeypatch):
    # CBC can die (seen under heavy load: PulpSolverError). A real process that exits non-zero stands in
    # for it; the plan must be the verified single-GPU start, with the failure in the message.
    import functools

    import pulp

    monkeypatch.setattr(pulp, "PULP_CBC_CMD", functools.partial(pulp.PULP_CBC_CMD, path="/bin/false"))
    w, gpus = random_instance(19, 6, 4)
    r = solve(w, gpus, 4.0, solver="melange", slice_factor=1)
    assert r.has_allocation and r.cost == pytest.approx(6.66)
    assert "CBC failed" in r.message
    assert r.status == "optimal" and "exact solver's lower bound" in r.message
