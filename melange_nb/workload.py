"""Workloads: labelled 2D histograms of request sizes (input bucket x output bucket).

A workload is a pandas DataFrame whose index (name ``input_tokens``) holds input-token buckets and
whose columns (name ``output_tokens``) hold output-token buckets; values are shares of requests
and sum to 1. Bucket labels are ``lo-hi`` with ``hi`` exclusive, or ``lo+`` for an open last
bucket. GPU throughput matrices use exactly the same labels (see profiles.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import InputError

INPUT_AXIS = "input_tokens"
OUTPUT_AXIS = "output_tokens"
DEFAULT_EDGES = (0, 25, 100, 250, 500, 1000, 2000)
SHARE_TOLERANCE = 1e-6


def bucket_labels(edges: Sequence[float], open_last: bool = False) -> list[str]:
    """Labels ``lo-hi`` for consecutive edges; with `open_last`, one more ``hi+`` bucket."""
    edges = [int(e) if float(e).is_integer() else float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise InputError("edges", f"need at least two strictly increasing edges, got {edges}")
    labels = [f"{a}-{b}" for a, b in zip(edges, edges[1:])]
    return labels + [f"{edges[-1]}+"] if open_last else labels


def labelled_matrix(values, index: Sequence[str], columns: Sequence[str], *, field: str) -> pd.DataFrame:
    """A float DataFrame (input bucket x output bucket) from a nested list, checked for shape."""
    arr = np.asarray(values, dtype=float) if _is_numeric(values) else None
    if arr is None or arr.ndim != 2:
        raise InputError(field, "must be a 2D matrix of numbers (rows = input buckets, columns = output buckets)")
    if arr.shape != (len(index), len(columns)):
        raise InputError(field, f"has shape {arr.shape[0]}x{arr.shape[1]} but the buckets are "
                                f"{len(index)} input x {len(columns)} output; give one row per input bucket")
    return pd.DataFrame(arr, index=pd.Index(list(index), name=INPUT_AXIS),
                        columns=pd.Index(list(columns), name=OUTPUT_AXIS))


def _is_numeric(values) -> bool:
    try:
        np.asarray(values, dtype=float)
        return True
    except (TypeError, ValueError):
        return False


def check_workload(workload: pd.DataFrame, *, field: str = "workload") -> pd.DataFrame:
    """Validate a workload: labelled axes, finite non-negative shares summing to 1."""
    if not isinstance(workload, pd.DataFrame):
        raise InputError(field, "must be a pandas DataFrame (input bucket x output bucket)")
    if workload.index.name != INPUT_AXIS or workload.columns.name != OUTPUT_AXIS:
        raise InputError(field, f"axes must be named index={INPUT_AXIS!r}, columns={OUTPUT_AXIS!r}, "
                                f"got {workload.index.name!r}, {workload.columns.name!r}")
    values = workload.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise InputError(field, "has NaN or infinite shares; every bucket needs a number (0 for none)")
    if (values < 0).any():
        raise InputError(field, "has negative shares; shares are fractions of requests in [0, 1]")
    total = values.sum()
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise InputError(field, f"shares sum to {total:.6g}, not 1 (tolerance {SHARE_TOLERANCE:g}); "
                                "normalise them (divide by their sum)")
    return workload


def read_workload(path: str | Path) -> pd.DataFrame:
    """Read a workload CSV (first column = input bucket labels, header = output bucket labels)."""
    path = Path(path)
    field = f"workload file {path}"
    if not path.is_file():
        raise InputError(field, "not found; pass a CSV written by `melange-nb workload` or params/workloads/*.csv")
    try:
        df = pd.read_csv(path, index_col=0, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(field, f"is not a readable CSV ({exc.__class__.__name__}: {exc})".replace("\n", " "))
    df.index = df.index.astype(str)
    df.index.name, df.columns.name = INPUT_AXIS, OUTPUT_AXIS
    if not all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        raise InputError(field, "has non-numeric shares; every cell must be a number")
    return check_workload(df.astype(float), field=field)


def write_workload(workload: pd.DataFrame, path: str | Path) -> Path:
    """Write a workload CSV atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    workload.to_csv(tmp)
    tmp.replace(path)
    return path


def check_same_buckets(a: pd.DataFrame, b: pd.DataFrame, *, what: str) -> None:
    """Raise unless `a` and `b` have identical bucket labels in the same order (no silent reshape)."""
    if list(a.index) != list(b.index) or list(a.columns) != list(b.columns):
        raise InputError(what, f"buckets differ: workload has inputs {list(a.index)} x outputs "
                               f"{list(a.columns)}, {what} has inputs {list(b.index)} x outputs "
                               f"{list(b.columns)}; profile the GPU on the workload's buckets or rebucket the workload")


def workload_source(path: str | Path) -> str:
    """Where a workload CSV came from: its JSON sidecar's ``source``, else its leading ``#`` lines."""
    import json

    path = Path(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        return "; ".join(f"{k}: {meta[k]}" for k in ("source", "tokenizer", "requests") if k in meta)
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return " ".join(lines) or "no provenance recorded"
