"""The heuristics stage: one crafted row per drop reason, and real QA sets that must pass untouched."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from curate.quality.heuristics import Heuristics, repeated_ngram_ratio, truncation
from curate.schema import COLUMNS, make_page, make_qa
from curate.stage import DROP, DROP_DETAIL, columns

GOOD_Q = "What should you do if someone is bleeding heavily from a cut on the arm?"
GOOD_A = ("Press firmly on the wound with a clean cloth, keep the pressure on, and raise the arm above the level of "
          "the heart if you can.")


def qa(question: str = GOOD_Q, answer: str = GOOD_A, **meta) -> dict:
    return make_qa(question=question, answer=answer, source="t", license=None, origin="t", locator="0",
                   meta=meta or None)


def verdicts(rows: list[dict], config: dict | None = None) -> list[tuple[str | None, str | None]]:
    out = Heuristics(config)(columns(rows, COLUMNS))
    return list(zip(out[DROP], out[DROP_DETAIL]))


CASES = {
    "empty_answer": qa(answer="   "),
    "truncated": qa(answer="Press firmly on the wound and keep the pressure on while you wait for the"),
    "question_too_short": qa(question="Bleeding?"),
    "answer_too_long": qa(answer="Press firmly on the wound. " * 600),
    "non_english": qa(question="¿Qué debo hacer si alguien sangra mucho por un corte en el brazo?",
                      answer="Presione firmemente la herida con un paño limpio y mantenga la presión constante."),
    "refusal": qa(answer="I'm sorry, but as an AI I cannot give medical advice. Please see a doctor."),
    "meta_phrase": qa(answer="According to the text, you should press firmly on the wound."),
    "banned_word": qa(answer="Press firmly on the wound with a clean cloth and some Lorem tape."),
    "repetitive": qa(answer="Press on the wound. " * 12 + "Then call for help."),
    # written by the embedded 270M abstractively from FM 4-25.11 (benchmarks/curation_value.py): it ran on into the
    # next few-shot block
    "prompt_leak": qa(answer="Check for open fractures by looking for bleeding. Question: What should be checked after "
                             "applying a splint? Answer: {"),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_reason_is_caught(reason):
    (got, detail), (good, _) = verdicts([CASES[reason], qa()], {"banned_words": ["lorem"]})
    assert got == reason, detail
    assert good is None


def test_details_say_what_was_found():
    rows = [CASES["refusal"], CASES["meta_phrase"], CASES["truncated"], CASES["repetitive"]]
    details = dict(verdicts(rows))
    assert details["refusal"].lower() in ("i'm sorry, but", "as an ai")
    assert details["meta_phrase"] == "According to the text"
    assert "dangling word 'the'" in details["truncated"]
    assert float(details["repetitive"]) > 0.3


def test_prompt_scaffolding_in_an_answer_is_a_leak_unless_switched_off():
    leaked = qa(answer="Apply pressure to the wound.<end_of_turn>\n<start_of_turn>user\nWhat next?")
    (reason, detail), = verdicts([leaked])
    assert reason == "prompt_leak" and "<end_of_turn>" in detail
    assert verdicts([leaked], {"prompt_leak": False}) == [(None, None)]
    # the words alone, without a colon, are ordinary text
    assert verdicts([qa(answer="Answer the casualty's questions calmly and ask the question again if needed.")]) == \
        [(None, None)]


def test_truncation_needs_evidence():
    cut = "Keep the casualty warm and monitor breathing until help"
    assert truncation(cut, "length") == "finish_reason=length and no terminal punctuation"
    assert truncation(cut, None) is None                     # many datasets end answers without a full stop
    assert truncation(cut + ".", "length") is None           # the generator stopped at a sentence end
    assert truncation("The deficient enzyme is Arylsulfatase A", None) is None  # a capital A is not "a"
    assert truncation("Steps:", None) == "ends with ':'"
    rows = [qa(answer=cut, finish_reason="length"), qa(answer=cut, finish_reason="stop")]
    assert [r for r, _ in verdicts(rows)] == ["truncated", None]


def test_bounds_in_words_and_chars_are_configurable():
    longer = GOOD_A + " If blood soaks through, add another cloth on top and call the emergency services."
    config = {"answer": {"min_words": 30}, "question": {"max_chars": 80}}
    got = verdicts([qa(), qa(answer=longer), qa(question="Bleeding?", answer=longer)], config)
    assert got[0] == ("answer_too_short", str(len(GOOD_A.split())))
    assert got[1] == (None, None)
    assert got[2] == ("question_too_short", "9")     # the default min_chars stays: bounds merge with defaults
    assert verdicts([qa(question=GOOD_Q * 2)], config)[0] == ("question_too_long", str(2 * len(GOOD_Q)))


def test_quoted_refusal_is_not_a_refusal():
    answer = "The physician should say “I can not help you due to the ethical principle of nonmaleficence.”"
    assert verdicts([qa(answer=answer)])[0][0] is None


def test_repeated_ngram_ratio():
    assert repeated_ngram_ratio("a b c".split(), 3) is None
    looping = ("keep pressing on the wound " * 10).split()
    assert repeated_ngram_ratio(looping, 3) > 0.8
    assert repeated_ngram_ratio(GOOD_A.split() * 1, 1) < 0.3


def test_other_kinds_pass_untouched():
    page = make_page(text="x", doc_id="d", page=1, source="t", license=None, origin="t")
    out = Heuristics()(columns([page], COLUMNS))
    assert out[DROP] == [None] and out["text"] == ["x"]


def test_real_qa_sets_pass(realdata):
    firstaid = json.loads((realdata / "qa/firstaidqa/firstaidqa_v1.json").read_text())
    medqa = [json.loads(line) for line in (realdata / "qa/medqa/medqa_usmle_4opt_test.jsonl").read_text().splitlines()]
    rows = [qa(d["question"], d["answer"]) for d in firstaid]
    rows += [qa(d["question"] + "\n" + "\n".join(f"{k}. {v}" for k, v in d["options"].items()),
                f"{d['answer_idx']}. {d['answer']}") for d in medqa]
    drops = Counter(r for r, _ in verdicts(rows) if r)
    assert len(rows) == 5550 + 1273
    assert sum(drops.values()) == 0, drops
