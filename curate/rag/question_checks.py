"""The checks a synthesized question must pass (used by ``synth_qa`` and ``synth_vqa``), and which units of a chunk
get a question: whether a question stands alone, fits its answer, and leads back to its unit (the round trip).

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

from curate.quality.text import STOPWORDS, content_stems, stem
from curate.rag.units import IMPERATIVES, Unit, strip_references

QUESTION_STARTS = frozenset("""what when where why how which who whom whose should can could is are was were do does
did must may will would if in after before during""".split())
_META = re.compile(r"\b(?:the|this|that|above|following) (?:passage|statement|text|paragraph|section|excerpt|"
                   r"sentence|article|document|author|manual|chapter)s?\b|\baccording to\b", re.IGNORECASE)
_BARE_PRONOUN = re.compile(r"^\w+\s+(?:is|are|was|were|does|do|did|should|can|must|may|will)\s+(?:it|they|this|these|"
                           r"that|those|he|she|them)\b|\b(?:it|them|this|that|these|those)\?$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
_PERSON_PRONOUN = re.compile(r"\b(?:he|him|his|she|her|hers)\b", re.IGNORECASE)
_PERSON = re.compile(r"\b(?:casualt(?:y|ies)|persons?|people|patients?|victims?|child(?:ren)?|someone|individuals?|"
                     r"service members?|soldiers?|survivors?|adults?|bab(?:y|ies)|infants?|wom[ae]n|m[ae]n|"
                     r"friends?|members?|workers?|mothers?|fathers?)\b", re.IGNORECASE)


def word_set(text: str) -> set[str]:
    """The distinct lower-cased ASCII words and numbers of ``text``."""
    return set(_WORD.findall(text.lower()))


def copies(text: str, examples: tuple[str, ...], threshold: float = 0.7) -> bool:
    """True when ``text`` shares at least ``threshold`` of its words (Jaccard) with one of ``examples``."""
    mine = word_set(text)
    return any(len(mine & (ex := word_set(e))) / max(len(mine | ex), 1) >= threshold for e in examples)


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
    ``unresolved_pronoun`` ("What should be done with it?", "What should you do if he is lying face down?" with no
    person named before "he"), ``copied_example`` (a few-shot example's words)."""
    n = len(question.split())
    first = question.split()[0].lower().strip("\"'(") if question.split() else ""
    if _META.search(question):
        return "mentions_source"
    if not question.endswith("?") or first not in QUESTION_STARTS or not min_words <= n <= max_words:
        return "not_a_question"
    pronoun = _PERSON_PRONOUN.search(question)
    if _BARE_PRONOUN.search(question) or (pronoun and not _PERSON.search(question[:pronoun.start()])):
        return "unresolved_pronoun"
    if copies(question, examples, 0.6):
        return "copied_example"
    return None


_REASON_ASKED = re.compile(r"^(?:why\b|what is the (?:purpose|reason|goal|aim)\b)", re.IGNORECASE)
_ASKS = (  # (question opening, what the answer must contain for the question to fit it)
    (re.compile(r"^how (?:often|frequently)\b", re.I), re.compile(r"\b(?:every|each|times?|hourly|daily|weekly|"
                                                                  r"periodically|again|repeat\w*|\d+)\b", re.I)),
    (re.compile(r"^how (?:long|many|much|far|high|wide|deep|big|soon)\b|^what (?:temperature|size|dose)\b", re.I),
     re.compile(r"\d|\b(?:one|two|three|four|five|six|ten|twenty|minutes?|hours?|seconds?|inch\w*|until|"
                r"above|below|beyond|slightly|immediately|as soon as)\b", re.I)),
    (_REASON_ASKED,  # a reason, a purpose or an outcome
     re.compile(r"\b(?:to|so that|in order|because|since|without|otherwise|therefore|thus|hence|prevent\w*|help\w*|"
                r"allow\w*|reduc\w*|avoid\w*|caus\w*|lead\w*|result\w*|ensur\w*|minimi[sz]\w*|increas\w*|risk\w*|"
                r"interfer\w*|protect\w*)\b", re.I)),
    (re.compile(r"^when\b", re.I), re.compile(r"\b(?:if|when|before|after|until|unless|once|during|while|as soon as|"
                                              r"immediately|within|only)\b", re.I)),
    (re.compile(r"^what (?:are|is) (?:the |some )?(?:common |main |early |first )?(?:signs?|symptoms?)\b", re.I),
     re.compile(r"\b(?:signs?|symptoms?|include\w*|such as|appear\w*|feel\w*|look\w*|pain\w*|swell\w*|"
                r"red\w*|pale|sweat\w*|nause\w*|vomit\w*|dizz\w*|confus\w*|loss of|unconscious\w*)\b|:", re.I)),
    # a way of telling ("How can you tell if ...?"): a sign, a test, what to look for
    (re.compile(r"^how (?:can|do|does|would|could|should|will|might) (?:i|you|we|one|someone|a first aider|first "
                r"aiders|a rescuer) (?:tell|know|recogni[sz]e|identify|determine|spot|detect|confirm|be sure)\b|"
                r"^how to (?:tell|know|recogni[sz]e|identify)\b|"
                r"^what is the (?:best )?way to (?:tell|know|recogni[sz]e|identify)\b", re.I),
     re.compile(r"\b(?:signs?|symptoms?|look\w*|feel\w*|felt|see|seen|sees|hear\w*|indicat\w*|shows?|showing|"
                r"appear\w*|suggest\w*|check\w*|test\w*|observ\w*|notic\w*|watch\w*|measur\w*|sound\w*|"
                r"smell\w*|colou?r\w*|pale|bluish|red|redness|swell\w*|pulse|breath\w*|rises?|moves?|"
                r"if\b[^.;]*\bthen)\b", re.I)),
    (re.compile(r"^what (?:are|is) (?:the |some )?(?:\w+ )?(?:types?|kinds?|forms?|classes|categories) of\b", re.I),
     re.compile(r"\b(?:types?|kinds?|forms?|classes|categories|classified|include\w*|such as|either)\b|[:;]|"
                r",[^,]+,", re.I)),
    (re.compile(r"\bdiffer(?:ence|ences|ent from)?\b", re.I),  # a contrast ("both", "the same" state a likeness)
     re.compile(r"\b(?:unlike|whereas|while|but|than|differ\w*|however|rather|instead|only|either|or|compared)\b",
                re.I)),
    # a role: what the thing does or serves for, not what it is or that it exists
    (re.compile(r"^what (?:is|are) (?:the )?(?:main |key |primary )?(?:roles?|functions?|jobs?|tasks?|duty|duties|"
                r"responsibilit(?:y|ies)) of\b", re.I),
     re.compile(r"\b(?:roles?|functions?\w*|responsib\w*|serves?|serving|used (?:to|for)|helps?|helping|allows?|"
                r"enables?|provides?|providing|gives?|protects?|prevents?|improves?|reduces?|supports?|keeps?|"
                r"carr(?:y|ies)|circulat\w*|treat\w*|lifts?|moves?|controls?|ensures?|maintains?)\b", re.I)),
)
_ACTION = re.compile(r"^(?:what (?:should|must|can|could) (?:i|you|we|one|someone|a first aider|first aiders) do|"
                     r"what (?:should|must) be done|what (?:action|steps?) should|what is the (?:best|right|proper) "
                     r"way to)\b", re.IGNORECASE)
_OBLIGES = re.compile(r"\b(?:should|must|need to|needs to|have to|has to|do not|don[’']t|never|always|avoid|"
                      r"you can|try to|"
                      r"is (?:the )?(?:best|important|essential|necessary|recommended)|"
                      r"are (?:the )?(?:best|important|essential|necessary))\b",
                      re.IGNORECASE)
_LEADING_CLAUSE = re.compile(r"^(?:if|when|once|after|before|while|until|unless|in|for|during|to)\b[^,;:]*[,;:]\s*",
                             re.IGNORECASE)
_DEFINES = re.compile(r"^what (?:is|are) (?:an? |the )?(?P<term>[\w -]+)\?$", re.I)
_NOT_DEFINED = re.compile(r"^(?:(?:best|first|next|last|main|most|only|right|correct|proper|usual|recommended|"
                          r"purpose|reason|goal|aim|objective|function|role|cause|effect|result|difference|"
                          r"treatment|way|step|method)\b|.* (?:of|for|to|in|on|with|when|after|before|during) )", re.I)


_CLAUSE_BREAK = re.compile(r"(?<=[.!?;])\s+")  # after a sentence's end or a semicolon
_PROHIBITS = re.compile(r"^(?:do not|don[’']t|never|avoid|no one should)\b|\b(?:should|must|shall) (?:not|never)\b|"
                        r"\b(?:shouldn|mustn)[’']t\b|\b(?:is|are) not to\b", re.IGNORECASE)
_WH = re.compile(r"^(?:what|how|why|when|where|which|who)\b", re.IGNORECASE)
_NEGATES = re.compile(r"\b(?:not|no|never|cannot|avoid\w*|without|nothing|danger\w*|risks?|harm\w*|mistakes?|wrong|"
                      r"prohibit\w*|instead|unsafe)\b|n[’']t\b", re.IGNORECASE)


def drops_prohibition(question: str, answer: str) -> bool:
    """True when the answer forbids an act ("Do not expose the casualty to an open fire", "Your thumb should not be
    used for pulse taking") and a wh-question with no negation or avoidance of its own asks about that act ("What
    should you do if the casualty is in an open fire?", "Why should your thumb be used ...?"): the pair would teach
    the opposite of the text. A yes/no question ("Should you move ...?") is answered by the prohibition, and a
    question about the situation, not the forbidden act ("What should you do if a casualty is unconscious?" for
    "... never give him anything by mouth"), is answered by it too: both pass."""
    if not _WH.match(question) or _NEGATES.search(question):
        return False
    asked = content_stems(question) - _ASKING
    for sentence in _CLAUSE_BREAK.split(answer):
        main = _LEADING_CLAUSE.sub("", sentence.strip())
        forbids = _PROHIBITS.search(main)
        if forbids and asked & content_stems(main[forbids.end():]):
            return True
    return False


_NEGATOR = frozenset("not no never without cannot nor none neither".split())
_STOPS = frozenset("stop stops stopped absent absence lack lacks lacking unable fail fails failed".split())
_CLAUSE_TOKEN = re.compile(r"[a-z0-9]+(?:[’'][a-z]+)?|[,.;:!?()]")
_PUNCTUATION = frozenset(",.;:!?()")


def _negated(token: str) -> bool:
    return token in _NEGATOR or token.endswith(("n't", "n’t"))


def inverts_condition(question: str, answer: str) -> bool:
    """True when the question negates what its answer states without negation: a content word right after the
    question's "not"/"no"/"without" ("... a deformity that is not obvious?") appears in the answer, and nowhere in
    the answer is it negated within its clause ("With the presence of an obvious deformity, do not make ..."): the
    pair would ask about the opposite condition. A word the answer negates itself ("Do not encourage ...", "If a
    tourniquet is not available", "breathing stops") passes, and so does a why-question: "Why shouldn't you drag a
    casualty by the clothes?" asks the reason for a prohibition, which "Dragging by the clothes can tear ..." gives."""
    if _REASON_ASKED.match(question):
        return False
    q = _CLAUSE_TOKEN.findall(question.lower())
    a = _CLAUSE_TOKEN.findall(answer.lower())
    for k, token in enumerate(q):
        if not _negated(token):
            continue
        for target in q[k + 1:k + 4]:
            if not target.isalnum() or target in STOPWORDS or _negated(target):
                continue
            where = [j for j, w in enumerate(a) if stem(w) == stem(target)]
            if where and not any(_negated_in_clause(a, j) for j in where):
                return True
            break
    return False


def _negated_in_clause(tokens: list[str], j: int) -> bool:
    """True when a negator or a verb of stopping stands within four words of ``tokens[j]`` on either side, inside
    its clause (punctuation ends the window)."""
    for step in (-1, 1):
        for k in range(j + step, j + 5 * step, step):
            if not 0 <= k < len(tokens) or tokens[k] in _PUNCTUATION:
                break
            if _negated(tokens[k]) or tokens[k] in _STOPS:
                return True
    return False


def answer_type_problem(question: str, answer: str) -> str | None:
    """``wrong_answer_type`` when the question asks for something the answer cannot give: "How often" with no
    frequency in it, "How long/many/far" with no quantity, "Why"/"What is the purpose" with no reason or purpose,
    "When" with no condition or time, "What are the signs of ..." with no sign in it, "How can you tell if ...?"
    with no sign or test in it, "What are the types of ..."
    with no kinds named or listed, "What is the difference ..." with no contrast, "What is the role of X?" with
    nothing X does or serves for, "What should you do ..." with no
    action in it (``tells_action``), "How do you X?" answered by "X." alone or with only a reason or a condition
    (``asks_way_told``), "What is X?" when the
    answer does not open by saying what X is; ``drops_prohibition`` when the answer forbids what the question asks
    about as if it were to be done (``drops_prohibition``); ``inverts_condition`` when the question negates what the
    answer states (``inverts_condition``); else None.
    "What is the purpose/best way/first step ... of X?" asks about X, not what X is: its own rule judges it."""
    if drops_prohibition(question, answer):
        return "drops_prohibition"
    if inverts_condition(question, answer):
        return "inverts_condition"
    for asks, needs in _ASKS:
        if asks.search(question) and not needs.search(answer):
            return "wrong_answer_type"
    if (_ACTION.search(question) and not tells_action(answer)) or asks_way_told(question, answer):
        return "wrong_answer_type"
    term = _DEFINES.match(question)
    term = term if term and not _NOT_DEFINED.match(term["term"]) else None
    defines = r"(?:(?:is|are) (?:a|an|the|one|any)|refers?|means?)\b"
    if term and not re.match(rf"^(?:an? |the )?{re.escape(term['term'])}s? {defines}", answer,
                             re.I):
        return "wrong_answer_type"
    return None


_ASKS_WAY = re.compile(r"^(?:how (?:do|can|should|could|would|must|will) (?:i|you|we|one|someone)|what is the "
                       r"(?:best|right|proper|correct|recommended) way to|how to) (?P<act>[^?]+)", re.IGNORECASE)
_SOFTENER = re.compile(r"^(?:(?:please|try(?: not)? to|be sure to|make sure to|remember to|always|also|then|"
                       r"first|ideally),? )+", re.IGNORECASE)
# where a first clause's manner ends: a break, a new clause, or a reason or condition (why or when, not how)
_CLAUSE_END = re.compile(r"[,;:.]| (?:and|but|while|so|because|since|if|when|unless|in case) ", re.IGNORECASE)


def asks_way_told(question: str, answer: str) -> bool:
    """True when a question asks how to do an act and its answer only tells to do it ("How can I keep children and
    their caregivers together?" for "Keep children and their caregivers together, and try not to ..."): the answer's
    main clause opens with the question's verb and adds no content word of its own before its first break, and its
    first sentence holds every content word the question asks about. "Listen respectfully, ..." says how; passes."""
    m = _ASKS_WAY.match(question)
    if not m:
        return False
    sentence = _CLAUSE_BREAK.split(answer.strip())[0]
    main = _SOFTENER.sub("", _LEADING_CLAUSE.sub("", sentence))
    first = main.split()[0].lower().strip(",") if main.split() else ""
    act, act_words = content_stems(m["act"]), {stem(w) for w in _WORD.findall(m["act"].lower())}
    if first in STOPWORDS or _PERSON.fullmatch(first) or stem(first) not in act_words:
        return False  # the answer does not open with the act asked about
    own = content_stems(_CLAUSE_END.split(main)[0]) - act - _ASKING  # what its first clause adds: a manner, a means
    return (act - _ASKING) <= content_stems(sentence) and not own


def tells_action(answer: str) -> bool:
    """True when an answer tells someone what to do: a sentence whose main clause (after a leading "If ...," or
    "To ...,") opens with an imperative, or that says what should, must or must not be done."""
    for sentence in re.split(r"(?<=[.!?;:])\s+", answer):
        main = _LEADING_CLAUSE.sub("", sentence.strip())
        first = main.split()[0].lower().strip("\"'(") if main.split() else ""
        if first in IMPERATIVES or first in ("do", "don't", "don’t", "never", "always") or _OBLIGES.search(main):
            return True
    return False


# Words a question may use that its answer need not hold: how questions are asked, not what they ask about.
_ASKING = frozenset(content_stems("""do done doing happen happens occur occurs use used using person people casualty
casualties someone patient victim individual way ways best important importance role purpose reason reasons cause causes
caused symptom symptoms sign signs type types difference different differences kind kinds treat treated treating
treatment prevent prevention help helps need needs take takes recommend recommended effect effects risk risks danger
dangers dangerous first aid aider situation case cases common main key possible potential complications benefit
benefits step steps know identify recognize thing things affect avoid apply give make provide check ensure keep manage
handle respond proper properly correct correctly safe safely long much many often soon quickly time times feel look
see tell mean means typical typically usually normal normally general generally specific certain condition conditions
injury injuries emergency someone's person's encounter encountered notice find found suspect suspected experience
experiencing one ones deal dealing"""))


def adds_context(question: str, answer: str) -> list[str]:
    """The question's content words that its answer does not hold (as a word, a word's start or inside a compound:
    "resuscitate" is held by "resuscitation", "snake" by "snakebite"), less the words questions are asked with
    (``_ASKING``): what the question brings that the answer cannot speak to ("a band of red", "a fish")."""
    held = content_stems(answer)
    pool = word_set(answer) | held
    return [stem for stem in sorted(content_stems(question) - held - _ASKING)
            if not any(w.startswith(stem[:5]) or stem in w for w in pool)]


def restates(question: str, answer: str) -> bool:
    """True when a question holds nearly all of a longer answer's content words: it restates the answer instead of
    asking for it."""
    mine, theirs = content_stems(question), content_stems(answer)
    return len(theirs) >= 6 and len(theirs & mine) >= 0.85 * len(theirs)


def written_question_problem(question: str, answer: str) -> str | None:
    """Why a model-written question cannot go with ``answer``, or None: it does not stand alone
    (``question_problem``), asks what the answer cannot give (``answer_type_problem``), ``restates_unit`` or
    ``adds_context``. ``synth_qa`` applies it to the writer's candidates; the writer's training keeps only pairs that
    pass it (``checked_pairs_only``)."""
    return (question_problem(question, ()) or answer_type_problem(question, answer) or
            ("restates_unit" if restates(question, answer) else None) or
            ("adds_context" if adds_context(question, answer) else None))


def same_question(question: str, earlier: list[str], threshold: float = 0.8) -> bool:
    """True when ``question`` repeats a question already kept for the chunk: the Jaccard similarity of their content
    words (stopwords left out, so "an" and "the" do not tell two questions apart) is at least ``threshold``."""
    content = word_set(question) - STOPWORDS
    return any(len(content & (other := word_set(q) - STOPWORDS)) / max(len(content | other), 1) >= threshold
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
