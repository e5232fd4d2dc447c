"""Files of a run: parquet shards written atomically, rejects as JSON lines, small JSON documents, file hashes.

A file is written under a temporary name and renamed into place, so a crash never leaves a half-written file under
a name that readers trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def building(out: Path) -> Iterator[Path]:
    """A temporary sibling folder to build ``out`` in; it replaces ``out`` only if the block succeeds."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    tmp, n = _tmp(path), 0
    with tmp.open("w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_parquet(path: Path, batch: dict[str, list], schema: pa.Schema) -> int:
    """Write ``batch`` (columns in ``schema`` order) as one parquet file; returns the row count. An empty batch is
    written with no row group (its schema only): ``datasets`` refuses a row group of 0 rows."""
    table = pa.Table.from_pydict({f.name: batch[f.name] for f in schema}, schema=schema)
    tmp = _tmp(path)
    if table.num_rows:
        pq.write_table(table, tmp)
    else:
        pq.ParquetWriter(tmp, schema).close()
    os.replace(tmp, path)
    return table.num_rows


def parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet"))


def read_schema(folder: Path) -> pa.Schema:
    files = parquet_files(folder)
    return pq.read_schema(files[0]) if files else None


def iter_batches(folder: Path, batch_size: int) -> Iterator[dict[str, list]]:
    """Batches of at most ``batch_size`` rows over the stage's shards, in a deterministic order."""
    for file in parquet_files(folder):
        for record_batch in pq.ParquetFile(file).iter_batches(batch_size=batch_size):
            yield record_batch.to_pydict()


def count_rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(folder))


def summarise_row(row: dict) -> dict:
    """A row made JSON-friendly for a rejects file: image bytes are replaced by their size."""
    out = dict(row)
    image = out.get("image")
    if isinstance(image, dict) and image.get("bytes") is not None:
        out["image"] = {"path": image.get("path"), "bytes": f"<{len(image['bytes'])} bytes>"}
    return out
