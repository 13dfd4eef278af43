"""Simulate a plan serving a request stream: routing, replicas with continuous batching, SLO attainment.

Public API (the evaluation stage replays the same routed stream on real servers, so it calls the
same three functions and gets the same assignment):

- ``stream_from_workload(workload, rate, duration_s, *, arrival="poisson", seed=0, sizes="uniform")``
  and ``stream_from_trace(trace, gpus, *, timestamp_column=..., input_column=..., output_column=...)``:
  a request stream, a DataFrame with ``arrival_s`` (seconds from the stream's start, sorted),
  ``input_tokens``, ``output_tokens`` (counts) and the bucket labels ``input_bucket``,
  ``output_bucket`` on the profiles' edges (a trace adds ``timestamp`` and ``beyond_edges``);
  ``stream.attrs["duration_s"]`` is its length.
- ``load_plan(source, gpus, *, workload=None, rate=None, ...)``: a `SimPlan` (GPU counts and
  routing shares per window) solved on the spot (``source=None``), from counts
  (``{"A10G": 1, "A100": 1}`` or ``"A10G=1,A100=1"``; routing: the split that balances the GPU
  types' utilisation), from a `SolveResult`, a solve-result JSON / ``allocation.json`` /
  ``deploy.json``, or a ``plan`` output folder (per-window counts and routes; smoothed counts
  when the plan was smoothed).
- ``assign_gpus(stream, plan, gpus, *, seed=0)``: the stream with ``window`` and ``gpu`` columns:
  each request goes to one GPU type, drawn with the plan's routing shares for its bucket and
  window (one uniform draw per request from ``numpy.random.default_rng([seed, 1])``, in stream order:
  deterministic). A bucket the window's plan does not route (no demand was planned there, or
  beyond the profiles' edges, clipped to the last bucket) goes to the plan's GPU type with the
  highest profiled throughput on it (``routed = "fallback"``).
- ``simulate(stream, plan, gpus, *, routing="least", seed=0, slo=None, progress=False)``: a
  `SimResult` (picklable; prints nothing unless `progress`: then a tqdm bar over the requests of a
  stream of 20,000 or more, on a terminal or in a notebook) with ``requests`` (one row per request: ``arrival_s``,
  ``input_tokens``, ``output_tokens``, ``window``, ``gpu``, ``replica``, ``queue_ms``,
  ``ttft_ms``, ``tpot_ms``, ``e2e_ms``, ``slo_met``, ``rejected``), ``summary`` (one row per GPU
  type and ``all``: attainment, p50/p90/p99 of TTFT, TPOT, e2e and queueing, utilisation),
  ``queue`` (max queue length per time bin and GPU type), ``status`` (``ok`` | ``unbounded``) and
  ``message``; ``write_result(result, DIR)`` writes ``requests.parquet``, ``summary.csv``,
  ``queue.csv`` and ``summary.json``.
- ``search_attainment(workload, gpus, rate, target, ...)``: the cheapest plan found whose
  simulated attainment reaches `target`, next to the throughput-only plan (``AttainmentSearch``).
- Latency models and profiles: ``bucket_max_rate`` (one replica's highest rate meeting the SLO on
  one bucket), ``check_profiles`` (that rate against the profile's, per bucket: ``profile check``),
  ``fit_profile_latency`` (a model consistent with a profile's own rates) and
  ``latency_from_predictions`` (that fit for every GPU of a predicted file: ``profile latency``).

**Generated streams.** Inter-arrival times are exponential (``poisson``), Gamma with a given
coefficient of variation (``gamma:CV``, CV > 1 is burstier than Poisson) or constant
(``constant``), all at mean `rate`. Each request's bucket is drawn with the workload's shares;
its sizes within the bucket follow `sizes`: ``uniform`` = a whole number drawn uniformly from
``lo`` to ``hi - 1`` (at least 1 input and 1 output token; an open last bucket ``lo+`` from
``lo`` to ``2 lo - 1``), ``midpoint`` = the bucket's representative length as ``profile predict``
uses it (midpoint, open last bucket ``2 lo``).

**A replica** is vLLM-style continuous batching with iteration-level scheduling: at every step
boundary finished requests leave; admitted requests still prefilling continue, then waiting ones
are admitted first-come first-served (the head of the queue blocks the rest) while the batch has
fewer than ``max_seqs`` sequences, the KV cache can reserve the request's full context (input +
output tokens, so nothing is ever preempted; vLLM reserves as it goes and preempts, which this
does not model) and the step's token budget ``max_step_tokens`` (one token per decoding sequence,
the rest for prefill chunks) is not spent. The step that completes a prefill samples the first
token; each later step gives every decoding sequence one token. A step takes the profile's
``latency`` model time. A request too large for the KV cache is ``rejected`` (counted, SLO not
met). TTFT = first token - arrival; TPOT = (e2e - TTFT) / (output - 1) (NaN for one output token:
TPOT conditions then hold); queueing = admission - arrival.

**Routing to replicas**: least outstanding requests (queued + running) among the GPU type's
replicas of the request's window, lowest index on ties (default); or ``round-robin``. Per-window
plans switch counts and shares at window boundaries: a replica beyond the new count takes no new
requests and drains what it holds; a new one starts empty.

**SLO attainment** = share of requests meeting every condition of the SLO, each checked on the
request's own value (its TPOT <= 40 ms, whatever the condition's statistic); rejected requests
miss. ``summary`` also says whether the SLO as stated (e.g. mean TPOT over all requests) holds.

**Unbounded queues** are refused before simulating: per GPU type, the offered requests/s against
what its replicas serve at a full batch (``max_seqs``, or as many mean-size requests as the KV
cache holds) under the latency model; at 100% or more the result is status ``unbounded`` with
"the queue grows without bound: the plan is under-provisioned" and no latencies.

**Engine: a tight heapq event loop, not SimPy** (measured by ``bench/simulate_bench.py``). The
events are arrivals and step boundaries; a run of decode-only steps is one event (its end, the next
completion, is closed-form: step times grow linearly with the context held), cut short at the
next step boundary when an arrival can join the batch. So the work is a few events per request,
not one per token step, and each event is a few list operations; SimPy would put a generator
switch and its own heap under every event for no modelling gain.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .profiles import GpuProfile, parse_slo
from .profiles.latency import HOW_TO_ADD, LatencyModel
from .workload import INPUT_AXIS, OUTPUT_AXIS, bucket_index, bucket_labels, parse_bucket_labels

ROUTINGS = ("least", "round-robin")
SIZE_RULES = ("uniform", "midpoint")
MAX_REQUESTS = 5_000_000         # about 0.8 KB each while simulated: ~4 GB; more is a units mistake, not a run
REQUEST_COLUMNS = ["arrival_s", "input_tokens", "output_tokens", "input_bucket", "output_bucket", "window", "gpu",
                   "replica", "queue_ms", "ttft_ms", "tpot_ms", "e2e_ms", "slo_met", "rejected"]


# ---------------------------------------------------------------- streams

def parse_arrival(text: str) -> tuple[str, float]:
    """``poisson`` -> ("gamma", 1.0); ``gamma:2`` -> ("gamma", 2.0); ``constant`` -> ("constant", 0.0)."""
    spec = str(text).strip().lower()
    if spec == "poisson":
        return "gamma", 1.0
    if spec in ("constant", "uniform"):
        return "constant", 0.0
    kind, _, cv = spec.partition(":")
    try:
        value = float(cv)
    except ValueError:
        value = float("nan")
    if kind != "gamma" or not math.isfinite(value) or value <= 0:
        raise InputError("arrival", f"must be poisson, gamma:CV (CV > 0, e.g. gamma:2 for bursts) or constant, got {text!r}")
    return "gamma", value


def _edges_of(labels: Sequence[str]) -> tuple[list[float], bool]:
    try:
        edges, is_open = parse_bucket_labels(labels, "workload")
    except InputError as exc:
        raise InputError("workload", f"bucket labels {list(labels)} are not lo-hi token ranges; a stream needs "
                                     "token edges") from exc
    return [float(e) for e in edges], is_open


def _sizes(labels: Sequence[str], picks: np.ndarray, rng, rule: str, minimum: int) -> np.ndarray:
    edges, is_open = _edges_of(labels)
    lo = np.array(edges[:-1] + ([edges[-1]] if is_open else []), dtype=float)
    hi = np.array(edges[1:] + ([2 * edges[-1]] if is_open else []), dtype=float)
    if rule == "midpoint":
        from .profiles.predict import representative_lengths
        mids = np.array(representative_lengths(edges, is_open, minimum=minimum), dtype=float)
        return mids[picks].astype(np.int64)
    low = np.maximum(np.ceil(lo[picks]), minimum)
    high = np.maximum(np.ceil(hi[picks]) - 1, low)
    return np.floor(low + rng.random(len(picks)) * (high - low + 1)).astype(np.int64)


def stream_from_workload(workload: pd.DataFrame, rate: float, duration_s: float, *, arrival: str = "poisson",
                         seed: int = 0, sizes: str = "uniform") -> pd.DataFrame:
    """Requests arriving at mean `rate` for `duration_s` seconds, sizes drawn from the workload histogram."""
    from . import schemas

    rate = schemas.number(rate, "rate", positive=True, what="a positive number of requests/s")
    duration_s = schemas.number(duration_s, "duration", positive=True, what="a positive number of seconds, e.g. 600")
    kind, cv = parse_arrival(arrival)
    if sizes not in SIZE_RULES:
        raise InputError("sizes", f"must be one of {SIZE_RULES}, got {sizes!r}")
    expected = rate * duration_s
    if expected > MAX_REQUESTS:
        raise InputError("duration", f"rate x duration = {expected:,.0f} requests, over {MAX_REQUESTS:,}; "
                                     "simulate a shorter stream")
    shares = workload.to_numpy(dtype=float).ravel()
    if not np.isclose(shares.sum(), 1.0, atol=1e-6) or (shares < 0).any():
        raise InputError("workload", "shares must be >= 0 and sum to 1")
    rng = np.random.default_rng(seed)
    n_draw = int(expected + 10 * math.sqrt(expected) * max(cv, 1.0) + 20)
    while True:
        if kind == "constant":
            gaps = np.full(n_draw, 1.0 / rate)
        else:
            shape = 1.0 / cv ** 2
            gaps = rng.gamma(shape, 1.0 / (rate * shape), n_draw)
        times = np.cumsum(gaps)
        if times[-1] >= duration_s:
            break
        n_draw *= 2
    times = times[times < duration_s]
    n = len(times)
    cells = rng.choice(len(shares), size=n, p=shares / shares.sum())
    n_out = workload.shape[1]
    i, j = cells // n_out, cells % n_out
    out = pd.DataFrame({"arrival_s": times,
                        "input_tokens": _sizes(list(workload.index), i, rng, sizes, 1),
                        "output_tokens": _sizes(list(workload.columns), j, rng, sizes, 1),
                        "input_bucket": np.asarray(workload.index, dtype=object)[i],
                        "output_bucket": np.asarray(workload.columns, dtype=object)[j]})
    out.attrs.update(duration_s=duration_s, source=f"generated: {arrival} arrivals at {rate:g} req/s for "
                                                   f"{duration_s:g} s, sizes {sizes}, seed {seed}")
    return out


def stream_from_trace(trace, gpus: Mapping[str, GpuProfile], *, timestamp_column: str = "TIMESTAMP",
                      input_column: str = "ContextTokens", output_column: str = "GeneratedTokens") -> pd.DataFrame:
    """A timestamped trace (a file, or ``plan.read_timed_trace``'s table) replayed at its own arrival times.

    Buckets on the profiles' edges; a request beyond the last edge is labelled with the last bucket
    (``beyond_edges`` True) so it is routed and simulated at its real size.
    """
    from .plan import profile_edges, read_timed_trace

    if isinstance(trace, pd.DataFrame):
        requests, report = trace, {"source": "trace table"}
    else:
        requests, report = read_timed_trace(trace, timestamp_column=timestamp_column, input_column=input_column,
                                            output_column=output_column)
    if requests.empty:
        raise InputError("trace", "has no requests")
    input_edges, output_edges, is_open = profile_edges(gpus)
    x = requests["input_tokens"].to_numpy(dtype=float)
    y = requests["output_tokens"].to_numpy(dtype=float)
    i, j, _, above, _ = bucket_index(x, y, input_edges, output_edges, "clip" if not is_open else "open")
    n_in, n_out = len(input_edges) - 1 + is_open, len(output_edges) - 1 + is_open
    i, j = np.clip(i, 0, n_in - 1), np.clip(j, 0, n_out - 1)
    stamps = pd.to_datetime(requests["timestamp"])
    t0 = stamps.iloc[0]
    out = pd.DataFrame({"arrival_s": (stamps - t0).dt.total_seconds().to_numpy(),
                        "input_tokens": requests["input_tokens"].to_numpy(np.int64),
                        "output_tokens": requests["output_tokens"].to_numpy(np.int64),
                        "input_bucket": np.asarray(bucket_labels(input_edges, open_last=is_open), dtype=object)[i],
                        "output_bucket": np.asarray(bucket_labels(output_edges, open_last=is_open), dtype=object)[j],
                        "timestamp": stamps.to_numpy(), "beyond_edges": above & ~is_open})
    span = float(out["arrival_s"].iloc[-1])
    out.attrs.update(duration_s=span if span > 0 else 1.0, origin=t0.isoformat(), source=report.get("source", "trace"))
    return out


def stream_workload(stream: pd.DataFrame, gpus: Mapping[str, GpuProfile]) -> pd.DataFrame:
    """The stream's request-size histogram (shares) on the profiles' buckets: what a plan for it is solved on."""
    like = next(iter(gpus.values())).tputs
    counts = stream.groupby(["input_bucket", "output_bucket"]).size()
    out = pd.DataFrame(0.0, index=like.index, columns=like.columns)
    for (i, o), n in counts.items():
        out.loc[i, o] = n
    return out / out.to_numpy().sum()


# ---------------------------------------------------------------- plans

@dataclass
class SimPlan:
    """GPU counts and routing shares per window. Window w runs from ``windows.start_s[w]`` to the next start.

    ``counts``: index ``window``, one column per GPU type (replicas). ``routes``: long table
    ``window, input_tokens, output_tokens, gpu, share`` (bucket labels; shares of a bucket sum to 1).
    ``origin``: the absolute time of ``start_s = 0`` for a plan cut from a timed trace, else None.
    """

    counts: pd.DataFrame
    routes: pd.DataFrame
    windows: pd.DataFrame                 # start_s, cost_per_hour
    description: str
    origin: pd.Timestamp | None = None
    source: dict = field(default_factory=dict)

    @property
    def gpus(self) -> list[str]:
        return [g for g in self.counts.columns if self.counts[g].max() > 0]

    def mix(self, window: int = 0) -> dict[str, int]:
        return {g: int(c) for g, c in self.counts.loc[window].items() if c > 0}


def _static(counts: Mapping[str, int], routes: pd.DataFrame, gpus: Mapping[str, GpuProfile], description: str,
            source: dict | None = None) -> SimPlan:
    names = list(gpus)
    unknown = [g for g in counts if g not in gpus]
    if unknown:
        raise InputError("plan", f"names GPU type(s) {unknown} that the profile file does not have; it has {names}")
    table = pd.DataFrame([{g: int(counts.get(g, 0)) for g in names}], index=pd.Index([0], name="window"))
    if table.to_numpy().sum() <= 0:
        raise InputError("plan", "has no GPU; give at least one, e.g. --counts A10G=1")
    cost = sum(gpus[g].cost * n for g, n in counts.items())
    routes = routes.assign(window=0)[["window", INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]].reset_index(drop=True)
    return SimPlan(table, routes, pd.DataFrame({"start_s": [0.0], "cost_per_hour": [cost]}), description,
                   source=source or {})


def plan_from_result(result, gpus: Mapping[str, GpuProfile]) -> SimPlan:
    """A solver's plan (`SolveResult`) with its own routing shares."""
    from .report import format_mix

    if not result.has_allocation:
        raise InputError("plan", f"the solver found no plan ({result.status}: {result.message})")
    routes = result.routing[[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]] if result.routing is not None \
        else pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"])
    counts = {g: c for g, c in result.counts.items() if c > 0}
    return _static(counts, routes[routes["share"] > 0], gpus, f"{format_mix(counts)} ({result.solver} solver)",
                   {"kind": "solved", "solver": result.solver})


def balanced_routes(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], counts: Mapping[str, int]) -> pd.DataFrame:
    """Routing shares for fixed GPU counts: the split of each bucket that minimises the highest utilisation
    of any GPU type at profiled throughput (an LP, HiGHS via SciPy). Buckets no counted type can serve
    get no route (their requests fall back, see `assign_gpus`)."""
    from scipy.optimize import linprog

    names = [g for g in counts if counts[g] > 0]
    demand = workload.stack()
    demand = demand[demand > 0]
    pairs = [(b, g) for b in demand.index for g in names if gpus[g].tputs.loc[b] > 0]
    if not pairs:
        return pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"])
    buckets = sorted({b for b, _ in pairs}, key=list(demand.index).index)
    n = len(pairs) + 1                                         # shares, then the max utilisation u
    a_eq = np.zeros((len(buckets), n))
    a_ub = np.zeros((len(names), n))
    a_ub[:, -1] = [-counts[g] for g in names]
    for k, (b, g) in enumerate(pairs):
        a_eq[buckets.index(b), k] = 1.0
        a_ub[names.index(g), k] = demand.loc[b] / gpus[g].tputs.loc[b]
    cost = np.zeros(n)
    cost[-1] = 1.0
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(len(names)), A_eq=a_eq, b_eq=np.ones(len(buckets)),
                  bounds=[(0, 1)] * len(pairs) + [(0, None)], method="highs")
    if res.status != 0:
        raise InputError("plan", f"no routing found for counts {dict(counts)} ({res.message})")
    rows = [{INPUT_AXIS: b[0], OUTPUT_AXIS: b[1], "gpu": g, "share": float(x)}
            for (b, g), x in zip(pairs, res.x[:-1]) if x > 1e-9]
    return pd.DataFrame(rows, columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"])


def plan_from_counts(counts, workload: pd.DataFrame, gpus: Mapping[str, GpuProfile]) -> SimPlan:
    """Given counts (``{"A10G": 1}`` or ``"A10G=1,A100=1"``), routed by `balanced_routes` on the workload."""
    from .report import format_mix
    from .solver import parse_counts

    if isinstance(counts, str):
        counts = parse_counts(counts, "--counts")
    counts = {g: int(c) for g, c in counts.items() if c}
    _static(counts, pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]), gpus, "")   # checks names
    return _static(counts, balanced_routes(workload, gpus, counts), gpus, f"{format_mix(counts)} (given counts)",
                   {"kind": "counts"})


def _routes_from_json(routes, where: str) -> pd.DataFrame:
    rows = []
    for k, r in enumerate(routes or []):
        try:
            for g, s in r["shares"].items():
                rows.append({INPUT_AXIS: str(r[INPUT_AXIS]), OUTPUT_AXIS: str(r[OUTPUT_AXIS]), "gpu": str(g),
                             "share": float(s)})
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InputError(f"{where}.routes[{k}]", "must be {input_tokens, output_tokens, shares: {GPU: share}}") from exc
    return pd.DataFrame(rows, columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"])


def _plan_from_deploy(doc: Mapping, gpus: Mapping[str, GpuProfile], where: str) -> SimPlan:
    if doc.get("kind") == "static":
        counts = {g: int(e["max_replicas"]) for g, e in (doc.get("gpus") or {}).items()}
        return _static(counts, _routes_from_json(doc.get("routes"), where), gpus,
                       f"deploy.json ({doc.get('solver')} solver)", {"kind": "deploy", "file": where})
    schedule = doc.get("schedule")
    if doc.get("kind") != "per_window" or not isinstance(schedule, list) or not schedule:
        raise InputError(where, "is not a melange-nb deploy.json (kind static or per_window with a schedule)")
    names = list(gpus)
    rows, frames, starts, last, smoothed = [], [], [], None, False
    for w, entry in enumerate(schedule):
        reps = entry.get("smoothed_replicas") or entry.get("replicas")
        smoothed |= bool(entry.get("smoothed_replicas"))
        routes = [{INPUT_AXIS: k.split("|")[0], OUTPUT_AXIS: k.split("|")[1], "shares": v}
                  for k, v in (entry.get("routes") or {}).items()]
        if reps is None and last is not None:          # a window without a plan keeps the previous one
            reps, routes = last
        last = (reps or {}, routes)
        unknown = [g for g in (reps or {}) if g not in gpus]
        if unknown:
            raise InputError(f"{where}.schedule[{w}]", f"names GPU type(s) {unknown} that the profile file does "
                                                       f"not have; it has {names}")
        rows.append({g: int((reps or {}).get(g, 0)) for g in names})
        frames.append(_routes_from_json(routes, f"{where}.schedule[{w}]").assign(window=w))
        starts.append(pd.Timestamp(entry["start"]))
    counts = pd.DataFrame(rows, index=pd.Index(range(len(rows)), name="window"))
    origin = starts[0]
    windows = pd.DataFrame({"start_s": [(s - origin).total_seconds() for s in starts],
                            "cost_per_hour": [sum(gpus[g].cost * n for g, n in r.items()) for r in rows]})
    routes = pd.concat(frames, ignore_index=True)[["window", INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]]
    what = f"per-window plan, {len(rows)} windows" + (", smoothed counts" if smoothed else "")
    return SimPlan(counts, routes, windows, what, origin=origin, source={"kind": "per_window", "file": where})


def load_plan(source, gpus: Mapping[str, GpuProfile], *, workload: pd.DataFrame | None = None,
              rate: float | None = None, solver: str = "exact", constraints=None) -> SimPlan:
    """A plan to simulate from `source`: None (solve `workload` at `rate` now), counts (a mapping or
    ``"A10G=1,A100=1"``, routed on `workload`), a `SolveResult`, or a path to a solve-result JSON /
    ``allocation.json`` / ``deploy.json`` or a ``plan`` output folder."""
    from .solver import SolveResult, solve

    if isinstance(source, SimPlan):
        return source
    if isinstance(source, SolveResult):
        return plan_from_result(source, gpus)
    if source is None:
        if workload is None or rate is None:
            raise InputError("plan", "solving on the spot needs a workload and a rate")
        return plan_from_result(solve(workload, gpus, rate, solver=solver, constraints=constraints), gpus)
    if isinstance(source, Mapping) or (isinstance(source, str) and "=" in source):
        if workload is None:
            raise InputError("counts", "routing given counts needs the workload (--workload)")
        return plan_from_counts(source, workload, gpus)
    path = Path(source)
    if path.is_dir():
        if not (path / "deploy.json").is_file():
            raise InputError(f"plan {path}", "has no deploy.json; give a `melange-nb plan -o DIR` folder")
        path = path / "deploy.json"
    from .files import read_json

    doc = read_json(path, "plan", "an allocation.json, a solve -o result or a plan folder")
    if not isinstance(doc, Mapping):
        raise InputError(f"plan {path.name}", "must be a JSON object")
    if str(doc.get("format", "")).startswith("melange-nb deploy"):
        return _plan_from_deploy(doc, gpus, path.name)
    routing = doc.get("routing")
    if not isinstance(routing, Mapping) or "gpus" not in routing:
        raise InputError(f"plan {path.name}", "has no `routing` with `gpus` (a `solve -o` result or allocation.json) "
                                              "and is not a deploy.json")
    counts = {g: int(e["count"]) for g, e in routing["gpus"].items() if int(e.get("count", 0)) > 0}
    return _static(counts, _routes_from_json(routing.get("routes"), path.name), gpus,
                   f"{path.name} ({doc.get('solver', routing.get('solver'))} solver)", {"kind": "file", "file": path.name})


# ---------------------------------------------------------------- assignment

def _windows_of(stream: pd.DataFrame, plan: SimPlan) -> np.ndarray:
    t = stream["arrival_s"].to_numpy(dtype=float)
    if plan.origin is not None and "timestamp" in stream:
        t = (pd.to_datetime(stream["timestamp"]) - plan.origin).dt.total_seconds().to_numpy()
    w = np.searchsorted(plan.windows["start_s"].to_numpy(dtype=float), t, side="right") - 1
    return np.clip(w, 0, len(plan.windows) - 1)


def assign_gpus(stream: pd.DataFrame, plan: SimPlan, gpus: Mapping[str, GpuProfile], *, seed: int = 0) -> pd.DataFrame:
    """The stream with ``window``, ``gpu`` and ``routed`` (plan | fallback): every request in exactly one pool."""
    out = stream.copy()
    windows = _windows_of(stream, plan)
    u = np.random.default_rng([seed, 1]).random(len(stream))   # independent of the stream's draws
    gpu = np.empty(len(stream), dtype=object)
    routed = np.full(len(stream), "plan", dtype=object)
    names = list(plan.counts.columns)
    keys = pd.MultiIndex.from_arrays([windows, stream["input_bucket"].to_numpy(), stream["output_bucket"].to_numpy()])
    table = plan.routes.groupby(["window", INPUT_AXIS, OUTPUT_AXIS], sort=False)
    lookup = {k: (list(g["gpu"]), np.cumsum(g["share"].to_numpy(dtype=float))) for k, g in table}
    codes, uniques = pd.factorize(keys)
    for code, key in enumerate(uniques):
        rows = np.flatnonzero(codes == code)
        entry = lookup.get(tuple(key))
        if entry is not None and entry[1][-1] > 0:
            cum = entry[1] / entry[1][-1]
            pick = np.minimum(np.searchsorted(cum, u[rows], side="right"), len(cum) - 1)
            gpu[rows] = np.asarray(entry[0], dtype=object)[pick]
            continue
        w, i, o = key
        active = [g for g in names if plan.counts.at[w, g] > 0] or plan.gpus
        speed = {g: float(gpus[g].tputs.loc[i, o]) if g in gpus and i in gpus[g].tputs.index
                 and o in gpus[g].tputs.columns else 0.0 for g in active}
        gpu[rows] = max(active, key=lambda g: (speed[g], plan.counts[g].max()))
        routed[rows] = "fallback"
    out["window"] = windows
    out["gpu"] = gpu
    out["routed"] = routed
    return out


# ---------------------------------------------------------------- the engine

_IDLE, _DECODE, _MIXED, _WAKE = 0, 1, 2, 3


class _Replica:
    """One serving replica's state; times in seconds, step terms in seconds per unit."""

    __slots__ = ("base", "per_seq", "per_prefill", "per_ctx", "per_pair", "max_seqs", "kv", "budget", "queue", "prefilling",
                 "heap", "n_dec", "ctx", "kv_used", "D", "mode", "seg_start", "seg_a", "seg_c", "seg_k", "parts",
                 "version", "busy", "outstanding", "steps", "seq_steps")

    def __init__(self, lat: LatencyModel):
        self.base, self.per_seq = lat.base / 1e3, lat.per_seq / 1e3
        self.per_prefill, self.per_ctx = lat.per_prefill_token / 1e3, lat.per_context_token / 1e3
        self.per_pair = lat.per_prefill_context / 1e3
        self.max_seqs, self.kv, self.budget = lat.max_seqs, lat.kv_tokens, lat.max_step_tokens
        self.queue, self.prefilling, self.heap = deque(), [], []
        self.n_dec = self.ctx = self.kv_used = self.D = self.mode = self.version = 0
        self.seg_start = self.seg_a = self.seg_c = 0.0
        self.seg_k = 0
        self.parts = None
        self.busy = 0.0
        self.outstanding = self.steps = self.seq_steps = 0


def _pool_engine(arrival, inp, out, window, counts, lat, routing, tick=None):
    """One GPU type's pool: the requests routed to it (lists, in arrival order), its replica count per
    window and latency model. Returns (replica, admit, first, done) per request and per-replica stats."""
    rep_of, t_admit, t_first, t_done, stats = _engine(arrival, inp, out, [0] * len(arrival), window,
                                                      [(0, j) for j in range(max(counts))], [[c] for c in counts],
                                                      [lat], routing, tick)
    return rep_of, t_admit, t_first, t_done, stats


def _engine(arrival, inp, out, gtype, window, replicas_of, active_count, lats, routing, tick=None):
    """Run the event loop. Returns per-request (replica, admit, first, done) lists and per-replica stats.
    `tick(i)`, when given, is called every 4,096 arrivals with the number routed so far (a progress bar)."""
    n = len(arrival)
    reps = [_Replica(lats[g]) for g, _ in replicas_of]
    by_type: dict[int, list[int]] = {}
    for r, (g, _) in enumerate(replicas_of):
        by_type.setdefault(g, []).append(r)
    rr = {g: 0 for g in by_type}
    rep_of = [-1] * n
    t_admit = [math.nan] * n
    t_first = [math.nan] * n
    t_done = [math.nan] * n
    left = [0] * n
    events: list = []
    push, pop = heapq.heappush, heapq.heappop
    counter = 0

    def done(r, rid, t):
        t_done[rid] = t
        r.kv_used -= inp[rid] + out[rid]
        r.outstanding -= 1

    def schedule(r, ri, t):
        nonlocal counter
        budget = r.budget - r.n_dec
        parts = []
        prefill = 0
        pairs = 0.0
        for rid in r.prefilling:
            if budget <= 0:
                break
            take = left[rid] if left[rid] < budget else budget
            parts.append((rid, take))
            budget -= take
            prefill += take
            pairs += take * (inp[rid] - left[rid] + take / 2)
        q = r.queue
        while q and budget > 0 and r.n_dec + len(r.prefilling) < r.max_seqs:
            rid = q[0]
            need = inp[rid] + out[rid]
            if r.kv_used + need > r.kv:
                break
            q.popleft()
            r.kv_used += need
            t_admit[rid] = t
            r.prefilling.append(rid)
            left[rid] = inp[rid]
            take = left[rid] if left[rid] < budget else budget
            parts.append((rid, take))
            budget -= take
            prefill += take
            pairs += take * take / 2
        r.version += 1
        if parts:
            seqs = r.n_dec + len(parts)
            dur = r.base + r.per_seq * seqs + r.per_prefill * prefill + r.per_ctx * r.ctx + r.per_pair * pairs
            r.mode, r.parts, r.seg_start, r.seg_k = _MIXED, parts, t, 1
            counter += 1
            push(events, (t + dur, counter, ri, r.version))
        elif r.n_dec:
            k = r.heap[0][0] - r.D
            a = r.base + r.per_seq * r.n_dec + r.per_ctx * r.ctx
            c = r.per_ctx * r.n_dec
            r.mode, r.seg_start, r.seg_a, r.seg_c, r.seg_k = _DECODE, t, a, c, k
            counter += 1
            push(events, (t + k * a + c * k * (k - 1) / 2, counter, ri, r.version))
        else:
            r.mode = _IDLE

    def step_end(r, ri, t):
        if r.mode == _WAKE:                      # an idle replica starts its first step
            schedule(r, ri, t)
            return
        if r.mode == _DECODE:
            k = r.seg_k
            r.D += k
            r.ctx += r.n_dec * k
            r.steps += k
            r.seq_steps += r.n_dec * k
        else:
            r.D += 1
            r.ctx += r.n_dec
            r.steps += 1
            r.seq_steps += r.n_dec + len(r.parts)
            finished = False
            for rid, take in r.parts:
                r.ctx += take
                left[rid] -= take
                if left[rid] == 0:
                    finished = True
                    t_first[rid] = t
                    r.ctx += 1
                    rem = out[rid] - 1
                    if rem == 0:
                        r.ctx -= inp[rid] + out[rid]
                        done(r, rid, t)
                    else:
                        push(r.heap, (r.D + rem, rid))
                        r.n_dec += 1
            if finished:
                r.prefilling = [rid for rid in r.prefilling if left[rid] > 0]
        r.busy += t - r.seg_start
        h = r.heap
        while h and h[0][0] <= r.D:
            _, rid = pop(h)
            r.n_dec -= 1
            r.ctx -= inp[rid] + out[rid]
            done(r, rid, t)
        schedule(r, ri, t)

    i = 0
    while i < n or events:
        if i < n and (not events or arrival[i] <= events[0][0]):    # same-time arrivals join one step
            t = arrival[i]
            g = gtype[i]
            if tick is not None and not i & 4095:
                tick(i)
            pool = by_type[g][:max(active_count[window[i]][g], 1)]
            if routing == "least":
                ri = min(pool, key=lambda x: reps[x].outstanding)
            else:
                ri = pool[rr[g] % len(pool)]
                rr[g] += 1
            r = reps[ri]
            rep_of[i] = ri
            if inp[i] + out[i] > r.kv:            # can never be admitted: rejected
                i += 1
                continue
            r.outstanding += 1
            r.queue.append(i)
            if r.mode == _IDLE:                  # wake at t, after every arrival at t has queued
                r.mode = _WAKE
                r.version += 1
                counter += 1
                push(events, (t, counter, ri, r.version))
            elif r.mode == _DECODE and len(r.queue) == 1 and r.n_dec + len(r.prefilling) < r.max_seqs \
                    and r.kv_used + inp[i] + out[i] <= r.kv:
                elapsed = t - r.seg_start
                a, c = r.seg_a, r.seg_c
                if c > 0:
                    b = a - c / 2
                    j = max(1, math.ceil((-b + math.sqrt(b * b + 2 * c * elapsed)) / c))
                else:
                    j = max(1, math.ceil(elapsed / a))
                while j > 1 and (j - 1) * a + c * (j - 1) * (j - 2) / 2 >= elapsed:
                    j -= 1
                while j * a + c * j * (j - 1) / 2 < elapsed:
                    j += 1
                if j < r.seg_k:
                    r.seg_k = j
                    r.version += 1
                    counter += 1
                    push(events, (r.seg_start + j * a + c * j * (j - 1) / 2, counter, ri, r.version))
            i += 1
        else:
            t, _, ri, version = pop(events)
            r = reps[ri]
            if version == r.version:
                step_end(r, ri, t)
    stats = [{"busy_s": r.busy, "steps": r.steps, "seq_steps": r.seq_steps} for r in reps]
    return rep_of, t_admit, t_first, t_done, stats


# ---------------------------------------------------------------- results

@dataclass
class SimResult:
    """What a simulation found. ``requests``: one row per request; ``summary``: one row per GPU type and
    ``all``; ``queue``: max queue length per time bin (index ``time_s``) and GPU type."""

    status: str                       # ok | unbounded
    message: str
    requests: pd.DataFrame
    summary: pd.DataFrame
    queue: pd.DataFrame
    slo: list
    plan: str
    options: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def attainment(self) -> float:
        return float(self.summary.at["all", "attainment"]) if self.status == "ok" else 0.0

    def to_dict(self) -> dict:
        """JSON-ready: status, message, SLO, plan, options and the summary table (one mapping per row)."""
        table = self.summary.reset_index()
        rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else
                     (round(v, 6) if isinstance(v, float) else v)) for k, v in row.items()}
                for row in table.to_dict(orient="records")]
        return {"status": self.status, "message": self.message, "slo": self.slo, "plan": self.plan,
                "options": self.options, "summary": rows, "wall_seconds": round(self.wall_seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3)}


def _request_slo(df: pd.DataFrame, slo: list) -> np.ndarray:
    ok = ~df["rejected"].to_numpy()
    for c in slo:
        col = {"tpot": "tpot_ms", "itl": "tpot_ms", "ttft": "ttft_ms", "e2e": "e2e_ms"}[c["metric"]]
        values = df[col].to_numpy(dtype=float)
        ok &= np.where(np.isnan(values), ~df["rejected"].to_numpy(), values <= c["ms"])
    return ok


def _stated_slo(df: pd.DataFrame, slo: list) -> bool:
    served = df[~df["rejected"]]
    if served.empty:
        return False
    for c in slo:
        values = served[{"tpot": "tpot_ms", "itl": "tpot_ms", "ttft": "ttft_ms", "e2e": "e2e_ms"}[c["metric"]]].dropna()
        if values.empty:
            continue
        stat = values.mean() if c["stat"] == "mean" else values.quantile(int(c["stat"][1:]) / 100)
        if stat > c["ms"]:
            return False
    return True


def _summary_row(df: pd.DataFrame, slo: list) -> dict:
    row = {"requests": len(df), "rejected": int(df["rejected"].sum()),
           "attainment": float(df["slo_met"].mean()) if len(df) else math.nan,
           "stated_slo_met": _stated_slo(df, slo)}
    for col in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_ms"):
        values = df[col].dropna()
        row[f"mean_{col}"] = float(values.mean()) if len(values) else math.nan
        for q in (50, 90, 99):
            row[f"p{q}_{col}"] = float(values.quantile(q / 100)) if len(values) else math.nan
    return row


def queue_lengths(requests: pd.DataFrame, bin_s: float | None = None) -> pd.DataFrame:
    """Max number of requests waiting (arrived, not admitted) per time bin, per GPU type and ``all``."""
    served = requests[~requests["rejected"]]
    span = float(max(requests["arrival_s"].max(), (served["arrival_s"] + served["queue_ms"] / 1e3).max()
                     if len(served) else 0.0))
    bin_s = bin_s or max(1.0, math.ceil(span / 360))
    bins = int(span // bin_s) + 1
    cols = {}
    for name, part in [*served.groupby("gpu"), ("all", served)]:
        t = np.concatenate([part["arrival_s"].to_numpy(), (part["arrival_s"] + part["queue_ms"] / 1e3).to_numpy()])
        d = np.concatenate([np.ones(len(part)), -np.ones(len(part))])
        order = np.lexsort((d, t))                        # at equal times admissions (-1) first
        level = np.cumsum(d[order])
        idx = np.minimum((t[order] // bin_s).astype(int), bins - 1)
        peak = np.zeros(bins)
        np.maximum.at(peak, idx, level)
        # a bin without events keeps the level it started with
        last = pd.Series(level).groupby(idx).last().reindex(range(bins)).ffill().fillna(0).to_numpy()
        start = np.concatenate([[0.0], last[:-1]])
        cols[name] = np.maximum(peak, start).astype(int)
    return pd.DataFrame(cols, index=pd.Index(np.arange(bins) * bin_s, name="time_s"))


def _saturated_rate(lat: LatencyModel, inp: np.ndarray, out: np.ndarray) -> float:
    """Requests/s one replica serves at a full batch on requests like these (the unbounded-queue test)."""
    size = float(np.mean(inp + out))
    batch = max(1.0, min(lat.max_seqs, lat.kv_tokens / size))
    per_request_ms = (np.mean(inp) * lat.per_prefill_token + np.mean(out) * (lat.base / batch + lat.per_seq)
                      + lat.per_context_token * np.mean(out * (inp + out / 2.0))
                      + lat.per_prefill_context * np.mean(inp * inp / 2.0))
    return 1e3 / per_request_ms


class _Progress:
    """A tqdm bar over requests routed (terminal or notebook: ``tqdm.auto``; off where stderr is no terminal)."""

    def __init__(self, total: int, what: str):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=what, unit="req", disable=None, leave=False)

    def tick(self, done: int) -> None:
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()


def serving(gpus: Mapping[str, GpuProfile]) -> list[str]:
    """The GPU types that serve at least one bucket (the only ones a plan or an attainment search uses)."""
    return [g for g in gpus if float(np.nanmax(gpus[g].tputs.to_numpy(dtype=float))) > 0]


def check_latency(gpus: Mapping[str, GpuProfile], names: Sequence[str], where: str = "") -> None:
    """One line naming the first of `names` without a latency model, before anything is simulated."""
    for g in names:
        if gpus[g].latency is None:
            raise InputError(f"gpus.{g}.latency", f"GPU type {g}{where} has no latency model; {HOW_TO_ADD}")


def simulate(stream: pd.DataFrame, plan: SimPlan, gpus: Mapping[str, GpuProfile], *, routing: str = "least",
             seed: int = 0, slo=None, progress: bool = False, ray: str | bool | None = None) -> SimResult:
    """Serve `stream` with `plan` (see the module docstring); `slo` defaults to the profiles' SLO.
    `ray` (an address, or True: RAY_ADDRESS else a local Ray) simulates each GPU type's pool as a Ray
    task; pools share no replica once requests are routed, so the result is the same."""
    wall, cpu = time.perf_counter(), time.process_time()
    if routing not in ROUTINGS:
        raise InputError("routing", f"must be one of {ROUTINGS}, got {routing!r}")
    if stream.empty:
        raise InputError("stream", "has no requests; give a positive duration and rate, or a trace with rows")
    if len(stream) > MAX_REQUESTS:
        raise InputError("stream", f"has {len(stream):,} requests, over {MAX_REQUESTS:,} (about 0.8 KB each in memory); "
                                   "simulate a shorter stream or a slice of the trace")
    missing = [g for g in plan.gpus if g not in gpus]
    if missing:
        raise InputError("plan", f"uses GPU type(s) {missing} that the profile file does not have")
    check_latency(gpus, plan.gpus, " in the plan")
    if not (plan.counts.fillna(0).to_numpy() > 0).any():
        raise InputError("plan", "has no GPU in any window (every window is empty or cannot be served): nothing "
                                 "to simulate")
    slo = parse_slo(slo if slo is not None else next(iter(gpus.values())).meta.get("slo"), field="slo")
    if slo == "unknown":
        raise InputError("slo", "the profile file states no SLO; give one, e.g. --slo tpot_ms=40")
    assigned = assign_gpus(stream, plan, gpus, seed=seed)
    names = plan.gpus
    duration = float(stream.attrs.get("duration_s") or max(float(stream["arrival_s"].max()), 1.0))
    starts = plan.windows["start_s"].to_numpy(dtype=float)
    if plan.origin is not None and "timestamp" in stream:    # window starts in the stream's seconds, as `_windows_of`
        t0 = pd.Timestamp(stream["timestamp"].iloc[0]) - pd.Timedelta(seconds=float(stream["arrival_s"].iloc[0]))
        starts = starts + (plan.origin - t0).total_seconds()
    ends = np.append(starts[1:], max(duration, starts[-1]))
    covered = np.clip(np.minimum(ends, duration) - np.clip(starts, 0, duration), 0, None)
    if covered.sum() <= 0:
        covered = np.ones(len(starts))
    inp_all = np.maximum(assigned["input_tokens"].to_numpy(np.int64), 1)
    out_all = np.maximum(assigned["output_tokens"].to_numpy(np.int64), 1)
    loads = {}
    for g in names:
        mask = (assigned["gpu"] == g).to_numpy()
        if not mask.any():
            continue
        replica_seconds = float((plan.counts[g].to_numpy() * covered).sum())
        mu = _saturated_rate(gpus[g].latency, inp_all[mask], out_all[mask])
        loads[g] = mask.sum() / max(duration, 1e-9) / (mu * replica_seconds / covered.sum()) if replica_seconds else math.inf
    options = {"routing": routing, "seed": seed, "requests": int(len(stream)), "duration_s": duration,
               "stream": stream.attrs.get("source", "")}
    over = {g: v for g, v in loads.items() if v >= 1.0}
    if over:
        worst = max(over, key=over.get)
        message = (f"the queue grows without bound: the plan is under-provisioned ({worst} is offered "
                   f"{over[worst]:.0%} of what its replicas serve at a full batch)")
        summary = pd.DataFrame({"offered_load": pd.Series(loads)}).rename_axis("gpu")
        return SimResult("unbounded", message, assigned, summary, pd.DataFrame(), slo, plan.description, options,
                         time.perf_counter() - wall, time.process_time() - cpu)
    code = {g: k for k, g in enumerate(names)}
    gtype = np.array([code[g] for g in assigned["gpu"]], dtype=np.int64)
    arrival = assigned["arrival_s"].to_numpy(dtype=float)
    if np.any(np.diff(arrival) < 0):
        raise InputError("stream", "arrival_s must be sorted")
    window = assigned["window"].to_numpy(dtype=np.int64)
    pools = [(k, np.flatnonzero(gtype == k)) for k in range(len(names))]
    pools = [(k, rows) for k, rows in pools if len(rows)]
    jobs = [(arrival[rows].tolist(), inp_all[rows].tolist(), out_all[rows].tolist(), window[rows].tolist(),
             [int(c) for c in plan.counts[names[k]]], gpus[names[k]].latency, routing) for k, rows in pools]
    if ray:                     # each GPU type's pool is a Ray task: pools share no replica, so the same answer
        from .pools import run_tasks
        runs = run_tasks(_pool_engine, jobs, ray=ray, what="GPU pools", progress=progress)
    else:
        bar = _Progress(len(arrival), "simulating") if progress and len(arrival) >= 20_000 else None
        runs, offset = [], 0
        for job, (_, rows) in zip(jobs, pools):
            tick = (lambda done, o=offset: bar.tick(o + done)) if bar is not None else None
            runs.append(_pool_engine(*job, tick=tick))
            offset += len(rows)
        if bar is not None:
            bar.close()
    local = np.full(len(arrival), -1, dtype=np.int64)
    t_admit, t_first, t_done = (np.full(len(arrival), np.nan) for _ in range(3))
    stats = {g: {"busy_s": 0.0, "steps": 0, "seq_steps": 0} for g in names}
    for (k, rows), (rep, admit, first, finish, reps) in zip(pools, runs):
        local[rows], t_admit[rows], t_first[rows], t_done[rows] = rep, admit, first, finish
        for key in stats[names[k]]:
            stats[names[k]][key] = sum(r[key] for r in reps)
    req = assigned.copy()
    req["replica"] = local
    req["queue_ms"] = (t_admit - arrival) * 1e3
    req["ttft_ms"] = (t_first - arrival) * 1e3
    req["e2e_ms"] = (t_done - arrival) * 1e3
    with np.errstate(invalid="ignore", divide="ignore"):
        req["tpot_ms"] = np.where(out_all > 1, (t_done - t_first) * 1e3 / (out_all - 1), np.nan)
    req["rejected"] = np.isnan(t_done)
    req["slo_met"] = _request_slo(req, slo)
    rows = {g: _summary_row(req[req["gpu"] == g], slo) for g in names}
    rows["all"] = _summary_row(req, slo)
    summary = pd.DataFrame.from_dict(rows, orient="index").rename_axis("gpu")
    horizon = max(duration, float(np.nanmax(t_done)) if np.isfinite(t_done).any() else duration)
    ends_h = np.append(starts[1:], horizon)
    span = np.clip(ends_h - np.clip(starts, 0, None), 0, None)
    busy = {g: stats[g]["busy_s"] for g in names}
    # replica-seconds the plan holds; a replica still draining after its last window holds its GPU too
    held = {g: max(float((plan.counts[g].to_numpy() * span).sum()), busy[g]) for g in names}
    seq_steps = {g: stats[g]["seq_steps"] for g in names}
    steps = {g: stats[g]["steps"] for g in names}
    summary["replicas"] = [int(plan.counts[g].max()) for g in names] + [int(plan.counts.sum(axis=1).max())]
    summary["utilization"] = [busy[g] / held[g] if held[g] else math.nan for g in names] + \
        [sum(busy.values()) / sum(held.values()) if sum(held.values()) else math.nan]
    summary["mean_batch"] = [seq_steps[g] / steps[g] if steps[g] else math.nan for g in names] + \
        [sum(seq_steps.values()) / sum(steps.values()) if sum(steps.values()) else math.nan]
    summary["offered_load"] = [loads.get(g, 0.0) for g in names] + [math.nan]
    req = req[[c for c in REQUEST_COLUMNS if c in req] + [c for c in req if c not in REQUEST_COLUMNS]]
    queue = queue_lengths(req)
    drain = horizon - duration
    message = (f"{summary.at['all', 'attainment']:.1%} of {len(req):,} requests meet {_slo_text(slo)} "
               f"on {plan.description}")
    status = "ok"
    if drain > max(60.0, 0.25 * duration) and queue["all"].iloc[-1] > 0:
        message += (f"; the queue was still growing at the end of the stream ({drain:.0f} s to drain): the plan "
                    "is under-provisioned")
    return SimResult(status, message, req.reset_index(drop=True), summary, queue, slo, plan.description, options,
                     time.perf_counter() - wall, time.process_time() - cpu)


def summary_table(result: SimResult) -> pd.DataFrame:
    """The summary in a few readable columns (attainment %, p50/p99 TTFT and TPOT, p99 e2e and queueing, ms)."""
    s = result.summary
    out = pd.DataFrame({"requests": s["requests"], "attainment_%": (100 * s["attainment"]).round(1)})
    for col in ("p50_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "p99_tpot_ms", "p99_e2e_ms", "p99_queue_ms"):
        out[col] = s[col].round(1)
    out["utilization_%"] = (100 * s["utilization"]).round(1)
    out["replicas"] = s["replicas"]
    return out


def _slo_text(slo) -> str:
    from .profiles import format_slo
    return " and ".join(f"{c['metric'].upper()} ≤ {c['ms']:g} ms" for c in slo) if slo else format_slo(slo)


def write_result(result: SimResult, out_dir: str | Path) -> list[Path]:
    """requests.parquet, summary.csv, queue.csv and summary.json into `out_dir` (each written atomically)."""
    from .files import atomic_write, write_json

    out_dir = Path(out_dir)
    req = result.requests.drop(columns=[c for c in ("timestamp",) if c in result.requests])
    req.attrs = {}
    return [atomic_write(out_dir / "requests.parquet", lambda tmp: req.to_parquet(tmp, index=False)),
            atomic_write(out_dir / "summary.csv", lambda tmp: result.summary.to_csv(tmp)),
            atomic_write(out_dir / "queue.csv", lambda tmp: result.queue.to_csv(tmp)),
            write_json(out_dir / "summary.json", result.to_dict())]


# ---------------------------------------------------------------- the cheapest plan that holds the SLO

@dataclass
class AttainmentSearch:
    """`search_attainment`'s answer: the throughput-only plan and the plan found, each with its attainment.

    ``status``: ``met`` (``found`` reaches the target), ``not_met`` (no plan tried reached it;
    ``found`` is the best tried), ``infeasible`` (the solver found no throughput plan). ``neighbours``:
    the found plan minus one GPU of each type, with their attainment (all below the target when met).
    ``tried``: every plan simulated (mix, $/h, attainment, status).
    """

    target: float
    status: str
    message: str
    baseline: dict | None
    found: dict | None
    neighbours: list[dict]
    tried: pd.DataFrame
    baseline_result: SimResult | None = None
    result: SimResult | None = None

    def to_dict(self) -> dict:
        return {"target": self.target, "status": self.status, "message": self.message, "baseline": self.baseline,
                "found": self.found, "neighbours": self.neighbours,
                "tried": self.tried.to_dict(orient="records")}


def _plan_entry(counts: Mapping[str, int], gpus: Mapping[str, GpuProfile], res: SimResult) -> dict:
    from .report import format_mix

    counts = {g: int(counts[g]) for g in gpus if counts.get(g, 0) > 0}
    row = res.summary.loc["all"] if res.status == "ok" else None
    return {"counts": counts, "mix": format_mix(counts), "cost_per_hour": round(sum(gpus[g].cost * c for g, c in counts.items()), 6),
            "attainment": round(res.attainment, 6), "status": res.status,
            **({f"p99_{m}": round(float(row[f"p99_{m}"]), 3) for m in ("ttft_ms", "tpot_ms")} if row is not None else {})}


def search_attainment(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, target: float, *,
                      stream: pd.DataFrame | None = None, duration_s: float = 600.0, arrival: str = "poisson",
                      seed: int = 0, solver: str = "exact", constraints=None, routing: str = "least", slo=None,
                      max_plans: int = 200, progress: bool = False, base=None,
                      ray: str | bool | None = None) -> AttainmentSearch:
    """The cheapest plan found whose simulated SLO attainment reaches `target`, and the throughput-only plan.

    Every plan is simulated on the same stream (`stream`, or one generated from `workload` at `rate`
    for `duration_s` with `arrival` and `seed`). From the throughput-only plan (`solver`), GPUs are
    added one at a time (the type buying the most attainment per dollar; the cheapest addition that
    reaches the target ends this phase); each GPU type alone is also tried (its fewest replicas that
    reach the target, by doubling and bisection), and the cheapest plan reaching the target loses GPUs
    one at a time while the target still holds (the most expensive first), so the answer is minimal:
    removing any one GPU drops below the target.
    Plans other than the solver's own are routed by `balanced_routes`. Quotas in `constraints` hold.
    `base`: the throughput-only plan (a `SolveResult`) when it is already solved (``plan`` passes each
    window's, solved with its own solver options); by default `workload` at `rate` is solved with `solver`.
    The plans of one step are simulated together: here, or as Ray tasks on a cluster with `ray` (an
    address, or True: RAY_ADDRESS else a local Ray), with the same answer.
    """
    from . import schemas
    from .solver import Constraints, solve

    target = schemas.number(target, "target_attainment", positive=True, maximum=1.0,
                            what="a share of requests in (0, 1], e.g. 0.99")
    constraints = (constraints or Constraints()).check(list(gpus))
    base = base if base is not None else solve(workload, gpus, rate, solver=solver, constraints=constraints)
    if not base.has_allocation:
        return AttainmentSearch(target, "infeasible", f"no throughput plan: {base.message}", None, None, [],
                                pd.DataFrame(columns=["mix", "cost_per_hour", "attainment", "status"]))
    base_plan = plan_from_result(base, gpus)
    usable = serving(gpus)                # a type serving nothing is never added
    check_latency(gpus, usable)
    if stream is None:
        stream = stream_from_workload(workload, rate, duration_s, arrival=arrival, seed=seed)
    from .pools import session

    with session(ray):      # one Ray connection for every step's tasks
        key = lambda counts: tuple(sorted((g, int(c)) for g, c in counts.items() if c > 0))   # noqa: E731
        cache: dict[tuple, SimResult] = {}
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(desc="attainment search", unit="plan")

        def run_all(plans: list[dict]) -> list[SimResult]:
            """Each plan's result; the ones not simulated yet are simulated together (here, or as Ray tasks)."""
            from .pools import run_tasks

            keys = [key(c) for c in plans]
            new = list(dict.fromkeys(k for k in keys if k not in cache))
            if len(cache) + len(new) > max_plans:
                raise InputError("max_plans", f"the search simulated {max_plans} plans without an answer")
            jobs = [(stream, base_plan if k == key(base.counts) else plan_from_counts(dict(k), workload, gpus), gpus,
                     routing, seed, slo) for k in new]
            for k, res in zip(new, run_tasks(_simulate_plan, jobs, ray=ray)):
                cache[k] = res
                if bar is not None:
                    bar.update(1)
            return [cache[k] for k in keys]

        run = lambda counts: run_all([counts])[0]   # noqa: E731
        cost = lambda counts: sum(gpus[g].cost * c for g, c in counts.items())   # noqa: E731
        high = {g: constraints.max_instances.get(g, math.inf) for g in gpus}
        low = {g: constraints.min_instances.get(g, 0) for g in gpus}
        current = {g: int(base.counts.get(g, 0)) for g in gpus}
        baseline_res = run(current)
        att = baseline_res.attainment
        while att < target:
            options = [{**current, g: current[g] + 1} for g in usable if current[g] + 1 <= high[g]]
            if not options:
                break
            scored = [(c, r.attainment) for c, r in zip(options, run_all(options))]
            meeting = [c for c, a in scored if a >= target]
            if meeting:
                current = min(meeting, key=cost)
            else:
                current = max(scored, key=lambda ca: (ca[1] - att) / (cost(ca[0]) - cost(current)))[0]
            att = run(current).attainment
        met = att >= target
        # Each type alone (where no other type must be kept): its fewest replicas that reach the target,
        # by doubling then bisection, every type's probes simulated together.
        bounds = {g: [max(0, low[g] - 1), max(1, low[g])] for g in usable if not any(low[h] > 0 for h in gpus if h != g)}
        cap = {g: min(high[g], 64) for g in bounds}
        growing = [g for g in bounds if bounds[g][1] <= cap[g]]
        while growing:
            reached = [r.attainment >= target for r in run_all([{g: bounds[g][1]} for g in growing])]
            for g, ok in zip(growing, reached):
                if not ok:
                    bounds[g] = [bounds[g][1], bounds[g][1] * 2]
            growing = [g for g, ok in zip(growing, reached) if not ok and bounds[g][1] <= cap[g]]
        alone = [g for g in bounds if bounds[g][1] <= cap[g]]
        narrowing = [g for g in alone if bounds[g][1] - bounds[g][0] > 1]
        while narrowing:
            mids = [(bounds[g][0] + bounds[g][1]) // 2 for g in narrowing]
            for g, mid, r in zip(narrowing, mids, run_all([{g: m} for g, m in zip(narrowing, mids)])):
                bounds[g][1 if r.attainment >= target else 0] = mid
            narrowing = [g for g in narrowing if bounds[g][1] - bounds[g][0] > 1]
        for g in alone:
            n = bounds[g][1]
            if not met or cost({g: n}) < cost(current):
                current, met = {h: (n if h == g else 0) for h in gpus}, True
        neighbours: list[dict] = []
        while met:
            options = sorted(([{**current, g: current[g] - 1}, g] for g in gpus
                              if current[g] - 1 >= low[g] and sum(current.values()) > 1 and current[g] > 0),
                             key=lambda cg: -gpus[cg[1]].cost)
            scored = [(c, g, r) for (c, g), r in zip(options, run_all([c for c, _ in options]))]
            better = [(c, r) for c, _, r in scored if r.attainment >= target]
            if not better:
                neighbours = [{"removed": g, **_plan_entry(c, gpus, r)} for c, g, r in scored]
                break
            current = min((c for c, _ in better), key=cost)
        found_res = run(current)
        tried = pd.DataFrame([_plan_entry(dict(k), gpus, r) for k, r in cache.items()]).drop(columns="counts")
        baseline, found = _plan_entry(base.counts, gpus, baseline_res), _plan_entry(current, gpus, found_res)
        slo_text = _slo_text(found_res.slo)
        message = (f"{baseline['mix']} (${baseline['cost_per_hour']:.2f}/h, throughput only) meets {slo_text} for "
                   f"{baseline['attainment']:.1%} of requests; ")
        if met:
            message += (f"{found['mix']} (${found['cost_per_hour']:.2f}/h) meets it for {found['attainment']:.1%}, "
                        f"the cheapest plan found at {target:.0%}")
        else:
            message += f"no plan tried reaches {target:.0%} (best: {found['mix']}, {found['attainment']:.1%})"
        if bar is not None:
            bar.close()
        return AttainmentSearch(target, "met" if met else "not_met", message, baseline, found, neighbours,
                                tried.sort_values("cost_per_hour", ignore_index=True), baseline_res, found_res)


def _simulate_plan(stream, plan, gpus, routing, seed, slo) -> SimResult:
    """One candidate plan of a search (a task of `pools.run_tasks`)."""
    return simulate(stream, plan, gpus, routing=routing, seed=seed, slo=slo)


# ---------------------------------------------------------------- self-consistency of a profile

def bucket_max_rate(gpu: GpuProfile, input_bucket: str, output_bucket: str, *, slo=None, arrival: str = "constant",
                    seed: int = 0, requests: int = 400, precision: float = 0.02, guess: float | None = None) -> float:
    """The highest rate at which one replica serves a bucket's requests (midpoint sizes, as ``profile
    predict`` assumes) with the SLO as stated (e.g. mean TPOT over the requests) met, by simulation.

    Each rate is simulated with `requests` requests (the first fifth, the warm-up, is not judged);
    rates are bracketed from `guess` (default: the profile's throughput) and bisected to `precision`.
    """
    slo = parse_slo(slo if slo is not None else gpu.meta.get("slo"), field="slo")
    if slo == "unknown":
        raise InputError("slo", f"{gpu.name}'s profile states no SLO; give one, e.g. --slo tpot_ms=40")
    if gpu.latency is None:
        raise InputError(f"gpus.{gpu.name}.latency", f"GPU type {gpu.name} has no latency model; {HOW_TO_ADD}")
    like = gpu.tputs
    one = pd.DataFrame(0.0, index=like.index, columns=like.columns)
    one.loc[input_bucket, output_bucket] = 1.0
    gpus = {gpu.name: gpu}
    routes = pd.DataFrame([{INPUT_AXIS: input_bucket, OUTPUT_AXIS: output_bucket, "gpu": gpu.name, "share": 1.0}])
    plan = _static({gpu.name: 1}, routes, gpus, f"1×{gpu.name}")

    def meets(rate: float) -> bool:
        stream = stream_from_workload(one, rate, requests / rate, arrival=arrival, seed=seed, sizes="midpoint")
        res = simulate(stream, plan, gpus, slo=slo, seed=seed)
        if res.status != "ok":
            return False
        judged = res.requests.iloc[len(res.requests) // 5:]
        return _stated_slo(judged, slo)

    rate = float(guess or like.at[input_bucket, output_bucket] or 1.0)
    if meets(rate):
        low, high = rate, rate * 1.5
        while meets(high):
            low, high = high, high * 1.5
            if high > 1e6:
                return math.inf
    else:
        low, high = rate / 1.5, rate
        while not meets(low):
            low, high = low / 1.5, low
            if low < 1e-6:
                return 0.0
    while high / low > 1 + precision:
        mid = math.sqrt(low * high)
        low, high = (mid, high) if meets(mid) else (low, mid)
    return low


def check_profiles(gpus: Mapping[str, GpuProfile], *, slo=None, arrival: str = "constant", seed: int = 0,
                   requests: int = 400, progress: bool = False) -> pd.DataFrame:
    """Per GPU type and bucket with a throughput: the profile's rate, the simulated max rate of one replica
    (`bucket_max_rate`) and their ratio (simulated / profile). A latency model consistent with its
    profile gives ratios near 1 (``profile check`` calls within 15% consistent)."""
    missing = [g for g, p in gpus.items() if p.latency is None and p.tputs.to_numpy().max() > 0]
    if missing:
        raise InputError(f"gpus.{missing[0]}.latency", f"GPU type {missing[0]} has no latency model; {HOW_TO_ADD}")
    cells = [(g, i, o) for g, p in gpus.items() for i in p.tputs.index for o in p.tputs.columns if p.tputs.at[i, o] > 0]
    if progress:
        from tqdm.auto import tqdm
        cells = tqdm(cells, desc="profile check", unit="bucket")
    rows = []
    for g, i, o in cells:
        profiled = float(gpus[g].tputs.at[i, o])
        simulated = bucket_max_rate(gpus[g], i, o, slo=slo, arrival=arrival, seed=seed, requests=requests)
        rows.append({"gpu": g, INPUT_AXIS: i, OUTPUT_AXIS: o, "profile_rate": profiled, "simulated_rate": simulated,
                     "ratio": simulated / profiled})
    return pd.DataFrame(rows, columns=["gpu", INPUT_AXIS, OUTPUT_AXIS, "profile_rate", "simulated_rate", "ratio"])


def fit_profile_latency(gpu: GpuProfile, *, kv_tokens: int, max_seqs: int, max_step_tokens: int, source: str,
                        idle: pd.DataFrame | None = None, refine: int = 1, requests: int = 300,
                        notes: Sequence[str] = ()) -> tuple[LatencyModel, pd.DataFrame]:
    """A latency model consistent with `gpu`'s own rates, and its ``check_profiles`` table.

    The profile's SLO must bound mean TPOT. At a bucket's max rate r its requests run at that TPOT
    with Little's-law concurrency r x (TTFT + (output - 1) x TPOT) (midpoint lengths); a bucket whose
    concurrency would exceed ``max_seqs`` or the KV cache runs at that cap instead, with the TPOT
    Little's law gives there. One sample per bucket; `idle` (TPOT at batch 1, e.g.
    from ``predict.replica_facts``) anchors the base, and ``fit_latency`` fits them. `refine` times,
    the simulated max rate per bucket corrects that bucket's concurrency (by the ratio
    simulated / profile) and the model is refitted. The notes say how many buckets end within 15%.
    """
    from .profiles.latency import fit_latency
    from .profiles.predict import representative_lengths

    slo = parse_slo(gpu.meta.get("slo"), field="slo")
    tpot = [c for c in (slo if slo != "unknown" else []) if c["metric"] in ("tpot", "itl") and c["stat"] == "mean"]
    if not tpot:
        raise InputError(f"gpus.{gpu.name}.slo", "a latency fit to the profile's rates needs a mean TPOT condition, "
                                                 f"e.g. tpot_ms=40; {HOW_TO_ADD}")
    target = tpot[0]["ms"]
    (in_edges, in_open), (out_edges, out_open) = _edges_of(list(gpu.tputs.index)), _edges_of(list(gpu.tputs.columns))
    ins = representative_lengths(in_edges, in_open, minimum=1)
    outs = representative_lengths(out_edges, out_open, minimum=2)
    correction = pd.Series(1.0, index=gpu.tputs.stack().index)
    model, table = None, None
    for round_ in range(refine + 1):
        rows = []
        for a, i in enumerate(gpu.tputs.index):
            for b, o in enumerate(gpu.tputs.columns):
                rate = float(gpu.tputs.at[i, o])
                if rate <= 0:
                    continue
                ttft = target + (model.per_prefill_token * ins[a] if model else 0.0)
                n = rate * (ttft + (outs[b] - 1) * target) / 1e3
                cap = min(max_seqs, kv_tokens / (ins[a] + outs[b]))
                if n <= cap:                          # the SLO bounds the rate: TPOT = target at n in flight
                    row = {"concurrency": n / correction[(i, o)], "tpot_ms": target}
                else:                                 # the batch or memory cap bounds it: TPOT from Little's law
                    row = {"concurrency": cap, "tpot_ms": 1e3 * cap / (rate * outs[b]) / correction[(i, o)]}
                rows.append({**row, "input_len": ins[a], "output_len": outs[b]})
        samples = pd.DataFrame(rows)
        if idle is not None and len(idle):
            samples = pd.concat([samples, idle[["concurrency", "input_len", "output_len", "tpot_ms"]]], ignore_index=True)
        model = fit_latency(samples, max_seqs=max_seqs, kv_tokens=kv_tokens, max_step_tokens=max_step_tokens,
                            source=source, notes=notes)
        table = check_profiles({gpu.name: dataclasses.replace(gpu, latency=model)}, requests=requests)
        if round_ < refine:
            ratio = table.set_index([INPUT_AXIS, OUTPUT_AXIS])["ratio"].reindex(correction.index)
            ratio = ratio.where(np.isfinite(ratio) & (ratio > 0), 1.0).clip(0.2, 5.0)   # a bucket never met, or never missed
            correction = correction * ratio
    ratio = table["ratio"]
    within = int((abs(ratio - 1) <= 0.15).sum())
    note = (f"consistent with this profile's rates: fitted to its mean TPOT {target:g} ms at each bucket's max rate "
            f"(Little's-law concurrency, midpoint lengths{', refined ' + str(refine) + 'x by simulation' if refine else ''}"
            f"{', TPOT at batch 1 as the base' if idle is not None and len(idle) else ''}); profile check: {within} of "
            f"{len(ratio)} buckets within 15% (simulated/profile median {ratio.median():.2f}, "
            f"range {ratio.min():.2f}-{ratio.max():.2f})")
    return dataclasses.replace(model, notes=model.notes + (note,)), table


def latency_from_predictions(gpus: Mapping[str, GpuProfile], *, refine: int = 1, requests: int = 300,
                             progress: bool = False) -> tuple[dict[str, GpuProfile], pd.DataFrame]:
    """Predicted profiles with a latency model each (`fit_profile_latency` on their own rates, anchored by
    aiconfigurator-core's batch-1 TPOT and KV capacity for the GPU's system, engine kernel data and
    tensor-parallel size), and the ``profile check`` table of every GPU. GPUs that serve no bucket keep
    none. Systems without measured kernels (speed-of-light) get no batch-1 anchor (their SOL latency
    is optimistic); their notes say so."""
    from .profiles.predict import LATENCY_MAX_SEQS, LATENCY_STEP_TOKENS, available, replica_facts

    out, tables = {}, []
    names = list(gpus)
    if progress:
        from tqdm.auto import tqdm
        names = tqdm(names, desc="latency fits", unit="GPU")
    for name in names:
        gpu = gpus[name]
        if gpu.tputs.to_numpy().max() <= 0:
            out[name] = gpu
            continue
        meta = gpu.meta
        engine = meta.get("engine") if isinstance(meta.get("engine"), Mapping) else {}
        backend, version = engine.get("name"), engine.get("version")
        system, tp = meta.get("system"), meta.get("gpus_per_replica")
        if meta.get("source") != "predicted" or not backend or system in (None, "unknown"):
            raise InputError(f"gpus.{name}", "is not a predicted profile with system and engine; fit a latency model "
                                             f"another way: {HOW_TO_ADD}")
        measured = system in available()["measured"].get(backend, [])
        mode = "SILICON" if measured else "SOL"
        facts = replica_facts(meta.get("model"), system, backend=backend, version=version,
                              tp=tp if isinstance(tp, int) else 1, mode=mode)
        source = f"fit: profile rates + aiconfigurator-core {backend} {facts['version']} ({mode.lower()})"
        notes = [f"kv_tokens from aiconfigurator-core's memory model ({mode.lower()}); max_seqs {LATENCY_MAX_SEQS} "
                 f"(the prediction's concurrency cap); max_step_tokens {LATENCY_STEP_TOKENS} (its larger prefill chunk)"]
        if not measured:
            notes.append("speed-of-light system: no batch-1 TPOT anchor (its estimate is optimistic)")
        model, table = fit_profile_latency(gpu, kv_tokens=facts["kv_tokens"], max_seqs=LATENCY_MAX_SEQS,
                                           max_step_tokens=LATENCY_STEP_TOKENS, source=source,
                                           idle=facts["idle"] if measured else None, refine=refine,
                                           requests=requests, notes=notes)
        out[name] = dataclasses.replace(gpu, latency=model)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return out, table
