"""Structure walk and index header of encoded data sets (NET-8 C000 detection, NET-13 character sets)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from openigrt.errors import DicomInputError, UnsupportedObjectError
from openigrt.net.header import check_structure, inspect, read_header, split_part10
from tests.net.data import CT, REAL, REAL_CT, REAL_RTSTRUCT, dataset_bytes, encode, make_instance

REAL_FILES = sorted(REAL.glob("*/*.dcm"))


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name[:40])
def test_real_files_pass_and_header_matches_pydicom(path) -> None:
    ts, body = dataset_bytes(path)
    hdr = inspect(body, transfer_syntax_uid=ts)
    ds = dcmread(path, stop_before_pixels=True, force=True)
    assert hdr.sop_instance_uid == ds.SOPInstanceUID
    assert hdr.sop_class_uid == ds.SOPClassUID
    assert hdr.study_instance_uid == ds.get("StudyInstanceUID", "")
    assert hdr.series_instance_uid == ds.get("SeriesInstanceUID", "")
    assert hdr.modality == ds.get("Modality", "")
    assert hdr.patient_name == str(ds.get("PatientName", ""))
    assert hdr.patient_id == ds.get("PatientID", "")
    assert read_header(body, transfer_syntax_uid=ts) == hdr


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name[:40])
def test_truncated_real_files_are_undecodable(path) -> None:
    ts, body = dataset_bytes(path)
    implicit = ts == "1.2.840.10008.1.2"
    for cut in (len(body) - 1, len(body) - 7, len(body) // 2 + 3):
        with pytest.raises(DicomInputError, match="undecodable|truncated"):
            check_structure(body[:cut], implicit_vr=implicit)


def test_garbage_and_empty_are_undecodable() -> None:
    rng = np.random.default_rng(12345)
    with pytest.raises(DicomInputError, match="empty"):
        check_structure(b"", implicit_vr=True)
    for n in (1, 7, 8, 100, 5000):
        for implicit in (True, False):
            data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            with pytest.raises(DicomInputError):
                check_structure(data, implicit_vr=implicit)


def test_explicit_stream_read_as_implicit_or_vice_versa_fails() -> None:
    ts, body = dataset_bytes(REAL_CT)  # Explicit VR LE
    assert ts == "1.2.840.10008.1.2.1"
    with pytest.raises(DicomInputError):
        check_structure(body, implicit_vr=True)
    ts2, body2 = dataset_bytes(REAL_RTSTRUCT)  # Implicit VR LE
    with pytest.raises(DicomInputError):
        check_structure(body2, implicit_vr=False)


def _undefined_length_sequence(implicit: bool) -> bytes:
    item = encode(Dataset(), implicit=implicit)
    inner = Dataset()
    inner.ROIName = "PTV"
    inner_bytes = encode(inner, implicit=implicit)
    seq = b""
    for payload in (inner_bytes, item):
        seq += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + payload + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    seq += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    head = struct.pack("<HH", 0x3006, 0x0020)
    head += struct.pack("<L", 0xFFFFFFFF) if implicit else b"SQ\x00\x00" + struct.pack("<L", 0xFFFFFFFF)
    return encode(make_instance("1.2.840.10008.5.1.4.1.1.481.3", modality="RTSTRUCT"), implicit=implicit) + head + seq


@pytest.mark.parametrize("implicit", [True, False])
def test_undefined_length_sequences_walked_and_truncation_found(implicit: bool) -> None:
    data = _undefined_length_sequence(implicit)
    check_structure(data, implicit_vr=implicit)
    for cut in (len(data) - 8, len(data) - 20, len(data) - 30):
        with pytest.raises(DicomInputError, match="truncated|delimiter|expected"):
            check_structure(data[:cut], implicit_vr=implicit)


def test_encapsulated_pixel_data_and_un_undefined_length() -> None:
    ds = make_instance(CT)
    ds.PixelData = encapsulate([b"\x01\x02" * 50, b"\x03\x04" * 30])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    data = encode(ds, implicit=False)
    hdr = inspect(data, transfer_syntax_uid="1.2.840.10008.1.2.4.50")
    assert hdr.sop_class_uid == CT
    with pytest.raises(DicomInputError):
        check_structure(data[:-10], implicit_vr=False)
    # explicit UN with undefined length: its content is implicit VR (PS3.5 6.2.2)
    un = struct.pack("<HH", 0x3253, 0x1000) + b"UN\x00\x00" + struct.pack("<L", 0xFFFFFFFF)
    item = struct.pack("<HHL", 0x0008, 0x0060, 2) + b"CT"
    un += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + item + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    un += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    check_structure(encode(make_instance(CT), implicit=False) + un, implicit_vr=False)


@pytest.mark.parametrize(("charset", "name", "pid"), [
    ("ISO_IR 100", "Müller^Jürgen", "Straße-1"),
    ("ISO_IR 192", "山田^太郎=やまだ^たろう", "Ærø-ø"),
    (None, "PLAIN^ASCII", "ID1"),
])
@pytest.mark.parametrize("implicit", [True, False])
def test_character_sets_decoded_bytes_untouched(charset, name, pid, implicit: bool) -> None:
    ds = make_instance(CT, charset=charset, patient_name=name, patient_id=pid)
    data = encode(ds, implicit=implicit)
    codec = {"ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}.get(charset or "", "ascii")
    raw_name = name.encode(codec)
    assert raw_name in data  # encoded in the data set's own character set
    hdr = inspect(data, transfer_syntax_uid="1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1")
    assert (hdr.patient_name, hdr.patient_id) == (name, pid)
    assert hdr.specific_character_set == (charset or "")


def test_unsupported_transfer_syntaxes() -> None:
    with pytest.raises(UnsupportedObjectError, match="Big Endian"):
        inspect(b"\x00" * 8, transfer_syntax_uid="1.2.840.10008.1.2.2")
    with pytest.raises(UnsupportedObjectError, match="Deflated"):
        inspect(b"\x00" * 8, transfer_syntax_uid="1.2.840.10008.1.2.1.99")


def test_missing_uids_give_empty_header_fields() -> None:
    ds = Dataset()
    ds.PatientName = "NO^UIDS"
    hdr = inspect(encode(ds), transfer_syntax_uid="1.2.840.10008.1.2")
    assert (hdr.sop_class_uid, hdr.sop_instance_uid, hdr.patient_name) == ("", "", "NO^UIDS")


def test_split_part10_variants(tmp_path) -> None:
    data = REAL_CT.read_bytes()
    s = split_part10(data)
    assert s.has_meta and s.transfer_syntax_uid == "1.2.840.10008.1.2.1" and data[s.dataset_offset:s.dataset_offset + 2] == b"\x08\x00"
    raw = (REAL / "pydicom_rt_fragments" / "rtstruct.dcm").read_bytes()  # no preamble, no meta
    s2 = split_part10(raw)
    assert (s2.has_meta, s2.dataset_offset, s2.transfer_syntax_uid) == (False, 0, "1.2.840.10008.1.2")
    with pytest.raises(DicomInputError, match="not a DICOM file"):
        split_part10(b"hello world, not dicom at all" * 10, name="x.txt")
    broken = data[:132] + struct.pack("<HH", 0x0002, 0x0001) + b"OB\x00\x00" + struct.pack("<L", 2) + b"\x00\x01"
    with pytest.raises(DicomInputError, match="Transfer Syntax"):
        split_part10(broken + b"\x08\x00\x16\x00UI\x02\x001\x00", name="broken.dcm")
    elekta = REAL / "pynetdicom_elekta_rtimage" / "RTImageStorage.dcm"
    s3 = split_part10(elekta.read_bytes())
    assert s3.media_sop_instance_uid.startswith("1.2.826.0.1.3680043.9.5208.00899")  # the broken one, read raw
    assert inspect(elekta.read_bytes()[s3.dataset_offset:], transfer_syntax_uid=s3.transfer_syntax_uid
                   ).sop_instance_uid == "1.3.46.423632.132218.1438566266.11"


def test_deeply_nested_garbage_is_bounded() -> None:
    # 100 nested undefined-length sequences: refused (depth limit), never a RecursionError
    open_seq = struct.pack("<HHL", 0x3006, 0x0020, 0xFFFFFFFF) + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    with pytest.raises(DicomInputError, match="nested|truncated"):
        check_structure(open_seq * 100, implicit_vr=True)


def test_fast_meta_and_uid_reader_agree_with_pydicom(monkeypatch) -> None:
    """The send path's hand-walked File Meta and SOP UIDs (no pydicom import) give what the pydicom
    reader and the full header reader give, on every real file of the test data."""
    import openigrt.net.header as header

    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "data").rglob("*.dcm"))
    assert len(files) > 50
    fast = [split_part10(f.read_bytes(), name=str(f)) for f in files]
    monkeypatch.setattr(header, "_split_meta", lambda data: None)  # force pydicom's reader
    slow = [split_part10(f.read_bytes(), name=str(f)) for f in files]
    assert fast == slow
    for f, split in zip(files, fast, strict=True):
        if split.transfer_syntax_uid in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
            body = f.read_bytes()[split.dataset_offset:]
            hdr = read_header(body, transfer_syntax_uid=split.transfer_syntax_uid)
            assert header.read_sop_uids(body, transfer_syntax_uid=split.transfer_syntax_uid) == (
                hdr.sop_class_uid, hdr.sop_instance_uid), f
