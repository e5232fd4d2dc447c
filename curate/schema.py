"""The one record schema that every curate stage reads and writes.

Every row, whatever its kind, has the same columns, so a stage's parquet output always has a known arrow schema
and rows from different sources can be deduplicated, split and exported together. Columns a kind does not use are
null.

Kinds and the columns they fill:

- ``page``  – one page of a document: ``text``, ``doc_id``, ``page`` (1-based).
- ``chunk`` – a piece of a document for retrieval: ``text``, ``doc_id``, ``page``, ``page_end``.
- ``qa``    – a text conversation: ``messages`` ([{role, content}]), optional ``reasoning`` (chain of thought).
- ``image`` – an image with its description: ``image`` (``datasets.Image``), ``caption``, ``cuis``, ``cui_names``,
  ``modality``.
- ``vqa``   – an image with a conversation about it: the ``image`` columns plus ``messages``.

Every row also has ``id`` (a stable hash of its content), ``kind``, ``source`` (catalog name), ``license``,
``provenance`` ({origin, revision, locator}: where exactly it came from) and ``meta`` (a JSON object of
source-specific fields, e.g. MCQ options or de-identified DICOM attributes).

Stages may add columns of their own (e.g. ``context``, ``citations``, scores); they declare them, and the runner
infers their arrow types.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import datasets
import pyarrow as pa

KINDS = ("page", "chunk", "qa", "image", "vqa")

_str = datasets.Value("string")

FEATURES = datasets.Features(
    {
        "id": _str,
        "kind": _str,
        "source": _str,
        "license": _str,
        "provenance": {"origin": _str, "revision": _str, "locator": _str},
        "text": _str,
        "doc_id": _str,
        "page": datasets.Value("int32"),
        "page_end": datasets.Value("int32"),
        "messages": datasets.List({"role": _str, "content": _str}),
        "reasoning": _str,
        "image": datasets.Image(),
        "caption": _str,
        "cuis": datasets.List(_str),
        "cui_names": datasets.List(_str),
        "modality": _str,
        "meta": _str,
    }
)
COLUMNS = tuple(FEATURES)
ARROW_SCHEMA: pa.Schema = FEATURES.arrow_schema

# Columns of a grounded pair (``synth_qa`` writes them): the passages it was written from, numbered as the answer
# cites them, and where each passage comes from. Rows read back from another run (the ``rows`` connector) keep them.
CITATION = pa.struct([("chunk_id", pa.string()), ("doc_id", pa.string()), ("page", pa.int32()),
                      ("page_end", pa.int32())])
GROUNDING_COLUMNS: dict[str, pa.DataType] = {"context": pa.string(), "citations": pa.list_(CITATION)}
GROUNDED_SCHEMA: pa.Schema = pa.schema([*ARROW_SCHEMA, *(pa.field(k, t) for k, t in GROUNDING_COLUMNS.items())])

# The six ROCOv2 modality concepts (UMLS CUI -> modality label).
MODALITY_CUIS = {
    "C0040405": "CT",
    "C1306645": "X-ray",
    "C0024485": "MRI",
    "C0041618": "Ultrasound",
    "C0002978": "Angiography",
    "C0032743": "PET",
}


def content_id(*parts: Any) -> str:
    """A stable 16-hex-digit id from the given content (JSON-canonicalised, bytes hashed as they are)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            h.update(hashlib.sha256(part).digest())
        else:
            h.update(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def _provenance(origin: str, locator: str, revision: str | None) -> dict:
    return {"origin": str(origin), "revision": revision, "locator": str(locator)}


def _meta(meta: dict | None) -> str | None:
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str) if meta else None


def empty_row() -> dict:
    """A row with every schema column set to null."""
    return dict.fromkeys(COLUMNS)


def make_page(
    *, text: str, doc_id: str, page: int, source: str, license: str | None, origin: str,
    revision: str | None = None, kind: str = "page", page_end: int | None = None, meta: dict | None = None,
) -> dict:
    """A ``page`` (or ``chunk``) row; the id hashes doc, page span and text."""
    row = empty_row()
    row.update(
        id=content_id(kind, doc_id, page, page_end, text), kind=kind, source=source, license=license,
        provenance=_provenance(origin, f"page={page}" if page_end in (None, page) else f"pages={page}-{page_end}",
                               revision),
        text=text, doc_id=doc_id, page=page, page_end=page_end, meta=_meta(meta),
    )
    return row


def make_qa(
    *, question: str, answer: str, source: str, license: str | None, origin: str, locator: str,
    revision: str | None = None, reasoning: str | None = None, system: str | None = None, meta: dict | None = None,
) -> dict:
    """A ``qa`` row: optional system turn, the user question and the assistant answer; id hashes the messages."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]
    row = empty_row()
    row.update(
        id=content_id("qa", messages, reasoning), kind="qa", source=source, license=license,
        provenance=_provenance(origin, locator, revision), messages=messages, reasoning=reasoning, meta=_meta(meta),
    )
    return row


def make_image(
    *, image_bytes: bytes, image_name: str, source: str, license: str | None, origin: str, locator: str,
    revision: str | None = None, caption: str | None = None, cuis: list[str] | None = None,
    cui_names: list[str] | None = None, modality: str | None = None,
    question: str | None = None, answer: str | None = None, meta: dict | None = None,
) -> dict:
    """An ``image`` row, or a ``vqa`` row when a question and answer are given; id hashes image bytes and text."""
    messages = None
    if question is not None:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer or ""}]
    kind = "vqa" if messages else "image"
    row = empty_row()
    row.update(
        id=content_id(kind, image_bytes, caption, messages), kind=kind, source=source, license=license,
        provenance=_provenance(origin, locator, revision), image={"bytes": image_bytes, "path": image_name},
        caption=caption, cuis=cuis, cui_names=cui_names, modality=modality, messages=messages, meta=_meta(meta),
    )
    return row


def arrow_schema_for(extra: dict[str, pa.DataType] | None = None) -> pa.Schema:
    """The core schema plus extra stage-declared columns (appended in the given order)."""
    schema = ARROW_SCHEMA
    for name, dtype in (extra or {}).items():
        if name not in schema.names:
            schema = schema.append(pa.field(name, dtype))
    return schema
