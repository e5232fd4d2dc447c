"""Text helpers shared by the quality stages: the texts a row is judged on, words, stems, sentences, numbers.

Pure functions, no I/O. Words are lower-cased runs of letters or digits with apostrophes removed (``it's`` ->
``its``), so case and punctuation never make two texts differ.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Field = Literal["question", "answer", "both"]

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves may might must shall us via per upon
""".split())

_WORD = re.compile(r"[^\W_]+")
_APOSTROPHES = re.compile(r"['’‘`]")
# Where one sentence ends and the next begins: after . ! or ? (and closing quotes or brackets), before a capital, a
# digit or a bullet (after opening quotes or brackets). The one sentence rule of curate (``curate.rag.units`` too).
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+(?=[\"'(\[“]?[A-Z0-9•])")
_SUFFIXES = (("ies", "y", 3), ("ied", "y", 3), ("ing", "", 3), ("ed", "", 3), ("es", "", 3), ("ly", "", 4),
             ("s", "", 3))
_MARKER = r"(?:[-•*▪]|\d{1,2}[.)]|\([a-z0-9]{1,3}\))\s"
_LIST_ITEM = re.compile(rf"\n\s*(?={_MARKER})")
_LEADING_MARKER = re.compile(rf"^\s*{_MARKER}\s*")


def question_answer(row: dict) -> tuple[str, str]:
    """The user turns and the assistant turns of a row's ``messages`` (each joined by blank lines)."""
    messages = row.get("messages") or []
    user = "\n\n".join(m["content"] or "" for m in messages if m["role"] == "user")
    assistant = "\n\n".join(m["content"] or "" for m in messages if m["role"] == "assistant")
    return user, assistant


def first_question_last_answer(row: dict) -> tuple[str, str] | None:
    """A conversation's first user turn and its last assistant turn (the question asked and the answer given last),
    or None when it lacks either."""
    messages = row.get("messages") or []
    question = next((m["content"] for m in messages if m["role"] == "user"), None)
    answer = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), None)
    return (question, answer) if question and answer else None


def row_text(row: dict, field: Field = "both") -> str:
    """The text of a row that dedup and decontamination compare: ``field`` of a conversation, else ``text`` or
    ``caption``."""
    if row.get("messages"):
        question, answer = question_answer(row)
        return {"question": question, "answer": answer}.get(field, f"{question}\n{answer}")
    return row.get("text") or row.get("caption") or ""


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (Unicode letters and digits; apostrophes dropped)."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text or "").lower())
    return _WORD.findall(text)


def normalise(text: str) -> str:
    """``text`` reduced to its words joined by single spaces: equal for texts differing in case or punctuation."""
    return " ".join(words(text))


def stem(word: str) -> str:
    """A crude suffix-stripping stem (plural, -ing, -ed, -ly, final e): ``giving``/``gives`` -> ``giv``."""
    for suffix, repl, base in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= base and not word.endswith("ss"):
            word = word[: -len(suffix)] + repl
            break
    if len(word) > 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def content_stems(text: str) -> set[str]:
    """Stems of the words of ``text`` that are not stopwords."""
    return {stem(w) for w in words(text) if w not in STOPWORDS}


def sentences(text: str) -> list[str]:
    """Sentences of ``text``; list items on their own lines count as sentences, other line breaks are spaces."""
    out = []
    for block in _LIST_ITEM.split(text or ""):
        block = " ".join(_LEADING_MARKER.sub("", block).split())
        out += [s.strip() for s in SENTENCE_BREAK.split(block) if s.strip()]
    return out
