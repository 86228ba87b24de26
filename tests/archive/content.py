"""Deterministic archive test content: small generated CT series (pydicom) plus the real RT files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
ECLIPSE = REAL / "eclipse81_prostate_phantom"
#: UIDs of the real Eclipse phantom files (tests/data/real/PROVENANCE.md).
ECLIPSE_STUDY = "1.2.840.113619.2.55.3.671756986.106.1316467036.460"
ECLIPSE_RP = "1.2.246.352.71.5.2088656855.377401.20110920153647"
ECLIPSE_RS = "1.2.246.352.71.4.2088656855.2404649.20110920153449"
ECLIPSE_RI = "1.2.246.352.71.3.2088656855.2381134.20110921150951"


def uid(*parts: object) -> str:
    """A deterministic ``2.25`` UID derived from *parts*."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:15], "big"))


@dataclass(frozen=True)
class Series:
    """A generated CT series on disk."""

    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    sop_uids: tuple[str, ...]
    paths: tuple[Path, ...]


def ct_dataset(*, patient_id: str, patient_name: str, study_uid: str, series_uid: str, sop_uid: str, index: int,
               study_date: str, study_time: str, series_number: int, charset: str | None = None,
               rows: int = 16) -> Dataset:
    """One small but complete CT Image (seeded pixel values)."""
    rng = np.random.default_rng(index + 1000 * series_number)
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate, ds.StudyTime = study_date, study_time
    ds.ContentDate, ds.ContentTime = study_date, study_time
    ds.AccessionNumber = f"ACC{series_number}"
    ds.Modality = "CT"
    ds.Manufacturer = "OpenIGRT tests"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.StudyDescription = f"Study of {patient_id}"
    ds.SeriesDescription = f"CT series {series_number}"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = index + 1
    ds.FrameOfReferenceUID = uid("for", study_uid)
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [-16.0, -16.0, 2.5 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 2.5
    ds.PixelSpacing = [2.0, 2.0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.KVP = 120
    ds.PixelData = rng.integers(0, 2000, (rows, rows), dtype=np.int16).tobytes()
    return ds


def save(ds: Dataset, path: Path, *, explicit: bool = True) -> Path:
    """Write *ds* as a Part 10 file (Explicit or Implicit VR LE)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ct_series(out: Path, *, patient_id: str, patient_name: str, n: int, study_date: str = "20240105",
              study_time: str = "083000", series_number: int = 1, explicit: bool = True, charset: str | None = None,
              study_key: str | None = None) -> Series:
    """Write *n* CT slices of one new series into *out*; UIDs derive from the patient and series number."""
    study_uid = uid("study", study_key or patient_id)
    series_uid = uid("series", patient_id, series_number)
    sop_uids, paths = [], []
    for i in range(n):
        sop = uid("ct", patient_id, series_number, i)
        ds = ct_dataset(patient_id=patient_id, patient_name=patient_name, study_uid=study_uid, series_uid=series_uid,
                        sop_uid=sop, index=i, study_date=study_date, study_time=study_time,
                        series_number=series_number, charset=charset)
        paths.append(save(ds, out / f"{patient_id}_{series_number}_{i:03d}.dcm", explicit=explicit))
        sop_uids.append(sop)
    return Series(patient_id, patient_name, study_uid, series_uid, tuple(sop_uids), tuple(paths))
