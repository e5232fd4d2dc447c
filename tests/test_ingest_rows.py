"""The ``rows`` connector: one run's stage folder read back as the source of another, rows unchanged."""

from __future__ import annotations

import json

import yaml

from curate.cli import main
from curate.io import iter_batches, read_jsonl
from curate.stage import rows

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


def test_a_stage_folder_of_one_run_is_the_source_of_the_next(tmp_path, realdata):
    items = json.loads((realdata / FIRSTAID).read_text())[:12]
    (tmp_path / "pairs.json").write_text(json.dumps(items))
    (tmp_path / "first.yaml").write_text(yaml.safe_dump({
        "name": "first", "run_dir": "first",
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "path": "pairs.json", "license": "cc-by-4.0"}],
        "stages": [{"stage": "select", "min_chars": 300}]}))
    assert main(["run", str(tmp_path / "first.yaml"), "--no-progress"]) == 0
    stage = next((tmp_path / "first").glob("*-select"))
    first = [r for b in iter_batches(stage, 100) for r in rows(b)]
    assert 0 < len(first) < 12

    second = {"name": "second", "run_dir": "second",
              "sources": [{"source": "rows", "name": "earlier", "path": str(stage), "options": {"kinds": ["qa"]}}],
              "stages": [{"stage": "dedup"}]}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    assert main(["run", str(tmp_path / "second.yaml"), "--no-progress"]) == 0
    ingested = [r for b in iter_batches(tmp_path / "second/01-ingest", 100) for r in rows(b)]
    keys = ("id", "kind", "source", "license", "messages", "provenance")
    assert [{k: r[k] for k in keys} for r in ingested] == [{k: r[k] for k in keys} for r in first]

    (tmp_path / "second.yaml").write_text(yaml.safe_dump({**second, "sources": [
        {"source": "rows", "name": "earlier", "path": str(tmp_path / "first")}]}))  # the run folder, not a stage
    assert main(["run", str(tmp_path / "second.yaml"), "--no-progress"]) != 0  # nothing usable: exit code says so
    (reject,) = read_jsonl(tmp_path / "second/01-ingest/rejects.jsonl")
    assert reject["reason"] == "source_error"
    assert "no curate row files" in reject["detail"] and "stage folder" in reject["detail"]
