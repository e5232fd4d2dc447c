"""``grounding``: drop answers that their cited context does not support.

A small generator writes fluent answers that are wrong ("give CPR to a casualty who has a pulse" from a page that
says to continue rescue breathing when there is a pulse). This stage checks each synthesized answer against the
``context`` it was generated from, four ways, and drops it on the first failure:

1. ``unsupported_number``: every number in the answer ("2 inches", "30 compressions", "100 mg", "5%", "two
   breaths", "1 1/2") must occur in the context; with a dose unit (mg, g, mcg, ml, l, IU, units, %, mmol, mEq, kg)
   the context must give the same number with the same unit.
2. ``contradicts_context``: an answer sentence with a first-aid action verb (give, start, apply, move, remove, check,
   ...) is paired with its most similar context sentence (embedding cosine >= ``negation_min_similarity``). Both are cut
   into clauses (at punctuation and at if/when/because/but/...); a clause is negated when it has an odd number of
   negation cues ("not", "never", "no", "don't", "avoid", "without", ...). When a negated clause of one sentence shares
   half or more of its content words with a clause of the other that is not negated, and none with a negated one, the
   answer contradicts its source. Lexical overlap alone cannot see this: "give CPR to a casualty who has a pulse" shares
   most of its words with "if a pulse is found and the casualty is not breathing, continue rescue breathing" and with
   "do not start CPR if the casualty has a pulse". Clauses keep a faithful answer that drops an unrelated negation ("use
   the mouth-to-nose method when the jaw is fractured" from "use this method if you cannot perform mouth-to-mouth
   because the jaw is fractured"); pairs with "unless" or "only" are not compared ("do not move him unless ..." means
   "move him only if ...").
3. ``ungrounded_lexical``: the share of the answer's distinct content words (lower-cased, stopwords removed,
   crudely stemmed) that occur in the context is below ``min_lexical``, or one answer sentence of three or more
   content words has a share below ``min_sentence_lexical`` (an invented sentence in an otherwise faithful answer:
   the embedding score cannot see it when it is about the same casualty, as MiniLM rates such sentences 0.5-0.6).
4. ``ungrounded_semantic``: each answer sentence (of at least ``min_sentence_words`` words) is scored by its best
   cosine similarity to a context sentence; the row's score is the minimum over answer sentences (``reduce: min``,
   the default: one invented sentence is enough to make an answer unsafe, and a mean would let several faithful
   sentences hide it) or their mean (``reduce: mean``, more lenient to short connective sentences). Below
   ``min_semantic`` the row is dropped.

Consumes ``kind``, ``messages`` and, when present, ``context`` (a string). Rows without a context, and rows that
are not ``qa``/``vqa``, pass untouched (counters ``no_context``, ``not_conversation``). Produces
``grounding_lexical`` and ``grounding_semantic`` (float, null when not scored). The drop detail is a JSON object
with both scores and the offending sentence, number or context sentence.

Example::

    - stage: grounding
      min_lexical: 0.6
      min_sentence_lexical: 0.3
      min_semantic: 0.45
      reduce: min
      numbers: true
      negation: true
      model: null              # a sentence-transformers path; null = the packaged all-MiniLM-L6-v2
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.embed import embed, load_embedder
from curate.quality.text import content_stems, question_answer, sentences, stem, words
from curate.stage import DROP, DROP_DETAIL, Stage, StageConfig, rows

NEGATION_CUES = frozenset(
    "not no never none nothing nobody neither nor cannot without unless avoid absent dont doesnt didnt isnt arent "
    "wasnt werent cant couldnt shouldnt wouldnt wont mustnt neednt havent hasnt hadnt".split())
ACTION_VERBS = frozenset(stem(w) for w in (
    "give start begin perform administer apply use move lift carry remove loosen tighten elevate raise lower tilt "
    "press compress place put lay roll turn call check feel cover clean wash flush rinse cool warm heat induce drink "
    "eat offer leave try attempt continue stop splint bandage dress pack inject insert pull push massage rub burst "
    "pop suck cut tie release blow ventilate resuscitate shock defibrillate sweep thrust").split())
DOSE_UNITS = {
    "mg": "mg", "milligram": "mg", "milligrams": "mg", "g": "g", "gram": "g", "grams": "g", "mcg": "mcg",
    "µg": "mcg", "μg": "mcg", "microgram": "mcg", "micrograms": "mcg", "ml": "ml", "milliliter": "ml",
    "milliliters": "ml", "millilitre": "ml", "millilitres": "ml", "l": "l", "liter": "l", "liters": "l",
    "litre": "l", "litres": "l", "iu": "iu", "unit": "unit", "units": "unit", "%": "%", "percent": "%",
    "mmol": "mmol", "meq": "meq", "kg": "kg", "kilogram": "kg", "kilograms": "kg",
}
NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "hundred": 100,
}
_NUMBER = re.compile(
    r"(?<![\w.,/])(?<![A-Za-z]-)(?:(\d+)\s+(\d+)/(\d+)|(\d+)/(\d+)|(\d+(?:,\d{3})*(?:\.\d+)?))"
    r"(?:\s*-?\s*(%|[A-Za-zµμ]+))?")
NEGATION_STEMS = frozenset(stem(w) for w in NEGATION_CUES)
_CLAUSE_BREAK = re.compile(r"[,;:()\[\]—–]|\b(?:if|when|whenever|because|while|until|but|although|though|since|"
                           r"then|otherwise|except|whereas)\b", re.IGNORECASE)
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b(?:\s*-?\s*([A-Za-z]+))?", re.IGNORECASE)


class GroundingConfig(StageConfig):
    min_lexical: float = Field(0.6, ge=0, le=1)
    min_sentence_lexical: float = Field(0.3, ge=0, le=1)
    min_semantic: float = Field(0.45, ge=-1, le=1)
    reduce: Literal["min", "mean"] = "min"
    semantic: bool = True
    numbers: bool = True
    negation: bool = True
    negation_min_similarity: float = Field(0.5, ge=-1, le=1)
    min_sentence_words: int = Field(3, ge=1)
    model: str | None = None


def lexical_support(answer: str, context: str) -> float:
    """Share of the answer's distinct content stems found in the context (1.0 for an answer without any)."""
    needed = content_stems(answer)
    return len(needed & content_stems(context)) / len(needed) if needed else 1.0


def weakest_sentence(a_sents: list[str], context: str, minimum: float) -> dict | None:
    """The answer sentence (of 3+ content words) with the lowest lexical support, when that is below ``minimum``."""
    have = content_stems(context)
    scored = [(len(stems & have) / len(stems), s) for s in a_sents if len(stems := content_stems(s)) >= 3]
    if not scored:
        return None
    support, sentence = min(scored)
    return {"sentence": sentence, "sentence_lexical": round(support, 4)} if support < minimum else None


def numbers(text: str) -> set[tuple[float, str | None]]:
    """(value, dose unit or None) for every number written in ``text`` (digits, fractions, number words)."""
    found = set()
    for m in _NUMBER.finditer(text):
        whole, num, den, fnum, fden, plain, unit = m.groups()
        if whole is not None:
            value = int(whole) + int(num) / int(den) if int(den) else float(whole)
        elif fnum is not None:
            value = int(fnum) / int(fden) if int(fden) else float(fnum)
        else:
            value = float(plain.replace(",", ""))
        found.add((round(value, 4), DOSE_UNITS.get((unit or "").lower())))
    for m in _NUMBER_WORD.finditer(text):
        found.add((float(NUMBER_WORDS[m.group(1).lower()]), DOSE_UNITS.get((m.group(2) or "").lower())))
    return found


def unsupported_numbers(answer: str, context: str) -> list[str]:
    """The answer's numbers (as ``value unit``) that the context does not state."""
    have = numbers(context)
    values = {v for v, _ in have}
    missing = []
    for value, unit in sorted(numbers(answer), key=lambda x: (x[0], x[1] or "")):
        ok = (value, unit) in have if unit else value in values
        if not ok:
            missing.append(f"{value:g}{' ' + unit if unit else ''}")
    return missing


def negated(text: str) -> bool:
    """True when ``text`` carries an odd number of negation cues."""
    return sum(w in NEGATION_CUES for w in words(text)) % 2 == 1


def clauses(sentence: str) -> list[tuple[set[str], bool]]:
    """(content stems, negated) of each clause: pieces between punctuation and subordinating words."""
    out = []
    for piece in _CLAUSE_BREAK.split(sentence):
        stems = content_stems(piece) - NEGATION_STEMS
        if stems:
            out.append((stems, negated(piece)))
    return out


def polarity_clash(a: str, b: str, min_overlap: float = 0.5) -> bool:
    """True when a negated clause of one sentence shares at least ``min_overlap`` of its content stems with a
    clause of the other that is not negated, and no content stem at all with a negated clause of the other.

    Sentences with "unless" or "only" are never compared: "do not move it unless ..." says "move it only if ...".
    """
    if {"unless", "only"} & set(words(a) + words(b)):
        return False
    ca, cb = clauses(a), clauses(b)
    for source, target in ((ca, cb), (cb, ca)):
        for stems, neg in source:
            if not neg:
                continue
            agree = any(stems & t for t, t_neg in target if t_neg)
            if not agree and any(len(stems & t) >= min_overlap * len(stems) for t, t_neg in target if not t_neg):
                return True
    return False


def has_action(sentence: str) -> bool:
    """True when ``sentence`` has a first-aid action verb, matched by stem (give, gives, giving; not "gave")."""
    return any(stem(w) in ACTION_VERBS for w in words(sentence))


@dataclass
class Verdict:
    """One answer's scores and, when it fails a check, the drop reason and what failed."""

    lexical: float
    semantic: float | None
    reason: str | None = None
    detail: dict | None = None


class Grounding(Stage):
    name = "grounding"
    Config = GroundingConfig
    inputs = ("kind", "messages")
    outputs = {"grounding_lexical": pa.float32(), "grounding_semantic": pa.float32()}

    def setup(self) -> None:
        needs_model = self.config.semantic or self.config.negation
        self._model = load_embedder(self.config.model) if needs_model else None

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        n = len(batch["kind"])
        contexts = batch.get("context") or [None] * n
        todo = {}
        for i, (row, context) in enumerate(zip(rows(batch), contexts)):
            if row["kind"] not in ("qa", "vqa") or not row.get("messages"):
                self.counters["not_conversation"] += 1
            elif not (context or "").strip():
                self.counters["no_context"] += 1
            else:
                todo[i] = (question_answer(row)[1], context)
        verdicts = self._verdicts(list(todo.values()))
        out = {**batch, DROP: [None] * n, DROP_DETAIL: [None] * n,
               "grounding_lexical": [None] * n, "grounding_semantic": [None] * n}
        for i, v in zip(todo, verdicts):
            out["grounding_lexical"][i], out["grounding_semantic"][i] = v.lexical, v.semantic
            if v.reason:
                out[DROP][i] = v.reason
                out[DROP_DETAIL][i] = json.dumps({"lexical": v.lexical, "semantic": v.semantic, **(v.detail or {})},
                                                 ensure_ascii=False)
        return out

    def _verdicts(self, pairs: list[tuple[str, str]]) -> list[Verdict]:
        """One Verdict per (answer, context) pair, the sentences of all pairs embedded at once."""
        split = [(sentences(a) or [a], sentences(c) or [c]) for a, c in pairs]
        vectors = self._embed_all(split)
        return [self._verdict(answer, context, a_sents, c_sents, vectors)
                for (answer, context), (a_sents, c_sents) in zip(pairs, split)]

    def _embed_all(self, split: list[tuple[list[str], list[str]]]) -> dict[str, np.ndarray]:
        if self._model is None:
            return {}
        texts = sorted({s for a, c in split for s in a + c})
        return dict(zip(texts, embed(texts, self._model)))

    def _verdict(self, answer: str, context: str, a_sents: list[str], c_sents: list[str],
                 vectors: dict[str, np.ndarray]) -> Verdict:
        c = self.config
        verdict = Verdict(round(lexical_support(answer, context), 4), None)
        sims, worst = None, None
        if vectors:
            sims = np.stack([vectors[s] for s in a_sents]) @ np.stack([vectors[s] for s in c_sents]).T
            verdict.semantic, worst = self._semantic_score(a_sents, sims)
        missing = unsupported_numbers(answer, context) if c.numbers else []
        if missing:
            verdict.reason, verdict.detail = "unsupported_number", {"numbers": missing}
        elif c.negation and sims is not None and (clash := contradiction(a_sents, c_sents, sims,
                                                                         c.negation_min_similarity)):
            verdict.reason, verdict.detail = "contradicts_context", clash
        elif verdict.lexical < c.min_lexical:
            verdict.reason = "ungrounded_lexical"
        elif weak := weakest_sentence(a_sents, context, c.min_sentence_lexical):
            verdict.reason, verdict.detail = "ungrounded_lexical", weak
        elif c.semantic and verdict.semantic is not None and verdict.semantic < c.min_semantic:
            verdict.reason, verdict.detail = "ungrounded_semantic", {"sentence": a_sents[worst]}
        return verdict

    def _semantic_score(self, a_sents: list[str], sims: np.ndarray) -> tuple[float, int]:
        """The row's semantic score and the index of its least supported answer sentence."""
        best = sims.max(axis=1)
        scored = [i for i, s in enumerate(a_sents) if len(words(s)) >= self.config.min_sentence_words]
        scored = scored or list(range(len(a_sents)))
        worst = min(scored, key=lambda i: best[i])
        score = best[worst] if self.config.reduce == "min" else best[scored].mean()
        return round(float(score), 4), worst


def contradiction(a_sents: list[str], c_sents: list[str], sims: np.ndarray, min_similarity: float) -> dict | None:
    """The first answer sentence with an action verb whose best-matching context sentence has the opposite
    polarity, as ``{sentence, context_sentence, similarity}``; None when there is none."""
    for i, sentence in enumerate(a_sents):
        if not has_action(sentence):
            continue
        j = int(np.argmax(sims[i]))
        if sims[i, j] >= min_similarity and polarity_clash(sentence, c_sents[j]):
            return {"sentence": sentence, "context_sentence": c_sents[j], "similarity": round(float(sims[i, j]), 4)}
    return None
