"""``heuristics``: drop conversations that are empty, cut off, too short or long, repetitive, refusing, talking about
their source, using a banned word, or not in English.

Applies to ``qa`` and ``vqa`` rows (their ``messages``: the user turns are the question, the assistant turns the
answer); rows of other kinds pass untouched. Consumes ``kind``, ``messages``, ``meta``; produces no new columns.

Drop reasons (checked in this order; the detail says what was found):

- ``empty_answer``: no assistant turn, or only whitespace.
- ``prompt_leak``: the answer holds a generator's prompt scaffolding ("Question:", "Answer:", Gemma's turn or BOS/EOS
  markers): a small model that ran on past its answer into the next few-shot block (with ``prompt_leak: false``, not
  checked).
- ``truncated``: the answer ends without terminal punctuation and either ``meta.finish_reason`` is ``length`` (the
  generator hit its token limit) or the last word is a dangling one (lower-case "and", "the", "of", ...) or a
  ``,``/``:``.
- ``question_too_short`` / ``question_too_long`` / ``answer_too_short`` / ``answer_too_long``: outside the
  ``question`` / ``answer`` bounds (characters and words).
- ``non_english``: fewer than ``min_latin_ratio`` of the letters are Latin, or (with at least 8 words) fewer than
  ``min_stopword_ratio`` of the words are English stopwords.
- ``refusal``: the answer contains a refusal phrase ("as an AI", "I cannot", ...) that is not quoted speech (right
  after an opening quote mark).
- ``meta_phrase``: question or answer talks about its source ("according to the text", "the manual says", ...):
  the reader of a training example has no text.
- ``banned_word``: a word from ``banned_words`` (whole words, any case) in question or answer.
- ``repetitive``: more than ``max_repeated_ngrams`` of the answer's word ``repeat_n``-grams are repeats (a looping
  generation); answers with fewer than 20 n-grams are not judged.

Example::

    - stage: heuristics
      question: {min_chars: 10, max_chars: 4000}
      answer: {min_words: 3, max_words: 600}
      banned_words: [lorem, ipsum]
      max_repeated_ngrams: 0.3

Bounds given for ``question`` or ``answer`` are merged with their defaults (question 10-8000 characters, answer
1-12000). ``refusal_phrases`` and ``meta_phrases`` replace the defaults (``REFUSAL_PHRASES``, ``META_PHRASES`` in this
module) when given; ``banned_words`` is empty by default.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from pydantic import Field, field_validator

from curate.quality.text import STOPWORDS, question_answer, words
from curate.stage import Filter, StageConfig

REFUSAL_PHRASES = (
    "as an ai", "as a language model", "i am an ai", "i'm an ai", "i cannot", "i can't", "i can not", "i am unable",
    "i'm unable", "i am not able to", "i'm not able to", "i won't be able", "i'm sorry, but", "i am sorry, but",
    "i apologize, but", "i do not have access", "i don't have access", "consult a professional instead of me",
)
META_PHRASES = (
    "according to the text", "according to the passage", "according to the manual", "according to the context",
    "according to the document", "according to the provided", "the manual says", "the manual states",
    "the text says", "the text states", "the passage says", "the passage states", "the context says",
    "the context states", "the document says", "the document states", "based on the text", "based on the passage",
    "based on the provided", "based on the context", "in the given text", "in the provided text",
    "in the given context", "in the provided context", "the text does not", "the passage does not",
    "the context does not", "the author", "this chapter",
)
DANGLING = frozenset(
    "a an the and or but nor of to in on at by for with from into onto as than that which who whose whom if when "
    "while because so such is are was were be been being has have had will would can could should may might must "
    "your his her their its our my this these those very more most".split())
TERMINAL = tuple('.!?)]"\'”’*`') + ("...", "…")
_LATIN = re.compile(r"[A-Za-zÀ-ɏ]")
_LETTER = re.compile(r"[^\W\d_]")
_LAST_WORD = re.compile(r"\w+$")
_OPENING_QUOTE = re.compile(r"[\"“‘']\s*$")
_PROMPT_MARKER = re.compile(r"\b(?:Question|Answer)\s*:|<(?:start|end)_of_turn>|<(?:bos|eos)>")


class Length(StageConfig):
    """Bounds on a text's length; ``None`` is no upper bound."""

    min_chars: int = Field(0, ge=0)
    max_chars: int | None = Field(None, ge=1)
    min_words: int = Field(0, ge=0)
    max_words: int | None = Field(None, ge=1)


class HeuristicsConfig(StageConfig):
    question: Length = Length(min_chars=10, max_chars=8000)
    answer: Length = Length(min_chars=1, max_chars=12000)
    max_repeated_ngrams: float = Field(0.3, ge=0, le=1)
    repeat_n: int = Field(3, ge=1)
    refusal_phrases: list[str] = list(REFUSAL_PHRASES)
    meta_phrases: list[str] = list(META_PHRASES)
    banned_words: list[str] = []
    english: bool = True
    min_latin_ratio: float = Field(0.8, ge=0, le=1)
    min_stopword_ratio: float = Field(0.12, ge=0, le=1)
    prompt_leak: bool = True

    @field_validator("question", "answer", mode="before")
    @classmethod
    def _merge_with_default(cls, value, info):
        """``answer: {min_words: 3}`` keeps the default character bounds instead of replacing them."""
        if isinstance(value, dict):
            return {**cls.model_fields[info.field_name].default.model_dump(), **value}
        return value


def phrase_pattern(phrases: list[str]) -> re.Pattern | None:
    """One case-insensitive regex matching any phrase on word boundaries (straight or curly apostrophes)."""
    if not phrases:
        return None
    alternatives = sorted((re.escape(p.lower()).replace("'", "['’]") for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def find_phrase(pattern: re.Pattern | None, text: str) -> str | None:
    """The first match of ``pattern`` in ``text`` that is not quoted speech (right after an opening quote)."""
    for found in pattern.finditer(text) if pattern else ():
        if not _OPENING_QUOTE.search(text[: found.start()]):
            return found.group(0)
    return None


def finish_reason(meta: str | None) -> str | None:
    """``finish_reason`` from a row's meta JSON, if any."""
    try:
        value = json.loads(meta) if meta else {}
    except json.JSONDecodeError:
        return None
    return value.get("finish_reason") if isinstance(value, dict) else None


def truncation(answer: str, reason: str | None) -> str | None:
    """Why ``answer`` looks cut off, or None."""
    text = answer.rstrip()
    if text.endswith(TERMINAL):
        return None
    if reason == "length":
        return "finish_reason=length and no terminal punctuation"
    if text.endswith((",", ":", ";", "-", "(")):
        return f"ends with '{text[-1]}'"
    last = _LAST_WORD.search(text)
    if last and last.group(0) in DANGLING:
        return f"ends with dangling word '{last.group(0)}'"
    return None


def length_problem(text: str, bounds: Length, what: str) -> tuple[str, int] | None:
    """``(<what>_too_short|_too_long, measured length)`` or None."""
    chars, n_words = len(text.strip()), len(words(text))
    if chars < bounds.min_chars:
        return f"{what}_too_short", chars
    if n_words < bounds.min_words:
        return f"{what}_too_short", n_words
    if bounds.max_chars is not None and chars > bounds.max_chars:
        return f"{what}_too_long", chars
    if bounds.max_words is not None and n_words > bounds.max_words:
        return f"{what}_too_long", n_words
    return None


def repeated_ngram_ratio(tokens: list[str], n: int) -> float | None:
    """Share of the word n-grams that repeat an earlier one; None below 20 n-grams."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if len(grams) < 20:
        return None
    return 1 - len(Counter(grams)) / len(grams)


def english_problem(text: str, min_latin: float, min_stopwords: float) -> str | None:
    """Why ``text`` does not look English (too few Latin letters or stopwords), or None."""
    letters = _LETTER.findall(text)
    if letters:
        latin = sum(1 for c in letters if _LATIN.match(c)) / len(letters)
        if latin < min_latin:
            return f"latin letters {latin:.2f}"
    tokens = [w for w in words(text) if not w.isdigit()]
    if len(tokens) >= 8:
        share = sum(w in STOPWORDS for w in tokens) / len(tokens)
        if share < min_stopwords:
            return f"english stopwords {share:.2f}"
    return None


class Heuristics(Filter):
    name = "heuristics"
    Config = HeuristicsConfig
    inputs = ("kind", "messages", "meta")

    def setup(self) -> None:
        c = self.config
        self._refusal = phrase_pattern(c.refusal_phrases)
        self._meta = phrase_pattern(c.meta_phrases)
        self._banned = phrase_pattern(c.banned_words)

    def check(self, row: dict):
        if row["kind"] not in ("qa", "vqa"):
            return None
        question, answer = question_answer(row)
        if not answer.strip():
            return "empty_answer", None
        leak = _PROMPT_MARKER.search(answer) if self.config.prompt_leak else None
        if leak:
            return "prompt_leak", answer[max(0, leak.start() - 40):leak.end() + 40]
        cut = truncation(answer, finish_reason(row.get("meta")))
        if cut:
            return "truncated", cut
        problem = length_problem(question, self.config.question, "question") or \
            length_problem(answer, self.config.answer, "answer")
        if problem:
            return problem
        return self._content_problem(question, answer)

    def _content_problem(self, question: str, answer: str):
        c = self.config
        if c.english:
            foreign = english_problem(f"{question}\n{answer}", c.min_latin_ratio, c.min_stopword_ratio)
            if foreign:
                return "non_english", foreign
        for reason, pattern, text in (("refusal", self._refusal, answer), ("meta_phrase", self._meta,
                                      f"{question}\n{answer}"), ("banned_word", self._banned, f"{question}\n{answer}")):
            found = find_phrase(pattern, text)
            if found:
                return reason, found
        ratio = repeated_ngram_ratio(words(answer), c.repeat_n)
        if ratio is not None and ratio > c.max_repeated_ngrams:
            return "repetitive", round(ratio, 3)
        return None
