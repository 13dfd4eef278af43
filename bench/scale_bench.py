"""Ray against the embedded engines, ratios from one run (README "Scale out").

1. Tokenizing N synthetic conversations (default 200,000) into a workload: `--engine ray` on Ray with
   2 CPUs against `datasets.map` with 2 processes (target: Ray >= 0.7x its speed).
2. The driver's peak memory (ru_maxrss of the process that runs `melange-nb workload`) for N/4 and N
   conversations, each engine: flat for Ray (the driver gets counts), growing for datasets.map (it
   holds every request).
3. The paper sweep (params/sweeps/paper.yaml, no per-point pages): its points solved as Ray tasks on
   the two-node cluster against the local process pool (-j 2), the solve time each sweep logs.
4. Simulations: `simulate --target-attainment 0.99` (each search step's candidate plans as Ray tasks)
   and `plan --target-attainment 0.99` (each window's search a Ray task) with `--ray-address` against
   the same command here, wall time each, and whether the answers are identical.

Ray runs as a real cluster of two nodes with 1 CPU each, started with `ray start` inside a network
namespace of its own that has only loopback (tests/ray_cluster.py), as root; every command of both
engines runs inside that namespace. Prints the load average: the machine may be shared.

    .venv/bin/python bench/scale_bench.py [--conversations N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ray_cluster import ADDRESS, NamespacedCluster, skip_reason, without_timings  # noqa: E402

DRIVER = """
import json, resource, sys, time
from melange_nb.workload import build_workload
engine, dataset = sys.argv[1], sys.argv[2]
extra = {"engine": "ray", "ray_address": sys.argv[3]} if engine == "ray" else {"num_proc": 2}
t = time.perf_counter()
w, _, report = build_workload(dataset=dataset, cache=False, **extra)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "requests": report["requests"]}))
"""


def paper_sweep(cluster, outputs: Path) -> None:
    """The paper grid solved by the local pool and on the cluster; the solve times the sweeps log."""
    import re

    times = {}
    for how, extra in (("local pool (-j 2)", ["-j", "2"]), ("ray, 2 nodes", ["--ray-address", ADDRESS])):
        t = time.perf_counter()
        result = cluster.run(sys.executable, "-m", "melange_nb.cli", "sweep", "-p", ROOT / "params/sweeps/paper.yaml",
                             "--render", "none", "-o", outputs / f"paper-{extra[0].strip('-')}", *extra)
        wall = time.perf_counter() - t
        solved = re.search(r"solved (\d+) points in ([\d.]+) s", result.stdout)
        if result.returncode != 0 or not solved:
            print(f"paper sweep, {how}: failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
            return
        times[how] = float(solved.group(2))
        print(f"paper sweep, {how}: {solved.group(1)} points solved in {solved.group(2)} s ({wall:.0f} s with "
              f"workloads and summary)   (load {Path('/proc/loadavg').read_text().split()[0]})")
    local, ray = times.values()
    print(f"paper sweep solve time, ray 2 nodes / local pool: {ray / local:.2f}x")


SIMULATIONS = [
    ("simulate --target-attainment, Azure code trace (8,819 requests)",
     ["simulate", "--gpus", ROOT / "params/gpus/llama3.1-8b-tpot40.yaml", "--trace",
      ROOT.parent / "shared/data/azure_llm_inference_code_2023.csv", "--target-attainment", "0.99", "--format", "json"]),
    ("simulate --target-attainment, Arena mix at 20 req/s for 1 h (71,971 requests, seed profiles with hand latency)",
     ["simulate", "--gpus", ROOT / "params/gpus/llama2-7b-seed-hand-latency-tpot40.yaml", "--workload",
      ROOT / "params/workloads/arena-seed.csv", "--rate", "20", "--duration", "3600", "--target-attainment", "0.99",
      "--format", "json"]),
    ("plan --target-attainment, Azure conversation trace (12 windows of 5 min)",
     ["plan", "--trace", ROOT.parent / "shared/data/azure_llm_inference_conv_2023.csv", "--gpus",
      ROOT / "params/gpus/llama3.1-8b-tpot40.yaml", "--target-attainment", "0.99"]),
]


def simulations(cluster, outputs: Path) -> None:
    """Each command here and with --ray-address on the two-node cluster: wall time, same answer."""
    for what, args in SIMULATIONS:
        walls, answers = {}, {}
        for how, extra in (("here", []), ("ray, 2 nodes", ["--ray-address", ADDRESS])):
            out = ["-o", outputs / f"{args[0]}-{len(walls)}-{abs(hash(what))}"] if args[0] == "plan" else []
            t = time.perf_counter()
            result = cluster.run(sys.executable, "-m", "melange_nb.cli", *args, *extra, *out)
            walls[how] = time.perf_counter() - t
            if result.returncode not in (0, 1):
                print(f"{what}, {how}: failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
                return
            if args[0] == "plan":
                answers[how] = (Path(out[1]) / "plan.csv").read_text()
            else:
                answers[how] = without_timings(json.loads(result.stdout))
        same = "identical" if answers["here"] == answers["ray, 2 nodes"] else "DIFFERENT"
        print(f"{what}: here {walls['here']:.1f} s, ray 2 nodes {walls['ray, 2 nodes']:.1f} s "
              f"({walls['ray, 2 nodes'] / walls['here']:.2f}x the time); answers {same}   "
              f"(load {Path('/proc/loadavg').read_text().split()[0]})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--only", choices=["simulations"], help="run only this part")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"scale_bench: skipped: {reason}")
        return 0
    n = args.conversations
    outputs = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    env = {"MELANGE_NB_OUTPUTS": str(outputs), "TOKENIZERS_PARALLELISM": "false"}
    from melange_nb.synthetic import synthetic_path

    os.environ.update(env)
    t = time.perf_counter()
    for size in (n // 4, n) if not args.only else ():
        synthetic_path(size)      # made once, outside the timings
    if not args.only:
        print(f"made {n // 4:,} and {n:,} synthetic conversations in {time.perf_counter() - t:.0f} s")
    t = time.perf_counter()
    cluster = NamespacedCluster(worker_nodes=1, cpus=1, env=env)
    print(f"two-node Ray cluster (1 + 1 CPU, loopback only) started in {time.perf_counter() - t:.0f} s")
    try:
        if args.only == "simulations":
            simulations(cluster, outputs)
            return 0
        runs = {}
        for size in (n // 4, n):
            for engine in ("datasets", "ray"):
                result = cluster.run(sys.executable, "-c", DRIVER, engine, f"synthetic:{size}", ADDRESS)
                if result.returncode != 0:
                    print(f"{engine} on {size:,}: failed: {result.stderr.strip().splitlines()[-1:]}")
                    return 1
                runs[engine, size] = json.loads(result.stdout.strip().splitlines()[-1])
                r = runs[engine, size]
                print(f"{engine:8s} {size:>8,} conversations -> {r['requests']:,} requests: {r['seconds']:.1f} s, "
                      f"driver peak {r['peak_mb']:.0f} MB   (load {Path('/proc/loadavg').read_text().split()[0]})")
        d, r = runs["datasets", n], runs["ray", n]
        print(f"speed, {n:,} conversations, 2 cores: ray / datasets.map = {d['seconds'] / r['seconds']:.2f}x "
              f"(target >= 0.7x)")
        for engine in ("datasets", "ray"):
            small, big = runs[engine, n // 4]["peak_mb"], runs[engine, n]["peak_mb"]
            print(f"driver peak memory, {engine}: {small:.0f} MB -> {big:.0f} MB for 4x the data ({big / small:.2f}x)")
        paper_sweep(cluster, outputs)
        simulations(cluster, outputs)
    finally:
        cluster.close()
    print(f"load average: {Path('/proc/loadavg').read_text().strip()} (2 cores, shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
