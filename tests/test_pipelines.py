"""The shipped pipelines end to end, offline: dry runs, medrescue and radiology-vqa on local copies of their
sources with the embedded Gemma, and a synthesis run killed with SIGKILL at several points that must finish with
exactly the rows of an uninterrupted run."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from curate.cli import main
from curate.demo import prepare
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import load_plan

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_SYNTH = {"llm": {"backend": "llamacpp"}, "batch_size": 2, "questions_per_chunk": 1, "top_k": 2}


def export_rows(run: Path) -> dict[str, list[dict]]:
    return {split: pq.read_table(sorted((run / "export" / "data").glob(f"{split}-*.parquet"))).to_pylist()
            for split in ("train", "validation", "test") if list((run / "export" / "data").glob(f"{split}-*"))}


@pytest.mark.parametrize("name", ["demo", "medrescue", "radiology-vqa"])
def test_shipped_pipelines_pass_dry_run_offline(name, tmp_path, capsys, monkeypatch):
    if name == "demo":
        prepare(REPO / "runs" / "demo-sources")
    assert main(["run", str(REPO / "pipelines" / f"{name}.yaml"), "--dry-run", "--run-dir", str(tmp_path)]) == 0
    assert "finetune" in capsys.readouterr().out


def test_medrescue_on_local_copies_with_the_embedded_gemma(tmp_path, realdata):
    qa = realdata / "qa"
    # the training QA set, with two FirstAid evaluation questions planted in it: decontamination must remove them
    evals = json.loads((qa / "firstaidqa/eval_questions_40.json").read_text())["questions"][:2]
    planted = tmp_path / "firstaidqa_plus_eval.json"
    planted.write_text(json.dumps(json.loads((qa / "firstaidqa/firstaidqa_v1.json").read_text())[:298] +
                                  [{"question": e["question"], "answer": e["reference"]} for e in evals]))
    paths = {"fm-4-25-11-first-aid": str(realdata / "pdf/us_army_FM4-25.11_first_aid.pdf"),
             "who-psychological-first-aid": str(realdata / "pdf/who_psychological_first_aid_field_workers_2011.pdf"),
             "firstaidqa": str(planted)}
    no_local_copy = ("who-basic-emergency-care", "ifrc-first-aid-guidelines-2020", "medquad-medicalqna",
                     "medical-o1-reasoning-sft")
    settings = {
        **{f"sources.{s}.enabled": False for s in no_local_copy},
        "sources.fm-4-25-11-first-aid.limit": 1, "sources.who-psychological-first-aid.limit": 1,
        **{f"synth_qa.{k}": v for k, v in EMBEDDED_SYNTH.items()},
        "decontaminate.eval_sets": [
            {"source": "firstaidqa-eval-40", "path": str(qa / "firstaidqa/eval_questions_40.json")},
            {"source": "medqa-usmle-4-options-test", "path": str(qa / "medqa/medqa_usmle_4opt_test.jsonl")}],
        "dedup.semantic": False, "finetune": None,
    }
    report = run_plan(load_plan(REPO / "pipelines/medrescue.yaml", tmp_path / "run", paths, settings), push=False)
    stages = {s.stage: s for s in report.stages}
    assert stages["ingest"].rows_out == 1 + 1 + 300
    assert stages["decontaminate"].dropped.get("contaminated", 0) >= 2
    decontaminated = next((tmp_path / "run").glob("*-decontaminate"))
    rejected = {r["row"]["messages"][0]["content"] for r in read_jsonl(decontaminated / "rejects.jsonl")}
    assert {e["question"] for e in evals} <= rejected
    rows = [r for split in export_rows(tmp_path / "run").values() for r in split]
    assert stages["export"].rows_out == len(rows) > 250
    assert "firstaidqa" in {r["source"] for r in rows}
    card = (tmp_path / "run/export/README.md").read_text()
    assert "firstaidqa" in card and "not for clinical use" in card.lower()
    saved = json.loads((tmp_path / "run/report.json").read_text())
    assert [s["stage"] for s in saved["stages"]][:4] == ["ingest", "chunk", "index", "synth_qa"]


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (32, 24), color=shade).save(buf, "JPEG")
    return buf.getvalue()


def _answer(row: dict) -> str:
    """The text of a messages row's answer (its content is a string or a list of parts)."""
    content = row["messages"][1]["content"]
    return content if isinstance(content, str) else " ".join(p["text"] or "" for p in content if p["type"] == "text")


def test_radiology_vqa_on_local_copies(tmp_path, realdata):
    images = tmp_path / "images"
    images.mkdir()
    ids = ["ROCOv2_2023_test_000001", "ROCOv2_2023_test_000003", "ROCOv2_2023_test_000005"]
    for i, image_id in enumerate(ids):
        (images / f"{image_id}.jpg").write_bytes(_jpeg(40 * i))
    settings = {"sources.rocov2-radiology.options": {"image_dir": str(images), "split": "test"},
                "sources.dicom-local.enabled": True, "finetune": None}
    paths = {"rocov2-radiology": str(realdata / "rocov2"), "dicom-local": str(realdata / "dicom")}
    report = run_plan(load_plan(REPO / "pipelines/radiology-vqa.yaml", tmp_path / "run", paths, settings))
    ingest = report.stages[0]
    assert ingest.dropped["missing_image"] > 9000  # every caption without an image is reported, not lost
    export = datasets.load_dataset(str(tmp_path / "run/export"))
    rows = [r for split in export.values() for r in split]
    assert rows and all(r["images"] and r["images"][0].size for r in rows)  # images decode after load_dataset
    questions = {r["messages"][0]["content"][1]["text"] for r in rows}
    assert "Which imaging modality is this?" in questions
    # closed questions come as a Yes and a No on the same image: the training set does not teach "always Yes"
    verdicts = Counter((r["images"][0].tobytes(), _answer(r).split(".")[0]) for r in rows
                       if re.match(r"(Yes|No)\.", _answer(r)))
    assert verdicts and all(verdicts[image, "Yes"] == verdicts[image, "No"] for image, _ in verdicts)
    assert {r["source"] for r in rows} == {"rocov2-radiology", "dicom-local"}


def _crash_pipeline(tmp_path: Path) -> Path:
    sources = prepare(tmp_path / "sources")
    spec = yaml.safe_load((REPO / "pipelines/demo.yaml").read_text())
    spec["sources"] = [s for s in spec["sources"] if s["source"] != "dicom"]
    for s in spec["sources"]:
        s["path"] = str(next(p for p in sources if p.name == Path(s["path"]).name))
    spec["sources"][0]["limit"] = 1  # the first page of the demo PDF
    for stage in spec["stages"]:
        if stage["stage"] == "synth_qa":  # the model writes questions where no template fits: slow enough to kill
            stage.update(batch_size=1, question_source="both")
        for eval_set in stage.get("eval_sets", []):
            eval_set["path"] = str(tmp_path / "sources" / Path(eval_set["path"]).name)
    spec.pop("finetune")
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sigkilled_runs_resume_to_identical_export(tmp_path):
    pipeline = _crash_pipeline(tmp_path)
    assert main(["run", str(pipeline), "--run-dir", str(tmp_path / "clean"), "--no-progress"]) == 0
    synth = next((tmp_path / "clean").glob("*-synth_qa"))
    shards = len(list(synth.glob("shard-*.json")))
    assert shards >= 3
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "curate.cli", "run", str(pipeline), "--run-dir", str(run), "--no-progress"]
    for kill_after in (1, shards - 1):  # kill inside synthesis after this many completed batches, twice
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and \
                len(list(run.glob("*-synth_qa/shard-*.json"))) < kill_after:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (run / "report.json").exists() or not (run / "export.json").exists()
    assert main(["run", str(pipeline), "--run-dir", str(run), "--no-progress"]) == 0
    assert export_rows(run) == export_rows(tmp_path / "clean")
    for stage in sorted(p.name for p in (tmp_path / "clean").glob("[0-9]*")):
        assert read_jsonl(run / stage / "rejects.jsonl") == read_jsonl(tmp_path / "clean" / stage / "rejects.jsonl")
