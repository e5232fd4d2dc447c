"""The grounding stage against a real FM 4-25.11 page on rescue breathing and the pulse check.

The page (extracted with pypdf, found by its content) says: after two breaths, feel for the carotid pulse for 5 to
10 seconds; if a pulse is found and the casualty is not breathing, continue rescue breathing; if no pulse is found,
seek medically trained personnel. It never says to give CPR to a casualty with a pulse.
"""

from __future__ import annotations

import json

import pypdf
import pytest

from curate.quality.grounding import (Grounding, lexical_support, numbers, polarity_clash,
                                      unsupported_numbers)
from curate.schema import COLUMNS, make_page, make_qa
from curate.stage import DROP, DROP_DETAIL, columns

FM = "pdf/us_army_FM4-25.11_first_aid.pdf"
QUESTION = "What should you do after giving two rescue breaths to a casualty?"

CPR_WITH_PULSE = "Give CPR to a casualty who has a pulse."
CPR_WITH_PULSE_2 = "If the casualty has a pulse, start CPR immediately."
FAITHFUL = ("After the two breaths, check the carotid pulse on the side of the neck with your index and middle "
            "fingers, taking 5 to 10 seconds. If there is a pulse but the casualty is not breathing, keep giving "
            "rescue breaths.")
FAITHFUL_NEGATIVE = "If you cannot find a pulse, get medically trained help as soon as possible."
FAITHFUL_DROPPED_NEGATION = ("Use the mouth-to-nose method when the casualty has a severe jaw fracture or mouth "
                             "wound: blow into the nose while holding the lips closed.")
WRONG_NUMBER = "Feel for the carotid pulse for 30 seconds before you decide."
WRONG_DOSE = "Check the pulse, then give 300 mg of aspirin."
OFF_TOPIC = "Apply a tourniquet above the wound and tighten it until the bleeding stops."


@pytest.fixture(scope="module")
def page(realdata) -> str:
    reader = pypdf.PdfReader(realdata / FM)
    texts = [p.extract_text() or "" for p in reader.pages]
    found = [t for t in texts if "continue rescue breathing" in t and "If a pulse is not found" in t]
    assert len(found) == 1, "the FM 4-25.11 page on the pulse check was not found"
    return found[0]


def qa_row(answer: str, context: str | None) -> dict:
    row = make_qa(question=QUESTION, answer=answer, source="synth", license=None, origin="t", locator=answer[:20])
    row["context"] = context
    return row


def judge(answers: list[str], context: str, config: dict | None = None) -> list[tuple[str | None, dict]]:
    out = Grounding(config)(columns([qa_row(a, context) for a in answers], list(COLUMNS) + ["context"]))
    return [(r, json.loads(d) if d else {"lexical": lex, "semantic": sem})
            for r, d, lex, sem in zip(out[DROP], out[DROP_DETAIL], out["grounding_lexical"],
                                      out["grounding_semantic"])]


@pytest.fixture(scope="module")
def verdicts(page) -> dict[str, tuple[str | None, dict]]:
    answers = [CPR_WITH_PULSE, CPR_WITH_PULSE_2, FAITHFUL, FAITHFUL_NEGATIVE, FAITHFUL_DROPPED_NEGATION,
               WRONG_NUMBER, WRONG_DOSE, OFF_TOPIC]
    return dict(zip(answers, judge(answers, page)))


def test_cpr_on_a_casualty_with_a_pulse_is_dropped(verdicts):
    for answer in (CPR_WITH_PULSE, CPR_WITH_PULSE_2):
        reason, detail = verdicts[answer]
        assert reason == "contradicts_context", (answer, detail)
        assert "not breathing" in detail["context_sentence"] or "not found" in detail["context_sentence"]
    # lexical overlap alone would have let the first one through: the negation check is what catches it
    assert verdicts[CPR_WITH_PULSE][1]["lexical"] >= 0.6


def test_faithful_paraphrases_are_kept_with_their_scores(verdicts):
    for answer in (FAITHFUL, FAITHFUL_NEGATIVE, FAITHFUL_DROPPED_NEGATION):
        reason, scores = verdicts[answer]
        assert reason is None, (answer, scores)
        assert scores["lexical"] >= 0.6 and scores["semantic"] >= 0.45


def test_numbers_not_in_the_context_are_dropped(verdicts):
    assert verdicts[WRONG_NUMBER][0] == "unsupported_number" and verdicts[WRONG_NUMBER][1]["numbers"] == ["30"]
    assert verdicts[WRONG_DOSE][0] == "unsupported_number" and "300 mg" in verdicts[WRONG_DOSE][1]["numbers"]


def test_an_answer_about_something_else_is_dropped(verdicts):
    reason, detail = verdicts[OFF_TOPIC]
    assert reason in ("ungrounded_lexical", "ungrounded_semantic")
    assert detail["lexical"] < 0.6 and detail["semantic"] < 0.45


def test_without_the_negation_check_the_cpr_answer_would_pass(page):
    (reason, detail), = judge([CPR_WITH_PULSE], page, {"negation": False})
    assert reason is None and detail["semantic"] >= 0.45


def test_one_invented_sentence_is_caught(page):
    invented = "Then hand the casualty a glass of orange juice and an aspirin tablet."
    (reason, detail), = judge([f"{FAITHFUL} {invented}"], page)
    assert reason == "ungrounded_lexical" and detail["sentence"] == invented, detail
    assert detail["lexical"] >= 0.6                     # the answer as a whole looks supported
    (_, by_mean), = judge([f"{FAITHFUL} {invented}"], page, {"reduce": "mean", "min_sentence_lexical": 0})
    assert detail["semantic"] < by_mean["semantic"]     # min over sentences is the stricter score


def test_rows_without_context_or_conversation_pass_and_are_counted(page):
    stage = Grounding({"semantic": False, "negation": False})
    rows = [qa_row(CPR_WITH_PULSE, None), qa_row(CPR_WITH_PULSE, "  "),
            {**make_page(text=page, doc_id="fm", page=31, source="fm", license=None, origin="t"), "context": None}]
    out = stage(columns(rows, list(COLUMNS) + ["context"]))
    assert out[DROP] == [None, None, None] and out["grounding_lexical"] == [None, None, None]
    assert stage.counters == {"no_context": 2, "not_conversation": 1}
    out = stage(columns(rows[:1], COLUMNS))            # a batch with no context column at all
    assert out[DROP] == [None] and stage.counters["no_context"] == 3


def test_polarity_clash():
    context = "Do not start CPR if the casualty has a pulse."
    assert polarity_clash("Give CPR to a casualty who has a pulse.", context)
    assert not polarity_clash("Never give CPR to a casualty with a pulse.", context)
    assert not polarity_clash("Start CPR only if the casualty has no pulse.", context)
    assert not polarity_clash("Do not move the casualty unless there is danger.",
                              "Move the casualty only if there is immediate danger.")
    assert polarity_clash("Remove the tourniquet after a while.", "Once applied, do not loosen or remove the "
                                                                  "tourniquet.")


def test_numbers_and_lexical_support():
    assert numbers("Depress 1 1/2 to 2 inches, 30:2, two breaths, 5% dextrose, 100 mg, 1,000 ml") == {
        (1.5, None), (2.0, None), (30.0, None), (5.0, "%"), (100.0, "mg"), (1000.0, "ml")}
    assert unsupported_numbers("Give two breaths of 1.5 seconds.", "Blow two full breaths (1 to 1 1/2 seconds).") \
        == []
    assert unsupported_numbers("Give 100 mg.", "Give 100 ml.") == ["100 mg"]
    assert unsupported_numbers("Check for COVID-19 and vitamin B12.", "Nothing numeric.") == []
    assert lexical_support("Continue giving rescue breaths.", "Continue rescue breathing; he gives breaths.") == 1.0
    assert lexical_support("Start CPR.", "Continue rescue breathing.") == 0.0
