"""A sweep's spec: the YAML schema (or the quick form), its loading and checks, and its grid of points.

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
    solvers: [melange, exact]                   # every point compares all of them; the first is the reference
    slice_factors: [1]
    time_limit: null
    constraints: {}                             # one set, or label -> set: {quota: {max_instances: {A100: 2}}}
    gpu_names: []                               # a subset of GPU types (empty: all)
    render: changes                             # changes | all | none | a list of rates
    published:                                  # optional: published savings ranges to set beside the results
      source: Griggs et al., arXiv 2404.14527
      savings_pct: {short: [9, 77]}             # workload -> [lowest, highest] % against single-GPU policies
      notes: why the numbers may differ (markdown)
    ray: null                                   # HOST:PORT of a Ray head, or true (RAY_ADDRESS, else a local
                                                #   Ray): the points are solved as Ray tasks (--ray-address)

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

import numpy as np
import pandas as pd

from ..errors import InputError
from ..files import read_yaml
from ..run import resolve_path, workload_input

SPEC_KEYS = ("name", "rates", "workloads", "gpus", "solvers", "slice_factors", "time_limit", "constraints",
             "gpu_names", "render", "published", "ray")
RENDER_MODES = ("changes", "all", "none")
NO_CONSTRAINTS = "none"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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

    Checks the spec's shape (and each `predict:` request, without predicting or writing anything);
    `check_inputs` then reads every file it names. A spec with `predict:` GPU sets gets a
    ``predictions`` entry: {profile path: {"field", "request"}}.
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
                "gpus": {Path(quick["gpus"]).stem: quick["gpus"]}, "solvers": quick.get("solvers") or ["melange"]}
        for key in ("slice_factors", "time_limit", "constraints", "gpu_names", "render"):
            if quick.get(key) is not None:
                spec[key] = quick[key]
        where = "sweep"
    if not isinstance(spec, dict):
        raise InputError(where, "must be a YAML mapping")
    unknown = sorted(set(spec) - set(SPEC_KEYS), key=str)
    if unknown:
        raise InputError(f"{where}: {unknown[0]}", f"is not a sweep key; known: {list(SPEC_KEYS)}")
    for key in ("rates", "workloads", "gpus"):
        if not spec.get(key):
            raise InputError(f"{where}: {key}", "is required")
    spec = {"name": "sweep", "solvers": ["melange"], "slice_factors": [1], "time_limit": None, "constraints": {},
            "gpu_names": [], "render": "changes", "published": None, "ray": None, **spec}
    from ..scale import check_address   # no Ray import: only the option's form

    spec["ray"] = check_address(spec["ray"], f"{where}: ray")
    name = spec["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InputError(f"{where}: name", f"must be a folder name of letters, digits, '.', '-' and '_' "
                                           f"(no '/' or '..'), got {name!r}")
    spec["rates"] = _rates(spec["rates"], f"{where}: rates")
    for key in ("workloads", "gpus"):
        if not isinstance(spec[key], dict):
            raise InputError(f"{where}: {key}", "must be a mapping name -> file (or parameters)")
        for item in spec[key]:
            if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", item):
                raise InputError(f"{where}: {key}.{item}", "names may hold letters, digits, - and _ only")
    predictions: dict[str, dict] = {}
    spec["gpus"] = {k: _gpu_set(v, f"{where}: gpus.{k}", predictions) for k, v in spec["gpus"].items()}
    if predictions:
        spec["predictions"] = predictions
    spec["workloads"] = {k: _workload_entry(v, spec["workloads"], f"{where}: workloads.{k}")
                         for k, v in spec["workloads"].items()}
    if isinstance(spec["solvers"], str):
        spec["solvers"] = [spec["solvers"]]
    if not isinstance(spec["solvers"], list) or not spec["solvers"]:
        raise InputError(f"{where}: solvers", "must list melange and/or exact")
    for s in spec["solvers"]:
        if s not in ("melange", "exact"):
            raise InputError(f"{where}: solvers", f"unknown solver {s!r}; use melange and/or exact")
    if isinstance(spec["slice_factors"], int):
        spec["slice_factors"] = [spec["slice_factors"]]
    if not isinstance(spec["slice_factors"], list) or not spec["slice_factors"]:
        raise InputError(f"{where}: slice_factors", "must be a list of whole numbers >= 1, e.g. [1]")
    for sf in spec["slice_factors"]:
        if isinstance(sf, bool) or not isinstance(sf, int) or sf < 1:
            raise InputError(f"{where}: slice_factors", f"must be whole numbers >= 1, got {sf!r}")
    spec["constraints"] = _constraint_sets(spec["constraints"], where)
    if not isinstance(spec["gpu_names"], list) or not all(isinstance(g, str) for g in spec["gpu_names"]):
        raise InputError(f"{where}: gpu_names", "must be a list of GPU type names, e.g. [A10G, A100]")
    spec["render"] = render_choice(spec["render"], spec["rates"], f"{where}: render")
    spec["published"] = _published(spec["published"], spec["workloads"], f"{where}: published")
    try:
        from ..solver import check_time_limit
        check_time_limit(spec["time_limit"])
    except InputError as exc:
        raise _within(where, exc) from None
    return spec


def _within(where: str, exc: InputError) -> InputError:
    """The same error, its field prefixed with the spec it came from."""
    return InputError(f"{where}: {exc.field}", str(exc)[len(exc.field) + 2:])


def _rates(value, field: str) -> list[float]:
    if isinstance(value, dict):
        try:
            start, stop, step = (float(value[k]) for k in ("start", "stop", "step"))
        except (KeyError, TypeError, ValueError):
            raise InputError(field, "a range needs numeric start, stop and step, e.g. {start: 1, stop: 12, step: 1}") from None
        if not (step > 0 and stop >= start):
            raise InputError(field, f"needs step > 0 and stop >= start, got {value}")
        rates = list(np.round(np.arange(start, stop + step / 2, step), 9))
    elif isinstance(value, (list, tuple)):
        rates = value
    else:
        raise InputError(field, "must be a list of rates or {start, stop, step}")
    out = []
    for r in rates:
        if isinstance(r, bool) or not isinstance(r, (int, float, np.number)) or not np.isfinite(r) or r <= 0:
            raise InputError(field, f"every rate must be a positive number of requests/s, got {r!r}")
        out.append(float(r))
    return sorted(set(out))


def render_choice(value, rates, field: str = "render"):
    """`changes`, `all`, `none`, or a list of rates (each one of the sweep's rates)."""
    if isinstance(value, str) and value in RENDER_MODES:
        return value
    if isinstance(value, str):
        try:
            value = [float(x) for x in value.split(",") if x.strip()]
        except ValueError:
            raise InputError(field, f"must be changes, all, none or comma-separated rates, got {value!r}") from None
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(field, f"must be changes, all, none or a list of rates, got {value!r}")
    picked = _rates(list(value), field)
    missing = [r for r in picked if r not in rates]
    if missing:
        raise InputError(field, f"rates {[f'{r:g}' for r in missing]} are not in the sweep's rates")
    return picked


def _gpu_set(value, field: str, predictions: dict) -> str | dict[str, str]:
    """A profile file (its SLO from its own `slo` field), or a mapping SLO -> profile file."""
    if isinstance(value, str):
        return str(resolve_path(value))
    if isinstance(value, dict) and value:
        out = {}
        for slo, source in value.items():
            key = f"{slo:g}" if isinstance(slo, (int, float)) and not isinstance(slo, bool) else str(slo)
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                raise InputError(f"{field}.{slo}", "SLO keys are numbers (TPOT ms) or names of letters, digits, ., - and _")
            if isinstance(source, dict) and "predict" in source:
                out[key] = _predicted_set(source, key, f"{field}.{slo}", predictions)
                continue
            if not isinstance(source, str):
                raise InputError(f"{field}.{slo}", f"must be a GPU profile YAML path, got {source!r}")
            out[key] = str(resolve_path(source))
        return out
    raise InputError(field, "must be a GPU profile YAML path, or a mapping SLO -> profile YAML")


PREDICT_OPTIONS = ("model", "gpus", "backend", "slo", "edges", "output_edges", "open_last_input", "open_last_output",
                   "prices", "tp", "sol")


def _predicted_set(source: Mapping, slo_key: str, field: str, predictions: dict) -> str:
    """A ``{predict: {...}}`` GPU set (`profile predict`'s options; the SLO defaults to the key as mean
    TPOT ms): the request is checked here, and its profile YAML will be ``outputs/cache/profiles/``
    ``sweep-<hash of the request>.yaml``, which the sweep then treats like any profile file (resume
    hashes included). `predictions` gets {that path: {"field", "request"}}: `predict_gpu_sets`
    predicts the ones not cached yet, as a step of the run after every check.
    """
    from ..config import outputs_dir
    from ..profiles.predict import check_request

    request = source["predict"]
    where = f"{field}.predict"
    if set(source) != {"predict"} or not isinstance(request, dict) or not {"model", "gpus"} <= set(request):
        raise InputError(where, "must be a mapping of profile predict options with at least model and gpus, e.g. "
                                "{model: meta-llama/Meta-Llama-3.1-8B, gpus: [h100_sxm=H100, a100_sxm], backend: vllm}")
    unknown = sorted(set(request) - set(PREDICT_OPTIONS))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}", f"is not a profile predict option; use {', '.join(PREDICT_OPTIONS)}")
    request = dict(request)
    if "slo" not in request:
        if not re.fullmatch(r"[\d.]+", slo_key):
            raise InputError(f"{where}.slo", "is required when the SLO key is not a TPOT in ms, e.g. slo: p99_tpot_ms=60")
        request["slo"] = f"tpot_ms={slo_key}"
    if isinstance(request.get("prices"), str):
        request["prices"] = str(resolve_path(request["prices"]))
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = outputs_dir() / "cache" / "profiles" / f"sweep-{digest}.yaml"
    try:
        check_request(**request)
    except InputError as exc:
        raise _within(where, exc) from None
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
            raise _within(f"{job['field']}.predict", exc) from None
        save_profiles(Path(path), gpus, header=f"Predicted for a sweep spec ({job['field']}) by aiconfigurator-core: "
                                               f"{job['request']}")
        made.append(path)
    return made


def _workload_entry(value, all_workloads: Mapping, field: str):
    """A CSV path, workload-notebook parameters, or {blend: {other workload: weight, ...}}."""
    if isinstance(value, dict) and "blend" in value:
        parts = value["blend"]
        if set(value) != {"blend"} or not isinstance(parts, dict) or not parts:
            raise InputError(f"{field}.blend", "must be a mapping workload name -> weight, e.g. {chat: 0.8, docs: 0.2}")
        for part, weight in parts.items():
            if part not in all_workloads or isinstance(all_workloads[part], dict) and "blend" in all_workloads[part] \
                    or part == field.rsplit(".", 1)[-1]:
                raise InputError(f"{field}.blend.{part}", f"must name another (non-blend) workload of this spec: {sorted(all_workloads)}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
                raise InputError(f"{field}.blend.{part}", f"must be a weight >= 0, got {weight!r}")
        if sum(parts.values()) <= 0:
            raise InputError(f"{field}.blend", "weights must have a positive sum")
        return {"blend": dict(parts)}
    if isinstance(value, dict) and "pad" in value:
        if set(value) != {"pad"} or not isinstance(value["pad"], str):
            raise InputError(f"{field}.pad", "must be a workload CSV path, e.g. {pad: params/workloads/arena-seed.csv}")
        return {"pad": str(resolve_path(value["pad"]))}
    if value is None or not isinstance(value, (str, dict)):
        raise InputError(field, f"must be a workload CSV path or workload parameters, got {value!r}")
    return workload_input(value, field)


def _published(value, workloads, field: str) -> dict | None:
    """{source, savings_pct: {workload: [lowest, highest]}, notes}: published ranges to compare with."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("source"), str) or not isinstance(value.get("savings_pct"), dict):
        raise InputError(field, "must be {source: citation, savings_pct: {workload: [lowest, highest]}, notes: text}")
    for name, pair in value["savings_pct"].items():
        if name not in workloads:
            raise InputError(f"{field}.savings_pct.{name}", f"is not a workload of this spec: {sorted(workloads)}")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair)):
            raise InputError(f"{field}.savings_pct.{name}", f"must be [lowest, highest] in %, got {pair!r}")
    bad = sorted(set(value) - {"source", "savings_pct", "notes"})
    if bad:
        raise InputError(f"{field}.{bad[0]}", "is not a key; use source, savings_pct, notes")
    return {"source": value["source"], "savings_pct": dict(value["savings_pct"]), "notes": str(value.get("notes") or "")}


def _constraint_sets(value, where: str) -> dict[str, dict]:
    """One unlabelled constraints mapping (label `none`), or label -> constraints mapping."""
    from ..solver import Constraints

    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: constraints", "must be a mapping (max_instances, min_instances, utilization_cap, min_total)")
    known = ("max_instances", "min_instances", "utilization_cap", "min_total")
    labelled = bool(value) and not set(value) & set(known) and \
        all(isinstance(v, dict) and set(v) <= set(known) for v in value.values())
    sets = value if labelled else {NO_CONSTRAINTS: value}
    for label, doc in sets.items():
        if labelled and not re.fullmatch(r"[A-Za-z0-9_-]+", str(label)):
            raise InputError(f"{where}: constraints.{label}", "labels may hold letters, digits, - and _ only")
        try:
            Constraints.from_mapping(doc)
        except InputError as exc:
            raise _within(where, exc if not labelled else InputError(f"{label}.{exc.field}", str(exc)[len(exc.field) + 2:])) from None
        except TypeError as exc:
            raise InputError(f"{where}: constraints", f"is not a constraints mapping ({exc})") from None
    return {str(k): dict(v) for k, v in sets.items()}


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
                    raise InputError(f"workloads.{name}.{key}", f"{value[key]} not found; check the path "
                                     "(relative paths are taken from the current folder, then the project root)")
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
        raise _within(where, exc) from None
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

