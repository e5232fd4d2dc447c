"""Continuation log-likelihood: how probable a model finds each continuation's tokens after the same prompt.

``token_logprobs(llm, prompt, continuations)`` takes a loaded backend (``curate.llm``), one prompt and
``{label: continuation text}``; it returns ``{label: [log-probability of each of the continuation's tokens]}``
(natural log). ``option_logprobs`` sums them per label (the score of a choice); ``reference_nll`` turns one
continuation's into its mean negative log-likelihood per token (the score of a reference answer). The continuation's
tokens are those the tokenizer gives ``prompt + continuation`` beyond the prompt's own tokens (so a leading space
merges as it would in generated text, as lm-evaluation-harness splits them); when the prompt's tokens are not a
prefix of the joined text's, the continuation is tokenized on its own.

- llama.cpp: the prompt is evaluated once (reusing the KV cache of the prefix it shares with the last prompt, such
  as the few-shot examples); the next-token logits come from the context (``llama_get_logits_ith``), so
  ``logits_all`` is not needed; each continuation's further tokens are then decoded in one batch after the prompt,
  with the logits of every position requested.
- transformers: one forward pass over the prompt (with its KV cache, computing logits at the last position only),
  then one over each continuation's further tokens from a copy of that cache. Float32 log-softmax in both.
- Other backends raise ``LoglikUnsupported`` before any item is scored: curate's openai backend asks a server for
  generated text only (prompt log-probabilities are an extension some servers have and others lack). A backend
  object may also provide its own ``token_logprobs(prompt, continuations)`` or, for choices only,
  ``option_logprobs(prompt, continuations)``.
"""

from __future__ import annotations

import copy

import numpy as np

from curate.llm.base import LLM, Prompt, split_tokens
from curate.llm.chat import gemma_prompt

SUPPORTED = ("llamacpp", "transformers")


class LoglikUnsupported(ValueError):
    """The backend cannot give log-probabilities of given text; the message says what to use instead."""


def supports_tokens(llm: LLM) -> bool:
    """Whether ``llm`` gives per-token log-probabilities (what a reference answer's likelihood needs)."""
    return hasattr(llm, "token_logprobs") or llm.backend in SUPPORTED


def check_supported(llm: LLM) -> None:
    """Raise ``LoglikUnsupported`` before any work when ``llm`` cannot score options."""
    if hasattr(llm, "option_logprobs") or supports_tokens(llm):
        return
    raise LoglikUnsupported(
        f"--scoring loglik needs the log-probabilities of each option's tokens after the prompt, which the "
        f"{llm.backend} backend does not provide (curate's openai backend asks servers only for generated text; "
        f"prompt log-probabilities exist on some servers alone); use --scoring generate, or a "
        f"{' or '.join(SUPPORTED)} backend")


def token_logprobs(llm: LLM, prompt: Prompt, continuations: dict[str, str]) -> dict[str, list[float]]:
    """{label: log-probability of each token of its continuation after ``prompt``} (see the module docstring)."""
    if hasattr(llm, "token_logprobs"):
        return llm.token_logprobs(prompt, continuations)
    if llm.backend == "llamacpp":
        return _llamacpp(llm, prompt, continuations)
    if llm.backend == "transformers":
        return _transformers(llm, prompt, continuations)
    raise LoglikUnsupported(f"the {llm.backend} backend gives no token log-probabilities; use a "
                            f"{' or '.join(SUPPORTED)} backend")


def option_logprobs(llm: LLM, prompt: Prompt, continuations: dict[str, str]) -> dict[str, float]:
    """{label: log-probability of its whole continuation after ``prompt``}: the sum over its tokens."""
    check_supported(llm)
    if hasattr(llm, "option_logprobs"):
        return llm.option_logprobs(prompt, continuations)
    return {label: float(sum(values)) for label, values in token_logprobs(llm, prompt, continuations).items()}


def reference_nll(llm: LLM, prompt: Prompt, continuation: str) -> tuple[float, int]:
    """(mean negative log-likelihood per token of ``continuation`` after ``prompt``, its number of tokens)."""
    values = token_logprobs(llm, prompt, {"reference": continuation})["reference"]
    return -float(np.mean(values)), len(values)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Float64 log-softmax of one row of logits (shifted by the maximum before exponentiating)."""
    logits = logits.astype(np.float64)
    top = logits.max()
    return logits - (top + np.log(np.exp(logits - top).sum()))


def _llamacpp(llm, prompt: Prompt, continuations: dict[str, str]) -> dict[str, list[float]]:
    import llama_cpp

    model = llm._llm  # the backend's llama_cpp.Llama
    text = prompt if isinstance(prompt, str) else gemma_prompt(prompt)

    def tokenize(t: str, first: bool) -> list[int]:
        return model.tokenize(t.encode("utf-8"), add_bos=first, special=True)

    def logprobs_at(i: int) -> np.ndarray:
        """Log-probabilities after the i-th token of the last decoded batch (-1: its last)."""
        pointer = llama_cpp.llama_get_logits_ith(model.ctx, i)
        return log_softmax(np.ctypeslib.as_array(pointer, shape=(model.n_vocab(),)).copy())

    def decode_after(tokens: list[int], n_past: int) -> list[np.ndarray]:
        """Evaluate ``tokens`` after the first ``n_past`` cached ones, keeping the logits after every token."""
        model._ctx.kv_cache_seq_rm(-1, n_past, -1)
        after = []
        for start in range(0, len(tokens), model.n_batch):
            chunk = tokens[start:start + model.n_batch]
            model._batch.set_batch(batch=chunk, n_past=n_past + start, logits_all=True)
            model._ctx.decode(model._batch)
            model.input_ids[n_past + start:n_past + start + len(chunk)] = chunk
            model.n_tokens = n_past + start + len(chunk)
            after += [logprobs_at(i) for i in range(len(chunk))]
        return after

    out = {}
    split = {label: split_tokens(tokenize, text, c) for label, c in continuations.items()}
    head = next(iter(split.values()))[0]
    keep = min(_shared_prefix(model.input_ids[:model.n_tokens], head), len(head) - 1)
    model.n_tokens = keep  # eval() drops the KV cache beyond n_tokens
    model.eval(head[keep:])
    first = logprobs_at(-1)
    for label, (_, tail) in split.items():
        rest = decode_after(tail[:-1], len(head)) if len(tail) > 1 else []
        out[label] = [float(first[tail[0]])] + [float(lp[token]) for lp, token in zip(rest, tail[1:])]
    return out


def _shared_prefix(cached, tokens: list[int]) -> int:
    n = 0
    for a, b in zip(cached, tokens):
        if int(a) != b:
            break
        n += 1
    return n


def _transformers(llm, prompt: Prompt, continuations: dict[str, str]) -> dict[str, list[float]]:
    import torch

    tokenizer, model = llm.tokenizer, llm.hf_model
    text = llm.render(prompt)

    def tokenize(t: str, first: bool) -> list[int]:
        """As llama.cpp's ``add_bos``: a text that starts the sequence starts with BOS, whether or not the tokenizer
        adds it itself (so an empty prompt is BOS alone)."""
        ids = tokenizer(t, add_special_tokens=first)["input_ids"]
        bos = tokenizer.bos_token_id
        return [bos, *ids] if first and bos is not None and ids[:1] != [bos] else ids

    split = {label: split_tokens(tokenize, text, c) for label, c in continuations.items()}
    head = next(iter(split.values()))[0]
    device = model.device
    with torch.inference_mode():
        start = model(input_ids=torch.tensor([head], device=device), use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(start.logits[0, -1].float(), dim=-1)
        out = {}
        for label, (_, tail) in split.items():
            values = [float(first[tail[0]])]
            if len(tail) > 1:
                rest = model(input_ids=torch.tensor([tail[:-1]], device=device),
                             past_key_values=copy.deepcopy(start.past_key_values), use_cache=True)
                logprobs = torch.log_softmax(rest.logits[0].float(), dim=-1)
                values += [float(logprobs[i, token]) for i, token in enumerate(tail[1:])]
            out[label] = values
    return out
