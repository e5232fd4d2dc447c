"""Evaluation sets: catalog entries, local QA files and held-out splits of curated exports, as scored items.

``load_eval_set(ref, path=None, split="test", layout=None, limit=None, seed=0)`` resolves ``ref``:

- a catalog name (``curate.catalog``, e.g. ``medqa-usmle-4-options-test``, ``pubmedqa-ori-pqal``,
  ``firstaidqa-eval-40``), read with the entry's mapping through the ``hf_qa`` connector from ``path`` (a local copy)
  or from the entry's own path or Hub location. An entry that lives at a URL needs ``path``: nothing is downloaded.
- a file or folder of ``.jsonl`` / ``.json`` / ``.parquet`` / ``.csv`` QA items, read by ``hf_qa`` with the mapping of
  ``layout`` (a catalog entry name, ``medmcqa`` or ``llm-foundry``) or else the first layout whose columns the file
  has: the catalog's ``hf_qa`` entries (``use: eval`` first, most mapped columns first), then MedMCQA's Hub columns
  (``question``, ``opa``-``opd``, ``cop`` as a 0-based index), then llm-foundry's multiple-choice files (``query``,
  ``choices`` as a list, ``gold`` as a 0-based index; a leading "Passage: " label of the query is dropped, so BoolQ's
  ``Passage: P\\nQuestion: Q?`` is asked as lm-evaluation-harness asks it: ``P\\nQuestion: Q?``), then the connector's
  own question/answer inference.
- an export folder (``curate export``: ``data/<split>-*.parquet``), whose ``split`` becomes open-answer items: the
  first user turn is the question, the last assistant turn the reference, and the id is the one ``curate`` rows
  get for the same messages (``curate.schema.content_id``).
- a folder of curate rows (``part-*.parquet`` from ``curate ingest`` or a pipeline stage).
- a VQA-RAD folder (``<split>set.json`` files and ``images/``, or ``layout="vqa_rad"`` for any form the ``vqa``
  connector reads), whose ``split`` (default ``test``) becomes image items.

Output: an ``EvalSet`` of ``EvalItem``s. A row whose ``meta`` has ``options`` is a multiple-choice item (``mcq``: gold
is the option label ``answer_idx``; ``stem`` is the question without its option lines); one whose ``meta.decision``
is yes / no / maybe is a ``decision`` item (PubMedQA); any other row is an ``open`` item scored against its reference.
A ``vqa`` row is an image item (``image`` its bytes, ``image_name`` its file name): ``closed`` when its
``meta.answer_type`` is CLOSED (or, without one, when its answer is yes / no), else ``open``
(``curate.evaluate.vqa`` scores them).
An item that cannot be scored (options missing or empty, or a gold label not among them: reasons
``bad_answer_key``, ``bad_options``) is left out and listed in ``rejects`` (reason, locator, detail naming the
item), counted by reason in ``rejected``; the other items are scored. ``limit`` keeps a seeded random sample
(``random.Random(seed).sample``) in the set's order, after repeated items (same id: same question and answer) are
dropped and counted as ``duplicate``; ``fingerprint`` is the sha256 of the kept item ids.
Errors are ``SetError`` with the fix in the message.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from curate.catalog import CatalogEntry, CatalogError, load_catalog
from curate.evaluate.mcq import DECISIONS
from curate.ingest import ConnectorError, Reject, SourceSpec, read_source
from curate.schema import content_id

MEDMCQA = {"mapping": {"question": "question", "options": ["opa", "opb", "opc", "opd"], "answer_key": "cop"},
           "options": {}}
FOUNDRY = {"mapping": {"question": "query", "options": "choices", "answer_key": "gold"}, "options": {}}
VQA_RAD = "vqa_rad"  # the layout name of VQA-RAD folders and parquet, read by the vqa connector
PASSAGE = "Passage: "  # llm-foundry's label before a reading-comprehension passage; the harness has none


class SetError(ValueError):
    """The evaluation set cannot be read as given; the message says what to pass instead."""


@dataclass
class EvalItem:
    """One question to score: ``options`` for mcq ({label: text}), ``gold`` the correct label (mcq, decision);
    ``stem`` the mcq question without its option lines (None: the question as it is); ``image`` the bytes of
    the image a vqa item asks about."""

    id: str
    locator: str
    task: str
    question: str
    reference: str
    options: dict[str, str] = field(default_factory=dict)
    gold: str | None = None
    stem: str | None = None
    image: bytes | None = None
    image_name: str | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    @property
    def choices(self) -> dict[str, str]:
        """{label: option text}: an mcq's options, a decision's words (yes, no, maybe), nothing for open items."""
        if self.task == "mcq":
            return dict(self.options)
        return {d: d for d in DECISIONS} if self.task == "decision" else {}

    def query(self, choices: str) -> str:
        """The question block as asked with ``choices`` (``letters``: with its option lines; ``text``: without)."""
        return self.stem if choices == "text" and self.stem is not None else self.question


@dataclass
class EvalSet:
    """Items with where they came from: the set's name, origin, layout, and what reading or sampling left out."""

    name: str
    origin: str
    items: list[EvalItem]
    layout: str | None = None
    available: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sample: dict = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(item.id for item in self.items).encode()).hexdigest()

    def describe(self) -> dict:
        return {"name": self.name, "origin": self.origin, "layout": self.layout, "n": len(self.items),
                "available": self.available, "sample": self.sample, "rejected": self.rejected,
                "fingerprint": self.fingerprint, "tasks": dict(Counter(item.task for item in self.items))}


def _stem(question: str, options: dict[str, str]) -> str:
    """The question without the option lines the hf_qa connector appends (as it is when they are not there)."""
    block = "\n\n" + "\n".join(f"{label}. {text}" for label, text in options.items())
    return question[:-len(block)] if question.endswith(block) else question


def _vqa_task(meta: dict, reference: str) -> str:
    kind = str(meta.get("answer_type") or "").strip().upper()
    if kind in ("CLOSED", "OPEN"):
        return kind.lower()
    return "closed" if reference.strip().lower() in ("yes", "no") else "open"


def item_from_row(row: dict) -> EvalItem | Reject:
    """A qa or vqa row (curate schema) as an EvalItem, or a Reject naming it when its options cannot be scored."""
    messages = row.get("messages") or []
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    reference = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
    meta = json.loads(row["meta"]) if isinstance(row.get("meta"), str) else (row.get("meta") or {})
    locator = str((row.get("provenance") or {}).get("locator") or row["id"])
    if row.get("kind") == "vqa":
        image = row.get("image") or {}
        return EvalItem(row["id"], locator, _vqa_task(meta, reference), user, reference, image=image.get("bytes"),
                        image_name=image.get("path"))
    if "options" in meta:
        options = meta["options"]
        if not isinstance(options, dict) or not options:
            return Reject("bad_options", f"item {locator} (id {row['id']}) has no options: {options!r}", locator)
        if meta.get("answer_idx") not in options:
            return Reject("bad_answer_key", f"item {locator} (id {row['id']}): gold label "
                          f"{meta.get('answer_idx')!r} is not among its options {list(options)}", locator)
        options = {str(k): str(v) for k, v in options.items()}
        return EvalItem(row["id"], locator, "mcq", user, reference, options, meta["answer_idx"],
                        _stem(user, options))
    decision = str(meta.get("decision") or "").strip().lower()
    if decision in DECISIONS:
        return EvalItem(row["id"], locator, "decision", user, reference, gold=decision)
    return EvalItem(row["id"], locator, "open", user, reference)


def _collect(rows, where: str) -> tuple[list[EvalItem], list[dict]]:
    """(items, rejects as {reason, locator, detail}) from qa / vqa rows and Rejects."""
    items, rejects = [], []
    for row in rows:
        if not isinstance(row, Reject) and row.get("kind") in ("qa", "vqa"):
            row = item_from_row(row)
        if isinstance(row, Reject):
            rejects.append({"reason": row.reason, "locator": row.locator, "detail": f"{where}: {row.detail}"})
        elif isinstance(row, EvalItem):
            items.append(row)
    return items, rejects


def _counted(rejects: list[dict]) -> dict[str, int]:
    return dict(Counter(r["reason"] for r in rejects))


def _read_spec(spec: SourceSpec) -> tuple[list[EvalItem], list[dict]]:
    try:
        return _collect(read_source(spec), spec.name)
    except ConnectorError as exc:
        raise SetError(str(exc)) from exc


def _fits(spec: SourceSpec) -> bool:
    """Whether the connector reads a first item with this spec's mapping (its columns are all there)."""
    try:
        next(read_source(spec), None)
        return True
    except ConnectorError:
        return False


def _layouts(catalog: dict[str, CatalogEntry]) -> dict[str, dict]:
    """{name: {mapping, options}} tried on a file, most specific first."""
    entries = sorted((e for e in catalog.values() if e.kind == "hf_qa" and e.mapping),
                     key=lambda e: (e.use != "eval", -len(e.mapping), e.name))
    layouts = {e.name: {"mapping": dict(e.mapping), "options": dict(e.options)} for e in entries}
    return layouts | {"medmcqa": MEDMCQA, "llm-foundry": FOUNDRY}


def _file_spec(path: Path, layout: str | None, catalog: dict[str, CatalogEntry]) -> tuple[SourceSpec, str | None]:
    layouts = _layouts(catalog)
    if layout is not None and layout not in layouts:
        raise SetError(f"unknown layout '{layout}'; layouts are {', '.join([*layouts, VQA_RAD])}")

    def spec(name: str | None) -> SourceSpec:
        chosen = layouts[name] if name else {"mapping": {}, "options": {}}
        return SourceSpec(name=path.stem, kind="hf_qa", path=path, license="unknown", mapping=chosen["mapping"],
                          options=chosen["options"], use="eval")

    if layout is not None:
        return spec(layout), layout
    for name in layouts:
        if _fits(spec(name)):
            return spec(name), name
    return spec(None), None


def _catalog_set(entry: CatalogEntry, path: Path | None) -> EvalSet:
    spec = entry.spec(path)
    if spec.path is None and spec.hub is None:
        raise SetError(f"set '{entry.name}' is published at {entry.location.url}; download it once and pass its "
                       f"local copy with --path FILE (nothing is downloaded during an evaluation)")
    if spec.path is not None and not spec.path.exists():
        raise SetError(f"set '{entry.name}': path {spec.path} does not exist")
    items, rejects = _read_spec(spec)
    warnings = [] if entry.use == "eval" else [
        f"catalog entry '{entry.name}' is marked use: {entry.use}: a model trained on it has seen these items"]
    return EvalSet(entry.name, spec.origin, items, entry.name, len(items), _counted(rejects), warnings,
                   rejects=rejects)


def _export_set(folder: Path, split: str) -> EvalSet:
    from curate.export.summary import export_shards
    from curate.train.data import conversation, detect_format

    splits = export_shards(folder)
    if split not in splits:
        raise SetError(f"export folder {folder} has no split '{split}'; its splits are {', '.join(splits)}: pass "
                       f"--split")
    rows = []
    for file in splits[split]:
        table = pq.read_table(file)
        fmt = detect_format(table.column_names)
        for i, record in enumerate(table.to_pylist()):
            messages = conversation(record, fmt)["messages"]
            rows.append({"id": content_id("qa", messages, None), "kind": "qa", "messages": messages,
                         "provenance": {"locator": f"{file.name}#{i}"}})
    items, rejects = _collect(rows, str(folder))
    return EvalSet(f"{folder.name}:{split}", str(folder), items, f"export:{split}", len(items), _counted(rejects),
                   rejects=rejects)


def _rows_set(folder: Path) -> EvalSet:
    rows = [r for f in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    items, rejects = _collect(rows, str(folder))
    return EvalSet(folder.name, str(folder), items, "curate-rows", len(items), _counted(rejects), rejects=rejects)


def _vqa_set(path: Path, split: str) -> EvalSet:
    spec = SourceSpec(name=path.name, kind="vqa", path=path, license="unknown", options={"split": split}, use="eval")
    items, rejects = _read_spec(spec)
    return EvalSet(f"{path.name}:{split}", str(path), items, "vqa_rad", len(items), _counted(rejects),
                   rejects=rejects)


def _path_set(path: Path, split: str, layout: str | None, catalog: dict[str, CatalogEntry]) -> EvalSet:
    if layout == VQA_RAD or layout is None and path.is_dir() and any(path.glob("*set.json")):
        return _vqa_set(path, split)
    if path.is_dir() and any((path / "data").glob("*.parquet")):
        return _export_set(path, split)
    if path.is_dir() and any(path.glob("part-*.parquet")):
        return _rows_set(path)
    spec, chosen = _file_spec(path, layout, catalog)
    items, rejects = _read_spec(spec)
    if chosen == "llm-foundry":
        for item in items:
            item.stem = item.stem.removeprefix(PASSAGE)
    return EvalSet(path.stem, str(path), items, chosen or "inferred", len(items), _counted(rejects),
                   rejects=rejects)


def _drop_duplicates(eval_set: EvalSet) -> None:
    """Keep the first of items with the same id (the same question and answer), counted as ``duplicate``."""
    seen: set[str] = set()
    unique = [item for item in eval_set.items if not (item.id in seen or seen.add(item.id))]
    if len(unique) < len(eval_set.items):
        eval_set.rejected["duplicate"] = len(eval_set.items) - len(unique)
        eval_set.items, eval_set.available = unique, len(unique)


def subsample(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """``limit`` items drawn at random with ``seed``, kept in the set's order (all items when limit is None)."""
    if limit is None or limit >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def load_eval_set(ref: str, *, path: str | Path | None = None, split: str = "test", layout: str | None = None,
                  limit: int | None = None, seed: int = 0, catalog: dict[str, CatalogEntry] | None = None) -> EvalSet:
    """The items of a set by catalog name or path (see the module docstring), sampled to ``limit``."""
    if limit is not None and limit < 1:
        raise SetError(f"limit must be at least 1, got {limit}")
    try:
        catalog = load_catalog() if catalog is None else catalog
    except CatalogError as exc:
        raise SetError(f"invalid catalog: {exc}") from exc
    local = Path(path).expanduser() if path is not None else None
    if ref in catalog:
        eval_set = _catalog_set(catalog[ref], local)
    elif Path(ref).expanduser().exists():
        eval_set = _path_set(Path(ref).expanduser(), split, layout, catalog)
    else:
        evals = ", ".join(name for name, e in catalog.items() if e.use == "eval")
        raise SetError(f"set '{ref}' is neither a catalog name nor an existing path; evaluation sets in the catalog: "
                       f"{evals}")
    _drop_duplicates(eval_set)
    if not eval_set.items:
        raise SetError(f"set '{eval_set.name}' ({eval_set.origin}) holds no question-answer items"
                       + (f"; rejected: {eval_set.rejected}" if eval_set.rejected else ""))
    eval_set.items = subsample(eval_set.items, limit, seed)
    eval_set.sample = {"limit": limit, "seed": seed}
    return eval_set
