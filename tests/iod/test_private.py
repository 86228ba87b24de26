"""IOD-8: the private dictionary re-types the real vendor files' untyped elements, by creator."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from openigrt.errors import DicomInputError
from openigrt.iod import private as P
from tests.iod.realdata import ARIA13, ARIA16, ECLIPSE_RI, ECLIPSE_RP


def _roundtrip(ds: Dataset, *, implicit: bool) -> Dataset:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False, implicit_vr=implicit, little_endian=True)
    buf.seek(0)
    return pydicom.dcmread(buf, force=True)


def test_eclipse_drr_private_isocenter_and_patient_position() -> None:
    ds = pydicom.dcmread(ECLIPSE_RI)
    assert ds[0x3273, 0x1000].VR == "UN"  # the trap: untyped in the file
    iso = P.read_private(ds, P.RT_IMAGE_ISOCENTER_POSITION)
    assert iso is not None and iso.VR == "DS" and iso.VM == 3
    assert P.read_private_value(ds, P.RT_IMAGE_ISOCENTER_POSITION) == pytest.approx((-1.31333e-4, 0.90895911, -3.333e-6))
    # equals the plan isocenter (PROVENANCE: "equal the plan isocenter / HFS")
    plan = pydicom.dcmread(ECLIPSE_RP)
    plan_iso = [float(v) for v in plan.BeamSequence[0].ControlPointSequence[0].IsocenterPosition]
    assert P.read_private_value(ds, P.RT_IMAGE_ISOCENTER_POSITION) == pytest.approx(tuple(plan_iso))
    assert P.read_private_value(ds, P.RT_IMAGE_PATIENT_POSITION) == "HFS"
    assert P.read_private(ds, P.RT_IMAGE_PATIENT_POSITION).VR == "CS"


def test_extended_interface_length_is_unreliable_but_typed() -> None:
    ds = pydicom.dcmread(ECLIPSE_RI)
    xml = P.read_private_value(ds, P.EXTENDED_INTERFACE_XML)
    assert isinstance(xml, bytes) and xml.startswith(b"<RTImageExtendedInterface>")
    assert P.read_private_value(ds, P.EXTENDED_INTERFACE_LENGTH) == 0  # says 0 for 576 bytes
    assert P.read_private_value(ds, P.EXTENDED_INTERFACE_FORMAT) == "ImageProcessing"


@pytest.mark.parametrize(("path", "length"), [(ARIA13, 1418), (ARIA16, 844)])
def test_aria_ion_plan_un_privates_are_retyped(path, length) -> None:
    ds = pydicom.dcmread(path)
    assert ds[0x3253, 0x1001].VR == "UN"
    assert P.read_private(ds, P.EXTENDED_INTERFACE_LENGTH).VR == "IS"
    assert P.read_private_value(ds, P.EXTENDED_INTERFACE_LENGTH) == length
    assert P.read_private_value(ds, P.EXTENDED_INTERFACE_FORMAT) == "ExtendedIF"
    assert b"<ExtendedVAPlanInterface" in P.read_private_value(ds, P.EXTENDED_INTERFACE_XML)


def test_private_sequence_stored_as_un_is_decoded_with_nested_privates() -> None:
    # (3287,xx00) in the ARIA 13 plan is a private sequence stored untyped; decode it as SQ.
    ds = pydicom.dcmread(ARIA13)
    entry = P.PrivateEntry(0x3287, 0x00, "SQ", "1", "PlanIntegritySequence", "plan integrity")
    seq = P.read_private_value(ds, entry)
    assert len(seq) == 2
    inner = P.PrivateEntry(0x3287, 0x02, "IS", "1", "X", "x")
    assert sorted(P.read_private_value(item, inner) for item in seq) == [1, 2]
    assert all(len(P.read_private_value(item, P.PrivateEntry(0x3287, 0x01, "LO", "1", "Y", "y"))) == 32 for item in seq)


def test_resolved_by_creator_not_by_group_or_block() -> None:
    ds = Dataset()
    # another vendor owns block 0x10 of 3273 (pydicom's dictionary knows it as BrainLAB)
    ds.private_block(0x3273, "BrainLAB_PatientSetup", create=True).add_new(0x01, "CS", "FFP")
    P.write_private(ds, P.RT_IMAGE_PATIENT_POSITION, "HFS")
    assert ds[0x3273, 0x0011].value == "Varian Medical Systems VISION 3273"
    assert ds[0x3273, 0x1101].value == "HFS"
    assert P.read_private_value(ds, P.RT_IMAGE_PATIENT_POSITION) == "HFS"
    # through a file, implicit VR: our element comes back UN and is still found and typed
    back = _roundtrip(ds, implicit=True)
    assert P.read_private_value(back, P.RT_IMAGE_PATIENT_POSITION) == "HFS"
    assert P.read_private_value(back, P.RT_IMAGE_PATIENT_POSITION, creator_prefix="BrainLAB_PatientSetup") is None


def test_configurable_prefix() -> None:
    ds = Dataset()
    P.write_private(ds, P.MARKER_SUBTYPE, "MARKER", creator_prefix="ACME IGRT")
    assert ds[0x3271, 0x0010].value == "ACME IGRT 3271"
    assert P.read_private_value(ds, P.MARKER_SUBTYPE) is None
    assert P.read_private_value(ds, P.MARKER_SUBTYPE, creator_prefix="ACME IGRT") == "MARKER"


@pytest.mark.parametrize("implicit", [True, False])
def test_private_sequence_round_trip_through_file(implicit: bool) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    P.write_private(item, P.STRUCTURE_SET_RELATIONSHIP, "ADDITION")
    ds = Dataset()
    ds.PatientID = "X"
    P.write_private(ds, P.REFERENCED_STRUCTURE_SET_SEQUENCE, [item])
    back = _roundtrip(ds, implicit=implicit)
    seq = P.read_private_value(back, P.REFERENCED_STRUCTURE_SET_SEQUENCE)
    assert len(seq) == 1
    assert seq[0].ReferencedSOPInstanceUID == "1.2.3.4"
    assert P.read_private_value(seq[0], P.STRUCTURE_SET_RELATIONSHIP) == "ADDITION"


def test_explicit_file_with_un_sequence_in_explicit_encoding_is_tolerated() -> None:
    # some writers turn SQ into UN but keep explicit VR inside the items
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3"
    seq_ds = Dataset()
    P.write_private(seq_ds, P.PRIMARY_FLUENCE_MODE_SEQUENCE, [inner])
    explicit = _roundtrip(seq_ds, implicit=False)
    tag = P.private_tag(explicit, P.PRIMARY_FLUENCE_MODE_SEQUENCE)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_sequence(fp, explicit[tag], ["iso8859"])
    un = Dataset()
    un.private_block(0x3285, "Varian Medical Systems VISION 3285", create=True)
    un.add_new(tag, "UN", fp.getvalue())
    seq = P.read_private_value(un, P.PRIMARY_FLUENCE_MODE_SEQUENCE)
    assert seq[0].ReferencedSOPInstanceUID == "1.2.3"


def test_undecodable_bytes_name_the_tag() -> None:
    ds = Dataset()
    ds.private_block(0x3285, "Varian Medical Systems VISION 3285", create=True)
    ds.add_new((0x3285, 0x1000), "UN", b"\xfe\xff\x00\xe0\xff\xff\x00\x10garbage")
    with pytest.raises(DicomInputError, match=r"3285, ?1000"):
        P.read_private_value(ds, P.PRIMARY_FLUENCE_MODE_SEQUENCE)


def test_retype_in_place_counts_and_types() -> None:
    ds = pydicom.dcmread(ECLIPSE_RI)
    n = P.retype_private_elements(ds)
    assert n == 5
    assert ds[0x3273, 0x1000].VR == "DS" and ds[0x3253, 0x1002].VR == "CS"
    assert P.retype_private_elements(ds) == 0


def test_dictionary_entries() -> None:
    keys = {(e.group, e.offset): e.vr for e in P.PRIVATE_DICTIONARY}
    assert keys[(0x3253, 0x00)] == "OB" and keys[(0x3253, 0x01)] == "IS" and keys[(0x3253, 0x02)] == "CS"
    assert keys[(0x3263, 0x01)] == "SQ" and keys[(0x3263, 0x02)] == "CS"
    assert keys[(0x3273, 0x00)] == "DS" and P.RT_IMAGE_ISOCENTER_POSITION.vm == "3"
    assert keys[(0x3285, 0x00)] == "SQ" and keys[(0x3285, 0x01)] == "CS" and keys[(0x3285, 0x02)] == "SH"
    assert {0x3271, 0x3275, 0x3279, 0x3281} <= {g for g, _ in keys}
    assert P.lookup(0x3273, 0x1001) is P.RT_IMAGE_PATIENT_POSITION


def test_implicit_sequence_that_looks_explicit_falls_back() -> None:
    # the item's first element is 0x4144 = 16708 bytes long: its length field reads "DA" like an explicit VR
    body = b"\x09\x00\x01\x10" + (0x4144).to_bytes(4, "little") + b"x" * 0x4144
    item = b"\xfe\xff\x00\xe0" + len(body).to_bytes(4, "little") + body
    ds = Dataset()
    ds.private_block(0x3285, "Varian Medical Systems VISION 3285", create=True)
    ds.add_new((0x3285, 0x1000), "UN", item)
    assert P._looks_explicit(item)
    seq = P.read_private_value(ds, P.PRIMARY_FLUENCE_MODE_SEQUENCE)
    assert len(seq) == 1 and len(seq[0].get_item(Tag(0x0009, 0x1001)).value) == 0x4144
