"""Medical visual question answering in the VQA-RAD layout, or its Hub form.

Two layouts:
- the original release: ``spec.path`` is a folder with one JSON file per split, ``<split>set.json``
  (``trainset.json``, ``testset.json``), each a list of {qid, image_name, image_organ, question, answer,
  answer_type, question_type, phrase_type}, and the images in ``images/``;
- the Hub form (flaviagiammarino/vqa-rad): parquet with columns image ({bytes, path}), question, answer, read from
  ``spec.hub`` with ``datasets.load_dataset`` or from a local parquet file or folder (``<split>-*.parquet``).

Options (relative paths are taken from the source folder):

- ``split``: which ``<split>set.json`` to read, or ``all`` for every one. Default ``train``, so that a benchmark's
  test questions do not end up in training data by accident.
- ``image_dir``: the image folder (default ``images``).

Output: one ``vqa`` row per question: image (the stored bytes, path = image_name), messages [user question, assistant
answer] (numeric answers become text), meta {qid, organ, answer_type, question_type, phrase_type, split};
provenance.locator is ``<file>#qid=<qid>``. ``spec.limit`` stops after that many rows (rejects do not count).
Rejects: ``missing_image`` (the named image is not in the folder), ``bad_record`` (no image name, question or answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import datasets

from curate.ingest import base
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.schema import make_image


class Options(base.Options):
    split: str = "train"
    image_dir: Path = Path("images")


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    if spec.path is None and spec.hub is not None:
        hub = spec.hub
        ds = datasets.load_dataset(hub.repo, hub.config, split=options.split, revision=hub.revision, streaming=True)
        yield from _table_rows(ds.cast_column("image", datasets.Image(decode=False)), spec, options.split)
        return
    root = base.require_path(spec, "VQA folder (<split>set.json files and images/) or parquet")
    if root.suffix == ".parquet" or (root.is_dir() and not any(root.glob("*set.json"))):
        files = [root] if root.is_file() else sorted(root.rglob(f"{options.split}-*.parquet"))
        if not files:
            raise ConnectorError(f"{root} has neither <split>set.json files nor {options.split}-*.parquet files")
        ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        yield from _table_rows(ds.cast_column("image", datasets.Image(decode=False)), spec, options.split)
        return
    images = root / options.image_dir
    if not images.is_dir():
        raise ConnectorError(f"source '{spec.name}': image folder {images} does not exist; set option 'image_dir'")
    rows = 0
    for split, file in _split_files(root, options.split):
        for record in _load(file):
            if spec.limit is not None and rows >= spec.limit:
                return
            item = _row(record, split, file, images, spec)
            rows += isinstance(item, dict)
            yield item


def _table_rows(ds, spec: SourceSpec, split: str) -> Iterator[dict | Reject]:
    """Rows from the Hub form: one record per (image, question, answer)."""
    for i, record in enumerate(ds):
        locator = f"{split}#{i}"
        image = record.get("image") or {}
        if not image.get("bytes") or not str(record.get("question") or "").strip() or record.get("answer") is None:
            yield Reject("bad_record", f"{locator} lacks an image, question or answer", locator)
            continue
        yield make_image(
            image_bytes=image["bytes"], image_name=Path(image.get("path") or f"{split}-{i}.jpg").name,
            source=spec.name, license=spec.license, origin=spec.origin, locator=locator, revision=spec.revision,
            question=str(record["question"]).strip(), answer=str(record["answer"]).strip(), meta={"split": split})


def _split_files(root: Path, split: str) -> list[tuple[str, Path]]:
    found = {p.name[: -len("set.json")]: p for p in sorted(root.glob("*set.json"))}
    if split == "all" and found:
        return list(found.items())
    if split not in found:
        raise ConnectorError(f"{root} has no {split}set.json (splits found: {', '.join(found) or 'none'})")
    return [(split, found[split])]


def _load(file: Path) -> list:
    data = json.loads(file.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ConnectorError(f"{file} must hold a JSON list of questions")
    return data


def _row(record: dict, split: str, file: Path, images: Path, spec: SourceSpec) -> dict | Reject:
    qid = record.get("qid") if isinstance(record, dict) else None
    locator = f"{file.name}#qid={qid}"
    if not isinstance(record, dict) or any(record.get(k) in (None, "") for k in ("image_name", "question", "answer")):
        return Reject("bad_record", f"{locator} lacks an image_name, question or answer", locator, raw=record)
    name = str(record["image_name"])
    image = images / name
    if not image.is_file():
        return Reject("missing_image", f"{locator}: image {image} not found", locator, raw=record)
    meta = {
        "qid": qid, "organ": record.get("image_organ"), "answer_type": _clean(record.get("answer_type")),
        "question_type": record.get("question_type"), "phrase_type": record.get("phrase_type"), "split": split,
    }
    return make_image(
        image_bytes=image.read_bytes(), image_name=name, source=spec.name, license=spec.license, origin=spec.origin,
        locator=locator, revision=spec.revision, question=str(record["question"]).strip(),
        answer=str(record["answer"]).strip(), meta={k: v for k, v in meta.items() if v is not None},
    )


def _clean(value: object) -> object:
    """Strip stray spaces (VQA-RAD has 'CLOSED ' next to 'CLOSED')."""
    return value.strip() if isinstance(value, str) else value
