"""`curate run`'s documented exit codes (curate/cli.py), each reached the way a user reaches it, each with one line on
stderr that names the thing and the fix, never a traceback: 0 a run that exports, 1 an ingest that keeps no row,
2 an export format that does not exist (caught by --dry-run, before any stage runs), 3 training that breaks (a Hub
model that is not on this machine, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from curate.cli import main

REPO = Path(__file__).resolve().parents[1]

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


def pipeline(tmp_path, path, **extra):
    spec = {"name": "codes", "sources": [{"source": "hf_qa", "name": "qa", "path": str(path), "license": "cc-by-4.0",
                                          "limit": 40}], "export": {"splits": {"train": 0.8, "validation": 0.2}},
            **extra}
    file = tmp_path / "pipeline.yaml"
    file.write_text(yaml.safe_dump(spec))
    return str(file)


def one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_0_a_run_that_exports(tmp_path, realdata, capsys):
    assert main(["run", pipeline(tmp_path, realdata / FIRSTAID), "--run-dir", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    assert (tmp_path / "run" / "export" / "README.md").is_file()


def test_1_an_ingest_that_keeps_no_row(tmp_path, capsys):
    rows = tmp_path / "no-pairs.jsonl"
    rows.write_text(json.dumps({"title": "no question or answer here"}) + "\n")
    assert main(["run", pipeline(tmp_path, rows, stages=[{"stage": "select", "kinds": ["qa"]}]),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    err = one_line(capsys.readouterr().err)
    assert "02-select holds no rows" in err and "rejects.jsonl" in err


def test_2_an_unknown_export_format_fails_the_dry_run(tmp_path, realdata, capsys):
    for key, value in (("export.format", "csv"), ("export.reasoning", "keep")):
        assert main(["run", pipeline(tmp_path, realdata / FIRSTAID), "--dry-run", "--set", f"{key}={value}"]) == 2
        err = capsys.readouterr().err
        assert key in err and "Traceback" not in err
    assert "'drop', 'think_tags' or 'field'" in err


def test_3_training_that_breaks(tmp_path, realdata, capsys):
    recipe = yaml.safe_load((REPO / "finetune" / "gemma3-270m-cpu-lora.yaml").read_text())
    recipe["model"] = "curate-test/not-on-this-machine"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    path = pipeline(tmp_path, realdata / FIRSTAID, finetune={"recipe": "recipe.yaml", "max_steps": 1})
    assert main(["run", path, "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 3
    err = one_line(capsys.readouterr().err)
    assert "step 'finetune' failed: OSError" in err and "rerun to resume" in err
    assert (tmp_path / "run" / "export.json").is_file()  # the export is kept
