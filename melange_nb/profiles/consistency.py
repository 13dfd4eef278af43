"""Do a predicted GPU set compare like with like? Kernel-data versions and a physical sanity check.

A predicted rate comes from aiconfigurator-core's kernel data, collected per GPU on some version of
the serving engine (``kernel_data`` in a profile's provenance: backend, version, and whether the
kernels were measured or only estimated at the speed of light). When a set mixes versions, or
measured kernels with speed-of-light estimates, the mix answer may reflect the age of a database
rather than the hardware: `set_caveat` says so in one line, for reports to print next to the headline.

The physics, from the hardware specs in aiconfigurator's system files (``systems/<system>.yaml``:
dense BF16 tensor-core FLOP/s, memory bandwidth and its empirical factor, memory capacity):

- **Upper bound per bucket** (`upper_bounds`): a replica of ``tp`` GPUs can serve at most
  ``tp x FLOP/s / FLOPs per request`` requests/s (FLOPs per request: 2 x transformer-block
  parameters x (input + output - 1) tokens + 2 x LM-head parameters x output tokens; attention
  scores left out, so the bound stays an upper bound) and at most ``b x tp x bandwidth /
  ((output - 1) x (weight bytes + b x prompt KV bytes))`` from memory: each decode step reads the
  weights plus every running request's KV cache (at least its prompt), with ``b`` as many requests
  as fit beside the weights. A prediction above ``min(compute, memory)`` is a model error.
- **Consistency per pair** (`hardware_range`, `inconsistent_buckets`): the ratio of two GPUs'
  predicted rates must lie in the range spanned by their hardware ratios, widened by `MARGIN`
  (25%) each way. The ratios: peak compute, memory bandwidth, and decode under the SLO (the KV
  cache a decode step may read within the TPOT limit and the memory left beside the weights: rate
  ~ B / t with B = min(TPOT x effective bandwidth - weight bytes, capacity - weights - reserved
  memory), t = (weight bytes + B) / effective bandwidth). The last one matters for slow-memory
  GPUs (L40S, L4) at tight SLOs, whose batches shrink faster than their bandwidth. Buckets outside
  the range are flagged in both profiles' ``cell_notes`` (``inconsistent with <GPU>: ...``).

Only dense decoder-only models with a standard HuggingFace config (and no quantization config)
get bounds and the SLO ratio; others are checked against compute and bandwidth ratios only.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import MelangeError
from . import UNKNOWN, GpuProfile

MARGIN = 0.25            # the hardware range is widened by this share each way
BYTES_PER_PARAM = 2      # BF16 weights and KV cache (aiconfigurator's default quantization for BF16 models)
INCONSISTENT = "inconsistent with "   # prefix of a consistency flag in cell_notes
PHYSICS = "physics check: "           # prefix of the check's lines in a profile's notes


class PredictionAboveBound(MelangeError):
    """A predicted rate above the GPU's physical bound for its bucket: a model error, refused."""


@dataclass(frozen=True)
class HardwareSpec:
    """One GPU's numbers from aiconfigurator's system file (`file` names it)."""

    system: str
    file: str
    flops: float            # dense BF16 tensor-core FLOP/s
    mem_bw: float           # bytes/s (data sheet)
    bw_factor: float        # aiconfigurator's empirical share of it that kernels reach
    mem_capacity: float     # bytes
    reserved: float         # bytes aiconfigurator keeps free for other uses (misc.other_mem)


@dataclass(frozen=True)
class ModelShape:
    """What the bounds need from a model config."""

    block_params: float     # parameters in the transformer blocks (every token passes them)
    head_params: float      # LM head (vocab x hidden)
    resident_bytes: float   # all weights in memory (embedding and head counted twice if untied)
    kv_bytes_per_token: float


def _systems_dir() -> Path | None:
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "systems"


@functools.lru_cache(maxsize=None)
def hardware_spec(system: str) -> HardwareSpec | None:
    """The specs of an aiconfigurator system (e.g. ``h100_sxm``), or None without its file."""
    import importlib.metadata as md

    import yaml

    folder = _systems_dir()
    path = folder / f"{system}.yaml" if folder and system and system != UNKNOWN else None
    if path is None or not path.is_file():
        return None
    doc = yaml.safe_load(path.read_text()) or {}
    gpu, misc = doc.get("gpu") or {}, doc.get("misc") or {}
    if not gpu.get("bfloat16_tc_flops") or not gpu.get("mem_bw") or not gpu.get("mem_capacity"):
        return None
    version = md.version("aiconfigurator-core")
    return HardwareSpec(system, f"aiconfigurator-core {version} systems/{path.name}", float(gpu["bfloat16_tc_flops"]),
                        float(gpu["mem_bw"]), float(gpu.get("mem_bw_empirical_scaling_factor") or 1.0),
                        float(gpu["mem_capacity"]), float(misc.get("other_mem") or 0.0))


def model_shape(config: Mapping[str, Any] | None) -> ModelShape | None:
    """Parameter counts and KV bytes of a dense decoder-only HuggingFace config; None for other models."""
    if not config:
        return None
    config = config.get("text_config") or config
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
    moe = ("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size")
    if any(not isinstance(config.get(k), int) for k in keys) or any(config.get(k) for k in moe) \
            or config.get("quantization_config") or config.get("sliding_window"):
        return None
    h, layers, heads = config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or h // heads)
    attention = h * heads * head_dim * 2 + 2 * h * kv_heads * head_dim     # q, o; k, v
    block = layers * (attention + 3 * h * config["intermediate_size"])    # gated MLP: gate, up, down
    head = config["vocab_size"] * h
    tied = bool(config.get("tie_word_embeddings", False))
    resident = BYTES_PER_PARAM * (block + head * (1 if tied else 2))
    return ModelShape(float(block), float(head), float(resident), float(2 * layers * kv_heads * head_dim * BYTES_PER_PARAM))


def upper_bounds(spec: HardwareSpec, shape: ModelShape, isl: int, osl: int, tp: int = 1) -> tuple[float, float]:
    """(compute bound, memory bound) in requests/s for one replica of `tp` GPUs on one bucket's lengths."""
    flops = 2 * shape.block_params * (isl + osl - 1) + 2 * shape.head_params * osl
    compute = tp * spec.flops / flops
    steps = max(osl - 1, 1)
    kv = shape.kv_bytes_per_token * max(isl, 1)
    batch = (tp * spec.mem_capacity - shape.resident_bytes) / kv
    if batch < 1:
        return compute, 0.0
    weights = BYTES_PER_PARAM * (shape.block_params + shape.head_params)
    memory = batch * tp * spec.mem_bw / (steps * (weights + batch * kv))
    return compute, memory


def check_bounds(name: str, rates, spec: HardwareSpec | None, shape: ModelShape | None, input_lengths: Sequence[int],
                 output_lengths: Sequence[int], index: Sequence[str], columns: Sequence[str], tp: int = 1) -> None:
    """Refuse (PredictionAboveBound, one line with the numbers) a rate above min(compute, memory) bound."""
    if spec is None or shape is None:
        return
    rates = np.asarray(rates, dtype=float)
    for i, isl in enumerate(input_lengths):
        for j, osl in enumerate(output_lengths):
            compute, memory = upper_bounds(spec, shape, isl, osl, tp)
            if rates[i, j] > min(compute, memory) * (1 + 1e-9):
                raise PredictionAboveBound(
                    f"{name}: predicted {rates[i, j]:.4g} requests/s on bucket {index[i]} x {columns[j]} "
                    f"({isl} in, {osl} out) is above its physical bound {min(compute, memory):.4g} "
                    f"(compute {compute:.4g}: {tp} x {spec.flops / 1e12:g} TFLOP/s; memory {memory:.4g}: "
                    f"{tp} x {spec.mem_bw / 1e12:g} TB/s, {tp} x {spec.mem_capacity / 2**30:g} GiB; specs from "
                    f"{spec.file}); the performance model is wrong here, do not use this prediction")


def _tpot_seconds(slo) -> float | None:
    limits = [c["ms"] for c in (slo if isinstance(slo, list) else []) if c.get("metric") in ("tpot", "itl")]
    return min(limits) / 1000 if limits else None


def _decode_rate(spec: HardwareSpec, shape: ModelShape, tpot: float | None, tp: int) -> float | None:
    """Relative decode rate ~ B / t (see the module docstring); None when the SLO cannot be met at all."""
    bw = tp * spec.mem_bw * spec.bw_factor
    weights = BYTES_PER_PARAM * (shape.block_params + shape.head_params)
    room = tp * spec.mem_capacity - shape.resident_bytes - spec.reserved
    if tpot is not None:
        room = min(room, tpot * bw - weights)
    return None if room <= 0 else room / ((weights + room) / bw)


def hardware_range(a: HardwareSpec, b: HardwareSpec, *, shape: ModelShape | None = None, slo=None, tp: int = 1,
                   margin: float = MARGIN) -> dict[str, Any]:
    """The range the ratio rate(a) / rate(b) should lie in: {low, high, compute, bandwidth, decode}."""
    ratios = {"compute": a.flops / b.flops, "bandwidth": a.mem_bw / b.mem_bw, "decode": None}
    if shape is not None:
        ra, rb = (_decode_rate(s, shape, _tpot_seconds(slo), tp) for s in (a, b))
        ratios["decode"] = ra / rb if ra and rb else None
    values = [v for v in ratios.values() if v]
    return {"low": min(values) / (1 + margin), "high": max(values) * (1 + margin), "margin": margin, **ratios}


def describe_range(name_a: str, name_b: str, rng: Mapping[str, Any], files: Sequence[str]) -> str:
    parts = [f"compute {rng['compute']:.2f}x", f"bandwidth {rng['bandwidth']:.2f}x"]
    if rng.get("decode"):
        parts.append(f"decode under the SLO {rng['decode']:.2f}x")
    files = list(dict.fromkeys(files))
    tool = files[0].rsplit(" ", 1)[0] + " "
    shown = [files[0]] + [f[len(tool):] if f.startswith(tool) else f for f in files[1:]]
    return (f"{name_a}/{name_b} hardware range {rng['low']:.2f}-{rng['high']:.2f}x ({', '.join(parts)}, widened by "
            f"{rng['margin']:.0%}; specs from {' and '.join(shown)})")


def inconsistent_buckets(a: GpuProfile, b: GpuProfile, rng: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """Buckets both GPUs serve whose rate ratio a/b lies outside `rng`: [(input, output, ratio)]."""
    x, y = a.tputs.to_numpy(dtype=float), b.tputs.to_numpy(dtype=float)
    out = []
    for i, row in enumerate(a.tputs.index):
        for j, col in enumerate(a.tputs.columns):
            if x[i, j] > 0 and y[i, j] > 0:
                ratio = x[i, j] / y[i, j]
                if not rng["low"] <= ratio <= rng["high"]:
                    out.append((str(row), str(col), ratio))
    return out


def flag_note(other: str, ratio: float, rng: Mapping[str, Any], self_first: bool) -> str:
    """The ``cell_notes`` text of a flagged bucket (starts with `INCONSISTENT` + the other GPU's name)."""
    shown = ratio if self_first else 1 / ratio
    low, high = (rng["low"], rng["high"]) if self_first else (1 / rng["high"], 1 / rng["low"])
    return (f"{INCONSISTENT}{other}: rate ratio {shown:.3g}x outside the hardware range {low:.3g}-{high:.3g}x "
            "(compare like with like: check the kernel data)")


def _flags(gpus: Mapping[str, GpuProfile]) -> dict[tuple[str, str], int]:
    """{(gpu, other): flagged buckets} from the ``cell_notes`` of the GPUs in this set (each pair once)."""
    out: dict[tuple[str, str], int] = {}
    names = list(gpus)
    for name in names:
        for cell in gpus[name].meta.get("cell_notes") or []:
            note = str(cell.get("note", ""))
            for other in names:
                if other != name and note.startswith(f"{INCONSISTENT}{other}:"):
                    pair = tuple(sorted((name, other), key=names.index))
                    out.setdefault(pair, set()).add((name, cell.get("input"), cell.get("output")))
    return {pair: len({(i, o) for _, i, o in cells}) for pair, cells in out.items()}


def kernel_data(meta: Mapping[str, Any]) -> dict[str, str] | None:
    """A predicted profile's kernel data {backend, version, kernels}; older files: read from engine and notes."""
    data = meta.get("kernel_data")
    if isinstance(data, Mapping) and data.get("backend"):
        return {k: str(v) for k, v in data.items()}
    engine, tool = meta.get("engine"), meta.get("tool")
    if meta.get("source") != "predicted" or not isinstance(engine, Mapping) or not isinstance(tool, Mapping) \
            or tool.get("name") != "aiconfigurator-core":
        return None
    sol = any("speed-of-light" in str(n).lower() for n in meta.get("notes") or [])
    return {"backend": str(engine.get("name")), "version": str(engine.get("version")),
            "kernels": "speed-of-light" if sol else "measured"}


def describe_kernel_data(data: Mapping[str, str]) -> str:
    """``sglang 0.5.14 measured kernels`` / ``vllm 0.24.0 speed-of-light estimate (scaled by l40s's data)``."""
    if data.get("kernels", "measured") == "measured":
        return f"{data['backend']} {data['version']} measured kernels"
    scaled = f" scaled by {data['scaled_by']}'s measured kernels" if data.get("scaled_by") else ""
    return f"{data['backend']} {data['version']} speed-of-light estimate{scaled}"


def set_caveat(gpus: Mapping[str, GpuProfile]) -> str:
    """One line when a GPU set does not compare like with like (mixed kernel-data versions, measured
    kernels beside speed-of-light estimates, or buckets outside the hardware ratio range); "" otherwise."""
    data = {name: kernel_data(g.meta) for name, g in gpus.items()}
    data = {name: d for name, d in data.items() if d}
    parts = []
    groups: dict[str, list[str]] = {}
    for name, d in data.items():
        groups.setdefault(describe_kernel_data(d), []).append(name)
    if len(groups) > 1:
        kinds = {d.get("kernels", "measured") == "measured" for d in data.values()}
        what = "mixes kernel-data versions" if len({(d["backend"], d["version"]) for d in data.values()}) > 1 else ""
        if len(kinds) > 1:
            what = (what + " and " if what else "") + "mixes measured kernels with speed-of-light estimates"
        parts.append(f"this GPU set {what or 'mixes kernel data'} ("
                     + "; ".join(f"{', '.join(names)}: {kind}" for kind, names in groups.items()) + ")")
    flags = _flags(gpus)
    if flags:
        parts.append("rate ratios outside the hardware range in "
                     + ", ".join(f"{n} bucket{'s' if n != 1 else ''} of {a}/{b}" for (a, b), n in flags.items()))
    if not parts:
        return ""
    return "Predicted data not like for like: " + "; ".join(parts) + \
        ". The mix may follow the data's age rather than the hardware."
