"""``synth_vqa`` on real records: ROCOv2 test captions and CUIs (stand-in JPEGs named after real IDs), VQA-RAD rows
that must pass through, and real DICOM files whose modality comes from the header; once through the real runner."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from PIL import Image

from curate.ingest import dicom, rocov2
from curate.ingest.base import SourceSpec
from curate.io import read_jsonl
from curate.orchestrate import run_plan
from curate.pipeline import load_plan
from curate.rag import vqa
from curate.rag.vqa import CAPTION_QUESTION, SynthVQA, evidence_sentence
from curate.schema import MODALITY_CUIS
from curate.stage import DROP

ROCO = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "rocov2"
# 1 CT (concept name not verbatim in the caption), 2 CT + thrombosis, 3 angiography only, 21 CT with four concepts
# in the caption, 129 "resolution of the pneumothorax", 195 PET-CT caption without a modality CUI, 280 "no signs of
# placenta accreta", 583 CT with an unnamed CUI, 3792 PET/CT, 4126 MRI with an unnamed CUI.
NUMBERS = (1, 2, 3, 21, 129, 195, 280, 583, 3792, 4126)
IDS = [f"ROCOv2_2023_test_{n:06d}" for n in NUMBERS]
# What a modality answer must say for each modality CUI (ROCOv2) or DICOM Modality code, worded independently.
CUI_WORDS = {"C0040405": "computed tomography", "C0024485": "magnetic resonance", "C0002978": "angiography",
             "C0032743": "positron emission", "C1306645": "radiograph", "C0041618": "ultrasonography"}
DICOM_WORDS = {"CT": "computed tomography", "MR": "magnetic resonance", "CR": "radiograph", "DX": "radiograph"}
QUESTIONS = {"caption": CAPTION_QUESTION, "modality": "Which imaging modality is this?",
             "findings": "What structures or findings are shown in this image?"}


def _csv(name: str) -> dict[str, dict]:
    with open(ROCO / name, newline="", encoding="utf-8") as f:
        return {row[next(iter(row))]: row for row in csv.DictReader(f)}


CAPTIONS = {k: v["Caption"].strip() for k, v in _csv("test_captions.csv").items()}


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), color=(shade, 255 - shade, 90)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory, realdata) -> dict:
    tmp = tmp_path_factory.mktemp("vqa")
    images = tmp / "roco-images"
    images.mkdir()
    for i, image_id in enumerate(IDS):
        (images / f"{image_id}.jpg").write_bytes(_jpeg(20 * i))
    # A real CT file without its Modality and BodyPartExamined: an image with nothing to ask about.
    bare = tmp / "dicom-bare"
    bare.mkdir()
    ds = pydicom.dcmread(realdata / "dicom" / "cp_ctimage.dcm")
    for keyword in ("Modality", "BodyPartExamined"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(bare / "no_modality.dcm")
    return {"tmp": tmp, "images": images, "bare": bare, "dicom": realdata / "dicom",
            "vqa_rad": realdata / "vqa" / "vqa_rad"}


def read_rows(folder: Path) -> list[dict]:
    files = sorted(folder.glob("part-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def pairs_by_image(rows: list[dict]) -> dict[str, list[tuple[str, str, str]]]:
    """vqa rows made by synth_vqa grouped by the id of their image row: (template, question, answer)."""
    out: dict[str, list] = {}
    for row in rows:
        meta = json.loads(row["meta"] or "{}")
        if row["kind"] == "vqa" and "template" in meta:
            out.setdefault(meta["image_id"], []).append(
                (meta["template"], row["messages"][0]["content"], row["messages"][1]["content"]))
    return out


def mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) is not None


def check_rocov2_pairs(image: dict, made: list[tuple[str, str, str]]) -> None:
    """Every pair of one ROCOv2 image row is what its record states, and nothing else."""
    caption, cuis, names = image["caption"], image["cuis"], image["cui_names"]
    templates = [t for t, _, _ in made]
    assert [a for t, _, a in made if t == "caption"] == [caption]
    assert caption == CAPTIONS[image["provenance"]["locator"]]

    modality_cuis = [c for c in cuis if c in MODALITY_CUIS]
    answers = [a for t, _, a in made if t == "modality"]
    assert len(answers) == (1 if modality_cuis else 0)
    for answer in answers:
        said = {c for c, word in CUI_WORDS.items() if word in answer.lower()}
        assert said == set(modality_cuis), (answer, cuis)

    known = [n for c, n in zip(cuis, names) if c not in MODALITY_CUIS and n]
    findings = [a for t, _, a in made if t == "findings"]
    assert findings == ([f"The image shows {'; '.join(dict.fromkeys(known))}."] if known else [])

    evidence = [(q, a) for t, q, a in made if t == "evidence"]
    assert len(evidence) <= 2
    for question, answer in evidence:
        name = re.fullmatch(r"Is there evidence of (.+) in this image\?", question).group(1)
        assert name in {n.lower() for n in known} and mentions(caption, name)
        assert answer.startswith("Yes. ") and answer[5:] in caption and mentions(answer, name)
    for _, question, answer in made:
        assert "None" not in question and "None" not in answer  # an unnamed CUI never shows up
    span = [a for t, _, a in made if t == "finding"]
    assert len(span) <= 1
    for answer in span:  # the caption's own words, pointers such as "(arrow)" removed
        assert re.search(r"\b(showing|shows|demonstrat|reveal)", caption, re.IGNORECASE)
        assert answer[:-1].lower() in re.sub(r"\s*\([^()]*\)", "", caption).lower() or \
            answer[:-1].lower() in caption.lower()
    closed = [(q, a) for t, q, a in made if t == "closed_modality"]
    labels = {MODALITY_CUIS[c] for c in modality_cuis}
    if len(labels) == 1 and labels <= {"CT", "MRI", "X-ray", "Ultrasound"}:
        (yes_q, yes), (no_q, no) = closed  # balanced: one Yes about the modality, one No about another
        assert yes.startswith("Yes. ") and no.startswith("No. ") and yes[5:] == no[4:] == answers[0]
        assert yes_q != no_q
    else:
        assert closed == []  # no modality, or one that may be combined with another: no closed question
    regions = {vqa.REGION_CUIS[c] for c in json.loads(image["meta"])["manual_cuis"] or [] if c in vqa.REGION_CUIS}
    region_answers = [a for t, _, a in made if t == "region"]
    assert region_answers == ([f"The {regions.pop()}."] if len(regions) == 1 else [])
    closed_regions = [a for t, _, a in made if t == "closed_region"]
    assert [a.split(".")[0] for a in closed_regions] in ([], ["Yes", "No"])
    assert templates == sorted(templates, key=vqa.TEMPLATES.index)


# -- the stage on ROCOv2 rows, called directly ------------------------------------------------------------------

@pytest.fixture(scope="module")
def roco_rows(sources) -> list[dict]:
    spec = SourceSpec(name="rocov2", kind="rocov2", license="CC-BY-NC-SA-4.0", path=ROCO)
    rows = [r for r in rocov2.read(spec, rocov2.Options(image_dir=sources["images"])) if isinstance(r, dict)]
    assert [r["provenance"]["locator"] for r in rows] == IDS
    return rows


def run_stage(rows: list[dict], **config) -> list[dict]:
    stage = SynthVQA(config)
    out = stage({k: [r[k] for r in rows] for k in rows[0]})
    return [dict(zip(out, values)) for values in zip(*out.values())]


def test_pairs_state_only_what_each_record_says(roco_rows):
    out = run_stage(roco_rows)
    made = pairs_by_image(out)
    assert set(made) == {r["id"] for r in roco_rows} and not [r for r in out if r.get(DROP)]
    for image in roco_rows:
        check_rocov2_pairs(image, made[image["id"]])
    by_id = {r["provenance"]["locator"]: made[r["id"]] for r in roco_rows}

    first = by_id[IDS[0]]
    assert ("modality", QUESTIONS["modality"], "This image was acquired with computed tomography (CT).") in first
    assert ("findings", QUESTIONS["findings"], "The image shows Aneurysm, Ascending Aorta.") in first
    assert not [t for t, _, _ in first if t == "evidence"]  # the concept's name is not verbatim in the caption
    assert ("evidence", "Is there evidence of thrombosis in this image?", f"Yes. {CAPTIONS[IDS[1]]}") in by_id[IDS[1]]
    assert [t for t, _, _ in by_id[IDS[2]] if t in ("caption", "modality", "findings", "evidence")] == [
        "caption", "modality"]  # its only concept is the modality
    assert ("closed_modality", "Is this a CT scan?", "Yes. This image was acquired with computed tomography (CT).") \
        in first
    assert ("finding", "What does this CT image show?", "A huge ascending aortic aneurysm.") in first, first
    assert not [t for t, _, _ in by_id[IDS[8]] if t == "closed_modality"]  # PET-CT: a "No" would not be known
    assert [q for t, q, _ in by_id[IDS[3]] if t == "evidence"] == [
        "Is there evidence of hemorrhage in this image?", "Is there evidence of temporal lobe in this image?"]
    assert "modality" not in [t for t, _, _ in by_id[IDS[5]]]  # "PET-CT" in the caption, but no modality CUI
    pet_ct = next(a for t, _, a in by_id[IDS[8]] if t == "modality")
    assert "positron emission" in pet_ct and "computed tomography" in pet_ct
    heart = [a for t, q, a in by_id[IDS[7]] if q == "Is there evidence of heart in this image?"]
    assert len(heart) == 1 and mentions(heart[0], "heart")  # its unnamed third CUI is skipped, not fatal


def test_negated_mentions_are_not_evidence(roco_rows):
    made = {r["provenance"]["locator"]: pairs_by_image(run_stage([r]))[r["id"]] for r in roco_rows}
    # "A 39-year-old patient with no signs of placenta accreta."
    assert mentions(CAPTIONS[IDS[6]], "Placenta Accreta") and not [t for t, _, _ in made[IDS[6]] if t == "evidence"]
    # "... showing almost complete resolution of the second pneumothorax ...": the chest is there, the
    # pneumothorax is gone.
    assert [q for t, q, _ in made[IDS[4]] if t == "evidence"] == ["Is there evidence of chest in this image?"]
    assert evidence_sentence(CAPTIONS[IDS[1]], "thrombosis") == CAPTIONS[IDS[1]]
    assert evidence_sentence("There was no enhancement of the myocardium.", "Myocardium") is None
    assert evidence_sentence("No effusion. A small effusion remains.", "effusion") == "A small effusion remains."


def test_templates_caps_and_missing_names(roco_rows):
    only = run_stage(roco_rows, templates=["modality", "evidence"], max_evidence=1)
    made = pairs_by_image(only)
    assert {t for pairs in made.values() for t, _, _ in pairs} == {"modality", "evidence"}
    assert max(sum(t == "evidence" for t, _, _ in pairs) for pairs in made.values()) == 1
    # IDS[5] has no modality CUI and no concept named in its caption: with these templates it yields nothing.
    dropped = [r for r in only if r.get(DROP)]
    assert [(r["provenance"]["locator"], r[DROP]) for r in dropped] == [(IDS[5], "no_pairs")]

    # A Hub copy without a CUI mapping has cui_names null: no findings, no evidence, no crash.
    unnamed = [{**r, "cui_names": None} for r in roco_rows]
    made = pairs_by_image(run_stage(unnamed))
    assert {t for pairs in made.values() for t, _, _ in pairs} == {"caption", "modality", "finding",
                                                                   "closed_modality", "region", "closed_region"}

    bare = {**roco_rows[0], "caption": None, "modality": None, "cuis": [], "cui_names": []}
    assert [r[DROP] for r in run_stage([bare])] == ["no_pairs"]


# -- the whole pipeline through the runner ----------------------------------------------------------------------

PIPELINE = """\
name: vqa-synth-test
batch_size: 16
sources:
  - source: rocov2
    name: rocov2
    path: {roco}
    license: CC-BY-NC-SA-4.0
    options: {{image_dir: {images}, split: test}}
  - source: vqa
    name: vqa_rad
    path: {vqa_rad}
    license: CC0-1.0
    limit: 12
  - source: dicom
    name: dicom-real
    path: {dicom}
    license: public-test-files
  - source: dicom
    name: dicom-bare
    path: {bare}
    license: public-test-files
stages:
  - stage: synth_vqa
    batch_size: 8
"""


@pytest.fixture(scope="module")
def run(sources):
    path = sources["tmp"] / "pipeline.yaml"
    path.write_text(PIPELINE.format(roco=ROCO.resolve(), **{k: sources[k] for k in ("images", "vqa_rad", "dicom",
                                                                                     "bare")}))
    plan = load_plan(path, run_dir=sources["tmp"] / "run")
    report = run_plan(plan)
    return report, sources["tmp"] / "run" / "01-ingest", Path(report.final_dir)


def test_runner_rocov2_pairs_and_images(run, sources):
    report, ingest_dir, out_dir = run
    ingested = {r["id"]: r for r in read_rows(ingest_dir)}
    made = pairs_by_image(read_rows(out_dir))
    roco = [r for r in ingested.values() if r["source"] == "rocov2"]
    assert sorted(r["provenance"]["locator"] for r in roco) == IDS
    for image in roco:
        check_rocov2_pairs(image, made[image["id"]])
    jpegs = {f"{i}.jpg": (sources["images"] / f"{i}.jpg").read_bytes() for i in IDS}
    for row in read_rows(out_dir):
        if row["source"] == "rocov2":
            assert row["image"]["bytes"] == jpegs[row["image"]["path"]]  # carried byte for byte
            assert row["caption"] == ingested[json.loads(row["meta"])["image_id"]]["caption"]
    stats = report.stages[1]
    assert stats.stage == "synth_vqa" and stats.dropped == {"no_pairs": 1}
    assert stats.counters["template_caption"] == len(roco) + 4  # 4 of the 5 real DICOMs: one has a burned-in date


def test_runner_dicom_modality_from_header_and_no_pairs(run, sources):
    _, ingest_dir, out_dir = run
    made = pairs_by_image(read_rows(out_dir))
    spec = SourceSpec(name="dicom-real", kind="dicom", license="public-test-files", path=sources["dicom"])
    read = list(dicom.read(spec, dicom.Options()))
    png = {r["provenance"]["locator"]: r["image"]["bytes"] for r in read if isinstance(r, dict)}
    assert [(r.locator, r.reason) for r in read if not isinstance(r, dict)] == [
        ("dwv_gdcm-CT-MONO2-8-abdo.dcm", "burned_in_text")]  # a date burned into its pixels
    rows = [r for r in read_rows(ingest_dir) if r["source"] == "dicom-real"]
    assert len(rows) == 4
    for image in rows:
        code = pydicom.dcmread(sources["dicom"] / image["provenance"]["locator"], stop_before_pixels=True).Modality
        answers = [a for t, _, a in made[image["id"]] if t == "modality"]
        assert len(answers) == 1 and DICOM_WORDS[code] in answers[0].lower()
        assert [a for t, _, a in made[image["id"]] if t == "caption"] == [image["caption"]]
    for row in read_rows(out_dir):
        if row["source"] == "dicom-real":
            assert row["image"]["bytes"] == png[row["provenance"]["locator"].split("#")[0]]

    rejects = read_jsonl(out_dir / "rejects.jsonl")
    assert [(r["reason"], r["row"]["source"]) for r in rejects] == [("no_pairs", "dicom-bare")]
    assert not [r for r in read_rows(out_dir) if r["source"] == "dicom-bare"]


def test_runner_passes_vqa_rad_rows_through_untouched(run):
    _, ingest_dir, out_dir = run
    before = [r for r in read_rows(ingest_dir) if r["source"] == "vqa_rad"]
    after = [r for r in read_rows(out_dir) if r["source"] == "vqa_rad"]
    assert len(before) == 12 and after == before


def test_dicom_closed_questions_come_from_tags_only(realdata):
    """The CR chest file's BodyPartExamined (CHEST) gives region questions; the CT whose only 'CHEST' is the free-text
    StudyDescription gives none; both get a balanced modality pair from their Modality tag."""
    spec = SourceSpec(name="dicom", kind="dicom", license="test", path=realdata / "dicom")
    images = {r["provenance"]["locator"].split("/")[-1]: r for r in dicom.read(spec, dicom.Options())
              if isinstance(r, dict)}
    config = {"templates": ["closed_modality", "region", "closed_region"]}
    made = {name: [(t, q, a) for t, q, a in vqa.pairs(images[name], vqa.SynthVQAConfig(**config))]
            for name in ("dwv_gdcm-CR-MONO1-10-chest.dcm", "cp_ctimage.dcm")}
    chest = made["dwv_gdcm-CR-MONO1-10-chest.dcm"]
    assert ("region", "Which body region is shown?", "The chest.") in chest
    closed = [(q, a) for t, q, a in chest if t == "closed_region"]
    assert closed[0] == ("Is this an image of the chest?", "Yes. The image shows the chest.")
    assert closed[1][1] == "No. The image shows the chest." and closed[1][0] in {
        f"Is this an image of the {r}?" for r in ("head", "pelvis", "lower extremity")}
    assert [a.split(".")[0] for t, _, a in chest if t == "closed_modality"] == ["Yes", "No"]
    ct = made["cp_ctimage.dcm"]
    assert [t for t, _, _ in ct] == ["closed_modality", "closed_modality"]  # no region: only free text says CHEST


@pytest.mark.slow
def test_llm_mode_writes_questions_for_caption_answers_with_the_real_gemma(roco_rows):
    """mode: llm with the embedded Gemma 3 270M: every kept question stands alone and does not give its answer away;
    every answer is the caption's own words; every image with a finding is either a pair or a counted drop."""
    from curate.rag.question_checks import question_problem

    stage = SynthVQA({"mode": "llm"})
    out = stage({k: [r[k] for r in roco_rows] for k in roco_rows[0]})
    out_rows = [dict(zip(out, values)) for values in zip(*out.values())]
    made = pairs_by_image(out_rows)
    with_finding = [r for r in roco_rows if vqa.finding_span(r["caption"])]
    kept = {i: p for i, p in made.items() if p}
    dropped = {k: v for k, v in stage.counters.items() if k.startswith("llm_")}
    assert len(kept) + sum(dropped.values()) == len(with_finding) and stage.counters["tokens_generated"] > 0
    # each question not kept is one reject of its image, with the reason counted and the model's raw output
    rejects = [r for r in out_rows if (r.get(DROP) or "").startswith("llm_")]
    assert Counter(r[DROP] for r in rejects) == dropped and sum(dropped.values()) > 0
    assert all('"question"' in r["_drop_detail"] for r in rejects if r[DROP] != "llm_malformed")
    assert {r["id"] for r in rejects} | set(kept) == {r["id"] for r in with_finding}
    assert [r[DROP] for r in out_rows if r.get(DROP) == "no_pairs"] == ["no_pairs"] * (
        len(roco_rows) - len(with_finding))  # an image with a rejected question is not also no_pairs
    by_id = {r["id"]: r for r in roco_rows}
    for image_id, pairs in kept.items():
        ((template, question, answer),) = pairs
        assert template == "llm_finding" and question_problem(question, stage.prompts.examples) is None
        assert answer[:-1].lower() not in question.lower() and not vqa._BEYOND.search(question)
        assert answer[:-1] == vqa.finding_span(by_id[image_id]["caption"])[0].upper() + \
            vqa.finding_span(by_id[image_id]["caption"])[1:]


def test_a_caption_with_nothing_to_ask_about_gives_no_caption_pairs(roco_rows):
    """A real ROCOv2 record whose caption is replaced by "See text." keeps only its concept pairs; with no modality
    and no named concept either it is no_pairs; every unnamed CUI is counted."""
    record = next(r for r in roco_rows if r["modality"] == "CT")
    bare = {**record, "caption": "See text."}
    made = pairs_by_image(run_stage([bare]))[bare["id"]]
    assert made and not [t for t, _, _ in made if t in ("caption", "evidence", "finding")]
    assert vqa.usable_caption("Figure 2") == vqa.usable_caption("CT") == "" and vqa.usable_caption(record["caption"])
    nothing = {**bare, "cuis": [], "cui_names": [], "modality": None, "meta": json.dumps({"manual_cuis": []})}
    assert [r[DROP] for r in run_stage([nothing])] == ["no_pairs"]
    stage = SynthVQA({})
    stage({k: [v] for k, v in {**record, "cui_names": None}.items()})
    assert stage.counters["unnamed_cui"] == len(record["cuis"]) and stage.counters["unusable_caption"] == 0
