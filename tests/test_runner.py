"""The pipeline runner on real FirstAidQA rows: outputs, rejects, report, caching, --force, resume, workers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from curate.cli import main
from curate.executors import ExecutorSpec
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import PipelineError, load_plan
from curate.stage import Stage, register
from curate.steps import StepFailed

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


def write_pipeline(tmp_path: Path, realdata: Path, stages: list, limit: int = 600, **extra) -> Path:
    spec = {"name": "t", "batch_size": 100, "sources": [
        {"source": "hf_qa", "name": "firstaidqa", "path": str(realdata / FIRSTAID), "license": "unknown",
         "limit": limit}], "stages": stages, **extra}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def table(folder: Path):
    return pq.read_table(sorted(folder.glob("part-*.parquet"))).to_pylist() if list(folder.glob("part-*")) else []


def test_run_writes_stages_rejects_and_report(tmp_path, realdata):
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 300}])
    report = run_plan(load_plan(path, tmp_path / "run"))
    run = tmp_path / "run"
    ingest, select = report.stages
    assert (ingest.rows_in, ingest.rows_out) == (600, 600)
    rows = table(run / "02-select")
    lengths = [len("\n".join(m["content"] for m in r["messages"]).strip()) for r in table(run / "01-ingest")]
    assert len(rows) == sum(n >= 300 for n in lengths) == select.rows_out
    assert select.dropped == {"too_short": sum(n < 300 for n in lengths)} and select.dropped["too_short"] > 0
    rejects = read_jsonl(run / "02-select" / "rejects.jsonl")
    assert len(rejects) == select.dropped["too_short"]
    assert all(r["reason"] == "too_short" and int(r["detail"]) < 300 and r["row"]["id"] for r in rejects)
    meta = json.loads((run / "02-select" / "_stage.json").read_text())
    assert meta["config"]["min_chars"] == 300 and meta["input_fingerprint"] and meta["version"]
    saved = json.loads((run / "report.json").read_text())
    assert saved["rows_out"] == len(rows) and [s["stage"] for s in saved["stages"]] == ["ingest", "select"]
    # the stage folder is a plain parquet dataset with the schema's features
    ds = datasets.load_dataset("parquet", data_files=str(run / "02-select" / "part-*.parquet"), split="train")
    assert ds.num_rows == len(rows) and isinstance(ds.features["image"], datasets.Image)


def test_rerun_is_cached_and_config_change_reruns_only_that_stage(tmp_path, realdata):
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 300}])
    run_plan(load_plan(path, tmp_path / "run"))
    again = run_plan(load_plan(path, tmp_path / "run"))
    assert [s.cached for s in again.stages] == [True, True]
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 100}])
    changed = run_plan(load_plan(path, tmp_path / "run"))
    assert [s.cached for s in changed.stages] == [True, False]
    assert changed.stages[1].rows_out > again.stages[1].rows_out
    forced = run_plan(load_plan(path, tmp_path / "run"), force_step="ingest")
    assert [s.cached for s in forced.stages] == [False, False]
    with pytest.raises(ValueError, match="no such step"):
        run_plan(load_plan(path, tmp_path / "run"), force_step="nope")


def test_partial_stage_resumes_batch_by_batch(tmp_path, realdata):
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 300}])
    run_plan(load_plan(path, tmp_path / "run"))
    folder = tmp_path / "run" / "02-select"
    full = table(folder)
    # Simulate a kill after batch 2: the stage never finished, later batches never written.
    fp = json.loads((folder / "_stage.json").read_text())["fingerprint"]
    (folder / "_stage.json").unlink()
    (folder / "_progress.json").write_text(json.dumps({"fingerprint": fp}))
    shutil.copy(folder / "rejects.jsonl", tmp_path / "rejects.full")
    for k in (3, 4, 5):
        (folder / f"shard-{k:05d}.json").unlink()
        (folder / f"part-{k:05d}.parquet").unlink()
    for k in range(3):  # shard reject files are merged and removed at the end; recreate the kept ones
        (folder / f"rejects-{k:05d}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in read_jsonl(tmp_path / "rejects.full") if r["batch"] == k))
    mtimes = {k: (folder / f"part-{k:05d}.parquet").stat().st_mtime_ns for k in range(3)}
    resumed = run_plan(load_plan(path, tmp_path / "run"))
    assert table(folder) == full
    assert {k: (folder / f"part-{k:05d}.parquet").stat().st_mtime_ns for k in range(3)} == mtimes
    assert read_jsonl(folder / "rejects.jsonl") == read_jsonl(tmp_path / "rejects.full")
    assert resumed.stages[1].rows_out == len(full)


def test_parallel_workers_match_sequential(tmp_path, realdata):
    seq = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 250}])
    run_plan(load_plan(seq, tmp_path / "seq"))
    par = write_pipeline(tmp_path, realdata, [{"stage": "select", "min_chars": 250, "workers": 2}])
    run_plan(load_plan(par, tmp_path / "par"), executor=ExecutorSpec(kind="processes"))
    assert table(tmp_path / "par" / "02-select") == table(tmp_path / "seq" / "02-select")
    assert read_jsonl(tmp_path / "par" / "02-select" / "rejects.jsonl") == \
        read_jsonl(tmp_path / "seq" / "02-select" / "rejects.jsonl")


def test_dry_run_reports_every_problem(tmp_path, realdata, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "sources": [
        {"source": "hf_qa", "path": str(tmp_path / "missing.json")},
        {"source": "no-such-source"},
        {"source": "pdf", "path": str(realdata / "pdf"), "options": {"engnie": "pypdf"}},
    ], "stages": [{"stage": "select", "min_chras": 3}, {"stage": "nope"}]}))
    assert main(["run", str(path), "--dry-run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    for needle in ["missing.json does not exist", "no-such-source", "engnie", "min_chras", "unknown stage 'nope'"]:
        assert needle in err, needle
    with pytest.raises(PipelineError):
        load_plan(path)


def test_dry_run_prints_plan_without_running(tmp_path, realdata, capsys):
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "kinds": ["qa"]}])
    assert main(["run", str(path), "--dry-run", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "firstaidqa" in out and "02-select" in out and not (tmp_path / "run").exists()


class Undeclared(Stage):
    name = "undeclared"

    def process_batch(self, batch):
        return {**batch, "surprise": [1] * len(batch["id"])}


register("undeclared", f"{__name__}:Undeclared")


def test_undeclared_output_column_fails_clearly(tmp_path, realdata, capsys):
    path = write_pipeline(tmp_path, realdata, [{"stage": "undeclared"}], limit=50)
    with pytest.raises(StepFailed, match="undeclared column"):
        run_plan(load_plan(path, tmp_path / "run"))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run2"), "--no-progress"]) == 3


def test_cli_run_and_report(tmp_path, realdata, capsys):
    path = write_pipeline(tmp_path, realdata, [{"stage": "select", "kinds": ["page"]}], limit=50)
    # every row is a qa row, so nothing usable comes out: exit 1
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    assert main(["report", str(tmp_path / "run")]) == 0
    assert "kind: 50" in capsys.readouterr().out


