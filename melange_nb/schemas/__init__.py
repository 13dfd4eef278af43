"""What a valid input is, in one place: pydantic models of every input file (GPU profile files,
price files, run parameters, sweep specs) and of the plan and simulate options, on top of small
value helpers that the models and the other loaders (workload CSV, melange JSON) share.

One module per input kind: `profiles` (``params/gpus/*.yaml``), `prices` (``params/prices/*.yaml``),
`run` (``params/*.yaml``, the workload notebook's parameters), `simulate` (simulate options), `plan`
(`melange-nb plan`'s options), `sweep` (``params/sweeps/*.yaml``), on `common` (the number, name and
edge checks, the `Schema` base and `validate`). The public names are re-exported here:
``from melange_nb.schemas import SweepSpec, validate``.

`common`'s docstring gives the rules every check follows (a bool, NaN or numeric string is no number;
every error is one line naming the field and the fix). `json_schema(kind)` is what `melange-nb schema
sweep|gpus|prices|run` prints, for editors (``# yaml-language-server: $schema=FILE``).
"""
from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter     # as schemas.TypeAdapter (profiles' GPU entries), as before the split

from .common import (MAX_GPU_NAME, MAX_NAME, MAX_WORKERS, UNKNOWN, Edges, Fact, Flag, Schema, edges, file_safe, flag,
                     gpu_name, gpu_names, inherit, input_error, is_count, is_number, is_real, number, number_matrix,
                     optional_seconds, plain_name, printable_text, validate, whole)
from .profiles import (PROVENANCE_KEYS, SLO_FORMS, CellNote, GpuEntries, GpuEntry, GpuProfileFile, Latency,
                       LatencySection, NameVersion, Provenance, Slo, SloCondition, SloInput, StepMs, check_cell_notes)
from .prices import PRICE_FACTS, PriceEntry, PriceFile
from .run import WORKLOAD_KEYS, ConstraintSet, RunParams, Solvers, WorkloadParams
from .simulate import Simulate, SimulateOptions, TargetAttainment
from .plan import PlanOptions, check_plan_options
from .sweep import (CONSTRAINT_KEYS, MAX_SWEEP_POINTS, NO_CONSTRAINTS, PREDICT_OPTIONS, RENDER_MODES, SPEC_KEYS,
                    PredictRequest, Published, RateRange, SweepSpec, rate_range, rates, render_choice, sweep_size)

__all__ = ["CONSTRAINT_KEYS", "CellNote", "ConstraintSet", "Edges", "FILE_MODELS", "Fact", "Flag", "GpuEntries",
           "GpuEntry", "GpuProfileFile", "Latency", "LatencySection", "MAX_GPU_NAME", "MAX_NAME", "MAX_SWEEP_POINTS",
           "MAX_WORKERS", "NO_CONSTRAINTS", "NameVersion", "PREDICT_OPTIONS", "PRICE_FACTS", "PROVENANCE_KEYS",
           "PlanOptions", "PredictRequest", "PriceEntry", "PriceFile", "Provenance", "Published", "RENDER_MODES",
           "RateRange", "RunParams", "SLO_FORMS", "SPEC_KEYS", "Schema", "Simulate", "SimulateOptions", "Slo",
           "SloCondition", "SloInput", "Solvers", "StepMs", "SweepSpec", "TargetAttainment", "TypeAdapter", "UNKNOWN",
           "WORKLOAD_KEYS", "WorkloadParams", "check_cell_notes", "check_plan_options", "edges", "file_safe", "flag",
           "gpu_name", "gpu_names", "inherit", "input_error", "is_count", "is_number", "is_real", "json_schema",
           "number", "number_matrix", "optional_seconds", "plain_name", "printable_text", "rate_range", "rates",
           "render_choice", "sweep_size", "validate", "whole"]


# ---------------------------------------------------------------- JSON Schema for editors

FILE_MODELS: dict[str, type[Schema]] = {"gpus": GpuProfileFile, "prices": PriceFile, "run": RunParams,
                                         "sweep": SweepSpec}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one input file kind (`FILE_MODELS`), as `melange-nb schema KIND` prints it:
    save it and name it in a YAML file's first line, ``# yaml-language-server: $schema=FILE``."""
    schema = FILE_MODELS[kind].model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
