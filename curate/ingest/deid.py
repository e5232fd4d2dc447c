"""DICOM de-identification by PS3.15 Annex E, the Basic Application Level Confidentiality Profile.

``deidentify(ds, key)`` returns a cleaned copy and leaves ``ds`` untouched. Every element is visited, inside
sequences and in the file meta group too. An attribute of Table E.1-1 (``curate.ingest.deid_table``) takes its
action:

- ``X`` removed; ``Z`` emptied (zero length); ``K`` kept;
- ``D`` a dummy value of its VR (``DUMMIES``; a UID gets its keyed replacement; a sequence keeps its items, which are
  de-identified in turn);
- ``U`` every UID that is not a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes stay) becomes
  ``2.25.<keyed hash>``: under one key the same UID always gives the same new UID, so studies and series still group;
- ``C`` (an option's "clean"): a date moves back by a number of days derived from the key and the patient's identity,
  so intervals between one patient's studies survive (a DT keeps only its date part; an unreadable date is removed);
  any other value gets the dummy of ``D``.

The compound actions need the IOD's attribute Types, which are not looked up: ``X/Z``, ``X/D`` and ``X/Z/D`` remove
(these are Type 3 in the common image IODs), ``Z/D`` empties (e.g. Patient ID, Content Date: Type 2 there), and
``X/Z/U*`` keeps the reference sequence with its UIDs replaced, so source-image links survive.

Two of the profile's options, as PS3.15 E.3 defines them, are on by argument:

- ``shift_dates`` (default): Retain Longitudinal Temporal Information with Modified Dates: the dates (DA, DT) that
  the option marks ``C`` are shifted; times keep the Basic Profile's action. Off, dates take the Basic action too.
- ``keep_demographics``: Retain Patient Characteristics: sex, age, size, weight, ethnic group, smoking and pregnancy
  status are kept (``K``); allergies, pre-medication, patient state and special needs are cleaned (``C``: dummy).

Beyond the table: private tags and the overlay (60xx) and curve (50xx) groups are removed whole (the table removes
their data and comments), and so is ``EXTRA_REMOVE`` (dates in an alternative calendar, the accession number's
issuer), which the table does not list. In the other attributes it does not list, person names (PN) are emptied;
free text (LT, ST, UT), AE titles, URLs (UR), times (TM) and unknown tags (UN) removed; dates shifted (removed when
``shift_dates`` is off); UIDs replaced as for ``U``; sequences recursed; the rest kept.

PatientIdentityRemoved, DeidentificationMethod (and its code sequence) and LongitudinalTemporalInformationModified
are then set. Pixel data is kept as it is: burned-in text is the connector's check (``curate.ingest.burned_in``).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from curate.ingest.deid_table import ROWS

METHOD = "PS3.15 Basic Profile"
PROFILE = {row[0]: row[1:] for row in ROWS}  # tag -> (keyword, basic, patient characteristics, modified dates)
EXTRA_REMOVE = frozenset({0x00080051, 0x00100033, 0x00100034, 0x00100035})  # IssuerOfAccessionNumberSequence,
# PatientBirthDateInAlternativeCalendar, PatientDeathDateInAlternativeCalendar, PatientAlternativeCalendar
COMPOUND = {"Z/D": "Z", "X/Z": "X", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "U"}
# PS3.16 CID 7050 codes for the profile and the two options
CODES = {"profile": ("113100", "Basic Application Confidentiality Profile"),
         "shift_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
         "keep_demographics": ("113108", "Retain Patient Characteristics Option")}
SHORT = {"shift_dates": "Modified Dates", "keep_demographics": "Patient Characteristics"}
_TEXT = "DEIDENTIFIED"
DUMMIES = {"AE": _TEXT, "AS": "000Y", "CS": _TEXT, "DA": "19000101", "DT": "19000101000000", "TM": "000000",
           "DS": "0", "IS": "0", "LO": _TEXT, "LT": _TEXT, "SH": _TEXT, "ST": _TEXT, "UC": _TEXT, "UT": _TEXT,
           "PN": _TEXT, "UR": "deidentified", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0, "US": 0, "SV": 0,
           "UV": 0, "AT": 0}  # binary VRs (OB, OW, OD, OF, OL, OV, UN) get 8 zero bytes
_DROP_VRS = frozenset({"LT", "ST", "UT", "AE", "UR", "TM", "UN"})
_DATE_VRS = frozenset({"DA", "DT"})
_MAX_SHIFT_DAYS = 3650


@dataclass(frozen=True)
class _Run:
    key: str
    days: int
    shift_dates: bool
    keep_demographics: bool


def new_uid(uid: str, key: str) -> str:
    """The replacement for ``uid`` under ``key``: ``2.25.`` and a 128-bit HMAC-SHA256 of the UID, as a decimal."""
    digest = hmac.new(key.encode(), str(uid).encode(), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def date_shift_days(ds: Dataset, key: str) -> int:
    """Days every date of this patient moves back: 1 to 3650, from the key and the patient's name, ID, birth date."""
    identity = "\x1f".join(str(ds.get(kw, "")) for kw in ("PatientID", "PatientName", "PatientBirthDate"))
    digest = hmac.new(key.encode(), b"date-shift\x1f" + identity.encode(), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:4], "big") % _MAX_SHIFT_DAYS


def describe(*, keep_demographics: bool = False, shift_dates: bool = True) -> str:
    """The DeidentificationMethod text (VR LO: at most 64 characters): ``METHOD`` and the options' short names; the
    code sequence carries their full PS3.16 meanings."""
    options = [SHORT[name] for name, on in (("shift_dates", shift_dates), ("keep_demographics", keep_demographics))
               if on]
    return "; ".join([METHOD, *options])


def deidentify(ds: Dataset, key: str, *, keep_demographics: bool = False, shift_dates: bool = True) -> Dataset:
    """A de-identified copy of ``ds`` (see the module docstring); ``key`` keys the UIDs and the date shift."""
    clean = copy.deepcopy(ds)
    run = _Run(key, date_shift_days(ds, key), shift_dates, keep_demographics)
    _clean(clean, run)
    if getattr(clean, "file_meta", None) is not None:
        _clean(clean.file_meta, run)
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = describe(keep_demographics=keep_demographics, shift_dates=shift_dates)
    clean.DeidentificationMethodCodeSequence = [
        _code(*CODES[name]) for name, on in (("profile", True), ("shift_dates", shift_dates),
                                             ("keep_demographics", keep_demographics)) if on]
    clean.LongitudinalTemporalInformationModified = "MODIFIED" if shift_dates else "REMOVED"
    return clean


def action(elem: DataElement, *, keep_demographics: bool = False, shift_dates: bool = True) -> str:
    """The single action (X, Z, D, K, C or U) that ``deidentify`` applies to ``elem``."""
    tag = elem.tag
    if tag.is_private or tag.group & 0xFF00 in (0x5000, 0x6000) or tag in EXTRA_REMOVE:
        return "X"
    row = PROFILE.get(int(tag))
    if row is None:
        return _unlisted(elem.VR, shift_dates)
    _, basic, chars, dates = row
    if keep_demographics and chars:
        return chars
    if shift_dates and dates == "C" and elem.VR in _DATE_VRS:
        return "C"
    return COMPOUND.get(basic, basic)


def _unlisted(vr: str, shift_dates: bool) -> str:
    if vr == "PN":
        return "Z"
    if vr in _DROP_VRS:
        return "X"
    if vr in _DATE_VRS:
        return "C" if shift_dates else "X"
    return "U" if vr == "UI" else "K"


def _clean(ds: Dataset, run: _Run) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        what = action(elem, keep_demographics=run.keep_demographics, shift_dates=run.shift_dates)
        if what == "X":
            del ds[tag]
        elif elem.VR == "SQ":
            if what == "Z":
                elem.value = []
            for item in elem.value:
                _clean(item, run)
        elif what == "Z":
            elem.clear()
        elif what == "U" or (what in ("D", "C") and elem.VR == "UI"):
            elem.value = _each(elem, lambda v: v if _is_registered(v) else new_uid(v, run.key))
        elif what == "C" and elem.VR in _DATE_VRS:
            shifted = _each(elem, lambda v: _shift_date(v, run.days))
            if shifted is None:
                del ds[tag]
            else:
                elem.value = shifted
        elif what in ("D", "C"):
            elem.value = DUMMIES.get(elem.VR, b"\0" * 8)


def _each(elem: DataElement, change):
    """``elem``'s value with ``change`` applied to each of its strings; None when a change gives None."""
    values = [str(v) for v in (list(elem.value) if elem.VM > 1 else [elem.value])] if elem.VM else []
    new = [change(v) for v in values]
    if None in new:
        return None
    return new if len(new) > 1 else (new[0] if new else elem.value)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _is_registered(uid: str) -> bool:
    """True for UIDs the standard registers (SOP classes, transfer syntaxes...), which identify no one."""
    return UID(uid).name != uid


def _shift_date(value: str, days: int) -> str | None:
    """A DA (or the date part of a DT) moved ``days`` back; None when it is not a plain YYYYMMDD date."""
    text = value.strip()[:8]
    try:
        date = dt.datetime.strptime(text, "%Y%m%d").date() - dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{date.year:04d}{date.month:02d}{date.day:02d}"
