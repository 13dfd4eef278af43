"""Predicted profiles: a 10x6-bucket profile for 5 GPU types, cold and repeated (cache), in one run.

Usage: python bench/predict_bench.py
Cold = a fresh Python process with an empty cache: the predict call includes importing
aiconfigurator-core, loading each system's database and every estimate. Repeat = another fresh
process with that cache. Targets: cold < 10 s, repeat < 1 s (the predict call; Python start and
importing pandas/melange_nb are printed apart). Llama-3.1-8B (aiconfigurator's bundled config),
vLLM, mean TPOT <= 40 ms, input edges 0..16000 plus an open last bucket (10 input x 6 output
buckets), prices from params/prices/runpod-serverless.yaml.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

SYSTEMS = ["h100_sxm", "a100_sxm", "l40s", "h200_sxm", "b200_sxm"]
CODE = f"""
import json, time
t0 = time.perf_counter()
from melange_nb.profiles.predict import predict_profiles
t1 = time.perf_counter()
gpus = predict_profiles("meta-llama/Meta-Llama-3.1-8B", {SYSTEMS!r}, slo="tpot_ms=40", open_last_input=True)
t2 = time.perf_counter()
assert {{g.tputs.shape for g in gpus.values()}} == {{(10, 6)}}
print(json.dumps({{"import": t1 - t0, "predict": t2 - t1, "first": {{n: round(g.tputs.iloc[0, 0], 1) for n, g in gpus.items()}}}}))
"""


def run(env) -> tuple[float, dict]:
    """Wall seconds of a fresh process, and what it printed plus its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MELANGE_NB_OUTPUTS=tmp)
        cold_wall, cold = run(env)
        repeat_wall, repeat = run(env)
    assert cold["first"] == repeat["first"], (cold["first"], repeat["first"])
    print(f"5 GPU types x 10x6 buckets ({', '.join(SYSTEMS)}), Llama-3.1-8B, vllm, mean TPOT <= 40 ms")
    print(f"bucket 0-25 in x 0-25 out, req/s: {cold['first']}")
    print(f"cold predict call (empty cache):  {cold['predict']:6.2f} s   target < 10 s  "
          f"{'OK' if cold['predict'] < 10 else 'MISSED'}   (process wall {cold_wall:.2f} s)")
    print(f"repeat predict call (cache):      {repeat['predict']:6.2f} s   target < 1 s   "
          f"{'OK' if repeat['predict'] < 1 else 'MISSED'}   (process wall {repeat_wall:.2f} s)")
    print(f"CPU seconds (user+sys) of the whole cold process: {cold['cpu']:.2f} s, of the repeat process: "
          f"{repeat['cpu']:.2f} s (what the wall times approach on an idle core)")
    print(f"Python start + import melange_nb (pandas): {repeat['import']:.2f} s; "
          f"cold/repeat call ratio {cold['predict'] / repeat['predict']:.0f}x; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
