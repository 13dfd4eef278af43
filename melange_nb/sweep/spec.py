"""A sweep's spec: its loading (YAML or the quick form; the schema is `schemas.SweepSpec`, so
`melange-nb schema sweep` prints it for editors), the checks of the files it names, and its grid of points.

A sweep spec (``params/sweeps/*.yaml``)::

    name: demo
    rates: {start: 1, stop: 12, step: 1}      # or a list [1, 2, 4, 8]
    workloads:                                  # name -> workload CSV, workload-notebook parameters,
      synthetic-chat: {dataset: synthetic}      #   or a blend of other workloads of this spec
      arena-seed: params/workloads/arena-seed.csv
      mixed: {blend: {arena-seed: 0.8, synthetic-chat: 0.2}}
      short: {pad: params/workloads/arena-seed.csv}   # a CSV with zero-share buckets added up to the profiles' edges
    gpus:                                       # name -> profile YAML (its own SLO), or SLO -> profile YAML
      llama2-7b: params/gpus/llama2-7b-seed.yaml
      # per-slo: {40: params/gpus/x-tpot40.yaml, 120: params/gpus/x-tpot120.yaml}  (numbers = TPOT ms)
      # predicted: {40: {predict: {model: meta-llama/Meta-Llama-3.1-8B, gpus: [h100_sxm=H100, l40s=L40S]}}}
      #   (`profile predict`'s options; predicted once, cached in outputs/cache/profiles/)
    solvers: [exact, melange]                   # every point compares all of them; the first is the reference
                                                # (default: exact, with the Mélange ILP as its comparison)
    slice_factors: [1]
    time_limit: null
    constraints: {}                             # one set, or label -> set: {quota: {max_instances: {A100: 2}}}
    gpu_names: []                               # a subset of GPU types (empty: all)
    render: changes                             # changes | all | none | a list of rates
    published:                                  # optional: published savings ranges to set beside the results
      source: Griggs et al., arXiv 2404.14527
      savings_pct: {short: [9, 77]}             # workload -> [lowest, highest] % against single-GPU policies
      notes: why the numbers may differ (markdown)
    simulate: {duration_s: 600, arrival: poisson, seed: 0, routing: least}   # optional (or `true`): simulate
                                                #   each point's reference plan (profiles need latency models)
    target_attainment: 0.99                     # optional: also find the cheapest plan reaching this attainment
    ray: null                                   # HOST:PORT of a Ray head, or true (RAY_ADDRESS, else a local
                                                #   Ray): the points are solved as Ray tasks (--ray-address)

With `simulate`, every point's reference plan serves a generated stream in the worker that solved it
(`attainment.check_plan`): results gain ``attainment``, ``p99_ttft_ms``, ``p99_tpot_ms`` (and, with
`target_attainment`, ``found_mix``, ``found_cost_per_hour``, ``found_attainment``) on the reference rows.

`load_spec` checks the spec's shape and every `profile predict` request it holds, without running
a prediction or writing anything; `check_inputs` then reads every file the spec names, and predicts
the `predict:` GPU sets that are not cached yet only after every other check has passed.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from .. import schemas
from ..errors import InputError
from ..files import PATH_LOOKUP, read_yaml
from ..run import resolve_path, workload_input

from ..schemas import NO_CONSTRAINTS, PREDICT_OPTIONS, RENDER_MODES, SPEC_KEYS, SweepSpec, render_choice, validate


@dataclass(frozen=True)
class Point:
    """One grid point: a workload, a GPU set at an SLO, a constraints set, a slice factor and a rate."""

    workload: str
    gpus: str
    slo: str | None          # the SLO key of a per-SLO GPU set; None for a single profile file
    constraints: str | None  # the label of a constraints set; None when the spec gives one unlabelled set
    slice_factor: int
    rate: float

    @property
    def problem(self) -> tuple:
        """What the points of one prepared problem share (everything but the rate)."""
        return (self.workload, self.gpus, self.slo, self.constraints, self.slice_factor)

    @property
    def id(self) -> str:
        parts = [self.workload, self.gpus, *([f"slo{self.slo}"] if self.slo is not None else []),
                 *([self.constraints] if self.constraints is not None else []), f"sf{self.slice_factor}"]
        return "__".join(parts) + f"__rate{self.rate:g}"


# ---------------------------------------------------------------- the spec

def load_spec(path: str | Path | None = None, **quick) -> dict[str, Any]:
    """A sweep spec from YAML, or from the quick form (`workload`, `gpus`, `rates` and solver options).

    Checks the spec's shape (`schemas.SweepSpec`) and each `predict:` request (without predicting
    or writing anything), and resolves its paths; `check_inputs` then reads every file it names. A
    spec with `predict:` GPU sets gets a ``predictions`` entry: {profile path: {"field", "request"}}.
    """
    if path is not None:
        path = resolve_path(path)
        spec = read_yaml(path, "sweep spec", "params/sweeps/demo.yaml")
        where = path.name
        if spec is None:
            spec = {}
    else:
        spec = {"name": quick.get("name") or "sweep", "rates": quick["rates"],
                "workloads": {Path(quick["workload"]).stem: quick["workload"]},
                "gpus": {Path(quick["gpus"]).stem: quick["gpus"]}, "solvers": quick.get("solvers") or ["exact", "melange"]}
        for key in ("slice_factors", "time_limit", "constraints", "gpu_names", "render", "simulate", "target_attainment"):
            if quick.get(key) is not None:
                spec[key] = quick[key]
        where = "sweep"
    spec = validate(SweepSpec, spec, where=f"{where}:", root=where).model_dump()
    predictions: dict[str, dict] = {}
    spec["gpus"] = {k: _gpu_files(v, f"{where}: gpus.{k}", predictions) for k, v in spec["gpus"].items()}
    if predictions:
        spec["predictions"] = predictions
    spec["workloads"] = {k: _workload_files(v, f"{where}: workloads.{k}") for k, v in spec["workloads"].items()}
    if spec["target_attainment"] is not None and spec["simulate"] is None:
        from ..attainment import check_options
        spec["simulate"] = check_options(True)          # a target needs a simulation: the default stream
    schemas.sweep_size(spec, where)
    return spec


def _within(where: str, exc: InputError) -> InputError:
    """The same error, its field prefixed with the spec it came from."""
    return InputError(f"{where}: {exc.field}", str(exc)[len(exc.field) + 2:])


def _gpu_files(value: str | Mapping, field: str, predictions: dict) -> str | dict[str, str]:
    """A checked GPU set with its profile files made absolute (a `predict:` request: its cache file)."""
    if isinstance(value, str):
        return str(resolve_path(value))
    return {slo: (_predicted_set(source["predict"], f"{field}.{slo}", predictions) if isinstance(source, dict)
                  else str(resolve_path(source))) for slo, source in value.items()}


def _predicted_set(request: Mapping, field: str, predictions: dict) -> str:
    """A ``{predict: {...}}`` GPU set (`profile predict`'s options, shape checked by the schema): the
    request is checked here, and its profile YAML will be ``outputs/cache/profiles/``
    ``sweep-<hash of the request>.yaml``, which the sweep then treats like any profile file (resume
    hashes included). `predictions` gets {that path: {"field", "request"}}: `predict_gpu_sets`
    predicts the ones not cached yet, as a step of the run after every check.
    """
    from ..config import outputs_dir
    from ..profiles.predict import check_request

    request = dict(request)
    if isinstance(request.get("prices"), str):
        request["prices"] = str(resolve_path(request["prices"]))
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = outputs_dir() / "cache" / "profiles" / f"sweep-{digest}.yaml"
    try:
        check_request(**request)
    except InputError as exc:
        raise _within(f"{field}.predict", exc) from exc
    predictions[str(path)] = {"field": field, "request": request}
    return str(path)


def predict_gpu_sets(spec: Mapping[str, Any]) -> list[str]:
    """Predict and save (once; cached by the request's hash) the spec's `predict:` GPU sets whose
    profile YAML does not exist yet; return their paths. A step of the run, after every check."""
    from ..profiles import save_profiles
    from ..profiles.predict import predict_profiles

    made = []
    for path, job in (spec.get("predictions") or {}).items():
        if Path(path).is_file():
            continue
        try:
            gpus = predict_profiles(**job["request"])
        except InputError as exc:
            raise _within(f"{job['field']}.predict", exc) from exc
        save_profiles(Path(path), gpus, header=f"Predicted for a sweep spec ({job['field']}) by aiconfigurator-core: "
                                               f"{job['request']}")
        made.append(path)
    return made


def _workload_files(value: Any, field: str):
    """A checked workload entry with its paths made absolute (kernels run elsewhere)."""
    if isinstance(value, dict) and "blend" in value:
        return {"blend": dict(value["blend"])}
    if isinstance(value, dict) and "pad" in value:
        return {"pad": str(resolve_path(value["pad"]))}
    return workload_input(value, field)


def _labelled(spec) -> bool:
    return list(spec["constraints"]) != [NO_CONSTRAINTS]


def grid(spec: Mapping[str, Any]) -> list[Point]:
    """Every point of the spec, in a stable order."""
    sets = [(g, slo) for g, v in spec["gpus"].items() for slo in ([None] if isinstance(v, str) else v)]
    labels = list(spec["constraints"]) if _labelled(spec) else [None]
    return [Point(w, g, slo, c, sf, r) for w, (g, slo), c, sf, r in
            product(spec["workloads"], sets, labels, spec["slice_factors"], spec["rates"])]


def profile_file(spec, p: Point) -> str:
    v = spec["gpus"][p.gpus]
    return v if p.slo is None else v[p.slo]


def slo_label(spec, p: Point, gpus) -> str:
    """The SLO a point's profiles were made for: the spec's key (a number is mean TPOT ms), else the file's `slo`."""
    from ..profiles import format_slo

    if p.slo is not None:
        return format_slo(f"tpot_ms={p.slo}") if re.fullmatch(r"[\d.]+", p.slo) else p.slo
    return format_slo(next(iter(gpus.values())).meta.get("slo", "unknown"))


# ---------------------------------------------------------------- checking every input up front

def check_inputs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Read every workload CSV and GPU profile the spec names and apply the checks `solve` and `run`
    apply (GPU names, constraints per GPU set, matching buckets), before anything is written but the
    `predict:` GPU sets' profiles: those are predicted (`predict_gpu_sets`) once every file the spec
    names has been read and checked, then checked like the others.

    Returns {"profiles": {file: gpus}, "workloads": {name: DataFrame or None (built by a notebook)}}.
    """
    from ..workload import check_same_buckets, pad_workload, read_workload

    sets = [(name, slo, file) for name, value in spec["gpus"].items()
            for slo, file in ([(None, value)] if isinstance(value, str) else value.items())]
    pending = {file for _, _, file in sets if file in (spec.get("predictions") or {}) and not Path(file).is_file()}
    checked = {file: _check_profile(spec, name, slo, file) for name, slo, file in sets if file not in pending}
    workloads = {}
    for name, value in spec["workloads"].items():
        if isinstance(value, str):
            workloads[name] = read_workload(value)
        elif "blend" in value:
            workloads[name] = None
        elif "pad" in value:
            workloads[name] = read_workload(value["pad"])     # padded below, to the profiles' buckets
        else:
            workloads[name] = None
            for key in ("trace",) + (("dataset",) if value.get("dataset") and Path(str(value["dataset"])).is_absolute() else ()):
                if value.get(key) and not Path(value[key]).exists():
                    raise InputError(f"workloads.{name}.{key}", f"{value[key]} not found; check the path ({PATH_LOOKUP})")
    if pending:
        predict_gpu_sets(spec)
    profiles = {file: checked[file] if file in checked else _check_profile(spec, name, slo, file)
                for name, slo, file in sets}
    for name, value in spec["workloads"].items():
        if isinstance(value, dict) and "pad" in value:
            like = next(iter(next(iter(profiles.values())).values())).tputs
            workloads[name] = pad_workload(workloads[name], like.index, like.columns, field=f"workloads.{name}.pad")
    for name, value in spec["workloads"].items():
        if isinstance(value, dict) and "blend" in value:
            parts = [workloads[k] for k in value["blend"] if workloads[k] is not None]
            for other in parts[1:]:
                check_same_buckets(parts[0], other, what=f"workloads.{name}.blend")
            if parts and len(parts) == len(value["blend"]):
                workloads[name] = _blend(workloads, value["blend"])
    for name, w in workloads.items():
        if w is None:
            continue
        for file, gpus in profiles.items():
            for gpu in gpus.values():
                check_same_buckets(w, gpu.tputs, what=f"GPU profile {Path(file).name} ({gpu.name}) for workload {name}")
    return {"profiles": profiles, "workloads": workloads}


def _check_profile(spec: Mapping[str, Any], name: str, slo: str | None, file: str) -> dict:
    """One GPU set's profiles, checked against the spec's GPU names, constraints and SLO key."""
    from ..profiles import load_gpus, select_gpus
    from ..solver import Constraints

    where = f"gpus.{name}" + (f".{slo}" if slo is not None else "")
    try:
        gpus = select_gpus(load_gpus(file), spec["gpu_names"])
        for label, doc in spec["constraints"].items():
            Constraints.from_mapping(doc).check(list(gpus))
    except InputError as exc:
        raise _within(where, exc) from exc
    if spec.get("simulate"):  # every GPU type simulated needs a latency model and the set a stated SLO
        from ..attainment import latency_missing
        from ..profiles import parse_slo
        missing = latency_missing(gpus)
        if missing:
            raise InputError(f"{where}", "simulate: " + missing[len("No SLO attainment: "):])
        if parse_slo(next(iter(gpus.values())).meta.get("slo")) == "unknown":
            raise InputError(f"{where}", f"simulate: {Path(file).name} states no SLO; add `slo: {{tpot_ms: 40}}` to it")
    if slo is not None:       # a profile that states its SLO must be the one the spec files it under
        point = Point(name, name, slo, None, 1, 1.0)
        said, want = slo_label(spec, Point(name, name, None, None, 1, 1.0), gpus), slo_label(spec, point, gpus)
        if said != "unknown" and said != want:
            raise InputError(f"{where}", f"{Path(file).name} was profiled for {said}, not {want}; "
                             "file it under its own SLO")
    return gpus


def _blend(workloads: Mapping[str, pd.DataFrame], weights: Mapping[str, float]) -> pd.DataFrame:
    from ..workload import blend

    return blend({k: workloads[k] for k in weights}, dict(weights))

