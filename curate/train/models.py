"""What a recipe trains: the base model in the recipe's precision, its tokenizer or processor, and the LoRA layers.

Consumes a ``Recipe``; produces ``(model, tokenizer or processor)`` and a ``peft.LoraConfig``. ``embedded`` and
``.gguf`` models go through ``curate.llm.hf.load_gguf_dequantized`` (dequantized once, then cached as regular
weights); folders and Hub ids load with ``AutoModelForCausalLM`` / ``AutoTokenizer`` (text) or
``AutoModelForImageTextToText`` / ``AutoProcessor`` (vision), in 4 bits through bitsandbytes when asked and CUDA is
there. LoRA goes on the linear layers whose last name is in ``lora.targets`` (or every linear layer but the output
head) inside the parts named by ``lora.layers``; audio towers never get adapters.
"""

from __future__ import annotations

from pathlib import Path

from curate.llm.hf import load_gguf_dequantized
from curate.llm.llamacpp import embedded_gguf
from curate.train.recipe import EMBEDDED, LoraSpec, Recipe, is_gemma3n

DTYPES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
VISION_PARTS = ("vision_tower", "vision_model", "multi_modal_projector", "embed_vision")
AUDIO_PARTS = ("audio_tower", "embed_audio")
GPU_INSTALL = "pip install 'curate[gpu]'"


def torch_dtype(precision: str):
    import torch

    return getattr(torch, DTYPES[precision])


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def quantization(recipe: Recipe):
    """The bitsandbytes 4-bit config for a QLoRA recipe on CUDA; None otherwise (the plan warns about it)."""
    if not recipe.load_in_4bit or not cuda_available():
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ImportError(f"4-bit loading needs bitsandbytes: {GPU_INSTALL}") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch_dtype("fp32" if recipe.train.precision == "fp32"
                                                                 else "bf16"))


def load_base(recipe: Recipe):
    """(model, tokenizer or processor) for the recipe, in its precision (4 bits when asked and possible)."""
    dtype = torch_dtype(recipe.train.precision)
    if recipe.model == EMBEDDED or recipe.model.endswith(".gguf"):
        model, tokenizer = load_gguf_dequantized(embedded_gguf() if recipe.model == EMBEDDED else
                                                 Path(recipe.model).expanduser(), dtype)
        return model, tokenizer
    from transformers import (AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor,
                              AutoTokenizer)

    kwargs = {"dtype": dtype}
    bnb = quantization(recipe)
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map={"": 0})
    if recipe.modality == "vision":
        model = AutoModelForImageTextToText.from_pretrained(recipe.model, **kwargs)
        processing = AutoProcessor.from_pretrained(recipe.model)
    else:
        model = AutoModelForCausalLM.from_pretrained(recipe.model, **kwargs)
        processing = AutoTokenizer.from_pretrained(recipe.model)
    if recipe.train.precision == "fp16" and is_gemma3n(model.config.model_type):
        raise ValueError(f"{recipe.model} is a Gemma 3n model, which overflows in float16: use precision bf16")
    return model, processing


def _part(name: str) -> str:
    if any(p in name for p in AUDIO_PARTS):
        return "audio"
    return "vision" if any(p in name for p in VISION_PARTS) else "language"


def lora_targets(model, spec: LoraSpec) -> list[str]:
    """Full names of the linear layers that get adapters (see the module docstring)."""
    import torch

    names = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if not isinstance(module, torch.nn.Linear) or leaf == "lm_head" or _part(name) not in spec.layers:
            continue
        if spec.targets == "all-linear" or leaf in spec.targets:
            names.append(name)
    if not names:
        raise ValueError(f"no linear layer of {type(model).__name__} matches lora.targets {spec.targets} in "
                         f"lora.layers {spec.layers}")
    return names


def lora_config(model, spec: LoraSpec):
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, bias="none",
                      target_modules=lora_targets(model, spec), task_type="CAUSAL_LM")
