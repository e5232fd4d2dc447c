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

from importlib import import_module

# Names resolve on first use (PEP 562): validating a recipe loads no training code.
_EXPORTS = {"Recipe": "recipe", "RecipeError": "recipe", "load_recipe": "recipe", "validate_recipe": "recipe",
            "FinetuneError": "run", "FinetuneResult": "run", "NothingToTrain": "run", "FinetunePlan": "run",
            "finetune": "run", "plan_finetune": "run"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'curate.train' has no attribute '{name}'")
    return getattr(import_module(f"curate.train.{_EXPORTS[name]}"), name)
