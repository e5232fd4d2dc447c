"""Option-text scoring and reference likelihood on the real Gemma 3 270M, checked against a direct computation.

The transformers backend (the embedded GGUF dequantized to float32) and llama.cpp (the GGUF itself) score options
and reference answers; each number is checked against log-softmax over one plain forward pass of the whole text
(prompt + continuation, no KV cache), computed here with torch. The demo's 20 held-out questions run with the demo's
own settings and report option-text acc and acc_norm; base vs a random LoRA adapter gets a paired interval of the
reference NLL difference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from curate.cli import main
from curate.evaluate import add_adapter, compare_runs, evaluate_loaded, load_eval_set, load_model
from curate.evaluate.loglik import option_logprobs, reference_nll
from curate.evaluate.prompts import (answer_continuation, load_eval_prompts, option_continuations, prompt_sha256,
                                     task_prompt)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FIRSTAID_EVAL = "qa/firstaidqa/eval_questions_40.json"
TRANSFORMERS = {"backend": "transformers", "dtype": "float32", "device": "cpu", "n_threads": 1}
LLAMA = {"backend": "llamacpp", "n_threads": 1}
# a question whose long right answer is less probable in total but more probable per character than a short one
ITEM = {"question": "What should you do first at a road accident where cars are still passing?",
        "options": {"A": "Run", "B": "Check for danger and make the scene safe before you approach"},
        "answer_idx": "B", "answer": "Check for danger and make the scene safe before you approach"}


@pytest.fixture(scope="module")
def hf():
    model = load_model(TRANSFORMERS)
    yield model
    model.llm.close()


def direct_logprobs(llm, prompt: str, continuation: str) -> list[float]:
    """Log-probabilities of the continuation's tokens from one forward pass over BOS + prompt + continuation."""
    import torch

    tokenizer, model = llm.tokenizer, llm.hf_model
    head = tokenizer(prompt)["input_ids"]
    whole = tokenizer(prompt + continuation)["input_ids"]
    assert whole[:len(head)] == head and head[0] == tokenizer.bos_token_id
    n = len(whole) - len(head)
    with torch.inference_mode():  # the logits after the last prompt token and after each continuation token
        logits = model(input_ids=torch.tensor([whole]), logits_to_keep=n + 1).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[i, whole[len(head) + i]]) for i in range(n)]


def write_item(tmp_path: Path) -> Path:
    path = tmp_path / "item.jsonl"
    path.write_text(json.dumps(ITEM) + "\n")
    return path


def test_option_text_logprobs_match_a_direct_forward_pass(hf, tmp_path):
    eval_set = load_eval_set(str(write_item(tmp_path)))
    summary = evaluate_loaded(hf, eval_set, tmp_path / "out", {"scoring": "loglik", "style": "completion",
                                                                "shots": 0})
    (record,) = [json.loads(x) for x in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    prompt = f"Question: {ITEM['question']}\nAnswer:"
    sums = {label: sum(direct_logprobs(hf.llm, prompt, " " + text)) for label, text in ITEM["options"].items()}
    assert record["option_logprobs"] == pytest.approx(sums, abs=2e-3)
    per_char = {label: sums[label] / len(text) for label, text in ITEM["options"].items()}
    acc, norm = max(sums, key=sums.get), max(per_char, key=per_char.get)
    assert (record["parsed"], record["parsed_norm"]) == (acc, norm)
    assert acc != norm, (sums, per_char)  # this item separates acc from acc_norm on the 270M
    assert summary["metrics"]["accuracy"]["value"] == float(acc == "B")
    assert summary["metrics"]["accuracy_norm"]["value"] == float(norm == "B")


def test_reference_nll_matches_a_direct_forward_pass(hf, tmp_path, realdata):
    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=2, seed=0)
    settings = {"style": "chat", "shots": 0, "max_tokens_open": 1}
    summary = evaluate_loaded(hf, eval_set, tmp_path / "out", settings)
    recs = [json.loads(x) for x in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    prompts = load_eval_prompts()
    for item, record in zip(eval_set.items, recs):
        prompt = hf.llm.render(task_prompt(prompts, "open", item.question, "chat", 0))  # ends opening a model turn
        assert prompt.endswith("<start_of_turn>model\n")
        direct = direct_logprobs(hf.llm, prompt, item.reference.strip())
        assert record["reference_tokens"] == len(direct) > 5
        assert record["reference_nll"] == pytest.approx(-np.mean(direct), abs=1e-4)
        assert record["reference_perplexity"] == pytest.approx(math.exp(-np.mean(direct)), rel=1e-4)
    nll = summary["metrics"]["reference_nll"]
    assert nll["value"] == pytest.approx(np.mean([r["reference_nll"] for r in recs])) and nll["n"] == 2
    assert summary["metrics"]["reference_perplexity"]["value"] == pytest.approx(math.exp(nll["value"]))
    assert summary["counts"]["reference_nll_skipped"] == 0


def test_llamacpp_scores_the_same_continuations(hf, realdata):
    """The GGUF through llama.cpp (quantized arithmetic) against the dequantized weights in float32."""
    item = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=1, seed=0).items[0]
    prompt = f"Question: {ITEM['question']}\nAnswer:"
    continuations = option_continuations("mcq", ITEM["options"], "completion", "text")
    open_prompt = task_prompt(load_eval_prompts(), "open", item.question, "completion", 0)
    llama = load_model(LLAMA)
    try:
        theirs = option_logprobs(llama.llm, prompt, continuations)
        nll, n = reference_nll(llama.llm, open_prompt, answer_continuation(item.reference, "completion"))
    finally:
        llama.llm.close()
    ours = option_logprobs(hf.llm, prompt, continuations)
    assert all(abs(theirs[k] - ours[k]) < 0.3 + 0.05 * abs(ours[k]) for k in ours), (theirs, ours)
    hf_nll, hf_n = reference_nll(hf.llm, open_prompt, answer_continuation(item.reference, "completion"))
    assert n == hf_n and abs(nll - hf_nll) < 0.05, (nll, hf_nll)


def test_demo_settings_report_option_text_acc_and_acc_norm(tmp_path):
    """The demo pipeline's evaluate settings on 8 of its 20 questions: each option's text scored as the continuation
    of "Question: ...\nAnswer:" (what the README says), which is also what `curate eval embedded` does unflagged."""
    settings = yaml.safe_load((REPO / "pipelines/demo.yaml").read_text())["finetune"]["evaluate"]["settings"]
    demo_set = REPO / "curate/data/demo_eval.jsonl"
    eval_set = load_eval_set(str(demo_set), limit=8, seed=0)
    llama = load_model(LLAMA)
    try:
        summary = evaluate_loaded(llama, eval_set, tmp_path / "demo", settings)
    finally:
        llama.llm.close()
    recs = [json.loads(x) for x in (tmp_path / "demo/predictions.jsonl").read_text().splitlines()]
    raw = [json.loads(x) for x in demo_set.read_text().splitlines()]
    assert [r["prompt_sha256"] for r in recs] == [
        prompt_sha256(f"Question: {raw[int(item.locator)]['question']}\nAnswer:") for item in eval_set.items]
    assert [sorted(r["option_logprobs"]) for r in recs] == [sorted(item.options) for item in eval_set.items]
    assert len(recs) == 8 and summary["settings"]["choices"] == "text"
    for item, r in zip(eval_set.items, recs):
        lp = r["option_logprobs"]
        assert r["parsed"] == max(lp, key=lp.get)
        assert r["parsed_norm"] == max(lp, key=lambda k: lp[k] / len(item.options[k]))
    for name, key in (("accuracy", "correct"), ("accuracy_norm", "correct_norm")):
        m = summary["metrics"][name]
        assert m["value"] == pytest.approx(np.mean([r[key] for r in recs])) and m["n"] == 8
        assert m["ci_low"] <= m["value"] <= m["ci_high"]

    assert main(["eval", "embedded", "--set", str(demo_set), "--limit", "8", "--option", "n_threads=1",
                 "-o", str(tmp_path / "cli"), "--no-progress"]) == 0
    cli = [json.loads(x) for x in (tmp_path / "cli/predictions.jsonl").read_text().splitlines()]
    assert [(r["prompt_sha256"], r["option_logprobs"]) for r in cli] == [
        (r["prompt_sha256"], r["option_logprobs"]) for r in recs]
    print(f"\ndemo, 8 questions, option text (completion, 0 shots): accuracy "
          f"{summary['metrics']['accuracy']['value']:.2f}, accuracy_norm "
          f"{summary['metrics']['accuracy_norm']['value']:.2f}, picks {sorted(set(r['parsed'] for r in recs))}")


def test_reference_nll_difference_base_vs_adapter(hf, tmp_path, realdata):
    """Base, then the same weights with a random LoRA: a paired interval of the NLL difference. Last in the module:
    the adapter stays on the shared model."""
    from test_evaluate_models import write_lora

    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=2, seed=1)
    settings = {"style": "chat", "shots": 0, "max_tokens_open": 1}
    evaluate_loaded(hf, eval_set, tmp_path / "base", settings)
    evaluate_loaded(add_adapter(hf, write_lora(tmp_path / "adapter")), eval_set, tmp_path / "tuned", settings)
    comparison = compare_runs(tmp_path / "base", tmp_path / "tuned")
    base = [json.loads(x) for x in (tmp_path / "base/predictions.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (tmp_path / "tuned/predictions.jsonl").read_text().splitlines()]
    nll = comparison["metrics"]["reference_nll"]
    diffs = [t["reference_nll"] - b["reference_nll"] for b, t in zip(base, tuned)]
    assert nll["difference"]["value"] == pytest.approx(np.mean(diffs))
    assert nll["difference"]["ci_low"] <= nll["difference"]["value"] <= nll["difference"]["ci_high"]
    assert min(abs(d) for d in diffs) > 1e-4 and nll["test"]["test"] == "sign_exact"
    assert nll["a"]["n"] == nll["b"]["n"] == 2
