"""The latency model of one replica: what a serving simulation needs to time an engine iteration.

A profile file may carry a ``latency`` section, at the top (it then applies to every GPU) or in
one GPU's entry (it then overrides the top)::

    latency:
      step_ms: {base: 12.0, per_seq: 0.4, per_prefill_token: 0.02, per_context_token: 0.0}
      max_seqs: 256          # sequences in one batch (vLLM max_num_seqs)
      kv_tokens: 400000      # KV-cache capacity of one replica, tokens
      max_step_tokens: 8192  # token budget of one step, decode + prefill (vLLM max_num_batched_tokens)
      source: hand           # hand | fit:aiconfigurator-core | fit:measured | ... (free text, required)
    # optional, more terms: per_prefill_context (ms per prefill token x context token before it in
    # its prompt: prefill attention, which grows with the square of a long prompt); absent = 0
      notes: [...]           # optional: how it was fitted, its error

One engine iteration (step) takes ``base + per_seq x sequences in the batch + per_prefill_token x
prefill tokens in the step + per_context_token x context tokens held [+ per_prefill_context x
prefill token-context pairs]`` milliseconds. As in vLLM,
the step that completes a request's prefill also samples its first token. A user who knows
"TPOT = 12 ms + 0.4 ms per sequence" writes ``base: 12, per_seq: 0.4`` and zeros elsewhere.

A file without the section loads with ``latency = None``: simulating such a GPU is refused in one
line saying how to add one (never a silent default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InputError
from .. import schemas

STEP_TERMS = ("base", "per_seq", "per_prefill_token", "per_context_token", "per_prefill_context")
LATENCY_KEYS = ("step_ms", "max_seqs", "kv_tokens", "max_step_tokens", "source", "notes")
HOW_TO_ADD = ("add a `latency:` section to the profile file (step_ms {base, per_seq, per_prefill_token, "
              "per_context_token}, max_seqs, kv_tokens, max_step_tokens, source), e.g. "
              "`latency: {step_ms: {base: 12, per_seq: 0.4, per_prefill_token: 0.02, per_context_token: 0}, "
              "max_seqs: 256, kv_tokens: 400000, max_step_tokens: 8192, source: hand}`; "
              "see melange_nb/profiles/latency.py")


@dataclass(frozen=True)
class LatencyModel:
    """Step time (ms) = base + per_seq x seqs + per_prefill_token x prefill tokens + per_context_token x context."""

    base: float
    per_seq: float
    per_prefill_token: float
    per_context_token: float
    per_prefill_context: float
    max_seqs: int
    kv_tokens: int
    max_step_tokens: int
    source: str
    notes: tuple = field(default_factory=tuple)

    def step_ms(self, seqs: float, prefill_tokens: float = 0.0, context_tokens: float = 0.0,
                prefill_pairs: float = 0.0) -> float:
        return (self.base + self.per_seq * seqs + self.per_prefill_token * prefill_tokens
                + self.per_context_token * context_tokens + self.per_prefill_context * prefill_pairs)

    def to_dict(self) -> dict:
        """The file's form (``save_profiles`` writes it; ``parse_latency`` reads it back identically)."""
        out = {"step_ms": {k: float(getattr(self, k)) for k in STEP_TERMS
                           if k != "per_prefill_context" or self.per_prefill_context},
               "max_seqs": self.max_seqs,
               "kv_tokens": self.kv_tokens, "max_step_tokens": self.max_step_tokens, "source": self.source}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def parse_latency(raw: Any, where: str = "latency") -> LatencyModel | None:
    """A ``latency`` mapping (file form) as a `LatencyModel`; None stays None. One-line errors name the field."""
    if raw is None:
        return None
    if isinstance(raw, LatencyModel):
        return raw
    if not isinstance(raw, Mapping):
        raise InputError(where, f"must be a mapping; {HOW_TO_ADD}")
    unknown = sorted(set(raw) - set(LATENCY_KEYS))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}", f"is not a latency key; use {list(LATENCY_KEYS)}")
    for key in ("step_ms", "max_seqs", "kv_tokens", "max_step_tokens", "source"):
        if key not in raw:
            raise InputError(f"{where}.{key}", f"is missing; {HOW_TO_ADD}")
    step = raw["step_ms"]
    if not isinstance(step, Mapping):
        raise InputError(f"{where}.step_ms", f"must be a mapping {{{', '.join(STEP_TERMS)}}} of milliseconds")
    unknown = sorted(set(step) - set(STEP_TERMS))
    if unknown:
        raise InputError(f"{where}.step_ms.{unknown[0]}", f"is not a step term; use {list(STEP_TERMS)}")
    if "base" not in step:
        raise InputError(f"{where}.step_ms.base", "is missing; give the time of an iteration with one sequence, ms")
    terms = {k: schemas.number(step.get(k, 0.0), f"{where}.step_ms.{k}", minimum=0.0,
                               what="a number of milliseconds >= 0") for k in STEP_TERMS}
    if terms["base"] + terms["per_seq"] <= 0:
        raise InputError(f"{where}.step_ms.base", "and per_seq are both 0: a step would take no time; give the "
                                                  "iteration time in ms, e.g. base: 12")
    limits = {k: schemas.whole(raw[k], f"{where}.{k}", minimum=1) for k in ("max_seqs", "kv_tokens", "max_step_tokens")}
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise InputError(f"{where}.source", "must say where the model comes from, e.g. hand or fit:aiconfigurator-core")
    notes = raw.get("notes") or []
    notes = tuple(str(n) for n in (notes if isinstance(notes, (list, tuple)) else [notes]))
    return LatencyModel(**terms, **limits, source=source.strip(), notes=notes)


# ---------------------------------------------------------------- fits

def step_features(concurrency, input_len, output_len, *, first_token: bool = False):
    """Mean step-time terms (1, seqs, prefill tokens, context tokens) seen by one request's decode
    steps at a steady `concurrency` of requests of these lengths: each of the other requests is
    prefilled once during its `output_len` steps, so a step carries (concurrency - 1) x input/output
    prefill tokens on average, and holds concurrency x (input + output/2) context tokens.
    `first_token`: the step that also prefills this request's `input_len` tokens (the TTFT step)."""
    import numpy as np

    n, i, o = (np.asarray(x, dtype=float) for x in (concurrency, input_len, output_len))
    others = np.maximum(n - 1, 0) / np.maximum(o, 1.0)
    prefill = others * i + (i if first_token else 0.0)
    pairs = (others + (1.0 if first_token else 0.0)) * i * i / 2.0
    return np.column_stack([np.ones_like(n), n, prefill, n * (i + o / 2.0), pairs])


def fit_latency(samples, *, max_seqs: int, kv_tokens: int, max_step_tokens: int, source: str,
                notes: tuple | list = ()) -> LatencyModel:
    """A `LatencyModel` fitted to latencies observed (or predicted) at steady concurrency.

    `samples`: a DataFrame with ``concurrency`` (requests in flight), ``input_len``, ``output_len``,
    ``tpot_ms`` and optionally ``ttft_ms`` (rows without it use TPOT only). TPOT is the mean step
    time (`step_features`); TTFT the step that prefills the request. Non-negative least squares on
    relative errors (every sample weighs alike whatever its size); the notes say the fit's median and
    worst relative TPOT error.
    """
    import numpy as np
    from scipy.optimize import nnls

    rows, targets = [], []
    tpot = samples.dropna(subset=["tpot_ms"])
    tpot = tpot[(tpot["tpot_ms"] > 0) & np.isfinite(tpot["tpot_ms"]) & np.isfinite(tpot["concurrency"])]
    if len(tpot) < 4:
        raise InputError("samples", f"a latency fit needs at least 4 measurements with TPOT, got {len(tpot)}")
    rows.append(step_features(tpot["concurrency"], tpot["input_len"], tpot["output_len"]))
    targets.append(tpot["tpot_ms"].to_numpy(float))
    if "ttft_ms" in samples:
        ttft = samples.dropna(subset=["ttft_ms"])
        ttft = ttft[ttft["ttft_ms"] > 0]
        if len(ttft):
            rows.append(step_features(ttft["concurrency"], ttft["input_len"], ttft["output_len"], first_token=True))
            targets.append(ttft["ttft_ms"].to_numpy(float))
    a, y = np.vstack(rows), np.concatenate(targets)
    finite = np.isfinite(a).all(axis=1) & np.isfinite(y) & (y > 0)
    a, y = a[finite], y[finite]
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((a / scale) / y[:, None], np.ones_like(y))
    coef = coef / scale
    if coef[0] + coef[1] <= 0:
        coef[0] = float(np.min(y)) * 0.5
    fitted = step_features(tpot["concurrency"], tpot["input_len"], tpot["output_len"]) @ coef
    err = np.abs(fitted / tpot["tpot_ms"].to_numpy(float) - 1)
    note = (f"fitted to {len(tpot)} TPOT" + (f" and {len(y) - len(tpot)} TTFT" if len(y) > len(tpot) else "")
            + f" values: TPOT error median {np.median(err):.1%}, worst {err.max():.1%}")
    return LatencyModel(*(float(f"{c:.6g}") for c in coef), int(max_seqs), int(kv_tokens), int(max_step_tokens),
                        source, tuple(notes) + (note,))


def runs_samples(runs) -> "pd.DataFrame":
    """Measured benchmark runs (``profiles.measured.read_runs``) as `fit_latency` samples: TPOT and TTFT
    means at the run's achieved concurrency, by Little's law (achieved rate x mean e2e latency)."""
    import pandas as pd

    rows = []
    for r in runs:
        m = r.metrics
        tpot, ttft = m.get(("tpot", "mean")), m.get(("ttft", "mean"))
        e2e = m.get(("e2e", "mean"))
        if e2e is None and tpot is not None and ttft is not None:
            e2e = ttft + (r.output_len - 1) * tpot
        if tpot is None or e2e is None:
            continue
        rows.append({"concurrency": r.rate * e2e / 1e3, "input_len": r.input_len, "output_len": r.output_len,
                     "tpot_ms": tpot, "ttft_ms": ttft})
    return pd.DataFrame(rows, columns=["concurrency", "input_len", "output_len", "tpot_ms", "ttft_ms"])
