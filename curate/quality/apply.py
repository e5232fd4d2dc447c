"""Run a list of stages (usually quality filters) over a folder of curate parquet: the library side of
``curate filter IN -o OUT --config CONFIG.yaml``.

The input is a stage or ingest folder of a run (``part-*.parquet`` rows in the record schema). Each stage writes
``OUT/NN-<stage>/`` exactly as in ``curate run`` (kept rows, ``rejects.jsonl`` with reason and detail, counts), and
is skipped on a rerun when its config and input are unchanged. ``OUT/report.json`` holds kept/dropped per reason.

Config file::

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
``workers:`` (parallel batches, stateless stages only), as in a pipeline YAML.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate import __version__
from curate.io import count_rows, read_schema, write_json
from curate.pipeline import plan_stage_entries
from curate.progress import Progress
from curate.rowsteps import StageStep, run_stages
from curate.run import RunReport
from curate.steps import file_state, fingerprint


class FilterError(Exception):
    """The filter config or its input cannot be used; the message says what to fix."""


class FilterFile(BaseModel):
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
    """Run every stage of ``plan`` over ``source`` into ``out``; writes and returns the report."""
    started = time.perf_counter()
    _check_columns(source, plan.stages)
    out.mkdir(parents=True, exist_ok=True)
    all_stats, ctx = run_stages(plan.stages, source, out, fingerprint("filter-input", file_state(source)),
                                progress=progress)
    report = RunReport(f"filter {source}", str(out), __version__, time.perf_counter() - started, all_stats,
                       str(ctx.rows), count_rows(ctx.rows))
    write_json(out / "report.json", report.to_json())
    return report
