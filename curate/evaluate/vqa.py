"""Visual question answering items (VQA-RAD): the prompt with its image, and scoring of short answers.

An image item is asked zero-shot as one chat turn: an image part and a text part (the question and an instruction
to answer with yes or no for ``closed`` items, in a few words for ``open`` ones), whatever the run's prompt style.
The answer is the first non-empty line of the output (think blocks removed) without a leading "Answer:" label,
normalised as ``curate.evaluate.lexical.tokens`` (lowercase, letters and digits, articles dropped).

- ``closed`` with a yes / no reference: the answer's first word must be "yes" or "no" (else unparsed, wrong);
  correct when it equals the reference. A closed item with another reference (VQA-RAD's "left or right?") is
  correct when the whole normalised answer equals the normalised reference (``parse_method`` ``exact``).
- ``open``: ``exact_match`` (normalised answer == normalised reference) and token F1 / ROUGE-L as for text items.
"""

from __future__ import annotations

import re

from curate.evaluate.lexical import tokens
from curate.evaluate.mcq import final_answer
from curate.llm.base import Prompt

YES_NO = ("yes", "no")
INSTRUCTIONS = {"closed": "Answer with yes or no.", "open": "Answer in a few words."}
_LABEL = re.compile(r"^\s*answer\s*:\s*", re.IGNORECASE)


def vqa_prompt(task: str, question: str, image: bytes) -> Prompt:
    """One user turn: the image, then the question and the task's instruction."""
    text = f"{question.strip()}\n{INSTRUCTIONS[task]}"
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def short_answer(text: str) -> str:
    """The first non-empty line of the output, without think blocks or an "Answer:" label."""
    line = next((s for s in final_answer(text).splitlines() if s.strip()), "")
    return _LABEL.sub("", line).strip()


def normalized(text: str) -> str:
    return " ".join(tokens(text))


def closed_fields(text: str, reference: str) -> dict:
    """parsed (yes / no, or the normalised answer), parse_method and correct for a closed item."""
    gold, answer = normalized(reference), normalized(short_answer(text))
    if gold in YES_NO:
        first = answer.split(" ", 1)[0]
        parsed = first if first in YES_NO else None
        return {"parsed": parsed, "parse_method": "yes_no" if parsed else "unparsed", "correct": parsed == gold}
    return {"parsed": answer or None, "parse_method": "exact" if answer else "unparsed",
            "correct": bool(answer) and answer == gold}


def exact_match(text: str, reference: str) -> bool:
    return normalized(short_answer(text)) == normalized(reference)
