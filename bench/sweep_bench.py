"""Sweep throughput: melange-nb's parallel sweep vs a serial loop of `papermill` CLI calls, same points.

Usage: python bench/sweep_bench.py [N_RATES] (default 24).
Both run the allocation notebook on the seed's Arena workload and Llama-2-7B profiles at rates
1..N with solvers [exact, melange]. The sweep uses `workers` = cores and also renders two HTML
reports per point, the results table, the summary notebook and index.html; the serial loop only
executes notebooks. Prints wall seconds, seconds per point and the speed-up (target >= 2x on 2 cores).
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from melange_nb.config import GPUS_DIR, NOTEBOOKS_DIR, WORKLOADS_DIR
from melange_nb.sweep import load_spec, run_sweep


def main(n: int) -> None:
    rates = [float(r) for r in range(1, n + 1)]
    workload, gpus = str(WORKLOADS_DIR / "arena-seed.csv"), str(GPUS_DIR / "llama2-7b-seed.yaml")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = load_spec(None, workload=workload, gpus=gpus, rates=rates, solvers=["exact", "melange"], name="bench")
        start = time.perf_counter()
        state = run_sweep(spec, tmp / "sweep", workers=cores, log=lambda m: None)
        sweep_s = time.perf_counter() - start
        assert all(p["status"] == "done" for p in state["points"].values())

        papermill = Path(sys.executable).with_name("papermill")
        start = time.perf_counter()
        for rate in rates:
            point = tmp / "serial" / f"rate{rate:g}"
            point.mkdir(parents=True)
            subprocess.run([str(papermill), str(NOTEBOOKS_DIR / "02_allocation.ipynb"), str(point / "out.ipynb"),
                            "-p", "workload", workload, "-p", "gpus", gpus, "-p", "rate", str(rate),
                            "-y", "solver: [exact, melange]", "-p", "output_dir", str(point), "-k", "python3",
                            "--no-progress-bar", "--cwd", str(point)], check=True, capture_output=True)
        serial_s = time.perf_counter() - start
    print(f"{n} points (rates 1..{n}), arena-seed x llama2-7b-seed, solvers [exact, melange], {cores} cores")
    print(f"melange-nb sweep (workers={cores}, + HTML x2 per point, summary, index): {sweep_s:.1f} s, "
          f"{sweep_s / n:.2f} s/point")
    print(f"serial papermill CLI loop (execute only):                {serial_s:.1f} s, {serial_s / n:.2f} s/point")
    print(f"speed-up: {serial_s / sweep_s:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
