"""Fine-tuning on real exports: recipes, Gemma turns with assistant-only labels, LoRA through the recipe code on a tiny
Gemma 3n and a tiny Gemma 3 vision-language model built here from configs (no download), and the embedded Gemma 3
270M trained for a few steps on CPU, then asked a question with and without its adapter.

The data are real: FirstAidQA pairs (CC BY 4.0) and VQA-RAD questions (CC0) from ../shared/realdata, exported with
``curate.export``. The tiny models read with a byte-level BPE tokenizer trained here on those texts, carrying Gemma's
special tokens.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from curate.cli import main
from curate.deliver.specs import FinetuneSpec, load_recipe_for
from curate.demo import prepare
from curate.export.artifact import ExportOptions, export
from curate.export.hub import PushError, PushFailed, PushRefused
from curate.ingest import vqa
from curate.ingest.base import SourceSpec
from curate.io import write_json, write_parquet
from curate.schema import arrow_schema_for, make_qa
from curate.stage import columns
from curate.train import finetune, load_recipe, validate_recipe
from curate.train.chat import apply_adapter, ask, load_chat_model
from curate.train.data import (
    IGNORE,
    TurnMarkers,
    VisionCollator,
    assistant_labels,
    gemma_turns,
    image_dataset,
    load_training_data,
    tokenize_text,
)
from curate.train.hub import push_model
from curate.train.trl_backend import labelled_positions_only
from curate.train.unsloth_backend import INSTALL, BackendUnavailable
from curate.train.unsloth_backend import train as unsloth_train

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "finetune"
FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"


# ---- fixtures: real exports, a tokenizer, tiny models --------------------------------------------------------------

def _stage_folder(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True)
    schema = arrow_schema_for()
    write_parquet(folder / "part-00000.parquet", columns(rows, schema.names), schema)
    write_json(folder / "_stage.json", {"stage": "test", "config": {},
                                        "stats": {"rows_in": len(rows), "rows_out": len(rows), "dropped": {}}})
    return folder


def _qa_export(tmp: Path, items: list[tuple[int, dict]]) -> Path:
    """An export (messages format, train / validation) of FirstAidQA pairs given as (index, item)."""
    rows = [make_qa(question=i["question"], answer=i["answer"], source="firstaidqa", license="cc-by-4.0",
                    origin=FIRSTAID, locator=str(n)) for n, i in items]
    out = tmp / "export"
    export(_stage_folder(tmp / "02-stage", rows), out, ExportOptions(splits={"train": 0.8, "validation": 0.2}))
    return out


@pytest.fixture(scope="module")
def firstaid_export(tmp_path_factory, realdata) -> Path:
    """The first 40 FirstAidQA pairs."""
    items = json.loads((realdata / FIRSTAID).read_text())[:40]
    return _qa_export(tmp_path_factory.mktemp("firstaid"), list(enumerate(items)))


@pytest.fixture(scope="module")
def short_firstaid_export(tmp_path_factory, realdata) -> Path:
    """The 12 shortest of the first 300 FirstAidQA pairs: the real model's steps cost time per token."""
    items = list(enumerate(json.loads((realdata / FIRSTAID).read_text())[:300]))
    items.sort(key=lambda item: len(item[1]["question"]) + len(item[1]["answer"]))
    return _qa_export(tmp_path_factory.mktemp("short"), items[:12])


@pytest.fixture(scope="module")
def vqa_export(tmp_path_factory, realdata) -> Path:
    """An export (messages with images, train only) of 8 VQA-RAD questions."""
    tmp = tmp_path_factory.mktemp("vqa")
    spec = SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=realdata / "vqa/vqa_rad")
    rows = list(itertools.islice((r for r in vqa.read(spec, vqa.Options()) if isinstance(r, dict)), 8))
    out = tmp / "export"
    export(_stage_folder(tmp / "02-stage", rows), out, ExportOptions(splits={"train": 1.0}))
    return out


@pytest.fixture(scope="module")
def tokenizer(realdata, train_tokenizer):
    items = json.loads((realdata / FIRSTAID).read_text())[:60]
    return train_tokenizer([f"{i['question']}\n{i['answer']}" for i in items] + ["user\nmodel\n"], 600)


@pytest.fixture(scope="module")
def tiny_gemma3n(tmp_path_factory, tokenizer, text_config) -> Path:
    """A Gemma3nForCausalLM folder: 2 layers, hidden size 32, AltUp, LAuReL and per-layer inputs all present."""
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    torch.manual_seed(0)
    config = Gemma3nTextConfig(**text_config(len(tokenizer)), vocab_size_per_layer_input=len(tokenizer),
                               hidden_size_per_layer_input=8, laurel_rank=4, num_kv_shared_layers=0,
                               altup_num_inputs=2)
    folder = tmp_path_factory.mktemp("tiny") / "gemma3n"
    Gemma3nForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _recipe(path: Path, model: str, **changes) -> Path:
    """A recipe file: the repo's CPU recipe with ``model`` and the given section updates."""
    spec = yaml.safe_load((RECIPES / "gemma3-270m-cpu-lora.yaml").read_text())
    spec["model"] = model
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    path.write_text(yaml.safe_dump(spec))
    return path


TINY_TRAIN = {"max_steps": 12, "learning_rate": 1e-2, "batch_size": 4, "warmup": 0, "logging_steps": 1,
              "eval_steps": None, "max_length": 128}


# ---- recipes --------------------------------------------------------------------------------------------------------

def test_shipped_recipes_are_valid_and_follow_the_public_values():
    from curate.train.writer import load_writer_recipe

    files = [f for f in sorted(RECIPES.glob("*.yaml")) if f.stem != "question-writer"]  # the writer's own format
    assert load_writer_recipe(RECIPES / "question-writer.yaml").sources[0].license == "cc-by-4.0"
    assert {f.stem for f in files} >= {"gemma3n-e2b-text-lora", "gemma3n-e4b-text-lora", "gemma3n-e2b-vision-lora",
                                       "medgemma-4b-vision-qlora", "gemma3-270m-cpu-lora"}
    for f in files:
        assert validate_recipe(f) == [], f
        recipe = load_recipe(f)
        assert recipe.name == f.stem and recipe.train.max_grad_norm == 0.3
        assert 8 <= recipe.lora.r <= 32
    vision = load_recipe(RECIPES / "gemma3n-e2b-vision-lora.yaml")
    assert vision.modality == "vision" and vision.lora.layers == ["language", "vision"]
    assert all(load_recipe(RECIPES / f"gemma3n-{m}-text-lora.yaml").train.precision == "bf16" for m in ("e2b", "e4b"))


def test_recipe_problems_are_all_listed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "model": "unsloth/gemma-3n-E2B-it", "lr": 1,
                                   "lora": {"r": 8, "rank": 8}, "train": {"precision": "fp16", "epoch": 2}}))
    problems = validate_recipe(bad)
    assert any("lr: unknown key" in p for p in problems) and any("lora.rank: unknown key" in p for p in problems)
    assert any("train.epoch: unknown key" in p for p in problems) and all(p.startswith(str(bad)) for p in problems)

    bad.write_text(yaml.safe_dump({"name": "x", "model": "unsloth/gemma-3n-E4B-it", "train": {"precision": "fp16"}}))
    assert "overflows in float16" in validate_recipe(bad)[0]
    bad.write_text(yaml.safe_dump({"name": "x", "train": {"epochs": 1, "max_steps": 5}}))
    assert "not both" in validate_recipe(bad)[0]
    bad.write_text(yaml.safe_dump({"name": "x", "lora": {"layers": ["language", "vision"]}}))
    assert "set modality: vision" in validate_recipe(bad)[0]


@pytest.mark.parametrize("name", ["gemma3n-e4b-text-lora", "gemma3n-e2b-vision-lora", "gemma3-270m-cpu-lora"])
def test_a_pipelines_max_steps_replaces_the_recipes_stopping_rule(name, tmp_path):
    recipe = load_recipe_for(FinetuneSpec(recipe=str(RECIPES / f"{name}.yaml"), max_steps=7), tmp_path)
    assert (recipe.train.max_steps, recipe.train.epochs) == (7, None)
    saved = tmp_path / "recipe.yaml"  # what the fine-tune writes beside the adapter
    saved.write_text(yaml.safe_dump(recipe.model_dump(mode="json")))
    assert validate_recipe(saved) == [] and load_recipe(saved) == recipe


def test_fp16_is_refused_for_a_local_gemma3n_folder(tmp_path, tiny_gemma3n):
    problems = validate_recipe(_recipe(tmp_path / "r.yaml", str(tiny_gemma3n), train={"precision": "fp16"}))
    assert len(problems) == 1 and "Gemma 3n" in problems[0]


# ---- data: Gemma turns and assistant-only labels --------------------------------------------------------------------

def _labelled_spans(ids: list[int], labels: list[int]) -> list[list[int]]:
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def test_only_assistant_tokens_carry_loss(tokenizer):
    messages = [{"role": "system", "content": "You are a first-aid instructor."},
                {"role": "user", "content": "What is the recovery position?"},
                {"role": "assistant", "content": "Lay the person on their side."},
                {"role": "user", "content": "Why?"},
                {"role": "assistant", "content": "It keeps the airway open."}]
    text = gemma_turns(messages)
    assert text.startswith("<start_of_turn>user\nYou are a first-aid instructor.\n\nWhat is the recovery position?"
                           "<end_of_turn>\n<start_of_turn>model\nLay the person")
    row = tokenize_text([{"messages": messages, "images": []}], tokenizer)[0]
    assert row["input_ids"][0] == tokenizer.bos_token_id and row["labels"][0] == IGNORE
    spans = _labelled_spans(row["input_ids"], row["labels"])
    assert [tokenizer.decode(s) for s in spans] == ["Lay the person on their side.<end_of_turn>",
                                                    "It keeps the airway open.<end_of_turn>"]
    newline_after = row["input_ids"].index(tokenizer.convert_tokens_to_ids("<end_of_turn>")) + 1
    assert row["labels"][newline_after] == IGNORE


def test_trls_collator_puts_the_loss_on_answer_tokens_only(firstaid_export, tiny_gemma3n, tokenizer, tmp_path):
    """A batch as the TRL backend's trainer draws it (its dataset, collator and padding): labels only on each
    answer and its <end_of_turn>, -100 on the user turn, the markup and the padding."""
    from transformers import TrainerCallback

    from curate.train.trl_backend import train as trl_train

    class FirstBatch(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            self.batch = next(iter(train_dataloader))
            control.should_training_stop = True

    recipe = load_recipe(_recipe(tmp_path / "tiny.yaml", str(tiny_gemma3n),
                                 train={**TINY_TRAIN, "max_steps": 1, "max_length": 1024},
                                 data={"max_train_rows": 4, "eval_split": None}))
    data = load_training_data(firstaid_export, max_train_rows=4, eval_split=None)
    first = FirstBatch()
    trl_train(recipe, data, callbacks=[first])
    answers = {e["messages"][-1]["content"].strip() + "<end_of_turn>" for e in data.train}
    ids, labels, mask = (first.batch[k].tolist() for k in ("input_ids", "labels", "attention_mask"))
    assert len(ids) == 4 and min(map(sum, mask)) < len(ids[0])  # rows of different lengths: padding to check
    for row_ids, row_labels, row_mask in zip(ids, labels, mask):
        assert all(label == IGNORE for label, m in zip(row_labels, row_mask) if not m)
        spans = _labelled_spans(row_ids, row_labels)
        assert len(spans) == 1 and tokenizer.decode(spans[0]) in answers
        question = tokenizer.decode([t for t, label in zip(row_ids, row_labels) if label == IGNORE])
        assert "<start_of_turn>user" in question and "<start_of_turn>model" in question
    assert {tokenizer.decode(_labelled_spans(i, l)[0]) for i, l in zip(ids, labels)} == answers


def test_export_folder_loads_with_fingerprint(firstaid_export):
    data = load_training_data(firstaid_export, max_train_rows=5)
    assert data.format == "messages" and len(data.train) == 5 and data.eval and not data.has_images
    assert data.train[0]["messages"][0]["role"] == "user"
    assert [f["path"] for f in data.digest["files"]] == sorted(
        p.relative_to(firstaid_export).as_posix() for p in (firstaid_export / "data").glob("*.parquet"))
    assert len(data.digest["sha256"]) == 64
    assert load_training_data(firstaid_export, max_train_rows=5).digest == data.digest


def test_medrescue_export_reads_as_the_same_conversations(firstaid_export, tmp_path):
    medrescue = tmp_path / "medrescue"
    export(firstaid_export.parent / "02-stage", medrescue,
           ExportOptions(format="medrescue", splits={"train": 0.8, "validation": 0.2}))
    data = load_training_data(medrescue)
    assert data.format == "medrescue"
    assert data.train == load_training_data(firstaid_export).train


def test_vision_collator_labels_answers_and_expands_images(vqa_export, tiny_vlm):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_vlm)
    data = load_training_data(vqa_export, eval_split=None, max_train_rows=3)
    assert data.has_images
    rows = [image_dataset(data.train)[i] for i in range(3)]
    batch = VisionCollator(processor)(rows)
    assert batch["pixel_values"].shape == (3, 3, 28, 28) and "token_type_ids" in batch
    image_id = processor.tokenizer.image_token_id
    for ids, labels, row in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), rows):
        assert ids.count(image_id) == 4
        spans = _labelled_spans(ids, labels)
        answer = row["messages"][-1]["content"].strip()
        assert [processor.tokenizer.decode(s) for s in spans] == [f"{answer}<end_of_turn>"]


def test_scoring_only_labelled_positions_keeps_the_loss(firstaid_export, tiny_gemma3n, tokenizer):
    import trl.trainer.utils
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gemma3n)
    trl.trainer.utils.add_fused_lm_head(model)
    row = tokenize_text(load_training_data(firstaid_export, max_train_rows=1).train, tokenizer)[0]
    inputs = {"input_ids": torch.tensor([row["input_ids"]]), "labels": torch.tensor([row["labels"]]),
              "fused_lm_head": True}
    cpu = torch.device("cpu")
    everywhere = model(**inputs).loss
    with labelled_positions_only():
        assert trl.trainer.utils._use_triton(cpu)
        labelled = model(**inputs).loss
    assert not trl.trainer.utils._use_triton(cpu)
    assert labelled.item() > 0 and torch.allclose(labelled, everywhere, atol=1e-6)


# ---- the CLI without training ---------------------------------------------------------------------------------------

def test_dry_run_validates_recipe_and_data_without_loading(firstaid_export, vqa_export, tmp_path, capsys):
    recipe = RECIPES / "gemma3n-e2b-text-lora.yaml"
    assert main(["finetune", str(recipe), "--data", str(firstaid_export), "--dry-run", "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr()
    assert "unsloth/gemma-3n-E2B-it" in out.out and "trl" in out.out and "train rows" in out.out
    assert "load_in_4bit needs CUDA" in out.err
    assert main(["finetune", str(recipe), "--data", str(vqa_export), "--dry-run"]) == 2
    assert "has images but recipe gemma3n-e2b-text-lora is a text recipe" in capsys.readouterr().err
    assert main(["finetune", str(RECIPES / "gemma3n-e2b-vision-lora.yaml"), "--data", str(firstaid_export),
                 "--dry-run"]) == 2
    assert main(["finetune", str(recipe), "--data", str(tmp_path), "--dry-run"]) == 2
    assert "has no data/" in capsys.readouterr().err


def test_explicit_unsloth_without_cuda_names_the_install_line(firstaid_export, tmp_path, capsys):
    recipe = _recipe(tmp_path / "r.yaml", "unsloth/gemma-3n-E2B-it", backend="unsloth", train={"precision": "bf16"})
    assert main(["finetune", str(recipe), "--data", str(firstaid_export), "--dry-run"]) == 2
    assert INSTALL in capsys.readouterr().err
    with pytest.raises(BackendUnavailable, match=r"pip install 'curate\[gpu\]'"):
        unsloth_train(load_recipe(recipe), load_training_data(firstaid_export))


def adapter_folder(tmp_path: Path, licences: dict | None = None) -> Path:
    """A fine-tuning output as far as a push reads it: an adapter config and data.json with the rows' licences."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    write_json(folder / "data.json", {"licenses": licences or {"firstaidqa": ["cc-by-4.0"]}})
    return folder


def test_model_push_scrubs_the_token(tmp_path, monkeypatch):
    token = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3"
    folder = adapter_folder(tmp_path)

    def refuse(self, repo_id, **kwargs):
        raise RuntimeError(f"401 for {repo_id} with Authorization: Bearer {token}")

    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", refuse)
    with pytest.raises(PushFailed) as failed:
        push_model(folder, "me/adapter", token=token)
    assert token not in str(failed.value) and "hf upload me/adapter" in str(failed.value)
    (folder / "train_report.json").write_text(json.dumps({"oops": token}))
    with pytest.raises(PushError, match="contains your Hugging Face token"):
        push_model(folder, "me/adapter", token=token)


def test_model_push_is_private_and_refuses_a_public_repo(tmp_path, monkeypatch):
    folder = adapter_folder(tmp_path)
    created = []
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda self, repo_id, **kw: SimpleNamespace(private=False))
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", lambda self, repo_id, **kw: created.append(kw))
    with pytest.raises(PushRefused, match="model me/adapter exists and is public, but a private push"):
        push_model(folder, "me/adapter", token="hf_" + "x" * 30)
    assert created == []


def test_model_push_refuses_rows_whose_licence_forbids_publishing(tmp_path, monkeypatch):
    folder = adapter_folder(tmp_path, {"firstaidqa": ["cc-by-4.0"], "army-manual": ["all-rights-reserved"]})
    sent = []
    monkeypatch.setattr("huggingface_hub.HfApi.repo_info", lambda self, repo_id, **kw: SimpleNamespace(private=False))
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", lambda self, repo_id, **kw: sent.append(kw))
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lambda self, **kw: sent.append(kw) or "commit-url")
    for private in (True, False):
        with pytest.raises(PushRefused, match=r"army-manual \(all-rights-reserved\).*--allow-license "
                                              "all-rights-reserved"):
            push_model(folder, "me/adapter", private=private, token="hf_" + "x" * 30)
    assert sent == []
    assert push_model(folder, "me/adapter", private=False, token="hf_" + "x" * 30,
                      allow_licenses=["all-rights-reserved"]) == "commit-url"
    (folder / "data.json").write_text("{}")  # an output that does not say what it was trained on
    with pytest.raises(PushRefused, match="does not say which licences"):
        push_model(folder, "me/adapter", token="hf_" + "x" * 30)


def test_finetune_push_on_all_rights_reserved_rows_is_refused_before_training(tmp_path, realdata, capsys):
    item = json.loads((realdata / FIRSTAID).read_text())[0]
    rows = [make_qa(question=item["question"], answer=item["answer"], source="army-manual",
                    license="all-rights-reserved", origin=FIRSTAID, locator=str(n)) for n in range(4)]
    data = tmp_path / "export"
    export(_stage_folder(tmp_path / "02-stage", rows), data, ExportOptions(splits={"train": 1.0}))
    assert main(["finetune", str(RECIPES / "gemma3-270m-cpu-lora.yaml"), "--data", str(data), "--output",
                 str(tmp_path / "out"), "--push", "me/adapter", "--public"]) == 2
    assert "army-manual (all-rights-reserved)" in capsys.readouterr().err and not (tmp_path / "out").exists()


# ---- training through the recipe code on tiny models ---------------------------------------------------------------

def _drops(history: dict) -> bool:
    losses = [e["loss"] for e in history["train"]]
    return len(losses) >= 6 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_tiny_gemma3n_lora_learns_saves_and_reloads(firstaid_export, tiny_gemma3n, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe = _recipe(tmp_path / "tiny.yaml", str(tiny_gemma3n), train=TINY_TRAIN, data={"max_train_rows": 8})
    result = finetune(recipe, firstaid_export, tmp_path / "out")
    out = result.output
    assert result.backend == "trl" and _drops(result.history), result.history
    assert result.history["eval"] and json.loads((out / "loss_history.json").read_text()) == result.history
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "recipe.yaml", "data.json",
            "train_report.json"} <= {p.name for p in out.iterdir()}
    assert load_recipe(out / "recipe.yaml").train.max_steps == 12
    data = json.loads((out / "data.json").read_text())
    full = load_training_data(firstaid_export)
    assert data["rows"] == {"train": 8, "eval": len(full.eval)} and data["sha256"] == full.digest["sha256"]
    assert data["licenses"] == {"firstaidqa": ["cc-by-4.0"]}
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert (meta["base_model"], meta["library_name"], meta["license"]) == ("gemma3n", "peft", "cc-by-4.0")
    assert "| firstaidqa | cc-by-4.0 |" in card and str(tmp_path) not in card
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "gemma3n" and adapter["r"] == 16
    assert all(name.rsplit(".", 1)[-1] in {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"} for name in adapter["target_modules"])

    ids = torch.tensor([tokenize_text(load_training_data(firstaid_export, max_train_rows=1).train,
                                      result.processing)[0]["input_ids"]])
    with torch.no_grad():
        trained = result.model(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gemma3n), out).eval()
        assert torch.equal(reloaded(input_ids=ids).logits, trained)
        base = AutoModelForCausalLM.from_pretrained(tiny_gemma3n).eval()
        assert not torch.allclose(base(input_ids=ids).logits, trained)


def test_tiny_gemma3_vision_lora_trains_language_and_vision_layers(vqa_export, tiny_vlm, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    recipe = _recipe(tmp_path / "vlm.yaml", str(tiny_vlm), modality="vision",
                     lora={"targets": "all-linear", "layers": ["language", "vision"]}, train=TINY_TRAIN,
                     data={"eval_split": None})
    result = finetune(recipe, vqa_export, tmp_path / "out")
    assert _drops(result.history) and result.history["eval"] == [], result.history
    adapted = [name for name, _ in result.model.named_modules() if name.endswith("lora_A")]
    assert any("vision_tower" in n for n in adapted) and any("language_model" in n for n in adapted)
    assert (result.output / "processor_config.json").is_file()

    rows = [image_dataset(load_training_data(vqa_export, eval_split=None).train)[0]]
    batch = VisionCollator(result.processing)(rows)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "token_type_ids")}
    with torch.no_grad():
        trained = result.model(**inputs).logits
        base = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
        reloaded = PeftModel.from_pretrained(base, result.output).eval()
        assert torch.equal(reloaded(**inputs).logits, trained)


def test_cli_finetune_merges_and_chat_answers_with_and_without_adapter(firstaid_export, tiny_gemma3n, tmp_path,
                                                                        capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    recipe = _recipe(tmp_path / "tiny.yaml", str(tiny_gemma3n), merge=True, train={**TINY_TRAIN, "max_steps": 2},
                     data={"max_train_rows": 4, "eval_split": None})
    assert main(["finetune", str(recipe), "--data", str(firstaid_export), "-o", str(out)]) == 0
    assert f"adapter: {out}" in capsys.readouterr().out
    assert main(["finetune", str(recipe), "--data", str(firstaid_export), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    ids = torch.tensor([[2, 4, 40, 41, 42, 5]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gemma3n), out).eval()
        assert torch.allclose(merged, adapted(input_ids=ids).logits, atol=1e-5)

    question = "How do I treat a burn?"
    llm = load_chat_model(str(tiny_gemma3n), device="cpu")
    asked, generate = [], llm.generate
    llm.generate = lambda prompt, sampling: asked.append(prompt) or generate(prompt, sampling)
    base = ask(llm, question, max_tokens=4)
    tuned = ask(apply_adapter(llm, out), question, max_tokens=4)
    assert not llm.instruction_tuned  # a base model completes a question; through the adapter it answers in turns
    assert asked == [f"Question: {question}\nAnswer:", [{"role": "user", "content": question}]]
    for extra, answer in (([], base), (["--adapter", str(out)], tuned)):
        code = main(["chat", str(tiny_gemma3n), question, "--max-tokens", "4", "--device", "cpu", *extra])
        assert (code, capsys.readouterr().out.strip()) == ((0, answer) if answer else (1, ""))
    assert main(["chat", str(tiny_gemma3n), "q", "--adapter", str(tmp_path)]) == 2


def test_pipeline_trains_then_scores_base_and_tuned_on_its_held_out_set(tiny_gemma3n, tmp_path, monkeypatch, capsys):
    """A pipeline file whose relative paths (decontamination set, eval set, recipe) are read from its own folder:
    the planted copy of an eval question is dropped before training, and the evaluate step scores the base model
    and the adapter on the same 20 demo questions with identical prompts, then reruns from cache."""
    sources = prepare(tmp_path / "project" / "sources")
    eval_rows = [json.loads(line) for line in (tmp_path / "project/sources/eval.jsonl").read_text().splitlines()]
    qa = tmp_path / "project/sources/qa.jsonl"
    planted = {"question": eval_rows[5]["question"], "answer": eval_rows[5]["answer"]}
    qa.write_text(qa.read_text() + json.dumps(planted) + "\n")
    _recipe(tmp_path / "project/tiny.yaml", str(tiny_gemma3n), train={**TINY_TRAIN, "max_steps": 2},
            data={"max_train_rows": 8, "eval_split": None})
    pipeline = tmp_path / "project/train-and-eval.yaml"
    pipeline.write_text(yaml.safe_dump({
        "name": "train-and-eval",
        "sources": [{"source": "hf_qa", "name": "qa", "path": "sources/qa.jsonl", "license": "apache-2.0"}],
        "stages": [{"stage": "decontaminate", "eval_sets": [{"path": "sources/eval.jsonl", "fields": ["question"]}]}],
        "export": {"splits": {"train": 1.0}},
        "finetune": {"recipe": "tiny.yaml",
                     "evaluate": {"set": "sources/eval.jsonl", "settings": {"scoring": "loglik", "shots": 0},
                                  "model": {"dtype": "float32", "device": "cpu"}}}}))
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    run = tmp_path / "run"
    assert sources and main(["run", str(pipeline), "--run-dir", str(run), "--no-progress"]) == 0

    report = json.loads((run / "report.json").read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["decontaminate"]["dropped"] == {"contaminated": 1}
    assert stages["evaluate"]["rows_in"] == stages["evaluate"]["rows_out"] == len(eval_rows) == 20
    comparison = report["evaluation"]
    assert comparison == json.loads((run / "evaluate/comparison.json").read_text())
    assert comparison["n_paired"] == 20 and not comparison["forced"]
    assert comparison["b"]["model"]["adapter"] == str(run / "finetune")
    base = [json.loads(x) for x in (run / "evaluate/base/predictions.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (run / "evaluate/tuned/predictions.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in base] == [eval_rows[int(r["locator"])]["answer_idx"] for r in base]
    assert all(b["prompt_sha256"] == t["prompt_sha256"] for b, t in zip(base, tuned))
    asked = json.loads((run / "evaluate/base/summary.json").read_text())["settings"]
    assert (asked["prompt"]["style"], asked["choices"]) == ("completion", "text")  # a base model asked as base
    assert any(b["option_logprobs"] != t["option_logprobs"] for b, t in zip(base, tuned))  # the adapter acts
    accuracy = comparison["metrics"]["accuracy"]
    assert accuracy["a"]["value"] == sum(r["correct"] for r in base) / 20
    assert "accuracy" in capsys.readouterr().out  # the comparison table follows the run report
    card = (run / "finetune/README.md").read_text()  # the adapter's model card carries its evaluation
    a, b = accuracy["a"], accuracy["b"]
    assert f"| accuracy | {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}] | {b['value']:.3f} " in card
    assert "20 items" in card and str(run) not in card

    assert main(["run", str(pipeline), "--run-dir", str(run), "--no-progress"]) == 0
    again = json.loads((run / "report.json").read_text())
    assert all(s["cached"] for s in again["stages"]) and again["evaluation"] == comparison


# ---- the embedded Gemma 3 270M on CPU -------------------------------------------------------------------------------

@pytest.mark.slow
def test_embedded_gemma_trains_a_few_steps_and_chats(short_firstaid_export, tmp_path):
    """A handful of LoRA steps on the real 270M (dequantized once into ~/.cache/curate/models), then the same
    question to the base model and to the tuned one."""
    recipe = _recipe(tmp_path / "cpu.yaml", "embedded", train={"max_steps": 5, "batch_size": 1, "max_length": 256,
                                                              "logging_steps": 1, "eval_steps": None},
                     data={"max_train_rows": 5, "max_eval_rows": 2})
    result = finetune(recipe, short_firstaid_export, tmp_path / "out")
    assert len(result.history["train"]) == 5 and all(e["loss"] > 0 for e in result.history["train"])
    assert len(result.history["eval"]) == 1
    report = json.loads((result.output / "train_report.json").read_text())
    assert report["backend"] == "trl" and report["tokens_per_second"] > 0
    adapter = json.loads((result.output / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "embedded"

    tokenizer = result.processing
    assert TurnMarkers.of(tokenizer) == TurnMarkers(105, (4368, 107), 106)  # Gemma 3's ids, "model" and "\n" apart
    example = load_training_data(short_firstaid_export, max_train_rows=1).train[0]
    row = tokenize_text([example], tokenizer)[0]
    spans = _labelled_spans(row["input_ids"], assistant_labels(row["input_ids"], TurnMarkers.of(tokenizer)))
    assert [tokenizer.decode(s) for s in spans] == [example["messages"][-1]["content"].strip() + "<end_of_turn>"]

    llm = load_chat_model("embedded", device="cpu")  # one load: the adapter wraps the same base weights
    question = "How should I cool a minor burn?"
    base = ask(llm, question, max_tokens=16)
    tuned = ask(apply_adapter(llm, result.output), question, max_tokens=16)
    assert base and tuned, (base, tuned)
    inputs = {k: torch.tensor([row[k]]) for k in ("input_ids", "labels")}
    with torch.no_grad():
        with llm.hf_model.disable_adapter():
            before = llm.hf_model(**inputs).loss.item()
        after = llm.hf_model(**inputs).loss.item()
    assert after < before, (before, after)  # the adapter the chat answers through learned the training answers
