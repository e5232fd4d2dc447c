"""Rows curate already wrote (a stage folder of another run, or an export's rows) read back as they are, so that
the output of one run can be a source of the next: pairs synthesized in one pipeline curated in another.

``spec.path`` is a folder of curate's row parquet files (``part-*.parquet``, as every stage folder holds). Each row
keeps its id, kind, source, licence, provenance, messages and, for a grounded pair, its ``context`` and
``citations`` (an ingest with a ``rows`` source writes those two columns for every source); other columns a stage
added (``judge_score``, ``ifd``...) are not carried. A row without a licence gets the source's.

Options: ``kinds``: only rows of these kinds (e.g. ``[qa]`` to leave a synthesis run's chunks out).

Example::

    sources:
      - source: rows
        name: fm-abstractive
        path: runs/abstractive/04-synth_qa
        options: {kinds: [qa]}
"""

from __future__ import annotations

from typing import Iterator

from curate.ingest import base
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.io import iter_batches, parquet_files
from curate.schema import GROUNDED_SCHEMA


class Options(base.Options):
    kinds: list[str] | None = None


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    path = base.require_path(spec, "folder of curate rows (a stage folder)")
    if not path.is_dir() or not parquet_files(path):
        raise ConnectorError(f"source '{spec.name}': no curate row files (part-*.parquet) in {path}: give a stage "
                             "folder of a run, such as runs/NAME/04-synth_qa")
    names = GROUNDED_SCHEMA.names
    for batch in iter_batches(path, 256):
        for i in range(len(batch["id"])):
            row = {name: batch[name][i] if name in batch else None for name in names}
            if options.kinds is not None and row["kind"] not in options.kinds:
                continue
            row["license"] = row["license"] or spec.license
            yield row
