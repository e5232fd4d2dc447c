"""The quality stages run from a pipeline YAML (``curate.orchestrate.run_plan``) and from ``curate filter`` on real
FirstAidQA."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from curate.cli import main
from curate.demo import prepare
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import load_plan

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
EVAL40 = "qa/firstaidqa/eval_questions_40.json"


def stages(realdata: Path) -> list[dict]:
    return [
        {"stage": "heuristics", "answer": {"min_words": 12}},
        {"stage": "pii"},
        {"stage": "grounding", "semantic": False, "negation": False},
        {"stage": "decontaminate", "eval_sets": [{"name": "fa40", "path": str(realdata / EVAL40),
                                                  "records": "questions", "fields": ["question"]}]},
        {"stage": "dedup", "threshold": 0.8},
    ]


def test_pipeline_counts_every_drop_by_reason(tmp_path, realdata):
    spec = {"name": "quality", "batch_size": 500, "stages": stages(realdata), "sources": [
        {"source": "hf_qa", "name": "firstaidqa", "path": str(realdata / FIRSTAID), "license": "unknown"}]}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = run_plan(load_plan(path, tmp_path / "run"))
    by_stage = {s.stage: s for s in report.stages}
    assert by_stage["ingest"].rows_out == 5550
    short = by_stage["heuristics"].dropped
    assert set(short) == {"answer_too_short"} and short["answer_too_short"] > 0
    assert by_stage["dedup"].dropped["exact_duplicate"] >= 30
    for s in report.stages[1:]:
        assert s.rows_in == s.rows_out + sum(s.dropped.values())
    rejects = read_jsonl(tmp_path / "run" / "06-dedup" / "rejects.jsonl")
    assert len(rejects) == sum(by_stage["dedup"].dropped.values())
    kept = pq.read_table(sorted((tmp_path / "run" / "06-dedup").glob("part-*.parquet"))).to_pylist()
    kept_ids = {r["id"] for r in kept}
    for r in rejects:
        assert r["reason"] in ("exact_duplicate", "near_duplicate")
        assert json.loads(r["detail"])["duplicate_of"] in kept_ids | {r["id"]}
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [s["stage"] for s in saved["stages"]] == ["ingest", "heuristics", "pii", "grounding", "decontaminate",
                                                     "dedup"]


def test_curate_filter_cli(tmp_path, realdata, capsys):
    spec = {"name": "ingest-only", "sources": [{"source": "hf_qa", "name": "firstaidqa", "limit": 1500,
                                                "path": str(realdata / FIRSTAID), "license": "unknown"}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    run_plan(load_plan(tmp_path / "p.yaml", tmp_path / "run"))
    config = tmp_path / "filters.yaml"
    config.write_text(yaml.safe_dump({"batch_size": 400, "stages": stages(realdata)}))
    out = tmp_path / "filtered"
    assert main(["filter", str(tmp_path / "run" / "01-ingest"), "-o", str(out), "--config", str(config),
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["heuristics", "pii", "grounding", "decontaminate", "dedup"]
    assert report["stages"][0]["rows_in"] == 1500 and 0 < report["rows_out"] < 1500
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "01-heuristics", "02-pii", "03-grounding", "04-decontaminate", "05-dedup"]
    assert "answer_too_short" in report["stages"][0]["dropped"] and "heuristics" in capsys.readouterr().out
    assert main(["filter", str(tmp_path / "run" / "01-ingest"), "-o", str(out), "--config", str(config),
                 "--no-progress"]) == 0
    assert all(s["cached"] for s in json.loads((out / "report.json").read_text())["stages"])
    config.write_text(yaml.safe_dump({"stages": [{"stage": "dedup", "treshold": 0.8}]}))
    assert main(["filter", str(tmp_path / "run" / "01-ingest"), "-o", str(out), "--config", str(config)]) == 2
    assert main(["filter", str(tmp_path / "nowhere"), "-o", str(out), "--config", str(config)]) == 2


def test_pipeline_grounds_synthesized_answers_in_their_context(tmp_path):
    """Pairs read off the demo manual (templates, no model) carry the passages they came from and are grounded
    against them; the demo's QA pairs have no context and pass unscored."""
    sources = prepare(tmp_path / "sources")
    qa_rows = len((tmp_path / "sources/qa.jsonl").read_text().splitlines())
    spec = {"name": "grounded", "sources": [
        {"source": "pdf", "name": "manual", "path": str(tmp_path / "sources/firstaid.pdf"), "license": "apache-2.0"},
        {"source": "hf_qa", "name": "pairs", "path": str(tmp_path / "sources/qa.jsonl"), "license": "apache-2.0"}],
        "stages": [{"stage": "chunk", "size": 160, "overlap": 24}, {"stage": "index"},
                   {"stage": "synth_qa", "answer_mode": "extractive", "question_source": "templates"},
                   {"stage": "select", "kinds": ["qa"]}, {"stage": "grounding"}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    report = run_plan(load_plan(tmp_path / "p.yaml", tmp_path / "run"))
    grounding = {s.stage: s for s in report.stages}["grounding"]
    kept = pq.read_table(sorted((tmp_path / "run/06-grounding").glob("part-*.parquet"))).to_pylist()
    synthesized = [r for r in kept if r["context"]]
    assert sources and grounding.counters["no_context"] == qa_rows == len(kept) - len(synthesized)
    assert len(synthesized) >= 3 and grounding.rows_in == len(kept) + sum(grounding.dropped.values())
    for row in kept:
        if row["context"]:  # an extractive answer is a span of its own chunk, which the context holds (with the
            # run-in heading the unit leaves out, "Severe bleeding Apply ...": a sentence apart, not the same one)
            assert row["grounding_lexical"] == 1.0 and row["grounding_semantic"] > 0.8
            assert " ".join(row["messages"][-1]["content"].split()) in " ".join(row["context"].split())
        else:
            assert row["grounding_lexical"] is None and row["grounding_semantic"] is None
