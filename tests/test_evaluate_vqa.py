"""Vision evaluation on real VQA-RAD questions (CC0, ../shared/realdata/vqa/vqa_rad, read in place): the set's image
items, the short-answer scoring on literal strings, a tiny Gemma 3 vision-language model built here from configs
(one-layer SigLIP, 28 px, 4 image tokens; random weights, so its answers are noise) scored on CPU through the
transformers backend, the refusal of a text-only model, and base vs a tiny LoRA adapter compared.

The tiny models read with a byte-level BPE tokenizer trained here on VQA-RAD's questions and answers, carrying
Gemma's special tokens. Assertions are about mechanics: every score is recomputed from the written outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from curate.evaluate import EvalError, compare_models, evaluate, load_eval_set
from curate.evaluate.lexical import token_f1
from curate.evaluate.vqa import closed_fields, exact_match, short_answer, vqa_prompt
from curate.llm.hf import TransformersLLM

VQA_RAD = "vqa/vqa_rad"
SETTINGS = {"style": "chat", "max_tokens_choice": 4, "max_tokens_open": 6, "resamples": 200, "batch_size": 6}


@pytest.fixture(scope="module")
def vqa_root(realdata) -> Path:
    return realdata / VQA_RAD


@pytest.fixture(scope="module")
def raw(vqa_root) -> dict[int, dict]:
    """testset.json by qid, read with plain json."""
    return {r["qid"]: r for r in json.loads((vqa_root / "testset.json").read_text())}


@pytest.fixture(scope="module")
def vqa_set(vqa_root):
    return load_eval_set(str(vqa_root), limit=12, seed=0)


@pytest.fixture(scope="module")
def tokenizer(raw, train_tokenizer):
    texts = [f"{r['question']}\n{r['answer']}" for r in raw.values()] + ["user\nmodel\nAnswer with yes or no."]
    return train_tokenizer(texts, 500)


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory, tokenizer, text_config) -> Path:
    """A text-only Gemma3ForCausalLM folder."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "gemma3-text"
    Gemma3ForCausalLM(Gemma3TextConfig(**text_config(len(tokenizer)))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(folder: Path) -> dict:
    return {"backend": "transformers", "model": str(folder), "device": "cpu", "dtype": "float32", "batch_size": 6}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _qid(locator: str) -> int:
    return int(locator.rsplit("qid=", 1)[1])


# ---- scoring on literal strings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("output, reference, parsed, method, correct", [
    ("Yes, there is an aneurysm.", "yes", "yes", "yes_no", True),
    ("no", "Yes", "no", "yes_no", False),
    ("Answer: NO.\nThe lungs are clear.", "No", "no", "yes_no", True),
    ("<think>the aorta is wide</think>\nyes", "yes", "yes", "yes_no", True),
    ("Possibly an aneurysm", "yes", None, "unparsed", False),
    ("", "no", None, "unparsed", False),
    ("The left side.", "Left side", "left side", "exact", True),
    ("Left", "Right", "left", "exact", False),
])
def test_closed_answers_are_scored_by_yes_no_or_exact_match(output, reference, parsed, method, correct):
    assert closed_fields(output, reference) == {"parsed": parsed, "parse_method": method, "correct": correct}


def test_open_answers_match_after_normalisation():
    assert short_answer("\n  Answer: The 3rd ventricle.\nsecond line") == "The 3rd ventricle."
    assert exact_match("Answer: the 3rd ventricle.", "3rd Ventricle")
    assert exact_match("3.4 cm", "3.4 cm") and not exact_match("3.4 centimetres", "3.4 cm")
    assert not exact_match("cardiomegaly", "cardiomegaly with pulmonary edema")
    assert token_f1(short_answer("Cardiomegaly.\nand more"), "cardiomegaly with pulmonary edema") == pytest.approx(0.4)


# ---- the set ---------------------------------------------------------------------------------------------------------

def test_vqa_rad_folder_becomes_closed_and_open_image_items(vqa_root, raw, vqa_set):
    present = {p.name for p in (vqa_root / "images").iterdir()}
    assert vqa_set.layout == "vqa_rad" and vqa_set.name == "vqa_rad:test" and len(vqa_set.items) == 12
    assert vqa_set.rejected == {"missing_image": sum(1 for r in raw.values() if r["image_name"] not in present)}
    tasks = {item.task for item in vqa_set.items}
    assert tasks == {"closed", "open"}
    for item in vqa_set.items:
        record = raw[_qid(item.locator)]
        assert item.task == record["answer_type"].strip().lower()
        assert (item.question, item.reference) == (record["question"].strip(), str(record["answer"]).strip())
        assert item.image_name == record["image_name"]
        assert item.image == (vqa_root / "images" / record["image_name"]).read_bytes()
    assert load_eval_set(str(vqa_root), layout="vqa_rad", limit=12, seed=0).fingerprint == vqa_set.fingerprint


# ---- the backend -----------------------------------------------------------------------------------------------------

def test_image_prompt_renders_one_image_token_through_the_template_or_gemma_markup(tiny_vlm, vqa_set):
    llm = TransformersLLM(str(tiny_vlm), device="cpu", dtype="float32")
    try:
        assert llm.vision
        item = vqa_set.items[0]
        prompt = vqa_prompt(item.task, item.question, item.image)
        templated = llm.render(prompt)
        assert templated.count("<start_of_image>") == 1 and item.question in templated
        assert templated.startswith("<start_of_turn>user\n<start_of_image>") and templated.endswith("model\n")
        llm.processor.chat_template = None
        assert llm.render(prompt) == templated  # the hand-written Gemma markup is the same text
        enc = llm._encode([templated], [[item.image]])
        assert enc["pixel_values"].shape == (1, 3, 28, 28)
        assert enc["input_ids"][0].tolist().count(llm.tokenizer.image_token_id) == 4
    finally:
        llm.close()


# ---- scoring a vision model ------------------------------------------------------------------------------------------

def test_tiny_vision_model_scores_vqa_rad_closed_and_open(tmp_path, tiny_vlm, vqa_root, vqa_set):
    out = tmp_path / "run"
    summary = evaluate(_config(tiny_vlm), vqa_set, out, settings=SETTINGS)
    records = _records(out)
    assert [r["id"] for r in records] == [item.id for item in vqa_set.items]
    for r in records:
        image = (vqa_root / "images" / r["image"]).read_bytes()
        assert r["image_sha256"] == hashlib.sha256(image).hexdigest() and r["error"] is None
        assert isinstance(r["output"], str) and r["completion_tokens"] <= 6
        if r["task"] == "closed":
            assert {k: r[k] for k in ("parsed", "parse_method", "correct")} == closed_fields(r["output"],
                                                                                            r["reference"])
        else:
            assert r["exact_match"] == exact_match(r["output"], r["reference"])
            assert r["token_f1"] == token_f1(short_answer(r["output"]), r["reference"])
            assert "reference_nll" not in r
    closed = [r for r in records if r["task"] == "closed"]
    opened = [r for r in records if r["task"] == "open"]
    metrics = summary["metrics"]
    assert metrics["closed_accuracy"]["n"] == len(closed) and metrics["exact_match"]["n"] == len(opened)
    assert metrics["closed_accuracy"]["value"] == pytest.approx(sum(r["correct"] for r in closed) / len(closed))
    assert metrics["token_f1"]["value"] == pytest.approx(sum(r["token_f1"] for r in opened) / len(opened))
    for name in ("closed_accuracy", "exact_match", "token_f1", "rouge_l"):
        m = metrics[name]
        assert m["ci_low"] <= m["value"] <= m["ci_high"], name
    assert "accuracy" not in metrics and "reference_nll" not in metrics
    assert summary["counts"]["tasks"] == {"closed": len(closed), "open": len(opened)}
    assert summary["counts"]["unparsed"] == sum(1 for r in closed if r["parse_method"] == "unparsed")
    assert summary["counts"]["reference_nll_skipped"] == 0 and summary["model"]["config"]["model"] == str(tiny_vlm)
    assert summary["set"]["rejected"]["missing_image"] > 0 and (out / "rejects.jsonl").is_file()


def test_text_only_model_refuses_image_items_before_scoring(tmp_path, tiny_text, vqa_set):
    out = tmp_path / "text"
    with pytest.raises(EvalError, match=r"12 image items .* reads no images"):
        evaluate(_config(tiny_text), vqa_set, out, settings=SETTINGS)
    assert not (out / "predictions.jsonl").exists()
    llm = TransformersLLM(str(tiny_text), device="cpu", dtype="float32")
    try:
        item = vqa_set.items[0]
        with pytest.raises(ValueError, match="text-only model"):
            llm.generate(vqa_prompt(item.task, item.question, item.image))
    finally:
        llm.close()


def test_base_and_tuned_vision_models_compare_on_the_same_items(tmp_path, tiny_vlm, vqa_set):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(1)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                      init_lora_weights=False)
    get_peft_model(AutoModelForImageTextToText.from_pretrained(tiny_vlm), lora).save_pretrained(adapter)

    comparison = compare_models(_config(tiny_vlm), _config(tiny_vlm), vqa_set, tmp_path / "cmp", tuned_adapter=adapter,
                                settings=SETTINGS)
    assert comparison["n_paired"] == 12 and comparison["differences"] == [] and not comparison["forced"]
    assert comparison["b"]["model"]["adapter"] == str(adapter)
    base, tuned = _records(tmp_path / "cmp" / "base"), _records(tmp_path / "cmp" / "tuned")
    assert [a["prompt_sha256"] for a in base] == [b["prompt_sha256"] for b in tuned]
    assert any(a["output"] != b["output"] for a, b in zip(base, tuned))  # the adapter is applied
    for name in ("closed_accuracy", "exact_match", "token_f1"):
        result = comparison["metrics"][name]
        assert result["difference"]["value"] == pytest.approx(result["b"]["value"] - result["a"]["value"])
        assert result["difference"]["ci_low"] <= result["difference"]["value"] <= result["difference"]["ci_high"]
    assert set(comparison["metrics"]["closed_accuracy"]["test"]) >= {"p_value"}
    closed = [(a["correct"], b["correct"]) for a, b in zip(base, tuned) if a["task"] == "closed"]
    assert comparison["metrics"]["closed_accuracy"]["b"]["value"] == pytest.approx(
        sum(b for _, b in closed) / len(closed))
