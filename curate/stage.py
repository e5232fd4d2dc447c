"""The stage contract: a pure function over a batch of rows, with declared columns and a validated config.

A stage maps ``dict[str, list] -> dict[str, list]``. To drop a row it sets the ``_drop`` column to a short reason
code (and optionally ``_drop_detail`` to a score or sentence); the step running it (``curate.rowsteps``) moves such
rows to the stage's ``rejects.jsonl`` and counts them by reason. Where a batch runs is the executor's business
(``curate.executors``: in this process, a process pool, Ray Data); the output is the same under each.

Example::

    class Shout(Stage):
        '''Upper-cases text. Consumes ``text``; produces ``text``.'''
        name = "shout"
        inputs = ("text",)

        def process_batch(self, batch):
            return {**batch, "text": [t.upper() for t in batch["text"]]}

A stage that needs a model loads it in ``setup()``, called once per worker before its first batch; an executor keeps
such a stage in a long-lived worker (a process, a Ray actor). Batches are independent: a stage sees each batch once,
in any process, in any order. Two declarations let stages whose work spans batches run anywhere:

- ``group_by``: columns whose rows must stay in one batch (``chunk``: a document's pages); batches are cut only
  where the group changes.
- ``Reducer``: a stage whose verdict on a row depends on the rows before it (``dedup``, ``index``). Its expensive part,
  ``sketch(batch)`` (signatures, embeddings), runs per batch in parallel; ``consume(sketch)`` then runs in one place,
  over the sketches in batch order, and returns the drop columns. Called directly, a Reducer does both per batch.
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

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

    def resolve_sources(self, resolve: Callable[..., Any]) -> "StageConfig":
        """This config with the sources it names (catalog names or connector kinds) resolved by the pipeline:
        ``resolve(source, name=, path=, mapping=)`` returns a ``curate.ingest.SourceSpec``, so a stage reads the
        catalog never itself. None by default."""
        return self


class Stage:
    """Base class: set ``name``, ``inputs``, ``outputs`` and ``Config``; implement ``process_batch``."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[dict[str, pa.DataType]] = {}
    group_by: ClassVar[tuple[str, ...]] = ()

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

    def ready(self) -> bool:
        """``setup()`` unless this instance has run it; True when it ran now."""
        if self._ready:
            return False
        self.setup()
        self._ready = True
        return True

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        self.ready()
        return self.process_batch(batch)

    def __getstate__(self) -> dict:
        # Workers get the config, never a loaded model: they call setup() themselves.
        return {"config": self.config, "counters": Counter(), "run_dir": self.run_dir, "_ready": False}


class Reducer(Stage):
    """A stage decided in order over the whole input: ``sketch`` each batch anywhere, then ``consume`` the sketches
    in batch order in one place (``begin`` first). ``consume`` returns the batch's ``_drop``/``_drop_detail``
    columns, or nothing when it drops no row."""

    surveys: bool = False  # True: ``survey`` sees every batch's sketch before the first ``consume``

    def begin(self) -> None:
        """Start an empty state for ``consume`` (no model needed)."""

    def survey(self, sketches: list[object]) -> None:
        """With ``surveys``: read all the sketches, in batch order, before any is consumed (e.g. to rank rows over
        the whole input)."""

    def sketch(self, batch: dict[str, list]) -> object:
        raise NotImplementedError

    def consume(self, sketch: object) -> dict[str, list]:
        raise NotImplementedError

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        if not getattr(self, "_begun", False):
            self.begin()
            self._begun = True
        sketch = self.sketch(batch)
        if self.surveys:  # one batch on its own is the whole input
            self.survey([sketch])
        return {**batch, **self.consume(sketch)}


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
    "select": "curate.quality.select:Select",
    "heuristics": "curate.quality.heuristics:Heuristics",
    "grounding": "curate.quality.grounding:Grounding",
    "dedup": "curate.quality.dedup:Dedup",
    "decontaminate": "curate.quality.decontaminate:Decontaminate",
    "pii": "curate.quality.pii:PII",
    "judge": "curate.quality.judge:Judge",
    "ifd": "curate.quality.ifd:IFD",
    "review": "curate.quality.review:Review",
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
