"""Confirm a plan on real servers: per-pool load tests out (AIPerf), measured records in, measured vs simulated.

``melange-nb eval plan`` splits a request stream (the one ``simulate`` replays) into one pool per
GPU type, each request exactly where the simulator sends it (same seed, same assignment), and
writes a folder:

``requests.csv``
    every request of the stream: ``request`` (its id, ``r000012``), ``arrival_s``, ``input_tokens``,
    ``output_tokens``, the bucket labels, ``gpu`` (its pool) and ``timestamp_ms``.
``pools/<gpu>/trace.jsonl``
    the pool's requests in AIPerf's Mooncake-trace JSONL, one line per request:
    ``{"timestamp": ms since the stream's first request, "input_length": N, "output_length": M,
    "session_id": "r000012"}``. AIPerf 0.13 replays it on a fixed schedule
    (``--custom-dataset-type mooncake_trace --fixed-schedule``, and
    ``--fixed-schedule-start-offset 0``: 0.13 otherwise shifts each file to start at its first
    timestamp; this way a timestamp is an offset from the run's start and every pool keeps the
    stream's clock). AIPerf synthesizes a prompt of exactly ``input_length`` tokens of
    its tokenizer and sends ``max_tokens = output_length``; ``--extra-inputs ignore_eos:true`` makes
    vLLM/SGLang generate all of them. The ``session_id`` comes back in each record as
    ``metadata.conversation_id``: that is how a record finds its request.
``run_eval.sh``
    runs every pool's AIPerf at once against its endpoint (``--endpoint GPU=URL``), each into
    ``pools/<gpu>/aiperf.partial/``, renamed ``pools/<gpu>/aiperf/`` when AIPerf succeeds. Re-running
    it resumes: finished pools are skipped. Every value in it is quoted with ``shlex.quote``.
``README.md``
    the plan, the stream, the requests each pool received beside the plan's routing share, the
    commands, and what to run next.
``eval.json``
    the manifest ``eval import`` reads (plan, SLO, stream, pools, endpoints).
``simulated.csv``
    the simulation of the same plan and stream, per request (its summary is in ``eval.json``),
    when every GPU type of the plan has a latency model.

``melange-nb eval import DIR`` reads each pool's ``aiperf/profile_export.jsonl`` (one
``MetricRecordInfo`` per request: ``metadata.conversation_id``, ``metadata.credit_issued_ns``,
``metrics.time_to_first_token`` / ``inter_token_latency`` / ``request_latency`` /
``output_sequence_length`` as ``{"value", "unit"}``, and ``error`` (``{code, type, message}``, e.g.
HTTP 500, or ``ClientConnectorError``) when the request failed; AIPerf exits 0 when some requests
fail, 1 when all do, and then the pool stays unfinished for the next ``run_eval.sh``) and,
when present, ``profile_export_aiperf.json`` (AIPerf's version, the timing mode). Per request:
TTFT, TPOT (AIPerf's inter-token latency: (latency - TTFT) / (output tokens - 1)) and e2e; the SLO
is checked per request, every condition of the profile's SLO on that request's own value, as the
simulator checks it. A request that failed or has no record is a miss, and the report counts them.
Attainment and p50/p90/p99 per pool and overall (percentiles over requests that completed) are set
beside the simulation's, in ``comparison.csv``, ``measured.csv`` and ``report.html`` (answer first).

Records that do not belong to the pool's trace (unknown or repeated request ids, more records than
requests, arrival times off the trace's schedule), a pool without records, or a file that is not
AIPerf's per-request export are refused in one line naming the file; nothing is written then. So are
a plan without routing shares and an endpoint for a GPU type the plan does not use.

In Python: ``plan_eval(DIR, stream, plan, gpus, endpoints=..., model=...)`` (the stream and plan of
``melange_nb.simulate``), then ``result = import_eval(DIR)``, ``result.headline``,
``text_table(result)``, ``write_import(result)``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from .errors import InputError
from .files import atomic_write, check_output_dir, read_json, write_json, write_text
from .simulate import MAX_REQUESTS      # bound on one stream (a few GB of records)

EVAL_FORMAT = "melange-nb eval v1"
MANIFEST = "eval.json"
REQUESTS = "requests.csv"
SIMULATED = "simulated.csv"
POOLS = "pools"
TRACE = "trace.jsonl"
RESULTS = "aiperf"                       # a pool's finished AIPerf artifact folder
RECORDS = "profile_export.jsonl"
SUMMARY = "profile_export_aiperf.json"
AIPERF_VERSION = "0.13.0"               # the version whose flags and files this module follows
STATS = ("p50", "p90", "p99")
METRICS = ("ttft", "tpot", "e2e")
# A record's send time may drift from its trace timestamp by AIPerf's scheduling lag; beyond this,
# for more than a tenth of a pool's records, the records belong to another schedule.
SCHEDULE_TOLERANCE_MS = 1000.0
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "sec": 1000.0}


# ---------------------------------------------------------------- writing side: one load test per pool

def pool_folder(gpu: str, taken: Sequence[str] = ()) -> str:
    """A folder name for a GPU type's pool: the name made file-safe, unique among `taken`."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(gpu)).strip("-.") or "gpu"
    name, k = base, 2
    while name.lower() in {t.lower() for t in taken}:
        name, k = f"{base}-{k}", k + 1
    return name


def request_ids(n: int) -> list[str]:
    """``r000000``, ``r000001``, ...: the id of each request of the stream, carried through AIPerf."""
    width = max(6, len(str(max(n - 1, 0))))
    return [f"r{i:0{width}d}" for i in range(n)]


def parse_endpoints(items: Sequence[str], *, field: str = "--endpoint") -> dict[str, str]:
    """``["A10G=http://h:8000", ...]`` -> ``{"A10G": "http://h:8000"}`` (the name is what precedes the first ``=``)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, url = str(item).partition("=")
        if not sep or not name.strip() or not url.strip():
            raise InputError(field, f"expects GPU=URL, e.g. A10G=http://10.0.0.5:8000, got {item!r}")
        if name.strip() in out:
            raise InputError(field, f"names GPU type {name.strip()!r} twice; give one URL per GPU type")
        out[name.strip()] = url.strip()
    return out


def check_endpoints(endpoints: Mapping[str, str], pools: Sequence[str], plan_gpus: Sequence[str] = (), *,
                    field: str = "--endpoint") -> dict[str, str]:
    """Every pool needs an http(s) base URL, and every URL names a GPU type of the plan (`plan_gpus`; a
    type that received no request of this stream may have one, unused). Returns the pools' URLs."""
    known = list(dict.fromkeys([*pools, *plan_gpus]))
    extra = [g for g in endpoints if g not in known]
    if extra:
        raise InputError(field, f"names GPU type {extra[0]!r}, which the plan does not use; "
                                f"give one URL for each of {', '.join(map(str, pools))}")
    missing = [g for g in pools if g not in endpoints]
    if missing:
        raise InputError(field, f"no URL for GPU type {missing[0]!r}; give one per GPU type of the plan "
                                "as --endpoint NAME=http://HOST:8000")
    for g, url in endpoints.items():
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in str(url)):
            raise InputError(field, f"{g!r}: {url!r} is not an http(s) base URL such as http://10.0.0.5:8000")
    return {g: str(endpoints[g]) for g in pools}


def pool_trace_lines(requests: pd.DataFrame) -> str:
    """Mooncake-trace JSONL for one pool (rows with ``request``, ``timestamp_ms``, token counts)."""
    return "".join(json.dumps({"timestamp": float(r.timestamp_ms), "input_length": int(r.input_tokens),
                               "output_length": int(r.output_tokens), "session_id": r.request}) + "\n"
                   for r in requests.itertuples(index=False))


def aiperf_command(*, url: str, model: str, tokenizer: str, trace: str, artifact_dir: str,
                   endpoint_type: str = "completions", seed: int = 0, extra: Sequence[str] = (),
                   program: str = "aiperf") -> list[str]:
    """One pool's AIPerf 0.13 command line: a fixed-schedule replay of its Mooncake trace, streaming
    (TTFT needs it), every output token generated (``ignore_eos``)."""
    return [program, "profile", "--model", model, "--url", url, "--endpoint-type", endpoint_type, "--streaming",
            "--tokenizer", tokenizer, "--input-file", trace, "--custom-dataset-type", "mooncake_trace",
            "--fixed-schedule", "--fixed-schedule-start-offset", "0", "--extra-inputs", "ignore_eos:true",
            "--random-seed", str(int(seed)), "--artifact-dir", artifact_dir, "--ui-type", "none", *extra]


def _quoted(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


_SCRIPT_HEAD = """#!/usr/bin/env bash
# Replays each GPU pool's share of the request stream against its endpoint with AIPerf, every pool
# at once. Written by `melange-nb eval plan`; see README.md. Needs AIPerf {version}
# (pip install aiperf=={version}); AIPERF=/path/to/aiperf picks another binary.
# Re-run to resume: a pool with finished results (pools/<gpu>/aiperf/) is skipped; a failed or
# interrupted one starts again. Then: melange-nb eval import <this folder>
set -u
cd "$(dirname "$0")" || exit 1
AIPERF="${{AIPERF:-aiperf}}"
stop() {{  # Ctrl-C reaches AIPerf through the terminal; a TERM is passed on to every pool's AIPerf
  for job in $(jobs -p); do pkill -TERM -P "$job" 2>/dev/null; kill "$job" 2>/dev/null; done
  echo "interrupted: run this script again to resume" >&2; exit 130
}}
trap stop INT TERM

run_pool() {{  # run_pool DIR COMMAND...: AIPerf into DIR/aiperf.partial, kept as DIR/aiperf when it succeeds
  local dir="$1"; shift
  if [ -f "$dir/aiperf/profile_export.jsonl" ]; then
    echo "$dir: finished before, skipped (delete $dir/aiperf to run it again)"; return 0
  fi
  rm -rf -- "$dir/aiperf.partial"
  "$@" > "$dir/aiperf.log" 2>&1
  local rc=$?
  if [ "$rc" -eq 0 ] && [ -f "$dir/aiperf.partial/profile_export.jsonl" ]; then
    mv -- "$dir/aiperf.partial" "$dir/aiperf" && echo "$dir: done"
  else
    echo "$dir: AIPerf failed (exit $rc), see $dir/aiperf.log; run this script again to retry" >&2
    return 1
  fi
}}

"""

_SCRIPT_TAIL = """
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
if [ "$failed" -eq 0 ]; then echo "every pool done; next: melange-nb eval import $(pwd)"; fi
exit "$failed"
"""


def run_script(pools: Sequence[tuple[str, Sequence[str]]]) -> str:
    """run_eval.sh for (pool folder, AIPerf argv) pairs; argv[0] becomes "$AIPERF"."""
    lines = [f'run_pool {shlex.quote(folder)} "$AIPERF" {_quoted(argv[1:])} &' for folder, argv in pools]
    return _SCRIPT_HEAD.format(version=AIPERF_VERSION) + "\n".join(lines) + "\n" + _SCRIPT_TAIL


def routing_shares(requests: pd.DataFrame, plan_shares: Mapping[str, float]) -> pd.DataFrame:
    """Per GPU type: requests received, the share of the stream that is, and the plan's share."""
    n = len(requests)
    counts = requests["gpu"].value_counts()
    names = list(dict.fromkeys([*plan_shares, *counts.index]))
    out = pd.DataFrame({"requests": [int(counts.get(g, 0)) for g in names],
                        "routed_share": [counts.get(g, 0) / n if n else 0.0 for g in names],
                        "plan_share": [float(plan_shares.get(g, 0.0)) for g in names]},
                       index=pd.Index(names, name="gpu"))
    out["difference"] = out["routed_share"] - out["plan_share"]
    return out


def _fence(text: str) -> str:
    """A Markdown code fence longer than any backtick run in `text` (so text from input files cannot close it)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * max(3, longest + 1)
    return f"{tick}\n{text}\n{tick}"


def _md_cell(text: Any) -> str:
    """A Markdown table cell as literal text: pipes, backslashes, HTML and newlines neutralised."""
    s = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", str(text)).replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"[\r\n]+", " ", s).replace("`", "&#96;").replace("*", "\\*").replace("_", "\\_")


def readme(manifest: Mapping, shares: pd.DataFrame, commands: Mapping[str, str]) -> str:
    """README.md of an eval folder: plan, stream, routed vs plan shares, commands, next steps."""
    plan, stream = manifest["plan"], manifest["stream"]
    rows = "\n".join(f"| {_md_cell(g)} | {_md_cell(manifest['pools'][g]['endpoint'])} | {int(r.requests):,} | "
                     f"{r.routed_share:.1%} | {r.plan_share:.1%} | {round(r.difference * 100, 1) + 0.0:+.1f} |"
                     for g, r in zip(shares.index, shares.itertuples()))
    cmd_blocks = "\n\n".join(f"{_md_cell(g)} ({manifest['pools'][g]['folder']}):\n\n{_fence(c)}"
                             for g, c in commands.items())
    n_fallback = stream.get("fallback_requests", 0)
    fallback = (f"\n{n_fallback:,} requests fall in buckets the plan does not route; each went to the plan's "
                "GPU type with the highest profiled throughput there." if n_fallback else "")
    sim = manifest.get("simulation") or {}
    sim_line = (f"The simulation of the same plan and stream is in `{SIMULATED}` ({_md_cell(sim.get('headline', ''))})."
                if sim.get("file") else f"No simulation: {_md_cell(sim.get('skipped', 'not run'))}.")
    return f"""# Load test of the plan {_md_cell(plan['mix'])}

Plan: {_md_cell(plan['mix'])}, ${plan['cost_per_hour']:.2f}/h ({_md_cell(plan['source'])}).
SLO: {_md_cell(manifest['slo_text'])}. Model {_md_cell(manifest['model'])}, tokenizer {_md_cell(manifest['tokenizer'])}.

Stream: {stream['requests']:,} requests over {stream['duration_s']:.1f} s ({_md_cell(stream['source'])}).
Each request goes to the GPU type the simulator assigns it (seed {stream['seed']}); every request is in
exactly one pool.

## Requests per pool: routed vs the plan's routing

| GPU type | endpoint | requests | routed share | plan share | difference (points) |
|---|---|---:|---:|---:|---:|
{rows}

The routed share is what this stream's requests received; the plan share is {_md_cell(stream['plan_share'])}.
They differ by sampling: a generated stream draws each request's bucket from the workload's shares, and
each request goes to one GPU type, drawn with its bucket's routing shares.{fallback}

## Run it

Needs AIPerf {AIPERF_VERSION} (`pip install aiperf=={AIPERF_VERSION}`) on a machine that reaches every
endpoint, and the tokenizer above (a Hugging Face id or a local folder). Each pool is replayed on a
fixed schedule: timestamps are milliseconds since the stream's first request, counted from each
AIPerf run's start; prompts have exactly `input_length` tokens and `ignore_eos` makes the server
generate `output_length` tokens.

{_fence("bash run_eval.sh")}

It runs every pool at once and resumes when run again (finished pools are skipped). Then read the
results back and compare them with the simulation:

{_fence("melange-nb eval import .")}

{sim_line}

The command of each pool (what `run_eval.sh` runs, `aiperf` for `$AIPERF`):

{cmd_blocks}
"""


def pool_commands(manifest: Mapping) -> dict[str, list[str]]:
    """The AIPerf argv of every pool of an eval manifest (paths relative to the eval folder)."""
    out = {}
    for gpu, pool in manifest["pools"].items():
        out[gpu] = aiperf_command(url=pool["endpoint"], model=manifest["model"], tokenizer=manifest["tokenizer"],
                                  trace=f"{pool['folder']}/{TRACE}", artifact_dir=f"{pool['folder']}/{RESULTS}.partial",
                                  endpoint_type=manifest["endpoint_type"], seed=manifest["stream"]["seed"],
                                  extra=manifest.get("aiperf_args", []))
    return out


def stream_requests(stream: pd.DataFrame) -> pd.DataFrame:
    """The assigned stream with request ids and Mooncake timestamps (ms since the first request)."""
    for col in ("arrival_s", "input_tokens", "output_tokens", "gpu"):
        if col not in stream.columns:
            raise InputError("stream", f"has no column {col!r}; it comes from simulate's stream and assignment")
    if len(stream) == 0:
        raise InputError("stream", "has no requests; give a longer --duration or a trace with requests")
    if len(stream) > MAX_REQUESTS:
        raise InputError("stream", f"has {len(stream):,} requests, more than {MAX_REQUESTS:,}; shorten --duration")
    out = stream.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    out.insert(0, "request", request_ids(len(out)))
    t0 = float(out["arrival_s"].iloc[0])
    out["timestamp_ms"] = ((out["arrival_s"] - t0) * 1000.0).round(3)
    return out


def check_options(out_dir: str | Path, model: str, endpoint_type: str) -> Path:
    """The output folder (new or empty, writable), the model name and the endpoint type, checked before any work."""
    out_dir = check_output_dir(out_dir, "-o")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError("-o", f"{out_dir} is not empty; an eval folder is written once (run its run_eval.sh to "
                               "resume a load test), so choose a new folder")
    if not model or not str(model).strip():
        raise InputError("--model", "name the model the servers serve (AIPerf sends it in every request)")
    if endpoint_type not in ("completions", "chat"):
        raise InputError("--endpoint-type", f"must be completions or chat, got {endpoint_type!r}")
    return out_dir


def write_eval(out_dir: str | Path, stream: pd.DataFrame, *, endpoints: Mapping[str, str], model: str,
               tokenizer: str | None, plan: Mapping, plan_shares: Mapping[str, float], slo, stream_info: Mapping,
               simulated: pd.DataFrame | None = None, simulation: Mapping | None = None,
               endpoint_type: str = "completions", aiperf_args: Sequence[str] = ()) -> list[Path]:
    """Write an eval folder (see the module docstring) from a stream assigned to GPU types.

    `plan`: ``{mix, cost_per_hour, source, counts}``; `plan_shares`: GPU type -> the plan's share of
    requests; `stream_info`: ``{source, seed}``; `simulated`: the simulator's per-request rows of
    this plan and stream (or None with `simulation` = ``{"skipped": why}``). Everything is checked
    before the folder appears; it is built beside `out_dir` and renamed into place.
    """
    from .profiles import parse_slo

    out_dir = check_options(out_dir, model, endpoint_type)
    requests = stream_requests(stream)
    plan_gpus = [g for g, c in (plan.get("counts") or {}).items() if c]
    pools = [g for g in plan_gpus if (requests["gpu"] == g).any()]
    pools += sorted(set(requests["gpu"]) - set(pools), key=str)
    endpoints = check_endpoints(endpoints, pools, plan_gpus)
    slo = parse_slo(slo)
    folders: dict[str, str] = {}
    for g in pools:
        folders[g] = pool_folder(g, list(folders.values()))
    shares = routing_shares(requests, {g: plan_shares.get(g, 0.0) for g in pools})
    duration = float(requests["arrival_s"].iloc[-1] - requests["arrival_s"].iloc[0])
    manifest = {
        "format": EVAL_FORMAT, "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "plan": dict(plan), "slo": slo, "slo_text": slo_text(slo), "model": str(model),
        "tokenizer": str(tokenizer or model), "endpoint_type": endpoint_type, "aiperf_version": AIPERF_VERSION,
        "aiperf_args": [str(a) for a in aiperf_args],
        "stream": {"plan_share": "the plan's routing", **dict(stream_info), "requests": len(requests),
                   "duration_s": duration},
        "pools": {g: {"folder": f"{POOLS}/{folders[g]}", "endpoint": endpoints[g],
                      "requests": int(shares.at[g, "requests"]), "routed_share": float(shares.at[g, "routed_share"]),
                      "plan_share": float(shares.at[g, "plan_share"])} for g in pools},
        "simulation": dict(simulation or {}),
    }
    commands = pool_commands(manifest)
    shown = {g: _quoted(argv).replace(f"{RESULTS}.partial", RESULTS) for g, argv in commands.items()}
    files: dict[str, str] = {"run_eval.sh": run_script([(manifest["pools"][g]["folder"], argv)
                                                        for g, argv in commands.items()])}
    for g in pools:
        files[f"{manifest['pools'][g]['folder']}/{TRACE}"] = pool_trace_lines(requests[requests["gpu"] == g])
    files["README.md"] = readme(manifest, shares, shown)
    if simulated is not None:
        if len(simulated) != len(requests):
            raise ValueError("the simulated rows are not the stream's requests")
        simulated = simulated.sort_values("arrival_s", kind="stable").reset_index(drop=True)
        simulated.insert(0, "request", requests["request"].to_numpy())
    return _write_folder(out_dir, files, frames={REQUESTS: requests, **({SIMULATED: simulated} if simulated is not None else {})},
                         manifest=manifest)


def _write_folder(out_dir: Path, files: Mapping[str, str], *, frames: Mapping[str, pd.DataFrame],
                  manifest: Mapping) -> list[Path]:
    """Build the folder under a temporary name beside `out_dir`, then rename it into place."""
    import os
    import shutil

    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, text in files.items():
            write_text(tmp / rel, text)
        (tmp / "run_eval.sh").chmod(0o755)
        for rel, frame in frames.items():
            atomic_write(tmp / rel, lambda p, f=frame: f.to_csv(p, index=False))
        write_json(tmp / MANIFEST, manifest)
        if out_dir.exists():
            out_dir.rmdir()                     # empty (checked above)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def plan_shares(plan, workload: pd.DataFrame) -> dict[str, float]:
    """The plan's share of requests per GPU type: its routing applied to the histogram it was made for
    (buckets it does not route left out)."""
    from .workload import INPUT_AXIS, OUTPUT_AXIS

    weight = workload.stack().rename("weight").rename_axis([INPUT_AXIS, OUTPUT_AXIS]).reset_index()
    routes = plan.routes.merge(weight, on=[INPUT_AXIS, OUTPUT_AXIS])
    total = routes.groupby([INPUT_AXIS, OUTPUT_AXIS])["share"].transform("sum")
    mass = (routes["share"] / total * routes["weight"]).groupby(routes["gpu"]).sum()
    return {g: float(v / mass.sum()) for g, v in mass.items() if v > 0} if mass.sum() > 0 else {}


def expected_shares(assigned: pd.DataFrame, plan) -> dict[str, float]:
    """The plan's share of this stream per GPU type: the mean, over requests, of the routing share its
    bucket (and window) gives each type (a request in a bucket the plan does not route counts for the
    type it falls back to). The routed shares differ from these only by the seeded draws."""
    from .workload import INPUT_AXIS, OUTPUT_AXIS

    routes = plan.routes.groupby(["window", INPUT_AXIS, OUTPUT_AXIS, "gpu"], sort=False)["share"].sum()
    total = routes.groupby(level=[0, 1, 2]).transform("sum")
    routes = (routes / total).unstack("gpu", fill_value=0.0)
    keys = pd.MultiIndex.from_arrays([assigned["window"], assigned["input_bucket"], assigned["output_bucket"]])
    per = routes.reindex(keys).fillna(0.0).reset_index(drop=True)
    fallback = (assigned["routed"] == "fallback").to_numpy() if "routed" in assigned else np.zeros(len(assigned), bool)
    for g in per.columns:
        per.loc[fallback, g] = 0.0
    out = {g: float(per[g].sum()) for g in per.columns}
    for g, n in assigned.loc[fallback, "gpu"].value_counts().items():
        out[g] = out.get(g, 0.0) + n
    return {g: v / len(assigned) for g, v in out.items() if v > 0}


def plan_eval(out_dir: str | Path, stream: pd.DataFrame, plan, gpus: Mapping, *, endpoints: Mapping[str, str],
              model: str, tokenizer: str | None = None, seed: int = 0, routing: str = "least", slo=None,
              endpoint_type: str = "completions", aiperf_args: Sequence[str] = (), progress: bool = False,
              workload: pd.DataFrame | None = None) -> list[Path]:
    """``eval plan``: assign `stream` to the GPU types of `plan` exactly as ``simulate`` does (same seed),
    simulate the same plan and stream when every GPU type has a latency model, and write the eval folder.

    The README's plan share per GPU type is the plan's routing applied to `workload` (the histogram the
    plan was solved or routed on) for a plan of one window; otherwise (no workload, per-window plans)
    its expectation on this stream's own requests (`expected_shares`)."""
    from .profiles import parse_slo
    from .report import format_mix
    from .simulate import assign_gpus, simulate

    if plan.routes.empty:
        raise InputError("plan", f"{plan.description} has no routing shares: nothing says which requests go to "
                                 "which GPU type; give a solve result or allocation.json with routes, or --counts "
                                 "with --workload (routed to balance utilisation)")
    slo = parse_slo(slo if slo else next(iter(gpus.values())).meta.get("slo"), field="--slo")
    if slo == "unknown":
        raise InputError("--slo", "the profile file states no SLO; give one, e.g. --slo tpot_ms=40")
    assigned = assign_gpus(stream, plan, gpus, seed=seed)
    single = len(plan.windows) == 1 and workload is not None
    shares = plan_shares(plan, workload) if single else expected_shares(assigned, plan)
    counts = {g: int(plan.counts[g].max()) for g in plan.gpus}
    windows = len(plan.windows)
    cost = float(plan.windows["cost_per_hour"].max())
    info = {"mix": format_mix(counts), "counts": counts, "cost_per_hour": cost,
            "source": plan.description + ("; the most GPUs and $/h of any window" if windows > 1 else ""),
            "windows": windows}
    stream_info = {"source": stream.attrs.get("source", "stream"), "seed": int(seed), "routing": routing,
                   "plan_share": ("the plan's routing on the workload it was made for" if single else
                                  "the plan's routing, in expectation over this stream's requests"),
                   "fallback_requests": int((assigned.get("routed") == "fallback").sum()) if "routed" in assigned else 0}
    check_options(out_dir, model, endpoint_type)            # before the simulation runs
    check_endpoints(endpoints, sorted(set(assigned["gpu"]), key=str), list(counts))
    simulated, simulation = None, {"skipped": "a GPU type of the plan has no latency model"}
    if all(getattr(gpus[g], "latency", None) is not None for g in plan.gpus):
        result = simulate(stream, plan, gpus, routing=routing, seed=seed, slo=slo, progress=progress)
        if result.status != "ok":
            simulation = {"skipped": result.message}
        else:
            if not result.requests["gpu"].astype(str).reset_index(drop=True).equals(
                    assigned["gpu"].astype(str).reset_index(drop=True)):
                raise RuntimeError("simulate assigned the stream differently from assign_gpus with the same seed")
            simulated = result.requests.drop(columns=[c for c in ("timestamp",) if c in result.requests])
            simulated = simulated.assign(status=np.where(simulated["rejected"], "rejected", "ok"))
            simulation = {"file": SIMULATED, "headline": result.message, "status": result.status,
                          "engine": f"melange-nb simulate, {routing} routing, seed {seed}",
                          "summary": result.to_dict()["summary"]}
    return write_eval(out_dir, assigned, endpoints=endpoints, model=model, tokenizer=tokenizer, plan=info,
                      plan_shares=shares, slo=slo, stream_info=stream_info, simulated=simulated,
                      simulation=simulation, endpoint_type=endpoint_type, aiperf_args=aiperf_args)


def plan_summary(eval_dir: str | Path) -> str:
    """What ``eval plan`` prints: the pools with routed and plan shares, the simulation, the next commands."""
    eval_dir, man = read_manifest(eval_dir)
    pools = "; ".join(f"{g} {p['requests']:,} ({p['routed_share']:.1%}, plan {p['plan_share']:.1%})"
                      for g, p in man["pools"].items())
    sim = man.get("simulation") or {}
    sim_line = f"Simulated: {sim['headline']}." if sim.get("headline") else f"No simulation: {sim.get('skipped')}."
    run = shlex.quote(str(eval_dir / "run_eval.sh"))
    return (f"{man['stream']['requests']:,} requests of {man['plan']['mix']} in {len(man['pools'])} pools: {pools}.\n"
            f"{sim_line}\nWrote {eval_dir}. Next: bash {run}, then melange-nb eval import {shlex.quote(str(eval_dir))}")


# ---------------------------------------------------------------- reading side: AIPerf records back in

def _metric(metrics: Mapping, key: str, where: str, units: Mapping[str, float] = _UNIT_MS) -> float:
    """A per-request metric (ms for times; `units` maps unit -> factor), NaN when absent (e.g. the TPOT of a
    one-token reply)."""
    m = metrics.get(key)
    if m is None:
        return math.nan
    value = m.get("value") if isinstance(m, Mapping) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(where, f"metrics.{key} is not {{value: NUMBER, unit: ...}}; is this AIPerf's {RECORDS}?")
    unit = str(m.get("unit", next(iter(units))))
    if unit not in units:
        raise InputError(where, f"metrics.{key} has unit {unit!r}; expected one of {', '.join(units)}")
    return float(value) * units[unit]


def _error_label(err) -> str:
    """AIPerf's ErrorDetails as a short label: "HTTP 500 Internal Server Error", "ClientConnectorError"; "" for none."""
    if not err:
        return ""
    if not isinstance(err, dict):
        return "error"
    code, kind = err.get("code"), str(err.get("type") or "").strip()
    return (f"HTTP {code} {kind}".strip() if isinstance(code, int) and not isinstance(code, bool) else kind) or "error"


def read_records(path: str | Path, *, max_lines: int = MAX_REQUESTS) -> pd.DataFrame:
    """AIPerf's ``profile_export.jsonl`` as one row per record: ``request`` (the trace's session id),
    ``sent_ms`` (credit issue time), ``ttft_ms``, ``tpot_ms``, ``e2e_ms``, ``output_measured``,
    ``error`` (its type, or "" when the request succeeded)."""
    path = Path(path)
    where = f"records {path}"
    rows = []
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(where, "not found; run the pool's load test (run_eval.sh) first") from exc
    except OSError as exc:
        raise InputError(where, f"cannot be read ({exc.strerror})") from exc
    with handle:
        for no, line in enumerate(handle, 1):
            if no > max_lines:
                raise InputError(where, f"has more than {max_lines:,} lines; that is not one pool of one eval")
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as cause:
                raise InputError(where, f"line {no} is not JSON; this is not AIPerf's per-request {RECORDS}") from cause
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            metrics = doc.get("metrics") if isinstance(doc, dict) else None
            if not isinstance(meta, dict) or not isinstance(metrics, dict) or "request_start_ns" not in meta:
                raise InputError(where, f"line {no} has no metadata.request_start_ns and metrics: not AIPerf's "
                                        f"per-request {RECORDS} (records of another tool?)")
            if meta.get("benchmark_phase", "profiling") != "profiling":
                continue                                     # warm-up records are not the trace's requests
            sent = meta.get("credit_issued_ns", meta.get("request_start_ns"))
            if not isinstance(sent, (int, float)) or isinstance(sent, bool):
                raise InputError(where, f"line {no}: metadata.request_start_ns is not a number")
            rid = meta.get("conversation_id")
            err = doc.get("error")
            line_where = f"{where} line {no}"
            rows.append({"request": rid if isinstance(rid, str) else None, "sent_ms": sent / 1e6,
                         "ttft_ms": _metric(metrics, "time_to_first_token", line_where),
                         "tpot_ms": _metric(metrics, "inter_token_latency", line_where),
                         "e2e_ms": _metric(metrics, "request_latency", line_where),
                         "output_measured": _metric(metrics, "output_sequence_length", line_where, {"tokens": 1.0}),
                         "error": _error_label(err)})
    return pd.DataFrame(rows, columns=["request", "sent_ms", "ttft_ms", "tpot_ms", "e2e_ms", "output_measured", "error"])


def match_records(records: pd.DataFrame, trace: pd.DataFrame, *, where: str) -> pd.DataFrame:
    """The pool's trace rows with their measurements; requests without a record get ``status`` missing.

    Refuses records of another run: ids not in this trace, an id twice, or send times off the trace's
    schedule (after removing the constant offset of the run's start)."""
    if records.empty:
        raise InputError(where, "has no records; the pool's load test sent nothing (run run_eval.sh again)")
    if records["request"].isna().any():
        raise InputError(where, "has records without metadata.conversation_id; they cannot be matched to the "
                                "trace's requests (was AIPerf given this folder's trace.jsonl?)")
    if len(records) > len(trace):
        raise InputError(where, f"has {len(records):,} records for a trace of {len(trace):,} requests: records "
                                "from another run; run this folder's run_eval.sh again")
    unknown = records.loc[~records["request"].isin(trace["request"]), "request"]
    if len(unknown):
        raise InputError(where, f"has {len(unknown):,} records of requests not in this pool's trace "
                                f"(e.g. {str(unknown.iloc[0])[:40]!r}): records from another run")
    dup = records.loc[records["request"].duplicated(), "request"]
    if len(dup):
        raise InputError(where, f"has request {str(dup.iloc[0])[:40]!r} twice: records from more than one run")
    merged = trace.merge(records, on="request", how="left")
    sent = merged["sent_ms"].notna()
    lag = merged.loc[sent, "sent_ms"] - merged.loc[sent, "timestamp_ms"]
    off = (lag - lag.median()).abs() > SCHEDULE_TOLERANCE_MS
    if off.sum() > max(1, 0.1 * sent.sum()):
        raise InputError(where, f"{int(off.sum()):,} of {int(sent.sum()):,} requests were sent more than "
                                f"{SCHEDULE_TOLERANCE_MS / 1000:g} s off the trace's timestamps: records of "
                                "another schedule; run this folder's run_eval.sh again")
    merged["status"] = np.where(~sent, "missing", np.where(merged["error"].fillna("") != "", "error", "ok"))
    for col in ("ttft_ms", "tpot_ms", "e2e_ms"):
        merged.loc[merged["status"] != "ok", col] = np.nan
    return merged


def read_summary(path: Path) -> dict:
    """What the report needs from ``profile_export_aiperf.json``: AIPerf's version and the timing mode."""
    if not path.is_file():
        return {}
    doc = read_json(path, "AIPerf summary", "profile_export_aiperf.json from aiperf profile")
    if not isinstance(doc, dict) or "aiperf_version" not in doc:
        raise InputError(f"AIPerf summary {path}", "has no aiperf_version: not AIPerf's profile_export_aiperf.json")
    phases = ((doc.get("input_config") or {}).get("phases") or [])
    kinds = [p.get("type") for p in phases if isinstance(p, dict) and p.get("kind", "profiling") == "profiling"]
    if kinds and kinds[0] != "fixed_schedule":
        raise InputError(f"AIPerf summary {path}", f"is a {kinds[0]} run, not a fixed-schedule replay of the "
                                                   "pool's trace; run this folder's run_eval.sh")
    return {"aiperf_version": str(doc["aiperf_version"]), "was_cancelled": bool(doc.get("was_cancelled", False))}


def slo_text(slo) -> str:
    """The SLO as each request is checked against it: "TPOT ≤ 40 ms" (a condition's statistic applies to
    the whole stream, not to one request)."""
    from .profiles import parse_slo

    conds = parse_slo(slo)
    return "unknown" if conds == "unknown" else " and ".join(f"{c['metric'].upper()} ≤ {c['ms']:g} ms" for c in conds)


def slo_met(frame: pd.DataFrame, slo) -> pd.Series:
    """Whether each request met every condition of the SLO on its own TTFT/TPOT/e2e (ITL = TPOT).
    A request without a value (failed, missing) misses; a one-token reply has no TPOT and meets a TPOT
    condition."""
    from .profiles import parse_slo

    conds = parse_slo(slo)
    ok = frame.get("status", pd.Series("ok", index=frame.index)).eq("ok")
    for c in ([] if conds == "unknown" else conds):
        col = {"itl": "tpot_ms"}.get(c["metric"], f"{c['metric']}_ms")
        values = frame[col]
        ok &= values.le(c["ms"]) | (values.isna() & (col == "tpot_ms") & frame.get("output_tokens", 2).le(1))
    return ok


def summarize(frame: pd.DataFrame, slo, *, by: str = "gpu") -> pd.DataFrame:
    """Per pool and overall ("all"): requests, misses by cause, SLO attainment, p50/p90/p99 of TTFT,
    TPOT, e2e (over requests that completed). Works on measured and simulated rows alike."""
    frame = frame.assign(slo_met=slo_met(frame, slo))
    groups = [(str(g), part) for g, part in frame.groupby(by, sort=True)] + [("all", frame)]
    rows = []
    for name, part in groups:
        status = part.get("status", pd.Series("ok", index=part.index))
        row = {by: name, "requests": len(part), "completed": int(status.eq("ok").sum()),
               "errors": int(status.eq("error").sum()), "missing": int(status.eq("missing").sum()),
               "rejected": int(status.eq("rejected").sum()),
               "attainment": float(part["slo_met"].mean()) if len(part) else math.nan}
        for metric in METRICS:
            values = part.loc[status.eq("ok"), f"{metric}_ms"].dropna().to_numpy(dtype=float)
            for stat in STATS:
                row[f"{stat}_{metric}_ms"] = float(np.percentile(values, float(stat[1:]))) if len(values) else math.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)


@dataclass
class EvalResult:
    """Measured per-request rows, measured and simulated summaries, and the side-by-side table."""

    eval_dir: Path
    manifest: dict
    measured: pd.DataFrame
    measured_summary: pd.DataFrame
    simulated_summary: pd.DataFrame | None
    comparison: pd.DataFrame
    aiperf: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return headline(self)


def read_manifest(eval_dir: str | Path) -> tuple[Path, dict]:
    """The eval folder and its eval.json, checked."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise InputError(f"eval folder {eval_dir}", "not found; write one with `melange-nb eval plan ... -o DIR`")
    doc = read_json(eval_dir / MANIFEST, "eval manifest", "eval.json written by melange-nb eval plan")
    if not isinstance(doc, dict) or doc.get("format") != EVAL_FORMAT or not isinstance(doc.get("pools"), dict):
        raise InputError(f"eval manifest {eval_dir / MANIFEST}", f"is not a {EVAL_FORMAT!r} manifest; "
                                                                 "write the folder with `melange-nb eval plan`")
    return eval_dir, doc


def import_eval(eval_dir: str | Path) -> EvalResult:
    """Read every pool's AIPerf records of an eval folder and set them beside the simulation."""
    eval_dir, manifest = read_manifest(eval_dir)
    requests = pd.read_csv(eval_dir / REQUESTS, dtype={"request": str, "gpu": str})
    frames, versions, notes = [], set(), []
    for gpu, pool in manifest["pools"].items():
        folder = eval_dir / pool["folder"]
        trace = requests[requests["gpu"] == gpu]
        records_path = folder / RESULTS / RECORDS
        if not records_path.is_file():
            partial = folder / f"{RESULTS}.partial" / RECORDS
            hint = (f" (an unfinished run is in {pool['folder']}/{RESULTS}.partial; see {pool['folder']}/aiperf.log)"
                    if partial.is_file() else "")
            raise InputError(f"pool {gpu!r} {records_path}", f"not found: this pool has no records{hint}; "
                                                          f"run {eval_dir / 'run_eval.sh'} (it resumes)")
        info = read_summary(folder / RESULTS / SUMMARY)
        if info.get("aiperf_version"):
            versions.add(info["aiperf_version"])
        if info.get("was_cancelled"):
            notes.append(f"the {gpu!r} pool's AIPerf run was cancelled before its end")
        frames.append(match_records(read_records(records_path), trace, where=f"records {records_path}"))
    measured = pd.concat(frames, ignore_index=True).sort_values("arrival_s", kind="stable").reset_index(drop=True)
    measured["slo_met"] = slo_met(measured, manifest["slo"])
    short = measured["status"].eq("ok") & (measured["output_measured"] < measured["output_tokens"])
    if short.any():
        notes.append(f"{int(short.sum()):,} requests returned fewer output tokens than asked (does the server "
                     "honour ignore_eos?)")
    m_sum = summarize(measured, manifest["slo"])
    s_sum = None
    if (eval_dir / SIMULATED).is_file():
        simulated = pd.read_csv(eval_dir / SIMULATED, dtype={"gpu": str})
        s_sum = summarize(simulated, manifest["slo"])
    return EvalResult(eval_dir, manifest, measured, m_sum, s_sum, comparison(m_sum, s_sum),
                      {"version": ", ".join(sorted(versions)) or "unknown"}, notes)


def comparison(measured: pd.DataFrame, simulated: pd.DataFrame | None) -> pd.DataFrame:
    """Long table: one row per pool x quantity, measured beside simulated and their difference."""
    rows = []
    quantities = ["attainment", *[f"{s}_{m}_ms" for m in METRICS for s in STATS]]
    for pool in measured.index:
        for q in quantities:
            got = measured.at[pool, q]
            sim = simulated.at[pool, q] if simulated is not None and pool in simulated.index else math.nan
            diff = (got - sim) * 100 if q == "attainment" else ((got / sim - 1) * 100 if sim else math.nan)
            rows.append({"gpu": pool, "quantity": q, "measured": got, "simulated": sim,
                         "difference": diff, "unit": "points" if q == "attainment" else "%"})
    return pd.DataFrame(rows).set_index(["gpu", "quantity"])


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1%}"


def _ms(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


def headline(result: EvalResult) -> str:
    """The answer first: measured attainment (simulated beside it), the worst pool's p99 TPOT, misses."""
    m, s = result.measured_summary, result.simulated_summary
    slo = result.manifest["slo_text"]
    text = f"Measured: {_pct(m.at['all', 'attainment'])} of requests met {slo}"
    if s is not None:
        text += f" (simulated {_pct(s.at['all', 'attainment'])})"
    pools = [p for p in m.index if p != "all"]
    if pools:
        worst = min(pools, key=lambda p: m.at[p, "attainment"])
        text += f"; {worst} pool p99 TPOT {_ms(m.at[worst, 'p99_tpot_ms'])}, p99 TTFT {_ms(m.at[worst, 'p99_ttft_ms'])}"
    failed = int(m.at["all", "errors"] + m.at["all", "missing"])
    if failed:
        text += (f"; {failed:,} of {int(m.at['all', 'requests']):,} requests failed or have no record "
                 f"({int(m.at['all', 'errors']):,} errors, {int(m.at['all', 'missing']):,} missing), counted as misses")
    return text + "."


def text_table(result: EvalResult) -> str:
    """The side-by-side as a fixed-width text table (what ``eval import`` prints)."""
    m, s = result.measured_summary, result.simulated_summary
    lines = [f"{'pool':<12} {'requests':>8} {'misses':>7} {'attain.':>8} {'sim':>7} "
             f"{'p50 TTFT':>9} {'sim':>9} {'p99 TTFT':>9} {'sim':>9} {'p50 TPOT':>9} {'sim':>9} {'p99 TPOT':>9} {'sim':>9}"]
    for pool in m.index:
        r = m.loc[pool]
        sr = s.loc[pool] if s is not None and pool in s.index else None
        sv = (lambda q: sr[q] if sr is not None else math.nan)
        lines.append(f"{str(pool)[:12]:<12} {int(r.requests):>8,} {int(r.errors + r.missing):>7,} "
                     f"{_pct(r.attainment):>8} {_pct(sv('attainment')):>7} "
                     + " ".join(f"{_ms(r[q]):>9} {_ms(sv(q)):>9}" for q in
                                ("p50_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "p99_tpot_ms")))
    return "\n".join(lines)


def html_report(result: EvalResult) -> str:
    """report.html: the headline, then measured vs simulated per pool, routing shares, misses, provenance.
    Everything that comes from input files is escaped."""
    man = result.manifest
    m, s = result.measured_summary, result.simulated_summary
    cols = ["requests", "completed", "errors", "missing", "attainment",
            *[f"{st}_{me}_ms" for me in METRICS for st in STATS]]
    fmt = {"attainment": _pct, **{c: _ms for c in cols if c.endswith("_ms")},
           **{c: (lambda v: f"{int(v):,}") for c in ("requests", "completed", "errors", "missing")}}
    side = []
    for pool in m.index:
        pair = pd.DataFrame({"measured": m.loc[pool, cols],
                             "simulated": s.loc[pool, cols] if s is not None and pool in s.index else math.nan})
        pair.index.name = "quantity"
        rows = "".join(f"<tr><th>{escape(q)}</th><td>{escape(fmt[q](r.measured))}</td>"
                       f"<td>{escape(fmt[q](r.simulated) if np.isfinite(r.simulated) else 'n/a')}</td></tr>"
                       for q, r in pair.iterrows())
        side.append(f"<h3>{escape('All pools' if pool == 'all' else f'{pool} pool')}</h3>"
                    f'<table class="mnb-table"><thead><tr><th></th><th>measured</th><th>simulated</th></tr></thead>'
                    f"<tbody>{rows}</tbody></table>")
    pools = man["pools"]
    share_rows = "".join(f"<tr><th>{escape(g)}</th><td>{escape(p['endpoint'])}</td><td>{p['requests']:,}</td>"
                         f"<td>{_pct(p['routed_share'])}</td><td>{_pct(p['plan_share'])}</td></tr>"
                         for g, p in pools.items())
    errors = result.measured.loc[result.measured["status"] == "error", "error"].value_counts()
    err_text = ("; ".join(f"{escape(str(k))} × {v:,}" for k, v in errors.items()) or "none")
    notes = "".join(f"<li>{escape(n)}</li>" for n in result.notes)
    sim = man.get("simulation") or {}
    sim_line = (escape(f"Simulated with the plan's latency models ({sim.get('engine', 'melange-nb simulate')}).")
                if s is not None else escape(f"No simulation to compare: {sim.get('skipped', 'none was written')}."))
    plan, stream = man["plan"], man["stream"]
    tokenizer = man["tokenizer"]
    if Path(tokenizer).is_absolute():                   # a shared page shows no local paths
        tokenizer = f"{Path(tokenizer).name} (a local folder)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Load test: {escape(plan['mix'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}}
.mnb-table{{border-collapse:collapse;margin:0.5em 0}}.mnb-table td,.mnb-table th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
.mnb-headline{{font-size:1.3em;font-weight:bold}}</style></head><body>
<p class="mnb-headline">{escape(result.headline)}</p>
<p>Plan {escape(plan['mix'])}, ${plan['cost_per_hour']:.2f}/h ({escape(str(plan['source']))}); SLO {escape(man['slo_text'])},
checked per request. {stream['requests']:,} requests over {stream['duration_s']:.1f} s ({escape(str(stream['source']))}),
replayed by AIPerf {escape(result.aiperf.get('version', 'unknown'))} on a fixed schedule, one run per pool.
{sim_line}</p>
<h2>Measured beside simulated</h2>
<p>Attainment counts every request of the stream; a request that failed or has no record is a miss.
Percentiles are over the requests that completed.</p>
{''.join(side)}
<h2>Requests per pool</h2>
<table class="mnb-table"><thead><tr><th>GPU type</th><th>endpoint</th><th>requests</th><th>routed share</th>
<th>plan share</th></tr></thead><tbody>{share_rows}</tbody></table>
<p>Errors by type: {err_text}. Missing records: {int(m.at['all', 'missing']):,}.</p>
{f'<ul>{notes}</ul>' if notes else ''}
<p>Model {escape(man['model'])}; tokenizer {escape(tokenizer)}; written by melange-nb eval import.</p>
</body></html>
"""


def write_import(result: EvalResult) -> list[Path]:
    """measured.csv (per request), comparison.csv, summary.json and report.html into the eval folder."""
    d = result.eval_dir
    cols = ["request", "gpu", "arrival_s", "input_tokens", "output_tokens", "status", "error",
            "ttft_ms", "tpot_ms", "e2e_ms", "output_measured", "slo_met"]
    measured = result.measured[[c for c in cols if c in result.measured.columns]]
    summary = {"headline": result.headline, "aiperf": result.aiperf, "notes": result.notes,
               "measured": json.loads(result.measured_summary.to_json(orient="index")),
               "simulated": (json.loads(result.simulated_summary.to_json(orient="index"))
                             if result.simulated_summary is not None else None)}
    return [atomic_write(d / "measured.csv", lambda p: measured.to_csv(p, index=False)),
            atomic_write(d / "comparison.csv", lambda p: result.comparison.to_csv(p)),
            write_json(d / "summary.json", summary),
            write_text(d / "report.html", html_report(result))]
