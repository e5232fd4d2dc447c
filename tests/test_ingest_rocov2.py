"""ROCOv2 connector on the real test-split CSVs (captions, concepts, CUI mapping) with generated stand-in images."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import ValidationError

from curate.ingest import rocov2
from curate.ingest.base import ConnectorError, HubLocation, Reject, SourceSpec
from curate.schema import FEATURES

ROCO = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "rocov2"
N_TEST = 9_927

# CT (first row), angiography, ultrasound, CT with the unmapped C0006142, PET/CT, MRI with C0006142.
IDS = [f"ROCOv2_2023_test_{n:06d}" for n in (1, 3, 11, 583, 3792, 4126)]


def _csv(name: str, column: str) -> dict[str, str]:
    with open(ROCO / name, newline="", encoding="utf-8") as f:
        return {row["ID"]: row[column] for row in csv.DictReader(f)}


CAPTIONS = _csv("test_captions.csv", "Caption")
CONCEPTS = {k: v.split(";") for k, v in _csv("test_concepts.csv", "CUIs").items()}
MANUAL = {k: [c for c in v.split(";") if c] for k, v in _csv("test_concepts_manual.csv", "CUIs").items()}
with open(ROCO / "cui_mapping.csv", newline="", encoding="utf-8") as _f:
    MAPPING = {row["CUI"]: row["Canonical name"] for row in csv.DictReader(_f)}


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (24, 16), color=shade).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image_id in enumerate(IDS):
        (folder / f"{image_id}.jpg").write_bytes(_jpeg(30 * i))
    return folder


def _spec(path: Path | None = ROCO, **kw) -> SourceSpec:
    return SourceSpec(name="rocov2", kind="rocov2", license="CC-BY-NC-SA-4.0", path=path, **kw)


def _split(items: list) -> tuple[list[dict], list[Reject]]:
    return [i for i in items if isinstance(i, dict)], [i for i in items if isinstance(i, Reject)]


def test_release_layout_real_rows_and_missing_images(image_dir: Path) -> None:
    rows, rejects = _split(list(rocov2.read(_spec(), rocov2.Options(image_dir=image_dir))))

    assert [r["provenance"]["locator"] for r in rows] == IDS
    assert len(rejects) == N_TEST - len(IDS)
    assert {r.reason for r in rejects} == {"missing_image"}
    assert rejects[0].locator == "ROCOv2_2023_test_000002"
    assert str(image_dir / "ROCOv2_2023_test_000002.jpg") in rejects[0].detail
    for row in rows:
        image_id = row["provenance"]["locator"]
        assert row["kind"] == "image" and row["source"] == "rocov2" and row["license"] == "CC-BY-NC-SA-4.0"
        assert row["image"] == {"bytes": (image_dir / f"{image_id}.jpg").read_bytes(), "path": f"{image_id}.jpg"}
        assert row["caption"] == CAPTIONS[image_id].strip()
        assert row["cuis"] == CONCEPTS[image_id]
        assert row["cui_names"] == [MAPPING.get(c) for c in row["cuis"]]
        assert json.loads(row["meta"])["manual_cuis"] == MANUAL[image_id]
        assert json.loads(row["meta"])["split"] == "test"

    first = rows[0]
    assert first["caption"] == "CT chest axial view showing a huge ascending aortic aneurysm (*)."
    assert first["cuis"] == ["C0040405", "C0856747"]
    assert first["cui_names"] == ["X-Ray Computed Tomography", "Aneurysm, Ascending Aorta"]
    assert [r["modality"] for r in rows] == ["CT", "Angiography", "Ultrasound", "CT", "PET/CT", "MRI"]
    assert Image.open(io.BytesIO(first["image"]["bytes"])).size == (24, 16)


def test_unknown_cuis_are_kept_without_a_name(image_dir: Path) -> None:
    rows = [r for r in rocov2.read(_spec(), rocov2.Options(image_dir=image_dir)) if isinstance(r, dict)]
    row = next(r for r in rows if r["provenance"]["locator"] == "ROCOv2_2023_test_000583")
    assert row["cuis"] == ["C0040405", "C0018787", "C0006142"]
    assert row["cui_names"] == ["X-Ray Computed Tomography", "Heart", None]
    assert json.loads(row["meta"])["unknown_cuis"] == ["C0006142"]
    assert "unknown_cuis" not in json.loads(rows[0]["meta"])

    counts = rocov2.unknown_cuis(_spec(), rocov2.Options())
    expected = Counter(c for cuis in CONCEPTS.values() for c in cuis if c not in MAPPING)
    assert counts == expected
    assert len(counts) == 13 and "C0006142" in counts


def test_rows_fit_the_schema(image_dir: Path) -> None:
    rows = [r for r in rocov2.read(_spec(), rocov2.Options(image_dir=image_dir)) if isinstance(r, dict)]
    ds = datasets.Dataset.from_list(rows, features=FEATURES)
    assert ds[3]["cui_names"][-1] is None
    assert ds[0]["cuis"] == ["C0040405", "C0856747"]


def test_filters_select_rows_without_rejecting_the_rest(image_dir: Path) -> None:
    rows, rejects = _split(list(rocov2.read(_spec(), rocov2.Options(image_dir=image_dir, modalities=["pet"]))))
    n_pet = sum("C0032743" in cuis for cuis in CONCEPTS.values())
    assert [r["modality"] for r in rows] == ["PET/CT"]
    assert len(rejects) == n_pet - 1

    options = rocov2.Options(image_dir=image_dir, modalities=["CT", "MRI"], cuis=["C0006142"])
    rows, rejects = _split(list(rocov2.read(_spec(), options)))
    assert [r["provenance"]["locator"] for r in rows] == [IDS[3], IDS[5]]
    n_selected = sum(
        "C0006142" in cuis and bool({"C0040405", "C0024485"} & set(cuis)) for cuis in CONCEPTS.values()
    )
    assert len(rejects) == n_selected - 2


def test_limit_counts_rows(image_dir: Path) -> None:
    rows, _ = _split(list(rocov2.read(_spec(limit=2), rocov2.Options(image_dir=image_dir))))
    assert [r["provenance"]["locator"] for r in rows] == IDS[:2]


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown modalities"):
        rocov2.Options(modalities=["Xray"])
    with pytest.raises(ValidationError):
        rocov2.Options(image_folder="x")
    assert rocov2.Options(modalities=["x-ray", "ultrasound"]).modalities == ["X-ray", "Ultrasound"]


def test_missing_image_folder_is_a_connector_error() -> None:
    with pytest.raises(ConnectorError, match="image_dir"):
        next(rocov2.read(_spec(), rocov2.Options()))


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", newline="")


def test_nan_and_empty_concepts_and_splits(tmp_path: Path) -> None:
    _write(tmp_path / "valid_captions.csv", "ID,Caption\r\nA,First\r\nB,Second\r\nC,Third\r\nD,\r\n")
    _write(tmp_path / "valid_concepts.csv", "ID,CUIs\r\nA,C0040405;nan\r\nB,\r\nC,NaN;C1306645;C0006142\r\n")
    _write(tmp_path / "train_captions.csv", "ID,Caption\r\nT,Train row\r\n")
    _write(tmp_path / "cui_mapping.csv", "CUI,Canonical name\r\nC0040405,CT\r\nC1306645,Radiograph\r\n")
    (tmp_path / "valid").mkdir()
    for image_id in "ABCD":
        (tmp_path / "valid" / f"{image_id}.jpg").write_bytes(_jpeg(100))

    with pytest.raises(ConnectorError, match="several splits"):
        next(rocov2.read(_spec(tmp_path), rocov2.Options()))
    with pytest.raises(ConnectorError, match="no test_captions.csv"):
        next(rocov2.read(_spec(tmp_path), rocov2.Options(split="test")))

    rows, rejects = _split(list(rocov2.read(_spec(tmp_path), rocov2.Options(split="valid"))))
    assert [(r["cuis"], r["cui_names"], r["modality"]) for r in rows] == [
        (["C0040405"], ["CT"], "CT"),
        ([], [], None),
        (["C1306645", "C0006142"], ["Radiograph", None], "X-ray"),
    ]
    assert [(r.reason, r.locator) for r in rejects] == [("empty_caption", "D")]
    assert "manual_cuis" not in json.loads(rows[0]["meta"])
    assert rocov2.unknown_cuis(_spec(tmp_path), rocov2.Options(split="valid")) == Counter({"C0006142": 1})


def _hub_parquet(path: Path, with_image: list[str], without_image: list[str]) -> dict[str, bytes]:
    images = {image_id: _jpeg(40 + i) for i, image_id in enumerate(with_image)}
    ids = with_image + without_image
    table = pa.table({
        "image": [{"bytes": images.get(i), "path": f"{i}.jpg" if i in images else None} for i in ids],
        "image_id": ids,
        "caption": [CAPTIONS[i] for i in ids],
        "cui": [CONCEPTS[i] + (["nan"] if n == 0 else []) for n, i in enumerate(ids)],
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return images


def test_hub_layout_parquet(tmp_path: Path) -> None:
    images = _hub_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", IDS[:4], ["ROCOv2_2023_test_000002"])
    options = rocov2.Options(cui_mapping=ROCO.resolve() / "cui_mapping.csv")
    rows, rejects = _split(list(rocov2.read(_spec(tmp_path), options)))

    assert [r["provenance"]["locator"] for r in rows] == IDS[:4]
    assert [(r.reason, r.locator) for r in rejects] == [("missing_image", "ROCOv2_2023_test_000002")]
    for row in rows:
        image_id = row["provenance"]["locator"]
        assert row["image"] == {"bytes": images[image_id], "path": f"{image_id}.jpg"}
        assert row["caption"] == CAPTIONS[image_id].strip()
        assert row["cuis"] == CONCEPTS[image_id]
        assert row["cui_names"] == [MAPPING.get(c) for c in CONCEPTS[image_id]]
        assert json.loads(row["meta"])["split"] == "test"
    assert [r["modality"] for r in rows] == ["CT", "Angiography", "Ultrasound", "CT"]

    no_mapping = [r for r in rocov2.read(_spec(tmp_path), rocov2.Options()) if isinstance(r, dict)]
    assert no_mapping[0]["cui_names"] is None and no_mapping[0]["cuis"] == CONCEPTS[IDS[0]]
    shard = tmp_path / "data" / "test-00000-of-00001.parquet"
    rows, rejects = _split(list(rocov2.read(_spec(shard), rocov2.Options(modalities=["CT"]))))
    assert [r["provenance"]["locator"] for r in rows] == [IDS[0], IDS[3]]
    assert [r.locator for r in rejects] == ["ROCOv2_2023_test_000002"]  # also CT, but stored without bytes
    with pytest.raises(ConnectorError, match="split 'train'"):
        next(rocov2.read(_spec(tmp_path), rocov2.Options(split="train")))


def test_hub_layout_wrong_columns(tmp_path: Path) -> None:
    pq.write_table(pa.table({"image_id": ["x"], "text": ["y"]}), tmp_path / "x.parquet")
    with pytest.raises(ConnectorError, match="lacks columns"):
        next(rocov2.read(_spec(tmp_path), rocov2.Options()))


def test_hub_source_streams_with_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``hub:`` source goes through datasets.load_dataset; here it is pointed at a local parquet (no network)."""
    shard = tmp_path / "test-00000-of-00001.parquet"
    images = _hub_parquet(shard, IDS[:2], [])
    calls = []
    load = datasets.load_dataset

    def fake_load(repo, config=None, **kw):
        calls.append((repo, config, kw))
        return load("parquet", data_files={kw["split"]: str(shard)}, split=kw["split"], streaming=True)

    monkeypatch.setattr(rocov2.datasets, "load_dataset", fake_load)
    spec = _spec(None, hub=HubLocation(repo="eltorio/ROCOv2-radiology", split="test", revision="abc123"))
    rows = list(rocov2.read(spec, rocov2.Options()))

    assert calls == [("eltorio/ROCOv2-radiology", None, {"split": "test", "revision": "abc123", "streaming": True})]
    assert [r["image"]["bytes"] for r in rows] == [images[i] for i in IDS[:2]]
    assert rows[0]["provenance"] == {"origin": "eltorio/ROCOv2-radiology", "revision": "abc123", "locator": IDS[0]}
    assert rows[0]["cuis"] == CONCEPTS[IDS[0]] and rows[0]["cui_names"] is None
    assert rocov2.unknown_cuis(spec, rocov2.Options(cui_mapping=ROCO.resolve() / "cui_mapping.csv")) == Counter()


def test_unrecognised_path_is_a_connector_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no ROCOv2 data"):
        next(rocov2.read(_spec(ROCO / "test_captions.csv"), rocov2.Options()))
    with pytest.raises(ConnectorError, match="no ROCOv2 data"):
        next(rocov2.read(_spec(tmp_path), rocov2.Options()))
