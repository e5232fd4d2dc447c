"""The decontaminate stage: real MedQA test questions planted in a FirstAidQA training set must be removed."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from curate.pipeline import plan_stage_entries
from curate.quality.decontaminate import Decontaminate
from curate.quality.text import normalise
from curate.schema import COLUMNS, make_qa
from curate.stage import DROP, DROP_DETAIL, columns

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
MEDQA = "qa/medqa/medqa_usmle_4opt_test.jsonl"
EVAL40 = "qa/firstaidqa/eval_questions_40.json"


def qa(question: str, answer: str, source: str = "train") -> dict:
    return make_qa(question=question, answer=answer, source=source, license=None, origin="t", locator="0")


def as_training_row(item: dict, rng: random.Random) -> dict:
    """A MedQA item as a Hub copy would carry it: options under the question, sometimes reworded a little."""
    question = item["question"]
    if rng.random() < 0.5:
        tokens = question.split()
        tokens[rng.randrange(len(tokens))] = "patient"
        question = "Consider the following case. " + " ".join(tokens)
    options = "\n".join(f"{k}. {v}" for k, v in item["options"].items())
    return qa(f"{question}\n{options}", f"{item['answer_idx']}. {item['answer']}", source="medqa-copy")


def run(config: dict, rows: list[dict]) -> tuple[list, list]:
    out = Decontaminate(config)(columns(rows, COLUMNS))
    return out[DROP], out[DROP_DETAIL]


@pytest.fixture(scope="module")
def training(realdata):
    firstaid = [qa(d["question"], d["answer"]) for d in json.loads((realdata / FIRSTAID).read_text())]
    medqa = [json.loads(line) for line in (realdata / MEDQA).read_text().splitlines()]
    rng = random.Random(3)
    positions = rng.sample(range(len(firstaid)), 60)
    planted = {at: as_training_row(item, rng) for at, item in zip(positions, rng.sample(medqa, 60))}
    rows = list(firstaid)
    for at in sorted(planted, reverse=True):
        rows.insert(at, planted[at])
    return rows


def test_planted_eval_questions_are_removed_and_the_rest_kept(training, realdata):
    config = {"eval_sets": [{"name": "medqa-test", "path": str(realdata / MEDQA)}]}
    reasons, details = run(config, training)
    planted = [i for i, r in enumerate(training) if r["source"] == "medqa-copy"]
    assert len(planted) == 60
    assert all(reasons[i] == "contaminated" for i in planted)
    assert sum(bool(r) for r in reasons) == 60                    # no FirstAidQA row is touched
    for i in planted:
        detail = json.loads(details[i])
        assert detail["eval_set"] == "medqa-test"
        assert len(detail["ngram"].split()) == 13
        assert detail["ngram"] in normalise(training[i]["messages"][0]["content"])


def test_eval_set_read_through_a_connector(training, realdata):
    """A ``source:`` eval set is resolved by the pipeline (``plan_stage_entries``), then read by its connector."""
    config = {"eval_sets": [{"source": "hf_qa", "name": "medqa-hf", "path": str(realdata / MEDQA),
                             "mapping": {"question": "question", "answer": "answer"}}]}
    (step,), problems = plan_stage_entries([{"stage": "decontaminate", **config}], start=1)
    assert problems == []
    out = step.stage(columns(training, COLUMNS))
    reasons, details = out[DROP], out[DROP_DETAIL]
    assert sum(bool(r) for r in reasons) == 60
    assert {json.loads(d)["eval_set"] for d in details if d} == {"medqa-hf"}
    with pytest.raises(ValueError, match="no pipeline resolved"):  # the stage never reads the catalog itself
        run(config, training[:1])


def test_an_unknown_eval_source_fails_when_planned():
    _, problems = plan_stage_entries([{"stage": "decontaminate", "eval_sets": [{"source": "no-such-set"}]}], start=1)
    assert len(problems) == 1 and "'no-such-set' is neither a catalog source nor a connector kind" in problems[0]


def test_short_eval_questions_and_near_duplicates(realdata):
    bank = json.loads((realdata / EVAL40).read_text())["questions"]
    short = next(q["question"] for q in bank if 8 <= len(q["question"].split()) < 13)
    long = next(q["question"] for q in bank if len(q["question"].split()) >= 16)
    reworded = long.replace("?", "").replace(long.split()[-1], "exactly", 1)
    rows = [qa(f"Quick question: {short}", "An answer."),            # a short eval question inside a training one
            qa(reworded, "An answer."),                               # a lightly edited long eval question
            qa("How should I cool a burn?", "Under cool running water for twenty minutes.")]
    config = {"eval_sets": [{"name": "fa40", "path": str(realdata / EVAL40), "records": "questions",
                             "fields": ["question", "reference"]}]}
    reasons, details = run(config, rows)
    assert reasons == ["contaminated", "contaminated", None], details
    assert json.loads(details[0])["ngram"] == normalise(short)
    near_only = {**config, "ngram": 64, "min_words": 64}
    reasons, details = run(near_only, rows)
    assert reasons[1:] == ["contaminated", None] and json.loads(details[1])["jaccard"] >= 0.7


def test_config_is_validated(tmp_path):
    with pytest.raises(ValidationError):
        Decontaminate({"eval_sets": []})
    with pytest.raises(ValidationError):
        Decontaminate({"eval_sets": [{"name": "x"}]})
    stage = Decontaminate({"eval_sets": [{"path": str(tmp_path / "missing.jsonl")}]})
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        stage(columns([qa("q", "a")], COLUMNS))
