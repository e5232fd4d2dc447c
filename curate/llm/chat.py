"""Pure helpers that turn chat messages into what a Gemma model reads.

Gemma has no system role: its chat template knows only ``user`` and ``model`` turns. ``fold_system`` moves any
system text to the top of the first user turn (the way Google's own template does it), and ``gemma_prompt`` writes
the turn markup by hand for runtimes that are not given a chat template (llama.cpp on a raw GGUF, a tokenizer
without one).
"""

from __future__ import annotations

from .base import Message

START, END = "<start_of_turn>", "<end_of_turn>"
_ROLES = {"user": "user", "assistant": "model", "model": "model"}


def fold_system(messages: list[Message]) -> list[Message]:
    """Messages without a system role: system texts are joined and prefixed to the first user message."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    preamble = "\n\n".join(s.strip() for s in system if s.strip())
    for message in rest:
        if message.get("role") == "user":
            message["content"] = f"{preamble}\n\n{message['content']}" if preamble else message["content"]
            return rest
    return [{"role": "user", "content": preamble}, *rest]


def gemma_prompt(messages: list[Message], add_generation_prompt: bool = True) -> str:
    """Gemma turn markup, without ``<bos>`` (the runtime adds it), ending with an open model turn."""
    parts = []
    for message in fold_system(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ValueError(f"message role {role!r} is not one of system, user, assistant (or model)")
        parts.append(f"{START}{_ROLES[role]}\n{message['content'].strip()}{END}\n")
    if add_generation_prompt:
        parts.append(f"{START}model\n")
    return "".join(parts)
