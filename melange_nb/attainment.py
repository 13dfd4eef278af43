"""The simulator as the other stages use it: check a solved plan's SLO attainment, and say it first.

`simulate.py` is the engine; this module is the glue that sweeps, the allocation notebook, the
plan report and the explorer share, so that each shows the same numbers in the same words:

- ``check_options(mapping, where)``: a sweep's or a run's ``simulate:`` options, checked and
  completed (`schemas.SimulateOptions`: ``duration_s`` 600, ``arrival`` poisson, ``seed`` 0, ``routing``
  least), one-line errors naming the field.
- ``check_plan(workload, gpus, rate, result, options, target=None)``: simulate the solved plan on a
  generated stream (and, with `target`, search for the cheapest plan that reaches it): a `PlanCheck`
  with the flat numbers a results table takes (``columns()``), the answer sentence (``sentence``) and
  the simulation results for the page.
- ``read_check(path, options, target)``: a check saved by a sweep's worker (``PlanCheck.to_dict``), read back
  for the point's page instead of simulating the same plan a second time.
- ``latency_missing(gpus)``: the one line that says why no simulation can run (None when every GPU
  type carries a latency model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from .errors import InputError

# results-table columns a simulated point adds (NaN / empty where no simulation ran)
COLUMNS = ["sim_status", "sim_slo", "attainment", "p99_ttft_ms", "p99_tpot_ms", "target_attainment", "found_mix",
           "found_cost_per_hour", "found_attainment", "sim_seconds"]
MAX_SIM_REQUESTS = 5_000_000     # rate x duration above this is a units mistake, refused before any work


def check_options(value: Any, where: str = "simulate") -> dict[str, Any] | None:
    """`value` (None/false, true or a mapping of duration_s, arrival, seed, routing) checked (`schemas.SimulateOptions`) and
    completed; None and false stay None (no simulation)."""
    from pydantic import TypeAdapter

    from . import schemas

    value = schemas.validate(TypeAdapter(schemas.Simulate), value, where=where)
    return None if value is None else value.model_dump()


def check_target(value: Any, where: str = "target_attainment") -> float | None:
    """A target attainment share in (0, 1], or None."""
    from pydantic import TypeAdapter

    from . import schemas

    return schemas.validate(TypeAdapter(schemas.TargetAttainment), value, where=where)


def serving_gpus(gpus: Mapping[str, Any]) -> dict[str, Any]:
    """The GPU types that serve at least one bucket: a type serving none is in no plan, and needs no
    latency model (e.g. L4 at TPOT 40 ms in the predicted Llama-3.1 profiles)."""
    from .simulate import serving

    return {g: gpus[g] for g in serving(gpus)}


def latency_missing(gpus: Mapping[str, Any]) -> str | None:
    """None when every GPU type has a latency model, else the line that says which lacks one and how to add it."""
    from .profiles import HOW_TO_ADD

    missing = [g for g, p in gpus.items() if p.latency is None]
    if not missing:
        return None
    return f"No SLO attainment: GPU type {missing[0]} has no latency model; {HOW_TO_ADD}"


@dataclass
class PlanCheck:
    """A solved plan's simulated attainment (and, with a target, the cheapest plan found that reaches it)."""

    status: str                      # ok | unbounded | none (nothing to simulate) | met | not_met (with a target)
    sentence: str                    # the answer, e.g. "1xA10G + 1xA100 ($4.68/h) meets TPOT <= 40 ms for 93.1% ..."
    options: dict
    result: Any = None               # simulate.SimResult of the solved plan
    search: Any = None               # simulate.AttainmentSearch when a target was given
    numbers: dict = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The flat numbers of `COLUMNS` (NaN where not applicable)."""
        return {c: self.numbers.get(c, math.nan if c not in ("sim_status", "sim_slo", "found_mix") else "")
                for c in COLUMNS}

    def to_dict(self) -> dict:
        out = {"status": self.status, "sentence": self.sentence, "options": self.options,
               **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.columns().items()}}
        if self.result is not None:
            out["simulation"] = self.result.to_dict()
        if self.search is not None:
            out["search"] = self.search.to_dict()
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "PlanCheck":
        """A check written by `to_dict`, back: its status, sentence, numbers, the simulation's summary table
        and the search's plans (not the per-request rows, which `to_dict` leaves out)."""
        from .simulate import AttainmentSearch, SimResult

        numbers = {c: (math.nan if doc.get(c) is None and c not in ("sim_status", "sim_slo", "found_mix") else doc.get(c))
                   for c in COLUMNS if c in doc}
        sim = doc.get("simulation")
        result = None
        if sim is not None:
            summary = pd.DataFrame.from_records(sim["summary"]).set_index("gpu")
            summary = summary.apply(lambda col: pd.to_numeric(col) if col.dtype == object and col.isna().all() else col)
            result = SimResult(sim["status"], sim["message"], pd.DataFrame(), summary, pd.DataFrame(), sim["slo"],
                               sim["plan"], sim.get("options") or {}, sim.get("wall_seconds") or 0.0,
                               sim.get("cpu_seconds") or 0.0)
        found = doc.get("search")
        search = None if found is None else AttainmentSearch(
            found["target"], found["status"], found["message"], found["baseline"], found["found"], found["neighbours"],
            pd.DataFrame.from_records(found["tried"]), baseline_result=result)
        return cls(doc["status"], doc["sentence"], dict(doc["options"]), result, search, numbers)


def _p99(res, col: str) -> float:
    return float(res.summary.at["all", col]) if res is not None and res.status == "ok" else math.nan


def slo_text(slo) -> str:
    """Each condition as every request must meet it: "TPOT ≤ 40 ms" (the attainment counts requests)."""
    return " and ".join(f"{c['metric'].upper()} ≤ {c['ms']:g} ms" for c in slo)


def plan_sentence(mix: str, cost: float, res) -> str:
    """"1xA10G + 1xA100 ($4.68/h) meets TPOT <= 40 ms for 93.1% of requests (p99 TTFT 120 ms, p99 TPOT 38 ms)"."""
    if res.status != "ok":
        return f"{mix} (${cost:.2f}/h) cannot hold its SLO: {res.message}"
    return (f"{mix} (${cost:.2f}/h) meets {slo_text(res.slo)} for {res.attainment:.1%} of requests "
            f"(p99 TTFT {_p99(res, 'p99_ttft_ms'):,.0f} ms, p99 TPOT {_p99(res, 'p99_tpot_ms'):,.1f} ms)")


def stream_text(options: Mapping, rate: float) -> str:
    """How the stream was made, for the line under the sentence."""
    arrival = "Poisson" if options["arrival"] == "poisson" else options["arrival"]
    return (f"simulated {options['duration_s']:g} s of {arrival} arrivals at {rate:g} requests/s "
            f"(seed {options['seed']}, {options['routing']} routing)")


def check_plan(workload: pd.DataFrame, gpus: Mapping[str, Any], rate: float, result, options: Mapping | None,
               target: float | None = None, *, solver: str = "exact", constraints=None,
               progress: bool = False) -> PlanCheck:
    """Simulate `result` (a `SolveResult`) serving `rate` requests/s of `workload` for the `options`
    stream; with `target`, also `search_attainment` for the cheapest plan that reaches it."""
    from .report import format_mix
    from .simulate import plan_from_result, search_attainment, simulate, stream_from_workload

    options = check_options(options or {})
    target = check_target(target)
    if rate * options["duration_s"] > MAX_SIM_REQUESTS:
        raise InputError("simulate.duration_s", f"{rate:g} req/s for {options['duration_s']:g} s is more than "
                                                f"{MAX_SIM_REQUESTS:,} requests; simulate a shorter stream")
    if not result.has_allocation:
        return PlanCheck("none", f"No plan to simulate: {result.message}", options)
    missing = latency_missing({g: gpus[g] for g in result.counts if result.counts[g] > 0})
    if missing:
        raise InputError("simulate", missing[len("No SLO attainment: "):])
    stream = stream_from_workload(workload, rate, options["duration_s"], arrival=options["arrival"], seed=options["seed"])
    counts = {g: int(c) for g, c in result.counts.items() if c > 0}
    mix, cost = format_mix(counts), float(result.cost)
    numbers: dict[str, Any] = {}
    if target is None:
        res = simulate(stream, plan_from_result(result, gpus), gpus, routing=options["routing"], seed=options["seed"],
                       progress=progress)
        search = None
    else:
        search = search_attainment(workload, gpus, rate, target, stream=stream, seed=options["seed"], solver=solver,
                                   constraints=constraints, routing=options["routing"], progress=progress)
        res = search.baseline_result
        found = search.found or {}
        numbers.update(target_attainment=target, found_mix=found.get("mix", ""),
                       found_cost_per_hour=found.get("cost_per_hour", math.nan),
                       found_attainment=found.get("attainment", math.nan))
    numbers.update(sim_status=res.status, sim_slo=slo_text(res.slo), attainment=res.attainment if res.status == "ok" else math.nan,
                   p99_ttft_ms=_p99(res, "p99_ttft_ms"), p99_tpot_ms=_p99(res, "p99_tpot_ms"),
                   sim_seconds=round(res.wall_seconds, 3))
    sentence = plan_sentence(mix, cost, res)
    status = res.status
    if search is not None:
        status = search.status
        if search.status == "met" and search.found["mix"] != mix:
            sentence += (f"; {search.found['mix']} (${search.found['cost_per_hour']:.2f}/h) meets it for "
                         f"{search.found['attainment']:.1%}, the cheapest plan found at {target:.1%}")
        elif search.status == "met":
            sentence += f": it already reaches the {target:.1%} target"
        else:
            sentence += f"; no plan tried reaches {target:.1%} (best: {search.found['mix']}, {search.found['attainment']:.1%})"
    return PlanCheck(status, sentence, options, res, search, numbers)


def read_check(path, options: Any, target: Any = None) -> PlanCheck:
    """A check that a sweep's worker saved (`PlanCheck.to_dict` as JSON) for the point's page, so that the page
    shows the worker's numbers instead of simulating the same plan again; refused in one line when it was
    made with other `simulate` options or another target than the page's (`options`, `target`)."""
    import json
    from pathlib import Path

    try:
        check = PlanCheck.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError("simulation_check", f"cannot read the saved check {Path(path).name} ({type(exc).__name__}: "
                                             f"{exc}); set simulation_check to None to simulate here") from None
    wanted, target = check_options(options or {}), check_target(target)
    saved = check.numbers.get("target_attainment")
    saved = None if saved is None or math.isnan(saved) else saved
    if check.options != wanted or saved != target:
        raise InputError("simulation_check", f"{Path(path).name} was simulated with other options "
                                             f"({check.options}, target {saved}) than this page's ({wanted}, target "
                                             f"{target}); set simulation_check to None to simulate here")
    return check


def check_html(check: PlanCheck, rate: float) -> str:
    """The attainment answer as a page shows it under the cost headline: the sentence, then how it was simulated."""
    from html import escape

    how = f"{stream_text(check.options, rate)}" if check.result is not None else ""
    return ('<div class="mnb-answer tex2jax_ignore mathjax_ignore">'
            f'<p class="mnb-attainment" style="font-size:1.15em;font-weight:bold;margin:0.3em 0">{escape(check.sentence)}.</p>'
            + (f'<p class="mnb-note">SLO attainment: {escape(how)}.</p>' if how else "") + "</div>")


def summary_frame(check: PlanCheck) -> pd.DataFrame | None:
    """Per GPU type and for the whole plan: attainment and tail latencies (None without a simulation)."""
    from .simulate import summary_table

    if check.result is None or check.result.status != "ok":
        return None
    return summary_table(check.result).rename_axis("GPU type")


def not_simulated() -> str:
    """The one line a page shows where the run asked for no simulation: how to ask for one (backticks
    mark code; `report.code_html` renders them as HTML)."""
    return ("Not simulated: add `simulate: {duration_s: 600}` to the parameters; "
            "the GPU profiles need latency models")


def check_trace_plan(plan_dir, trace, gpus: Mapping[str, Any], *, timestamp_column: str = "TIMESTAMP",
                     input_column: str = "ContextTokens", output_column: str = "GeneratedTokens",
                     routing: str = "least", seed: int = 0, progress: bool = False,
                     ray: str | bool | None = None) -> PlanCheck:
    """Replay `trace` at its own arrival times through the per-window plan in `plan_dir` (``melange-nb plan``
    output: counts and routes switch at window boundaries) and write the simulation to
    ``plan_dir/simulation/`` (`simulate.write_result`); the answer sentence names the plan's mean $/h.
    `ray`: simulate each GPU type's pool as a Ray task (`simulate.simulate`)."""
    from pathlib import Path

    from .plan import read_plan
    from .simulate import load_plan, simulate, stream_from_trace, write_result

    missing = latency_missing(serving_gpus(gpus))
    if missing:
        raise InputError("--simulate", missing[len("No SLO attainment: "):])
    table, doc = read_plan(plan_dir)
    stream = stream_from_trace(trace, gpus, timestamp_column=timestamp_column, input_column=input_column,
                               output_column=output_column)
    res = simulate(stream, load_plan(str(plan_dir), gpus), gpus, routing=routing, seed=seed, progress=progress,
                   ray=ray)
    write_result(res, Path(plan_dir) / "simulation")
    cost = float((doc["totals"].get("autoscaled") or {}).get("mean_cost_per_hour", table["cost_per_hour"].mean()))
    options = {"trace": Path(str(trace)).name, "routing": routing, "seed": seed, "requests": len(stream)}
    if res.status != "ok":
        sentence = f"The per-window plan cannot hold its SLO on the trace: {res.message}"
    else:
        sentence = (f"The per-window plan (mean ${cost:.2f}/h) meets {slo_text(res.slo)} for {res.attainment:.1%} "
                    f"of the trace's {len(stream):,} requests replayed at their own times (p99 TTFT "
                    f"{_p99(res, 'p99_ttft_ms'):,.0f} ms, p99 TPOT {_p99(res, 'p99_tpot_ms'):,.1f} ms)")
    numbers = {"sim_status": res.status, "sim_slo": slo_text(res.slo) if res.status == "ok" else "",
               "attainment": res.attainment if res.status == "ok" else math.nan,
               "p99_ttft_ms": _p99(res, "p99_ttft_ms"), "p99_tpot_ms": _p99(res, "p99_tpot_ms"),
               "sim_seconds": round(res.wall_seconds, 3)}
    check = PlanCheck(res.status, sentence, options, res, None, numbers)
    from .files import write_json
    write_json(Path(plan_dir) / "simulation" / "attainment.json", check.to_dict())
    return check


def read_trace_check(plan_dir) -> dict | None:
    """The plan folder's ``simulation/attainment.json`` (written by `check_trace_plan`), or None."""
    import json
    from pathlib import Path

    path = Path(plan_dir) / "simulation" / "attainment.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
