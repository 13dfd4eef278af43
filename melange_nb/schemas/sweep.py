"""Sweep specs (``params/sweeps/*.yaml``): workloads x GPU sets x SLOs x constraints x slice factors
x rates; what each key does is in ``melange_nb/sweep``."""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from ..errors import InputError
from .common import (MAX_NAME, Schema, checked, is_count, is_number, is_real, optional_seconds, plain_name,
                     validate)
from .run import WorkloadParams
from .simulate import Simulate, TargetAttainment


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
    from ..solver import Constraints

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
    from ..scale import check_address   # the option's form only: Ray is not imported

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
    time_limit: Annotated[float | None, checked(optional_seconds)] = Field(None, gt=0, description="seconds per solve")
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
