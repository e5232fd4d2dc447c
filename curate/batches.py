"""One row stage over one batch of a folder: the unit of work every executor runs, in any process or node.

A ``BatchJob`` says which stage runs over which input folder into which output folder, and how the input is cut
into batches: ``plan_batches`` cuts ``batch_size`` rows at a time, never across a group of rows that share the
stage's ``group_by`` columns (all pages of one document for ``chunk``), so batch ``k`` is the same rows whatever
executor runs it. ``run_batch`` then reads batch ``k`` and either

- applies the stage and writes ``part-k.parquet``, ``rejects-k.jsonl`` and, last, ``shard-k.json`` (its counts),
  returning the shard record; or
- for a ``Reducer``, returns the stage's ``sketch`` of the batch, which the driver consumes in batch order.

Files are written under temporary names and renamed, so a batch run twice (a retried task) writes the same files.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.io import parquet_files, summarise_row, write_json, write_jsonl, write_parquet
from curate.stage import DROP, DROP_DETAIL, Reducer, Stage

Segment = tuple[str, int, int]  # (parquet file, first row, row count)


def plan_batches(source: Path, batch_size: int, group_by: tuple[str, ...] = ()) -> list[list[Segment]]:
    """The input's rows as batches of at most ``batch_size`` rows (more when one group is larger), in file order.

    Without ``group_by`` a batch never crosses a file; with it, a batch ends only where the group changes, so a
    group (contiguous in the input, as ingest writes a document's pages) always lies in one batch. A row with a
    missing group value (a QA row has no ``doc_id``) is a group of its own.
    """
    files = parquet_files(source)
    if not group_by:
        out = []
        for f in files:
            n = pq.ParquetFile(f).metadata.num_rows
            out += [[(str(f), start, min(batch_size, n - start))] for start in range(0, n, batch_size)]
        return out
    batches: list[list[Segment]] = []
    current: list[Segment] = []
    size, last = 0, None
    for f in files:
        keys = pq.read_table(f, columns=list(group_by)).to_pylist()
        start = 0
        for i, row in enumerate(keys):
            key = tuple(row[c] for c in group_by)
            if None in key:
                key = (str(f), i)
            if size >= batch_size and key != last:
                if i > start:
                    current.append((str(f), start, i - start))
                batches.append(current)
                current, size, start = [], 0, i
            size, last = size + 1, key
        if len(keys) > start:
            current.append((str(f), start, len(keys) - start))
    if current:
        batches.append(current)
    return batches


def read_batch(segments: list[Segment]) -> dict[str, list]:
    """The rows of one planned batch as columns."""
    tables = [pq.read_table(f).slice(start, n) for f, start, n in segments]
    return pa.concat_tables(tables).to_pydict() if tables else {}


class UndeclaredColumns(Exception):
    """A stage wrote a column it does not declare in ``outputs``: a bug in the stage, not in the rows."""


def batch_rows(batch: dict[str, list]) -> int:
    return len(next(iter(batch.values()))) if batch else 0


@dataclass
class BatchJob:
    """A stage over the planned batches of ``source`` into ``folder``, rows in ``schema``; ``key`` names the job (the
    step's fingerprint), so a worker builds its stage once per job."""

    stage: Stage  # pickles as its config: a worker calls setup() itself (Stage.__getstate__)
    source: Path
    folder: Path
    schema: pa.Schema
    batches: list[list[Segment]]
    key: str

    @property
    def loads_model(self) -> bool:
        """Whether the stage has a ``setup`` (a model, an index): executors then keep it in a long-lived worker."""
        return type(self.stage).setup is not Stage.setup


def run_batch(job: BatchJob, stage: Stage, k: int) -> dict:
    """Batch ``k`` of ``job`` through ``stage`` (set up in this worker): a Reducer's sketch, or the shard record
    after its files are written."""
    batch = read_batch(job.batches[k])
    started = time.perf_counter()
    loaded = stage.ready() and job.loads_model
    if isinstance(stage, Reducer):
        sketch = stage.sketch(batch)
        return {"k": k, "rows_in": batch_rows(batch), "sketch": sketch, "counters": take_counters(stage, loaded),
                "seconds": time.perf_counter() - started}
    out = stage.process_batch(batch)
    return write_shard(job, k, batch_rows(batch), out, take_counters(stage, loaded), time.perf_counter() - started)


def take_counters(stage: Stage, loaded: bool = False) -> dict:
    """The stage's counters since the last call (cleared), with ``setups: 1`` when this batch ran its setup."""
    counters = dict(stage.counters)
    stage.counters.clear()
    if loaded:
        counters["setups"] = 1
    return counters


def write_shard(job: BatchJob, k: int, rows_in: int, out: dict[str, list], counters: dict, seconds: float) -> dict:
    """Write batch ``k``'s kept rows, rejects and (last) its shard record; returns the record."""
    kept, rejects, dropped = split_output(out, job.schema, job.stage.name, k)
    write_parquet(job.folder / f"part-{k:05d}.parquet", kept, job.schema)
    write_jsonl(job.folder / f"rejects-{k:05d}.jsonl", rejects)
    shard = {"k": k, "rows_in": rows_in, "rows_out": len(kept[job.schema.names[0]]), "dropped": dict(dropped),
             "seconds": seconds, "counters": counters}
    write_json(job.folder / f"shard-{k:05d}.json", shard)
    return shard


def split_output(out: dict[str, list], schema: pa.Schema, stage: str, k: int):
    """Kept rows (as a batch in ``schema``), reject records and drop counts from one stage output."""
    undeclared = sorted(set(out) - set(schema.names) - {DROP, DROP_DETAIL})
    if undeclared:
        raise UndeclaredColumns(f"stage '{stage}' produced undeclared column(s) {undeclared}; add them to its outputs")
    n = batch_rows(out)
    reasons = list(out.get(DROP) if out.get(DROP) is not None else [None] * n)
    details = list(out.get(DROP_DETAIL) if out.get(DROP_DETAIL) is not None else [None] * n)
    keep = [i for i, r in enumerate(reasons) if not r]
    kept = {c: [out[c][i] for i in keep] if c in out else [None] * len(keep) for c in schema.names}
    rejects, dropped = [], Counter()
    for i, reason in enumerate(reasons):
        if reason:
            dropped[reason] += 1
            row = summarise_row({c: out[c][i] for c in schema.names if c in out})
            rejects.append({"stage": stage, "reason": reason, "detail": details[i], "id": row.get("id"), "batch": k,
                            "row": row})
    return kept, rejects, dropped
