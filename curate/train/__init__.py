"""Fine-tuning: LoRA recipes for Gemma (Gemma 3n, MedGemma, the embedded Gemma 3 270M) trained on export folders.

Consumes a recipe YAML (``finetune/*.yaml``, validated by ``recipe``) and an export folder (``curate.export``);
produces an adapter folder (``run.finetune``) that ``chat`` loads to answer with and without the adapter. Modules:
``recipe`` (the YAML model), ``data`` (export rows -> Gemma turns with assistant-only labels), ``models`` (base
model, tokenizer or processor, LoRA layers), ``trl_backend`` (TRL + PEFT, any device), ``unsloth_backend`` (CUDA),
``run`` (plan, train, write, merge, push), ``hub`` (the model push), ``chat``. Heavy libraries load on use::

    from curate.train import finetune, validate_recipe
    validate_recipe("finetune/gemma3-270m-cpu-lora.yaml")      # [] when valid
    finetune("finetune/gemma3-270m-cpu-lora.yaml", "exports/firstaid", "runs/finetune/firstaid")
"""

from curate.train.recipe import Recipe, RecipeError, load_recipe, validate_recipe
from curate.train.run import FinetuneError, FinetuneResult, NothingToTrain, Plan, finetune, plan_finetune

__all__ = ["Recipe", "RecipeError", "load_recipe", "validate_recipe", "FinetuneError", "FinetuneResult",
           "NothingToTrain", "Plan", "finetune", "plan_finetune"]
