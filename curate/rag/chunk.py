"""``chunk``: split document pages into overlapping retrieval chunks, sized in the embedding model's tokens.

Consumes ``page`` rows (``text``, ``doc_id``, ``page``, ``source``, ``license``, ``provenance``); every other kind
passes through unchanged. Produces ``chunk`` rows: ``text``, ``doc_id``, ``page`` (first page), ``page_end`` (last
page), ``meta`` = {chunk_index, tokens}. A chunk never crosses documents; it may span consecutive pages of one.
Chunk ends are moved back to the last sentence end inside the window when that keeps at least ``min_fill`` of it.
A window whose text repeats one already made for the same pages (a paragraph printed twice) is left out and counted
as ``repeated_chunks``: a chunk's id hashes its document, pages and text, so it would be the same chunk twice.
Batches hold whole documents (``group_by``: a document's pages are never split across batches), so each batch is
chunked on its own, on any executor.

Example::

    - stage: chunk
      size: 200        # tokens of the embedding model (all-MiniLM-L6-v2 reads at most 256)
      overlap: 40
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import Field, model_validator

from curate.schema import make_page
from curate.stage import Stage, StageConfig, rows

_WINDOW_END = re.compile(r"[.!?:;][\"')\]]?\s")  # a chunk may end after a sentence's or a clause's end


class ChunkConfig(StageConfig):
    size: int = Field(default=200, ge=16)
    overlap: int = Field(default=40, ge=0)
    min_fill: float = Field(default=0.6, gt=0, le=1)
    embedding_model: str | None = None  # whose tokenizer measures size; default: the embedded MiniLM

    @model_validator(mode="after")
    def _overlap_smaller(self) -> "ChunkConfig":
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


@dataclass
class _Doc:
    """Pages of one document collected so far: concatenated text and where each page starts."""

    first: dict
    text: str = ""
    page_starts: list[tuple[int, int]] = field(default_factory=list)  # (char offset, page number)

    def add(self, row: dict) -> None:
        if self.text:
            self.text += "\n\n"
        self.page_starts.append((len(self.text), row["page"]))
        self.text += row["text"]

    def page_at(self, offset: int) -> int:
        page = self.page_starts[0][1]
        for start, number in self.page_starts:
            if start > offset:
                break
            page = number
        return page


def windows(offsets: list[tuple[int, int]], text: str, size: int, overlap: int, min_fill: float):
    """(start_char, end_char, n_tokens) spans over tokens with char ``offsets``; ends snap to sentence ends."""
    n, start = len(offsets), 0
    while start < n:
        end = min(start + size, n)
        if end < n:
            floor = start + int(size * min_fill)
            for t in range(end - 1, floor - 1, -1):
                if _WINDOW_END.match(text, offsets[t][1] - 1) or text[offsets[t][1]:offsets[t][1] + 1] == "\n":
                    end = t + 1
                    break
        yield offsets[start][0], offsets[end - 1][1], end - start
        if end >= n:
            return
        start = max(end - overlap, start + 1)


class Chunk(Stage):
    name = "chunk"
    Config = ChunkConfig
    inputs = ("kind", "text", "doc_id", "page", "source", "license", "provenance")
    group_by = ("source", "doc_id")

    def setup(self) -> None:
        from curate.embed import load_embedder

        self.tokenizer = load_embedder(self.config.embedding_model).tokenizer

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        out: list[dict] = []
        doc: _Doc | None = None
        for row in rows(batch):
            if doc is not None and (row["kind"] != "page" or (row["doc_id"], row["source"]) !=
                                    (doc.first["doc_id"], doc.first["source"])):
                out += self._chunks(doc)
                doc = None
            if row["kind"] != "page":
                out.append(row)
                continue
            if doc is None:
                doc = _Doc(row)
            doc.add(row)
        if doc is not None:
            out += self._chunks(doc)
        return {k: [r.get(k) for r in out] for k in batch}

    def _chunks(self, doc: _Doc) -> list[dict]:
        enc = self.tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = [o for o in enc["offset_mapping"] if o[1] > o[0]]
        first = doc.first
        chunks, made = [], set()
        for i, (a, b, n_tokens) in enumerate(windows(offsets, doc.text, self.config.size, self.config.overlap,
                                                     self.config.min_fill)):
            text = doc.text[a:b].strip()
            page, page_end = doc.page_at(a), doc.page_at(max(a, b - 1))
            chunk = make_page(
                text=text, doc_id=first["doc_id"], page=page, page_end=page_end, kind="chunk",
                source=first["source"], license=first["license"], origin=first["provenance"]["origin"],
                revision=first["provenance"]["revision"], meta={"chunk_index": i, "tokens": n_tokens})
            if chunk["id"] in made:
                self.counters["repeated_chunks"] += 1
                continue
            made.add(chunk["id"])
            chunks.append(chunk)
        self.counters["chunks"] += len(chunks)
        return chunks
