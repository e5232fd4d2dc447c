"""Answerable units of a chunk: the spans of text that can stand as the answer to one question.

``answerable_units(text)`` consumes a chunk's text (lines as the PDF connector leaves them: one stripped line per
printed line, blank lines between paragraphs) and returns ``(units, skipped)``: the units in reading order and a
``Counter`` of what was left out, by reason.

A unit is one of:

- a **list** kept whole: a lead-in line that ends in ``:``/``—``/"the following" and the bullet or numbered items
  after it, joined into one sentence ("Check for open fractures by looking for: bleeding; bones sticking through the
  skin; and check for pulse.");
- a **prose span**: one to three consecutive sentences of a paragraph, up to ``max_words``; a sentence that opens
  with a pronoun or a demonstrative ("This absence of bleeding ...") stays with the sentence before it.

Text is lightly normalised: soft line breaks joined, ``(Figure 3-2)``-style references and section labels ("2-20.",
"(3)", "a.") removed (the PDF connector has already mended hyphenation and dropped running headers). Skipped,
with the reason counted:

- ``heading``: a short line without final punctuation ("2-20. Tourniquet", "WARNING");
- ``furniture``: page labels ("1-11"), running titles ("FM 4-25.11/NTRP ..."), figure and table captions;
- ``contents``: table-of-contents lines (dot leaders or a trailing page number);
- ``reference``: a span that only points elsewhere ("Refer to Chapter 4 ...", "See paragraph 2-18");
- ``exercise``: instructions to a reader doing an exercise ("Answer the following questions ...");
- ``fragment``: a span cut by the chunk window (starts in lower case or ends without final punctuation);
- ``too_short``: fewer than ``min_words`` words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

MIN_WORDS = 8
MAX_WORDS = 70
MAX_LIST_WORDS = 110
BULLETS = frozenset(["•", "▪", "●", "◦", "*", "–", "-", "»", "»»"])

_BULLET = re.compile(r"^(?:[•▪●◦*–-]|»»?|\(?[0-9]{1,2}[.)]|\([a-z]{1,3}\)|[a-z][.)])\s+")
_SECTION_LABEL = re.compile(r"^(?:\d{1,2}-\d{1,3}\.|[A-Z]-\d{1,3}\.|\d{1,2}\.\d{0,2}\.?|[a-z]\.|\(\d{1,2}\)|"
                            r"\([a-z]{1,3}\))\s+")
_FURNITURE = re.compile(r"^(?:\d{1,2}-\d{1,3}|[A-Z]-\d{1,3}|\d{1,4}|page \d+( of \d+)?|FM \d[\w./() -]*|"
                        r"(?:figure|fig\.|table)\s+[A-Z0-9][-\d.]*.*)$", re.IGNORECASE)
_CONTENTS = re.compile(r"(?:\.\s?){4,}\s*[\dA-Z-]+$|\s{2,}\d{1,4}$|^(?:contents|table of contents|index)$",
                       re.IGNORECASE)
_REFERENCE = re.compile(r"^(?:\(?(?:refer to|see|for (?:more )?information (?:on|about)|as shown in|"
                        r"as described in)\b|(?:in |see )?the (?:following|next|previous) (?:box|table|figure|"
                        r"section|chapter|page)s?\b)", re.IGNORECASE)
_EXERCISE = re.compile(r"\b(?:answer the (?:following )?questions?|read the (?:following|passage|text)|"
                       r"discuss (?:with|in)|fill in the blanks?|circle the|match the|role[- ]play|"
                       r"in (?:small )?groups?,|exercise \d|practice exercise|learning objectives?)\b",
                       re.IGNORECASE)
_FIGURE_REF = re.compile(r"\s*\((?:see )?(?:figure|fig\.|table|paragraph|para\.|chapter|appendix)\s+[\w.-]+"
                         r"(?:\s*(?:and|through|,)\s*[\w.-]+)*\)", re.IGNORECASE)
_LEAD_IN = re.compile(r"(?::|—|–|--|\bthe following|\bas follows)\s*$|\bthe following\b", re.IGNORECASE)
_TERMINAL = re.compile(r"[.!?][\"')\]”’]*$")
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]”’]*\s+(?=[\"'(\[“]?[A-Z0-9])")
_PRONOUN_START = re.compile(r"^(?:this|these|that|those|it|its|they|their|them|such|he|she|his|her|"
                            r"also|however|therefore|then|otherwise)\b", re.IGNORECASE)
_NUMBERED_START = re.compile(r"^\d{1,2}(?:\.\d{1,2})*\s")
_INLINE_BULLET = re.compile(r"\s*(?:»»?|▪|●)\s*")
_WORDS = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")


@dataclass(frozen=True)
class Unit:
    """A normalised answer span, where it starts in the chunk's text, and whether it is a list."""

    text: str
    start: int
    is_list: bool = False

    @property
    def words(self) -> int:
        return len(_WORDS.findall(self.text))


def _line_kind(line: str) -> str | None:
    """``furniture``, ``contents``, ``heading``, ``item`` or None (a line of running text)."""
    if _FURNITURE.fullmatch(line):
        return "furniture"
    if _CONTENTS.search(line):
        return "contents"
    if _BULLET.match(line):
        return "item"
    words = _WORDS.findall(line)
    if not _TERMINAL.search(line) and not _LEAD_IN.search(line) and len(words) <= 8 and (
            line.isupper() or _SECTION_LABEL.match(line) or all(w[0].isupper() or w.isdigit() for w in words
                                                                if len(w) > 3)):
        return "heading"
    return None


def _join(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def _clean(text: str) -> str:
    text = _FIGURE_REF.sub("", text)
    text = _SECTION_LABEL.sub("", text)
    text = re.sub(r"^[A-Z][\w’' ,/-]{2,60}? ?\.\s{1,2}(?=[A-Z])", "", text)  # "Improvising a Tourniquet .  In ..."
    return " ".join(text.replace(" ,", ",").replace(" .", ".").split())


def _blocks(text: str) -> tuple[list[tuple[str, int, list[str]]], Counter]:
    """(kind, start offset, lines) blocks: ``para`` (running text), ``bullet`` and ``label`` (list items marked
    with a bullet or with a label such as "(a)" or "1."), ``break``; skipped lines counted."""
    skipped: Counter = Counter()
    blocks: list[tuple[str, int, list[str]]] = []
    offset = 0
    text = _INLINE_BULLET.sub("\n• ", text)  # "a »» b »» c": each item on a line of its own
    for raw in text.split("\n"):
        start, offset = offset, offset + len(raw) + 1
        line = raw.strip()
        if not line:
            if blocks and blocks[-1][0] == "para":
                blocks.append(("break", start, []))
            continue
        kind = _line_kind(line)
        if kind in ("furniture", "contents", "heading"):
            skipped[kind] += 1
            blocks.append(("break", start, []))
        elif kind == "item":
            marker = _BULLET.match(line)[0].strip()
            blocks.append(("bullet" if marker in BULLETS else "label", start, [_BULLET.sub("", line)]))
        elif blocks and blocks[-1][0] != "break" and not (
                blocks[-1][0] != "para" and _TERMINAL.search(blocks[-1][2][-1]) and line[:1].isupper()):
            blocks[-1][2].append(line)
        else:
            blocks.append(("para", start, [line]))
    return blocks, skipped


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _prose_units(text: str, start: int, max_words: int) -> list[Unit]:
    """Spans of one to three sentences; pronoun-led sentences stay with their antecedent's sentence."""
    groups: list[list[str]] = []
    for sentence in _sentences(text):
        if groups and _PRONOUN_START.match(sentence) and len(groups[-1]) < 3:
            groups[-1].append(sentence)
        else:
            groups.append([sentence])
    units, merged = [], []
    for group in groups:  # a short sentence joins the next one of the paragraph when both fit
        words = len(_WORDS.findall(" ".join(group)))
        if merged and len(_WORDS.findall(" ".join(merged))) < MIN_WORDS and len(merged) + len(group) <= 3 and \
                len(_WORDS.findall(" ".join(merged))) + words <= max_words:
            merged += group
            continue
        if merged:
            units.append(Unit(" ".join(merged), start))
        merged = list(group)
    if merged:
        units.append(Unit(" ".join(merged), start))
    return units


def _list_text(lead: str, items: list[str]) -> str:
    lead = re.sub(r"\s*(?:—|–|--|:|[.;,])\s*$", "", lead)
    parts = [re.sub(r"[.;,]+(\)?)\s*$", r"\1", item) for item in items]
    parts = [p[0].lower() + p[1:] if p[:1].isupper() and not p[:2].isupper() else p for p in parts]
    body = "; ".join(parts[:-1]) + ("; and " if len(parts) > 1 else "") + parts[-1]
    return f"{lead}: {body}."


def _skip_reason(unit: Unit, min_words: int, max_words: int) -> str | None:
    text = unit.text
    if _EXERCISE.search(text):
        return "exercise"
    if _REFERENCE.match(text):
        return "reference"
    if _NUMBERED_START.match(text):
        return "heading"  # "2.2 adapt what you do ..." (a numbered heading run into the text) or a footnote

    if not text[:1].isupper() and not text[:1].isdigit():
        return "fragment"
    if not _TERMINAL.search(text) or text.endswith(":."):  # cut, or a lead-in whose items the chunk lost
        return "fragment"
    if unit.words < min_words:
        return "too_short"
    if unit.words > (MAX_LIST_WORDS if unit.is_list else max_words):
        return "too_long"
    return None


def answerable_units(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> tuple[list[Unit], Counter]:
    """The chunk's answerable units in reading order, and the skipped spans counted by reason."""
    blocks, skipped = _blocks(text)
    last = max((k for k, b in enumerate(blocks) if b[0] != "break"), default=-1)
    candidates: list[Unit] = []
    i = 0
    while i < len(blocks):
        kind, start, lines = blocks[i]
        if kind == "break":
            i += 1
            continue
        body = _clean(_join(lines))
        items, j = [], i + 1
        if _LEAD_IN.search(body):  # a lead-in gathers the items below it: bullets, or labels under running text
            wanted = ("bullet", "label") if kind == "para" else ("bullet",)
            while j < len(blocks) and blocks[j][0] in wanted:
                item = _clean(_join(blocks[j][2]))
                if _LEAD_IN.search(item) and items:  # a nested lead-in starts a list of its own
                    break
                items.append(item)
                j += 1
        if any(items):
            candidates.append(Unit(_list_text(body, [it for it in items if it]), start, is_list=True))
            i = j
            continue
        if kind != "para" and body and not _TERMINAL.search(body) and i < last:
            body += "."  # a lone item is a statement ("Tell the casualty not to move."), unless the chunk cut it
        candidates += _prose_units(body, start, max_words) if body else []
        i += 1
    units = []
    for unit in candidates:
        reason = _skip_reason(unit, min_words, max_words)
        if reason:
            skipped[reason] += 1
        else:
            units.append(unit)
    return units, skipped
