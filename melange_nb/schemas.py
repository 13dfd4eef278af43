"""What a valid input is, in one place: pydantic models of every input file (GPU profile files,
price files, run parameters, sweep specs) and of the plan and simulate options, on top of small
value helpers that the models and the other loaders (workload CSV, melange JSON) share.

The rules hold everywhere at once: booleans are not numbers, NaN and infinities are not numbers,
strings are not numbers, and a mapping never names a key twice (the strict file readers in
`files.py` refuse repeated keys). Each helper takes `where`, the field path an error names
(``"gpus.yaml: gpus.A10G.cost"``), and raises `InputError` with the fix; `validate` runs a model
and turns pydantic's first error into that same one line. `json_schema(kind)` is what `melange-nb
schema sweep|gpus|prices|run` prints, for editors (``# yaml-language-server: $schema=FILE``).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import InputError


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
MAX_SWEEP_POINTS = 100_000   # points in one sweep (rates x workloads x GPU sets x SLOs x constraints x slice factors)


def rate_range(value: Mapping, where: str) -> list[float]:
    """``{start, stop, step}`` as the rates it names (stop included), refused before any is made when
    a bound is not finite or the range holds more than `MAX_SWEEP_POINTS` rates."""
    try:
        start, stop, step = (float(value[k]) for k in ("start", "stop", "step"))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise InputError(where, "a range needs numeric start, stop and step, e.g. {start: 1, stop: 12, step: 1}") from None
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise InputError(where, f"start, stop and step must be finite numbers, got {dict(value)}")
    if not (step > 0 and stop >= start):
        raise InputError(where, f"needs step > 0 and stop >= start, got {dict(value)}")
    count = math.floor((stop - start) / step + 0.5) + 1
    if count > MAX_SWEEP_POINTS:
        raise InputError(where, f"names {count:,} rates; a sweep has at most {MAX_SWEEP_POINTS:,} points: "
                                "use a larger step or a shorter range")
    return list(np.round(np.arange(start, stop + step / 2, step), 9))


def sweep_size(spec: Mapping[str, Any], where: str) -> int:
    """The number of points a checked spec makes; more than `MAX_SWEEP_POINTS` is refused up front."""
    sets = sum(1 if isinstance(v, str) else len(v) for v in spec["gpus"].values())
    count = (len(spec["workloads"]) * sets * max(len(spec.get("constraints") or {}), 1)
             * len(spec["slice_factors"]) * len(spec["rates"]))
    if count > MAX_SWEEP_POINTS:
        raise InputError(where, f"makes {count:,} points (workloads x GPU sets x SLOs x constraints x slice factors "
                                f"x rates); a sweep has at most {MAX_SWEEP_POINTS:,}: split it or use fewer rates")
    return count


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

from typing import Annotated, ClassVar, Literal  # noqa: E402

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter,  # noqa: E402
                      ValidationError, ValidationInfo, model_validator)

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


def _checked(check, **options):
    """A BeforeValidator running one of the helpers above on the value (its field path comes from pydantic)."""
    return BeforeValidator(lambda value: check(value, "", **options))


def _tidy_numbers(values: list[float]) -> list[float]:
    return [int(v) if float(v).is_integer() else v for v in values]


def _text(value: Any) -> str:
    """A provenance fact as text: dates as ISO dates, nothing as "unknown"."""
    import datetime as dt

    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return UNKNOWN if value in (None, "") else str(value)


Edges = Annotated[list[float], _checked(edges), AfterValidator(_tidy_numbers),
                  Field(min_length=2, description="bucket edges in tokens, strictly increasing, e.g. [0, 25, 100, 250]")]
Flag = Annotated[bool, _checked(flag)]
Fact = Annotated[str, BeforeValidator(_text)]


# ---------------------------------------------------------------- GPU profile files (params/gpus/*.yaml)

SLO_FORMS = "`tpot_ms=40`, `{metric: tpot, stat: mean, ms: 40}`, `{tpot_ms: 40}`, a list of those, or unknown"


class NameVersion(BaseModel):
    name: str
    version: str = UNKNOWN


class SloCondition(BaseModel):
    metric: Literal["tpot", "ttft", "itl", "e2e"]
    stat: Literal["mean", "p50", "p90", "p99"] = "mean"
    ms: float = Field(gt=0)


class CellNote(BaseModel):
    input: str
    output: str
    note: str


def _name_version(value: Any) -> dict | str:
    if value is None or value == UNKNOWN:
        return UNKNOWN
    if isinstance(value, str):
        return {"name": value, "version": UNKNOWN}
    if isinstance(value, Mapping) and "name" in value:
        return {"name": str(value["name"]), "version": str(value.get("version") or UNKNOWN)}
    raise InputError("", f"must be {{name, version}} or {UNKNOWN!r}, got {value!r}")


def _replicas(value: Any) -> int | str:
    if value is None or value == UNKNOWN:
        return UNKNOWN
    return whole(value, "", minimum=1, what="a whole number >= 1 (tensor parallel size)")


def _kernel_data(value: Any) -> dict | str:
    if value is None or value == UNKNOWN:
        return UNKNOWN
    if isinstance(value, Mapping) and {"backend", "version"} <= set(value):
        return {str(k): str(v) for k, v in value.items()}
    raise InputError("", f"must be {{backend, version, kernels}} or {UNKNOWN!r}, got {value!r}")


def _slo(value: Any):
    from .profiles import parse_slo
    return parse_slo(value, field="")


def _price(value: Any) -> dict | str:
    if value is None or value == UNKNOWN:
        return UNKNOWN
    if not isinstance(value, Mapping):
        raise InputError("", f"must be a mapping {{file, provider, region, date, source}} or {UNKNOWN!r}")
    import datetime as dt
    return {str(k): (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in value.items()}


def _notes(value: Any) -> list[str]:
    value = value or []
    return [str(n) for n in (value if isinstance(value, list) else [value])]


def _cell_notes(value: Any, info: ValidationInfo) -> list[dict]:
    cells = value or []
    if not isinstance(cells, list):
        raise InputError("", "must be a list of {input, output, note}")
    out = []
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping) or not {"input", "output", "note"} <= set(cell):
            raise InputError(f"[{i}]", "must be a mapping {input: LABEL, output: LABEL, note: TEXT}")
        out.append({"input": str(cell["input"]), "output": str(cell["output"]), "note": str(cell["note"])})
    buckets = (info.context or {}).get("buckets")
    if buckets:
        check_cell_notes(out, *buckets, where="")
    return out


def check_cell_notes(cells: Sequence[Mapping], index: Sequence[str], columns: Sequence[str], *, where: str) -> None:
    """Every cell note names one of the profile's buckets (input label x output label)."""
    for i, cell in enumerate(cells):
        if (index and cell["input"] not in index) or (columns and cell["output"] not in columns):
            raise InputError(f"{where}[{i}]", f"bucket {cell['input']} x {cell['output']} is not one of "
                                              f"the profile's buckets {list(index)} x {list(columns)}")


SloInput = str | SloCondition | dict[str, float] | list[str | SloCondition | dict[str, float]]
Slo = Annotated[list[SloCondition] | Literal["unknown"], BeforeValidator(_slo, json_schema_input_type=SloInput),
                Field(description=f"every condition must hold: {SLO_FORMS}",
                      json_schema_extra={"examples": ["tpot_ms=40", [{"metric": "tpot", "stat": "mean", "ms": 40}]]})]


class Provenance(Schema):
    """Where a profile's numbers come from; in a file, at the top (every GPU) or in one GPU's entry."""

    model_config = ConfigDict(extra="ignore")
    model: Fact = Field(UNKNOWN, description="the model served, e.g. Llama-3.1-8B")
    system: Fact = Field(UNKNOWN, description="hardware id (aiconfigurator system name), e.g. h100_sxm")
    source: Annotated[Literal["measured", "predicted", "seed", "unknown"],
                      BeforeValidator(lambda v: v, json_schema_input_type=Literal["measured", "predicted", "seed",
                                                                                  "unknown"] | str)] = Field(
        UNKNOWN, description="how the numbers were obtained (free text moves into notes)")
    gpus_per_replica: Annotated[Annotated[int, Field(ge=1)] | Literal["unknown"], BeforeValidator(_replicas)] = Field(
        UNKNOWN, description="tensor parallel size: one replica = this many GPUs")
    engine: Annotated[NameVersion | Literal["unknown"], BeforeValidator(_name_version, json_schema_input_type=NameVersion | str)] = Field(
        UNKNOWN, description="serving engine, e.g. {name: vllm, version: 0.10.1}")
    tool: Annotated[NameVersion | Literal["unknown"], BeforeValidator(_name_version, json_schema_input_type=NameVersion | str)] = Field(
        UNKNOWN, description="what produced the numbers, e.g. {name: aiconfigurator-core, version: 0.12.0}")
    kernel_data: Annotated[dict[str, str] | Literal["unknown"], BeforeValidator(_kernel_data)] = Field(
        UNKNOWN, description="the performance database behind a prediction: {backend, version, kernels}")
    slo: Slo = UNKNOWN
    date: Fact = Field(UNKNOWN, description="when the numbers were produced, e.g. 2026-11-25")
    price: Annotated[dict[str, Any] | Literal["unknown"], BeforeValidator(_price)] = Field(
        UNKNOWN, description="{file, provider, region, date, source, usd_per_gpu_hour}")
    notes: Annotated[list[str], BeforeValidator(_notes, json_schema_input_type=str | list[str] | None)] = Field(
        default_factory=list)
    cell_notes: Annotated[list[CellNote], BeforeValidator(_cell_notes, json_schema_input_type=list[CellNote] | None)] = Field(
        default_factory=list, description="per bucket, e.g. why it is 0: [{input: 16000+, output: 0-25, note: ...}]")

    @model_validator(mode="before")
    @classmethod
    def _free_text_source(cls, data: Any) -> Any:
        """Files written before `source` was a word: free text moves into `notes`."""
        if isinstance(data, Mapping) and data.get("source") is not None:
            source = str(data["source"]).strip().lower()
            if source in ("measured", "predicted", "seed", UNKNOWN):
                return {**data, "source": source}
            return {**data, "source": UNKNOWN, "notes": _notes(data.get("notes")) + [
                f"source: {' '.join(str(data['source']).split())}"]}
        return data

    def facts(self) -> dict[str, Any]:
        """The provenance keys, in one shape (``profiles.PROVENANCE_KEYS``)."""
        return self.model_dump(include=set(Provenance.model_fields))


PROVENANCE_KEYS = tuple(Provenance.model_fields)


def _tputs(values: Any) -> list[list[float]]:
    from .profiles import MIN_TPUT

    if values is None:
        raise InputError("", "is empty; give max requests/s per bucket (0 for a bucket this GPU cannot serve)")
    arr = number_matrix(values, "", what="max requests/s (0 = cannot serve)")
    if (arr < 0).any():
        raise InputError("", "has negative throughputs; give max requests/s >= 0 per bucket")
    if ((arr > 0) & (arr < MIN_TPUT)).any():
        raise InputError("", f"has throughputs between 0 and {MIN_TPUT:g} requests/s; give 0 for a bucket this GPU "
                             "cannot serve, or check the units (requests/s)")
    return arr.tolist()


class StepMs(BaseModel):
    base: float = Field(ge=0, description="ms of an iteration with one sequence")
    per_seq: float = Field(0.0, ge=0, description="ms per sequence in the batch")
    per_prefill_token: float = Field(0.0, ge=0, description="ms per prefill token in the step")
    per_context_token: float = Field(0.0, ge=0, description="ms per context token held")
    per_prefill_context: float = Field(0.0, ge=0, description="ms per prefill token x context token before it in "
                                                              "its prompt (prefill attention); optional")


class LatencySection(BaseModel):
    """One replica's iteration-time model for `simulate` (``profiles/latency.py``)."""

    model_config = ConfigDict(extra="forbid")
    step_ms: StepMs
    max_seqs: int = Field(ge=1, description="sequences in one batch (vLLM max_num_seqs)")
    kv_tokens: int = Field(ge=1, description="KV-cache capacity of one replica, tokens")
    max_step_tokens: int = Field(ge=1, description="token budget of one step (vLLM max_num_batched_tokens)")
    source: str = Field(min_length=1, description="hand | fit:aiconfigurator-core | fit:measured | ...")
    notes: str | list[str] | None = None


def _latency(value: Any):
    from .profiles.latency import parse_latency
    return parse_latency(value, "")


Latency = Annotated[Any, BeforeValidator(_latency, json_schema_input_type=LatencySection | None),
                    Field(None, description="one replica's iteration-time model for `simulate`; in a GPU's "
                                            "entry it overrides the file's")]


class GpuEntry(Provenance):
    """One GPU type of a profile file: $/hour, max requests/s per bucket, and its own provenance."""

    model_config = ConfigDict(extra="allow")
    REQUIRED: ClassVar[dict[str, str]] = {}
    cost: Annotated[float, _checked(number, positive=True, what="a positive number of dollars per hour")] = Field(
        gt=0, description="$/hour for one replica's GPUs (gpus_per_replica x price per GPU)")
    tputs: Annotated[list[list[float]], BeforeValidator(_tputs)] = Field(
        description="max requests/s of one replica per bucket: rows = input buckets, columns = output buckets; "
                    "0 = cannot serve")
    latency: Latency

    @model_validator(mode="before")
    @classmethod
    def _cost_and_tputs(cls, data: Any) -> Any:
        for key in ("cost", "tputs"):
            if key not in data:
                raise InputError(key, "is missing")
        return data


def _named_entries(value: Any) -> dict[str, Any]:
    """melange-release's two forms of a GPU list: a mapping name -> {cost, tputs, ...} or a list of
    {name, cost, tputs, ...} (DESIGN trap 8), as one mapping name -> entry."""
    if isinstance(value, Mapping):
        for name, spec in value.items():
            if not isinstance(spec, Mapping):
                raise InputError(str(name), f"must be a mapping with keys cost and tputs, got {type(spec).__name__}")
        entries = [{**spec, "name": name} for name, spec in value.items()]
    elif isinstance(value, list):
        entries = value
    else:
        raise InputError("", "must be a mapping name -> {cost, tputs} or a list of {name, cost, tputs}")
    if not entries:
        raise InputError("", "lists no GPU; give at least one GPU type")
    out: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InputError(f"[{i}]", "must be a mapping with keys name, cost, tputs")
        raw_name = entry.get("name")
        if raw_name is None or (isinstance(raw_name, str) and not raw_name.strip()):
            raise InputError(str(i), f"has no usable `name` (got {raw_name!r}); give each GPU type a name (text)")
        name = gpu_name(raw_name, f"[{i}].name")      # the one check of every loaded GPU name
        if name in out:
            raise InputError(name, "appears twice; GPU names must be unique")
        out[name] = {k: v for k, v in entry.items() if k != "name"}
    gpu_names(list(out), "")                          # distinct once made file-safe (A-100 vs A 100)
    return out


GpuEntries = Annotated[dict[str, GpuEntry],
                       BeforeValidator(_named_entries, json_schema_input_type=dict[str, GpuEntry] | list[GpuEntry]),
                       Field(description="GPU name -> {cost, tputs, ...}; a list of {name, cost, tputs, ...} "
                                         "(melange-release's gpu_info) is read too")]


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


class _GpuFileHead(Schema):
    input_edges: Edges
    output_edges: Edges
    open_last_input: Flag = Field(False, description="one more open-ended input bucket after the last edge, e.g. 2000+")
    open_last_output: Flag = Field(False, description="likewise for output buckets")
    gpus: GpuEntries


class GpuProfileFile(Provenance, _GpuFileHead):
    """A GPU profile file (``params/gpus/*.yaml``): bucket edges, GPU types and their provenance.

    Provenance keys at the top apply to every GPU; a GPU's own entry overrides them."""

    model_config = ConfigDict(extra="allow", title="melange-nb GPU profile file")
    NOT_MAPPING: ClassVar[str] = "must be a YAML mapping with a `gpus` key (and input_edges, output_edges)"
    latency: Latency

    @model_validator(mode="before")
    @classmethod
    def _file_wide_facts(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "gpus" not in data:
            raise InputError("", cls.NOT_MAPPING)
        for key in ("input_edges", "output_edges"):
            if data.get(key) is None:
                raise InputError(key, "is missing; list the bucket edges, e.g. [0, 25, 100, 250, 500, 1000, 2000]")
        return {**data, "gpus": inherit(data["gpus"], data, PROVENANCE_KEYS)}


# ---------------------------------------------------------------- price files (params/prices/*.yaml)

PRICE_FACTS = ("provider", "region", "date", "source")


def _systems(value: Any) -> list[str]:
    value = value or []
    if not isinstance(value, list):
        raise InputError("", "must be a list of system names, e.g. [h100_sxm]")
    return [str(s) for s in value]


def _price_date(value: Any) -> str:
    if _text(value) == UNKNOWN:
        raise InputError("", "is missing; say when the price was read (e.g. 2026-11-25)")
    return _text(value)


class PriceEntry(Schema):
    """One GPU's on-demand price per GPU-hour; provider, region, date and source default to the file's."""

    model_config = ConfigDict(extra="ignore")
    NOT_MAPPING: ClassVar[str] = "is missing; give the on-demand price per GPU-hour in USD"
    usd_per_hour: Annotated[float, _checked(number, positive=True, what="a positive number")] = Field(
        gt=0, description="on-demand price per GPU-hour in USD")
    provider: Fact = UNKNOWN
    region: Fact = UNKNOWN
    date: Annotated[str, BeforeValidator(_price_date)] = Field(
        UNKNOWN, validate_default=True, description="when the price was read, e.g. 2026-11-25")
    source: Fact = Field(UNKNOWN, description="where the price was published (a URL)")
    systems: Annotated[list[str], BeforeValidator(_systems, json_schema_input_type=list[str] | None)] = Field(
        default_factory=list, description="aiconfigurator system names this price covers, e.g. [h100_sxm]")
    note: Annotated[str, BeforeValidator(lambda v: str(v or ""))] = ""

    @model_validator(mode="before")
    @classmethod
    def _priced(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "usd_per_hour" not in data:
            raise InputError("usd_per_hour", "is missing; give the on-demand price per GPU-hour in USD")
        return data


class PriceFile(Schema):
    """A price file (``params/prices/*.yaml``): GPU name -> price, with file-wide defaults."""

    model_config = ConfigDict(extra="ignore", title="melange-nb price file")
    provider: Fact = UNKNOWN
    region: Fact = UNKNOWN
    date: Fact = Field(UNKNOWN, description="when the prices were read, e.g. 2026-11-25")
    source: Fact = Field(UNKNOWN, description="where they were published (a URL)")
    unit: Fact = Field(UNKNOWN, description="e.g. USD per GPU-hour, on demand")
    gpus: dict[str, PriceEntry] = Field(min_length=1, description="GPU name -> {usd_per_hour, systems, note, ...}")

    @model_validator(mode="before")
    @classmethod
    def _file_wide_facts(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("gpus"), Mapping) or not data["gpus"]:
            raise InputError("", "must be a YAML mapping with a non-empty `gpus` mapping NAME -> {usd_per_hour, ...}")
        return {**data, "gpus": {str(k): v for k, v in inherit(data["gpus"], data, PRICE_FACTS).items()}}


# ---------------------------------------------------------------- run parameters (params/*.yaml, `melange-nb run`)

WORKLOAD_KEYS = ("dataset", "trace", "input_column", "output_column", "tokenizer", "split", "revision", "schema",
                 "max_conversations", "seed", "language", "turn_policy", "add_special_tokens", "chat_template",
                 "num_proc", "engine", "ray_address", "edges", "output_edges", "overflow")


class WorkloadParams(Schema):
    """Parameters of the workload notebook (``01_workload.ipynb``): a chat dataset or a length trace,
    tokenized and bucketed; the notebook and `workload.build_workload` check the values."""

    model_config = ConfigDict(extra="allow", title="workload parameters",
                              json_schema_extra={"properties": {k: {} for k in WORKLOAD_KEYS},
                                                 "additionalProperties": False})
    UNKNOWN_KEY: ClassVar[str] = f"is not a workload parameter; known: {list(WORKLOAD_KEYS)}"
    ALSO_KNOWN: ClassVar[tuple[str, ...]] = WORKLOAD_KEYS


def _solvers(value: Any) -> list[str] | str:
    solvers = [value] if isinstance(value, str) else value
    if not isinstance(solvers, list) or not solvers or not all(s in ("melange", "exact") for s in solvers):
        raise InputError("", f"must be melange, exact or a list of them, got {value!r}")
    return value


def _gpu_names(value: Any) -> list[str]:
    names = value or []
    if not isinstance(names, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise InputError("", f"must be a list of GPU names (empty for all), got {names!r}")
    return [str(n) for n in names]


def _constraints(value: Any) -> dict:
    """The shape of a constraints mapping (`solver.Constraints.from_mapping`); GPU names are checked
    against the profiles later."""
    from .solver import Constraints

    try:
        Constraints.from_mapping(value)
    except InputError as exc:
        raise InputError(exc.field.removeprefix("constraints").lstrip("."), exc.message) from exc
    return dict(value or {})


def _workload(value: Any) -> Any:
    if isinstance(value, Mapping):
        validate(WorkloadParams, value, where="")     # unknown keys, named as workload.KEY
    return value


Solvers = Annotated[Literal["melange", "exact"] | list[Literal["melange", "exact"]], BeforeValidator(_solvers),
                    Field(description="melange (the paper's ILP), exact, or a list: every one is compared")]
ConstraintSet = Annotated[dict[str, Any], BeforeValidator(_constraints),
                          Field(description="{max_instances: {GPU: n}, min_instances: {GPU: n}, utilization_cap: "
                                            "0.8, min_total: n}")]


def _own(check):
    """A BeforeValidator from a parser that names its own field (``InputError("window", ...)``):
    pydantic's field path replaces that name; the value passes on unchanged."""
    def run(value):
        try:
            check(value)
        except InputError as exc:
            raise InputError("", exc.message) from exc
        return value
    return BeforeValidator(run, json_schema_input_type=str | None)


def _one_of(choices: Sequence[str]):
    def check(value):
        if value not in choices:
            raise InputError("", f"must be one of {tuple(choices)}, got {value!r}")
        return value
    return BeforeValidator(check)


# ---------------------------------------------------------------- simulate options (runs, sweep specs)

def _arrival(value: Any) -> None:
    from .simulate import parse_arrival
    parse_arrival(value)


def _sim_switch(value: Any) -> Any:
    """``true`` = the default options, ``false``/null = no simulation."""
    return {} if value is True else (None if value is False else value)


class SimulateOptions(Schema):
    """How a run or a sweep point simulates its plan (`attainment.check_plan`): a generated request stream."""

    model_config = ConfigDict(extra="forbid", title="simulate options")
    NOT_MAPPING: ClassVar[str] = "must be a mapping of duration_s, arrival, seed, routing (or true for the defaults)"
    UNKNOWN_KEY: ClassVar[str] = "is not a simulate option; known: ['arrival', 'duration_s', 'routing', 'seed']"
    duration_s: Annotated[float, _checked(number, positive=True, what="simulated seconds per point, e.g. 600")] = Field(
        600.0, gt=0, description="simulated seconds of arrivals")
    arrival: Annotated[str, _own(_arrival)] = Field(
        "poisson", description="poisson, gamma:CV (bursty for CV > 1) or constant")
    seed: Annotated[int, _checked(whole)] = Field(0, ge=0, description="seed of the stream and the routing draws")
    routing: Annotated[Literal["least", "round-robin"], _one_of(("least", "round-robin"))] = Field(
        "least", description="replica choice within a GPU type")


Simulate = Annotated[SimulateOptions | None, BeforeValidator(_sim_switch, json_schema_input_type=SimulateOptions | bool | None)]
TargetAttainment = Annotated[float | None, _checked(lambda v, where: None if v is None else number(
    v, where, positive=True, maximum=1.0, what="a share of requests in (0, 1], e.g. 0.99"))]


class RunParams(Schema):
    """A run's parameters (``params/*.yaml``, `melange-nb run -p`): one allocation notebook run."""

    model_config = ConfigDict(extra="forbid", title="melange-nb run parameters")
    NOT_MAPPING: ClassVar[str] = "must be a YAML mapping of parameter names to values"
    UNKNOWN_KEY: ClassVar[str] = ("is not a parameter; known: ['constraints', 'gpu_names', 'gpus', 'rate', "
                                  "'simulate', 'slice_factor', 'solver', 'target_attainment', 'time_limit', "
                                  "'workload'] and run_name")
    REQUIRED: ClassVar[dict[str, str]] = {"workload": "is required", "gpus": "is required", "rate": "is required"}
    workload: Annotated[str | WorkloadParams, BeforeValidator(_workload, json_schema_input_type=str | WorkloadParams)] = Field(
        description="a workload CSV, or workload-notebook parameters that build one")
    gpus: str = Field(description="a GPU profile file, e.g. params/gpus/llama2-7b-seed.yaml")
    rate: Annotated[float, _checked(number, positive=True, what="a positive number of requests/s")] = Field(
        gt=0, description="requests/s")
    slice_factor: Annotated[int, _checked(whole, minimum=1)] = Field(1, ge=1)
    solver: Solvers = Field(default_factory=lambda: ["exact", "melange"])
    time_limit: Annotated[float | None, _checked(optional_seconds)] = Field(None, gt=0, description="seconds; null: none")
    gpu_names: Annotated[list[str], BeforeValidator(_gpu_names, json_schema_input_type=list[str] | None)] = Field(
        default_factory=list, description="a subset of the file's GPU types (empty: all)")
    constraints: ConstraintSet = Field(default_factory=dict)
    simulate: Simulate = Field(None, description="simulate the plan on a generated stream (profiles with latency models)")
    target_attainment: TargetAttainment = Field(None, description="also find the cheapest plan reaching this attainment")
    run_name: Annotated[str | None, BeforeValidator(lambda v: None if v is None else plain_name(v, ""))] = None


# ---------------------------------------------------------------- plan options (`melange-nb plan`, `plan.plan_trace`)

def _plan_parsers():
    from . import plan
    return plan


class PlanOptions(Schema):
    """What `melange-nb plan` (``plan.plan_trace``) is asked to do, checked before the trace is read."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, title="melange-nb plan options")
    solver: Annotated[Literal["exact", "melange"], _one_of(("exact", "melange"))] = "exact"
    smoothing: Annotated[Any, _own(lambda v: _plan_parsers().parse_smoothing(v))] = Field(
        None, description="hold:N (keep each mix N windows) or calm:N (scale down after N calm windows)")
    window: Annotated[Any, _own(lambda v: _plan_parsers().parse_window(v))] = Field(
        "5min", description="a number and a unit, e.g. 5min, 300s, 1h")
    workers: Annotated[int, _checked(whole, minimum=1, maximum=MAX_WORKERS)] = Field(1, ge=1, le=MAX_WORKERS)
    overflow: Annotated[Literal["drop", "clip", "open"], _one_of(("drop", "clip", "open"))] = "drop"
    slice_factor: Annotated[int, _checked(whole, minimum=1, what="a whole number >= 1 (slices per bucket)")] = Field(1, ge=1)
    time_limit: Annotated[float | None, _checked(optional_seconds)] = Field(None, gt=0)


def check_plan_options(**options: Any) -> PlanOptions:
    """`PlanOptions` from keywords; the first bad one is an `InputError` naming it."""
    return validate(PlanOptions, {k: v for k, v in options.items() if v is not None}, where="")


# ---------------------------------------------------------------- sweep specs (params/sweeps/*.yaml)

SPEC_KEYS = ("name", "rates", "workloads", "gpus", "solvers", "slice_factors", "time_limit", "constraints",
             "gpu_names", "render", "published", "simulate", "target_attainment", "ray")
RENDER_MODES = ("changes", "all", "none")
NO_CONSTRAINTS = "none"
PREDICT_OPTIONS = ("model", "gpus", "backend", "slo", "edges", "output_edges", "open_last_input", "open_last_output",
                   "prices", "tp", "sol")
CONSTRAINT_KEYS = ("max_instances", "min_instances", "utilization_cap", "min_total")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"[A-Za-z0-9_-]+")


def rates(value: Any, where: str = "") -> list[float]:
    """Request rates: a list, or ``{start, stop, step}``; sorted, each a positive number of requests/s."""
    if isinstance(value, dict):
        values = rate_range(value, where)
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        raise InputError(where, "must be a list of rates or {start, stop, step}")
    for r in values:
        if not is_number(r) or r <= 0:
            raise InputError(where, f"every rate must be a positive number of requests/s, got {r!r}")
    return sorted({float(r) for r in values})


def render_choice(value: Any, sweep_rates: Sequence[float], where: str = "render"):
    """`changes`, `all`, `none`, or a list of rates (each one of the sweep's rates)."""
    if isinstance(value, str) and value in RENDER_MODES:
        return value
    if isinstance(value, str):
        try:
            value = [float(x) for x in value.split(",") if x.strip()]
        except ValueError as cause:
            raise InputError(where, f"must be changes, all, none or comma-separated rates, got {value!r}") from cause
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(where, f"must be changes, all, none or a list of rates, got {value!r}")
    picked = rates(list(value), where)
    missing = [r for r in picked if r not in sweep_rates]
    if missing:
        raise InputError(where, f"rates {[f'{r:g}' for r in missing]} are not in the sweep's rates")
    return picked


def _labelled_names(value: Any) -> Mapping:
    if not isinstance(value, dict):
        raise InputError("", "must be a mapping name -> file (or parameters)")
    for item in value:
        if not isinstance(item, str) or not _LABEL.fullmatch(item) or len(item) > MAX_NAME:
            raise InputError(str(item)[:40], f"names may hold letters, digits, - and _ only, at most {MAX_NAME} of them")
    return value


def _predict_request(source: Mapping, slo_key: str) -> dict:
    """A ``{predict: {...}}`` GPU set's request (`profile predict`'s options); the SLO defaults to the
    key as mean TPOT ms."""
    request = source["predict"]
    if set(source) != {"predict"} or not isinstance(request, dict) or not {"model", "gpus"} <= set(request):
        raise InputError("predict", "must be a mapping of profile predict options with at least model and gpus, e.g. "
                                    "{model: meta-llama/Meta-Llama-3.1-8B, gpus: [h100_sxm=H100, a100_sxm], backend: vllm}")
    unknown = sorted(set(request) - set(PREDICT_OPTIONS))
    if unknown:
        raise InputError(f"predict.{unknown[0]}", f"is not a profile predict option; use {', '.join(PREDICT_OPTIONS)}")
    request = dict(request)
    if "slo" not in request:
        if not re.fullmatch(r"[\d.]+", slo_key):
            raise InputError("predict.slo", "is required when the SLO key is not a TPOT in ms, e.g. slo: p99_tpot_ms=60")
        request["slo"] = f"tpot_ms={slo_key}"
    return {"predict": request}


def _gpu_sets(value: Any) -> dict[str, Any]:
    """name -> a profile file (its SLO from its own `slo`), or a mapping SLO -> profile file or predict request."""
    out: dict[str, Any] = {}
    for name, entry in _labelled_names(value).items():
        if isinstance(entry, str):
            out[name] = entry
            continue
        if not isinstance(entry, dict) or not entry:
            raise InputError(name, "must be a GPU profile YAML path, or a mapping SLO -> profile YAML")
        out[name] = {}
        for slo, source in entry.items():
            key = f"{slo:g}" if is_real(slo) else str(slo)
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                raise InputError(f"{name}.{slo}", "SLO keys are numbers (TPOT ms) or names of letters, digits, ., - and _")
            try:
                if isinstance(source, dict) and "predict" in source:
                    out[name][key] = _predict_request(source, key)
                    continue
            except InputError as exc:
                raise InputError(f"{name}.{slo}.{exc.field}", exc.message) from exc
            if not isinstance(source, str):
                raise InputError(f"{name}.{slo}", f"must be a GPU profile YAML path, got {source!r}")
            out[name][key] = source
    return out


def _workload_entries(value: Any) -> dict[str, Any]:
    """name -> a CSV path, workload-notebook parameters, {blend: {other workload: weight}} or {pad: CSV}."""
    workloads = _labelled_names(value)
    for name, entry in workloads.items():
        if isinstance(entry, dict) and "blend" in entry:
            parts = entry["blend"]
            if set(entry) != {"blend"} or not isinstance(parts, dict) or not parts:
                raise InputError(f"{name}.blend", "must be a mapping workload name -> weight, e.g. {chat: 0.8, docs: 0.2}")
            for part, weight in parts.items():
                other = workloads.get(part)
                if part not in workloads or isinstance(other, dict) and "blend" in other or part == name:
                    raise InputError(f"{name}.blend.{part}",
                                     f"must name another (non-blend) workload of this spec: {sorted(workloads)}")
                if not is_number(weight) or weight < 0:
                    raise InputError(f"{name}.blend.{part}", f"must be a weight >= 0, got {weight!r}")
            if sum(parts.values()) <= 0:
                raise InputError(f"{name}.blend", "weights must have a positive sum")
        elif isinstance(entry, dict) and "pad" in entry:
            if set(entry) != {"pad"} or not isinstance(entry["pad"], str):
                raise InputError(f"{name}.pad", "must be a workload CSV path, e.g. {pad: params/workloads/arena-seed.csv}")
        elif entry is None or not isinstance(entry, (str, dict)):
            raise InputError(name, f"must be a workload CSV path or workload parameters, got {entry!r}")
        elif isinstance(entry, dict):
            try:
                validate(WorkloadParams, entry, where="")
            except InputError as exc:
                raise InputError(f"{name}.{exc.field}", exc.message) from exc
    return dict(workloads)


def _solver_list(value: Any) -> list[str]:
    solvers = [value] if isinstance(value, str) else value
    if not isinstance(solvers, list) or not solvers:
        raise InputError("", "must list melange and/or exact")
    for s in solvers:
        if s not in ("melange", "exact"):
            raise InputError("", f"unknown solver {s!r}; use melange and/or exact")
    return solvers


def _slice_factors(value: Any) -> list[int]:
    factors = [value] if isinstance(value, (int, np.integer)) else value      # true too: refused below, by name
    if not isinstance(factors, list) or not factors:
        raise InputError("", "must be a list of whole numbers >= 1, e.g. [1]")
    for sf in factors:
        if not is_count(sf, 1):
            raise InputError("", f"must be whole numbers >= 1, got {sf!r}")
    return factors


def _constraint_sets(value: Any) -> dict[str, dict]:
    """One unlabelled constraints mapping (label `none`), or label -> constraints mapping."""
    from .solver import Constraints

    value = {} if value is None else value
    if not isinstance(value, dict):
        raise InputError("", "must be a mapping (max_instances, min_instances, utilization_cap, min_total)")
    labelled = bool(value) and not set(value) & set(CONSTRAINT_KEYS) and \
        all(isinstance(v, dict) and set(v) <= set(CONSTRAINT_KEYS) for v in value.values())
    sets = value if labelled else {NO_CONSTRAINTS: value}
    for label, doc in sets.items():
        at = f"{label}." if labelled else ""
        if labelled and not _LABEL.fullmatch(str(label)):
            raise InputError(str(label), "labels may hold letters, digits, - and _ only")
        try:
            Constraints.from_mapping(doc)
        except InputError as exc:
            raise InputError(at + exc.field.removeprefix("constraints").lstrip("."), exc.message) from exc
        except TypeError as exc:
            raise InputError("", f"is not a constraints mapping ({exc})") from exc
    return {str(k): dict(v) for k, v in sets.items()}


def _gpu_type_names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise InputError("", "must be a list of GPU type names, e.g. [A10G, A100]")
    return value


_rate_list = rates      # the model's field is called `rates` too


class RateRange(BaseModel):
    start: float = Field(gt=0)
    stop: float = Field(gt=0)
    step: float = Field(gt=0)


class PredictRequest(BaseModel):
    """`profile predict`'s options; the SLO defaults to the key (mean TPOT ms)."""

    model_config = ConfigDict(extra="forbid")
    predict: dict[str, Any] = Field(json_schema_extra={"required": ["model", "gpus"],
                                                       "properties": {k: {} for k in PREDICT_OPTIONS},
                                                       "additionalProperties": False})


class Published(Schema):
    """Published savings ranges to set beside the results."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="a citation, e.g. Griggs et al., arXiv 2404.14527")
    savings_pct: dict[str, tuple[float, float]] = Field(description="workload -> [lowest, highest] % against "
                                                                    "single-GPU policies")
    notes: str = ""


def _published(value: Any, info: ValidationInfo) -> dict | None:
    if value is None:
        return None
    workloads = info.data.get("workloads") or {}
    if not isinstance(value, dict) or not isinstance(value.get("source"), str) or not isinstance(value.get("savings_pct"), dict):
        raise InputError("", "must be {source: citation, savings_pct: {workload: [lowest, highest]}, notes: text}")
    for name, pair in value["savings_pct"].items():
        if name not in workloads:
            raise InputError(f"savings_pct.{name}", f"is not a workload of this spec: {sorted(workloads)}")
        if not (isinstance(pair, list) and len(pair) == 2 and all(is_real(x) for x in pair)):
            raise InputError(f"savings_pct.{name}", f"must be [lowest, highest] in %, got {pair!r}")
    bad = sorted(set(value) - {"source", "savings_pct", "notes"})
    if bad:
        raise InputError(bad[0], "is not a key; use source, savings_pct, notes")
    return {"source": value["source"], "savings_pct": dict(value["savings_pct"]), "notes": str(value.get("notes") or "")}


def _render(value: Any, info: ValidationInfo):
    if "rates" not in info.data:           # the rates were refused: that error comes first
        return value
    return render_choice(value, info.data["rates"], "")


def _ray_option(value: Any) -> Any:
    from .scale import check_address   # the option's form only: Ray is not imported

    try:
        return check_address(value, "ray")
    except InputError as exc:
        raise InputError("", exc.message) from None


class SweepSpec(Schema):
    """A sweep spec (``params/sweeps/*.yaml``): workloads x GPU sets x SLOs x constraints x slice factors
    x rates; see ``melange_nb/sweep`` for what each key does."""

    model_config = ConfigDict(extra="forbid", title="melange-nb sweep spec")
    NOT_MAPPING: ClassVar[str] = "must be a YAML mapping"
    UNKNOWN_KEY: ClassVar[str] = f"is not a sweep key; known: {list(SPEC_KEYS)}"

    name: Annotated[str, BeforeValidator(lambda v: v if isinstance(v, str) and _FOLDER_NAME.fullmatch(v) and ".." not in v
                                         and len(v) <= MAX_NAME
                                         else _bad_name(v))] = Field("sweep", description="the output folder's name")
    rates: Annotated[list[float], BeforeValidator(_rate_list, json_schema_input_type=list[float] | RateRange)] = Field(
        description="requests/s: a list, or {start, stop, step}")
    workloads: Annotated[dict[str, Any], BeforeValidator(_workload_entries, json_schema_input_type=dict[
        str, str | WorkloadParams | dict[Literal["blend"], dict[str, Annotated[float, Field(ge=0)]]] | dict[Literal["pad"], str]])] = Field(
        description="name -> a workload CSV, workload-notebook parameters, {blend: {name: weight}} or {pad: CSV}")
    gpus: Annotated[dict[str, Any], BeforeValidator(_gpu_sets, json_schema_input_type=dict[
        str, str | dict[str, str | PredictRequest]])] = Field(
        description="name -> a GPU profile file, or SLO (mean TPOT ms, or a name) -> a file or {predict: {...}}")
    solvers: Annotated[list[Literal["melange", "exact"]], BeforeValidator(
        _solver_list, json_schema_input_type=Literal["melange", "exact"] | list[Literal["melange", "exact"]])] = Field(
        default_factory=lambda: ["exact", "melange"],
        description="every point compares all of them; the first is the reference (default: exact, the Mélange ILP as its comparison)")
    slice_factors: Annotated[list[int], BeforeValidator(
        _slice_factors, json_schema_input_type=Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=1)]])] = Field(
        default_factory=lambda: [1], description="the Mélange ILP's slices per bucket")
    constraints: Annotated[dict[str, dict], BeforeValidator(_constraint_sets, json_schema_input_type=dict[str, Any] | None)] = Field(
        default_factory=dict, validate_default=True,
        description="one set {max_instances, min_instances, utilization_cap, min_total}, "
                                          "or label -> set")
    gpu_names: Annotated[list[str], BeforeValidator(_gpu_type_names)] = Field(
        default_factory=list, description="a subset of GPU types (empty: all)")
    render: Annotated[Any, BeforeValidator(_render, json_schema_input_type=Literal["changes", "all", "none"] | list[float])] = Field(
        "changes", description="per-point reports: changes | all | none | a list of the sweep's rates")
    published: Annotated[Any, BeforeValidator(_published, json_schema_input_type=Published | None)] = None
    time_limit: Annotated[float | None, _checked(optional_seconds)] = Field(None, gt=0, description="seconds per solve")
    simulate: Simulate = Field(None, description="simulate each point's reference plan (profiles with latency models)")
    target_attainment: TargetAttainment = Field(None, description="also find the cheapest plan reaching this attainment")
    ray: Annotated[str | bool | None, BeforeValidator(_ray_option)] = Field(
        None, description="solve the points as Ray tasks: HOST:PORT of a Ray head, or true (RAY_ADDRESS, else a local "
                          "Ray); the `scale` extra")

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in ("rates", "workloads", "gpus"):
                if not data.get(key):
                    raise InputError(key, "is required")
        return data


def _bad_name(value: Any):
    if isinstance(value, str) and len(value) > MAX_NAME:
        plain_name(value, "")                  # the length error
    raise InputError("", f"must be a folder name of letters, digits, '.', '-' and '_' (no '/' or '..'), got {value!r}")


# ---------------------------------------------------------------- JSON Schema for editors

FILE_MODELS: dict[str, type[Schema]] = {"gpus": GpuProfileFile, "prices": PriceFile, "run": RunParams,
                                         "sweep": SweepSpec}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one input file kind (`FILE_MODELS`), as `melange-nb schema KIND` prints it:
    save it and name it in a YAML file's first line, ``# yaml-language-server: $schema=FILE``."""
    schema = FILE_MODELS[kind].model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
