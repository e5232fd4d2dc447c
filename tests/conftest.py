"""Shared fixtures: the real public data in ../shared/realdata, read in place, and the tiny Gemma models the
fine-tuning and evaluation tests build from configs (no download).

A test module that asks for ``tiny_vlm`` provides its own ``tokenizer`` fixture (trained on its texts with
``train_tokenizer``); the model's vocabulary and image tokens follow that tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.fail(f"real data not found at {REALDATA}: the tests read ../shared/realdata next to the repo")
    return REALDATA


SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
            "<end_of_image>", "<image_soft_token>"]
# Gemma 3's chat template, reduced to what the tests' prompts use: user / model turns, image parts as <start_of_image>
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' "
            "else m['role'] }}\n{% if m['content'] is string %}{{ m['content'] | trim }}{% else %}"
            "{% for p in m['content'] %}{% if p['type'] == 'image' %}<start_of_image>{% else %}"
            "{{ p['text'] | trim }}{% endif %}{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def _train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"})


def _text_config(vocab: int) -> dict:
    return dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, sliding_window=16, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                layer_types=["sliding_attention", "full_attention"])


@pytest.fixture(scope="session")
def train_tokenizer():
    """``train_tokenizer(texts, vocab_size)``: a byte-level BPE tokenizer trained on ``texts``, with Gemma's special
    tokens at Gemma's ids 0-3 and its image tokens."""
    return _train_tokenizer


@pytest.fixture(scope="session")
def text_config():
    """``text_config(vocab)``: the keys of a 2-layer Gemma 3 text config, hidden size 32."""
    return _text_config


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory, tokenizer) -> Path:
    """A Gemma3ForConditionalGeneration folder with a one-layer SigLIP (28 px, 4 image tokens) and its
    Gemma3Processor (with a Gemma-style chat template), over the module's ``tokenizer``."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    torch.manual_seed(0)
    config = Gemma3Config(
        text_config=_text_config(len(tokenizer)),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4, boi_token_index=tokenizer.boi_token_id, eoi_token_index=tokenizer.eoi_token_id,
        image_token_index=tokenizer.image_token_id)
    folder = tmp_path_factory.mktemp("tiny") / "gemma3-vlm"
    Gemma3ForConditionalGeneration(config).save_pretrained(folder)
    Gemma3Processor(image_processor=Gemma3ImageProcessorPil(size={"height": 28, "width": 28}), tokenizer=tokenizer,
                    image_seq_length=4, chat_template=TEMPLATE).save_pretrained(folder)
    return folder
