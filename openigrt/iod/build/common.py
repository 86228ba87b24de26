"""Pieces every builder shares: identity copying, equipment, SOP common, validation, files.

Rules implemented here (SPEC §5 and Appendix A):

* Patient and General Study attributes are **copied from the source datasets** (highdicom's
  ``copy_patient_and_study_information`` style): :class:`PatientStudy.from_datasets` also
  checks that every source belongs to the same patient. Patient's Sex is mapped
  ``F``/``Female`` → ``F``, ``M``/``Male`` → ``M``, anything else → ``O``.
* Specific Character Set is kept from the references.
* Series Number is 0, new UIDs come from ``settings.uid_root``.
* Manufacturer, Station Name, Manufacturer's Model Name come from the settings; Software
  Versions is the OpenIGRT version. The file meta carries our Implementation Class UID and
  Version Name (``settings.network``).
* Every builder validates eagerly and raises :class:`~openigrt.errors.BuildError` whose message
  starts with the DICOM keyword (and tag) of the offending attribute.

Created datasets carry a file meta with Explicit VR Little Endian (private VRs survive in
files); the network layer re-encodes as negotiated (Implicit VR LE for our SCU).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom import datadict
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import DSfloat

from openigrt import __version__
from openigrt.config import Settings
from openigrt.errors import BuildError
from openigrt.iod.private import PrivateEntry, write_private
from openigrt.uids import is_valid_uid, new_uid

# --------------------------------------------------------------------------- SOP classes (PS3.4 B.5)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.1"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.8"
SPATIAL_REGISTRATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.1"
#: RT plans an RT Image may reference (SPEC IOD-4: RT Plan or RT Ion Plan class).
PLAN_CLASSES = frozenset({RT_PLAN_STORAGE, RT_ION_PLAN_STORAGE})
#: MPEG2 Main Profile / Main Level transfer syntax (PS3.5 A.4.5, 8.2.5).
MPEG2_MPML = "1.2.840.10008.1.2.4.100"

#: Patient and General Study attributes copied from the sources (Appendix A + Type 2 ones).
_PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
)


def build_error(keyword: str, why: str) -> BuildError:
    """A :class:`BuildError` whose message names the attribute: ``Keyword (gggg,eeee): why``.

    >>> str(build_error("IsocenterPosition", "missing"))
    'IsocenterPosition (300A,012C): missing'
    """
    tag = datadict.tag_for_keyword(keyword)
    where = f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword
    return BuildError(f"{where}: {why}")


def map_patient_sex(value: object) -> str:
    """SPEC §5: ``Female``→F, ``Male``→M, anything else→O (``F``/``M`` stay).

    >>> [map_patient_sex(v) for v in ("F", "Female", "male", "", None, "U")]
    ['F', 'F', 'M', 'O', 'O', 'O']
    """
    text = str(value or "").strip().upper()
    if text in ("F", "FEMALE"):
        return "F"
    if text in ("M", "MALE"):
        return "M"
    return "O"


# --------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class PatientStudy:
    """Patient + General Study identity written into a created object.

    Use :meth:`from_datasets` for objects derived from references (the normal case) and
    :meth:`new` only for the phantom's planning study.
    """

    patient_name: str
    patient_id: str
    patient_birth_date: str = ""
    patient_birth_time: str = ""
    patient_sex: str = "O"
    study_instance_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    referring_physician_name: str = ""
    study_description: str = ""
    specific_character_set: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not is_valid_uid(self.study_instance_uid):
            raise build_error("StudyInstanceUID", f"not a valid UID: {self.study_instance_uid!r}")
        object.__setattr__(self, "patient_sex", map_patient_sex(self.patient_sex))

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset], *, study_from: Dataset | None = None) -> PatientStudy:
        """Copy identity from *datasets* (all must share Patient ID); the study from *study_from*.

        *study_from* defaults to the first dataset. Raises BuildError when no dataset is given,
        the patient IDs differ, or the study has no Study Instance UID.
        """
        if not datasets:
            raise BuildError("no source dataset to copy patient and study identity from")
        ids = {str(ds.get("PatientID", "")) for ds in datasets}
        if len(ids) != 1:
            raise build_error("PatientID", f"the source datasets belong to different patients: {sorted(ids)}")
        src = study_from if study_from is not None else datasets[0]
        if str(src.get("PatientID", "")) not in ids:
            raise build_error("PatientID", "the study source belongs to another patient")
        values = {kw: _text(src.get(kw, "")) for kw in _PATIENT_STUDY_KEYWORDS}
        charset = src.get("SpecificCharacterSet", None)
        charsets = tuple(str(c) for c in charset) if _is_multi(charset) else ((str(charset),) if charset else ())
        return cls(
            patient_name=values["PatientName"], patient_id=values["PatientID"],
            patient_birth_date=values["PatientBirthDate"], patient_birth_time=values["PatientBirthTime"],
            patient_sex=values["PatientSex"], study_instance_uid=values["StudyInstanceUID"],
            study_date=values["StudyDate"], study_time=values["StudyTime"], study_id=values["StudyID"],
            accession_number=values["AccessionNumber"],
            referring_physician_name=values["ReferringPhysicianName"],
            study_description=values["StudyDescription"], specific_character_set=charsets,
        )

    @classmethod
    def new(
        cls, *, patient_name: str, patient_id: str, patient_sex: str, uid_root: str,
        patient_birth_date: str = "", study_id: str = "", accession_number: str = "",
        study_description: str = "", study_datetime: datetime | None = None,
    ) -> PatientStudy:
        """A new study (new Study Instance UID under *uid_root*) for the phantom patient."""
        if not patient_id.strip():
            raise build_error("PatientID", "must not be empty")
        when = study_datetime or datetime.now()
        return cls(
            patient_name=patient_name, patient_id=patient_id, patient_sex=patient_sex,
            patient_birth_date=patient_birth_date, study_instance_uid=new_uid(uid_root),
            study_date=when.strftime("%Y%m%d"), study_time=when.strftime("%H%M%S"),
            study_id=study_id, accession_number=accession_number, study_description=study_description,
        )

    def write_to(self, ds: Dataset) -> None:
        """Write the Patient and General Study modules (and the character set) into *ds*."""
        if self.specific_character_set:
            charset = list(self.specific_character_set)
            ds.SpecificCharacterSet = charset[0] if len(charset) == 1 else charset
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientBirthDate = self.patient_birth_date
        if self.patient_birth_time:
            ds.PatientBirthTime = self.patient_birth_time
        ds.PatientSex = self.patient_sex
        ds.StudyInstanceUID = self.study_instance_uid
        ds.StudyDate = self.study_date
        ds.StudyTime = self.study_time
        ds.StudyID = self.study_id
        ds.AccessionNumber = self.accession_number
        ds.ReferringPhysicianName = self.referring_physician_name
        if self.study_description:
            ds.StudyDescription = self.study_description


def _is_multi(value: object) -> bool:
    """A multi-valued element value (pydicom MultiValue, list or tuple), not a str/PersonName."""
    return isinstance(value, MultiValue | list | tuple)


def _text(value: Any) -> str:
    if _is_multi(value):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- new dataset skeleton
@dataclass(frozen=True)
class SeriesInfo:
    """General Series values of a created object (Series Number is always 0, SPEC §5)."""

    modality: str
    series_instance_uid: str
    series_description: str = ""
    operators_name: str = ""


def new_dataset(
    *,
    sop_class_uid: str,
    settings: Settings,
    patient_study: PatientStudy,
    series: SeriesInfo,
    content_datetime: datetime,
    sop_instance_uid: str | None = None,
    transfer_syntax_uid: str = ExplicitVRLittleEndian,
) -> Dataset:
    """Start a dataset: file meta, SOP Common, Patient, General Study, General Series, Equipment.

    Parameters
    ----------
    sop_class_uid
        Storage SOP class (PS3.4 B.5).
    settings
        Gives the UID root, equipment names and the Implementation Class UID / Version Name.
    patient_study
        Identity copied from the references.
    series
        Modality and Series Instance UID (Series Number 0, Series Date/Time = content time).
    content_datetime
        Instance creation, series and content date/time.
    """
    uid = sop_instance_uid or new_uid(settings.uid_root)
    ds = Dataset()
    ds.file_meta = file_meta(sop_class_uid, uid, settings, transfer_syntax_uid)
    ds.preamble = b"\x00" * 128
    patient_study.write_to(ds)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = uid
    ds.InstanceCreationDate = content_datetime.strftime("%Y%m%d")
    ds.InstanceCreationTime = content_datetime.strftime("%H%M%S.%f")
    ds.InstanceCreatorUID = settings.network.implementation_class_uid
    ds.Modality = series.modality
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.SeriesNumber = 0
    ds.SeriesDate = ds.InstanceCreationDate
    ds.SeriesTime = ds.InstanceCreationTime
    if series.series_description:
        ds.SeriesDescription = series.series_description
    ds.OperatorsName = series.operators_name
    write_equipment(ds, settings)
    return ds


def file_meta(sop_class_uid: str, sop_instance_uid: str, settings: Settings, transfer_syntax_uid: str) -> FileMetaDataset:
    """PS3.10 7.1 file meta with our Implementation Class UID and Version Name."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = settings.network.implementation_class_uid
    meta.ImplementationVersionName = settings.network.implementation_version_name
    return meta


def write_equipment(ds: Dataset, settings: Settings) -> None:
    """General Equipment module (PS3.3 C.7.5.1) from the settings (SPEC Appendix A)."""
    ds.Manufacturer = settings.manufacturer
    ds.StationName = settings.station_name
    ds.ManufacturerModelName = settings.model_name
    ds.SoftwareVersions = f"OpenIGRT {__version__}"


def write_frame_of_reference(ds: Dataset, frame_of_reference_uid: str, position_reference_indicator: str = "") -> None:
    """Frame of Reference module (PS3.3 C.7.4.1)."""
    ds.FrameOfReferenceUID = check_uid("FrameOfReferenceUID", frame_of_reference_uid)
    ds.PositionReferenceIndicator = position_reference_indicator


def content_date_time(ds: Dataset, when: datetime) -> None:
    """Content Date/Time (0008,0023/0033)."""
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S.%f")


# --------------------------------------------------------------------------- validation
def check_uid(keyword: str, value: object) -> str:
    """Return *value* when it is a valid UID, else raise BuildError naming *keyword*."""
    if not isinstance(value, str) or not is_valid_uid(value):
        raise build_error(keyword, f"not a valid UID: {value!r}")
    return value


def check_text(keyword: str, value: object, *, max_len: int, required: bool = True) -> str:
    """A text value of at most *max_len* characters without backslash (single-valued string VRs)."""
    if not isinstance(value, str):
        raise build_error(keyword, f"expected text, got {type(value).__name__}")
    if required and not value.strip():
        raise build_error(keyword, "must not be empty")
    if len(value) > max_len or "\\" in value:
        raise build_error(keyword, f"at most {max_len} characters without '\\' allowed, got {value!r}")
    return value


def check_number(keyword: str, value: object, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False) -> float:
    """A finite number within [low, high] (or (low, high] with *low_open*)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise build_error(keyword, f"expected a number, got {value!r}") from None
    if not math.isfinite(v) or v > high or v < low or (low_open and v == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise build_error(keyword, f"must be a finite number in {bound}, got {value!r}")
    return v


def check_vector(keyword: str, values: object, n: int) -> tuple[float, ...]:
    """Exactly *n* finite numbers."""
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise build_error(keyword, f"expected {n} numbers, got {values!r}") from None
    if arr.size != n or not np.all(np.isfinite(arr)):
        raise build_error(keyword, f"expected {n} finite numbers, got {values!r}")
    return tuple(float(v) for v in arr)


def check_angle(keyword: str, value: object) -> float:
    """An IEC 61217 angle in [0, 360) degrees (360 folds to 0)."""
    v = check_number(keyword, value, low=-360.0, high=360.0) % 360.0
    return 0.0 if math.isclose(v, 360.0) else v


def ds_value(value: float) -> DSfloat:
    """A Decimal String that fits the 16-character limit (PS3.5 6.2)."""
    return DSfloat(float(value), auto_format=True)


def ds_values(values: Iterable[float]) -> list[DSfloat]:
    """Several Decimal Strings."""
    return [ds_value(v) for v in values]


def source_value(ds: Dataset, keyword: str, role: str) -> Any:
    """A required value of a *source* dataset, or BuildError naming the source and attribute."""
    value = ds.get(keyword, None)
    if value is None or value == "" or (isinstance(value, DicomSequence) and len(value) == 0):
        uid = ds.get("SOPInstanceUID", "?")
        raise build_error(keyword, f"missing or empty in the {role} (SOP Instance UID {uid})")
    return value


def as_matrix(keyword: str, values: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """A finite float array of the given shape, or BuildError."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise build_error(keyword, f"expected numbers of shape {shape}") from None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise build_error(keyword, f"expected finite numbers of shape {shape}, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- references
def sop_reference(ds: Dataset, *, prefix: str = "Referenced") -> Dataset:
    """An item with Referenced SOP Class/Instance UID of *ds* (PS3.3 Table 10-11)."""
    item = Dataset()
    setattr(item, f"{prefix}SOPClassUID", check_uid("ReferencedSOPClassUID", source_value(ds, "SOPClassUID", "referenced object")))
    setattr(item, f"{prefix}SOPInstanceUID",
            check_uid("ReferencedSOPInstanceUID", source_value(ds, "SOPInstanceUID", "referenced object")))
    return item


def common_instance_reference(ds: Dataset, referenced: Sequence[Dataset]) -> None:
    """Common Instance Reference module (PS3.3 C.12.2) listing every referenced instance.

    Instances of *ds*'s own study go into Referenced Series Sequence; the others into Studies
    Containing Other Referenced Instances Sequence, each grouped by study and series.
    """
    by_study: dict[str, dict[str, list[Dataset]]] = {}
    seen: set[str] = set()
    for ref in referenced:
        uid = str(source_value(ref, "SOPInstanceUID", "referenced object"))
        if uid in seen:
            continue
        seen.add(uid)
        study = str(source_value(ref, "StudyInstanceUID", "referenced object"))
        series = str(source_value(ref, "SeriesInstanceUID", "referenced object"))
        by_study.setdefault(study, {}).setdefault(series, []).append(ref)
    own = by_study.pop(str(ds.StudyInstanceUID), None)
    if own:
        ds.ReferencedSeriesSequence = _series_items(own)
    others = []
    for study_uid, series in by_study.items():
        item = Dataset()
        item.StudyInstanceUID = study_uid
        item.ReferencedSeriesSequence = _series_items(series)
        others.append(item)
    if others:
        ds.StudiesContainingOtherReferencedInstancesSequence = others


def _series_items(series: dict[str, list[Dataset]]) -> list[Dataset]:
    items = []
    for series_uid, refs in series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.ReferencedInstanceSequence = [sop_reference(r) for r in refs]
        items.append(item)
    return items


# --------------------------------------------------------------------------- private elements
def add_private(ds: Dataset, settings: Settings, entry: PrivateEntry, value: Any) -> None:
    """Write private element *entry* under ``<settings.private_creator> gggg`` (SPEC IOD-8).

    Uses :func:`openigrt.iod.private.write_private` (our private dictionary gives the VR).
    """
    write_private(ds, entry, value, creator_prefix=settings.private_creator)


# --------------------------------------------------------------------------- files
def write_file(ds: Dataset, path: str | Path, *, implicit_vr: bool = False) -> Path:
    """Write *ds* as a Part 10 file; with *implicit_vr* encode it as Implicit VR Little Endian.

    *ds* itself is left unchanged (its file meta transfer syntax is restored afterwards).
    """
    out = Path(path)
    original = ds.file_meta.TransferSyntaxUID
    if implicit_vr and original not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise BuildError(f"{out}: cannot re-encode transfer syntax {original} as Implicit VR Little Endian")
    try:
        if implicit_vr:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(out, enforce_file_format=True)
    finally:
        ds.file_meta.TransferSyntaxUID = original
    return out


def now() -> datetime:
    """The current local time (one place to take it from)."""
    return datetime.now()
