"""Planning a one-week trace at 5-minute windows (2,016 windows), in one run.

Usage: python bench/plan_bench.py [TRACE] (default ../shared/data/azure_llm_inference_conv_2023.csv).
The week is synthesized by tiling the Azure conversation hour 168 times with a daily rate pattern:
hour h keeps each request of the hour with probability 0.35 + 0.65 x (1 - cos(2 pi (h - 4) / 24)) / 2
(quietest at 04:00, busiest at 16:00), seeded, so request sizes and within-hour bursts are real.
It is written to a temporary CSV, then `melange_nb.plan.plan_trace` plans it (exact solver, seed
Llama-2-7B profiles): reading and checking the trace, cutting windows and histograms, solving every
window and every single-GPU baseline, the static peak program. Target: < 60 s on 2 cores.
"""
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from melange_nb.config import GPUS_DIR, PROJECT_ROOT
from melange_nb.plan import plan_trace, read_timed_trace
from melange_nb.profiles import load_gpus

TRACE = PROJECT_ROOT.parent / "shared" / "data" / "azure_llm_inference_conv_2023.csv"
TARGET_SECONDS = 60


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def synthesize_week(trace: Path, out: Path, seed: int = 0) -> int:
    """Tile the trace's hour over 7 days with a daily rate pattern; return the number of requests."""
    hour, _ = read_timed_trace(trace)
    offset = (hour["timestamp"] - hour["timestamp"].iloc[0]).dt.total_seconds().to_numpy() % 3600
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01 00:00:00")
    parts = []
    for h in range(7 * 24):
        keep = rng.random(len(hour)) < 0.35 + 0.65 * (1 - math.cos(2 * math.pi * ((h % 24) - 4) / 24)) / 2
        parts.append(pd.DataFrame({"TIMESTAMP": start + pd.to_timedelta(h * 3600 + offset[keep], unit="s"),
                                   "ContextTokens": hour["input_tokens"].to_numpy()[keep],
                                   "GeneratedTokens": hour["output_tokens"].to_numpy()[keep]}))
    week = pd.concat(parts, ignore_index=True).sort_values("TIMESTAMP", kind="stable")
    week.to_csv(out, index=False)
    return len(week)


def main(trace: Path) -> None:
    gpus = load_gpus(GPUS_DIR / "llama2-7b-seed.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "week.csv"
        n = synthesize_week(trace, path)
        timings = {}
        for workers in (1, 2):
            began, cpu = time.perf_counter(), _cpu_seconds()
            plan = plan_trace(path, gpus, window="5min", solver="exact", workers=workers)
            timings[workers] = (time.perf_counter() - began, plan.totals["solve_seconds"], _cpu_seconds() - cpu)
        seconds = min(t[0] for t in timings.values())
    t = plan.totals
    print(f"trace: {trace.name} tiled over one week with a daily rate pattern: {n:,} requests, "
          f"{t['windows']} windows of 5 min, rates {plan.table['rate'].min():.2f}-{plan.table['rate'].max():.2f} req/s")
    print(f"profiles: llama2-7b-seed.yaml (A10G, A100); solver exact: {t['windows']} window solves, single-GPU "
          f"baselines for all windows at once; static peak program: {t['static_peak'].get('windows_in_program')} "
          f"windows, {t['static_peak'].get('rounds')} round(s)")
    for workers, (total, solving, cpu) in timings.items():
        print(f"plan_trace, {workers} worker(s): {total:.1f} s in all (solving windows {solving:.1f} s of it); "
              f"CPU time {cpu:.1f} s (this process and its workers: the wall time an otherwise idle machine would need "
              f"with one worker)")
    print(f"best: {seconds:.1f} s; target < {TARGET_SECONDS} s on 2 cores: {'met' if seconds < TARGET_SECONDS else 'NOT met'} "
          f"({seconds / TARGET_SECONDS:.2f} of the budget); 2 workers / 1 worker: {timings[2][0] / timings[1][0]:.2f}; "
          f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(t["headline"])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else TRACE)
