"""Ablation: is curation worth it? One recipe and one step budget trained on two or more row sets of the same run,
once per seed, every model (and the base model once) scored on the same held-out sets with the same prompts, and
one table of each variant's metrics (the mean over seeds) with the paired difference against a reference variant.

``curate ablate ABLATION.yaml`` runs it (``load_ablation`` + ``run_ablation`` from Python). The file names a
pipeline, whose run provides the rows, and the variants; paths are relative to the file::

    name: curation-value
    pipeline: ../pipelines/firstaid.yaml  # the run: RUN_DIR is the pipeline's run folder (or run_dir: / --run-dir)
    reference: raw                        # differences are "variant - reference" (default: the first variant)
    variants:
      raw: {rows: synth_qa}               # the rows a stage of the run wrote: its name, label or folder, or ingest
      curated: {rows: final}              # final (the default): the run's last stage, what `export` trains on
      curated-rag: {export: {context: include}}   # a variant may also be exported differently
    export: {splits: {train: 0.9, validation: 0.1}}    # default: the pipeline's export section (push is never done)
    finetune: {recipe: ../finetune/gemma3-270m-cpu-lora.yaml, max_steps: 60}  # default: the pipeline's finetune
    seeds: [0, 1, 2]                      # every variant trained once per seed (default: the recipe's one seed)
    evaluate:                             # default: the pipeline's finetune.evaluate; one or more held-out sets
      - name: heldout                     # the set's label in the table (default: its file stem or catalog name)
        set: ../data/heldout.json         # any curate.evaluate set: catalog name, QA file, export or rows folder
        settings: {shots: 0}              # curate.evaluate.EvalSettings, the same for every model
        model: {dtype: float32}           # transformers options for every model

What it does, each a step like a pipeline's (``curate.steps.run_step``: a fingerprint of the input, the config and
the curate version; the output built under a temporary name and renamed; then its marker)::

    RUN_DIR/01-ingest ... NN-stage/        the pipeline's row stages, run (or resumed) first
    OUT/heldout/<set>.jsonl                the questions of every held-out set
    OUT/rows/<stage folder>/               that stage's rows minus those that overlap a held-out question (the
                                           decontaminate stage: word n-grams and near-duplicates; rejects.jsonl)
    OUT/<variant>/export/, export.json     the variant's rows exported (curate.export), the same way for all
    OUT/<variant>/seed-<s>/finetune/, finetune.json   the recipe trained on its train split with seed s, same
                                           max_steps for every variant and seed
    OUT/<variant>/seed-<s>/eval/<set>/     summary.json + predictions.jsonl (curate.evaluate), marker <set>.json
    OUT/base/eval/<set>/                   the untrained model, scored once
    OUT/ablation.json                      the table's numbers: per set and model the metrics of each seed, and
                                           against the reference: compare_runs seed by seed (paired bootstrap
                                           interval, exact test) and the difference pooled over seeds

The pooled difference (``curate.evaluate.pooled``) is the mean over seeds and items of "variant - reference", each
seed of a variant paired with the same seed of the reference and each item with itself; its interval resamples
seeds and items independently (a two-way bootstrap), so that it covers the spread of the items and of the training
runs together. With one seed it is the items' bootstrap alone, and a difference can then be data order noise.

OUT defaults to RUN_DIR/ablate/NAME. The held-out sets are decontaminated from every variant's training rows alike,
so no variant is scored on questions it trained on (the count removed is in the table); make the held-out sets a
group split of their source (rows sharing a page, a chunk or a near-duplicate question on one side) so that what is
left is not a paraphrase either. Metrics are read from the evaluation's summary and comparison as they come, so any
metric ``curate.evaluate`` reports appears in the table. Refused before any work: fewer than two variants, a
recipe without ``max_steps`` (epochs would give a bigger variant more steps), a variant that sets its own
``finetune`` or ``evaluate`` (a different recipe, step budget, seed, set or prompt would measure the setup, not the
data), and a seed list that is empty or repeats a seed; after export and before any training, a variant with fewer
training rows than one optimizer step takes (``batch_size`` x ``grad_accum``); ``compare_runs`` refuses any
evaluation made differently after the fact.

Why a file of its own rather than a block of the pipeline: an ablation trains one model per variant on top of a
finished run; keeping it out of the pipeline keeps ``curate run`` the one production path, and the ablation still
reads the pipeline's own export, finetune and evaluate sections, so the file only says what varies.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate import __version__
from curate.deliver.specs import EvaluateSpec, ExportSpec, FinetuneSpec, load_recipe_for
from curate.deliver.steps import ExportStep, FinetuneStep, eval_model_config, evaluation_fingerprint, held_out_set
from curate.executors import make_executor
from curate.io import building, read_json, write_json, write_jsonl
from curate.paths import path_or_name
from curate.pipeline import PipelineError, Plan, load_plan
from curate.progress import Progress
from curate.rowsteps import IngestStep, StageStep, run_stages
from curate.stage import stage_class
from curate.steps import Context, Step, StepStats, inside, run_step

BASE = "base"
FINAL = "final"
INGEST_DIR = "01-ingest"
NAME = re.compile(r"^[\w.-]+$")  # variant and set names are folder names


class AblationError(Exception):
    """The ablation cannot run as written; the message lists every problem found."""


class Variant(BaseModel):
    """One training set: the rows a stage of the run wrote, exported with the ablation's export plus overrides."""

    model_config = ConfigDict(extra="forbid")
    rows: str = FINAL
    export: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _same_training_and_evaluation(cls, data: Any) -> Any:
        for key in ("finetune", "evaluate", "recipe", "settings"):
            if isinstance(data, dict) and key in data:
                raise ValueError(
                    f"a variant may not set {key}: every variant is trained with the ablation's one recipe, step "
                    "budget and seed and evaluated with its one evaluate section (same sets, prompts, scoring and "
                    "precision), so that a difference measures the data, not the setup; change it at the top level")
        return data


class HeldOut(EvaluateSpec):
    """A held-out set (``curate.deliver.EvaluateSpec``) with the name it has in the table."""

    name: str | None = None


class AblationTraining(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str
    max_steps: int | None = Field(default=None, ge=1)


class AblationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[\w.-]+$")
    description: str = ""
    pipeline: str
    run_dir: str | None = None
    out: str | None = None
    reference: str | None = None
    variants: dict[str, Variant] = Field(min_length=2)
    export: ExportSpec | None = None
    finetune: AblationTraining | None = None
    seeds: list[int] | None = None
    evaluate: list[HeldOut] | None = Field(default=None, min_length=1)


@dataclass
class PlannedVariant:
    name: str
    rows: str  # the run's stage folder, e.g. 04-synth_qa
    export: ExportSpec


@dataclass
class Ablation:
    """A validated ablation: the pipeline's plan, the variants, one recipe and the held-out sets."""

    name: str
    path: Path
    plan: Plan
    out: Path
    reference: str
    variants: dict[str, PlannedVariant]
    finetune: FinetuneSpec
    seeds: list[int]
    held_out: dict[str, HeldOut]
    warnings: list[str] = field(default_factory=list)

    @property
    def recipe(self):
        return load_recipe_for(self.finetune, self.path.parent)

    def seeded(self, seed: int):
        """The recipe with ``seed`` as its training seed (adapter initialisation and data order)."""
        recipe = self.recipe
        return recipe.model_copy(update={"train": recipe.train.model_copy(update={"seed": seed})})


def _folders_by_name(plan: Plan) -> dict[str, list[str]]:
    """{name, label or folder: the stage folders it names} for ``rows:`` (``ingest``, ``final`` included)."""
    names: dict[str, list[str]] = {"ingest": [INGEST_DIR], INGEST_DIR: [INGEST_DIR],
                                   FINAL: [plan.stages[-1].dirname if plan.stages else INGEST_DIR]}
    for p in plan.stages:
        for key in dict.fromkeys((p.dirname, p.dirname.split("-", 1)[1], p.stage.name)):
            names.setdefault(key, []).append(p.dirname)
    return names


def _variants(spec: AblationFile, plan: Plan, export: ExportSpec, problems: list[str]) -> dict[str, PlannedVariant]:
    dirs, out = _folders_by_name(plan), {}
    for name, variant in spec.variants.items():
        if not NAME.match(name):
            problems.append(f"variants: '{name}' must be letters, digits, '.', '-' or '_' (it names a folder)")
            continue
        found = dirs.get(variant.rows, [])
        if len(found) != 1:
            what = "names several stages" if found else "is no stage of the pipeline"
            problems.append(f"variants.{name}.rows: '{variant.rows}' {what}; give one of {', '.join(dirs)}")
            continue
        if "push" in variant.export:
            problems.append(f"variants.{name}.export.push: an ablation never uploads")
            continue
        try:
            merged = ExportSpec.model_validate({**export.model_dump(exclude={"push"}), **variant.export})
        except ValidationError as exc:
            problems.append(f"variants.{name}.export: {exc}")
            continue
        out[name] = PlannedVariant(name, found[0], merged)
    return out


def _held_out(spec: AblationFile, plan: Plan, base: Path, problems: list[str]) -> dict[str, HeldOut]:
    from curate.evaluate import SetError

    if spec.evaluate is not None:
        entries = [e.model_copy(update={"set": path_or_name(e.set, base), "path": path_or_name(e.path, base)})
                   for e in spec.evaluate]
    elif plan.finetune is not None and plan.finetune.evaluate is not None:
        pipe = plan.path.parent
        e = plan.finetune.evaluate
        entries = [HeldOut(**e.model_dump(), name=None).model_copy(
            update={"set": path_or_name(e.set, pipe), "path": path_or_name(e.path, pipe)})]
    else:
        problems.append("evaluate: no held-out set (give `evaluate:` here or finetune.evaluate in the pipeline)")
        return {}
    out: dict[str, HeldOut] = {}
    for e in entries:
        name = e.name or Path(e.set).stem
        if not NAME.match(name):
            problems.append(f"evaluate: set name '{name}' must be letters, digits, '.', '-' or '_'; give `name:`")
            continue
        if name in out:
            problems.append(f"evaluate: two sets are called '{name}': give each a distinct `name:`")
            continue
        try:
            held_out_set(e.model_copy(update={"limit": 1}), base)
        except SetError as exc:
            problems.append(f"evaluate.{name}: {exc}")
            continue
        out[name] = e.model_copy(update={"name": name})
    return out


def _training(spec: AblationFile, plan: Plan, base: Path, problems: list[str]) -> FinetuneSpec | None:
    from curate.train.recipe import RecipeError

    if spec.finetune is not None:
        train = FinetuneSpec(recipe=path_or_name(spec.finetune.recipe, base), max_steps=spec.finetune.max_steps)
    elif plan.finetune is not None:
        train = FinetuneSpec(recipe=path_or_name(plan.finetune.recipe, plan.path.parent),
                             max_steps=plan.finetune.max_steps)
    else:
        problems.append("finetune: no recipe (give `finetune: {recipe: ...}` here or in the pipeline)")
        return None
    try:
        recipe = load_recipe_for(train, base)
    except RecipeError as exc:
        problems.append(f"finetune recipe {exc}")
        return None
    if recipe.train.max_steps is None:
        problems.append(f"finetune: recipe {recipe.name} trains for epochs; set finetune.max_steps so that every "
                        "variant gets the same number of steps whatever its size")
    return train


def _seeds(spec: AblationFile, train: FinetuneSpec | None, base: Path, problems: list[str]) -> list[int]:
    """The training seeds: the file's ``seeds`` (non-empty, each once), else the recipe's own seed."""
    if spec.seeds is None:
        return [load_recipe_for(train, base).train.seed] if train is not None else []
    if not spec.seeds:
        problems.append("seeds: the list is empty; give one or more seeds (e.g. [0, 1, 2]), or leave `seeds` out to "
                        "train once with the recipe's seed")
    repeated = sorted({s for s in spec.seeds if spec.seeds.count(s) > 1})
    if repeated:
        problems.append(f"seeds: {', '.join(map(str, repeated))} listed more than once; each seed trains every "
                        "variant once, so a repeat would count the same model twice")
    return list(spec.seeds)


def load_ablation(path: str | Path, run_dir: str | Path | None = None, out: str | Path | None = None) -> Ablation:
    """Read and validate an ablation file and its pipeline; raises AblationError listing every problem."""
    path = Path(path).resolve()
    try:
        spec = AblationFile.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise AblationError(f"{path}: {exc}") from exc
    base = path.parent
    try:
        plan = load_plan(base / spec.pipeline, run_dir or (spec.run_dir and base / spec.run_dir))
    except PipelineError as exc:
        raise AblationError(f"{path}: pipeline {exc}") from exc
    problems: list[str] = []
    export = spec.export or (plan.export.model_copy(update={"push": None}) if plan.export else ExportSpec())
    variants = _variants(spec, plan, export, problems)
    reference = spec.reference or next(iter(spec.variants))
    if reference not in spec.variants:
        problems.append(f"reference: '{reference}' is not a variant ({', '.join(spec.variants)})")
    if BASE in spec.variants:
        problems.append(f"variants: '{BASE}' is the untrained model's row in the table; call the variant otherwise")
    train = _training(spec, plan, base, problems)
    seeds = _seeds(spec, train, base, problems)
    held_out = _held_out(spec, plan, base, problems)
    if problems:
        raise AblationError(f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))
    target = Path(out) if out else (base / spec.out if spec.out else plan.run_dir / "ablate" / spec.name)
    return Ablation(spec.name, path, plan, target, reference, variants, train, seeds, held_out, list(plan.warnings))


# ---- running ------------------------------------------------------------------------------------------------------

def _run_rows(plan: Plan, progress: Progress) -> dict[str, str]:
    """Ingest and every stage of the pipeline on its executor (cached or resumed as `curate run` does);
    {folder: fingerprint}."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    executor = make_executor(plan.executor)
    try:
        run_stages([IngestStep(plan.sources, plan.batch_size, INGEST_DIR), *plan.stages], None, plan.run_dir, "",
                   executor, progress)
    finally:
        executor.close()
    folders = [INGEST_DIR] + [p.dirname for p in plan.stages]
    return {d: read_json(plan.run_dir / d / "_stage.json")["fingerprint"] for d in folders}


def _decontaminated(ablation: Ablation, sets_read: dict, dirname: str, input_fp: str,
                    progress: Progress) -> tuple[Path, str, dict]:
    """The stage's rows without those overlapping a question of a held-out set (all of it, not only the items a
    ``limit`` samples for scoring): (folder, fingerprint, stats)."""
    sets = []
    for name, held in ablation.held_out.items():
        eval_set = sets_read[name][0] if held.limit is None else \
            held_out_set(held.model_copy(update={"limit": None}), ablation.path.parent)[0]
        texts = ablation.out / "heldout" / f"{name}.jsonl"
        texts.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(texts, ({"question": item.question} for item in eval_set.items))
        sets.append({"name": name, "path": str(texts), "fields": ["question"]})
    stage = stage_class("decontaminate")({"eval_sets": sets})
    (stats,), ctx = run_stages([StageStep(dirname, stage, ablation.plan.batch_size)], ablation.plan.run_dir / dirname,
                               ablation.out / "rows", input_fp, progress=progress)
    return ctx.rows, ctx.fp, {"rows_in": stats.rows_in, "held_out_overlap": stats.rows_in - stats.rows_out}


class _Score(Step):
    """One model scored on one held-out set into OUT/<model>/eval/<set>/ (marker ``<set>.json`` beside it); models
    are loaded into ``loaded`` (shared by the model's steps) only when a step builds."""

    advances = False

    def __init__(self, model: str, set_name: str, held: HeldOut, eval_set, fp: str, config: dict,
                 adapter: Path | None, loaded: dict, progress: Progress):
        self.name = f"{model.replace('/', '-')}-eval-{set_name}"
        self.folder = Path(model) / "eval" / set_name
        self.held, self.eval_set, self.fp, self.config, self.adapter = held, eval_set, fp, config, adapter
        self.loaded, self.progress = loaded, progress

    def fingerprint(self, ctx: Context) -> str:
        return self.fp

    def marker(self, run_dir: Path) -> Path:
        return inside(run_dir, self.folder.with_name(f"{self.folder.name}.json"))

    def outputs(self, run_dir: Path) -> list[Path]:
        return [inside(run_dir, self.folder)]

    def build(self, ctx: Context, fp: str) -> dict:
        from curate.evaluate import evaluate_loaded, load_model

        key = repr(sorted(self.config.items()))
        if key not in self.loaded:
            self.loaded[key] = load_model(self.config, self.adapter)
        started = time.perf_counter()
        with building(inside(ctx.run_dir, self.folder)) as tmp:
            evaluate_loaded(self.loaded[key], self.eval_set, tmp, self.held.settings, overwrite=True,
                            progress=self.progress)
        n = len(self.eval_set.items)
        return {"stats": StepStats(self.name, n, n, {}, time.perf_counter() - started).plain()}


def _evaluate_model(ablation: Ablation, sets_read: dict, model: str, adapter: Path | None, adapter_fp: str | None,
                    progress: Progress) -> dict[str, bool]:
    """Score one model (``base`` or ``<variant>/seed-<s>``) on every held-out set into OUT/<model>/eval/<set>;
    {set: whether it was cached}. The model loads only when some set needs scoring, once per backend
    configuration."""
    loaded: dict[str, Any] = {}
    ctx = Context(ablation.out, make_executor(), progress)
    cached = {}
    try:
        for name, held in ablation.held_out.items():
            eval_set, set_fp = sets_read[name]
            config = eval_model_config(held, ablation.recipe.model)
            fp = evaluation_fingerprint(held, set_fp, config, adapter_fp)
            step = _Score(model, name, held, eval_set, fp, config, adapter, loaded, progress)
            cached[name] = run_step(step, ctx)[0].cached
    finally:
        for model in loaded.values():
            model.llm.close()
    return cached


def _seed_dir(variant: str, seed: int) -> str:
    return f"{variant}/seed-{seed}"


def _check_sizes(ablation: Ablation, exported: dict[str, dict]) -> None:
    """Refuse, before any training, a variant whose train split is smaller than one optimizer step's rows."""
    train = ablation.recipe.train
    step_rows = train.batch_size * train.grad_accum
    small = {name: counters.get("split_train", 0) for name, counters in exported.items()
             if counters.get("split_train", 0) < step_rows}
    if small:
        raise AblationError("too few training rows, nothing was trained: " + "; ".join(
            f"variant {name} has {n} train rows" for name, n in small.items())
            + f"; one optimizer step of {ablation.recipe.name} takes {step_rows} rows (batch_size "
            f"{train.batch_size} x grad_accum {train.grad_accum})")


def _versus(reference: dict[int, Path], other: dict[int, Path]) -> dict:
    """``other - reference``: ``compare_runs`` seed by seed (an untrained model's one run against every seed of the
    reference) and the difference pooled over seeds (``curate.evaluate.pooled``)."""
    from curate.evaluate import compare_runs
    from curate.evaluate.pooled import against_seeds, compare_seeded

    paired = against_seeds(reference, other)
    return {"per_seed": {str(s): compare_runs(run, paired[s]) for s, run in reference.items()},
            "pooled": compare_seeded(reference, other)}


def run_ablation(ablation: Ablation, progress: Progress | None = None) -> dict:
    """Run every step (see the module docstring); write and return OUT/ablation.json's content."""
    from curate.evaluate.pooled import pooled_metrics

    progress = progress or Progress(enabled=False)
    started = time.perf_counter()
    ablation.out.mkdir(parents=True, exist_ok=True)
    stage_fps = _run_rows(ablation.plan, progress)
    sets_read = {name: held_out_set(held, ablation.path.parent) for name, held in ablation.held_out.items()}
    rows = {d: _decontaminated(ablation, sets_read, d, stage_fps[d], progress)
            for d in dict.fromkeys(v.rows for v in ablation.variants.values())}
    counts = {name: rows[v.rows][2] for name, v in ablation.variants.items()}
    empty = [name for name, n in counts.items() if n["rows_in"] == n["held_out_overlap"]]
    if empty:
        raise AblationError("no rows to train on, nothing was trained: " + "; ".join(
            f"variant {name} ({ablation.variants[name].rows}: {counts[name]['rows_in']} rows before removing held-out "
            "overlap)" for name in empty))
    exports = {}
    for name, v in ablation.variants.items():
        folder, rows_fp, _ = rows[v.rows]
        ctx = Context(ablation.out / name, make_executor(), progress, rows=folder, fp=rows_fp)
        exports[name] = run_step(ExportStep(v.export, pipeline=ablation.plan.path), ctx)[0], ctx.fp
    _check_sizes(ablation, {name: stats.counters for name, (stats, _) in exports.items()})
    variants = {}
    for name, v in ablation.variants.items():
        export_stats, export_fp = exports[name]
        runs = {}
        for seed in ablation.seeds:
            model = _seed_dir(name, seed)
            ctx = Context(ablation.out / model, make_executor(), progress, fp=export_fp)
            train_stats, _ = run_step(FinetuneStep(ablation.seeded(seed), ablation.out / name / "export"), ctx)
            marker = read_json(ablation.out / model / "finetune.json")
            evaluated = _evaluate_model(ablation, sets_read, model, ablation.out / model / "finetune", ctx.fp,
                                        progress)
            runs[str(seed)] = {
                "train_rows": train_stats.rows_out, "steps": train_stats.counters.get("steps"),
                "tokens_trained": train_stats.counters.get("tokens_trained"), "first_loss": marker.get("first_loss"),
                "last_loss": marker.get("last_loss"), "train_seconds": round(train_stats.seconds, 1),
                "cached": {"finetune": train_stats.cached, "evaluate": evaluated}}
        variants[name] = {"rows": v.rows, **rows[v.rows][2], "export": v.export.model_dump(mode="json",
                                                                                           exclude={"push"}),
                          "exported": export_stats.counters, "export_cached": export_stats.cached, "seeds": runs}
    base_cached = _evaluate_model(ablation, sets_read, BASE, None, None, progress)
    models = {BASE: {ablation.seeds[0]: BASE}, **{name: {s: _seed_dir(name, s) for s in ablation.seeds}
                                                   for name in ablation.variants}}
    sets = {}
    for set_name in ablation.held_out:
        runs = {m: {s: ablation.out / folder / "eval" / set_name for s, folder in by_seed.items()}
                for m, by_seed in models.items()}
        summaries = {m: {str(s): read_json(run / "summary.json") for s, run in by_seed.items()}
                     for m, by_seed in runs.items()}
        first = summaries[BASE][str(ablation.seeds[0])]
        sets[set_name] = {
            "set": first["set"], "settings": first["settings"],
            "metrics": {m: {s: summary["metrics"] for s, summary in by_seed.items()}
                        for m, by_seed in summaries.items()},
            "pooled": {m: pooled_metrics(by_seed) for m, by_seed in runs.items()},
            "versus_reference": {m: _versus(runs[ablation.reference], runs[m])
                                 for m in models if m != ablation.reference}}
    recipe = ablation.recipe
    result = {"name": ablation.name, "curate_version": __version__, "run_dir": str(ablation.plan.run_dir),
              "out": str(ablation.out), "reference": ablation.reference, "recipe": recipe.name,
              "model": recipe.model, "max_steps": recipe.train.max_steps, "seeds": ablation.seeds,
              "variants": variants, "base": {"cached": base_cached}, "sets": sets,
              "seconds": round(time.perf_counter() - started, 1)}
    write_json(ablation.out / "ablation.json", result)
    return result


# ---- the table ----------------------------------------------------------------------------------------------------

def _interval(m: dict | None, signed: bool = False) -> str:
    if not m or m.get("value") is None:
        return "-"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(m['value'])} [{f.format(m['ci_low'])}, {f.format(m['ci_high'])}]"


def _test(test: dict | None) -> str:
    if not test:
        return "-"
    return f"{test.get('test', 'test')} p={test['p_value']:.3g}" if "p_value" in test else str(test.get("test"))


def variants_table(result: dict):
    """A rich Table: per variant its rows, what the held-out decontamination removed, and each seed's training."""
    from rich.table import Table

    seeds = ", ".join(map(str, result["seeds"]))
    table = Table(title=f"ablation {result['name']}: {result['recipe']} ({result['model']}), {result['max_steps']} "
                        f"steps, seeds {seeds}", title_justify="left")
    for col in ("variant", "rows from", "rows (all kinds)", "held-out overlap removed", "exported", "seed",
                "train rows", "loss first -> last", "train s", "cached"):
        table.add_column(col, overflow="fold")
    for name, v in result["variants"].items():
        exported = ", ".join(f"{k.removeprefix('split_')} {n}" for k, n in v["exported"].items())
        for i, (seed, run) in enumerate(v["seeds"].items()):
            loss = "-" if run["first_loss"] is None else f"{run['first_loss']:.3f} -> {run['last_loss']:.3f}"
            cached = [k for k, c in run["cached"].items() if (all(c.values()) if isinstance(c, dict) else c)]
            label = name + (" (reference)" if name == result["reference"] else "")
            first = [label, v["rows"], str(v["rows_in"]), str(v["held_out_overlap"]), exported] if i == 0 else \
                [""] * 5
            table.add_row(*first, seed, str(run["train_rows"]), loss, str(run["train_seconds"]),
                          ", ".join(cached) or "-")
        table.add_section()
    return table


def set_table(result: dict, name: str):
    """A rich Table for one held-out set: each metric per model (mean over seeds), the difference against the
    reference pooled over seeds, and each seed's own difference."""
    from rich.table import Table

    data, ref = result["sets"][name], result["reference"]
    level = next((m.get("level", 0.95) for m in data["pooled"][ref].values()), 0.95)
    several = len(result["seeds"]) > 1
    over = "seeds x items" if several else "items"
    table = Table(title=f"{name}: {data['set']['n']} items ({data['set']['origin']}), seeds "
                        f"{', '.join(map(str, result['seeds']))}", title_justify="left")
    for col in ("metric", "model", f"mean [{level:.0%} CI, {over}]", "n", f"minus {ref} [{level:.0%} CI, {over}]",
                "per seed: minus " + ref if several else "paired test"):
        table.add_column(col, overflow="fold")
    metrics = list(dict.fromkeys(k for ms in data["pooled"].values() for k in ms))
    for metric in metrics:
        for i, (model, values) in enumerate(data["pooled"].items()):
            versus = data["versus_reference"].get(model)
            pooled = (versus["pooled"]["metrics"].get(metric) if versus else None)
            if not pooled:
                last = "-"
            elif several:
                last = ", ".join(f"{s}: {d['value']:+.3f}" for s, d in pooled["per_seed"].items())
            else:
                last = _test(next(iter(versus["per_seed"].values()))["metrics"].get(metric, {}).get("test"))
            table.add_row(metric if i == 0 else "", model, _interval(values.get(metric)),
                          str((values.get(metric) or {}).get("n", "-")),
                          _interval(pooled["difference"], signed=True) if pooled else "-", last)
        table.add_section()
    table.caption = (f"means over seeds and items; differences are model minus {ref} in the metric's own units "
                     "(for a loss such as a negative log-likelihood, lower is better), items paired by id and "
                     "seeds by seed (the base model, trained by no seed, against every seed); intervals resample "
                     f"{over}")
    return table
