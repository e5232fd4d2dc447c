"""The one step protocol: every step of a run (ingest, each row stage, export, push, finetune, compare, evaluate and
an ablation's steps) is a ``Step``, and ``run_step`` is the only code that decides whether a step is done.

A step has a fingerprint (what it consumes: the fingerprint of the step before it, its config, the code version and
anything else that decides its output), a marker file, and ``build``, which writes the step's output and returns a
JSON-able record with its ``stats``. ``run_step`` skips ``build`` when the marker holds the same fingerprint, and
otherwise removes the marker, builds, and writes the marker last, so a killed step never looks done. A step that can
resume part-way (a row stage keeps its finished batches) does so inside ``build``; the others write their output
under a temporary name and rename it when complete (``curate.io.building``).

Every folder or marker a step writes lies inside its run folder (``inside``); ``--force STEP`` removes the step's
outputs and those of every step after it, the same way for every step (``Step.clear``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.io import read_json, write_json

if TYPE_CHECKING:
    from curate.executors import Executor
    from curate.progress import Progress


@dataclass
class StepStats:
    """What one step did: rows in and out, drops by reason, seconds, its own counters, whether it was cached."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # time spent on the step's work, summed over batches (and workers)
    counters: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0  # wall-clock time of the step's build, as run_step measured it
    cached: bool = False

    def add(self, other: dict) -> None:
        self.rows_in += other["rows_in"]
        self.rows_out += other["rows_out"]
        self.seconds += other["seconds"]
        self.dropped = dict(Counter(self.dropped) + Counter(other["dropped"]))
        self.counters = dict(Counter(self.counters) + Counter(other.get("counters", {})))

    def plain(self) -> dict:
        """The stats as saved in a marker (``cached`` is decided when the marker is read)."""
        return {k: v for k, v in vars(self).items() if k != "cached"}


class StepFailed(Exception):
    """A step raised; what it completed is kept and a rerun resumes after it."""


def fingerprint(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def file_state(path: Path | None) -> list:
    """Sizes and mtimes of the files under ``path``: a local input's fingerprint changes when its files do."""
    if path is None or not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def inside(run_dir: Path, relative: str | Path) -> Path:
    """``run_dir / relative``, refused (ValueError) unless it lies inside ``run_dir``: nothing is written or removed
    outside a run folder, whatever a pipeline names its steps."""
    root = Path(run_dir).resolve()
    path = (root / relative).resolve()
    if path == root or root not in path.parents:
        raise ValueError(f"step output '{relative}' would lie outside the run folder {root}")
    return path


@dataclass
class Context:
    """What flows from step to step: where the run is, the rows the next row step reads and the fingerprint the
    next step consumes, the executor, progress, and what delivery steps hand on (compared answers, the evaluation)."""

    run_dir: Path
    executor: Executor
    progress: Progress
    rows: Path | None = None
    fp: str = ""
    results: dict[str, Any] = field(default_factory=dict)


class Step:
    """One step of a run. Subclasses set ``name`` (what ``--force`` and reports call it) and implement
    ``fingerprint``, ``marker``, ``build`` and, when they write more than their marker, ``outputs``."""

    name: str
    advances = True  # whether later steps consume this step's fingerprint (compare and evaluate do not)

    def fingerprint(self, ctx: Context) -> str:
        raise NotImplementedError

    def marker(self, run_dir: Path) -> Path:
        raise NotImplementedError

    def build(self, ctx: Context, fp: str) -> dict:
        """Write the step's output; return a JSON-able record holding ``stats`` (``StepStats.plain()``)."""
        raise NotImplementedError

    def outputs(self, run_dir: Path) -> list[Path]:
        """Files and folders the step writes besides its marker (removed by ``--force``)."""
        return []

    def after(self, ctx: Context, record: dict) -> None:
        """Hand on what later steps need (the rows folder, a result); called when built and when cached."""

    def matches(self, name: str) -> bool:
        return name == self.name

    def clear(self, run_dir: Path) -> None:
        self.marker(run_dir).unlink(missing_ok=True)
        for path in self.outputs(run_dir):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def run_step(step: Step, ctx: Context) -> tuple[StepStats, dict]:
    """Run ``step`` unless its marker holds its fingerprint; returns its stats and its marker's record."""
    fp = step.fingerprint(ctx)
    marker = step.marker(ctx.run_dir)
    record = read_json(marker) if marker.exists() else None
    cached = record is not None and record.get("fingerprint") == fp
    if not cached:
        marker.unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            record = {"fingerprint": fp, **step.build(ctx, fp)}
        except (OSError, RuntimeError) as exc:  # the machine, a library or a model broke, not the input
            message = " ".join(str(exc).split()).rstrip(".")
            raise StepFailed(f"step '{step.name}' failed: {type(exc).__name__}: {message}") from exc
        record["stats"]["wall_seconds"] = time.perf_counter() - started
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json(marker, record)
    step.after(ctx, record)
    if step.advances:
        ctx.fp = fp
    return StepStats(**record["stats"], cached=cached), record


def force(steps: list[Step], name: str, run_dir: Path) -> None:
    """Remove the outputs of the step called ``name`` and of every step after it (ValueError when none is)."""
    for i, step in enumerate(steps):
        if step.matches(name):
            for later in steps[i:]:
                later.clear(run_dir)
            return
    raise ValueError(f"--force {name}: no such step; steps are {', '.join(s.name for s in steps)}")
