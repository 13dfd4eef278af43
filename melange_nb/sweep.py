"""The papermill grid runner: the allocation notebook over rates x workloads x GPU sets x slice factors.

A sweep spec (``params/sweeps/*.yaml``)::

    name: demo
    rates: {start: 1, stop: 12, step: 1}      # or a list [1, 2, 4, 8]
    workloads:                                  # name -> workload CSV, or workload-notebook parameters
      synthetic-chat: {dataset: synthetic}
      arena-seed: params/workloads/arena-seed.csv
    gpus: {llama2-7b: params/gpus/llama2-7b-seed.yaml}   # name -> profile YAML
    solvers: [melange, exact]                   # every point compares all of them; the first is the reference
    slice_factors: [1]
    time_limit: null
    constraints: {}

Layout of ``outputs/<sweep>/``: ``manifest.json`` (spec and each point's status), ``workloads/<name>/``
(built workloads with their report), one folder per completed point (executed notebook, HTML, JSON/CSV),
``failed/<point>/`` (error, traceback, partial notebook), ``results.csv``/``results.parquet``,
the summary notebook and ``index.html``.

Points run in parallel worker processes; only the parent writes the manifest. A point is built
under a temporary name and renamed when complete, so an interrupted run never leaves a
half-written point marked done; a re-run skips done points whose inputs (notebook parameters and
the contents of the workload and profile files) are unchanged, re-runs the others, and
``retry_failed`` re-runs failed ones.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from .errors import InputError, MelangeError
from .files import atomic_write, read_yaml, write_json
from .report import write_index
from .run import (ALLOCATION_NOTEBOOK, WORKLOAD_NOTEBOOK, execute_notebook, manifest, resolve_path,
                  workload_input)

SUMMARY_NOTEBOOK = "03_sweep_summary.ipynb"
SPEC_KEYS = ("name", "rates", "workloads", "gpus", "solvers", "slice_factors", "time_limit", "constraints", "gpu_names")


@dataclass(frozen=True)
class Point:
    """One grid point: a workload, a GPU set, a slice factor and a rate."""

    workload: str
    gpus: str
    slice_factor: int
    rate: float

    @property
    def id(self) -> str:
        return f"{self.workload}__{self.gpus}__sf{self.slice_factor}__rate{self.rate:g}"


def load_spec(path: str | Path | None = None, **quick) -> dict[str, Any]:
    """A sweep spec from YAML, or from the quick form (`workload`, `gpus`, `rates` paths/values)."""
    if path is not None:
        path = resolve_path(path)
        spec = read_yaml(path, "sweep spec", "params/sweeps/demo.yaml") or {}
        where = path.name
    else:
        spec = {"name": quick.get("name") or "sweep", "rates": quick["rates"],
                "workloads": {Path(quick["workload"]).stem: quick["workload"]},
                "gpus": {Path(quick["gpus"]).stem: quick["gpus"]}, "solvers": quick.get("solvers") or ["melange"]}
        where = "sweep"
    if not isinstance(spec, dict):
        raise InputError(where, "must be a YAML mapping")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise InputError(f"{where}: {unknown[0]}", f"is not a sweep key; known: {list(SPEC_KEYS)}")
    for key in ("rates", "workloads", "gpus"):
        if not spec.get(key):
            raise InputError(f"{where}: {key}", "is required")
    spec = {"name": "sweep", "solvers": ["melange"], "slice_factors": [1], "time_limit": None, "constraints": {},
            "gpu_names": [], **spec}
    spec["rates"] = _rates(spec["rates"], f"{where}: rates")
    for key in ("workloads", "gpus"):
        if not isinstance(spec[key], dict):
            raise InputError(f"{where}: {key}", "must be a mapping name -> file (or workload parameters)")
        for name in spec[key]:
            if not str(name).replace("-", "").replace("_", "").isalnum():
                raise InputError(f"{where}: {key}.{name}", "names may hold letters, digits, - and _ only")
    spec["gpus"] = {k: str(resolve_path(v)) for k, v in spec["gpus"].items()}
    spec["workloads"] = {name: workload_input(value, f"{where}: workloads.{name}")
                         for name, value in spec["workloads"].items()}
    if isinstance(spec["solvers"], str):
        spec["solvers"] = [spec["solvers"]]
    for s in spec["solvers"]:
        if s not in ("melange", "exact"):
            raise InputError(f"{where}: solvers", f"unknown solver {s!r}; use melange and/or exact")
    for sf in spec["slice_factors"]:
        if isinstance(sf, bool) or not isinstance(sf, int) or sf < 1:
            raise InputError(f"{where}: slice_factors", f"must be whole numbers >= 1, got {sf!r}")
    return spec


def _rates(value, field: str) -> list[float]:
    if isinstance(value, dict):
        try:
            start, stop, step = (float(value[k]) for k in ("start", "stop", "step"))
        except (KeyError, TypeError, ValueError):
            raise InputError(field, "a range needs numeric start, stop and step, e.g. {start: 1, stop: 12, step: 1}") from None
        if step <= 0 or stop < start:
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


def grid(spec: Mapping[str, Any]) -> list[Point]:
    """Every point of the spec, in a stable order."""
    return [Point(w, g, sf, r) for w, g, sf, r in
            product(spec["workloads"], spec["gpus"], spec["slice_factors"], spec["rates"])]


# ---------------------------------------------------------------- running

def run_sweep(spec: Mapping[str, Any], out_dir: str | Path, *, workers: int | None = None,
              retry_failed: bool = False, html: bool = True, log=print) -> dict[str, Any]:
    """Run every point not yet done with its current inputs; return the manifest.

    Done points are kept unless their parameters or input files changed; failed ones are kept
    unless `retry_failed`.
    """
    out = Path(out_dir).resolve()   # notebooks run with their own folder as cwd: pass absolute paths
    out.mkdir(parents=True, exist_ok=True)
    state = _load_manifest(out, spec)
    _clean_partial(out)
    workload_files = _prepare_workloads(spec, out, log)
    points = grid(spec)
    todo, changed = [], 0
    params = {p.id: _notebook_params(spec, p, workload_files) for p in points}
    hashes = {f: hashlib.sha256(Path(f).read_bytes()).hexdigest()
              for f in {*workload_files.values(), *spec["gpus"].values()}}
    for p in points:
        entry = state["points"].get(p.id, {})
        key = _inputs_key(params[p.id], hashes)
        fresh = entry.get("inputs") == key
        done = entry.get("status") == "done" and fresh and (out / p.id / "allocation.json").is_file()
        if done or (entry.get("status") == "failed" and fresh and not retry_failed):
            continue
        changed += bool(entry) and not fresh
        shutil.rmtree(out / "failed" / p.id, ignore_errors=True)
        state["points"][p.id] = {"status": "pending", "inputs": key, **_point_params(p)}
        todo.append(p)
    _save_manifest(out, state)
    log(f"sweep {spec['name']}: {len(points)} points, {len(points) - len(todo)} already done or failed, "
        f"running {len(todo)} with {workers or os.cpu_count() or 1} workers"
        + (f" ({changed} re-run because their inputs changed)" if changed else ""))
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=ctx) as pool:
        futures = {pool.submit(_run_point, str(out), p.id, params[p.id], html): p for p in todo}
        for fut in cf.as_completed(futures):
            p = futures[fut]
            try:
                status = fut.result()
            except Exception as exc:  # a worker that died without reporting
                status = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": None}
            state["points"][p.id].update(status)
            _save_manifest(out, state)
            log(f"  {p.id}: {status['status']}" + (f" ({status['seconds']:.1f} s)" if status.get("seconds") else "")
                + (f" - {status['error']}" if status.get("error") else ""))
    results = collect_results(out, state, spec)
    if not results.empty:
        _write_table(results, out / "results")
        execute_notebook(SUMMARY_NOTEBOOK, out, {"sweep_dir": str(out)})
    write_index(out, results, state)
    log(f"wrote {out / 'index.html'}")
    return state


def _run_point(out: str, point_id: str, params: dict, html: bool) -> dict:
    """Worker: execute the allocation notebook for one point into a temporary folder, then rename it."""
    start = time.perf_counter()
    out_dir = Path(out)
    tmp = out_dir / f".{point_id}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        execute_notebook(ALLOCATION_NOTEBOOK, tmp, {**params, "output_dir": str(tmp)}, html=html)
        if not (tmp / "allocation.json").is_file():
            raise MelangeError("the notebook finished without writing allocation.json")
        final = out_dir / point_id
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return {"status": "done", "error": None, "seconds": time.perf_counter() - start}
    except Exception as exc:
        failed = out_dir / "failed" / point_id
        shutil.rmtree(failed, ignore_errors=True)
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            tmp.rename(failed)
        failed.mkdir(parents=True, exist_ok=True)
        (failed / "traceback.txt").write_text(traceback.format_exc())
        return {"status": "failed", "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500],
                "seconds": time.perf_counter() - start}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _inputs_key(params: Mapping[str, Any], hashes: Mapping[str, str]) -> str:
    """What a point's result depends on: its notebook parameters and the contents (`hashes`) of its input files."""
    files = {k: hashes[params[k]] for k in ("workload", "gpus")}
    doc = json.dumps({"params": params, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _point_params(p: Point) -> dict:
    return {"workload": p.workload, "gpus": p.gpus, "slice_factor": p.slice_factor, "rate": p.rate}


def _notebook_params(spec, p: Point, workload_files) -> dict:
    return {"workload": workload_files[p.workload], "gpus": spec["gpus"][p.gpus], "rate": p.rate,
            "slice_factor": p.slice_factor, "solver": list(spec["solvers"]), "time_limit": spec["time_limit"],
            "gpu_names": list(spec["gpu_names"]), "constraints": dict(spec["constraints"])}


def _prepare_workloads(spec, out: Path, log) -> dict[str, str]:
    """Workload CSV per name: files as given; parameter mappings built once by the workload notebook."""
    files = {}
    for name, value in spec["workloads"].items():
        if not isinstance(value, dict):
            files[name] = value
            continue
        target = out / "workloads" / name
        wanted = json.loads(json.dumps(value, default=str))
        built = target / "params.json"
        if not (target / "workload.csv").is_file() or not built.is_file() or json.loads(built.read_text()) != wanted:
            log(f"building workload {name} with the workload notebook")
            tmp = target.with_name(f".{name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                execute_notebook(WORKLOAD_NOTEBOOK, tmp, {**value, "output_dir": str(tmp)})
                write_json(tmp / "params.json", wanted)
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        files[name] = str(target / "workload.csv")
    return files


def _clean_partial(out: Path) -> None:
    for tmp in out.glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def _load_manifest(out: Path, spec) -> dict:
    path = out / "manifest.json"
    if path.is_file():
        state = json.loads(path.read_text())
        state["spec"] = json.loads(json.dumps(spec, default=str))
        return state
    inputs = [*spec["gpus"].values(), *(w for w in spec["workloads"].values() if isinstance(w, str))]
    return {**manifest({"spec": spec}, inputs=inputs), "spec": json.loads(json.dumps(spec, default=str)), "points": {}}


def _save_manifest(out: Path, state) -> None:
    write_json(out / "manifest.json", state)


def _write_table(df: pd.DataFrame, stem: Path) -> None:
    atomic_write(stem.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(stem.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False))


# ---------------------------------------------------------------- results

def collect_results(out: str | Path, state: Mapping | None = None, spec: Mapping | None = None) -> pd.DataFrame:
    """One row per done point x policy: workload, GPU set, rate, policy, counts per GPU type, $/h,
    savings % of the reference mix vs that policy, status, solve seconds."""
    out = Path(out)
    state = state or json.loads((out / "manifest.json").read_text())
    rows = []
    for pid, entry in state["points"].items():
        if entry.get("status") != "done":
            continue
        alloc = json.loads((out / pid / "allocation.json").read_text())
        savings = {r["policy"]: r.get("savings_pct") for r in alloc["savings"]}
        for policy, res in alloc["policies"].items():
            rows.append({"point": pid, "workload": entry["workload"], "gpu_set": entry["gpus"],
                         "slice_factor": entry["slice_factor"], "rate": entry["rate"], "reference": alloc["solver"],
                         "policy": policy, **{f"n_{g}": c for g, c in res["counts"].items()},
                         "cost_per_hour": res["cost"], "savings_pct": savings.get(policy),
                         "status": res["status"], "solve_seconds": res["solve_seconds"]})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    count_cols = [c for c in df.columns if c.startswith("n_")]
    df[count_cols] = df[count_cols].fillna(0).astype(int)
    return df.sort_values(["workload", "gpu_set", "slice_factor", "rate", "policy"]).reset_index(drop=True)
