"""SFT formats: one pure function per format from a curate row to a training record, and one back.

Consumes a row in the curate schema (``kind``, ``messages``, ``reasoning``, ``image``, ``caption``, ``source``) and the
optional stage column ``context`` (a string or a list of passages: what synthesis retrieved); produces one record:

- ``messages``:  {messages: [{role, content}]}. With images (``multimodal``) every content is a list of parts
  {type: "image"|"text", text} and an ``images`` column holds the row's image: the layout TRL and Unsloth expect.
- ``alpaca``:    {instruction, input, output, system}; ``input`` holds the context.
- ``sharegpt``:  {conversations: [{from: system|human|gpt, value}]}.
- ``medrescue``: {input, context, output, source}: text only, one turn, no system prompt.

``alpaca`` and ``sharegpt`` mark the image with an ``<image>`` line in the first user turn (LLaVA / LLaMA-Factory).
The retrieved ``context`` is left out (``context="omit"``, the default: closed-book SFT, where the user turn holds the
question only, as every evaluation asks it) or put in the prompt (``"include"``: RAG-style SFT; ``messages`` and
``sharegpt`` fold it into the first user turn as "Context:\\n…\\n\\nQuestion: …", ``alpaca`` writes it to ``input``,
``medrescue`` to ``context``). A question that already holds its context (a PubMedQA item as ``hf_qa`` writes it) is
the row's own text and stays as it is either way.

The chain of thought in ``reasoning`` is dropped (``drop``), put before the final answer as
``<think>\\n…\\n</think>\\n\\nanswer`` (``think_tags``) or kept in a ``reasoning`` column (``field``). An ``image``
row without a conversation becomes a captioning pair (``CAPTION_PROMPT`` -> caption). A row that is no SFT example
raises ``NotSFT`` with a short reason (``page``, ``chunk``, ``no_conversation``, ...) for the exporter to count.

Each ``to_*`` has a ``from_*`` that gives back {messages, reasoning, image}. The round trip is exact except that an
included ``context`` comes back folded into the first user turn ("Context:\\n…\\n\\nQuestion: …", the layout the
``hf_qa`` connector uses), an omitted one does not come back, and ``medrescue`` loses the system prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable

import datasets

REASONING_MODES = ("drop", "think_tags", "field")
CONTEXT_MODES = ("omit", "include")
CAPTION_PROMPT = "Describe accurately what you see in this image."
IMAGE_TAG = "<image>"
_THINK = re.compile(r"\A<think>\n(.*?)\n</think>\n\n(.*)\Z", re.DOTALL)
_SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


class NotSFT(Exception):
    """The row is not a supervised example; ``reason`` is the short code the exporter counts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Example:
    """What every format is made from: the turns (user first, assistant last), context, reasoning and image."""

    system: str | None
    turns: tuple[dict, ...]
    reasoning: str | None
    context: str | None
    image: dict | None
    source: str | None

    @property
    def question(self) -> str:
        return self.turns[0]["content"]


def example(row: dict, context: str = "omit") -> Example:
    """The supervised example in ``row`` (its retrieved context kept only with ``context="include"``), or NotSFT
    saying why there is none."""
    if context not in CONTEXT_MODES:
        raise ValueError(f"context {context!r} is not one of {', '.join(CONTEXT_MODES)}")
    if row.get("kind") in ("page", "chunk"):
        raise NotSFT(row["kind"])
    image = _image(row.get("image"))
    messages = list(row.get("messages") or [])
    if not messages and image is not None and (row.get("caption") or "").strip():
        messages = [{"role": "user", "content": CAPTION_PROMPT}, {"role": "assistant", "content": row["caption"]}]
    if not messages:
        raise NotSFT("no_conversation")
    has_system = messages[0]["role"] == "system"
    system = (messages[0]["content"] or None) if has_system else None
    turns = tuple({"role": m["role"], "content": m["content"] or ""} for m in messages[1 if has_system else 0:])
    if not turns or [t["role"] for t in turns] != ["user", "assistant"] * (len(turns) // 2):
        raise NotSFT("bad_roles")
    if not turns[-1]["content"].strip():
        raise NotSFT("empty_answer")
    kept = _context(row.get("context")) if context == "include" else None
    return Example(system, turns, row.get("reasoning") or None, kept, image, row.get("source"))


def _image(value) -> dict | None:
    if value is None:
        return None
    if not value.get("bytes"):
        raise NotSFT("image_without_bytes")
    # Only the file name travels: a local folder name says nothing useful and may say too much.
    return {"bytes": value["bytes"], "path": PurePath(value["path"]).name if value.get("path") else None}


def _context(value) -> str | None:
    if isinstance(value, (list, tuple)):
        value = "\n\n".join(str(v) for v in value if v)
    return value or None


def fold_context(context: str | None, question: str) -> str:
    """The question with its context in front, unless the question already holds it."""
    return f"Context:\n{context}\n\nQuestion: {question}" if context and context not in question else question


def think(reasoning: str, answer: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def unthink(text: str) -> tuple[str | None, str]:
    """The inverse of ``think``: (reasoning, answer); (None, text) when there are no think tags."""
    match = _THINK.match(text)
    return (match.group(1), match.group(2)) if match else (None, text)


def _answer(ex: Example, reasoning: str) -> str:
    answer = ex.turns[-1]["content"]
    return think(ex.reasoning, answer) if reasoning == "think_tags" and ex.reasoning else answer


def _texts(ex: Example, reasoning: str) -> list[dict]:
    """System, turns with the context folded into the first question, and the final answer with its reasoning."""
    turns = [dict(t) for t in ex.turns]
    turns[0]["content"] = fold_context(ex.context, ex.question)
    turns[-1]["content"] = _answer(ex, reasoning)
    return ([{"role": "system", "content": ex.system}] if ex.system else []) + turns


def _extras(ex: Example, reasoning: str, multimodal: bool) -> dict:
    out = {"reasoning": ex.reasoning} if reasoning == "field" else {}
    if multimodal:
        out["images"] = [ex.image] if ex.image else []
    return out


def _single_turn(ex: Example) -> Example:
    if len(ex.turns) != 2:
        raise NotSFT("multi_turn")
    return ex


def _tagged(text: str, image: dict | None) -> str:
    return f"{IMAGE_TAG}\n{text}" if image else text


def _untagged(text: str) -> str:
    return text[len(IMAGE_TAG) + 1:] if text.startswith(IMAGE_TAG + "\n") else text


def _back(messages: list[dict], record: dict) -> dict:
    """{messages, reasoning, image} from a record's messages, its ``reasoning`` field or think tags, its images."""
    reasoning = record.get("reasoning")
    if not reasoning and messages and messages[-1]["role"] == "assistant":
        reasoning, messages[-1]["content"] = unthink(messages[-1]["content"])
    images = record.get("images") or []
    return {"messages": messages, "reasoning": reasoning or None, "image": images[0] if images else None}


def typed_turns(messages: list[dict], n_images: int = 0) -> list[dict]:
    """``messages`` with typed contents (``[{type: "text", text}]``) and ``n_images`` image parts first in the first
    user turn: the multimodal layout TRL and Unsloth read (``messages`` with ``multimodal``, and the Unsloth
    backend's vision rows)."""
    parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
    if n_images:
        first_user = next(p for p in parts if p["role"] == "user")
        first_user["content"][:0] = [{"type": "image", "text": None} for _ in range(n_images)]
    return parts


def to_messages(row: dict, *, reasoning: str = "drop", multimodal: bool = False, context: str = "omit") -> dict:
    ex = example(row, context)
    messages = _texts(ex, reasoning)
    if not (multimodal or ex.image):
        return {"messages": messages, **_extras(ex, reasoning, False)}
    return {"messages": typed_turns(messages, 1 if ex.image else 0), **_extras(ex, reasoning, True)}


def from_messages(record: dict) -> dict:
    messages = [{"role": m["role"], "content": _text(m["content"])} for m in record["messages"]]
    return _back(messages, record)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def to_alpaca(row: dict, *, reasoning: str = "drop", multimodal: bool = False, context: str = "omit") -> dict:
    ex = _single_turn(example(row, context))
    return {"instruction": _tagged(ex.question, ex.image), "input": ex.context or "", "output": _answer(ex, reasoning),
            "system": ex.system, **_extras(ex, reasoning, multimodal or bool(ex.image))}


def from_alpaca(record: dict) -> dict:
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    question = fold_context(record.get("input"), _untagged(record["instruction"]))
    return _back(system + [{"role": "user", "content": question},
                           {"role": "assistant", "content": record["output"]}], record)


def to_sharegpt(row: dict, *, reasoning: str = "drop", multimodal: bool = False, context: str = "omit") -> dict:
    ex = example(row, context)
    messages = _texts(ex, reasoning)
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[first_user]["content"] = _tagged(messages[first_user]["content"], ex.image)
    return {"conversations": [{"from": _SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in messages],
            **_extras(ex, reasoning, multimodal or bool(ex.image))}


def from_sharegpt(record: dict) -> dict:
    roles = {v: k for k, v in _SHAREGPT_ROLES.items()}
    messages = [{"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]]
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[first_user]["content"] = _untagged(messages[first_user]["content"])
    return _back(messages, record)


def to_medrescue(row: dict, *, reasoning: str = "drop", multimodal: bool = False, context: str = "omit") -> dict:
    ex = _single_turn(example(row, context))
    if ex.image:
        raise NotSFT("image_in_text_format")
    return {"input": ex.question, "context": ex.context or "", "output": _answer(ex, reasoning), "source": ex.source,
            **_extras(ex, reasoning, False)}


def from_medrescue(record: dict) -> dict:
    return _back([{"role": "user", "content": fold_context(record.get("context"), record["input"])},
                  {"role": "assistant", "content": record["output"]}], record)


_s = datasets.Value("string")
_PART = {"type": _s, "text": _s}


@dataclass(frozen=True)
class Format:
    """A format's pair of functions, its columns (``datasets`` features) and whether it carries images."""

    name: str
    to: Callable[..., dict]
    back: Callable[[dict], dict]
    columns: dict
    images: bool = True
    multimodal_columns: dict | None = None

    def features(self, *, multimodal: bool, reasoning: str) -> datasets.Features:
        """The record's features; ``multimodal`` adds the ``images`` column (and typed contents for messages)."""
        multimodal = multimodal and self.images
        cols = dict(self.multimodal_columns or self.columns) if multimodal else dict(self.columns)
        if reasoning == "field":
            cols["reasoning"] = _s
        if multimodal:
            cols["images"] = datasets.List(datasets.Image())
        return datasets.Features(cols)


FORMATS: dict[str, Format] = {
    "messages": Format(
        "messages", to_messages, from_messages, {"messages": datasets.List({"role": _s, "content": _s})},
        multimodal_columns={"messages": datasets.List({"role": _s, "content": datasets.List(_PART)})}),
    "alpaca": Format("alpaca", to_alpaca, from_alpaca, {"instruction": _s, "input": _s, "output": _s, "system": _s}),
    "sharegpt": Format("sharegpt", to_sharegpt, from_sharegpt,
                       {"conversations": datasets.List({"from": _s, "value": _s})}),
    "medrescue": Format("medrescue", to_medrescue, from_medrescue,
                        {"input": _s, "context": _s, "output": _s, "source": _s}, images=False),
}
