"""One row as HTML: its kind's fields (text, conversation, image with caption, CUIs and modality, the cited passages
of a synthesized pair), its provenance, and for a reject its reason and detail. Every value is escaped text."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from curate.schema import COLUMNS
from curate.view.cite import supported
from curate.view.html import Html, el, join

LONG = 4000  # characters of a text shown before it is cut (the cut is said)
# The image rows' meta keys shown: what the picture is and how it was made, never a DICOM header.
IMAGE_META = ("BodyPartExamined", "Rows", "Columns", "PhotometricInterpretation", "window", "frame",
              "deidentification", "image_id", "template")
ROW_COLUMNS = [c for c in COLUMNS if c != "image"] + ["image.path"]  # what a page reads: no image bytes


@dataclass
class Links:
    """How a card links out: the image of a kept row, a cited page's text; chunk texts for citations."""

    image: Callable[[dict], str] | None = None
    source_page: Callable[[str, int], str] | None = None
    chunks: dict[str, str] = field(default_factory=dict)


def cut(value: str | None, limit: int = LONG) -> Html:
    if value is None:
        return Html("")
    if len(value) <= limit:
        return el("span", value, class_="pre")
    return join([el("span", value[:limit], class_="pre"),
                 el("em", f" … {len(value) - limit:,} more characters", class_="cut")])


def _meta(row: dict) -> dict:
    try:
        return json.loads(row.get("meta") or "{}") if isinstance(row.get("meta"), str) else (row.get("meta") or {})
    except ValueError:
        return {"meta": row.get("meta")}


def _pairs(items: list[tuple[str, object]], class_: str = "fields") -> Html:
    return el("dl", *[join([el("dt", k), el("dd", v if isinstance(v, Html) else cut(_plain(v), 600))])
                      for k, v in items if v not in (None, "", [], {})], class_=class_)


def _plain(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def provenance(row: dict, where: str) -> Html:
    p = row.get("provenance") or {}
    span = row.get("page")
    if span is not None and row.get("page_end") not in (None, span):
        span = f"{span}-{row['page_end']}"
    return el("details", el("summary", "provenance"), _pairs([
        ("id", row.get("id")), ("source", row.get("source")), ("licence", row.get("license")),
        ("origin", p.get("origin")), ("revision", p.get("revision")), ("locator", p.get("locator")),
        ("document", row.get("doc_id")), ("page", span), ("in this run", where)]), class_="provenance", open=True)


def conversation(messages: list[dict] | None) -> Html:
    return el("div", *[el("div", el("b", m.get("role", "?")), " ", cut(m.get("content")), class_=f"msg {m.get('role')}")
                       for m in messages or []], class_="conversation")


def citations(row: dict, links: Links) -> Html:
    answer = next((m["content"] for m in reversed(row.get("messages") or []) if m.get("role") == "assistant"), "")
    cited = {links.chunks[c["chunk_id"]] for c in row.get("citations") or [] if c.get("chunk_id") in links.chunks}
    items = []
    for p in supported(answer, row["context"], cited):
        body = [el("mark", s, class_="support") if i == p.support else s for i, s in enumerate(p.sentences)]
        badge = [el("span", "cited", class_="badge cited")] if p.cited else []
        if p.support is not None:
            badge.append(el("span", f"supports {p.share:.0%} of the answer's words", class_="badge"))
        items.append(el("li", el("b", f"[{p.number}] "), *badge, el("div", join(body, " "), class_="pre")))
    refs = []
    for c in row.get("citations") or []:
        pages = c.get("page") if c.get("page_end") in (None, c.get("page")) else f"{c['page']}-{c['page_end']}"
        label = f"{c.get('doc_id')} p. {pages}"
        href = links.source_page(c["doc_id"], c["page"]) if links.source_page and c.get("page") is not None else None
        refs.append(el("li", el("a", label, href=href) if href else label, f" (chunk {c.get('chunk_id')})"))
    return el("div", el("h4", "passages"), el("ol", *items, class_="passages"),
              el("h4", "citations"), el("ul", *refs) if refs else el("p", "none"), class_="cites")


def image_block(row: dict, links: Links) -> Html:
    image = row.get("image") or {}
    src = links.image(row) if links.image and "_part" in row and isinstance(image, dict) else None
    picture = el("img", src=src, alt=image.get("path") or "image", class_="picture", loading="lazy") if src else \
        el("p", f"image not kept with rejects ({image.get('bytes')})" if image else "no image", class_="cut")
    cuis = row.get("cuis") or []
    names = row.get("cui_names") or [None] * len(cuis)
    concept_rows = [el("tr", el("td", el("code", c)), el("td", n if n else el("em", "no name in the mapping")))
                    for c, n in zip(cuis, names)]
    meta = _meta(row)
    return el("div", picture, _pairs([("caption", row.get("caption")), ("modality", row.get("modality")),
                                      ("file", image.get("path"))]),
              el("table", el("tr", el("th", "CUI"), el("th", "name")), *concept_rows, class_="cuis")
              if concept_rows else "",
              _pairs([(k, meta[k]) for k in IMAGE_META if k in meta], "fields small"), class_="imagerow")


def row_card(row: dict, where: str, links: Links, reject: dict | None = None) -> Html:
    """The card of a kept row (``reject`` None) or of a reject record (its ``row`` when the stage saved one)."""
    kind = row.get("kind") or "?"
    head = [el("span", kind, class_=f"kind {kind}"), " ", el("code", row.get("id") or "")]
    body: list = []
    if reject is not None:
        head.insert(0, el("span", reject.get("reason"), class_="badge reason"))
        body.append(_pairs([("reason", reject.get("reason")), ("detail", reject.get("detail")),
                            ("batch", reject.get("batch")), ("source", reject.get("source")),
                            ("locator", reject.get("locator")), ("raw", reject.get("raw"))]))
    if row.get("text") is not None:
        body.append(el("div", cut(row["text"]), class_="text"))
    if kind in ("image", "vqa") or row.get("image"):
        body.append(image_block(row, links))
    if row.get("messages"):
        body.append(conversation(row["messages"]))
    if row.get("reasoning"):
        body.append(el("details", el("summary", "reasoning"), cut(row["reasoning"])))
    if row.get("context"):
        body.append(citations(row, links))
    extra = [(k, v) for k, v in row.items() if k not in COLUMNS and not k.startswith("_")
             and k not in ("context", "citations")]
    if extra:
        body.append(_pairs(extra, "fields small"))
    if kind not in ("image", "vqa") and row.get("meta"):
        body.append(el("details", el("summary", "meta"), cut(json.dumps(_meta(row), indent=1, ensure_ascii=False))))
    if row:
        body.append(provenance(row, where))
    return el("article", el("header", *head), *body, class_="row reject" if reject is not None else "row")
