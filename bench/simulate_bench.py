"""Simulator speed, in one run: one simulated hour, the attainment search, and the engine choice.

Usage: python bench/simulate_bench.py [GPU_PROFILE_YAML]
(default params/gpus/llama3.1-8b-tpot40.yaml when it carries latency models, else the seed
Llama-2-7B profiles with hand-written latency models, params/gpus/llama2-7b-seed-hand-latency-tpot40.yaml).

1. One simulated hour at 20 req/s (72,000 requests, Poisson, Arena sizes) on a plan of at least
   8 replicas. Target: < 15 s on 2 cores, i.e. >= 240x faster than real time.
2. `search_attainment` at 20 req/s, target 99%, 600 simulated seconds per plan. Target: < 60 s.
3. Engine choice: the same single-server FIFO queue (M/G/1, service = n tokens x 10 ms) run by
   SimPy (a Resource, one process per request) and by a heapq loop like simulate's; per-request
   microseconds of each and their ratio. SimPy is not a dependency: that part is skipped (and says
   so) when it is not installed.
Each part prints wall and CPU seconds; ratios are measured within this run; the load average is
printed because the machine is shared.
"""
import heapq
import os
import sys
import time

import numpy as np

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.profiles import load_gpus
from melange_nb.simulate import load_plan, search_attainment, simulate, stream_from_workload
from melange_nb.workload import pad_workload, read_workload


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def profiles(path):
    if path:
        return load_gpus(path)
    predicted = load_gpus(GPUS_DIR / "llama3.1-8b-tpot40.yaml")
    if all(p.latency is not None for p in predicted.values() if p.tputs.to_numpy().max() > 0):
        return {g: p for g, p in predicted.items() if p.tputs.to_numpy().max() > 0}
    return load_gpus(GPUS_DIR / "llama2-7b-seed-hand-latency-tpot40.yaml")


def mg1_heapq(arrivals, services):
    """Single-server FIFO: events in a heap (arrival, departure), as simulate's loop does it."""
    events = [(t, 0, k) for k, t in enumerate(arrivals)]
    heapq.heapify(events)
    queue, busy, waits = [], False, [0.0] * len(arrivals)
    head = 0
    while events:
        t, kind, k = heapq.heappop(events)
        if kind == 0:
            queue.append(k)
        else:
            busy = False
        if not busy and head < len(queue):
            j = queue[head]
            head += 1
            waits[j] = t - arrivals[j]
            busy = True
            heapq.heappush(events, (t + services[j], 1, j))
    return waits


def mg1_simpy(arrivals, services):
    import simpy

    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits = [0.0] * len(arrivals)

    def request(k):
        yield env.timeout(arrivals[k] - env.now)
        with server.request() as req:
            yield req
            waits[k] = env.now - arrivals[k]
            yield env.timeout(services[k])

    for k in range(len(arrivals)):
        env.process(request(k))
    env.run()
    return waits


def main():
    print(f"load average at start: {load()}")
    gpus = profiles(sys.argv[1] if len(sys.argv) > 1 else None)
    like = next(iter(gpus.values())).tputs
    workload = pad_workload(read_workload(WORKLOADS_DIR / "arena-seed.csv"), list(like.index), list(like.columns))
    rate = 20.0
    plan = load_plan(None, gpus, workload=workload, rate=rate)
    counts = plan.mix()
    if sum(counts.values()) < 8:                      # at least 8 replicas: scale the solved mix up
        scale = -(-8 // sum(counts.values()))
        plan = load_plan({g: c * scale for g, c in counts.items()}, gpus, workload=workload)
    # 1. one simulated hour
    w0, c0 = time.perf_counter(), cpu()
    stream = stream_from_workload(workload, rate, 3600, seed=1)
    res = simulate(stream, plan, gpus)
    wall, used = time.perf_counter() - w0, cpu() - c0
    print(f"1. one hour at {rate:g} req/s: {len(stream):,} requests on {plan.description}, "
          f"{int(plan.counts.to_numpy().sum())} replicas: {wall:.2f} s wall, {used:.2f} s CPU; "
          f"{3600 / wall:.0f}x faster than real time (target >= 240x, < 15 s); attainment {res.attainment:.1%}; "
          f"{len(stream) / wall:,.0f} requests/s simulated; load {load()}")
    # 2. the attainment search for one point
    w0, c0 = time.perf_counter(), cpu()
    search = search_attainment(workload, gpus, rate, 0.99, duration_s=600, seed=1)
    wall, used = time.perf_counter() - w0, cpu() - c0
    print(f"2. attainment search at {rate:g} req/s, target 99%, 600 s per plan: {len(search.tried)} plans simulated "
          f"in {wall:.2f} s wall, {used:.2f} s CPU (target < 60 s); {search.message}; load {load()}")
    # 3. engine choice
    rng = np.random.default_rng(0)
    n = 50_000
    arrivals = np.cumsum(rng.exponential(1 / 8.0, n)).tolist()
    services = (rng.integers(1, 81, n) * 0.002).tolist()
    w0 = time.perf_counter()
    ours = mg1_heapq(arrivals, services)
    t_heap = time.perf_counter() - w0
    try:
        w0 = time.perf_counter()
        theirs = mg1_simpy(arrivals, services)
        t_simpy = time.perf_counter() - w0
        same = np.allclose(ours, theirs, atol=1e-9)
        print(f"3. M/G/1, {n:,} requests: heapq loop {t_heap / n * 1e6:.1f} us/request, SimPy "
              f"{t_simpy / n * 1e6:.1f} us/request: SimPy takes {t_simpy / t_heap:.1f}x as long "
              f"(same waits: {same}); load {load()}")
    except ImportError:
        print(f"3. M/G/1, {n:,} requests: heapq loop {t_heap / n * 1e6:.1f} us/request; SimPy is not installed "
              "(pip install simpy to compare)")


if __name__ == "__main__":
    main()
