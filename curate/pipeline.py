"""Pipeline recipes: a YAML file wiring sources -> stages, validated into a runnable plan without touching data.

Example (``pipelines/*.yaml``)::

    name: firstaid-pages
    sources:
      - source: us-army-fm-4-25-11        # a catalog name ...
        path: ../data/FM4-25.11.pdf        # ... pointed at a local copy (relative to this file)
      - source: hf_qa                      # ... or a bare kind with a path
        name: my-qa
        path: ../data/qa.jsonl
        license: cc-by-4.0
    stages:
      - stage: select
        kinds: [page]
        min_chars: 200
    export: {format: messages}                    # optional: see curate.deliver
    finetune: {recipe: ../finetune/gemma3-270m-cpu-lora.yaml}

    executor: {kind: processes, workers: 2}       # optional: serial (default), processes, ray (curate.executors)

Every stage entry is ``stage: NAME`` plus that stage's config keys (and optionally ``name:`` for its folder, a slug
of ``[a-z0-9_-]``, ``workers:`` for its width under a parallel executor and ``batch_size:`` for rows per batch: small
batches checkpoint slow stages often). Unknown keys anywhere are errors, so ``curate run --dry-run`` catches typos.
A plan is a flat list of steps (``Plan.steps``); building it imports configs only, never a model or library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.catalog import CatalogError, load_catalog
from curate.deliver.specs import EvaluateSpec, ExportSpec, FinetuneSpec, load_recipe_for
from curate.executors import ExecutorSpec
from curate.ingest import CONNECTORS, ConnectorError, validate_options
from curate.ingest.base import SourceSpec
from curate.paths import beside, path_or_name
from curate.rowsteps import IngestStep, StageStep
from curate.schema import COLUMNS
from curate.stage import stage_class
from curate.steps import Step

SLUG = re.compile(r"^[a-z0-9_-]+$")


class SourceRef(BaseModel):
    """A pipeline's reference to a source: a catalog name or a bare connector kind, with overrides."""

    model_config = ConfigDict(extra="forbid")
    source: str
    name: str | None = None
    path: str | None = None
    license: str | None = None
    attribution: str | None = None
    limit: int | None = Field(default=None, ge=1)
    mapping: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class PipelineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    run_dir: str | None = None
    batch_size: int = Field(default=256, ge=1)
    sources: list[SourceRef] = Field(min_length=1)
    stages: list[dict[str, Any]] = Field(default_factory=list)
    export: ExportSpec | None = None
    finetune: FinetuneSpec | None = None
    executor: ExecutorSpec | Literal["serial", "processes", "ray"] = Field(default_factory=ExecutorSpec)


@dataclass
class Plan:
    """A validated pipeline: resolved sources and instantiated stages, ready to run; ``effective`` is the pipeline
    as run (``--set`` and ``--source-path`` applied)."""

    name: str
    path: Path
    run_dir: Path
    batch_size: int
    sources: list[SourceSpec]
    stages: list[StageStep]
    warnings: list[str] = field(default_factory=list)
    export: ExportSpec | None = None
    finetune: FinetuneSpec | None = None
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    effective: dict = field(default_factory=dict)

    def steps(self, push: bool = True) -> list[Step]:
        """Every step in order: ingest, the stages, then export, push (unless ``push`` is False), finetune, compare
        and evaluate as configured."""
        from curate.deliver.steps import CompareStep, EvaluateStep, ExportStep, FinetuneStep, PushStep

        steps: list[Step] = [IngestStep(self.sources, self.batch_size), *self.stages]
        if self.export is not None:
            steps.append(ExportStep(self.export))
            if self.export.push is not None and push:
                steps.append(PushStep(self.export.push))
        if self.finetune is not None:
            base = self.path.parent
            recipe = load_recipe_for(self.finetune, base)
            steps.append(FinetuneStep(recipe))
            if self.finetune.compare is not None:
                steps.append(CompareStep(self.finetune.compare, recipe.model))
            if self.finetune.evaluate is not None:
                steps.append(EvaluateStep(self.finetune.evaluate, recipe.model, base))
        return steps


class PipelineError(Exception):
    """The pipeline cannot run as written; the message lists every problem found."""


def resolve_source(ref: SourceRef, base: Path, catalog: dict, override: Path | None = None) -> SourceSpec:
    """A SourceSpec from a pipeline reference: catalog entry (if named) with the reference's overrides applied."""
    path = override if override is not None else (beside(base, ref.path) if ref.path is not None else None)
    if ref.source in catalog:
        spec = catalog[ref.source].spec(path)
    elif ref.source in CONNECTORS:
        if path is None:
            raise ConnectorError(f"bare source kind '{ref.source}' needs a path")
        spec = SourceSpec(name=ref.name or f"{ref.source}:{path.stem}", kind=ref.source, path=path,
                          license=ref.license or "unknown")
    else:
        raise ConnectorError(
            f"'{ref.source}' is neither a catalog source nor a connector kind; "
            f"see `curate sources list` (kinds: {', '.join(sorted(CONNECTORS))})")
    if ref.name:
        spec.name = ref.name
    spec.license = ref.license or spec.license
    spec.attribution = ref.attribution or spec.attribution
    spec.mapping = {**spec.mapping, **ref.mapping}
    spec.options = {**spec.options, **ref.options}
    spec.limit = ref.limit
    return spec


def check_source(spec: SourceSpec) -> list[str]:
    """Problems that would stop this source from being read, found without network."""
    problems = []
    if spec.path is not None and not spec.path.exists():
        problems.append(f"source '{spec.name}': path {spec.path} does not exist")
    if spec.path is None and spec.hub is None and not spec.url:
        problems.append(f"source '{spec.name}': no path, Hub id or URL")
    try:
        validate_options(spec)
    except ValidationError as exc:
        problems.append(f"source '{spec.name}' options: {exc}")
    except (ConnectorError, ImportError) as exc:
        problems.append(f"source '{spec.name}': {exc}")
    return problems


def source_resolver(base: Path, catalog: dict | None = None) -> Callable[..., SourceSpec]:
    """``resolve(source, name=, path=, mapping=)``: a source a stage config names (a catalog name or a connector
    kind) as a SourceSpec, its path read from ``base``; the catalog is read on first use unless given."""
    loaded = catalog

    def resolve(source: str, name: str | None = None, path: str | None = None,
                mapping: dict | None = None) -> SourceSpec:
        nonlocal loaded
        if loaded is None:
            loaded = load_catalog()
        return resolve_source(SourceRef(source=source, name=name, path=path, mapping=mapping or {}), base, loaded)

    return resolve


def plan_stage_entries(entries: list[dict[str, Any]], start: int, available: set[str] | None = None,
                       base: Path | None = None, batch_size: int = 256,
                       catalog: dict | None = None) -> tuple[list[StageStep], list[str]]:
    """Stages instantiated from YAML entries, numbered from ``start``, and every problem found.

    With ``available`` (the columns the first stage will see), each stage's declared inputs are checked against
    what the earlier stages produce; with ``base`` (the pipeline's folder), relative paths in stage configs are
    read from there (else from the working directory). Sources a stage config names are resolved here, from
    ``catalog`` (read when needed if not given).
    """
    stages: list[StageStep] = []
    problems: list[str] = []
    resolve = source_resolver(base or Path.cwd(), catalog)
    for i, entry in enumerate(entries, start=start):
        entry = dict(entry)
        name = entry.pop("stage", None)
        label = entry.pop("name", name)
        workers = entry.pop("workers", None)
        size = entry.pop("batch_size", None)
        if not isinstance(label, str) or not SLUG.match(label):
            problems.append(f"stage {i} ({name}): name {label!r} must be a slug of [a-z0-9_-] (it names a folder)")
            continue
        try:
            stage = stage_class(name)(entry)
            if base is not None:
                stage.config = stage.config.relative_to(base)
            stage.config = stage.config.resolve_sources(resolve)
        except (LookupError, ValidationError, ImportError, ConnectorError, CatalogError) as exc:
            problems.append(f"stage {i} ({name}): {exc}")
            continue
        if available is not None:
            missing = [c for c in stage.inputs if c not in available]
            if missing:
                problems.append(f"stage {i} ({name}) needs column(s) {missing} that no earlier stage produces")
            available = available | set(stage.outputs)
        stages.append(StageStep(f"{i:02d}-{label}", stage, int(size or batch_size), workers and int(workers)))
    return stages, problems


def apply_settings(raw: dict, settings: dict[str, Any]) -> dict:
    """``raw`` pipeline YAML with ``--set`` values applied; keys are dotted paths whose first part is
    ``sources.NAME`` (a source's name or catalog name), ``export``, ``finetune``, or a stage's name or label."""
    raw = dict(raw)
    for dotted, value in settings.items():
        head, *rest = dotted.split(".")
        if head in ("export", "finetune") and not rest:  # a whole section, e.g. finetune=null to skip training
            raw[head] = value
            continue
        if head == "sources" and len(rest) >= 2:
            targets = [s for s in raw.get("sources", []) if rest[0] in (s.get("name"), s.get("source"))]
            rest = rest[1:]
        elif head in ("export", "finetune"):
            raw[head] = dict(raw.get(head) or {})
            targets = [raw[head]]
        else:
            targets = [e for e in raw.get("stages", []) if head in (e.get("stage"), e.get("name"))]
        if not targets or not rest:
            raise PipelineError(f"--set {dotted}: no source, stage or section called '{head}' with a key to set")
        for target in targets:
            for key in rest[:-1]:
                target = target.setdefault(key, {})
            target[rest[-1]] = value
    return raw


def load_plan(path: str | Path, run_dir: str | Path | None = None,
              path_overrides: dict[str, str] | None = None, settings: dict[str, Any] | None = None) -> Plan:
    """Read and validate a pipeline YAML (with ``--set`` values applied); raises PipelineError listing every
    problem."""
    path = Path(path).resolve()
    try:
        raw = apply_settings(yaml.safe_load(path.read_text()), settings or {})
        spec = PipelineFile.model_validate(raw)
        catalog = load_catalog()
    except (OSError, yaml.YAMLError, ValidationError, CatalogError) as exc:
        raise PipelineError(f"{path}: {exc}") from exc
    base = path.parent
    overrides = {k: Path(v).expanduser().resolve() for k, v in (path_overrides or {}).items()}
    problems: list[str] = []
    warnings: list[str] = []
    sources: list[SourceSpec] = []
    for ref in spec.sources:
        if not ref.enabled:
            overrides.pop(ref.name or ref.source, None)
            warnings.append(f"source '{ref.name or ref.source}' is disabled (enabled: false)")
            continue
        try:
            src = resolve_source(ref, base, catalog, overrides.pop(ref.name or ref.source, None))
        except ConnectorError as exc:
            problems.append(str(exc))
            continue
        problems += check_source(src)
        if src.use == "eval":
            warnings.append(f"source '{src.name}' is an evaluation set: training on it contaminates evaluations")
        sources.append(src)
    problems += [f"--source-path {k}: no source of that name in the pipeline" for k in overrides]

    stages, stage_problems = plan_stage_entries(spec.stages, start=2, available=set(COLUMNS), base=base,
                                                batch_size=spec.batch_size, catalog=catalog)
    problems += stage_problems + _check_finetune(spec, base)
    if problems:
        raise PipelineError(f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))
    out = beside(base, spec.run_dir) if spec.run_dir else Path("runs") / spec.name
    executor = ExecutorSpec(kind=spec.executor) if isinstance(spec.executor, str) else spec.executor
    effective = {**raw, "sources": [_effective_source(r, s) for r, s in zip(
        [r for r in spec.sources if r.enabled], sources)]}
    return Plan(spec.name, path, Path(run_dir) if run_dir else out, spec.batch_size, sources, stages, warnings,
                spec.export, spec.finetune, executor, effective)


def _effective_source(ref: SourceRef, spec: SourceSpec) -> dict:
    """A source entry as run: its path is the resolved one (``--source-path`` applied)."""
    entry = ref.model_dump(mode="json", exclude_defaults=True)
    if spec.path is not None:
        entry["path"] = str(spec.path)
    return entry


def _check_finetune(spec: PipelineFile, base: Path) -> list[str]:
    if spec.finetune is None:
        return []
    if spec.export is None:
        return ["finetune needs an export: section (it trains on the exported dataset)"]
    from curate.train.recipe import RecipeError

    try:
        load_recipe_for(spec.finetune, base)
    except RecipeError as exc:
        return [f"finetune recipe {exc}"]
    return _check_evaluate(spec.finetune.evaluate, base) if spec.finetune.evaluate else []


def _check_evaluate(spec: EvaluateSpec, base: Path) -> list[str]:
    """The held-out set must be readable before anything trains (it is read again, whole, by the step)."""
    from curate.evaluate.sets import SetError, load_eval_set

    try:
        load_eval_set(path_or_name(spec.set, base), path=path_or_name(spec.path, base), split=spec.split,
                      layout=spec.layout, limit=1)
    except SetError as exc:
        return [f"finetune.evaluate: {exc}"]
    return []
