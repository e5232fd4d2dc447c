"""Cheap reference-based metrics for open answers: token F1 and ROUGE-L, each in [0, 1].

Both compare an answer with its reference after the same normalisation: lowercase, words of letters and digits only,
and the English articles a / an / the dropped (SQuAD's convention), so punctuation and casing do not count.

- ``token_f1``: harmonic mean of precision and recall of the answer's tokens against the reference's, counting
  each token as often as it occurs in both (bag-of-words overlap).
- ``rouge_l``: F-measure (beta = 1) of the longest common subsequence of tokens, so word order counts.

Two empty texts score 1; one empty text scores 0. These reward wording, not correctness: the judge's verdict is
the primary open-answer metric, these are the cheap cross-check that needs no model.
"""

from __future__ import annotations

import re
from collections import Counter

_ARTICLES = {"a", "an", "the"}


def tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", (text or "").lower()) if t not in _ARTICLES]


def _f1(overlap: int, n_answer: int, n_reference: int) -> float:
    if overlap == 0:
        return 0.0
    precision, recall = overlap / n_answer, overlap / n_reference
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    if not a or not r:
        return float(a == r)
    return _f1(sum((Counter(a) & Counter(r)).values()), len(a), len(r))


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming over one row)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    if not a or not r:
        return float(a == r)
    return _f1(lcs_length(a, r), len(a), len(r))
