"""Predicted GPU profiles from NVIDIA's aiconfigurator performance model (PyPI ``aiconfigurator-core``).

What a predicted rate means: the requests/s that ONE replica (``tp`` GPUs) of the serving
engine completes in steady state when it is kept at a constant number of concurrent requests
(continuous batching, chunked prefill), every request having the bucket's representative
lengths, with every SLO condition met and the KV cache fitting in the engine's memory budget
(vLLM's ``gpu_memory_utilization``). Per bucket it is the maximum over a grid of concurrencies
(batch sizes ``BATCH_SIZES``, then the sizes halfway to the
best one's neighbours) and prefill chunk sizes (``CHUNK_TOKENS``, vLLM's
``max_num_batched_tokens``): every point is evaluated, because throughput is not monotone in
batch size once prefill dominates. Every point's rate is capped at Little's law, batch / request
latency (aiconfigurator's vLLM backend applies this cap itself; its SGLang and TRT-LLM backends do
not, and without it predict e.g. 3.3 requests/s for 12,000-token prompts on one A100 at batch 1
with a 2 s TTFT). Only memory is assumed to grow with batch size (the search
stops at the first batch whose KV cache does not fit). Concurrency is capped at 512 requests (a
serving engine's ``max_num_seqs`` is of that order): very short buckets on fast GPUs hit the cap.

Which lengths represent a bucket ``lo-hi``: its midpoint ``(lo + hi) / 2`` rounded (at least 1
input and 2 output tokens: the model's rate needs one decode step); an open last bucket ``lo+``
uses ``2 * lo``. A bucket whose requests exceed the model's context window, or whose KV cache
does not fit even one request, is 0 with a note (``cell_notes``).

aiconfigurator gives one (mean-field) latency per point, no distribution: a percentile condition
(``p99_tpot_ms=...``) is checked against that value and the profile's notes say so; ITL is its
TPOT. Systems with measured kernel data are predicted in its ``SILICON`` mode; systems with only
a hardware spec (l4, a100_pcie, h100_pcie, a30) run in speed-of-light mode (``SOL``), which is
1.4-2x optimistic where both exist: such profiles say so in their notes, or with
``sol="calibrate"`` are scaled per bucket by a sibling GPU's measured/speed-of-light ratio
(``SOL_SIBLINGS``), which their notes also say. Results are cached in
``outputs/cache/profiles/`` keyed by every input, so a repeat takes well under a second.

Like with like: each profile records the kernel data it came from (``kernel_data``: backend,
version, measured or speed-of-light, ``scaled_by``). aiconfigurator collected it per GPU on
different engine versions (A100: vLLM 0.14.0, SGLang 0.5.10, TRT-LLM 1.0.0; H100/H200/L40S: vLLM
0.24.0, SGLang 0.5.14, TRT-LLM 1.3.0rc20), so `backend="auto"` (`choose_backend`) takes the backend
whose versions agree best across the set, and a mapping {GPU: backend} runs GPUs on different
engines (labelled in the notes). `physics_check` (`consistency`) refuses rates above physical
bounds and flags pairs whose rate ratio leaves the hardware range; `consistency.set_caveat` is the
warning the CLI prints and every report shows for a set that mixes data.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import PARAMS_DIR, outputs_dir
from .. import schemas
from ..errors import InputError, MissingExtra
from ..files import write_json
from ..workload import bucket_labels, labelled_matrix
from . import consistency
from . import PROFILE_INPUT_EDGES, PROFILE_OUTPUT_EDGES, GpuProfile, format_slo, parse_slo
from .prices import Price, find_price, load_prices, merge_prices

BACKENDS = ("vllm", "sglang", "trtllm")
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CHUNK_TOKENS = (2048, 8192)
SOL_SIBLINGS = {"l4": "l40s", "a100_pcie": "a100_sxm", "h100_pcie": "h100_sxm", "a30": "a100_sxm"}
DEFAULT_PRICES = PARAMS_DIR / "prices" / "runpod-serverless.yaml"
_METRIC_FIELD = {"tpot": "tpot", "itl": "tpot", "ttft": "ttft", "e2e": "request_latency"}
_CACHE_VERSION = 2   # bump when the search or the representative lengths change (2: Little's-law cap)


class PredictorUnavailable(MissingExtra):
    """aiconfigurator-core (the `predict` extra) is not installed (e.g. no wheel for this platform)."""


def _aic():
    """Import aiconfigurator-core lazily (``import melange_nb`` stays light) and quiet its logger."""
    try:
        from aiconfigurator_core.sdk import config_builders, models, perf_database
        from aiconfigurator_core.sdk.backends.factory import get_backend
        from aiconfigurator_core.sdk.config import RuntimeConfig
    except ImportError as exc:
        raise PredictorUnavailable(
            "profile predict", "aiconfigurator-core", "predict",
            " (it ships wheels for Linux x86_64/aarch64 and macOS arm64 only, not Windows; there, use measured "
            "or seed profiles instead)") from exc
    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    return config_builders, models, perf_database, get_backend, RuntimeConfig


@contextlib.contextmanager
def _fast_yaml():
    """aiconfigurator parses hundreds of YAML files with pure-Python ``yaml.safe_load`` when a
    database loads; libyaml's C loader gives the same data several times faster."""
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        yield
        return
    original = yaml.safe_load, yaml.SafeLoader
    yaml.safe_load = lambda stream: yaml.load(stream, Loader=yaml.CSafeLoader)
    yaml.SafeLoader = yaml.CSafeLoader          # its `yaml.load(f, Loader=yaml.SafeLoader)` calls
    try:
        yield
    finally:
        yaml.safe_load, yaml.SafeLoader = original


def _package_dir() -> Path:
    """aiconfigurator-core's folder, found without importing it (a cached repeat never imports it)."""
    import importlib.util

    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        _aic()              # raises PredictorUnavailable with the reason
    return Path(list(spec.submodule_search_locations)[0])


def available(*, models: bool = False) -> dict[str, list[str]]:
    """What predictions can use offline: systems, per backend the systems with measured kernel data
    (the others get speed-of-light estimates), and with `models` the bundled model configs (this
    imports aiconfigurator)."""
    data = _package_dir() / "systems" / "data"
    systems = sorted(p.name for p in data.iterdir() if p.is_dir())
    measured = {b: [s for s in systems if (data / s / "gemm" / b).is_dir()] for b in BACKENDS}
    out = {"systems": systems, "measured": measured, "backends": list(BACKENDS)}
    if models:
        _aic()
        from aiconfigurator_core.sdk.utils import DefaultHFModels

        out["models"] = sorted(DefaultHFModels)
    return out


def resolve_model(model: str | Path) -> tuple[str, str]:
    """(model path for aiconfigurator, display name): a bundled HF id (also its short name, e.g.
    ``Meta-Llama-3.1-8B``) or a local folder with a HuggingFace ``config.json``."""
    text = str(model)
    path = Path(text)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError("model", f"folder {text} has no config.json; put the model's HuggingFace config.json there")
        return str(path.resolve()), path.name
    models = available(models=True)["models"]
    if text in models:
        return text, text.split("/")[-1]
    short = [m for m in models if m.split("/")[-1].lower() in (text.lower(), f"meta-{text.lower()}")]
    if len(short) == 1:
        return short[0], short[0].split("/")[-1]
    raise InputError("model", f"{text!r} is not available offline; use a local folder with config.json or one of: "
                              + ", ".join(models))


MAX_TP = 64         # GPUs in one replica; more is a typo, not a serving setup
_CONFIG_SIZES = ("hidden_size", "num_attention_heads", "vocab_size", "max_position_embeddings")
_CONFIG_OPTIONAL = ("num_hidden_layers", "num_key_value_heads", "intermediate_size", "head_dim")


def check_model_config(folder: Path) -> dict:
    """A local HuggingFace ``config.json``, checked before aiconfigurator reads it: a JSON object naming
    a supported architecture, with positive whole sizes (hidden_size, heads, vocab, context). Returns
    the (text) config whose sizes were checked."""
    from ..files import read_json
    from .. import schemas

    path = folder / "config.json"
    doc = read_json(path, "model config", "a HuggingFace config.json with architectures, hidden_size, ...")
    where = f"model config {path}"
    if not isinstance(doc, Mapping):
        raise InputError(where, f"must be a JSON object (a HuggingFace config.json), got a {type(doc).__name__}")
    arch = doc.get("architectures")
    if not (isinstance(arch, list) and arch and isinstance(arch[0], str)):
        raise InputError(f"{where}: architectures", f"must list the model class, e.g. [\"LlamaForCausalLM\"], got {arch!r}")
    from aiconfigurator_core.sdk.common import ARCHITECTURE_TO_MODEL_FAMILY, MULTIMODAL_TEXT_CONFIG_KEY

    if arch[0] not in ARCHITECTURE_TO_MODEL_FAMILY:
        raise InputError(f"{where}: architectures", f"{arch[0][:80]!r} is not supported by aiconfigurator-core; "
                                                    f"e.g. {', '.join(list(ARCHITECTURE_TO_MODEL_FAMILY)[:4])}")
    text = doc.get(MULTIMODAL_TEXT_CONFIG_KEY.get(arch[0], ""), doc)
    if not isinstance(text, Mapping):
        raise InputError(f"{where}: {MULTIMODAL_TEXT_CONFIG_KEY.get(arch[0])}", "must be a JSON object")
    for key in _CONFIG_SIZES + _CONFIG_OPTIONAL:
        if key in _CONFIG_SIZES or text.get(key) is not None:
            schemas.whole(text.get(key), f"{where}: {key}", minimum=1, maximum=10**8,
                          what="a whole number from 1 to 100,000,000")
    return dict(text)


def check_tp(tp: Any, heads: int | None = None) -> int:
    """Tensor-parallel size: a whole number in 1..MAX_TP that divides the model's attention heads."""
    if not schemas.is_count(tp, 1) or tp > MAX_TP:
        raise InputError("tp", f"must be a whole number from 1 to {MAX_TP} (GPUs per replica), got {tp!r}")
    if heads and heads % tp:
        fits = [d for d in (1, 2, 4, 8, 16, 32, 64) if heads % d == 0 and d <= MAX_TP]
        raise InputError("tp", f"{tp} does not divide the model's {heads} attention heads; use one of {fits}")
    return tp


def representative_lengths(edges: Sequence[float], open_last: bool, *, minimum: int) -> list[int]:
    """One length per bucket: the midpoint of ``lo-hi`` (at least `minimum`); ``2 * lo`` for an open ``lo+``."""
    mids = [max(minimum, int(round((a + b) / 2))) for a, b in zip(edges, edges[1:])]
    return mids + [max(minimum, int(2 * edges[-1]))] if open_last else mids


def _parse_gpus(gpus) -> dict[str, str]:
    """``["h100_sxm=H100", "l40s"]`` or {system: name} -> {name: system}."""
    pairs = gpus.items() if isinstance(gpus, Mapping) else [str(g).partition("=")[::2] for g in gpus]
    out: dict[str, str] = {}
    for system, name in pairs:
        system, name = str(system).strip(), (str(name).strip() or str(system).strip())
        if not system or not system.isprintable() or len(system) > schemas.MAX_GPU_NAME:
            raise InputError("gpu", "is empty; give a system name such as h100_sxm (optionally h100_sxm=H100)")
        if name in out:
            raise InputError("gpu", f"name {name!r} appears twice; rename one with SYSTEM=NAME")
        out[name] = system
    if not out:
        raise InputError("gpu", "lists no GPU; give at least one, e.g. --gpu h100_sxm=H100")
    schemas.gpu_names(list(out), "gpu")
    return out


def _prices(prices) -> dict[str, Price]:
    if prices is None:
        return load_prices(DEFAULT_PRICES)
    if isinstance(prices, Mapping):
        return dict(prices)
    if isinstance(prices, (str, Path)):
        return load_prices(prices)
    return merge_prices(list(prices))


def _condition_failures(result: Mapping[str, Any], slo: list[dict]) -> list[str]:
    return [f"{c['stat']} {c['metric'].upper()} {float(result[_METRIC_FIELD[c['metric']]]):.0f} ms > {c['ms']:g}"
            for c in slo if float(result[_METRIC_FIELD[c["metric"]]]) > c["ms"]]


def _search_bucket(backend, model, database, runtime_config, isl: int, osl: int, slo: list[dict]) -> tuple[float, str]:
    """(best requests/s, note) for one bucket: every (chunk, batch) point of the grid up to the first
    batch that overflows memory, then the in-between batch sizes next to the best point."""
    best, best_at, fits, failures, errors = 0.0, None, False, [], []

    def rate(chunk: int, batch: int) -> float | None:
        """requests/s meeting the SLO (0 if not met); None when the KV cache does not fit."""
        nonlocal fits, failures
        try:
            summary = backend.run_agg(model, database, runtime_config(isl=isl, osl=osl, batch_size=batch),
                                      ctx_tokens=chunk)
        except (AssertionError, ValueError, ZeroDivisionError) as exc:   # a point the model rejects: skip it
            errors.append(f"{type(exc).__name__}: {exc}")
            return 0.0
        if summary.check_oom() or summary.check_kv_cache_oom():
            return None
        fits = True
        result = summary.get_result_dict()
        failed = _condition_failures(result, slo)
        if failed and batch == 1:
            failures = failed
        if failed:
            return 0.0
        latency_s = float(result["request_latency"]) / 1000   # Little's law: batch requests in flight, each this long
        return min(float(result["request_rate"]), batch / latency_s) if latency_s > 0 else float(result["request_rate"])

    for chunk in CHUNK_TOKENS:
        for batch in BATCH_SIZES:
            value = rate(chunk, batch)
            if value is None:
                break                                  # memory only grows with the batch
            if value > best:
                best, best_at = value, (chunk, batch)
    if best_at:                                        # refine between the best batch and its grid neighbours
        chunk, batch = best_at
        k = BATCH_SIZES.index(batch)
        for other in BATCH_SIZES[max(k - 1, 0):k] + BATCH_SIZES[k + 1:k + 2]:
            mid = (batch + other) // 2
            if mid not in BATCH_SIZES:
                value = rate(chunk, mid)
                if value and value > best:
                    best = value
    if best > 0:
        return best, ""
    if not fits:
        return 0.0, "KV cache does not fit (not even one request)" if not errors else f"no estimate ({errors[0][:120]})"
    return 0.0, "SLO not met even at batch 1 (" + "; ".join(failures) + ")" if failures else "SLO not met"


def _predict_system(system: str, *, model_path: str, backend_name: str, slo: list[dict], tp: int,
                    input_lengths: list[int], output_lengths: list[int], mode: str) -> dict[str, Any]:
    """Raw predictions for one system in one database mode: rates (list of rows), cell notes, facts."""
    config_builders, models, perf_database, get_backend, RuntimeConfig = _aic()
    sibling = SOL_SIBLINGS.get(system, system)
    with _fast_yaml():
        slots = perf_database.get_version_slots(sibling, backend_name) or {}
    if "current" not in slots:
        raise InputError("backend", f"{backend_name} has no performance data for {system} offline; "
                                    f"try another --backend of {list(BACKENDS)}")
    version = slots["current"]
    with _fast_yaml():
        if mode == "SOL":
            database = perf_database.get_database_view(system, backend_name, version, allow_missing_data=True,
                                                       database_mode="SOL", allow_unlisted_version=True)
        else:
            database = perf_database.get_database_view(system, backend_name, version)
        from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

        parsed = get_model_config_from_model_path(model_path)
        check_tp(tp, parsed.get("n"))      # before the performance model asserts on it
        model = models.get_model(model_path, config_builders.build_model_config(tp, 1, 1, 1, 1), backend_name)
        backend = get_backend(backend_name)      # one backend per database: its result cache ignores the system
        raw = parsed.get("raw_config") or {}
        window = raw.get("max_position_embeddings") or (raw.get("text_config") or {}).get("max_position_embeddings")
        rates, notes = [], []
        for i, isl in enumerate(input_lengths):
            row = []
            for j, osl in enumerate(output_lengths):
                if window and isl + osl > int(window):
                    rate, note = 0.0, f"longer than the model's context window ({int(window)} tokens)"
                else:
                    rate, note = _search_bucket(backend, model, database, RuntimeConfig, isl, osl, slo)
                row.append(rate)
                if note:
                    notes.append([i, j, note])
            rates.append(row)
    return {"rates": rates, "notes": notes, "version": str(database.version), "mode": mode, "model_config": raw}


def _model_key(model) -> str:
    """The model as the cache sees it: a local config by its content, a name as given."""
    path = Path(str(model))
    if (path / "config.json").is_file():
        return "config.json sha256 " + hashlib.sha256((path / "config.json").read_bytes()).hexdigest()
    return str(model)


def _cached_predict(system: str, mode: str, *, model, use_cache: bool, **kwargs) -> dict[str, Any]:
    """One system's raw prediction, from the cache when every input matches (no aiconfigurator import then)."""
    import importlib.metadata as md

    try:
        version = md.version("aiconfigurator-core")
    except md.PackageNotFoundError:
        _aic()
    key = dict(kwargs, system=system, mode=mode, model=_model_key(model), aiconfigurator_core=version,
               cache_version=_CACHE_VERSION, batch_sizes=BATCH_SIZES, chunks=CHUNK_TOKENS)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = outputs_dir() / "cache" / "profiles" / f"{system}-{mode.lower()}-{digest}.json"
    if use_cache and path.is_file():
        result = json.loads(path.read_text())
        if "model_config" in result:
            return result
        _aic()                                 # a cache entry from before the physics check: add the config
        from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

        result["model_config"] = get_model_config_from_model_path(resolve_model(model)[0]).get("raw_config") or {}
        write_json(path, result)
        return result
    model_path, model_name = resolve_model(model)
    result = _predict_system(system, model_path=model_path, mode=mode, **kwargs)
    result.update(model_name=model_name, tool_version=version, date=_dt.date.today().isoformat())
    if use_cache:
        write_json(path, result)
    return result


def _significant(values: np.ndarray, digits: int = 4) -> np.ndarray:
    """Round to `digits` significant digits (readable files; a tiny rate never rounds to 0)."""
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(np.asarray(values, dtype=float))


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in match.group(0).split(".")) if match else ()


def _agreement(versions: Sequence[tuple[str, bool]]) -> tuple:
    """Sort key of a backend's (version, measured) per GPU: fewer speed-of-light GPUs, fewer distinct
    versions, a longer shared release prefix (0.5.x beats 0.x), then a smaller gap where they part."""
    releases = [_release(v) for v, _ in versions]
    depth = 0
    while all(len(r) > depth for r in releases) and len({r[depth] for r in releases}) == 1:
        depth += 1
    parted = [r[depth] for r in releases if len(r) > depth]
    return (sum(not m for _, m in versions), len({v for v, _ in versions}), -depth,
            max(parted) - min(parted) if parted else 0)


def _current_version(system: str, backend: str) -> str | None:
    """The kernel-data version aiconfigurator queries for `system` on `backend` (its "current" slot)."""
    _, _, perf_database, _, _ = _aic()
    with _fast_yaml():
        return (perf_database.get_version_slots(system, backend) or {}).get("current")


def _kernel_sources(names: Mapping[str, str], backend: str, info: Mapping) -> dict[str, tuple[str, bool]] | None:
    """{GPU name: (kernel-data version, measured)} on `backend`, or None when a GPU has no data there."""
    out = {}
    for name, system in names.items():
        measured = system in info["measured"][backend]
        source = system if measured else SOL_SIBLINGS.get(system)
        version = _current_version(source, backend) if source in info["measured"][backend] else None
        if version is None:
            return None
        out[name] = (version, measured)
    return out


def choose_backend(gpus: Sequence[str] | Mapping[str, str]) -> tuple[str, str]:
    """(backend, sentence): the backend whose kernel-data versions agree best across the GPU set
    (`_agreement`; ties go to the order of `BACKENDS`), and which versions it and the others have."""
    return _choose_backend(_parse_gpus(gpus))


def _choose_backend(names: Mapping[str, str]) -> tuple[str, str]:
    """`choose_backend` for {GPU name: system}."""
    info = available()
    candidates = []
    for order, backend in enumerate(BACKENDS):
        sources = _kernel_sources(names, backend, info)
        if sources:
            candidates.append((_agreement(list(sources.values())), order, backend, sources))
    if not candidates:
        raise InputError("backend", "auto: no backend has data for every GPU of this set; give --backend per GPU "
                                    "(NAME=BACKEND)")
    candidates.sort()

    def listed(sources):
        return ", ".join(f"{n} {v}" + ("" if m else f" (speed-of-light, {SOL_SIBLINGS[names[n]]}'s version)")
                         for n, (v, m) in sources.items())
    _, _, backend, sources = candidates[0]
    others = "; ".join(f"{b}: {listed(src)}" for _, _, b, src in candidates[1:])
    return backend, (f"--backend auto chose {backend}, whose kernel-data versions agree best across the set "
                     f"({listed(sources)})" + (f"; the others: {others}" if others else ""))


def _backends(backend, names: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """{GPU name: backend} and a note on how it was chosen ("" for one backend given for all)."""
    if isinstance(backend, Mapping):
        unknown = [n for n in backend if n not in names]
        if unknown:
            raise InputError("backend", f"names GPU {unknown[0]!r}, which is not in the set {list(names)}")
        missing = [n for n in names if n not in backend]
        if missing:
            raise InputError("backend", f"gives no backend for GPU {missing[0]!r}; give one per GPU (NAME=BACKEND) "
                                        "or one for all")
        chosen = {n: str(backend[n]) for n in names}
        note = ("backend chosen per GPU by the user (" + ", ".join(f"{n}: {b}" for n, b in chosen.items())
                + "): these GPUs run different serving engines") if len(set(chosen.values())) > 1 else ""
    elif backend == "auto":
        picked, note = _choose_backend(names)
        chosen = {n: picked for n in names}
    else:
        chosen, note = {n: str(backend) for n in names}, ""
    for b in chosen.values():
        if b not in BACKENDS:
            raise InputError("backend", f"unknown backend {b!r}; available offline: {', '.join(BACKENDS)} (or auto)")
    return chosen, note


def physics_check(gpus: Mapping[str, GpuProfile], *, model_config: Mapping | None, slo, tp: int,
                  input_lengths: Sequence[int], output_lengths: Sequence[int],
                  margin: float = consistency.MARGIN) -> list[str]:
    """Refuse a rate above its GPU's physical bound; flag, in both profiles' ``cell_notes``, buckets whose
    rate ratio lies outside the pair's hardware range. Returns one warning line per flagged pair."""
    shape = consistency.model_shape(model_config)
    specs = {name: consistency.hardware_spec(g.meta.get("system", "")) for name, g in gpus.items()}
    for name, gpu in gpus.items():
        consistency.check_bounds(name, gpu.tputs.to_numpy(), specs[name], shape, input_lengths, output_lengths,
                                 list(gpu.tputs.index), list(gpu.tputs.columns), tp)
    warnings = []
    names = [n for n in gpus if specs[n] is not None]
    for k, first in enumerate(names):
        for second in names[k + 1:]:      # the GPU with more compute on top: ratios read "x times faster"
            a, b = (first, second) if specs[first].flops >= specs[second].flops else (second, first)
            rng = consistency.hardware_range(specs[a], specs[b], shape=shape, slo=slo, tp=tp, margin=margin)
            flagged = consistency.inconsistent_buckets(gpus[a], gpus[b], rng)
            for row, col, ratio in flagged:
                gpus[a].meta["cell_notes"].append({"input": row, "output": col,
                                                   "note": consistency.flag_note(b, ratio, rng, True)})
                gpus[b].meta["cell_notes"].append({"input": row, "output": col,
                                                   "note": consistency.flag_note(a, ratio, rng, False)})
            if flagged:
                ratios = [r for _, _, r in flagged]
                line = (f"{consistency.PHYSICS}{len(flagged)} bucket{'s' if len(flagged) != 1 else ''} outside the "
                        + consistency.describe_range(a, b, rng, [specs[a].file, specs[b].file])
                        + f": {a}/{b} = {min(ratios):.2f}-{max(ratios):.2f}x there")
                warnings.append(line)
                gpus[a].meta["notes"].append(line)
                gpus[b].meta["notes"].append(line)
    for name, gpu in gpus.items():
        if specs[name] is not None and shape is not None:
            gpu.meta["notes"].append(f"{consistency.PHYSICS}every bucket is below its compute and memory bound "
                                     f"(specs from {specs[name].file})")
    return warnings


def check_request(model: str | Path, gpus: Sequence[str] | Mapping[str, str], *, slo, backend="vllm",
                  edges: Sequence[float] = PROFILE_INPUT_EDGES, output_edges: Sequence[float] = PROFILE_OUTPUT_EDGES,
                  open_last_input: bool = False, open_last_output: bool = False, prices=None, tp: int = 1,
                  sol: str = "label") -> dict[str, Any]:
    """Every check `predict_profiles` makes before its first estimate, with what they parsed; no
    estimate runs and nothing is written (a sweep spec checks its `predict:` requests with it)."""
    conditions = parse_slo(slo, field="slo")
    if conditions == "unknown":
        raise InputError("slo", "is required for a prediction; e.g. tpot_ms=40")
    check_tp(tp)
    if sol not in ("label", "calibrate"):
        raise InputError("sol", f"must be 'label' or 'calibrate', got {sol!r}")
    index = bucket_labels(edges, open_last=open_last_input)
    columns = bucket_labels(output_edges, open_last=open_last_output)
    names = _parse_gpus(gpus)
    info = available()
    if isinstance(backend, str) and backend not in (*info["backends"], "auto"):
        raise InputError("backend", f"unknown backend {backend!r}; available offline: {', '.join(info['backends'])} "
                                    "(or auto)")
    for name, system in names.items():
        if system not in info["systems"]:
            raise InputError("gpu", f"unknown system {system!r}; available offline: {', '.join(info['systems'])} "
                                    "(A10G has no data: use the seed's measured profile)")
    backends, backend_note = _backends(backend, names)
    for name, system in names.items():
        if system not in info["measured"][backends[name]] and system not in SOL_SIBLINGS:
            raise InputError("backend", f"{backends[name]} has no performance data for {system} offline; it has data "
                                        f"for {', '.join(info['measured'][backends[name]])}")
    if Path(str(model)).is_dir():
        resolve_model(model)                  # the one-line error for a folder without config.json
        check_tp(tp, check_model_config(Path(str(model)))["num_attention_heads"])
    price_table = _prices(prices)
    priced = {name: find_price(price_table, name, system, field="prices") for name, system in names.items()}
    return {"conditions": conditions, "index": index, "columns": columns, "names": names, "info": info,
            "backends": backends, "backend_note": backend_note, "priced": priced}


def predict_profiles(model: str | Path, gpus: Sequence[str] | Mapping[str, str], *, slo, backend="vllm",
                     edges: Sequence[float] = PROFILE_INPUT_EDGES, output_edges: Sequence[float] = PROFILE_OUTPUT_EDGES,
                     open_last_input: bool = False, open_last_output: bool = False, prices=None, tp: int = 1,
                     sol: str = "label", cache: bool = True) -> dict[str, GpuProfile]:
    """Predicted profiles {GPU name: GpuProfile} for `model` on each aiconfigurator system in `gpus`.

    `gpus`: system names, ``"h100_sxm=H100"`` to rename, or a mapping {system: name}. `backend`:
    one of `BACKENDS` for every GPU, ``"auto"`` (`choose_backend`: the one whose kernel-data versions
    agree best across the set), or {GPU name: backend} for GPUs running different engines. `slo`:
    what `parse_slo` reads (e.g. ``"tpot_ms=40"`` or a list of conditions). `prices`: a price file,
    a list of them, or {name: Price}; default ``params/prices/runpod-serverless.yaml``; cost = price
    per GPU x `tp`. `sol`: "label" or "calibrate" for systems without measured data (see the module
    docstring). Every input is checked (`check_request`) before the first estimate. Each profile's
    ``kernel_data`` says which data it came from; `physics_check` refuses rates above physical bounds and flags
    inconsistent buckets; `consistency.set_caveat` gives the warning for a set that mixes data.
    """
    checked = check_request(model, gpus, slo=slo, backend=backend, edges=edges, output_edges=output_edges,
                            open_last_input=open_last_input, open_last_output=open_last_output, prices=prices,
                            tp=tp, sol=sol)
    conditions, index, columns, names = checked["conditions"], checked["index"], checked["columns"], checked["names"]
    info, backends, backend_note, priced = checked["info"], checked["backends"], checked["backend_note"], checked["priced"]
    input_lengths = representative_lengths(list(edges), open_last_input, minimum=1)
    output_lengths = representative_lengths(list(output_edges), open_last_output, minimum=2)
    out, model_config = {}, None
    for name, system in names.items():
        common = dict(model=model, use_cache=cache, backend_name=backends[name], slo=conditions, tp=tp,
                      input_lengths=input_lengths, output_lengths=output_lengths)
        backend_name = backends[name]
        measured = system in info["measured"][backend_name]
        result = _cached_predict(system, "SILICON" if measured else "SOL", **common)
        model_config = result.get("model_config")
        rates = np.asarray(result["rates"], dtype=float)
        tool = {"name": "aiconfigurator-core", "version": result["tool_version"]}
        model_name = result["model_name"]
        kernels = {"backend": backend_name, "version": result["version"],
                   "kernels": "measured" if measured else "speed-of-light"}
        notes = [f"predicted by aiconfigurator-core {tool['version']} ({backend_name} {result['version']} kernel data, "
                 f"{'measured kernels' if measured else 'speed-of-light mode'}); rate = requests/s of one replica "
                 f"at the best batch size and prefill chunk meeting the SLO; bucket lengths: midpoints "
                 f"(open last bucket: 2x its lower edge)"]
        if backend_note:
            notes.append(backend_note)
        if any(c["stat"] != "mean" or c["metric"] == "itl" for c in conditions):
            notes.append("percentile/ITL conditions were checked against aiconfigurator's single mean-field "
                         "latency (it models no distribution; ITL = TPOT)")
        if not measured:
            sibling = SOL_SIBLINGS.get(system)
            if sol == "calibrate" and sibling:
                sil = np.asarray(_cached_predict(sibling, "SILICON", **common)["rates"])
                ref = np.asarray(_cached_predict(sibling, "SOL", **common)["rates"])
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(ref > 0, sil / ref, 0.0)
                rates = rates * ratio
                kernels["scaled_by"] = sibling
                notes.append(f"{system} has no measured kernel data: speed-of-light estimate scaled per bucket by "
                             f"{sibling}'s measured/speed-of-light ratio (median {np.median(ratio[ratio > 0]):.2f}); "
                             "the SLO check itself used speed-of-light latencies"
                             if (ratio > 0).any() else f"{system}: {sibling} calibration gave no ratio")
            else:
                notes.append(f"{system} has no measured kernel data: SPEED-OF-LIGHT (roofline) estimate, typically "
                             "1.4-2x optimistic; use sol='calibrate' (--sol calibrate) to scale by a sibling GPU")
        cell_notes = [{"input": index[i], "output": columns[j], "note": note} for i, j, note in result["notes"]]
        noted = {(c["input"], c["output"]) for c in cell_notes}
        cell_notes += [{"input": index[i], "output": columns[j], "note": f"0 after calibration: {SOL_SIBLINGS[system]} "
                        "cannot serve this bucket on its measured data"}
                       for i, j in zip(*np.nonzero(rates == 0))
                       if (index[i], columns[j]) not in noted and system in SOL_SIBLINGS and sol == "calibrate"]
        if rates.max(initial=0) == 0 and cell_notes and all("KV cache" in c["note"] for c in cell_notes):
            notes.append(f"{model_name} does not fit one replica of {tp} x {system}: every bucket is 0")
        elif rates.max(initial=0) == 0:
            notes.append(f"NO bucket can be served on {system} at {format_slo(conditions)}: every bucket is 0")
        price = priced[name]
        meta = {"model": model_name, "source": "predicted", "system": system, "gpus_per_replica": tp,
                "engine": {"name": backend_name, "version": result["version"]}, "kernel_data": kernels, "tool": tool,
                "slo": conditions, "date": result["date"], "price": price.meta(), "notes": notes,
                "cell_notes": cell_notes}
        out[name] = GpuProfile(name, price.usd_per_hour * tp, labelled_matrix(_significant(rates), index, columns, field=name), meta)
    check_servable(out, conditions)
    physics_check(out, model_config=model_config, slo=conditions, tp=tp, input_lengths=input_lengths,
                  output_lengths=output_lengths)
    return out


def check_servable(profiles: Mapping[str, GpuProfile], conditions) -> None:
    """Refuse a prediction where the SLO leaves no bucket servable on any GPU: a profile of zeros
    answers nothing. (A model that does not fit at all keeps its all-zero profile and note.)"""
    if any(p.tputs.to_numpy().max(initial=0) > 0 for p in profiles.values()):
        return
    reasons = {c["note"] for p in profiles.values() for c in p.meta["cell_notes"]}
    if any("SLO not met" in r for r in reasons):
        raise InputError("slo", f"no bucket can be served at {format_slo(conditions)} on {', '.join(profiles)}: "
                                "even one request at a time misses it; relax the SLO")


# ---------------------------------------------------------------- latency model (for `simulate`)

LATENCY_MAX_SEQS = 512          # the concurrency cap of the rate search above (BATCH_SIZES)
LATENCY_STEP_TOKENS = max(CHUNK_TOKENS)


def replica_facts(model: str | Path, system: str, *, backend: str = "vllm", version: str | None = None, tp: int = 1,
                  mode: str = "SILICON", input_lengths: Sequence[int] = (12, 175, 750, 3000, 12000),
                  output_lengths: Sequence[int] = (12, 175, 1500)) -> dict:
    """What aiconfigurator-core says about one replica that a latency model needs beyond a profile's rates:
    ``idle`` (a DataFrame of TPOT at batch 1 per input and output length: concurrency, input_len,
    output_len, tpot_ms) and ``kv_tokens`` (the largest batch of 3,500-token requests whose KV cache
    fits, found by bisection, times 3,500), with ``version`` and ``mode`` of the kernel data used."""
    import pandas as pd

    config_builders, models, perf_database, get_backend, RuntimeConfig = _aic()
    model_path, _ = resolve_model(model)
    with _fast_yaml():
        if version is None:
            version = (perf_database.get_version_slots(SOL_SIBLINGS.get(system, system), backend) or {}).get("current")
            if version is None:
                raise InputError("backend", f"{backend} has no performance data for {system} offline")
        if mode == "SOL":
            database = perf_database.get_database_view(system, backend, version, allow_missing_data=True,
                                                       database_mode="SOL", allow_unlisted_version=True)
        else:
            database = perf_database.get_database_view(system, backend, version)
        llm = models.get_model(model_path, config_builders.build_model_config(tp, 1, 1, 1, 1), backend)
        engine = get_backend(backend)

        def point(isl, osl, batch):
            try:
                summary = engine.run_agg(llm, database, RuntimeConfig(isl=isl, osl=osl, batch_size=batch),
                                         ctx_tokens=LATENCY_STEP_TOKENS)
            except (AssertionError, ValueError, ZeroDivisionError):
                return "error"
            if summary.check_oom() or summary.check_kv_cache_oom():
                return None
            return summary.get_result_dict()

        rows = []
        for isl in input_lengths:
            for osl in output_lengths:
                result = point(isl, osl, 1)
                if isinstance(result, dict):
                    rows.append({"concurrency": 1, "input_len": isl, "output_len": osl, "tpot_ms": float(result["tpot"])})
        fits, fails = 0, 1
        while fails < 1 << 16 and isinstance(point(3000, 500, fails), dict):
            fits, fails = fails, fails * 2
        while fits and fails - fits > 1:
            mid = (fits + fails) // 2
            fits, fails = (mid, fails) if isinstance(point(3000, 500, mid), dict) else (fits, mid)
    return {"idle": pd.DataFrame(rows, columns=["concurrency", "input_len", "output_len", "tpot_ms"]),
            "kv_tokens": fits * 3500, "version": str(version), "mode": mode}
