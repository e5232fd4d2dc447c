"""The ablation end to end on a tiny Gemma 3n (built from a config in test_finetune, no download): two variants of
one run of real FirstAidQA pairs (``raw``: the ingested rows; ``curated``: after dedup), the same recipe and steps,
two seeds each, every model and the base scored on the same held-out FirstAidQA pairs; then a rerun that trains and
scores nothing, and the refusals that keep the comparison fair."""

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
            "variants": {"raw": {"rows": "ingest"}, "curated": {"rows": "final"}}, "seeds": [0, 1],
            "evaluate": [{"name": "heldout", "set": "heldout.json",
                          "settings": {"shots": 0, "max_tokens_open": 4, "resamples": 200},
                          "model": {"dtype": "float32", "device": "cpu"}}], **changes}
    path = folder / "ablation.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the first variant is the reference by default
    return path


def test_two_variants_two_seeds_train_score_and_rerun_from_cache(project, monkeypatch, capsys):
    assert main(["ablate", str(project / "ablation.yaml"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    out_dir = project / "run/ablate/raw-vs-curated"
    result = json.loads((out_dir / "ablation.json").read_text())
    assert result["seeds"] == [0, 1]

    raw, curated = result["variants"]["raw"], result["variants"]["curated"]
    assert raw["rows"] == "01-ingest" and curated["rows"] == "02-dedup"
    assert raw["rows_in"] == 32 and curated["rows_in"] < raw["rows_in"]  # dedup dropped the repeat
    # the planted held-out question is removed from both variants before export, and nothing else of the set
    adapters = {}
    for name, v in result["variants"].items():
        assert v["held_out_overlap"] >= 1 and v["exported"] == {"split_train": v["rows_in"] - v["held_out_overlap"]}
        assert set(v["seeds"]) == {"0", "1"}
        for seed, run in v["seeds"].items():
            assert run["steps"] == 2 and run["train_rows"] == v["exported"]["split_train"]
            recipe = yaml.safe_load((out_dir / name / f"seed-{seed}/finetune/recipe.yaml").read_text())
            assert recipe["train"]["seed"] == int(seed)
            adapters[name, seed] = (out_dir / name / f"seed-{seed}/finetune/adapter_model.safetensors").read_bytes()
        rejected = read_jsonl(out_dir / "rows" / v["rows"] / "rejects.jsonl")
        assert any("held-out question" in r["row"]["messages"][1]["content"] for r in rejected)
    assert adapters["raw", "0"] != adapters["raw", "1"]  # the seed reaches the training

    heldout = result["sets"]["heldout"]
    assert heldout["set"]["n"] == len(HELD_OUT)
    assert set(heldout["metrics"]) == set(heldout["pooled"]) == {"base", "raw", "curated"}
    assert set(heldout["metrics"]["raw"]) == {"0", "1"} and set(heldout["metrics"]["base"]) == {"0"}
    assert set(heldout["versus_reference"]) == {"base", "curated"}
    nll = {m: [read_jsonl(out_dir / folder / "eval/heldout/predictions.jsonl") for folder in folders]
           for m, folders in {"base": ["base"], "raw": ["raw/seed-0", "raw/seed-1"],
                              "curated": ["curated/seed-0", "curated/seed-1"]}.items()}
    for model, comparison in heldout["versus_reference"].items():
        for seed, paired in comparison["per_seed"].items():
            assert paired["n_paired"] == len(HELD_OUT) and not paired["forced"]
            expected = None if model == "base" else str(out_dir / model / f"seed-{seed}/finetune")
            assert paired["b"]["model"]["adapter"] == expected
        pooled = comparison["pooled"]["metrics"]["reference_nll"]
        # the pooled difference is the mean over seeds and items of model - raw, seed by seed, item by item
        other = nll[model] * 2 if model == "base" else nll[model]
        direct = [o["reference_nll"] - r["reference_nll"] for os_, rs in zip(other, nll["raw"])
                  for o, r in zip(os_, rs)]
        assert pooled["difference"]["value"] == pytest.approx(sum(direct) / len(direct), abs=1e-9)
        assert pooled["difference"]["ci_low"] <= pooled["difference"]["value"] <= pooled["difference"]["ci_high"]
        assert set(pooled["per_seed"]) == {"0", "1"}
    assert heldout["pooled"]["raw"]["reference_nll"]["seeds"] == 2
    assert "ablation.json" in out
    wide = Console(width=250, record=True, file=io.StringIO())
    wide.print(variants_table(result), set_table(result, "heldout"))
    text = wide.export_text()
    assert "raw (reference)" in text and "curated" in text and "minus raw" in text and "seeds x items" in text
    assert all(metric in text for metric in heldout["pooled"]["raw"])

    prompts = {tuple(r["prompt_sha256"] for r in rs) for runs in nll.values() for rs in runs}
    assert len(prompts) == 1  # the same prompts for every model and seed

    # a rerun trains nothing and scores nothing: both would fail now
    def refuse(*args, **kwargs):
        raise AssertionError("a cached ablation step ran again")

    monkeypatch.setattr("curate.train.run.finetune", refuse)
    monkeypatch.setattr("curate.evaluate.load_model", refuse)
    adapter = out_dir / "raw/seed-0/finetune/adapter_model.safetensors"
    mtime = adapter.stat().st_mtime_ns
    assert main(["ablate", str(project / "ablation.yaml"), "--no-progress"]) == 0
    again = json.loads((out_dir / "ablation.json").read_text())
    for v in again["variants"].values():
        assert v["export_cached"]
        for run in v["seeds"].values():
            assert run["cached"]["finetune"] and all(run["cached"]["evaluate"].values())
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


def test_bad_seed_lists_and_too_small_variants_are_refused(project, capsys):
    for seeds, message in (([], "seeds: the list is empty"), ([0, 1, 0], "seeds: 0 listed more than once")):
        assert main(["ablate", str(write_ablation(project, seeds=seeds)), "--dry-run"]) == 2
        assert message in capsys.readouterr().err
    assert not (project / "run").exists()

    # a variant left with no rows, and one with fewer than one optimizer step of the tiny recipe takes
    # (batch_size 4 x grad_accum 1 = 4 rows; 3 pairs are 360 characters or longer): refused before any training,
    # naming the variant
    pipeline = yaml.safe_load((project / "pipeline.yaml").read_text())
    for select, message in (({"sources": ["nothing-matches"]}, "variant curated (02-select: 0 rows"),
                            ({"min_chars": 360}, "variant curated has 3 train rows")):
        pipeline["stages"] = [{"stage": "select", **select}]
        (project / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
        assert main(["ablate", str(write_ablation(project)), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "nothing was trained" in err and "variant raw" not in err
        assert not list((project / "run/ablate/raw-vs-curated").glob("*/seed-*"))
