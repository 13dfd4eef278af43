"""Rendering a simulated sweep's point pages: what the pages cost once the worker's simulation is reused.

Usage: python bench/point_pages_bench.py [DURATION_S] [RATES] [TARGET]   (defaults 600, 16,32,48,64, 0.99)

A small simulated sweep, one point of the paper grid per rate (the seed's Arena histogram padded to the
profile's edges; the Llama-3.1-8B A100-80GB/H100/L40S profiles with their latency models, TPOT 40 ms;
solver exact; `simulate: {duration_s: DURATION_S}` and `target_attainment: TARGET`, so each point's check
simulates its plan and searches for the cheapest plan that reaches the target; TARGET 0 leaves it out):

1. `render none`: every point solved and simulated in the workers (the results table).
2. `render all` on the same folder: nothing is solved again, every point page is rendered (plus the
   summary notebook and index.html, the same in both versions): the sweep's render phase as a user
   meets it; once more, with every page done, for the summary and index alone. Run this script on two
   versions of the code to compare them.
3. Within this one run, one page per rate rendered twice by `render_point` in this process: with the
   worker's saved check (`simulation_check`, what the sweep passes) and without it (the notebook
   simulates the plan itself, as every page did before). The ratio is the page's saving; both halves
   ran under the same machine load (printed).
"""
import json
import sys
import tempfile
import time
from pathlib import Path

from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.run import ALLOCATION_NOTEBOOK, notebook_parameters
from melange_nb.sweep import load_spec, run_sweep
from melange_nb.sweep.engine import render_point

GPUS = GPUS_DIR / "llama3.1-8b-tpot40.yaml"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ")[0]
    except OSError:
        return "unknown"


def main(duration: float, rates: list[float], target: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "sim.yaml"
        spec.write_text(json.dumps({"name": "bench-pages", "rates": rates, "solvers": ["exact"], "render": "none",
                                    "workloads": {"short": {"pad": str(WORKLOADS_DIR / "arena-seed.csv")}},
                                    "gpus": {"llama31-8b": str(GPUS)}, "gpu_names": ["A100-80GB", "H100", "L40S"],
                                    "simulate": {"duration_s": duration}, **({"target_attainment": target} if target else {})}))
        out = tmp / "out"
        quiet = lambda m: None    # noqa: E731
        start = time.perf_counter()
        run_sweep(load_spec(spec), out, workers=2, log=quiet)
        solved = time.perf_counter() - start
        print(f"{len(rates)} points solved and simulated ({duration:g} s each) in {solved:.1f} s "
              f"(load {loadavg()})")
        start = time.perf_counter()
        run_sweep(load_spec(spec), out, workers=2, render="all", log=quiet)
        rendered = time.perf_counter() - start
        print(f"render all ({len(rates)} pages, 2 workers, plus summary and index): {rendered:.1f} s "
              f"(load {loadavg()})")
        start = time.perf_counter()
        run_sweep(load_spec(spec), out, workers=2, render="all", log=quiet)
        again = time.perf_counter() - start
        print(f"the same again (every page done: summary and index only): {again:.1f} s, so the pages took "
              f"{rendered - again:.1f} s (load {loadavg()})")
        if "simulation_check" not in notebook_parameters(ALLOCATION_NOTEBOOK):
            print("this version's notebook always simulates: no within-run comparison")
            return
        manifest = json.loads((out / "manifest.json").read_text())
        reuse = simulate = 0.0
        for pid in manifest["points"]:
            params = _params(out, pid)
            assert params["simulation_check"], "the sweep gave its page no saved check"
            for saved in (True, False):
                p = {**params, "simulation_check": params["simulation_check"] if saved else None}
                start = time.perf_counter()
                status = render_point(str(tmp / "again"), pid, p, True)
                took = time.perf_counter() - start
                assert status["error"] is None, status
                if saved:
                    reuse += took
                else:
                    simulate += took
        n = len(manifest["points"])
        print(f"one page per rate, in this process: {reuse / n:.2f} s/page reusing the worker's check, "
              f"{simulate / n:.2f} s/page simulating again: {simulate / reuse:.2f}x (load {loadavg()})")


def _params(out: Path, pid: str) -> dict:
    """The parameters papermill recorded in the point's executed notebook, paths made absolute again."""
    nb = json.loads((out / pid / ALLOCATION_NOTEBOOK).read_text())
    params = dict(nb["metadata"]["papermill"]["parameters"])
    for key in ("workload", "gpus", "simulation_check"):     # beside the sweep, else project files (params/...)
        if params.get(key) and (out / pid / params[key]).exists():
            params[key] = str((out / pid / params[key]).resolve())
    params.pop("output_dir", None)
    return params


if __name__ == "__main__":
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
    rates = [float(r) for r in sys.argv[2].split(",")] if len(sys.argv) > 2 else [16.0, 32.0, 48.0, 64.0]
    main(duration, rates, float(sys.argv[3]) if len(sys.argv) > 3 else 0.99)
