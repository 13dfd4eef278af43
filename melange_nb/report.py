"""Figures, tables and the sweep's index page (`pages` renders executed notebooks as shared HTML). Every
heatmap puts input tokens on x and output tokens on y.

matplotlib and seaborn are imported inside the plot functions, so the text helpers (headlines)
stay quick to import for the command line.

Plot functions take labelled DataFrames (input bucket x output bucket) and return the matplotlib
Figure; they never reorient data silently: the transpose for display happens here, once.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .files import write_text
from .plan_attainment import target_text
from .pages import small_png
from .profiles import GpuProfile, best_value
from .solver import SolveResult, routing_matrix

X_LABEL = "Input length (tokens)"
Y_LABEL = "Output length (tokens)"
DROPPED_WARN_SHARE = 0.01   # a workload that loses more than this share of requests gets a visible warning


# ---------------------------------------------------------------- the answer first: text helpers

def plural(n: int, word: str) -> str:
    """``1 GPU``, ``2 GPUs``, ``0 GPUs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_dollars(x: float | None) -> str:
    """$/h rounded to cents for people: ``$4.68/h``; ``no plan`` for a missing cost."""
    return "no plan" if x is None or not np.isfinite(x) else f"${x:,.2f}/h"


def format_mix(counts: Mapping[str, int]) -> str:
    """GPU counts as people write them: ``1×A10G + 1×A100`` (types with 0 left out)."""
    parts = [f"{int(c)}×{g}" for g, c in counts.items() if c and c > 0]
    return " + ".join(parts) or "no GPUs"


def policy_label(policy: str) -> str:
    """``single:A100`` -> ``A100-only``; ``exact`` -> ``exact mix``; ``melange`` -> ``Mélange ILP``."""
    if policy.startswith("single:"):
        return f"{policy.split(':', 1)[1]}-only"
    return {"exact": "exact mix", "melange": "Mélange ILP"}.get(policy, policy)


def _versus(cost: float, other: float | None, name: str) -> str:
    if other is None or not np.isfinite(other):
        return f"{name} has no plan"
    if other <= 0:
        return f"{name} ({format_dollars(other)})"
    pct = (other - cost) / other * 100
    if round(pct, 1) == 0:
        return f"the same as {name} ({format_dollars(other)})"
    return f"{abs(pct):.1f}% {'below' if pct > 0 else 'above'} {name} ({format_dollars(other)})"


def headline_sentence(rate: float, counts: Mapping[str, int], cost: float | None,
                      baselines: Mapping[str, float | None], *, status: str = "optimal",
                      message: str = "") -> str:
    """One sentence with the answer: ``At 4 req/s: 1×A10G + 1×A100 = $4.68/h, 7.3% below A10G-only
    ($5.05/h) and 36.2% below A100-only ($7.34/h)``.

    `baselines`: single-GPU type name -> its $/h (None when it has no plan). A non-optimal status
    is said, never hidden.
    """
    lead = f"At {rate:g} req/s"
    if cost is None or not np.isfinite(cost) or status not in ("optimal", "time_limit"):
        return f"{lead}: no plan ({status}{': ' + message if message else ''})"
    comparisons = [_versus(cost, c, f"{g}-only") for g, c in baselines.items()]
    tail = ", " + " and ".join(filter(None, [", ".join(comparisons[:-1]), comparisons[-1]])) if comparisons else ""
    note = " (time limit reached: best plan found, not proven optimal)" if status == "time_limit" else ""
    return f"{lead}: {format_mix(counts)} = {format_dollars(cost)}{tail}{note}"


def comparison_headline(comparison) -> str:
    """`headline_sentence` for a `solver.Comparison` (the reference mix against every single GPU type)."""
    mix = comparison.mix
    singles = {name.split(":", 1)[1]: (r.cost if r.has_allocation else None)
               for name, r in comparison.results.items() if name.startswith("single:")}
    return headline_sentence(comparison.rate, mix.counts, mix.cost if mix.has_allocation else None, singles,
                             status=mix.status, message=mix.message)


def allocation_headline(alloc: Mapping) -> str:
    """`headline_sentence` from an ``allocation.json`` (`Comparison.to_dict`), e.g. for ``melange-nb run``."""
    ok = alloc["status"] in ("optimal", "time_limit")
    singles = {name.split(":", 1)[1]: (p["cost"] if p["status"] in ("optimal", "time_limit") else None)
               for name, p in alloc["policies"].items() if name.startswith("single:")}
    return headline_sentence(alloc["rate"], alloc["allocation"], alloc["cost"] if ok else None, singles,
                             status=alloc["status"], message=alloc.get("message", ""))


def headline_table(comparison) -> pd.DataFrame:
    """Small people-ready table, one row per policy: mix, $/h, what the reference mix saves against it.

    Strings, already rounded ($/h to cents, % to one decimal): display it as it is.
    """
    rows = []
    ref = comparison.mix
    for name, r in comparison.results.items():
        ok = r.has_allocation
        saving = ((r.cost - ref.cost) / r.cost * 100) if ok and ref.has_allocation and r.cost > 0 else None
        rows.append({"policy": policy_label(name) + (" (reference)" if name == comparison.reference else ""),
                     "GPUs": format_mix(r.counts) if ok else f"no plan ({r.status})",
                     "$/h": format_dollars(r.cost) if ok else "—",
                     "the mix saves": "—" if name == comparison.reference or saving is None else f"{saving:.1f}%"})
    return pd.DataFrame(rows).set_index("policy")


def workload_caveat(meta: Mapping | None) -> str:
    """What the workload left out or moved, from its ``.json`` sidecar: ``14.3% of 19,366 requests
    dropped (input or output >= 2000 tokens)``; clipped requests likewise; "" when nothing was."""
    if not meta or not meta.get("requests"):
        return ""
    total = int(meta["requests"])
    edge = meta.get("input_edges", [None])[-1], meta.get("output_edges", [None])[-1]
    beyond = f"input >= {edge[0]} or output >= {edge[1]} tokens" if edge[0] is not None else "beyond the last edge"
    notes = []
    dropped = int(meta.get("dropped") or 0)
    if dropped:
        below = int(meta.get("below_first_edge") or 0)
        why = beyond if not below else f"{beyond}, or below the first edge"
        notes.append(f"{dropped / total:.1%} of {total:,} requests dropped ({why})")
    if meta.get("overflow_policy") == "clip":
        clipped = int(meta.get("beyond_last_edge") or 0) + int(meta.get("below_first_edge") or 0)
        if clipped:
            notes.append(f"{clipped / total:.1%} of {total:,} requests clipped into the edge buckets ({beyond})")
    return "; ".join(notes)


def workload_drop_summary(meta: Mapping | None) -> dict:
    """What the workload dropped, for JSON (``solve``): requests, dropped, clipped, dropped_share and the
    `workload_caveat` text; the counts are None when the workload has no ``.json`` sidecar to say."""
    if not meta or not meta.get("requests"):
        return {"requests": None, "dropped": None, "clipped": None, "dropped_share": None, "caveat": "",
                "note": "no .json sidecar beside the workload CSV: how many requests it dropped is unknown"}
    total, dropped = int(meta["requests"]), int(meta.get("dropped") or 0)
    clipped = (int(meta.get("beyond_last_edge") or 0) + int(meta.get("below_first_edge") or 0)
               if meta.get("overflow_policy") == "clip" else 0)
    return {"requests": total, "dropped": dropped, "clipped": clipped, "dropped_share": round(dropped / total, 6),
            "caveat": workload_caveat(meta)}


def workload_counts_table(report: Mapping) -> pd.DataFrame:
    """What a workload build counted (`workload.build_workload`'s report), for people: the requests (total, in
    the histogram, beyond the edges, dropped) with their share of all requests, then the dataset's own counts
    (conversations, messages, skipped pairs, ...), which are not requests and get no share.

    Strings, already formatted; index ``count of``."""
    total = int(report["requests"])
    requests = {"requests": total, "in the histogram": report["in_histogram"],
                f"beyond the last edge ({report['input_edges'][-1]} in / {report['output_edges'][-1]} out)":
                    report["beyond_last_edge"],
                "below the first edge": report["below_first_edge"],
                f"dropped (overflow = {report['overflow_policy']})": report["dropped"]}
    rows = [{"count of": k, "count": f"{int(v):,}", "share of requests": f"{int(v) / total:.1%}" if total else "—"}
            for k, v in requests.items()]
    counts = report.get("counts") or {}
    rows += [{"count of": k.replace("_", " ") + (" (dataset)" if k in ("conversations", "messages") else ""),
              "count": f"{int(counts[k]):,}", "share of requests": ""}
             for k in ("conversations", "messages", "skipped_empty_pairs", "unanswered_user_turns",
                       "context_only_messages") if k in counts]
    return pd.DataFrame(rows).set_index("count of")


def solver_comparison_sentence(comparison) -> str:
    """The other mix solver(s) against the reference, one sentence each: ``The Mélange ILP (slice factor 1)
    needs 3×A10G + 1×A100-80GB = $6.70/h, 43.2% more.``; "" when only one mix solver ran."""
    ref = comparison.mix
    out = []
    for name, r in comparison.results.items():
        if name == comparison.reference or name.startswith("single:"):
            continue
        label = "The " + policy_label(name)
        if name == "melange":
            label += f" (slice factor {r.options.get('slice_factor', 1)})"
        if not r.has_allocation:
            out.append(f"{label} has no plan ({r.status}).")
        elif not ref.has_allocation:
            out.append(f"{label} finds {format_mix(r.counts)} = {format_dollars(r.cost)}.")
        elif round(r.cost, 2) == round(ref.cost, 2):
            same = "the same mix" if format_mix(r.counts) == format_mix(ref.counts) else format_mix(r.counts)
            out.append(f"{label} finds {same} at the same cost.")
        else:
            pct = abs(r.cost - ref.cost) / ref.cost * 100 if ref.cost > 0 else math.inf
            more = "more" if r.cost > ref.cost else "less"
            out.append(f"{label} needs {format_mix(r.counts)} = {format_dollars(r.cost)}, {pct:.1f}% {more}.")
    return " ".join(out)


def workload_left_out_share(meta: Mapping | None) -> float:
    """Share of the workload's requests dropped or clipped (0 when the sidecar says nothing)."""
    if not meta or not meta.get("requests"):
        return 0.0
    moved = int(meta.get("dropped") or 0)
    if meta.get("overflow_policy") == "clip":
        moved += int(meta.get("beyond_last_edge") or 0) + int(meta.get("below_first_edge") or 0)
    return moved / int(meta["requests"])


def headline_html(sentence: str, table: pd.DataFrame | None = None, *, caveat: str = "",
                  left_out_share: float = 0.0, data_caveat: str = "") -> str:
    """The answer block at the top of a page: the sentence, a warning when more than 1% of the
    workload was dropped or clipped, a warning when the GPU profiles do not compare like with like
    (`data_caveat`: `profiles.consistency.set_caveat`), and the small table. Marked so MathJax never
    reads "$" as math."""
    from html import escape

    warn = ""
    if data_caveat:
        warn += (f'<p class="mnb-warning" style="background:#fff3cd;border-left:4px solid #e0a800;padding:6px 10px">'
                 f'<b>Data caveat:</b> {escape(data_caveat)}</p>')
    if caveat and left_out_share > DROPPED_WARN_SHARE:
        warn += (f'<p class="mnb-warning" style="background:#fff3cd;border-left:4px solid #e0a800;padding:6px 10px">'
                f'<b>Workload caveat:</b> {escape(caveat)}. The plan covers the other requests only.</p>')
    elif caveat:
        warn += f'<p class="mnb-note">Workload: {escape(caveat)}.</p>'
    tab = (ANSWER_TABLE_STYLE + table.reset_index().to_html(index=False, border=0, classes="mnb-answer-table")
           if table is not None else "")
    return (f'<div class="mnb-answer tex2jax_ignore mathjax_ignore">'
            f'<p class="mnb-headline" style="font-size:1.3em;font-weight:bold;margin:0.5em 0">{escape(sentence)}</p>'
            f"{warn}{tab}</div>")


# The answer table's own spacing: in Voilà (the explorer) and in the shared pages alike, whatever their stylesheet.
ANSWER_TABLE_STYLE = ("<style>table.mnb-answer-table{border-collapse:collapse;margin:0.3em 0 0.8em}"
                      "table.mnb-answer-table th,table.mnb-answer-table td{padding:3px 18px 3px 0;text-align:left;"
                      "border-bottom:1px solid #e5e5e5}table.mnb-answer-table th{border-bottom:1px solid #999}</style>")


def back_link_html(href: str | None, text: str = "Sweep index: every point and workload") -> str:
    """A link back to the sweep's ``index.html`` at the top of a summary or point page ("" without one)."""
    from html import escape

    if not href:
        return ""
    return f'<p class="mnb-back" style="margin:0 0 0.5em"><a href="{escape(href)}">← {escape(text)} ({escape(Path(href).name)})</a></p>'


def constraints_text(constraints) -> str:
    """`solver.Constraints` in words: ``at most 1×A100; plan at 80% of profiled throughput`` or ``none``."""
    parts = [f"at most {n}×{g}" for g, n in constraints.max_instances.items()]
    parts += [f"at least {n}×{g}" for g, n in constraints.min_instances.items()]
    if constraints.utilization_cap < 1:
        parts.append(f"plan at {constraints.utilization_cap:.0%} of profiled throughput")
    if constraints.min_total:
        parts.append(f"at least {plural(constraints.min_total, 'GPU')} in all")
    return "; ".join(parts) or "none"


def info_html(lines: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """Labelled lines (label, text) as HTML paragraphs for a report's "what was solved" block.
    HTML rather than Markdown, so "$" amounts never turn into math."""
    from html import escape

    items = lines.items() if isinstance(lines, Mapping) else lines
    return ('<div class="tex2jax_ignore mathjax_ignore">'
            + "".join(f"<p><b>{escape(k)}</b>: {escape(v)}</p>" for k, v in items) + "</div>")


def text_html(text: str) -> str:
    """Free text from an input file (a spec's notes, a source line) as escaped HTML paragraphs (blank
    lines split them): never Markdown, which passes raw HTML through to the page."""
    from html import escape

    paras = [p.strip() for p in re.split(r"\n\s*\n", str(text)) if p.strip()]
    return ('<div class="tex2jax_ignore mathjax_ignore">'
            + "".join(f"<p>{escape(p)}</p>" for p in paras) + "</div>")


def code_html(text: str) -> str:
    """One line of our own text as an escaped HTML paragraph, its `backtick` spans as <code>."""
    from html import escape

    parts = str(text).split("`")
    body = "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(parts))
    return f'<p class="mnb-note tex2jax_ignore mathjax_ignore">{body}</p>'


def escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text label (index, columns, their names) and text cell HTML-escaped."""
    from html import escape

    def esc(v):
        return escape(v) if isinstance(v, str) else v

    def labels(index: pd.Index) -> pd.Index:
        if not any(isinstance(x, str) for x in [*index.names, *index.to_flat_index()]):
            return index
        if isinstance(index, pd.MultiIndex):
            return pd.MultiIndex.from_tuples([tuple(esc(x) for x in t) for t in index],
                                             names=[esc(n) for n in index.names])
        return pd.Index([esc(x) for x in index], name=esc(index.name), dtype=object)
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(esc)
    out.index, out.columns = labels(out.index), labels(out.columns)
    return out


def styled(frame: pd.DataFrame, formats=None, **options):
    """The one way a report table becomes a pandas Styler: text escaped first (``Styler.to_html`` and
    ``format`` do not escape what they are given), then ``format(formats, **options)``; keys of a
    `formats` mapping name the original columns."""
    from html import escape

    if isinstance(formats, Mapping):
        formats = {escape(k) if isinstance(k, str) else k: v for k, v in formats.items()}
    return escaped(frame).style.format(formats, **options)


# ---------------------------------------------------------------- one style per policy, in every plot

_POLICY_STYLES = {   # the mix solvers: exact drawn wide and underneath, Mélange thin and dashed on top
    "exact": {"color": "#1b1b1b", "marker": "o", "linestyle": "-", "linewidth": 4.0, "markersize": 8,
              "markerfacecolor": "none", "alpha": 0.55, "zorder": 2},
    "melange": {"color": "#d62728", "marker": "x", "linestyle": "--", "linewidth": 1.8, "markersize": 6, "zorder": 4},
}
# Single-GPU baselines: a fixed colour per GPU name (never red or black, which the mix solvers own).
_GPU_COLOURS = {"A10G": "#1f77b4", "A100": "#2ca02c", "A100-80GB": "#2ca02c", "H100": "#9467bd", "L4": "#ff7f0e",
                "T4": "#8c564b", "V100": "#e377c2", "L40S": "#17becf", "H200": "#bcbd22", "A6000": "#7f7f7f"}
_SPARE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                  "#aec7e8", "#98df8a", "#c5b0d5", "#ffbb78")


def gpu_colour(gpu: str) -> str:
    """A GPU type's colour: fixed for common names, else picked by a stable hash of the name."""
    import zlib

    return _GPU_COLOURS.get(gpu) or _SPARE_COLOURS[zlib.crc32(gpu.encode()) % len(_SPARE_COLOURS)]


def policy_style(policy: str) -> dict:
    """Matplotlib keyword arguments (color, marker, linestyle, linewidth, ...) for a policy, the same
    in every plot and every sweep: ``exact``, ``melange``, or ``single:<gpu>`` (the GPU's colour)."""
    if policy in _POLICY_STYLES:
        return dict(_POLICY_STYLES[policy])
    gpu = policy.split(":", 1)[1] if policy.startswith("single:") else policy
    return {"color": gpu_colour(gpu), "marker": "s", "linestyle": ":", "linewidth": 1.5, "markersize": 5, "zorder": 3}


def _display(matrix: pd.DataFrame) -> pd.DataFrame:
    """input x output -> rows = output buckets (largest on top), columns = input buckets."""
    return matrix.T.iloc[::-1]


def _axes_ticks(ax) -> None:
    """The same tick layout on every heatmap: x labels at 45 degrees, y labels flat."""
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.tick_params(axis="y", rotation=0)
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")


def _heatmap(data: pd.DataFrame, title: str, *, fmt_cell, cbar_label: str, cmap="flare", vmin=None, vmax=None,
             ax=None):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 5.5))
    shown = _display(data)
    sns.heatmap(shown, cmap=sns.color_palette(cmap, as_cmap=True), vmin=vmin, vmax=vmax, square=True,
                linewidths=0.5, cbar_kws={"shrink": 0.6, "label": cbar_label}, annot=shown.map(fmt_cell), fmt="",
                ax=ax)
    _axes_ticks(ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _pct_cell(v: float) -> str:
    """A share in % for a heatmap cell: one decimal, ``<0.1%`` rather than a misleading ``0.0%``."""
    return "0" if v == 0 else "<0.1%" if v < 0.05 else f"{v:.1f}%"


def plot_workload(workload: pd.DataFrame, title: str = "Share of requests per size bucket", ax=None):
    """The seed's percent-annotated heatmap of a workload (shares), correctly oriented."""
    pct = workload * 100
    return _heatmap(pct, title, fmt_cell=_pct_cell, cbar_label="Share of requests (%)", vmin=0, ax=ax)


def plot_best_value(gpus: Mapping[str, GpuProfile], ax=None):
    """Per bucket: which GPU serves most requests per dollar, and by what factor over the next best."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    best = best_value(gpus)
    adv = best["advantage"].unstack("output_tokens")
    names = best["best"].unstack("output_tokens")
    like = next(iter(gpus.values())).tputs
    adv, names = adv.loc[like.index, like.columns], names.loc[like.index, like.columns]
    labels = names.astype(str) + "\n" + adv.map(lambda a: "only" if np.isinf(a) else f"{a:.2f}x")
    colour = np.log2(adv.replace(np.inf, np.nan).astype(float)).fillna(0)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9, 6))
    sns.heatmap(_display(colour), cmap="crest", annot=_display(labels), fmt="", linewidths=0.5,
                cbar_kws={"shrink": 0.6, "label": "Advantage over the next best, log2(factor)"}, ax=ax)
    _axes_ticks(ax)
    ax.set_title("Most requests per dollar: best GPU and its advantage over the next best")
    fig.tight_layout()
    return fig


def plot_routing(result: SolveResult, workload: pd.DataFrame):
    """One heatmap per GPU type in the plan: share of each bucket's requests routed to it; buckets
    without requests are left blank (as in the explorer)."""
    import matplotlib.pyplot as plt

    used = [g for g, c in result.counts.items() if c > 0] or list(result.counts)
    fig, axes = plt.subplots(1, len(used), figsize=(6.5 * len(used), 5.2), squeeze=False)
    for ax, gpu in zip(axes[0], used):
        # a bucket without requests routes nothing anywhere: blank (NaN is masked), not a misleading 0%
        share = (routing_matrix(result, gpu, workload) * 100).where(workload > 0)
        _heatmap(share, f"{gpu}: % of each bucket routed ({plural(result.counts[gpu], 'GPU')}, "
                        f"{result.utilization.get(gpu, 0):.0%} utilised; blank: no requests)",
                 fmt_cell=lambda v: "" if pd.isna(v) else f"{v:.0f}%",
                 cbar_label=f"Share of the bucket's requests sent to {gpu} (%)", cmap="Blues", vmin=0, vmax=100, ax=ax)
    fig.tight_layout()
    return fig


def format_savings(table: pd.DataFrame):
    """A pandas Styler for `solver.savings_table`: readable policy names and headers, counts as
    integers, $/h to cents, savings % to one decimal."""
    gpu_cols = [c for c in table.columns if c not in ("cost_per_hour", "status", "savings_pct")]
    shown = table.rename(index=policy_label, columns={"cost_per_hour": "$/h", "savings_pct": "the mix saves (%)"})
    shown.index.name = "policy"
    return (styled(shown, {**{c: "{:.0f}" for c in gpu_cols}, "$/h": "${:.2f}", "the mix saves (%)": "{:.1f}%"},
                   na_rep="—")
            .set_caption("GPUs per type, $/hour, and what the mix saves against each policy"))


def plot_lengths(requests: pd.DataFrame, label: str, *, max_input: int = 4096, max_output: int = 2048):
    """The seed's two length histograms with correct titles: prompt (input) and response (output) lengths.

    `requests`: one row per request, or (from the Ray engine) requests per length, index ``tokens``.
    Requests beyond `max_input` / `max_output` are left out of the plot only; the title says how many.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    counted = requests.index.name == "tokens"
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, col, limit, what in ((axes[0], "input_tokens", max_input, "Prompt (input) length"),
                                 (axes[1], "output_tokens", max_output, "Response (output) length")):
        if counted:
            weights = requests[col][requests[col] > 0]
            values = weights.index.to_series()
        else:
            values, weights = requests[col], pd.Series(1, index=requests.index)
        shown = values < limit
        total, left_out = int(weights.sum()), int(weights[~shown.to_numpy()].sum())
        sns.histplot(x=values[shown].to_numpy(), weights=weights[shown.to_numpy()].to_numpy(), element="step",
                     stat="count", bins=50, alpha=0.5, ax=ax)
        ax.set_xlabel(f"{what} (tokens)")
        ax.set_ylabel("Requests")
        ax.set_title(f"{what}: {label}\n({left_out} of {total} requests >= {limit} not shown)")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- sweeps

# The axes that make one sweep problem (every rate of it is one curve); older tables lack slo/constraints.
PROBLEM_AXES = ("workload", "gpu_set", "slo", "constraints", "slice_factor")


def _groups(results: pd.DataFrame):
    """(axes as a dict, rows) per problem: workload x GPU set x SLO x constraints x slice factor."""
    axes = [a for a in PROBLEM_AXES if a in results.columns]
    for key, df in results.groupby(axes, sort=True):
        yield dict(zip(axes, key)), df


def _problem_title(key: dict) -> str:
    extra = [f"SLO {key['slo']}" if key.get("slo") not in (None, "unknown") else "",
             f"constraints {key['constraints']}" if key.get("constraints") not in (None, "none") else "",
             f"slice factor {key['slice_factor']}" if key.get("slice_factor", 1) != 1 else ""]
    extra = [e for e in extra if e]
    return f"{key['workload']} on {key['gpu_set']}" + (f" ({', '.join(extra)})" if extra else "")


def _gpu_set_label(key: dict) -> str:
    """The GPU set, with its SLO when the sweep has more than one."""
    return key["gpu_set"] + (f" @ {key['slo']}" if key.get("slo") not in (None, "unknown") else "")


def _panels(results: pd.DataFrame, height: float, columns: int = 3):
    """A figure with one panel per problem (up to `columns` a row), and (axis, key, rows) per panel."""
    import matplotlib.pyplot as plt

    groups = list(_groups(results))
    ncols = min(columns, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    return fig, [(ax, key, df) for ax, (key, df) in zip(axes.flat, groups)]


def _label_rate_axis(ax, ylabel: str, title: str, rates, grid: bool = True) -> None:
    """Rate axis: ticks at the rates solved; log2 when they span more than 8x and are not evenly spaced."""
    rates = sorted(set(float(r) for r in rates))
    ax.set_xlabel("Request rate (requests/s); markers = rates solved, lines only join them")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(rates) > 2 and rates[0] > 0 and rates[-1] / rates[0] > 8 and np.ptp(np.diff(rates)) > 1e-9:
        ax.set_xscale("log", base=2)
    if len(rates) <= 16:
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
    ax.legend(fontsize=8)
    if grid:
        ax.grid(alpha=0.3)


def plot_cost_vs_rate(results: pd.DataFrame):
    """Cost ($/h) against request rate: one marker per policy at each rate solved (no cost is drawn for
    rates in between), one fixed style per policy (`policy_style`), one panel per workload x GPU set."""
    fig, panels = _panels(results, 4.8)
    for ax, key, df in panels:
        for policy, d in df.groupby("policy", sort=True):
            d = d.sort_values("rate")
            ax.plot(d["rate"], d["cost_per_hour"], label=policy_label(policy), **policy_style(policy))
        _label_rate_axis(ax, "Cost ($/hour)", _problem_title(key), df["rate"])
    fig.tight_layout()
    return fig


def plot_savings_vs_rate(results: pd.DataFrame):
    """What the reference mix saves (%) against each other policy, at each rate solved."""
    fig, panels = _panels(results, 4.2)
    for ax, key, df in panels:
        ref = df["reference"].iloc[0]
        for policy, d in df[df["policy"] != ref].groupby("policy", sort=True):
            d = d.sort_values("rate")
            ax.plot(d["rate"], d["savings_pct"], label=f"{policy_label(ref)} vs {policy_label(policy)}",
                    **policy_style(policy))
        ax.axhline(0, color="grey", lw=0.8)
        _label_rate_axis(ax, "Savings of the mix (%)", _problem_title(key), df["rate"])
    fig.tight_layout()
    return fig


def plot_attainment_vs_rate(results: pd.DataFrame):
    """Simulated SLO attainment (%) of the reference mix at each rate, and of the cheapest plan found at the
    target where one was searched; None when no point was simulated."""
    if "attainment" not in results or results["attainment"].isna().all():
        return None
    fig, panels = _panels(results, 4.2)
    for ax, key, df in panels:
        ref = df[df["policy"] == df["reference"]].sort_values("rate")
        ax.plot(ref["rate"], 100 * ref["attainment"], label=f"{policy_label(ref['reference'].iloc[0])} (throughput only)",
                **policy_style(ref["reference"].iloc[0]))
        if "found_attainment" in ref and ref["found_attainment"].notna().any():
            ax.plot(ref["rate"], 100 * ref["found_attainment"], label="cheapest plan found at the target",
                    color="#2ca02c", marker="s", linestyle=":")
            ax.axhline(100 * ref["target_attainment"].dropna().iloc[0], color="grey", lw=0.8, ls="--")
        ax.set_ylim(min(90.0, float(np.nanmin(100 * ref["attainment"])) - 2), 100.5)
        _label_rate_axis(ax, "Requests meeting the SLO (%)", _problem_title(key), df["rate"])
    fig.tight_layout()
    return fig


def plot_mix(results: pd.DataFrame):
    """Stacked bars: the reference mix's GPU count per type at each rate solved (GPU colours as in every plot)."""
    fig, panels = _panels(results, 4.2)
    for ax, key, df in panels:
        mix = df[df["policy"] == df["reference"]].sort_values("rate")
        counts = mix[[c for c in mix.columns if c.startswith("n_")]].loc[:, lambda d: d.sum() > 0]
        bottom = np.zeros(len(mix))
        labels = [f"{r:g}" for r in mix["rate"]]
        for col in counts:
            ax.bar(labels, counts[col], bottom=bottom, label=col[2:], color=gpu_colour(col[2:]))
            bottom += counts[col].to_numpy()
        ref = policy_label(mix["reference"].iloc[0]) if len(mix) else ""
        ax.set_xlabel("Request rate (requests/s), rates solved only")
        ax.set_ylabel("GPUs in the mix")
        ax.set_title(f"{ref}: {_problem_title(key)}")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _mix_of(row: pd.Series) -> dict[str, int]:
    return {c[2:]: int(row[c]) for c in row.index if c.startswith("n_") and pd.notna(row[c])}


def _has_plan(row: pd.Series) -> bool:
    return row["status"] in ("optimal", "time_limit") and pd.notna(row["cost_per_hour"])


AXIS_HEADERS = {"workload": "workload", "gpu_set": "GPU set", "slo": "SLO", "constraints": "constraints",
                "slice_factor": "slice factor"}   # one header per axis, in every sweep table


def mix_changes(results: pd.DataFrame) -> pd.DataFrame:
    """The rates at which the reference mix changes its GPU types (or gains or loses a plan), per problem:
    from which rate, what changes (``adds A100``, ``drops A10G``), the mix and $/h there, and the later
    rates where only the counts change (``6, 7, 8``). Headers for people (`AXIS_HEADERS`); the SLO,
    constraints and slice factor columns only when they vary."""
    counts_col = "then only the counts change at (req/s)"
    rows = []
    for key, df in _groups(results):
        previous, last_mix = None, None
        for _, row in df[df["policy"] == df["reference"]].sort_values("rate").iterrows():
            counts = {g: n for g, n in _mix_of(row).items() if n > 0}
            types = tuple(counts) if _has_plan(row) else f"no plan ({row['status']})"
            now = format_mix(counts) if _has_plan(row) else types
            if types == previous:
                if now != last_mix:
                    rows[-1][counts_col].append(f"{row['rate']:g}")
            else:
                rows.append({**{AXIS_HEADERS[k]: v for k, v in key.items()}, "from rate (req/s)": f"{row['rate']:g}",
                             "what changes": _type_change(previous, types), "mix": now,
                             "$/h": format_dollars(row["cost_per_hour"]) if _has_plan(row) else "—", counts_col: []})
            previous, last_mix = types, now
    for r in rows:
        r[counts_col] = ", ".join(r[counts_col]) or "—"
    table = pd.DataFrame(rows)
    same = [h for h in ("SLO", "constraints", "slice factor") if h in table and table[h].nunique(dropna=False) == 1]
    return table.drop(columns=same)      # an axis with one value in the whole sweep says nothing per row


def _type_change(before, after) -> str:
    """``adds A100; drops A10G`` between two sets of GPU types (a str is a rate without a plan)."""
    if before is None:
        return "first rate solved"
    if isinstance(after, str):
        return after
    if isinstance(before, str):
        return "a plan again: " + " + ".join(after)
    added, dropped = [g for g in after if g not in before], [g for g in before if g not in after]
    return "; ".join(filter(None, ["adds " + ", ".join(added) if added else "",
                                   "drops " + ", ".join(dropped) if dropped else ""]))


def _rate_rows(df: pd.DataFrame):
    """Per rate of one panel: (rate, reference row, {gpu: single row}), GPUs in the profile file's order."""
    order = [c[2:] for c in df.columns if c.startswith("n_")]
    for rate, d in df.groupby("rate", sort=True):
        ref = d[d["policy"] == d["reference"]]
        if ref.empty:
            continue
        singles = {r["policy"].split(":", 1)[1]: r for _, r in d[d["policy"].str.startswith("single:")].iterrows()}
        singles = dict(sorted(singles.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
        yield rate, ref.iloc[0], singles


def rate_table(results: pd.DataFrame) -> pd.DataFrame:
    """The answer per rate, ready to show: workload, GPU set, rate, the mix, its $/h, and what it saves
    against each single GPU type ($/h to cents, % to one decimal)."""
    rows = []
    for key, df in _groups(results):
        for rate, ref, singles in _rate_rows(df):
            ok = _has_plan(ref)
            row = {"workload": key["workload"], "GPU set": _gpu_set_label(key), "rate (req/s)": f"{rate:g}",
                   "mix": format_mix(_mix_of(ref)) if ok else f"no plan ({ref['status']})",
                   "$/h": format_dollars(ref["cost_per_hour"]) if ok else "—"}
            for gpu, single in singles.items():
                pct = single["savings_pct"]
                row[f"saves vs {gpu}-only"] = f"{pct:.1f}%" if ok and _has_plan(single) and pd.notna(pct) else "—"
            if _simulated(ref):
                row["SLO attainment"] = f"{ref['attainment']:.1%}"
                row["p99 TTFT (ms)"] = f"{ref['p99_ttft_ms']:,.0f}"
                row["p99 TPOT (ms)"] = f"{ref['p99_tpot_ms']:,.1f}"
                if isinstance(ref.get("found_mix"), str) and ref["found_mix"]:
                    row[f"cheapest at {ref['target_attainment']:.0%}"] = (
                        f"{ref['found_mix']} ({format_dollars(ref['found_cost_per_hour'])}, {ref['found_attainment']:.1%})")
            elif "sim_status" in ref and isinstance(ref["sim_status"], str) and ref["sim_status"]:
                row["SLO attainment"] = ref["sim_status"]          # e.g. unbounded: the queue grows without bound
            rows.append(row)
    return pd.DataFrame(rows)


def _simulated(row: pd.Series) -> bool:
    """A results row whose plan was simulated (`attainment.COLUMNS` filled in)."""
    return "attainment" in row and pd.notna(row["attainment"])


def attainment_sentence(df: pd.DataFrame, rate: float) -> str:
    """One problem's simulated attainment in words, answer first: the plan at `rate` and the range over the
    rates (and the cheapest plan found at the target); "" when no point was simulated."""
    ref = df[df["policy"] == df["reference"]]
    sim = ref[[_simulated(r) for _, r in ref.iterrows()]] if "attainment" in ref else ref.iloc[0:0]
    if sim.empty:
        return ""
    at = sim[sim["rate"] == rate]
    row = at.iloc[0] if not at.empty else sim.iloc[0]
    text = (f"Simulated at {row['rate']:g} req/s, {format_mix(_mix_of(row))} ({format_dollars(row['cost_per_hour'])}) "
            f"meets {row['sim_slo']} for {row['attainment']:.1%} of requests (p99 TTFT {row['p99_ttft_ms']:,.0f} ms, "
            f"p99 TPOT {row['p99_tpot_ms']:,.1f} ms)")
    if isinstance(row.get("found_mix"), str) and row["found_mix"] and row["found_mix"] != format_mix(_mix_of(row)):
        text += (f"; {row['found_mix']} ({format_dollars(row['found_cost_per_hour'])}) meets it for "
                 f"{row['found_attainment']:.1%}, the cheapest plan found at {row['target_attainment']:.0%}")
    lo, hi = sim["attainment"].min(), sim["attainment"].max()
    worst = sim.loc[sim["attainment"].idxmin(), "rate"]
    text += (f". Over {plural(len(sim), 'simulated rate')} the throughput-only plan meets it for "
             f"{lo:.1%}–{hi:.1%} of requests (lowest at {worst:g} req/s)" if len(sim) > 1 else "")
    unbounded = ref[ref.get("sim_status", pd.Series(dtype=str)) == "unbounded"] if "sim_status" in ref else ref.iloc[0:0]
    if not unbounded.empty:
        text += f"; at {plural(len(unbounded), 'rate')} its queue grows without bound"
    return text + "."


def sweep_headlines(results: pd.DataFrame) -> dict[tuple, str]:
    """One or two sentences per workload x GPU set: the range of savings against the cheapest single
    GPU type over the rates solved, and the full headline at the rate where the mix saves most."""
    out = {}
    for key, df in _groups(results):
        best, savings = None, []
        for rate, ref, singles in _rate_rows(df):
            plans = [s["cost_per_hour"] for s in singles.values() if _has_plan(s)]
            if not _has_plan(ref) or not plans or min(plans) <= 0:
                continue
            saving = (min(plans) - ref["cost_per_hour"]) / min(plans) * 100
            savings.append(saving)
            if best is None or saving > best[0] + 1e-9:
                best = (saving, rate, ref, singles)
        name, key = _problem_title(key), tuple(key.values())
        if best is None:
            out[key] = f"{name}: no rate has both a mix and a single-GPU plan."
            continue
        rates = sorted(df["rate"].unique())
        saving, rate, ref, singles = best
        sentence = headline_sentence(rate, _mix_of(ref), ref["cost_per_hour"],
                                     {g: (s["cost_per_hour"] if _has_plan(s) else None) for g, s in singles.items()},
                                     status=ref["status"])
        span = f"over {rates[0]:g}–{rates[-1]:g} req/s ({plural(len(rates), 'rate')} solved)"
        out[key] = f"{name}: {span} {_savings_range(df, policy_label(ref['reference']), savings)} {sentence}."
        simulated = attainment_sentence(df, rate)
        if simulated:
            out[key] += " " + simulated
    return out


def _savings_range(df: pd.DataFrame, label: str, savings: list[float]) -> str:
    """What the mix saves against the cheapest single GPU type over the rates, in words: a range, one
    number, or a sentence when it never saves (e.g. one GPU type serves best at every rate)."""
    lo, hi = round(min(savings), 1), round(max(savings), 1)
    if hi > 0:
        amount = f"{lo:.1f}%" if lo == hi else f"{lo:.1f}–{hi:.1f}%"
        return f"the {label} costs {amount} less than the cheapest single GPU type{' at every rate' if lo == hi else ''}."
    ref = df[(df["policy"] == df["reference"]) & df["status"].isin(("optimal", "time_limit"))]
    used = sorted({g for _, row in ref.iterrows() for g, n in _mix_of(row).items() if n > 0})
    if len(used) == 1 and all(sum(1 for n in _mix_of(row).values() if n > 0) == 1 for _, row in ref.iterrows()):
        return (f"the {label} is {used[0]} alone at every rate: it costs what {used[0]}-only costs, and mixing "
                "GPU types saves nothing here.")
    return f"the {label} costs the same as the cheapest single GPU type at every rate: mixing saves nothing here."


def savings_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per workload x GPU set x policy: what the reference mix saves against it over the rates solved
    (lowest, median, highest %, one decimal) and at how many rates both had a plan."""
    others = results[results["policy"] != results["reference"]].copy()
    others["against"] = others["policy"].map(policy_label)
    axes = [a for a in PROBLEM_AXES if a in results.columns]
    table = (others.groupby([*axes, "against"], sort=True)["savings_pct"]
             .agg(["min", "median", "max", "count"]).round(1).reset_index())
    return table.rename(columns={**AXIS_HEADERS, "min": "lowest %", "median": "median %", "max": "highest %",
                                 "count": "rates with both plans"})


def figure_data_uri(fig) -> str:
    """A matplotlib figure as an embedded PNG data URI (self-contained pages)."""
    import matplotlib.pyplot as plt

    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(small_png(buf.getvalue())).decode()


PAGE_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}
.mnb-answer{border:2px solid #2ca02c;border-radius:6px;padding:0.4em 1em;margin:1em 0;background:#f6fbf6}
.mnb-note{color:#555}"""


def _workload_meta_for(sweep_dir: Path, name: str, value) -> tuple[Path, dict]:
    from .workload import workload_meta

    from .run import locate

    path = sweep_dir / "workloads" / name / "workload.csv" if isinstance(value, dict) else locate(value, sweep_dir)
    return path, workload_meta(path)


def _workload_item(sweep_dir: Path, name: str, value) -> dict:
    """One workload of the index: its name, where it came from (dataset, tokenizer), what it left out, its report."""
    from .workload import workload_source

    path, meta = _workload_meta_for(sweep_dir, name, value)
    report = f"workloads/{name}/01_workload-shared.html"
    return {"name": name, "source": workload_source(path) if path.is_file() else "not built",
            "caveat": workload_caveat(meta), "report": report if (sweep_dir / report).is_file() else None}


def _short_paths(text: str) -> str:
    """Absolute paths in an error message as file names: a shared page names no local folders."""
    return re.sub(r"(?<![\w.])/(?:[^\s/:;,'\"]+/)+([^\s/:;,'\"]+)", r"\1", text)


def _point_links(sweep_dir: Path, pid: str, entry: Mapping) -> list[tuple[str, str]]:
    """(href, text) of a point's pages that exist (a page may be left out, e.g. the with-code page)."""
    if entry.get("status") == "failed":
        links = [(f"failed/{pid}/traceback.txt", "traceback")]
    else:
        links = [(f"{pid}/02_allocation-shared.html", "report"), (f"{pid}/02_allocation.html", "with code"),
                 (f"{pid}/02_allocation.ipynb", "notebook")]
    return [(href, text) for href, text in links if (sweep_dir / href).is_file()]


def sweep_data_caveat(spec: Mapping, gpu_set: str, slo: str | None) -> str:
    """`profiles.consistency.set_caveat` of the profile file behind one GPU set of a sweep spec at one
    SLO label (the file whose key or own ``slo`` reads as `slo`), limited to the spec's `gpu_names`."""
    from .errors import MelangeError
    from .profiles import format_slo, load_gpus, select_gpus
    from .profiles.consistency import set_caveat
    from .run import resolve_path

    entry = (spec.get("gpus") or {}).get(gpu_set)
    files = {None: entry} if isinstance(entry, str) else dict(entry or {})
    caveats = {}
    for key, path in files.items():
        try:
            gpus = select_gpus(load_gpus(resolve_path(path)), spec.get("gpu_names") or [])
        except (MelangeError, OSError, TypeError):
            continue                  # a file that no longer loads: its points failed and say why
        label = format_slo(next(iter(gpus.values())).meta.get("slo", "unknown"))
        caveats[key] = (set_caveat(gpus), {str(key), label})
    matching = [c for c, labels in caveats.values() if slo is None or slo in labels]
    return matching[0] if len(matching) == 1 else ""


def sweep_answer_html(sweep_dir: str | Path, results: pd.DataFrame, spec: Mapping) -> str:
    """The answer block for a sweep page: per workload x GPU set, the headline sentence, a warning
    when its workload dropped or clipped more than 1% of requests and one when its GPU profiles do
    not compare like with like (`sweep_data_caveat`); then the per-rate table."""
    sweep_dir = Path(sweep_dir)
    if results.empty:
        return '<div class="mnb-answer"><p class="mnb-headline">No completed points yet: nothing to compare.</p></div>'
    blocks = []
    workloads = spec.get("workloads", {})
    for key, sentence in sweep_headlines(results).items():
        axes = dict(zip([a for a in PROBLEM_AXES if a in results.columns], key))
        workload = axes["workload"]
        meta = _workload_meta_for(sweep_dir, workload, workloads[workload])[1] if workload in workloads else {}
        blocks.append(headline_html(sentence, caveat=workload_caveat(meta), left_out_share=workload_left_out_share(meta),
                                    data_caveat=sweep_data_caveat(spec, axes.get("gpu_set"), axes.get("slo"))))
    table = rate_table(results)
    single_group = table[["workload", "GPU set"]].drop_duplicates().shape[0] == 1
    if single_group:
        table = table.drop(columns=["workload", "GPU set"])
    return "".join(blocks) + f'<div class="tex2jax_ignore mathjax_ignore">{table.to_html(index=False, border=0)}</div>'


def write_index(sweep_dir: str | Path, results: pd.DataFrame, manifest: dict) -> Path:
    """``index.html``: the answer first (headline per workload x GPU set, the mix and $/h per rate),
    the cost-vs-rate plot (embedded), then links to the summary and every point. Works offline.
    Rendered by the Jinja2 template ``templates/sweep-index/index.html.j2`` with autoescape."""
    import jinja2
    from markupsafe import Markup

    from .pages import TEMPLATES_DIR

    sweep_dir = Path(sweep_dir)
    spec = manifest.get("spec", {})
    points = manifest.get("points", {})
    by_point = {}
    if not results.empty and "point" in results:
        for pid, d in results[results["policy"] == results["reference"]].groupby("point"):
            row = d.iloc[0]
            by_point[pid] = (format_mix(_mix_of(row)), format_dollars(row["cost_per_hour"])) if _has_plan(row) \
                else (f"no plan ({row['status']})", "—")
            if _simulated(row):        # the SLO attainment right after the cost
                by_point[pid] = (by_point[pid][0], f"{by_point[pid][1]}, meets {row['sim_slo']} for {row['attainment']:.1%}")
    rows = []
    for pid, entry in sorted(points.items(), key=lambda kv: (kv[1]["workload"], kv[1]["gpus"], kv[1]["rate"])):
        if entry.get("status") == "done" and not entry.get("rendered", True):
            continue      # solved (a row of results.csv), no report rendered for it
        mix, cost = by_point.get(pid, ("", ""))
        rows.append({"workload": entry["workload"], "gpu_set": entry["gpus"] + (f" @ SLO {entry['slo']}" if entry.get("slo") else ""),
                     "slice_factor": entry["slice_factor"], "rate": f"{entry['rate']:g}", "mix": mix, "cost": cost,
                     "status": entry.get("status", ""), "links": _point_links(sweep_dir, pid, entry),
                     "error": _short_paths(entry.get("error") or "")})
    summary = [(f, text) for f, text in (("03_sweep_summary-shared.html", "Summary report"),
                                         ("03_sweep_summary.html", "summary with code")) if (sweep_dir / f).is_file()]
    table = savings_summary(results) if not results.empty else pd.DataFrame()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR / "sweep-index")), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    page = env.get_template("index.html.j2").render(
        name=str(spec.get("name", "")), css=Markup(PAGE_CSS),
        answer=Markup(sweep_answer_html(sweep_dir, results, spec)),   # built with html.escape and pandas' escaping
        done=sum(1 for p in points.values() if p.get("status") == "done"),
        failed=sum(1 for p in points.values() if p.get("status") == "failed"), points=plural(len(points), "point"),
        solvers=", ".join(policy_label(s) for s in spec.get("solvers", [])), summary=summary,
        files=[f for f in ("results.csv", "results.parquet", "manifest.json") if (sweep_dir / f).is_file()],
        img=figure_data_uri(plot_cost_vs_rate(results)) if not results.empty else None,
        savings=Markup(table.to_html(index=False, border=0, na_rep="—")) if not table.empty else "",  # escape=True
        workloads=[_workload_item(sweep_dir, k, v) for k, v in spec.get("workloads", {}).items()],
        rendered=plural(sum(1 for p in points.values() if p.get("status") == "done" and p.get("rendered", True)), "point"),
        rows=rows)
    return write_text(sweep_dir / "index.html", page)


# ---------------------------------------------------------------- plans per time window (plan.py)

def plot_plan(table: pd.DataFrame, totals: Mapping):
    """Three panels over time: request rate, GPUs per type (stacked), $/h against the static peak line."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .plan import plan_gpus

    names = plan_gpus(table)
    start = pd.to_datetime(table["start"])
    edges = list(start) + [pd.to_datetime(table["end"]).iloc[-1]]
    fig, (rate_ax, gpu_ax, cost_ax) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)

    def steps(ax, values, **kw):
        ax.stairs(np.asarray(values, dtype=float), edges, baseline=None, **kw)

    steps(rate_ax, table["rate"], label="all requests", lw=2)
    steps(rate_ax, table["planned_rate"], label="planned (within the profile's edges)", lw=1.5, ls="--")
    rate_ax.set_ylabel("Requests/s")
    rate_ax.set_title("Request rate per window")
    target = totals.get("target_attainment")
    prefix = "target_" if target and all(f"target_{n}" in table for n in names) else ""
    bottom = np.zeros(len(table))
    for name in names:
        counts = table[prefix + name].astype(float).fillna(0).to_numpy()
        if not counts.any():       # a type no window uses: no legend entry
            continue
        gpu_ax.stairs(bottom + counts, edges, baseline=bottom, fill=True, label=name, alpha=0.85,
                      color=gpu_colour(name))
        bottom += counts
    if prefix:                     # the throughput-only mix's GPU count, for comparison
        steps(gpu_ax, table[names].astype(float).fillna(0).sum(axis=1), label="throughput-only mix, all GPUs",
              lw=1.5, ls="--", color="black")
    gpu_ax.set_ylabel("GPUs")
    gpu_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    gpu_ax.set_ylim(0, max(bottom.max(), table[names].astype(float).fillna(0).sum(axis=1).max(), 1) * 1.25)
    gpu_ax.set_title(f"GPUs per type in each window's mix found for {target_text(target['target'])} SLO attainment"
                     if prefix else "GPUs per type in each window's mix")
    steps(cost_ax, table["cost_per_hour"], label="throughput-only mix" if prefix else "autoscaled mix", lw=2)
    if "target_cost_per_hour" in table:
        shown = target_text(totals['target_attainment']['target'])
        steps(cost_ax, table["target_cost_per_hour"], label=f"mix holding {shown} SLO attainment", lw=1.5, ls="-.")
    if "smoothed_cost_per_hour" in table:
        steps(cost_ax, table["smoothed_cost_per_hour"], label=f"smoothed ({totals['smoothed']['rule']})", lw=1.5, ls=":")
    static = totals["static_peak"].get("cost_per_hour")
    if static is not None:
        cost_ax.axhline(static, color="black", lw=1.2, ls="--", label=f"static peak ${static:.2f}/h")
    cost_ax.set_ylabel("$/hour")
    cost_ax.set_title("Cost per hour of each window's mix against static peak provisioning")
    for ax in (rate_ax, gpu_ax, cost_ax):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    rate_ax.set_ylim(bottom=0)
    cost_ax.set_ylim(bottom=0)
    cost_ax.set_xlabel("Window start")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plan_totals_table(totals: Mapping, *, as_text: bool = False) -> pd.DataFrame:
    """One row per policy over the whole trace: GPUs, cost for the period, mean $/h, what autoscaling saves.

    `as_text`: dollars and percentages formatted for a page ("$9.77", "25.0%", "—" when not applicable).
    """
    hours = totals["hours"]
    rows = [{"policy": "autoscaled mix", "GPUs": "per window", "cost": totals["autoscaled"]["cost"]}]
    target = totals.get("target_attainment")
    if target:                        # not a policy autoscaling is compared with: it buys SLO attainment
        rows[0]["policy"] = "autoscaled mix (throughput only)"
        rows.insert(0, {"policy": f"autoscaled mix holding {round(target['target'] * 100, 6):g}% SLO attainment",
                        "GPUs": "per window", "cost": target["cost"]})
    if "smoothed" in totals:
        rows.append({"policy": f"smoothed mix ({totals['smoothed']['rule']})", "GPUs": "per window",
                     "cost": totals["smoothed"]["cost"]})
    sp = totals["static_peak"]
    rows.append({"policy": "static peak (cheapest fleet serving every window)",
                 "GPUs": format_mix(sp["counts"]) if sp.get("cost_per_hour") is not None else "none serves every window",
                 "cost": sp.get("cost")})
    pw = totals.get("peak_window")
    if pw:
        note = "" if pw["covers_all_windows"] else f", misses {plural(pw['windows_not_covered'], 'window')}"
        rows.append({"policy": f"mix of the peak-rate window, static{note}", "GPUs": format_mix(pw["counts"]),
                     "cost": pw["cost"]})
    for g, s in totals["single"].items():
        if s["autoscaled_cost"] is None and s["static_counts"] is None:   # serves no window: see plan_left_out
            continue
        rows.append({"policy": f"{g}-only, autoscaled", "GPUs": "per window", "cost": s["autoscaled_cost"]})
        rows.append({"policy": f"{g}-only, static", "GPUs": format_mix(s["static_counts"]) if s["static_counts"] else "—",
                     "cost": s["static_cost"]})
    df = pd.DataFrame(rows).set_index("policy")
    df["cost"] = df["cost"].astype(float)
    mix = target["cost"] if target else totals["autoscaled"]["cost"]     # savings measured from the answer
    saves = plan_saves_column(totals)
    df["mean $/h"] = df["cost"] / hours
    df[saves] = [(c - mix) / c * 100 if c else np.nan for c in df["cost"]]
    df.iloc[:1 + bool(target), df.columns.get_loc(saves)] = np.nan
    if pw and not pw["covers_all_windows"]:   # not a baseline: it cannot serve every window
        df.loc[df.index.str.startswith("mix of the peak-rate window"), saves] = np.nan
    if as_text:
        for col in ("cost", "mean $/h"):
            df[col] = df[col].map(lambda v: "—" if pd.isna(v) else f"${v:,.2f}")
        df[saves] = df[saves].map(lambda v: "—" if pd.isna(v) else f"{v:.1f}%")
    return df.rename(columns={"cost": f"$ for {hours:.4g} h"})


def plan_saves_column(totals: Mapping) -> str:
    """The totals table's savings header, naming the plan the savings are measured from."""
    target = totals.get("target_attainment")
    return (f"the plan holding {target_text(target['target'])} saves" if target else "autoscaling saves")


def plan_left_out(totals: Mapping) -> list[str]:
    """GPU types no window can use (they serve no bucket at this SLO): left out of the totals table."""
    return [g for g, s in totals["single"].items() if s["autoscaled_cost"] is None and s["static_counts"] is None]


def _window_mixes(table: pd.DataFrame, prefix: str = "") -> pd.Series:
    from .plan import plan_gpus

    names = plan_gpus(table)
    return table[[prefix + n for n in names]].fillna(0).set_axis(names, axis=1).apply(
        lambda r: format_mix(r.astype(int).to_dict()), axis=1)


def plan_answer(table: pd.DataFrame, totals: Mapping, headline: str) -> str:
    """The plan page's answer, first: which GPUs (the mix most windows use, then the others), what it costs and
    what it saves against static peak provisioning. With a target attainment, the plan found is the answer."""
    target = totals.get("target_attainment")
    found = target and all(f"target_{n}" in table for n in _plan_names(table))
    planned = table[table["status"].isin(["optimal", "feasible"])] if "status" in table else table
    mixes = _window_mixes(planned, "target_" if found else "").value_counts()
    n = int(mixes.sum())
    if len(mixes) == 1:
        gpus = f"{mixes.index[0]} in every window"
    else:
        gpus = f"mostly {mixes.index[0]} ({mixes.iloc[0]} of {n} windows)"
        gpus += "".join(f", {m} in {c}" for m, c in mixes.iloc[1:3].items())
        if len(mixes) > 3:
            gpus += f", {len(mixes) - 3} other mixes in {int(mixes.iloc[3:].sum())}"
    sp = totals["static_peak"]
    if not target:
        return f"{headline}: {gpus}."
    text = f"{target['sentence']}. The plan found: {gpus}"
    if sp.get("cost"):
        pct = (sp["cost"] - target["cost"]) / sp["cost"] * 100
        text += (f"; {abs(pct):.1f}% {'less' if pct >= 0 else 'more'} than static peak {format_mix(sp['counts'])} "
                 f"(${sp['cost']:,.2f})")
    return text + "."


def _plan_names(table: pd.DataFrame) -> list[str]:
    from .plan import plan_gpus

    return plan_gpus(table)


def plan_window_table(table: pd.DataFrame, totals: Mapping) -> pd.DataFrame:
    """The plan window by window as a page shows it: chosen columns under readable headers (formatted with
    `styled(frame, PLAN_WINDOW_FORMATS)`), indexed by window start."""
    out = pd.DataFrame({"requests": table["requests"].astype(int), "rate (req/s)": table["rate"].astype(float)})
    target = totals.get("target_attainment")
    found = target and all(f"target_{n}" in table for n in _plan_names(table))
    out["throughput-only mix"] = _window_mixes(table)
    out["throughput-only $/h"] = table["cost_per_hour"].astype(float)
    if "attainment" in table and table["attainment"].notna().any():
        out["throughput-only attainment %"] = table["attainment"].astype(float) * 100
    if found:
        shown = target_text(target["target"])
        out[f"mix found for {shown}"] = _window_mixes(table, "target_")
        out["found $/h"] = table["target_cost_per_hour"].astype(float)
        if "target_attainment" in table:
            out["found attainment %"] = table["target_attainment"].astype(float) * 100
    start = pd.to_datetime(table["start"])
    out.index = pd.Index(start.dt.strftime("%H:%M" if start.dt.normalize().nunique() == 1 else "%Y-%m-%d %H:%M"),
                         name="window start")
    return out


PLAN_WINDOW_FORMATS = {"requests": "{:,}", "rate (req/s)": "{:.2f}", "throughput-only $/h": "${:,.2f}",
                       "found $/h": "${:,.2f}", "throughput-only attainment %": "{:.1f}%",
                       "found attainment %": "{:.1f}%"}
