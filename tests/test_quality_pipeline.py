"""The quality stages run from a pipeline YAML by ``curate.run`` and from ``curate filter`` on real FirstAidQA."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from curate.cli import main
from curate.io import read_jsonl
from curate.pipeline import load_plan
from curate.run import run_plan

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
    assert by_stage["grounding"].counters["no_context"] == by_stage["grounding"].rows_in
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
