"""The stage contract: a pure function over a batch of rows, with declared columns and a validated config.

A stage maps ``dict[str, list] -> dict[str, list]``. To drop a row it sets the ``_drop`` column to a short reason
code (and optionally ``_drop_detail`` to a score or sentence); the runner moves such rows to the stage's
``rejects.jsonl`` and counts them by reason. Because the contract is a plain batch function, the same stage runs
under the curate runner, under ``datasets.Dataset.map(stage, batched=True, num_proc=N)`` and under Ray Data's
``map_batches``.

Example::

    class Shout(Stage):
        '''Upper-cases text. Consumes ``text``; produces ``text``.'''
        name = "shout"
        inputs = ("text",)

        def process_batch(self, batch):
            return {**batch, "text": [t.upper() for t in batch["text"]]}

A stage that needs a model loads it in ``setup()``, called once per worker before the first batch. A stage whose
result depends on rows it has seen before (dedup, chunking across pages, indexing) sets ``stateful = True``: the
runner then feeds it every batch in order in one process, never resumes it half-way, and calls ``finish()`` after
the last batch for any rows it still holds.
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterable

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

DROP = "_drop"
DROP_DETAIL = "_drop_detail"


class StageConfig(BaseModel):
    """Base for stage configs: unknown keys are errors, so typos fail in ``--dry-run``."""

    model_config = ConfigDict(extra="forbid")

    def relative_to(self, base: Path) -> "StageConfig":
        """This config with its relative file paths read from ``base`` (a pipeline's folder); none by default."""
        return self


class Stage:
    """Base class: set ``name``, ``inputs``, ``outputs`` and ``Config``; implement ``process_batch``."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[dict[str, pa.DataType]] = {}
    stateful: ClassVar[bool] = False

    def __init__(self, config: dict | StageConfig | None = None):
        self.config = config if isinstance(config, self.Config) else self.Config.model_validate(config or {})
        self.counters: Counter = Counter()
        self.run_dir: Path | None = None  # set by the runner: where sibling stages' outputs (e.g. an index) live
        self._ready = False

    def setup(self) -> None:
        """Load models or open indexes; called once per worker before the first batch."""

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        raise NotImplementedError

    def fingerprint_extra(self) -> list:
        """What else, besides the config, decides this stage's output (e.g. a prompt file's sha256)."""
        return []

    def finish(self) -> dict[str, list] | None:
        """Stateful stages: rows still held after the last batch (or None)."""
        return None

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        if not self._ready:
            self.setup()
            self._ready = True
        return self.process_batch(batch)

    def __getstate__(self) -> dict:
        # Workers get the config, never a loaded model: they call setup() themselves.
        return {"config": self.config, "counters": Counter(), "run_dir": self.run_dir, "_ready": False}


class Filter(Stage):
    """A stage that keeps or drops whole rows: implement ``check(row)`` returning None to keep, or a reason
    string, or ``(reason, detail)`` to drop."""

    def check(self, row: dict) -> str | tuple[str, Any] | None:
        raise NotImplementedError

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        reasons, details = [], []
        for row in rows(batch):
            verdict = self.check(row)
            reason, detail = verdict if isinstance(verdict, tuple) else (verdict, None)
            reasons.append(reason)
            details.append(None if detail is None else str(detail))
        return {**batch, DROP: reasons, DROP_DETAIL: details}


def rows(batch: dict[str, list]) -> list[dict]:
    """The batch as a list of row dicts."""
    keys = list(batch)
    return [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))] if keys else []


def columns(row_list: Iterable[dict], keys: Iterable[str]) -> dict[str, list]:
    """Row dicts back into a batch with exactly ``keys`` (missing values are None)."""
    row_list = list(row_list)
    return {k: [r.get(k) for r in row_list] for k in keys}


# name -> "module:Class". Imported on first use so that `curate run --dry-run` stays fast and light.
STAGES: dict[str, str] = {
    "select": "curate.stages.select:Select",
    "heuristics": "curate.quality.heuristics:Heuristics",
    "grounding": "curate.quality.grounding:Grounding",
    "dedup": "curate.quality.dedup:Dedup",
    "decontaminate": "curate.quality.decontaminate:Decontaminate",
    "pii": "curate.quality.pii:PII",
    "judge": "curate.quality.judge:Judge",
    "chunk": "curate.rag.chunk:Chunk",
    "index": "curate.rag.index:Index",
    "synth_qa": "curate.rag.synth:SynthQA",
    "synth_vqa": "curate.rag.vqa:SynthVQA",
}


def register(name: str, target: str) -> None:
    STAGES[name] = target


class UnknownStage(LookupError):
    pass


def stage_class(name: str) -> type[Stage]:
    """The Stage class registered as ``name``, or an UnknownStage error that lists the known stages."""
    if name not in STAGES:
        raise UnknownStage(f"unknown stage '{name}'; known stages: {', '.join(sorted(STAGES)) or 'none'}")
    module, _, cls = STAGES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def map_dataset(dataset, stage: Stage, num_proc: int | None = None, batch_size: int = 256):
    """Run ``stage`` with ``datasets.Dataset.map(batched=True)``; returns (kept, dropped) datasets.

    The same batch function the runner calls; this is how a stage scales to many local processes. (Ray Data:
    ``ds.map_batches(stage, batch_format="numpy")`` then filter on ``_drop``.)
    """
    mapped = dataset.map(stage, batched=True, batch_size=batch_size, num_proc=num_proc,
                         remove_columns=[c for c in dataset.column_names])
    if DROP not in mapped.column_names:
        return mapped, mapped.select([])
    marks = [c for c in (DROP, DROP_DETAIL) if c in mapped.column_names]
    kept = mapped.filter(lambda r: not r, input_columns=[DROP]).remove_columns(marks)
    dropped = mapped.filter(lambda r: bool(r), input_columns=[DROP])
    return kept, dropped
