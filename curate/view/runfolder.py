"""What a run folder holds, read without loading any rows: its steps (done, partial or pending), their stats, and the
delivery records (export, finetune, compare, evaluate, ablations).

A step is ``done`` when its marker (``_stage.json``) is there and no ``_progress.json`` is; a step folder without a
marker is ``partial`` (a run in progress, or killed mid-step): its stats are the sum of its finished batches
(``shard-*.json``, ingest's ``source-*.json``). Steps the effective pipeline (``pipeline.yaml``) names that have no
folder yet are ``pending``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STEP_DIR = re.compile(r"^\d{2}-[\w.-]+$")
DELIVERY = ("export", "push", "finetune", "compare", "evaluate")


class NotARun(Exception):
    """The folder is not a curate run folder (or does not exist)."""


@dataclass
class StepView:
    """One step of the run as the viewer shows it."""

    dirname: str
    name: str
    status: str  # done | partial | pending
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    batches_done: int = 0
    folder: Path | None = None

    @property
    def tokens(self) -> int | None:
        return self.counters.get("tokens_generated") or self.counters.get("tokens_trained") or None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a marker being replaced at this instant reads as absent; the next page load sees it


def _step_from_folder(folder: Path) -> StepView:
    marker = _read_json(folder / "_stage.json") if (folder / "_stage.json").exists() else None
    name = folder.name.split("-", 1)[1]
    shards = sorted(folder.glob("shard-*.json")) + sorted(folder.glob("source-*.json"))
    if marker and not (folder / "_progress.json").exists():
        s = marker["stats"]
        return StepView(folder.name, s.get("stage", name), "done", s["rows_in"], s["rows_out"], s["dropped"],
                        s.get("wall_seconds") or s["seconds"], s.get("counters", {}), len(shards), folder)
    step = StepView(folder.name, name, "partial", batches_done=len(shards), folder=folder)
    for shard in filter(None, map(_read_json, shards)):
        step.rows_in += shard["rows_in"]
        step.rows_out += shard["rows_out"]
        step.seconds += shard["seconds"]
        for reason, n in shard["dropped"].items():
            step.dropped[reason] = step.dropped.get(reason, 0) + n
        for key, n in shard.get("counters", {}).items():
            step.counters[key] = step.counters.get(key, 0) + n
    return step


def _delivery_step(run_dir: Path, name: str) -> StepView | None:
    record = _read_json(run_dir / f"{name}.json") if (run_dir / f"{name}.json").exists() else None
    if record is None:
        return None
    s = record["stats"]
    return StepView(name, name, "done", s["rows_in"], s["rows_out"], s["dropped"],
                    s.get("wall_seconds") or s["seconds"], s.get("counters", {}))


class RunFolder:
    """A run folder; ``NotARun`` when ``path`` holds no report, pipeline or step folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise NotARun(f"{path} is not a folder: give the run folder of `curate run` (its --run-dir)")
        if not (self.step_dirs() or (self.path / "report.json").exists() or (self.path / "pipeline.yaml").exists()):
            raise NotARun(f"{path} is not a curate run folder: it holds no report.json, no pipeline.yaml and no "
                          f"step folder (01-ingest, NN-stage with part-*.parquet or _stage.json)")

    def step_dirs(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if p.is_dir() and STEP_DIR.match(p.name) and (
            any(p.glob("_*.json")) or any(p.glob("part-*.parquet")) or any(p.glob("shard-*.json"))))

    def pipeline(self) -> dict:
        path = self.path / "pipeline.yaml"
        try:
            return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        except yaml.YAMLError:
            return {}

    def report(self) -> dict | None:
        return _read_json(self.path / "report.json") if (self.path / "report.json").exists() else None

    def name(self) -> str:
        return self.pipeline().get("name") or (self.report() or {}).get("pipeline") or self.path.name

    def row_steps(self) -> list[StepView]:
        """The row steps, done or partial, then the ones the pipeline names that have not started."""
        steps = [_step_from_folder(p) for p in self.step_dirs()]
        have = {s.dirname for s in steps}
        planned = ["01-ingest"] + [f"{i:02d}-{e.get('name', e.get('stage'))}"
                                   for i, e in enumerate(self.pipeline().get("stages") or [], 2)
                                   if isinstance(e, dict)]
        steps += [StepView(d, d.split("-", 1)[1], "pending") for d in planned if d not in have]
        return sorted(steps, key=lambda s: s.dirname)

    def delivery_steps(self) -> list[StepView]:
        """Delivery steps with a marker, and those the pipeline asks for that are pending."""
        pipe, out = self.pipeline(), []
        wanted = {"export": pipe.get("export") is not None or pipe.get("finetune") is not None,
                  "finetune": pipe.get("finetune") is not None,
                  "evaluate": bool((pipe.get("finetune") or {}).get("evaluate")),
                  "compare": bool((pipe.get("finetune") or {}).get("compare"))}
        for name in DELIVERY:
            step = _delivery_step(self.path, name)
            if step is not None:
                out.append(step)
            elif wanted.get(name):
                out.append(StepView(name, name, "pending"))
        return out

    def step(self, dirname: str) -> StepView:
        """The row step in folder ``dirname`` (KeyError when the run has no such folder)."""
        for p in self.step_dirs():
            if p.name == dirname:
                return _step_from_folder(p)
        raise KeyError(dirname)

    def record(self, name: str) -> dict | None:
        """A delivery step's marker record (``export``, ``finetune``, ``compare``, ``evaluate``), or None."""
        path = self.path / f"{name}.json"
        return _read_json(path) if name in DELIVERY and path.exists() else None

    def ablations(self) -> dict[str, dict]:
        """RUN_DIR/ablate/NAME/ablation.json of every finished ablation, by name."""
        found = {}
        for path in sorted((self.path / "ablate").glob("*/ablation.json")):
            record = _read_json(path)
            if record:
                found[path.parent.name] = record
        return found
