"""How far to trust a prediction: compare two profiles, and fit predictions to measured buckets.

`compare_profiles(a, b)`: per GPU both files hold, the per-bucket ratio a/b (e.g. predicted /
measured), its median and its worst bucket (largest |log ratio|).

`calibrated_fill(predicted, measured)`: fills the buckets nobody measured with predictions
corrected by a model fit on the measured ones: log(measured / predicted) is a quadratic in the
(standardized) log input and output lengths, fit by ridge least squares (``RIDGE``) so that
with few measured buckets it is close to one factor per GPU and with more it bends with length.
Its leave-one-out error goes into the provenance. `calibration_curve` shows how many measured buckets it takes to predict the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..workload import bucket_midpoints
from . import GpuProfile, normalize_provenance


@dataclass(frozen=True)
class ProfileComparison:
    """Ratio a/b per bucket for one GPU; buckets where either is 0 are NaN and counted apart."""

    gpu_a: str
    gpu_b: str
    ratio: pd.DataFrame
    median: float
    worst: float
    worst_bucket: tuple[str, str] | None
    zero_in_one: int          # buckets that one profile serves and the other cannot (0)


def compare_profiles(a: Mapping[str, GpuProfile], b: Mapping[str, GpuProfile], *,
                     pairs: Mapping[str, str] | None = None) -> list[ProfileComparison]:
    """Per GPU present in both (or per `pairs` {name in a: name in b}): ratio a/b per bucket."""
    pairs = dict(pairs) if pairs else {n: n for n in a if n in b}
    if not pairs:
        raise InputError("gpu", f"the two profiles share no GPU name ({list(a)} vs {list(b)}); "
                                "pair them with --gpu NAME_A=NAME_B")
    out = []
    for name_a, name_b in pairs.items():
        for name, side in ((name_a, a), (name_b, b)):
            if name not in side:
                raise InputError("gpu", f"{name!r} is not in that profile file; it has {list(side)}")
        ta, tb = a[name_a].tputs, b[name_b].tputs
        if list(ta.index) != list(tb.index) or list(ta.columns) != list(tb.columns):
            raise InputError("gpu", f"{name_a} and {name_b} have different buckets ({list(ta.index)} x "
                                    f"{list(ta.columns)} vs {list(tb.index)} x {list(tb.columns)}); "
                                    "predict with the measured profile's --edges and --output-edges")
        both = (ta > 0) & (tb > 0)
        ratio = (ta / tb).where(both)
        logs = np.log(ratio.stack().dropna())
        if len(logs):
            worst_at = logs.abs().idxmax()
            worst, median = float(np.exp(logs[worst_at])), float(np.exp(logs.median()))
        else:
            worst_at, worst, median = None, float("nan"), float("nan")
        out.append(ProfileComparison(name_a, name_b, ratio, median, worst, worst_at,
                                     int(((ta > 0) ^ (tb > 0)).to_numpy().sum())))
    return out


def format_comparison(comparisons: Sequence[ProfileComparison], *, labels: tuple[str, str] = ("A", "B")) -> str:
    """Plain text: per GPU the median and worst ratio, then the ratio table (rows = input buckets)."""
    blocks = []
    for c in comparisons:
        where = f" at {c.worst_bucket[0]} in x {c.worst_bucket[1]} out" if c.worst_bucket else ""
        head = (f"{c.gpu_a} / {c.gpu_b} ({labels[0]} / {labels[1]}): median ratio {c.median:.2f}, "
                f"worst {c.worst:.2f}{where}, {int(c.ratio.notna().to_numpy().sum())} buckets compared")
        if c.zero_in_one:
            head += f", {c.zero_in_one} served by only one of them"
        blocks.append(head + "\n" + c.ratio.round(2).to_string(na_rep="-"))
    return "\n\n".join(blocks)


RIDGE = 0.1   # shrinks the length terms towards 0: with few measured buckets the fit is ~ one factor


def _design(index: Sequence[str], columns: Sequence[str]) -> np.ndarray:
    """Per bucket (rows in row-major order): 1, x, y, xy, x^2, y^2 with x, y the standardized log of
    the bucket's representative input and output length (midpoints; an open last bucket 2 x lo)."""
    def mids(labels):
        logs = np.log(np.maximum(bucket_midpoints(labels), 1.0))
        return (logs - logs.mean()) / (logs.std() or 1.0)
    x, y = np.meshgrid(mids(index), mids(columns), indexing="ij")
    x, y = x.ravel(), y.ravel()
    return np.column_stack([np.ones_like(x), x, y, x * y, x * x, y * y])


def _fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge least squares for log(measured / predicted); the intercept is not penalized."""
    penalty = RIDGE * np.eye(X.shape[1])
    penalty[0, 0] = 0.0
    return np.linalg.solve(X.T @ X + penalty, X.T @ y)


def fit_correction(predicted: pd.DataFrame, measured: pd.DataFrame, mask: pd.DataFrame | None = None
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit log(measured/predicted) on the `mask` buckets (default: where both are > 0).

    Returns (the six coefficients of `_design`, stats with ``n`` and the leave-one-out median
    and max relative error of the corrected predictions on those buckets).
    """
    if list(predicted.index) != list(measured.index) or list(predicted.columns) != list(measured.columns):
        raise InputError("measured", "must have the predicted profile's buckets (same edges)")
    use = (predicted > 0) & (measured > 0)
    if mask is not None:
        use &= mask.astype(bool)
    flat = use.to_numpy().ravel()
    X = _design(list(predicted.index), list(predicted.columns))[flat]
    y = np.log(measured.to_numpy().ravel()[flat] / predicted.to_numpy().ravel()[flat])
    if len(y) == 0:
        raise InputError("measured", "has no bucket that both the measurement and the prediction serve; measure at least one")
    errors = []
    for k in range(len(y)) if len(y) > 1 else []:
        keep = np.arange(len(y)) != k
        errors.append(abs(np.exp(X[k] @ _fit(X[keep], y[keep]) - y[k]) - 1))
    stats = {"n": int(len(y)), "loo_median_error": float(np.median(errors)) if errors else float("nan"),
             "loo_max_error": float(np.max(errors)) if errors else float("nan")}
    return _fit(X, y), stats


def calibrated_fill(predicted: GpuProfile | pd.DataFrame, measured: pd.DataFrame,
                    mask: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Measured buckets kept, the others filled with corrected predictions: (tputs, provenance).

    `measured`: the measured throughputs on the predicted profile's buckets; `mask` (same labels)
    says which buckets were measured (default: where `measured` > 0; a measured 0 needs a mask).
    The provenance holds ``notes`` (the fit and its leave-one-out error) and ``cell_notes``
    ("filled: calibrated prediction") for ``save_profiles``/``GpuProfile.meta``.
    """
    pred = predicted.tputs if isinstance(predicted, GpuProfile) else predicted
    measured = measured.reindex_like(pred)
    mask = (measured > 0) if mask is None else mask.reindex_like(pred).fillna(False).astype(bool)
    coef, stats = fit_correction(pred, measured.fillna(0.0), mask)
    factor = np.exp(_design(list(pred.index), list(pred.columns)) @ coef).reshape(pred.shape)
    filled = pd.DataFrame(np.where(mask.to_numpy(), measured.fillna(0.0).to_numpy(), pred.to_numpy() * factor),
                          index=pred.index, columns=pred.columns)
    note = (f"calibrated fill: predictions x a smooth correction in log input/output length (mean factor "
            f"{np.exp(coef[0]):.2f}), fit on {stats['n']} measured buckets; leave-one-out error median "
            f"{stats['loo_median_error']:.0%}, max {stats['loo_max_error']:.0%}")
    cells = [{"input": i, "output": o, "note": "filled: calibrated prediction"}
             for i in pred.index for o in pred.columns if not mask.loc[i, o]]
    provenance = normalize_provenance({"notes": [note], "cell_notes": cells}, index=list(pred.index),
                                      columns=list(pred.columns))
    return filled, {"notes": provenance["notes"], "cell_notes": provenance["cell_notes"], "fit": stats,
                    "coefficients": [float(c) for c in coef]}


def calibration_curve(predicted: pd.DataFrame, measured: pd.DataFrame, *, sizes: Sequence[int] = (1, 2, 4, 6, 8, 12, 16),
                      trials: int = 200, seed: int = 0, tolerance: float = 0.15) -> pd.DataFrame:
    """How many measured buckets it takes: for each count k, `trials` random choices of k measured
    buckets; the corrected predictions are scored on the other buckets (relative error).

    Columns: ``measured`` (k), ``median_error`` and ``p90_error`` (median over trials),
    ``within`` (median share of unmeasured buckets within `tolerance`), ``all_within`` (share of
    trials where every unmeasured bucket is within it), and ``median_error_no_prediction``: the
    same smooth fit made to the measured numbers alone, to show what the prediction adds.
    """
    rng = np.random.default_rng(seed)
    serve = ((predicted > 0) & (measured > 0)).to_numpy().ravel()
    cells = np.flatnonzero(serve)
    X = _design(list(predicted.index), list(predicted.columns))
    log_pred = np.log(np.where(serve, predicted.to_numpy().ravel(), 1.0))
    log_meas = np.log(np.where(serve, measured.to_numpy().ravel(), 1.0))
    rows = []
    for k in sizes:
        if k >= len(cells):
            continue
        med, p90, within, all_in, alone = [], [], [], [], []
        for _ in range(trials):
            chosen = rng.choice(cells, size=k, replace=False)
            rest = np.setdiff1d(cells, chosen)
            corrected = log_pred[rest] + X[rest] @ _fit(X[chosen], log_meas[chosen] - log_pred[chosen])
            err = np.abs(np.exp(corrected - log_meas[rest]) - 1)
            med.append(np.median(err))
            p90.append(np.quantile(err, 0.9))
            within.append(np.mean(err <= tolerance))
            all_in.append(bool((err <= tolerance).all()))
            alone.append(np.median(np.abs(np.exp(X[rest] @ _fit(X[chosen], log_meas[chosen]) - log_meas[rest]) - 1)))
        rows.append({"measured": k, "median_error": float(np.median(med)), "p90_error": float(np.median(p90)),
                     "within": float(np.median(within)), "all_within": float(np.mean(all_in)),
                     "median_error_no_prediction": float(np.median(alone))})
    return pd.DataFrame(rows)
