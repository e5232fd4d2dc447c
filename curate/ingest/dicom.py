"""The ``dicom`` connector: DICOM files to de-identified 8-bit PNG ``image`` rows.

``path`` is one file or a folder walked recursively in sorted order. A file without the DICM preamble is still
tried as DICOM when it ends in ``.dcm`` or has no extension. Each file is de-identified (``curate.ingest.deid``)
before its pixels are decoded, so no image leaves this module un-cleaned unless ``deid: false`` is set.

Options:

- ``window``: ``auto`` (default: the file's VOI LUT, else its first WindowCenter/WindowWidth, else min-max),
  ``dicom`` (the file's VOI LUT or window; a file without one is rejected), ``minmax``, or ``[center, width]``
  in modality units (e.g. Hounsfield units for CT). MONOCHROME1 images are inverted so bone is white; colour
  images (RGB, YBR, palette) stay colour, as RGB.
- ``frames``: for multi-frame files, ``first``, ``middle`` (default) or ``all``.
- ``max_size``: the longest output side (default 1024, smaller images are not enlarged); null keeps the size.
- ``deid`` (default true): de-identify; set false only for data already de-identified upstream whose original
  UIDs you need.
- ``uid_salt``: the secret key for replacement UIDs, date shifts and redacted locators. Unset, a random key is
  drawn for each read; set it (and keep it secret) for the same mapping across runs and sources.
- ``keep_demographics`` (default false): the profile's Retain Patient Characteristics Option (PatientSex,
  PatientAge, PatientSize, PatientWeight... are kept; PatientSex and PatientAge go into ``meta``).
- ``shift_dates`` (default true): the profile's Retain Longitudinal Temporal Information with Modified Dates Option
  (dates move back by a keyed number of days per patient); false takes the Basic Profile's action for dates too.
- ``allow_burned_in`` (default false): accept images whose BurnedInAnnotation is YES, and skip the OCR check.
- ``ocr_burned_in`` (default true): before any row of a file is written, OCR (``curate.ingest.burned_in``) every
  rendered frame of an ultrasound, secondary capture, angiography or "other" image, or of any image without
  BurnedInAnnotation; text found rejects the file. It needs Tesseract (``apt-get install tesseract-ocr`` and
  ``pip install pytesseract``): when missing, the read stops with a ConnectorError that says so.

Rows: ``image`` (PNG named ``<sha256 prefix>.png``), ``modality`` (CT, MRI, X-ray, Ultrasound, PET, Angiography,
else the DICOM code), ``caption`` ("CT image of the chest" from Modality and BodyPartExamined, or null),
``provenance`` (origin: the path given; locator: the file's relative path, ``#frame=N`` (1-based) for multi-frame
files, and redacted to a keyed hash when it contains the patient's name, ID, birth date or accession number),
``meta`` (an allow-list of de-identified technical attributes: Modality, BodyPartExamined, Rows, Columns,
PhotometricInterpretation, PixelSpacing, SliceThickness, NumberOfFrames, BurnedInAnnotation, the replaced
StudyInstanceUID and SeriesInstanceUID, PatientSex and PatientAge if kept; plus ``window`` {method, center, width},
``frame`` and ``deidentification``).

Enhanced multi-frame files keep their windows in functional groups, which are not read: ``auto`` renders them
min-max.

Rejects: ``not_dicom``, ``corrupt_dicom`` (unreadable, truncated or undecodable pixels), ``no_pixels``,
``no_decoder`` (compressed pixels and no plugin installed for them), ``burned_in_phi`` (BurnedInAnnotation is
YES), ``burned_in_text`` (OCR found text; the detail gives its words' shapes, never the text), ``no_window``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import re
import secrets
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import pydicom
from PIL import Image
from pydantic import PositiveInt
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from curate.ingest import base
from curate.ingest.base import Reject, SourceSpec, require_path
from curate.ingest.burned_in import find_text, needs_check, require_tesseract, shape
from curate.ingest.deid import deidentify, describe
from curate.schema import make_image

MODALITIES = {"CT": "CT", "MR": "MRI", "CR": "X-ray", "DX": "X-ray", "US": "Ultrasound", "PT": "PET",
              "XA": "Angiography"}

META_KEYWORDS = ("Modality", "BodyPartExamined", "Rows", "Columns", "PhotometricInterpretation", "PixelSpacing",
                 "SliceThickness", "NumberOfFrames", "BurnedInAnnotation", "StudyInstanceUID", "SeriesInstanceUID")
DEMOGRAPHIC_KEYWORDS = ("PatientSex", "PatientAge")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
IDENTITY_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber")
# (implicit VR, little endian) as pydicom reports a file's encoding -> its uncompressed transfer syntax
NATIVE_SYNTAXES = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                   (False, False): ExplicitVRBigEndian}
CODECS_HINT = "pip install 'curate[dicom-codecs]'"

_CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")


class Options(base.Options):
    window: Literal["auto", "dicom", "minmax"] | tuple[float, float] = "auto"
    frames: Literal["first", "middle", "all"] = "middle"
    max_size: PositiveInt | None = 1024
    deid: bool = True
    uid_salt: str | None = None
    keep_demographics: bool = False
    shift_dates: bool = True
    allow_burned_in: bool = False
    ocr_burned_in: bool = True


def read(spec: SourceSpec, options: Options) -> Iterator[dict | Reject]:
    """One ``image`` row per rendered frame of every DICOM file under ``spec.path``; a Reject for each bad file."""
    root = require_path(spec, "DICOM file or folder")
    key = options.uid_salt or secrets.token_hex(16)
    if options.ocr_burned_in and not options.allow_burned_in:
        require_tesseract()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for path in files:
        locator = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            yield from _read_file(path, locator, spec, options, key)
        except Exception as exc:  # noqa: BLE001 - a malformed file is that file's reject, the others go on
            yield Reject("corrupt_dicom", f"cannot read or decode: {type(exc).__name__}: {exc}", locator)


def _read_file(path: Path, locator: str, spec: SourceSpec, options: Options, key: str) -> Iterator[dict | Reject]:
    ds = _load(path, locator)
    if isinstance(ds, Reject):
        yield ds
        return
    problem = _unusable(ds, locator, options)
    if problem:
        yield problem
        return
    ocr = options.ocr_burned_in and not options.allow_burned_in and needs_check(ds)
    if options.deid:
        locator = _redact_locator(locator, ds, key)
        ds = deidentify(ds, key, keep_demographics=options.keep_demographics, shift_dates=options.shift_dates)
    n_frames = int(ds.get("NumberOfFrames") or 1)
    frames = []
    for index in _frame_indices(n_frames, options.frames):
        frame_locator = f"{locator}#frame={index + 1}" if n_frames > 1 else locator
        decoded = _decode(ds, index, frame_locator)
        if isinstance(decoded, Reject):
            yield decoded
            return
        pixels, window = _render(decoded, ds, options.window)
        if pixels is None:
            yield Reject("no_window", "window: dicom was asked, but the file has no VOI LUT or window "
                         "(use window: auto to fall back to min-max)", frame_locator)
            return
        text = find_text(pixels) if ocr else []
        if text:
            yield Reject("burned_in_text", f"OCR found {len(text)} words burned into the pixels, shaped "
                         f"{' '.join(shape(w) for w in text)[:300]} (set "
                         "ocr_burned_in: false or allow_burned_in: true only after checking the images)",
                         frame_locator)
            return
        frames.append((pixels, window, index if n_frames > 1 else None, frame_locator))
    for pixels, window, frame, frame_locator in frames:
        yield _row(pixels, ds, window, frame, frame_locator, spec, options)


def _load(path: Path, locator: str) -> Dataset | Reject:
    """The parsed file, trying a forced read for preamble-less ``.dcm`` or extension-less files."""
    try:
        return _with_transfer_syntax(pydicom.dcmread(path))
    except InvalidDicomError:
        pass
    not_dicom = Reject("not_dicom", "not a DICOM file (no DICM preamble and no DICOM elements)", locator)
    if path.suffix.lower() not in ("", ".dcm"):
        return not_dicom
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:  # noqa: BLE001 - bytes that do not even parse as DICOM elements
        return not_dicom
    return _with_transfer_syntax(ds) if any(kw in ds for kw in ("SOPClassUID", *PIXEL_KEYWORDS)) else not_dicom


def _with_transfer_syntax(ds: Dataset) -> Dataset:
    """``ds`` with the Transfer Syntax UID that a file without meta information was read in (pixels need it)."""
    if "TransferSyntaxUID" not in ds.file_meta and ds.original_encoding in NATIVE_SYNTAXES:
        ds.file_meta.TransferSyntaxUID = NATIVE_SYNTAXES[ds.original_encoding]
    return ds


def _unusable(ds: Dataset, locator: str, options: Options) -> Reject | None:
    """Why this dataset gives no image (no pixels, burned-in text, a missing decoder), or None."""
    if not any(kw in ds for kw in PIXEL_KEYWORDS):
        sop_class = UID(str(ds.get("SOPClassUID", "")))
        if sop_class.name.endswith("Image Storage"):
            return Reject("corrupt_dicom", f"a {sop_class.name} object without pixel data: the file is probably "
                          "truncated", locator)
        return Reject("no_pixels", f"no pixel data ({sop_class.name or 'unknown SOP class'})", locator)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES" and not options.allow_burned_in:
        return Reject("burned_in_phi", "BurnedInAnnotation is YES: the pixels may show patient details "
                      "(set allow_burned_in: true only after checking the images)", locator)
    missing = _missing_decoder(ds)
    return Reject("no_decoder", missing, locator) if missing else None


def _missing_decoder(ds: Dataset) -> str | None:
    """A sentence naming the transfer syntax and what to install, when no installed plugin can decode it."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return None
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return f"pydicom has no decoder for {syntax.name} ({syntax}) pixel data"
    if decoder.is_available:
        return None
    return (f"{syntax.name} ({syntax}) pixel data needs a decoder plugin that is not installed: run "
            f"{CODECS_HINT}, or install any one of: {'; '.join(decoder.missing_dependencies)}")


def _decode(ds: Dataset, index: int, locator: str) -> np.ndarray | Reject:
    """Frame ``index``'s pixels. Compressed pixels that the installed plugins cannot decode (12-bit JPEG Extended
    with Pillow only, say) are ``no_decoder``, naming the syntax, what the plugins said and what to install."""
    plugins = logging.getLogger("pydicom")
    level = plugins.level
    plugins.setLevel(logging.CRITICAL)  # each failing plugin would log its traceback; the reject says it once
    try:
        return pixel_array(ds, index=index)
    except Exception as exc:  # noqa: BLE001 - pydicom raises RuntimeError or plugin-specific errors
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if syntax is None or not syntax.is_compressed:
            raise
        said = " ".join(str(exc).split())
        return Reject("no_decoder", f"{syntax.name} ({syntax}) pixel data could not be decoded by the installed "
                      f"plugins ({said}); run {CODECS_HINT} (pylibjpeg-libjpeg decodes 12-bit JPEG Extended and "
                      "JPEG Lossless)", locator)
    finally:
        plugins.setLevel(level)


def _redact_locator(locator: str, ds: Dataset, key: str) -> str:
    """``locator``, or a keyed hash of it when the path contains the patient's name, ID, birth date or accession."""
    values = set()
    for keyword in IDENTITY_KEYWORDS:
        text = str(ds.get(keyword) or "")
        values.update([text, *re.split(r"[\^=]", text)])
    if any(len(v) >= 3 and v.casefold() in locator.casefold() for v in values):
        digest = hmac.new(key.encode(), locator.encode(), hashlib.sha256).hexdigest()[:16]
        return f"redacted-{digest}{Path(locator).suffix}"
    return locator


def _frame_indices(n_frames: int, frames: str) -> list[int]:
    if frames == "all":
        return list(range(n_frames))
    return [0] if frames == "first" else [n_frames // 2]


def _render(arr: np.ndarray, ds: Dataset, window: str | tuple[float, float]) -> tuple[np.ndarray | None, dict]:
    """8-bit pixels (grey, or RGB) and how they were windowed; None pixels when ``dicom`` finds no window."""
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        return _scale(rgb, 8 * rgb.dtype.itemsize), {"method": "palette"}
    if arr.ndim == 3:  # RGB; pydicom has already converted YBR to RGB
        return _scale(arr, int(ds.get("BitsStored") or 8 * arr.dtype.itemsize)), {"method": "none"}
    values = apply_modality_lut(arr, ds).astype(np.float64)
    grey, used = _voi(values, ds, window)
    if grey is not None and photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey, used


def _voi(values: np.ndarray, ds: Dataset, window: str | tuple[float, float]) -> tuple[np.ndarray | None, dict]:
    """Grey levels 0..255 from modality values, by the option's or the file's window, a VOI LUT or min-max."""
    if isinstance(window, tuple):
        center, width = window
        return _linear(values, center, width, "LINEAR"), {"method": "option", "center": center, "width": width}
    if window in ("auto", "dicom") and "VOILUTSequence" in ds:
        return _voi_lut(values, ds.VOILUTSequence[0], ds), {"method": "voi_lut"}
    file_window = _file_window(ds) if window != "minmax" else None
    if file_window:
        center, width, function = file_window
        used = {"method": "dicom", "center": center, "width": width, "function": function}
        return _linear(values, center, width, function), used
    if window == "dicom":
        return None, {}
    low, high = float(values.min()), float(values.max())
    used = {"method": "minmax", "center": (low + high) / 2, "width": high - low}
    grey = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return _to_uint8(grey), used


def _voi_lut(values: np.ndarray, item: Dataset, ds: Dataset) -> np.ndarray:
    """The first VOI LUT (PS3.3 C.11.2.1.1): values below/above its range take its first/last entry.

    (pydicom 3.0's ``apply_voi`` indexes an 8-bit LUT with 8-bit integers, which wraps LUTs of over 256 entries.)
    """
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words in the file's byte order
        data = np.frombuffer(data, dtype="<u2" if ds.original_encoding[1] is not False else ">u2")
    lut = np.atleast_1d(np.asarray(data, dtype=np.float64))
    index = np.clip(np.rint(values) - first, 0, min(entries or 65536, lut.size) - 1).astype(np.int64)
    return _to_uint8(lut[index] / (2**bits - 1))


def _file_window(ds: Dataset) -> tuple[float, float, str] | None:
    """The first WindowCenter/WindowWidth pair and the VOI LUT function, when the file has a usable one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center in (None, "") or width in (None, ""):
        return None
    center, width = (float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v) for v in (center, width))
    function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
    return (center, width, function) if width > 0 else None


def _linear(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2: the LINEAR, LINEAR_EXACT or SIGMOID VOI function onto 0..255."""
    if function == "SIGMOID":
        grey = 1 / (1 + np.exp(-4 * (values - center) / width))
    elif function == "LINEAR_EXACT":
        grey = (values - center) / width + 0.5
    else:
        grey = (values - (center - 0.5)) / max(width - 1, 1) + 0.5
    return _to_uint8(grey)


def _scale(arr: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned integers of ``bits`` bits onto 0..255."""
    return arr.astype(np.uint8) if bits <= 8 else _to_uint8(arr / (2**bits - 1))


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """Values in 0..1 (clipped) as 0..255 bytes."""
    return np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def _row(pixels: np.ndarray, ds: Dataset, window: dict, frame: int | None, locator: str, spec: SourceSpec,
         options: Options) -> dict:
    png = _png(pixels, options.max_size)
    modality = _code(ds.get("Modality"))
    label = MODALITIES.get(modality, modality) if modality else None
    body_part = _code(ds.get("BodyPartExamined"))
    caption = None
    if label:
        caption = f"{label} image of the {body_part.lower().replace('_', ' ')}" if body_part else f"{label} image"
    return make_image(
        image_bytes=png, image_name=f"{hashlib.sha256(png).hexdigest()[:16]}.png", source=spec.name,
        license=spec.license, origin=spec.origin, locator=locator, revision=None, caption=caption,
        modality=label, meta=_meta(ds, window, frame, options),
    )


def _png(pixels: np.ndarray, max_size: int | None) -> bytes:
    image = Image.fromarray(pixels)  # uint8: (h, w) -> L, (h, w, 3) -> RGB
    if max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _code(value) -> str | None:
    """A DICOM code string (Modality, BodyPartExamined) when it looks like one, else None."""
    text = str(value or "").strip().upper()
    return text if _CODE_STRING.fullmatch(text) else None


def _meta(ds: Dataset, window: dict, frame: int | None, options: Options) -> dict:
    keywords = META_KEYWORDS + (DEMOGRAPHIC_KEYWORDS if options.keep_demographics else ())
    meta = {kw: _plain(ds.get(kw)) for kw in keywords if ds.get(kw) not in (None, "")}
    meta["window"] = window
    if frame is not None:
        meta["frame"] = frame + 1
    meta["deidentification"] = (describe(keep_demographics=options.keep_demographics, shift_dates=options.shift_dates)
                                if options.deid else "none (deid: false)")
    return meta


def _plain(value):
    """A pydicom value as JSON-friendly Python: numbers stay numbers, multi-values become lists."""
    if isinstance(value, pydicom.multival.MultiValue):
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    return float(value) if isinstance(value, float) else str(value)
