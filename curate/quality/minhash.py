"""MinHash signatures, banded LSH and word n-gram hashing, vectorised with numpy (used by dedup and decontaminate).

- Words are hashed once (CRC-32, cached) and a k-word shingle is a multilinear combination of its word hashes
  with random odd 64-bit multipliers, passed through the splitmix64 finaliser (``ngram_hashes``).
- MinHash uses the multiply-add-shift family h(x) = ((a·x + b) mod 2^64) >> 32 on the 32-bit shingle hashes, which is
  universal for 32-bit keys and needs no modular reduction: a whole batch of documents is one (shingles × num_perm)
  array product followed by ``np.minimum.reduceat`` per document.
- LSH splits the signature into ``bands`` bands of ``rows`` rows, chosen for a Jaccard threshold by minimising the
  equally weighted false-positive and false-negative areas under the S-curve 1 - (1 - s^r)^b (``lsh_params``).
- ``NearIndex`` ties them together: sketch a batch of texts, look up the best earlier item whose Jaccard (exact,
  from stored shingle sets, or estimated from signatures) reaches the threshold, then add the item. Because every
  candidate is confirmed, an LSH false positive costs only time while a false negative is a missed duplicate, so
  callers may weight false negatives more (``fn_weight``; dedup and decontaminate use 0.8: 18 bands of 7 rows at
  threshold 0.7, which finds 79% of pairs at Jaccard 0.7, 92% at 0.75 and 99% at 0.8, against 44%, 67% and 87%
  with equal weights).

Everything is deterministic for a given seed: the same texts always give the same signatures and matches.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from curate.quality.text import words

MAX_HASH = np.uint32(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_CHUNK = 1 << 13  # shingles hashed at once: num_perm × _CHUNK uint64 values (8 MiB at 128 permutations)


def _splitmix(h: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (bijective, spreads every input bit over all output bits)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


class WordHasher:
    """Cached CRC-32 of words, and 64-bit hashes of word n-grams."""

    def __init__(self, seed: int, max_n: int):
        rng = np.random.default_rng(seed)
        self.mix = rng.integers(0, 2**64, size=max_n, dtype=np.uint64) | np.uint64(1)
        self._cache: dict[str, int] = {}

    def word_hashes(self, tokens: list[str]) -> np.ndarray:
        cache = self._cache
        for t in tokens:
            if t not in cache:
                cache[t] = zlib.crc32(t.encode())
        return np.array([cache[t] for t in tokens], dtype=np.uint64)

    def ngram_hashes(self, hashes: np.ndarray, n: int) -> np.ndarray:
        """64-bit hashes of every run of ``n`` consecutive words (none when there are fewer words)."""
        count = len(hashes) - n + 1
        if count <= 0:
            return np.empty(0, dtype=np.uint64)
        h = np.zeros(count, dtype=np.uint64)
        for j in range(n):
            h += hashes[j:j + count] * self.mix[j]
        return _splitmix(h)

    def batch_ngrams(self, token_lists: list[list[str]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The n-grams of many texts in one pass: (hashes, index of the text, first word's position in it).

        The texts' words are hashed as one array; an n-gram is kept where its first and last word belong to the
        same text.
        """
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        hashes = self.word_hashes([w for t in token_lists for w in t])
        owner = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
        grams = self.ngram_hashes(hashes, n)
        first = owner[: len(grams)]
        keep = first == owner[n - 1:]
        starts = np.arange(len(grams)) - (np.cumsum(lengths) - lengths)[first]
        return grams[keep], first[keep], starts[keep]


class MinHasher:
    """Shingle sets and MinHash signatures of texts (``shingle_words``-word shingles, ``num_perm`` hashes)."""

    def __init__(self, num_perm: int = 128, shingle_words: int = 3, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm, self.k = num_perm, shingle_words
        self.a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64)
        self.words = WordHasher(seed + 1, shingle_words)

    def shingle_sets(self, texts: list[str]) -> list[np.ndarray]:
        """Sorted unique 32-bit shingle hashes of each text (a text shorter than k words is one shingle).

        One sort of (text << 32 | shingle hash) over the whole batch orders and deduplicates every set at once.
        Texts without words get empty sets.
        """
        tokens = [words(t) for t in texts]
        grams, owner, _ = self.words.batch_ngrams(tokens, self.k)
        keys = [(owner.astype(np.uint64) << _SHIFT32) | (grams >> _SHIFT32)]
        for i, t in enumerate(tokens):
            if 0 < len(t) < self.k:
                whole = self.words.ngram_hashes(self.words.word_hashes(t), len(t)) >> _SHIFT32
                keys.append((np.uint64(i) << _SHIFT32) | whole)
        keys = np.unique(np.concatenate(keys))  # sorted, deduplicated; empty when no text has a word
        bounds = np.searchsorted(keys >> _SHIFT32, np.arange(1, len(texts), dtype=np.uint64))
        return np.split(keys & np.uint64(0xFFFFFFFF), bounds)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """A (documents × num_perm) uint32 matrix; a document without shingles gets all ``MAX_HASH``."""
        out = np.full((len(shingle_sets), self.num_perm), MAX_HASH, dtype=np.uint32)
        todo = [i for i, s in enumerate(shingle_sets) if len(s)]
        start = 0
        while start < len(todo):
            end, total = start, 0
            while end < len(todo) and (end == start or total + len(shingle_sets[todo[end]]) <= _CHUNK):
                total += len(shingle_sets[todo[end]])
                end += 1
            group = todo[start:end]
            sets = [shingle_sets[i] for i in group]
            offsets = np.cumsum([0] + [len(s) for s in sets[:-1]])
            hashed = self.a[:, None] * np.concatenate(sets)[None, :]
            hashed += self.b[:, None]
            hashed >>= _SHIFT32
            out[group] = np.minimum.reduceat(hashed, offsets, axis=1).T
            start = end
        return out


def _area(y: np.ndarray, x: np.ndarray) -> float:
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands × rows <= num_perm minimising the weighted false-positive and false-negative
    probability areas of the LSH S-curve around ``threshold``. Cached: the search takes tens of milliseconds and
    every ``NearIndex`` (one per dedup batch sketch and per image scope) asks for it."""
    below, above = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    best, best_cost = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _area(1 - (1 - below**r) ** b, below)
            fn = _area((1 - above**r) ** b, above)
            cost = fp_weight * fp + fn_weight * fn
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


class LSHIndex:
    """Band tables: items whose signatures agree on every row of at least one band are candidates."""

    def __init__(self, bands: int, rows: int, seed: int = 1):
        self.bands, self.rows = bands, rows
        self.tables: list[dict[int, list[int]]] = [{} for _ in range(bands)]
        self.mix = np.random.default_rng(seed).integers(0, 2**64, size=rows, dtype=np.uint64) | np.uint64(1)

    def keys(self, signatures: np.ndarray) -> list[list[int]]:
        """One 64-bit key per band for each signature."""
        n = len(signatures)
        bands = signatures[:, : self.bands * self.rows].reshape(n, self.bands, self.rows).astype(np.uint64)
        return _splitmix((bands * self.mix).sum(axis=2, dtype=np.uint64)).tolist()

    def query(self, keys: list[int]) -> list[int]:
        found: set[int] = set()
        for table, key in zip(self.tables, keys):
            found.update(table.get(key, ()))
        return sorted(found)

    def insert(self, keys: list[int], item: int) -> None:
        for table, key in zip(self.tables, keys):
            table.setdefault(key, []).append(item)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays."""
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0


@dataclass
class Sketches:
    """A batch of texts prepared for lookup: shingle sets, signatures and band keys (one entry per text)."""

    shingles: list[np.ndarray]
    signatures: np.ndarray
    keys: list[list[int]]


class NearIndex:
    """Near-duplicate lookup over items added one by one; items are numbered 0, 1, ... in order of ``add``."""

    def __init__(self, threshold: float, num_perm: int = 128, shingle_words: int = 3, seed: int = 1,
                 confirm: Literal["exact", "estimate"] = "exact", fn_weight: float = 0.5):
        self.threshold, self.confirm = threshold, confirm
        self.hasher = MinHasher(num_perm, shingle_words, seed)
        self.lsh = LSHIndex(*lsh_params(threshold, num_perm, 1 - fn_weight, fn_weight), seed=seed + 2)
        self._stored: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stored)

    def sketch(self, texts: list[str]) -> Sketches:
        shingles = self.hasher.shingle_sets(texts)
        signatures = self.hasher.signatures(shingles)
        return Sketches(shingles, signatures, self.lsh.keys(signatures))

    def best_match(self, sketches: Sketches, i: int) -> tuple[int, float] | None:
        """The earlier item most similar to text ``i`` with Jaccard >= threshold (ties: the earliest), or None."""
        if not len(sketches.shingles[i]):
            return None
        candidates = self.lsh.query(sketches.keys[i])
        if not candidates:
            return None
        if self.confirm == "exact":
            scores = np.array([jaccard(sketches.shingles[i], self._stored[c]) for c in candidates])
        else:
            scores = (np.stack([self._stored[c] for c in candidates]) == sketches.signatures[i]).mean(axis=1)
        best = int(np.argmax(scores))
        return (candidates[best], float(scores[best])) if scores[best] >= self.threshold else None

    def add(self, sketches: Sketches, i: int) -> int:
        """Index text ``i``; returns its item number (texts without words are numbered but never match)."""
        item = len(self._stored)
        keep = sketches.shingles[i] if self.confirm == "exact" else sketches.signatures[i]
        self._stored.append(keep)
        if len(sketches.shingles[i]):
            self.lsh.insert(sketches.keys[i], item)
        return item
