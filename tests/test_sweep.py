"""Sweeps end to end: parallel points, a failing point, resume, retry, results table, index.html in a browser."""
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from conftest import page_problems

from melange_nb.cli import main
from melange_nb.config import GPUS_DIR, WORKLOADS_DIR
from melange_nb.errors import InputError
from melange_nb.sweep import collect_results, load_spec, run_sweep

pytestmark = pytest.mark.slow   # papermill kernels and whole sweeps

GOOD = GPUS_DIR / "llama2-7b-seed.yaml"
RATES = [2.0, 4.0, 8.0]


def load_spec_from(doc: dict, tmp: Path) -> dict:
    path = tmp / "spec.yaml"
    path.write_text(json.dumps(doc))   # JSON is YAML
    return load_spec(path)


def spec_with_broken_workload(tmp: Path) -> dict:
    """Arena (a CSV) plus a trace workload whose column does not exist: the workload notebook fails."""
    shutil.copy(WORKLOADS_DIR / "arena-seed.csv", tmp / "arena.csv")
    (tmp / "trace.csv").write_text("in,out\n10,20\n300,40\n")
    return load_spec_from({"name": "t", "rates": RATES, "render": "all",
                           "workloads": {"arena": str(tmp / "arena.csv"),
                                         "broken": {"trace": str(tmp / "trace.csv"), "input_column": "prompt",
                                                    "output_column": "out"}},
                           "gpus": {"seed": str(GOOD)}, "solvers": ["exact", "melange"]}, tmp)


def _first_sweep(tmp):
    spec = spec_with_broken_workload(tmp)
    out = tmp / "out"
    logs = []
    state = run_sweep(spec, out, workers=2, log=logs.append)
    return spec, out, state, logs, tmp


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One sweep shared by the read-only tests (the re-run test changes its inputs, so it makes its own)."""
    return _first_sweep(tmp_path_factory.mktemp("sweep"))


def test_good_points_complete_and_the_broken_workload_is_recorded(sweep):
    spec, out, state, logs, _ = sweep
    status = {k: v["status"] for k, v in state["points"].items()}
    assert sum(s == "done" for s in status.values()) == 3 and sum(s == "failed" for s in status.values()) == 3
    for pid, entry in state["points"].items():
        if entry["workload"] == "broken":
            assert entry["status"] == "failed" and "prompt" in entry["error"], entry
            assert re.search(r"01_workload\.ipynb: cell \d+ \(cell index \d+\) raised", entry["error"]), entry
            assert (out / "failed" / pid / "traceback.txt").is_file() and not (out / pid).exists()
        else:
            assert entry["rendered"] is True
            assert {"02_allocation.ipynb", "02_allocation-shared.html", "allocation.json"} \
                <= {p.name for p in (out / pid).iterdir()}
    assert not list(out.glob(".*.tmp")) and not list((out / "workloads").glob(".*.tmp"))


def test_results_table_has_one_row_per_point_and_policy(sweep):
    _, out, state, _, _ = sweep
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 3 * 4          # 3 done points x (exact, melange, single:A10G, single:A100)
    assert pd.read_csv(out / "results.csv").shape == results.shape
    assert set(results["policy"]) == {"exact", "melange", "single:A10G", "single:A100"}
    assert {"workload", "gpu_set", "slo", "constraints", "slice_factor", "rate", "reference", "mix",
            "cost_per_hour", "savings_pct", "status", "solve_seconds"} <= set(results.columns)
    assert set(results["slo"]) == {"unknown"} and set(results["constraints"]) == {"none"}
    row = results[(results["rate"] == 4.0) & (results["policy"] == "single:A100")].iloc[0]
    exact = results[(results["rate"] == 4.0) & (results["policy"] == "exact")].iloc[0]
    assert (row["n_A100"], row["cost_per_hour"]) == (2, 7.34) and exact["cost_per_hour"] == 4.68
    assert exact["mix"] == "1xA10G + 1xA100"
    assert row["savings_pct"] == pytest.approx((7.34 - 4.68) / 7.34 * 100)
    # the in-process result equals what the point's notebook wrote
    pid = exact["point"]
    alloc = json.loads((out / pid / "allocation.json").read_text())
    assert alloc["policies"]["exact"]["counts"] == {"A10G": 1, "A100": 1}
    # cost never decreases with rate, for every policy
    for _, d in results.groupby("policy"):
        assert d.sort_values("rate")["cost_per_hour"].is_monotonic_increasing


def test_summary_and_index_are_self_contained(sweep):
    _, out, _, _, _ = sweep
    page = (out / "03_sweep_summary-shared.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "median %" in page and "hl-ipython3" not in page
    assert not (out / "03_sweep_summary.html").exists()     # the with-code page is optional, not default
    index = (out / "index.html").read_text()
    assert "data:image/png;base64," in index and "median %" in index and "3 failed" in index
    # the answer first: the headline at the rate where the mix saves most, then the mix and $/h per rate
    head = index[:index.index("<h2>")]
    assert ("over 2–8 req/s (3 rates solved) the exact mix costs 0.0–17.3% less than the cheapest single GPU type. "
            "At 8 req/s: 1×A10G + 2×A100 = $8.35/h, 17.3% below A10G-only ($10.10/h) and 24.2% below A100-only "
            "($11.01/h).") in head
    assert "<td>4</td>\n      <td>1×A10G + 1×A100</td>\n      <td>$4.68/h</td>\n      <td>7.3%</td>\n      <td>36.2%</td>" in head


def test_rerun_skips_done_points_and_retry_reruns_failed(tmp_path):
    spec, out, state, _, tmp = _first_sweep(tmp_path)
    done = [k for k, v in state["points"].items() if v["status"] == "done"]
    stamp = (out / done[0] / "allocation.json").stat().st_mtime_ns
    logs = []
    again = run_sweep(spec, out, workers=2, log=logs.append)
    assert "6 points, 6 already done or failed, solving 0" in "\n".join(logs)
    assert not any("building workload" in line for line in logs)   # a failed build is not retried unasked
    assert (out / done[0] / "allocation.json").stat().st_mtime_ns == stamp
    assert again["points"] == state["points"]
    # an interrupted point: a leftover temporary folder and a pending entry are rebuilt, not trusted
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["points"][done[0]]["status"] = "pending"
    (out / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(out / done[0])
    (out / f".{done[0]}.tmp").mkdir()
    # fix the broken trace and retry the failed points
    (tmp / "trace.csv").write_text("prompt,out\n10,20\n300,40\n")
    logs = []
    final = run_sweep(spec, out, workers=2, retry_failed=True, log=logs.append)
    assert "solving 4 (3 re-run because their inputs changed)" in "\n".join(logs)   # the built workload is new
    assert all(v["status"] == "done" for v in final["points"].values())
    assert not (out / "failed").exists() or not any((out / "failed").iterdir())
    assert len(collect_results(out)) == 6 * 4 and (out / done[0] / "allocation.json").is_file()
    # a changed input file makes its points stale: they are re-solved, the others are kept
    arena = pd.read_csv(tmp / "arena.csv", index_col=0, comment="#")
    arena.iloc[0, 0], arena.iloc[-1, -1] = arena.iloc[0, 0] + arena.iloc[-1, -1], 0.0
    arena.to_csv(tmp / "arena.csv")
    logs = []
    rerun = run_sweep(spec, out, workers=2, render="none", log=logs.append)
    assert "solving 3 (3 re-run because their inputs changed)" in "\n".join(logs)
    assert all(v["status"] == "done" for v in rerun["points"].values())
    assert not (out / done[0]).exists()    # a stale report is removed, not left beside new numbers


def test_a_shared_sweep_folder_names_no_local_folder_and_links_back(sweep):
    """manifest.json, params.json, the executed notebooks and the pages carry paths relative to the sweep
    folder (or the project), never the author's folders; the summary and point pages link back to index.html."""
    from melange_nb.config import PROJECT_ROOT

    _, out, state, _, tmp = sweep
    kept = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".ipynb", ".html", ".csv", ".txt")]
    assert {"manifest.json", "02_allocation.ipynb", "03_sweep_summary.ipynb", "traceback.txt"} <= {p.name for p in kept}
    for path in kept:
        text = path.read_text()
        assert str(tmp) not in text and str(PROJECT_ROOT) not in text and ".tmp" not in text, path
        assert "site-packages" not in text, path
    # a failed point's traceback names project files from the project root, packages from the package on,
    # and the spec's trace (beside the sweep folder) as the manifest does
    tb = next(out.glob("failed/broken__*/traceback.txt")).read_text()
    assert 'File "melange_nb/run.py", line' in tb and 'File "papermill/execute.py", line' in tb, tb
    assert "trace ../trace.csv: has no column(s) ['prompt']" in tb, tb
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["workloads"]["arena"] == "../arena.csv"
    assert manifest["spec"]["workloads"]["broken"]["trace"] == "../trace.csv"
    summary = (out / "03_sweep_summary-shared.html").read_text()
    assert '<a href="index.html">← Sweep index' in summary[:summary.index("mnb-headline")]
    for pid, entry in state["points"].items():
        if entry["status"] == "done" and entry.get("rendered", True):
            page = (out / pid / "02_allocation-shared.html").read_text()
            assert '<a href="../index.html">← Sweep index' in page[:page.index("mnb-headline")], pid


def test_the_quick_form_defaults_to_the_exact_solver_with_the_melange_ilp_beside_it():
    spec = load_spec(None, workload=str(WORKLOADS_DIR / "arena-seed.csv"), gpus=str(GOOD), rates=[1.0], name="q")
    assert spec["solvers"] == ["exact", "melange"]


def test_quick_form_cli_and_bad_specs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)        # a relative output folder, as a user would type it
    out = tmp_path / "quick"
    code = main(["sweep", "--workload", str(WORKLOADS_DIR / "arena-seed.csv"), "--gpus", str(GOOD),
                 "--rates", "3,4,5", "-o", "quick", "-j", "1", "--render", "4", "--solver", "exact",
                 "--slice-factor", "2", "--max-instances", "A100=1", "--utilization-cap", "0.9", "--min-total", "2",
                 "--gpu", "A10G", "--gpu", "A100"])
    assert code == 0, capsys.readouterr().err
    assert (out / "index.html").is_file()
    rendered = [p.name for p in out.iterdir() if p.is_dir() and "__rate" in p.name]
    assert rendered == ["arena-seed__llama2-7b-seed__sf2__rate4"]
    spec = json.loads((out / "manifest.json").read_text())["spec"]
    assert spec["solvers"] == ["exact"] and spec["slice_factors"] == [2] and spec["gpu_names"] == ["A10G", "A100"]
    assert spec["constraints"] == {"none": {"max_instances": {"A100": 1}, "utilization_cap": 0.9, "min_total": 2}}
    results = collect_results(out)
    assert (results.query("policy == 'exact'")["n_A100"] <= 1).all()
    assert (results.groupby("rate")["cost_per_hour"].min() > 0).all()
    for doc, match in (({"rates": [0, 1], "workloads": {"a": "x.csv"}, "gpus": {"g": str(GOOD)}}, "every rate must be a positive"),
                       ({"rates": {"start": 1}, "workloads": {"a": "x.csv"}, "gpus": {"g": str(GOOD)}}, "start, stop and step"),
                       ({"rates": [1], "gpus": {"g": str(GOOD)}}, "workloads: is required"),
                       ({"rates": [1], "workloads": {"a": "x.csv"}, "gpus": {"g": str(GOOD)}, "solver": "x"}, "solver: is not a sweep key"),
                       ({"rates": [1], "workloads": {"a b": "x.csv"}, "gpus": {"g": str(GOOD)}}, "names may hold"),
                       ({"rates": [1], "workloads": {"a": "x.csv"}, "gpus": {"g": str(GOOD)}, "render": [3]}, "not in the sweep's rates")):
        with pytest.raises(InputError, match=match):
            load_spec_from(doc, tmp_path)
    assert main(["sweep", "--workload", "w.csv", "--rates", "1"]) == 2
    assert "--workload/--gpus/--rates: all three are required" in capsys.readouterr().err


def _chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Debian's chromium is not installed (make browser-deps installs it where apt-get runs as root)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    return path, playwright


def test_shared_pages_are_clean_and_small(sweep):
    _, out, state, _, _ = sweep
    pages = [out / "index.html", out / "03_sweep_summary-shared.html",
             *[out / pid / "02_allocation-shared.html" for pid, p in state["points"].items()
               if p["status"] == "done" and p.get("rendered", True)]]
    assert len(pages) >= 3
    for page in pages:
        text = page.read_text()
        if page.name == "index.html":   # failed points quote their error (which may name columns as a list)
            text = re.sub(r"<tr><td>(?:(?!</tr>).)*<td>failed</td>.*?</tr>", "", text, flags=re.S)
            assert not re.search(r"(?<![\w.])/tmp/", re.sub(r"data:image/png;base64,[^\"]+", "", page.read_text()))
        assert page_problems(text) == [], page.name
    for page in pages[2:]:
        assert page.stat().st_size <= 150_000, (page, page.stat().st_size)


def test_pages_in_headless_chromium_offline_show_the_answer_plots_and_no_broken_link(sweep):
    path, playwright = _chromium()
    _, out, state, _, _ = sweep
    point = next(pid for pid, p in sorted(state["points"].items())
                 if p["status"] == "done" and p.get("rendered", True) and p["rate"] == 4.0)
    args = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-domain-reliability"]
    blocked, links, heads = [], [], {}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=args)
        page = browser.new_page()

        def only_files(route):        # the network is off: anything not on disk is refused and recorded
            if route.request.url.startswith(("file:", "data:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        page.route("**/*", only_files)
        for name in ("index.html", "03_sweep_summary-shared.html", f"{point}/02_allocation-shared.html"):
            page.goto((out / name).as_uri())
            head = heads[name] = page.locator(".mnb-headline").first.inner_text()
            assert "req/s:" in head and "$" in head and "/h" in head, (name, head)
            widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
            assert widths and all(w > 0 for w in widths), (name, widths)
            links += page.evaluate("Array.from(document.links).map(a => a.href)")
        browser.close()
    assert "At 4 req/s: 1×A10G + 1×A100 = $4.68/h" in heads[f"{point}/02_allocation-shared.html"]
    assert blocked == []
    assert len(links) >= 6 + 3 * 2
    for href in links:
        assert href.startswith("file:"), href
        target = Path(unquote(urlparse(href).path))
        assert target.is_file(), href


def test_trace_workload_with_relative_paths(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(shared_data / "azure_llm_inference_code_2023.csv", tmp_path / "trace.csv")
    spec = load_spec_from({"name": "rel", "rates": [2], "workloads": {"code": {"trace": "trace.csv", "overflow": "clip"}},
                           "gpus": {"seed": "params/gpus/llama2-7b-seed.yaml"}}, tmp_path)
    state = run_sweep(spec, "out", workers=1, log=lambda m: None)
    assert [p["status"] for p in state["points"].values()] == ["done"]
    meta = json.loads((tmp_path / "out" / "workloads" / "code" / "workload.json").read_text())
    assert meta["requests"] == 8819 and meta["dropped"] == 0 and "trace.csv" in meta["source"]
    page = (tmp_path / "out" / "workloads" / "code" / "01_workload-shared.html").read_text()   # links back to the index
    assert '<a href="../../index.html">← Sweep index' in page[:page.index("mnb-headline")]
