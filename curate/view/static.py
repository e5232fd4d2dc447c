"""``curate view RUN_DIR --static report.html``: one self-contained HTML file (stylesheet inline, images as data
URIs, no script, no link out) with the funnel, the first kept rows of every kind and one reject of every reason in
every step, and delivery (export, loss curve, evaluation), to travel with the dataset card: the run folder, the
sources' folders, the pipeline's and the home folder are written as labels (``RUN_DIR``, ``<local>``, ``~``), so no
local path travels."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from curate.io import read_json
from curate.portable import PLACEHOLDER, scrub
from curate.view.html import Html, el, join
from curate.view.pages import ROW_COLUMNS, _cited_chunks, delivery_page, layout, run_page
from curate.view.rowcards import Links, row_card
from curate.view.rows import RowCache
from curate.view.runfolder import RunFolder
from curate.view.server import image_type

SAMPLES = 2  # rows shown of every kind in every step, and rejects of every reason: one


def _samples(run: RunFolder, cache: RowCache) -> Html:
    parts = [el("h2", "samples")]
    for step in run.row_steps():
        if step.folder is None:
            continue
        kept, rejects = cache.kept(step.folder), cache.rejects(step.folder)

        def data_uri(row: dict, kept=kept) -> str:
            data = kept.row(row["_part"], row["_row"], ["image"])["image"]["bytes"]
            return f"data:{image_type(data)};base64,{base64.b64encode(data).decode()}"

        columns = list(dict.fromkeys(c for c in ROW_COLUMNS + kept.columns() if c != "image"))
        rows = [kept.at(i, columns) for i in kept.first_of_each("kind", SAMPLES)] if kept.total else []
        links = Links(image=lambda r, f=data_uri: f(r) if (r.get("image") or {}).get("path") else "",
                      chunks=_cited_chunks(run, rows))
        cards = [row_card(r, f"{step.dirname} row {i + 1}", links) for i, r in enumerate(rows)]
        for reason in rejects.counts():
            cards += [row_card(r.get("row") or {}, f"{step.dirname}/rejects #{r['_reject']}", Links(), reject=r)
                      for r in rejects.page(0, 1, reason).rows]
        parts += [el("h3", f"{step.dirname}: {kept.total:,} kept, {rejects.total:,} rejected"),
                  el("div", *cards, class_="rows")]
    return join(parts)


def local_folders(run: RunFolder) -> dict[str, str]:
    """{local folder: label} for the folders a run's pages can name: the run's, each source's, the pipeline's."""
    ingest = run.path / "01-ingest" / "_stage.json"
    sources = read_json(ingest).get("sources", []) if ingest.is_file() else []
    command = run.path / "command.json"
    pipeline = read_json(command).get("pipeline") if command.is_file() else None
    folders = {str(Path.home()): "~"}
    for path in [s["path"] for s in sources if s.get("path")] + ([pipeline] if pipeline else []):
        path = Path(path)
        folders[str(path if path.is_dir() else path.parent)] = html.escape(PLACEHOLDER)
    return {**folders, str(run.path): "RUN_DIR"}


def write_static(run: RunFolder, out: str | Path) -> Path:
    """Write the run's self-contained summary to ``out``; returns its path."""
    cache = RowCache()
    body = join([run_page(run, static=True), _samples(run, cache), el("h2", "delivery"),
                 delivery_page(run, static=True)])
    out = Path(out)
    out.write_text(scrub(layout(f"run {run.name()}", body, inline_css=True), local_folders(run)), encoding="utf-8")
    return out
