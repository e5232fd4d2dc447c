"""Scoring choices the way lm-evaluation-harness does, without a model: acc / acc_norm picks from given
log-probabilities, items that cannot be scored rejected by name, BoolQ (llm-foundry's file) asked with the harness's
prompt, and reference likelihood skipped (and said) on a backend without log-probabilities.

The real-model checks of the same scoring are in ``test_evaluate_loglik.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.evaluate import LoadedModel, SetError, compare_runs, evaluate_loaded, load_eval_set
from curate.evaluate.prompts import load_eval_prompts, option_continuations, task_prompt
from curate.evaluate.sets import item_from_row
from curate.ingest import Reject
from curate.llm.base import LLM, Generation

MEDQA = "qa/medqa/medqa_usmle_4opt_test.jsonl"
BOOLQ = "paper/boolq_validation.jsonl"
FIRSTAID_EVAL = "qa/firstaidqa/eval_questions_40.json"


class Fixed(LLM):
    """Gives each continuation a log-probability from ``table`` {continuation text: log-probability}."""

    backend = "fixed"

    def __init__(self, table: dict[str, float]):
        super().__init__("fixed")
        self.table, self.asked = table, []

    def option_logprobs(self, prompt, continuations):
        self.asked.append((prompt, continuations))
        return {label: self.table[text] for label, text in continuations.items()}

    def _generate_batch(self, prompts, sampling, json_schema):
        return [Generation(text="Call for help.") for _ in prompts]


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_acc_sums_and_acc_norm_divides_by_characters(tmp_path):
    """acc: the largest summed log-probability; acc_norm: the largest sum per character of the option's text
    (the harness's len(choice), without the leading space): here they pick different options."""
    rows = [{"question": "Which is the first step at a road accident?",
             "options": {"A": "Run", "B": "Check for danger and make the scene safe"}, "answer_idx": "B",
             "answer": "Check for danger and make the scene safe"}]
    eval_set = load_eval_set(str(write_jsonl(tmp_path / "q.jsonl", rows)))
    # A: -0.85 over 3 characters = -0.283/char; B: -10.0 over 40 characters = -0.250/char. Counting the leading
    # space (4 and 41 characters) would pick A: -0.213 > -0.244.
    model = Fixed({" Run": -0.85, " Check for danger and make the scene safe": -10.0})
    summary = evaluate_loaded(LoadedModel.wrap(model), eval_set, tmp_path / "out",
                              {"scoring": "loglik", "style": "completion", "shots": 0})
    (record,) = records(tmp_path / "out")
    assert len("Check for danger and make the scene safe") == 40
    assert (record["parsed"], record["correct"]) == ("A", False)
    assert (record["parsed_norm"], record["correct_norm"]) == ("B", True)
    assert summary["metrics"]["accuracy"]["value"] == 0.0 and summary["metrics"]["accuracy_norm"]["value"] == 1.0
    assert summary["settings"]["choices"] == "text" and summary["settings"]["scoring"] == "loglik"
    (prompt, continuations), = model.asked
    assert prompt == "Question: Which is the first step at a road accident?\nAnswer:"
    assert continuations == {"A": " Run", "B": " Check for danger and make the scene safe"}


def test_letters_choices_score_letters_and_have_no_norm(tmp_path):
    rows = [{"question": "Q?", "options": {"A": "x", "B": "yy"}, "answer_idx": "B", "answer": "yy"}]
    eval_set = load_eval_set(str(write_jsonl(tmp_path / "q.jsonl", rows)))
    model = Fixed({" A": -2.0, " B": -1.0})
    summary = evaluate_loaded(LoadedModel.wrap(model), eval_set, tmp_path / "out",
                              {"scoring": "loglik", "style": "completion", "shots": 0, "choices": "letters"})
    (record,) = records(tmp_path / "out")
    assert record["parsed"] == "B" and "parsed_norm" not in record and "accuracy_norm" not in summary["metrics"]
    assert model.asked[0][0].endswith("Question: Q?\n\nA. x\nB. yy\nAnswer:")


def test_compare_refuses_text_against_letters(tmp_path):
    rows = [{"question": "Q?", "options": {"A": "x", "B": "yy"}, "answer_idx": "B", "answer": "yy"}]
    eval_set = load_eval_set(str(write_jsonl(tmp_path / "q.jsonl", rows)))
    model = LoadedModel.wrap(Fixed({" A": -2.0, " B": -1.0, " x": -1.0, " yy": -3.0}))
    for choices in ("text", "letters"):
        evaluate_loaded(model, eval_set, tmp_path / choices, {"scoring": "loglik", "style": "completion",
                                                              "choices": choices})
    with pytest.raises(ValueError, match='choices: "text" vs "letters"'):
        compare_runs(tmp_path / "text", tmp_path / "letters")


def test_items_without_options_or_gold_are_rejected_by_name(tmp_path, realdata):
    raw = [json.loads(line) for line in (realdata / MEDQA).read_text().splitlines()[:4]]
    raw[1]["options"] = {}
    raw[2]["answer_idx"] = "E"
    eval_set = load_eval_set(str(write_jsonl(tmp_path / "medqa4.jsonl", raw)))
    assert [item.locator for item in eval_set.items] == ["0", "3"]
    assert eval_set.rejected == {"bad_answer_key": 2}
    assert [r["locator"] for r in eval_set.rejects] == ["1", "2"]
    assert all("item 1" in r["detail"] or "item 2" in r["detail"] for r in eval_set.rejects)
    model = Fixed({" " + t: -float(len(t)) for row in raw for t in row["options"].values()})
    summary = evaluate_loaded(LoadedModel.wrap(model), eval_set, tmp_path / "out",
                              {"scoring": "loglik", "style": "completion"})
    assert summary["set"]["n"] == 2 and len(records(tmp_path / "out")) == 2
    written = [json.loads(x) for x in (tmp_path / "out/rejects.jsonl").read_text().splitlines()]
    assert written == eval_set.rejects
    assert any("2 items of the set could not be scored" in w for w in summary["warnings"])


def test_rows_with_broken_options_are_rejects_not_open_items():
    row = {"id": "r1", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A. x"}],
           "provenance": {"locator": "file.jsonl#7"}, "meta": {"options": {"A": "x"}, "answer_idx": "C"}}
    reject = item_from_row(row)
    assert isinstance(reject, Reject) and reject.reason == "bad_answer_key" and "file.jsonl#7" in reject.detail
    empty = item_from_row({**row, "meta": {"options": None, "answer_idx": "A"}})
    assert isinstance(empty, Reject) and empty.reason == "bad_options" and "r1" in empty.detail


def test_boolq_is_asked_with_the_harness_prompt(realdata):
    """llm-foundry's BoolQ file: lm-evaluation-harness's prompt "{passage}\\nQuestion: {question}?\\nAnswer:" and
    the continuations " no" / " yes" (options in the file's order)."""
    lines = (realdata / BOOLQ).read_text().splitlines()
    eval_set = load_eval_set(str(realdata / BOOLQ), limit=5, seed=0)
    assert eval_set.layout == "llm-foundry" and eval_set.available == len(lines) == 3270
    prompts = load_eval_prompts()
    for item in eval_set.items:
        raw = json.loads(lines[int(item.locator)])
        passage, question = raw["query"].removeprefix("Passage: ").split("\nQuestion: ")
        assert question.endswith("?")
        assert task_prompt(prompts, "mcq", item.query("text"), "completion", 0, "text") == (
            f"{passage}\nQuestion: {question}\nAnswer:")
        assert option_continuations("mcq", item.choices, "completion", "text") == {"A": " no", "B": " yes"}
        assert item.gold == "AB"[raw["gold"]]


def test_foundry_item_with_gold_out_of_range_is_rejected(tmp_path):
    rows = [{"query": "Passage: p\nQuestion: q?", "choices": ["no", "yes"], "gold": 1},
            {"query": "Passage: p2\nQuestion: q2?", "choices": ["no", "yes"], "gold": 2}]
    eval_set = load_eval_set(str(write_jsonl(tmp_path / "bq.jsonl", rows)))
    assert len(eval_set.items) == 1 and eval_set.rejects[0]["locator"] == "1"
    with pytest.raises(SetError, match="holds no question-answer items"):
        load_eval_set(str(write_jsonl(tmp_path / "none.jsonl", rows[1:])))


def test_reference_nll_is_skipped_and_said_without_log_probabilities(tmp_path, realdata):
    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=2, seed=0)
    summary = evaluate_loaded(LoadedModel.wrap(Fixed({})), eval_set, tmp_path / "o", {"style": "completion"})
    assert summary["counts"]["reference_nll_skipped"] == 2 and "reference_nll" not in summary["metrics"]
    assert any("reference NLL not computed: the fixed backend" in w for w in summary["warnings"])
    assert all(r["reference_nll"] is None and r["token_f1"] is not None for r in records(tmp_path / "o"))
