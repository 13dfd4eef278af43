"""GPU profiles: hourly cost plus max throughput (requests/s) per request-size bucket, with provenance.

A profile's ``tputs`` is a DataFrame with the workload's labels (index ``input_tokens``, columns
``output_tokens``). A throughput of 0 means this GPU cannot serve that bucket (memory, SLO).
Profile files are YAML (``params/gpus/*.yaml``); every provenance key may sit at the top (it then
applies to every GPU in the file) or inside one GPU's entry (it then overrides the top)::

    model: Llama-3.1-8B            # model served
    source: predicted              # measured | predicted | seed | unknown
    slo:                           # every condition must hold; or "unknown"
      - {metric: tpot, stat: mean, ms: 40}    # metric tpot|ttft|itl|e2e, stat mean|p50|p90|p99
    engine: {name: vllm, version: 0.10.1}      # serving engine ("unknown" when not known)
    tool: {name: aiconfigurator-core, version: 0.12.0}   # what produced the numbers
    kernel_data: {backend: vllm, version: 0.24.0, kernels: measured}   # predicted: the performance data used
                                   # (kernels measured | speed-of-light, scaled_by: SYSTEM when calibrated)
    date: 2026-11-25               # when the numbers were produced
    notes: [free text, ...]
    input_edges:  [0, 25, 100, 250, 500, 1000, 2000]
    output_edges: [0, 25, 100, 250, 500, 1000, 2000]
    open_last_input: false         # true: one more open-ended input bucket "2000+" (likewise open_last_output)
    gpus:                          # a mapping name -> {cost, tputs, ...}, or a list of {name, cost, tputs, ...}
      H100:
        cost: 4.18                 # $/hour for one replica's GPUs (gpus_per_replica x price per GPU)
        system: h100_sxm           # hardware id (aiconfigurator system name) or "unknown"
        gpus_per_replica: 1        # tensor parallel size: one replica = this many GPUs
        price: {file: params/prices/runpod.yaml, provider: RunPod, region: ..., date: ..., source: URL}
        cell_notes:                # per bucket, e.g. why it is 0 or that it was filled
          - {input: 16000+, output: 0-25, note: KV cache does not fit}
        tputs: [[...], ...]        # rows = input buckets, columns = output buckets
        latency: {...}             # optional: one replica's iteration-time model for `simulate`
                                   # (also allowed at the top for every GPU; format in profiles/latency.py)

Missing facts read "unknown"; files written before these keys existed still load (a free-text
``source`` moves into ``notes``, an ``slo: {tpot_ms: 120}`` mapping is parsed). ``save_profiles``
writes this format atomically and ``load_gpus`` reads it back identically; ``provenance_lines``
gives the short text report headers print.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from ..errors import InputError
from ..files import comment_lines, read_json, read_yaml, write_text
from .. import schemas
from ..workload import bucket_labels, labelled_matrix, parse_bucket_labels
from .latency import HOW_TO_ADD, LatencyModel, parse_latency

UNKNOWN = "unknown"
SLO_METRICS = ("tpot", "ttft", "itl", "e2e")
SLO_STATS = ("mean", "p50", "p90", "p99")
PROVENANCE_KEYS = schemas.PROVENANCE_KEYS     # model, system, source, gpus_per_replica, engine, tool, slo, ...
# Default edges for new (predicted or imported) profiles: inputs reach 16k tokens so long-context
# traces (e.g. the Azure code trace) fit; outputs up to 2000 cover chat and summarization replies.
PROFILE_INPUT_EDGES = (0, 25, 100, 250, 500, 1000, 2000, 4000, 8000, 16000)
PROFILE_OUTPUT_EDGES = (0, 25, 100, 250, 500, 1000, 2000)
_SLO_SYNTAX = ("use [STAT_]METRIC_ms=NUMBER with METRIC tpot|ttft|itl|e2e and STAT mean|p50|p90|p99 "
               "(bare = mean), e.g. tpot_ms=40 or p99_ttft_ms=2000")
_SLO_RE = re.compile(r"^\s*(?:(mean|median|p50|p90|p99)_)?(tpot|ttft|itl|e2el?)_ms\s*=\s*([0-9.eE+-]+)\s*$")


MIN_TPUT = 1e-6    # requests/s; a smaller positive throughput is a units mistake (and 1/x overflows)


@dataclass(frozen=True)
class GpuProfile:
    """One GPU type: name, $/hour and max requests/s per bucket (input x output)."""

    name: str
    cost: float
    tputs: pd.DataFrame
    meta: Mapping[str, Any] = field(default_factory=dict)
    latency: LatencyModel | None = None     # one replica's iteration-time model (simulation); None = not given


def parse_slo(spec, *, field: str = "slo") -> list[dict] | str:
    """SLO conditions from ``"tpot_ms=40"`` / ``"p99_tpot_ms=60"`` (bare = mean), a mapping
    ``{metric, stat, ms}`` or ``{tpot_ms: 40}``, or a list of those; None/"unknown" -> "unknown".

    Returns a list of ``{metric, stat, ms}`` (every condition must hold), sorted and deduplicated.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == UNKNOWN):
        return UNKNOWN
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    conds = []
    for item in items:
        if isinstance(item, str):
            parts = [p for p in item.split(",") if p.strip()]
            if not parts:
                raise InputError(field, f"cannot parse {item!r}; {_SLO_SYNTAX}")
            for part in parts:
                m = _SLO_RE.match(part)
                try:
                    ms = float(m.group(3)) if m else None
                except ValueError:
                    ms = None
                if ms is None:
                    raise InputError(field, f"cannot parse {part.strip()!r}; {_SLO_SYNTAX}")
                stat = {"median": "p50", None: "mean"}.get(m.group(1), m.group(1))
                conds.append({"metric": "e2e" if m.group(2).startswith("e2e") else m.group(2), "stat": stat, "ms": ms})
        elif isinstance(item, Mapping) and "metric" in item:
            metric, stat = str(item["metric"]).lower(), str(item.get("stat", "mean")).lower()
            ms = item.get("ms")
            if metric not in SLO_METRICS or stat not in SLO_STATS or not schemas.is_real(ms):
                raise InputError(field, f"condition {dict(item)} is not {{metric: {'|'.join(SLO_METRICS)}, "
                                        f"stat: {'|'.join(SLO_STATS)}, ms: NUMBER}}")
            conds.append({"metric": metric, "stat": stat, "ms": float(ms)})
        elif isinstance(item, Mapping):
            conds += parse_slo([f"{k}={v}" for k, v in item.items()], field=field)
        else:
            raise InputError(field, f"cannot parse {item!r}; {_SLO_SYNTAX}")
    for c in conds:
        if not np.isfinite(c["ms"]) or c["ms"] <= 0:
            raise InputError(field, f"threshold must be a positive number of ms, got {c['ms']}; {_SLO_SYNTAX}")
    unique = {(c["metric"], c["stat"]): c for c in conds}   # a repeated (metric, stat): the last one wins
    return [unique[k] for k in sorted(unique)]


def format_slo(slo, *, compact: bool = False) -> str:
    """``[{tpot, mean, 40}]`` -> "mean TPOT <= 40 ms" (compact: "tpot_ms=40", the CLI syntax)."""
    slo = parse_slo(slo)
    if slo == UNKNOWN:
        return UNKNOWN
    if compact:
        return ",".join(("" if c["stat"] == "mean" else c["stat"] + "_") + f"{c['metric']}_ms={c['ms']:g}" for c in slo)
    return " and ".join(f"{c['stat']} {c['metric'].upper()} <= {c['ms']:g} ms" for c in slo)


def normalize_provenance(raw: Mapping[str, Any], *, index: Sequence[str] = (), columns: Sequence[str] = (),
                         field: str = "profile") -> dict[str, Any]:
    """Every provenance key present, checked and in one shape (`schemas.Provenance`); missing facts
    become "unknown"; cell notes must name the profile's buckets when `index`/`columns` are given.

    Older files still load: a free-text ``source`` becomes source "unknown" plus a note.
    """
    return schemas.validate(schemas.Provenance, raw, where=field,
                            context={"buckets": (list(index), list(columns))}).facts()


def provenance_lines(gpus: Mapping[str, GpuProfile]) -> list[str]:
    """One short human line per GPU type: where its numbers and price come from (for report headers)."""
    lines = []
    for gpu in gpus.values():
        m = normalize_provenance(gpu.meta)
        tp = m["gpus_per_replica"]
        parts = [m["source"] if m["source"] != UNKNOWN else "source unknown", f"model {m['model']}",
                 f"{tp} GPU{'s' if tp != 1 else ''}/replica" if tp != UNKNOWN else "GPUs/replica unknown",
                 "engine " + (" ".join(m["engine"].values()) if m["engine"] != UNKNOWN else UNKNOWN),
                 "SLO " + format_slo(m["slo"])]
        if m["tool"] != UNKNOWN:
            parts.append("by " + " ".join(m["tool"].values()))
        parts.append(f"dated {m['date']}")
        price = m["price"]
        where = ", ".join(str(price[k]) for k in ("provider", "region", "date") if price != UNKNOWN and price.get(k))
        parts.append(f"${gpu.cost:g}/h" + (f" ({where})" if where else " (price source unknown)"))
        if m["cell_notes"]:
            parts.append(f"{len(m['cell_notes'])} bucket note{'s' if len(m['cell_notes']) != 1 else ''}")
        lines.append(f"{gpu.name}: " + "; ".join(parts))
    return lines


def save_profiles(path: str | Path, gpus: Mapping[str, GpuProfile] | Sequence[GpuProfile],
                  provenance: Mapping[str, Any] | None = None, *, header: str | None = None) -> Path:
    """Write GPU profiles to a YAML that `load_gpus` reads back identically (atomic write).

    `provenance` applies to every GPU (it overrides each profile's own `meta`); keys equal for all
    GPUs go to the top of the file, the rest into each GPU's entry. Edges come from the labels,
    which all profiles must share. `header` becomes leading ``#`` comment lines.
    """
    import yaml

    gpus = list(gpus.values()) if isinstance(gpus, Mapping) else list(gpus)
    if not gpus:
        raise InputError("gpus", "lists no GPU; give at least one profile to save")
    schemas.gpu_names([gpu.name for gpu in gpus], "gpus")
    first = gpus[0].tputs
    for gpu in gpus[1:]:
        if list(gpu.tputs.index) != list(first.index) or list(gpu.tputs.columns) != list(first.columns):
            raise InputError(f"gpus.{gpu.name}.tputs", f"has other buckets than {gpus[0].name}; save profiles "
                                                       "with the same edges into one file")
    input_edges, open_in = parse_bucket_labels([str(x) for x in first.index], "tputs index (input buckets)")
    output_edges, open_out = parse_bucket_labels([str(x) for x in first.columns], "tputs columns (output buckets)")
    metas = [normalize_provenance({**{k: v for k, v in gpu.meta.items() if k in PROVENANCE_KEYS}, **(provenance or {})},
                                  index=list(first.index), columns=list(first.columns), field=f"gpus.{gpu.name}")
             for gpu in gpus]
    common = {k: metas[0][k] for k in PROVENANCE_KEYS if all(m[k] == metas[0][k] for m in metas)}
    doc: dict[str, Any] = dict(common)
    doc.update(input_edges=input_edges, output_edges=output_edges)
    if open_in:
        doc["open_last_input"] = True
    if open_out:
        doc["open_last_output"] = True
    latencies = [None if g.latency is None else g.latency.to_dict() for g in gpus]
    shared_latency = latencies[0] is not None and all(x == latencies[0] for x in latencies)
    if shared_latency:
        doc["latency"] = latencies[0]
    doc["gpus"] = {}
    for gpu, meta, latency in zip(gpus, metas, latencies):
        entry: dict[str, Any] = {"cost": float(gpu.cost)}
        entry.update({k: v for k, v in meta.items() if k not in common})
        if latency is not None and not shared_latency:
            entry["latency"] = latency
        entry["tputs"] = [[float(v) for v in row] for row in gpu.tputs.to_numpy()]
        doc["gpus"][gpu.name] = entry
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
    if header:
        text = comment_lines(header) + text
    return write_text(path, text)


def parse_gpu_info(gpu_info, index: Sequence[str], columns: Sequence[str], *,
                   meta: Mapping[str, Any] | None = None, field: str = "gpu_info",
                   latency: Mapping[str, Any] | None = None) -> dict[str, GpuProfile]:
    """Profiles from melange-release's ``gpu_info``: a list of {name, cost, tputs} or a mapping name -> {cost, tputs}.

    `meta`'s provenance keys apply to every GPU that does not set them; its other keys (file, sha256)
    are added to each profile's `meta`. `latency`: the file-wide latency section (a GPU's own
    ``latency`` overrides it)."""
    meta = dict(meta or {})
    entries = schemas.validate(_GPU_ENTRIES, schemas.inherit(gpu_info, meta, PROVENANCE_KEYS), where=field)
    return _profiles(entries, index, columns, {k: v for k, v in meta.items() if k not in PROVENANCE_KEYS},
                     field=field, latency=parse_latency(latency, f"{field.split(':')[0]}: latency"))


_GPU_ENTRIES = schemas.TypeAdapter(schemas.GpuEntries)


def _profiles(entries: Mapping[str, schemas.GpuEntry], index, columns, extra: Mapping[str, Any], *,
              field: str, latency: LatencyModel | None = None) -> dict[str, GpuProfile]:
    """Validated entries as profiles: throughputs labelled with the buckets (their shape checked);
    `latency` for the GPUs without a `latency` section of their own."""
    gpus = {}
    for name, entry in entries.items():
        where = f"{field}.{name}"
        schemas.check_cell_notes([c.model_dump() for c in entry.cell_notes], index, columns,
                                 where=f"{where}.cell_notes")
        gpus[name] = GpuProfile(name, entry.cost, labelled_matrix(entry.tputs, index, columns, field=f"{where}.tputs"),
                                {**entry.facts(), **extra},
                                entry.latency if "latency" in entry.model_fields_set else latency)
    return gpus


def load_gpus(path: str | Path) -> dict[str, GpuProfile]:
    """Read a GPU profile YAML (`schemas.GpuProfileFile`, see the module docstring); metadata lands in
    each profile's `meta`."""
    path = Path(path)
    doc = read_yaml(path, "gpu profile file", "params/gpus/llama2-7b-seed.yaml")
    profile = schemas.validate(schemas.GpuProfileFile, doc, where=f"{path.name}:", root=f"gpu profile file {path}")
    index = bucket_labels(profile.input_edges, open_last=profile.open_last_input)
    columns = bucket_labels(profile.output_edges, open_last=profile.open_last_output)
    extra = {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return _profiles(profile.gpus, index, columns, extra, field=f"{path.name}: gpus", latency=profile.latency)


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
    meta = {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    gpus = parse_gpu_info(doc["gpu_info"], index, columns, meta=meta, field=f"{path.name}: gpu_info")
    return workload, gpus, rate, slice_factor


from .prices import Price, find_price, load_prices, merge_prices  # noqa: E402  (prices need nothing above)
