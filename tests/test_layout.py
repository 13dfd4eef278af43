"""The package's layout rules: no module reaches into another module's private names."""
import ast
import json
import re
from pathlib import Path

import melange_nb
from melange_nb.config import PROJECT_ROOT

PACKAGE = Path(melange_nb.__file__).resolve().parent


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def reach_ins(source: str, where: str) -> list[str]:
    """`from .x import _name`, `from melange_nb.x import _name` and `x._name` on a melange_nb module `x`."""
    found, modules = [], set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("melange_nb")):
            for alias in node.names:
                if private(alias.name):
                    found.append(f"{where}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("melange_nb"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name) \
                and node.value.id in modules:
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_the_checker_finds_each_kind_of_reach_in():
    source = ("from .solver import _problem, solve\nfrom melange_nb.plan import _covering\nfrom . import hub\n"
              "import melange_nb.sweep as sweep\nhub._reachable()\nsweep._locked\nself._own = 1\n")
    assert sorted(f.split(": ", 1)[1] for f in reach_ins(source, "x")) == [
        "from .solver import _problem", "from melange_nb.plan import _covering", "hub._reachable", "sweep._locked"]


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(PROJECT_ROOT / "bench").glob("*.py")]):
        found += reach_ins(path.read_text(), str(path.relative_to(PROJECT_ROOT)))
    for path in sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            found += [f"{path.name}: {m.group(0)}" for m in
                      re.finditer(r"from melange_nb[\w.]* import [^\n]*\b_[a-z]\w*|melange_nb[\w.]*\._[a-z]\w*", text)]
    assert not found, "\n".join(found)


def test_run_parameters_are_the_allocation_notebooks():
    """run.py's defaults name exactly the allocation notebook's parameters (papermill reads them), and the
    notebook writes a point's files through the package (run.write_point_files), not by hand."""
    from melange_nb.run import ALLOCATION_DEFAULTS, ALLOCATION_NOTEBOOK, notebook_parameters

    assert set(notebook_parameters(ALLOCATION_NOTEBOOK)) == {*ALLOCATION_DEFAULTS, "output_dir"}
    source = (PROJECT_ROOT / "notebooks" / ALLOCATION_NOTEBOOK).read_text()
    assert "write_point_files(output_dir" in source and "allocation.json" not in source.split("output_dir = None")[1]


def test_workload_parameters_are_the_workload_notebooks():
    """The workload notebook's parameters: the workload keys a run or a sweep may give, plus where to write,
    progress bars and the sweep's back link."""
    from melange_nb.run import WORKLOAD_KEYS, WORKLOAD_NOTEBOOK, notebook_parameters

    assert set(notebook_parameters(WORKLOAD_NOTEBOOK)) == {*WORKLOAD_KEYS, "output_dir", "progress", "index_page"}
