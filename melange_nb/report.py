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
    html = Path(html)
    tmp = html.with_name(f".{html.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html)
    return html


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
