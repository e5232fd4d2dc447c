"""``decontaminate``: drop training rows that overlap an evaluation set, so evaluations stay honest.

At ``setup`` the stage reads every evaluation set named in ``eval_sets`` and indexes its texts two ways:

- every ``ngram``-word run (default 13, after lower-casing and removing punctuation); an evaluation text shorter
  than ``ngram`` words but with at least ``min_words`` is indexed whole;
- MinHash LSH over each evaluation text (``near: true``): Jaccard of ``shingle_words``-word shingles >=
  ``threshold``, confirmed exactly.

A training row is ``contaminated`` when any n-gram of its conversation (question and answer) or page text is in the
index, or when its ``field`` text (default the question) is a near-duplicate of an evaluation text. The detail is
JSON: ``{"eval_set": name, "ngram": "the matching words"}`` or ``{"eval_set": name, "jaccard": 0.82, "eval_text":
"..."}``. Stateless once set up (the index depends only on the config), so it runs in parallel workers.

An evaluation set is either a local file (``path``: ``.jsonl``, ``.json`` holding a list, an object of objects, or
a list under the key ``records``; ``fields`` are the keys whose text is indexed, dotted for nesting, lists and
objects joined) or a source read through ``curate.ingest`` (``source``: a catalog name or a connector kind with
``path`` and ``mapping``; ``fields`` then means ``question`` = user turns, ``answer`` = assistant turns). The
pipeline (or ``curate filter``) resolves a ``source`` before the stage runs (``resolve_sources``), so an unknown name
fails in ``--dry-run``. Relative paths are relative to the pipeline file under ``curate run``, else to the working
directory. The files' sha256 and the resolved sources are part of the stage's fingerprint: an edited evaluation set
reruns the stage.

Consumes ``kind``, ``messages``, ``text``, ``caption``; produces no new columns.

Example::

    - stage: decontaminate
      ngram: 13
      eval_sets:
        - name: medqa-test
          path: data/medqa_usmle_4opt_test.jsonl
          fields: [question]
        - name: firstaid-eval-40
          path: data/eval_questions_40.json
          records: questions
          fields: [question, reference]
        - source: pubmedqa                # a catalog entry, read with its own connector
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from curate.ingest.base import SourceSpec
from curate.io import file_sha256
from curate.paths import beside
from curate.quality.minhash import NearIndex, WordHasher
from curate.quality.text import Field as TextField
from curate.quality.text import question_answer, row_text, words
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows


class EvalSet(BaseModel):
    """One evaluation set: a local file (``path``) or a source read through the connectors (``source``)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    path: str | None = None
    source: str | None = None
    fields: list[str] = Field(default_factory=lambda: ["question"], min_length=1)
    records: str | None = None
    mapping: dict[str, Any] = Field(default_factory=dict)
    _resolved: SourceSpec | None = PrivateAttr(None)  # ``source`` as the pipeline resolved it

    @model_validator(mode="after")
    def _one_place(self) -> "EvalSet":
        if not (self.path or self.source):
            raise ValueError("an eval set needs `path` (a local file) or `source` (a catalog name or connector kind)")
        return self

    @property
    def label(self) -> str:
        return self.name or self.source or Path(self.path).stem


class DecontaminateConfig(StageConfig):
    eval_sets: list[EvalSet] = Field(min_length=1)
    ngram: int = Field(13, ge=4, le=64)
    min_words: int = Field(8, ge=1)
    near: bool = True
    field: TextField = "question"
    threshold: float = Field(0.7, gt=0, le=1)
    shingle_words: int = Field(3, ge=1, le=16)
    num_perm: int = Field(128, ge=16, le=1024)
    fn_weight: float = Field(0.8, gt=0, lt=1)
    seed: int = 1

    def relative_to(self, base: Path) -> "DecontaminateConfig":
        sets = [s.model_copy(update={"path": str(beside(base, s.path))}) if s.path else s
                for s in self.eval_sets]
        return self.model_copy(update={"eval_sets": sets})

    def resolve_sources(self, resolve: Callable[..., SourceSpec]) -> "DecontaminateConfig":
        sets = []
        for eval_set in self.eval_sets:
            eval_set = eval_set.model_copy()
            if eval_set.source:
                eval_set._resolved = resolve(eval_set.source, name=eval_set.name, path=eval_set.path,
                                             mapping=eval_set.mapping)
            sets.append(eval_set)
        return self.model_copy(update={"eval_sets": sets})


def _get(record: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(_as_text(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value)
    return "" if value is None else str(value)


def _file_records(path: Path, records_key: str | None) -> list:
    if path.suffix == ".jsonl":
        with path.open() as fh:
            return [json.loads(line) for line in fh if line.strip()]
    data = json.loads(path.read_text())
    if records_key:
        data = _get(data, records_key)
    if isinstance(data, dict):
        data = list(data.values())
    if not isinstance(data, list):
        raise ValueError(f"eval set {path}: expected a list of records (set `records:` to the key holding it)")
    return data


def eval_texts(spec: EvalSet) -> Iterator[str]:
    """The texts of one evaluation set, one per record and field (empty ones skipped)."""
    if spec.source:
        yield from _source_texts(spec)
        return
    path = Path(spec.path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"eval set '{spec.label}': {path} does not exist")
    for record in _file_records(path, spec.records):
        for field in spec.fields:
            text = _as_text(_get(record, field)).strip()
            if text:
                yield text


def _source_texts(spec: EvalSet) -> Iterator[str]:
    from curate.ingest import read_source

    if spec._resolved is None:
        raise ValueError(f"eval set '{spec.label}' names source '{spec.source}', which no pipeline resolved: run "
                         f"the stage in a pipeline or `curate filter`, or give the file as `path:` without `source:`")
    for row in read_source(spec._resolved):
        if isinstance(row, dict):
            question, answer = question_answer(row) if row.get("messages") else (row_text(row), "")
            for field in spec.fields:
                text = {"question": question, "answer": answer}.get(field, "").strip()
                if text:
                    yield text


class Decontaminate(Stage):
    name = "decontaminate"
    Config = DecontaminateConfig
    inputs = ("kind", "messages", "text", "caption")

    def fingerprint_extra(self) -> list:
        paths = (Path(s.path).expanduser() for s in self.config.eval_sets if s.path)
        sources = [asdict(s._resolved) for s in self.config.eval_sets if s._resolved is not None]
        return [file_sha256(p) if p.is_file() else None for p in paths] + sources

    def setup(self) -> None:
        c = self.config
        self._words = WordHasher(c.seed, c.ngram)
        tables: dict[int, dict[int, int]] = {}  # n -> {n-gram hash: eval set index}
        self._near = NearIndex(c.threshold, c.num_perm, c.shingle_words, c.seed,
                                fn_weight=c.fn_weight) if c.near else None
        self._near_items: list[tuple[int, str]] = []
        for k, spec in enumerate(c.eval_sets):
            texts = list(eval_texts(spec))
            self._index_ngrams(k, texts, tables)
            if self._near is not None:
                sketches = self._near.sketch(texts)
                for i, text in enumerate(texts):
                    self._near.add(sketches, i)
                    self._near_items.append((k, text))
        self._ngrams = {n: (np.array(sorted(t), dtype=np.uint64), t) for n, t in tables.items()}

    def _index_ngrams(self, k: int, texts: list[str], tables: dict[int, dict[int, int]]) -> None:
        for text in texts:
            tokens = words(text)
            n = min(len(tokens), self.config.ngram)
            if n >= self.config.min_words:
                table = tables.setdefault(n, {})
                for h in self._words.ngram_hashes(self._words.word_hashes(tokens), n).tolist():
                    table.setdefault(h, k)

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        row_list = rows(batch)
        details = self._ngram_hits([words(row_text(r, "both")) for r in row_list])
        if self._near is not None:
            todo = [i for i in range(len(row_list)) if i not in details]
            near = self._near_hits([row_text(row_list[i], self.config.field) for i in todo])
            details.update({todo[j]: detail for j, detail in near.items()})
        n = len(row_list)
        return {**batch, DROP: ["contaminated" if i in details else None for i in range(n)],
                DROP_DETAIL: [details.get(i) for i in range(n)]}

    def _ngram_hits(self, token_lists: list[list[str]]) -> dict[int, str]:
        """Row index -> detail, for rows sharing an indexed n-gram (the first one found)."""
        hits: dict[int, str] = {}
        for n, (keys, table) in self._ngrams.items():
            grams, owner, start = self._words.batch_ngrams(token_lists, n)
            found = keys[np.minimum(np.searchsorted(keys, grams), len(keys) - 1)] == grams
            for h, i, at in zip(grams[found].tolist(), owner[found].tolist(), start[found].tolist()):
                if i not in hits:
                    hits[i] = json.dumps({"eval_set": self.config.eval_sets[table[h]].label,
                                          "ngram": " ".join(token_lists[i][at:at + n])}, ensure_ascii=False)
        return hits

    def _near_hits(self, texts: list[str]) -> dict[int, str]:
        """Index into ``texts`` -> detail, for texts near-duplicating an evaluation text."""
        sketches = self._near.sketch(texts)
        hits = {}
        for i in range(len(texts)):
            match = self._near.best_match(sketches, i)
            if match:
                k, eval_text = self._near_items[match[0]]
                hits[i] = json.dumps({"eval_set": self.config.eval_sets[k].label, "jaccard": round(match[1], 4),
                                      "eval_text": eval_text[:200]}, ensure_ascii=False)
        return hits
