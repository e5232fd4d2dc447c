"""Option log-likelihood: how probable a model finds each option's continuation after the same prompt.

``option_logprobs(llm, prompt, continuations)`` takes a loaded backend (``curate.llm``), one prompt and
``{label: continuation text}``; it returns ``{label: sum of the log-probabilities of the continuation's tokens}``
(natural log). The continuation's tokens are those the tokenizer gives ``prompt + continuation`` beyond the prompt's
own tokens (so a leading space merges as it would in generated text); when the prompt's tokens are not a prefix of
the joined text's, the continuation is tokenized on its own.

- llama.cpp: the prompt is evaluated once (reusing the KV cache of the prefix it shares with the last prompt, such
  as the few-shot examples); the next-token logits come from the context (``llama_get_logits_ith``), so
  ``logits_all`` is not needed; each option's further tokens are evaluated one at a time after the prompt.
- transformers: one forward pass over the prompt (with its KV cache, computing logits at the last position only),
  then one over each option's further tokens from a copy of that cache. Float32 log-softmax in both.
- Other backends raise ``LoglikUnsupported`` before any item is scored: curate's openai backend asks a server for
  generated text only (prompt log-probabilities are an extension some servers have and others lack). A backend
  object may also provide its own ``option_logprobs(prompt, continuations)``.
"""

from __future__ import annotations

import copy

import numpy as np

from curate.llm.base import LLM, Prompt
from curate.llm.chat import gemma_prompt

SUPPORTED = ("llamacpp", "transformers")


class LoglikUnsupported(ValueError):
    """The backend cannot give log-probabilities of given text; the message says what to use instead."""


def check_supported(llm: LLM) -> None:
    """Raise ``LoglikUnsupported`` before any work when ``llm`` cannot score options."""
    if hasattr(llm, "option_logprobs") or llm.backend in SUPPORTED:
        return
    raise LoglikUnsupported(
        f"--scoring loglik needs the log-probabilities of each option's tokens after the prompt, which the "
        f"{llm.backend} backend does not provide (curate's openai backend asks servers only for generated text; "
        f"prompt log-probabilities exist on some servers alone); use --scoring generate, or a "
        f"{' or '.join(SUPPORTED)} backend")


def option_logprobs(llm: LLM, prompt: Prompt, continuations: dict[str, str]) -> dict[str, float]:
    """{label: log-probability of its continuation after ``prompt``} (see the module docstring)."""
    check_supported(llm)
    if hasattr(llm, "option_logprobs"):
        return llm.option_logprobs(prompt, continuations)
    if llm.backend == "llamacpp":
        return _llamacpp(llm, prompt, continuations)
    return _transformers(llm, prompt, continuations)


def split_tokens(tokenize, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """(prompt tokens, continuation tokens) with ``tokenize(text, first)`` (``first``: add the BOS token)."""
    head = tokenize(prompt, True)
    joined = tokenize(prompt + continuation, True)
    if joined[:len(head)] == head and len(joined) > len(head):
        return head, joined[len(head):]
    return head, tokenize(continuation, False)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    return logits - np.logaddexp.reduce(logits)


def _llamacpp(llm, prompt: Prompt, continuations: dict[str, str]) -> dict[str, float]:
    import llama_cpp

    model = llm._llm  # the backend's llama_cpp.Llama
    text = prompt if isinstance(prompt, str) else gemma_prompt(prompt)

    def tokenize(t: str, first: bool) -> list[int]:
        return model.tokenize(t.encode("utf-8"), add_bos=first, special=True)

    def last_logprobs() -> np.ndarray:
        pointer = llama_cpp.llama_get_logits_ith(model.ctx, -1)
        return log_softmax(np.ctypeslib.as_array(pointer, shape=(model.n_vocab(),)).copy())

    def evaluate_from(tokens: list[int], keep: int) -> None:
        model.n_tokens = keep  # eval() drops the KV cache beyond n_tokens
        model.eval(tokens[keep:])

    out = {}
    split = {label: split_tokens(tokenize, text, c) for label, c in continuations.items()}
    head = next(iter(split.values()))[0]
    evaluate_from(head, min(_shared_prefix(model.input_ids[:model.n_tokens], head), len(head) - 1))
    first = last_logprobs()
    for label, (_, tail) in split.items():
        total = float(first[tail[0]])
        for i in range(1, len(tail)):
            evaluate_from(head + tail[:i], len(head) + i - 1)
            total += float(last_logprobs()[tail[i]])
        out[label] = total
    return out


def _shared_prefix(cached, tokens: list[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens):
        if int(a) != b:
            break
        n += 1
    return n


def _transformers(llm, prompt: Prompt, continuations: dict[str, str]) -> dict[str, float]:
    import torch

    tokenizer, model = llm.tokenizer, llm.hf_model
    text = llm.render(prompt)

    def tokenize(t: str, first: bool) -> list[int]:
        return tokenizer(t, add_special_tokens=first)["input_ids"]

    split = {label: split_tokens(tokenize, text, c) for label, c in continuations.items()}
    head = next(iter(split.values()))[0]
    device = model.device
    with torch.inference_mode():
        start = model(input_ids=torch.tensor([head], device=device), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(start.logits[0, -1].float(), dim=-1)
        out = {}
        for label, (_, tail) in split.items():
            total = float(first[tail[0]])
            if len(tail) > 1:
                rest = model(input_ids=torch.tensor([tail[:-1]], device=device),
                             past_key_values=copy.deepcopy(start.past_key_values), use_cache=True)
                logprobs = torch.log_softmax(rest.logits[0].float(), dim=-1)
                total += float(sum(logprobs[i, token] for i, token in enumerate(tail[1:])))
            out[label] = total
    return out
