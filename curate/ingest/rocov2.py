"""ROCOv2 radiology images with their captions and UMLS concepts (CUIs).

The layout is detected from ``spec.path``:

- release layout (the Zenodo files): ``<split>_captions.csv`` (ID,Caption), ``<split>_concepts.csv`` (ID,CUIs
  separated by ``;``), optional ``<split>_concepts_manual.csv`` and ``cui_mapping.csv``, and the images ``<ID>.jpg``;
- Hub layout (``eltorio/ROCOv2-radiology``): a parquet file, or a folder of them, with columns image {bytes, path},
  image_id, caption, cui (list of CUIs). A source with ``hub:`` and no path is streamed with
  ``datasets.load_dataset``.

Options (relative paths are taken from the source folder):

- ``split``: release layout: which ``<split>_captions.csv`` (train, valid, test), needed when there are several;
  Hub layout: only the ``<split>-*.parquet`` files (default all), or the Hub split (default ``hub.split``).
- ``image_dir``: the image folder; default ``<split>/`` or ``images/`` next to the CSVs (release layout only).
- ``cui_mapping``: a ``CUI,Canonical name`` CSV; default ``cui_mapping.csv`` in the source folder if there.
- ``modalities``: keep only rows of these modalities (CT, X-ray, MRI, Ultrasound, Angiography, PET).
- ``cuis``: keep only rows with at least one of these CUIs.

Rows left out by ``modalities``/``cuis`` are skipped; they are not rejects. ``spec.limit`` stops after that many
rows (rejects do not count).

Output: one ``image`` row per image: image (the stored bytes, not re-encoded; path = the file name), caption, cuis,
cui_names (aligned with cuis, ``None`` for a CUI the mapping lacks; the whole column is null without a mapping),
modality (label of the modality CUI; several are joined with "/", e.g. ``PET/CT``), meta {split, unknown_cuis (the
row's CUIs without a name), manual_cuis (the hand-curated concepts, when that file exists)}; provenance.locator is
the image ID. Rejects: ``missing_image`` (no file or no bytes), ``empty_caption``.

``unknown_cuis(spec, options)`` counts the CUIs without a name over the whole source (ignoring filters and images).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import datasets
import pyarrow.parquet as pq
from pydantic import field_validator

from curate.ingest import base, cui
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.schema import MODALITY_CUIS, make_image

HUB_COLUMNS = ["image_id", "caption", "cui"]


class Options(base.Options):
    split: str | None = None
    image_dir: Path | None = None
    cui_mapping: Path | None = None
    modalities: list[str] | None = None
    cuis: list[str] | None = None

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        labels = {label.lower(): label for label in MODALITY_CUIS.values()}
        unknown = [v for v in value if v.lower() not in labels]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}: choose from {', '.join(MODALITY_CUIS.values())}")
        return [labels[v.lower()] for v in value]


@dataclass
class _Record:
    image_id: str
    caption: str
    cuis: list[str]
    split: str | None
    image_name: str
    image_bytes: bytes | None = None
    image_file: Path | None = None
    manual_cuis: list[str] | None = None


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    mapping = _mapping(spec, options)
    rows = 0
    for record in _records(spec, options, with_images=True):
        if spec.limit is not None and rows >= spec.limit:
            return
        if _selected(record, options):
            item = _row(record, spec, mapping)
            rows += isinstance(item, dict)
            yield item


def unknown_cuis(spec: SourceSpec, options: Options) -> Counter[str]:
    """How often each CUI without an entry in the mapping occurs in the source's concepts."""
    mapping = _mapping(spec, options)
    if mapping is None:
        raise ConnectorError(f"source '{spec.name}': no CUI mapping; set option 'cui_mapping'")
    return Counter(c for r in _records(spec, options, with_images=False) for c in r.cuis if c not in mapping)


def _selected(record: _Record, options: Options) -> bool:
    if options.modalities and not set(cui.modalities(record.cuis)) & set(options.modalities):
        return False
    return not options.cuis or bool(set(record.cuis) & set(options.cuis))


def _row(record: _Record, spec: SourceSpec, mapping: dict[str, str] | None) -> dict | Reject:
    if not record.caption:
        return Reject("empty_caption", f"{record.image_id} has no caption", record.image_id)
    data = record.image_bytes
    if data is None and record.image_file is not None and record.image_file.is_file():
        data = record.image_file.read_bytes()
    if data is None:
        expected = f"expected {record.image_file}" if record.image_file else "the row has no image bytes"
        return Reject("missing_image", f"no image for {record.image_id}: {expected}", record.image_id)
    meta = {"split": record.split, "manual_cuis": record.manual_cuis}
    if mapping is not None:
        meta["unknown_cuis"] = [c for c in record.cuis if c not in mapping] or None
    return make_image(
        image_bytes=data, image_name=record.image_name, source=spec.name, license=spec.license,
        origin=spec.origin, locator=record.image_id, revision=spec.revision, caption=record.caption,
        cuis=record.cuis, cui_names=cui.names(record.cuis, mapping) if mapping is not None else None,
        modality="/".join(cui.modalities(record.cuis)) or None,
        meta={k: v for k, v in meta.items() if v is not None},
    )


def _resolve(spec: SourceSpec, path: Path) -> Path:
    """``path`` taken from the source folder (absolute paths and hub-only sources keep it as is)."""
    if spec.path is None:
        return path
    return (spec.path if spec.path.is_dir() else spec.path.parent) / path


def _mapping(spec: SourceSpec, options: Options) -> dict[str, str] | None:
    if options.cui_mapping is not None:
        return cui.load_mapping(_resolve(spec, options.cui_mapping))
    default = _resolve(spec, Path(cui.MAPPING_FILE))
    return cui.load_mapping(default) if spec.path is not None and default.is_file() else None


def _records(spec: SourceSpec, options: Options, with_images: bool) -> Iterator[_Record]:
    if spec.path is None and spec.hub is not None:
        yield from _hub_records(spec, options, with_images)
        return
    root = base.require_path(spec, "ROCOv2 folder or parquet file")
    if root.is_dir() and any(root.glob("*_captions.csv")):
        yield from _release_records(root, spec, options, with_images)
    else:
        yield from _parquet_records(_parquet_files(root, options.split), with_images)


# Release layout -------------------------------------------------------------------------------------------------


def _release_records(root: Path, spec: SourceSpec, options: Options, with_images: bool) -> Iterator[_Record]:
    split = _release_split(root, options.split)
    concepts_file = root / f"{split}_concepts.csv"
    concepts = _read_csv(concepts_file, "CUIs") if concepts_file.is_file() else {}
    manual_file = root / f"{split}_concepts_manual.csv"
    manual = _read_csv(manual_file, "CUIs") if manual_file.is_file() else None
    images = _image_dir(root, spec, split, options.image_dir) if with_images else None
    for image_id, caption in _read_csv(root / f"{split}_captions.csv", "Caption").items():
        yield _Record(
            image_id=image_id, caption=caption.strip(), cuis=cui.clean_cuis(concepts.get(image_id)), split=split,
            image_name=f"{image_id}.jpg", image_file=images / f"{image_id}.jpg" if images else None,
            manual_cuis=cui.clean_cuis(manual.get(image_id)) if manual is not None else None,
        )


def _release_split(root: Path, split: str | None) -> str:
    found = sorted(p.name[: -len("_captions.csv")] for p in root.glob("*_captions.csv"))
    if split is None and len(found) == 1:
        return found[0]
    if split is None:
        raise ConnectorError(f"{root} holds several splits ({', '.join(found)}): set option 'split'")
    if split not in found:
        raise ConnectorError(f"{root} has no {split}_captions.csv (splits found: {', '.join(found)})")
    return split


def _read_csv(path: Path, column: str) -> dict[str, str]:
    """ID -> ``column`` of a ROCOv2 CSV."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "ID" not in (reader.fieldnames or []) or column not in reader.fieldnames:
            raise ConnectorError(f"{path} must have columns ID,{column} (found {reader.fieldnames})")
        return {row["ID"].strip(): row[column] or "" for row in reader}


def _image_dir(root: Path, spec: SourceSpec, split: str, image_dir: Path | None) -> Path:
    candidates = [_resolve(spec, image_dir)] if image_dir is not None else [root / split, root / "images"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise ConnectorError(
        f"no image folder for ROCOv2 split '{split}' (looked for {', '.join(map(str, candidates))}); "
        "set option 'image_dir'"
    )


# Hub layout -----------------------------------------------------------------------------------------------------


def _parquet_files(root: Path, split: str | None) -> list[Path]:
    if root.is_file():
        files = [root] if root.suffix == ".parquet" else []
    else:
        files = sorted(root.rglob("*.parquet"))
    if split is not None:
        files = [f for f in files if _parquet_split(f) == split or f.parent.name == split]
    if not files:
        raise ConnectorError(
            f"{root}: no ROCOv2 data found: expected <split>_captions.csv files or parquet files"
            + (f" of split '{split}'" if split else "")
        )
    return files


def _parquet_split(file: Path) -> str:
    """The split of a Hub-style parquet shard (``train-00000-of-00004.parquet`` -> train), else the file stem."""
    match = re.fullmatch(r"(.+?)-\d+-of-\d+", file.stem)
    return match.group(1) if match else file.stem


def _parquet_records(files: list[Path], with_images: bool) -> Iterator[_Record]:
    columns = HUB_COLUMNS + (["image"] if with_images else [])
    for file in files:
        parquet = pq.ParquetFile(file)
        missing = sorted(set(columns) - set(parquet.schema_arrow.names))
        if missing:
            raise ConnectorError(f"{file} lacks columns {missing}; a ROCOv2 parquet has image, image_id, caption, cui")
        for batch in parquet.iter_batches(batch_size=64, columns=columns):
            for row in batch.to_pylist():
                yield _hub_record(row, _parquet_split(file))


def _hub_records(spec: SourceSpec, options: Options, with_images: bool) -> Iterator[_Record]:
    hub = spec.hub
    split = options.split or hub.split
    ds = datasets.load_dataset(hub.repo, hub.config, split=split, revision=hub.revision, streaming=True)
    ds = ds.cast_column("image", datasets.Image(decode=False)) if with_images else ds.select_columns(HUB_COLUMNS)
    for row in ds:
        yield _hub_record(row, split)


def _hub_record(row: dict, split: str | None) -> _Record:
    image = row.get("image") or {}
    image_id = str(row["image_id"])
    return _Record(
        image_id=image_id, caption=(row["caption"] or "").strip(), cuis=cui.clean_cuis(row["cui"]), split=split,
        image_name=Path(image["path"]).name if image.get("path") else image_id, image_bytes=image.get("bytes"),
    )
