"""GPU profile files (``params/gpus/*.yaml``): bucket edges, GPU types with $/hour and max
requests/s per bucket, their provenance and latency models."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Mapping, Sequence

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from ..errors import InputError
from .common import (UNKNOWN, Edges, Fact, Flag, Schema, checked, gpu_name, gpu_names, inherit, number,
                     number_matrix, whole)


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
    from ..profiles import parse_slo
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
    from ..profiles import MIN_TPUT

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
    from ..profiles.latency import parse_latency
    return parse_latency(value, "")


Latency = Annotated[Any, BeforeValidator(_latency, json_schema_input_type=LatencySection | None),
                    Field(None, description="one replica's iteration-time model for `simulate`; in a GPU's "
                                            "entry it overrides the file's")]


class GpuEntry(Provenance):
    """One GPU type of a profile file: $/hour, max requests/s per bucket, and its own provenance."""

    model_config = ConfigDict(extra="allow")
    REQUIRED: ClassVar[dict[str, str]] = {}
    cost: Annotated[float, checked(number, positive=True, what="a positive number of dollars per hour")] = Field(
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
