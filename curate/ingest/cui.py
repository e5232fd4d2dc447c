"""UMLS concept (CUI) helpers shared by the image connectors.

- ``load_mapping``: CUI -> canonical name from a ROCOv2-style ``cui_mapping.csv`` (``CUI,Canonical name``).
- ``clean_cuis``: a ``;``-separated string or a list of CUIs, tidied (no blanks, no pandas ``nan``, no repeats).
- ``names``: the names of some CUIs, aligned with them (``None`` where the mapping has no entry).
- ``modalities``: the imaging modalities named by the six ROCOv2 modality CUIs (``curate.schema.MODALITY_CUIS``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable

from curate.ingest.base import ConnectorError
from curate.schema import MODALITY_CUIS

MAPPING_FILE = "cui_mapping.csv"


def load_mapping(path: Path) -> dict[str, str]:
    """CUI -> canonical name from a two-column CSV with a header row (any line endings, optional BOM)."""
    if not path.is_file():
        raise ConnectorError(f"CUI mapping {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().upper() != "CUI":
        raise ConnectorError(f"CUI mapping {path} must start with a header 'CUI,Canonical name'")
    return {row[0].strip(): row[1].strip() for row in rows[1:] if len(row) >= 2 and row[0].strip()}


def clean_cuis(value: str | Iterable | None) -> list[str]:
    """The CUIs in ``value`` in order, stripped, without blanks, ``nan`` (a missing cell read as text) or repeats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    items = value.split(";") if isinstance(value, str) else value
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            continue
        cui = item.strip()
        if cui and cui.lower() != "nan" and cui not in out:
            out.append(cui)
    return out


def names(cuis: list[str], mapping: dict[str, str]) -> list[str | None]:
    """The canonical name of each CUI, ``None`` for a CUI the mapping lacks (so ``zip(cuis, names)`` pairs up)."""
    return [mapping.get(cui) for cui in cuis]


def modalities(cuis: Iterable[str]) -> list[str]:
    """The modality labels (``CT``, ``X-ray``, ``MRI``, ...) named among ``cuis``, in their order, without repeats."""
    out: list[str] = []
    for cui in cuis:
        label = MODALITY_CUIS.get(cui)
        if label and label not in out:
            out.append(label)
    return out
