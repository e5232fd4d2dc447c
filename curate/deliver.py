"""What a run delivers after its row stages: the exported dataset, its upload, a fine-tuned adapter, the base and
tuned model's answers side by side, and both models evaluated on a held-out set.

Pipeline keys (all optional)::

    export:                       # -> RUN_DIR/export (curate.export): parquet splits + dataset card
      format: messages
      context: omit               # omit: closed-book SFT (the question only); include: retrieved passages in the prompt
      splits: {train: 0.8, validation: 0.1, test: 0.1}
      push: {repo: ORG/NAME, private: true}   # skipped with --no-push
    finetune:                     # -> RUN_DIR/finetune (curate.train): LoRA adapter, loss history
      recipe: ../finetune/gemma3-270m-cpu-lora.yaml
      max_steps: 30               # overrides the recipe's train.max_steps
      compare:                    # -> RUN_DIR/compare.json: base vs tuned answers (greedy, same settings)
        questions: ["How long should a burn be cooled?"]
        max_tokens: 96
      evaluate:                   # -> RUN_DIR/evaluate (curate.evaluate): base and tuned scored, compared
        set: medqa-usmle-4-options-test   # catalog name, or a QA file / folder (relative to the pipeline file)
        path: ../data/medqa_test.jsonl    # a local copy of a catalog entry (nothing is downloaded)
        limit: 50                 # a seeded sample
        settings: {scoring: loglik, shots: 3}    # curate.evaluate.EvalSettings
        model: {dtype: float32}   # transformers backend options for both models

Each step is fingerprinted like a stage (its config and its input's fingerprint) and skipped on a rerun when
complete (``cached_step``: the one protocol every delivery step and ``curate.ablate`` use); its output folder is
written under a temporary name and renamed, and its marker (``RUN_DIR/<step>.json``) only then, so a killed run never
leaves a partial step that looks done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from curate import __version__
from curate.evaluate.run import EvalSettings
from curate.io import file_sha256, read_json, write_json
from curate.runner import StageStats, fingerprint


class PushSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    private: bool = True


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = "messages"
    reasoning: str = "drop"
    context: Literal["omit", "include"] = "omit"
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "validation": 0.05, "test": 0.05})
    seed: int = 0
    push: PushSpec | None = None


class CompareSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[str] = Field(min_length=1)
    max_tokens: int = Field(default=96, ge=1)


class EvaluateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: str
    path: str | None = None
    layout: str | None = None
    split: str = "test"
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    settings: EvalSettings = Field(default_factory=EvalSettings)
    model: dict = Field(default_factory=dict)


class FinetuneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str
    max_steps: int | None = Field(default=None, ge=1)
    compare: CompareSpec | None = None
    evaluate: EvaluateSpec | None = None


def load_recipe_for(spec: FinetuneSpec, base: Path):
    """The spec's recipe with its overrides applied (RecipeError lists problems)."""
    from curate.train.recipe import load_recipe

    path = Path(spec.recipe)
    recipe = load_recipe(path if path.is_absolute() else base / path)
    if spec.max_steps:
        recipe = recipe.model_copy(update={"train": recipe.train.model_copy(update={"max_steps": spec.max_steps})})
    return recipe


def cached_step(marker: Path, fp: str, build: Callable[[], dict]) -> tuple[dict, bool]:
    """Run a step once per fingerprint: (the record saved in ``marker``, True) when it holds ``fp``; else
    (``build()``'s record, False), saved in ``marker`` with ``fp`` after ``build`` returns. ``build`` writes the step's
    output (under a temporary name, renamed when complete: ``curate.io.building``) and returns a JSON-able record."""
    if marker.exists() and read_json(marker).get("fingerprint") == fp:
        return read_json(marker), True
    marker.unlink(missing_ok=True)
    record = build()
    write_json(marker, {"fingerprint": fp, **record})
    return record, False


def _stats(record: dict, cached: bool) -> StageStats:
    return StageStats(**record["stats"], cached=cached)


def export_step(spec: ExportSpec, rows_dir: Path, run_dir: Path, input_fp: str,
                pipeline: Path | None = None) -> tuple[StageStats, str]:
    """Export the rows in ``rows_dir`` to RUN_DIR/export, with the pipeline file (``pipeline``, else
    RUN_DIR/pipeline.yaml) beside them when it exists; returns stats (rows in/out, skipped by reason) and a
    fingerprint."""
    from curate.export.artifact import ExportOptions, export

    fp = fingerprint("export", spec.model_dump(mode="json", exclude={"push"}), input_fp, __version__)
    pipeline = pipeline or run_dir / "pipeline.yaml"

    def build() -> dict:
        started = time.perf_counter()
        result = export(rows_dir, run_dir / "export", ExportOptions(
            format=spec.format, reasoning=spec.reasoning, context=spec.context, fractions=dict(spec.splits),
            seed=spec.seed, pipeline=pipeline if pipeline.is_file() else None, overwrite=True))
        kept = sum(result.splits.values())
        stats = StageStats("export", kept + sum(result.skipped.values()), kept, dict(result.skipped),
                           time.perf_counter() - started, {f"split_{k}": v for k, v in result.splits.items()})
        return {"stats": _plain(stats), "license": result.license, "warnings": result.warnings}

    record, cached = cached_step(run_dir / "export.json", fp, build)
    return _stats(record, cached), fp


def push_step(spec: PushSpec, run_dir: Path) -> StageStats:
    """Upload RUN_DIR/export to the Hub (token from HF_TOKEN or the saved login; never printed)."""
    from curate.export.hub import push

    started = time.perf_counter()
    result = push(run_dir / "export", spec.repo, private=spec.private)
    return StageStats("push", len(result.files), len(result.files), {}, time.perf_counter() - started)


def finetune_step(spec: FinetuneSpec, base: Path, run_dir: Path, input_fp: str) -> tuple[StageStats, str]:
    """LoRA-train the recipe on RUN_DIR/export into RUN_DIR/finetune."""
    from curate.train.run import finetune

    recipe = load_recipe_for(spec, base)
    fp = fingerprint("finetune", recipe.model_dump(mode="json"), input_fp, __version__)

    def build() -> dict:
        started = time.perf_counter()
        result = finetune(recipe, run_dir / "export", run_dir / "finetune", overwrite=True)
        losses = [h["loss"] for h in result.history.get("train", []) if "loss" in h]
        train_rows = read_json(result.output / "data.json")["rows"]["train"]
        counters = {"tokens_trained": int(result.metrics.get("num_tokens", 0) or 0),
                    "steps": recipe.train.max_steps}
        stats = StageStats("finetune", train_rows, train_rows, {}, time.perf_counter() - started, counters)
        return {"stats": _plain(stats), "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None}

    record, cached = cached_step(run_dir / "finetune.json", fp, build)
    return _stats(record, cached), fp


def compare_step(spec: CompareSpec, recipe_model: str, run_dir: Path, input_fp: str) -> tuple[StageStats, list]:
    """The base model's and the tuned adapter's greedy answers to the same questions (RUN_DIR/compare.json)."""
    from curate.train.chat import apply_adapter, ask, load_chat_model

    def build() -> dict:
        started = time.perf_counter()
        llm = load_chat_model(recipe_model)
        try:
            before = [ask(llm, q, max_tokens=spec.max_tokens) for q in spec.questions]
            apply_adapter(llm, run_dir / "finetune")
            after = [ask(llm, q, max_tokens=spec.max_tokens) for q in spec.questions]
        finally:
            llm.close()
        answers = [{"question": q, "base": b, "tuned": t} for q, b, t in zip(spec.questions, before, after)]
        stats = StageStats("compare", len(spec.questions), len(answers), {}, time.perf_counter() - started)
        return {"stats": _plain(stats), "answers": answers}

    record, cached = cached_step(run_dir / "compare.json", fingerprint("compare", spec.model_dump(mode="json"),
                                                                       input_fp), build)
    return _stats(record, cached), record["answers"]


def local_path(value: str | None, base: Path) -> str | None:
    """``value`` read from ``base`` when it names a file or folder there (a catalog name stays as it is)."""
    if value is None:
        return None
    path = base / Path(value).expanduser()
    return str(path) if path.exists() else value


def held_out_set(spec: EvaluateSpec, base: Path):
    """The spec's evaluation set (paths read from ``base``) and what fingerprints it: the kept items and the sha256
    of the local files it was read from."""
    from curate.evaluate import load_eval_set

    eval_set = load_eval_set(local_path(spec.set, base), path=local_path(spec.path, base), split=spec.split,
                             layout=spec.layout, limit=spec.limit, seed=spec.seed)
    files = [Path(p) for p in (local_path(spec.set, base), local_path(spec.path, base)) if p and Path(p).is_file()]
    return eval_set, [eval_set.fingerprint, [file_sha256(p) for p in files]]


def eval_model_config(spec: EvaluateSpec, recipe_model: str) -> dict:
    """The LLMConfig (as a dict) both models of an evaluation load: the recipe's model on transformers."""
    return {"backend": "transformers", "instruction_tuned": True, **spec.model, "model": recipe_model}


def evaluate_step(spec: EvaluateSpec, recipe_model: str, base: Path, run_dir: Path,
                  input_fp: str) -> tuple[StageStats, dict]:
    """The base model and the tuned adapter scored on the same held-out set with the same prompts, decoding and
    precision (RUN_DIR/evaluate: base/, tuned/, comparison.json); returns stats and the comparison."""
    from curate.evaluate import compare_models

    eval_set, set_fp = held_out_set(spec, base)
    fp = fingerprint("evaluate", spec.model_dump(mode="json"), *set_fp, input_fp, __version__)

    def build() -> dict:
        started = time.perf_counter()
        config = eval_model_config(spec, recipe_model)
        comparison = compare_models(config, config, eval_set, run_dir / "evaluate",
                                    tuned_adapter=run_dir / "finetune", settings=spec.settings)
        counters = {f"{side}_{name}": round(m[side]["value"], 4) for name, m in comparison["metrics"].items()
                    for side in ("a", "b") if m[side].get("value") is not None}
        stats = StageStats("evaluate", len(eval_set.items), comparison["n_paired"], dict(eval_set.rejected),
                           time.perf_counter() - started, counters)
        return {"stats": _plain(stats), "comparison": comparison}

    record, cached = cached_step(run_dir / "evaluate.json", fp, build)
    return _stats(record, cached), record["comparison"]


def _plain(stats: StageStats) -> dict:
    return {k: v for k, v in vars(stats).items() if k != "cached"}
