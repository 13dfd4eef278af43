"""Per-window plans that hold an SLO attainment target (``melange-nb plan --target-attainment FRACTION``).

A throughput-only per-window plan (``plan.plan_windows``) runs each window's GPUs at their profiled
limits, so bursts within the window miss the SLO. For each window with planned requests this stage
searches the cheapest mix whose simulated attainment on *that window's own requests* (the trace's
rows in the window, replayed alone at their own times, starting with empty replicas) reaches the
target, starting from the window's throughput-only mix (`simulate.search_attainment`: add the GPU
type buying the most attainment per dollar until the target holds, try each type alone, then remove
GPUs while the target still holds, so the mix found is minimal). Empty windows keep their idle
counts. A search that simulates 200 plans without an answer (e.g. every plan's queue unbounded) keeps
the window's throughput-only mix, status ``not_met``. The per-window searches are independent tasks
(`search_window`) run by `pools.run_tasks`: here, in ``plan -j N`` spawned processes, or as Ray tasks
(``plan --ray-address``); the answer is the same either way.

Then the whole trace is replayed through the plan found and through the throughput-only plan (counts
and routes switch at window boundaries, queues carry across windows), so the answer compares both on
the same requests: cost for the trace and attainment over the whole trace. A window that meets the
target alone can still miss it in the replay when the previous window hands it a queue; the
``replay`` columns show that per window.

Public API:

- ``target_plan(plan, stream, target, *, constraints=None, routing="least", seed=0, slo=None,
  workers=1, ray=None, progress=False)``: a `TargetPlan` (per-window ``table``, per-window ``routes``,
  ``totals`` for plan.json, the two whole-trace `SimResult`s); `attach_target(plan, found)` adds its
  columns to ``plan.table`` (``target_<gpu>``, ``target_cost_per_hour``, ``target_status``,
  ``attainment``, ``target_attainment``, ``replay_attainment``, ``target_replay_attainment``,
  ``target_plans_tried``) and its totals to ``plan.totals["target_attainment"]``; the exports then
  deploy the plan found (``export.plan_deployment``).
- ``window_streams(stream, table)``: each window's rows of a trace stream, re-timed from the window's start.
- ``check_target_options(gpus, target)``: the up-front checks (fraction in (0, 1], a latency model for
  every GPU type that serves a bucket), one-line errors naming ``--target-attainment``.
- ``write_target_simulation(found, out_dir)``: the replay of the plan found in ``out_dir/simulation/``
  (as ``plan --simulate`` writes it, with ``attainment.json`` saying which plan it is).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .profiles import GpuProfile
from .workload import INPUT_AXIS, OUTPUT_AXIS

ROUTE_COLUMNS = [INPUT_AXIS, OUTPUT_AXIS, "gpu", "share", "rate"]
PLANNED = ("optimal", "time_limit")           # window statuses with a throughput-only mix
MAX_SEARCHED_WINDOWS = 10_000                 # each a search of up to 200 simulated plans: hours beyond this


def check_target_options(gpus: Mapping[str, GpuProfile], target: Any, where: str = "--target-attainment") -> float:
    """The target as a float in (0, 1]; refuses a GPU type that serves a bucket but has no latency model."""
    from .attainment import check_target, latency_missing, serving_gpus

    value = check_target(target, where=where)
    if value is None:
        raise InputError(where, "give a share of requests in (0, 1], e.g. 0.99")
    missing = latency_missing(serving_gpus(gpus))
    if missing:
        raise InputError(where, missing[len("No SLO attainment: "):])
    return value


def target_text(target: float) -> str:
    """0.99 -> "99%", 0.995 -> "99.5%"."""
    return f"{round(target * 100, 6):g}%"


# ---------------------------------------------------------------- the per-window searches

def window_streams(stream: pd.DataFrame, table: pd.DataFrame) -> list[pd.DataFrame | None]:
    """Each window's requests of a trace stream (`simulate.stream_from_trace`), None where it has none.

    Arrival times count from the window's first instant the trace covers (its start, or the trace's
    first request in a partial first window); ``attrs["duration_s"]`` is the covered span, to the
    window's end or the trace's last request, at least 1 s.
    """
    stamps = pd.to_datetime(stream["timestamp"]).to_numpy("datetime64[ns]")
    starts = pd.to_datetime(table["start"]).to_numpy("datetime64[ns]")
    ends = pd.to_datetime(table["end"]).to_numpy("datetime64[ns]")
    which = np.searchsorted(starts, stamps, side="right") - 1
    first, last = stamps[0], stamps[-1]
    out: list[pd.DataFrame | None] = []
    for w in range(len(table)):
        rows = np.flatnonzero(which == w)
        if not len(rows):
            out.append(None)
            continue
        t0 = max(starts[w], first)
        part = stream.iloc[rows].copy()
        part["arrival_s"] = (stamps[rows] - t0) / np.timedelta64(1, "s")
        part = part.reset_index(drop=True)
        span = (min(ends[w], last) - t0) / np.timedelta64(1, "s")
        part.attrs = {"duration_s": max(float(span), 1.0),
                      "source": f"trace rows in the window from {pd.Timestamp(starts[w])}, replayed alone"}
        out.append(part)
    return out


def mix_routes(workload: pd.DataFrame, rate: float, counts: Mapping[str, int], base, gpus) -> pd.DataFrame:
    """Routing rows (input, output, gpu, share, rate) for `counts`: the solver's own when they are its
    mix (`base`), else `simulate.balanced_routes` (as `search_attainment` routes them)."""
    from .simulate import balanced_routes

    mine = {g: int(c) for g, c in counts.items() if c > 0}
    if mine == {g: int(c) for g, c in base.counts.items() if c > 0} and base.routing is not None:
        routes = base.routing[[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]]
    else:
        routes = balanced_routes(workload, gpus, mine)
    routes = routes[routes["share"] > 0].reset_index(drop=True)
    demand = workload.stack()
    keys = pd.MultiIndex.from_arrays([routes[INPUT_AXIS], routes[OUTPUT_AXIS]])
    return routes.assign(rate=routes["share"].to_numpy(dtype=float) * demand.reindex(keys).to_numpy(dtype=float) * rate)


def search_window(workload: pd.DataFrame, rate: float, base, stream: pd.DataFrame, gpus: Mapping[str, GpuProfile],
                  target: float, solver: str, constraints, routing: str, seed: int, slo) -> dict:
    """One window's search (a task: picklable arguments, a picklable dict back): the cheapest mix found
    whose attainment on `stream` (the window's own requests) reaches `target`, from `base`, the window's
    throughput-only `SolveResult`. Keys: status (met | not_met), counts, cost_per_hour, attainment,
    baseline_attainment, routes, plans_tried, neighbours, message."""
    from .simulate import plan_from_result, search_attainment, simulate

    wall = time.perf_counter()
    try:
        search = search_attainment(workload, gpus, rate, target, stream=stream, seed=seed, solver=solver,
                                   constraints=constraints, routing=routing, slo=slo, base=base)
    except InputError as exc:             # max_plans: the search gave up; keep the throughput-only mix
        if exc.field != "max_plans":
            raise
        res = simulate(stream, plan_from_result(base, gpus), gpus, routing=routing, seed=seed, slo=slo)
        counts = {g: int(c) for g, c in base.counts.items()}
        return {"status": "not_met", "counts": counts, "cost_per_hour": float(base.cost),
                "attainment": res.attainment, "baseline_attainment": res.attainment,
                "routes": mix_routes(workload, rate, counts, base, gpus), "plans_tried": None, "neighbours": [],
                "message": exc.message, "seconds": time.perf_counter() - wall}
    found = search.found
    counts = {g: int(found["counts"].get(g, 0)) for g in gpus}
    return {"status": search.status, "counts": counts, "cost_per_hour": float(found["cost_per_hour"]),
            "attainment": float(found["attainment"]), "baseline_attainment": float(search.baseline["attainment"]),
            "routes": mix_routes(workload, rate, counts, base, gpus), "plans_tried": int(len(search.tried)),
            "neighbours": search.neighbours, "message": search.message, "seconds": time.perf_counter() - wall}


def run_searches(jobs: Sequence[tuple], *, workers: int = 1, ray=None, progress: bool = False) -> list[dict]:
    """`search_window` over the job tuples, results in job order: here, in `workers` spawned processes, or
    as Ray tasks (`pools.run_tasks`); `progress`: a bar over the windows."""
    from .pools import run_tasks

    return run_tasks(search_window, jobs, workers=workers, ray=ray, what="attainment search per window",
                     progress=progress)


# ---------------------------------------------------------------- the whole trace through a per-window plan

def window_plan(counts: pd.DataFrame, routes: Sequence[pd.DataFrame | None], starts: pd.Series,
                gpus: Mapping[str, GpuProfile], description: str):
    """A `simulate.SimPlan` switching counts and routes at each window start (`counts`: one row per window,
    one column per GPU type; NaN where the window has no plan: it keeps the previous window's, as a
    deploy.json schedule is read)."""
    from .simulate import SimPlan

    names = list(gpus)
    rows, frames, last = [], [], ({g: 0 for g in names}, None)
    for w in range(len(counts)):
        row = counts.iloc[w]
        if row.isna().any():
            mix, r = last
        else:
            mix, r = {g: int(row[g]) for g in names}, routes[w]
            last = (mix, r)
        rows.append(mix)
        if r is not None and len(r):
            frames.append(r[[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]].assign(window=w))
    table = pd.DataFrame(rows, columns=names, index=pd.Index(range(len(rows)), name="window"))
    route_table = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share", "window"]))
    starts = pd.to_datetime(starts).reset_index(drop=True)
    origin = starts.iloc[0]
    windows = pd.DataFrame({"start_s": (starts - origin).dt.total_seconds().to_numpy(),
                            "cost_per_hour": table.to_numpy(dtype=float) @ np.array([gpus[g].cost for g in names])})
    return SimPlan(table, route_table[["window", INPUT_AXIS, OUTPUT_AXIS, "gpu", "share"]], windows, description,
                   origin=origin, source={"kind": "per_window"})


def per_window_attainment(result, n: int) -> np.ndarray:
    """Attainment of each window's requests in a whole-trace replay (NaN for a window without requests)."""
    if result.status != "ok":
        return np.full(n, np.nan)
    att = result.requests.groupby("window")["slo_met"].mean()
    return att.reindex(range(n)).to_numpy(dtype=float)


# ---------------------------------------------------------------- the answer

@dataclass
class TargetPlan:
    """The per-window plan found for `target`: ``table`` (one row per window, the plan.csv columns this
    stage adds), ``routes`` (per window: input, output, gpu, share, rate of the mix found; None where
    nothing is routed), ``totals`` (plan.json's ``target_attainment``), the whole-trace replays of the
    plan found (``result``) and of the throughput-only plan (``baseline_result``), and ``searches`` (the
    per-window search answers, None where no search ran)."""

    target: float
    table: pd.DataFrame
    routes: list[pd.DataFrame | None]
    totals: dict
    result: Any
    baseline_result: Any
    searches: list[dict | None] = field(default_factory=list)

    @property
    def met(self) -> bool:
        """True when every searched window reached the target on its own requests."""
        return not self.totals["windows_not_met"]


def target_plan(plan, stream: pd.DataFrame, target: float, *, constraints=None, routing: str = "least",
                seed: int = 0, slo=None, workers: int = 1, ray=None, progress: bool = False) -> TargetPlan:
    """Search each planned window of `plan` (a `plan.Plan`) for the cheapest mix holding `target` on its own
    requests of `stream` (the trace, `simulate.stream_from_trace`), then replay the whole trace through the
    plan found and the throughput-only plan."""
    from .attainment import slo_text
    from .report import format_mix
    from .simulate import simulate

    gpus = dict(plan.gpus)
    names = list(gpus)
    table = plan.table
    n = len(table)
    solver = plan.info.get("solver", "exact")
    streams = window_streams(stream, table)
    searched = [w for w in range(n) if table.at[w, "status"] in PLANNED and streams[w] is not None
                and plan.results[w] is not None]
    if len(searched) > MAX_SEARCHED_WINDOWS:
        raise InputError("--window", f"{len(searched):,} windows to search for --target-attainment, over "
                                     f"{MAX_SEARCHED_WINDOWS:,}; choose a longer window or a slice of the trace")
    jobs = [(plan.windows.workloads[w], float(table.at[w, "planned_rate"]), plan.results[w], streams[w], gpus,
             target, solver, constraints, routing, seed, slo) for w in searched]
    start = time.perf_counter()
    answers = run_searches(jobs, workers=workers, ray=ray, progress=progress)
    search_seconds = time.perf_counter() - start
    searches: list[dict | None] = [None] * n
    for w, a in zip(searched, answers):
        searches[w] = a

    # the per-window columns
    base_routes: list[pd.DataFrame | None] = []
    routes: list[pd.DataFrame | None] = []
    rows = []
    for w in range(n):
        status = table.at[w, "status"]
        r, a = plan.results[w], searches[w]
        base_routes.append(r.routing[ROUTE_COLUMNS] if r is not None and r.has_allocation and r.routing is not None
                           else None)
        if a is not None:
            counts, what = a["counts"], a["status"]
            routes.append(a["routes"])
        elif status == "empty" or (status in PLANNED and streams[w] is None):
            counts, what = {g: int(table.at[w, g]) for g in names}, "empty"
            routes.append(base_routes[-1])
        else:
            counts, what = {g: None for g in names}, "no_plan"
            routes.append(None)
        rows.append({**{f"target_{g}": counts[g] for g in names}, "target_status": what,
                     "attainment": np.nan if a is None else a["baseline_attainment"],
                     "target_attainment": np.nan if a is None else a["attainment"],
                     "target_plans_tried": None if a is None else a["plans_tried"]})
    out = pd.DataFrame(rows)
    for g in names:
        out[f"target_{g}"] = out[f"target_{g}"].astype("Int64")
    costs = np.array([gpus[g].cost for g in names])
    target_counts = out[[f"target_{g}" for g in names]].to_numpy(dtype=float)
    out["target_cost_per_hour"] = (target_counts @ costs).round(6)
    out["target_plans_tried"] = out["target_plans_tried"].astype("Int64")

    # the whole trace through both plans
    found_counts = out[[f"target_{g}" for g in names]].astype(float).set_axis(names, axis=1)
    base_counts = table[names].astype(float)
    shown = target_text(target)
    found_plan = window_plan(found_counts, routes, table["start"], gpus,
                             f"per-window plan holding {shown} ({n} windows)")
    base_plan = window_plan(base_counts, base_routes, table["start"], gpus, f"throughput-only per-window plan ({n} windows)")
    result = simulate(stream, found_plan, gpus, routing=routing, seed=seed, slo=slo, progress=progress, ray=ray)
    baseline_result = simulate(stream, base_plan, gpus, routing=routing, seed=seed, slo=slo, progress=progress, ray=ray)
    out["replay_attainment"] = per_window_attainment(baseline_result, n)
    out["target_replay_attainment"] = per_window_attainment(result, n)
    out = out[[*(f"target_{g}" for g in names), "target_cost_per_hour", "target_status", "attainment",
               "target_attainment", "replay_attainment", "target_replay_attainment", "target_plans_tried"]]

    # totals
    good = table["status"].isin([*PLANNED, "empty"]).to_numpy()
    hours = plan.windows.seconds / 3600
    total_hours = n * hours
    cost = float(out.loc[good, "target_cost_per_hour"].sum() * hours)
    base_cost = float(plan.totals["autoscaled"]["cost"])
    missed = [w for w in searched if searches[w]["status"] != "met"]
    slo_shown = slo_text(result.slo)
    totals = {
        "target": target, "slo": slo_shown,
        "method": "per window with requests: the cheapest mix found whose simulated attainment on the window's own "
                  "requests (replayed alone at their own times) reaches the target, from its throughput-only mix "
                  "(simulate.search_attainment); then the whole trace replayed through the plan found (queues "
                  "carry across windows)",
        "cost": round(cost, 6), "mean_cost_per_hour": round(cost / total_hours, 6),
        "attainment": _att(result), "status": result.status,
        "p99_ttft_ms": _p99(result, "ttft_ms"), "p99_tpot_ms": _p99(result, "tpot_ms"),
        "throughput_only": {"cost": round(base_cost, 6), "mean_cost_per_hour": round(base_cost / total_hours, 6),
                            "attainment": _att(baseline_result), "status": baseline_result.status},
        "extra_cost": round(cost - base_cost, 6),
        "windows_searched": len(searched), "windows_met": len(searched) - len(missed),
        "windows_not_met": [{"start": str(table.at[w, "start"]), "best_mix": format_mix(searches[w]["counts"]),
                             "attainment": round(searches[w]["attainment"], 6)} for w in missed],
        "windows_cheaper_than_throughput_only": [str(table.at[w, "start"]) for w in searched
                                                 if searches[w]["cost_per_hour"] < float(table.at[w, "cost_per_hour"]) - 1e-9],
        "plans_simulated": int(sum(a["plans_tried"] or 0 for a in answers)),
        "search_seconds": round(search_seconds, 3), "requests": int(len(stream)),
        "routing": routing, "seed": seed,
    }
    totals["sentence"] = target_sentence(totals, plan.totals)
    return TargetPlan(target, out, routes, totals, result, baseline_result, searches)


def _att(result) -> float | None:
    return round(result.attainment, 6) if result.status == "ok" else None


def _p99(result, metric: str) -> float | None:
    if result.status != "ok":
        return None
    value = float(result.summary.at["all", f"p99_{metric}"])
    return round(value, 3) if math.isfinite(value) else None


def _pct(value: float | None) -> str:
    return "no attainment (unbounded queue)" if value is None else f"{value:.1%}"


def target_sentence(t: Mapping, plan_totals: Mapping) -> str:
    """The answer: "Per window, the cheapest mix found that holds TPOT ≤ 40 ms for 99% of requests costs $X
    for the hour ($Y/h on average) and holds 99.2% over the whole trace; the throughput-only plan costs $Z
    and holds 93.0%"."""
    hours = plan_totals["hours"]
    period = "for the hour" if abs(hours - 1) < 1e-9 else f"for {hours:.4g} hours"
    reached = ""
    if t["windows_not_met"]:
        reached = (f" (reached in {t['windows_met']} of {t['windows_searched']} windows; the others keep the "
                   "best mix found)")
    base = t["throughput_only"]
    return (f"Per window, the cheapest mix found that holds {t['slo']} for {target_text(t['target'])} of requests"
            f"{reached} costs ${t['cost']:,.2f} {period} (${t['mean_cost_per_hour']:,.2f}/h on average) and holds "
            f"{_pct(t['attainment'])} over the whole trace; the throughput-only plan costs ${base['cost']:,.2f} "
            f"and holds {_pct(base['attainment'])}")


def not_met_line(t: Mapping) -> str:
    """One line naming the windows where no mix tried reached the target."""
    missed = t["windows_not_met"]
    shown = ", ".join(f"{m['start']} ({m['best_mix']}, {m['attainment']:.1%})" for m in missed[:5])
    more = f" and {len(missed) - 5} more" if len(missed) > 5 else ""
    return (f"{len(missed)} of {t['windows_searched']} windows reach no mix holding {target_text(t['target'])} "
            f"(best found kept): {shown}{more}")


def cheaper_line(t: Mapping) -> str | None:
    """A note when the mix found costs less than the throughput-only mix in some windows: the latency model then
    serves more than the profile's throughputs say (None when it never does)."""
    cheaper = t["windows_cheaper_than_throughput_only"]
    if not cheaper:
        return None
    return (f"in {len(cheaper)} of {t['windows_searched']} windows the mix found costs less than the throughput-only "
            "mix: the latency model serves more than the profile's throughputs say (compare them with `melange-nb "
            "profile check`)")


def attach_target(plan, found: TargetPlan) -> None:
    """Add the plan found to `plan` (a `plan.Plan`): its columns to ``table``, its totals to
    ``totals["target_attainment"]``, and itself as ``plan.target`` (the exports deploy it)."""
    for c in found.table.columns:
        plan.table[c] = found.table[c]
    plan.totals["target_attainment"] = found.totals
    plan.target = found


def write_target_simulation(found: TargetPlan, out_dir: str | Path) -> Path:
    """``out_dir/simulation/``: the whole-trace replay of the plan found (`simulate.write_result`) and
    ``attainment.json`` (the sentence the report shows under its headline, as ``plan --simulate`` writes it)."""
    from .attainment import PlanCheck
    from .files import write_json
    from .simulate import write_result

    folder = Path(out_dir) / "simulation"
    res, t = found.result, found.totals
    write_result(res, folder)
    if res.status != "ok":
        sentence = f"The per-window plan holding {target_text(found.target)} cannot hold its SLO on the trace: {res.message}"
    else:
        sentence = (f"The per-window plan found for {target_text(found.target)} (mean ${t['mean_cost_per_hour']:.2f}/h) "
                    f"meets {t['slo']} for {res.attainment:.1%} of the trace's {t['requests']:,} requests replayed "
                    f"at their own times (p99 TTFT {t['p99_ttft_ms']:,.0f} ms, p99 TPOT {t['p99_tpot_ms']:,.1f} ms); "
                    f"the throughput-only plan holds {_pct(t['throughput_only']['attainment'])}")
    numbers = {"sim_status": res.status, "sim_slo": t["slo"], "attainment": t["attainment"] or math.nan,
               "p99_ttft_ms": t["p99_ttft_ms"] or math.nan, "p99_tpot_ms": t["p99_tpot_ms"] or math.nan,
               "target_attainment": found.target, "sim_seconds": round(res.wall_seconds, 3)}
    options = {"plan": "target", "routing": t["routing"], "seed": t["seed"], "requests": t["requests"]}
    check = PlanCheck(res.status, sentence, options, res, None, numbers)
    write_json(folder / "attainment.json", check.to_dict())
    return folder
