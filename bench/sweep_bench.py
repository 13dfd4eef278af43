"""Sweep engine speed: a 1,000-point solve-only grid, and the per-point speed-up over a kernel per point.

Usage: python bench/sweep_bench.py [N_RATES] [N_KERNEL_POINTS]   (defaults 250 and 6)

1. The grid: 2 workloads (the seed's Arena histogram; the Azure LLM conversation trace 2023 bucketed
   on the same edges, dropped requests >= 2000 tokens, when ../shared/data is present, else an 80/20
   blend of Arena with the Azure-free long bucket below) x 2 GPU sets (the seed's Llama-2-7B A10G/A100
   profile; the same throughputs with the A100 at $2.50/h) x N_RATES rates (0.25 req/s steps),
   solver exact, `render none`: the points, results table, summary notebook and index.html.
   Target: 1,000 points in < 60 s on 2 cores.
2. Today's kernel-per-point path on a subset: the allocation notebook executed by papermill plus
   its two HTML pages for each of N_KERNEL_POINTS points, `workers` = cores (what every point cost
   before the engine solved in-process). Per-point speed-up = (kernel path s/point) / (grid s/point);
   target >= 20x. Both are measured in this one run, so machine load affects both.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.pools import worker_pool
from melange_nb.sweep import load_spec, run_sweep
from melange_nb.sweep.engine import render_point

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def second_workload(tmp: Path) -> tuple[Path, str]:
    """The Azure conversation trace on the seed's edges, or (no shared data) a blend with a long bucket."""
    from melange_nb.workload import build_workload, read_workload, save_histogram

    trace = SHARED / "azure_llm_inference_conv_2023.csv"
    if trace.is_file():
        workload, _, report = build_workload(trace=str(trace), overflow="drop")
        return save_histogram(workload, report, tmp / "azure-conv.csv"), "Azure LLM conversation trace 2023"
    arena = read_workload(WORKLOADS_DIR / "arena-seed.csv")
    long = arena * 0.0
    long.loc["1000-2000", "250-500"] = 1.0
    (arena * 0.8 + long * 0.2).to_csv(tmp / "blend.csv")
    return tmp / "blend.csv", "80/20 blend of Arena and one long bucket (shared data absent)"


def main(n_rates: int, n_kernel: int) -> None:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        other, other_label = second_workload(tmp)
        cheap = tmp / "llama2-7b-a100-2.50.yaml"
        cheap.write_text((GPUS_DIR / "llama2-7b-seed.yaml").read_text().replace("cost: 3.67", "cost: 2.50"))
        rates = [0.25 * k for k in range(1, n_rates + 1)]
        spec_path = tmp / "grid.yaml"
        spec_path.write_text(
            "name: bench-grid\n"
            f"rates: {rates}\n"
            f"workloads: {{arena-seed: {WORKLOADS_DIR / 'arena-seed.csv'}, other: {other}}}\n"
            f"gpus: {{seed: {GPUS_DIR / 'llama2-7b-seed.yaml'}, a100-cheap: {cheap}}}\n"
            "solvers: [exact]\nrender: none\n")
        spec = load_spec(spec_path)
        start = time.perf_counter()
        state = run_sweep(spec, tmp / "grid", workers=cores, log=lambda m: None)
        grid_s = time.perf_counter() - start
        points = len(state["points"])
        assert all(p["status"] == "done" for p in state["points"].values())
        assert len(pd.read_parquet(tmp / "grid" / "results.parquet")) == points * 3
        assert (tmp / "grid" / "03_sweep_summary-shared.html").is_file() and (tmp / "grid" / "index.html").is_file()

        # the kernel-per-point path: one papermill kernel and two HTML pages per point
        params = {"workload": str(WORKLOADS_DIR / "arena-seed.csv"), "gpus": str(GPUS_DIR / "llama2-7b-seed.yaml"),
                  "slice_factor": 1, "solver": ["exact"], "time_limit": None, "gpu_names": [], "constraints": {}}
        (tmp / "kernel").mkdir()
        start = time.perf_counter()
        pool = worker_pool(cores)
        futures = [pool.submit(render_point, str(tmp / "kernel"), f"rate{r}", {**params, "rate": float(r)}, True)
                   for r in range(1, n_kernel + 1)]
        errors = [f.result()["error"] for f in futures]
        pool.shutdown()
        kernel_s = time.perf_counter() - start
        assert not any(errors), errors
    per_grid, per_kernel = grid_s / points, kernel_s / n_kernel
    print(f"grid: {points} points = 2 workloads (arena-seed, {other_label}) x 2 GPU sets x {n_rates} rates, "
          f"solver exact, render none, {cores} cores")
    print(f"  in-process engine (results table, summary notebook, index included): {grid_s:.1f} s, "
          f"{per_grid * 1000:.1f} ms/point (target < 60 s for 1,000 points)")
    print(f"  kernel per point (papermill + 2 HTML pages, {n_kernel} points, workers={cores}): {kernel_s:.1f} s, "
          f"{per_kernel:.2f} s/point")
    print(f"  per-point speed-up: {per_kernel / per_grid:.0f}x (target >= 20x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 250, int(sys.argv[2]) if len(sys.argv) > 2 else 6)
