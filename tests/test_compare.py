"""The compare step on a tiny Gemma 3n: base and tuned answers to a fixed question and to held-out pairs of the
export's test split, each of those with its reference answer, its cited pages and the reference's NLL under both
models; then the run's console report with the table and a verdict on what the evaluation can show."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from rich.console import Console

from curate.cli import main
from curate.io import write_parquet
from curate.report import evaluation_verdict, print_report
from curate.schema import GROUNDED_SCHEMA, make_qa
from curate.stage import columns
from test_finetune import FIRSTAID, TINY_TRAIN, _recipe, tiny_gemma3n, tokenizer  # noqa: F401 (fixtures)
from test_ifd import direct_nll


def grounded_rows(items: list[dict]) -> list[dict]:
    """FirstAidQA pairs as synth_qa leaves them: each citing the page its answer is on."""
    return [{**make_qa(question=i["question"], answer=i["answer"], source="manual", license="cc-by-4.0",
                       origin="manual.pdf", locator=str(k)),
             "context": f"[1] {i['answer']}",
             "citations": [{"chunk_id": f"c{k}", "doc_id": "manual", "page": k + 1, "page_end": k + 1}]}
            for k, i in enumerate(items)]


def test_held_out_pairs_are_answered_with_reference_nll_and_source(tmp_path, realdata, tiny_gemma3n):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    items = json.loads((realdata / FIRSTAID).read_text())[:20]
    rows = grounded_rows(items)
    (tmp_path / "synth").mkdir()
    write_parquet(tmp_path / "synth/part-00000.parquet", columns(rows, GROUNDED_SCHEMA.names), GROUNDED_SCHEMA)
    _recipe(tmp_path / "tiny.yaml", str(tiny_gemma3n), train={**TINY_TRAIN, "max_steps": 2},
            data={"eval_split": None})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({
        "name": "compare", "run_dir": "run",
        "sources": [{"source": "rows", "name": "manual-pairs", "path": "synth"}],
        "stages": [{"stage": "dedup"}], "export": {"splits": {"train": 0.7, "test": 0.3}},
        "finetune": {"recipe": "tiny.yaml", "compare": {"questions": ["How do you treat a burn?"],
                                                        "from_split": "test", "n": 2, "max_tokens": 4}}}))
    assert main(["run", str(tmp_path / "pipeline.yaml"), "--no-progress"]) == 0

    answers = json.loads((tmp_path / "run/compare.json").read_text())["answers"]
    fixed, *held = answers
    assert fixed["question"] == "How do you treat a burn?" and "reference" not in fixed
    by_question = {r["messages"][0]["content"]: (r, k) for k, r in enumerate(rows)}
    test_ids = set(pq.read_table(next((tmp_path / "run/export/data").glob("test-*.parquet"))).column("id").to_pylist())
    assert len(held) == 2
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3n, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gemma3n)
    for item in held:
        row, k = by_question[item["question"]]
        assert row["id"] in test_ids  # a pair the adapter never trained on
        assert item["reference"] == row["messages"][1]["content"] and item["source"] == f"manual, p. {k + 1}"
        # the base model is asked to complete "Question: ...\nAnswer:"; its reference NLL, computed directly
        expected = direct_nll(model, tok, f"Question: {item['question']}\nAnswer:", " " + item["reference"])
        assert item["base_reference_nll"] == pytest.approx(expected, abs=1e-4)
        assert item["tuned_reference_nll"] != item["base_reference_nll"]

    out = io.StringIO()
    report = json.loads((tmp_path / "run/report.json").read_text())
    print_report(report, Console(file=out, width=250))
    text = out.getvalue()
    assert "reference NLL base -> tuned" in text and f"manual, p. {by_question[held[0]['question']][1] + 1}" in text


def test_the_verdict_says_what_the_numbers_support():
    def comparison(low, high):
        return {"n_paired": 20, "metrics": {"accuracy": {"difference": {"value": (low + high) / 2, "ci_low": low,
                                                                        "ci_high": high}}}}

    assert "no difference" in evaluation_verdict(comparison(-0.1, 0.3)) and "not a better model" in \
        evaluation_verdict(comparison(-0.1, 0.3))
    assert "excludes 0 for accuracy" in evaluation_verdict(comparison(0.05, 0.3))
