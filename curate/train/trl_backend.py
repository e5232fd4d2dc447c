"""The TRL backend: ``trl.SFTTrainer`` with a PEFT LoRA adapter, on any device (4-bit through bitsandbytes on CUDA).

Consumes a ``Recipe`` and ``TrainingData``; produces a ``Trained``: the PEFT model, its tokenizer or processor, the
trainer's loss history and run metrics. Text examples are tokenized by ``curate.train.data`` (assistant-only
labels), which TRL uses as they are and cuts to ``train.max_length``; vision examples are batched by
``data.VisionCollator``. ``sft_config`` and ``loss_history`` are shared with the Unsloth backend. TRL and
transformers are imported inside the functions, so the Unsloth backend can import unsloth before them.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field

from curate.train.data import TrainingData, VisionCollator, image_dataset, tokenize_text
from curate.train.models import cuda_available, load_base, lora_config
from curate.train.recipe import Recipe


@dataclass
class Trained:
    """A trained adapter in memory, what tokenizes for it, and what the trainer recorded."""

    model: object
    processing: object
    history: dict
    metrics: dict = field(default_factory=dict)


def resolve_optim(recipe: Recipe, unsloth: bool = False) -> str:
    """The optimizer name: ``auto`` is adamw_8bit under Unsloth or with CUDA and bitsandbytes, else adamw_torch."""
    if recipe.train.optim != "auto":
        return recipe.train.optim
    if unsloth:
        return "adamw_8bit"
    if cuda_available():
        try:
            import bitsandbytes  # noqa: F401
            return "adamw_8bit"
        except ImportError:
            pass
    return "adamw_torch"


def sft_config(recipe: Recipe, output_dir: str, *, has_eval: bool, vision: bool, optim: str, **extra):
    """The ``trl.SFTConfig`` for a recipe; ``extra`` overrides or adds keys (the Unsloth backend's)."""
    from trl import SFTConfig

    t = recipe.train
    eval_every = has_eval and t.eval_steps is not None
    args = dict(
        output_dir=output_dir, per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate, lr_scheduler_type=t.scheduler,
        max_grad_norm=t.max_grad_norm, weight_decay=t.weight_decay,
        num_train_epochs=t.num_epochs, max_steps=t.max_steps or -1, optim=optim,
        bf16=t.precision == "bf16", fp16=t.precision == "fp16", max_length=t.max_length,
        gradient_checkpointing=t.gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=t.logging_steps, eval_strategy="steps" if eval_every else "no", eval_steps=t.eval_steps,
        save_strategy="no", report_to="none", seed=t.seed, data_seed=t.seed, dataloader_pin_memory=cuda_available(),
        **_versioned(SFTConfig, t.warmup_steps, t.group_by_length and not vision),
    )
    if vision:
        args.update(remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})
    args.update(extra)
    return SFTConfig(**args)


def _versioned(config_class, warmup: int | float, group_by_length: bool) -> dict:
    """Warm-up and length grouping in the words of the installed transformers: 5.x takes a warm-up fraction in
    ``warmup_steps`` and ``train_sampling_strategy``; 4.x (which Unsloth may pin) has ``warmup_ratio`` and
    ``group_by_length``."""
    fields = set(getattr(config_class, "__dataclass_fields__", {}))
    out = {"warmup_ratio": warmup} if isinstance(warmup, float) and "warmup_ratio" in fields else \
        {"warmup_steps": warmup}
    if group_by_length:
        out.update({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields else
                   {"group_by_length": True})
    return out


def loss_history(log_history: list[dict]) -> dict:
    """{"train": [{step, epoch, loss, learning_rate, grad_norm}], "eval": [{step, epoch, loss}]} from a trainer."""
    train = [{"step": e["step"], "epoch": e.get("epoch"), "loss": e["loss"], "learning_rate": e.get("learning_rate"),
              "grad_norm": e.get("grad_norm")} for e in log_history if "loss" in e]
    evals = [{"step": e["step"], "epoch": e.get("epoch"), "loss": e["eval_loss"]}
             for e in log_history if "eval_loss" in e]
    return {"train": train, "eval": evals}


@contextlib.contextmanager
def labelled_positions_only():
    """While open, TRL's fused LM head scores only the positions that carry a label, on a CPU too.

    TRL does so only on Triton devices; elsewhere it scores every position so that compilers (Neuron) see fixed tile
    shapes. Eager CPU kernels never recompile, and with assistant-only labels and padding a third or more of the
    positions carry no label, so scoring only the labelled ones gives the same loss and gradients for about half the
    LM-head work (Gemma's head spans 262k tokens; benchmarks/finetune_cpu.py). A TRL without the hook is left alone.
    """
    import trl.trainer.utils as utils

    original = getattr(utils, "_use_triton", None)
    if original is None:
        yield
        return
    utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        utils._use_triton = original


def run_trainer(trainer, has_eval: bool) -> dict:
    """Train, evaluate once more at the end when there is eval data; the run's metrics."""
    with labelled_positions_only():
        metrics = dict(trainer.train().metrics)
        if has_eval:
            metrics.update(trainer.evaluate())
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    if tokens:
        metrics["num_tokens"] = tokens[-1]
    return metrics


@contextlib.contextmanager
def scratch_dir():
    """A temporary folder for the trainer's own output (it saves no checkpoints), removed afterwards."""
    path = tempfile.mkdtemp(prefix="curate-trainer-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _datasets(data: TrainingData, processing, vision: bool):
    if vision:
        return image_dataset(data.train), image_dataset(data.eval) if data.eval else None
    return tokenize_text(data.train, processing), tokenize_text(data.eval, processing) if data.eval else None


def train(recipe: Recipe, data: TrainingData, callbacks: list | None = None) -> Trained:
    """LoRA-train the recipe's model on ``data`` with TRL; ``callbacks`` are ``transformers.TrainerCallback``s."""
    from trl import SFTTrainer

    vision = recipe.modality == "vision"
    model, processing = load_base(recipe)
    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.train.gradient_checkpointing)
    tokenizer = processing.tokenizer if vision else processing
    tokenizer.padding_side = "right"
    train_set, eval_set = _datasets(data, processing, vision)
    with scratch_dir() as scratch:
        trainer = SFTTrainer(
            model=model, args=sft_config(recipe, scratch, has_eval=eval_set is not None, vision=vision,
                                         optim=resolve_optim(recipe)),
            train_dataset=train_set, eval_dataset=eval_set, processing_class=processing,
            data_collator=VisionCollator(processing) if vision else None, peft_config=lora_config(model, recipe.lora),
            callbacks=callbacks)
        metrics = run_trainer(trainer, eval_set is not None)
    trainer.model.eval()
    return Trained(trainer.model, processing, loss_history(trainer.state.log_history), metrics)
