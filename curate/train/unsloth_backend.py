"""The Unsloth backend (CUDA only): ``FastModel`` / ``FastVisionModel`` in 4 bits, LoRA, loss on responses only.

Consumes a ``Recipe`` and ``TrainingData``; produces a ``trl_backend.Trained``. It follows Unsloth's documented Gemma 3n
recipe: ``from_pretrained(load_in_4bit=...)``, ``get_peft_model`` with ``finetune_vision_layers`` /
``finetune_language_layers`` and the same target layers as the TRL backend, ``trl.SFTTrainer`` on a ``text`` column
(the turns of ``curate.train.data.gemma_turns``) masked by ``unsloth.chat_templates.train_on_responses_only``, or for
vision ``unsloth.trainer.UnslothVisionDataCollator`` on {messages, images} rows with the same masking. unsloth is
imported only when this backend runs (and before trl, as it requires); without it or without CUDA the error gives
the install line.
"""

from __future__ import annotations

import importlib.util

import datasets

from curate.export.formats import FORMATS, typed_turns
from curate.llm.chat import fold_system
from curate.train.data import INSTRUCTION_PART, RESPONSE_PART, TrainingData, gemma_turns
from curate.train.models import GPU_INSTALL as INSTALL, cuda_available, lora_targets
from curate.train.recipe import Recipe


class BackendUnavailable(ImportError):
    """The Unsloth backend cannot run here; the message says why and how to install it."""


def available() -> bool:
    """CUDA is there and unsloth is installed (checked without importing it)."""
    return importlib.util.find_spec("unsloth") is not None and cuda_available()


def _import_unsloth():
    if not cuda_available():
        raise BackendUnavailable(f"the unsloth backend needs a CUDA GPU (none found); use backend: trl, or on a CUDA "
                                 f"machine: {INSTALL}")
    try:
        import unsloth
    except ImportError:
        raise BackendUnavailable(f"the unsloth backend needs unsloth: {INSTALL}") from None
    return unsloth


def _vision_rows(examples: list[dict]) -> datasets.Dataset:
    """The examples in the multimodal ``messages`` export layout (``typed_turns``), system text folded."""
    rows = [{"messages": typed_turns(fold_system(ex["messages"]), len(ex["images"])), "images": ex["images"]}
            for ex in examples]
    return datasets.Dataset.from_list(rows, features=FORMATS["messages"].features(multimodal=True, reasoning="drop"))


def _text_rows(examples: list[dict]) -> datasets.Dataset:
    """The rendered turns in a ``text`` column, without ``<bos>`` (the tokenizer adds it)."""
    return datasets.Dataset.from_dict({"text": [gemma_turns(ex["messages"]) for ex in examples]})


def train(recipe: Recipe, data: TrainingData):
    """LoRA-train the recipe's model on ``data`` with Unsloth."""
    _import_unsloth()
    from unsloth import FastModel, FastVisionModel
    from unsloth.chat_templates import train_on_responses_only
    from unsloth.trainer import UnslothVisionDataCollator

    from trl import SFTTrainer

    from curate.train.trl_backend import Trained, loss_history, resolve_optim, run_trainer, scratch_dir, sft_config

    vision = recipe.modality == "vision"
    fast = FastVisionModel if vision else FastModel
    model, processing = fast.from_pretrained(model_name=recipe.model, max_seq_length=recipe.train.max_length,
                                             load_in_4bit=recipe.load_in_4bit, dtype=None, full_finetuning=False)
    model = fast.get_peft_model(
        model, finetune_vision_layers="vision" in recipe.lora.layers,
        finetune_language_layers="language" in recipe.lora.layers, finetune_attention_modules=True,
        finetune_mlp_modules=True, r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
        bias="none", random_state=recipe.train.seed, target_modules=lora_targets(model, recipe.lora))
    has_eval = bool(data.eval)
    with scratch_dir() as scratch:
        config = dict(recipe=recipe, output_dir=scratch, has_eval=has_eval, vision=vision,
                      optim=resolve_optim(recipe, unsloth=True))
        if vision:
            FastVisionModel.for_training(model)
            collator = UnslothVisionDataCollator(model, processing, train_on_responses_only=True,
                                                 instruction_part=INSTRUCTION_PART, response_part=RESPONSE_PART)
            trainer = SFTTrainer(model=model, processing_class=processing, data_collator=collator,
                                 train_dataset=_vision_rows(data.train),
                                 eval_dataset=_vision_rows(data.eval) if has_eval else None,
                                 args=sft_config(**config, dataset_text_field=""))
        else:
            trainer = SFTTrainer(model=model, processing_class=processing, train_dataset=_text_rows(data.train),
                                 eval_dataset=_text_rows(data.eval) if has_eval else None,
                                 args=sft_config(**config, dataset_text_field="text"))
            trainer = train_on_responses_only(trainer, instruction_part=INSTRUCTION_PART,
                                              response_part=RESPONSE_PART)
        metrics = run_trainer(trainer, has_eval)
    return Trained(trainer.model, processing, loss_history(trainer.state.log_history), metrics)
