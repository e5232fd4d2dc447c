"""Answer-first synthesis helpers: which units of a chunk get a question, whether a question stands alone, and the
round-trip check that the question leads back to its unit.

``synth_qa`` with ``answer_mode: extractive`` uses them in this order: ``pick_units`` (at most ``n`` of a chunk's
``curate.rag.units`` units) -> the LLM writes one question per unit -> ``question_problem`` (a reason to reject the
question, or None) -> ``same_question`` merges near-identical questions of one chunk -> ``round_trip`` (the unit's own
chunk, or a chunk that ``holds`` the unit's words in their order, must be among the chunks the question retrieves from
the whole index, and the question must be close enough to the unit in embedding space).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from curate.quality.text import STOPWORDS
from curate.rag.units import Unit, strip_references

QUESTION_STARTS = frozenset("""what when where why how which who whom whose should can could is are was were do does
did must may will would if in after before during""".split())
_META = re.compile(r"\b(?:the|this|that|above|following) (?:passage|statement|text|paragraph|section|excerpt|"
                   r"sentence|article|document|author|manual|chapter)s?\b|\baccording to\b", re.IGNORECASE)
_BARE_PRONOUN = re.compile(r"^\w+\s+(?:is|are|was|were|does|do|did|should|can|must|may|will)\s+(?:it|they|this|these|"
                           r"that|those|he|she|them)\b|\b(?:it|them|this|that|these|those)\?$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def copies(text: str, examples: tuple[str, ...], threshold: float = 0.7) -> bool:
    """True when ``text`` shares at least ``threshold`` of its words (Jaccard) with one of ``examples``."""
    mine = words(text)
    return any(len(mine & (ex := words(e))) / max(len(mine | ex), 1) >= threshold for e in examples)


def pick_units(units: list[Unit], n: int, preferred: set[int] = frozenset()) -> list[int]:
    """The indexes of at most ``n`` units, in reading order: the ``preferred`` ones (units a template can ask about)
    first, then lists, then the spans nearest 25 words (enough to answer something, short enough to be one answer)."""
    ranked = sorted(range(len(units)), key=lambda i: (i not in preferred, not units[i].is_list,
                                                      abs(units[i].words - 25), i))
    return sorted(ranked[:n])


def question_problem(question: str, examples: tuple[str, ...], min_words: int = 4,
                     max_words: int = 30) -> str | None:
    """Why ``question`` cannot be a training question on its own, or None: ``not_a_question`` (no question mark, no
    question word first, too short or long), ``mentions_source`` ("the passage", "according to"),
    ``unresolved_pronoun`` ("What should be done with it?"), ``copied_example`` (a few-shot example's words)."""
    n = len(question.split())
    first = question.split()[0].lower().strip("\"'(") if question.split() else ""
    if _META.search(question):
        return "mentions_source"
    if not question.endswith("?") or first not in QUESTION_STARTS or not min_words <= n <= max_words:
        return "not_a_question"
    if _BARE_PRONOUN.search(question):
        return "unresolved_pronoun"
    if copies(question, examples, 0.6):
        return "copied_example"
    return None


_ASKS = (  # (question opening, what the answer must contain for the question to fit it)
    (re.compile(r"^how (?:often|frequently)\b", re.I), re.compile(r"\b(?:every|each|times?|hourly|daily|weekly|"
                                                                  r"periodically|again|repeat\w*|\d+)\b", re.I)),
    (re.compile(r"^how (?:long|many|much|far|high|wide|deep|big|soon)\b|^what (?:temperature|size|dose)\b", re.I),
     re.compile(r"\d|\b(?:one|two|three|four|five|six|ten|twenty|minutes?|hours?|seconds?|inch\w*|until|"
                r"above|below|beyond|slightly|immediately|as soon as)\b", re.I)),
    (re.compile(r"^(?:why\b|what is the (?:purpose|reason|goal|aim)\b)", re.I),
     re.compile(r"\b(?:to|so that|in order|because|since|prevents?|helps?|allows?|reduces?|avoids?)\b", re.I)),
    (re.compile(r"^when\b", re.I), re.compile(r"\b(?:if|when|before|after|until|unless|once|during|while|as soon as|"
                                              r"immediately|within|only)\b", re.I)),
)
_DEFINES = re.compile(r"^what (?:is|are) (?:an? |the )?(?P<term>[\w -]+)\?$", re.I)
_NOT_DEFINED = re.compile(r"^(?:(?:best|first|next|last|main|most|only|right|correct|proper|usual|recommended|"
                          r"purpose|reason|goal|aim|objective|function|role|cause|effect|result|difference|"
                          r"treatment|way|step|method)\b|.* (?:of|for|to|in|on|with|when|after|before|during) )", re.I)


def answer_type_problem(question: str, answer: str) -> str | None:
    """``wrong_answer_type`` when the question asks for something the answer cannot give: "How often" with no
    frequency in it, "How long/many/far" with no quantity, "Why"/"What is the purpose" with no reason or purpose,
    "When" with no condition or time, "What is X?" when the answer does not open by saying what X is; else None.
    "What is the purpose/best way/first step ... of X?" asks about X, not what X is: its own rule judges it."""
    for asks, needs in _ASKS:
        if asks.search(question) and not needs.search(answer):
            return "wrong_answer_type"
    term = _DEFINES.match(question)
    term = term if term and not _NOT_DEFINED.match(term["term"]) else None
    defines = r"(?:(?:is|are) (?:a|an|the|one|any)|refers?|means?)\b"
    if term and not re.match(rf"^(?:an? |the )?{re.escape(term['term'])}s? {defines}", answer,
                             re.I):
        return "wrong_answer_type"
    return None


def same_question(question: str, earlier: list[str], threshold: float = 0.8) -> bool:
    """True when ``question`` repeats a question already kept for the chunk: the Jaccard similarity of their content
    words (stopwords left out, so "an" and "the" do not tell two questions apart) is at least ``threshold``."""
    content = words(question) - STOPWORDS
    return any(len(content & (other := words(q) - STOPWORDS)) / max(len(content | other), 1) >= threshold
               for q in earlier)


MAX_GAP = 3  # chunk words a unit may skip between two of its own: a label it left out ("2-20", "c", "iv")
_LABEL_WORD = re.compile(r"[a-z]|\d{1,3}[a-z]?|[ivx]{1,4}")


def _next(chunk: list[str], end: int, word: str, max_gap: int) -> set[int]:
    """Where ``word`` follows a match ending at ``end``: next in ``chunk``, or after at most ``max_gap`` label
    words."""
    found = set()
    for k in range(end + 1, min(end + 2 + max_gap, len(chunk))):
        if chunk[k] == word:
            found.add(k)
        if not _LABEL_WORD.fullmatch(chunk[k]):
            break
    return found


def holds(chunk_text: str, unit_text: str, max_gap: int = MAX_GAP) -> bool:
    """True when a chunk holds a unit: the unit's words in the chunk in the same order, one after the other but for
    the labels the unit left out (at most ``max_gap`` words at a time), case ignored (list items and warnings are in
    sentence case in a unit); the chunk's figure and table references may be left out, and a list's joining "and"
    need not be in it."""
    unit = _WORD.findall(unit_text.lower())
    return bool(unit) and any(_in_order(_WORD.findall(text.lower()), unit, max_gap)
                              for text in (strip_references(chunk_text), chunk_text))


def _in_order(chunk: list[str], unit: list[str], max_gap: int) -> bool:
    ends = {k for k, w in enumerate(chunk) if w == unit[0]}  # where a match of the unit's words so far ends
    for word in unit[1:]:
        found = set().union(*(_next(chunk, end, word, max_gap) for end in ends))
        ends = found | ends if word == "and" else found
        if not ends:
            return False
    return True


@dataclass(frozen=True)
class RoundTrip:
    """Where the unit's chunk ranks among the question's hits (1-based, None when absent) and the question-unit
    cosine similarity."""

    rank: int | None
    similarity: float

    def to_dict(self) -> dict:
        return {"rank": self.rank, "similarity": round(self.similarity, 4)}


def round_trip(unit: Unit, chunk_id: str, hits: list, question_vector: np.ndarray,
               unit_vector: np.ndarray) -> RoundTrip:
    """The round trip of one question: hits are the question's nearest chunks, nearest first. A hit counts as the
    unit's own chunk when it is that chunk or ``holds`` the unit (chunks overlap, so a unit can lie in two)."""
    rank = next((n for n, h in enumerate(hits, 1) if h.id == chunk_id or holds(h.text, unit.text)), None)
    return RoundTrip(rank, float(np.dot(question_vector, unit_vector)))
