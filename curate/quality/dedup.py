"""``dedup``: drop rows that repeat an earlier row exactly, nearly (MinHash LSH) or in meaning (embeddings).

A ``Reducer``, so it runs on any executor with the same result: ``sketch`` does the expensive part of each batch
anywhere (normalised text, its exact key, shingles, MinHash signatures and LSH band keys, embeddings), then
``consume`` walks the sketches in input order in one place, looking each row up among the rows before it (the LSH
band buckets find the candidates). So the first occurrence is always the one kept, whatever executor ran the
batches: a row is dropped exactly when an earlier row is its duplicate (not "one row per connected component",
which would also drop a row whose only similar rows come after it). Rows are compared across sources (a
synthesized pair repeating a Hub pair is a duplicate) and across batches. Every row seen is remembered, dropped ones
included, so a chain of small edits (A, A', A'') drops both later rows.

What is compared: a conversation's ``field`` (``question``: user turns, ``answer``: assistant turns, ``both``),
a page's or chunk's ``text``. Only rows whose kind is in ``kinds`` take part (default ``page``, ``chunk``, ``qa``:
image rows are told apart by their pixels, not their captions); the others pass untouched (counter
``not_compared``), as do rows without words (counter ``no_text``).

Drop reasons, each with a JSON detail naming the earlier row it repeats (the most similar one; in a chain of edits
that may itself be a dropped row, whose own detail leads on to the kept one):

- ``exact_duplicate``: the same words after lower-casing and removing punctuation -> ``{"duplicate_of": id}``.
- ``near_duplicate``: word-shingle Jaccard similarity >= ``threshold`` with an earlier row -> ``{"duplicate_of": id,
  "jaccard": 0.93}``. Candidates come from MinHash LSH (``num_perm`` hashes; bands and rows chosen for ``threshold`` by
  minimising the LSH false-positive and false-negative areas, the latter weighted ``fn_weight``, 0.8 by default since
  candidates are confirmed anyway); a candidate is confirmed by the exact Jaccard of the shingle sets (``confirm:
  exact``, the default, stores each row's shingles) or by the signature estimate (``confirm: estimate``, stores the
  signatures).
- ``semantic_duplicate`` (``semantic: true``, off by default): embedding cosine >= ``semantic_threshold`` with an
  earlier row -> ``{"duplicate_of": id, "cosine": 0.97}``. Compares each row with all earlier ones (a matrix
  product per batch), fine for some hundred thousand rows.

Rows that carry an image (``vqa`` and ``image`` rows, when ``kinds`` includes them) are compared only with rows of
the same image (its bytes' hash): the same template question on two different CT images is two pairs, the same
question twice on one image is a duplicate. The semantic pass compares rows without images only.

Consumes ``id``, ``kind``, ``messages``, ``text``, ``caption``, ``image``; produces no new columns.

Example::

    - stage: dedup
      field: both
      threshold: 0.7           # Jaccard of 3-word shingles
      shingle_words: 3
      num_perm: 128
      semantic: false
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from curate.embed import embed, load_embedder
from curate.quality.minhash import NearIndex, Sketches
from curate.quality.text import Field as TextField
from curate.quality.text import normalise, row_text
from curate.stage import DROP, DROP_DETAIL, Reducer, StageConfig, rows


class DedupConfig(StageConfig):
    field: TextField = "both"
    kinds: list[str] = ["page", "chunk", "qa"]
    exact: bool = True
    near: bool = True
    threshold: float = Field(0.7, gt=0, le=1)
    shingle_words: int = Field(3, ge=1, le=16)
    num_perm: int = Field(128, ge=16, le=1024)
    fn_weight: float = Field(0.8, gt=0, lt=1)
    confirm: Literal["exact", "estimate"] = "exact"
    seed: int = 1
    semantic: bool = False
    semantic_threshold: float = Field(0.95, gt=0, le=1)
    model: str | None = None


class Embeddings:
    """A growing matrix of unit vectors (capacity doubles as rows are appended)."""

    def __init__(self):
        self._data: np.ndarray | None = None
        self.size = 0

    @property
    def matrix(self) -> np.ndarray:
        return self._data[: self.size] if self._data is not None else np.zeros((0, 0), dtype=np.float32)

    def append(self, vectors: np.ndarray) -> None:
        if self._data is None:
            self._data = np.empty((max(1024, len(vectors)), vectors.shape[1]), dtype=np.float32)
        if self.size + len(vectors) > len(self._data):
            grown = np.empty((max(2 * len(self._data), self.size + len(vectors)), self._data.shape[1]), np.float32)
            grown[: self.size] = self.matrix
            self._data = grown
        self._data[self.size: self.size + len(vectors)] = vectors
        self.size += len(vectors)


@dataclass
class DedupSketch:
    """One batch prepared for lookup: its ids, each row's compared text (None: takes no part) and scope (its image's
    hash, or None), exact keys, MinHash sketches of the rows with text (``present``: their positions) and, with
    ``semantic``, their embeddings."""

    ids: list[str]
    texts: list[str | None]
    scopes: list[bytes | None]
    keys: list[bytes | None]
    present: list[int]
    near: Sketches | None
    vectors: np.ndarray | None


class Dedup(Reducer):
    name = "dedup"
    Config = DedupConfig
    inputs = ("id", "kind", "messages", "text", "caption", "image")

    def setup(self) -> None:
        self._model = load_embedder(self.config.model) if self.config.semantic else None

    def _index(self) -> NearIndex:
        c = self.config
        return NearIndex(c.threshold, c.num_perm, c.shingle_words, c.seed, c.confirm, c.fn_weight)

    def sketch(self, batch: dict[str, list]) -> DedupSketch:
        row_list = rows(batch)
        texts = self._texts(row_list)
        scopes = [_image_hash(r) if t else None for r, t in zip(row_list, texts)]
        present = [i for i, t in enumerate(texts) if t]
        keys = [hashlib.blake2b((scope or b"") + t.encode(), digest_size=16).digest() if t else None
                for t, scope in zip(texts, scopes)]
        near = self._index().sketch([texts[i] for i in present]) if self.config.near and present else None
        vectors = embed([texts[i] for i in present], self._model) if self.config.semantic and present else None
        return DedupSketch(list(batch["id"]), texts, scopes, keys, present, near, vectors)

    def begin(self) -> None:
        self._exact: dict[bytes, str] = {}
        self._near: dict[bytes | None, tuple[NearIndex, list[str]]] = {}  # scope -> its index and the ids in it
        self._embeddings = Embeddings()
        self._embedding_ids: list[str] = []

    def consume(self, sketch: DedupSketch) -> dict[str, list]:
        n = len(sketch.texts)
        reasons, details = [None] * n, [None] * n
        steps = [(self.config.exact, self._exact_pass), (self.config.near, self._near_pass),
                 (self.config.semantic, self._semantic_pass)]
        for enabled, step in steps:
            todo = [i for i in range(n) if sketch.texts[i] and not reasons[i]]
            if enabled and todo:
                step(todo, sketch, reasons, details)
        return {DROP: reasons, DROP_DETAIL: details}

    def _texts(self, row_list: list[dict]) -> list[str | None]:
        """The compared text of each row, None for rows that take no part."""
        out = []
        for row in row_list:
            if row["kind"] not in self.config.kinds:
                self.counters["not_compared"] += 1
                out.append(None)
                continue
            text = normalise(row_text(row, self.config.field))
            self.counters["no_text"] += not text
            out.append(text or None)
        return out

    def _exact_pass(self, todo, sketch: DedupSketch, reasons, details) -> None:
        for i in todo:
            key = sketch.keys[i]
            if key in self._exact:
                reasons[i], details[i] = "exact_duplicate", json.dumps({"duplicate_of": self._exact[key]})
            else:
                self._exact[key] = sketch.ids[i]

    def _near_pass(self, todo, sketch: DedupSketch, reasons, details) -> None:
        position = {row: j for j, row in enumerate(sketch.present)}
        for i in todo:
            j = position[i]
            scope = sketch.scopes[i]
            if scope not in self._near:
                self._near[scope] = (self._index(), [])
            index, ids = self._near[scope]
            match = index.best_match(sketch.near, j)
            if match:
                item, score = match
                reasons[i] = "near_duplicate"
                details[i] = json.dumps({"duplicate_of": ids[item], "jaccard": round(score, 4)})
            index.add(sketch.near, j)
            ids.append(sketch.ids[i])

    def _semantic_pass(self, todo, sketch: DedupSketch, reasons, details) -> None:
        todo = [i for i in todo if sketch.scopes[i] is None]
        if not todo:
            return
        position = {row: j for j, row in enumerate(sketch.present)}
        vectors = sketch.vectors[[position[i] for i in todo]]
        earlier = self._embeddings.matrix
        before = vectors @ earlier.T if len(earlier) else np.zeros((len(todo), 0), np.float32)
        within = vectors @ vectors.T
        for k, i in enumerate(todo):
            scores = np.concatenate([before[k], within[k, :k]])
            if len(scores) and scores.max() >= self.config.semantic_threshold:
                j = int(np.argmax(scores))
                first = self._embedding_ids[j] if j < len(earlier) else sketch.ids[todo[j - len(earlier)]]
                reasons[i] = "semantic_duplicate"
                details[i] = json.dumps({"duplicate_of": first, "cosine": round(float(scores[j]), 4)})
        self._embeddings.append(vectors)
        self._embedding_ids += [sketch.ids[i] for i in todo]


def _image_hash(row: dict) -> bytes | None:
    """The hash of the row's image bytes, or None for a row without an image."""
    image = row.get("image")
    data = image.get("bytes") if isinstance(image, dict) else None
    return hashlib.blake2b(data, digest_size=16).digest() if data else None
