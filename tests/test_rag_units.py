"""Answerable units and question checks on real FM 4-25.11 and WHO PFA pages (no model)."""

from __future__ import annotations

import pytest

from curate.ingest import read_source
from curate.ingest.base import SourceSpec
from curate.rag.question_checks import holds, pick_units, question_problem, same_question
from curate.rag.templates import template_question
from curate.rag.units import Unit, answerable_units

FM = "pdf/us_army_FM4-25.11_first_aid.pdf"
WHO = "pdf/who_psychological_first_aid_field_workers_2011.pdf"


@pytest.fixture(scope="module")
def fm_pages(realdata):
    spec = SourceSpec(name="fm", kind="pdf", path=realdata / FM, license="public-domain")
    return {r["page"]: r["text"] for r in read_source(spec) if isinstance(r, dict)}


@pytest.fixture(scope="module")
def who_pages(realdata):
    spec = SourceSpec(name="who", kind="pdf", path=realdata / WHO, license="cc-by-nc-sa-3.0-igo")
    return {r["page"]: r["text"] for r in read_source(spec) if isinstance(r, dict)}


def texts(text: str) -> list[str]:
    return [u.text for u in answerable_units(text)[0]]


def test_prose_units_are_sentences_of_the_manual_without_page_furniture(fm_pages):
    units, skipped = answerable_units(fm_pages[48])
    found = [u.text for u in units]
    assert "The tourniquet should not be used unless a pressure dressing has failed to stop the bleeding or an arm " \
           "or leg has been cut off." in found
    assert "Do not use wire or shoestring for a tourniquet band." in found  # "DO NOT" in sentence case
    assert not any("FM 4-25.11" in t or t.startswith(("WARNING", "after a period")) for t in found)
    assert skipped["heading"] >= 1  # WARNING, "a. Improvising a Tourniquet" style lines
    for unit in units:
        assert unit.text[0].isupper() and unit.text.endswith((".", "?", "!", ")"))
        assert 8 <= unit.words <= 110


def test_a_lead_in_and_its_bullets_make_one_list_unit(fm_pages):
    lists = [u.text for u in answerable_units(fm_pages[21])[0] if u.is_list]
    assert "Check for open fractures by looking for: bleeding; bones sticking through the skin; and check for pulse." \
        in lists
    assert any(t.startswith("Check for closed fractures by looking for: swelling; discoloration; deformity") for t in lists)


def test_inline_bullets_of_the_who_guide_become_a_list(who_pages):
    lists = [u for u in answerable_units(who_pages[30])[0] if u.is_list]
    assert lists and all("»" not in u.text for u in answerable_units(who_pages[30])[0])
    assert any("place and feel their feet on the floor" in u.text for u in lists)


def test_contents_pages_give_no_unit(fm_pages):
    for page in (4, 5, 6):
        units, skipped = answerable_units(fm_pages[page])
        assert units == [] and skipped["contents"] >= 15


def test_references_exercises_and_fragments_are_skipped():
    units, skipped = answerable_units(
        "Refer to Chapter 4 for information on splinting a suspected fracture of the arm.\n"
        "Answer the following questions with your group before you go on to the next part.\n\n"
        "the casualty is then placed on the side so the airway stays open and clear\n\n"
        "Keep the casualty warm.")
    assert units == []
    assert skipped == {"reference": 1, "exercise": 1, "fragment": 1, "too_short": 1}


def test_reference_list_entries_and_credit_lines_are_references():
    # FM 4-25.11's references pages and WHO PFA's credits: they name a source and say nothing a question could ask
    units, skipped = answerable_units(
        "AR 310-50. Authorized Abbreviations and Brevity Codes.\n\n"
        "TB MED 81. Cold Injury. NAVMED P-5052-29; AFP 161-11.\n\n"
        "Illustrations by Julie Smith (PD Consulting). Artwork by Adrian Soriano (WVI).\n\n"
        "Use the Heimlich maneuver for a choking adult.")
    assert [u.text for u in units] == ["Use the Heimlich maneuver for a choking adult."]
    assert skipped == {"reference": 3}


def test_pick_units_prefers_lists_and_keeps_reading_order(fm_pages):
    units = answerable_units(fm_pages[21])[0]
    picked = [units[i] for i in pick_units(units, 3)]
    assert len(picked) == 3 and [u.start for u in picked] == sorted(u.start for u in picked)
    assert any(u.is_list for u in picked)


def test_questions_must_stand_alone():
    examples = ("When was the Eiffel Tower completed?",)
    assert question_problem("When should a tourniquet be applied?", examples) is None
    assert question_problem("What does the passage say about tourniquets?", examples) == "mentions_source"
    assert question_problem("According to the manual, when is a tourniquet used?", examples) == "mentions_source"
    assert question_problem("What should be done with it?", examples) == "unresolved_pronoun"
    assert question_problem("Why is this?", examples) == "not_a_question"  # too short
    assert question_problem("Apply a tourniquet above the wound.", examples) == "not_a_question"
    assert question_problem("When was the Eiffel Tower built?", examples) == "copied_example"
    assert same_question("How wide should an improvised tourniquet be?",
                         ["How wide should the improvised tourniquet be?"])
    assert not same_question("How wide should an improvised tourniquet be?", ["When is a tourniquet used?"])


def test_a_list_unit_is_held_by_its_chunk(fm_pages):
    unit = next(u for u in answerable_units(fm_pages[21])[0] if u.is_list)
    assert holds(fm_pages[21], unit.text) and not holds(fm_pages[48], unit.text)


def test_templates_ask_what_the_unit_answers_by_its_form(fm_pages):
    asked = {template_question(u): u.text for u in answerable_units(fm_pages[48])[0]} | \
        {template_question(u): u.text for u in answerable_units(fm_pages[47])[0]}
    assert asked[("What is a tourniquet?", "definition")].startswith("A tourniquet is a constricting band")
    assert asked[("When should the tourniquet be used?", "only_when")].startswith(
        "The tourniquet should not be used unless a pressure dressing has failed")
    conditional = ("What should be done if the pressure dressing under firm hand pressure becomes soaked with blood "
                   "and the wound continues to bleed?", "conditional")
    assert asked[conditional].endswith("apply a tourniquet.")
    assert template_question(Unit("Elevate an injured limb slightly above the level of the heart to reduce the "
                                  "bleeding.", 0)) == ("What should you do to reduce the bleeding?", "purpose")
    assert template_question(Unit("DO NOT put pressure on the eyeball because additional damage may occur.", 0)) == \
        ("Why should you not put pressure on the eyeball?", "prohibition_reason")


def test_templates_refuse_what_would_not_stand_alone():
    # the condition's pronoun has no antecedent in the question; "as if" gives no reason; no subject to define
    assert template_question(Unit("If it is long enough, wrap it around the limb several times.", 0)) is None
    assert template_question(Unit("Don't think and act as if you must solve all the person's problems.", 0)) is None
    assert template_question(Unit("If this is the case, allow him to sit upright, but monitor him.", 0)) is None
    assert template_question(Unit("Where and who are the most distressed people?", 0)) is None


def test_instruction_templates_on_manual_sentences():
    cases = {
        "DO NOT TIE THE KNOT OVER THE WOUND.": ("Should you tie the knot over the wound?", "prohibition"),
        "Hold the dressing directly over the wound with the white side down.":
            ("Where should you hold the dressing?", "where"),
        "Clothing stuck to the wound should be left in place to avoid further injury.":
            ("What should be done with clothing stuck to the wound?", "passive"),
        "The dressing must be loosened if the extremity becomes cool, blue, or numb.":
            ("When must the dressing be loosened?", "passive"),
        "Each thrust should be delivered slowly, distinctly, and with the intent of relieving the obstruction.":
            ("How should each thrust be delivered?", "passive"),
    }
    for text, asked in cases.items():
        assert template_question(Unit(text, 0)) == asked, text
    # a generic object ("the ends") or a quality word as the subject asks nothing a reader could answer
    assert template_question(Unit("Wrap the ends tightly around the injured limb, covering the dressing.", 0)) is None
    assert template_question(Unit("Prompt first aid measures should be initiated for casualties.", 0)) is None


def test_an_item_cut_by_the_chunk_end_is_a_fragment():
    units, skipped = answerable_units("(1) Hold the dressing directly over the wound with the white side down.\n"
                                      "(2) Use the other hand to wrap one of the tails around the injured part, "
                                      "covering about one-half of")
    assert [u.text for u in units] == ["Hold the dressing directly over the wound with the white side down."]
    assert skipped["fragment"] == 1
