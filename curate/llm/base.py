"""One small interface for every LLM backend: a sync call and a batched call with the same result type.

A prompt is either a plain string (sent as is: the few-shot form used for base models) or a list of chat messages
(``[{"role": ..., "content": ...}]``, formatted with the model's chat template: the form for instruction-tuned
models). A message's content may instead be a list of parts, ``{"type": "text", "text": ...}`` and
``{"type": "image", "image": <encoded bytes>}``, for backends whose ``vision`` is true. ``json_schema`` asks the
backend to constrain or request JSON output (llama.cpp grammar, OpenAI ``response_format``); callers still parse
and validate the text, because not every backend can enforce it: ``first_json_object`` reads a reply whether or not
it was constrained.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Union

Message = dict[str, Any]
Prompt = Union[str, list[Message]]


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = 0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    error: str | None = None
    raw: Any = field(default=None, repr=False)


class TransientError(Exception):
    """A failure worth retrying later (timeout, rate limit, server error): the item is not marked done.

    A backend that runs a batch concurrently may set ``partial``: the batch's generations in prompt order, ``None``
    for the items that failed, so finished items need not be generated again.
    """


class LLM:
    """Base class: backends implement ``_generate_batch`` and set ``backend``, ``model`` and ``instruction_tuned``
    (and ``vision`` when they read image parts)."""

    backend: str = "base"
    vision: bool = False

    def __init__(self, model: str, instruction_tuned: bool = False):
        self.model = model
        self.instruction_tuned = instruction_tuned

    def generate(self, prompt: Prompt, sampling: Sampling = Sampling(), json_schema: dict | None = None) -> Generation:
        return self.generate_batch([prompt], sampling, json_schema)[0]

    def generate_batch(self, prompts: list[Prompt], sampling: Sampling = Sampling(),
                       json_schema: dict | None = None) -> list[Generation]:
        if not prompts:
            return []
        return self._generate_batch(prompts, sampling, json_schema)

    def _generate_batch(self, prompts: list[Prompt], sampling: Sampling,
                        json_schema: dict | None) -> list[Generation]:
        raise NotImplementedError

    def describe(self) -> dict:
        """What a generated row records about its model."""
        return {"backend": self.backend, "model": self.model, "instruction_tuned": self.instruction_tuned}

    def close(self) -> None:
        """Release the model or connections."""


def prompt_images(prompt: Prompt) -> list[bytes]:
    """The image parts' bytes of a prompt, in order (none for a string or text-only messages)."""
    if isinstance(prompt, str):
        return []
    return [part["image"] for m in prompt if isinstance(m.get("content"), list)
            for part in m["content"] if part.get("type") == "image"]


def split_tokens(tokenize, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """(prompt tokens, continuation tokens) with ``tokenize(text, first)`` (``first``: add the BOS token): the
    continuation's tokens are those of ``prompt + continuation`` beyond the prompt's own (a leading space merges as it
    would in generated text), or its own tokens when the prompt's are not a prefix of the joined text's."""
    head = tokenize(prompt, True)
    joined = tokenize(prompt + continuation, True)
    if joined[:len(head)] == head and len(joined) > len(head):
        return head, joined[len(head):]
    return head, tokenize(continuation, False)


def first_json_object(text: str) -> Any:
    """The first JSON object in a reply. A backend without a grammar (transformers, a server that ignores
    ``response_format``) wraps it in other text, e.g. ``1. {...}`` then the next few-shot block; raw newlines inside
    strings are allowed. Raises ValueError when there is none."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    return json.JSONDecoder(strict=False).raw_decode(text, start)[0]
