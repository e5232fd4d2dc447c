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

Text is lightly normalised for reading (the PDF connector has already mended hyphenation and dropped running
headers): soft line breaks joined; figure and table references ("(Figure 3-2)", "(see Figure 4-1)", "(refer to
paragraph 2-16)", a bare "Figure 3-5.", "as illustrated in Figure 3-39") and section labels ("2-20.", "(3)", "a.",
also where the PDF leaves them at a sentence's end or start) removed; a run-in heading ("Improvising a Tourniquet .
In the absence ...", "Signs and symptoms. ...") removed, but never an opening sentence ("Dressings are sterile pads
...", "Start cooling casualty immediately."); a "NOTE"/"CAUTION"/"WARNING" prefix removed; shouted words in sentence
case ("DO NOT REMOVE" -> "Do not remove", "all of HIS" -> "his"), acronyms ("CPR", "MTF", "MARK I") kept.
Abbreviations ("e.g.", "i.e.", "etc.", "approx.", "Fig.") never end a sentence. Skipped, with the reason counted:

- ``heading``: a short line without final punctuation ("2-20. Tourniquet", "WARNING"); a heading run into its
  paragraph with no period ("Severe bleeding Apply firm pressure ...") is removed from the unit;
- ``furniture``: page labels ("1-11"), running titles ("FM 4-25.11/NTRP ..."), figure and table captions;
- ``contents``: table-of-contents lines (dot leaders or a trailing page number);
- ``reference``: a span that only points elsewhere ("Refer to Chapter 4 ...", "See paragraph 2-18", "Figures 4-9
  through 4-17 show how to apply slings ..."), whose content is elsewhere ("... when any of the conditions described
  in b above exist", "If breathing, proceed to step (3).") or cites a work (a web address, "Available at", "WHO (2017)
  Guidelines ...", an author list, "(2nd ed.)", a reference-list entry or credit line: ``citation_like``);
- ``exercise``: instructions to a reader doing an exercise ("Answer the following questions ...");
- ``fragment``: a span cut by the chunk window (starts in lower case or ends without final punctuation; a list whose
  last item is the chunk's last line and has no final punctuation, or is a bare label such as "c.");
- ``too_short``: fewer than ``min_words`` words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from curate.quality.text import SENTENCE_BREAK, STOPWORDS

MIN_WORDS = 8
MAX_WORDS = 70
MAX_LIST_WORDS = 110
BULLETS = frozenset(["•", "▪", "●", "◦", "*", "–", "-", "»", "»»"])
# verbs instructions open with: a run-in heading does not ("Tie the splints." is a sentence), templates read them
IMPERATIVES = frozenset("""administer allow apply ask attempt avoid bandage begin bend blow bring call calm caution
channel check clean clear close comfort connect contact continue cool count cover cross cut deliver do don't drag
dress drink elevate encourage ensure establish evacuate evaluate examine explain expose feel find flush fold gather
get give grasp help hold identify immobilize insert inspect introduce irrigate keep kneel lay leave let lie lift
listen locate look loosen lower make monitor move note notify observe offer open pad perform pinch place position
pour press prevent protect provide pull push put raise reassess reassure record refer release remind remove repeat
report respect return rinse rise roll seal secure seek send sit slip splint squat squeeze start stay stop
straddle straighten support sweep take tell tie tighten tilt transport treat try turn use wait warm wash watch wipe
wrap touch burst force probe pop rub scrub suck eat drink smoke""".split())
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|approx|figs?|vs|cf|et al)\.", re.IGNORECASE)
_MASKED_DOT = "\u2024"  # one dot leader: an abbreviation's period while sentences and clauses are split

_BULLET = re.compile(r"^(?:[•▪●◦*–-]|»»?|\(?[0-9]{1,2}[.)]|\([a-z]{1,3}\)|[a-z][.)])(?:\s+|$)")
_SECTION_LABEL = re.compile(r"^(?:\d{1,2}-\d{1,3}\.|[A-Z]-\d{1,3}\.|\d{1,2}\.\d{0,2}\.?|[a-z]\.|\(\d{1,2}\)|"
                            r"\([a-z]{1,3}\))\s+")
_SECTION_NUMBER = re.compile(r"^(?:\d{1,2}-\d{1,3}|[A-Z]-\d{1,3})\.\s")
_FURNITURE = re.compile(r"^(?:\d{1,2}-\d{1,3}|[A-Z]-\d{1,3}|\d{1,4}|page \d+( of \d+)?|FM \d[\w./() -]*|"
                        r"(?:figure|fig\.|table)\s+[A-Z0-9][-\d.]*.*)$", re.IGNORECASE)
_CONTENTS = re.compile(r"(?:\.\s?){4,}\s*[\dA-Z-]+$|\s{2,}\d{1,4}$|^(?:contents|table of contents|index)$",
                       re.IGNORECASE)
_REFERENCE = re.compile(r"^(?:\(?(?:refer to|see|for (?:more )?information (?:on|about)|as shown in|"
                        r"as described in)\b|(?:in |see )?the (?:following|next|previous) (?:box|table|figure|"
                        r"section|chapter|page)s?\b)", re.IGNORECASE)
_CITATION = re.compile(r"(?i:https?://|\bwww\.|\bavailable (?:at|from)\b)|^[A-Z][^.()]{0,80}\((?:19|20)\d{2}[a-z]?\)|"
                       r"^(?:[A-Z][\w’'-]+,? (?:[A-Z]\.?){1,3}[,;.] ){2,}|\bet al\.,? \(?(?:19|20)\d{2}|"
                       r"\(\d+(?:st|nd|rd|th) ed\.?\)")  # an author list ("Hobfoll, S, Watson, P, ..."), an edition
# ... or a span whose content is elsewhere in the document: "as described in b above", "(b and c above)", "proceed to
# step (3)", "outlined in paragraph 7-8b"
_POINTED = r"(?:described|discussed|listed|shown|outlined|mentioned|explained|noted|detailed|covered|specified)"
_ELSEWHERE = re.compile(rf"\b{_POINTED} (?:in|for|under|at) (?:\S+ ){{0,3}}?(?:above|below|earlier)\b|"
                        rf"\bas {_POINTED} (?:above|below|earlier|previously)\b|"
                        r"\((?:see )?[^()]{1,25}\b(?:above|below)\)|"
                        r"\b(?:go|proceed|return|continue|skip|refer|turn) (?:back )?to (?:step|paragraph|para|section|"
                        r"chapter|task|appendix|page|figure|table|item|question)s?\b|"
                        r"\b(?:in|see|per|under) (?:paragraph|para\.?|appendix|chapter|section) [\dA-Z][\w.-]*",
                        re.IGNORECASE)
_FOOTNOTE = re.compile(r"(?<=[a-z)”’\"])([.,;:])\d{1,2}(?:[,–-]\d{1,2})*(?=[\s.,;:]|$)")
_EXERCISE = re.compile(r"\b(?:answer the (?:following )?questions?|read the (?:following|passage|text)|"
                       r"discuss (?:with|in)|fill in the blanks?|circle the|match the|role[- ]play|"
                       r"in (?:small )?groups?,|exercise \d|practice exercise|learning objectives?)\b",
                       re.IGNORECASE)
_FIGURE_REF = re.compile(  # "(Figure 3- 31A)", "(refer to paragraph 2-16 to 2-18)"; a bare "Figure 3-5." in the text
    r"\s*\((?:see |refer to |as shown in )?(?:figures?|figs?\.|tables?|paragraphs?|para\.|chapters?|appendix|annex)"
    r"\s+[A-Z0-9][^()]*\)|(?:(?<=[.!?])\s+|^)(?:figure|fig\.|table)\s+[A-Z]?[\d-]+[A-Z]?\.(?=\s+[A-Z]|\s*$)",
    re.IGNORECASE)
_FIGURE_NUMBERS = r"[A-Z]?\d[\w-]*(?:\s*(?:through|to|and|-)\s*[A-Z]?\d[\w-]*)?"  # "3-39", "4-9 through 4-17"
_FIGURE_PHRASE = re.compile(  # "... to the knee as illustrated in Figure 3-39, use ...", "..., shown in Table 2, ..."
    rf",?\s+(?:as )?(?:illustrated|shown|depicted|pictured|described) in (?:figures?|tables?) {_FIGURE_NUMBERS}"
    r"(?=[,.;:])", re.IGNORECASE)
_FIGURE_SUBJECT = re.compile(  # "Figures 4-9 through 4-17 show how to apply slings ...": the content is in the figures
    rf"^(?:the )?(?:figures?|tables?|illustrations?|diagrams?) (?:{_FIGURE_NUMBERS} )?(?:below |above )?"
    r"(?:shows?|illustrates?|depicts?|lists?|gives?|summari[sz]es?|provides?|presents?|contains?)\b", re.IGNORECASE)
_RUN_IN = re.compile(r"^(?P<head>[A-Z][\w’' ,/-]{0,60}?)(?P<space> ?)\.\s{1,2}(?=[\"“(]?[A-Z])")
_BARE_RUN_IN = re.compile(r"^(?P<head>[A-Z][\w’'-]*(?: [a-z][\w’'-]*){0,5}) (?P<next>[A-Z][a-z’']*)\b")
_OPENERS = frozenset("a an the if when before after do don't don’t never always once while most some any every each "
                     "in for".split())
_FINITE = frozenset("is are was were be been has have had may might can could must should will would do does did "
                    "shall cannot".split())
_NOT_IN_HEADINGS = frozenset("the a an his her its their your this that these those him it them he she they "
                             "you".split())
_WARNING_PREFIX = re.compile(r"^(?:(?:NOTE|CAUTION|WARNING|DANGER)\b[:.—–-]?|(?:Note|Caution|Warning|Danger)[:—–-])"
                             r"\s*(?=[A-Z\"“(])")
_LABEL_INSIDE = re.compile(r"(?<=[.!?;:])\s+(?:[a-z]\.|\(\d{1,2}\)|\([a-z]{1,3}\)|\d{1,2}-\d{1,3}\.)(?=\s+[A-Z(]|\s*$)")
_CAPS_WORD = r"(?:[A-Z][A-Z’'-]*[A-Z]|A|I)(?![\w’'-])"
_CAPS_RUN = re.compile(rf"(?<![\w’'-]){_CAPS_WORD}(?:(?:[\s,“”\"/]+|\s*[—–]\s*){_CAPS_WORD})*")
_EMPHASIS = frozenset("not never don’t don't do only always immediately even cannot must no all any his her each "
                      "every".split())
_KEEP_CAPS = frozenset("I WHO US UN UK AED IV IO IM ICU EMS EMT HIV AIDS ABC ECG OK".split())  # acronyms with vowels
_LEAD_IN = re.compile(r"(?::|—|–|--|\bthe following|\bas follows)\s*$|\bthe following\b", re.IGNORECASE)
_TERMINAL = re.compile(r"[.!?][\"')\]”’]*$")
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
    numbered = _SECTION_NUMBER.match(line)  # "2-4. Opening the Airway of an Unconscious or Not Breathing Casualty"
    words = _WORDS.findall(_SECTION_LABEL.sub("", line))
    if not _TERMINAL.search(line) and not _LEAD_IN.search(line) and len(words) <= (14 if numbered else 8) and (
            line.isupper() or _SECTION_LABEL.match(line) or all(w[0].isupper() or w.isdigit() for w in words
                                                                if len(w) > 3)):
        return "heading"
    return None


def _join(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def _run_in_heading(text: str) -> int:
    """The length of the run-in heading that opens ``text``, or 0 when it opens with a sentence. A heading is set
    off by a space before its period ("Improvising a Tourniquet .  In ..."), is in Title Case ("Seek Medical
    Assistance. ..."), or is a short phrase with no verb ("Signs and symptoms. ..."); a sentence has a verb and
    lower-case words ("Dressings are sterile pads ...", "Start cooling casualty immediately.")."""
    m = _RUN_IN.match(text)
    if not m:
        return _bare_run_in(text)
    words = m["head"].replace("/", " ").replace(",", " ").split()
    title = all(w[0].isupper() for w in words if len(w) > 3) and not (m["head"].isupper() and len(words) > 3)
    lower = {w.lower() for w in words}
    phrase = len(words) <= 4 and words[0].lower() not in IMPERATIVES and not lower & (_FINITE | _NOT_IN_HEADINGS)
    return m.end() if m["space"] or title or phrase else 0


def _bare_run_in(text: str) -> int:
    """The length of a run-in heading set off by nothing but the capital of the sentence after it ("Severe bleeding
    Apply firm, direct pressure ...", "Shock Shock is ...", "The recovery position A casualty who ..."): up to six
    words without a verb, then a word that opens sentences (an imperative, a determiner or conjunction, or the
    heading's own first word again); 0 otherwise."""
    m = _BARE_RUN_IN.match(text)
    if not m or m["head"].isupper():
        return 0
    head = m["head"].lower().split()
    nxt = m["next"].lower()
    opens = nxt in IMPERATIVES or nxt in _OPENERS or nxt == head[0]
    return m.start("next") if opens and not set(head) & (_FINITE | {"to", "or"}) else 0


def _caps_words(text: str) -> dict[str, bool]:
    """The capitalised words of ``text``: True for an ordinary word (one it also writes in lower case, a common word,
    or one longer than four letters), False for an acronym ("I", "WHO", "US", one without a vowel such as "CPR", one
    the text also uses alone amid lower case such as "ATNAA"). A short word that is neither is left out."""
    tokens = _WORDS.findall(text)
    lower = {w for w in tokens if w.islower()} | STOPWORDS | IMPERATIVES | _EMPHASIS
    alone = {w for k, w in enumerate(tokens) if len(w) > 1 and w.isupper() and w.lower() not in _EMPHASIS and all(
        t.islower() for t in tokens[max(k - 1, 0):k] + tokens[k + 1:k + 2])}
    out = {}
    for w in {t for t in tokens if t.isupper()}:
        if w in alone | _KEEP_CAPS or not re.search(r"[AEIOUY]", w) or re.search(r"\d", w):
            out[w] = False
        elif len(w) > 4 or {w.lower(), w.lower().removesuffix("s"), w.lower() + "s"} & lower:
            out[w] = True
    return out


def _sentence_case(text: str, caps: dict[str, bool]) -> str:
    """Shouted runs in sentence case ("DO NOT REMOVE" -> "Do not remove", "all of HIS" -> "his"): a run of three or
    more capitalised words, or one holding an emphasis word ("NOT", "NEVER", "ONLY"), whose words ``caps`` all knows;
    its ordinary words lower-cased, its acronyms ("CPR", "MARK I") kept."""
    def lower(m: re.Match) -> str:
        run = re.findall(_CAPS_WORD, m[0])
        if (len(run) < 3 and not _EMPHASIS & {w.lower() for w in run}) or not all(w in caps for w in run):
            return m[0]
        out = re.sub(_CAPS_WORD, lambda w: w[0].lower() if caps[w[0]] else w[0], m[0])
        starts = re.search(r"(?:^|[.!?][\"')”’]*\s)\s*[(\"“]?$", text[:m.start()])
        return out[0].upper() + out[1:] if starts else out
    return _CAPS_RUN.sub(lower, text)


def _clean(text: str, caps: dict[str, bool], item: bool = False) -> str:
    """A block's text as a unit reads: references and labels removed, a run-in heading and a warning prefix too
    unless it is an item of a list (whose lead-in may need them: "Respiration involves the— • Airway. The airway
    ..."), shouted runs in sentence case (``caps``: the chunk's ``_caps_words``)."""
    text = _SECTION_LABEL.sub("", strip_references(text))
    if not item:
        text = _WARNING_PREFIX.sub("", text[_run_in_heading(text):])
    text = _LABEL_INSIDE.sub("", text)
    text = _sentence_case(text, caps)
    text = re.sub(r"(?<!\.)\.\.(?!\.)", ".", _FOOTNOTE.sub(r"\1", text))  # "supplies.3." -> "supplies."
    return " ".join(text.replace(" ,", ",").replace(" .", ".").replace("( ", "(").split())


def strip_references(text: str) -> str:
    """``text`` without its figure and table references, which no unit holds."""
    return _FIGURE_PHRASE.sub("", _FIGURE_REF.sub("", text))


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


def mask(text: str) -> str:
    """``text`` with the periods of abbreviations ("e.g.", "etc.") masked, so that they end no clause or sentence."""
    return _ABBREVIATION.sub(lambda m: m[0].replace(".", _MASKED_DOT), text)


def unmask(text: str) -> str:
    return text.replace(_MASKED_DOT, ".")


def _sentences(text: str) -> list[str]:
    """The sentences of ``text``; one that opens a parenthesis it does not close ("(Do not move ... splinted. See
    Chapter 4.)") without it."""
    sentences = [unmask(s).strip() for s in SENTENCE_BREAK.split(mask(text)) if s.strip()]
    return [s[1:] if s.startswith("(") and s.count("(") > s.count(")") else s for s in sentences]


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
    parts = [unmask(re.sub(r"[.;,]+(\)?)\s*$", r"\1", mask(item))) for item in items]
    parts = [p[0].lower() + p[1:] if p[:1].isupper() and not p[:2].isupper() else p for p in parts]
    body = "; ".join(parts[:-1]) + ("; and " if len(parts) > 1 else "") + parts[-1]
    return f"{lead}: {body}."


FINITE_VERB = re.compile(r"\b(?:is|are|was|were|be|can|could|will|would|should|must|may|might|does|do|did|helps?|"
                         r"saves?|means|allows?|makes?|requires?|reduces?|prevents?|causes?|includes?|involves?|"
                         r"gives?)\b", re.IGNORECASE)
_NAME_WORD = re.compile(r"[A-Za-z][\w’'-]*")


def citation_like(text: str) -> bool:
    """True for a reference-list entry, a credit line or a title ("AR 310-50. Authorized Abbreviations and Brevity
    Codes.", "Illustrations by Julie Smith (PD Consulting)."): at least 3 words, 60% of them capitalised, and no
    finite verb (``FINITE_VERB``). It names a source; it says nothing a question could ask."""
    words = _NAME_WORD.findall(text)
    return (len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.6 * len(words)
            and not FINITE_VERB.search(text))


def _skip_reason(unit: Unit, min_words: int, max_words: int) -> str | None:
    text = unit.text
    if _EXERCISE.search(text):
        return "exercise"
    if (_REFERENCE.match(text) or _ELSEWHERE.search(text) or _CITATION.search(text) or _FIGURE_SUBJECT.match(text)
            or citation_like(text)):
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
    caps = _caps_words(text)
    candidates: list[Unit] = []
    i = 0
    while i < len(blocks):
        kind, start, lines = blocks[i]
        if kind == "break":
            i += 1
            continue
        body = _clean(_join(lines), caps)
        items, j = [], i + 1
        if _LEAD_IN.search(body):  # a lead-in gathers the items below it: bullets, or labels under running text
            wanted = ("bullet", "label") if kind == "para" else ("bullet",)
            while j < len(blocks) and blocks[j][0] in wanted:
                item = _clean(_join(blocks[j][2]), caps, item=True)
                if _LEAD_IN.search(item) and items:  # a nested lead-in starts a list of its own
                    break
                items.append(item)
                j += 1
        if items and j - 1 == last and not _TERMINAL.search(items[-1]):  # the chunk cut the list's last item
            skipped["fragment"] += 1
            i = j
            continue
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
