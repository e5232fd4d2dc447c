"""Read the chosen option out of a model's free-text answer to a multiple-choice or yes/no/maybe question.

``parse_choice(text, options)`` takes the answer text and the options ``{label: text}`` (labels ``A``-``E`` as the
``hf_qa`` connector writes them) and returns ``(label or None, method)``. It tries, in order, and the first that finds
exactly one label wins:

1. ``answer_phrase``: "Answer: B", "The correct answer is (B)", "Answer - d)"; failing that "option C".
2. ``leading_label``: the answer opens with a label: "B", "B.", "(B)", "B)", "[B]", "**B**", "B: text"; a bare
   "B text" only when the text that follows is option B's (so "A 45-year-old..." is not option A).
3. ``option_text``: the text of exactly one option appears in the answer (the longest when one contains another), or
   the answer is the start of exactly one option's text (an answer cut short by the token limit).
4. ``lone_label``: exactly one label written as "(B)" or "B)" somewhere in the answer.

Otherwise ``(None, "unparsed")``, which scores as wrong and is counted. A lowercase letter counts only in bracketed
forms ("(b)", "b)", "b.", "b:"), as the whole answer, or after an answer phrase with a closing bracket or full stop,
because "a" is also a word.
``parse_decision(text)`` returns the first standalone yes / no / maybe (any case). Both ignore a
``<think>...</think>`` block (the export's ``think_tags`` reasoning) and read only the final answer after it.
"""

from __future__ import annotations

import re

DECISIONS = ("yes", "no", "maybe")
UNPARSED = "unparsed"
_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL)
_DECISION = re.compile(r"(?<![\w-])(yes|no|maybe)(?![\w-])", re.IGNORECASE)
_OPEN = r"[\(\[\*]*\s*"
_MIN_PREFIX = 12  # characters of an option's text that a truncated answer must repeat to count as that option


def final_answer(text: str) -> str:
    """The answer without any chain of thought in think tags (an unclosed block is all reasoning)."""
    return _THINK.sub("", text or "").strip()


def normalize(text: str) -> str:
    """Lowercase words joined by single spaces: punctuation and markup do not matter for text matching."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _accept(letter: str, labels: set[str], closed: bool) -> str | None:
    """The label a matched letter means: uppercase letters always, lowercase only when bracket-closed."""
    if letter in labels:
        return letter
    return letter.upper() if closed and letter.upper() in labels else None


def _answer_phrase(text: str, options: dict[str, str]) -> str | None:
    """A label right after "answer (is)"; failing that, after "option" or "choice"."""
    for keywords in ("answer", "option|choice"):
        pattern = (rf"(?i:\b(?:{keywords})\b)(?:\s+(?i:is))?\s*[:\-]?\s*(?:(?i:option)\s+)?" + _OPEN
                   + r"([A-Za-z])(?![A-Za-z0-9'-])(\s*[\)\]\.])?")
        found = {_accept(m[1], set(options), bool(m[2])) for m in re.finditer(pattern, text)} - {None}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def _leading_label(text: str, options: dict[str, str]) -> str | None:
    match = re.match(_OPEN + r"([A-Za-z])(?:\s*([\)\]\.:,\*])|\s*$|\s+(.*))", text, re.DOTALL)
    if not match:
        return None
    letter, closer, rest = match[1], match[2], match[3]
    if closer is not None or rest is None:
        return _accept(letter, set(options), closer in (")", "]", ".", ":") or closer is None)
    label = letter if letter in options else None
    if label and normalize(rest).startswith(normalize(options[label])[:_MIN_PREFIX]):
        return label
    return None


def _option_text(text: str, options: dict[str, str]) -> str | None:
    answer = normalize(text)
    if not answer:
        return None
    texts = {label: normalize(option) for label, option in options.items() if normalize(option)}
    inside = {label for label, option in texts.items() if re.search(rf"(?<!\S){re.escape(option)}(?!\S)", answer)}
    inside = {label for label in inside if not any(texts[label] != texts[other] and texts[label] in texts[other]
                                                   for other in inside)}
    if len(inside) == 1:
        return inside.pop()
    if len(answer) >= _MIN_PREFIX:
        starts = [label for label, option in texts.items() if option.startswith(answer)]
        if len(starts) == 1:
            return starts[0]
    return None


def _lone_label(text: str, options: dict[str, str]) -> str | None:
    found = {_accept(m[1] or m[2], set(options), True)
             for m in re.finditer(r"\(\s*([A-Za-z])\s*\)|(?<![A-Za-z0-9])([A-Za-z])\)", text)} - {None}
    return found.pop() if len(found) == 1 else None


_METHODS = (("answer_phrase", _answer_phrase), ("leading_label", _leading_label), ("option_text", _option_text),
            ("lone_label", _lone_label))


def parse_choice(text: str, options: dict[str, str]) -> tuple[str | None, str]:
    """The option label the answer chooses and how it was found, or ``(None, "unparsed")``."""
    answer = final_answer(text)
    for method, find in _METHODS:
        label = find(answer, options)
        if label is not None:
            return label, method
    return None, UNPARSED


def parse_decision(text: str) -> tuple[str | None, str]:
    """The first standalone yes / no / maybe in the answer (lowercased), or ``(None, "unparsed")``."""
    match = _DECISION.search(final_answer(text))
    return (match[1].lower(), "decision_word") if match else (None, UNPARSED)
