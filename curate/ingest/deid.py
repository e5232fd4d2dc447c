"""DICOM de-identification after PS3.15 Annex E, the Basic Application Level Confidentiality Profile.

``deidentify(ds, key)`` returns a cleaned copy and leaves ``ds`` untouched. Every element is visited, inside
sequences and in the file meta group too, and the first matching rule applies:

- private tags and the overlay (60xx) and curve (50xx) groups are removed;
- PatientSex and PatientAge are kept when ``keep_demographics`` is set;
- ``EMPTY`` attributes (identifiers that are Type 2 in the image IODs) are emptied;
- ``REMOVE`` attributes (patient, physician, operator, institution, device, request and clinical-trial attributes,
  descriptions and identifying sequences) are removed;
- whatever its tag: person names (PN) are emptied; free text (LT, ST, UT), AE titles, URLs (UR), times (TM) and
  elements of unknown public tags (UN) are removed;
- dates (DA, and DT, which keeps only its date part) move back by a number of days derived from the key and the
  patient's identity, so intervals between one patient's studies survive; an unreadable date is removed;
- every UID that is not a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes stay) is replaced by
  ``2.25.<keyed hash>``: under one key the same UID always gives the same new UID, so studies and series still group.

PatientIdentityRemoved, DeidentificationMethod and LongitudinalTemporalInformationModified are then set. Pixel data
is kept as it is: text burned into the pixels is not found here (the connector rejects images flagged with
BurnedInAnnotation).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

METHOD = "PS3.15 Basic Profile (curate)"

EMPTY = frozenset({
    "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest",
})

REMOVE = frozenset({
    # patient
    "OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID", "PatientAge", "PatientSize", "PatientWeight",
    "PatientAddress", "PatientTelephoneNumbers", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "CountryOfResidence", "RegionOfResidence", "EthnicGroup", "Occupation", "PatientReligiousPreference",
    "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "PatientState", "SpecialNeeds",
    "PatientSexNeutered", "PatientInsurancePlanCodeSequence", "PatientPrimaryLanguageCodeSequence",
    "ResponsibleOrganization", "ReferencedPatientSequence", "ReferencedPatientPhotoSequence",
    "ReferencedPatientAliasSequence", "PatientTransportArrangements", "PatientInstitutionResidence",
    "CurrentPatientLocation", "AdmissionID", "IssuerOfAdmissionID", "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence", "ServiceEpisodeID", "ServiceEpisodeDescription", "PreMedication",
    # clinical trial
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    # institution, people and devices
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "InstitutionalDepartmentTypeCodeSequence", "StationName", "DeviceSerialNumber", "DetectorID", "GantryID",
    "GeneratorID", "CassetteID", "PlateID", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "OperatorIdentificationSequence", "PersonIdentificationCodeSequence", "PersonTelephoneNumbers",
    "ContentCreatorIdentificationCodeSequence", "AuthorObserverSequence", "ParticipantSequence",
    "VerifyingObserverSequence", "VerifyingOrganization", "HumanPerformerOrganization",
    "ActualHumanPerformersSequence", "CustodialOrganizationSequence", "OrderCallbackPhoneNumber",
    "OrderEntererLocation",
    # study, request and procedure
    "StudyDescription", "SeriesDescription", "ProtocolName", "RequestAttributesSequence", "RequestingService",
    "RequestedProcedureDescription", "RequestedProcedureID", "RequestedProcedureLocation", "RequestedContrastAgent",
    "ReasonForTheRequestedProcedure", "ScheduledProcedureStepDescription", "ScheduledProcedureStepID",
    "ScheduledProcedureStepLocation", "ScheduledStationName", "ScheduledStudyLocation", "PerformedLocation",
    "PerformedProcedureStepID", "PerformedProcedureStepDescription", "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence", "AcquisitionDeviceProcessingDescription", "ContrastBolusAgent",
    "TextString", "ContentSequence", "IconImageSequence",
    # audit trails and signatures that may hold original values
    "OriginalAttributesSequence", "ModifiedAttributesSequence", "DigitalSignaturesSequence", "DataSetTrailingPadding",
})

DEMOGRAPHICS = frozenset({"PatientSex", "PatientAge"})

_DROP_VRS = frozenset({"LT", "ST", "UT", "AE", "UR", "TM", "UN"})
_MAX_SHIFT_DAYS = 3650


def new_uid(uid: str, key: str) -> str:
    """The replacement for ``uid`` under ``key``: ``2.25.`` and a 128-bit HMAC-SHA256 of the UID, as a decimal."""
    digest = hmac.new(key.encode(), str(uid).encode(), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def date_shift_days(ds: Dataset, key: str) -> int:
    """Days every date of this patient moves back: 1 to 3650, from the key and the patient's name, ID, birth date."""
    identity = "\x1f".join(str(ds.get(kw, "")) for kw in ("PatientID", "PatientName", "PatientBirthDate"))
    digest = hmac.new(key.encode(), b"date-shift\x1f" + identity.encode(), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:4], "big") % _MAX_SHIFT_DAYS


def deidentify(ds: Dataset, key: str, *, keep_demographics: bool = False) -> Dataset:
    """A de-identified copy of ``ds`` (see the module docstring for the rules); ``key`` keys UIDs and date shifts."""
    clean = copy.deepcopy(ds)
    keep = DEMOGRAPHICS if keep_demographics else frozenset()
    days = date_shift_days(ds, key)
    _clean(clean, key, days, keep)
    if getattr(clean, "file_meta", None) is not None:
        _clean(clean.file_meta, key, days, keep)
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = METHOD
    clean.LongitudinalTemporalInformationModified = "MODIFIED"
    return clean


def _clean(ds: Dataset, key: str, days: int, keep: frozenset[str]) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        action = _action(elem, keep)
        if action == "remove":
            del ds[tag]
        elif action == "empty":
            elem.clear()
        elif action == "recurse":
            for item in elem.value:
                _clean(item, key, days, keep)
        elif action in ("uid", "date"):
            new = [_replacement(str(value), action, key, days) for value in _values(elem)]
            if None in new:
                del ds[tag]
            elif new:
                elem.value = new if len(new) > 1 else new[0]


def _action(elem: DataElement, keep: frozenset[str]) -> str | None:
    tag = elem.tag
    if tag.is_private or tag.group & 0xFF00 in (0x5000, 0x6000):
        return "remove"
    if elem.keyword in keep:
        return None
    if elem.keyword in EMPTY:
        return "empty"
    if elem.keyword in REMOVE or elem.VR in _DROP_VRS:
        return "remove"
    return {"PN": "empty", "SQ": "recurse", "UI": "uid", "DA": "date", "DT": "date"}.get(elem.VR)


def _values(elem: DataElement) -> list:
    if not elem.VM:
        return []
    return list(elem.value) if elem.VM > 1 else [elem.value]


def _replacement(value: str, action: str, key: str, days: int) -> str | None:
    if action == "uid":
        return value if _is_registered(value) else new_uid(value, key)
    return _shift_date(value, days)


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
