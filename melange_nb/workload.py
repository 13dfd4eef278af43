"""Workloads: labelled 2D histograms of request sizes (input bucket x output bucket).

A workload is a pandas DataFrame whose index (name ``input_tokens``) holds input-token buckets and
whose columns (name ``output_tokens``) hold output-token buckets; values are shares of requests
and sum to 1. Bucket labels are ``lo-hi`` with ``hi`` exclusive, or ``lo+`` for an open last
bucket. GPU throughput matrices use exactly the same labels (see profiles.py).
"""
from __future__ import annotations

import io

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .files import atomic_write, path_lookup, write_json

INPUT_AXIS = "input_tokens"
OUTPUT_AXIS = "output_tokens"
DEFAULT_EDGES = (0, 25, 100, 250, 500, 1000, 2000)
SHARE_TOLERANCE = 1e-6
MAX_TOKENS = 10**12     # a token count above this is an error, not a request (and would overflow int64 arithmetic)


MAX_BUCKETS = 256     # request-size buckets per axis (input or output)


def bucket_labels(edges: Sequence[float], open_last: bool = False) -> list[str]:
    """Labels ``lo-hi`` for consecutive edges; with `open_last`, one more ``hi+`` bucket."""
    if len(edges) > MAX_BUCKETS + 1:
        raise InputError("edges", f"make {len(edges) - 1:,} buckets; at most {MAX_BUCKETS} per axis (every bucket is "
                                  "profiled and solved): use fewer edges")
    edges = [int(e) if float(e).is_integer() else float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise InputError("edges", f"need at least two strictly increasing edges, got {edges}")
    labels = [f"{a}-{b}" for a, b in zip(edges, edges[1:])]
    return labels + [f"{edges[-1]}+"] if open_last else labels


def parse_bucket_labels(labels: Sequence[str], field: str = "buckets") -> tuple[list[int | float], bool]:
    """`bucket_labels` backwards: consecutive ``lo-hi`` labels (plus an optional last ``lo+``) to their
    edges and the open-last flag; anything else is an `InputError` naming `field`. The one reader of
    bucket labels (`check_bucket_labels` gives the reason a label is wrong)."""
    try:
        bounds = _label_bounds(labels, field)
    except InputError as exc:
        raise InputError(field, f"bucket labels {[str(x) for x in labels]} are not consecutive 'lo-hi' labels") from exc
    closed = [hi for _, hi in bounds if hi is not None]
    if not closed:
        raise InputError(field, "needs at least one closed bucket 'lo-hi'")
    edges = [bounds[0][0], *closed]
    return [int(e) if e.is_integer() else e for e in edges], bounds[-1][1] is None


def bucket_midpoints(labels: Sequence[str], field: str = "buckets") -> list[float]:
    """A representative length per bucket: the midpoint, and twice the lower edge for an open last bucket."""
    edges, open_last = parse_bucket_labels(labels, field)
    return [(lo + hi) / 2 for lo, hi in zip(edges, edges[1:])] + ([2.0 * edges[-1]] if open_last else [])


def labelled_matrix(values, index: Sequence[str], columns: Sequence[str], *, field: str) -> pd.DataFrame:
    """A float DataFrame (input bucket x output bucket) from a nested list, checked for shape."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 2:
        raise InputError(field, "must be a 2D matrix of numbers (rows = input buckets, columns = output buckets)")
    if arr.shape != (len(index), len(columns)):
        raise InputError(field, f"has shape {arr.shape[0]}x{arr.shape[1]} but the buckets are "
                                f"{len(index)} input x {len(columns)} output; give one row per input bucket")
    return pd.DataFrame(arr, index=pd.Index(list(index), name=INPUT_AXIS),
                        columns=pd.Index(list(columns), name=OUTPUT_AXIS))


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
        raise InputError(field, f"not found; check the path ({path_lookup(path)}), or pass a CSV written by "
                                "`melange-nb workload` or params/workloads/*.csv")
    from .files import read_text_file

    text = read_text_file(path, "workload file", "params/workloads/arena-seed.csv")   # UTF-8, or one line
    try:
        df = pd.read_csv(io.StringIO(text), index_col=0, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise InputError(field, f"is not a readable CSV ({exc.__class__.__name__}: {exc})".replace("\n", " "))
    df.index = df.index.astype(str)
    df.index.name, df.columns.name = INPUT_AXIS, OUTPUT_AXIS
    header = _raw_header(text)     # pandas renames a repeated column ("25-100.1"): check the file's own header
    check_bucket_labels(list(df.index), f"{field}: input buckets (first column)")
    check_bucket_labels(header if len(header) == len(df.columns) else list(df.columns),
                        f"{field}: output buckets (header)")
    if not all(pd.api.types.is_numeric_dtype(t) for t in df.dtypes):
        raise InputError(field, "has non-numeric shares; every cell must be a number")
    return check_workload(df.astype(float), field=field)


_LABEL = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?)|(\+))$")


def check_bucket_labels(labels: Sequence[str], where: str) -> None:
    """Labels must be consecutive buckets ``lo-hi`` (hi exclusive, each hi the next lo), the last may be ``lo+``."""
    _label_bounds(labels, where)


def _label_bounds(labels: Sequence[str], where: str) -> list[tuple[float, float | None]]:
    """(lo, hi) per bucket label, hi None for an open last ``lo+``; the reason in an `InputError` otherwise."""
    previous_hi, bounds = None, []
    for k, label in enumerate(labels):
        m = _LABEL.match(str(label).strip())
        if not m:
            raise InputError(where, f"label {label!r} is not a bucket `lo-hi` or `lo+` (token counts, e.g. 25-100)")
        lo, hi, open_ = float(m.group(1)), m.group(2), m.group(3)
        if open_ and k != len(labels) - 1:
            raise InputError(where, f"open bucket {label!r} must be the last one")
        if hi is not None and float(hi) <= lo:
            raise InputError(where, f"bucket {label!r} is empty; write lo-hi with lo < hi")
        if previous_hi is not None and lo != previous_hi:
            raise InputError(where, f"bucket {label!r} does not start where the one before ends ({previous_hi:g}); "
                                    "labels must be distinct, increasing and adjacent")
        previous_hi = float(hi) if hi is not None else None
        bounds.append((lo, previous_hi))
    return bounds


def _raw_header(text: str) -> list[str]:
    import csv

    for row in csv.reader(line for line in text.splitlines() if not line.startswith("#")):
        return [c.strip() for c in row[1:]]
    return []


def write_workload(workload: pd.DataFrame, path: str | Path) -> Path:
    """Write a workload CSV atomically (temporary name, then rename)."""
    return atomic_write(path, workload.to_csv)


def check_same_buckets(a: pd.DataFrame, b: pd.DataFrame, *, what: str) -> None:
    """Raise unless `a` and `b` have identical bucket labels in the same order (no silent reshape).

    The message ends with the ``melange-nb workload`` options that build the workload on `b`'s buckets."""
    if list(a.index) != list(b.index) or list(a.columns) != list(b.columns):
        raise InputError(what, f"buckets differ: the workload has input {bucket_span(a.index)} and output "
                               f"{bucket_span(a.columns)}, {what} has input {bucket_span(b.index)} and output "
                               f"{bucket_span(b.columns)}; build the workload on its edges: {rebucket_hint(b)}")


def bucket_span(labels: Sequence[str]) -> str:
    """``0-25 to 1000-2000 tokens, 6 buckets``: a bucket axis in a few words."""
    return f"{labels[0]} to {labels[-1]} tokens, {len(labels)} buckets"


def labels_to_edges(labels: Sequence[str]) -> str:
    """Bucket labels ``lo-hi`` (and an open ``hi+``) back to the comma-separated edges the CLI takes."""
    return ",".join(str(e) for e in parse_bucket_labels(labels)[0])


def rebucket_hint(like: pd.DataFrame) -> str:
    """The ``melange-nb workload`` options that build a workload on `like`'s buckets (a profile's tputs)."""
    try:
        edges, output_edges = labels_to_edges(like.index), labels_to_edges(like.columns)
    except InputError:          # not consecutive lo-hi token ranges: no edges to give
        return f"its buckets are input {list(like.index)} x output {list(like.columns)}"
    return (f"melange-nb workload ... --edges {edges} --output-edges {output_edges}"
            + (" --overflow open" if str(like.index[-1]).endswith("+") else ""))


def workload_meta(path: str | Path) -> dict:
    """A workload CSV's JSON sidecar (source, tokenizer, requests, dropped, overflow, ...); {} when it has none."""
    from .files import read_json

    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        return {}
    meta = read_json(sidecar, "workload sidecar", "the .json that `melange-nb workload` writes beside its CSV",
                     allow_nan=True)
    if not isinstance(meta, dict):
        raise InputError(f"workload sidecar {sidecar}", "must be a JSON object; delete it or rebuild the workload")
    return meta


def workload_source(path: str | Path) -> str:
    """Where a workload CSV came from: its JSON sidecar's ``source``, else its leading ``#`` lines."""
    path = Path(path)
    meta = workload_meta(path)
    if meta:
        return "; ".join(f"{k}: {meta[k]}" for k in ("source", "tokenizer", "requests") if k in meta)
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return " ".join(lines) or "no provenance recorded"


# ---------------------------------------------------------------- histograms from request lengths

OVERFLOW_POLICIES = ("drop", "clip", "open")


def histogram(requests: pd.DataFrame, *, input_edges: Sequence[float] = DEFAULT_EDGES,
              output_edges: Sequence[float] | None = None, overflow: str = "drop") -> tuple[pd.DataFrame, dict]:
    """(workload, report) from a per-request table with ``input_tokens`` and ``output_tokens``.

    Buckets are ``[lo, hi)``. A request overflows when its input or output is >= the last edge
    (or below the first). `overflow`: ``drop`` leaves it out (counted and reported), ``clip``
    puts it in the nearest edge bucket, ``open`` adds an open-ended last bucket ``hi+`` on both
    axes (requests below the first edge are then dropped and counted). The report's percentiles
    describe exactly the requests in the histogram.
    """
    if overflow not in OVERFLOW_POLICIES:
        raise InputError("overflow", f"must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    output_edges = input_edges if output_edges is None else output_edges
    in_labels = bucket_labels(input_edges, open_last=overflow == "open")
    out_labels = bucket_labels(output_edges, open_last=overflow == "open")
    x = requests["input_tokens"].to_numpy(dtype=float)
    y = requests["output_tokens"].to_numpy(dtype=float)
    if len(x) == 0:
        raise InputError("requests", "there are no requests to histogram; check the dataset and the turn policy")
    i, j, keep, above, below = bucket_index(x, y, input_edges, output_edges, overflow)
    counts = np.zeros((len(in_labels), len(out_labels)))
    np.add.at(counts, (i[keep], j[keep]), 1)
    total = int(keep.sum())
    if total == 0:
        raise InputError("edges", f"every request falls outside the edges {list(input_edges)} x {list(output_edges)}; widen them or use overflow=open")
    workload = labelled_matrix(counts / total, in_labels, out_labels, field="histogram")
    report = {"requests": int(len(x)), "in_histogram": total, "overflow_policy": overflow,
              "beyond_last_edge": int(above.sum()), "below_first_edge": int(below.sum()),
              "dropped": int(len(x) - total), "dropped_share": float((len(x) - total) / len(x)),
              "input_edges": list(input_edges), "output_edges": list(output_edges),
              "stats": length_stats(x[keep], y[keep]).to_dict()}
    return workload, report


def bucket_index(x: np.ndarray, y: np.ndarray, input_edges: Sequence[float], output_edges: Sequence[float],
                 overflow: str):
    """(i, j, keep, above, below) per request: input and output bucket positions under `histogram`'s
    overflow policy, whether the request is kept, and whether it lies beyond the last / below the first edge."""
    i = np.searchsorted(np.asarray(input_edges, dtype=float), x, side="right") - 1
    j = np.searchsorted(np.asarray(output_edges, dtype=float), y, side="right") - 1
    n_in, n_out = len(input_edges) - 1, len(output_edges) - 1
    above = (i >= n_in) | (j >= n_out)
    below = (i < 0) | (j < 0)
    if overflow == "clip":
        i, j = np.clip(i, 0, n_in - 1), np.clip(j, 0, n_out - 1)
        keep = np.ones(len(x), dtype=bool)
    elif overflow == "open":
        keep = ~below
    else:
        keep = ~(above | below)
    return i, j, keep, above, below


def histogram_from_counts(cells: np.ndarray, kept: pd.DataFrame, *, requests: int, above: int, below: int,
                          input_edges: Sequence[float] = DEFAULT_EDGES, output_edges: Sequence[float] | None = None,
                          overflow: str = "drop") -> tuple[pd.DataFrame, dict]:
    """`histogram`'s (workload, report) from counts instead of one row per request, for engines that
    count on a cluster: `cells` = requests kept per (input, output) bucket position, `kept` = kept
    requests per length (index ``tokens``, columns ``input_tokens``/``output_tokens``), plus the
    numbers of requests in all, beyond the last edge and below the first. Same numbers as `histogram`
    on the same requests, percentiles included (numpy's linear rule on the counted order statistics)."""
    if overflow not in OVERFLOW_POLICIES:
        raise InputError("overflow", f"must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    output_edges = input_edges if output_edges is None else output_edges
    in_labels = bucket_labels(input_edges, open_last=overflow == "open")
    out_labels = bucket_labels(output_edges, open_last=overflow == "open")
    if requests == 0:
        raise InputError("requests", "there are no requests to histogram; check the dataset and the turn policy")
    total = int(np.asarray(cells).sum())
    if total == 0:
        raise InputError("edges", f"every request falls outside the edges {list(input_edges)} x {list(output_edges)}; widen them or use overflow=open")
    workload = labelled_matrix(np.asarray(cells, dtype=float) / total, in_labels, out_labels, field="histogram")
    stats = {}
    for name in ("input_tokens", "output_tokens"):
        counts = kept[name][kept[name] > 0].sort_index()     # order statistics need ascending lengths
        values, n = counts.index.to_numpy(dtype=float), counts.to_numpy(dtype=np.int64)
        stats[name] = {"count": int(n.sum()), **{f"p{q}": _percentile_of_counts(values, n, q) for q in (50, 90, 99)},
                       "max": np.float64(values.max()), "mean": np.float64(float((values * n).sum()) / n.sum())}
    report = {"requests": int(requests), "in_histogram": total, "overflow_policy": overflow,
              "beyond_last_edge": int(above), "below_first_edge": int(below),
              "dropped": int(requests - total), "dropped_share": float((requests - total) / requests),
              "input_edges": list(input_edges), "output_edges": list(output_edges),
              "stats": pd.DataFrame(stats).T.to_dict()}
    return workload, report


def _percentile_of_counts(values: np.ndarray, counts: np.ndarray, q: float) -> np.float64:
    """np.percentile(np.repeat(values, counts), q) (method linear) without building the repeated array."""
    n = int(counts.sum())
    virtual = (n - 1) * np.true_divide(q, 100)
    previous = np.floor(virtual)
    gamma = np.float64(virtual - previous)
    lo = min(int(previous), n - 1)
    hi = min(lo + 1, n - 1)
    cumulative = np.cumsum(counts)
    a, b = (np.float64(values[np.searchsorted(cumulative, k, side="right")]) for k in (lo, hi))
    diff = b - a                      # numpy's _lerp, both branches, for bit-identical results
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def length_stats(inputs, outputs) -> pd.DataFrame:
    """p50/p90/p99/max/mean of input and output lengths (the seed's print_distribution)."""
    rows = {}
    for name, v in (("input_tokens", np.asarray(inputs, dtype=float)), ("output_tokens", np.asarray(outputs, dtype=float))):
        rows[name] = {"count": len(v), "p50": np.percentile(v, 50), "p90": np.percentile(v, 90),
                      "p99": np.percentile(v, 99), "max": v.max(), "mean": v.mean()}
    return pd.DataFrame(rows).T


def read_trace(path: str | Path, *, input_column: str = "ContextTokens",
               output_column: str = "GeneratedTokens") -> pd.DataFrame:
    """A length trace (CSV or Parquet, one row per request) as ``input_tokens``/``output_tokens``.

    Non-numeric, missing or negative values are an error naming the column and the first bad row.
    """
    path = Path(path)
    field = f"trace {path}"
    if not path.is_file():
        raise InputError(field, f"not found; check the path ({path_lookup(path)})")
    try:
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(field, f"is not UTF-8 text (undecodable byte at offset {exc.start}); save it as UTF-8") from None
    except Exception as exc:
        raise InputError(field, f"could not be read ({type(exc).__name__}); give a CSV or Parquet file") from exc
    missing = [c for c in (input_column, output_column) if c not in df.columns]
    if missing:
        raise InputError(field, f"has no column(s) {missing}; it has {list(df.columns)}; "
                                "set --input-column/--output-column")
    if df.empty:
        raise InputError(field, "has no rows")
    out = {}
    for col, name in ((input_column, "input_tokens"), (output_column, "output_tokens")):
        if pd.api.types.is_bool_dtype(df[col]):
            raise InputError(f"{path.name}: {col}", "holds true/false values; token counts must be whole numbers")
        values = pd.to_numeric(df[col], errors="coerce")
        if values.dtype == object:      # integers beyond int64/uint64: far beyond any real token count
            values = pd.Series([float(v) if v is not None else np.nan for v in values])
        bad = values.isna() | (values < 0) | (values != np.floor(values)) | (values > MAX_TOKENS)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path.name}: {col}", f"row {row + 2} holds {_plain(df[col].iloc[row])!r}; token counts "
                                                    f"must be whole numbers from 0 to {MAX_TOKENS:.0e}")
        out[name] = values.astype(np.int64).to_numpy()
    return pd.DataFrame(out)


def blend(workloads: Mapping[str, pd.DataFrame], weights: Mapping[str, float]) -> pd.DataFrame:
    """Mix workloads by weights (e.g. the paper's 80% chat / 20% long documents); buckets must match."""
    if set(workloads) != set(weights):
        raise InputError("weights", f"give one weight per workload: workloads {sorted(workloads)}, weights {sorted(weights)}")
    from .schemas import number

    w = np.array([number(weights[k], f"weights.{k}", minimum=0, what="a number >= 0") for k in workloads])
    if w.sum() <= 0:
        raise InputError("weights", f"must be non-negative numbers with a positive sum, got {dict(weights)}")
    names = list(workloads)
    first = workloads[names[0]]
    for name in names[1:]:
        check_same_buckets(first, workloads[name], what=f"workload {name}")
    mixed = sum(workloads[n] * (wt / w.sum()) for n, wt in zip(names, w))
    return check_workload(mixed, field="blend")


def blend_files(weights: Mapping[str, float]) -> tuple[pd.DataFrame, dict]:
    """(workload, report) mixing workload CSVs by weight; the report keeps each part's provenance."""
    parts = {str(path): read_workload(path) for path in weights}
    mixed = blend(parts, {str(k): v for k, v in weights.items()})
    return mixed, blend_provenance({str(k): v for k, v in weights.items()}, {str(k): k for k in weights},
                                   label=lambda part: Path(part).name)


def blend_provenance(weights: Mapping[str, float], files: Mapping[str, str | Path], *, label=str) -> dict:
    """The provenance record of a blend (its ``.json`` sidecar): ``source``, "blend of <label> x <share>,
    ...", and per part its share of the weight, its file and that file's own source."""
    total = sum(weights.values())
    return {"source": "blend of " + ", ".join(f"{label(k)} x {w / total:.3g}" for k, w in weights.items()),
            "parts": {k: {"weight": w / total, "file": str(files[k]), "source": workload_source(files[k])}
                      for k, w in weights.items()}}


def check_histogram_path(path: str | Path, field: str = "output") -> Path:
    """Fail early unless `path` can take a workload CSV plus its ``.json`` sidecar (which must differ from it)."""
    from .files import check_output_file

    path = check_output_file(path, field)
    if path.suffix.lower() == ".json":
        raise InputError(field, f"{path} would be overwritten by its own .json sidecar; name the workload CSV "
                                f"{path.with_suffix('.csv').name}")
    return path


def save_histogram(workload: pd.DataFrame, report: Mapping, path: str | Path) -> Path:
    """Write the workload CSV and its JSON sidecar (source, tokenizer, requests, overflow, edges)."""
    path = write_workload(workload, check_histogram_path(path))
    write_json(path.with_suffix(".json"), report)
    return path


ENGINES = ("datasets", "ray")


def build_workload(*, dataset: str | None = None, trace: str | Path | None = None,
                   input_column: str = "ContextTokens", output_column: str = "GeneratedTokens",
                   edges: Sequence[float] = DEFAULT_EDGES, output_edges: Sequence[float] | None = None,
                   overflow: str = "drop", engine: str = "datasets", ray_address: str | None = None,
                   **chat_options) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(workload, requests, report) from a chat dataset (`dataset`, see chats.chat_requests) or a length trace.

    The report says where every number came from: source, tokenizer, counting policy, skips,
    overflow, edges, length percentiles and, for a chat dataset, the engine that tokenized it.
    `engine="ray"` tokenizes and counts on a Ray cluster (`ray_address`, else RAY_ADDRESS, else a
    local Ray; see scale.py): the same histogram and report, and instead of one row per request
    `requests` is then the table of request counts per length (scale.length_counts).
    """
    if (dataset is None) == (trace is None):
        raise InputError("dataset/trace", "give exactly one: a chat dataset (name, path or synthetic) or a length trace file")
    if engine not in ENGINES:
        raise InputError("engine", f"must be one of {ENGINES}, got {engine!r}")
    if engine == "ray":
        if trace is not None:
            raise InputError("engine", "ray tokenizes chat datasets; a length trace already holds token counts: drop --engine ray")
        from .scale import ray_chat_histogram
        return ray_chat_histogram(dataset, address=ray_address, edges=edges, output_edges=output_edges,
                                  overflow=overflow, **chat_options)
    if ray_address is not None:
        raise InputError("ray_address", "applies to --engine ray only; add --engine ray or drop the address")
    if trace is not None:
        requests = read_trace(trace, input_column=input_column, output_column=output_column)
        provenance = {"source": f"trace {Path(trace).name} (columns {input_column}, {output_column})",
                      "tokenizer": "none (the trace holds token counts)"}
    else:
        from .chats import chat_requests
        requests, info = chat_requests(dataset, **chat_options)
        provenance = {**chat_provenance(info), "engine": "datasets"}
    workload, report = histogram(requests, input_edges=edges, output_edges=output_edges, overflow=overflow)
    return workload, requests, {**provenance, **report}


def chat_provenance(info: Mapping) -> dict:
    """The sidecar's source, tokenizer, dataset, counts and cache entries for a tokenized chat dataset
    (`info` as chats.chat_requests returns it); both engines write exactly these."""
    ds, tok, counts = info["dataset"], info["tokenizer"], info["counts"]
    return {"source": f"{ds['source']} ({ds.get('note')}; split {ds.get('split')}, "
                      f"{ds.get('conversations')} conversations)",
            "tokenizer": f"{tok['name']} ({tok['note']}; special tokens {counts['special_tokens']}, "
                         f"chat template {counts['chat_template']})",
            "dataset": ds, "counts": counts, "cache": info.get("cache")}


def _plain(value):
    """A numpy scalar as its Python value, so messages read `-3`, not `np.int64(-3)`."""
    return value.item() if hasattr(value, "item") else value


def pad_workload(workload: pd.DataFrame, index: Sequence[str], columns: Sequence[str], *, field: str = "workload") -> pd.DataFrame:
    """`workload` on wider buckets (`index` x `columns`): its own labels must come first, in order; the new
    buckets get share 0. For a histogram that holds no requests there (e.g. the seed's Arena histogram, whose
    requests of 2000+ tokens were dropped) meeting profiles with longer edges."""
    for axis, have, want in ((INPUT_AXIS, list(workload.index), list(index)), (OUTPUT_AXIS, list(workload.columns), list(columns))):
        if want[:len(have)] != have:
            raise InputError(field, f"cannot pad {axis} buckets {have} to {want}: the workload's buckets must be "
                                    "the first of the target's, in order; rebuild the workload on the profile's edges")
    padded = workload.reindex(index=list(index), columns=list(columns), fill_value=0.0)
    padded.index.name, padded.columns.name = INPUT_AXIS, OUTPUT_AXIS
    return check_workload(padded, field=field)
