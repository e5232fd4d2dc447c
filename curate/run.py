"""Runs a plan: its flat list of steps in order (``curate.steps.run_step`` for each), row stages on the plan's
executor, then the run's report.

A run folder holds each step's output and marker (``curate.rowsteps``, ``curate.deliver.steps``) and::

    RUN_DIR/pipeline.yaml   the pipeline as run: --set and --source-path applied
    RUN_DIR/command.json    the command line, the pipeline file it was read from and the executor
    RUN_DIR/report.json     the run's report
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import yaml

from curate import __version__
from curate.executors import ExecutorSpec, make_executor
from curate.io import count_rows, write_json
from curate.pipeline import Plan
from curate.progress import Progress
from curate.steps import Context, StepStats, force, run_step


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
