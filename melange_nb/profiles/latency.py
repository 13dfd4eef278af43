"""The latency model of one replica: what a serving simulation needs to time an engine iteration.

A profile file may carry a ``latency`` section, at the top (it then applies to every GPU) or in
one GPU's entry (it then overrides the top)::

    latency:
      step_ms: {base: 12.0, per_seq: 0.4, per_prefill_token: 0.02, per_context_token: 0.0}
      max_seqs: 256          # sequences in one batch (vLLM max_num_seqs)
      kv_tokens: 400000      # KV-cache capacity of one replica, tokens
      max_step_tokens: 8192  # token budget of one step, decode + prefill (vLLM max_num_batched_tokens)
      source: hand           # hand | fit:aiconfigurator-core | fit:measured | ... (free text, required)
      notes: [...]           # optional: how it was fitted, its error

One engine iteration (step) takes ``base + per_seq x sequences in the batch + per_prefill_token x
prefill tokens in the step + per_context_token x context tokens held`` milliseconds. As in vLLM,
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

STEP_TERMS = ("base", "per_seq", "per_prefill_token", "per_context_token")
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
    max_seqs: int
    kv_tokens: int
    max_step_tokens: int
    source: str
    notes: tuple = field(default_factory=tuple)

    def step_ms(self, seqs: float, prefill_tokens: float = 0.0, context_tokens: float = 0.0) -> float:
        return (self.base + self.per_seq * seqs + self.per_prefill_token * prefill_tokens
                + self.per_context_token * context_tokens)

    def to_dict(self) -> dict:
        """The file's form (``save_profiles`` writes it; ``parse_latency`` reads it back identically)."""
        out = {"step_ms": {k: float(getattr(self, k)) for k in STEP_TERMS}, "max_seqs": self.max_seqs,
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


def latency_dict(model: LatencyModel | None) -> dict | None:
    return None if model is None else model.to_dict()


