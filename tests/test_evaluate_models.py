"""Evaluation with real models: the embedded Gemma 3 270M through llama.cpp on 10 real MedQA items from the command
line, the same model as a (JSON-grammar constrained) judge of two FirstAid answers, and the transformers backend
scoring options (their text) by log-likelihood with and without a LoRA adapter, checked against llama.cpp's
log-probabilities.

The 270M is a small base model: its accuracy is whatever it is (near chance on MedQA); these tests check that the
runs are real, parsed, recorded item by item and consistent, not that the model is good.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from curate.cli import main
from curate.evaluate import compare_models, evaluate, load_eval_set, load_model
from curate.evaluate.judge import UNSCORED, VERDICTS
from curate.evaluate.loglik import option_logprobs
from curate.evaluate.prompts import load_eval_prompts, option_continuations, task_prompt

pytestmark = pytest.mark.slow

MEDQA = "qa/medqa/medqa_usmle_4opt_test.jsonl"
FIRSTAID_EVAL = "qa/firstaidqa/eval_questions_40.json"
LLAMA = {"backend": "llamacpp", "n_threads": 1}
TRANSFORMERS = {"backend": "transformers", "dtype": "float32", "device": "cpu", "n_threads": 1}
SHORT_MEDQA_ROWS = (996, 943)  # the two shortest questions of the file: short prompts keep CPU forwards quick


def read_records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_embedded_gemma_on_10_medqa_items_from_the_cli(tmp_path, realdata):
    out = tmp_path / "base"
    code = main(["eval", "embedded", "--set", "medqa-usmle-4-options-test", "--path", str(realdata / MEDQA),
                 "--limit", "10", "--seed", "0", "--scoring", "generate", "--shots", "3", "--option", "n_threads=1",
                 "-o", str(out), "--no-progress"])  # generated answers, not the base model's default loglik
    assert code == 0
    summary, records = json.loads((out / "summary.json").read_text()), read_records(out)
    assert len(records) == 10 and summary["set"]["n"] == 10 and summary["set"]["available"] == 1273
    assert all(r["output"] and r["finish_reason"] in ("stop", "length") and r["parse_method"] for r in records)
    assert all(r["parsed"] in (None, *"ABCD") and r["correct"] == (r["parsed"] == r["gold"]) for r in records)
    accuracy = summary["metrics"]["accuracy"]
    assert accuracy["value"] == pytest.approx(np.mean([r["correct"] for r in records]))
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"] and accuracy["n"] == 10
    assert summary["model"]["fingerprint"]["kind"] == "gguf" and len(summary["model"]["fingerprint"]["sha256"]) == 64
    assert summary["settings"]["precision"] == {"runtime": "llama.cpp", "weights": "gguf MOSTLY_Q4_K_M"}
    assert summary["settings"]["decoding"]["mcq"]["temperature"] == 0.0
    assert summary["counts"]["unparsed"] == sum(r["parse_method"] == "unparsed" for r in records)
    print(f"\nembedded Gemma 3 270M, 10 MedQA items: accuracy {accuracy['value']:.2f} "
          f"[{accuracy['ci_low']:.2f}, {accuracy['ci_high']:.2f}], unparsed {summary['counts']['unparsed']}")


def test_embedded_gemma_judges_two_firstaid_answers(tmp_path, realdata):
    eval_set = load_eval_set(str(realdata / FIRSTAID_EVAL), limit=2, seed=0)
    summary = evaluate(LLAMA, eval_set, tmp_path / "fa", judge=LLAMA,
                       settings={"style": "completion", "max_tokens_open": 32, "judge_max_tokens": 100})
    records = read_records(tmp_path / "fa")
    assert len(records) == 2 and all(r["task"] == "open" and r["output"].strip() for r in records)
    for r in records:
        judged = r["judge"]
        assert judged["verdict"] in (*VERDICTS, UNSCORED) and 1 <= judged["attempts"] <= 3
        assert (judged["verdict"] == UNSCORED) == (r["score"] is None)
        assert len(judged["failures"]) == judged["attempts"] - (judged["verdict"] != UNSCORED)
        assert 0.0 <= r["token_f1"] <= 1.0 and 0.0 <= r["rouge_l"] <= 1.0
    assert sum(summary["counts"]["verdicts"].values()) == 2
    assert summary["settings"]["judge"]["fingerprint"]["kind"] == "gguf"
    assert summary["settings"]["judge"]["schema"]["required"] == ["rationale", "verdict"]
    assert any("grading itself" in w for w in summary["warnings"])


def write_lora(folder: Path, seed: int = 0) -> Path:
    """A rank-4 LoRA on every q_proj of Gemma 3 270M (hidden 640 -> 4 heads x 256), random A and B, in PEFT's files."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(18):
        name = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
        tensors[f"{name}.lora_A.weight"] = torch.randn(4, 640, generator=generator) * 0.05
        tensors[f"{name}.lora_B.weight"] = torch.randn(1024, 4, generator=generator) * 0.05
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "embedded", "r": 4,
              "lora_alpha": 8, "lora_dropout": 0.0, "bias": "none", "target_modules": ["q_proj"],
              "fan_in_fan_out": False, "inference_mode": True}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_loglik_base_vs_adapter_with_transformers(tmp_path, realdata):
    raw = (realdata / MEDQA).read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(raw[i] for i in SHORT_MEDQA_ROWS) + "\n")
    eval_set = load_eval_set(str(short))
    settings = {"scoring": "loglik", "shots": 0, "style": "completion"}
    adapter = write_lora(tmp_path / "adapter")
    comparison = compare_models(TRANSFORMERS, TRANSFORMERS, eval_set, tmp_path / "cmp", tuned_adapter=adapter,
                                settings=settings)
    base, tuned = read_records(tmp_path / "cmp/base"), read_records(tmp_path / "cmp/tuned")
    assert comparison["n_paired"] == 2 and not comparison["forced"]
    assert json.loads((tmp_path / "cmp/comparison.json").read_text())["n_paired"] == 2
    tuned_summary = json.loads((tmp_path / "cmp/tuned/summary.json").read_text())
    assert tuned_summary["model"]["adapter_fingerprint"]["kind"] == "folder"
    assert tuned_summary["settings"]["precision"]["dtype"] == "float32"
    for b, t in zip(base, tuned):
        assert b["prompt_sha256"] == t["prompt_sha256"] and b["parse_method"] == "loglik"
        assert max(abs(b["option_logprobs"][k] - t["option_logprobs"][k]) for k in "ABCD") > 1e-3  # adapter acts

    # the same prompts through llama.cpp (same GGUF weights, quantized arithmetic): close log-probabilities
    llama, prompts = load_model(LLAMA), load_eval_prompts()
    try:
        for item, b in zip(eval_set.items, base):
            prompt = task_prompt(prompts, "mcq", item.query("text"), "completion", 0, "text")
            theirs = option_logprobs(llama.llm, prompt, option_continuations("mcq", item.choices, "completion", "text"))
            ours = b["option_logprobs"]
            assert all(abs(theirs[k] - ours[k]) < 0.3 + 0.05 * abs(ours[k]) for k in "ABCD"), (theirs, ours)
    finally:
        llama.llm.close()
