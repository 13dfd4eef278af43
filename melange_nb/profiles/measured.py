"""Measured profiles: benchmark result files in, benchmark commands out.

The Mélange paper profiles each GPU offline: for each request-size bucket, a ladder of request
rates, and the highest rate whose latency still meets the SLO. This module makes that routine:

- ``read_runs`` reads the files real benchmark tools write: ``vllm bench serve --save-result``
  JSON and NVIDIA AIPerf's ``profile_export_aiperf.json`` (format detected from the keys).
- ``bucket_max_rate`` is the rule for one bucket: the SLO metric against the *achieved* rate
  (completed requests / duration), interpolated linearly between the last passing and the first
  failing run; no failing run -> the highest passing rate (never extrapolated above it); runs
  but no passing run -> 0. Runs at the same achieved rate count as one with the worst of their
  latencies (``same_rate_worst``), so the answer never depends on file order.
- ``import_profile`` groups runs by (input, output) length into the profile's buckets and builds
  a ``GpuProfile`` with provenance (source: measured, tool and version from the files);
  ``import_into_file`` is `profile import`: its inputs checked, the cost from a price, the profile
  written to a YAML file, beside the file's other GPU types with ``add``.
- ``plan_commands`` / ``write_benchmark_plan``: the ``vllm bench serve`` commands that produce such files.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..schemas import is_count, is_number, is_real
from ..workload import bucket_labels, labelled_matrix

VLLM = "vllm bench serve"
AIPERF = "aiperf"
# SLO (metric, stat) -> the key in a vllm bench serve result (stat p50 is also written "median").
_VLLM_METRIC = {"tpot": "tpot", "ttft": "ttft", "itl": "itl", "e2e": "e2el"}
_VLLM_STAT = {"mean": ("mean",), "p50": ("median", "p50"), "p90": ("p90",), "p99": ("p99",)}
# SLO metric -> AIPerf's metric tag in profile_export_aiperf.json; stat -> its statistic key.
_AIPERF_METRIC = {"tpot": "inter_token_latency", "ttft": "time_to_first_token",
                  "itl": "inter_chunk_latency", "e2e": "request_latency"}
_AIPERF_STAT = {"mean": "avg", "p50": "p50", "p90": "p90", "p99": "p99"}


@dataclass(frozen=True)
class BenchmarkRun:
    """One benchmark run at one load level: lengths, achieved rate and latency statistics (ms)."""

    file: str
    tool: str                      # "vllm bench serve" | "aiperf"
    tool_version: str              # "unknown" when the file does not say
    model: str
    input_len: float               # mean prompt tokens per completed request
    output_len: float              # mean output tokens per completed request
    rate: float                    # achieved requests/s as the tool reports it (completed / duration)
    completed: int
    offered_rate: float | None = None     # configured requests/s (None: unlimited)
    max_concurrency: int | None = None
    date: str = "unknown"          # ISO date of the run when the file says
    metrics: Mapping[tuple[str, str], float] = field(default_factory=dict)   # (metric, stat) -> ms

    def metric(self, metric: str, stat: str) -> float:
        """The run's value for an SLO condition, or an error naming the file and the missing field."""
        key = (metric, stat)
        if key not in self.metrics:
            hint = ("re-run with --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99"
                    if self.tool == VLLM else "re-run so the export includes it")
            wanted = (f"{stat}_{_VLLM_METRIC[metric]}_ms" if self.tool == VLLM
                      else f"{_AIPERF_METRIC[metric]}.{_AIPERF_STAT[stat]}")
            raise InputError(f"{self.file}: {wanted}", f"is missing but the SLO needs {stat} {metric}; {hint}")
        return self.metrics[key]


# ---------------------------------------------------------------- reading result files

def _load_json(path: Path):
    if path.is_dir():
        raise InputError(f"result file {path}", "is a folder; pass the JSON files in it, e.g. results/*.json or "
                                                "artifacts/*/profile_export_aiperf.json")
    if not path.is_file():
        raise InputError(f"result file {path}", "not found; pass files written by `vllm bench serve --save-result` "
                                                "or AIPerf's profile_export_aiperf.json")
    from ..files import read_json

    return read_json(path, "result file", "a vllm bench serve --save-result JSON or profile_export_aiperf.json",
                     allow_nan=True)


def detect_format(doc: Any) -> str | None:
    """Which tool wrote this JSON document: "vllm bench serve", "aiperf" or None (unknown)."""
    if not isinstance(doc, Mapping):
        return None
    if "request_throughput" in doc and "duration" in doc and ("completed" in doc or "model_id" in doc):
        return VLLM
    if "aiperf_version" in doc or ("input_config" in doc and isinstance(doc.get("request_throughput"), Mapping)):
        return AIPERF
    return None


def _number(doc: Mapping, key: str, where: str, *, positive: bool = False) -> float:
    value = doc.get(key)
    if not is_number(value):
        raise InputError(f"{where}: {key}", f"is missing or not a number (got {value!r})")
    if positive and value <= 0:
        raise InputError(f"{where}: {key}", f"must be > 0, got {value!r}")
    return float(value)


def latency_ms(value: float, where: str) -> float:
    """A latency statistic in ms: >= 0 (a negative latency is a broken file, not a fast server)."""
    if value < 0:
        raise InputError(where, f"is a negative latency ({value!r} ms); pass the file as the benchmark wrote it")
    return float(value)


def token_count(value: float, where: str) -> float:
    """A token count or mean length: >= 0."""
    if value < 0:
        raise InputError(where, f"must be a token count >= 0, got {value!r}")
    return float(value)


def _read_vllm(doc: Mapping, where: str) -> BenchmarkRun:
    completed = int(_number(doc, "completed", where))
    if completed <= 0:
        raise InputError(f"{where}: completed", "is 0: no request succeeded in this run (see its `errors`); "
                                                "fix the server or drop the file")
    _number(doc, "duration", where, positive=True)
    model = doc.get("model_id")
    if not isinstance(model, str) or not model:
        raise InputError(f"{where}: model_id", "is missing; pass the file as `vllm bench serve --save-result` wrote it")
    if "total_input_tokens" in doc and "total_output_tokens" in doc:
        input_len = token_count(_number(doc, "total_input_tokens", where), f"{where}: total_input_tokens") / completed
        output_len = token_count(_number(doc, "total_output_tokens", where), f"{where}: total_output_tokens") / completed
    else:
        lens = {k: doc.get(k) for k in ("input_lens", "output_lens")}
        for key, value in lens.items():
            if not isinstance(value, list) or not value:
                raise InputError(f"{where}: {key}", "is missing (and so is total_input_tokens/total_output_tokens)")
            if not all(is_number(v) and v >= 0 for v in value):
                raise InputError(f"{where}: {key}", "must list token counts >= 0")
        input_len, output_len = float(np.mean(lens["input_lens"])), float(np.mean(lens["output_lens"]))
    metrics = {}
    for metric, name in _VLLM_METRIC.items():
        for stat, prefixes in _VLLM_STAT.items():
            for prefix in prefixes:
                value = doc.get(f"{prefix}_{name}_ms")
                if is_number(value):
                    metrics[(metric, stat)] = latency_ms(value, f"{where}: {prefix}_{name}_ms")
                    break
    rate = doc.get("request_rate")
    offered = float(rate) if is_number(rate) else None
    conc = doc.get("max_concurrency")
    version = doc.get("vllm_version") or doc.get("version") or "unknown"
    date = str(doc.get("date") or "")
    date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) >= 8 and date[:8].isdigit() else "unknown"
    return BenchmarkRun(file=where, tool=VLLM, tool_version=str(version), model=model,
                        input_len=input_len, output_len=output_len,
                        rate=_number(doc, "request_throughput", where, positive=True),
                        completed=completed, offered_rate=offered, date=date,
                        max_concurrency=int(conc) if is_count(conc) else None, metrics=metrics)


def _aiperf_stat(doc: Mapping, tag: str, stat: str, where: str, *, required: bool = True) -> float | None:
    entry = doc.get(tag)
    value = entry.get(stat) if isinstance(entry, Mapping) else None
    if not is_number(value):
        if required:
            raise InputError(f"{where}: {tag}.{stat}", f"is missing or not a number (got {value!r})")
        return None
    return float(value)


def _read_aiperf(doc: Mapping, where: str) -> BenchmarkRun:
    """AIPerf's ``profile_export_aiperf.json``: one run; metrics are {unit, avg, p50, p90, p99, ...}."""
    completed = _aiperf_stat(doc, "request_count", "avg", where)
    if completed <= 0:
        raise InputError(f"{where}: request_count.avg", "is 0: no request succeeded in this run (see its "
                                                        "error_summary); fix the server or drop the file")
    if _aiperf_stat(doc, "benchmark_duration", "avg", where) <= 0:
        raise InputError(f"{where}: benchmark_duration.avg", "must be > 0 seconds")
    config = doc.get("input_config") if isinstance(doc.get("input_config"), Mapping) else {}
    models = (config.get("models") or {}).get("items") if isinstance(config.get("models"), Mapping) else None
    names = sorted({m.get("name") for m in models or [] if isinstance(m, Mapping) and m.get("name")})
    if len(names) != 1:
        raise InputError(f"{where}: input_config.models", f"must name exactly one model, got {names}; "
                                                          "profile one model per run")
    metrics = {}
    for metric, tag in _AIPERF_METRIC.items():
        for stat, key in _AIPERF_STAT.items():
            value = _aiperf_stat(doc, tag, key, where, required=False)
            if value is not None:
                metrics[(metric, stat)] = latency_ms(value, f"{where}: {tag}.{key}")
    phases = [p for p in config.get("phases") or [] if isinstance(p, Mapping) and p.get("kind") == "profiling"]
    phase = phases[0] if phases else {}
    rate, conc = phase.get("rate") or phase.get("request_rate"), phase.get("concurrency")
    start = str(doc.get("start_time") or "")
    throughput = _aiperf_stat(doc, "request_throughput", "avg", where)
    if throughput <= 0:
        raise InputError(f"{where}: request_throughput.avg", f"must be > 0 requests/s, got {throughput!r}")
    return BenchmarkRun(file=where, tool=AIPERF, tool_version=str(doc.get("aiperf_version") or "unknown"),
                        model=names[0], input_len=token_count(_aiperf_stat(doc, "input_sequence_length", "avg", where),
                                                              f"{where}: input_sequence_length.avg"),
                        output_len=token_count(_aiperf_stat(doc, "output_sequence_length", "avg", where),
                                               f"{where}: output_sequence_length.avg"),
                        rate=throughput, completed=int(completed),
                        offered_rate=float(rate) if is_real(rate) else None,
                        max_concurrency=int(conc) if is_count(conc) else None,
                        date=start[:10] if len(start) >= 10 and start[4] == "-" else "unknown", metrics=metrics)


def read_runs(paths: Sequence[str | Path]) -> list[BenchmarkRun]:
    """Benchmark runs from result files (format detected per file); all must be for one model.

    Another tool's file, missing fields, zero completed requests or two models mixed: an
    ``InputError`` naming the file and the field.
    """
    if not paths:
        raise InputError("result files", "none given; pass the JSON files your benchmark runs wrote")
    runs: list[BenchmarkRun] = []
    for path in map(Path, paths):
        doc = _load_json(path)
        fmt = detect_format(doc)
        if fmt is None:
            keys = sorted(doc)[:6] if isinstance(doc, Mapping) else type(doc).__name__
            raise InputError(f"result file {path}", f"is not a vllm bench serve --save-result JSON nor AIPerf's "
                                                    f"profile_export_aiperf.json (top-level keys {keys})")
        runs.append((_read_vllm if fmt == VLLM else _read_aiperf)(doc, str(path)))
    first = runs[0]
    for run in runs[1:]:
        if run.model != first.model:
            key = "model_id" if run.tool == VLLM else "input_config.models"
            raise InputError(f"{run.file}: {key}", f"is {run.model!r} but {first.file} is {first.model!r}; "
                                                   "import one model's runs at a time")
    return runs


# ---------------------------------------------------------------- one bucket's max rate

def _passes(run: BenchmarkRun, slo: Sequence[Mapping]) -> bool:
    return all(run.metric(c["metric"], c["stat"]) <= c["ms"] for c in slo)


def bucket_max_rate(runs: Sequence[BenchmarkRun], slo: Sequence[Mapping]) -> tuple[float, str]:
    """Max requests/s one GPU sustains with every SLO condition met, from one bucket's runs.

    Runs are ordered by achieved rate. Between the last passing and the first failing run, each
    failing condition's metric is interpolated linearly against the rate and the lowest crossing
    wins. No failing run: the highest passing rate (never extrapolated). Runs but none passing: 0.
    No runs: 0. Returns (rate, how) where `how` says which rule applied.
    """
    if not runs:
        return 0.0, "no runs"
    ordered, merged = same_rate_worst(runs)
    fails = [i for i, run in enumerate(ordered) if not _passes(run, slo)]
    if not fails:
        return ordered[-1].rate, f"highest run {ordered[-1].rate:.3g} req/s met the SLO (none failed; not extrapolated)" + merged
    first = fails[0]
    if first == 0:
        return 0.0, f"no run met the SLO (lowest run {ordered[0].rate:.3g} req/s already misses it)" + merged
    lo, hi = ordered[first - 1], ordered[first]
    crossing = hi.rate
    for c in slo:
        m_lo, m_hi = lo.metric(c["metric"], c["stat"]), hi.metric(c["metric"], c["stat"])
        if m_hi > c["ms"]:
            share = (c["ms"] - m_lo) / (m_hi - m_lo) if m_hi > m_lo else 0.0
            crossing = min(crossing, lo.rate + share * (hi.rate - lo.rate))
    how = f"interpolated between {lo.rate:.3g} (pass) and {hi.rate:.3g} req/s (fail)"
    later = sum(1 for i in range(first + 1, len(ordered)) if i not in fails)
    if later:
        how += f"; {later} passing run(s) above the first failing one ignored"
    return float(crossing), how + merged


def same_rate_worst(runs: Sequence[BenchmarkRun]) -> tuple[list[BenchmarkRun], str]:
    """Runs ordered by achieved rate, runs at the same rate merged into one with the worst (highest)
    value of every latency statistic, so the result never depends on file order. Returns the runs
    and a note naming the merged rates ("" when none)."""
    by_rate: dict[float, list[BenchmarkRun]] = {}
    for run in runs:
        by_rate.setdefault(run.rate, []).append(run)
    out, merged = [], []
    for rate in sorted(by_rate):
        group = by_rate[rate]
        if len(group) == 1:
            out.append(group[0])
            continue
        keys = set.intersection(*(set(r.metrics) for r in group))
        worst = {k: max(r.metrics[k] for r in group) for k in keys}
        first = min(group, key=lambda r: r.file)
        out.append(replace(first, file=" + ".join(sorted(r.file for r in group)), metrics=worst))
        merged.append(f"{len(group)} runs at {rate:.3g} req/s")
    note = f"; {', '.join(merged)} merged (the worst latency of each counts)" if merged else ""
    return out, note


# ---------------------------------------------------------------- runs -> a profile

def _bucket_of(length: float, edges: Sequence[float], open_last: bool) -> int | None:
    """Index of the bucket ``lo <= length < hi`` (the open last bucket takes everything above)."""
    if length < edges[0]:
        return None
    for i, hi in enumerate(edges[1:]):
        if length < hi:
            return i
    return len(edges) - 1 if open_last else None


def group_runs(runs: Sequence[BenchmarkRun], input_edges: Sequence[float], output_edges: Sequence[float], *,
               open_last_input: bool = False, open_last_output: bool = False):
    """Runs per (input label, output label) by their mean lengths, plus the runs outside every bucket."""
    index = bucket_labels(input_edges, open_last=open_last_input)
    columns = bucket_labels(output_edges, open_last=open_last_output)
    groups: dict[tuple[str, str], list[BenchmarkRun]] = {(i, o): [] for i in index for o in columns}
    outside = []
    for run in runs:
        i = _bucket_of(run.input_len, input_edges, open_last_input)
        o = _bucket_of(run.output_len, output_edges, open_last_output)
        if i is None or o is None:
            outside.append(run)
        else:
            groups[(index[i], columns[o])].append(run)
    return index, columns, groups, outside


FILLS = ("predicted", "calibrated")


def import_profile(paths: Sequence[str | Path], *, gpu: str, cost: float, slo,
                   input_edges: Sequence[float], output_edges: Sequence[float],
                   open_last_input: bool = False, open_last_output: bool = False,
                   fill: str | None = None, prediction=None, price: Mapping[str, Any] | None = None):
    """A measured ``GpuProfile`` for one GPU type from benchmark result files.

    `slo` is anything ``parse_slo`` takes (e.g. ``"tpot_ms=40"``). Each bucket's max rate comes
    from ``bucket_max_rate`` over the runs whose mean lengths fall in it. A bucket without runs is
    0 with a warning, unless `fill` asks otherwise with a `prediction` (a predicted ``GpuProfile``
    on the same buckets): "predicted" copies its rate, "calibrated" uses ``calibrated_fill``
    (predictions corrected by a fit on the measured buckets, leave-one-out error in the notes).
    Every filled cell is named in ``cell_notes``. Returns (profile, warnings).
    """
    from .. import schemas
    from . import GpuProfile, format_slo, parse_slo

    gpu = schemas.gpu_name(gpu, "--gpu")
    cost = schemas.number(cost, "--cost", positive=True, what="a positive, finite $/hour")
    conds = parse_slo(slo, field="--slo")
    if conds == "unknown" or not conds:
        raise InputError("--slo", "is required to import measured runs, e.g. --slo tpot_ms=40")
    if fill is not None:
        if fill not in FILLS:
            raise InputError("--fill", f"must be one of {list(FILLS)}, got {fill!r}")
        if prediction is None:
            raise InputError("--prediction", f"--fill {fill} needs a predicted profile file (melange-nb profile predict)")
        index = bucket_labels(input_edges, open_last=open_last_input)
        columns = bucket_labels(output_edges, open_last=open_last_output)
        if list(prediction.tputs.index) != index or list(prediction.tputs.columns) != columns:
            raise InputError("--prediction", f"{prediction.name} has buckets {list(prediction.tputs.index)} x "
                                             f"{list(prediction.tputs.columns)}, not {index} x {columns}; predict "
                                             "with the same --edges/--output-edges")
    runs = read_runs(paths)
    for run in runs:                 # every SLO metric present in every file, before any work
        for c in conds:
            run.metric(c["metric"], c["stat"])
    index, columns, groups, outside = group_runs(runs, input_edges, output_edges,
                                                 open_last_input=open_last_input, open_last_output=open_last_output)
    warnings = [f"{run.file}: mean lengths {run.input_len:.0f} in / {run.output_len:.0f} out fall outside "
                f"every bucket (input edges {list(input_edges)}, output edges {list(output_edges)}); not used"
                for run in outside]
    rates = np.zeros((len(index), len(columns)))
    measured = np.zeros(rates.shape, dtype=bool)
    cell_notes, notes = [], []
    for (i_label, o_label), bucket_runs in groups.items():
        r, c = index.index(i_label), columns.index(o_label)
        if bucket_runs:
            measured[r, c] = True
            rates[r, c], how = bucket_max_rate(bucket_runs, conds)
            if "merged" in how:
                warnings.append(f"bucket input {i_label} x output {o_label}: {how}")
            if rates[r, c] == 0:
                cell_notes.append({"input": i_label, "output": o_label, "note": f"0: {how}"})
        elif fill is None:
            cell_notes.append({"input": i_label, "output": o_label, "note": "0: no benchmark runs (not measured)"})
            warnings.append(f"bucket input {i_label} x output {o_label}: no benchmark runs; set to 0 (cannot serve)")
    if measured.any() and not (rates > 0).any():
        raise InputError("--slo", f"no bucket can be served at {format_slo(conds)}: every measured run misses it; "
                                  "relax the SLO, or measure lower rates")
    if fill is not None and not measured.all():
        pred = prediction.tputs
        what = (f"{prediction.name} ({prediction.meta.get('source', 'unknown')}, "
                f"model {prediction.meta.get('model', 'unknown')})")
        if fill == "predicted":
            rates = np.where(measured, rates, pred.to_numpy())
            cell_notes += [{"input": i, "output": o, "note": f"filled, not measured: prediction of {what}"}
                           for (i, o), m in zip(groups, measured.ravel()) if not m]
        else:
            from .calibrate import calibrated_fill
            mask = labelled_matrix(measured.astype(float), index, columns, field="measured") > 0
            filled, prov = calibrated_fill(pred, labelled_matrix(rates, index, columns, field="measured"), mask)
            rates = filled.to_numpy()
            notes += [f"{n} (prediction: {what})" for n in prov["notes"]]
            cell_notes += prov["cell_notes"]
        if prediction.meta.get("model") not in (None, "unknown", runs[0].model):
            warnings.append(f"--prediction is for model {prediction.meta.get('model')!r}, the runs for "
                            f"{runs[0].model!r}: filled buckets come from another model's prediction")
    tools = sorted({(run.tool, run.tool_version) for run in runs})
    tool = ({"name": tools[0][0], "version": tools[0][1]} if len(tools) == 1
            else {"name": " + ".join(t for t, _ in tools), "version": " + ".join(v for _, v in tools)})
    meta = {"model": runs[0].model, "source": "measured", "slo": conds, "tool": tool,
            "date": _run_date(runs), "cell_notes": cell_notes,
            "notes": [f"imported from {len(runs)} benchmark run(s) in {len({r.file for r in runs})} file(s): max "
                      "rate = achieved requests/s where the SLO metric crosses its threshold, interpolated "
                      "linearly between the last passing and the first failing run"] + notes}
    if price:
        meta["price"] = dict(price)
    tputs = labelled_matrix(rates, index, columns, field=f"{gpu}.tputs")
    return GpuProfile(gpu, float(cost), tputs, meta), warnings


def import_into_file(results: Sequence[str | Path], output: str | Path, *, gpu: str, slo,
                     input_edges: Sequence[float] | None, output_edges: Sequence[float] | None,
                     cost: float | None = None, prices=None, system: str | None = None,
                     gpus_per_replica: int | None = None, engine: str | None = None, add: bool = False,
                     fill: str | None = None, prediction: str | Path | None = None,
                     prediction_gpu: str | None = None, kv_tokens: int | None = None, max_seqs: int = 256,
                     max_step_tokens: int = 8192) -> tuple[Path, Any, list[str]]:
    """`profile import`: a measured profile for `gpu` from benchmark result files, written to the
    profile YAML `output` (beside its other GPU types with `add`). Returns (path, profile, warnings).

    Every input is checked before a result file is read: the SLO, the bucket edges, the cost
    (`cost` $/hour, or the price of `gpu`/`system` in the price file(s) `prices`, times
    `gpus_per_replica`), `add` (no GPU of that name in `output` yet, and the same buckets), and
    `fill`/`prediction`: the predicted profile file and its GPU to fill empty buckets from
    (`prediction_gpu`; by default `gpu` itself, or the file's only GPU). `engine` is NAME=VERSION.
    With `kv_tokens` (and the server's `max_seqs`, `max_step_tokens`) a latency model is fitted to
    the runs' TPOT/TTFT at their achieved concurrency (``latency.fit_latency``, ``runs_samples``).
    Errors name the command line's options.
    """
    from .. import schemas
    from ..files import check_output_file
    from . import GpuProfile, load_gpus, parse_slo, save_profiles

    for flag, value in (("--kv-tokens", kv_tokens), ("--max-seqs", max_seqs), ("--max-step-tokens", max_step_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(flag, f"must be a whole number >= 1, got {value!r}")
    conditions = parse_slo(slo, field="--slo")
    gpu = schemas.gpu_name(gpu, "--gpu")
    check_output_file(output, "-o/--output")
    bucket_labels(input_edges), bucket_labels(output_edges)
    if gpus_per_replica is not None and gpus_per_replica < 1:
        raise InputError("--gpus-per-replica", f"must be >= 1, got {gpus_per_replica}")
    replica = gpus_per_replica or 1
    price = None
    if prices:
        from .prices import find_price, load_prices
        found = find_price(load_prices(prices), gpu, system, field="--prices")
        cost, price = found.usd_per_hour * replica, found.meta()
    else:
        cost = schemas.number(cost, "--cost", positive=True, what="a positive, finite $/hour")
    others = {}
    if add:
        others = load_gpus(output)
        if gpu in others:
            raise InputError("--gpu", f"{gpu} is already in {output}; choose another name or drop --add")
    predicted_profile = None
    if prediction or fill:
        if not (prediction and fill):
            raise InputError("--fill/--prediction", "go together: --fill predicted|calibrated --prediction PREDICTED.yaml")
        predicted = load_gpus(prediction)
        name = prediction_gpu or (gpu if gpu in predicted else next(iter(predicted)) if len(predicted) == 1 else None)
        if name not in predicted:
            raise InputError("--prediction-gpu", f"name the GPU of {prediction} to fill from, one of {list(predicted)}")
        predicted_profile = predicted[name]
    profile, warnings = import_profile(results, gpu=gpu, cost=cost, slo=conditions, input_edges=input_edges,
                                       output_edges=output_edges, price=price, fill=fill, prediction=predicted_profile)
    meta = dict(profile.meta)
    if system:
        meta["system"] = system
    if gpus_per_replica:
        meta["gpus_per_replica"] = gpus_per_replica
    if engine:
        name, _, version = engine.partition("=")
        meta["engine"] = {"name": name, "version": version or "unknown"}
    latency = None
    if kv_tokens:
        from .latency import fit_latency, runs_samples
        latency = fit_latency(runs_samples(read_runs(results)), max_seqs=max_seqs, kv_tokens=kv_tokens,
                              max_step_tokens=max_step_tokens, source="fit:measured",
                              notes=[f"fitted to {len(results)} measured run(s) at their achieved concurrency "
                                     f"(Little's law); max_seqs {max_seqs}, max_step_tokens {max_step_tokens}, "
                                     f"kv_tokens {kv_tokens} as given"])
    profile = GpuProfile(profile.name, profile.cost, profile.tputs, meta, latency)
    for other in others.values():
        if list(other.tputs.index) != list(profile.tputs.index) or list(other.tputs.columns) != list(profile.tputs.columns):
            raise InputError("--edges", f"{output} has other buckets than --edges/--output-edges; "
                                        "import with the same edges or write another file")
    path = save_profiles(output, {**others, profile.name: profile},
                         header=f"Written by melange-nb profile import ({len(results)} result file(s)).")
    return path, profile, warnings


def _run_date(runs: Sequence[BenchmarkRun]) -> str:
    dates = sorted(r.date for r in runs if r.date != "unknown")
    return dates[-1] if dates else "unknown"


# ---------------------------------------------------------------- benchmark commands out

DEFAULT_RATES = (1, 2, 4, 8, 16, 32)
MAX_PLAN_RUNS = 10_000     # benchmark runs in one plan (each takes minutes on a GPU)


def plan_commands(*, model: str, base_url: str, input_edges: Sequence[float], output_edges: Sequence[float],
                  rates: Sequence[float] = DEFAULT_RATES, num_prompts: int = 200, result_dir: str = "results",
                  open_last_input: bool = False, open_last_output: bool = False,
                  backend: str = "vllm", tokenizer: str | None = None, seed: int = 0) -> list[dict]:
    """The ``vllm bench serve`` runs that profile one GPU: one per bucket length pair and rate.

    Each run sends `num_prompts` random prompts of exactly the bucket's representative input
    length (``--random-range-ratio 0``) that generate exactly its output length (``--ignore-eos``),
    Poisson arrivals at the rate, and saves the result JSON that ``import_profile`` reads.
    Returns dicts with the bucket labels, lengths, rate, result file name and argv.
    """
    if not rates or any(not (is_number(r) and r > 0) for r in rates):
        raise InputError("--rates", f"must be positive request rates such as 1,2,4,8, got {list(rates)}")
    if num_prompts < 1:
        raise InputError("--num-prompts", f"must be >= 1, got {num_prompts}")
    index = bucket_labels(input_edges, open_last=open_last_input)
    columns = bucket_labels(output_edges, open_last=open_last_output)
    total = len(index) * len(columns) * len(rates)
    if total > MAX_PLAN_RUNS:
        raise InputError("--rates/--edges", f"make {total:,} benchmark runs ({len(index)} x {len(columns)} buckets x "
                                            f"{len(rates)} rates); at most {MAX_PLAN_RUNS:,}: use fewer edges or rates")
    from .predict import representative_lengths     # the lengths predictions use too: same bucket, same point

    ins = representative_lengths(input_edges, open_last_input, minimum=1)
    outs = representative_lengths(output_edges, open_last_output, minimum=1)
    runs = []
    for i_label, isl in zip(index, ins):
        for o_label, osl in zip(columns, outs):
            for rate in sorted(rates):
                name = f"in{isl}_out{osl}_rate{rate:g}.json"
                argv = ["vllm", "bench", "serve", "--backend", backend, "--base-url", base_url,
                        "--endpoint", "/v1/completions", "--model", model]
                if tokenizer:
                    argv += ["--tokenizer", tokenizer]
                argv += ["--dataset-name", "random", "--random-input-len", str(isl), "--random-output-len", str(osl),
                         "--random-range-ratio", "0", "--ignore-eos", "--num-prompts", str(num_prompts),
                         "--request-rate", f"{rate:g}", "--seed", str(seed),
                         "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
                         "--save-result", "--result-dir", result_dir, "--result-filename", name]
                runs.append({"input": i_label, "output": o_label, "input_len": isl, "output_len": osl,
                             "rate": rate, "file": name, "argv": argv})
    return runs


def write_benchmark_plan(out_dir: str | Path, *, gpu: str, model: str, base_url: str, input_edges: Sequence[float],
                         output_edges: Sequence[float], rates: Sequence[float] = DEFAULT_RATES, num_prompts: int = 200,
                         open_last_input: bool = False, open_last_output: bool = False, tokenizer: str | None = None,
                         slo: str = "tpot_ms=40") -> list[Path]:
    """Write ``run_benchmarks.sh`` (every ``plan_commands`` run) and ``README.md`` (what it does and
    the ``profile import`` command that follows) into `out_dir`. Returns the written paths."""
    from .. import schemas
    from ..files import comment_lines, write_text
    from . import format_slo, parse_slo

    gpu = schemas.gpu_name(gpu, "--gpu")
    model = schemas.printable_text(model, "--model", what="a model name")
    base_url = schemas.printable_text(base_url, "--base-url", what="a server URL such as http://127.0.0.1:8000")
    if tokenizer is not None:
        tokenizer = schemas.printable_text(tokenizer, "--tokenizer", what="a tokenizer name")
    conds = parse_slo(slo, field="--slo")
    runs = plan_commands(model=model, base_url=base_url, input_edges=input_edges, output_edges=output_edges,
                         rates=rates, num_prompts=num_prompts, result_dir="results", tokenizer=tokenizer,
                         open_last_input=open_last_input, open_last_output=open_last_output)
    out = Path(out_dir)
    # Every value is one shlex-quoted argument; the glob stays unquoted on purpose.
    import_cmd = "melange-nb profile import results/*.json " + shlex.join(
        ["--gpu", gpu, "--cost", "DOLLARS_PER_HOUR", "--slo", format_slo(conds, compact=True),
         "--edges", ",".join(map(str, input_edges)), "--output-edges", ",".join(map(str, output_edges)),
         "-o", f"{schemas.file_safe(gpu)}.yaml"])
    lines = ["#!/usr/bin/env bash",
             comment_lines(f"Profile {gpu} serving {model}: {len(runs)} vllm bench serve runs "
                           f"({len(runs) // len(rates)} bucket length pairs x {len(rates)} rates). Written by "
                           "`melange-nb profile plan`.\nStart the vLLM server on the GPU first; re-running skips "
                           "results that already exist.").rstrip("\n"),
             "set -euo pipefail", 'cd "$(dirname "$0")"', "mkdir -p results", ""]
    for run in runs:
        lines.append(f"# bucket input {run['input']} x output {run['output']}, {run['rate']:g} req/s")
        lines.append(f"[ -f {shlex.quote('results/' + run['file'])} ] || " + shlex.join(run["argv"]))
    lines += ["", "printf '%s\\n' " + shlex.quote(f"done; next: {import_cmd}"), ""]
    script = write_text(out / "run_benchmarks.sh", "\n".join(lines))
    script.chmod(0o755)
    readme = f"""# Measuring {gpu} for {model}

The Mélange paper's offline profiling step: for each request-size bucket, benchmark one GPU at a
ladder of request rates and keep the highest rate that still meets the latency SLO.

1. On the machine with the {gpu}, start the server (e.g. `vllm serve {shlex.quote(model)}`) so that it answers at
   `{base_url}`; pip-install vLLM on the client machine for `vllm bench serve`.
2. Run `./run_benchmarks.sh`: {len(runs)} runs, one per bucket length pair and rate, each sending
   {num_prompts} random prompts of exactly the bucket's representative length (the midpoint of its
   edges) with `--ignore-eos` so that every reply has exactly the representative output length.
   Results land in `results/` as `vllm bench serve --save-result` JSON; existing files are skipped,
   so an interrupted run resumes.
3. Import them into a profile file (`melange-nb solve --gpus` reads it):

       {import_cmd}

   Each bucket's max rate is where the SLO metric, against the achieved request rate, crosses its
   threshold (interpolated between the last passing and the first failing rate). If even the
   highest rate passes, extend the ladder (`--rates`): the import never extrapolates above the
   highest passing measurement. A bucket whose runs all fail is 0 (this GPU cannot serve it).

| input bucket | output bucket | input tokens | output tokens |
|---|---|---|---|
""" + "".join(f"| {r['input']} | {r['output']} | {r['input_len']} | {r['output_len']} |\n"
              for r in runs if r["rate"] == sorted(rates)[0]) + f"\nRates (requests/s): {', '.join(f'{r:g}' for r in sorted(rates))}.\n"
    return [script, write_text(out / "README.md", readme)]
