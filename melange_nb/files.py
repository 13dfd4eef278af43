"""File helpers shared by every stage: YAML with one-line errors, and atomic writes.

Atomic: write to ``.<name>.<pid>.tmp`` beside the target, then rename, so a reader never sees a
half-written file in ``outputs/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import InputError


def read_yaml(path: str | Path, what: str, example: str) -> Any:
    """Parse a YAML file; a missing or malformed file is an `InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}", f"not found; e.g. {example}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {path}", f"is not valid YAML ({' '.join(str(exc).split())})") from None


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")   # per process: concurrent writers never share it
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")
