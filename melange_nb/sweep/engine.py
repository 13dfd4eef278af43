"""The sweep engine: every point of a spec's grid (workloads x GPU sets x SLOs x constraints x slice
factors x rates) solved in-process, with per-point notebooks only where a person reads them.

How it runs: every input (spec, files, constraints, GPU names, bucket labels) is checked before
anything is written, so a bad spec fails in one line with exit 2. The output folder is locked
(`files.folder_lock`: a second sweep or a plan into it is refused; the lock file lies beside it). Each (workload, GPU set, SLO, constraints, slice factor) problem
is validated and flattened once (`solver.prepare`) and re-solved at every rate by every solver, in
this process (or in a spawned process pool for large grids). The results table, the summary notebook
and ``index.html`` come first; per-point allocation notebooks and HTML are rendered only for the
rates chosen by `render`: by default the rates where the reference mix changes plus the first and
last rate of each problem.

Layout of ``outputs/<sweep>/``: ``manifest.json`` (spec and each point's status), ``workloads/<name>/``
(built workloads), ``<point>/`` for rendered points (notebook, HTML, JSON/CSV), ``simulations/<point>.json``
(each simulated point's attainment check, `saved_check`), ``failed/<point>/``
(traceback and partial notebook, their paths made relative as the manifest's are),
``results.csv``/``results.parquet``, the summary notebook and ``index.html``.

With the spec's `simulate` key, each point's reference plan is simulated right after its solve, in
the same task (so in the worker pool, one point per task; a tqdm bar counts points), and the results
gain attainment and p99 TTFT/TPOT columns (see `spec`). The check is saved (``simulations/<point>.json``)
and a rendered page shows it (the notebook's ``simulation_check``) rather than simulating the plan again.

With `ray` (the spec's ``ray:`` or ``--ray-address``) the points (and their simulations) are solved as
Ray tasks on a cluster (`scale.RayPool`, one more executor behind the pool interface); the driver
records the results as each task finishes, logs the progress, and renders the pages in its own pool.
A task whose node dies is retried by Ray on another node; one that still fails fails its points in
one line.

A re-run skips done points whose inputs (parameters, simulate options and the contents of the workload
and profile files) are unchanged, re-solves the others, and ``retry_failed`` re-runs failed ones. Ctrl-C
stops within seconds: workers end, finished points are recorded, temporary folders are removed.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import os
import re
import shutil
import sysconfig
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from ..errors import InputError, MelangeError, SweepInterrupted
from ..files import FolderLocked, atomic_write, folder_lock, write_json
from ..pools import open_pool, worker_pool, workers_spawning
from ..run import ALLOCATION_NOTEBOOK, WORKLOAD_NOTEBOOK, execute_notebook, manifest, relative_to
from .spec import NO_CONSTRAINTS, Point, check_inputs, grid, profile_file, render_choice, slo_label

SUMMARY_NOTEBOOK = "03_sweep_summary.ipynb"
# Below this many points to solve, spawning worker processes (about 2 s each to import the stack)
# costs more than it saves: solve in this process.
POOL_MIN_POINTS = 300


SweepLocked = FolderLocked     # another sweep (or a plan) holds the output folder


# ---------------------------------------------------------------- running

def run_sweep(spec: Mapping[str, Any], out_dir: str | Path, *, workers: int | None = None,
              retry_failed: bool = False, render=None, html: bool = True, log=print,
              ray: str | bool | None = None) -> dict[str, Any]:
    """Solve every point not yet done with its current inputs, render the chosen points; return the manifest.

    `render`: changes | all | none | a list of rates (default: the spec's `render`). Raises
    `ray` (an address HOST:PORT, or True for RAY_ADDRESS else a local Ray; default: the spec's `ray`)
    solves the points as Ray tasks on a cluster (scale.RayPool); rendering stays in this process's pool.
    Raises `InputError` before writing anything when an input is bad, `SweepLocked` when another sweep
    holds `out_dir`, and `SweepInterrupted` on Ctrl-C (after recording what finished).
    """
    render = spec["render"] if render is None else render_choice(render, spec["rates"], "--render")
    out = Path(out_dir).resolve()   # notebooks run with their own folder as cwd: pass absolute paths
    if out.exists() and not out.is_dir():
        raise InputError("output folder", f"{out} is a file; choose a folder with -o")
    checked = check_inputs(spec)    # predicts the spec's `predict:` GPU sets last, once every check passed
    workers = workers or os.cpu_count() or 1
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, by="sweep"):
        run = _Run(spec, out, workers, retry_failed, render, html, log, checked)
        run.ray = spec.get("ray") if ray is None else ray
        try:
            return run.go()
        except KeyboardInterrupt as exc:
            run.stop_pool()
            run.record()
            _clean_partial(out)
            done = sum(e.get("status") == "done" for e in run.state["points"].values())
            raise SweepInterrupted(f"interrupted: {done} of {len(run.state['points'])} points done and recorded in "
                                   f"{out / 'manifest.json'}; run the same command again to resume") from exc


class _Run:
    """One sweep run's state, so that Ctrl-C at any step can record what finished."""

    def __init__(self, spec, out: Path, workers: int, retry_failed: bool, render, html: bool, log, checked):
        self.spec, self.out, self.workers, self.retry_failed = spec, out, workers, retry_failed
        self.render, self.html, self.log, self.checked = render, html, log, checked
        self.state = _load_manifest(out, spec)
        self.pool: cf.ProcessPoolExecutor | None = None
        self.ray: str | bool | None = None
        self.kept = pd.DataFrame()
        self.new_rows: list[dict] = []

    def go(self) -> dict:
        spec, out, log = self.spec, self.out, self.log
        _clean_partial(out)
        files, broken = _prepare_workloads(spec, out, self.checked["workloads"], log,
                                           self.state.setdefault("workloads", {}), self.retry_failed)
        points = grid(spec)
        hashes = {f: _sha(f) for f in {*files.values(), *(profile_file(spec, p) for p in points)}}
        old = _read_table(out / "results")
        have = set(old["point"]) if not old.empty else set()
        todo, changed = [], 0
        keep_ids = set()
        for p in points:
            entry = self.state["points"].get(p.id, {})
            key = _inputs_key(_point_inputs(spec, p, files), hashes, p.workload in broken)
            fresh = entry.get("inputs") == key
            status = entry.get("status")
            if fresh and (status == "done" and p.id in have or status == "failed" and not self.retry_failed):
                keep_ids.add(p.id)
                continue
            changed += bool(entry) and not fresh
            shutil.rmtree(out / "failed" / p.id, ignore_errors=True)
            shutil.rmtree(out / p.id, ignore_errors=True)
            saved_check(out, p.id).unlink(missing_ok=True)
            self.state["points"][p.id] = {"status": "pending", "inputs": key, **_point_fields(p), "rendered": False}
            todo.append(p)
        self.state["points"] = {p.id: self.state["points"][p.id] for p in points}   # drop points no longer in the spec
        self.kept = old[old["point"].isin(keep_ids)] if not old.empty else old
        _save_manifest(out, self.state)
        log(f"sweep {spec['name']}: {len(points)} points, {len(points) - len(todo)} already done or failed, "
            f"solving {len(todo)}" + (f" ({changed} re-run because their inputs changed)" if changed else ""))
        for name, error in broken.items():
            for p in todo:
                if p.workload == name:
                    self._fail(p, error[0], error[1])
        self._solve([p for p in todo if p.workload not in broken], files)
        results = self.record()
        self._render(results, files)
        self.record()
        if not results.empty:
            execute_notebook(SUMMARY_NOTEBOOK, out, {"sweep_dir": str(out)})
        from ..report import write_index
        write_index(out, results, self.state)
        log(f"wrote {out / 'index.html'}")
        return self.state

    # -- solving

    def _solve(self, todo: list[Point], files) -> None:
        simulated = bool(self.spec.get("simulate"))
        groups: dict[tuple, list[Point]] = {}
        for p in todo:
            groups.setdefault(p.problem, []).append(p)
        tasks = []
        workers, remote = self.workers, bool(self.ray) and bool(todo)
        if remote:      # one more executor behind the same pool interface: Ray tasks on a cluster
            self.pool = open_pool(ray=self.ray)
            workers = self.pool.cpus
            self.log(f"solving {len(todo)} points on {self.pool.description}")
        parallel = remote or (self.workers > 1 and len(todo) >= (2 if simulated else POOL_MIN_POINTS))
        for key, pts in groups.items():
            slo = slo_label(self.spec, pts[0], self.checked["profiles"][profile_file(self.spec, pts[0])])
            task = _solve_task(self.spec, pts[0], files, slo)
            if simulated:     # one point per task: a simulation's cost grows with the rate, so chunks balance badly
                size = 1
            else:
                size = max(1, math.ceil(len(todo) / (workers * 4))) if parallel and workers > 1 else len(pts)
            for i in range(0, len(pts), size):
                tasks.append({**task, "points": [(p.id, p.rate) for p in pts[i:i + size]]})
        start = time.perf_counter()
        bar = _progress(len(todo), "simulating" if simulated else "solving") if simulated else None
        if parallel:
            self.pool = self.pool or worker_pool(min(self.workers, len(tasks)))
            with workers_spawning(self.pool):
                futures = {self.pool.submit(_solve_all, t): t for t in tasks}
            finished = 0
            for fut in cf.as_completed(futures):
                try:
                    self._record_solved(fut.result())
                except Exception as exc:   # a worker that died (BrokenProcessPool, a lost Ray node) or could not return
                    self._fail_task(futures[fut], exc)
                finished += len(futures[fut]["points"])
                if bar is not None:
                    bar.update(len(futures[fut]["points"]))
                if remote:                 # progress, recorded first: a driver lost now keeps what finished
                    self.record()
                    self.log(f"{finished} of {len(todo)} points solved ({time.perf_counter() - start:.1f} s)")
            self.stop_pool()
        else:
            for task in tasks:
                try:
                    for solved in _solve_points(task):
                        self._record_solved([solved])
                        if bar is not None:
                            bar.update(1)
                except Exception as exc:
                    self._fail_task(task, exc)
        if bar is not None:
            bar.close()
        if todo:
            self.log(f"{'solved and simulated' if simulated else 'solved'} {len(todo)} points in "
                     f"{time.perf_counter() - start:.1f} s")

    def _record_solved(self, solved: list) -> None:
        for pid, rows, seconds, error, check in solved:
            entry = self.state["points"][pid]
            if error:
                entry.update(status="failed", error=error[0], seconds=seconds)
                _write_failure(self.out, pid, error[1])
            else:
                if check is not None:     # here, not in the worker: a Ray worker's disk is not this one's
                    write_json(saved_check(self.out, pid), check)
                entry.update(status="done", error=None, seconds=round(seconds, 4))
                self.new_rows.extend(rows)

    def _fail_task(self, task, exc: BaseException) -> None:
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        for pid, _ in task["points"]:
            if self.state["points"][pid]["status"] == "pending":
                self._fail_id(pid, error, traceback.format_exc())

    def _fail(self, p: Point, error: str, tb: str) -> None:
        self._fail_id(p.id, error, tb)

    def _fail_id(self, pid: str, error: str, tb: str) -> None:
        self.state["points"][pid].update(status="failed", error=error, seconds=None)
        _write_failure(self.out, pid, tb)

    def record(self) -> pd.DataFrame:
        """Write the results table and the manifest: done points are those whose rows are in the table."""
        new = pd.DataFrame(self.new_rows)
        results = pd.concat([d for d in (self.kept, new) if not d.empty], ignore_index=True) \
            if not (self.kept.empty and new.empty) else pd.DataFrame()
        if not results.empty:
            counts = [c for c in results.columns if c.startswith("n_")]
            results[counts] = results[counts].fillna(0).astype(int)
            results = results.sort_values(["workload", "gpu_set", "slo", "constraints", "slice_factor", "rate",
                                           "policy"]).reset_index(drop=True)
            _write_table(results, self.out / "results")
        _save_manifest(self.out, self.state)
        return results

    # -- rendering

    def _render(self, results: pd.DataFrame, files) -> None:
        chosen = points_to_render(results, self.render)
        entries = self.state["points"]
        todo = [pid for pid in chosen if entries.get(pid, {}).get("status") == "done"
                and not (entries[pid].get("rendered") and (self.out / pid / "allocation.json").is_file())]
        if not todo:
            return
        self.log(f"rendering {len(todo)} point reports ({self._render_label()}) with {min(self.workers, len(todo))} workers")
        by_id = {p.id: p for p in grid(self.spec)}
        self.pool = worker_pool(min(self.workers, len(todo)))
        with workers_spawning(self.pool):
            futures = {self.pool.submit(render_point, str(self.out), pid, self._page_params(by_id[pid], files),
                                        self.html): pid for pid in todo}
        for fut in cf.as_completed(futures):
            pid = futures[fut]
            try:
                status = fut.result()
            except Exception as exc:   # a worker that died without reporting
                status = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            if status.get("error"):
                entries[pid].update(status="failed", error="report: " + status["error"], rendered=False)
                self.kept = self.kept[self.kept["point"] != pid] if not self.kept.empty else self.kept
                self.new_rows = [r for r in self.new_rows if r["point"] != pid]
                self.log(f"  {pid}: report failed - {status['error']}")
            else:
                entries[pid]["rendered"] = True
        self.stop_pool()

    def _page_params(self, p: Point, files) -> dict:
        """The point's notebook parameters and its worker's saved check (when it was simulated), which the
        page shows instead of simulating the same plan again. Not part of the point's inputs key."""
        check = saved_check(self.out, p.id)
        return {**_notebook_params(self.spec, p, files), "simulation_check": str(check) if check.is_file() else None}

    def _render_label(self) -> str:
        return self.render if isinstance(self.render, str) else "rates " + ", ".join(f"{r:g}" for r in self.render)

    def stop_pool(self) -> None:
        """End the worker processes now (Ctrl-C or done): pending work is cancelled, running work stopped."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.stop()


def points_to_render(results: pd.DataFrame, render) -> list[str]:
    """Point ids whose report to render: every point (`all`), none, the listed rates, or (`changes`)
    per problem the first and last rate and every rate where the reference mix changes its GPU types
    (or has no plan) against the previous rate: counts grow with the rate at nearly every step, which
    a reader does not need a page for; a new type in the mix is what each report is there to show."""
    if results.empty or render == "none":
        return []
    ref = results[results["policy"] == results["reference"]]
    if render == "all":
        return sorted(set(ref["point"]))
    if not isinstance(render, str):
        return sorted(set(ref.loc[ref["rate"].isin(render), "point"]))
    chosen = []
    for _, df in ref.groupby(["workload", "gpu_set", "slo", "constraints", "slice_factor"], sort=True):
        df = df.sort_values("rate")
        counts = [c for c in df.columns if c.startswith("n_")]     # n_<GPU>: GPUs of that type in the mix
        mixes = [frozenset(c[2:] for c in counts if row[c] > 0) if row["mix"] != "none" else row["status"]
                 for _, row in df.iterrows()]
        for i, pid in enumerate(df["point"]):
            if i == 0 or i == len(df) - 1 or mixes[i] != mixes[i - 1]:
                chosen.append(pid)
    return chosen


def _progress(total: int, what: str):
    """A tqdm bar over points (terminal or notebook; off where stderr is not a terminal), or None without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=what, unit="point", disable=None)


def _solve_task(spec, p: Point, files, slo: str) -> dict:
    return {"workload": files[p.workload], "gpus": profile_file(spec, p), "gpu_names": list(spec["gpu_names"]),
            "simulate": spec.get("simulate"), "target_attainment": spec.get("target_attainment"),
            "constraints": spec["constraints"][p.constraints or NO_CONSTRAINTS], "solvers": list(spec["solvers"]),
            "slice_factor": p.slice_factor, "time_limit": spec["time_limit"],
            "fields": {"workload": p.workload, "gpu_set": p.gpus, "slo": slo,
                       "constraints": p.constraints or NO_CONSTRAINTS, "slice_factor": p.slice_factor}}


def _solve_all(task) -> list:
    return list(_solve_points(task))


def _solve_points(task) -> Iterator[tuple[str, list[dict], float, tuple | None, dict | None]]:
    """Prepare one problem once and solve it at each of the task's rates with every solver (and, with
    `simulate`, check the reference plan's attainment).

    Yields (point id, result rows, seconds, None, the check's `to_dict` or None) or
    (point id, [], seconds, (error, traceback), None).
    """
    from ..profiles import load_gpus, select_gpus
    from ..solver import Constraints, compare, prepare
    from ..workload import read_workload

    gpus = select_gpus(load_gpus(task["gpus"]), task["gpu_names"])
    workload = read_workload(task["workload"])
    prepared = prepare(workload, gpus, Constraints.from_mapping(task["constraints"]))
    for pid, rate in task["points"]:
        start = time.perf_counter()
        saved = None
        try:
            cmp = compare(prepared, prepared.gpus, rate, solvers=task["solvers"], slice_factor=task["slice_factor"],
                          time_limit=task["time_limit"], constraints=prepared.constraints)
            rows = _rows(pid, cmp, {**task["fields"], "rate": float(rate)})
            if task.get("simulate"):      # here, in the worker: wherever points run, their simulations run
                from ..attainment import check_plan
                check = check_plan(workload, gpus, rate, cmp.mix, task["simulate"], task.get("target_attainment"),
                                   solver=task["solvers"][0], constraints=prepared.constraints)
                for row in rows:
                    if row["policy"] == cmp.reference:
                        row.update(check.columns())
                saved = check.to_dict()   # what the point's page shows, if it is rendered (saved_check)
        except Exception as exc:
            yield pid, [], time.perf_counter() - start, (" ".join(f"{type(exc).__name__}: {exc}".split())[:500],
                                                         traceback.format_exc()), None
            continue
        yield pid, rows, time.perf_counter() - start, None, saved


def saved_check(out: str | Path, point_id: str) -> Path:
    """``simulations/<point>.json``: a simulated point's attainment check as its worker made it
    (`attainment.PlanCheck.to_dict`), kept for every point so that a page rendered now or on a later
    resume shows the worker's numbers (`attainment.read_check`) instead of simulating again."""
    return Path(out) / "simulations" / f"{point_id}.json"


def _rows(pid: str, cmp, fields: Mapping[str, Any]) -> list[dict]:
    """One results row per policy of a comparison."""
    savings = cmp.savings()["savings_pct"]
    rows = []
    for policy, res in cmp.results.items():
        mix = " + ".join(f"{c}x{g}" for g, c in res.counts.items() if c > 0) if res.has_allocation else "none"
        rows.append({"point": pid, **fields, "reference": cmp.reference, "policy": policy, "mix": mix,
                     **{f"n_{g}": c for g, c in res.counts.items()}, "cost_per_hour": res.cost,
                     "savings_pct": float(savings[policy]), "status": res.status,
                     "solve_seconds": round(res.solve_seconds, 6)})
    return rows


def render_point(out: str, point_id: str, params: dict, html: bool) -> dict:
    """Worker: execute the allocation notebook for one point into a temporary folder, then rename it."""
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
        return {"error": None}
    except Exception as exc:
        _write_failure(out_dir, point_id, traceback.format_exc(), partial=tmp)
        return {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_failure(out: Path, pid: str, tb: str, partial: Path | None = None) -> None:
    """``failed/<pid>/``: the traceback and any partial notebook, with their paths made shareable
    (`_shareable`: the folder is shared with the sweep, so it names no folder of the author's)."""
    failed = out / "failed" / pid
    shutil.rmtree(failed, ignore_errors=True)
    failed.parent.mkdir(parents=True, exist_ok=True)
    if partial is not None and partial.exists():
        partial.rename(failed)
    failed.mkdir(parents=True, exist_ok=True)
    for notebook in failed.glob("*.ipynb"):       # papermill's paths and the failing cell's traceback
        doc = _shareable(json.loads(notebook.read_text(encoding="utf-8")), out)
        notebook.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    (failed / "traceback.txt").write_text(_ANSI.sub("", _shareable(tb, out)), encoding="utf-8")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# An absolute path of two or more parts in a traceback or a message, after a quote, a space, a bracket or a
# colour code: ``File "/x/y.py", line 3``, IPython's ``File /x/y.py:104, in f``, ``trace /x/t.csv: has no``.
_ABSOLUTE_PATH = re.compile(r"""(^|[\s"'(\[=]|\x1b\[[0-9;]*m)(/(?:[^\s/:;,'"()\[\]<>\x1b]+/)+[^\s/:;,'"()\[\]<>\x1b]+)""",
                            re.MULTILINE)
_FRAME_FILE = re.compile(r'(File ")(/[^"\n]+)(?=")')     # Python's own frames, quoted: spaces allowed


def _shareable(value: Any, folder: Path) -> Any:
    """`value` (text, or the strings inside dicts and lists) with every absolute path shortened: from a
    site-packages folder on (``papermill/execute.py``), in the standard library from its top
    (``concurrent/futures/process.py``), else as `run.relative_to` records paths (``melange_nb/run.py``
    for the project, ``../trace.csv`` beside the sweep folder)."""
    if isinstance(value, str):
        value = _FRAME_FILE.sub(lambda m: m.group(1) + _short_path(m.group(2), folder), value)
        return _ABSOLUTE_PATH.sub(lambda m: m.group(1) + _short_path(m.group(2), folder), value)
    if isinstance(value, list):
        return [_shareable(v, folder) for v in value]
    if isinstance(value, dict):
        return {k: _shareable(v, folder) for k, v in value.items()}
    return value


def _short_path(path: str, folder: Path) -> str:
    parts = Path(path).parts
    site = [i for i, part in enumerate(parts) if part in ("site-packages", "dist-packages")]
    if site and site[-1] + 1 < len(parts):
        return "/".join(parts[site[-1] + 1:])
    for lib in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}:
        if path.startswith(lib.rstrip("/") + "/"):
            return path[len(lib.rstrip("/")) + 1:]
    return relative_to(path, folder)


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _inputs_key(inputs: Mapping[str, Any], hashes: Mapping[str, str], broken: bool = False) -> str:
    """What a point's result depends on: its parameters and the contents (`hashes`) of its input files."""
    files = {k: (None if broken else hashes.get(inputs[k])) for k in ("workload", "gpus")}
    doc = json.dumps({"params": inputs, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _point_fields(p: Point) -> dict:
    return {"workload": p.workload, "gpus": p.gpus, "slo": p.slo, "constraints": p.constraints,
            "slice_factor": p.slice_factor, "rate": p.rate}


def _point_inputs(spec, p: Point, files) -> dict:
    return {**_notebook_params(spec, p, files), "workload": files.get(p.workload, p.workload)}


def _notebook_params(spec, p: Point, files) -> dict:
    return {"workload": files.get(p.workload), "gpus": profile_file(spec, p), "rate": p.rate,
            "slice_factor": p.slice_factor, "solver": list(spec["solvers"]), "time_limit": spec["time_limit"],
            "gpu_names": list(spec["gpu_names"]), "constraints": dict(spec["constraints"][p.constraints or NO_CONSTRAINTS]),
            "simulate": spec.get("simulate"), "target_attainment": spec.get("target_attainment"),
            "index_page": "../index.html"}      # the point page links back to the sweep's index


def _prepare_workloads(spec, out: Path, loaded, log, failures: dict, retry_failed: bool
                       ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Workload CSV per name: files as given; parameter mappings built once by the workload notebook;
    blends written from their parts. Returns (files, {name: (error, traceback)} for those that failed).

    `failures` (the manifest's record of failed builds) is updated; a build that failed with the same
    parameters is not retried unless `retry_failed`."""
    from ..workload import blend, blend_provenance, check_same_buckets, read_workload, workload_source, write_workload

    files, broken = {}, {}
    for name, value in spec["workloads"].items():
        if isinstance(value, str):
            files[name] = value
        elif "pad" in value:
            target = out / "workloads" / name / "workload.csv"
            write_workload(loaded[name], target)
            labels = f"{loaded[name].index[-1]} input x {loaded[name].columns[-1]} output tokens"
            write_json(target.with_suffix(".json"), {"source": f"{workload_source(value['pad'])}; padded with "
                       f"empty buckets up to {labels} to meet the GPU profiles (it holds no longer requests)",
                       "file": value["pad"]})
            files[name] = str(target)
        elif "blend" not in value:
            target = out / "workloads" / name
            wanted = relative_to(json.loads(json.dumps(value, default=str)), out)   # as params.json records it
            built = target / "params.json"
            known = failures.get(name, {})
            if not retry_failed and known.get("params") == wanted:
                broken[name] = (known["error"], f"the workload build failed in an earlier run: {known['error']}\n")
                continue
            try:
                if not (target / "workload.csv").is_file() or not built.is_file() or json.loads(built.read_text()) != wanted:
                    log(f"building workload {name} with the workload notebook")
                    tmp = target.with_name(f".{name}.tmp")
                    shutil.rmtree(tmp, ignore_errors=True)
                    try:
                        execute_notebook(WORKLOAD_NOTEBOOK, tmp, {**value, "output_dir": str(tmp),
                                                                "index_page": "../../index.html"})   # back link
                        write_json(tmp / "params.json", wanted)
                        shutil.rmtree(target, ignore_errors=True)
                        tmp.rename(target)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                files[name] = str(target / "workload.csv")
                failures.pop(name, None)
            except Exception as exc:
                broken[name] = (f"workload {name}: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:400],
                                traceback.format_exc())
                failures[name] = {"params": wanted, "error": broken[name][0]}
                log(f"  workload {name} failed: {broken[name][0]}")
    for name, value in spec["workloads"].items():     # blends, once their parts exist
        if not (isinstance(value, dict) and "blend" in value):
            continue
        bad = [k for k in value["blend"] if k in broken]
        if bad:
            broken[name] = (f"workload {name}: its part {bad[0]} failed", broken[bad[0]][1])
            continue
        try:
            parts = {k: read_workload(files[k]) for k in value["blend"]}
            mixed = blend(parts, dict(value["blend"]))
            target = out / "workloads" / name / "workload.csv"
            write_workload(mixed, target)
            write_json(target.with_suffix(".json"), blend_provenance(dict(value["blend"]), files))
            files[name] = str(target)
        except Exception as exc:
            broken[name] = (f"workload {name}: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:400],
                            traceback.format_exc())
    # built workloads meet the profiles only now: check their buckets before the first point
    from ..profiles import load_gpus
    for name, file in files.items():
        if loaded.get(name) is not None or name in broken:
            continue
        try:
            w = read_workload(file)
            for p in {v for g in spec["gpus"].values() for v in ([g] if isinstance(g, str) else g.values())}:
                for gpu in load_gpus(p).values():
                    check_same_buckets(w, gpu.tputs, what=f"GPU profile {Path(p).name} ({gpu.name}) for workload {name}")
        except InputError as exc:
            broken[name] = (f"workload {name}: {exc}", traceback.format_exc())
    return files, broken


def _clean_partial(out: Path) -> None:
    for tmp in [*out.glob(".*.tmp"), *(out / "workloads").glob(".*.tmp")]:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_manifest(out: Path, spec) -> dict:
    path = out / "manifest.json"
    if path.is_file():
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError:
            state = None
        if isinstance(state, dict) and isinstance(state.get("points"), dict):
            state["spec"] = json.loads(json.dumps(spec, default=str))
            return state
    inputs = sorted({*(g for v in spec["gpus"].values() for g in ([v] if isinstance(v, str) else v.values())),
                     *(w for w in spec["workloads"].values() if isinstance(w, str))})
    return {**manifest({"spec": spec}, inputs=inputs), "spec": json.loads(json.dumps(spec, default=str)), "points": {}}


def _save_manifest(out: Path, state) -> None:
    """manifest.json with every path relative to the sweep folder or the project (`run.relative_to`): a
    shared sweep folder names no folder of the author's."""
    saved = relative_to(state, out)
    write_json(out / "manifest.json", saved)
    state.update({k: v for k, v in saved.items() if k != "spec"})   # in memory as on disk (the spec stays absolute)


def _write_table(df: pd.DataFrame, stem: Path) -> None:
    atomic_write(stem.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    atomic_write(stem.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False))


def _read_table(stem: Path) -> pd.DataFrame:
    path = stem.with_suffix(".parquet")
    try:
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    except Exception:   # an unreadable table: every point is solved again
        return pd.DataFrame()


# ---------------------------------------------------------------- results

def savings_vs_published(results: pd.DataFrame, published: Mapping | None) -> pd.DataFrame:
    """Per workload x SLO x GPU set x single-GPU policy: the lowest-highest % the reference mix saves over
    the rates where both have a plan, beside the published range for that workload."""
    singles = results[results["policy"].str.startswith("single:")]
    if singles.empty:
        return pd.DataFrame()
    table = (singles.groupby(["workload", "slo", "gpu_set", "policy"], sort=True)["savings_pct"]
             .agg(["min", "max", "count"]).reset_index())
    table["measured %"] = [f"{lo:.1f} to {hi:.1f}" if n else "no plan: this GPU alone cannot serve the workload"
                           for lo, hi, n in zip(table["min"], table["max"], table["count"])]
    ranges = (published or {}).get("savings_pct", {})
    table["published %"] = [f"{ranges[w][0]:g} to {ranges[w][1]:g}" if w in ranges else "—" for w in table["workload"]]
    table["against"] = table["policy"].str.replace("single:", "", regex=False) + " only"
    return table[["workload", "slo", "gpu_set", "against", "measured %", "count", "published %"]].rename(
        columns={"slo": "SLO", "gpu_set": "GPU set", "count": "rates with both plans"})


def read_sweep(sweep_dir: str | Path) -> tuple[dict, pd.DataFrame] | None:
    """(manifest, results of the done points) of a sweep folder, or None before it has results: what the
    summary notebook shows."""
    out = Path(sweep_dir)
    if not ((out / "results.parquet").is_file() and (out / "manifest.json").is_file()):
        return None
    manifest = json.loads((out / "manifest.json").read_text())
    return manifest, collect_results(out, manifest)


def collect_results(out: str | Path, state: Mapping | None = None, spec: Mapping | None = None) -> pd.DataFrame:
    """The results table of a sweep folder, done points only: one row per point x policy with a column
    per axis (workload, gpu_set, slo, constraints, slice_factor, rate), the reference solver, the policy,
    its mix and counts per GPU type, $/h, savings % of the reference mix against it, status, solve seconds."""
    out = Path(out)
    state = state or json.loads((out / "manifest.json").read_text())
    results = _read_table(out / "results")
    if results.empty:
        return results
    done = {k for k, v in state["points"].items() if v.get("status") == "done"}
    return results[results["point"].isin(done)].reset_index(drop=True)

