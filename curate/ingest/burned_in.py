"""Burned-in text: OCR (Tesseract, through pytesseract) of a rendered 8-bit DICOM image.

``needs_check(ds)`` says whether an image is checked: its modality commonly carries burned-in text (``MODALITIES``)
or it does not say (no BurnedInAnnotation). ``find_text(pixels)`` returns the text that counts as burned in, by this
rule on Tesseract's words (sparse-text page segmentation, so scattered corner annotations are found):

- a date, time or ID-like token (``18.11.1995``, ``18:39``, ``19951118``, ``A12345``) read with confidence >= 50;
- any other word of >= 4 letters or digits read with confidence >= 75.

``shape(word)`` is what a reject may say about a word: its form with every letter and digit masked (``18.11.1995``
-> ``99.99.9999``, ``Tomoscan`` -> ``Xxxxxxxx``), since burned-in text is often a name, a date or an ID that must
not reach a rejects file.

Tissue and noise give Tesseract short, low-confidence words (``je`` 53, ``7s`` 51 on the real CTs of
``../shared/realdata/dicom``), which this rule lets pass; ``benchmarks/ocr_burned_in.py`` measures it.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from curate.ingest.base import ConnectorError

MODALITIES = frozenset({"US", "SC", "XA", "OT"})
PATTERN_CONFIDENCE = 50
WORD_CONFIDENCE = 75
MIN_WORD_CHARS = 4
INSTALL_HINT = ("install it with `apt-get install tesseract-ocr` (Debian/Ubuntu) and `pip install pytesseract`, "
                "or set ocr_burned_in: false on the source to skip the check")

_PATTERNS = re.compile(
    r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"  # dates: 18.11.1995, 1995-11-18, 11/18/95
    r"|\d{1,2}:\d{2}(:\d{2})?"  # times: 18:39, 18:39:14
    r"|(19|20)\d{6}"  # DICOM-style dates: 19951118
    r"|(?=(.*\d){4})[A-Za-z0-9-]{6,}"  # IDs: 6+ characters with 4+ digits
)


def needs_check(ds: Dataset) -> bool:
    """True when the modality is one of ``MODALITIES`` or BurnedInAnnotation is absent or empty."""
    modality = str(ds.get("Modality") or "").strip().upper()
    return modality in MODALITIES or not str(ds.get("BurnedInAnnotation") or "").strip()


def require_tesseract() -> None:
    """Raise ConnectorError, naming what to install, unless pytesseract and the tesseract binary are there."""
    try:
        import pytesseract
    except ImportError:
        raise ConnectorError(f"the burned-in text check needs pytesseract, which is not installed: "
                             f"{INSTALL_HINT}") from None
    try:
        pytesseract.get_tesseract_version()
    except pytesseract.TesseractNotFoundError:
        raise ConnectorError(f"the burned-in text check needs the tesseract program, which is not on PATH: "
                             f"{INSTALL_HINT}") from None


def find_text(pixels: np.ndarray) -> list[str]:
    """The words in ``pixels`` (8-bit grey or RGB) that count as burned-in text, in reading order."""
    import pytesseract

    image = Image.fromarray(pixels).convert("L")
    data = pytesseract.image_to_data(image, config="--psm 11", output_type=pytesseract.Output.DICT)
    return [word.strip() for word, conf in zip(data["text"], data["conf"]) if _counts(word.strip(), float(conf))]


def _counts(word: str, confidence: float) -> bool:
    core = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", word)
    if _PATTERNS.fullmatch(core):
        return confidence >= PATTERN_CONFIDENCE
    return confidence >= WORD_CONFIDENCE and len(re.sub(r"[^A-Za-z0-9]", "", core)) >= MIN_WORD_CHARS


def shape(word: str) -> str:
    """``word`` with digits as 9, capitals as X and other letters as x (punctuation kept)."""
    return re.sub(r"[A-Z]", "X", re.sub(r"[^\W\dA-Z_]", "x", re.sub(r"\d", "9", word)))
