"""Ask a base or fine-tuned Gemma a question, so the effect of an adapter shows: ``curate chat MODEL [--adapter DIR]``.

Consumes a model (``embedded``, a ``.gguf`` path, a local folder or a Hub id), optionally a LoRA adapter folder
written by ``curate finetune``, and a question; produces the answer text. The model loads through the transformers
backend (``curate.llm.hf.TransformersLLM``: the embedded GGUF comes from its dequantized cache, in float32 on a CPU),
an instruction-tuned model, or any model answering through an adapter (training writes Gemma turns), is asked in one
user turn in Gemma's turn format (the tokenizer's chat template, or the markup training writes when it has none, as
the embedded model's tokenizer does; system text folded in); a base model (the embedded 270M, names without ``-it``
or ``instruct``) is asked to complete ``Question: ...\nAnswer:`` instead, as it never learned the turn format.
Decoding is greedy.
"""

from __future__ import annotations

from pathlib import Path

from curate.llm import Sampling, is_instruction_tuned
from curate.llm.hf import TransformersLLM, resolve_device


class ChatError(Exception):
    """The model or the adapter cannot be loaded as given; the message names it."""


def load_chat_model(model: str = "embedded", adapter: str | Path | None = None,
                    device: str = "auto") -> TransformersLLM:
    """The model, with the adapter applied when given, ready to generate."""
    if adapter is not None:
        _check_adapter(adapter)
    device = resolve_device(device)
    llm = TransformersLLM(model, instruction_tuned=is_instruction_tuned(model), device=device,
                          dtype="float32" if device == "cpu" else "auto", batch_size=1)
    return apply_adapter(llm, adapter) if adapter is not None else llm


def _check_adapter(adapter: str | Path) -> None:
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ChatError(f"{adapter} holds no adapter_config.json: give the output folder of `curate finetune`")


def apply_adapter(llm: TransformersLLM, adapter: str | Path) -> TransformersLLM:
    """``llm`` answering through a LoRA adapter from now on (the base weights are shared, not copied)."""
    from peft import PeftModel

    _check_adapter(adapter)
    llm.hf_model = PeftModel.from_pretrained(llm.hf_model, str(adapter)).eval()
    return llm


def asks_in_turns(llm: TransformersLLM) -> bool:
    """Whether the model is asked in Gemma turns (instruction-tuned, or answering through an adapter) rather than to
    complete "Question: ...\nAnswer:"."""
    return llm.instruction_tuned or hasattr(llm.hf_model, "peft_config")


def question_prompt(llm: TransformersLLM, question: str, system: str | None = None):
    """(prompt, stop strings) the model is asked ``question`` with (module docstring)."""
    if asks_in_turns(llm):
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}], ()
    # no blank-line stop: the embedded 270M opens its answer with one
    return (f"{system}\n\n" if system else "") + f"Question: {question}\nAnswer:", ("\nQuestion:",)


def ask(llm: TransformersLLM, question: str, *, system: str | None = None, max_tokens: int = 256) -> str:
    """The model's greedy answer to one question, in turns or as a completion (module docstring)."""
    prompt, stop = question_prompt(llm, question, system)
    return llm.generate(prompt, Sampling(max_tokens=max_tokens, temperature=0.0, stop=stop)).text.strip()


def reference_nll_of(llm: TransformersLLM, question: str, reference: str) -> float:
    """Mean NLL per token of a reference answer after the prompt the model is asked ``question`` with (its own: a
    completion prompt for a base model, a model turn for a tuned one)."""
    from curate.evaluate.loglik import reference_nll
    from curate.evaluate.prompts import answer_continuation

    prompt, _ = question_prompt(llm, question)
    return reference_nll(llm, prompt, answer_continuation(reference, "chat" if asks_in_turns(llm) else
                                                          "completion"))[0]


def chat(model: str, question: str, adapter: str | Path | None = None, *, system: str | None = None,
         max_tokens: int = 256, device: str = "auto") -> str:
    """Load, ask once, free the model."""
    llm = load_chat_model(model, adapter, device)
    try:
        return ask(llm, question, system=system, max_tokens=max_tokens)
    finally:
        llm.close()
