"""The allocation notebook runs under papermill into a complete run directory with HTML reports."""
import json
from pathlib import Path

import pytest
from conftest import page_problems

from melange_nb.cli import main
from melange_nb.run import load_params, locate, run_allocation
from melange_nb.config import PROJECT_ROOT

pytestmark = pytest.mark.slow   # papermill kernels and whole sweeps


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def test_default_params_build_the_workload_offline_then_allocate(outputs):
    params = load_params(PROJECT_ROOT / "params" / "default.yaml")
    assert params["workload"]["dataset"] == "synthetic"
    run = run_allocation(params)
    assert run.parent == outputs and run.name.startswith("demo-")
    names = {p.name for p in run.iterdir()}
    assert {"01_workload.ipynb", "01_workload-shared.html", "workload.csv", "workload.json",
            "02_allocation.ipynb", "02_allocation-shared.html", "allocation.json"} <= names
    assert "01_workload.html" not in names and "02_allocation.html" not in names   # with-code pages only on request
    meta = json.loads((run / "workload.json").read_text())
    assert "SYNTHETIC" in meta["source"] and meta["dropped"] > 0
    page = (run / "01_workload-shared.html").read_text()
    assert "Prompt and response lengths" in page and "unanswered user turns" in page and "widget-state" not in page
    assert page.count("data:image/png;base64,") >= 2
    # the answer first: how many requests made it into the histogram, and what was dropped
    kept = f"{meta['in_histogram']:,} of {meta['requests']:,} requests in the histogram"
    assert kept in page[:page.index("<h2")] and f"{meta['dropped_share']:.1%} of {meta['requests']:,} requests dropped" in page
    alloc = (run / "02_allocation-shared.html").read_text()
    assert f"{meta['dropped_share']:.1%} of {meta['requests']:,} requests dropped" in alloc[:alloc.index("<h2")]
    # no simulation asked: one plain line saying how to ask for one, code as <code>, no backticks or paths
    slo = alloc[alloc.index("Will it hold its SLO?"):]
    slo = slo[:slo.index("<h2", 10)] if "<h2" in slo[10:] else slo
    assert "Not simulated: add <code>simulate: {duration_s: 600}</code> to the parameters" in slo
    assert "`" not in slo and ".py" not in slo and "No SLO attainment" not in slo
    for name in ("01_workload-shared.html", "02_allocation-shared.html"):
        assert page_problems((run / name).read_text()) == [], name
        assert (run / name).stat().st_size <= 150_000, name
    alloc = json.loads((run / "allocation.json").read_text())
    assert alloc["status"] == "optimal" and alloc["cost"] > 0


def test_arena_params_run_end_to_end(outputs):
    params = load_params(PROJECT_ROOT / "params" / "arena-seed.yaml")
    run = run_allocation(params, code_pages=True)
    assert run.parent == outputs and run.name.startswith("arena-seed-")
    names = {p.name for p in run.iterdir()}
    assert {"02_allocation.ipynb", "02_allocation.html", "02_allocation-shared.html", "allocation.json",
            "savings.csv", "routing.csv", "routing.json", "manifest.json"} <= names
    assert not [p for p in outputs.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    alloc = json.loads((run / "allocation.json").read_text())
    assert alloc["allocation"] == {"A10G": 1, "A100": 1} and alloc["status"] == "optimal"
    nb = json.loads((run / "02_allocation.ipynb").read_text())
    assert nb["metadata"]["papermill"]["parameters"]["rate"] == 4.0
    full = (run / "02_allocation.html").read_text()
    shared = (run / "02_allocation-shared.html").read_text()
    headline = ("At 4 req/s: 1×A10G + 1×A100 = $4.68/h, 7.3% below A10G-only ($5.05/h) "
                "and 36.2% below A100-only ($7.34/h)")
    for page in (full, shared):
        assert "the mix saves" in page and "A100-only" in page and "$7.34" in page
        assert page.count("data:image/png;base64,") >= 3  # workload, cost efficiency, routing
        assert headline in page[:page.index("<h2")]       # the answer before any section
        assert page_problems(page, with_code=page is full) == []   # the with-code page too: no absolute or .tmp paths
        assert "<script src" not in page and "cdnjs" not in page and "MathJax.Hub" not in page
    assert len(shared.encode()) <= 150_000
    assert "hl-ipython3" in full and "hl-ipython3" not in shared  # highlighted code only in the full report
    manifest = json.loads((run / "manifest.json").read_text())
    # paths relative to the run folder: a shared folder names no folder of the author's
    assert set(manifest["inputs"]) == {"params/workloads/arena-seed.csv", "params/gpus/llama2-7b-seed.yaml"}
    assert locate(manifest["params"]["gpus"], run) == Path(params["gpus"]).resolve()
    assert manifest["packages"]["papermill"]
    for kept in (run / "manifest.json", run / "02_allocation.ipynb"):
        text = kept.read_text()
        assert str(PROJECT_ROOT) not in text and str(outputs) not in text and ".tmp" not in text, kept
    assert nb["metadata"]["papermill"]["parameters"]["output_dir"] == "."


def test_run_into_a_relative_folder(outputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "-p", str(PROJECT_ROOT / "params" / "arena-seed.yaml"), "-o", "rel/run1"]) == 0
    assert json.loads((tmp_path / "rel" / "run1" / "allocation.json").read_text())["cost"] == 4.68
    # one line: the answer, then where the report is
    assert capsys.readouterr().out == ("At 4 req/s: 1×A10G + 1×A100 = $4.68/h, 7.3% below A10G-only ($5.05/h) and "
                                       "36.2% below A100-only ($7.34/h). Report: "
                                       f"{tmp_path / 'rel' / 'run1' / '02_allocation-shared.html'}\n")


def test_constraints_from_params_reach_the_notebook(outputs, tmp_path):
    params = load_params(PROJECT_ROOT / "params" / "arena-seed.yaml")
    params["constraints"] = {"max_instances": {"A100": 0}, "utilization_cap": 0.8}
    params["solver"] = "exact"
    run = run_allocation(params)
    alloc = json.loads((run / "allocation.json").read_text())
    assert alloc["allocation"]["A100"] == 0 and alloc["policies"]["single:A100"]["status"] == "infeasible"
    assert all(v <= 0.8 + 1e-9 for v in alloc["policies"]["exact"]["utilization"].values())
    routing = json.loads((run / "routing.json").read_text())
    assert routing["gpus"]["A10G"]["count"] == alloc["allocation"]["A10G"]
    assert all(set(r["shares"]) == {"A10G"} for r in routing["routes"])


def test_run_with_bad_params_exits_2_and_writes_nothing(outputs, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workload: params/workloads/arena-seed.csv\ngpus: params/gpus/llama2-7b-seed.yaml\nrate: 4\nrte: 5\n")
    assert main(["run", "-p", str(bad)]) == 2
    assert "bad.yaml: rte: is not a parameter" in capsys.readouterr().err
    assert not outputs.exists() or not any(outputs.iterdir())
    bad.write_text("workload: params/workloads/arena-seed.csv\ngpus: params/gpus/llama2-7b-seed.yaml\nrate: 4\n"
                   "constraints: {max_instances: {H100: 2}}\n")
    assert main(["run", "-p", str(bad)]) == 2
    assert "max_instances: names unknown GPU type(s) ['H100']" in capsys.readouterr().err
