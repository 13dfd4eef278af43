"""Solvers: the Mélange ILP, an exact mixed-integer solver, and single-GPU-type baselines.

Every solver takes a workload (shares, input bucket x output bucket), GPU profiles with the same
labels, a total request rate (requests/s) and optional `Constraints`, and returns a `SolveResult`
(never ``None``). Status codes, after SciPy's ``milp``:

- ``optimal``: proven optimal (CBC or HiGHS closed the gap; HiGHS runs with a zero relative gap);
- ``time_limit``: stopped by the time limit; the best allocation found is reported with its bound
  and gap when the solver gives them, never called optimal;
- ``no_solution``: stopped by the time limit before any allocation was found;
- ``infeasible``: no allocation exists; the message names the buckets no GPU can serve or the
  constraint that binds.

Formulations (load of a bucket on a GPU = demand / max throughput, in GPUs):

- ``melange`` (faithful to melange-release): each bucket with demand is cut into `slice_factor`
  equal slices; each slice goes whole to one GPU type (binary); integer GPU counts; minimise
  sum(cost x count) subject to sum(load of assigned slices) <= count x utilisation cap, per type.
  PuLP + CBC. Buckets without demand carry no slices (they add nothing to any load).
- ``exact``: the limit of the above as the slice factor grows: a continuous share of each bucket
  per GPU type (what a load balancer does), integer GPU counts. Never more expensive than
  ``melange`` at any slice factor. HiGHS through highspy.
- ``single:<gpu>``: one GPU type serves everything: ceil(aggregate load / cap), then the
  instance constraints.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import time
from pathlib import Path
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import schemas
from .errors import InputError
from .profiles import GpuProfile
from .workload import INPUT_AXIS, OUTPUT_AXIS, check_same_buckets, check_workload

SOLVERS = ("melange", "exact")
# A GPU count is the ceiling of a load; loads that exceed an integer by float noise only
# (e.g. 0.8 + 8 + 0.4 + 0.8 = 10.000000000000002) must not buy one more GPU.
LOAD_EPS = 1e-9
# More GPUs than this is a units mistake (rate or throughputs), not a plan: refused as bad input.
MAX_GPUS = 1e6
# The Mélange ILP's size limit (slices x GPU types): beyond it CBC runs for hours; the exact solver is the limit.
MAX_BINARIES = 100_000


@dataclass(frozen=True)
class Constraints:
    """Limits applied alike to every policy (mix solvers and single-GPU baselines).

    max_instances / min_instances: per GPU type (quota, availability); utilization_cap: plan at
    most this fraction of profiled max throughput (0 < cap <= 1); min_total: at least this many
    GPUs in all (e.g. N+1 redundancy).
    """

    max_instances: Mapping[str, int] = field(default_factory=dict)
    min_instances: Mapping[str, int] = field(default_factory=dict)
    utilization_cap: float = 1.0
    min_total: int = 0

    def check(self, gpu_names: Sequence[str]) -> "Constraints":
        """Raise `InputError` for unknown GPU names, bad numbers or min > max."""
        for key in ("max_instances", "min_instances"):
            limits = getattr(self, key)
            unknown = [n for n in limits if n not in gpu_names]
            if unknown:
                raise InputError(key, f"names unknown GPU type(s) {unknown}; choose from {list(gpu_names)}")
            for name, value in limits.items():
                if not schemas.is_count(value):
                    raise InputError(f"{key}.{name}", f"must be a whole number >= 0, got {value!r}")
        for name, low in self.min_instances.items():
            high = self.max_instances.get(name)
            if high is not None and low > high:
                raise InputError(f"min_instances.{name}", f"is {low} but max_instances.{name} is {high}; lower the minimum or raise the maximum")
        cap = self.utilization_cap
        if not schemas.is_real(cap) or not (0 < cap <= 1):
            raise InputError("utilization_cap", f"must be in (0, 1], got {cap!r}; e.g. 0.8 plans at 80% of profiled throughput")
        if not schemas.is_count(self.min_total):
            raise InputError("min_total", f"must be a whole number >= 0, got {self.min_total!r}")
        for where, value in [("min_total", self.min_total), *((f"min_instances.{n}", v) for n, v in self.min_instances.items())]:
            if value > MAX_GPUS:
                raise InputError(where, f"is {value}, over {MAX_GPUS:.0e} GPUs; check the number")
        return self

    @classmethod
    def from_mapping(cls, doc: Mapping | None) -> "Constraints":
        """From YAML/JSON params (`constraints:`); unknown keys are an error naming them."""
        if doc is not None and not isinstance(doc, Mapping):
            raise InputError("constraints", f"must be a mapping (e.g. {{utilization_cap: 0.8}}), got {type(doc).__name__}")
        doc = dict(doc or {})
        known = ("max_instances", "min_instances", "utilization_cap", "min_total")
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise InputError(f"constraints.{unknown[0]}", f"is not a constraint; use {list(known)}")
        for key in ("max_instances", "min_instances"):
            if not isinstance(doc.get(key, {}), Mapping):
                raise InputError(f"constraints.{key}", "must be a mapping GPU name -> count")
        return cls(**doc)

    def to_dict(self) -> dict:
        return {"max_instances": dict(self.max_instances), "min_instances": dict(self.min_instances),
                "utilization_cap": self.utilization_cap, "min_total": self.min_total}


def parse_counts(text: str, field: str) -> dict[str, int]:
    """``A10G=4,A100=2`` -> {"A10G": 4, "A100": 2} (quotas as typed on the command line or in the explorer)."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise InputError(field, f"expects NAME=COUNT[,NAME=COUNT], got {part!r}")
        if name.strip() in out:
            raise InputError(field, f"names {name.strip()} twice; give each GPU type once")
        out[name.strip()] = int(value)
    return out


@dataclass
class SolveResult:
    """What one policy decided: status, GPU counts, $/hour, routing and solver statistics."""

    solver: str
    status: str
    message: str
    counts: dict[str, int]
    cost: float
    solve_seconds: float
    bound: float | None = None
    gap: float | None = None
    routing: pd.DataFrame | None = None  # long: input_tokens, output_tokens, gpu, share, rate
    utilization: dict[str, float] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def has_allocation(self) -> bool:
        return self.status in ("optimal", "time_limit")

    def to_dict(self) -> dict:
        """JSON-ready summary (routing omitted; see `routing_json`)."""
        return {"solver": self.solver, "status": self.status, "message": self.message,
                "counts": self.counts, "cost": _json_float(self.cost),
                "bound": _json_float(self.bound), "gap": _json_float(self.gap),
                "solve_seconds": round(self.solve_seconds, 6),
                "utilization": {k: round(v, 6) for k, v in self.utilization.items()},
                "options": self.options}

    def routing_config(self) -> dict:
        """The load balancer's configuration: GPU counts and, per bucket, the share sent to each GPU type."""
        routes = []
        if self.routing is not None:
            for (i, o), grp in self.routing.groupby([INPUT_AXIS, OUTPUT_AXIS], sort=False):
                routes.append({INPUT_AXIS: i, OUTPUT_AXIS: o, "rate": round(float(grp["rate"].sum()), 9),
                               "shares": {g: round(float(s), 9) for g, s in zip(grp["gpu"], grp["share"])}})
        return {"solver": self.solver, "status": self.status,
                "gpus": {g: {"count": c, "utilization": round(self.utilization.get(g, 0.0), 6)}
                         for g, c in self.counts.items()}, "routes": routes}

    def melange_json(self) -> dict:
        """melange-release's result format: ``{"A10G": 3, "A100-80GB": 1, "cost": 6.7}``."""
        return {**self.counts, "cost": _json_float(self.cost)}


def _json_float(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


@dataclass
class FlatProblem:
    """Flattened arrays shared by the solvers (and `plan`'s multi-window programs): demand per
    bucket, load per bucket x GPU type; buckets in row-major order (input outer, output inner)."""

    buckets: list[tuple[str, str]]
    gpus: list[str]
    costs: np.ndarray          # (G,)
    demand: np.ndarray         # (B,) requests/s
    load: np.ndarray           # (B, G) GPUs per request/s at the cap; inf = cannot serve
    raw_load: np.ndarray       # (B, G) GPUs per request/s at profiled max throughput
    constraints: Constraints

    def unservable(self) -> list[str]:
        """Labels of buckets with demand that no GPU type can serve."""
        bad = (self.demand > 0) & ~np.isfinite(self.load).any(axis=1)
        return [_bucket_name(self.buckets[b]) for b in np.flatnonzero(bad)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.constraints
        low = np.array([c.min_instances.get(g, 0) for g in self.gpus], dtype=float)
        high = np.array([c.max_instances.get(g, np.inf) for g in self.gpus], dtype=float)
        return low, high


def _bucket_name(bucket: tuple[str, str]) -> str:
    return f"input {bucket[0]} x output {bucket[1]}"


@dataclass(frozen=True)
class Prepared:
    """A workload, its GPU profiles and constraints, checked and flattened once (at 1 request/s).

    Pass it as the `workload` of any solver (with ``gpus=prepared.gpus``): a sweep re-solves the
    same problem across rates and solvers without re-validating or rebuilding the arrays.
    """

    problem: FlatProblem
    gpus: Mapping[str, GpuProfile]

    @property
    def constraints(self) -> Constraints:
        return self.problem.constraints


def prepare(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile],
            constraints: Constraints | None = None) -> Prepared:
    """Check `workload`, `gpus` and `constraints` once; the result re-solves at any rate."""
    return Prepared(flat_problem(workload, gpus, 1.0, constraints), dict(gpus))


def flat_problem(workload: pd.DataFrame | Prepared, gpus: Mapping[str, GpuProfile], rate: float,
                 constraints: Constraints | None) -> FlatProblem:
    """`workload` at `rate` on `gpus` under `constraints`, checked (labels, constraints, size) and flattened."""
    if not schemas.is_number(rate) or rate <= 0:
        raise InputError("rate", f"must be a positive number of requests/s, got {rate!r}")
    if isinstance(workload, Prepared):
        if constraints is not None and constraints != workload.constraints:
            raise InputError("constraints", "differ from those the problem was prepared with; prepare it again")
        return replace(workload.problem, demand=workload.problem.demand * float(rate))
    check_workload(workload)
    if not gpus:
        raise InputError("gpus", "no GPU types given; pass at least one profile")
    constraints = (constraints or Constraints()).check(list(gpus))
    for name, gpu in gpus.items():
        check_same_buckets(workload, gpu.tputs, what=f"GPU profile {name}")
    # Row-major flattening (input outer, output inner); labels were checked equal above.
    buckets = [(i, o) for i in workload.index for o in workload.columns]
    with np.errstate(divide="ignore"):
        raw = np.column_stack([1.0 / gpu.tputs.to_numpy(dtype=float).ravel() for gpu in gpus.values()])
    p = FlatProblem(buckets=buckets, gpus=list(gpus), costs=np.array([g.cost for g in gpus.values()]),
                 demand=workload.to_numpy(dtype=float).ravel() * float(rate),
                 load=raw / constraints.utilization_cap, raw_load=raw, constraints=constraints)
    with np.errstate(invalid="ignore", over="ignore"):
        least = np.where(np.isfinite(p.load), p.demand[:, None] * p.load, np.inf).min(axis=1)
    need = float(least[np.isfinite(least)].sum())
    if need > MAX_GPUS:
        raise InputError("rate", f"{rate:g} requests/s needs at least {need:.3g} GPUs (over {MAX_GPUS:.0e}); "
                                 "check the rate (requests/s) and the throughputs (requests/s per GPU)")
    return p


def _infeasible(solver: str, message: str, gpus: Sequence[str], seconds: float = 0.0, **options) -> SolveResult:
    return SolveResult(solver, "infeasible", message, {g: 0 for g in gpus}, math.nan, seconds, options=options)


def _finish(solver: str, status: str, message: str, p: FlatProblem, counts: np.ndarray, share: np.ndarray,
            seconds: float, bound=None, gap=None, **options) -> SolveResult:
    """Build a result from counts (G,) and the share of each bucket per GPU type (B, G)."""
    counts = np.rint(counts).astype(int)
    cost = round(float(counts @ p.costs), 9)
    sent = share * p.demand[:, None]
    used = (sent * np.where(sent > 0, p.raw_load, 0.0)).sum(axis=0)
    util = {g: float(used[j] / counts[j]) if counts[j] else 0.0 for j, g in enumerate(p.gpus)}
    rows = [(b[0], b[1], g, float(share[i, j]), float(sent[i, j]))
            for i, b in enumerate(p.buckets) if p.demand[i] > 0
            for j, g in enumerate(p.gpus) if share[i, j] > 0]
    routing = pd.DataFrame(rows, columns=[INPUT_AXIS, OUTPUT_AXIS, "gpu", "share", "rate"])
    return SolveResult(solver, status, message, {g: int(c) for g, c in zip(p.gpus, counts)}, cost, seconds,
                       bound=bound, gap=gap, routing=routing, utilization=util, options=options)


# ---------------------------------------------------------------- single-GPU baselines

def solve_single(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, gpu: str, *,
                 constraints: Constraints | None = None) -> SolveResult:
    """One GPU type serves everything: ceil(aggregate load / utilisation cap), then the limits."""
    if gpu not in gpus:
        raise InputError("gpu", f"unknown GPU name {gpu!r}; choose from {list(gpus)}")
    start = time.perf_counter()
    p = flat_problem(workload, gpus, rate, constraints)
    j, name = p.gpus.index(gpu), f"single:{gpu}"
    active = p.demand > 0
    cannot = [_bucket_name(p.buckets[i]) for i in np.flatnonzero(active & ~np.isfinite(p.load[:, j]))]
    if cannot:
        return _infeasible(name, f"{gpu} cannot serve {', '.join(cannot)} (throughput 0)", p.gpus,
                           time.perf_counter() - start)
    load = float(p.demand[active] @ p.load[active, j])
    (count,), (over,) = single_counts(p.demand[None, :], p.load[:, j], gpu, p.constraints)
    if over:
        return _infeasible(name, f"{gpu} needs {count} instances but max_instances.{gpu} is "
                                 f"{p.constraints.max_instances[gpu]}", p.gpus, time.perf_counter() - start)
    counts = np.zeros(len(p.gpus))
    counts[j] = count
    share = np.zeros_like(p.load)
    share[active, j] = 1.0
    return _finish(name, "optimal", f"{count} x {gpu} carry a load of {load:.4g} GPUs", p, counts, share,
                   time.perf_counter() - start)


def single_counts(demand: np.ndarray, load: np.ndarray, gpu: str, constraints: Constraints
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`solve_single`'s rule for many demands at once: GPUs of type `gpu` serving everything, per row
    of `demand` (rows x buckets, requests/s) with `load` (per bucket: GPUs per request/s at the cap,
    inf where it cannot serve): ceil(aggregate load), at least 1 for any demand, then min_instances
    and min_total. Returns (counts, bad): `bad` marks rows this type cannot serve (a bucket with
    demand it cannot serve, or more than max_instances)."""
    demand = np.atleast_2d(np.asarray(demand, dtype=float))
    finite = np.isfinite(load)
    cannot = (demand[:, ~finite] > 0).any(axis=1)
    need = np.ceil(demand[:, finite] @ load[finite] - LOAD_EPS)
    c = constraints
    counts = np.maximum(need, max(1, c.min_instances.get(gpu, 0), c.min_total)).astype(int)   # any demand: >= 1 GPU
    return counts, cannot | (counts > c.max_instances.get(gpu, math.inf))


# ---------------------------------------------------------------- Mélange ILP (PuLP + CBC)

def solve_melange(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, *,
                  slice_factor: int = 1, time_limit: float | None = None,
                  constraints: Constraints | None = None, check_seconds: float | None = None) -> SolveResult:
    """The Mélange ILP (melange-release's formulation) solved by CBC through PuLP, checked.

    CBC can call a dearer plan "Optimal" (DESIGN trap 10), so: CBC starts from the cheapest
    single-GPU-type plan (feasible at every slice factor, so never beaten by a dearer answer); a
    plan is called optimal only when it meets the exact solver's lower bound or a second solver
    (HiGHS, on the same ILP) proves the same cost; otherwise the cheapest verified plan is
    reported with what was proved: status ``time_limit`` with the best bound and the gap, also
    when CBC alone calls it optimal. `check_seconds`: the time each check may take (default: the
    time limit, or at least CHECK_SECONDS); 0 runs no check.
    """
    import pulp

    slice_factor = _check_slice_factor(slice_factor)
    check_time_limit(time_limit)
    if check_seconds is not None and (isinstance(check_seconds, bool) or not isinstance(check_seconds, (int, float))
                                      or not math.isfinite(check_seconds) or check_seconds < 0):
        raise InputError("check_seconds", f"must be a number of seconds >= 0 (0: no check), got {check_seconds!r}")
    start = time.perf_counter()
    p = flat_problem(workload, gpus, rate, constraints)
    options = {"slice_factor": int(slice_factor), "time_limit": time_limit}
    early = _early_infeasible("melange", p, start, options)
    if early:
        return early
    binaries = int((p.demand > 0).sum()) * slice_factor * len(p.gpus)
    if binaries > MAX_BINARIES:
        raise InputError("slice_factor", f"{slice_factor} makes {binaries} binary variables (over {MAX_BINARIES}); lower it, "
                                         "or use the exact solver, which is the limit of large slice factors")
    prob, y, x, slices = _melange_model(p, slice_factor)
    warm = _single_start(p)
    if warm is not None:
        for (s_, j), v in x.items():
            v.setInitialValue(1 if j == warm.gpu else 0)
        for j, v in enumerate(y):
            v.setInitialValue(int(warm.counts[j]))
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "cbc.log")
        try:
            prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, logPath=log, threads=1,
                                         warmStart=warm is not None))
            cbc_failed = None
        except pulp.PulpSolverError as exc:   # CBC crashed or was killed: keep the warm start, say so
            cbc_failed = " ".join(str(exc).split())
        cbc_bound = None if cbc_failed else _cbc_bound(log)
    if not cbc_failed and prob.status == pulp.LpStatusInfeasible and warm is None:
        return _infeasible("melange", _binding(p), p.gpus, time.perf_counter() - start, **options)
    cbc_proved = not cbc_failed and prob.sol_status == pulp.LpSolutionOptimal
    cbc = None if cbc_failed else _melange_plan(p, prob, y, x, slices, slice_factor, "CBC")
    plans = [q for q in (cbc, warm) if q is not None]
    if not plans and cbc_failed:
        return SolveResult("melange", "no_solution", f"CBC failed ({cbc_failed}); try --solver exact",
                           {g: 0 for g in p.gpus}, math.nan, time.perf_counter() - start, options=options)
    if not plans:
        return SolveResult("melange", "no_solution", f"CBC found no allocation within the time limit of {time_limit} s; "
                           "raise --time-limit or lower --slice-factor", {g: 0 for g in p.gpus}, math.nan,
                           time.perf_counter() - start, options=options)
    best = min(plans, key=lambda q: q.cost)
    notes = [f"CBC failed ({cbc_failed}), so the plan starts from the best single-GPU plan"] if cbc_failed else []
    if cbc is not None and cbc.cost > best.cost + COST_EPS:
        notes.append(f"CBC returned ${cbc.cost:.4g}/h{' and called it optimal' if cbc_proved else ''}, dearer than "
                     f"the single-GPU plan it started from")
    # Lower bound 1: the exact solver (continuous split, integer counts) is a relaxation of the ILP.
    budget = check_seconds if check_seconds is not None else time_limit if time_limit is not None \
        else max(CHECK_SECONDS, 2 * (time.perf_counter() - start))
    exact = solve_exact(workload, gpus, rate, time_limit=budget, constraints=p.constraints) if budget > 0 else None
    lower = None if exact is None else exact.cost if exact.status == "optimal" else exact.bound
    if lower is not None and np.isfinite(lower) and best.cost <= lower + COST_EPS:
        return _melange_result("optimal", f"proved optimal: ${best.cost:.4g}/h equals the exact solver's lower bound"
                               + _notes(notes), p, best, start, lower, options)
    # Lower bound 2: HiGHS on the same ILP, when CBC's answer needs a second opinion.
    highs = _highs_check(prob, y, x, slices, p, slice_factor, budget)
    if highs is not None:
        plan, highs_proved, highs_bound = highs
        if plan is not None and plan.cost < best.cost - COST_EPS:
            notes.append(f"CBC's ${best.cost:.4g}/h was beaten by HiGHS")
            best = plan
        if highs_proved and abs(plan.cost - best.cost) <= COST_EPS:
            proved_by = "CBC and HiGHS agree" if cbc_proved and cbc is not None and abs(cbc.cost - best.cost) <= COST_EPS \
                else "HiGHS proved it"
            return _melange_result("optimal", f"proved optimal ({proved_by})" + _notes(notes), p, best, start,
                                   best.cost, options)
        if highs_bound is not None and (lower is None or highs_bound > lower):
            lower = highs_bound
    if cbc_proved and best is cbc:     # CBC's word alone is no proof (DESIGN trap 10)
        notes.append("CBC called it optimal, which neither the exact solver's bound nor HiGHS confirmed")
    bound = lower if lower is not None and np.isfinite(lower) else cbc_bound
    gap = (best.cost - bound) / best.cost if bound is not None and best.cost > 0 else None
    limit = f"the time limit of {time_limit} s" if time_limit is not None and check_seconds is None \
        else f"the {budget:.3g} s check budget"
    return _melange_result("time_limit", f"best allocation found, not proven optimal within {limit}"
                           + (f" (bound {bound:.4g}, gap {gap:.2%})" if gap is not None else "") + _notes(notes),
                           p, best, start, bound, options, gap=gap)


# A plan's cost is a sum of a few prices: costs within this of each other are equal.
COST_EPS = 1e-6
# Without a time limit, the optimality checks get at least this long (or twice CBC's time).
CHECK_SECONDS = 10.0


@dataclass
class _IlpSolution:
    """A feasible Mélange ILP solution: GPU counts, shares per bucket x type, its cost, who found it."""

    counts: np.ndarray
    share: np.ndarray
    cost: float
    found_by: str
    gpu: int | None = None


def _notes(notes: list[str]) -> str:
    return "; " + "; ".join(notes) if notes else ""


def _melange_result(status, message, p, plan: _IlpSolution, start, bound, options, gap=0.0) -> SolveResult:
    message = f"{message} [allocation from {plan.found_by}]"
    return _finish("melange", status, message, p, plan.counts, plan.share, time.perf_counter() - start,
                   bound=None if bound is None else float(bound), gap=gap, **options)


def _melange_model(p: FlatProblem, slice_factor: int):
    """The PuLP model: binary slice -> GPU type assignments x, integer counts y."""
    import pulp

    low, high = p.bounds()
    prob = pulp.LpProblem("melange", pulp.LpMinimize)
    y = [prob.add_variable(f"y_{j}", lowBound=low[j], upBound=None if np.isinf(high[j]) else high[j],
                           cat=pulp.LpInteger) for j in range(len(p.gpus))]
    prob += pulp.lpSum(c * v for c, v in zip(p.costs, y))
    slices = [(b, k) for b in np.flatnonzero(p.demand > 0) for k in range(slice_factor)]
    x = {(s, j): prob.add_variable(f"x_{s}_{j}", cat=pulp.LpBinary)
         for s, (b, _) in enumerate(slices) for j in range(len(p.gpus)) if np.isfinite(p.load[b, j])}
    by_slice = [[] for _ in slices]
    by_gpu = [[] for _ in p.gpus]
    assigned = [[] for _ in p.gpus]
    for (s, j), v in x.items():
        b = slices[s][0]
        by_slice[s].append(v)
        by_gpu[j].append(v * (p.demand[b] / slice_factor) * p.load[b, j])
        assigned[j].append(v)
    for terms in by_slice:                      # each slice goes whole to one GPU type
        prob += pulp.lpSum(terms) == 1
    for j, terms in enumerate(by_gpu):          # load on a type fits its count
        prob += pulp.lpSum(terms) <= y[j]
    for j, terms in enumerate(assigned):        # any slice on a type needs >= 1 GPU of it, however small its load
        if terms:
            prob += pulp.lpSum(terms) <= len(terms) * y[j]
    if p.constraints.min_total:
        prob += pulp.lpSum(y) >= p.constraints.min_total
    return prob, y, x, slices


def _melange_plan(p, prob, y, x, slices, slice_factor, found_by) -> _IlpSolution | None:
    """The solver's values as a plan, or None when it holds no complete assignment."""
    import pulp

    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    counts = np.rint([v.value() or 0.0 for v in y])
    share = np.zeros_like(p.load)
    for (s, j), v in x.items():
        if (v.value() or 0) > 0.5:
            share[slices[s][0], j] += 1.0 / slice_factor
    active = p.demand > 0
    if not np.allclose(share[active].sum(axis=1), 1.0):
        return None
    return _IlpSolution(counts, share, round(float(counts @ p.costs), 9), found_by)


def _single_start(p: FlatProblem) -> _IlpSolution | None:
    """The cheapest plan that sends every bucket to one GPU type and meets every constraint.

    A valid Mélange ILP solution at every slice factor: CBC's start and an upper bound."""
    low, high = p.bounds()
    active = p.demand > 0
    best = None
    for j in range(len(p.gpus)):
        if not np.isfinite(p.load[active, j]).all():
            continue
        counts = low.copy()
        counts[j] = max(low[j], math.ceil(float(p.demand[active] @ p.load[active, j]) - LOAD_EPS), 1)
        counts[j] += max(0, p.constraints.min_total - counts.sum())
        if counts[j] > high[j]:
            continue
        cost = round(float(counts @ p.costs), 9)
        if best is None or cost < best.cost:
            share = np.zeros_like(p.load)
            share[active, j] = 1.0
            best = _IlpSolution(counts, share, cost, f"the single-GPU start ({p.gpus[j]})", gpu=j)
    return best


def _highs_check(prob, y, x, slices, p, slice_factor, budget):
    """(plan, proved optimal, lower bound) from HiGHS on the same ILP, or None if it cannot run."""
    import pulp

    try:
        with _quiet_stdout():
            prob.solve(pulp.HiGHS(msg=False, timeLimit=float(budget), threads=1, gapRel=0.0, gapAbs=0.0))
    except Exception:   # noqa: BLE001  (a check that cannot run proves nothing; CBC's answer stands, unconfirmed)
        return None
    plan = _melange_plan(p, prob, y, x, slices, slice_factor, "HiGHS")
    proved = plan is not None and prob.sol_status == pulp.LpSolutionOptimal
    return plan, proved, (plan.cost if proved else None)


def _cbc_bound(log_path: str) -> float | None:
    """The lower bound CBC prints when stopped early ("best possible X")."""
    try:
        text = Path(log_path).read_text()
    except OSError:
        return None
    found = re.findall(r"best possible (-?[\d.eE+-]+)", text)
    return float(found[-1]) if found else None


# ---------------------------------------------------------------- exact solver (HiGHS)

def solve_exact(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, *,
                time_limit: float | None = None, constraints: Constraints | None = None) -> SolveResult:
    """Integer GPU counts and a continuous share of each bucket per GPU type, solved by HiGHS."""
    import highspy

    check_time_limit(time_limit)
    start = time.perf_counter()
    p = flat_problem(workload, gpus, rate, constraints)
    options = {"time_limit": time_limit}
    early = _early_infeasible("exact", p, start, options)
    if early:
        return early
    G = len(p.gpus)
    active = np.flatnonzero(p.demand > 0)
    pairs = [(b, j) for b in active for j in range(G) if np.isfinite(p.load[b, j])]
    # columns: counts y_0..y_G-1, then shares f_(b,j)
    low, high = p.bounds()
    col_low = np.concatenate([low, np.zeros(len(pairs))])
    col_high = np.concatenate([np.where(np.isinf(high), highspy.kHighsInf, high), np.ones(len(pairs))])
    col_cost = np.concatenate([p.costs, np.zeros(len(pairs))])
    rows, cols, vals, row_low, row_high = [], [], [], [], []
    row_of_bucket = {b: r for r, b in enumerate(active)}
    for k, (b, j) in enumerate(pairs):          # sum_j f_bj = 1 for every bucket with demand
        rows.append(row_of_bucket[b]); cols.append(G + k); vals.append(1.0)
    row_low += [1.0] * len(active); row_high += [1.0] * len(active)
    base = len(active)
    for k, (b, j) in enumerate(pairs):          # sum_b demand_b load_bj f_bj - y_j <= 0
        rows.append(base + j); cols.append(G + k); vals.append(p.demand[b] * p.load[b, j])
    for j in range(G):
        rows.append(base + j); cols.append(j); vals.append(-1.0)
    row_low += [-highspy.kHighsInf] * G; row_high += [0.0] * G
    base += G
    per_gpu = np.bincount([j for _, j in pairs], minlength=G)
    for k, (b, j) in enumerate(pairs):          # sum_b f_bj - n_j y_j <= 0: any share on a type needs >= 1 of it
        rows.append(base + j); cols.append(G + k); vals.append(1.0)
    for j in range(G):
        rows.append(base + j); cols.append(j); vals.append(-float(max(per_gpu[j], 1)))
    row_low += [-highspy.kHighsInf] * G; row_high += [0.0] * G
    base += G
    if p.constraints.min_total:
        for j in range(G):
            rows.append(base); cols.append(j); vals.append(1.0)
        row_low.append(float(p.constraints.min_total)); row_high.append(highspy.kHighsInf)

    h = highs_program(col_low, col_high, col_cost, rows, cols, vals, row_low, row_high, time_limit=time_limit,
                      options={k: False for k in _SUB_MIP_HEURISTICS})
    # The LP relaxation first: its GPU counts rounded up keep its routing feasible (more capacity),
    # so they are a warm start for the MIP, which then only has to improve on it and prove it.
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        warm = np.asarray(h.getSolution().col_value, dtype=float)
        warm[:G] = np.ceil(warm[:G] - LOAD_EPS)
    else:
        warm = None
    h.changeColsIntegrality(G, np.arange(G, dtype=np.int32), np.array([highspy.HighsVarType.kInteger] * G))
    if warm is not None:
        solution = highspy.HighsSolution()
        solution.col_value = warm.tolist()
        h.setSolution(solution)
    h.run()
    status, info = h.getModelStatus(), h.getInfo()
    seconds = time.perf_counter() - start
    M = highspy.HighsModelStatus
    if status == M.kInfeasible:
        return _infeasible("exact", _binding(p), p.gpus, seconds, **options)
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if status != M.kOptimal and not has_solution:
        return SolveResult("exact", "no_solution", f"HiGHS stopped ({h.modelStatusToString(status)}) without an allocation; raise --time-limit",
                           {g: 0 for g in p.gpus}, math.nan, seconds, options=options)
    x = np.asarray(h.getSolution().col_value)
    share = np.zeros_like(p.load)
    for k, (b, j) in enumerate(pairs):
        share[b, j] = x[G + k] if x[G + k] > 1e-9 else 0.0
    share[:, np.rint(x[:G]) < 1] = 0.0                          # no traffic to a type with no GPU (solver tolerance)
    share[active] /= share[active].sum(axis=1, keepdims=True)   # remove solver round-off
    if status == M.kOptimal:
        return _finish("exact", "optimal", "HiGHS proved this allocation optimal (relative gap 0)", p, x[:G], share,
                       seconds, bound=float(info.mip_dual_bound), gap=0.0, **options)
    gap = float(info.mip_gap)
    return _finish("exact", "time_limit", f"HiGHS stopped ({h.modelStatusToString(status)}); best allocation found, "
                   f"bound {info.mip_dual_bound:.4g}, gap {gap:.2%}, not proven optimal",
                   p, x[:G], share, seconds, bound=float(info.mip_dual_bound), gap=gap, **options)


# HiGHS's sub-MIP primal heuristics cost more than they find here: the warm start is already
# within a GPU or so of optimal (measured in bench/solver_bench.py: about 40% less time without them).
_SUB_MIP_HEURISTICS = ("mip_heuristic_run_rens", "mip_heuristic_run_rins", "mip_heuristic_run_root_reduced_cost",
                       "mip_heuristic_run_zi_round", "mip_heuristic_run_shifting", "mip_heuristic_run_feasibility_jump")


def highs_program(col_low, col_high, col_cost, rows, cols, vals, row_low, row_high, *,
                  integer: Sequence[int] = (), time_limit: float | None = None,
                  options: Mapping[str, Any] | None = None):
    """A quiet ``highspy.Highs`` holding min col_cost·x subject to row_low <= A x <= row_high and
    col_low <= x <= col_high, A given as (rows, cols, vals) triplets in any order; the `integer`
    columns integral. Proofs mean a relative gap of 0, on one thread, within `time_limit` seconds;
    `options`: more HiGHS options. Run it with ``.run()``."""
    import highspy

    h = _quiet_highs()
    for name, value in {"output_flag": False, "mip_rel_gap": 0.0, "mip_abs_gap": 1e-9, "threads": 1,
                        **(options or {})}.items():
        h.setOptionValue(name, value)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    n = len(col_low)
    h.addVars(n, np.asarray(col_low, dtype=float), np.asarray(col_high, dtype=float))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.asarray(col_cost, dtype=float))
    order = np.lexsort((cols, rows))
    r, c, v = np.asarray(rows)[order], np.asarray(cols, dtype=np.int32)[order], np.asarray(vals, dtype=float)[order]
    starts = np.searchsorted(r, np.arange(len(row_low))).astype(np.int32)
    h.addRows(len(row_low), np.asarray(row_low, dtype=float), np.asarray(row_high, dtype=float), len(v), starts, c, v)
    integer = np.asarray(integer, dtype=np.int32)
    if len(integer):
        h.changeColsIntegrality(len(integer), integer, np.array([highspy.HighsVarType.kInteger] * len(integer)))
    return h


def _quiet_highs():
    """A highspy.Highs() without its banner, which HiGHS prints to the C-level stdout."""
    import highspy

    with _quiet_stdout():
        return highspy.Highs()


@contextlib.contextmanager
def _quiet_stdout():
    """Silence the C-level stdout (HiGHS prints its banner there, whatever its options say)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def check_time_limit(time_limit) -> None:
    schemas.optional_seconds(time_limit, "time_limit")


def _check_slice_factor(slice_factor) -> int:
    return schemas.whole(slice_factor, "slice_factor", minimum=1, what="a whole number >= 1 (slices per bucket)")


def _early_infeasible(solver: str, p: FlatProblem, start: float, options: dict) -> SolveResult | None:
    bad = p.unservable()
    if bad:
        return _infeasible(solver, f"no GPU type can serve {', '.join(bad)} (throughput 0 on every GPU)",
                           p.gpus, time.perf_counter() - start, **options)
    return None


def _binding(p: FlatProblem) -> str:
    """Say which constraint makes an instance infeasible (buckets are checked before solving)."""
    c = p.constraints
    low, high = p.bounds()
    if np.isfinite(high).all() and c.min_total > high.sum():
        return f"min_total {c.min_total} exceeds the sum of max_instances ({int(high.sum())})"
    if c.max_instances:
        quotas = ", ".join(f"{g}={n}" for g, n in c.max_instances.items())
        return (f"max_instances {quotas} cannot carry the load at utilisation cap "
                f"{c.utilization_cap:g}; raise the quotas or the cap")
    return "the solver found no allocation that meets every constraint"


# ---------------------------------------------------------------- dispatch and comparison

def solve(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, *, solver: str = "exact",
          slice_factor: int = 1, time_limit: float | None = None,
          constraints: Constraints | None = None) -> SolveResult:
    """Run one policy by name: ``exact`` (the default), ``melange`` or ``single:<gpu>``."""
    _check_slice_factor(slice_factor)    # checked for every policy: a bad value is bad input even where unused
    check_time_limit(time_limit)
    if solver == "melange":
        return solve_melange(workload, gpus, rate, slice_factor=slice_factor, time_limit=time_limit,
                             constraints=constraints)
    if solver == "exact":
        return solve_exact(workload, gpus, rate, time_limit=time_limit, constraints=constraints)
    if solver.startswith("single:"):
        return solve_single(workload, gpus, rate, solver.split(":", 1)[1], constraints=constraints)
    raise InputError("solver", f"unknown solver {solver!r}; choose melange, exact or single:<gpu>")


@dataclass
class Comparison:
    """Mix solver(s) plus every single-GPU baseline on one workload, GPU set and rate."""

    rate: float
    results: dict[str, SolveResult]
    reference: str

    @property
    def mix(self) -> SolveResult:
        return self.results[self.reference]

    def savings(self) -> pd.DataFrame:
        return savings_table(self.results, self.reference)

    def to_dict(self) -> dict:
        table = self.savings().reset_index()
        return {"solver": self.reference, "rate": self.rate, "status": self.mix.status,
                "message": self.mix.message, "allocation": self.mix.counts, "cost": _json_float(self.mix.cost),
                "policies": {k: r.to_dict() for k, r in self.results.items()},
                "routing": self.mix.routing_config(),
                "savings": [{k: (_json_float(v) if isinstance(v, float) else v) for k, v in row.items()}
                            for row in table.to_dict(orient="records")]}


def compare(workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], rate: float, *,
            solvers: Sequence[str] = ("exact", "melange"), slice_factor: int = 1, time_limit: float | None = None,
            constraints: Constraints | None = None) -> Comparison:
    """Solve with each mix solver and each single-GPU baseline; the first solver is the reference.

    The default is the project's one default: the exact solver, with the Mélange ILP as its comparison."""
    if not solvers:
        raise InputError("solver", "name at least one mix solver (melange or exact)")
    results = {s: solve(workload, gpus, rate, solver=s, slice_factor=slice_factor, time_limit=time_limit,
                        constraints=constraints) for s in solvers}
    for name in gpus:
        results[f"single:{name}"] = solve_single(workload, gpus, rate, name, constraints=constraints)
    return Comparison(float(rate), results, solvers[0])


def savings_table(results: Mapping[str, SolveResult], reference: str) -> pd.DataFrame:
    """The seed's table: one row per policy with GPU counts, $/h, status and savings of `reference`.

    ``savings_pct`` = (policy cost - reference cost) / policy cost x 100: what the reference mix
    saves against that policy (NaN when either has no allocation).
    """
    ref = results[reference]
    rows = []
    for name, r in results.items():
        row = {"policy": name, **{g: (c if r.has_allocation else np.nan) for g, c in r.counts.items()},
               "cost_per_hour": r.cost, "status": r.status}
        ok = r.has_allocation and ref.has_allocation and r.cost > 0
        row["savings_pct"] = (r.cost - ref.cost) / r.cost * 100 if ok else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("policy")


def routing_matrix(result: SolveResult, gpu: str, like: pd.DataFrame) -> pd.DataFrame:
    """Share of each bucket's requests sent to `gpu`, as a DataFrame labelled like `like`."""
    out = pd.DataFrame(0.0, index=like.index, columns=like.columns)
    if result.routing is not None:
        for row in result.routing[result.routing["gpu"] == gpu].itertuples(index=False):
            out.loc[getattr(row, INPUT_AXIS), getattr(row, OUTPUT_AXIS)] = row.share
    return out
