"""A chromadb collection of chunks with our own embeddings, and the ``index`` stage that fills it.

The collection lives in a ``chromadb.PersistentClient`` folder; ids are the chunks' content-hash ids, so indexing the
same chunks twice changes nothing. Embeddings always come from ``curate.embed`` (sentence-transformers, offline by
default): chromadb's default embedding function downloads a model and is never used. The embedding model's name is
stored on the collection and checked on open, so a query is never embedded with a different model.

The ``index`` stage consumes ``chunk`` rows (``id``, ``text``, ``doc_id``, ``page``, ``page_end``, ``source``,
``license``), writes them to ``RUN_DIR/<path>`` (default ``RUN_DIR/index``) and passes every row through unchanged.

Example::

    - stage: index
      path: index          # relative to the run folder
      collection: chunks
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate.embed import embed, load_embedder
from curate.stage import Reducer, StageConfig, rows


@dataclass
class Hit:
    id: str
    text: str
    doc_id: str
    page: int
    page_end: int
    source: str
    license: str
    distance: float


class IndexUnavailable(Exception):
    """The index cannot be used as asked (missing, or built with another embedding model)."""


class ChunkIndex:
    """A persistent chromadb collection of chunks, embedded with ``embedding_model``."""

    def __init__(self, path: str | Path, collection: str = "chunks", embedding_model: str | None = None,
                 create: bool = True, reset: bool = False):
        import chromadb
        from chromadb.config import Settings

        self.path = Path(path)
        if not create and not self.path.exists():
            raise IndexUnavailable(f"no index at {self.path}: build one with `curate index` or an `index` stage")
        self.path.mkdir(parents=True, exist_ok=True)
        self.client = chromadb.PersistentClient(path=str(self.path),
                                                settings=Settings(anonymized_telemetry=False, allow_reset=True))
        model_name = embedding_model or "embedded:all-MiniLM-L6-v2"
        if reset and collection in [c.name for c in self.client.list_collections()]:
            self.client.delete_collection(collection)
        if not create and collection not in [c.name for c in self.client.list_collections()]:
            raise IndexUnavailable(f"index {self.path} has no collection '{collection}'")
        self.collection = self.client.get_or_create_collection(
            collection, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": model_name})
        stored = (self.collection.metadata or {}).get("embedding_model")
        if stored != model_name:
            raise IndexUnavailable(f"index {self.path}/{collection} was built with embedding model '{stored}', "
                              f"not '{model_name}': rebuild it or use the same model")
        self.embedding_model = embedding_model
        self._embedder = None

    @property
    def embedder(self):
        """The embedding model, loaded on first use (adding precomputed vectors needs none)."""
        if self._embedder is None:
            self._embedder = load_embedder(self.embedding_model)
        return self._embedder

    def add(self, chunk_rows: list[dict], vectors: np.ndarray | None = None, batch_size: int = 64) -> int:
        """Upsert chunk rows (idempotent by id: a row whose id came before in the call is left out) with their
        ``vectors`` (embedded here when None); returns how many were written."""
        first: dict[str, int] = {}
        for k, row in enumerate(chunk_rows):
            first.setdefault(row["id"], k)
        if len(first) < len(chunk_rows):
            keep = list(first.values())
            chunk_rows = [chunk_rows[k] for k in keep]
            vectors = None if vectors is None else vectors[keep]
        for i in range(0, len(chunk_rows), batch_size):
            part = chunk_rows[i:i + batch_size]
            part_vectors = embed([r["text"] for r in part], self.embedder) if vectors is None \
                else vectors[i:i + batch_size]
            self.collection.upsert(
                ids=[r["id"] for r in part], embeddings=part_vectors.tolist(), documents=[r["text"] for r in part],
                metadatas=[{"doc_id": r["doc_id"], "page": int(r["page"]),
                            "page_end": int(r["page_end"] if r["page_end"] is not None else r["page"]),
                            "source": r["source"], "license": r["license"] or "unknown"} for r in part])
        return len(chunk_rows)

    def count(self) -> int:
        return self.collection.count()

    def query(self, texts: list[str], k: int = 4) -> list[list[Hit]]:
        """The ``k`` nearest chunks for each text, nearest first."""
        if not texts:
            return []
        vectors = embed(texts, self.embedder)
        return self.query_vectors(vectors, k)

    def query_vectors(self, vectors: np.ndarray, k: int = 4) -> list[list[Hit]]:
        res = self.collection.query(query_embeddings=vectors.tolist(), n_results=min(k, max(self.count(), 1)),
                                    include=["documents", "metadatas", "distances"])
        return [[Hit(i, d, m["doc_id"], m["page"], m["page_end"], m["source"], m["license"], dist)
                 for i, d, m, dist in zip(ids, docs, metas, dists)]
                for ids, docs, metas, dists in zip(res["ids"], res["documents"], res["metadatas"], res["distances"])]

    def chunks(self) -> list[dict]:
        """Every chunk in the collection (id, text and metadata), in id order."""
        got = self.collection.get(include=["documents", "metadatas"])
        items = sorted(zip(got["ids"], got["documents"], got["metadatas"]))
        return [{"id": i, "text": d, **m} for i, d, m in items]


class IndexConfig(StageConfig):
    path: str = "index"
    collection: str = "chunks"
    embedding_model: str | None = None


def resolve(run_dir: Path | None, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or run_dir is None else run_dir / p


class Index(Reducer):
    """Embeds each batch's chunk rows anywhere (``sketch``), then writes them into the one collection in input order
    (``consume``: a chromadb folder has one writer). The collection is rebuilt on every (re)run of the stage. Rows
    pass through unchanged."""

    name = "index"
    Config = IndexConfig
    inputs = ("id", "kind", "text", "doc_id", "page", "page_end", "source", "license")
    _FIELDS = ("id", "text", "doc_id", "page", "page_end", "source", "license")

    def setup(self) -> None:
        self._embedder = load_embedder(self.config.embedding_model)

    def sketch(self, batch: dict[str, list]) -> tuple[list[dict], np.ndarray | None]:
        chunk_rows = [{k: r[k] for k in self._FIELDS} for r in rows(batch) if r["kind"] == "chunk"]
        return chunk_rows, embed([r["text"] for r in chunk_rows], self._embedder) if chunk_rows else None

    def begin(self) -> None:
        c = self.config
        self.index = ChunkIndex(resolve(self.run_dir, c.path), c.collection, c.embedding_model, reset=True)

    def consume(self, sketch: tuple[list[dict], np.ndarray | None]) -> dict[str, list]:
        chunk_rows, vectors = sketch
        if chunk_rows:
            self.counters["indexed"] += self.index.add(chunk_rows, vectors)
        return {}
