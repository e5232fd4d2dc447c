"""The steps that make rows: ingest, and ``StageStep``, the one adapter through which every row stage is a Step.

Layout of a rows folder::

    RUN_DIR/01-ingest/part-SSS-NNNNN.parquet   rows of source SSS
    RUN_DIR/01-ingest/source-SSS.json          that source is complete (its counts)
    RUN_DIR/NN-stage/part-NNNNN.parquet        rows kept from input batch NNNNN
    RUN_DIR/NN-stage/shard-NNNNN.json          that batch is complete (its counts)
    RUN_DIR/NN-stage/rejects.jsonl             every dropped row with its reason
    RUN_DIR/NN-stage/_stage.json               the step's marker: fingerprints, version, config, counts

A stage's fingerprint hashes its name, config, its input's fingerprint, its batch size and the curate version. A
partly done stage resumes batch by batch: the folder keeps its finished batches while ``_progress.json`` holds the
same fingerprint (a ``Reducer`` is redone whole: its verdicts depend on every batch before). The executor in the
run's context decides where batches run; the files are the same under every executor.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from curate import __version__
from curate.batches import BatchJob, UndeclaredColumns, plan_batches, read_batch, take_counters, write_shard
from curate.executors import Executor
from curate.executors.serial import SerialExecutor
from curate.ingest import ConnectorError, Reject, SourceSpec, read_source
from curate.io import read_json, read_jsonl, read_schema, write_json, write_jsonl, write_parquet
from curate.progress import Progress
from curate.schema import ARROW_SCHEMA, GROUNDED_SCHEMA
from curate.stage import Reducer, Stage
from curate.steps import Context, Step, StepFailed, StepStats, file_state, fingerprint, inside, run_step

MARKER = "_stage.json"


def source_fingerprint(spec: SourceSpec) -> str:
    return fingerprint(__version__, asdict(spec), file_state(spec.path))


def _prepare(folder: Path, fp: str, resumable: bool) -> None:
    """Make ``folder`` ready to build the step with fingerprint ``fp``, keeping finished parts when resumable."""
    progress = folder / "_progress.json"
    if folder.exists() and not (resumable and progress.exists() and read_json(progress)["fingerprint"] == fp):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not progress.exists():
        write_json(progress, {"fingerprint": fp})


def _finish(folder: Path, reject_glob: str) -> None:
    shards = sorted(folder.glob(reject_glob))
    write_jsonl(folder / "rejects.jsonl", (r for s in shards for r in read_jsonl(s)))
    for s in shards:
        s.unlink()
    (folder / "_progress.json").unlink(missing_ok=True)


class RowStep(Step):
    """A step whose output is a folder of rows (``dirname`` inside the run folder) that the next row step reads."""

    dirname: str

    def marker(self, run_dir: Path) -> Path:
        return inside(run_dir, self.dirname) / MARKER

    def outputs(self, run_dir: Path) -> list[Path]:
        return [inside(run_dir, self.dirname)]

    def after(self, ctx: Context, record: dict) -> None:
        ctx.rows = inside(ctx.run_dir, self.dirname)

    def matches(self, name: str) -> bool:
        return name in (self.name, self.dirname, self.dirname.split("-", 1)[-1])


class IngestStep(RowStep):
    """Read every source into schema rows. A source that cannot be read at all becomes one reject with reason
    ``source_error``; the others go on. Resumes source by source."""

    name = "ingest"

    def __init__(self, sources: list[SourceSpec], batch_size: int = 256, dirname: str = "01-ingest"):
        self.sources, self.batch_size, self.dirname = sources, batch_size, dirname
        # rows read back from another run keep their passages and citations: then every shard has those columns
        self.schema = GROUNDED_SCHEMA if any(s.kind == "rows" for s in sources) else ARROW_SCHEMA

    def fingerprint(self, ctx: Context) -> str:
        self._source_fps = [source_fingerprint(s) for s in self.sources]  # walks local sources' files once
        return fingerprint("ingest", self._source_fps, self.batch_size, self.schema.names)

    def build(self, ctx: Context, fp: str) -> dict:
        folder = inside(ctx.run_dir, self.dirname)
        _prepare(folder, fp, resumable=True)
        stats = StepStats("ingest")
        for i, spec in enumerate(self.sources):
            marker = folder / f"source-{i:03d}.json"
            if marker.exists():
                stats.add(read_json(marker))
                continue
            for stale in folder.glob(f"part-{i:03d}-*.parquet"):
                stale.unlink()
            stats.add(_ingest_source(i, spec, folder, self.batch_size, ctx.progress, self.schema))
        stats.rows_in = stats.rows_out + sum(stats.dropped.values())
        _finish(folder, "rejects-*.jsonl")
        return {"version": __version__, "sources": [asdict(s) for s in self.sources],
                "source_fingerprints": self._source_fps, "stats": stats.plain()}


def _ingest_source(i: int, spec: SourceSpec, folder: Path, batch_size: int, progress: Progress,
                   schema: pa.Schema) -> dict:
    started, kept, dropped, rejects, buffer, part = time.perf_counter(), 0, Counter(), [], [], 0

    def flush() -> None:
        nonlocal part, buffer
        if buffer:
            write_parquet(folder / f"part-{i:03d}-{part:05d}.parquet",
                          {c: [r.get(c) for r in buffer] for c in schema.names}, schema)
            part, buffer = part + 1, []

    task = progress.task(f"ingest {spec.name}")
    try:
        for item in read_source(spec):
            if isinstance(item, Reject):
                dropped[item.reason] += 1
                rejects.append({"stage": "ingest", "reason": item.reason, "detail": item.detail, "source": spec.name,
                                "locator": item.locator, "raw": item.raw})
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
        rejects = [{"stage": "ingest", "reason": "source_error", "detail": f"{type(exc).__name__}: {exc}",
                    "source": spec.name, "locator": spec.origin}]
    flush()
    task.close()
    write_jsonl(folder / f"rejects-{i:03d}.jsonl", rejects)
    shard = {"rows_in": kept + sum(dropped.values()), "rows_out": kept, "dropped": dict(dropped),
             "seconds": time.perf_counter() - started, "source": spec.name}
    write_json(folder / f"source-{i:03d}.json", shard)
    return shard


class StageStep(RowStep):
    """A row stage as a step: its batches run on the context's executor (``workers`` wide, when it has workers),
    ``batch_size`` rows at a time."""

    def __init__(self, dirname: str, stage: Stage, batch_size: int = 256, workers: int | None = None):
        self.dirname, self.stage, self.batch_size, self.workers = dirname, stage, batch_size, workers
        self.name = stage.name

    def fingerprint(self, ctx: Context) -> str:
        return fingerprint(self.stage.name, self.stage.config.model_dump(mode="json"), ctx.fp, self.batch_size,
                           __version__, self.stage.fingerprint_extra())

    def build(self, ctx: Context, fp: str) -> dict:
        stage, source, folder = self.stage, ctx.rows, inside(ctx.run_dir, self.dirname)
        stage.run_dir = ctx.run_dir
        _prepare(folder, fp, resumable=not isinstance(stage, Reducer))
        job = BatchJob(stage, source, folder, self._schema(source), plan_batches(source, self.batch_size,
                                                                                   stage.group_by), fp)
        done = {int(p.stem.split("-")[1]) for p in folder.glob("shard-*.json")}
        stats = StepStats(stage.name)
        for k in sorted(done):
            stats.add(read_json(folder / f"shard-{k:05d}.json"))
        task = ctx.progress.task(stage.name, total=len(job.batches), completed=len(done))

        def record(shard: dict) -> None:
            stats.add(shard)
            task.advance()
            task.describe(f"{stage.name} · {60 * stats.rows_out / max(stats.seconds, 1e-9):,.0f} rows/min")

        todo = [k for k in range(len(job.batches)) if k not in done]
        try:
            if isinstance(stage, Reducer):
                self._reduce(ctx, job, todo, record)
            else:
                for shard in ctx.executor.map(job, todo, self.workers):
                    record(shard)
        except StepFailed:
            raise
        except UndeclaredColumns as exc:
            raise StepFailed(str(exc)) from exc
        except Exception as exc:
            raise StepFailed(f"stage '{stage.name}' failed: {type(exc).__name__}: {exc}. Completed batches are kept; "
                             f"rerun the same command to resume.") from exc
        finally:
            task.close()
        _finish(folder, "rejects-*.jsonl")
        return {"input_fingerprint": ctx.fp, "version": __version__, "stage": stage.name,
                "config": stage.config.model_dump(mode="json"), "stats": stats.plain()}

    def _reduce(self, ctx: Context, job: BatchJob, todo: list[int], record) -> None:
        """Sketch every batch on the executor; consume the sketches here, in batch order, as they arrive (or, for a
        stage that ``surveys``, once every sketch has arrived and the stage has surveyed them all)."""
        self.stage.begin()
        sketches = ctx.executor.map(job, todo, self.workers)
        if self.stage.surveys:
            sketches = list(sketches)
            self.stage.survey([sketched["sketch"] for sketched in sketches])
        for sketched in sketches:
            k, started = sketched["k"], time.perf_counter()
            verdict = self.stage.consume(sketched["sketch"])
            counters = Counter(sketched["counters"]) + Counter(take_counters(self.stage))
            record(write_shard(job, k, sketched["rows_in"], {**read_batch(job.batches[k]), **verdict},
                               dict(counters), sketched["seconds"] + time.perf_counter() - started))

    def _schema(self, source: Path) -> pa.Schema:
        schema = read_schema(source) or ARROW_SCHEMA
        for name, dtype in self.stage.outputs.items():
            schema = schema.set(schema.get_field_index(name), pa.field(name, dtype)) if name in schema.names \
                else schema.append(pa.field(name, dtype))
        return schema


def run_stages(steps: list[RowStep], source: Path, root: Path, fp: str, executor: Executor | None = None,
               progress: Progress | None = None) -> tuple[list[StepStats], Context]:
    """Run row steps in order over the rows in ``source`` (fingerprint ``fp``), each into ``root/<dirname>``;
    returns their stats and the context, whose ``rows`` and ``fp`` are the last step's."""
    ctx = Context(root, executor or SerialExecutor(), progress or Progress(enabled=False), rows=source, fp=fp)
    return [run_step(step, ctx)[0] for step in steps], ctx


def ingest(sources: list[SourceSpec], folder: Path, batch_size: int = 256,
           progress: Progress | None = None) -> tuple[StepStats, str]:
    """Read ``sources`` into ``folder`` (an ingest step outside a pipeline); returns its stats and fingerprint."""
    (stats,), ctx = run_stages([IngestStep(sources, batch_size, folder.name)], None, folder.parent, "",
                               progress=progress)
    return stats, ctx.fp
