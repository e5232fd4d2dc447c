"""Questions read off the form of an answerable unit, for the sentence shapes instructions are written in.

``template_question(unit)`` consumes a ``curate.rag.units.Unit`` and returns ``(question, template name)`` or None.
Each template rewrites a shape whose answer is, by construction, the unit itself:

- ``conditional``: "If the dressing becomes soaked with blood, apply a tourniquet." -> "What should be done if the
  dressing becomes soaked with blood?" (``if``/``when``/``once``/``after``/``before``/``whenever``, with an
  imperative or a should/must main clause);
- ``definition``: "A tourniquet is a constricting band ..." -> "What is a tourniquet?" (not for a person, "The
  patient is a child ...", nor when no class follows: "The road is a busy one", "is the most common cause");
- ``prohibition_reason``: "DO NOT put pressure on the eyeball because additional damage may occur." -> "Why should
  you not put pressure on the eyeball?";
- ``only_when``: "The tourniquet should not be used unless ..." -> "When should the tourniquet be used?";
- ``procedure``: a list whose lead-in is "Immobilize any casualty ... by doing the following", "Check for open
  fractures by looking for" or "To apply chest thrusts: ..." -> "How do you immobilize any casualty ...?" / "How do
  you check for open fractures?" / "How do you apply chest thrusts?";
- ``list_of``: "The signs of shock include: ..." -> "What are the signs of shock?";
- ``purpose``: "To minimize skin damage, ensure that the improvised tourniquet is at least 2 inches wide." / "Elevate
  an injured limb slightly above the level of the heart to reduce the bleeding." -> "What should you do to minimize
  skin damage?" / "... to reduce the bleeding?" (purposes such as reduce, prevent, control, relieve, protect; not
  the complement of a verb: "attempt to control the bleeding");
- ``causes``: "Heat cramps are caused by ..." -> "What causes heat cramps?";
- ``present_passive``: "The dressing is applied lightly over the burn." -> "How is the dressing applied?";
- ``passive``: "Clothing stuck to the wound should be left in place to avoid further injury." -> "What should be done
  with clothing stuck to the wound?" ("How ... be checked?" when a manner follows, "When ...?" for a condition);
- ``prohibition``: "DO NOT touch the wound; keep it as clean as possible." -> "Should you touch the wound?" ("Do not
  stop CPR unless ..." -> "When should you stop CPR?"); the whole act with its qualifiers ("Do not move the
  casualty if you suspect he has sustained a neck, back or head injury." is asked whole), or no question;
- ``where``: "Hold the dressing directly over the wound with the white side down." -> "Where should you hold the
  dressing?" (a location must follow: not "Fold the two bandages into a single extended bandage.").

A template is not used when the words it would copy into the question hold a word with no antecedent there ("it",
"this", "such", "the above", "his" with no person named before it), since the question must make sense on its own.
Abbreviations ("e.g.", "etc.") end no clause a template reads.
"""

from __future__ import annotations

import re

from curate.rag.units import IMPERATIVES, Unit, mask, unmask

_PERSON_PRONOUN = re.compile(r"\b(?:he|him|his|she|her|they|them|their)\b", re.IGNORECASE)
_PERSON = re.compile(r"\b(?:casualty|casualties|person|people|patient|victim|child|children|someone|individual|"
                     r"service members?|soldier|survivor|adult|baby|infant|woman|man)\b", re.IGNORECASE)
_CONDITIONAL = re.compile(r"^(?P<conj>If|When|Whenever|Once|After|Before) (?P<cond>[^,;:]{10,160}), (?:then )?"
                          r"(?P<main>.+)$")
_DEFINITION = re.compile(r"^(?P<det>An?|The) (?P<term>[a-z][a-z-]*(?: [a-z][a-z-]*){0,3}) (?P<verb>is|are) "
                         r"(?P<class>(?:a|an|the|any) [\w’' -]+)")
_NOT_A_CLASS = re.compile(r"^\w+ (?:(?:\w+ ){0,2}one\b|(?:single )?most\b|\w+est\b|best\b|"
                          r"(?:method|way|thing|time|place|reason|result|key|same)\b)")  # "is a busy one", "the most"
_PROHIBITION = re.compile(r"^(?:DO NOT|Do not|Don’t|Don't|Never) (?P<act>[^.;]{8,120}?),? "
                          r"(?:because|since|as (?!if\b)) ")
_ONLY_WHEN = re.compile(r"^(?P<subj>(?:The|A|An) [a-z][\w -]{2,40}?) (?P<modal>should|must) not be "
                        r"(?P<verb>\w+) unless ")
_PROCEDURE = re.compile(r"^(?P<verb>[A-Z][a-z]+) (?P<obj>[^:;]{5,140}?) by (?:doing the following|looking for|"
                        r"checking for|following these steps)\b")
_STEPS_FOR = re.compile(r"^To (?P<verb>[a-z]+) (?P<obj>[^:;,]{5,120}): ")
_PRESENT_PASSIVE = re.compile(r"^(?P<subj>The [a-z][\w -]{2,40}?) (?P<be>is|are) (?P<verb>performed|applied|placed|"
                              r"done|used|given|treated|positioned|held|tied|secured|made|removed|checked|cleaned|"
                              r"covered|wrapped|kept|carried|moved|tested|measured) (?P<rest>[^.;]{3,})")
_LIST_OF = re.compile(r"^(?:The |Some )?(?P<noun>signs|symptoms|causes|types|effects|steps|principles|goals|needs|"
                      r"dangers|complications|rules) of (?P<what>[^:;]{3,80}?) (?:include|are)\b", re.IGNORECASE)
_NOT_A_TERM = frozenset("first next last same following other only best main most key latter former above".split())
_PASSIVE = re.compile(r"^(?P<subj>(?:The |A |An |All |Each |Every )?[A-Za-z][\w’' -]{2,50}?) "
                      r"(?P<modal>should|must) be "
                      r"(?P<verb>[a-z]+(?:ed|en)|kept|put|left|held|made|done|set|cut|laid|applied) "
                      r"(?P<rest>[^.;]{3,})")


def _unresolved(text: str) -> bool:
    """True when ``text`` holds a word with no antecedent in it: "it", "this", "such" (not "such as"), "the above",
    "the latter/former", ..., or "he"/"his"/"they" without a person ("the casualty", "someone") named before it."""
    if re.search(r"\b(?:it|its|this|these|those|such(?! as\b)|the (?:above|latter|former))\b", text, re.IGNORECASE):
        return True
    pronoun = _PERSON_PRONOUN.search(text)
    return bool(pronoun) and not _PERSON.search(text[:pronoun.start()])


def _clean_clause(text: str) -> str:
    return " ".join(text.split()).rstrip(" ,;:")


def _lower_first(text: str) -> str:
    """The text with its first letter lower-cased, unless its first word is an acronym ("MTF", "CPR")."""
    first = text.split()[0] if text.split() else ""
    return text if len(first) > 1 and first.isupper() else text[:1].lower() + text[1:]


def _conditional(text: str) -> str | None:
    m = _CONDITIONAL.match(text)
    if not m:
        return None
    main = m["main"]
    first = main.split()[0].lower().strip(",")
    if first not in IMPERATIVES and not re.match(r"^[\w ’'-]{2,60}? (?:should|must) ", main):
        return None
    cond = _clean_clause(m["cond"])
    if _unresolved(cond) or len(cond.split()) < 3:
        return None
    return f"What should be done {m['conj'].lower()} {cond}?"


def _definition(text: str) -> str | None:
    """A term defined by a class ("A tourniquet is a constricting band ..."): not a person ("The patient is a child"),
    a determiner ("The other is a ..."), a word with no antecedent, nor a class that is none ("is a busy one", "is the
    method to use")."""
    m = _DEFINITION.match(text)
    if not m or m["term"].split()[0] in _NOT_A_TERM or _PERSON.fullmatch(m["term"].split()[-1]) or \
            _unresolved(m["term"]) or _NOT_A_CLASS.match(m["class"]):
        return None
    return f"What {m['verb']} {m['det'].lower()} {m['term']}?"


def _prohibition(text: str) -> str | None:
    m = _PROHIBITION.match(text)
    if not m or _unresolved(m["act"]):
        return None
    return f"Why should you not {_lower_first(_clean_clause(m['act']))}?"


_DONT = re.compile(r"^(?:DO NOT|Do not|Don’t|Don't|Never) (?P<act>.{8,}?)(?:[.;:!?](?:\s|$)|\s*[—–]|"
                   r",? (?:but|because|nor)\b|, (?:as|since|so|instead|otherwise)\b|$)")
_NEXT_CLAUSE = re.compile(rf"(?:,? (?:and|or) (?:if|when|then)\b|, (?:(?:and|or|then) )?(?:do not|don’t|don't|never|"
                          rf"then|{'|'.join(sorted(IMPERATIVES))})\b).*$", re.IGNORECASE)  # ", and keep him warm"
_LOCATIONS = frozenset("over on onto around under above below beneath behind between beside into inside against across "
                       "at along through".split())
MAX_ACT_WORDS = 24  # a longer act makes a question past question_problem's 30 words
_WHERE = re.compile(r"^(?P<verb>[A-Z][a-z]+) (?P<obj>(?:the|a|an|any) [a-z][\w’' -]{2,40}?)(?: \([^)]*\))?"
                    r"(?: directly| tightly| firmly| gently| loosely| securely| carefully| down| up)? "
                    rf"(?P<prep>{'|'.join(sorted(_LOCATIONS))}) (?P<place>[\w’' -]+)")
_PLACE_DETERMINERS = frozenset("the his her their its each both either your one".split())
_NOT_PLACES = frozenset("same time moment rate speed level end beginning once".split())
_ANOTHER_ACT = re.compile(rf"\b(?:by|(?:and|to) (?:{'|'.join(sorted(IMPERATIVES))}))\b")  # "the wrist and raise ..."
_CONJUNCTIONS = frozenset("there you we if when once after before unless".split())  # no subject of a passive
_QUALITIES = frozenset("prompt early proper immediate appropriate initial further additional basic general "
                       "special particular".split())
_GENERIC_OBJECTS = frozenset("end ends tail tails piece pieces part parts side sides other item items object objects "
                             "thing things stick strip strips one".split())


def _dont(text: str) -> str | None:
    """The whole prohibited act, with its qualifiers ("Do not move the casualty if you suspect he has sustained a
    neck, back or head injury."), up to the clause that follows it (", but ...", ", and keep ...", "because ...",
    "—you might ..."); no question when it is too long to ask."""
    m = _DONT.match(text)
    act = _NEXT_CLAUSE.sub("", m["act"]) if m else ""
    if not act or _unresolved(act) or act.split()[0].lower() not in IMPERATIVES | {"be", "attempt"}:
        return None
    act = act.lower() if act.isupper() else _lower_first(act)
    act, unless, _ = act.partition(" unless ")
    if not (2 if unless else 3) <= len(act.split()) <= MAX_ACT_WORDS:
        return None  # "Do not apply ice": to what? the question would not stand alone
    return f"When should you {act}?" if unless else f"Should you {act}?"


def _where(text: str) -> str | None:
    """Where to put a thing: the object, then a location ("over the wound", "under the casualty’s neck"), not a
    result ("into a single extended bandage") nor a time ("at the same time"); not when the object holds another act
    ("the wrist and raise his arm")."""
    m = _WHERE.match(text)
    if not m or m["verb"].lower() not in IMPERATIVES or _unresolved(m["obj"]):
        return None
    place, words = m["place"].split(), m["obj"].lower().split()[1:]
    if set(place[:2]) & _NOT_PLACES or place[0].endswith("ly") or \
            m["prep"] == "into" and place[0] not in _PLACE_DETERMINERS:
        return None  # "at the same time", "into a single extended bandage"
    if not {w for w in words if len(w) > 3} - _GENERIC_OBJECTS or _ANOTHER_ACT.search(m["obj"]):
        return None
    return f"Where should you {m['verb'].lower()} {m['obj']}?"


def _only_when(text: str) -> str | None:
    m = _ONLY_WHEN.match(text)
    return f"When {m['modal']} {_lower_first(m['subj'])} be {m['verb']}?" if m else None


_PURPOSE_VERBS = r"(?:reduce|prevent|control|stop|relieve|protect|minimi[sz]e|avoid|maintain|open|clear|restore|" \
                 r"improve|slow|limit|lessen|decrease|increase|keep|support|check|treat|remove|secure|calm|comfort)"
_PURPOSE_FIRST = re.compile(rf"^To (?P<goal>{_PURPOSE_VERBS} [^,;]{{3,80}}), (?P<main>.+)$")
_PURPOSE_LAST = re.compile(rf"^(?P<verb>[A-Z][a-z]+) [^;:.]{{5,160}}? (?P<before>\w+) (?:in order )?to "
                           rf"(?P<goal>{_PURPOSE_VERBS} [^,.;]{{3,60}})\.$")
_COMPLEMENT = re.compile(r"(?:attempt|try|tri|need|continue|begin|began|start|remember|fail|want|have|has|had|how|"
                         r"able|unable|sure|going|ought|used|allowed|likely)(?:s|es|ed|d|ing)?")  # "attempt to control"
_CAUSES = re.compile(r"^(?P<what>(?:The |A |An )?[A-Za-z][\w -]{2,40}?) (?:is|are) (?:usually |often |mostly )?"
                     r"caused by ")


def _purpose(text: str) -> str | None:
    m = _PURPOSE_FIRST.match(text)
    if m and m["main"].split()[0].lower() in IMPERATIVES and not _unresolved(m["goal"]):
        return f"What should you do to {_clean_clause(m['goal'])}?"
    m = _PURPOSE_LAST.match(text)
    if m and m["verb"].lower() in IMPERATIVES and not _unresolved(m["goal"]) and "(" not in text and \
            not _COMPLEMENT.fullmatch(m["before"].lower()):
        return f"What should you do to {_clean_clause(m['goal'])}?"
    return None


def _causes(text: str) -> str | None:
    m = _CAUSES.match(text)
    if not m or _unresolved(m["what"]) or m["what"].split()[0].lower() in _NOT_A_TERM:
        return None
    return f"What causes {_lower_first(m['what'])}?"


def _passive(text: str) -> str | None:
    m = _PASSIVE.match(text)
    if not m or _unresolved(m["subj"]) or m["subj"].split()[0].lower() in _NOT_A_TERM | _CONJUNCTIONS:
        return None
    if m["subj"].split()[0].lower() in _QUALITIES:
        return None  # "Prompt first aid measures should be initiated ...": no thing to do something with
    subject, first = _lower_first(m["subj"]), m["rest"].split()[0].strip(",;")
    if first in ("if", "when", "before", "after", "until", "unless", "once"):
        return f"When {m['modal']} {subject} be {m['verb']}?"
    if first.endswith("ly") or first in ("with", "using", "by"):
        return f"How {m['modal']} {subject} be {m['verb']}?"
    return f"What should be done with {subject}?"


def _present_passive(text: str) -> str | None:
    m = _PRESENT_PASSIVE.match(text)
    if not m or _unresolved(m["subj"]) or m["rest"].startswith(("to ", "by ", "only ")):
        return None
    how = "When" if m["rest"].split()[0] in ("if", "when", "before", "after", "until", "unless", "once") else "How"
    return f"{how} {m['be']} {_lower_first(m['subj'])} {m['verb']}?"


def _procedure(text: str) -> str | None:
    m = _PROCEDURE.match(text)
    if m and m["verb"].lower() in IMPERATIVES and not _unresolved(m["obj"]):
        return f"How do you {m['verb'].lower()} {_clean_clause(m['obj'])}?"
    m = _STEPS_FOR.match(text)
    if m and m["verb"].lower() in IMPERATIVES and not _unresolved(m["obj"]):
        return f"How do you {m['verb'].lower()} {_clean_clause(m['obj'])}?"
    return None


def _list_of(text: str) -> str | None:
    m = _LIST_OF.match(text)
    if not m or _unresolved(m["what"]):
        return None
    return f"What are the {m['noun'].lower()} of {_clean_clause(m['what'])}?"


TEMPLATES = (("conditional", _conditional), ("prohibition_reason", _prohibition), ("only_when", _only_when),
             ("procedure", _procedure), ("list_of", _list_of), ("definition", _definition), ("passive", _passive),
             ("present_passive", _present_passive), ("purpose", _purpose), ("causes", _causes),
             ("prohibition", _dont), ("where", _where))


def template_question(unit: Unit) -> tuple[str, str] | None:
    """The question the unit's first sentence (or list lead-in) answers by its form, and the template's name."""
    text = mask(unit.text)
    for name, make in TEMPLATES:
        question = make(text)
        if question:
            return unmask(question), name
    return None
