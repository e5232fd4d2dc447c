"""Metrics and differences pooled over training seeds: one model trained with several seeds against a reference
trained with the same seeds, every model scored on the same items.

``pooled_metrics(runs)`` takes ``{seed: evaluation folder}`` and returns per metric the mean over seeds and items
with the crossed interval (``stats.crossed_bootstrap_ci``: seeds and items resampled independently).
``compare_seeded(reference, other)`` takes two ``{seed: evaluation folder}`` maps (an untrained model has one
folder, used against every seed of the reference) and returns, per metric of ``curate.evaluate.harness.METRICS``:

- ``difference``: the mean over seeds and items of ``other - reference`` (seed by seed, item by item), with the
  crossed interval: seeds and items resampled independently, so it covers both the items' spread and the seeds';
- ``per_seed``: each seed's own paired difference and item-bootstrap interval.

``against_seeds(reference, other)`` is that pairing of seeds: each seed of the reference with the other model's run
of the same seed, or with its one run.

Folders are paired as ``compare_runs`` pairs them (refused unless made the same way); items are those every folder
scored (by id); a metric is kept for the items where every folder has a value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.evaluate import stats
from curate.evaluate.harness import METRICS, EvalError, SettingsMismatch, bootstrap_settings, differences, read_run


def _scores(records: list[dict], ids: list[str], name: str) -> list[float | None]:
    value = METRICS[name][0]
    by_id = {r["id"]: r for r in records}
    return [value(by_id[i]) for i in ids]


def _complete(scores: dict) -> list[int]:
    """The item positions where every run has a score."""
    n = len(next(iter(scores.values())))
    return [j for j in range(n) if all(v[j] is not None for v in scores.values())]


def against_seeds(reference: dict[int, str | Path], other: dict[int, str | Path]) -> dict[int, str | Path]:
    """``other``'s run for each seed of ``reference``: an untrained model's one run stands against every seed."""
    if len(other) == 1:
        return {s: next(iter(other.values())) for s in reference}
    if sorted(other) != sorted(reference):
        raise EvalError(f"seeds differ: reference has {sorted(reference)}, the other model {sorted(other)}")
    return other


def _tables(runs: dict[tuple, tuple[dict, list[dict]]]) -> tuple[list[str], dict[str, dict[tuple, list]]]:
    """The items every run scored (by id), and per metric each run's scores on them (None where it has none)."""
    ids = sorted(set.intersection(*({r["id"] for r in records} for _, records in runs.values())))
    if not ids:
        raise EvalError("the evaluations share no item")
    return ids, {name: {key: _scores(records, ids, name) for key, (_, records) in runs.items()} for name in METRICS}


def pooled_metrics(runs: dict[int, str | Path]) -> dict:
    """Per metric: the mean over seeds and items, its crossed interval and the items counted."""
    read = {s: read_run(folder) for s, folder in runs.items()}
    bootstrap = bootstrap_settings(next(iter(read.values()))[0])
    _, scores = _tables(read)
    out = {}
    for name, by_seed in scores.items():
        keep = _complete(by_seed)
        if keep:
            table = np.array([[v[j] for j in keep] for v in by_seed.values()], dtype=float)
            low, high = stats.crossed_bootstrap_ci(table, **bootstrap)
            out[name] = {"value": float(table.mean()), "ci_low": low, "ci_high": high, "n": len(keep),
                         "seeds": len(by_seed), "level": bootstrap["level"]}
    return out


def compare_seeded(reference: dict[int, str | Path], other: dict[int, str | Path]) -> dict:
    """Pooled and per-seed differences ``other - reference`` (see the module docstring)."""
    seeds = sorted(reference)
    other = against_seeds(reference, other)
    runs = {(side, s): read_run(folder) for side, folders in (("ref", reference), ("other", other))
            for s, folder in folders.items()}
    summary, records = runs[("ref", seeds[0])]
    first = {r["id"]: r for r in records}
    for (side, s), (sb, rb) in runs.items():
        found = differences(summary, sb, [(first[r["id"]], r) for r in rb if r["id"] in first])
        if found:
            raise SettingsMismatch(f"seed {s} of the {side} model was not evaluated like the reference's seed "
                                   f"{seeds[0]}:\n  " + "\n  ".join(found))
    bootstrap = bootstrap_settings(summary)
    ids, scores = _tables(runs)
    out = {"seeds": seeds, "n_items": len(ids), "bootstrap": {**bootstrap, "method": "crossed percentile"},
           "metrics": {}}
    for name, by_run in scores.items():
        keep = _complete(by_run)
        if not keep:
            continue
        ref, oth = (np.array([[by_run[(side, s)][j] for j in keep] for s in seeds], dtype=float)
                    for side in ("ref", "other"))
        diff = oth - ref
        low, high = stats.crossed_bootstrap_ci(diff, **bootstrap)
        per_seed = {}
        for i, s in enumerate(seeds):
            d_low, d_high = stats.bootstrap_ci(diff[i], **bootstrap)
            per_seed[str(s)] = {"value": float(diff[i].mean()), "ci_low": d_low, "ci_high": d_high}
        out["metrics"][name] = {
            "n": len(keep),
            "difference": {"value": float(diff.mean()), "ci_low": low, "ci_high": high},
            "per_seed": per_seed}
    return out
