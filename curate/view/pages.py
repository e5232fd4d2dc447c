"""The viewer's pages, rendered on the server as HTML strings: the run (funnel and steps), one step's rows (kept or
rejected, filtered, searched, paged), a source page's text, and delivery (export, finetune, compare, evaluate,
ablations)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from urllib.parse import quote, urlencode

import pyarrow.parquet as pq

from curate.io import read_jsonl
from curate.view.charts import funnel, loss_curve
from curate.view.cite import chunk_texts
from curate.view.html import Html, el, join, raw
from curate.view.rowcards import ROW_COLUMNS, Links, row_card
from curate.view.rows import Page, RowCache
from curate.view.runfolder import RunFolder, StepView

PAGE_SIZE = 20


def stylesheet() -> str:
    return resources.files("curate.view").joinpath("static/view.css").read_text()


def layout(title: str, body: Html, inline_css: bool = False) -> str:
    css = el("style", raw(stylesheet())) if inline_css else el("link", rel="stylesheet", href="/static/view.css")
    nav = "" if inline_css else el("nav", el("a", "run", href="/"), " · ", el("a", "delivery", href="/delivery"))
    return "<!doctype html>\n" + el("html", el("head", el("meta", charset="utf-8"), el("title", title), css),
                                    el("body", nav, el("main", el("h1", title), body)), lang="en")


def step_href(dirname: str, **params) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "", 0)})
    return f"/step/{quote(dirname)}" + (f"?{query}" if query else "")


def steps_table(steps: list[StepView], link: bool = True) -> Html:
    head = el("tr", *[el("th", c) for c in ("step", "status", "rows in", "rows out", "dropped (reason: rows)",
                                            "seconds", "tokens")])
    body = []
    for s in steps:
        dropped = join([join([el("a", r, href=step_href(s.dirname, show="rejects", reason=r)) if link and s.folder
                              else r, f": {n:,}"]) for r, n in sorted(s.dropped.items(), key=lambda kv: -kv[1])],
                       ", ") or "-"
        status = s.status + (f" ({s.batches_done} batches finished)" if s.status == "partial" else "")
        name = el("a", s.dirname, href=step_href(s.dirname)) if link and s.folder else s.dirname
        body.append(el("tr", el("td", name), el("td", status, class_=s.status), el("td", f"{s.rows_in:,}", class_="n"),
                       el("td", f"{s.rows_out:,}", class_="n"), el("td", dropped), el("td", f"{s.seconds:,.1f}",
                                                                                          class_="n"),
                       el("td", f"{s.tokens:,}" if s.tokens else "-", class_="n")))
    return el("table", head, *body, class_="steps")


def run_page(run: RunFolder, static: bool = False) -> Html:
    steps = run.row_steps() + run.delivery_steps()
    partial = [s.dirname for s in steps if s.status == "partial"]
    notes = [el("p", run.name() if static else f"{run.path}", class_="path")]
    if partial:
        notes.append(el("p", f"in progress or stopped mid-step: {', '.join(partial)} (finished batches shown)",
                        class_="warn"))
    elif run.report() is None:
        notes.append(el("p", "no report.json yet: the run has not finished", class_="warn"))
    link = None if static else (lambda s: step_href(s.dirname) if s.folder else "/delivery")
    return join([*notes, el("h2", "funnel"), funnel(steps, link), steps_table(steps, link=not static)])


def _pager(page: Page, href) -> Html:
    last = page.offset + len(page.rows)
    shown = f"rows {page.offset + 1:,}–{last:,}" if page.rows else f"no rows from row {page.offset + 1:,}"
    parts = [el("span", f"{shown} of {page.total:,}", class_="count")]
    if href is None:
        return el("div", *parts, class_="pager")
    if page.offset > 0:
        parts.append(el("a", "← previous", href=href(max(page.offset - PAGE_SIZE, 0)), class_="prev"))
    if last < page.total:
        parts.append(el("a", "next →", href=href(last), class_="next"))
    return el("div", *parts, class_="pager")


def step_page(run: RunFolder, cache: RowCache, dirname: str, show: str, reason: str, query: str, offset: int) -> Html:
    step = run.step(dirname)
    kept = cache.kept(step.folder)
    # The rejects' line index is built only when they are shown; the kept tab takes their counts from the stats.
    counts = cache.rejects(step.folder).counts() if show == "rejects" else step.dropped
    tabs = el("div", el("a", f"kept ({kept.total:,})", href=step_href(dirname), class_="tab" + (
        " on" if show == "kept" else "")), el("a", f"rejected ({sum(counts.values()):,})", href=step_href(
            dirname, show="rejects"), class_="tab" + (" on" if show == "rejects" else "")), class_="tabs")
    reasons = el("select", el("option", "any reason", value=""), *[
        el("option", f"{r} ({n:,})", value=r, selected=r == reason) for r, n in counts.items()], name="reason")
    form = el("form", el("input", type="hidden", name="show", value=show), reasons if show == "rejects" else "",
              el("input", type="search", name="q", value=query, placeholder="search text"),
              el("button", "filter", type="submit"), method="get", action=step_href(dirname), class_="filter")
    if show == "rejects":
        page = cache.rejects(step.folder).page(offset, PAGE_SIZE, reason, query)
        cards = [row_card(r.get("row") or {}, f"{dirname}/rejects #{r['_reject']}", Links(), reject=r)
                 for r in page.rows]
    else:
        page = kept.page(offset, PAGE_SIZE, query, ROW_COLUMNS + [c for c in kept.columns() if c not in ROW_COLUMNS
                                                                  and c != "image"])
        links = Links(image=lambda r: f"/image/{quote(dirname)}/{r['_part']}/{r['_row']}",
                      source_page=lambda doc, p: "/source?" + urlencode({"doc": doc, "page": p}),
                      chunks=_cited_chunks(run, page.rows))
        cards = [row_card(r, f"{dirname}/{kept.files[r['_part']].name} row {r['_row']}", links) for r in page.rows]

    def href(o: int) -> str:
        return step_href(dirname, show="rejects" if show == "rejects" else None, reason=reason, q=query, offset=o)

    status = "" if step.status == "done" else el("p", f"partial: {step.batches_done} batches finished so far",
                                                 class_="warn")
    return join([status, tabs, form, _pager(page, href), el("div", *cards, class_="rows"), _pager(page, href)])


def chunk_folder(run: RunFolder) -> Path | None:
    """The folder of the run's chunk step (the rows a synthesized pair cites), if it has one."""
    return next((s.folder for s in run.row_steps() if s.name == "chunk" and s.folder), None)


def _cited_chunks(run: RunFolder, rows: list[dict]) -> dict[str, str]:
    ids = {c["chunk_id"] for r in rows for c in r.get("citations") or [] if c.get("chunk_id")}
    return chunk_texts(chunk_folder(run), ids) if ids else {}


def source_rows(run: RunFolder, doc: str, page: int) -> list[dict]:
    """The ingested page rows of document ``doc``, page ``page`` (doc_id and page columns read first)."""
    import pyarrow.compute as pc

    folder = run.path / "01-ingest"
    found = []
    for f in sorted(folder.glob("part-*.parquet")):
        keys = pq.read_table(f, columns=["doc_id", "page"])
        mask = pc.and_(pc.equal(keys["doc_id"], doc), pc.equal(keys["page"], page))
        hits = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
        if hits:
            found += pq.read_table(f, columns=[c for c in ROW_COLUMNS if c != "image.path"]).take(hits).to_pylist()
    return found


def source_page(run: RunFolder, doc: str, page: int) -> Html:
    rows = source_rows(run, doc, page)
    if not rows:
        return el("p", f"no ingested page {page} of {doc} in 01-ingest", class_="warn")
    origin = (rows[0].get("provenance") or {}).get("origin") or ""
    picture = el("img", src="/pdfpage?" + urlencode({"doc": doc, "page": page}), alt=f"page {page}",
                 class_="pdfpage") if origin.lower().endswith(".pdf") and Path(origin).is_file() else ""
    return join([*[row_card(r, f"01-ingest page {page}", Links()) for r in rows], picture])


def _interval(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    ci = f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if m.get("ci_low") is not None else ""
    return f"{m['value']:.3f}{ci}"


def metrics_table(comparison: dict) -> Html:
    level = comparison.get("bootstrap", {}).get("level", 0.95)
    head = el("tr", *[el("th", c) for c in ("metric", f"base ({level:.0%} CI)", f"tuned ({level:.0%} CI)",
                                            "tuned − base (CI)", "test", "p")])
    rows = [el("tr", el("td", name), el("td", _interval(m.get("a"))), el("td", _interval(m.get("b"))),
               el("td", _interval(m.get("difference"))), el("td", (m.get("test") or {}).get("test", "-")),
               el("td", f"{(m.get('test') or {}).get('p_value', float('nan')):.3g}"))
            for name, m in comparison.get("metrics", {}).items()]
    return el("table", head, *rows, class_="metrics")


ITEM_FIELDS = ("output", "parsed", "correct", "token_f1", "rouge_l", "reference_nll", "score", "error")


def items_table(folder: Path, offset: int, limit: int, href) -> Html:
    """Per item: question and reference, then the base and the tuned model's output and scores side by side."""
    base = read_jsonl(folder / "base" / "predictions.jsonl")
    tuned = {r["id"]: r for r in read_jsonl(folder / "tuned" / "predictions.jsonl")}
    page = Page(base[offset:offset + limit], len(base), offset)

    def side(r: dict | None) -> Html:
        if r is None:
            return el("td", "not scored")
        shown = [(k, r.get(k)) for k in ITEM_FIELDS if r.get(k) is not None]
        return el("td", el("dl", *[join([el("dt", k), el("dd", el("span", v if isinstance(v, str) else
                                                                   json.dumps(v), class_="pre"))])
                                   for k, v in shown], class_="fields"))
    rows = [el("tr", el("td", el("div", r.get("question"), class_="pre"), el("p", el("b", "reference: "),
                                                                           r.get("reference")), class_="q"),
               side(r), side(tuned.get(r["id"])), class_="item") for r in page.rows]
    return join([_pager(page, href), el("table", el("tr", el("th", "item"), el("th", "base"), el("th", "tuned")),
                                        *rows, class_="items")])


def ablation_tables(name: str, result: dict) -> Html:
    ref = result.get("reference")
    vhead = el("tr", *[el("th", c) for c in ("variant", "rows", "rows in", "held-out overlap", "train rows",
                                             "first loss", "last loss")])
    vrows = [el("tr", el("td", v + (" (reference)" if v == ref else "")), el("td", d.get("rows")),
                el("td", d.get("rows_in")), el("td", d.get("held_out_overlap")), el("td", d.get("train_rows")),
                el("td", f"{d['first_loss']:.3f}" if d.get("first_loss") is not None else "-"),
                el("td", f"{d['last_loss']:.3f}" if d.get("last_loss") is not None else "-"))
             for v, d in result.get("variants", {}).items()]
    parts = [el("h3", f"ablation {name}: {result.get('recipe')} ({result.get('model')}), "
                      f"{result.get('max_steps')} steps"), el("table", vhead, *vrows, class_="metrics")]
    for set_name, data in result.get("sets", {}).items():
        models = list(data.get("metrics", {}))
        metrics = sorted({m for v in data.get("metrics", {}).values() for m in v})
        head = el("tr", el("th", "metric"), *[el("th", m) for m in models],
                  *[el("th", f"{m} − {ref}") for m in models if m != ref])
        rows = [el("tr", el("td", metric), *[el("td", _interval(data["metrics"][m].get(metric))) for m in models],
                   *[el("td", _interval(data.get("versus_reference", {}).get(m, {}).get("metrics", {})
                                        .get(metric, {}).get("difference"))) for m in models if m != ref])
                for metric in metrics]
        n = data.get("set", {}).get("n")
        parts += [el("h4", f"{set_name} ({n} items)"), el("table", head, *rows, class_="metrics")]
    return join(parts)


def export_section(run: RunFolder, samples: int = 0) -> Html:
    record, folder = run.record("export"), run.path / "export"
    if record is None:
        return el("p", "no export yet")
    splits = sorted((folder / "data").glob("*.parquet")) if folder.is_dir() else []
    by_split: dict[str, int] = {}
    for f in splits:
        by_split[f.name.split("-")[0]] = by_split.get(f.name.split("-")[0], 0) + pq.ParquetFile(f).metadata.num_rows
    table = el("table", el("tr", el("th", "split"), el("th", "rows")),
               *[el("tr", el("td", k), el("td", f"{v:,}", class_="n")) for k, v in by_split.items()], class_="metrics")
    parts = [el("p", f"licence {record.get('license')}"), table]
    parts += [el("p", w, class_="warn") for w in record.get("warnings") or []]
    for f in splits[:len(by_split)] if samples else []:
        rows = pq.ParquetFile(f).read_row_group(0).slice(0, samples).to_pylist()
        parts.append(el("h4", f"{f.name}: first {len(rows)} rows"))
        parts += [el("div", el("span", json.dumps(r, ensure_ascii=False, indent=1, default=str), class_="pre"),
                     class_="row") for r in rows]
    card = folder / "README.md"
    if card.is_file():
        parts.append(el("details", el("summary", "dataset card (export/README.md)"),
                        el("div", card.read_text(), class_="pre card")))
    return join(parts)


def delivery_page(run: RunFolder, offset: int = 0, static: bool = False) -> Html:
    parts = [el("h2", "export"), export_section(run, samples=2)]
    fine = run.record("finetune")
    history = run.path / "finetune" / "loss_history.json"
    if fine is not None:
        parts += [el("h2", "finetune"), el("p", f"{fine['stats']['rows_in']:,} training rows, "
                                                f"{fine['stats'].get('counters', {}).get('steps', '?')} steps"),
                  loss_curve(json.loads(history.read_text())) if history.is_file() else el("p", "no loss history")]
    compare = run.record("compare")
    if compare is not None:
        parts += [el("h2", "compare: the same questions, before and after"),
                  el("table", el("tr", el("th", "question"), el("th", "base"), el("th", "tuned")),
                     *[el("tr", el("td", a["question"]), el("td", el("span", a["base"], class_="pre")),
                          el("td", el("span", a["tuned"], class_="pre"))) for a in compare.get("answers", [])],
                     class_="items")]
    evaluation = run.record("evaluate")
    if evaluation is not None:
        comparison = evaluation.get("comparison", {})
        parts += [el("h2", f"evaluate: {comparison.get('set')} ({comparison.get('n_paired')} paired items)"),
                  metrics_table(comparison)]
        if (run.path / "evaluate" / "base" / "predictions.jsonl").is_file():
            limit = 10 if static else PAGE_SIZE
            parts.append(items_table(run.path / "evaluate", offset, limit,
                                     None if static else lambda o: f"/delivery?offset={o}"))
    for name, result in run.ablations().items():
        parts += [el("h2", "ablation"), ablation_tables(name, result)]
    if len(parts) == 2 and run.record("export") is None:
        parts = [el("p", "this run has no delivery steps (export, finetune, evaluate) and no ablation")]
    return join(parts)
