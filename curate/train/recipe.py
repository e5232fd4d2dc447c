"""Fine-tuning recipes: one YAML file names the model, the LoRA adapter and every training number, validated.

Consumes a recipe file (``finetune/*.yaml``); produces a ``Recipe`` or a ``RecipeError`` that lists every problem at
once (unknown keys included), so ``curate finetune --dry-run`` and the pipeline dry-run catch typos without loading
a model. Example, with the defaults of the keys left out shown in ``Recipe`` and its sections::

    name: gemma3n-e2b-text-lora
    model: unsloth/gemma-3n-E2B-it     # "embedded" (Gemma 3 270M from PyPI), a .gguf path, a folder or a Hub id
    modality: text                     # text, or vision (images in the user turn)
    backend: auto                      # auto: unsloth with CUDA and the gpu extra, else trl
    load_in_4bit: true                 # QLoRA; needs CUDA (bitsandbytes or unsloth)
    lora: {r: 8, alpha: 8, dropout: 0.0, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}
    train: {max_length: 1024, batch_size: 1, grad_accum: 4, learning_rate: 2.0e-4, scheduler: linear, warmup: 5,
            max_grad_norm: 0.3, max_steps: 60, precision: bf16, seed: 3407}
    data: {train_split: train, eval_split: validation}

Gemma 3n overflows in float16, so ``precision: fp16`` is refused for it (by name here, by ``model_type`` once a
local folder's config is read).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.paths import path_or_name

EMBEDDED = "embedded"
ATTENTION_AND_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class RecipeError(Exception):
    """The recipe cannot be used; the message names the file and lists every problem (also in ``problems``)."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def is_gemma3n(name: str | None) -> bool:
    name = (name or "").lower().replace("_", "-")
    return "gemma-3n" in name or "gemma3n" in name


class LoraSpec(BaseModel):
    """The adapter: rank, scale, dropout, which linear layers (by last name) and which parts of the model."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, le=1024, description="LoRA rank")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter input")
    targets: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(ATTENTION_AND_MLP),
        description="last names of the linear layers to adapt, or all-linear (every linear layer but lm_head)")
    layers: list[Literal["language", "vision"]] = Field(
        default_factory=lambda: ["language"], min_length=1,
        description="parts of the model that get adapters: language, vision (audio towers never do)")


class TrainSpec(BaseModel):
    """The optimisation: lengths, batch, schedule, precision and when to stop."""

    model_config = ConfigDict(extra="forbid")
    max_length: int = Field(1024, ge=16, description="tokens per example; longer text rows are cut at the end")
    batch_size: int = Field(1, ge=1, description="examples per device step")
    grad_accum: int = Field(4, ge=1, description="steps accumulated per optimizer update")
    learning_rate: float = Field(2e-4, gt=0, description="peak learning rate")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="learning-rate schedule after the warm-up")
    warmup: float = Field(0, ge=0, description="warm-up: steps (>= 1) or a fraction of all steps (< 1)")
    max_grad_norm: float = Field(0.3, gt=0, description="gradient clipping norm")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    epochs: float | None = Field(None, gt=0, description="passes over the data (default 1 unless max_steps)")
    max_steps: int | None = Field(None, ge=1, description="optimizer updates; set this or epochs, not both")
    precision: Literal["bf16", "fp32", "fp16"] = Field("bf16", description="weights and compute (never fp16 for "
                                                                          "Gemma 3n)")
    optim: Literal["auto", "adamw_torch", "adamw_torch_fused", "adamw_8bit", "paged_adamw_8bit"] = Field(
        "auto", description="auto: adamw_8bit with CUDA and bitsandbytes, else adamw_torch")
    gradient_checkpointing: bool = Field(True, description="recompute activations: less memory, slower")
    group_by_length: bool = Field(False, description="batch rows of similar length together: less padding, faster "
                                                     "(text rows)")
    logging_steps: int = Field(1, ge=1, description="record the training loss every N updates")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N updates (always once at the end)")
    seed: int = Field(3407, description="seed of the adapter's initialisation and of the data order")

    @model_validator(mode="after")
    def _stop(self) -> "TrainSpec":
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("set train.epochs or train.max_steps, not both")
        if self.warmup >= 1 and self.warmup != int(self.warmup):
            raise ValueError(f"train.warmup {self.warmup} is neither a whole number of steps nor a fraction below 1")
        return self

    @property
    def num_epochs(self) -> float:
        return self.epochs if self.epochs is not None else 1.0

    @property
    def warmup_steps(self) -> int | float:
        """``warmup`` as transformers reads it: whole steps as an int, a fraction as a float."""
        return int(self.warmup) if self.warmup >= 1 else self.warmup


class DataSpec(BaseModel):
    """Which splits of the export folder train and evaluate, and how many rows of each."""

    model_config = ConfigDict(extra="forbid")
    train_split: str = Field("train", description="split of the export folder to train on")
    eval_split: str | None = Field("validation", description="evaluation split; None or a missing split skips it")
    max_train_rows: int | None = Field(None, ge=1, description="use only the first N training rows")
    max_eval_rows: int | None = Field(None, ge=1, description="use only the first N evaluation rows")


class Recipe(BaseModel):
    """A fine-tuning recipe (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="the recipe's name (default output folder runs/finetune/NAME)")
    description: str = Field("", description="free text")
    model: str = Field(EMBEDDED, description="'embedded', a .gguf path, a local folder or a Hub id")
    modality: Literal["text", "vision"] = Field("text", description="text, or vision (images in the first user turn)")
    backend: Literal["auto", "unsloth", "trl"] = Field(
        "auto", description="auto: unsloth with CUDA and the gpu extra, else trl")
    load_in_4bit: bool = Field(False, description="QLoRA: load the base weights in 4 bits (CUDA only)")
    merge: bool = Field(False, description="also save the base model with the adapter merged in (merged/)")
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    data: DataSpec = Field(default_factory=DataSpec)

    @model_validator(mode="after")
    def _consistent(self) -> "Recipe":
        if self.train.precision == "fp16" and (is_gemma3n(self.model) or is_gemma3n(_local_model_type(self.model))):
            raise ValueError(f"{self.model} is a Gemma 3n model, which overflows in float16: use precision bf16 "
                             "(or fp32)")
        if "vision" in self.lora.layers and self.modality != "vision":
            raise ValueError("lora.layers has vision but modality is text: vision layers only learn from images; "
                             "set modality: vision or drop vision from lora.layers")
        if self.modality == "vision" and (self.model == EMBEDDED or self.model.endswith(".gguf")):
            raise ValueError(f"model {self.model!r} is a text-only GGUF; a vision recipe needs a vision-language "
                             "model (a folder or Hub id)")
        return self


def recipe_keys() -> list[str]:
    """Every key a recipe may hold, with its default and meaning, one line each (``curate finetune --help``)."""
    lines: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                walk(info.annotation, f"{prefix}{name}.")
                continue
            default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
            lines.append(f"{prefix}{name}: {default}" + (f"  ({info.description})" if info.description else ""))

    walk(Recipe, "")
    return lines


def _local_model_type(model: str) -> str | None:
    """``model_type`` from a local model folder's config.json, or None."""
    config = Path(model).expanduser() / "config.json"
    try:
        return json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "recipe"
        if err["type"] == "extra_forbidden":
            out.append(f"{where}: unknown key")
        else:
            out.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return out


def parse_recipe(raw: object, source: str = "recipe") -> Recipe:
    """A Recipe from already-parsed YAML; RecipeError lists every problem."""
    if not isinstance(raw, dict):
        raise RecipeError(source, ["a recipe is a mapping of keys (name, model, lora, train, data, ...)"])
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(source, _problems(exc)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file; a relative ``model`` path that exists beside it is made absolute."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(str(path), [f"cannot read the recipe: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise RecipeError(str(path), [f"not valid YAML: {exc}"]) from None
    if isinstance(raw, dict) and isinstance(raw.get("model"), str):
        raw["model"] = raw["model"] if raw["model"] == EMBEDDED else path_or_name(raw["model"], path.parent)
    return parse_recipe(raw, str(path))


def validate_recipe(path: str | Path) -> list[str]:
    """Every problem of the recipe file, one line each (empty when it is valid); loads no model and no data."""
    try:
        load_recipe(path)
    except RecipeError as exc:
        return [f"{path}: {p}" for p in exc.problems]
    return []
