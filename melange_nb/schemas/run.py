"""Run parameters (``params/*.yaml``, `melange-nb run -p`): one allocation notebook run, and the
workload notebook's parameters that a run or a sweep may give instead of a workload CSV."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import BeforeValidator, ConfigDict, Field

from ..errors import InputError
from .common import Schema, checked, number, optional_seconds, plain_name, validate, whole
from .simulate import Simulate, TargetAttainment


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
    from ..solver import Constraints

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
    rate: Annotated[float, checked(number, positive=True, what="a positive number of requests/s")] = Field(
        gt=0, description="requests/s")
    slice_factor: Annotated[int, checked(whole, minimum=1)] = Field(1, ge=1)
    solver: Solvers = Field(default_factory=lambda: ["exact", "melange"])
    time_limit: Annotated[float | None, checked(optional_seconds)] = Field(None, gt=0, description="seconds; null: none")
    gpu_names: Annotated[list[str], BeforeValidator(_gpu_names, json_schema_input_type=list[str] | None)] = Field(
        default_factory=list, description="a subset of the file's GPU types (empty: all)")
    constraints: ConstraintSet = Field(default_factory=dict)
    simulate: Simulate = Field(None, description="simulate the plan on a generated stream (profiles with latency models)")
    target_attainment: TargetAttainment = Field(None, description="also find the cheapest plan reaching this attainment")
    run_name: Annotated[str | None, BeforeValidator(lambda v: None if v is None else plain_name(v, ""))] = None
