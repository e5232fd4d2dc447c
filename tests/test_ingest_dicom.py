"""The dicom connector and its de-identification, on real DICOM files (../shared/realdata/dicom and pydicom's own)."""

from __future__ import annotations

import copy
import io
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder

from curate.ingest import dicom
from curate.ingest.base import ConnectorError, Reject, SourceSpec
from curate.ingest.deid import deidentify, describe, new_uid

REAL = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "dicom"
CR_MONO1 = REAL / "dwv_gdcm-CR-MONO1-10-chest.dcm"
CT_CHEST = REAL / "cp_ctimage.dcm"
CT_NO_WINDOW = REAL / "dwv_gdcm-CT-MONO2-8-abdo.dcm"  # also the real file with a date burned into its pixels


def sample(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not in this pydicom wheel")
    return Path(path)


def read(path: Path, **options) -> list:
    spec = SourceSpec(name="dicom-test", kind="dicom", license="test-licence", path=path)
    return list(dicom.read(spec, dicom.Options(**options)))


def rows_of(items: list) -> list[dict]:
    return [item for item in items if not isinstance(item, Reject)]


def only_row(path: Path, **options) -> dict:
    items = read(path, **options)
    assert len(items) == 1 and not isinstance(items[0], Reject), items
    return items[0]


def pixels(row: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))


def modality_values(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def all_elements(ds: Dataset):
    """Every element of ``ds``, its file meta group and its sequences, depth first."""
    for elem in list(getattr(ds, "file_meta", [])) + list(ds):
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from all_elements(item)


IDENTIFYING = ("PatientID", "AccessionNumber", "InstitutionName", "InstitutionAddress", "StationName",
               "DeviceSerialNumber", "SourceApplicationEntityTitle")


def phi_of(ds: Dataset) -> tuple[set[str], set[str]]:
    """What identifies ``ds``'s patient or site: (texts to find as substrings: names, places; values to find whole:
    numbers, dates, times and the original UIDs, which could occur by chance inside new UIDs' digits)."""
    texts, whole = set(), set()
    for elem in all_elements(ds):
        values = [str(v) for v in (elem.value if elem.VM > 1 else [elem.value])] if elem.VM else []
        for value in values:
            if elem.VR == "PN" or elem.keyword in IDENTIFYING:
                texts.update({value, *value.split("^")})
            elif elem.VR in ("DA", "TM", "DT") or (elem.VR == "UI" and pydicom.uid.UID(value).name == value):
                whole.add(value)
    whole |= {t for t in texts if not re.search(r"[A-Za-z]", t)}
    whole = {w for w in whole if w.strip("0.")}  # placeholder times like 000000 identify no one
    return {t for t in texts if len(t) >= 3 and re.search(r"[A-Za-z]", t)}, whole


def assert_no_phi(values: list[str], texts: set[str], whole: set[str]) -> None:
    assert not [(t, v) for t in texts for v in values if t.casefold() in v.casefold()]
    assert not [v for v in values if v in whole]


def shown_values(row: dict) -> list[str]:
    """Every string a row shows about its image: meta values (nested), image name, locator, caption."""
    def leaves(value):
        if isinstance(value, dict):
            return [leaf for v in value.values() for leaf in leaves(v)]
        if isinstance(value, list):
            return [leaf for v in value for leaf in leaves(v)]
        return [str(value)]

    return leaves(json.loads(row["meta"])) + [row["image"]["path"], row["provenance"]["locator"], str(row["caption"])]


@pytest.fixture
def ct_small() -> Dataset:
    return pydicom.dcmread(sample("CT_small.dcm"))


# -- rendering real files ----------------------------------------------------------------------------------------

def test_every_real_file_becomes_a_png_of_its_size():
    items = read(REAL, ocr_burned_in=False)  # the OCR check has its own tests below
    files = sorted(REAL.glob("*.dcm"))
    assert len(files) == 5 and not [i for i in items if isinstance(i, Reject)]
    assert [r["provenance"]["locator"] for r in items] == [f.name for f in files]
    for row, path in zip(items, files):
        ds = pydicom.dcmread(path)
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.format == "PNG" and image.mode == "L"
        assert image.size == (ds.Columns, ds.Rows)
        assert row["kind"] == "image" and row["source"] == "dicom-test" and row["license"] == "test-licence"
        assert row["provenance"]["origin"] == str(REAL)
        assert row["image"]["path"].endswith(".png") and path.stem not in row["image"]["path"]
        meta = json.loads(row["meta"])
        assert meta["deidentification"] == describe() and meta["Rows"] == ds.Rows
    assert [r["modality"] for r in items] == ["CT", "MRI", "CT", "X-ray", "CT"]
    assert items[3]["caption"] == "X-ray image of the chest" and items[0]["caption"] == "CT image"


def test_max_size_downscales_the_longest_side_only():
    small = pixels(only_row(CT_CHEST, max_size=128))
    assert small.shape == (128, 128)
    assert pixels(only_row(CT_CHEST, max_size=None)).shape == (512, 512)
    assert pixels(only_row(sample("CT_small.dcm"), max_size=1024)).shape == (128, 128)
    # this real ultrasound has its date and device burned in: the OCR check would reject it
    palette = only_row(sample("examples_palette.dcm"), max_size=400, ocr_burned_in=False)
    assert pixels(palette).shape == (175, 400, 3)  # was 350 x 800


def test_monochrome1_chest_is_inverted_so_bone_is_white():
    raw = pydicom.dcmread(CR_MONO1).pixel_array.astype(float)
    raw_minmax = np.rint((raw - raw.min()) / (raw.max() - raw.min()) * 255)
    minmax = pixels(only_row(CR_MONO1, window="minmax")).astype(float)
    assert np.abs(minmax - (255 - raw_minmax)).max() <= 1
    auto = pixels(only_row(CR_MONO1)).astype(float)
    assert np.corrcoef(auto.ravel(), raw.ravel())[0, 1] < -0.9
    # the lungs (dark, air) are darker than the spine and heart in the middle column
    h, w = auto.shape
    assert auto[h // 3: h // 2, w // 4].mean() + 40 < auto[h // 3: h // 2, w // 2 - 10: w // 2 + 10].mean()


def test_ct_uses_the_files_window():
    row = only_row(CT_CHEST)
    assert json.loads(row["meta"])["window"] == {"method": "dicom", "center": 40.0, "width": 400.0,
                                                  "function": "LINEAR"}
    out, hu = pixels(row), modality_values(CT_CHEST)
    assert (out[hu <= 40 - 200] == 0).all() and (out[hu >= 40 + 200] == 255).all()
    soft = (hu > -150) & (hu < 230)
    assert soft.sum() > 10_000 and ((out[soft] > 0) & (out[soft] < 255)).all()
    assert np.corrcoef(out[soft], hu[soft])[0, 1] > 0.99
    assert len(np.unique(out)) > 200


def test_window_option_and_minmax():
    hu = modality_values(CT_CHEST)
    bone = pixels(only_row(CT_CHEST, window=(300, 1500)))
    assert (bone[hu <= 300 - 750] == 0).all() and (bone[hu >= 300 + 750] == 255).all()
    minmax_row = only_row(CT_CHEST, window="minmax")
    minmax = pixels(minmax_row)
    assert minmax.min() == 0 and minmax.max() == 255
    assert json.loads(minmax_row["meta"])["window"]["method"] == "minmax"
    assert not np.array_equal(minmax, pixels(only_row(CT_CHEST)))


def test_window_dicom_rejects_a_file_without_window_and_auto_falls_back():
    (reject,) = read(CT_NO_WINDOW, window="dicom")
    assert isinstance(reject, Reject) and reject.reason == "no_window"
    assert json.loads(only_row(CT_NO_WINDOW, ocr_burned_in=False)["meta"])["window"]["method"] == "minmax"


def test_voi_lut_sequence_is_applied(tmp_path, ct_small):
    lut = Dataset()
    lut.add_new("LUTDescriptor", "SS", [4096, -1024, 8])  # entries, first mapped value (HU), bits per entry
    lut.add_new("LUTData", "US", [0] * 1024 + [255] * 3072)  # HU < 0 -> black, HU >= 0 -> white
    ct_small.VOILUTSequence = [lut]
    ct_small.save_as(tmp_path / "lut.dcm")
    row = only_row(tmp_path / "lut.dcm")
    hu = modality_values(tmp_path / "lut.dcm")
    assert json.loads(row["meta"])["window"] == {"method": "voi_lut"}
    assert np.array_equal(pixels(row), np.where(hu >= 0, 255, 0))


def test_multiframe_frames_option():
    path = sample("examples_ybr_color.dcm")  # 30-frame YBR JPEG ultrasound
    every = read(path, frames="all")
    assert [r["provenance"]["locator"] for r in every] == [f"{path.name}#frame={i}" for i in range(1, 31)]
    assert [json.loads(r["meta"])["frame"] for r in every] == list(range(1, 31))
    assert len({r["id"] for r in every}) > 1
    (first,) = read(path, frames="first")
    (middle,) = read(path, frames="middle")
    assert first["image"]["bytes"] == every[0]["image"]["bytes"]
    assert middle["image"]["bytes"] == every[15]["image"]["bytes"]
    assert pixels(middle).shape == (240, 320, 3)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle_16bit.dcm"])
def test_colour_stays_colour_and_ybr_becomes_rgb(name):
    out = pixels(only_row(sample(name))).astype(int)
    assert out.shape == (100, 100, 3)
    for y, colour in ((5, (255, 0, 0)), (25, (0, 255, 0)), (45, (0, 0, 255)), (95, (255, 255, 255))):
        assert np.abs(out[y, 50] - colour).max() <= 8, (y, out[y, 50])


def test_palette_colour_becomes_rgb():
    out = pixels(only_row(sample("examples_palette.dcm"), ocr_burned_in=False))  # it has burned-in text
    assert out.shape == (350, 800, 3) and out.reshape(-1, 3).std(axis=0).min() > 20
    assert not np.array_equal(out[..., 0], out[..., 2])


# -- de-identification -------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_deidentify_leaves_no_phi_anywhere(ct_small):
    item = Dataset()  # PHI nested in a sequence must go too
    item.ReferencedSOPInstanceUID = ct_small.SOPInstanceUID
    item.ReferencedSOPClassUID = ct_small.SOPClassUID
    item.PerformingPhysicianName = "Doe^Jane"
    item.InstitutionName = "St Elsewhere Hospital"
    item.ContentDate = "19970430"
    item.add_new("InstanceCreationDate", "DA", "30.04.1997")  # not a DICOM date: cannot be shifted, so it goes
    ct_small.SourceImageSequence = [item]
    ct_small.add_new(0x60000022, "LO", "overlay description")
    texts, whole = phi_of(ct_small)
    assert {"CompressedSamples^CT1", "CompressedSamples", "JFK IMAGING CENTER", "Doe^Jane", "CLUNIE1"} <= texts
    assert {"1CT1", "ABCD1234", "20040119", "072730", ct_small.StudyInstanceUID} <= texts | whole

    original = copy.deepcopy(ct_small)
    clean = deidentify(ct_small, "test-key")
    assert ct_small == original  # a copy is cleaned, not the input
    assert_no_phi([str(e.value) for e in all_elements(clean) if e.VR not in ("OB", "OW", "SQ")], texts, whole)
    assert not [elem.tag for elem in all_elements(clean) if elem.tag.is_private or elem.tag.group == 0x6000]
    assert "StationName" not in clean and "InstitutionName" not in clean and "PatientAge" not in clean
    assert clean.PatientName == "" and clean.PatientID == "" and clean.PatientSex == ""
    assert clean.PatientIdentityRemoved == "YES" and clean.DeidentificationMethod == describe()
    assert clean.SOPClassUID == ct_small.SOPClassUID  # registered UIDs stay
    assert clean.file_meta.TransferSyntaxUID == ct_small.file_meta.TransferSyntaxUID
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert clean.SourceImageSequence[0].ReferencedSOPInstanceUID == clean.SOPInstanceUID
    assert "InstanceCreationDate" not in clean.SourceImageSequence[0]
    assert clean.SourceImageSequence[0].ContentDate == clean.SeriesDate  # same shift inside sequences
    assert np.array_equal(clean.pixel_array, ct_small.pixel_array)


def test_deidentify_shifts_dates_consistently_and_keeps_demographics_on_request(ct_small):
    import datetime as dt

    def day(value):
        return dt.datetime.strptime(value, "%Y%m%d")

    clean = deidentify(ct_small, "k")
    assert clean.StudyDate != ct_small.StudyDate
    assert day(clean.StudyDate) - day(clean.SeriesDate) == day(ct_small.StudyDate) - day(ct_small.SeriesDate)
    assert clean.StudyTime == "" and clean.LongitudinalTemporalInformationModified == "MODIFIED"  # Type 2: Z
    kept = deidentify(ct_small, "k", keep_demographics=True)
    assert kept.PatientSex == "O" and kept.PatientAge == "000Y"


@pytest.mark.parametrize("shift_dates", [True, False])
@pytest.mark.parametrize("keep_demographics", [True, False])
def test_the_deidentification_header_is_conformant(ct_small, tmp_path, shift_dates, keep_demographics):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom warns on a value longer than its VR allows
        clean = deidentify(ct_small, "test-key", shift_dates=shift_dates, keep_demographics=keep_demographics)
        clean.save_as(tmp_path / "clean.dcm")
        again = pydicom.dcmread(tmp_path / "clean.dcm")
        method = again.DeidentificationMethod
    assert 0 < len(method) <= 64 and method.startswith("PS3.15 Basic Profile")
    codes = {(c.CodeValue, c.CodingSchemeDesignator) for c in again.DeidentificationMethodCodeSequence}
    expected = {"113100"} | ({"113107"} if shift_dates else set()) | ({"113108"} if keep_demographics else set())
    assert codes == {(code, "DCM") for code in expected}
    assert ("Modified Dates" in method, "Patient Characteristics" in method) == (shift_dates, keep_demographics)


def test_uids_are_replaced_consistently_under_a_key(ct_small):
    other = copy.deepcopy(ct_small)  # a second image of the same study and series
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    a, b = deidentify(ct_small, "key-1"), deidentify(other, "key-1")
    assert a.StudyInstanceUID == b.StudyInstanceUID == new_uid(ct_small.StudyInstanceUID, "key-1")
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != ct_small.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != ct_small.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.StudyInstanceUID.startswith("2.25.") and len(a.StudyInstanceUID) <= 64 and a.StudyInstanceUID.is_valid
    assert deidentify(ct_small, "key-2").StudyInstanceUID != a.StudyInstanceUID


@pytest.mark.parametrize("path", sorted(REAL.glob("*.dcm")), ids=lambda p: p.name)
def test_real_files_lose_their_identifiers(path):
    ds = pydicom.dcmread(path)
    texts, whole = phi_of(ds)
    assert texts  # every real file has some name, institution or station to remove
    clean = deidentify(ds, "real-key")
    assert_no_phi([str(e.value) for e in all_elements(clean) if e.VR not in ("OB", "OW", "SQ")], texts, whole)
    assert not [e.tag for e in all_elements(clean) if e.tag.is_private]
    (row,) = read(path, ocr_burned_in=False)
    assert_no_phi(shown_values(row), texts, whole)


def test_rows_carry_no_phi_and_uids_group_by_study(tmp_path, ct_small):
    texts, whole = phi_of(ct_small)
    ct_small.save_as(tmp_path / "1CT1_CompressedSamples.dcm")  # a file name with the patient's ID and name
    other = copy.deepcopy(ct_small)
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    other.save_as(tmp_path / "scan.dcm")
    rows = read(tmp_path, uid_salt="secret")
    assert len(rows) == 2
    for row in rows:
        assert_no_phi(shown_values(row), texts | {"1CT1"}, whole)
        assert "PatientSex" not in row["meta"] and "PatientAge" not in row["meta"]
    metas = [json.loads(row["meta"]) for row in rows]
    assert metas[0]["StudyInstanceUID"] == metas[1]["StudyInstanceUID"] == new_uid(ct_small.StudyInstanceUID, "secret")
    assert metas[0]["SeriesInstanceUID"] == metas[1]["SeriesInstanceUID"]
    assert rows[0]["provenance"]["locator"].startswith("redacted-") and rows[1]["provenance"]["locator"] == "scan.dcm"
    again = json.loads(read(tmp_path, uid_salt="secret")[0]["meta"])
    assert again["StudyInstanceUID"] == metas[0]["StudyInstanceUID"]
    unsalted = json.loads(read(tmp_path)[0]["meta"])  # a random key for each read
    assert unsalted["StudyInstanceUID"] not in (metas[0]["StudyInstanceUID"], ct_small.StudyInstanceUID)
    demographics = json.loads(read(tmp_path, keep_demographics=True)[0]["meta"])
    assert demographics["PatientSex"] == "O" and demographics["PatientAge"] == "000Y"


def test_deid_false_keeps_the_original_uids(ct_small):
    meta = json.loads(only_row(sample("CT_small.dcm"), deid=False)["meta"])
    assert meta["StudyInstanceUID"] == ct_small.StudyInstanceUID and meta["deidentification"] == "none (deid: false)"
    assert "PatientSex" not in meta  # the allow-list still applies


def test_burned_in_annotation_is_rejected_unless_allowed(tmp_path, ct_small):
    ct_small.BurnedInAnnotation = "YES"
    ct_small.save_as(tmp_path / "burned.dcm")
    (reject,) = read(tmp_path)
    assert isinstance(reject, Reject) and reject.reason == "burned_in_phi"
    (row,) = read(tmp_path, allow_burned_in=True)
    assert json.loads(row["meta"])["BurnedInAnnotation"] == "YES"


# -- bad input ---------------------------------------------------------------------------------------------------

def test_mixed_folder_yields_good_rows_and_the_right_rejects(tmp_path, ct_small):
    compressed = sample("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(pydicom.dcmread(compressed).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG-LS decoder is installed here, so the no_decoder case cannot be shown")
    ct_small.save_as(tmp_path / "good.dcm")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mr.dcm").write_bytes(sample("MR_small.dcm").read_bytes())
    whole = CT_CHEST.read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "junk").write_bytes(b"plain bytes, no DICOM here\n" * 40)
    (tmp_path / "jpegls.dcm").write_bytes(compressed.read_bytes())
    (tmp_path / "report.dcm").write_bytes(sample("test-SR.dcm").read_bytes())
    bare = copy.deepcopy(ct_small)  # no preamble, no meta group: still DICOM when named .dcm
    del bare.file_meta
    bare.preamble = None
    pydicom.dcmwrite(tmp_path / "bare.dcm", bare, enforce_file_format=False, implicit_vr=False, little_endian=True)
    (tmp_path / "bare.bin").write_bytes((tmp_path / "bare.dcm").read_bytes())

    items = read(tmp_path)
    got = {i.locator: i.reason for i in items if isinstance(i, Reject)}
    assert got == {"truncated.dcm": "corrupt_dicom", "notes.txt": "not_dicom", "junk": "not_dicom",
                   "bare.bin": "not_dicom", "jpegls.dcm": "no_decoder", "report.dcm": "no_pixels"}
    assert [r["provenance"]["locator"] for r in rows_of(items)] == ["bare.dcm", "good.dcm", "sub/mr.dcm"]
    assert np.array_equal(pixels(rows_of(items)[0]), pixels(rows_of(items)[1]))
    detail = next(i.detail for i in items if isinstance(i, Reject) and i.reason == "no_decoder")
    assert "JPEG-LS Lossless" in detail and "pip install 'curate[dicom-codecs]'" in detail and "pylibjpeg" in detail


def test_jpeg_extended_that_pillow_cannot_decode_is_no_decoder(tmp_path):
    lossy = sample("JPEG-lossy.dcm")  # 12-bit JPEG Extended (1.2.840.10008.1.2.4.51), pydicom's own test file
    try:
        pydicom.dcmread(lossy).pixel_array
        pytest.skip("a plugin that decodes 12-bit JPEG Extended is installed here")
    except RuntimeError:
        pass
    (tmp_path / "lossy.dcm").write_bytes(lossy.read_bytes())
    (reject,) = read(tmp_path)
    assert isinstance(reject, Reject) and reject.reason == "no_decoder" and reject.locator == "lossy.dcm"
    assert "JPEG Extended" in reject.detail and "12-bit" in reject.detail
    assert "pip install 'curate[dicom-codecs]'" in reject.detail and "pylibjpeg-libjpeg" in reject.detail


def test_a_missing_path_is_a_connector_error(tmp_path):
    with pytest.raises(ConnectorError, match="does not exist"):
        read(tmp_path / "nowhere")


def test_options_parse_a_window_pair_and_refuse_unknown_keys():
    assert dicom.Options.model_validate({"window": [40, 400]}).window == (40.0, 400.0)
    with pytest.raises(ValueError):
        dicom.Options.model_validate({"windw": "auto"})
    with pytest.raises(ValueError):
        dicom.Options.model_validate({"frames": "last"})


# -- burned-in text (OCR) ----------------------------------------------------------------------------------------

def test_ocr_rejects_the_real_burned_in_date_and_passes_the_real_images_without_text():
    items = read(REAL)  # no file says BurnedInAnnotation, so every one is checked
    rejects = [i for i in items if isinstance(i, Reject)]
    assert [(r.locator, r.reason) for r in rejects] == [(CT_NO_WINDOW.name, "burned_in_text")]
    # the date "18.11.1995" and the scanner "Tomoscan" are found and shown only by their shapes: no PHI in rejects
    assert "99.99.9999" in rejects[0].detail and "Xxxxxxxx" in rejects[0].detail
    assert "18.11.1995" not in rejects[0].detail and "Tomoscan" not in rejects[0].detail
    assert "ocr_burned_in: false" in rejects[0].detail
    assert [r["provenance"]["locator"] for r in rows_of(items)] == [
        f.name for f in sorted(REAL.glob("*.dcm")) if f != CT_NO_WINDOW]


def test_ocr_catches_a_real_ultrasound_and_follows_modality_and_burned_in_annotation(tmp_path):
    (reject,) = read(sample("examples_palette.dcm"))  # pydicom's ultrasound: the scanner's date and name in pixels
    assert reject.reason == "burned_in_text" and "9/99/9999" in reject.detail and "XXXXXXX" in reject.detail
    assert "5/25/2011" not in reject.detail and "PHILIPS" not in reject.detail
    ds = pydicom.dcmread(CT_NO_WINDOW)
    ds.BurnedInAnnotation = "NO"  # a CT that says it has none is not checked
    ds.save_as(tmp_path / "ct.dcm")
    assert json.loads(only_row(tmp_path / "ct.dcm")["meta"])["BurnedInAnnotation"] == "NO"
    ds.Modality = "US"  # an ultrasound is checked whatever it says
    ds.save_as(tmp_path / "us.dcm")
    (reject,) = read(tmp_path / "us.dcm")
    assert reject.reason == "burned_in_text" and "99.99.9999" in reject.detail
    assert only_row(tmp_path / "us.dcm", allow_burned_in=True)["modality"] == "Ultrasound"
    assert only_row(tmp_path / "us.dcm", ocr_burned_in=False)["modality"] == "Ultrasound"


def test_a_missing_tesseract_is_a_clear_source_error(tmp_path):
    import subprocess
    import sys

    import pyarrow.parquet

    curate = Path(sys.executable).parent / "curate"
    env = {"PATH": str(tmp_path), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}  # a PATH without tesseract

    def ingest(out: str, *options: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(curate), "ingest", "dicom", "--path", str(CT_CHEST), "--license", "test",
                               "--output", str(tmp_path / out), "--no-progress", *options],
                              env=env, capture_output=True, text=True, timeout=300, check=False)

    done = ingest("out")
    assert "Traceback" not in done.stderr + done.stdout
    (reject,) = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert reject["reason"] == "source_error" and "apt-get install tesseract-ocr" in reject["detail"]
    assert "ocr_burned_in: false" in reject["detail"]
    assert ingest("off", "--option", "ocr_burned_in=false").returncode == 0
    assert (tmp_path / "off" / "rejects.jsonl").read_text() == ""
    assert pyarrow.parquet.read_table(tmp_path / "off" / "part-000-00000.parquet").num_rows == 1
