"""Fine-tuning end to end: a recipe and an export folder in, an adapter folder out (merged and pushed when asked).

Consumes a recipe (``curate.train.recipe``) and an export folder (``curate.export``); produces OUT/:

    adapter_config.json, adapter_model.safetensors   the LoRA adapter (PEFT), base_model_name_or_path = recipe.model
    tokenizer / processor files                      what the model reads with
    recipe.yaml                                      the recipe as trained, every default filled in
    data.json                                        the data: export format, rows used, sha256 of each file and of all,
                                                     each source's licences
    README.md                                        the model card (``curate.train.card``)
    loss_history.json                                {"train": [{step, epoch, loss, ...}], "eval": [{step, loss, ...}]}
    train_report.json                                backend, device, metrics (runtime, tokens, tokens per second)
    merged/                                          the base model with the adapter merged in (``merge: true``)

``plan_finetune`` checks everything that can be checked without loading a model (``--dry-run``). ``finetune`` trains
with the chosen backend (``auto``: Unsloth when CUDA and the gpu extra are there, else TRL), builds OUT in a sibling
temporary folder and renames it into place, so a failed run leaves no half-written output; ``push`` then uploads it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from curate import __version__
from curate.export.hub import PushError, refuse_licenses, row_licenses
from curate.io import building, write_json
from curate.train import unsloth_backend
from curate.train.data import DataError, NoExamples, TrainingData, load_training_data
from curate.train.card import render_model_card
from curate.train.models import cuda_available
from curate.train.recipe import EMBEDDED, Recipe, RecipeError, load_recipe

log = logging.getLogger(__name__)

OUTPUT_ROOT = Path("runs") / "finetune"


class FinetuneError(Exception):
    """The fine-tune cannot start as asked (recipe, data, output folder or backend); the message says the fix."""


class NothingToTrain(FinetuneError):
    """The data holds no example with an assistant answer to learn."""


@dataclass
class FinetunePlan:
    """What a fine-tune will do, checked without loading the model."""

    recipe: Recipe
    data: TrainingData
    backend: str
    output: Path
    warnings: list[str] = field(default_factory=list)


@dataclass
class FinetuneResult:
    """A finished fine-tune: where it is, what it learnt, and the trained model still in memory."""

    output: Path
    backend: str
    history: dict
    metrics: dict
    model: object = None
    processing: object = None
    pushed: str | None = None
    warnings: list[str] = field(default_factory=list)


def choose_backend(requested: str) -> str:
    """``unsloth`` or ``trl`` for a recipe's ``backend`` on this machine."""
    if requested == "trl":
        return "trl"
    if unsloth_backend.available():
        return "unsloth"
    if requested == "unsloth":
        raise FinetuneError("backend unsloth needs a CUDA GPU and unsloth; use backend: trl (or auto), or on a CUDA "
                            f"machine: {unsloth_backend.INSTALL}")
    return "trl"


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise FinetuneError(f"{output} exists and is not empty; choose another --output or pass --overwrite")
        if not (output / "recipe.yaml").is_file():
            raise FinetuneError(f"{output} is not a fine-tuning output (no recipe.yaml), so --overwrite will not "
                                "replace it; choose another --output")


def _check_modality(recipe: Recipe, data: TrainingData) -> None:
    if recipe.modality == "vision" and not data.has_images:
        raise FinetuneError(f"recipe {recipe.name} is a vision recipe but {data.folder} has no images")
    if recipe.modality == "text" and data.has_images:
        raise FinetuneError(f"{data.folder} has images but recipe {recipe.name} is a text recipe; use a vision "
                            "recipe (modality: vision)")


def plan_finetune(recipe: str | Path | Recipe, data_dir: str | Path, output: str | Path | None = None,
                  overwrite: bool = False) -> FinetunePlan:
    """Validate the recipe, the data folder, the output folder and the backend; load no model."""
    try:
        recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        d = recipe.data
        data = load_training_data(data_dir, d.train_split, d.eval_split, d.max_train_rows, d.max_eval_rows)
    except NoExamples as exc:
        raise NothingToTrain(str(exc)) from None
    except (RecipeError, DataError) as exc:
        raise FinetuneError(str(exc)) from None
    _check_modality(recipe, data)
    output = Path(output) if output else OUTPUT_ROOT / recipe.name
    _check_output(output, overwrite)
    backend = choose_backend(recipe.backend)
    warnings = list(data.warnings)
    if recipe.load_in_4bit and not cuda_available():
        warnings.append(f"load_in_4bit needs CUDA: {recipe.model} will load in {recipe.train.precision}")
    return FinetunePlan(recipe, data, backend, output, warnings)


def _train(plan: FinetunePlan):
    if plan.backend == "unsloth":
        return unsloth_backend.train(plan.recipe, plan.data)
    from curate.train import trl_backend

    return trl_backend.train(plan.recipe, plan.data)


def _base_name(model: str) -> str:
    """The base model as written into the adapter: a Hub id or ``embedded`` as is, a local path by its name only."""
    path = Path(model).expanduser()
    return path.name if model != EMBEDDED and path.is_absolute() else model


def _report(plan: FinetunePlan, trained, seconds: float) -> dict:
    metrics = dict(trained.metrics)
    runtime, tokens = metrics.get("train_runtime"), metrics.get("num_tokens")
    return {"curate_version": __version__, "recipe": plan.recipe.name, "model": plan.recipe.model,
            "backend": plan.backend, "device": str(getattr(trained.model, "device", "")), "seconds": round(seconds, 1),
            "tokens_per_second": round(tokens / runtime, 1) if runtime and tokens else None,
            "trainable_parameters": sum(p.numel() for p in trained.model.parameters() if p.requires_grad),
            "metrics": metrics, "warnings": plan.warnings}


def _data_record(data: TrainingData) -> dict:
    """data.json: the export folder's name, format, rows used, the files' sha256 and, per source, its rows' licences
    (what a model push is checked against)."""
    try:
        found = {str(source): sorted(lic or "" for lic in lics) for source, lics in row_licenses(data.folder).items()}
    except PushError:  # shards without source and license columns: a push is refused, training is not
        found = None
    return {"folder": data.folder.name, "format": data.format,
            "rows": {"train": len(data.train), "eval": len(data.eval) if data.eval else 0}, **data.digest,
            "licenses": found}


def _write(folder: Path, plan: FinetunePlan, trained, seconds: float) -> None:
    """The adapter, its tokenizer or processor, the recipe, the data's digest, the losses and the report."""
    trained.model.peft_config["default"].base_model_name_or_path = _base_name(plan.recipe.model)
    trained.model.save_pretrained(folder)
    trained.processing.save_pretrained(folder)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(plan.recipe.model_dump(mode="json"), sort_keys=False,
                                                       allow_unicode=True), encoding="utf-8")
    record = _data_record(plan.data)
    write_json(folder / "data.json", record)
    (folder / "README.md").write_text(render_model_card(plan.recipe, record), encoding="utf-8")
    write_json(folder / "loss_history.json", trained.history)
    write_json(folder / "train_report.json", _report(plan, trained, seconds))


def merge_adapter(recipe: Recipe, adapter_dir: Path, out: Path) -> None:
    """Save the base model (in the recipe's precision, never 4-bit) with the adapter merged in, and its tokenizer."""
    from peft import PeftModel

    from curate.train.models import load_base

    base, processing = load_base(recipe.model_copy(update={"load_in_4bit": False}))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    if hasattr(merged.config, "quantization_config"):
        del merged.config.quantization_config
    merged.save_pretrained(out)
    processing.save_pretrained(out)


def finetune(recipe: str | Path | Recipe, data_dir: str | Path, output: str | Path | None = None, *,
             overwrite: bool = False, push: str | None = None, private: bool = True,
             token: str | None = None, allow_licenses: Iterable[str] = ()) -> FinetuneResult:
    """FinetunePlan, train, write OUT (see the module docstring), merge and push as asked; a push the training rows'
    licences forbid is refused before training."""
    plan = plan_finetune(recipe, data_dir, output, overwrite)
    if push:
        refuse_licenses(row_licenses(plan.data.folder), allow_licenses, f"a model trained on {plan.data.folder}")
    for w in plan.warnings:
        log.warning("%s", w)
    started = time.monotonic()
    trained = _train(plan)
    out = plan.output.resolve()
    with building(out) as tmp:
        _write(tmp, plan, trained, time.monotonic() - started)
        if plan.recipe.merge:
            merge_adapter(plan.recipe, tmp, tmp / "merged")
    result = FinetuneResult(out, plan.backend, trained.history, trained.metrics, trained.model, trained.processing,
                            warnings=plan.warnings)
    if push:
        from curate.train.hub import push_model

        result.pushed = push_model(out, push, private=private, token=token, allow_licenses=allow_licenses)
    return result
