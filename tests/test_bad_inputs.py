"""A corpus of bad inputs, built from real files in ../shared, run through `curate ingest` as a user would: each bad
item gives its specific reject (file, line or locator, and why), every good row next to it is kept, and the exit code
says whether anything usable came out. PHI planted in 35 profile attributes of a real CT never reaches an output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pypdf import PdfWriter

from curate.cli import main
from curate.ingest.deid import deidentify
from curate.ingest.deid_table import ROWS
from curate.io import read_jsonl

FIRSTAID = "qa/firstaidqa/firstaidqa_v1.json"
WASH = "pdf/who_health_edrm_wash_factsheet_2017.pdf"
MARK = "PHI7731"


def build(tmp: Path, realdata: Path) -> dict[str, tuple[str, Path]]:
    """name -> (connector kind, path) of every bad input, each next to good rows where it can be."""
    pairs = json.loads((realdata / FIRSTAID).read_text())[:20]
    lines = [json.dumps(p) for p in pairs]
    (tmp / "broken.jsonl").write_text("\n".join(lines[:10] + [lines[10][:30]] + lines[11:]) + "\n")
    (tmp / "zero.jsonl").write_bytes(b"")
    csv = "question,answer\n" + "".join(f'"{p["question"]} (café)","{p["answer"]}"\n' for p in pairs)
    (tmp / "latin1.csv").write_bytes(csv.encode("latin-1", "replace"))
    (tmp / "reply.jsonl").write_text("".join(json.dumps({"question": p["question"], "reply": p["answer"]}) + "\n"
                                             for p in pairs))
    pdfs = tmp / "pdfs"
    pdfs.mkdir()
    wash = (realdata / WASH).read_bytes()
    (pdfs / "good.pdf").write_bytes(wash)
    (pdfs / "truncated.pdf").write_bytes(wash[: len(wash) // 3])
    (pdfs / "zero.pdf").write_bytes(b"")
    (pdfs / "a-dicom.pdf").write_bytes((realdata / "dicom" / "cp_ctimage.dcm").read_bytes())
    encrypted = PdfWriter(clone_from=str(realdata / WASH))
    encrypted.encrypt("secret")
    encrypted.write(str(pdfs / "encrypted.pdf"))
    dicoms = tmp / "dicom"
    dicoms.mkdir()
    shutil.copy(realdata / "dicom" / "cp_ctimage.dcm", dicoms / "good.dcm")
    shutil.copy(get_testdata_file("JPEG-lossy.dcm", download=False), dicoms / "jpeg_extended.dcm")
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False), dicoms / "jpeg_ls.dcm")
    shutil.copy(realdata / "dicom" / "dwv_gdcm-CT-MONO2-8-abdo.dcm", dicoms / "burned_in.dcm")
    (dicoms / "zero.dcm").write_bytes(b"")
    (dicoms / "truncated.dcm").write_bytes((realdata / "dicom" / "cp_ctimage.dcm").read_bytes()[:3000])
    return {"qa-broken-line": ("hf_qa", tmp / "broken.jsonl"), "qa-zero-byte": ("hf_qa", tmp / "zero.jsonl"),
            "qa-wrong-encoding": ("hf_qa", tmp / "latin1.csv"), "qa-missing-column": ("hf_qa", tmp / "reply.jsonl"),
            "pdfs": ("pdf", pdfs), "dicoms": ("dicom", dicoms)}


# name -> (exit code, good rows kept, {locator ending: reason})
EXPECTED = {
    "qa-broken-line": (0, 19, {"broken.jsonl:11": "bad_line"}),
    "qa-zero-byte": (1, 0, {"zero.jsonl": "empty_file"}),
    "qa-wrong-encoding": (1, 0, {"latin1.csv": "bad_encoding"}),
    "qa-missing-column": (1, 0, {"reply.jsonl": "source_error"}),
    "pdfs": (0, 2, {"truncated.pdf": "corrupt_pdf", "zero.pdf": "empty_file", "a-dicom.pdf": "not_pdf",
                    "encrypted.pdf": "encrypted"}),
    "dicoms": (0, 1, {"jpeg_extended.dcm": "no_decoder", "jpeg_ls.dcm": "no_decoder",
                      "burned_in.dcm": "burned_in_text", "zero.dcm": "not_dicom", "truncated.dcm": "corrupt_dicom"}),
}


def ingest(kind: str, path: Path, out: Path, capsys) -> tuple[int, int, list[dict], str]:
    code = main(["ingest", kind, "--path", str(path), "-o", str(out), "--no-progress"])
    printed = capsys.readouterr()
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in out.glob("part-*.parquet"))
    return code, rows, read_jsonl(out / "rejects.jsonl"), printed.out + printed.err


def test_every_bad_input_has_its_reject_and_good_rows_stay(tmp_path, realdata, capsys):
    corpus = build(tmp_path, realdata)
    for name, (kind, path) in corpus.items():
        code, rows, rejects, printed = ingest(kind, path, tmp_path / f"out-{name}", capsys)
        want_code, want_rows, want_rejects = EXPECTED[name]
        got = {r["locator"]: r["reason"] for r in rejects}
        assert (code, rows) == (want_code, want_rows), (name, code, rows, got)
        assert len(got) == len(want_rejects), (name, got)
        for ending, reason in want_rejects.items():
            assert [r for loc, r in got.items() if str(loc).endswith(ending)] == [reason], (name, ending, got)
        assert all(r["detail"] for r in rejects), name  # each says why
        assert "Traceback" not in printed, (name, printed[-500:])
    details = {r["reason"]: r["detail"] for name in corpus for r in read_jsonl(tmp_path / f"out-{name}" /
                                                                                "rejects.jsonl")}
    assert "line 11" in details["bad_line"] and "utf-8" in details["bad_encoding"]
    assert "decrypt" in details["encrypted"] and "curate[dicom-codecs]" in details["no_decoder"]
    assert "99.99.9999" in details["burned_in_text"] and "18.11.1995" not in details["burned_in_text"]


def test_phi_planted_in_35_profile_attributes_never_reaches_an_output(tmp_path, realdata, capsys):
    ds = pydicom.dcmread(realdata / "dicom" / "cp_ctimage.dcm")
    planted = []
    for tag, keyword, action, *_ in ROWS:
        if action == "K" or keyword not in pydicom.datadict.keyword_dict:
            continue
        vr = pydicom.datadict.dictionary_VR(tag)
        if vr in ("PN", "LO", "SH", "LT", "ST", "UT") and len(planted) < 35:
            ds.add_new(tag, vr, f"{MARK} {keyword}"[:64 if vr == "LO" else 16 if vr == "SH" else 200])
            planted.append(keyword)
    assert len(planted) == 35 and {"PatientName", "PatientID", "InstitutionName"} <= set(planted)
    folder = tmp_path / "phi"
    folder.mkdir()
    ds.save_as(folder / "planted.dcm")
    code, rows, rejects, printed = ingest("dicom", folder, tmp_path / "out", capsys)
    assert (code, rows, rejects) == (0, 1, [])
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert MARK.encode() not in path.read_bytes(), path
    assert MARK not in printed
    cleaned = deidentify(ds, "a key")  # and the de-identified header itself holds none of it
    assert not [e.keyword for e in cleaned.iterall() if MARK in str(e.value)]


@pytest.mark.parametrize("bad", ["x/../../../elsewhere", "Capitals", "dots.in.name"])
def test_a_stage_name_that_is_not_a_slug_is_refused(tmp_path, realdata, capsys, bad):
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"name": "p", "sources": [{"source": "hf_qa", "path": str(realdata / FIRSTAID),
                                                          "license": "cc-by-4.0", "limit": 5}],
                                "stages": [{"stage": "select", "name": bad}]}))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "must be a slug" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path.parent / "elsewhere").exists()
