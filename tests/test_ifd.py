"""The ``ifd`` selection stage: its scores against a direct computation with torch on a tiny model, the top fraction
ranked over the whole input of a pipeline (not batch by batch), and on the embedded Gemma real pairs scoring below
the same answers under another pair's question."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from curate.cli import main
from curate.io import iter_batches, read_jsonl
from curate.quality.ifd import IFD
from curate.stage import rows
from test_finetune import FIRSTAID, tiny_gemma3n, tokenizer  # noqa: F401 (fixtures)


def qa_batch(pairs: list[tuple[str, str]]) -> dict[str, list]:
    return {"kind": ["qa"] * len(pairs),
            "messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in pairs]}


def direct_nll(model, tok, prompt: str, continuation: str) -> float:
    """Mean NLL of the continuation's tokens after the prompt, from one forward pass over BOS + prompt +
    continuation (the continuation's tokens are those beyond the prompt's own)."""
    head = tok(prompt, add_special_tokens=False)["input_ids"]
    full = tok(prompt + continuation, add_special_tokens=False)["input_ids"]
    assert full[:len(head)] == head
    ids = torch.tensor([[tok.bos_token_id] + full])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    start = 1 + len(head)
    return -float(np.mean([logprobs[p - 1, ids[0, p]].item() for p in range(start, ids.shape[1])]))


def test_scores_match_a_direct_computation(realdata, tiny_gemma3n):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = json.loads((realdata / FIRSTAID).read_text())[:4]
    pairs = [(i["question"], i["answer"]) for i in items]
    stage = IFD({"llm": {"backend": "transformers", "model": str(tiny_gemma3n), "dtype": "float32",
                         "device": "cpu"}, "max_ifd": None})
    batch = qa_batch(pairs)
    batch["kind"].append("chunk")  # other kinds pass unscored
    batch["messages"].append(None)
    *out, chunk = rows(stage(batch))
    assert chunk["ifd"] is None and chunk["_drop"] is None
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3n, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gemma3n)
    for row, (question, answer) in zip(out, pairs):
        conditioned = direct_nll(model, tok, f"Question: {question}\nAnswer:", " " + answer)
        alone = direct_nll(model, tok, "", answer)
        assert row["ifd_conditioned_nll"] == pytest.approx(conditioned, abs=1e-4)
        assert row["ifd_direct_nll"] == pytest.approx(alone, abs=1e-4)
        assert row["ifd"] == pytest.approx(math.exp(conditioned - alone), rel=1e-4)
        assert row["_drop"] is None


def test_keep_top_ranks_over_the_whole_input_of_a_pipeline(tmp_path, realdata, tiny_gemma3n):
    items = json.loads((realdata / FIRSTAID).read_text())[:30]
    (tmp_path / "pairs.json").write_text(json.dumps(items))
    llm = {"backend": "transformers", "model": str(tiny_gemma3n), "dtype": "float32", "device": "cpu"}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({
        "name": "ifd", "run_dir": "run", "batch_size": 7,  # 5 batches: a batch-local top 40% would keep other rows
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "path": "pairs.json", "license": "cc-by-4.0"}],
        "stages": [{"stage": "ifd", "llm": llm, "max_ifd": None, "keep_top": 0.4}]}))
    assert main(["run", str(tmp_path / "pipeline.yaml"), "--no-progress"]) == 0
    folder = next((tmp_path / "run").glob("*-ifd"))
    kept = [r for b in iter_batches(folder, 100) for r in rows(b)]
    rejects = read_jsonl(folder / "rejects.jsonl")
    stats = json.loads((folder / "_stage.json").read_text())["stats"]
    scored = [r for r in kept if r["ifd"] is not None]
    assert len(scored) == len(kept) == math.ceil(0.4 * 30)
    assert {r["reason"] for r in rejects} == {"ifd_not_top"} and len(rejects) == 30 - len(scored)
    assert stats["dropped"] == {"ifd_not_top": len(rejects)}
    assert min(r["ifd"] for r in scored) >= max(r["row"]["ifd"] for r in rejects)
    assert all("IFD" in r["detail"] and "top 40%" in r["detail"] for r in rejects)


@pytest.mark.slow
def test_embedded_gemma_finds_real_questions_helpful(realdata):
    """On the embedded Gemma 3 270M (llama.cpp, batched): each FirstAidQA answer is more likely after its own question
    than alone (IFD < 1) and than after another pair's question; ``max_ifd`` drops the mismatched pairs it flags."""
    items = json.loads((realdata / FIRSTAID).read_text())[200:224]
    matched = [(i["question"], i["answer"]) for i in items]
    mismatched = [(items[(k + 7) % len(items)]["question"], i["answer"]) for k, i in enumerate(items)]
    stage = IFD({"max_ifd": 0.7, "n_seq": 16})
    own, other = rows(stage(qa_batch(matched))), rows(stage(qa_batch(mismatched)))
    assert all(r["ifd"] < 1 for r in own)
    assert sum(a["ifd"] < b["ifd"] for a, b in zip(own, other)) >= 0.9 * len(items)
    dropped_own = sum(r["_drop"] == "ifd_unhelpful" for r in own)
    dropped_other = sum(r["_drop"] == "ifd_unhelpful" for r in other)
    assert dropped_other > dropped_own
    # a rerun of the same batch gives the same scores
    again = rows(stage(qa_batch(matched)))
    assert [r["ifd"] for r in again] == [r["ifd"] for r in own]
