"""Retrieval-augmented synthesis: chunk -> embed -> chromadb -> grounded QA (``synth_qa``) and VQA (``synth_vqa``).

The stages run inside pipelines; these two functions are what ``curate index`` and ``curate synth`` call, built on
the same runner (so they resume, write rejects and report the same way). An index folder holds::

    INDEX_DIR/chunks/   chunk rows (parquet), the synthesis input
    INDEX_DIR/chroma/   the chromadb collection of those chunks
"""

from __future__ import annotations

from pathlib import Path

from curate.io import iter_batches
from curate.progress import Progress
from curate.rowsteps import StageStep, run_stages
from curate.stage import rows
from curate.steps import StepStats, file_state, fingerprint


def index_folder(rows_dir: Path, index_dir: Path, chunk: dict | None = None, collection: str = "chunks",
                 embedding_model: str | None = None, progress: Progress | None = None) -> tuple[StepStats, int]:
    """Chunk the page rows in ``rows_dir`` (chunk rows pass through) and upsert the chunks into ``index_dir``.

    Returns the chunk stage's stats and the number of chunks in the collection afterwards.
    """
    from curate.rag.chunk import Chunk
    from curate.rag.index import ChunkIndex

    chunker = Chunk({**(chunk or {}), "embedding_model": embedding_model})
    (stats,), _ = run_stages([StageStep("chunks", chunker)], rows_dir, index_dir, fingerprint(file_state(rows_dir)),
                             progress=progress)
    index = ChunkIndex(index_dir / "chroma", collection, embedding_model)
    for batch in iter_batches(index_dir / "chunks", 256):
        index.add([r for r in rows(batch) if r["kind"] == "chunk"])
    return stats, index.count()


def synth_folder(index_dir: Path, out_dir: Path, config: dict | None = None, batch_size: int = 8,
                 progress: Progress | None = None) -> StepStats:
    """Grounded QA pairs from the chunks of an index made by ``index_folder``; resumable like any stage."""
    from curate.rag.synth import SynthQA

    stage = SynthQA({**(config or {}), "index": str((index_dir / "chroma").resolve())})
    (stats,), _ = run_stages([StageStep(out_dir.name, stage, batch_size)], index_dir / "chunks", out_dir.parent,
                             fingerprint(file_state(index_dir / "chunks")), progress=progress)
    return stats
