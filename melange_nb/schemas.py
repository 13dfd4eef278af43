"""What a valid value is, in one place, for every input kind (workload CSV, profile YAML, melange
JSON, run params, sweep specs).

The rules hold everywhere at once: booleans are not numbers, NaN and infinities are not numbers,
strings are not numbers, and a mapping never names a key twice (the strict file readers in
`files.py` refuse repeated keys). Each helper takes `where`, the field path an error names
(``"gpus.yaml: gpus.A10G.cost"``), and raises `InputError` with the fix.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import InputError


def is_number(value: Any) -> bool:
    """A real, finite number; not a bool, not NaN, not an infinity, not a numeric string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:      # an int too large for a float
        return False


def number(value: Any, where: str, *, minimum: float | None = None, positive: bool = False,
           maximum: float | None = None, what: str = "a number") -> float:
    """`value` as a float if it is a finite real number within the bounds, else an `InputError`."""
    ok = is_number(value) and (minimum is None or value >= minimum) and (not positive or value > 0) \
        and (maximum is None or value <= maximum)
    if not ok:
        raise InputError(where, f"must be {what}, got {value!r}")
    return float(value)


def whole(value: Any, where: str, *, minimum: int = 0, what: str | None = None) -> int:
    """`value` as an int if it is a whole number >= `minimum` (2.0 counts; 2.5, True, "2" do not)."""
    ok = is_number(value) and float(value).is_integer() and value >= minimum
    if not ok:
        raise InputError(where, f"must be {what or f'a whole number >= {minimum}'}, got {value!r}")
    return int(value)


def optional_seconds(value: Any, where: str) -> float | None:
    """A time limit: None, or a positive finite number of seconds."""
    if value is None:
        return None
    return number(value, where, positive=True, what="a positive number of seconds (or none for no limit)")


def number_matrix(values: Any, where: str, *, what: str = "numbers") -> np.ndarray:
    """A non-empty rectangular 2D list of finite, non-bool numbers as a float array."""
    if not isinstance(values, (list, tuple)) or not values or \
            not all(isinstance(row, (list, tuple)) and row for row in values):
        raise InputError(where, f"must be a 2D list of {what} (rows = input buckets, columns = output buckets)")
    if len({len(row) for row in values}) > 1:
        raise InputError(where, f"has rows of different lengths {[len(r) for r in values]}; every row needs one "
                                "value per output bucket")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v is None:
                raise InputError(f"{where}[{i}][{j}]", "is empty; give a number (0 for a bucket without any)")
            if not is_number(v):
                raise InputError(f"{where}[{i}][{j}]", f"must be a finite number ({what}), got {v!r}")
    return np.asarray(values, dtype=float)


def edges(values: Any, where: str) -> list[float]:
    """Bucket edges: a list of at least two strictly increasing finite numbers >= 0."""
    if not isinstance(values, (list, tuple)):
        raise InputError(where, "must be a list of bucket edges, e.g. [0, 25, 100, 250, 500, 1000, 2000]")
    for i, v in enumerate(values):
        if not is_number(v) or v < 0:
            raise InputError(f"{where}[{i}]", f"must be a finite number of tokens >= 0, got {v!r}")
    if len(values) < 2 or any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(where, f"needs at least two strictly increasing edges, got {list(values)}")
    return [int(v) if float(v).is_integer() else float(v) for v in values]


def flag(value: Any, where: str) -> bool:
    """A true/false switch; 1, "yes" or None are not booleans here."""
    if not isinstance(value, bool):
        raise InputError(where, f"must be true or false, got {value!r}")
    return value


def unique_names(names: Sequence[Any], where: str) -> None:
    """Raise if a name repeats (GPU names, workload labels, bucket labels)."""
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(where, f"names {name!r} twice; names must be unique")
        seen.add(name)


def mapping(value: Any, where: str, *, what: str = "a mapping") -> Mapping:
    if not isinstance(value, Mapping):
        raise InputError(where, f"must be {what}, got {type(value).__name__}")
    return value


MAX_NAME = 100       # characters in a sweep, run or set name (a folder name; file systems allow 255 bytes)
MAX_GPU_NAME = 64    # characters in a GPU type name (it becomes file names, YAML values and page text)


def _shown(value: Any) -> str:
    """A value for an error message: its repr, cut to 80 characters (a 300-character name stays one short line)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def plain_name(value: Any, where: str) -> str:
    """A name that becomes a file or folder name: letters, digits, ``._-``; no path separators or ``..``;
    at most `MAX_NAME` characters."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) or ".." in value:
        raise InputError(where, f"must be a plain name (letters, digits, . _ -; no / or ..), got {_shown(value)}")
    if len(value) > MAX_NAME:
        raise InputError(where, f"is {len(value)} characters long; use at most {MAX_NAME}")
    return value


def file_safe(name: str) -> str:
    """A GPU name as it appears in file names: lower case, runs of other characters as one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def gpu_name(value: Any, where: str) -> str:
    """A GPU type name: printable text (no newline, tab, NUL or other control character), with a
    letter or digit, at most `MAX_GPU_NAME` characters; surrounding spaces are dropped. It reaches
    file names, YAML, shell scripts and pages, which quote it; this keeps it one readable line."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)                        # a YAML key such as 4090
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"must be a GPU name (text such as A100-80GB), got {_shown(value)}")
    name = value.strip()
    if not name.isprintable():
        raise InputError(where, f"GPU name {_shown(name)} holds a control character (newline, tab, NUL...); "
                                "use printable text such as A100-80GB")
    if len(name) > MAX_GPU_NAME:
        raise InputError(where, f"GPU name is {len(name)} characters long; use at most {MAX_GPU_NAME}")
    if not file_safe(name):
        raise InputError(where, f"GPU name {_shown(name)} needs a letter or digit (it names files such as "
                                "skyserve-<gpu>.yaml)")
    return name


def gpu_names(names: Sequence[Any], where: str) -> list[str]:
    """Every name a valid `gpu_name`, and no two alike once made file-safe (``A-100`` and ``A 100`` would
    share ``skyserve-a-100.yaml``)."""
    checked = [gpu_name(n, where) for n in names]
    seen: dict[str, str] = {}
    for name in checked:
        key = file_safe(name)
        if key in seen:
            raise InputError(where, f"GPU names {_shown(seen[key])} and {_shown(name)} are the same in file names "
                                    f"({key}); rename one")
        seen[key] = name
    return checked


def printable_text(value: Any, where: str, *, limit: int = 1000, what: str = "text") -> str:
    """One line of printable text (a model name, a URL) of at most `limit` characters."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"must be {what}, got {_shown(value)}")
    if not value.isprintable():
        raise InputError(where, f"{_shown(value)} holds a control character (newline, tab, NUL...); give one line of text")
    if len(value) > limit:
        raise InputError(where, f"is {len(value)} characters long; use at most {limit}")
    return value


def allocation_params(params: Mapping[str, Any], where: str) -> None:
    """Check the allocation notebook's scalar parameters (run params files, sweep points) before any
    kernel starts: rate, slice_factor, time_limit, solver, gpu_names, constraints' shape."""
    number(params.get("rate"), f"{where}rate", positive=True, what="a positive number of requests/s")
    whole(params.get("slice_factor", 1), f"{where}slice_factor", minimum=1)
    optional_seconds(params.get("time_limit"), f"{where}time_limit")
    solvers = params.get("solver", "melange")
    solvers = [solvers] if isinstance(solvers, str) else solvers
    if not isinstance(solvers, list) or not solvers or not all(s in ("melange", "exact") for s in solvers):
        raise InputError(f"{where}solver", f"must be melange, exact or a list of them, got {params.get('solver')!r}")
    names = params.get("gpu_names") or []
    if not isinstance(names, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise InputError(f"{where}gpu_names", f"must be a list of GPU names (empty for all), got {names!r}")
    if params.get("run_name") is not None:
        plain_name(params["run_name"], f"{where}run_name")
