"""The pipeline's delivery keys (all optional), validated without loading any library::

    export:                       # -> RUN_DIR/export (curate.export): parquet splits + dataset card
      format: messages
      context: omit               # omit: closed-book SFT (the question only); include: retrieved passages in the prompt
      splits: {train: 0.8, validation: 0.1, test: 0.1}
      push: {repo: ORG/NAME, private: true}   # skipped with --no-push; allow_license: [NAME] passes the gate
    finetune:                     # -> RUN_DIR/finetune (curate.train): LoRA adapter, loss history
      recipe: ../finetune/gemma3-270m-cpu-lora.yaml
      max_steps: 30               # replaces the recipe's train.max_steps (and train.epochs)
      compare:                    # -> RUN_DIR/compare.json: base vs tuned answers, greedy (curate.train.chat.ask)
        questions: ["How long should a burn be cooled?"]
        max_tokens: 96
      evaluate:                   # -> RUN_DIR/evaluate (curate.evaluate): base and tuned scored, compared
        set: medqa-usmle-4-options-test   # catalog name, or a QA file / folder (relative to the pipeline file)
        path: ../data/medqa_test.jsonl    # a local copy of a catalog entry (nothing is downloaded)
        limit: 50                 # a seeded sample
        settings: {shots: 0}      # curate.evaluate.EvalSettings; unset ones follow the model (for_model)
        model: {dtype: float32}   # transformers backend options for both models
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.evaluate.settings import EvalSettings
from curate.paths import beside


class PushSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    private: bool = True
    allow_license: list[str] = Field(default_factory=list, description="licences to push although they do not "
                                                                        "allow publishing (curate.export.hub)")


ExportFormat = Literal["messages", "medrescue", "alpaca", "sharegpt"]  # curate.export.formats.FORMATS
Reasoning = Literal["drop", "think_tags", "field"]  # curate.export.formats.REASONING_MODES


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: ExportFormat = "messages"
    reasoning: Reasoning = "drop"
    context: Literal["omit", "include"] = "omit"
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.9, "validation": 0.05, "test": 0.05})
    seed: int = 0
    push: PushSpec | None = None


class CompareSpec(BaseModel):
    """Questions the base and the tuned model both answer: fixed ``questions``, and with ``from_split`` up to ``n``
    pairs of that export split (never trained on), shown with their reference answer, its source and the reference
    answer's NLL under each model."""

    model_config = ConfigDict(extra="forbid")
    questions: list[str] = Field(default_factory=list)
    from_split: str | None = None
    n: int = Field(default=2, ge=1)
    max_tokens: int = Field(default=96, ge=1)

    @model_validator(mode="after")
    def _something_to_ask(self) -> "CompareSpec":
        if not self.questions and not self.from_split:
            raise ValueError("compare needs `questions`, `from_split` (an export split, e.g. test) or both")
        return self


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
    """The spec's recipe with its overrides applied and validated again (RecipeError lists problems):
    ``max_steps`` replaces the recipe's stopping rule, its ``epochs`` included."""
    from curate.train.recipe import load_recipe, parse_recipe

    path = beside(base, spec.recipe)
    recipe = load_recipe(path)
    if not spec.max_steps:
        return recipe
    raw = recipe.model_dump(mode="json")
    raw["train"].update(max_steps=spec.max_steps, epochs=None)
    return parse_recipe(raw, f"{path} with finetune.max_steps {spec.max_steps}")
