"""Plans that follow the traffic: a GPU mix per clock-aligned time window of a timestamped trace.

A trace (one row per request: timestamp, input tokens, output tokens) is cut into windows the way
pandas ``resample`` cuts it (fixed length, aligned to midnight of the first day). Per window:

- ``rate`` = requests in the window / window seconds; the first and last windows are counted the
  same way, even though the trace covers only part of them, and flagged ``partial``;
- a histogram on the GPU profiles' edges (``workload.histogram``'s rule; requests beyond the last edge
  follow the overflow policy and are counted per window); the solver plans ``planned_rate``, the
  requests in the histogram / window seconds;
- the chosen solver with the constraints (``solver.solve``). An empty window needs no GPUs, only
  ``min_instances`` (and ``min_total``); a window no mix can serve keeps its status and reason.

Totals (``Plan.totals``): the autoscaled cost (sum over windows of $/h x window hours, every
window billed in full); the static peak cost, i.e. the cheapest single set of GPU counts that can
serve every window (one integer program over all windows' demands, its own routing per window),
which is what a fixed fleet must buy and therefore the fair baseline; the mix solved on the peak
window alone, which can miss a window whose request sizes differ; each single GPU type autoscaled
and static; optional smoothing against flapping.

Where windows are solved: here, in a local process pool (`workers`), or as Ray tasks on a cluster
(`ray`, ``plan --ray-address``), through `pools.run_tasks`; the plan is the same either way.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .files import atomic_write, write_json
from .profiles import GpuProfile
from .schemas import check_plan_options
from .solver import LOAD_EPS, Constraints, SolveResult, flat_problem, highs_program, single_counts, solve
from .workload import (OVERFLOW_POLICIES, bucket_index, bucket_labels, labelled_matrix, parse_bucket_labels,
                       read_trace)


# ---------------------------------------------------------------- inputs: trace, window, edges

def read_timed_trace(path: str | Path, *, timestamp_column: str = "TIMESTAMP", input_column: str = "ContextTokens",
                     output_column: str = "GeneratedTokens") -> tuple[pd.DataFrame, dict]:
    """(requests, report): ``timestamp``, ``input_tokens``, ``output_tokens``, sorted by time.

    Token columns are checked by ``workload.read_trace``. A missing timestamp column or an
    unparseable timestamp is an error naming the column and the first bad row (file rows count the
    header as row 1). Out-of-order rows are sorted, not rejected; the report says how many and where.
    """
    path = Path(path)
    lengths = read_trace(path, input_column=input_column, output_column=output_column)
    parquet = path.suffix.lower() == ".parquet"
    columns = list(pd.read_parquet(path).columns if parquet else pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns)
    if timestamp_column not in columns:
        raise InputError(f"{path.name}: {timestamp_column}", f"no such column; the trace has {columns}; "
                                                             "set --timestamp-column")
    raw = (pd.read_parquet(path, columns=[timestamp_column]) if parquet
           else pd.read_csv(path, usecols=[timestamp_column], encoding="utf-8-sig"))[timestamp_column]
    stamps = _timestamps(raw, f"{path.name}: {timestamp_column}")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise InputError(f"{path.name}: {timestamp_column}", f"row {row + 2} holds {str(raw.iloc[row])!r}, not a "
                                                             "timestamp; use ISO 8601, e.g. 2023-11-16 18:15:46.68")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    requests = pd.DataFrame({"timestamp": stamps.to_numpy(), **{c: lengths[c].to_numpy() for c in lengths}})
    values = requests["timestamp"].to_numpy()
    backwards = np.flatnonzero(values[1:] < values[:-1]) + 1
    report = {"source": f"trace {path.name} (columns {timestamp_column}, {input_column}, {output_column})",
              "requests": int(len(requests)), "out_of_order_rows": int(len(backwards)),
              "first_out_of_order_row": int(backwards[0] + 2) if len(backwards) else None}
    if len(backwards):
        requests = requests.sort_values("timestamp", kind="stable", ignore_index=True)
        report["note"] = (f"{len(backwards)} rows were earlier than the row before them (first: file row "
                          f"{backwards[0] + 2}); the trace was sorted by {timestamp_column}")
    return requests, report


def _timestamps(raw: pd.Series, field: str = "timestamp") -> pd.Series:
    """Datetimes from ISO 8601 text (other date formats as pandas infers them) or numbers of seconds.
    Stamps with UTC offsets (even different ones) are converted to UTC; a mix of stamps with and
    without an offset is refused, since the naive ones' zone is unknown."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return pd.to_datetime(raw, unit="s", errors="coerce")     # seconds since the epoch or the trace start
    text = raw.astype(str).str.strip()
    aware = text.str.contains(r"\d:\d\d(?::\d\d(?:\.\d*)?)?\s*(?:Z|UTC|[+-]\d\d:?\d\d)$", case=False, regex=True)
    if aware.any() and not aware.all():
        i, j = int(np.flatnonzero(aware.to_numpy())[0]), int(np.flatnonzero(~aware.to_numpy())[0])
        raise InputError(field, f"mixes timestamps with a UTC offset (row {i + 2}: {text.iloc[i][:40]!r}) and "
                                        f"without (row {j + 2}: {text.iloc[j][:40]!r}); give every timestamp an "
                                        "offset (e.g. Z), or none")
    utc = bool(aware.any())          # offsets, possibly different ones: every stamp converted to UTC
    stamps = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
    if stamps.isna().any():
        mixed = pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)
        stamps = mixed if mixed.isna().sum() < stamps.isna().sum() else stamps
    return stamps


def parse_window(text: str | pd.Timedelta) -> pd.Timedelta:
    """A window length such as ``5min``, ``300s`` or ``1h`` (a number and a unit) as a Timedelta."""
    if isinstance(text, pd.Timedelta):
        window = text
    else:
        if not isinstance(text, str) or not re.fullmatch(r"\s*\d+(\.\d+)?\s*[A-Za-z]+\s*", text):
            raise InputError("window", f"{text!r} is not a length; give a number and a unit, e.g. 5min, 300s, 1h")
        try:
            window = pd.Timedelta(text.strip())
        except ValueError as exc:
            raise InputError("window", f"{text!r} is not a length; give a number and a unit, e.g. 5min, 300s, 1h") from exc
    if window <= pd.Timedelta(0):
        raise InputError("window", f"must be longer than 0, got {text!r}")
    return window


MAX_WINDOWS = 100_000     # windows in one plan: each is solved, and each holds a histogram in memory


def check_window_count(n: int, shown: str, span) -> None:
    """Refuse a window so short that the trace would need more than `MAX_WINDOWS` windows."""
    if n > MAX_WINDOWS:
        raise InputError("window", f"{shown} cuts the trace ({span}) into {n:,} windows; a plan has at most "
                                   f"{MAX_WINDOWS:,}: choose a longer window")


def profile_edges(gpus: Mapping[str, GpuProfile]) -> tuple[list[float], list[float], bool]:
    """(input edges, output edges, open last bucket) recovered from the profiles' ``lo-hi`` labels."""
    tputs = next(iter(gpus.values())).tputs
    axes = []
    for labels in (list(tputs.index), list(tputs.columns)):
        try:
            axes.append(parse_bucket_labels(labels))
        except InputError as exc:
            raise InputError("gpus", f"bucket labels {labels} are not lo-hi token ranges; a plan needs a profile "
                                     "with token edges (params/gpus/*.yaml), not a melange-release config") from exc
    (inp, open_in), (out, open_out) = axes
    if open_in != open_out:
        raise InputError("gpus", "the profile has an open last bucket on one axis only; a trace plan needs both or neither")
    return inp, out, open_in


# ---------------------------------------------------------------- windows

@dataclass
class Windows:
    """Per-window facts (``table``) and the request-size histogram of each window (None when empty)."""

    table: pd.DataFrame            # start, end, requests, rate, planned_rate, overflow, partial
    workloads: list[pd.DataFrame | None]
    window: pd.Timedelta
    overflow: dict

    @property
    def seconds(self) -> float:
        return self.window.total_seconds()


def cut_windows(requests: pd.DataFrame, window: str | pd.Timedelta, gpus: Mapping[str, GpuProfile], *,
                overflow: str = "drop") -> Windows:
    """Cut a sorted timed trace into clock-aligned windows with one histogram each on the profiles' edges."""
    shown = window if isinstance(window, str) else str(window)
    window = parse_window(window)
    if overflow not in OVERFLOW_POLICIES:
        raise InputError("overflow", f"must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    input_edges, output_edges, is_open = profile_edges(gpus)
    if is_open and overflow != "open":
        overflow = "open"   # the profile serves every length: nothing overflows
    elif overflow == "open":
        raise InputError("overflow", "open needs a profile with an open last bucket (open_last_input/output); "
                                     "use drop or clip")
    stamps = requests["timestamp"]
    first, last = stamps.iloc[0], stamps.iloc[-1]
    if last == first:
        raise InputError("trace", f"every request has the same timestamp ({first}): a plan per time window needs "
                                  "requests spread over time; for one mix, use `melange-nb solve` or `simulate --trace`")
    if window > last - first:
        raise InputError("window", f"{shown} is longer than the trace ({first} to {last}); "
                                   "choose a shorter window")
    origin = first.normalize()                       # resample's origin="start_day"
    step = window.value
    index = (stamps.to_numpy().astype("datetime64[ns]").astype(np.int64) - origin.value) // step
    lo, hi = int(index[0]), int(index[-1])
    n = hi - lo + 1
    check_window_count(n, shown, last - first)
    starts = origin + pd.to_timedelta(np.arange(lo, hi + 1) * step, unit="ns")
    win = index - lo
    counts = np.bincount(win, minlength=n)
    # Bucket every request once with `histogram`'s rule, then count per window x bucket.
    in_labels = bucket_labels(input_edges, open_last=overflow == "open")
    out_labels = bucket_labels(output_edges, open_last=overflow == "open")
    i, j, keep, above, _ = bucket_index(requests["input_tokens"].to_numpy(dtype=float),
                                        requests["output_tokens"].to_numpy(dtype=float),
                                        input_edges, output_edges, overflow)
    cells = np.zeros((n, len(in_labels), len(out_labels)))
    np.add.at(cells, (win[keep], i[keep], j[keep]), 1)
    planned = cells.sum(axis=(1, 2))
    dropped = counts - planned.astype(int)
    workloads = [labelled_matrix(cells[w] / planned[w], in_labels, out_labels, field="histogram") if planned[w] else None
                 for w in range(n)]
    seconds = window.total_seconds()
    table = pd.DataFrame({"start": starts, "end": starts + window, "requests": counts,
                          "rate": counts / seconds, "planned_rate": planned / seconds, "overflow": dropped,
                          "partial": False})
    table.loc[0, "partial"] = bool(first > starts[0])
    table.loc[n - 1, "partial"] = True               # the trace stops inside its last window
    report = {"policy": overflow, "input_edges": input_edges, "output_edges": output_edges,
              "beyond_last_edge": int(above.sum()), "dropped": int(dropped.sum()),
              "dropped_share": float(dropped.sum() / len(requests))}
    return Windows(table, workloads, window, report)


# ---------------------------------------------------------------- planning

@dataclass
class Plan:
    """A mix per window (``table``), the totals against static provisioning, and each window's result."""

    table: pd.DataFrame
    totals: dict
    results: list[SolveResult | None]
    gpus: dict[str, GpuProfile]
    windows: Windows
    info: dict = field(default_factory=dict)
    target: Any = None             # plan_attainment.TargetPlan with --target-attainment: the plan the exports deploy

    @property
    def ok(self) -> bool:
        """True when every window has a plan."""
        return not self.totals["windows_without_plan"]


def plan_windows(windows: Windows, gpus: Mapping[str, GpuProfile], *, solver: str = "exact", slice_factor: int = 1,
                 time_limit: float | None = None, constraints: Constraints | None = None,
                 smoothing: str | None = None, workers: int = 1, ray: str | bool | None = None) -> Plan:
    """Solve every window with `solver`, then the totals: static peak, peak window, single types, smoothing.

    `workers` > 1 solves the windows in that many processes, `ray` (an address, or True: RAY_ADDRESS
    else a local Ray) as Ray tasks on a cluster; both in chunks of consecutive windows, same results.
    """
    gpus = dict(gpus)
    check_plan_options(solver=solver, slice_factor=slice_factor, time_limit=time_limit, smoothing=smoothing,
                       workers=workers)
    constraints = (constraints or Constraints()).check(list(gpus))
    smooth = parse_smoothing(smoothing)
    names = list(gpus)
    opts = {"solver": solver, "slice_factor": slice_factor, "time_limit": time_limit, "constraints": constraints}
    start = time.perf_counter()
    idle = _idle_counts(gpus, constraints)
    busy = [w for w, wl in enumerate(windows.workloads) if wl is not None and windows.table.at[w, "planned_rate"] > 0]
    jobs = [(windows.workloads[w], float(windows.table.at[w, "planned_rate"])) for w in busy]
    results: list[SolveResult | None] = [None] * len(windows.workloads)
    for w, result in zip(busy, _solve_all(jobs, gpus, opts, workers, ray)):
        results[w] = result
    singles = single_type_counts(windows, gpus, constraints)
    rows = []
    for w, r in enumerate(results):
        if r is None:
            none = "no requests" if windows.table.at[w, "requests"] == 0 else "no requests within the profile's edges"
            counts, status, message = idle, "empty", f"{none} in this window: nothing to plan"
        else:
            counts = r.counts if r.has_allocation else {g: np.nan for g in names}
            status, message = r.status, r.message
        rows.append({**counts, "status": status, "message": message})
    mix = pd.DataFrame(rows)
    table = windows.table.copy()
    for g in names:
        table[g] = mix[g].astype("Int64")
    costs = np.array([gpus[g].cost for g in names])
    table["cost_per_hour"] = (mix[names].to_numpy(dtype=float) @ costs).round(6)
    table["status"], table["message"] = mix["status"], mix["message"]
    hours = windows.seconds / 3600
    good = table["status"].isin(["optimal", "time_limit", "empty"]).to_numpy()
    if smooth:
        smoothed = smooth_counts(table.loc[good, names].astype(int), smooth)
        for g in names:
            table[f"smoothed_{g}"] = pd.array([pd.NA] * len(table), dtype="Int64")
            table.loc[good, f"smoothed_{g}"] = smoothed[g].to_numpy()
        table["smoothed_cost_per_hour"] = (table[[f"smoothed_{g}" for g in names]].to_numpy(dtype=float) @ costs).round(6)
    solve_seconds = time.perf_counter() - start

    static = static_peak(windows, gpus, results, **opts)
    totals = _totals(table, windows, gpus, results, singles, static, hours, good, smooth, idle, opts)
    totals["solve_seconds"] = round(solve_seconds, 3)
    return Plan(table, totals, results, gpus, windows)


def _solve_chunk(jobs, gpus, opts) -> list[SolveResult]:
    return [solve(workload, gpus, rate, **opts) for workload, rate in jobs]


def _solve_all(jobs, gpus, opts, workers: int, ray: str | bool | None = None) -> list[SolveResult]:
    """Solve (workload, rate) jobs in order: here, in `workers` processes when there are enough jobs, or
    as Ray tasks on a cluster (`ray`), in chunks of consecutive windows (`pools.run_tasks`)."""
    from .pools import run_tasks

    if not ray and (workers == 1 or len(jobs) < 50):
        return _solve_chunk(jobs, gpus, opts)
    size = max(10, math.ceil(len(jobs) / 64)) if ray else math.ceil(len(jobs) / workers)
    chunks = [(jobs[i:i + size], gpus, opts) for i in range(0, len(jobs), size)]
    return [r for part in run_tasks(_solve_chunk, chunks, workers=workers, ray=ray, what="windows") for r in part]


def single_type_counts(windows: Windows, gpus: Mapping[str, GpuProfile],
                       constraints: Constraints) -> dict[str, list[dict | None | bool]]:
    """Per GPU type and window, the counts when that type serves everything (``solver.solve_single``'s
    rule, for all windows at once: ceil(load / cap), at least 1, then the instance limits); None for an empty
    window, False when the type cannot serve the window."""
    names = list(gpus)
    busy = [w for w, wl in enumerate(windows.workloads) if wl is not None and windows.table.at[w, "planned_rate"] > 0]
    out: dict[str, list] = {g: [None] * len(windows.workloads) for g in names}
    if not busy:
        return out
    first = windows.workloads[busy[0]]
    load = flat_problem(first, gpus, 1.0, constraints).load          # (buckets, types), at the cap
    demand = np.stack([windows.workloads[w].to_numpy(dtype=float).ravel() * windows.table.at[w, "planned_rate"]
                       for w in busy])                               # (windows, buckets), requests/s
    for j, g in enumerate(names):
        count, bad = single_counts(demand, load[:, j], g, constraints)
        for w, n, no in zip(busy, count, bad):
            out[g][w] = False if no else {x: (int(n) if x == g else 0) for x in names}
    return out


def _idle_counts(gpus: Mapping[str, GpuProfile], c: Constraints) -> dict[str, int]:
    """GPUs kept in an empty window: min_instances, topped up to min_total with the cheapest allowed types."""
    counts = {g: int(c.min_instances.get(g, 0)) for g in gpus}
    missing = c.min_total - sum(counts.values())
    for g in sorted(gpus, key=lambda name: gpus[name].cost):
        if missing <= 0:
            break
        add = min(missing, c.max_instances.get(g, missing + counts[g]) - counts[g])
        counts[g] += max(add, 0)
        missing -= max(add, 0)
    return counts


SMOOTHING = re.compile(r"(hold|calm):(\d+)")


def parse_smoothing(text: str | None) -> tuple[str, int] | None:
    """``hold:N`` (change the mix at most every N windows) or ``calm:N`` (scale down after N calm windows)."""
    if text in (None, "", "none"):
        return None
    m = SMOOTHING.fullmatch(str(text).strip())
    if not m or int(m.group(2)) < 1:
        raise InputError("smoothing", f"{text!r}: use hold:N (keep each mix N windows) or calm:N (scale a GPU type "
                                      "down only after N calm windows), N >= 1")
    return m.group(1), int(m.group(2))


def smooth_counts(counts: pd.DataFrame, smooth: tuple[str, int]) -> pd.DataFrame:
    """GPU counts (windows x types) smoothed so that capacity never falls below the per-window plan.

    ``calm:N``: a type's count is the largest of its own and the previous N windows' counts, so it
    scales down only after N windows that needed fewer. ``hold:N``: the windows are taken in blocks
    of N and each block keeps the largest count per type of its windows, so the mix changes at
    most every N windows. Each window keeps its own routing: per type it has at least the GPUs it
    was planned with.
    """
    kind, n = smooth
    if kind == "calm":
        return counts.rolling(n + 1, min_periods=1).max().astype(int)
    block = np.arange(len(counts)) // n
    return counts.groupby(block).transform("max").astype(int)


# ---------------------------------------------------------------- static provisioning

def static_peak(windows: Windows, gpus: Mapping[str, GpuProfile], results: Sequence[SolveResult | None], *,
                solver: str = "exact", slice_factor: int = 1, time_limit: float | None = None,
                constraints: Constraints | None = None) -> dict:
    """The cheapest single set of GPU counts that serves every window that has a plan.

    One integer program: integer counts per type, each window with its own routing (a continuous
    share of each bucket per type for ``exact``; whole 1/slice_factor slices for ``melange``), every
    window's load within the counts. Solved on a growing set of windows: it starts from the windows
    whose own mix is not covered by another window's, then adds every window the answer cannot serve
    (`uncovered_windows`) until none is left.
    """
    names = list(gpus)
    constraints = constraints or Constraints()
    planned = [w for w, r in enumerate(results) if r is not None and r.has_allocation]
    if not planned:
        counts = _idle_counts(gpus, constraints)
        return {"counts": counts, "cost_per_hour": _cost(gpus, counts), "status": "optimal", "rounds": 0}
    mixes = np.array([[results[w].counts[g] for g in names] for w in planned])
    keep = [k for k in range(len(planned))
            if not any((mixes[o] >= mixes[k]).all() and ((mixes[o] > mixes[k]).any() or o < k)
                       for o in range(len(planned)) if o != k)]
    active = [planned[k] for k in keep]
    for rounds in range(1, 51):
        found = _covering(windows, gpus, active, solver, slice_factor, time_limit, constraints)
        if found is None:
            return {"counts": {g: None for g in names}, "cost_per_hour": None, "status": "infeasible", "rounds": rounds,
                    "message": "no single set of counts within the constraints serves every window"}
        counts, status = found
        missed = uncovered_windows(counts, windows, gpus, results, solver=solver, slice_factor=slice_factor,
                                   time_limit=time_limit, constraints=constraints, skip=active)
        if not missed:
            break
        active += missed
    return {"counts": counts, "cost_per_hour": _cost(gpus, counts), "status": status, "rounds": rounds,
            "windows_in_program": len(active)}


def uncovered_windows(counts: Mapping[str, int], windows: Windows, gpus: Mapping[str, GpuProfile],
                      results: Sequence[SolveResult | None], *, solver: str = "exact", slice_factor: int = 1,
                      time_limit: float | None = None, constraints: Constraints | None = None,
                      skip: Sequence[int] = ()) -> list[int]:
    """The planned windows that these fixed GPU counts cannot serve.

    A window whose own mix fits within `counts` is served at once. The others go into one program
    with the counts fixed and a slack of capacity per window (minimise the total slack): a window
    is not served when its slack stays above 1e-6 GPUs.
    """
    constraints = constraints or Constraints()
    todo = [w for w, r in enumerate(results) if r is not None and r.has_allocation and w not in set(skip)
            and not all(counts[g] >= c for g, c in r.counts.items())]
    if not todo:
        return []
    slack = _covering(windows, gpus, todo, solver, slice_factor, time_limit, constraints, fixed=counts)
    return [w for w, s in zip(todo, slack) if s > 1e-6]


def _cost(gpus: Mapping[str, GpuProfile], counts: Mapping[str, int]) -> float:
    return round(sum(gpus[g].cost * c for g, c in counts.items()), 6)


def _covering(windows: Windows, gpus: Mapping[str, GpuProfile], active: Sequence[int], solver: str,
              slice_factor: int, time_limit: float | None, constraints: Constraints,
              fixed: Mapping[str, int] | None = None):
    """One HiGHS program over the `active` windows: shared GPU counts, each window its own routing.

    Without `fixed`: integer counts at least cost; returns (counts, status), or None when infeasible.
    With `fixed` counts: a capacity slack per window, total slack minimised; returns the slacks.
    """
    import highspy

    names = list(gpus)
    G, W = len(names), len(active)
    inf = highspy.kHighsInf
    probs = [flat_problem(windows.workloads[w], gpus, windows.table.at[w, "planned_rate"], constraints) for w in active]
    if fixed is None:
        low, high = probs[0].bounds()
        col_low, col_high = list(low), [inf if np.isinf(h) else h for h in high]
        col_cost, col_int = [gpus[g].cost for g in names], [True] * G
    else:                                       # counts fixed, then one slack column per window
        y = [float(fixed[g]) for g in names]
        col_low, col_high = y + [0.0] * W, y + [inf] * W
        col_cost, col_int = [0.0] * G + [1.0] * W, [False] * (G + W)
    k = slice_factor if solver == "melange" else 1
    rows, cols, vals, row_low, row_high = [], [], [], [], []
    for w, p in enumerate(probs):
        gpu_row = len(row_low)
        row_low += [-inf] * G
        row_high += [0.0] * G
        for j in range(G):                      # load_j - y_j (- slack_w) <= 0
            rows.append(gpu_row + j); cols.append(j); vals.append(-1.0)
            if fixed is not None:
                rows.append(gpu_row + j); cols.append(G + w); vals.append(-1.0)
        for b in np.flatnonzero(p.demand > 0):
            bucket_row = len(row_low)
            row_low.append(float(k)); row_high.append(float(k))   # shares (in slices) of a bucket sum to k
            for j in range(G):
                if not np.isfinite(p.load[b, j]):
                    continue
                col = len(col_low)
                col_low.append(0.0); col_high.append(float(k)); col_cost.append(0.0); col_int.append(solver == "melange")
                rows += [bucket_row, gpu_row + j]; cols += [col, col]
                vals += [1.0, p.demand[b] * p.load[b, j] / k]
    if constraints.min_total and fixed is None:
        for j in range(G):
            rows.append(len(row_low)); cols.append(j); vals.append(1.0)
        row_low.append(float(constraints.min_total)); row_high.append(inf)
    h = highs_program(col_low, col_high, col_cost, rows, cols, vals, row_low, row_high,
                      integer=np.flatnonzero(col_int), time_limit=time_limit)
    h.run()
    if h.getInfo().primal_solution_status != 2:
        if fixed is not None:   # the slack program is always feasible; a stopped solve proves nothing
            return [np.inf] * W
        return None
    x = np.asarray(h.getSolution().col_value)
    if fixed is not None:
        return list(x[G:G + W])
    counts = {g: int(math.ceil(x[j] - LOAD_EPS)) for j, g in enumerate(names)}
    return counts, ("optimal" if h.getModelStatus() == highspy.HighsModelStatus.kOptimal else "time_limit")


# ---------------------------------------------------------------- totals

def _totals(table, windows, gpus, results, singles, static, hours, good, smooth, idle, opts) -> dict:
    names = list(gpus)
    n = len(table)
    autoscaled = float(table.loc[good, "cost_per_hour"].sum() * hours)
    total_hours = n * hours
    out = {"windows": n, "window": window_text(windows.window), "window_seconds": windows.seconds,
           "hours": round(total_hours, 6), "partial_windows": int(table["partial"].sum()),
           "empty_windows": int((table["status"] == "empty").sum()),
           "windows_without_plan": [{"start": str(table.at[w, "start"]), "status": table.at[w, "status"],
                                     "reason": table.at[w, "message"]} for w in np.flatnonzero(~good)],
           "billing": "every window is billed in full (window hours x $/h), partial first/last windows too"}
    out["autoscaled"] = {"cost": round(autoscaled, 6), "mean_cost_per_hour": round(autoscaled / total_hours, 6)}
    if smooth:
        cost = float(table.loc[good, "smoothed_cost_per_hour"].sum() * hours)
        changes = int((table.loc[good, [f"smoothed_{g}" for g in names]].diff().abs().sum(axis=1) > 0).sum())
        out["smoothed"] = {"rule": f"{smooth[0]}:{smooth[1]}", "cost": round(cost, 6),
                           "extra_cost": round(cost - autoscaled, 6), "mix_changes": changes}
    out["mix_changes"] = int((table.loc[good, names].astype(float).diff().abs().sum(axis=1) > 0).sum())
    sp = static
    out["static_peak"] = {**sp, "cost": None if sp["cost_per_hour"] is None else round(sp["cost_per_hour"] * total_hours, 6),
                          "method": "the cheapest single set of GPU counts that can serve every planned window: one integer "
                                    "program over all windows' demands (one set of counts, each window its own routing)",
                          "why": "a fixed fleet has to serve every window with the same GPUs; solving on the peak window "
                                 "alone can miss a window with a different size mix, and the sum of per-window maxima per "
                                 "type over-buys"}
    peak = int(table.loc[good, "planned_rate"].idxmax()) if good.any() else None
    if peak is not None and results[peak] is not None and results[peak].has_allocation:
        counts = results[peak].counts
        missed = uncovered_windows(counts, windows, gpus, results, **opts)
        out["peak_window"] = {"start": str(table.at[peak, "start"]), "rate": round(float(table.at[peak, "rate"]), 6),
                              "counts": counts, "cost_per_hour": _cost(gpus, counts),
                              "cost": round(_cost(gpus, counts) * total_hours, 6),
                              "covers_all_windows": not missed, "windows_not_covered": len(missed),
                              "differs_from_static_peak": counts != sp["counts"]}
    out["single"] = {}
    for g in names:
        rs = [singles[g][w] for w in range(n) if good[w]]
        ok = all(r is not False for r in rs)
        per = [idle if r is None else r for r in rs]
        auto = sum(_cost(gpus, c) for c in per) * hours if ok else None
        top = max((c[g] for c in per), default=0) if ok else 0
        static_counts = {x: (top if x == g else 0) for x in names}
        out["single"][g] = {"autoscaled_cost": None if auto is None else round(auto, 6),
                            "static_counts": static_counts if ok else None,
                            "static_cost_per_hour": _cost(gpus, static_counts) if ok else None,
                            "static_cost": round(_cost(gpus, static_counts) * total_hours, 6) if ok else None,
                            "infeasible_windows": sum(1 for r in rs if r is False)}
    out["savings"] = _savings(out)
    out["headline"] = headline(out)
    return out


def _savings(t: dict) -> list[dict]:
    """What the autoscaled mix saves against each alternative, in % of the alternative's cost."""
    mix = t["autoscaled"]["cost"]
    rows = [("static peak (mix)", t["static_peak"]["cost"])]
    if t.get("peak_window", {}).get("covers_all_windows"):   # a baseline that drops windows is no baseline
        rows.append(("mix solved on the peak window, static", t["peak_window"]["cost"]))
    for g, s in t["single"].items():
        rows += [(f"{g} only, autoscaled", s["autoscaled_cost"]), (f"{g} only, static", s["static_cost"])]
    if "smoothed" in t:
        rows.append((f"smoothed mix ({t['smoothed']['rule']})", t["smoothed"]["cost"]))
    return [{"against": name, "cost": cost,
             "savings_pct": None if not cost else round((cost - mix) / cost * 100, 3)} for name, cost in rows]


def window_text(window: pd.Timedelta) -> str:
    """5-min, 1-h, 30-s: the window length in the unit that reads best."""
    seconds = window.total_seconds()
    if seconds < 60:
        return f"{seconds:g}-s"
    return f"{seconds / 60:g}-min" if seconds < 3600 else f"{seconds / 3600:g}-h"


def headline(t: dict) -> str:
    """The answer first: autoscaled cost for the period against static peak provisioning."""
    hours = t["hours"]
    period = "for the hour" if abs(hours - 1) < 1e-9 else f"for {hours:.4g} hours"
    mix, static = t["autoscaled"]["cost"], t["static_peak"]["cost"]
    if not static:
        return f"Autoscaling {t['window']} windows costs ${mix:,.2f} {period}; no static fleet serves every window"
    pct = (static - mix) / static * 100
    return (f"Autoscaling {t['window']} windows costs ${mix:,.2f} {period} ({t['windows']} windows), "
            f"{pct:.1f}% below static peak provisioning (${static:,.2f})")


# ---------------------------------------------------------------- one call and files

def plan_trace(trace: str | Path, gpus: Mapping[str, GpuProfile], *, window: str = "5min",
               timestamp_column: str = "TIMESTAMP", input_column: str = "ContextTokens",
               output_column: str = "GeneratedTokens", overflow: str = "drop", solver: str = "exact",
               slice_factor: int = 1, time_limit: float | None = None, constraints: Constraints | None = None,
               smoothing: str | None = None, workers: int = 1, ray: str | bool | None = None) -> Plan:
    """Read a timed trace, cut it into windows and plan them (every input checked before solving;
    `workers`, `ray`: where the windows are solved, see `plan_windows`)."""
    check_plan_options(solver=solver, window=window, overflow=overflow, slice_factor=slice_factor,
                       time_limit=time_limit, smoothing=smoothing, workers=workers)
    constraints = (constraints or Constraints()).check(list(gpus))
    requests, report = read_timed_trace(trace, timestamp_column=timestamp_column, input_column=input_column,
                                        output_column=output_column)
    windows = cut_windows(requests, window, gpus, overflow=overflow)
    plan = plan_windows(windows, gpus, solver=solver, slice_factor=slice_factor, time_limit=time_limit,
                        constraints=constraints, smoothing=smoothing, workers=workers, ray=ray)
    plan.info = {"trace": report, "overflow": windows.overflow, "solver": solver, "slice_factor": slice_factor,
                 "constraints": constraints.to_dict(), "profiles": _profile_info(gpus)}
    return plan


def _profile_info(gpus: Mapping[str, GpuProfile]) -> dict:
    from .profiles.consistency import set_caveat

    meta = next(iter(gpus.values())).meta
    return {"file": Path(meta["file"]).name if meta.get("file") else None, "sha256": meta.get("sha256"),
            **{k: meta.get(k) for k in ("model", "source", "slo", "notes")}, "data_caveat": set_caveat(gpus),
            "gpus": {g: {"cost_per_hour": p.cost} for g, p in gpus.items()}}


def plan_json(plan: Plan) -> dict:
    """plan.json: where the numbers came from, then the totals."""
    return {"headline": plan.totals["headline"], **plan.info, "totals": plan.totals}


def overflow_note(overflow: Mapping) -> str:
    """One sentence: how many requests lie beyond the profile's last edge and what the policy did with them."""
    n = overflow["beyond_last_edge"]
    what = {"drop": "are not planned", "clip": "are planned as if in the last bucket (an underestimate)",
            "open": "fall in the open last bucket"}[overflow["policy"]]
    return (f"{n:,} requests lie beyond the profile's last edge ({overflow['input_edges'][-1]} input or "
            f"{overflow['output_edges'][-1]} output tokens) and {what} (overflow policy {overflow['policy']})")


# plan.csv: these columns per window, then one column of counts per GPU type (and, with smoothing,
# smoothed_<GPU> and smoothed_cost_per_hour; with --target-attainment, target_<GPU>, target_cost_per_hour and
# the attainment columns of plan_attainment).
WINDOW_COLUMNS = ("start", "end", "requests", "rate", "planned_rate", "overflow", "partial", "cost_per_hour",
                  "status", "message", "attainment", "replay_attainment")


def plan_gpus(table: pd.DataFrame) -> list[str]:
    """The GPU types of a plan table (plan.csv): its columns of counts, in order."""
    return [c for c in table.columns if c not in WINDOW_COLUMNS and not c.startswith(("smoothed_", "target_"))]


def read_plan(plan_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """(plan.csv as a table, plan.json) from a folder written by `write_plan` (``melange-nb plan``)."""
    import json

    plan_dir = Path(plan_dir)
    for name in ("plan.csv", "plan.json"):
        if not (plan_dir / name).is_file():
            raise InputError(f"plan_dir {plan_dir}", f"has no {name}; write one with `melange-nb plan ... -o {plan_dir}`")
    table = pd.read_csv(plan_dir / "plan.csv", parse_dates=["start", "end"])
    return table, json.loads((plan_dir / "plan.json").read_text())


def write_plan(plan: Plan, out_dir: str | Path) -> list[Path]:
    """Write plan.csv, plan.json and the deployment exports (skyserve-<gpu>.yaml, deploy.json)."""
    from .export import plan_deployment, render_exports, write_exports

    out_dir = Path(out_dir)
    deploy = plan_deployment(plan)
    render_exports(deploy)               # a name the exports cannot take fails before plan.csv is written
    table = plan.table.copy()
    for col in ("start", "end"):
        table[col] = table[col].dt.strftime("%Y-%m-%dT%H:%M:%S")
    paths = [atomic_write(out_dir / "plan.csv", lambda tmp: table.to_csv(tmp, index=False)),
             write_json(out_dir / "plan.json", plan_json(plan))]
    return paths + write_exports(deploy, out_dir)
