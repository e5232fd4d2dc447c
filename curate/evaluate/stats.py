"""Confidence intervals and paired tests for evaluation scores, with no randomness that is not seeded.

Inputs are per-item scores in item order (0/1 for exact-match correctness, 0..1 for graded scores); outputs are plain
floats and dicts that go into ``summary.json`` as they are:

- ``bootstrap_ci(values)``: the percentile bootstrap interval of the mean (``resamples`` draws of n items with
  replacement from a ``numpy`` generator seeded with ``seed``; the interval's ends are the (1-level)/2 and
  (1+level)/2 quantiles of the resampled means, linearly interpolated).
- ``paired_bootstrap_ci(a, b)``: the same interval for the mean paired difference ``b - a`` (items resampled as pairs).
- ``mcnemar_exact(a, b)``: McNemar's exact test for two binary outcomes on the same items: ``b01`` items only ``a``
  got right, ``b10`` items only ``b`` got right, and the two-sided p-value ``min(1, 2 * P(X <= min))`` with
  ``X ~ Binomial(b01 + b10, 1/2)``.
- ``sign_test(a, b)``: the exact two-sided sign test on paired graded scores (ties dropped), same binomial tail.
- ``wilson(k, n)``: the Wilson score interval of a proportion k/n (a sample of rows read by a person: how many
  are correct), 95% for the default ``z``.
- ``crossed_bootstrap_ci(table)``: the interval of the mean of a seeds x items table of paired differences (one
  row per training seed, one column per item), resampling seeds and items independently, each with replacement (the
  two-way bootstrap for crossed factors): the interval widens both when items disagree and when seeds do.
"""

from __future__ import annotations

from math import comb, sqrt

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95
_CHUNK = 1_000  # resamples drawn at once: bounds memory at CHUNK * n indices


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        means[start:start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return means


def bootstrap_ci(values, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``; (nan, nan) for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan")
    means = _resampled_means(data, resamples, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_bootstrap_ci(a, b, *, resamples: int = RESAMPLES, level: float = LEVEL,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``b - a`` over paired items."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores differ in length: {a.size} and {b.size}")
    return bootstrap_ci(b - a, resamples=resamples, level=level, seed=seed)


def crossed_bootstrap_ci(table, *, resamples: int = RESAMPLES, level: float = LEVEL,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of a (seeds, items) table, seeds and items drawn independently with
    replacement in every resample; with one seed it is a bootstrap over the items alone."""
    data = np.asarray(table, dtype=float)
    if data.ndim != 2 or data.size == 0:
        raise ValueError(f"crossed_bootstrap_ci needs a non-empty (seeds, items) table, got shape {data.shape}")
    rng = np.random.default_rng(seed)
    n_seeds, n_items = data.shape
    means = np.empty(resamples)
    for r in range(resamples):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_items, n_items)
        means[r] = data[np.ix_(rows, cols)].mean()
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def binomial_two_sided(k: int, n: int) -> float:
    """Two-sided exact p-value of ``min(k, n - k)`` successes in ``n`` fair coin flips (1.0 when n is 0)."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(comb(n, i) for i in range(low + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def mcnemar_exact(a, b) -> dict:
    """McNemar's exact test on paired booleans: counts of discordant pairs and the two-sided p-value."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes differ in length: {a.size} and {b.size}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return {"test": "mcnemar_exact", "only_a": only_a, "only_b": only_b,
            "p_value": binomial_two_sided(only_a, only_a + only_b)}


def sign_test(a, b) -> dict:
    """Exact sign test on paired scores: items where ``b`` is higher, lower, tied, and the two-sided p-value."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    higher, lower = int((diff > 0).sum()), int((diff < 0).sum())
    return {"test": "sign_exact", "b_higher": higher, "b_lower": lower, "ties": int(diff.size - higher - lower),
            "p_value": binomial_two_sided(higher, higher + lower)}


def metric(values, *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> dict:
    """The mean of ``values`` with its bootstrap interval, as written to ``summary.json``."""
    data = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(data, resamples=resamples, level=level, seed=seed)
    return {"value": float(data.mean()) if data.size else None, "ci_low": None if data.size == 0 else low,
            "ci_high": None if data.size == 0 else high, "n": int(data.size), "level": level}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (95% for the default z); (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
