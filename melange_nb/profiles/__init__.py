"""GPU profiles: hourly cost plus profiled max throughput (requests/s) per request-size bucket.

A profile's ``tputs`` is a DataFrame with the workload's labels (index ``input_tokens``, columns
``output_tokens``). A throughput of 0 means this GPU cannot serve that bucket (memory, SLO).
Profile files are YAML (``params/gpus/*.yaml``)::

    model: Llama-2-7B
    slo: {tpot_ms: 120}            # or null when unknown; free-form metadata
    source: where the numbers come from
    input_edges:  [0, 25, 100, 250, 500, 1000, 2000]
    output_edges: [0, 25, 100, 250, 500, 1000, 2000]
    open_last_input: false         # true: one more open-ended input bucket "2000+" (likewise open_last_output)
    gpus:                          # a mapping name -> {cost, tputs}, or a list of {name, cost, tputs}
      A10G: {cost: 1.01, tputs: [[...], ...]}   # rows = input buckets, columns = output buckets
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from ..errors import InputError
from ..files import read_json, read_yaml
from .. import schemas
from ..workload import bucket_labels, labelled_matrix


@dataclass(frozen=True)
class GpuProfile:
    """One GPU type: name, $/hour and max requests/s per bucket (input x output)."""

    name: str
    cost: float
    tputs: pd.DataFrame
    meta: Mapping[str, Any] = field(default_factory=dict)


def parse_gpu_info(gpu_info, index: Sequence[str], columns: Sequence[str], *,
                   meta: Mapping[str, Any] | None = None, field: str = "gpu_info") -> dict[str, GpuProfile]:
    """Profiles from melange-release's ``gpu_info``: a list of {name, cost, tputs} or a mapping name -> {cost, tputs}."""
    if isinstance(gpu_info, Mapping):
        for name, spec in gpu_info.items():
            if not isinstance(spec, Mapping):
                raise InputError(f"{field}.{name}", f"must be a mapping with keys cost and tputs, got {type(spec).__name__}")
        entries = [{**spec, "name": name} for name, spec in gpu_info.items()]
    elif isinstance(gpu_info, list):
        entries = gpu_info
    else:
        raise InputError(field, "must be a mapping name -> {cost, tputs} or a list of {name, cost, tputs}")
    if not entries:
        raise InputError(field, "lists no GPU; give at least one GPU type")
    gpus: dict[str, GpuProfile] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InputError(f"{field}[{i}]", "must be a mapping with keys name, cost, tputs")
        raw_name = entry.get("name")
        if isinstance(raw_name, int) and not isinstance(raw_name, bool):
            raw_name = str(raw_name)          # a YAML key such as 4090
        name = raw_name.strip() if isinstance(raw_name, str) else ""
        where = f"{field}.{name or i}"
        if not name:
            raise InputError(where, f"has no usable `name` (got {raw_name!r}); give each GPU type a name (text)")
        if name in gpus:
            raise InputError(where, "appears twice; GPU names must be unique")
        for key in ("cost", "tputs"):
            if key not in entry:
                raise InputError(f"{where}.{key}", "is missing")
        gpus[name] = GpuProfile(name, _cost(entry["cost"], f"{where}.cost"),
                                _tputs(entry["tputs"], index, columns, f"{where}.tputs"), dict(meta or {}))
    return gpus


def _cost(value, where: str) -> float:
    return schemas.number(value, where, positive=True, what="a positive number of dollars per hour")


def _tputs(values, index, columns, where: str) -> pd.DataFrame:
    if values is None:
        raise InputError(where, "is empty; give max requests/s per bucket (0 for a bucket this GPU cannot serve)")
    arr = schemas.number_matrix(values, where, what="max requests/s (0 = cannot serve)")
    if (arr < 0).any():
        raise InputError(where, "has negative throughputs; give max requests/s >= 0 per bucket")
    return labelled_matrix(arr, index, columns, field=where)


def load_gpus(path: str | Path) -> dict[str, GpuProfile]:
    """Read a GPU profile YAML (see the module docstring); metadata lands in each profile's `meta`."""
    path = Path(path)
    field = f"gpu profile file {path}"
    doc = read_yaml(path, "gpu profile file", "params/gpus/llama2-7b-seed.yaml")
    if not isinstance(doc, Mapping) or "gpus" not in doc:
        raise InputError(field, "must be a YAML mapping with a `gpus` key (and input_edges, output_edges)")
    for key in ("input_edges", "output_edges"):
        if doc.get(key) is None:
            raise InputError(f"{path.name}: {key}", "is missing; list the bucket edges, e.g. [0, 25, 100, 250, 500, 1000, 2000]")
    index = bucket_labels(schemas.edges(doc["input_edges"], f"{path.name}: input_edges"),
                          open_last=schemas.flag(doc.get("open_last_input", False), f"{path.name}: open_last_input"))
    columns = bucket_labels(schemas.edges(doc["output_edges"], f"{path.name}: output_edges"),
                            open_last=schemas.flag(doc.get("open_last_output", False), f"{path.name}: open_last_output"))
    meta = {k: doc.get(k) for k in ("model", "slo", "source")}
    meta["file"] = str(path)
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return parse_gpu_info(doc["gpus"], index, columns, meta=meta, field=f"{path.name}: gpus")


def select_gpus(gpus: Mapping[str, GpuProfile], names: Sequence[str] | None) -> dict[str, GpuProfile]:
    """Keep only the named GPU types (all when `names` is empty); unknown names are an error."""
    if not names:
        return dict(gpus)
    unknown = [n for n in names if n not in gpus]
    if unknown:
        raise InputError("gpu", f"unknown GPU name(s) {unknown}; choose from {list(gpus)}")
    return {n: gpus[n] for n in names}


def requests_per_dollar(gpus: Mapping[str, GpuProfile]) -> pd.DataFrame:
    """Long table: per bucket and GPU type, requests served per dollar at max throughput (tput x 3600 / cost)."""
    frames = []
    for gpu in gpus.values():
        per_dollar = (gpu.tputs * 3600.0 / gpu.cost).stack().rename("requests_per_dollar").reset_index()
        per_dollar.insert(0, "gpu", gpu.name)
        frames.append(per_dollar)
    return pd.concat(frames, ignore_index=True)


def best_value(gpus: Mapping[str, GpuProfile]) -> pd.DataFrame:
    """Per bucket (input x output): the GPU with most requests per dollar and its advantage over the next best.

    Returns a DataFrame indexed like the profiles with columns ``best`` (GPU name) and
    ``advantage`` (best requests/$ divided by the runner-up's; inf when only one GPU can serve).
    """
    long = requests_per_dollar(gpus)
    wide = long.pivot_table(index=["input_tokens", "output_tokens"], columns="gpu",
                            values="requests_per_dollar", sort=False)
    ordered = np.sort(wide.to_numpy(), axis=1)[:, ::-1]
    best = wide.idxmax(axis=1).where(ordered[:, 0] > 0, "none")
    with np.errstate(divide="ignore", invalid="ignore"):
        advantage = ordered[:, 0] / ordered[:, 1] if ordered.shape[1] > 1 else np.full(len(wide), np.inf)
    return pd.DataFrame({"best": best, "advantage": advantage}, index=wide.index)


def read_melange_config(path: str | Path):
    """A melange-release config (``gpu_info``, ``workload_distribution``, ``total_request_rate``,
    ``slice_factor``) as (workload, gpus, rate, slice_factor). Rows = input buckets, columns =
    output buckets, as melange-release's README says; buckets are labelled by position (0, 1, ...).
    """
    from ..workload import check_workload

    path = Path(path)
    field = f"config {path}"
    doc = read_json(path, "config", "a melange-release JSON config such as melange/config/example.json")
    if not isinstance(doc, Mapping):
        raise InputError(field, "must be a JSON object with gpu_info, workload_distribution, total_request_rate")
    for key in ("gpu_info", "workload_distribution", "total_request_rate"):
        if key not in doc:
            raise InputError(f"{path.name}: {key}", "is missing")
    dist = schemas.number_matrix(doc["workload_distribution"], f"{path.name}: workload_distribution",
                                 what="request shares").tolist()
    rate = schemas.number(doc["total_request_rate"], f"{path.name}: total_request_rate", positive=True,
                          what="a positive number of requests/s")
    slice_factor = schemas.whole(doc.get("slice_factor", 1), f"{path.name}: slice_factor", minimum=1)
    index = [str(i) for i in range(len(dist))]
    columns = [str(j) for j in range(len(dist[0]))]
    workload = check_workload(labelled_matrix(dist, index, columns, field=f"{path.name}: workload_distribution"),
                              field=f"{path.name}: workload_distribution")
    meta = {"source": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    gpus = parse_gpu_info(doc["gpu_info"], index, columns, meta=meta, field=f"{path.name}: gpu_info")
    return workload, gpus, rate, slice_factor
