"""The ablation end to end on a tiny Gemma 3n (built from a config in test_finetune, no download): two variants of
one run of real FirstAidQA pairs (``raw``: the ingested rows; ``curated``: after dedup), the same recipe and steps,
every model and the base scored on the same held-out FirstAidQA pairs; then a rerun that trains and scores nothing,
and the refusals that keep the comparison fair."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from rich.console import Console

from curate.deliver.ablate import AblationError, load_ablation, set_table, variants_table
from curate.cli import main
from curate.io import read_jsonl
from test_finetune import FIRSTAID, TINY_TRAIN, _recipe, tiny_gemma3n, tokenizer  # noqa: F401 (fixtures)

HELD_OUT = range(100, 110)


@pytest.fixture
def project(tmp_path, realdata, tiny_gemma3n) -> Path:
    """A folder with train.json (30 FirstAidQA pairs, an exact repeat of the first and a copy of a held-out
    question), heldout.json (10 other pairs), a tiny recipe, a pipeline (hf_qa -> dedup -> export) and an
    ablation file (raw = ingest, curated = final)."""
    items = json.loads((realdata / FIRSTAID).read_text())
    held_out = [items[i] for i in HELD_OUT]
    train = items[:30] + [items[0], {"question": held_out[3]["question"], "answer": "Planted: a held-out question."}]
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "heldout.json").write_text(json.dumps(held_out))
    _recipe(tmp_path / "tiny.yaml", str(tiny_gemma3n), train={**TINY_TRAIN, "max_steps": 2},
            data={"eval_split": None})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({
        "name": "tiny-firstaid", "run_dir": "run",
        "sources": [{"source": "hf_qa", "name": "firstaidqa", "path": "train.json", "license": "cc-by-4.0"}],
        "stages": [{"stage": "dedup"}], "export": {"splits": {"train": 1.0}}, "finetune": {"recipe": "tiny.yaml"}}))
    write_ablation(tmp_path)
    return tmp_path


def write_ablation(folder: Path, **changes) -> Path:
    spec = {"name": "raw-vs-curated", "pipeline": "pipeline.yaml",
            "variants": {"raw": {"rows": "ingest"}, "curated": {"rows": "final"}},
            "evaluate": [{"name": "heldout", "set": "heldout.json",
                          "settings": {"shots": 0, "max_tokens_open": 4, "resamples": 200},
                          "model": {"dtype": "float32", "device": "cpu"}}], **changes}
    path = folder / "ablation.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the first variant is the reference by default
    return path


def test_two_variants_train_score_and_rerun_from_cache(project, monkeypatch, capsys):
    assert main(["ablate", str(project / "ablation.yaml"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    out_dir = project / "run/ablate/raw-vs-curated"
    result = json.loads((out_dir / "ablation.json").read_text())

    raw, curated = result["variants"]["raw"], result["variants"]["curated"]
    assert raw["rows"] == "01-ingest" and curated["rows"] == "02-dedup"
    assert raw["rows_in"] == 32 and curated["rows_in"] < raw["rows_in"]  # dedup dropped the repeat
    # the planted held-out question is removed from both variants before export, and nothing else of the set
    for name, v in result["variants"].items():
        assert v["held_out_overlap"] >= 1 and v["exported"] == {"split_train": v["rows_in"] - v["held_out_overlap"]}
        assert v["steps"] == 2 and v["train_rows"] == v["exported"]["split_train"]
        rejected = read_jsonl(out_dir / "rows" / v["rows"] / "rejects.jsonl")
        assert any("held-out question" in r["row"]["messages"][1]["content"] for r in rejected)
    heldout = result["sets"]["heldout"]
    assert heldout["set"]["n"] == len(HELD_OUT)
    assert set(heldout["metrics"]) == {"base", "raw", "curated"} and heldout["metrics"]["raw"]
    assert set(heldout["versus_reference"]) == {"base", "curated"}
    for model, comparison in heldout["versus_reference"].items():
        assert comparison["n_paired"] == len(HELD_OUT) and not comparison["forced"]
        assert comparison["metrics"] and set(comparison["metrics"]) <= set(heldout["metrics"][model])
        assert comparison["b"]["model"]["adapter"] == (None if model == "base" else str(out_dir / model / "finetune"))
    assert "ablation.json" in out
    wide = Console(width=250, record=True, file=io.StringIO())
    wide.print(variants_table(result), set_table(result, "heldout"))
    text = wide.export_text()
    assert "raw (reference)" in text and "curated" in text and "minus raw" in text
    assert all(metric in text for metric in heldout["metrics"]["raw"])

    records = {m: read_jsonl(out_dir / m / "eval/heldout/predictions.jsonl") for m in ("base", "raw", "curated")}
    assert len({tuple(r["prompt_sha256"] for r in rs) for rs in records.values()}) == 1  # the same prompts

    # a rerun trains nothing and scores nothing: both would fail now
    def refuse(*args, **kwargs):
        raise AssertionError("a cached ablation step ran again")

    monkeypatch.setattr("curate.train.run.finetune", refuse)
    monkeypatch.setattr("curate.evaluate.load_model", refuse)
    adapter = out_dir / "raw/finetune/adapter_model.safetensors"
    mtime = adapter.stat().st_mtime_ns
    assert main(["ablate", str(project / "ablation.yaml"), "--no-progress"]) == 0
    again = json.loads((out_dir / "ablation.json").read_text())
    for v in again["variants"].values():
        assert v["cached"]["export"] and v["cached"]["finetune"] and all(v["cached"]["evaluate"].values())
    assert all(again["base"]["cached"].values()) and adapter.stat().st_mtime_ns == mtime
    assert again["sets"] == result["sets"]


def test_unfair_ablations_are_refused_before_any_work(project, capsys):
    other_prompts = {"raw": {"rows": "ingest"},
                     "curated": {"rows": "final", "evaluate": {"settings": {"prompt": "other.yaml"}}}}
    assert main(["ablate", str(write_ablation(project, variants=other_prompts)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "curated" in err and "may not set evaluate" in err and "prompts" in err
    assert not (project / "run").exists()

    epochs = _recipe(project / "epochs.yaml", "embedded", train={"max_steps": None, "epochs": 1})
    with pytest.raises(AblationError) as refused:
        load_ablation(write_ablation(project, variants={"raw": {"rows": "chunk"}, "../up": {}}, reference="curated",
                                     finetune={"recipe": epochs.name}))
    problems = str(refused.value)
    assert "variants.raw.rows: 'chunk' is no stage of the pipeline; give one of ingest, 01-ingest, final" in problems
    assert "reference: 'curated' is not a variant" in problems and "variants: '../up' must be letters" in problems
    assert "set finetune.max_steps" in problems
    with pytest.raises(AblationError, match="at least 2 items"):
        load_ablation(write_ablation(project, variants={"raw": {}}))
