"""Figures, tables and HTML pages. Every heatmap puts input tokens on x and output tokens on y.

Plot functions take labelled DataFrames (input bucket x output bucket) and return the matplotlib
Figure; they never reorient data silently: the transpose for display happens here, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .files import write_text
from .profiles import GpuProfile, best_value
from .solver import SolveResult, routing_matrix

X_LABEL = "Input length (tokens)"
Y_LABEL = "Output length (tokens)"


def _display(matrix: pd.DataFrame) -> pd.DataFrame:
    """input x output -> rows = output buckets (largest on top), columns = input buckets."""
    return matrix.T.iloc[::-1]


def _heatmap(data: pd.DataFrame, title: str, *, fmt_cell, cmap="flare", vmin=None, vmax=None, ax=None):
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 5.5))
    shown = _display(data)
    sns.heatmap(shown, cmap=sns.color_palette(cmap, as_cmap=True), vmin=vmin, vmax=vmax, square=True,
                linewidths=0.5, cbar_kws={"shrink": 0.6}, annot=shown.map(fmt_cell), fmt="", ax=ax)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title(title)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def plot_workload(workload: pd.DataFrame, title: str = "Share of requests per size bucket", ax=None):
    """The seed's percent-annotated heatmap of a workload (shares), correctly oriented."""
    pct = workload * 100
    return _heatmap(pct, title, fmt_cell=lambda v: f"{v:.2f}%", vmin=0, ax=ax)


def plot_best_value(gpus: Mapping[str, GpuProfile], ax=None):
    """Per bucket: which GPU serves most requests per dollar, and by what factor over the next best."""
    best = best_value(gpus)
    adv = best["advantage"].unstack("output_tokens")
    names = best["best"].unstack("output_tokens")
    like = next(iter(gpus.values())).tputs
    adv, names = adv.loc[like.index, like.columns], names.loc[like.index, like.columns]
    labels = names.astype(str) + "\n" + adv.map(lambda a: "only" if np.isinf(a) else f"{a:.2f}x")
    colour = np.log2(adv.replace(np.inf, np.nan).astype(float)).fillna(0)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(9, 6))
    sns.heatmap(_display(colour), cmap="crest", annot=_display(labels), fmt="", linewidths=0.5,
                cbar_kws={"shrink": 0.6, "label": "log2(advantage)"}, ax=ax)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title("Most requests per dollar: best GPU and its advantage over the next best")
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def plot_routing(result: SolveResult, workload: pd.DataFrame):
    """One heatmap per GPU type in the plan: share of each bucket's requests routed to it."""
    used = [g for g, c in result.counts.items() if c > 0] or list(result.counts)
    fig, axes = plt.subplots(1, len(used), figsize=(7 * len(used), 5.5), squeeze=False)
    for ax, gpu in zip(axes[0], used):
        share = routing_matrix(result, gpu, workload) * 100
        _heatmap(share, f"{gpu}: % of each bucket routed ({result.counts[gpu]} GPUs, "
                        f"{result.utilization.get(gpu, 0):.0%} utilised)",
                 fmt_cell=lambda v: f"{v:.0f}%", cmap="Blues", vmin=0, vmax=100, ax=ax)
    fig.tight_layout()
    return fig


def format_savings(table: pd.DataFrame):
    """A pandas Styler for the savings table: counts as integers, $/h and % with two decimals."""
    gpu_cols = [c for c in table.columns if c not in ("cost_per_hour", "status", "savings_pct")]
    return (table.style.format({**{c: "{:.0f}" for c in gpu_cols}, "cost_per_hour": "${:.2f}",
                                "savings_pct": "{:.2f}%"}, na_rep="—")
            .set_caption("Counts per GPU type, $/hour, and what the mix saves against each policy"))


def render_html(notebook: str | Path, html: str | Path, *, hide_code: bool) -> Path:
    """Render an executed notebook to a self-contained HTML page (images embedded as data URIs)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code,
                            exclude_output_prompt=hide_code)
    body, _ = exporter.from_filename(str(notebook))
    return write_text(html, body)


def plot_lengths(requests: pd.DataFrame, label: str, *, max_input: int = 4096, max_output: int = 2048):
    """The seed's two length histograms with correct titles: prompt (input) and response (output) lengths.

    Requests beyond `max_input` / `max_output` are left out of the plot only; the title says how many.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, col, limit, what in ((axes[0], "input_tokens", max_input, "Prompt (input) length"),
                                 (axes[1], "output_tokens", max_output, "Response (output) length")):
        values = requests[col]
        shown = values[values < limit]
        sns.histplot(x=shown, element="step", stat="count", bins=50, alpha=0.5, ax=ax)
        ax.set_xlabel(f"{what} (tokens)")
        ax.set_ylabel("Requests")
        ax.set_title(f"{what}: {label}\n({len(values) - len(shown)} of {len(values)} requests >= {limit} not shown)")
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
    extra = [f"SLO {key['slo']}" if key.get("slo") not in (None, "not stated") else "",
             f"constraints {key['constraints']}" if key.get("constraints") not in (None, "none") else "",
             f"slice factor {key['slice_factor']}" if key.get("slice_factor", 1) != 1 else ""]
    extra = [e for e in extra if e]
    return f"{key['workload']} on {key['gpu_set']}" + (f" ({', '.join(extra)})" if extra else "")


def _panels(results: pd.DataFrame, height: float, columns: int = 3):
    """A figure with one panel per problem (up to `columns` a row), and (axis, key, rows) per panel."""
    groups = list(_groups(results))
    ncols = min(columns, len(groups))
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    return fig, [(ax, key, df) for ax, (key, df) in zip(axes.flat, groups)]


def _label_rate_axis(ax, ylabel: str, title: str, grid: bool = True) -> None:
    ax.set_xlabel("Request rate (requests/s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    if grid:
        ax.grid(alpha=0.3)


def plot_cost_vs_rate(results: pd.DataFrame):
    """Cost ($/h) against request rate, one step curve per policy, one panel per workload x GPU set."""
    fig, panels = _panels(results, 4.8)
    for ax, key, df in panels:
        for policy, d in df.groupby("policy", sort=True):
            d = d.sort_values("rate")
            ax.step(d["rate"], d["cost_per_hour"], where="post", marker="o", ms=3, label=policy,
                    lw=2.5 if not policy.startswith("single:") else 1.5)
        _label_rate_axis(ax, "Cost ($/hour)", _problem_title(key))
    fig.tight_layout()
    return fig


def plot_savings_vs_rate(results: pd.DataFrame):
    """Savings % of the reference mix against each other policy, per rate."""
    fig, panels = _panels(results, 4.2)
    for ax, key, df in panels:
        ref = df["reference"].iloc[0]
        for policy, d in df[df["policy"] != ref].groupby("policy", sort=True):
            d = d.sort_values("rate")
            ax.plot(d["rate"], d["savings_pct"], marker="o", ms=3, label=f"{ref} vs {policy}")
        ax.axhline(0, color="grey", lw=0.8)
        _label_rate_axis(ax, "Savings of the mix (%)", _problem_title(key))
    fig.tight_layout()
    return fig


def plot_mix(results: pd.DataFrame):
    """Stacked bars: the reference mix's GPU count per type at each rate."""
    fig, panels = _panels(results, 4.2)
    for ax, key, df in panels:
        mix = df[df["policy"] == df["reference"]].sort_values("rate")
        counts = mix[[c for c in mix.columns if c.startswith("n_")]].loc[:, lambda d: d.sum() > 0]
        bottom = np.zeros(len(mix))
        labels = [f"{r:g}" for r in mix["rate"]]
        for col in counts:
            ax.bar(labels, counts[col], bottom=bottom, label=col[2:])
            bottom += counts[col].to_numpy()
        _label_rate_axis(ax, "GPUs in the mix", f"{mix['reference'].iloc[0] if len(mix) else ''} mix: {_problem_title(key)}",
                         grid=False)
    fig.tight_layout()
    return fig


def mix_changes(results: pd.DataFrame) -> pd.DataFrame:
    """The rates at which the reference mix changes, with the mix before and after."""
    rows = []
    for key, df in _groups(results):
        mix = df[df["policy"] == df["reference"]].sort_values("rate")
        cols = [c for c in mix.columns if c.startswith("n_")]
        previous = None
        for rate, (_, row) in zip(mix["rate"], mix.iterrows()):
            now = ", ".join(f"{int(row[c])}x{c[2:]}" for c in cols if row[c] > 0) or "none"
            if now != previous:
                rows.append({**key, "rate": rate, "mix": now, "cost_per_hour": row["cost_per_hour"]})
            previous = now
    return pd.DataFrame(rows)


def savings_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per workload x GPU set x policy: the reference mix's savings (min, mean, max %) over the rates."""
    others = results[results["policy"] != results["reference"]]
    axes = [a for a in PROBLEM_AXES if a in results.columns]
    table = (others.groupby([*axes, "reference", "policy"])["savings_pct"]
             .agg(["min", "mean", "max", "count"]).round(2))
    return table.rename(columns={"min": "min_savings_pct", "mean": "mean_savings_pct",
                                 "max": "max_savings_pct", "count": "rates"})


def figure_data_uri(fig) -> str:
    """A matplotlib figure as an embedded PNG data URI (self-contained pages)."""
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _workload_item(sweep_dir: Path, name: str, value) -> str:
    """One list item: the workload's name, where it came from (dataset, tokenizer) and its report."""
    from html import escape

    from .workload import workload_source

    built = sweep_dir / "workloads" / name / "workload.csv"
    path = built if isinstance(value, dict) else Path(value)
    source = workload_source(path) if path.is_file() else "not built"
    built_by_notebook = isinstance(value, dict) and "blend" not in value
    link = f' (<a href="workloads/{escape(name)}/01_workload-shared.html">workload report</a>)' if built_by_notebook else ""
    return f"<li><b>{escape(name)}</b>: {escape(source)}{link}</li>"


def write_index(sweep_dir: str | Path, results: pd.DataFrame, manifest: dict) -> Path:
    """``index.html``: headline savings, the cost-vs-rate plot (embedded), links to the summary and every point."""
    from html import escape

    sweep_dir = Path(sweep_dir)
    spec = manifest.get("spec", {})
    points = manifest.get("points", {})
    done = sum(1 for p in points.values() if p.get("status") == "done")
    failed = {k: v for k, v in points.items() if v.get("status") == "failed"}
    headline = savings_summary(results).reset_index() if not results.empty else pd.DataFrame()
    changes = mix_changes(results) if not results.empty else pd.DataFrame()
    img = figure_data_uri(plot_cost_vs_rate(results)) if not results.empty else None
    link_rows = []
    rendered = sum(1 for p in points.values() if p.get("status") == "done" and p.get("rendered", True))
    for pid, entry in sorted(points.items(), key=lambda kv: (kv[1]["workload"], kv[1]["gpus"], kv[1]["rate"])):
        if entry.get("status") == "done" and not entry.get("rendered", True):
            continue      # solved, in results.csv, no report rendered for it
        if entry.get("status") == "done":
            link = (f'<a href="{escape(pid)}/02_allocation-shared.html">report</a> · '
                    f'<a href="{escape(pid)}/02_allocation.html">with code</a> · '
                    f'<a href="{escape(pid)}/02_allocation.ipynb">notebook</a>')
        else:
            link = f'<a href="failed/{escape(pid)}/traceback.txt">traceback</a>' if entry.get("status") == "failed" else ""
        gpu_set = entry["gpus"] + (f" @ SLO {entry['slo']}" if entry.get("slo") else "")
        link_rows.append(f"<tr><td>{escape(entry['workload'])}</td><td>{escape(gpu_set)}</td>"
                         f"<td>{entry['slice_factor']}</td><td>{entry['rate']:g}</td><td>{escape(entry.get('status', ''))}</td>"
                         f"<td>{link}</td><td>{escape(entry.get('error') or '')}</td></tr>")
    workloads = "".join(_workload_item(sweep_dir, k, v) for k, v in spec.get("workloads", {}).items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>melange-nb sweep {escape(str(spec.get('name', '')))}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Sweep {escape(str(spec.get('name', '')))}: cheapest GPU mix vs request rate</h1>
<p>{done} of {len(points)} points done, {len(failed)} failed. Solvers: {escape(', '.join(spec.get('solvers', [])))}
(the first is the reference mix). Rates: {escape(', '.join(f'{r:g}' for r in spec.get('rates', [])))} requests/s.</p>
<p><a href="03_sweep_summary-shared.html">Summary report</a> · <a href="03_sweep_summary.html">summary with code</a> ·
<a href="results.csv">results.csv</a> · <a href="results.parquet">results.parquet</a> · <a href="manifest.json">manifest.json</a></p>
<h2>Savings of the mix against each policy (%, over all rates)</h2>
{headline.to_html(index=False, na_rep="—") if not headline.empty else "<p>No completed points.</p>"}
<h2>Cost against request rate</h2>
{f'<img alt="Cost in dollars per hour against request rate for each policy" src="{img}">' if img else ""}
<h2>Rates where the mix changes</h2>
{changes.to_html(index=False) if not changes.empty else ""}
<h2>Workloads</h2><ul>{workloads}</ul>
<h2>Points</h2>
<p>Reports for {rendered} points (the spec's <code>render</code> choice); every solved point is a row of results.csv.</p>
<table><tr><th>workload</th><th>GPU set</th><th>slice factor</th><th>rate</th><th>status</th><th>links</th><th>error</th></tr>
{''.join(link_rows)}</table>
</body></html>
"""
    return write_text(sweep_dir / "index.html", page)
