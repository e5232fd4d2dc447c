"""Orchestration: runs a plan, or a few row stages over a folder outside a pipeline, and reports.

- ``run_plan`` (``curate run``): a plan's flat list of steps in order (``curate.steps.run_step`` for each), row
  stages on the plan's executor, then the run's report.
- ``index_folder`` / ``synth_folder`` (``curate index``, ``curate synth``): chunk page rows into a chromadb index,
  then grounded QA pairs from it.
- ``run_filters`` (``curate filter``): a list of stages from a filter config over a folder of rows.

The folder helpers build the same steps a pipeline does, so they resume, write rejects and report the same way.

A run folder holds each step's output and marker (``curate.rowsteps``, ``curate.deliver.steps``) and::

    RUN_DIR/pipeline.yaml   the pipeline as run: --set and --source-path applied
    RUN_DIR/command.json    the command line, the pipeline file it was read from and the executor
    RUN_DIR/report.json     the run's report
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate import __version__
from curate.executors import ExecutorSpec, make_executor
from curate.io import count_rows, iter_batches, read_schema, write_json
from curate.pipeline import Plan, plan_stage_entries
from curate.progress import Progress
from curate.rowsteps import StageStep, run_stages
from curate.stage import rows
from curate.steps import Context, StepStats, file_state, fingerprint, force, run_step


@dataclass
class RunReport:
    pipeline: str
    run_dir: str
    version: str
    seconds: float
    stages: list[StepStats]
    final_dir: str
    rows_out: int
    answers: list[dict] = field(default_factory=list)  # base vs tuned answers, when the pipeline compares
    evaluation: dict | None = None  # base vs tuned scores on a held-out set (curate.evaluate.compare_runs)

    def to_json(self) -> dict:
        return asdict(self)


def run_plan(plan: Plan, force_step: str | None = None, progress: Progress | None = None, push: bool = True,
             executor: ExecutorSpec | None = None) -> RunReport:
    """Run every step of ``plan`` on ``executor`` (default: the plan's). ``force_step`` names a step to redo along
    with all after it; ``push=False`` skips uploading."""
    started = time.perf_counter()
    spec = executor or plan.executor
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    (plan.run_dir / "pipeline.yaml").write_text(
        f"# {plan.path} as run (--set and --source-path applied)\n"
        + yaml.safe_dump(plan.effective, sort_keys=False, allow_unicode=True))
    write_json(plan.run_dir / "command.json", {"argv": sys.argv, "pipeline": str(plan.path),
                                               "executor": spec.model_dump(mode="json"), "version": __version__})
    steps = plan.steps(push=push)
    if force_step is not None:
        force(steps, force_step, plan.run_dir)
    runner = make_executor(spec)
    ctx = Context(plan.run_dir, runner, progress or Progress(enabled=False))
    try:
        all_stats = [run_step(step, ctx)[0] for step in steps]
    finally:
        runner.close()
    report = RunReport(plan.name, str(plan.run_dir), __version__, time.perf_counter() - started, all_stats,
                       str(ctx.rows), count_rows(ctx.rows), ctx.results.get("answers", []),
                       ctx.results.get("evaluation"))
    write_json(plan.run_dir / "report.json", report.to_json())
    return report


# ---- stages over a folder: curate index, curate synth, curate filter ------------------------------------------------
#
# An index folder holds INDEX_DIR/chunks/ (chunk rows, the synthesis input) and INDEX_DIR/chroma/ (the chromadb
# collection of those chunks).

def index_folder(rows_dir: Path, index_dir: Path, chunk: dict | None = None, collection: str = "chunks",
                 embedding_model: str | None = None, progress: Progress | None = None) -> tuple[StepStats, int]:
    """Chunk the page rows in ``rows_dir`` (chunk rows pass through) and upsert the chunks into ``index_dir``.

    Returns the chunk stage's stats and the number of chunks in the collection afterwards.
    """
    from curate.rag.chunk import Chunk
    from curate.rag.index import ChunkIndex

    chunker = Chunk({**(chunk or {}), "embedding_model": embedding_model})
    (stats,), _ = run_stages([StageStep("chunks", chunker)], rows_dir, index_dir, fingerprint(file_state(rows_dir)),
                             progress=progress)
    index = ChunkIndex(index_dir / "chroma", collection, embedding_model)
    for batch in iter_batches(index_dir / "chunks", 256):
        index.add([r for r in rows(batch) if r["kind"] == "chunk"])
    return stats, index.count()


def synth_folder(index_dir: Path, out_dir: Path, config: dict | None = None, batch_size: int = 8,
                 progress: Progress | None = None) -> StepStats:
    """Grounded QA pairs from the chunks of an index made by ``index_folder``; resumable like any stage."""
    from curate.rag.synth import SynthQA

    stage = SynthQA({**(config or {}), "index": str((index_dir / "chroma").resolve())})
    (stats,), _ = run_stages([StageStep(out_dir.name, stage, batch_size)], index_dir / "chunks", out_dir.parent,
                             fingerprint(file_state(index_dir / "chunks")), progress=progress)
    return stats


class FilterError(Exception):
    """The filter config or its input cannot be used; the message says what to fix."""


class FilterFile(BaseModel):
    """A filter config (``curate filter IN -o OUT --config FILE``)::

        batch_size: 256
        stages:
          - stage: heuristics
            answer: {min_words: 3}
          - stage: pii
          - stage: decontaminate
            eval_sets: [{path: data/medqa_usmle_4opt_test.jsonl}]
          - stage: dedup
            threshold: 0.8

    Each stage entry is ``stage: NAME`` plus that stage's config keys, optionally ``name:`` (its folder) and
    ``workers:``, as in a pipeline YAML; relative paths are read from the working directory.
    """

    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(default=256, ge=1)
    stages: list[dict[str, Any]] = Field(min_length=1)


@dataclass
class FilterPlan:
    batch_size: int
    stages: list[StageStep]


def load_filters(path: str | Path) -> FilterPlan:
    """Read and validate a filter config file."""
    try:
        spec = FilterFile.model_validate(yaml.safe_load(Path(path).read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise FilterError(f"{path}: {exc}") from exc
    stages, problems = plan_stage_entries(spec.stages, start=1, batch_size=spec.batch_size)
    if problems:
        raise FilterError("\n".join(problems))
    return FilterPlan(spec.batch_size, stages)


def _check_columns(source: Path, stages: list[StageStep]) -> None:
    schema = read_schema(source)
    if schema is None:
        raise FilterError(f"{source} has no part-*.parquet files: give a stage or ingest folder of a curate run")
    available = set(schema.names)
    for p in stages:
        missing = [c for c in p.stage.inputs if c not in available]
        if missing:
            raise FilterError(f"stage {p.dirname} needs column(s) {missing}; {source} has {sorted(available)}")
        available |= set(p.stage.outputs)


def run_filters(source: Path, out: Path, plan: FilterPlan, progress: Progress | None = None) -> RunReport:
    """Run every stage of ``plan`` over the rows in ``source`` (a stage or ingest folder of a run) into ``out``:
    each stage writes ``OUT/NN-<stage>/`` as in ``curate run`` and is skipped on a rerun when its config and input
    are unchanged; writes ``OUT/report.json`` and returns the report."""
    started = time.perf_counter()
    _check_columns(source, plan.stages)
    out.mkdir(parents=True, exist_ok=True)
    all_stats, ctx = run_stages(plan.stages, source, out, fingerprint("filter-input", file_state(source)),
                                progress=progress)
    report = RunReport(f"filter {source}", str(out), __version__, time.perf_counter() - started, all_stats,
                       str(ctx.rows), count_rows(ctx.rows))
    write_json(out / "report.json", report.to_json())
    return report
