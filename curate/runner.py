"""Runs a plan: ingest, then each stage in order, with fingerprints, resumable shards, rejects and a report.

Layout of a run folder::

    RUN_DIR/01-ingest/part-SSS-NNNNN.parquet   rows of source SSS
    RUN_DIR/01-ingest/source-SSS.json          that source is complete (its counts)
    RUN_DIR/NN-stage/part-NNNNN.parquet        rows kept from input batch NNNNN
    RUN_DIR/NN-stage/shard-NNNNN.json          that batch is complete (its counts)
    RUN_DIR/NN-stage/rejects.jsonl             every dropped row with its reason
    RUN_DIR/NN-stage/_stage.json               the stage is complete: fingerprints, version, config, counts
    RUN_DIR/pipeline.yaml                      the pipeline file the run was started with
    RUN_DIR/report.json                        the run's report

A stage's fingerprint hashes its name, config, its input's fingerprint and the curate version. A rerun skips a
complete stage whose fingerprint matches, resumes a partial one batch by batch (stateless stages only), and redoes
anything whose fingerprint changed. Every file is written under a temporary name and renamed, and a batch counts as
done only once its ``shard-*.json`` exists, so a killed run never reads a partial file as complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pyarrow as pa

from curate import __version__
from curate.ingest import ConnectorError, Reject, SourceSpec, read_source
from curate.io import (count_rows, iter_batches, read_json, read_jsonl, read_schema, summarise_row,
                       write_json, write_jsonl, write_parquet)
from curate.progress import Progress
from curate.schema import ARROW_SCHEMA
from curate.stage import DROP, DROP_DETAIL, Stage

if TYPE_CHECKING:
    from curate.pipeline import Plan, PlannedStage


@dataclass
class StageStats:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    cached: bool = False

    def add(self, other: dict) -> None:
        self.rows_in += other["rows_in"]
        self.rows_out += other["rows_out"]
        self.seconds += other["seconds"]
        self.dropped = dict(Counter(self.dropped) + Counter(other["dropped"]))
        self.counters = dict(Counter(self.counters) + Counter(other.get("counters", {})))


class StageFailed(Exception):
    """A stage raised; completed batches are kept and a rerun resumes after them."""


def fingerprint(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def file_state(path: Path | None) -> list:
    """Sizes and mtimes of the files under ``path``: a local source's fingerprint changes when its files do."""
    if path is None or not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def source_fingerprint(spec: SourceSpec) -> str:
    return fingerprint(__version__, asdict(spec), file_state(spec.path))


def _prepare_dir(folder: Path, fp: str, resumable: bool) -> bool:
    """Make ``folder`` ready for a stage with fingerprint ``fp``; True when it is already complete."""
    done, progress = folder / "_stage.json", folder / "_progress.json"
    if done.exists() and read_json(done)["fingerprint"] == fp:
        return True
    if folder.exists() and not (resumable and progress.exists() and read_json(progress)["fingerprint"] == fp):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not progress.exists():
        write_json(progress, {"fingerprint": fp})
    return False


def _finish_dir(folder: Path, meta: dict, reject_glob: str) -> None:
    shards = sorted(folder.glob(reject_glob))
    write_jsonl(folder / "rejects.jsonl", (r for s in shards for r in read_jsonl(s)))
    write_json(folder / "_stage.json", meta)
    for s in shards:
        s.unlink()
    (folder / "_progress.json").unlink(missing_ok=True)


def _reject_record(stage: str, reason: str, detail, **where) -> dict:
    return {"stage": stage, "reason": reason, "detail": detail, **where}


def ingest(sources: list[SourceSpec], folder: Path, batch_size: int = 256,
           progress: Progress | None = None) -> tuple[StageStats, str]:
    """Read every source into ``folder`` as schema rows; returns the stats and the step's fingerprint.

    A source that cannot be read at all becomes one reject with reason ``source_error``; the others go on.
    """
    fps = [source_fingerprint(s) for s in sources]
    fp = fingerprint("ingest", fps, batch_size)
    stats = StageStats("ingest")
    if _prepare_dir(folder, fp, resumable=True):
        stats.add(read_json(folder / "_stage.json")["stats"])
        stats.cached = True
        return stats, fp
    progress = progress or Progress(enabled=False)
    for i, spec in enumerate(sources):
        marker = folder / f"source-{i:03d}.json"
        if marker.exists():
            stats.add(read_json(marker))
            continue
        for stale in folder.glob(f"part-{i:03d}-*.parquet"):
            stale.unlink()
        stats.add(_ingest_source(i, spec, folder, batch_size, progress))
    stats.rows_in = stats.rows_out + sum(stats.dropped.values())
    _finish_dir(folder, {"fingerprint": fp, "version": __version__, "sources": [asdict(s) for s in sources],
                         "source_fingerprints": fps, "stats": asdict(stats)}, "rejects-*.jsonl")
    return stats, fp


def _ingest_source(i: int, spec: SourceSpec, folder: Path, batch_size: int, progress: Progress) -> dict:
    started, kept, dropped, rejects, buffer, part = time.perf_counter(), 0, Counter(), [], [], 0

    def flush() -> None:
        nonlocal part, buffer
        if buffer:
            write_parquet(folder / f"part-{i:03d}-{part:05d}.parquet",
                          {c: [r[c] for r in buffer] for c in ARROW_SCHEMA.names}, ARROW_SCHEMA)
            part, buffer = part + 1, []

    task = progress.task(f"ingest {spec.name}")
    try:
        for item in read_source(spec):
            if isinstance(item, Reject):
                dropped[item.reason] += 1
                rejects.append(_reject_record("ingest", item.reason, item.detail, source=spec.name,
                                              locator=item.locator, raw=item.raw))
            else:
                buffer.append(item)
                kept += 1
                if len(buffer) >= batch_size:
                    flush()
            task.advance()
    except (ConnectorError, OSError, ValueError) as exc:
        # The whole source is unusable: nothing it produced is trusted, one reject says why.
        for stale in folder.glob(f"part-{i:03d}-*.parquet"):
            stale.unlink()
        buffer, kept = [], 0
        dropped = Counter({"source_error": 1})
        rejects = [_reject_record("ingest", "source_error", f"{type(exc).__name__}: {exc}", source=spec.name,
                                  locator=spec.origin)]
    flush()
    task.close()
    write_jsonl(folder / f"rejects-{i:03d}.jsonl", rejects)
    shard = {"rows_in": kept + sum(dropped.values()), "rows_out": kept, "dropped": dict(dropped),
             "seconds": time.perf_counter() - started, "source": spec.name}
    write_json(folder / f"source-{i:03d}.json", shard)
    return shard


def _apply(stage: Stage, batch: dict[str, list]) -> tuple[dict[str, list], dict]:
    out = stage(batch)
    counters = dict(stage.counters)
    stage.counters.clear()
    return out, counters


def _split(out: dict[str, list], schema: pa.Schema, stage: str, batch_index: int):
    """Kept rows (as a batch in ``schema``), reject records and drop counts from one stage output."""
    undeclared = sorted(set(out) - set(schema.names) - {DROP, DROP_DETAIL})
    if undeclared:
        raise StageFailed(f"stage '{stage}' produced undeclared column(s) {undeclared}; add them to its outputs")
    n = len(next(iter(out.values()))) if out else 0
    reasons = out.get(DROP) or [None] * n
    details = out.get(DROP_DETAIL) or [None] * n
    keep = [i for i, r in enumerate(reasons) if not r]
    kept = {c: [out[c][i] for i in keep] if c in out else [None] * len(keep) for c in schema.names}
    rejects, dropped = [], Counter()
    for i, reason in enumerate(reasons):
        if reason:
            dropped[reason] += 1
            row = summarise_row({c: out[c][i] for c in schema.names if c in out})
            rejects.append(_reject_record(stage, reason, details[i], id=row.get("id"), batch=batch_index, row=row))
    return kept, rejects, dropped


def _batches_todo(folder: Path, source: Path, batch_size: int, done: set[int]) -> Iterator[tuple[int, dict]]:
    for k, batch in enumerate(iter_batches(source, batch_size)):
        if k not in done:
            yield k, batch


def run_stage(planned: PlannedStage, source: Path, folder: Path, input_fp: str, batch_size: int,
              progress: Progress | None = None) -> tuple[StageStats, str]:
    """Run one stage over the rows in ``source`` into ``folder``; returns its stats and fingerprint."""
    stage = planned.stage
    fp = fingerprint(stage.name, stage.config.model_dump(mode="json"), input_fp, batch_size, __version__,
                     stage.fingerprint_extra())
    stats = StageStats(stage.name)
    if _prepare_dir(folder, fp, resumable=not stage.stateful):
        stats.add(read_json(folder / "_stage.json")["stats"])
        stats.cached = True
        return stats, fp
    schema = read_schema(source) or ARROW_SCHEMA
    for name, dtype in stage.outputs.items():
        schema = schema.set(schema.get_field_index(name), pa.field(name, dtype)) if name in schema.names \
            else schema.append(pa.field(name, dtype))
    done = {int(p.stem.split("-")[1]) for p in folder.glob("shard-*.json")}
    for k in sorted(done):
        stats.add(read_json(folder / f"shard-{k:05d}.json"))
    total = -(-count_rows(source) // batch_size)
    task = (progress or Progress(enabled=False)).task(stage.name, total=total, completed=len(done))

    def record(k: int, out: dict, counters: dict, seconds: float) -> None:
        kept, rejects, dropped = _split(out, schema, stage.name, k)
        rows_in = sizes.pop(k)
        write_parquet(folder / f"part-{k:05d}.parquet", kept, schema)
        write_jsonl(folder / f"rejects-{k:05d}.jsonl", rejects)
        shard = {"rows_in": rows_in, "rows_out": len(kept[schema.names[0]]), "dropped": dict(dropped),
                 "seconds": seconds, "counters": counters}
        write_json(folder / f"shard-{k:05d}.json", shard)
        stats.add(shard)
        task.advance()
        task.describe(f"{stage.name} · {60 * stats.rows_out / max(stats.seconds, 1e-9):,.0f} rows/min")

    sizes: dict[int, int] = {}
    todo = _batches_todo(folder, source, batch_size, done)
    try:
        if planned.workers > 1 and not stage.stateful:
            _run_parallel(stage, todo, planned.workers, sizes, record)
        else:
            k = -1
            for k, batch in todo:
                sizes[k] = len(next(iter(batch.values()))) if batch else 0
                record(k, *_timed_apply(stage, batch))
            t0 = time.perf_counter()
            tail = stage.finish()
            if tail:
                sizes[k + 1] = 0
                record(k + 1, tail, dict(stage.counters), time.perf_counter() - t0)
    except StageFailed:
        raise
    except Exception as exc:
        raise StageFailed(f"stage '{stage.name}' failed: {type(exc).__name__}: {exc}. Completed batches are kept; "
                          f"rerun the same command to resume.") from exc
    finally:
        task.close()
    _finish_dir(folder, {"fingerprint": fp, "input_fingerprint": input_fp, "version": __version__,
                         "stage": stage.name, "config": stage.config.model_dump(mode="json"),
                         "stats": asdict(stats)}, "rejects-*.jsonl")
    return stats, fp


def _timed_apply(stage: Stage, batch: dict) -> tuple[dict, dict, float]:
    t0 = time.perf_counter()
    out, counters = _apply(stage, batch)
    return out, counters, time.perf_counter() - t0


def _run_parallel(stage: Stage, todo, workers: int, sizes: dict, record: Callable) -> None:
    """Process batches in ``workers`` processes, recording results in input order, a bounded window at a time."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        window: list = []
        for k, batch in todo:
            sizes[k] = len(next(iter(batch.values()))) if batch else 0
            window.append((k, pool.submit(_timed_apply, stage, batch)))
            if len(window) >= 2 * workers:
                k0, fut = window.pop(0)
                record(k0, *fut.result())
        for k0, fut in window:
            record(k0, *fut.result())


def run_stages(stages: list[PlannedStage], source: Path, root: Path, fp: str, batch_size: int,
               progress: Progress | None = None) -> tuple[list[StageStats], Path, str]:
    """Run ``stages`` in order from the rows in ``source``, each into ``root/<dirname>``; returns their stats, the
    last folder and its fingerprint."""
    all_stats = []
    for planned in stages:
        folder = root / planned.dirname
        planned.stage.run_dir = root
        stats, fp = run_stage(planned, source, folder, fp, planned.batch_size or batch_size, progress)
        all_stats.append(stats)
        source = folder
    return all_stats, source, fp


@dataclass
class RunReport:
    pipeline: str
    run_dir: str
    version: str
    seconds: float
    stages: list[StageStats]
    final_dir: str
    rows_out: int
    answers: list[dict] = field(default_factory=list)  # base vs tuned answers, when the pipeline compares
    evaluation: dict | None = None  # base vs tuned scores on a held-out set (curate.evaluate.compare_runs)

    def to_json(self) -> dict:
        return asdict(self)


DELIVERY_STEPS = ("export", "finetune", "compare", "evaluate")


def _force(plan: Plan, force: str, dirs: list[str]) -> None:
    """Remove the outputs of the step named ``force`` and of every step after it."""
    names = ["ingest"] + [p.stage.name for p in plan.stages]
    matches = [i for i, (d, n) in enumerate(zip(dirs, names)) if force in (d, n, d.split("-", 1)[1])]
    if force in DELIVERY_STEPS:
        steps = DELIVERY_STEPS[DELIVERY_STEPS.index(force):]
    elif matches:
        for d in dirs[matches[0]:]:
            shutil.rmtree(plan.run_dir / d, ignore_errors=True)
        steps = DELIVERY_STEPS
    else:
        raise ValueError(f"--force {force}: no such step; steps are {', '.join(dirs + list(DELIVERY_STEPS))}")
    for step in steps:
        (plan.run_dir / f"{step}.json").unlink(missing_ok=True)


def run_plan(plan: Plan, force: str | None = None, progress: Progress | None = None,
             push: bool = True) -> RunReport:
    """Run every step of ``plan``: ingest, the stages, then export, push, finetune, compare and evaluate when
    configured.

    ``force`` names a step to redo along with all after it; ``push=False`` skips uploading.
    """
    from curate import deliver

    started = time.perf_counter()
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.path, plan.run_dir / "pipeline.yaml")
    dirs = ["01-ingest"] + [p.dirname for p in plan.stages]
    if force is not None:
        _force(plan, force, dirs)
    progress = progress or Progress(enabled=False)
    stats, fp = ingest(plan.sources, plan.run_dir / dirs[0], plan.batch_size, progress)
    stage_stats, source, fp = run_stages(plan.stages, plan.run_dir / dirs[0], plan.run_dir, fp, plan.batch_size,
                                         progress)
    all_stats, answers, evaluation = [stats, *stage_stats], [], None
    if plan.export is not None:
        stats, fp = deliver.export_step(plan.export, source, plan.run_dir, fp)
        all_stats.append(stats)
        if plan.export.push is not None and push:
            all_stats.append(deliver.push_step(plan.export.push, plan.run_dir))
    if plan.finetune is not None:
        stats, fp = deliver.finetune_step(plan.finetune, plan.path.parent, plan.run_dir, fp)
        all_stats.append(stats)
        model = deliver.load_recipe_for(plan.finetune, plan.path.parent).model
        if plan.finetune.compare is not None:
            stats, answers = deliver.compare_step(plan.finetune.compare, model, plan.run_dir, fp)
            all_stats.append(stats)
        if plan.finetune.evaluate is not None:
            stats, evaluation = deliver.evaluate_step(plan.finetune.evaluate, model, plan.path.parent, plan.run_dir,
                                                      fp)
            all_stats.append(stats)
    report = RunReport(plan.name, str(plan.run_dir), __version__, time.perf_counter() - started, all_stats,
                       str(source), count_rows(source), answers, evaluation)
    write_json(plan.run_dir / "report.json", report.to_json())
    return report
