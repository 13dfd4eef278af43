"""A synthetic multi-turn chat dataset the project makes itself, so the pipeline runs offline.

CLEARLY SYNTHETIC: random English words, not real conversations. Deterministic for a given
(n, seed). lmsys-chat-1m schema: ``conversation_id``, ``model``, ``language``, ``turn`` and
``conversation`` (a list of ``{role, content}``). Lengths loosely follow lmsys-chat-1m (about 2
turns per conversation, prompts shorter than responses), with a few pasted documents of several
thousand tokens so the overflow policy has work to do.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import outputs_dir
from .files import write_text

_WORDS = ("the of and to in is you that it for was on are with as be this have from or one had by "
          "word but not what all were we when your can said there use an each which she do how their "
          "if will up other about out many then them these so some her would make like him into time "
          "has look two more write go see number no way could people my than first water been call who "
          "oil its now find long down day did get come made may part model python code function error "
          "data table please explain why example list question answer summary story write poem email "
          "translate help server request token memory cost latency throughput batch cluster").split()


def make_chats(n: int = 3000, seed: int = 0) -> list[dict]:
    """`n` synthetic conversations in the lmsys schema (see the module docstring)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    words = np.array(_WORDS)
    turns = np.minimum(rng.geometric(0.55, size=n), 8)
    chats = []
    for i in range(n):
        conversation = []
        for _ in range(turns[i]):
            long_doc = rng.random() < 0.02
            prompt_words = int(rng.lognormal(7.2, 0.5) if long_doc else rng.lognormal(3.4, 1.0)) + 1
            reply_words = int(rng.lognormal(4.6, 0.9)) + 1
            conversation.append({"role": "user", "content": " ".join(rng.choice(words, prompt_words))})
            conversation.append({"role": "assistant", "content": " ".join(rng.choice(words, reply_words))})
        chats.append({"conversation_id": f"synthetic-{seed}-{i}", "model": "synthetic", "language": "English",
                      "turn": int(turns[i]), "conversation": conversation})
    return chats


def synthetic_path(n: int = 3000, seed: int = 0) -> Path:
    """The JSONL file for (n, seed) under outputs/cache/synthetic/, written once (atomically)."""
    path = outputs_dir() / "cache" / "synthetic" / f"synthetic-chat-n{n}-seed{seed}.jsonl"
    if not path.is_file():
        write_text(path, "".join(json.dumps(chat) + "\n" for chat in make_chats(n, seed)))
    return path
