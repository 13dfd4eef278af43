"""The explorer: widget values in, headline and plotted data out; debouncing; Voilà in headless chromium."""
import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from xml.etree import ElementTree
from pathlib import Path

import numpy as np
import pytest

from melange_nb.config import GPUS_DIR, PROJECT_ROOT, WORKLOADS_DIR
from melange_nb.errors import InputError
from melange_nb.explore import build_explorer, curve_rates, find_profile_sets, find_workloads, slo_label
from melange_nb.profiles import load_gpus
from melange_nb.workload import read_workload

SEED = GPUS_DIR / "llama2-7b-seed.yaml"
SVG = "{http://www.w3.org/2000/svg}"


def single_gpu_cost(gpu: str, rate: float) -> float:
    """Hand rule for one GPU type: ceil(sum over buckets of share x rate / throughput) x $/h."""
    w = read_workload(WORKLOADS_DIR / "arena-seed.csv")
    profile = load_gpus(SEED)[gpu]
    load = (w * rate / profile.tputs).to_numpy().sum()
    return math.ceil(load - 1e-9) * profile.cost


@pytest.fixture
def explorer(tmp_path):
    return build_explorer(rate=4.0, outputs=tmp_path / "outputs")


def test_rate_change_updates_headline_routing_and_curve(explorer):
    first = explorer.view
    assert first.headline.startswith("At 4 req/s: 1×A10G + 1×A100 = $4.68/h")
    assert "A10G-only ($5.05/h)" in first.headline and "A100-only ($7.34/h)" in first.headline
    assert "At 4 req/s" in explorer.headline.value and "arena-seed.csv" in explorer.provenance.value

    view = explorer.update(rate=10.0)
    assert explorer.controls["rate"].value == 10.0 and view.values["rate"] == 10.0
    assert view.headline.startswith("At 10 req/s: ") and "At 10 req/s" in explorer.headline.value
    mix = view.comparison.mix
    assert view.headline.split(" = ")[1].startswith(f"${mix.cost:,.2f}/h")
    # the curve: every policy at rates around 10 (5 to 15 on a step of 1), each single GPU by the hand rule
    assert sorted(view.curve["rate"].unique()) == [float(r) for r in range(5, 16)]
    # the exact mix (the default) with the Mélange ILP as its comparison, and each single GPU type
    assert set(view.curve["policy"]) == {"exact", "melange", "single:A10G", "single:A100"}
    assert (view.curve.query("policy == 'melange'").set_index("rate")["cost_per_hour"]
            >= view.curve.query("policy == 'exact'").set_index("rate")["cost_per_hour"] - 1e-9).all()
    for gpu in ("A10G", "A100"):
        for rate, cost in view.curve.query(f"policy == 'single:{gpu}'")[["rate", "cost_per_hour"]].itertuples(index=False):
            assert cost == pytest.approx(single_gpu_cost(gpu, rate))
    exact = view.curve.query("policy == 'exact'").set_index("rate")["cost_per_hour"]
    singles = view.curve[view.curve.policy.str.startswith("single:")].groupby("rate")["cost_per_hour"].min()
    assert (exact <= singles + 1e-9).all() and exact.is_monotonic_increasing
    # the marker sits on the curve at the current rate, in the figure too
    assert view.marker == (10.0, mix.cost) and exact[10.0] == mix.cost
    svg = ElementTree.fromstring(explorer.curve_out.value[explorer.curve_out.value.index("<svg"):])
    star = svg.findall(f"{SVG}polygon[@class='current']")
    assert len(star) == 1 and star[0].get("data-rate") == "10" and float(star[0].get("data-cost")) == pytest.approx(mix.cost)
    lines = {ln.get("data-policy"): ln.get("points").split() for ln in svg.findall(f"{SVG}polyline")}
    assert set(lines) == {"exact", "melange", "single:A10G", "single:A100"} and all(len(p) == 11 for p in lines.values())
    ys = [float(p.split(",")[1]) for p in lines["exact"]]
    assert ys == sorted(ys, reverse=True)               # cost rises with the rate: y falls on screen
    tables = explorer.routing_out.value.count('<table class="mnb-routing"')
    assert tables == sum(1 for n in mix.counts.values() if n > 0)
    # routing: every bucket with demand is fully routed, to the GPU types in the mix only
    total = sum(view.routing.values())
    w = read_workload(WORKLOADS_DIR / "arena-seed.csv")
    assert np.allclose(total.to_numpy()[w.to_numpy() > 0], 1.0)
    assert set(view.routing) == {g for g, n in mix.counts.items() if n > 0}


def test_gpu_set_change_and_infeasible_quota(explorer):
    view = explorer.update(gpu_names=["A100"], rate=8.0)
    n = math.ceil(single_gpu_cost("A100", 8.0) / 3.67 - 1e-9)
    assert view.headline == f"At 8 req/s: {n}×A100 = ${n * 3.67:,.2f}/h, the same as A100-only (${n * 3.67:,.2f}/h)"
    assert set(view.curve["policy"]) == {"exact", "melange", "single:A100"} and list(view.routing) == ["A100"]
    assert "A10G" not in explorer.headline.value

    view = explorer.update(gpu_names=["A10G", "A100"], max_instances="A100=0,A10G=2")
    assert view.headline.startswith("At 8 req/s: no plan (infeasible") and "max_instances" in view.headline
    assert view.routing == {} and view.marker is None and explorer.routing_out.value == ""
    assert view.curve.query("policy == 'exact'")["cost_per_hour"].isna().all()   # 2 A10G never carry 4+ req/s
    assert "no plan" in explorer.headline.value

    assert "ms after the change" in explorer.timing.value
    view = explorer.update(max_instances="A100=lots")
    assert view.error and view.headline.startswith("Cannot solve: quotas (max instances): expects NAME=COUNT")
    assert view.comparison is None and explorer.curve_out.value == ""
    assert explorer.timing.value == ""          # no stale timing line from the answer before

    view = explorer.update(max_instances="", gpu_names=[])
    assert view.headline == "Cannot solve: GPU types: none is allowed; tick at least one GPU type"


def test_solver_cap_and_blend_with_a_built_workload(tmp_path):
    built = tmp_path / "outputs" / "mine" / "workload.csv"
    built.parent.mkdir(parents=True)
    w = read_workload(WORKLOADS_DIR / "arena-seed.csv")
    flipped = w * 0 + 0.0
    flipped.iloc[0, 0] = 1.0                       # every request in the smallest bucket
    flipped.to_csv(built)
    built.with_suffix(".json").write_text(json.dumps({"source": "hand-made test workload"}))
    (tmp_path / "outputs" / "cache").mkdir()
    flipped.to_csv(tmp_path / "outputs" / "cache" / "x.csv")
    (tmp_path / "outputs" / "cache" / "x.json").write_text("{}")
    point = tmp_path / "outputs" / "sweep" / "point"          # a sweep point's routing.csv + routing.json
    point.mkdir(parents=True)
    (point / "routing.csv").write_text("input_tokens,output_tokens,gpu,share,rate\n")
    (point / "routing.json").write_text(json.dumps({"solver": "exact", "routes": []}))
    offered = find_workloads(tmp_path / "outputs")
    assert offered["mine/workload"] == str(built) and "arena-seed (bundled)" in offered
    assert not any(k.startswith(("cache", "sweep")) for k in offered)

    ex = build_explorer(rate=10.0, outputs=tmp_path / "outputs", gpu_names=["A10G"])
    view = ex.update(blend_with="mine/workload", blend_weight=0.5)
    half = (w * 0.5 + flipped * 0.5)
    load = (half * 10.0 / load_gpus(SEED)["A10G"].tputs).to_numpy().sum()
    assert view.comparison.mix.counts == {"A10G": math.ceil(load)}
    assert "blend 50%" in view.provenance and "hand-made test workload" in view.provenance
    capped = ex.update(utilization_cap=0.5, solver="melange")
    assert capped.comparison.mix.counts == {"A10G": math.ceil(load / 0.5)} and capped.comparison.reference == "melange"


def test_slo_menu_filters_the_profile_sets(tmp_path):
    text = SEED.read_text()
    for ms in (40, 120):
        (tmp_path / f"seed-tpot{ms}.yaml").write_text(text.replace("slo: null", f"slo: {{tpot_ms: {ms}}}")
                                                      .replace("slo: unknown", f"slo: {{tpot_ms: {ms}}}"))
    (tmp_path / "broken.yaml").write_text("gpus: [")
    shutil.copy(SEED, tmp_path / "seed.yaml")
    sets = find_profile_sets(tmp_path)
    assert sets["seed-tpot40"]["slo"] == "mean TPOT <= 40 ms" and "error" in sets["broken"]
    assert slo_label(None) == slo_label("unknown") == "SLO not stated"
    ex = build_explorer(gpus=tmp_path / "seed-tpot40.yaml", gpus_dir=tmp_path, outputs=tmp_path / "none")
    assert list(ex.controls["slo"].options) == ["any SLO", "SLO not stated", "mean TPOT <= 40 ms", "mean TPOT <= 120 ms"]
    ex.controls["slo"].value = "mean TPOT <= 120 ms"     # outside an event loop the change solves at once
    assert ex.controls["profile_set"].value == "seed-tpot120" and ex.view.values["profile_set"] == "seed-tpot120"
    assert "mean TPOT <= 120 ms" in ex.view.provenance and ex.view.headline.startswith("At 4 req/s: 1×A10G + 1×A100")
    with pytest.raises(InputError, match="profile_set: 'seed-tpot40' is not offered"):
        ex.update(profile_set="seed-tpot40")


def test_dragging_the_rate_solves_once_for_the_last_value(tmp_path):
    ex = build_explorer(rate=4.0, outputs=tmp_path, debounce=0.05)
    before = ex.solves

    async def drag():
        for r in np.arange(4.5, 12.5, 0.5):       # 16 slider events, faster than the debounce
            ex.controls["rate"].value = float(r)
        await asyncio.sleep(0.05 * 3)
        while ex._task is not None and not ex._task.done():
            await asyncio.sleep(0.01)

    asyncio.run(drag())
    assert ex.solves == before + 1 and ex.view.values["rate"] == 12.0
    assert ex.view.headline.startswith("At 12 req/s") and ex.view.marker[0] == 12.0


def test_headline_table_has_column_spacing_and_the_menus_fit(explorer):
    """The answer table carries its own cell padding (Voilà's stylesheet gives none); the GPU-profile menu shows
    file names, short enough for the control, and the model and SLO in the line under the headline."""
    html = explorer.headline.value
    assert 'class="dataframe mnb-answer-table"' in html and "table.mnb-answer-table td{padding:3px 18px" in html
    assert "<td>Mélange ILP</td>" in html and "<td>exact mix (reference)</td>" in html
    labels = [label for label, _ in explorer.controls["profile_set"].options]
    assert labels == [v for _, v in explorer.controls["profile_set"].options] and max(map(len, labels)) <= 36


def test_the_run_hint_names_the_port_the_readme_opens():
    nb = json.loads((PROJECT_ROOT / "notebooks" / "00_explore.ipynb").read_text())
    intro = "".join(nb["cells"][0]["source"])
    command = ".venv/bin/voila notebooks/00_explore.ipynb --no-browser --Voila.ip=127.0.0.1 --port=8866"
    assert command in intro and "http://127.0.0.1:8866/" in intro
    assert command in (PROJECT_ROOT / "README.md").read_text()


def test_curve_rates_are_round_and_include_the_rate():
    assert curve_rates(10.0) == [float(r) for r in range(5, 16)]
    assert curve_rates(4.0) == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]
    assert 7.3 in curve_rates(7.3) and min(curve_rates(0.5)) > 0


def test_bad_arguments_name_the_field(tmp_path):
    with pytest.raises(InputError, match="workload: nope.csv not found"):
        build_explorer(workload="nope.csv", outputs=tmp_path)
    with pytest.raises(InputError, match="solver: must be exact or melange"):
        build_explorer(solver="cplex", outputs=tmp_path)
    with pytest.raises(InputError, match=r"gpu_names: unknown GPU type\(s\) \['H100'\]"):
        build_explorer(gpu_names=["H100"], outputs=tmp_path)


# ---------------------------------------------------------------- the served app

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_voila_serves_the_explorer_and_the_rate_control_changes_the_headline(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Debian's chromium is not installed (make browser-deps installs it where apt-get runs as root)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    voila = Path(sys.executable).with_name("voila")
    if not voila.is_file():
        pytest.skip(f"voila is not installed beside {sys.executable}")
    port = _free_port()
    env = {**os.environ, "MELANGE_NB_OUTPUTS": str(tmp_path / "outputs")}
    server = subprocess.Popen([str(voila), "notebooks/00_explore.ipynb", "--no-browser", "--Voila.ip=127.0.0.1",
                               f"--port={port}"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "voila.log", "w"))
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:                                 # server start: until it answers, or fails if voila exits
            try:
                urllib.request.urlopen(url + "api", timeout=1)     # one probe's socket timeout, then probe again
                break
            except urllib.error.HTTPError:          # any HTTP answer (voila says 403 to this path) means it is up
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("voila exited: " + (tmp_path / "voila.log").read_text()[-2000:])
                time.sleep(0.1)
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"]
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=args)
            page = browser.new_page()
            requested = []
            page.on("request", lambda r: requested.append(r.url))
            # Playwright's waits keep a limit (its default is 30 s): a kernel or widget callback that fails shows
            # nothing the page could wait for instead, so without one a failure would hang the suite
            page.goto(url, timeout=120_000)
            headline = page.locator("p.mnb-headline").first
            headline.wait_for(timeout=120_000)     # the kernel starts and solves the first answer
            assert headline.inner_text().startswith("At 4 req/s: 1×A10G + 1×A100 = $4.68/h")
            handle = page.locator(".widget-slider", has_text="Rate (req/s)").locator(".noUi-handle").first
            handle.focus()
            for _ in range(4):                     # 4 steps of 0.5 req/s, debounced into one solve
                page.keyboard.press("ArrowRight")
            page.wait_for_function("() => document.querySelector('p.mnb-headline').innerText.startsWith('At 6 req/s')",
                                   timeout=60_000)
            page.wait_for_function("() => document.querySelector('svg.mnb-curve polygon.current')?.dataset.rate === '6'",
                                   timeout=60_000)        # the curve follows the headline
            text = headline.inner_text()
            fits = page.evaluate("""() => {
                const box = [...document.querySelectorAll('.widget-dropdown')].find(d => d.innerText.includes('GPU profiles'));
                const select = box.querySelector('select');
                const ctx = document.createElement('canvas').getContext('2d');
                ctx.font = getComputedStyle(select).font;
                const widest = Math.max(...[...select.options].map(o => ctx.measureText(o.text).width));
                return [widest, select.clientWidth - 24];      // 24 px: the arrow and the padding
            }""")
            drawn = page.evaluate("[document.querySelectorAll('svg.mnb-curve polyline').length, "
                                  "document.querySelectorAll('table.mnb-routing').length, "
                                  "document.querySelector('svg.mnb-curve polygon.current').dataset.rate]")
            browser.close()
    finally:
        server.terminate()
        server.wait()
    assert text.startswith("At 6 req/s: ") and "$" in text
    assert drawn[0] == 4 and drawn[1] >= 1 and drawn[2] == "6"   # exact, Mélange ILP, two single GPUs; marker at 6
    assert fits[0] <= fits[1], f"the GPU-profiles menu cuts its text off: {fits}"
    outside = [u for u in requested if not u.startswith(f"http://127.0.0.1:{port}/") and not u.startswith("data:")]
    assert not outside, f"the page requested {outside}"          # e.g. Font Awesome from a CDN


@pytest.mark.slow
def test_notebook_runs_headless_and_shows_the_explorer(tmp_path, monkeypatch):
    from melange_nb.run import execute_notebook

    monkeypatch.setenv("MELANGE_NB_OUTPUTS", str(tmp_path / "outputs"))
    nb = json.loads(execute_notebook("00_explore.ipynb", tmp_path, {"rate": 6.0, "gpu_names": ["A10G"]},
                                     html=False).read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] in ("error", "stream")]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_the_bundled_slo_labelled_profile_sets_are_offered_and_solve(tmp_path):
    ex = build_explorer(outputs=tmp_path)
    slos = list(ex.controls["slo"].options)
    assert slos[:2] == ["any SLO", "SLO not stated"] and "mean TPOT <= 40 ms" in slos
    ex.controls["slo"].value = "mean TPOT <= 40 ms"
    offered = [v for _, v in ex.controls["profile_set"].options]
    assert offered and all("40" in name for name in offered)
    view = ex.update(profile_set="llama2-7b-a100-predicted-tpot40")
    assert view.headline.startswith("At 4 req/s: ") and "mean TPOT <= 40 ms" in view.provenance
    assert list(view.comparison.mix.counts) == ["A100"]
    # a profile set on other buckets than the workload: said in words, with the edges that would fit
    view = ex.update(profile_set="llama3.1-8b-tpot40")
    assert view.comparison is None and view.headline.startswith("Cannot solve: workload: its buckets (input 0-25 to")
    assert "--edges 0,25,100,250,500,1000,2000,4000,8000,16000" in view.headline


def test_attainment_line_without_and_with_a_latency_model(tmp_path, explorer):
    """No latency model: one line saying how to add one, no button. With one: a short simulation of the
    current answer after each change, and a button for a longer one."""
    from test_attainment import write_latency_profiles

    assert explorer.view.attainment.startswith("No SLO attainment: GPU type A10G has no latency model; add a `latency:`")
    assert "no latency model" in explorer.attainment.value and explorer.simulate_button.layout.display == "none"
    write_latency_profiles(tmp_path / "seed-latency.yaml")
    ex = build_explorer(gpus=tmp_path / "seed-latency.yaml", gpus_dir=tmp_path, outputs=tmp_path / "none")
    view = ex.update(rate=4.0)
    assert view.attainment.startswith("1×A10G + 1×A100 ($4.68/h) meets TPOT ≤ 14 ms for ")
    quick = view.check.result
    assert len(quick.requests) < 600 and view.check.options["duration_s"] == 75.0    # 300 requests at 4 req/s
    assert "meets TPOT ≤ 14 ms" in ex.attainment.value and not ex.simulate_button.disabled
    assert "SLO attainment" in ex.timing.value
    ex.simulate_long(duration_s=300)
    assert ex.view.check.options["duration_s"] == 300 and len(ex.view.check.result.requests) > 900
    assert "simulated 300 s" in ex.attainment.value and ex.simulate_button.disabled
