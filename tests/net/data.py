"""Test data for the network tests: the real files of tests/data/real plus small synthetic instances."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

REAL = Path(__file__).resolve().parents[1] / "data" / "real"

#: One real instance per class the SCP accepts: CT (GE, Explicit), RTSTRUCT (Eclipse, Implicit),
#: RT Image (Elekta, Implicit, broken meta UID), RT Plan (Eclipse, Implicit).
REAL_CT = REAL / "rt_utils_ge_phantom" / "ct_1.dcm"
REAL_CT2 = REAL / "rt_utils_ge_phantom" / "ct_2.dcm"
REAL_RTSTRUCT = REAL / "eclipse81_prostate_phantom" / "RS.1.2.246.352.71.4.2088656855.2404649.20110920153449.dcm"
REAL_RTIMAGE = REAL / "pynetdicom_elekta_rtimage" / "RTImageStorage.dcm"
REAL_DRR = REAL / "eclipse81_prostate_phantom" / "RI.1.2.246.352.71.3.2088656855.2381134.20110921150951.dcm"
REAL_RTPLAN = REAL / "eclipse81_prostate_phantom" / "RP.1.2.246.352.71.5.2088656855.377401.20110920153647.dcm"
REAL_ION_PLAN = REAL / "aria_ion_plans" / "RN.1.2.246.352.71.5.361940808526.37240.20200311150225.dcm"
REAL_SCP_SET = (REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE, REAL_RTPLAN)

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RTIMAGE = "1.2.840.10008.5.1.4.1.1.481.1"
RTPLAN = "1.2.840.10008.5.1.4.1.1.481.5"
REG = "1.2.840.10008.5.1.4.1.1.66.1"


def dataset_bytes(path: Path) -> tuple[str, bytes]:
    """(transfer syntax, encoded data set) of a Part 10 file, without decoding it."""
    from openigrt.net.header import split_part10

    data = path.read_bytes()
    split = split_part10(data, name=str(path))
    return split.transfer_syntax_uid, data[split.dataset_offset:]


def encode(ds: Dataset, *, implicit: bool = True) -> bytes:
    """Encode a data set (no meta) in Implicit or Explicit VR LE."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def make_instance(sop_class: str = CT, *, uid: str | None = None, study: str | None = None,
                  series: str | None = None, charset: str | None = None, patient_name: str = "TEST^NET",
                  patient_id: str = "NET001", modality: str = "CT", rows: int = 8, seed: int = 1) -> Dataset:
    """A small valid-enough instance of *sop_class* (pixels only for image classes)."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid or generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = generate_uid()
    if sop_class in (CT, MR, RTIMAGE):
        rng = np.random.default_rng(seed)
        ds.Rows = ds.Columns = rows
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = rng.integers(0, 4096, (rows, rows), dtype=np.uint16).tobytes()
    return ds


def write_part10(ds: Dataset, path: Path, *, implicit: bool = True) -> Path:
    """Write *ds* as a Part 10 file in Implicit or Explicit VR LE."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def same_elements(a: Dataset, b: Dataset) -> list[str]:
    """Top-level elements that differ between two data sets (values compared decoded)."""
    diffs = []
    tags = sorted(set(a.keys()) | set(b.keys()))
    for tag in tags:
        if tag.group == 0x0002:
            continue
        ea, eb = a.get(tag), b.get(tag)
        if ea is None or eb is None:
            diffs.append(f"{tag} missing on one side")
        elif tag.is_private and _raw(ea.value) == _raw(eb.value):
            continue  # untyped in Implicit VR (UN bytes) vs typed in Explicit VR: same bytes
        elif ea.value != eb.value:
            diffs.append(f"{tag} {ea.keyword}: {str(ea.value)[:40]!r} != {str(eb.value)[:40]!r}")
    return diffs


def _raw(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value.rstrip(b" \x00")
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).encode("latin-1", "replace").rstrip(b" \x00")  # type: ignore[union-attr]
    return str(value).encode("latin-1", "replace").rstrip(b" \x00")


def read_file(path: Path) -> Dataset:
    return dcmread(io.BytesIO(path.read_bytes()))
