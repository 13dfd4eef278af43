"""Property tests (hypothesis) on seeded random instances: orderings, monotonicity, routing, caps."""
import numpy as np
from hypothesis import given, settings, strategies as st

from melange_nb.profiles import GpuProfile
from melange_nb.solver import Constraints, solve
from instances import random_instance

instances = st.builds(lambda seed, n, g: random_instance(seed, n, g),
                      st.integers(0, 10_000), st.integers(2, 4), st.integers(2, 3))
rates = st.floats(0.5, 60, allow_nan=False)
SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(instances, rates, st.integers(1, 3))
def test_exact_le_melange_le_cheapest_single(instance, rate, slice_factor):
    workload, gpus = instance
    exact = solve(workload, gpus, rate, solver="exact")
    melange = solve(workload, gpus, rate, solver="melange", slice_factor=slice_factor)
    singles = [solve(workload, gpus, rate, solver=f"single:{g}") for g in gpus]
    cheapest = min((s.cost for s in singles if s.has_allocation), default=np.inf)
    assert exact.status == melange.status == "optimal"
    assert exact.cost <= melange.cost + 1e-9 <= cheapest + 2e-9


@SETTINGS
@given(instances, rates, st.floats(1.01, 4))
def test_cost_never_decreases_as_rate_grows(instance, rate, factor):
    workload, gpus = instance
    for solver in ("exact", "melange"):
        low = solve(workload, gpus, rate, solver=solver)
        high = solve(workload, gpus, rate * factor, solver=solver)
        assert high.cost >= low.cost - 1e-9


@SETTINGS
@given(instances, rates, st.sampled_from([1.0, 0.8, 0.5]), st.sampled_from(["exact", "melange"]))
def test_routing_shares_sum_to_one_and_utilisation_stays_under_the_cap(instance, rate, cap, solver):
    workload, gpus = instance
    r = solve(workload, gpus, rate, solver=solver, constraints=Constraints(utilization_cap=cap))
    assert r.status == "optimal"
    sums = r.routing.groupby(["input_tokens", "output_tokens"])["share"].sum()
    demand = workload.stack()
    assert set(sums.index) == set(demand[demand > 0].index)
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-7)
    for gpu, u in r.utilization.items():
        assert u <= cap + 1e-6, (gpu, u)
    # capacity check from first principles: routed load per type fits its count
    for gpu, prof in gpus.items():
        routed = r.routing[r.routing["gpu"] == gpu]
        load = sum(row.rate / prof.tputs.loc[row.input_tokens, row.output_tokens] for row in routed.itertuples())
        assert load <= cap * r.counts[gpu] + 1e-6


@SETTINGS
@given(instances, rates, st.sampled_from(["exact", "melange"]))
def test_unservable_demand_is_detected(instance, rate, solver):
    workload, gpus = instance
    bucket = workload.stack().idxmax()
    blocked = {}
    for name, g in gpus.items():
        tputs = g.tputs.copy()
        tputs.loc[bucket] = 0.0
        blocked[name] = GpuProfile(name, g.cost, tputs)
    r = solve(workload, blocked, rate, solver=solver)
    assert r.status == "infeasible" and f"input {bucket[0]} x output {bucket[1]}" in r.message
