"""VQA connector on the real VQA-RAD questions and the 40 of its 315 images that are available offline."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image
from pydantic import ValidationError

from curate.ingest import vqa
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.schema import FEATURES

VQA_RAD = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "vqa" / "vqa_rad"
PRESENT = {p.name for p in (VQA_RAD / "images").iterdir()}
QUESTIONS = {split: json.loads((VQA_RAD / f"{split}set.json").read_text()) for split in ("train", "test")}


def _spec(path: Path = VQA_RAD, **kw) -> SourceSpec:
    return SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=path, **kw)


def _split(items: list) -> tuple[list[dict], list[Reject]]:
    return [i for i in items if isinstance(i, dict)], [i for i in items if isinstance(i, Reject)]


def test_all_splits_rows_and_rejects_match_the_images_present() -> None:
    rows, rejects = _split(list(vqa.read(_spec(), vqa.Options(split="all"))))
    records = QUESTIONS["test"] + QUESTIONS["train"]  # files are read in name order
    expected = [r["qid"] for r in records if r["image_name"] in PRESENT]

    assert len(PRESENT) == 40
    assert [json.loads(r["meta"])["qid"] for r in rows] == expected
    assert len(rows) + len(rejects) == len(records) == 3_515
    assert {r.reason for r in rejects} == {"missing_image"}
    assert Counter(json.loads(r["meta"])["split"] for r in rows) == {
        split: sum(q["image_name"] in PRESENT for q in qs) for split, qs in QUESTIONS.items()
    }
    missing = next(q for q in QUESTIONS["test"] if q["image_name"] not in PRESENT)
    assert rejects[0].locator == f"testset.json#qid={missing['qid']}"
    assert missing["image_name"] in rejects[0].detail


def test_default_split_is_train() -> None:
    rows, rejects = _split(list(vqa.read(_spec(), vqa.Options())))
    assert len(rows) == sum(q["image_name"] in PRESENT for q in QUESTIONS["train"])
    assert len(rows) + len(rejects) == len(QUESTIONS["train"])
    assert {json.loads(r["meta"])["split"] for r in rows} == {"train"}


def test_a_known_row() -> None:
    rows = [r for r in vqa.read(_spec(), vqa.Options()) if isinstance(r, dict)]
    row = next(r for r in rows if r["provenance"]["locator"] == "trainset.json#qid=33")
    assert row["kind"] == "vqa" and row["source"] == "vqa_rad" and row["license"] == "CC0-1.0"
    assert row["messages"] == [
        {"role": "user", "content": "Are there >12 of ribs?"},
        {"role": "assistant", "content": "Yes"},
    ]
    assert row["image"] == {"bytes": (VQA_RAD / "images" / "synpic21776.jpg").read_bytes(), "path": "synpic21776.jpg"}
    assert json.loads(row["meta"]) == {
        "qid": 33, "organ": "CHEST", "answer_type": "CLOSED", "question_type": "COUNT", "phrase_type": "frame",
        "split": "train",
    }
    assert row["provenance"] == {"origin": str(VQA_RAD), "revision": None, "locator": "trainset.json#qid=33"}

    counted = next(r for r in rows if r["provenance"]["locator"] == "trainset.json#qid=2485")
    assert counted["messages"][1]["content"] == "2"


def test_images_decode_and_rows_fit_the_schema() -> None:
    rows = [r for r in vqa.read(_spec(), vqa.Options(split="test")) if isinstance(r, dict)]
    for data in {r["image"]["bytes"] for r in rows}:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.format == "JPEG" and min(image.size) > 100
    ds = datasets.Dataset.from_list(rows, features=FEATURES)
    assert ds.num_rows == len(rows) and ds[0]["kind"] == "vqa"


def test_limit_counts_rows() -> None:
    rows, _ = _split(list(vqa.read(_spec(limit=3), vqa.Options(split="all"))))
    assert len(rows) == 3


def test_bad_records_splits_and_folders(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.jpg")
    records = [
        {"qid": 1, "image_name": "a.jpg", "question": "Q?", "answer": 0},
        {"qid": 2, "image_name": "a.jpg", "question": "", "answer": "yes"},
        {"qid": 3, "question": "Q?", "answer": "no"},
        {"qid": 4, "image_name": "b.jpg", "question": "Q?", "answer": "no"},
    ]
    (tmp_path / "valset.json").write_text(json.dumps(records))
    rows, rejects = _split(list(vqa.read(_spec(tmp_path), vqa.Options(split="val"))))
    assert [r["messages"][1]["content"] for r in rows] == ["0"]
    assert [(r.reason, r.locator) for r in rejects] == [
        ("bad_record", "valset.json#qid=2"),
        ("bad_record", "valset.json#qid=3"),
        ("missing_image", "valset.json#qid=4"),
    ]

    with pytest.raises(ConnectorError, match="no trainset.json"):
        next(vqa.read(_spec(tmp_path), vqa.Options()))
    with pytest.raises(ConnectorError, match="image folder"):
        next(vqa.read(_spec(tmp_path), vqa.Options(split="val", image_dir="pictures")))
    (tmp_path / "oddset.json").write_text("{}")
    with pytest.raises(ConnectorError, match="JSON list"):
        list(vqa.read(_spec(tmp_path), vqa.Options(split="odd")))
    with pytest.raises(ValidationError):
        vqa.Options(splits="all")


def test_hub_parquet_layout(tmp_path, realdata):
    """The Hub form (image struct, question, answer) read from a local parquet in the same layout."""
    import datasets as hf

    folder = realdata / "vqa" / "vqa_rad"
    records = json.loads((folder / "testset.json").read_text())
    have = [r for r in records if (folder / "images" / r["image_name"]).is_file()][:5]
    ds = hf.Dataset.from_dict({
        "image": [{"bytes": (folder / "images" / r["image_name"]).read_bytes(), "path": r["image_name"]} for r in have],
        "question": [r["question"] for r in have], "answer": [str(r["answer"]) for r in have]},
        features=hf.Features({"image": hf.Image(), "question": hf.Value("string"), "answer": hf.Value("string")}))
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
    spec = SourceSpec(name="vqa-rad", kind="vqa", path=tmp_path / "data", license="cc0-1.0")
    rows = list(vqa.read(spec, vqa.Options(split="test")))
    assert len(rows) == 5 and all(r["kind"] == "vqa" for r in rows)
    assert rows[0]["image"]["bytes"] == (folder / "images" / have[0]["image_name"]).read_bytes()
    assert rows[0]["messages"][0]["content"] == have[0]["question"].strip()
    with pytest.raises(ConnectorError, match="train-\\*.parquet"):
        list(vqa.read(spec, vqa.Options(split="train")))
