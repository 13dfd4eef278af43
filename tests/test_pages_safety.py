"""Every shared page escapes what it did not write itself (issue 20, item 3).

Names carrying `<script>` and `onerror=` go in as GPU names, a profile's model name, a sweep's
published source and notes, a trace's file name and its timestamp column's name. Each page kind
is rendered by the real commands (papermill + nbconvert); the saved HTML must hold no element or
event attribute made from them, and headless chromium (where installed) must open no alert.
"""
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from melange_nb.cli import main
from melange_nb.config import WORKLOADS_DIR

pytestmark = pytest.mark.slow       # papermill kernels

MARK = "alert(7531)"
SCRIPT = f"<script>{MARK}</script>"
IMG = f"<img src=x onerror={MARK}>"
ATTR = f"x\" onerror=\"{MARK}"


class _Live(HTMLParser):
    """Collects markup the payload became: a script whose text, or an attribute whose value, holds MARK."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found, self._tag = [], None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        self.found += [f"<{tag} {k}=...>" for k, v in attrs if MARK in (v or "") or (k.startswith("on") and MARK in k)]

    def handle_data(self, data):
        if self._tag == "script" and MARK in data:
            self.found.append("<script> with the payload")


def live_markup(page: Path) -> list[str]:
    parser = _Live()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def profile(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.yaml"
    path.write_text(yaml.safe_dump({
        "model": SCRIPT, "source": "measured", "notes": [IMG],
        "input_edges": [0, 25, 100, 250, 500, 1000, 2000], "output_edges": [0, 25, 100, 250, 500, 1000, 2000],
        "gpus": {SCRIPT: {"cost": 1.01, "tputs": [[5] * 6] * 6}, ATTR: {"cost": 3.67, "tputs": [[20] * 6] * 6},
                 IMG: {"cost": 2.0, "tputs": [[9] * 6] * 6}}}))
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """02 allocation (a run), 03 summary (a sweep with published notes), 04 time-varying (plan --report)."""
    tmp = tmp_path_factory.mktemp("hostile")
    gpus = profile(tmp)
    (tmp / "run.yaml").write_text(yaml.safe_dump({"workload": str(WORKLOADS_DIR / "arena-seed.csv"),
                                                  "gpus": str(gpus), "rate": 4, "solver": ["exact", "melange"]}))
    (tmp / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "hostile", "rates": [1, 4], "workloads": {"chat": str(WORKLOADS_DIR / "arena-seed.csv")},
        "gpus": {"g": str(gpus)}, "render": "none",
        "published": {"source": SCRIPT, "savings_pct": {"chat": [1, 2]}, "notes": f"{IMG}\n\n{ATTR}"}}))
    trace = tmp / f"{IMG.replace('/', '')}.csv"
    trace.write_text(f"{SCRIPT.replace('/', '')},ContextTokens,GeneratedTokens\n"
                     + "".join(f"2023-11-16T18:{m:02d}:00,{50 + m},{30 + m}\n" for m in range(0, 20)))
    codes = [main(["run", "-p", str(tmp / "run.yaml"), "-o", str(tmp / "run")]),
             main(["sweep", "-p", str(tmp / "sweep.yaml"), "-o", str(tmp / "sweep"), "-j", "1"]),
             main(["plan", "--trace", str(trace), "--timestamp-column", SCRIPT.replace("/", ""), "--gpus", str(gpus),
                   "--report", "-o", str(tmp / "plan")])]
    assert codes == [0, 0, 0]
    found = {"02": tmp / "run" / "02_allocation-shared.html", "03": tmp / "sweep" / "03_sweep_summary-shared.html",
             "04": tmp / "plan" / "04_time_varying-shared.html", "index": tmp / "sweep" / "index.html"}
    return found


def test_saved_pages_hold_no_live_markup_from_input_names(pages):
    for kind, page in pages.items():
        assert page.is_file(), kind
        text = page.read_text(encoding="utf-8")
        assert live_markup(page) == [], kind
        assert "&lt;script&gt;" in text or "&lt;img" in text, kind       # the names are shown, as text


def test_browser_runs_no_script_it_did_not_expect(pages):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Debian's chromium is not installed (make browser-deps installs it where apt-get runs as root)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    dialogs = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--headless", "--disable-gpu"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                   else route.abort())
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for kind, path in pages.items():
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("document.querySelectorAll('img[onerror], [onerror]').length") == 0, kind
        browser.close()
    assert dialogs == []
