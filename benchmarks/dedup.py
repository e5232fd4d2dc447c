"""Near-duplicate detection on FirstAidQA with injected near-duplicates: curate's ``dedup`` stage vs datasketch.

Every FirstAidQA pair is kept, and ``--copies`` of them are copied with small edits (1 to ``--max-edits`` words swapped,
substituted, deleted or inserted, plus case and punctuation changes) and placed at a random later position. The ground
truth is computed by brute force: a document is a duplicate when some earlier document has an exact word-shingle Jaccard
>= ``--threshold`` with it (this includes FirstAidQA's own repeated pairs). Each method streams the documents in order,
flags a document when it matches an earlier one, and is timed end to end from text to verdicts (tokenising, shingling,
hashing, LSH, confirmation).

Methods, at the same shingles, number of permutations and LSH bands × rows:

- ``curate dedup``: the registered stage as a pipeline runs it (exact pass, then MinHash LSH with exact-Jaccard
  confirmation), in batches of 256.
- ``curate near, estimate``: the stage's near pass alone, confirming by the signature estimate.
- ``datasketch``: ``MinHash.bulk`` and ``MinHashLSH`` (``query`` then ``insert``), confirming by
  ``MinHash.jaccard``.

Usage::

    python benchmarks/dedup.py [--data PATH] [--copies 500] [--max-edits 3] [--threshold 0.7] [--shingle-words 3]
                               [--num-perm 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from curate.quality.dedup import Dedup, DedupConfig
from curate.quality.minhash import lsh_params
from curate.quality.text import words
from curate.schema import COLUMNS, make_qa
from curate.stage import DROP, columns

DATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "qa" / "firstaidqa" / "firstaidqa_v1.json"
FILLERS = ("really", "gently", "carefully", "always", "quickly", "immediately", "then", "also", "person", "casualty")


def load_pairs(path: Path) -> list[tuple[str, str]]:
    return [(d["question"], d["answer"]) for d in json.loads(Path(path).read_text())]


def perturb(text: str, rng: random.Random, max_edits: int = 3) -> str:
    """``text`` with 1 to ``max_edits`` word edits (swap, substitute, delete, insert), and in half the cases its
    case and punctuation changed too."""
    tokens = text.split(" ")
    for _ in range(rng.randint(1, max_edits)):
        i = rng.randrange(max(1, len(tokens) - 1))
        edit = rng.choice(("swap", "substitute", "delete", "insert"))
        if edit == "swap" and len(tokens) > 1:
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif edit == "substitute":
            tokens[i] = rng.choice(FILLERS)
        elif edit == "delete" and len(tokens) > 1:
            del tokens[i]
        else:
            tokens.insert(i, rng.choice(FILLERS))
    text = " ".join(tokens)
    if rng.random() < 0.5:
        text = text.lower().replace(",", "").replace(".", " .").replace("?", "")
    return text


def inject_near_duplicates(pairs: list[tuple[str, str]], copies: int, seed: int = 0, max_edits: int = 3):
    """(documents, {copy position: original position}): ``copies`` edited copies, each placed after its original.

    The edit goes to the answer; the question is copied as it is or lower-cased.
    """
    rng = random.Random(seed)
    slots: dict[int, list[int]] = {}
    for src in sorted(rng.sample(range(len(pairs)), copies)):
        slots.setdefault(rng.randrange(src, len(pairs)), []).append(src)
    out, position, origin = [], {}, {}
    for i, pair in enumerate(pairs):
        position[i] = len(out)
        out.append(pair)
        for src in slots.get(i, []):
            question, answer = pairs[src]
            origin[len(out)] = position[src]
            out.append((question.lower() if rng.random() < 0.5 else question, perturb(answer, rng, max_edits)))
    return out, origin


def true_duplicates(texts: list[str], k: int, threshold: float, block: int = 1000) -> set[int]:
    """Indices of documents with an earlier document at exact k-word-shingle Jaccard >= threshold (brute force)."""
    vocab: dict[tuple, int] = {}
    indptr, indices = [0], []
    for text in texts:
        tokens = words(text)
        grams = {tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1)} or ({tuple(tokens)} if tokens else set())
        indices += [vocab.setdefault(g, len(vocab)) for g in grams]
        indptr.append(len(indices))
    m = sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(texts), len(vocab)))
    sizes = np.asarray(m.sum(axis=1)).ravel()
    dups = set()
    for start in range(0, len(texts), block):
        inter = (m[start:start + block] @ m.T).toarray()
        union = sizes[start:start + block, None] + sizes[None, :] - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), 0)
        for r in range(jac.shape[0]):
            i = start + r
            if i and jac[r, :i].max() >= threshold:
                dups.add(i)
    return dups


def qa_rows(docs: list[tuple[str, str]]) -> list[dict]:
    return [make_qa(question=q, answer=a, source="bench", license=None, origin="bench", locator=str(i))
            for i, (q, a) in enumerate(docs)]


def run_stage(rows: list[dict], config: dict, batch_size: int = 256) -> tuple[set[int], float]:
    """Positions the dedup stage drops, and the seconds it took on ready batches (as the runner hands them)."""
    stage = Dedup(config)
    batches = [columns(rows[start:start + batch_size], COLUMNS) for start in range(0, len(rows), batch_size)]
    flagged: set[int] = set()
    started = time.perf_counter()
    for b, batch in enumerate(batches):
        out = stage(batch)
        flagged |= {b * batch_size + i for i, reason in enumerate(out[DROP]) if reason}
    return flagged, time.perf_counter() - started


def run_datasketch(texts: list[str], threshold: float, k: int, num_perm: int, params: tuple[int, int]):
    """Positions datasketch flags (query before insert, confirmed by the estimated Jaccard), and the seconds."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    shingles = []
    for text in texts:
        tokens = words(text)
        grams = {" ".join(tokens[i:i + k]) for i in range(len(tokens) - k + 1)} or {" ".join(tokens)}
        shingles.append([g.encode() for g in grams])
    hashes = MinHash.bulk(shingles, num_perm=num_perm, seed=1)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=params)
    flagged = set()
    for i, m in enumerate(hashes):
        if any(m.jaccard(hashes[j]) >= threshold for j in lsh.query(m)):
            flagged.add(i)
        lsh.insert(i, m)
    return flagged, time.perf_counter() - started


def scores(flagged: set[int], truth: set[int]) -> tuple[float, float]:
    """(recall, precision) of flagged documents against the true duplicates."""
    hit = len(flagged & truth)
    return hit / len(truth) if truth else 1.0, hit / len(flagged) if flagged else 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--copies", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--shingle-words", type=int, default=3)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--max-edits", type=int, default=3, help="word edits per copy: 1 to this many")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    docs, origin = inject_near_duplicates(load_pairs(args.data), args.copies, args.seed, args.max_edits)
    texts = [f"{q}\n{a}" for q, a in docs]
    truth = true_duplicates(texts, args.shingle_words, args.threshold)
    config = DedupConfig(threshold=args.threshold, shingle_words=args.shingle_words, num_perm=args.num_perm)
    params = lsh_params(config.threshold, config.num_perm, 1 - config.fn_weight, config.fn_weight)
    rows = qa_rows(docs)
    results = {
        "curate dedup": run_stage(rows, config.model_dump()),
        "curate near, estimate": run_stage(rows, {**config.model_dump(), "exact": False, "confirm": "estimate"}),
        "datasketch": run_datasketch(texts, args.threshold, args.shingle_words, args.num_perm, params),
    }
    positives = [c for c in origin if c in truth]
    missed = sum(c not in results["curate dedup"][0] for c in positives)
    print(f"{len(docs)} documents ({len(origin)} injected copies, {len(truth)} true duplicates at Jaccard >= "
          f"{args.threshold}); {args.shingle_words}-word shingles, {args.num_perm} permutations, "
          f"LSH {params[0]} bands x {params[1]} rows")
    base = len(docs) / results["datasketch"][1]
    print(f"{'method':<24}{'docs/s':>10}{'x datasketch':>14}{'recall':>9}{'precision':>11}{'flagged':>9}")
    for name, (flagged, seconds) in results.items():
        recall, precision = scores(flagged, truth)
        rate = len(docs) / seconds
        print(f"{name:<24}{rate:>10,.0f}{rate / base:>14.2f}{recall:>9.3f}{precision:>11.3f}{len(flagged):>9}")
    print(f"injected copies at true Jaccard >= threshold: {len(positives)}; missed by curate dedup: {missed}")


if __name__ == "__main__":
    main()
