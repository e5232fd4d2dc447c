"""The LLM judge with the real embedded Gemma: scores parsed and stored, malformed replies retried then unscored."""

from __future__ import annotations

import json

import pytest

from curate.quality.judge import CRITERIA, Judge, parse_scores
from curate.schema import make_qa
from curate.stage import DROP, DROP_DETAIL, columns, rows

CONTEXT = ("Do not start CPR on a casualty who is breathing normally; place them in the recovery position instead. "
           "Cool a burn under cool running water for 20 minutes.")


def qa(question: str, answer: str) -> dict:
    row = make_qa(question=question, answer=answer, source="t", license="apache-2.0", origin="test", locator="0")
    return {**row, "context": CONTEXT}


@pytest.fixture(scope="module")
def batch():
    items = [qa("How long should a burn be cooled?", "Cool it under cool running water for 20 minutes."),
             qa("Should I give CPR to a casualty who is breathing normally?",
                "Yes, always start CPR on anyone who is breathing normally.")]
    page = make_qa(question="x?", answer="y", source="t", license=None, origin="o", locator="1")
    page.update(kind="page", messages=None, text="A page of text.", context=None)
    return columns(items + [page], list(items[0]))


def test_real_judge_scores_every_qa_row(batch):
    judge = Judge({"min_score": 1, "min_safety": 1})
    out = rows(judge(batch))
    for row in out[:2]:
        assert set(row["judge_scores"]) == set(CRITERIA)
        assert all(1 <= v <= 5 for v in row["judge_scores"].values())
        assert row["judge_score"] == pytest.approx(sum(row["judge_scores"].values()) / 5)
        assert row[DROP] is None  # thresholds at their minimum: nothing is dropped
    assert out[2]["judge_scores"] is None and out[2][DROP] is None  # a page is not judged
    assert judge.counters["tokens_generated"] > 0


@pytest.mark.xfail(strict=True, reason="measured: the embedded Gemma 3 270M (a base model) grades every pair 1 on "
                                       "every criterion, so it cannot tell the unsafe answer from the safe one; "
                                       "with the default min_safety 4 it drops every row as judge_unsafe")
def test_real_judge_scores_the_unsafe_answer_below_the_safe_one(batch):
    """The batch's second answer contradicts its context (CPR on a casualty who breathes normally)."""
    safe, unsafe, _ = rows(Judge({"min_score": 1, "min_safety": 1})(batch))
    assert unsafe["judge_scores"]["safety"] < safe["judge_scores"]["safety"]
    assert unsafe["judge_score"] < safe["judge_score"]
    kept = rows(Judge({})(batch))  # the default thresholds keep the safe answer and drop the unsafe one
    assert [r[DROP] for r in kept[:2]] == [None, "judge_unsafe"]


def test_truncated_judge_replies_are_retried_then_unscored(batch):
    # 3 tokens cannot hold the five scores: the real model's reply is cut off, every attempt.
    judge = Judge({"max_tokens": 3, "max_retries": 1})
    out = rows(judge(batch))
    assert [r[DROP] for r in out] == ["judge_unscored", "judge_unscored", None]
    assert all(r["judge_scores"] is None and r[DROP_DETAIL] for r in out[:2])  # raw reply kept, never scored
    assert judge.counters["unscored"] == 2
    kept = rows(Judge({"max_tokens": 3, "max_retries": 0, "on_unscored": "keep"})(batch))
    assert [r[DROP] for r in kept] == [None, None, None] and kept[0]["judge_score"] is None


def test_thresholds_drop_by_reason(batch):
    out = rows(Judge({"min_score": 5, "min_safety": 5})(batch))
    for row in out[:2]:
        s = row["judge_scores"]
        expected = "judge_unsafe" if s["safety"] < 5 else "judge_low_score" if row["judge_score"] < 5 else None
        assert row[DROP] == expected
        assert expected is None or json.loads(row[DROP_DETAIL]) == s


def test_parse_scores_accepts_only_five_integer_grades():
    good = {c: 5 for c in CRITERIA}
    assert parse_scores(json.dumps(good)) == good
    assert parse_scores(json.dumps({**good, "safety": 6})) is None
    assert parse_scores(json.dumps({**good, "safety": True})) is None
    assert parse_scores('{"faithfulness": 5}') is None and parse_scores("5/5") is None


@pytest.mark.slow
def test_judge_on_transformers_is_constrained_to_the_schema(batch):
    """The same GGUF on transformers: xgrammar holds the reply to the schema, so every pair is scored."""
    stage = Judge({"llm": {"backend": "transformers", "device": "cpu", "batch_size": 4}, "max_retries": 0})
    subset = {k: v[:3] for k, v in batch.items()}
    out = rows(stage(subset))
    assert stage.counters["unscored"] == 0 and len(out) == 3 and out[2]["judge_scores"] is None  # the page row
    for row in out[:2]:
        assert set(row["judge_scores"]) == set(CRITERIA) and all(1 <= v <= 5 for v in row["judge_scores"].values())


def test_parse_scores_reads_an_unconstrained_reply():
    """A backend without a grammar may run on after the object, or start with a list marker."""
    good = {c: 4 for c in CRITERIA}
    few_shot_run_on = json.dumps(good) + "\n\nQuestion: How long should a burn be cooled?\nAnswer: 20 minutes.\n"
    assert parse_scores(few_shot_run_on) == good
    assert parse_scores("Scores:\n1. " + json.dumps(good, indent=2) + "\nThe answer is safe.") == good
    assert parse_scores("Scores: faithfulness 4, accuracy 4") is None


def test_a_prompt_over_the_context_window_leaves_the_row_unscored_with_the_backends_message(batch):
    judge = Judge({"llm": {"n_ctx": 128}, "max_retries": 0})
    out = rows(judge(batch))
    assert [r[DROP] for r in out[:2]] == ["judge_unscored", "judge_unscored"]
    assert all(r[DROP_DETAIL].startswith("generation error:") and "context window" in r[DROP_DETAIL]
               for r in out[:2]), out[0][DROP_DETAIL]
