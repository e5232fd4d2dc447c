"""What a first `curate run` with export delivers, on real data (FirstAidQA, 3 pages of FM 4-25.11): a card named
after the pipeline whose drop table is the run's, an export folder and a static report that name no local path, and
stage folders that `datasets` reads although a batch kept no row."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from curate.cli import main

REPO = Path(__file__).resolve().parents[1]
FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
FM = "pdf/us_army_FM4-25.11_first_aid.pdf"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, realdata) -> Path:
    """A pipeline run once through the CLI: QA pairs and PDF pages -> select (qa only) -> decontaminate against
    two of the pairs (given by absolute path) -> export."""
    tmp = tmp_path_factory.mktemp("delivery")
    pairs = json.loads((realdata / FIRSTAID).read_text())[:2]
    held_out = tmp / "held-out.jsonl"
    held_out.write_text("".join(json.dumps({"question": p["question"], "answer": p["answer"]}) + "\n" for p in pairs))
    spec = {"name": "delivery-test", "batch_size": 50, "sources": [
        {"source": "hf_qa", "name": "firstaidqa", "path": str(realdata / FIRSTAID), "license": "cc-by-4.0",
         "limit": 100},
        {"source": "pdf", "name": "fm4-25-11", "path": str(realdata / FM), "license": "public-domain", "limit": 3}],
        "stages": [{"stage": "select", "kinds": ["qa"]},
                   {"stage": "decontaminate", "eval_sets": [{"name": "held-out", "path": str(held_out)}]}],
        "export": {"splits": {"train": 0.8, "test": 0.2}}}
    pipeline = tmp / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump(spec))
    assert main(["run", str(pipeline), "--run-dir", str(tmp / "run"), "--no-progress"]) == 0
    return tmp / "run"


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_first_run_card_is_named_after_the_pipeline_and_lists_the_runs_drops(first_run):
    card = (first_run / "export" / "README.md").read_text()
    assert front_matter(card)["pretty_name"] == "delivery-test"
    assert "\n# delivery-test\n" in card
    report = json.loads((first_run / "report.json").read_text())
    drops = {(s["stage"], reason): n for s in report["stages"] if s["stage"] != "export"
             for reason, n in s["dropped"].items()}
    assert ("select", "kind") in drops and ("decontaminate", "contaminated") in drops
    filters = card.split("## Filter statistics")[1].split("\n## ")[0]
    listed = {(stage, reason): int(n.replace(",", "")) for stage, reason, n in
              (line.strip("| ").split(" | ") for line in filters.splitlines() if line.startswith("| ")
               and not line.startswith("| step"))}
    assert listed == drops and "No rows were dropped" not in filters
    exported = json.loads((first_run / "export" / "report.json").read_text())["run"]
    assert exported["pipeline"] == "delivery-test" and exported["final_dir"] == "03-decontaminate"
    assert {s["stage"]: s["dropped"] for s in exported["steps"]} == {
        s["stage"]: s["dropped"] for s in report["stages"] if s["stage"] != "export"}


def local_paths(run: Path, realdata: Path) -> list[str]:
    return [str(run.resolve()), str(run.resolve().parent), str(realdata), str(Path.home())]


def texts(folder: Path):
    """(file, text) for every file under ``folder``; a parquet file's rows as JSON (its bytes may be compressed)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            yield path, json.dumps(pq.read_table(path).to_pylist(), default=str)
        yield path, path.read_bytes().decode("utf-8", errors="replace")


def test_export_folder_names_no_local_path(first_run, realdata):
    export = first_run / "export"
    found = [(p.relative_to(export).as_posix(), local) for p, text in texts(export)
             for local in local_paths(first_run, realdata) if local in text]
    assert not found
    pipeline = yaml.safe_load((export / "pipeline.yaml").read_text())
    assert [s["path"] for s in pipeline["sources"]] == ["<local>/firstaidqa_v1.json",
                                                        "<local>/us_army_FM4-25.11_first_aid.pdf"]
    assert pipeline["stages"][1]["eval_sets"][0]["path"] == "<local>/held-out.jsonl"
    assert pipeline["name"] == "delivery-test" and pipeline["export"]["splits"] == {"train": 0.8, "test": 0.2}


def test_static_report_names_no_local_path(first_run, realdata, tmp_path):
    out = tmp_path / "report.html"
    assert main(["view", str(first_run), "--static", str(out)]) == 0
    html = out.read_text()
    assert [local for local in local_paths(first_run, realdata) if local in html] == []
    assert "&lt;local&gt;/us_army_FM4-25.11_first_aid.pdf" in html  # a row's origin, its folder replaced
    assert '<p class="path">delivery-test</p>' in html


def test_datasets_reads_every_stage_folder_although_a_batch_kept_no_row(first_run, tmp_path):
    parts = sorted((first_run / "02-select").glob("part-*.parquet"))
    assert 0 in [pq.ParquetFile(p).metadata.num_rows for p in parts]  # the page batch: every row dropped
    for folder in sorted(first_run.glob("0*-*")):
        files = sorted(folder.glob("part-*.parquet"))
        ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                                   cache_dir=str(tmp_path / "cache"))
        assert ds.num_rows == sum(pq.ParquetFile(f).metadata.num_rows for f in files) > 0


# ---- the pipeline's evaluate step ---------------------------------------------------------------------------------

def test_evaluate_step_fingerprint_follows_the_prompt_file(tmp_path):
    from curate.deliver.specs import EvaluateSpec
    from curate.deliver.steps import EvaluateStep
    from curate.executors import make_executor
    from curate.progress import Progress
    from curate.steps import Context

    packaged = (REPO / "curate/prompts/eval.v1.yaml").read_text()
    prompt = tmp_path / "mine.yaml"
    prompt.write_text(packaged)
    spec = EvaluateSpec(set=str(REPO / "curate/data/demo_eval.jsonl"), settings={"prompt": str(prompt)})
    step = EvaluateStep(spec, "embedded", tmp_path)
    ctx = Context(tmp_path, make_executor(), Progress(enabled=False), fp="finetune-fp")
    before = step.fingerprint(ctx)
    assert step.fingerprint(ctx) == before
    prompt.write_text(packaged.replace("Answer with the letter", "Give the letter"))  # same path and spec
    assert step.fingerprint(ctx) != before


@pytest.mark.parametrize("model, spec_model, tuned", [("embedded", {}, False), ("google/gemma-3-1b-pt", {}, False),
                                                      ("google/gemma-3-1b-it", {}, True),
                                                      ("embedded", {"instruction_tuned": True}, True)])
def test_the_evaluate_step_loads_a_base_model_as_base(model, spec_model, tuned):
    from curate.deliver.specs import EvaluateSpec
    from curate.deliver.steps import eval_model_config
    from curate.llm import LLMConfig

    config = LLMConfig.model_validate(eval_model_config(EvaluateSpec(set="x", model=spec_model), model))
    assert config.is_instruction_tuned() is tuned and config.backend == "transformers" and config.model == model
