"""The interactive explorer: widgets over the same in-process solve as the CLI (``solver.compare``).

`build_explorer` returns an `Explorer` whose ``widget`` holds the controls (workload, or a blend of
two; GPU profile set and SLO; allowed GPU types; request rate; solver; slice factor; utilisation
cap; quotas) and three outputs that follow every change without re-running a cell:

1. the headline (mix, $/h, savings against each single GPU type: ``report.comparison_headline``), and a
   table with every policy: the chosen mix solver, the other one as its comparison (exact by default,
   the Mélange ILP beside it), each single GPU type;
2. the routing heatmaps of the mix (HTML tables, `routing_html`);
3. a cost-vs-rate curve around the current rate with the current point marked (inline SVG,
   `cost_curve_svg`; policy colours and names from report.py).

Under the headline, the answer's simulated SLO attainment (`attainment.check_plan`) when every GPU
type in the mix carries a latency model: a short stream (about `QUICK_SIM_REQUESTS` requests) after
each change, and a button for a longer one (`LONG_SIM_S`, `Explorer.simulate_long`); without a
latency model, one line saying how to add one.

Changes are debounced, latest value wins: a change re-arms a short timer and cancels whatever
part of an earlier update has not run yet, so dragging the rate slider never queues more solves
than the page can show. Outside a running event loop (tests, benchmarks) `Explorer.update` runs
synchronously and returns the `View` it displayed.
"""
from __future__ import annotations

import asyncio
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import GPUS_DIR, PROJECT_ROOT, WORKLOADS_DIR, outputs_dir
from .errors import InputError, MelangeError, MissingExtra
from .profiles import UNKNOWN, GpuProfile, format_slo, load_gpus, select_gpus
from .solver import Comparison, Constraints, compare, parse_counts, routing_matrix, solve
from .workload import blend, bucket_span, read_workload, rebucket_hint, workload_source

DEBOUNCE_SECONDS = 0.15
CURVE_POINTS = 13          # rates on the cost-vs-rate curve (plus the current one)
NO_BLEND = "(none)"
ANY_SLO = "any SLO"
QUICK_SIM_REQUESTS = 300   # the short simulation after each change: about this many requests (a fraction of a second)
QUICK_SIM_MAX_S = 120.0    # ... over at most this many simulated seconds
LONG_SIM_S = 600.0         # the button's simulation: 10 simulated minutes


# ---------------------------------------------------------------- what the explorer offers

def find_workloads(outputs: str | Path | None = None) -> dict[str, str]:
    """Label -> path of every workload the explorer offers: the bundled ``params/workloads/*.csv``,
    then each CSV under `outputs` (default ``outputs/``) with a workload's ``.json`` sidecar (one
    that names its ``source``), i.e. built by ``melange-nb workload`` or a sweep (``outputs/cache``
    is skipped)."""
    found = {f"{p.stem} (bundled)": str(p) for p in sorted(WORKLOADS_DIR.glob("*.csv"))}
    root = Path(outputs) if outputs is not None else outputs_dir()
    if root.is_dir():
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "cache" and not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if name.endswith(".csv") and not name.startswith(".") and _is_workload_sidecar(path.with_suffix(".json")):
                    found[str(path.relative_to(root).with_suffix(""))] = str(path)
    return found


def _is_workload_sidecar(path: Path) -> bool:
    """A workload's ``.json`` sidecar says where it came from (``source``); a sweep point's
    ``routing.json`` beside ``routing.csv`` does not."""
    import json

    try:
        return path.is_file() and "source" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def slo_label(slo: Any) -> str:
    """A profile set's SLO for people (``profiles.format_slo``: ``mean TPOT <= 40 ms``); ``SLO not stated``
    for a missing or unknown one."""
    text = format_slo(slo)
    return "SLO not stated" if text == UNKNOWN else text


def find_profile_sets(folder: str | Path = GPUS_DIR) -> dict[str, dict]:
    """Name -> {path, model, slo (label), gpus} for each GPU profile YAML in `folder`.

    Files that do not load are left out of the menu; their one-line error is kept under ``error``.
    """
    sets = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            gpus = load_gpus(path)
            meta = next(iter(gpus.values())).meta
            sets[path.stem] = {"path": str(path), "model": meta.get("model"), "slo": slo_label(meta.get("slo")),
                               "gpus": list(gpus)}
        except MelangeError as exc:
            sets[path.stem] = {"path": str(path), "error": str(exc)}
    return sets


def curve_rates(rate: float, points: int = CURVE_POINTS) -> list[float]:
    """Rates for the cost-vs-rate curve: from half to 1.5x `rate`, on a round step (1, 2 or 5 x 10^k)
    so that small moves of the rate reuse the points already solved; `rate` itself is included."""
    raw = rate / (points - 1)
    k = 10 ** math.floor(math.log10(raw))
    step = next(m * k for m in (1, 2, 5, 10) if m * k >= raw)
    lo = max(step, math.floor(rate * 0.5 / step) * step)
    grid = np.round(np.arange(lo, rate * 1.5 + step / 2, step), 9)
    return sorted({float(r) for r in grid} | {float(rate)})


# ---------------------------------------------------------------- one solve, no widgets

@dataclass
class View:
    """What one update displayed: the values it used, the comparison, and the plotted data."""

    values: dict
    comparison: Comparison | None = None
    headline: str = ""
    provenance: str = ""
    error: str | None = None
    routing: dict[str, pd.DataFrame] = field(default_factory=dict)  # GPU -> share routed (input x output)
    curve: pd.DataFrame | None = None                               # rate, policy, cost_per_hour, ...
    marker: tuple[float, float] | None = None                      # (rate, $/h) of the current point
    seconds: dict[str, float] = field(default_factory=dict)         # stage -> seconds since the change
    attainment: str = ""                                            # the simulated SLO attainment line (or why none)
    check: Any = None                                               # attainment.PlanCheck of that simulation


class Model:
    """Loads (and caches) workloads and profile sets, and solves the explorer's current values."""

    def __init__(self, workloads: Mapping[str, str], profile_sets: Mapping[str, dict]):
        self.workloads, self.profile_sets = dict(workloads), dict(profile_sets)
        self._loaded: dict[str, Any] = {}
        self._curve: dict[tuple, list[dict]] = {}

    def _cached(self, key: str, load):
        if key not in self._loaded:
            self._loaded[key] = load()
        return self._loaded[key]

    def workload(self, values: Mapping) -> tuple[pd.DataFrame, str]:
        """(workload, provenance) for the chosen workload, or its blend with a second one."""
        first = self.workloads[values["workload"]]
        w = self._cached(first, lambda: read_workload(first))
        text = f"{Path(first).name}: {workload_source(first)}"
        other = values.get("blend_with") or NO_BLEND
        if other == NO_BLEND or values.get("blend_weight", 1.0) >= 1.0:
            return w, text
        second = self.workloads[other]
        w2 = self._cached(second, lambda: read_workload(second))
        share = float(values["blend_weight"])
        mixed = blend({"a": w, "b": w2}, {"a": share, "b": 1.0 - share})
        return mixed, (f"blend {share:.0%} {text} + {1 - share:.0%} {Path(second).name}: "
                       f"{workload_source(second)}")

    def check_buckets(self, workload: pd.DataFrame, gpus: Mapping[str, GpuProfile], values: Mapping) -> None:
        """A workload and a profile set with different buckets: say so in words, with the command that fits."""
        like = next(iter(gpus.values())).tputs
        if list(workload.index) == list(like.index) and list(workload.columns) == list(like.columns):
            return
        raise InputError("workload", f"its buckets (input {bucket_span(workload.index)}, output "
                                     f"{bucket_span(workload.columns)}) differ from {values['profile_set']}'s (input "
                                     f"{bucket_span(like.index)}, output {bucket_span(like.columns)}); choose another "
                                     f"profile set, or build the workload on its edges: {rebucket_hint(like)}")

    def gpus(self, values: Mapping) -> dict[str, GpuProfile]:
        path = self.profile_sets[values["profile_set"]]["path"]
        gpus = self._cached(path, lambda: load_gpus(path))
        if not values.get("gpu_names"):
            raise InputError("GPU types", "none is allowed; tick at least one GPU type")
        return select_gpus(gpus, list(values["gpu_names"]))

    @staticmethod
    def constraints(values: Mapping) -> Constraints:
        return Constraints(max_instances=parse_counts(values.get("max_instances", ""), "quotas (max instances)"),
                           utilization_cap=float(values.get("utilization_cap", 1.0)))

    def compare(self, values: Mapping, rate: float | None = None, *, comparison: bool = True) -> Comparison:
        """The chosen mix solver and each single GPU type; with `comparison`, the other mix solver too
        (second in the results: the Mélange ILP beside the exact mix, or the reverse)."""
        workload, _ = self.workload(values)
        solvers = (values["solver"], other_solver(values["solver"])) if comparison else (values["solver"],)
        return compare(workload, self.gpus(values), float(values["rate"] if rate is None else rate),
                       solvers=solvers, slice_factor=int(values["slice_factor"]), constraints=self.constraints(values))

    def add_comparison(self, values: Mapping, current: Comparison) -> Comparison:
        """`current` (the chosen solver only) with the other mix solver added second, solved now."""
        workload, _ = self.workload(values)
        other = other_solver(values["solver"])
        result = solve(workload, self.gpus(values), current.rate, solver=other,
                       slice_factor=int(values["slice_factor"]), constraints=self.constraints(values))
        results = dict(current.results)
        ordered = {current.reference: results.pop(current.reference), other: result, **results}
        return Comparison(current.rate, ordered, current.reference)

    def curve(self, values: Mapping, current: Comparison | None = None) -> pd.DataFrame:
        """Cost of every policy at `curve_rates` around the current rate (cached per rate)."""
        key = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                           for k, v in values.items() if k != "rate"))
        rows = []
        for r in curve_rates(float(values["rate"])):
            cache_key = key + (("rate", r),)
            if cache_key not in self._curve:
                c = current if current is not None and r == current.rate else self.compare(values, r)
                self._curve[cache_key] = [{"rate": r, "policy": name, "reference": c.reference,
                                           "cost_per_hour": res.cost if res.has_allocation else np.nan,
                                           "status": res.status} for name, res in c.results.items()]
            rows += self._curve[cache_key]
        curve = pd.DataFrame(rows)
        curve["workload"] = _short(values["workload"]) + (f" + {_short(values['blend_with'])}"
                                                          if values.get("blend_with") not in (None, NO_BLEND) else "")
        curve["gpu_set"] = values["profile_set"]
        curve["slice_factor"] = int(values["slice_factor"])
        return curve


def other_solver(solver: str) -> str:
    """The mix solver shown as the comparison: the Mélange ILP beside the exact mix, and the reverse."""
    return "melange" if solver == "exact" else "exact"


def _short(label: str) -> str:
    return label.replace(" (bundled)", "")


# ---------------------------------------------------------------- the widgets

class Explorer:
    """Widgets plus the update that re-solves and redraws; see the module docstring."""

    def __init__(self, model: Model, values: Mapping[str, Any], *, rate_max: float = 64.0,
                 debounce: float = DEBOUNCE_SECONDS):
        try:
            import ipywidgets as w
        except ImportError as exc:
            raise MissingExtra("the explorer", "ipywidgets", "explore") from exc

        self.model, self.debounce = model, debounce
        self.view: View | None = None
        self.solves = 0                     # full updates run (tests and the benchmark read it)
        self._task: asyncio.Task | None = None
        self._muted = False
        sets = model.profile_sets
        slos = sorted({s["slo"] for s in sets.values() if "error" not in s},
                      key=lambda t: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", t)])
        style = {"description_width": "9em"}
        layout = w.Layout(width="30em")
        c = self.controls = {
            "workload": w.Dropdown(options=list(model.workloads), description="Workload", style=style, layout=layout),
            "blend_with": w.Dropdown(options=[NO_BLEND, *model.workloads], description="Blend with", style=style,
                                     layout=layout),
            "blend_weight": w.FloatSlider(min=0, max=1, step=0.05, value=1.0, description="Share of the first",
                                          readout_format=".0%", style=style, layout=layout),
            "slo": w.Dropdown(options=[ANY_SLO, *slos], description="SLO", style=style, layout=layout),
            "profile_set": w.Dropdown(options=self._sets_for(ANY_SLO), description="GPU profiles", style=style,
                                      layout=layout),
            "gpu_names": w.SelectMultiple(options=[], description="GPU types", rows=4, style=style,
                                          layout=layout),
            "rate": w.FloatSlider(min=0.5, max=float(rate_max), step=0.5, value=4.0, continuous_update=True,
                                  description="Rate (req/s)", style=style, layout=layout),
            "solver": w.ToggleButtons(options=[("exact", "exact"), ("Mélange ILP", "melange")], description="Solver",
                                      style={**style, "button_width": "8em"}),
            "slice_factor": w.IntSlider(min=1, max=8, value=1, description="ILP slice factor", style=style, layout=layout),
            "utilization_cap": w.FloatSlider(min=0.3, max=1.0, step=0.05, value=1.0, description="Utilisation cap",
                                             readout_format=".0%", style=style, layout=layout),
            "max_instances": w.Text(value="", placeholder="e.g. A100=1,A10G=8", description="Quotas (max)",
                                    continuous_update=False, style=style, layout=layout),
        }
        self.headline = w.HTML()
        self.provenance = w.HTML()
        self.routing_out = w.HTML()
        self.curve_out = w.HTML()
        self.timing = w.HTML()
        self.attainment = w.HTML()
        self.simulate_button = w.Button(description=f"Simulate {LONG_SIM_S / 60:g} minutes", disabled=True,
                                        tooltip="a longer simulation of the current answer (a few seconds)")
        self.simulate_button.on_click(lambda _: self.simulate_long())
        self._set_values(values)
        c["slo"].observe(self._on_slo, "value")
        c["profile_set"].observe(self._on_profile_set, "value")
        for name, control in c.items():
            if name != "slo":
                control.observe(self._on_change, "value")
        left = w.VBox(list(c.values()), layout=w.Layout(min_width="32em"))
        right = w.VBox([self.headline, w.HBox([self.attainment, self.simulate_button]), self.provenance,
                        self.curve_out, self.routing_out, self.timing],
                       layout=w.Layout(flex="1"))
        self.widget = w.HBox([left, right])

    # -- controls

    def _sets_for(self, slo: str) -> list[tuple[str, str]]:
        sets = self.model.profile_sets
        # the file name only: model and SLO would be cut off in the menu (the SLO menu filters by SLO, and the
        # line under the headline names the model and the SLO of the set in use)
        return [(name, name) for name, s in sets.items() if "error" not in s and (slo == ANY_SLO or s["slo"] == slo)]

    def values(self) -> dict[str, Any]:
        """The current widget values (what `update` solves)."""
        v = {k: c.value for k, c in self.controls.items() if k != "slo"}
        v["gpu_names"] = list(v["gpu_names"])
        return v

    def _set_values(self, values: Mapping[str, Any]) -> None:
        """Set controls from values (unknown keys are an error naming them), observers muted."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise InputError(f"explorer.{unknown[0]}", f"is not a control; known: {sorted(self.controls)}")
        c, self._muted = self.controls, True
        try:
            for key in ("workload", "blend_with"):
                if key in values and values[key] not in c[key].options:
                    raise InputError(key, f"{values[key]!r} is not offered; choose from {list(c[key].options)}")
            if "slo" in values:
                c["slo"].value = values["slo"]
                c["profile_set"].options = self._sets_for(values["slo"])
            if "profile_set" in values:
                if values["profile_set"] not in [v for _, v in c["profile_set"].options]:
                    raise InputError("profile_set", f"{values['profile_set']!r} is not offered for {c['slo'].value}")
                c["profile_set"].value = values["profile_set"]
            self._refresh_gpu_names(values.get("gpu_names"))
            for key, value in values.items():
                if key not in ("slo", "profile_set", "gpu_names"):
                    c[key].value = value
        finally:
            self._muted = False

    def _refresh_gpu_names(self, names: Sequence[str] | None = None) -> None:
        offered = self.model.profile_sets[self.controls["profile_set"].value]["gpus"]
        control = self.controls["gpu_names"]
        if list(control.options) != offered:
            control.options = offered
        chosen = offered if names is None and not control.value else (names if names is not None else control.value)
        bad = [n for n in chosen if n not in offered]
        if bad:
            raise InputError("gpu_names", f"unknown GPU type(s) {bad} in {self.controls['profile_set'].value}; "
                                          f"choose from {offered}")
        control.value = tuple(n for n in offered if n in chosen) if names is None else tuple(chosen)

    def _on_slo(self, change) -> None:
        if self._muted:
            return
        options = self._sets_for(change["new"])
        if options:
            self.controls["profile_set"].options = options   # fires _on_profile_set when the value changes

    def _on_profile_set(self, change) -> None:
        if self._muted or change["new"] is None:
            return
        self._muted = True
        try:
            self.controls["gpu_names"].value = ()
            self._refresh_gpu_names()
        finally:
            self._muted = False

    # -- updates

    def _on_change(self, change) -> None:
        if self._muted:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.update()
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()   # latest value wins: what has not run of the previous update never will
        self._task = loop.create_task(self._debounced(time.perf_counter()))

    async def _debounced(self, changed: float) -> None:
        await asyncio.sleep(self.debounce)
        for _ in self._stages(changed):
            await asyncio.sleep(0)   # let newer changes in; a newer change cancels the rest

    def update(self, **changes) -> View:
        """Set the given controls (e.g. ``rate=8``), re-solve and redraw now; return the `View`."""
        start = time.perf_counter()
        if changes:
            self._set_values(changes)
        for _ in self._stages(start):
            pass
        return self.view

    def _stages(self, start: float):
        """Solve + headline, then the routing heatmaps, then the other mix solver (the comparison row of the
        headline table), then the curve; yields between stages."""
        from html import escape

        from .profiles.consistency import set_caveat
        from .report import comparison_headline, headline_html, headline_table, policy_label

        self.solves += 1
        values = self.values()
        view = self.view = View(values=values)
        try:
            workload, view.provenance = self.model.workload(values)
            gpus = self.model.gpus(values)
            self.model.check_buckets(workload, gpus, values)
            meta = next(iter(gpus.values())).meta
            view.provenance += (f" · GPU profiles {Path(meta.get('file', '')).name}: {meta.get('model')}, "
                                f"{slo_label(meta.get('slo'))}; {meta.get('source')}")
            view.comparison = self.model.compare(values, comparison=False)   # the answer first; the other solver next
        except MelangeError as exc:
            view.error = str(exc)
            view.headline = f"Cannot solve: {exc}"
            self.headline.value = headline_html(view.headline)
            self.provenance.value = ""
            self.routing_out.value = self.curve_out.value = self.attainment.value = ""
            self.simulate_button.disabled = True
            view.seconds["headline"] = time.perf_counter() - start
            self.timing.value = ""          # the last answer's timings would read as this change's
            return
        view.headline = comparison_headline(view.comparison)
        data_caveat = set_caveat(gpus)
        self.headline.value = headline_html(view.headline, headline_table(view.comparison), data_caveat=data_caveat)
        self.provenance.value = f'<p style="color:#555;font-size:0.85em">{escape(view.provenance)}</p>'
        self.attainment.value = ""          # the last answer's attainment would read as this one's
        self.simulate_button.disabled = True
        view.seconds["headline"] = time.perf_counter() - start
        yield
        self.attainment.value = self._draw_attainment(view, workload, gpus)
        view.seconds["attainment"] = time.perf_counter() - start
        yield
        self.routing_out.value = self._draw_routing(view, workload)
        view.seconds["routing"] = time.perf_counter() - start
        yield
        view.comparison = self.model.add_comparison(values, view.comparison)
        self.headline.value = headline_html(view.headline, headline_table(view.comparison), data_caveat=data_caveat)
        view.seconds["comparison"] = time.perf_counter() - start
        yield
        self.curve_out.value = self._draw_curve(view)
        view.seconds["curve"] = time.perf_counter() - start
        self.timing.value = (f'<p style="color:#888;font-size:0.8em">headline {view.seconds["headline"] * 1000:.0f} ms, '
                             f'SLO attainment {view.seconds["attainment"] * 1000:.0f} ms, '
                             f'heatmaps {view.seconds["routing"] * 1000:.0f} ms, {policy_label(other_solver(values["solver"]))} '
                             f'{view.seconds["comparison"] * 1000:.0f} ms, curve {view.seconds["curve"] * 1000:.0f} ms '
                             "after the change (solved in this kernel)</p>")

    def _draw_attainment(self, view: View, workload: pd.DataFrame, gpus: Mapping[str, GpuProfile],
                         duration_s: float | None = None) -> str:
        """The current answer's simulated SLO attainment: a short stream (`QUICK_SIM_REQUESTS`) after each
        change, `duration_s` from the button; one grey line when the profiles carry no latency model."""
        from html import escape

        from .attainment import check_plan, latency_missing, stream_text

        mix = view.comparison.mix
        if not mix.has_allocation:
            return ""
        missing = latency_missing({g: gpus[g] for g, n in mix.counts.items() if n > 0})
        self.simulate_button.layout.display = "none" if missing else ""
        if missing:
            view.attainment = missing
            return f'<p style="color:#555;font-size:0.85em">{escape(missing)}</p>'
        rate = view.comparison.rate
        quick = duration_s is None
        duration = min(QUICK_SIM_MAX_S, max(1.0, QUICK_SIM_REQUESTS / rate)) if quick else duration_s
        try:
            view.check = check_plan(workload, gpus, rate, mix, {"duration_s": duration})
        except MelangeError as exc:
            view.attainment = f"No SLO attainment: {exc}"
            return f'<p style="color:#555;font-size:0.85em">{escape(view.attainment)}</p>'
        view.attainment = view.check.sentence
        self.simulate_button.disabled = not quick
        how = stream_text(view.check.options, rate) + ("; a short stream: the button simulates longer" if quick else "")
        return (f'<p style="font-weight:bold;margin:0.2em 0">{escape(view.check.sentence)}.</p>'
                f'<p style="color:#555;font-size:0.85em">{escape(how)}</p>')

    def simulate_long(self, duration_s: float = LONG_SIM_S) -> View:
        """The button: simulate the current answer for `duration_s` simulated seconds (a few seconds' work)."""
        view = self.view
        if view is None or view.comparison is None:
            return view
        self.simulate_button.disabled = True
        workload, _ = self.model.workload(view.values)
        self.attainment.value = self._draw_attainment(view, workload, self.model.gpus(view.values), duration_s)
        return view

    def _draw_routing(self, view: View, workload: pd.DataFrame) -> str:
        mix = view.comparison.mix
        if not mix.has_allocation:
            return ""
        view.routing = {g: routing_matrix(mix, g, workload) for g, n in mix.counts.items() if n > 0}
        return routing_html(view.routing, workload, mix.counts, mix.utilization)

    def _draw_curve(self, view: View) -> str:
        view.curve = self.model.curve(view.values, view.comparison)
        mix = view.comparison.mix
        view.marker = (view.comparison.rate, mix.cost) if mix.has_allocation else None
        return cost_curve_svg(view.curve, view.comparison.rate, view.marker)


# ---------------------------------------------------------------- fast drawings (HTML and SVG, no matplotlib)
# A seaborn heatmap or a matplotlib PNG costs 0.3-4 s per redraw on a loaded 2-core machine; these
# cost milliseconds, so the page keeps up with the slider.

def routing_html(routing: Mapping[str, pd.DataFrame], workload: pd.DataFrame, counts: Mapping[str, int],
                 utilization: Mapping[str, float]) -> str:
    """One small heatmap table per GPU type in the mix: % of each bucket's requests routed to it.

    Input tokens on x, output tokens on y with the largest on top (the project's heatmap layout);
    buckets without demand are left blank.
    """
    from html import escape

    from .report import gpu_colour

    tables = []
    for gpu, share in routing.items():
        rgb = tuple(int(gpu_colour(gpu)[i:i + 2], 16) for i in (1, 3, 5))
        shown, demand = share.T.iloc[::-1], workload.T.iloc[::-1]
        head = "".join(f'<th style="font-weight:normal;padding:2px 4px">{escape(c)}</th>' for c in shown.columns)
        rows = []
        for out_label, row in shown.iterrows():
            cells = []
            for in_label, v in row.items():
                if demand.loc[out_label, in_label] <= 0:
                    cells.append('<td style="background:#f4f4f4"></td>')
                else:
                    ink = "#fff" if v > 0.6 else "#000"
                    cells.append(f'<td style="background:rgba{rgb + (round(float(v), 3),)};color:{ink};'
                                 f'text-align:center;padding:2px 6px">{v:.0%}</td>')
            rows.append(f'<tr><th style="font-weight:normal;text-align:right;padding:2px 4px">{escape(out_label)}</th>'
                        + "".join(cells) + "</tr>")
        title = (f"{escape(gpu)}: {counts[gpu]} GPU{'s' if counts[gpu] != 1 else ''}, "
                 f"{utilization.get(gpu, 0):.0%} utilised — % of each bucket routed here")
        tables.append(f'<table class="mnb-routing" data-gpu="{escape(gpu)}" style="border-collapse:collapse;'
                      f'font-size:0.8em;margin:0 1.5em 1em 0;display:inline-table">'
                      f'<caption style="text-align:left;font-weight:bold">{title}</caption>'
                      f'<tr><th style="font-weight:normal;font-size:0.9em">output \\ input</th>{head}</tr>'
                      + "".join(rows) + "</table>")
    return ('<div><p style="margin:0.5em 0 0.2em"><b>Routing of the mix</b> (input tokens across, output tokens '
            'down the side, longest outputs on top)</p>' + "".join(tables) + "</div>")


def cost_curve_svg(curve: pd.DataFrame, rate: float, marker: tuple[float, float] | None, *,
                   width: int = 640, height: int = 300) -> str:
    """$/h against request rate for every policy (markers at the rates solved, lines only join
    them), with a dashed line at the current rate and a star on the current mix's cost."""
    from html import escape

    from .report import policy_label, policy_style

    left, right, top, bottom = 56, 150, 26, 40
    rates = sorted(curve["rate"].unique())
    costs = curve["cost_per_hour"].to_numpy(dtype=float)
    y_max = float(np.nanmax(costs)) * 1.08 if np.isfinite(costs).any() else 1.0
    x0, x1 = rates[0], rates[-1] if rates[-1] > rates[0] else rates[0] + 1

    def x(r):
        return left + (r - x0) / (x1 - x0) * (width - left - right)

    def y(c):
        return top + (1 - c / y_max) * (height - top - bottom)

    parts = [f'<svg class="mnb-curve" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<title>Cost in dollars per hour against request rate, around {rate:g} requests/s</title>']
    for tick in _nice_ticks(y_max):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">${tick:g}</text>')
    every = max(1, len(rates) // 8)
    for i, r in enumerate(rates):
        if i % every == 0 or r == rate:
            parts.append(f'<text x="{x(r):.1f}" y="{height - bottom + 15}" text-anchor="middle">{r:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">Request rate '
                 f'(requests/s)</text><text x="12" y="{(top + height - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(top + height - bottom) / 2})">Cost ($/hour)</text>')
    parts.append(f'<line class="current-rate" x1="{x(rate):.1f}" x2="{x(rate):.1f}" y1="{top}" y2="{height - bottom}" '
                 'stroke="#888" stroke-dasharray="4 3"/>')
    ref = curve["reference"].iloc[0]
    policies = [ref] + sorted(p for p in curve["policy"].unique() if p != ref)
    for k, policy in enumerate(policies):
        d = curve[curve["policy"] == policy].sort_values("rate")
        d = d[np.isfinite(d["cost_per_hour"].to_numpy(dtype=float))]
        colour = policy_style(policy)["color"]
        wide = 3 if policy == ref else 1.5
        pts = " ".join(f"{x(r):.1f},{y(c):.1f}" for r, c in zip(d["rate"], d["cost_per_hour"]))
        parts.append(f'<polyline class="policy" data-policy="{escape(policy)}" points="{pts}" fill="none" '
                     f'stroke="{colour}" stroke-width="{wide}"/>')
        parts += [f'<circle cx="{x(r):.1f}" cy="{y(c):.1f}" r="2.5" fill="{colour}"/>'
                  for r, c in zip(d["rate"], d["cost_per_hour"])]
        ly = top + 14 * k + 4
        parts.append(f'<line x1="{width - right + 10}" x2="{width - right + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="{wide}"/><text x="{width - right + 32}" y="{ly + 4}">{escape(policy_label(policy))}'
                     "</text>")
    if marker is not None:
        mx, my = x(marker[0]), y(marker[1])
        star = " ".join(f"{mx + rr * math.sin(a):.1f},{my - rr * math.cos(a):.1f}"
                        for i, a in enumerate(np.arange(10) * math.pi / 5) for rr in [9 if i % 2 == 0 else 4])
        parts.append(f'<polygon class="current" data-rate="{marker[0]:g}" data-cost="{marker[1]:.2f}" points="{star}" '
                     f'fill="gold" stroke="#000"><title>current: {marker[0]:g} req/s, ${marker[1]:.2f}/h</title></polygon>')
    parts.append("</svg>")
    caption = ('<p style="margin:0.8em 0 0.2em"><b>Cost against request rate</b> around the current rate (dots: the '
               'rates solved, lines only join them; the star: the current answer)</p>')
    return caption + "".join(parts)


def _nice_ticks(top: float) -> list[float]:
    raw = top / 5
    k = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= raw)
    return [float(t) for t in np.arange(0, top, step)]


def build_explorer(*, workload: str = "params/workloads/arena-seed.csv", gpus: str = "params/gpus/llama2-7b-seed.yaml",
                   rate: float = 4.0, solver: str = "exact", slice_factor: int = 1, utilization_cap: float = 1.0,
                   max_instances: str | Mapping[str, int] = "", gpu_names: Sequence[str] = (),
                   blend_with: str | None = None, blend_weight: float = 1.0, rate_max: float = 64.0,
                   outputs: str | Path | None = None, gpus_dir: str | Path = GPUS_DIR,
                   debounce: float = DEBOUNCE_SECONDS, draw: bool = True) -> Explorer:
    """The explorer with its first answer drawn. Paths are absolute or relative to the project root.

    `workload` / `blend_with`: a CSV path or a label from `find_workloads` (a CSV outside the
    offered ones is added to the menu); `gpus`: a profile YAML (its folder's other YAMLs are offered
    too); `max_instances`: ``"A100=1,A10G=8"`` or a mapping; `blend_weight`: share of `workload`.
    """
    workloads = find_workloads(outputs)
    chosen = [_workload_label(workloads, w) for w in (workload, blend_with) if w not in (None, "", NO_BLEND)]
    gpus_path = _project_path(gpus)
    sets = find_profile_sets(gpus_dir)
    if gpus_path.parent.resolve() != Path(gpus_dir).resolve():
        sets.update(find_profile_sets(gpus_path.parent))
    if gpus_path.stem not in sets:
        raise InputError("gpus", f"{gpus} not found; pass a GPU profile YAML such as params/gpus/llama2-7b-seed.yaml")
    if "error" in sets[gpus_path.stem]:
        raise InputError("gpus", sets[gpus_path.stem]["error"])
    if isinstance(max_instances, Mapping):
        max_instances = ",".join(f"{k}={v}" for k, v in max_instances.items())
    values = {"workload": chosen[0], "blend_with": chosen[1] if len(chosen) > 1 else NO_BLEND,
              "blend_weight": blend_weight, "profile_set": gpus_path.stem, "gpu_names": list(gpu_names) or None,
              "rate": rate, "solver": solver, "slice_factor": slice_factor, "utilization_cap": utilization_cap,
              "max_instances": max_instances}
    if solver not in ("exact", "melange"):
        raise InputError("solver", f"must be exact or melange, got {solver!r}")
    explorer = Explorer(Model(workloads, sets), {k: v for k, v in values.items() if v is not None},
                        rate_max=max(rate_max, 2 * rate), debounce=debounce)
    if draw:
        explorer.update()
    return explorer


def _project_path(value: str | Path) -> Path:
    p = Path(value)
    return p if p.is_absolute() or p.exists() else PROJECT_ROOT / p


def _workload_label(workloads: dict[str, str], value: str) -> str:
    """A workload argument as a menu label; a CSV path not yet offered is added to the menu."""
    if value in workloads:
        return value
    path = _project_path(value)
    if not path.is_file():
        raise InputError("workload", f"{value} not found; pass a workload CSV or one of {list(workloads)}")
    for label, known in workloads.items():
        if Path(known).resolve() == path.resolve():
            return label
    workloads[path.stem] = str(path)
    return path.stem


__all__ = ["Explorer", "Model", "View", "build_explorer", "cost_curve_svg", "curve_rates", "find_profile_sets",
           "find_workloads", "routing_html", "slo_label"]
