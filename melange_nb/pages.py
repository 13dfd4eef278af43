"""Shared pages: an executed notebook rendered by nbconvert into a small self-contained HTML page
that opens offline (the ``share-page`` template: no script or stylesheet from a CDN), with the
progress bars and the author's absolute paths taken out and the plots' PNGs shrunk.

`run.execute_notebook` calls `render_html` for every notebook it runs with ``html=True``.
"""
from __future__ import annotations

import re
from pathlib import Path

from .files import write_text

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_PROGRESS = re.compile(r"\r|\d+%\|.*\|")    # tqdm's text bars: carriage returns, "42%|####  |"
_WIDGET = "application/vnd.jupyter.widget-view+json"


def clean_for_sharing(nb, folder: str | Path):
    """An executed notebook ready for a shared page: progress bars (tqdm text on stderr, widget views)
    removed, and absolute paths in the code (papermill's injected parameters) made relative.

    Other stderr output (warnings) stays, so a test can catch it and the cause gets fixed.
    """
    import copy

    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.source = relative_paths(cell.source, folder)
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr" and _PROGRESS.search(out.get("text", "")):
                continue
            if _WIDGET in out.get("data", {}):
                continue
            kept.append(out)
        cell.outputs = kept
    return nb


def relative_paths(text: str, folder: str | Path) -> str:
    """Quoted absolute paths in `text` as readers can use them: relative to `folder` (the page's own
    folder, seen as ``.`` even while it is still a temporary folder) or its parent, else relative
    to the project root, else just the file name."""
    import os

    from .config import PROJECT_ROOT

    folder = Path(folder).resolve()
    final = folder.with_name(re.sub(r"^\.(.*)\.tmp(-\d+)?$", r"\1", folder.name))

    def shorten(match: re.Match) -> str:
        quote, path = match.group(1), Path(match.group(2))
        for base, shown in ((folder, folder), (folder.parent, final)):
            if path == base or base in path.parents:
                rel = os.path.relpath(path, shown if base == folder else final)
                return f"{quote}{rel}{quote}"
        if PROJECT_ROOT in path.parents:
            return f"{quote}{path.relative_to(PROJECT_ROOT)}{quote}"
        return f"{quote}{path.name}{quote}"

    return re.sub(r"""(["'])(/[^"'\n]*)\1""", shorten, text)


def small_png(data: bytes, colours: int = 128) -> bytes:
    """A plot's PNG with a palette of `colours` (on white): about a third of the bytes, no visible change
    for line plots and heatmaps. Keeps shared pages small; the notebooks keep the full images."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if image.mode != "RGB":
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    buf = io.BytesIO()
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    return buf.getvalue() if buf.tell() < len(data) else data


def _small_images(html: str) -> str:
    import base64

    def shrink(match: re.Match) -> str:
        return "data:image/png;base64," + base64.b64encode(small_png(base64.b64decode(match.group(1)))).decode()

    return re.sub(r"data:image/png;base64,([A-Za-z0-9+/=\s]+)", shrink, html)


def render_html(notebook: str | Path, html: str | Path, *, hide_code: bool) -> Path:
    """Render an executed notebook to a small self-contained HTML page that opens offline: images
    embedded as data URIs, no script or stylesheet from a CDN (the ``share-page`` template), no
    progress bars, no absolute paths; `hide_code` leaves out the code and prompts (the shared page)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES_DIR)], template_name="share-page",
                            exclude_input=hide_code, exclude_input_prompt=hide_code,
                            exclude_output_prompt=hide_code, exclude_anchor_links=True)
    nb = clean_for_sharing(nbformat.read(notebook, as_version=4), notebook.parent)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    return write_text(html, _small_images(body))
