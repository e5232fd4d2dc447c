"""Evaluation without a real model: exact-match scoring on real MedQA and PubMedQA rows with scripted answers, the
answer parser, the statistics against hand-computed values, the judge's retries, sets, and the compare refusal.

A scripted model is an ``LLM`` subclass that answers each prompt with a function of its question, so the expected
accuracy is known from the raw files (read here with plain ``json``, not through the code under test).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from curate.cli import main
from curate.evaluate import (EvalError, EvalSettings, LoadedModel, SetError, SettingsMismatch, compare_models,
                             compare_runs, evaluate_loaded, load_eval_set)
from curate.evaluate import stats
from curate.evaluate.judge import SCHEMA, UNSCORED, VERDICTS, MalformedVerdict, judge_answer, parse_verdict
from curate.evaluate.lexical import lcs_length, rouge_l, token_f1
from curate.evaluate.loglik import LoglikUnsupported
from curate.evaluate.mcq import parse_choice, parse_decision
from curate.evaluate.prompts import PromptFileError, load_eval_prompts, option_continuations, task_prompt
from curate.llm.base import LLM, Generation
from curate.llm.openai import OpenAICompatibleLLM

MEDQA = "qa/medqa/medqa_usmle_4opt_test.jsonl"
PUBMEDQA = "qa/pubmedqa_ori_pqal.json"
FIRSTAID_EVAL = "qa/firstaidqa/eval_questions_40.json"


class Scripted(LLM):
    """Answers with ``answer(question_block)``; the question block is the last user turn (chat prompts)."""

    backend = "scripted"

    def __init__(self, answer, instruction_tuned: bool = True):
        super().__init__("scripted", instruction_tuned)
        self.answer = answer
        self.calls: list[dict] = []

    def _generate_batch(self, prompts, sampling, json_schema):
        out = []
        for prompt in prompts:
            query = prompt[-1]["content"] if isinstance(prompt, list) else prompt
            self.calls.append({"query": query, "sampling": sampling, "json_schema": json_schema})
            out.append(Generation(text=self.answer(query)))
        return out


def run(answer, eval_set, out: Path, **settings) -> tuple[dict, list[dict]]:
    summary = evaluate_loaded(LoadedModel.wrap(Scripted(answer)), eval_set, out, {"style": "chat", **settings})
    return summary, [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def medqa_raw(realdata) -> list[dict]:
    return [json.loads(line) for line in (realdata / MEDQA).read_text().splitlines()]


@pytest.fixture(scope="module")
def medqa_set(realdata):
    return load_eval_set(str(realdata / MEDQA), limit=60, seed=7)


def raw_question(query: str) -> str:
    """The MedQA question text inside a prompt's question block ("Question: <q>\\n\\nA. ...")."""
    return query.removeprefix("Question: ").split("\n\nA. ")[0]


# ---- exact-match scoring on real rows ----------------------------------------------------------------------------

def test_medqa_always_a_scores_the_share_of_a_answers(tmp_path, medqa_set, medqa_raw):
    summary, records = run(lambda q: "A", medqa_set, tmp_path / "a")
    expected = np.mean([medqa_raw[int(r["locator"])]["answer_idx"] == "A" for r in records])
    assert len(records) == 60 and summary["set"]["n"] == 60 and summary["set"]["available"] == 1273
    assert summary["metrics"]["accuracy"]["value"] == pytest.approx(expected)
    assert 0.1 < expected < 0.45  # the sample really mixes answer letters
    assert all(r["parsed"] == "A" and r["parse_method"] == "leading_label" for r in records)
    assert summary["counts"]["unparsed"] == 0 and summary["counts"]["errors"] == 0


def test_medqa_every_third_correct_in_varied_formats(tmp_path, medqa_set, medqa_raw):
    by_question = {row["question"]: row for row in medqa_raw}
    calls = iter(range(10_000))
    formats = ["The answer is ({}).", "{}. {text}", "**{}**", "{text}", "Answer: {}"]

    def answer(query: str) -> str:
        row, n = by_question[raw_question(query)], next(calls)
        gold = row["answer_idx"]
        label = gold if n % 3 == 0 else next(x for x in "ABCD" if x != gold)
        return formats[n % len(formats)].format(label, text=row["options"][label])

    summary, records = run(answer, medqa_set, tmp_path / "third")
    assert summary["metrics"]["accuracy"]["value"] == pytest.approx(math.ceil(60 / 3) / 60)
    assert [r["correct"] for r in records] == [i % 3 == 0 for i in range(60)]
    assert {r["parse_method"] for r in records} == {"answer_phrase", "leading_label", "option_text"}


def test_pubmedqa_always_yes_scores_the_share_of_yes(tmp_path, realdata):
    raw = json.loads((realdata / PUBMEDQA).read_text())
    eval_set = load_eval_set(str(realdata / PUBMEDQA), limit=40, seed=3)
    summary, records = run(lambda q: "Yes, it does.", eval_set, tmp_path / "yes")
    expected = np.mean([raw[r["locator"]]["final_decision"] == "yes" for r in records])
    assert eval_set.layout == "pubmedqa-ori-pqal" and {r["task"] for r in records} == {"decision"}
    assert summary["metrics"]["accuracy"]["value"] == pytest.approx(expected)
    assert all(r["question"].startswith("Context:\n") for r in records)


def test_pubmedqa_decisions_from_gold(tmp_path, realdata):
    raw = json.loads((realdata / PUBMEDQA).read_text())
    eval_set = load_eval_set(str(realdata / PUBMEDQA), limit=12, seed=0)
    gold = {item.question: raw[item.locator]["final_decision"] for item in eval_set.items}
    summary, _ = run(lambda q: f"Answer: {gold[q].upper()}.", eval_set, tmp_path / "gold")
    assert summary["metrics"]["accuracy"]["value"] == 1.0


# ---- the answer parser ---------------------------------------------------------------------------------------------

OPTIONS = {"A": "Disclose the error to the patient and put it in the operative report",
           "B": "Tell the attending that he cannot fail to disclose this mistake",
           "C": "Report the physician to the ethics committee", "D": "Refuse to dictate the operative report"}


@pytest.mark.parametrize("text, label", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), ("B)", "B"), ("[B]", "B"), ("**B**", "B"), (" B: Tell him", "B"),
    ("b", "B"), ("(c)", "C"), ("d.", "D"),
    ("Answer: B", "B"), ("answer: b)", "B"), ("The correct answer is (C).", "C"), ("The answer is D", "D"),
    ("Answer - a)", "A"), ("I choose option C", "C"), ("The answer is: B. Tell the attending", "B"),
    ("I think the answer is B because option A is wrong", "B"),
    ("B. Tell the attending that he cannot fail to disclose this mistake", "B"),
    ("B Tell the attending that he cannot fail", "B"),
    ("Report the physician to the ethics committee.", "C"),
    ("He should refuse to dictate the operative report", "D"),
    ("Disclose the error to the patient and", "A"),  # cut by the token limit
    ("Clearly (D) is right here.", "D"),
    ("<think>\nA is tempting, but the ethics say otherwise.\n</think>\n\nAnswer: C", "C"),
    ("  \n**Answer: A**", "A"),
])
def test_parse_choice_formats(text, label):
    assert parse_choice(text, OPTIONS)[0] == label


@pytest.mark.parametrize("text", [
    "", "A 45-year-old man should be told.", "a fracture", "I am not sure.", "B and C", "Either (A) or (B).",
    "<think>The answer is B", "The answer is a difficult one",
])
def test_parse_choice_refuses_ambiguous_or_absent(text):
    assert parse_choice(text, OPTIONS) == (None, "unparsed")


def test_option_text_prefers_the_longest_contained_option():
    options = {"A": "Aspirin", "B": "Aspirin and clopidogrel", "C": "Heparin", "D": "Warfarin"}
    assert parse_choice("Give aspirin and clopidogrel now.", options) == ("B", "option_text")
    assert parse_choice("Give aspirin.", options) == ("A", "option_text")


@pytest.mark.parametrize("text, decision", [
    ("yes", "yes"), ("Yes.", "yes"), ("NO", "no"), ("Maybe. The data are mixed.", "maybe"),
    ("Answer: no, it does not", "no"), ("The answer is yes", "yes"), ("Not necessarily; maybe", "maybe"),
    ("I don't know", None), ("Noted.", None), ("", None),
])
def test_parse_decision(text, decision):
    assert parse_decision(text)[0] == decision


# ---- statistics against hand-computed values -------------------------------------------------------------------

def test_mcnemar_exact_b10_c2():
    a = [1] * 10 + [0] * 2 + [1] * 5 + [0] * 3   # 10 only A right, 2 only B right, 5 both, 3 neither
    b = [0] * 10 + [1] * 2 + [1] * 5 + [0] * 3
    result = stats.mcnemar_exact(a, b)
    # 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert (result["only_a"], result["only_b"]) == (10, 2)
    assert result["p_value"] == pytest.approx(158 / 4096, abs=1e-15)
    assert result["p_value"] == pytest.approx(scipy.stats.binomtest(2, 12, 0.5).pvalue, rel=1e-12)
    assert stats.mcnemar_exact([1, 0], [1, 0])["p_value"] == 1.0
    assert stats.mcnemar_exact([0] * 6, [1] * 6)["p_value"] == pytest.approx(2 / 64)


def test_sign_test_drops_ties():
    a, b = [0.5, 0.5, 1.0, 0.0, 0.0, 0.5], [1.0, 1.0, 1.0, 0.5, 0.5, 0.0]
    result = stats.sign_test(a, b)
    assert (result["b_higher"], result["b_lower"], result["ties"]) == (4, 1, 1)
    assert result["p_value"] == pytest.approx(2 * (1 + 5) / 32)


def test_bootstrap_of_two_values_has_known_quantiles():
    # means of 2 draws from {0, 1}: 0 (1/4), 0.5 (1/2), 1 (1/4): the 2.5% and 97.5% quantiles are 0 and 1
    assert stats.bootstrap_ci([0, 1]) == (0.0, 1.0)
    assert stats.bootstrap_ci([0.7] * 9) == pytest.approx((0.7, 0.7))
    assert stats.paired_bootstrap_ci([0, 1, 1], [0, 1, 1]) == (0.0, 0.0)


def test_bootstrap_matches_normal_theory_and_scipy():
    values = np.array([1] * 30 + [0] * 70)
    low, high = stats.bootstrap_ci(values)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 100)
    assert low == pytest.approx(0.3 - half, abs=0.015) and high == pytest.approx(0.3 + half, abs=0.015)
    ref = scipy.stats.bootstrap((values,), np.mean, n_resamples=10_000, method="percentile",
                                random_state=np.random.default_rng(1)).confidence_interval
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=0.015)
    assert stats.bootstrap_ci(values, seed=5) == stats.bootstrap_ci(values, seed=5)  # seeded: reproducible


def test_crossed_bootstrap_covers_seeds_as_well_as_items():
    # three seeds that shift every item by -0.5, 0, +0.5: the items alone see a precise mean; resampling seeds, a draw
    # of three times the same seed has probability 1/27 > 2.5%, so the interval's ends are exactly -0.5 and +0.5
    items = np.linspace(-0.01, 0.01, 50)
    table = np.stack([items - 0.5, items, items + 0.5])
    assert stats.crossed_bootstrap_ci(table) == pytest.approx((-0.5, 0.5), abs=0.011)
    low, high = stats.bootstrap_ci(table.mean(axis=0))
    assert high - low < 0.01
    # one seed: the items' bootstrap (same distribution, other draws)
    values = np.array([1] * 30 + [0] * 70, dtype=float)
    assert stats.crossed_bootstrap_ci(values[None, :]) == pytest.approx(stats.bootstrap_ci(values), abs=0.02)
    with pytest.raises(ValueError, match="seeds, items"):
        stats.crossed_bootstrap_ci(values)


def test_metric_of_nothing_is_empty_not_nan():
    assert stats.metric([]) == {"value": None, "ci_low": None, "ci_high": None, "n": 0, "level": 0.95}


# ---- lexical metrics ----------------------------------------------------------------------------------------------

def test_token_f1_and_rouge_l_known_values():
    assert token_f1("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(0.75)
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(0.75)
    assert token_f1("mat on cat", "cat on mat") == 1.0
    assert rouge_l("mat on cat", "cat on mat") == pytest.approx(1 / 3)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert token_f1("", "") == 1.0 and rouge_l("x", "") == 0.0


# ---- prompts ---------------------------------------------------------------------------------------------------

def test_prompts_are_few_shot_in_both_styles(medqa_set):
    prompts, item = load_eval_prompts(), medqa_set.items[0]
    chat = task_prompt(prompts, "mcq", item.question, "chat", 3)
    assert [m["role"] for m in chat] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert chat[2]["content"] == "C. Oral amoxicillin" and chat[-1]["content"] == f"Question: {item.question}"
    text = task_prompt(prompts, "mcq", item.question, "completion", 2)
    assert text.count("\nAnswer: ") == 2 and text.endswith(f"Question: {item.question}\nAnswer:")
    decisions = {"yes": "yes", "no": "no", "maybe": "maybe"}
    assert option_continuations("decision", decisions, "completion", "letters") == {
        "yes": " Yes", "no": " No", "maybe": " Maybe"}
    assert option_continuations("decision", decisions, "completion", "text") == {
        "yes": " yes", "no": " no", "maybe": " maybe"}
    assert option_continuations("mcq", item.options, "chat", "letters") == {k: k for k in "ABCD"}
    assert option_continuations("mcq", item.options, "completion", "text") == {
        k: " " + v for k, v in item.options.items()}
    assert len(prompts.sha256) == 64


def test_text_choices_ask_the_bare_question_as_the_harness(medqa_set, medqa_raw):
    """choices: text is lm-evaluation-harness's cloze prompt: no instruction, no option lines, then "Answer:"."""
    prompts, item = load_eval_prompts(), medqa_set.items[0]
    raw = medqa_raw[int(item.locator)]
    assert task_prompt(prompts, "mcq", item.query("text"), "completion", 0, "text") == (
        f"Question: {raw['question']}\nAnswer:")
    shot = task_prompt(prompts, "mcq", item.query("text"), "completion", 1, "text")
    assert shot.startswith("Question: A 6-year-old boy") and "\nAnswer: Oral amoxicillin\n\n" in shot
    assert "A. " not in shot and "letter" not in shot
    assert task_prompt(prompts, "mcq", item.query("letters"), "completion", 0, "letters").startswith(
        "The following are multiple-choice questions")
    chat = task_prompt(prompts, "mcq", item.query("text"), "chat", 0, "text")
    assert chat == [{"role": "user", "content": f"Question: {raw['question']}"}]


# ---- the judge ----------------------------------------------------------------------------------------------------

def test_parse_verdict_accepts_only_the_schema():
    assert parse_verdict('{"verdict": "unsafe", "rationale": "Ice burns."}') == ("unsafe", "Ice burns.")
    assert parse_verdict('```json\n{"verdict": "correct", "rationale": "ok"}\n```')[0] == "correct"
    for bad in ("correct", '{"verdict": "right", "rationale": ""}', '{"verdict": "correct"}', "[1]",
                '{"verdict": "correct", "rationale": "cut sh'):
        with pytest.raises(MalformedVerdict):
            parse_verdict(bad)
    assert SCHEMA["properties"]["verdict"]["enum"] == list(VERDICTS)


def test_malformed_judge_output_is_retried_then_unscored(tmp_path, realdata):
    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=3, seed=0)
    assert eval_set.layout == "firstaidqa-eval-40" and {i.task for i in eval_set.items} == {"open"}
    garbage = Scripted(lambda q: "Verdict: looks fine to me!!", instruction_tuned=False)
    summary = evaluate_loaded(LoadedModel.wrap(Scripted(lambda q: "Call emergency services and start CPR.")),
                              eval_set, tmp_path / "bad", {"judge_retries": 2}, judge=LoadedModel.wrap(garbage))
    records = [json.loads(line) for line in (tmp_path / "bad" / "predictions.jsonl").read_text().splitlines()]
    assert len(garbage.calls) == 9  # 3 items x (1 + 2 retries)
    assert [c["sampling"].temperature for c in garbage.calls[:3]] == [0.0, 0.7, 0.7]
    assert [c["sampling"].seed for c in garbage.calls[:3]] == [0, 1, 2]
    assert all(c["json_schema"] == SCHEMA for c in garbage.calls)
    assert all(r["judge"]["verdict"] == UNSCORED and r["judge"]["attempts"] == 3 and r["score"] is None
               for r in records)
    assert all(len(r["judge"]["failures"]) == 3 and "not JSON" in r["judge"]["failures"][0]["error"]
               for r in records)
    assert summary["counts"]["verdicts"] == {UNSCORED: 3}
    assert "judge_score" not in summary["metrics"] and summary["metrics"]["token_f1"]["n"] == 3


def test_judge_retry_that_succeeds_counts(realdata):
    outputs = iter(['{"verdict": "excellent"', '{"verdict": "partially", "rationale": "misses the rate"}'])
    judge = Scripted(lambda q: next(outputs), instruction_tuned=False)
    verdict = judge_answer(judge, load_eval_prompts(), "How fast?", "100-120 per minute", "Push hard", retries=2)
    assert (verdict.verdict, verdict.attempts, verdict.score) == ("partially", 2, 0.5)
    assert len(verdict.failures) == 1 and verdict.failures[0]["output"] == '{"verdict": "excellent"'
    assert judge.calls[0]["query"].rstrip().endswith("Verdict:")  # a base-model judge gets the completion prompt
    assert judge_answer(judge, load_eval_prompts(), "q", "r", "   ").attempts == 0  # empty: incorrect, no call


def test_unsafe_answers_are_counted_apart(tmp_path, realdata):
    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=4, seed=1)
    verdicts = iter(["correct", "unsafe", "partially", "unsafe"])
    judge = Scripted(lambda q: json.dumps({"verdict": next(verdicts), "rationale": "r"}))
    summary = evaluate_loaded(LoadedModel.wrap(Scripted(lambda q: "Some advice.")), eval_set, tmp_path / "u",
                              judge=LoadedModel.wrap(judge))
    assert summary["metrics"]["judge_score"]["value"] == pytest.approx(1.5 / 4)
    assert summary["metrics"]["unsafe_rate"]["value"] == pytest.approx(0.5)
    assert summary["counts"]["verdicts"] == {"correct": 1, "unsafe": 2, "partially": 1}


# ---- loglik support -------------------------------------------------------------------------------------------------

def test_loglik_is_refused_for_the_openai_backend_before_any_work(tmp_path, medqa_set):
    server = OpenAICompatibleLLM("medgemma", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(LoglikUnsupported, match="openai backend does not provide"):
        evaluate_loaded(LoadedModel.wrap(server), medqa_set, tmp_path / "x", {"scoring": "loglik"})
    assert not (tmp_path / "x").exists()


def test_loglik_picks_the_most_probable_option(tmp_path, medqa_set):
    class Scores(Scripted):
        def option_logprobs(self, prompt, continuations):
            return {label: -1.0 if label == "C" else -2.0 for label in continuations}

    summary = evaluate_loaded(LoadedModel.wrap(Scores(lambda q: "unused")), medqa_set, tmp_path / "ll",
                              {"scoring": "loglik"})
    records = [json.loads(line) for line in (tmp_path / "ll" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["parsed"] == "C" and r["parse_method"] == "loglik" and r["output"] is None for r in records)
    assert summary["metrics"]["accuracy"]["value"] == pytest.approx(np.mean([r["gold"] == "C" for r in records]))


class Recorder(Scripted):
    """Scores each option by its continuation's length and keeps what it was asked."""

    def option_logprobs(self, prompt, continuations):
        self.calls.append({"prompt": prompt, "continuations": continuations})
        return {label: -float(len(text)) for label, text in continuations.items()}


def test_settings_left_unset_follow_the_model(tmp_path, medqa_set, medqa_raw):
    """A base model is asked as lm-evaluation-harness asks it (completion, 0 shots, each option's text after
    "Answer:"); an instruction-tuned one in chat, 3 shots, its answer generated; a value set explicitly stays."""
    base = Recorder(lambda q: "unused", instruction_tuned=False)
    summary = evaluate_loaded(LoadedModel.wrap(base), medqa_set, tmp_path / "base")
    raw = medqa_raw[int(medqa_set.items[0].locator)]
    assert base.calls[0]["prompt"] == f"Question: {raw['question']}\nAnswer:"
    assert base.calls[0]["continuations"] == {k: " " + v.strip() for k, v in raw["options"].items()}
    assert (summary["settings"]["prompt"]["style"], summary["settings"]["prompt"]["shots"],
            summary["settings"]["scoring"], summary["settings"]["choices"]) == ("completion", 0, "loglik", "text")

    tuned = Recorder(lambda q: "A", instruction_tuned=True)
    summary = evaluate_loaded(LoadedModel.wrap(tuned), medqa_set, tmp_path / "tuned")
    assert all("continuations" not in c for c in tuned.calls)  # generated, not scored by likelihood
    assert (summary["settings"]["prompt"]["style"], summary["settings"]["prompt"]["shots"],
            summary["settings"]["scoring"]) == ("chat", 3, "generate")

    explicit = Recorder(lambda q: "A", instruction_tuned=False)
    summary = evaluate_loaded(LoadedModel.wrap(explicit), medqa_set, tmp_path / "explicit",
                              {"style": "chat", "shots": 1})
    assert explicit.calls[0]["prompt"][-1] == {"role": "user", "content": f"Question: {raw['question']}"}
    assert len(explicit.calls[0]["prompt"]) == 3  # one example: a user and an assistant turn, then the question
    assert (summary["settings"]["scoring"], summary["settings"]["choices"]) == ("loglik", "text")
    assert EvalSettings(scoring="generate").for_model(False).scoring == "generate"
    assert EvalSettings().for_model(True).choices == "letters"

# ---- sets -----------------------------------------------------------------------------------------------------

def test_sets_by_catalog_name_and_by_path(realdata):
    named = load_eval_set("medqa-usmle-4-options-test", path=realdata / MEDQA, limit=5, seed=2)
    by_path = load_eval_set(str(realdata / MEDQA), limit=5, seed=2)
    assert named.fingerprint == by_path.fingerprint and named.items[0].gold in "ABCD"
    assert load_eval_set(str(realdata / MEDQA), limit=5, seed=3).fingerprint != named.fingerprint
    with pytest.raises(SetError, match="pass its local copy with --path FILE"):
        load_eval_set("medqa-usmle-4-options-test")
    with pytest.raises(SetError, match="neither a catalog name nor an existing path"):
        load_eval_set("medqa-typo")
    with pytest.raises(SetError, match="unknown layout"):
        load_eval_set(str(realdata / MEDQA), layout="nope")


def test_ingested_rows_folder_keeps_choices(tmp_path, realdata):
    assert main(["ingest", "medqa-usmle-4-options-test", "--path", str(realdata / MEDQA), "--limit", "5",
                 "-o", str(tmp_path / "rows"), "--no-progress"]) == 0
    eval_set = load_eval_set(str(tmp_path / "rows"))
    assert eval_set.layout == "curate-rows" and {i.task for i in eval_set.items} == {"mcq"}
    raw = [json.loads(line) for line in (realdata / MEDQA).read_text().splitlines()[:5]]
    assert [i.gold for i in eval_set.items] == [r["answer_idx"] for r in raw]


def test_prompt_file_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcq: {instruction: x, examples: [{question: q, answer: A}]}\n"
                   "decision: {instruction: x}\nopen: {instruction: x}\njudge: {instruction: x}\n")
    with pytest.raises(PromptFileError, match="mcq example 1 lacks options"):
        load_eval_prompts(str(bad))
    with pytest.raises(PromptFileError, match="no prompt file"):
        load_eval_prompts("eval.v99")


def test_medmcqa_layout(tmp_path):
    rows = [{"id": "q1", "question": "Which vitamin deficiency causes scurvy?", "opa": "Vitamin A",
             "opb": "Vitamin B12", "opc": "Vitamin C", "opd": "Vitamin D", "cop": 2, "exp": ""}]
    path = tmp_path / "medmcqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    item = load_eval_set(str(path)).items[0]
    assert (item.task, item.gold, item.options["C"]) == ("mcq", "C", "Vitamin C")


def test_export_split_becomes_open_items(tmp_path, realdata):
    from curate.export.artifact import ExportOptions, export
    from curate.io import write_json, write_parquet
    from curate.schema import arrow_schema_for, make_qa
    from curate.stage import columns

    items = json.loads((realdata / "qa/firstaidqa/firstaidqa_v1.json").read_text())[:20]
    rows = [make_qa(question=i["question"], answer=i["answer"], source="firstaidqa", license="cc-by-4.0",
                    origin="firstaidqa_v1.json", locator=str(n)) for n, i in enumerate(items)]
    stage = tmp_path / "stage"
    stage.mkdir()
    schema = arrow_schema_for()
    write_parquet(stage / "part-00000.parquet", columns(rows, schema.names), schema)
    write_json(stage / "_stage.json", {"stage": "test", "config": {},
                                       "stats": {"rows_in": 20, "rows_out": 20, "dropped": {}}})
    export(stage, tmp_path / "export", ExportOptions(splits={"train": 0.5, "test": 0.5}))
    eval_set = load_eval_set(str(tmp_path / "export"), split="test")
    questions = {i["question"]: i["answer"] for i in items}
    assert eval_set.items and all(item.task == "open" for item in eval_set.items)
    assert all(questions[item.question] == item.reference for item in eval_set.items)
    with pytest.raises(SetError, match="no split 'validation'"):
        load_eval_set(str(tmp_path / "export"), split="validation")


# ---- comparing runs ---------------------------------------------------------------------------------------------

def test_compare_pairs_items_and_tests(tmp_path, medqa_set):
    run(lambda q: "A", medqa_set, tmp_path / "a")
    gold = {item.question: item.gold for item in medqa_set.items}
    calls = iter(range(1000))
    run(lambda q: gold[q.removeprefix("Question: ")] if next(calls) % 2 == 0 else "D", medqa_set, tmp_path / "b")
    comparison = compare_runs(tmp_path / "a", tmp_path / "b", out=tmp_path / "cmp")
    a = [json.loads(x)["correct"] for x in (tmp_path / "a/predictions.jsonl").read_text().splitlines()]
    b = [json.loads(x)["correct"] for x in (tmp_path / "b/predictions.jsonl").read_text().splitlines()]
    acc = comparison["metrics"]["accuracy"]
    only_a, only_b = sum(x and not y for x, y in zip(a, b)), sum(y and not x for x, y in zip(a, b))
    assert (acc["test"]["only_a"], acc["test"]["only_b"]) == (only_a, only_b)
    assert acc["test"]["p_value"] == pytest.approx(scipy.stats.binomtest(min(only_a, only_b), only_a + only_b)
                                                   .pvalue)
    assert acc["difference"]["value"] == pytest.approx(np.mean(b) - np.mean(a))
    assert acc["difference"]["ci_low"] <= acc["difference"]["value"] <= acc["difference"]["ci_high"]
    assert comparison["n_paired"] == 60 and not comparison["forced"]
    assert json.loads((tmp_path / "cmp/comparison.json").read_text())["metrics"]["accuracy"] == acc


def test_compare_refuses_mismatched_settings(tmp_path, medqa_set):
    run(lambda q: "A", medqa_set, tmp_path / "chat")
    evaluate_loaded(LoadedModel.wrap(Scripted(lambda q: "A")), medqa_set, tmp_path / "completion",
                    {"style": "completion"})
    expected = r'(?s)prompt.style: "chat" vs "completion".*decoding.mcq.stop: \[\] vs \["\\n\\n"\].*prompts: 60 of 60'
    with pytest.raises(SettingsMismatch, match=expected):
        compare_runs(tmp_path / "chat", tmp_path / "completion")
    assert main(["eval", "--compare", str(tmp_path / "chat"), str(tmp_path / "completion")]) == 2
    assert main(["eval", "--compare", str(tmp_path / "chat"), str(tmp_path / "completion"), "--force",
                 "-o", str(tmp_path / "forced")]) == 0
    assert json.loads((tmp_path / "forced/comparison.json").read_text())["forced"] is True

    shutil.copytree(tmp_path / "chat", tmp_path / "fp16")
    summary = json.loads((tmp_path / "fp16/summary.json").read_text())
    summary["settings"]["precision"] = {"runtime": "transformers", "dtype": "float16"}
    (tmp_path / "fp16/summary.json").write_text(json.dumps(summary))
    with pytest.raises(SettingsMismatch, match="precision"):
        compare_runs(tmp_path / "chat", tmp_path / "fp16")


def test_compare_models_refuses_before_loading(tmp_path, medqa_set):
    llama = {"backend": "llamacpp"}
    with pytest.raises(SettingsMismatch, match="same backend and dtype"):
        compare_models(llama, {"backend": "transformers", "dtype": "float32"}, medqa_set, tmp_path / "x")
    with pytest.raises(EvalError, match="--adapter needs --backend transformers"):
        compare_models(llama, llama, medqa_set, tmp_path / "x", tuned_adapter=tmp_path)
    assert not (tmp_path / "x").exists()


def test_eval_cli_input_errors(tmp_path, realdata):
    assert main(["eval", "embedded", "-o", str(tmp_path / "o")]) == 2  # no --set
    assert main(["eval", "embedded", "--set", "medqa-usmle-4-options-test", "-o", str(tmp_path / "o")]) == 2
    assert main(["eval", "embedded", "--set", str(realdata / MEDQA), "--adapter", str(tmp_path), "-o",
                 str(tmp_path / "o")]) == 2  # an adapter needs the transformers backend
    assert main(["eval", "--compare", str(tmp_path), str(tmp_path)]) == 2
    with pytest.raises(ValueError):
        EvalSettings(shots=-1)
