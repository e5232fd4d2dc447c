"""The ``rows`` connector: one run's stage folder read back as the source of another, rows unchanged (grounded pairs
with their passages and citations)."""

from __future__ import annotations

import json

import yaml

from curate.cli import main
from curate.io import iter_batches, read_jsonl, write_parquet
from curate.schema import GROUNDED_SCHEMA
from curate.stage import columns, rows

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


def test_a_stage_folder_of_one_run_is_the_source_of_the_next(tmp_path, realdata):
    items = json.loads((realdata / FIRSTAID).read_text())[:12]
    (tmp_path / "pairs.json").write_text(json.dumps(items))
    (tmp_path / "first.yaml").write_text(yaml.safe_dump({
        "name": "first", "run_dir": "first",
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "path": "pairs.json", "license": "cc-by-4.0"}],
        "stages": [{"stage": "select", "min_chars": 300}]}))
    assert main(["run", str(tmp_path / "first.yaml"), "--no-progress"]) == 0
    selected = [r for b in iter_batches(next((tmp_path / "first").glob("*-select")), 100) for r in rows(b)]
    assert 0 < len(selected) < 12
    # as synth_qa leaves them: each pair with the passage it was written from and its citation
    first = [{**r, "context": f"[1] {r['messages'][-1]['content']}",
              "citations": [{"chunk_id": f"c{i}", "doc_id": "d", "page": i + 1, "page_end": i + 1}]}
             for i, r in enumerate(selected)]
    stage = tmp_path / "first" / "09-synth_qa"
    stage.mkdir()
    write_parquet(stage / "part-00000.parquet", columns(first, GROUNDED_SCHEMA.names), GROUNDED_SCHEMA)

    second = {"name": "second", "run_dir": "second",
              "sources": [{"source": "rows", "name": "earlier", "path": str(stage), "options": {"kinds": ["qa"]}}],
              "stages": [{"stage": "grounding"}]}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    assert main(["run", str(tmp_path / "second.yaml"), "--no-progress"]) == 0
    ingested = [r for b in iter_batches(tmp_path / "second/01-ingest", 100) for r in rows(b)]
    keys = ("id", "kind", "source", "license", "messages", "provenance", "context", "citations")
    assert [{k: r[k] for k in keys} for r in ingested] == [{k: r[k] for k in keys} for r in first]
    grounded = json.loads((tmp_path / "second/02-grounding/_stage.json").read_text())["stats"]
    assert grounded["rows_out"] == len(first) and "no_context" not in grounded["counters"]  # the passages arrived

    (tmp_path / "second.yaml").write_text(yaml.safe_dump({**second, "sources": [
        {"source": "rows", "name": "earlier", "path": str(stage), "options": {"kind": ["qa"]}}]}))  # a typo
    assert main(["run", str(tmp_path / "second.yaml"), "--dry-run"]) == 2

    (tmp_path / "second.yaml").write_text(yaml.safe_dump({**second, "sources": [
        {"source": "rows", "name": "earlier", "path": str(tmp_path / "first")}]}))  # the run folder, not a stage
    assert main(["run", str(tmp_path / "second.yaml"), "--no-progress"]) != 0  # nothing usable: exit code says so
    (reject,) = read_jsonl(tmp_path / "second/01-ingest/rejects.jsonl")
    assert reject["reason"] == "source_error"
    assert "no curate row files" in reject["detail"] and "stage folder" in reject["detail"]
