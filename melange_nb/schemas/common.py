"""Shared by every input schema: the value helpers (numbers, names, edges) that the models and the
other loaders (workload CSV, melange JSON) use, and the pydantic base (`Schema`, `validate`).

The rules hold everywhere at once: booleans are not numbers, NaN and infinities are not numbers,
strings are not numbers, and a mapping never names a key twice (the strict file readers in
`files.py` refuse repeated keys). Each helper takes `where`, the field path an error names
(``"gpus.yaml: gpus.A10G.cost"``), and raises `InputError` with the fix; `validate` runs a model
and turns pydantic's first error into that same one line.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Mapping, Sequence

import numpy as np
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter,
                      ValidationError, model_validator)

from ..errors import InputError


def is_real(value: Any) -> bool:
    """A real number of any size (NaN and infinities included); not a bool, not a numeric string."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def is_count(value: Any, minimum: int = 0) -> bool:
    """An integer (not a bool, not a float such as 2.0) >= `minimum`."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, np.integer)) and value >= minimum


def is_number(value: Any) -> bool:
    """A real, finite number; not a bool, not NaN, not an infinity, not a numeric string."""
    if not is_real(value):
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


def whole(value: Any, where: str, *, minimum: int = 0, maximum: int | None = None, what: str | None = None) -> int:
    """`value` as an int if it is a whole number >= `minimum` (and <= `maximum`) (2.0 counts; 2.5, True, "2" do not)."""
    ok = is_number(value) and float(value).is_integer() and value >= minimum and (maximum is None or value <= maximum)
    if not ok:
        bound = f"a whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise InputError(where, f"must be {what or bound}, got {value!r}")
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


MAX_WORKERS = 64             # processes one command starts (each holds a solver or a notebook kernel)


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


# ---------------------------------------------------------------- pydantic models of the input files
#
# Each model says what a valid file is, once: its fields' types give the JSON Schema (`melange-nb
# schema gpus|prices|sweep`), and their validators raise the same one-line `InputError`s as the
# helpers above. `validate` turns pydantic's first error back into that line: the file's field path
# (``gpus.yaml: gpus.A.cost``) and the validator's fix. A model rejects unknown keys only where the
# file did before (run parameters, sweep specs); elsewhere they pass through (other stages' sections).

UNKNOWN = "unknown"


class Schema(BaseModel):
    """Base of every input model. Subclasses set the messages of their file's shape checks:
    `NOT_MAPPING` (the document is not a mapping), `REQUIRED` (key -> message when missing or
    null), `UNKNOWN_KEY` (a message for a key that is no field; None lets unknown keys pass)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    NOT_MAPPING: ClassVar[str] = "must be a mapping, got {type}"
    REQUIRED: ClassVar[dict[str, str]] = {}
    UNKNOWN_KEY: ClassVar[str | None] = None
    ALSO_KNOWN: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise InputError("", cls.NOT_MAPPING.format(type=type(data).__name__))
        if cls.UNKNOWN_KEY is not None:
            known = {f.alias or name for name, f in cls.model_fields.items()} | set(cls.ALSO_KNOWN)
            unknown = sorted(set(data) - known, key=str)
            if unknown:
                raise InputError(str(unknown[0]), cls.UNKNOWN_KEY)
        for key, message in cls.REQUIRED.items():
            if data.get(key) is None:
                raise InputError(key, message)
        return data


def validate(model: type[BaseModel] | TypeAdapter, data: Any, *, where: str, root: str | None = None,
             context: Mapping[str, Any] | None = None):
    """`model` (a model class or a `TypeAdapter`) validated from `data`, or the first problem as one
    `InputError`.

    `where` prefixes every field path (``"gpus.yaml:"`` gives ``gpus.yaml: gpus.A.cost``;
    ``"c.json: gpu_info"`` gives ``c.json: gpu_info.A.cost``); `root` names the whole document
    when the problem is its shape (default `where`)."""
    check = model.validate_python if isinstance(model, TypeAdapter) else model.model_validate
    try:
        return check(data, context=dict(context or {}))
    except ValidationError as exc:
        raise input_error(exc, where, root) from exc


def input_error(exc: ValidationError, where: str, root: str | None = None) -> InputError:
    """pydantic's first error as the project's one-line `InputError` (field path and fix)."""
    err = exc.errors(include_url=False)[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, InputError):
        if cause.field:
            path += cause.field if cause.field.startswith("[") else "." + cause.field.lstrip(".")
        message = cause.message
    elif err["type"] == "missing":
        message = "is missing"
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err.get('input')!r}"
    if not path:
        return InputError(root or where.rstrip(":"), message)
    if not where:
        return InputError(path[1:], message)
    return InputError(f"{where} {path[1:]}" if where.endswith(":") else where + path, message)


def checked(check, **options):
    """A BeforeValidator running one of the helpers above on the value (its field path comes from pydantic)."""
    return BeforeValidator(lambda value: check(value, "", **options))


def _tidy_numbers(values: list[float]) -> list[float]:
    return [int(v) if float(v).is_integer() else v for v in values]


def fact_text(value: Any) -> str:
    """A provenance fact as text: dates as ISO dates, nothing as "unknown"."""
    import datetime as dt

    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return UNKNOWN if value in (None, "") else str(value)


Edges = Annotated[list[float], checked(edges), AfterValidator(_tidy_numbers),
                  Field(min_length=2, description="bucket edges in tokens, strictly increasing, e.g. [0, 25, 100, 250]")]
Flag = Annotated[bool, checked(flag)]
Fact = Annotated[str, BeforeValidator(fact_text)]


def inherit(entries: Any, defaults: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """`entries` (a mapping name -> entry, or a list of entries) with each of `keys` set in `defaults`
    copied into every entry that does not set it itself (file-wide facts, overridden per entry)."""
    shared = {k: defaults[k] for k in keys if k in defaults}
    if not shared:
        return entries

    def one(entry):
        return {**shared, **entry} if isinstance(entry, Mapping) else entry
    if isinstance(entries, Mapping):
        return {name: one(entry) for name, entry in entries.items()}
    if isinstance(entries, list):
        return [one(entry) for entry in entries]
    return entries


def parser_check(check):
    """A BeforeValidator from a parser that names its own field (``InputError("window", ...)``):
    pydantic's field path replaces that name; the value passes on unchanged."""
    def run(value):
        try:
            check(value)
        except InputError as exc:
            raise InputError("", exc.message) from exc
        return value
    return BeforeValidator(run, json_schema_input_type=str | None)


def one_of(choices: Sequence[str]):
    def check(value):
        if value not in choices:
            raise InputError("", f"must be one of {tuple(choices)}, got {value!r}")
        return value
    return BeforeValidator(check)
