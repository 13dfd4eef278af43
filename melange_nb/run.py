"""Run parameterized notebooks with papermill into ``outputs/<run>/`` and render them to HTML.

A run directory is built under a temporary name and renamed when complete, so ``outputs/`` never
holds a half-written run. Each run gets a ``manifest.json``: parameters, input file hashes,
package versions, git commit, Python version.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from . import schemas
from .config import NOTEBOOKS_DIR, PROJECT_ROOT, outputs_dir
from .errors import InputError, MelangeError
from .files import atomic_write, read_yaml, write_json
from .pages import render_html

KERNEL = "python3"
WORKLOAD_NOTEBOOK = "01_workload.ipynb"
ALLOCATION_NOTEBOOK = "02_allocation.ipynb"
PLAN_NOTEBOOK = "04_time_varying.ipynb"
PACKAGES = ("melange-nb", "papermill", "nbconvert", "pandas", "numpy", "pulp", "highspy", "datasets",
            "transformers", "tokenizers", "matplotlib", "seaborn")
# Allocation parameters and their defaults; a params file may set only these keys (plus run_name).
# `workload` is a workload CSV path, or a mapping of workload-notebook parameters (WORKLOAD_KEYS)
# that builds one first.
ALLOCATION_DEFAULTS: dict[str, Any] = {"workload": None, "gpus": None, "rate": None, "slice_factor": 1,
                                       "solver": ["exact", "melange"], "time_limit": None, "gpu_names": [],
                                       "constraints": {}, "simulate": None, "target_attainment": None,
                                       "index_page": None,   # a sweep sets "../index.html" (the back link)
                                       "simulation_check": None}   # a sweep sets its worker's saved check
WORKLOAD_KEYS = schemas.WORKLOAD_KEYS


class NotebookError(MelangeError):
    """A notebook failed while papermill executed it: `cell_index` is the failing cell's position in
    the notebook (from 0, markdown cells counted), the message also gives its execution count."""

    def __init__(self, message: str, cell_index: int | None = None):
        super().__init__(message)
        self.cell_index = cell_index


def load_params(path: str | Path) -> dict[str, Any]:
    """Read a run's YAML parameters (`schemas.RunParams`: known keys only, every value checked),
    input paths resolved to absolute paths."""
    from .schemas import RunParams, validate

    path = resolve_path(path)
    doc = read_yaml(path, "params file", "params/default.yaml") or {}
    checked = validate(RunParams, doc, where=f"{path.name}:", root=f"params file {path}")
    params = {**ALLOCATION_DEFAULTS, **doc, "gpu_names": checked.gpu_names,
              "simulate": checked.simulate.model_dump() if checked.simulate else None}
    params["workload"] = workload_input(params["workload"], f"{path.name}: workload")
    params["gpus"] = str(resolve_path(params["gpus"]))
    return params


def resolve_path(value: str | Path) -> Path:
    """A path as given (absolute, or from the current folder) if it exists there, else from the project
    root if it exists there (params files say params/...), else from the current folder: a missing file
    is reported where the user's path points (`files.PATH_LOOKUP` says how it was looked up), not
    inside the project."""
    p = Path(value)
    if p.is_absolute() or p.exists():
        return p.resolve()
    in_project = PROJECT_ROOT / p
    return in_project.resolve() if in_project.exists() else p.resolve()


def workload_input(value: str | Mapping[str, Any], field: str) -> str | dict[str, Any]:
    """A params file's `workload`: a CSV path made absolute, or workload-notebook parameters
    (WORKLOAD_KEYS only) with local trace/dataset paths made absolute, since kernels run elsewhere.

    A dataset that is not a local path (a hub name such as lmsys/lmsys-chat-1m) is left as it is;
    a trace sets `dataset` to None unless given.
    """
    if not isinstance(value, Mapping):
        return str(resolve_path(value))
    schemas.validate(schemas.WorkloadParams, value, where=field)
    out = dict(value)
    if out.get("trace"):
        out["trace"] = str(resolve_path(out["trace"]))
        out.setdefault("dataset", None)   # a trace replaces the notebook's default dataset
    if out.get("dataset") and Path(out["dataset"]).exists():
        out["dataset"] = str(Path(out["dataset"]).resolve())
    return out


def new_run_dir(name: str) -> Path:
    """``outputs/<name>-<UTC timestamp>``: a fresh name, so earlier runs are never overwritten."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = outputs_dir() / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.name}.{n}"), n + 1
    return path


def execute_notebook(notebook: str, out_dir: Path, parameters: Mapping[str, Any], *, html: bool = True,
                     code_page: bool = False) -> Path:
    """Execute ``notebooks/<notebook>`` with papermill into `out_dir`; render the shared page
    `<stem>-shared.html` (no code) and, with `code_page`, `<stem>.html` with the code.

    Absolute paths among the parameters are passed relative to `out_dir` (the kernel's cwd), so the
    executed notebook, which papermill keeps with its parameters, names no folder of the author's."""
    import papermill as pm

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook
    try:
        pm.execute_notebook(str(NOTEBOOKS_DIR / notebook), str(executed), parameters=relative_to(parameters, out_dir),
                            kernel_name=KERNEL, cwd=str(out_dir), progress_bar=False,
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])  # no TCP or shutdown-interrupt noise
    except pm.PapermillExecutionError as exc:
        raise NotebookError(f"{notebook}: cell {exc.exec_count} (cell index {exc.cell_index}) raised {exc.ename}: "
                            f"{exc.evalue}".replace("\n", " "), cell_index=exc.cell_index) from exc
    _relative_papermill_paths(executed, out_dir)
    if html:
        stem = executed.with_suffix("")
        render_html(executed, f"{stem}-shared.html", hide_code=True)
        if code_page:
            render_html(executed, f"{stem}.html", hide_code=False)
    return executed


def notebook_parameters(notebook: str) -> list[str]:
    """The parameter names of ``notebooks/<notebook>``'s ``parameters`` cell, as papermill reads them."""
    import papermill as pm

    return list(pm.inspect_notebook(str(NOTEBOOKS_DIR / notebook)))


# A rendered point's files, which a sweep or a script reads back (written by the allocation notebook).
POINT_FILES = ("allocation.json", "savings.csv", "routing.csv", "routing.json", "simulation.json")


def write_point_files(out_dir: str | Path, comparison, simulation: Mapping | None = None) -> list[Path]:
    """Write a point's files: ``allocation.json`` (`Comparison.to_dict`), ``savings.csv``, the reference
    mix's ``routing.csv`` and ``routing.json`` (when it has a routing) and ``simulation.json`` (a
    simulated check's `to_dict`, when one ran)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json(out / "allocation.json", comparison.to_dict()),
             atomic_write(out / "savings.csv", lambda tmp: comparison.savings().to_csv(tmp))]
    mix = comparison.mix
    if mix.routing is not None:
        paths += [atomic_write(out / "routing.csv", lambda tmp: mix.routing.to_csv(tmp, index=False)),
                  write_json(out / "routing.json", mix.routing_config())]
    if simulation is not None:
        paths.append(write_json(out / "simulation.json", simulation))
    return paths


def run_allocation(params: Mapping[str, Any], run_dir: Path | None = None, *, code_pages: bool = False) -> Path:
    """Execute the workload notebook (when `workload` is a mapping) and the allocation notebook
    for `params` into a new run directory; return its path. `code_pages`: also render the
    with-code HTML page of each notebook."""
    run_dir = (Path(run_dir) if run_dir else new_run_dir(str(params.get("run_name") or "run"))).resolve()
    tmp = run_dir.with_name(f".{run_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        nb_params = {k: params[k] for k in notebook_parameters(ALLOCATION_NOTEBOOK) if k in params} \
            | {"output_dir": str(tmp)}
        inputs = [params["gpus"]]
        if isinstance(params["workload"], dict):
            execute_notebook(WORKLOAD_NOTEBOOK, tmp, {**params["workload"], "output_dir": str(tmp)}, code_page=code_pages)
            nb_params["workload"] = str(tmp / "workload.csv")
            inputs += [p for p in [params["workload"].get("trace")] if p]
        else:
            inputs.append(params["workload"])
        execute_notebook(ALLOCATION_NOTEBOOK, tmp, nb_params, code_page=code_pages)
        write_json(tmp / "manifest.json", manifest(params, inputs=inputs, folder=tmp))
        if run_dir.exists():
            raise InputError("run_dir", f"{run_dir} already exists; choose another name")
        tmp.rename(run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_dir


# an absolute POSIX path inside a message (not a URL's //host/path, not a relative a/b)
_EMBEDDED_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:;,'\"()\[\]]+/)+[^\s/:;,'\"()\[\]]+")


def relative_to(value: Any, folder: str | Path) -> Any:
    """`value` with every absolute path in it (a str, or inside dicts (keys too) and lists) made relative: to `folder`
    when inside it (``workload.csv``, ``.``), else to the project root when inside the project
    (``params/gpus/x.yaml``, which `resolve_path` finds from any folder), else to `folder` (``../data/t.csv``);
    an absolute path inside a message (``trace /home/me/t.csv: has no column``) likewise.
    What a shared run folder records must not reveal the author's file system."""
    if isinstance(value, str) and not os.path.isabs(value):   # a message naming a path: that path, made relative
        return _EMBEDDED_PATH.sub(lambda m: relative_to(m.group(0), folder), value) if "/" in value else value
    if isinstance(value, str):
        path, folder = Path(value).resolve(), Path(folder).resolve()
        for root in (folder, PROJECT_ROOT):
            if path == root or root in path.parents:
                return path.relative_to(root).as_posix() or "."
        try:
            return os.path.relpath(path, folder)
        except ValueError:          # another drive (Windows): no relative path exists
            return path.name
    if isinstance(value, Mapping):     # keys too: manifest.json's inputs are {path: sha256}
        return {relative_to(k, folder): relative_to(v, folder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_to(v, folder) for v in value]
    return value


def _relative_papermill_paths(executed: Path, folder: Path) -> None:
    """papermill records where it read and wrote the notebook (``metadata.papermill.input_path``,
    ``output_path``) as absolute paths: made relative as the parameters are (`relative_to`)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if isinstance(meta.get(key), str):
            meta[key] = relative_to(meta[key], folder)
    nbformat.write(nb, executed)


def locate(value: str | Path, folder: str | Path) -> Path:
    """A path recorded by `relative_to` for `folder`, found again: inside `folder`, else `resolve_path`."""
    inside = Path(folder) / value
    return inside.resolve() if inside.exists() else resolve_path(value)


def manifest(params: Mapping[str, Any], inputs=(), *, folder: str | Path | None = None) -> dict[str, Any]:
    """What a run was made from: parameters, input hashes, versions, commit, time. With `folder` (the run
    folder the manifest is written to), paths are relative to it (`relative_to`)."""
    if folder is not None:
        folder = Path(folder).resolve()
        params, inputs = relative_to(params, folder), [(p, relative_to(str(Path(p).resolve()), folder)) for p in inputs]
    else:
        inputs = [(p, str(p)) for p in inputs]
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "params": dict(params),
            "inputs": {name: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p, name in inputs},
            "git_commit": _git_commit(), "python": platform.python_version(), "packages": versions}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None

