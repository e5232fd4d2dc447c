"""Short views of exported data: images as ``<image 512x512 JPEG>``, long strings cut, counts per split and source.

Consumes an export artifact folder (``data/<split>-NNNNN-of-NNNNN.parquet``) or a stage folder (``part-*.parquet``,
shown as one split named ``rows``); produces a ``Summary`` (rows per split, rows per split and source, the first few
records of each split with their images summarised) that ``curate inspect`` prints and the dataset card reuses.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

SHARD = re.compile(r"^(?P<split>\w+)-\d{5}-of-\d{5}\.parquet$")
USUAL_ORDER = ("train", "validation", "test")


@dataclass
class Summary:
    folder: str
    rows: dict[str, int] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: dict[str, list] = field(default_factory=dict)


def describe_image(value: dict) -> str:
    """``<image WxH FORMAT>`` for an image struct {bytes, path}."""
    data = value.get("bytes")
    if not data:
        return f"<image {value.get('path')} (no bytes)>"
    try:
        with Image.open(io.BytesIO(data)) as img:
            return f"<image {img.width}x{img.height} {img.format}>"
    except (UnidentifiedImageError, OSError):
        return f"<image {len(data)} bytes, not decodable>"


def summarise(value, max_chars: int = 300):
    """``value`` with image structs described, bytes sized and strings longer than ``max_chars`` cut."""
    if isinstance(value, dict) and set(value) == {"bytes", "path"}:
        return describe_image(value)
    if isinstance(value, dict):
        return {k: summarise(v, max_chars) for k, v in value.items()}
    if isinstance(value, list):
        return [summarise(v, max_chars) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > max_chars:
        return value[:max_chars] + f"… [{len(value) - max_chars} more characters]"
    return value


def export_shards(folder: Path) -> dict[str, list[Path]]:
    """{split: its parquet shards} of an export folder's ``data/`` (``<split>-NNNNN-of-NNNNN.parquet``)."""
    shards: dict[str, list[Path]] = {}
    for path in sorted((folder / "data").glob("*.parquet")):
        match = SHARD.match(path.name)
        if match:
            shards.setdefault(match["split"], []).append(path)
    return shards


def split_files(folder: Path) -> dict[str, list[Path]]:
    """Parquet files by split: an artifact's ``data/`` shards, or a stage folder's parts as split ``rows``."""
    shards = export_shards(folder)
    if not shards and list(folder.glob("part-*.parquet")):
        shards["rows"] = sorted(folder.glob("part-*.parquet"))
    rank = {name: i for i, name in enumerate(USUAL_ORDER)}
    return dict(sorted(shards.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def inspect_folder(folder: str | Path, n: int = 3) -> Summary:
    """Counts and the first ``n`` records (summarised) of each split in ``folder``."""
    folder = Path(folder)
    files = split_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder} holds no data/<split>-NNNNN-of-NNNNN.parquet shards and no part-*.parquet "
                                "files: is it an export artifact or a stage folder?")
    summary = Summary(str(folder))
    for split, paths in files.items():
        summary.rows[split] = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
        summary.sources[split] = dict(Counter(_column(paths, "source")))
        summary.samples[split] = [summarise(r) for r in _head(paths, n)]
    return summary


def _column(paths: list[Path], name: str) -> list:
    if name not in pq.ParquetFile(paths[0]).schema_arrow.names:
        return []
    return [v for p in paths for v in pq.read_table(p, columns=[name]).column(name).to_pylist()]


def _head(paths: list[Path], n: int) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=max(n, 1)):
            rows += batch.to_pylist()[: n - len(rows)]
            if len(rows) >= n:
                return rows
    return rows
