"""Exact solver vs the Mélange ILP on seeded random instances, in one run.

Usage: python bench/solver_bench.py [TIME_LIMIT_SECONDS] (default 20).
For each instance (buckets x GPU types, rate): exact (HiGHS) time and cost, and the Mélange ILP
(CBC) at slice factors 1, 4, 8 with the time limit: status, cost difference vs exact, and the
solve-time ratio Mélange / exact. Then 20x20 buckets x 10 GPU types solved exactly.
Targets: exact >= 100x faster than Mélange at slice factor 4; exact cost <= Mélange's on every
instance; 20x20x10 exact < 1 s.
"""
import statistics
import sys
from pathlib import Path

from melange_nb.solver import solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from instances import random_instance  # noqa: E402  (seeded solver instances live beside the tests)

SIZES = [(4, 2), (6, 4), (10, 6)]
RATES = [10, 100]
SLICE_FACTORS = [1, 4, 8]


def main(time_limit: float) -> None:
    solve(*random_instance(0, 2, 2), 1, solver="exact")  # import and first-call costs out of the timings
    print(f"time limit for the Mélange ILP: {time_limit:g} s; times are solve wall seconds incl. model building")
    print(f"{'instance':<16}{'exact $/h':>10}{'exact s':>9} | " +
          " | ".join(f"{'sf' + str(sf) + ' status':>17}{'Δ$/h':>8}{'ratio':>8}" for sf in SLICE_FACTORS))
    ratios = {sf: [] for sf in SLICE_FACTORS}
    never_worse = True
    for seed, (n, g) in enumerate(SIZES):
        workload, gpus = random_instance(seed, n, g)
        for rate in RATES:
            exact = solve(workload, gpus, rate, solver="exact")
            cells = []
            for sf in SLICE_FACTORS:
                m = solve(workload, gpus, rate, solver="melange", slice_factor=sf, time_limit=time_limit)
                ratio = m.solve_seconds / exact.solve_seconds
                ratios[sf].append(ratio)
                delta = m.cost - exact.cost if m.has_allocation else float("nan")
                never_worse &= not (m.has_allocation and exact.cost > m.cost + 1e-9)
                cells.append(f"{m.status:>17}{delta:>8.2f}{ratio:>7.0f}x")
            name = f"{n}x{n}x{g} r{rate}"
            print(f"{name:<16}{exact.cost:>10.2f}{exact.solve_seconds:>9.4f} | " + " | ".join(cells))
    for sf in SLICE_FACTORS:
        r = ratios[sf]
        print(f"slice factor {sf}: Mélange/exact time ratio min {min(r):.0f}x, median {statistics.median(r):.0f}x, "
              f"geomean {statistics.geometric_mean(r):.0f}x")
    print(f"exact cost <= Mélange cost on every instance: {never_worse}")
    times = []
    for seed in range(5):
        workload, gpus = random_instance(100 + seed, 20, 10)
        for rate in RATES:
            r = solve(workload, gpus, rate, solver="exact")
            assert r.status == "optimal", r.message
            times.append(r.solve_seconds)
    print(f"20x20 buckets x 10 GPU types, exact, {len(times)} instances: max {max(times):.3f} s, "
          f"median {statistics.median(times):.3f} s (target < 1 s)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
