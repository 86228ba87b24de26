"""XML-1: the extended-interface XML parses (the four real payloads), validates limits, round trips."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pydicom
import pytest

from openigrt.errors import XmlInterfaceError
from openigrt.iod import private as P
from openigrt.iod.enum import AxisSetupModeValues, CustomAddOnTypeValues, FieldTypeValues, SetupPhotoFormatValues
from openigrt.iod.xml_interface import (
    Beam,
    BeamExtension,
    Breakpoint,
    CustomAddOn,
    DoseReference,
    DoseReferenceExtension,
    ExtendedVAPlanInterface,
    FieldSetupPhoto,
    RTImageExtendedInterface,
    ToleranceTable,
    ToleranceTableExtension,
    TraySpecification,
    parse_extended_interface,
    parse_plan_interface,
)
from tests.iod.realdata import ARIA13, ECLIPSE_RI, ECLIPSE_RP, XML_SAMPLES

SAMPLES = sorted(XML_SAMPLES.glob("*.xml"))


def _canonical(xml: bytes) -> str:
    return ET.canonicalize(xml.decode("utf-8").split("?>", 1)[-1] if xml.startswith(b"<?xml") else xml.decode())


def _full_document() -> ExtendedVAPlanInterface:
    ext = BeamExtension(
        field_type=FieldTypeValues.SETUP, related_treat_beam_number=1, field_order=2,
        gantry_rtn_extended_start=False, gantry_rtn_extended_stop=True, mu_subtraction="true",
        field_setup_photos=(FieldSetupPhoto(1, SetupPhotoFormatValues.JPG, b"\xff\xd8\x00\x01", False),
                            FieldSetupPhoto(2, SetupPhotoFormatValues.BMP, b"BM", True)),
        custom_add_ons=(CustomAddOn(CustomAddOnTypeValues.BLOCK, "B-17", 1),
                        CustomAddOn(CustomAddOnTypeValues.TRAY, "T1", 2)),
        tray_specification=TraySpecification("TRAY-0123456789A", 650.5),
    )
    tol = ToleranceTableExtension(*[AxisSetupModeValues.AUTOMATIC] * 3, AxisSetupModeValues.MANUAL,
                                  *[AxisSetupModeValues.REMOTE] * 5)
    dose = DoseReferenceExtension(2.0, 2.2, (Breakpoint(10.0, "check the skin"), Breakpoint(20.5, "x" * 254)))
    return ExtendedVAPlanInterface("1", (Beam(1, BeamExtension(field_type=FieldTypeValues.TREATMENT)), Beam(2, ext)),
                                   (ToleranceTable(6, tol),), (DoseReference(1, dose),))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_real_payloads_parse_and_round_trip(path) -> None:
    doc = parse_extended_interface(path.read_bytes())
    again = parse_extended_interface(doc.to_xml())
    assert again == doc


def test_eclipse_plan_payload_content() -> None:
    doc = parse_plan_interface((XML_SAMPLES / "eclipse81_RP_ExtendedVAPlanInterface.xml").read_bytes())
    assert [b.referenced_beam_number for b in doc.beams] == [1, 2, 3, 4, 5]
    assert doc.field_type(5) is FieldTypeValues.SETUP
    assert doc.field_type(1) is FieldTypeValues.TREATMENT
    assert doc.beam(5).beam_extension.custom_add_ons == ()  # <CustomAddOns/> present, empty
    assert doc.beam(5).beam_extension.gantry_rtn_extended_start is False
    ext = doc.tolerance_tables[0].tolerance_table_extension
    assert doc.tolerance_tables[0].referenced_tolerance_table_number == 6
    assert ext.gantry_rtn_setup is AxisSetupModeValues.REMOTE and ext.couch_lat_setup is AxisSetupModeValues.MANUAL
    assert ext.table_top_eccentric_angle_setup is None
    assert doc.dose_references[1].dose_reference_extension.daily_dose_limit == pytest.approx(1.8)
    assert doc.dose_references[0].dose_reference_extension == DoseReferenceExtension()


def test_aria_payloads_without_field_type() -> None:
    doc = parse_plan_interface((XML_SAMPLES / "aria13_RN_ExtendedVAPlanInterface.xml").read_bytes())
    assert doc.field_type(1) is None and doc.beam(4).beam_extension.field_order == 4
    # written back, the document is the same XML (canonical form) as the vendor's
    assert _canonical(doc.to_xml()) == _canonical((XML_SAMPLES / "aria13_RN_ExtendedVAPlanInterface.xml").read_bytes())


def test_rt_image_variant_kept_verbatim() -> None:
    raw = (XML_SAMPLES / "eclipse81_RI_RTImageExtendedInterface.xml").read_bytes()
    doc = parse_extended_interface(raw)
    assert isinstance(doc, RTImageExtendedInterface)
    assert doc.processing_names == ("None",)
    assert doc.to_xml() == raw.strip()
    with pytest.raises(XmlInterfaceError, match="RTImageExtendedInterface"):
        parse_plan_interface(raw)


def test_payloads_inside_the_dicom_files_equal_the_samples() -> None:
    for dcm, sample in ((ECLIPSE_RP, "eclipse81_RP_ExtendedVAPlanInterface.xml"),
                        (ECLIPSE_RI, "eclipse81_RI_RTImageExtendedInterface.xml"),
                        (ARIA13, "aria13_RN_ExtendedVAPlanInterface.xml")):
        value = P.read_private_value(pydicom.dcmread(dcm), P.EXTENDED_INTERFACE_XML)
        assert parse_extended_interface(value) == parse_extended_interface((XML_SAMPLES / sample).read_bytes())


def test_full_document_round_trip_every_element() -> None:
    doc = _full_document()
    xml = doc.to_xml()
    for name in ("RelatedTreatBeamNumber", "MUSubtraction", "SetupPhotoPicture", "PhotoModified", "CustomCode",
                 "ReferencedAddOnNumber", "TrayID", "SourceTrayDistance", "TableTopEccentricAngleSetup",
                 "BreakpointDose", "BreakpointWarning", "SessionDoseLimit"):
        assert f"<{name}>".encode() in xml, name
    assert b"<SetupPhotoPicture>FFD80001</SetupPhotoPicture>" in xml
    assert parse_plan_interface(xml) == doc
    assert parse_plan_interface(doc.to_xml(declaration=False)) == doc


def test_unknown_elements_are_kept() -> None:
    xml = (b"<ExtendedVAPlanInterface Version='1'><Beams><Beam><ReferencedBeamNumber>1</ReferencedBeamNumber>"
           b"<BeamExtension><FieldType>SETUP</FieldType><NewThing a='1'>x</NewThing></BeamExtension></Beam></Beams>"
           b"<Future/></ExtendedVAPlanInterface>")
    doc = parse_plan_interface(xml)
    assert doc.beam(1).beam_extension.extra == ('<NewThing a="1">x</NewThing>',)
    assert parse_plan_interface(doc.to_xml()) == doc


def _with_extension(inner: str) -> bytes:
    return (f"<ExtendedVAPlanInterface Version='1'><Beams><Beam><ReferencedBeamNumber>1</ReferencedBeamNumber>"
            f"<BeamExtension>{inner}</BeamExtension></Beam></Beams></ExtendedVAPlanInterface>").encode()


@pytest.mark.parametrize(("xml", "message"), [
    (b"<ExtendedVAPlanInterface><Beams><Beam>", "malformed XML"),
    (b"", "empty XML"),
    (b"\x00\x00", "empty XML"),
    (b"<Other/>", "unknown root element <Other>"),
    (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><ExtendedVAPlanInterface/>', "DTD"),
    (_with_extension("<FieldType>BOTH</FieldType>"), r"BeamExtension/FieldType: invalid value 'BOTH' \(allowed: TREATMENT, SETUP\)"),
    (_with_extension("<FieldOrder>first</FieldOrder>"), "FieldOrder: invalid value 'first'"),
    (_with_extension("<FieldSetupPhotos>" + "<FieldSetupPhoto/>" * 3 + "</FieldSetupPhotos>"),
     "3 FieldSetupPhoto elements, at most 2"),
    (_with_extension("<CustomAddOns>" + "<CustomAddOn/>" * 5 + "</CustomAddOns>"), "5 CustomAddOn elements, at most 4"),
    (_with_extension("<CustomAddOns><CustomAddOn><CustomAddOnType>WEDGE</CustomAddOnType></CustomAddOn></CustomAddOns>"),
     "CustomAddOnType: invalid value 'WEDGE'"),
    (_with_extension("<TraySpecification><TrayID>12345678901234567</TrayID></TraySpecification>"),
     "TrayID: 17 characters, at most 16"),
    (_with_extension("<FieldSetupPhotos><FieldSetupPhoto><SetupPhotoFormat>PNG</SetupPhotoFormat>"
                     "</FieldSetupPhoto></FieldSetupPhotos>"), "SetupPhotoFormat: invalid value 'PNG'"),
    (_with_extension("<FieldSetupPhotos><FieldSetupPhoto><SetupPhotoPicture>XYZ</SetupPhotoPicture>"
                     "</FieldSetupPhoto></FieldSetupPhotos>"), "SetupPhotoPicture: invalid value"),
    (b"<ExtendedVAPlanInterface><DoseReferences><DoseReference><DoseReferenceExtension><Breakpoints><Breakpoint>"
     b"<BreakpointWarning>" + b"w" * 255 + b"</BreakpointWarning></Breakpoint></Breakpoints></DoseReferenceExtension>"
     b"</DoseReference></DoseReferences></ExtendedVAPlanInterface>", "BreakpointWarning: 255 characters, at most 254"),
    (b"<ExtendedVAPlanInterface><ToleranceTables><ToleranceTable><ToleranceTableExtension>"
     b"<CouchVrtSetup>automatic-ish</CouchVrtSetup></ToleranceTableExtension></ToleranceTable></ToleranceTables>"
     b"</ExtendedVAPlanInterface>", "CouchVrtSetup: invalid value"),
])
def test_malformed_or_out_of_limits_is_a_clear_error(xml: bytes, message: str) -> None:
    with pytest.raises(XmlInterfaceError, match=message):
        parse_extended_interface(xml)


def test_construction_is_strict_too() -> None:
    photo = FieldSetupPhoto(1, SetupPhotoFormatValues.JPG)
    with pytest.raises(XmlInterfaceError, match="at most 2"):
        BeamExtension(field_setup_photos=(photo, photo, photo))
    with pytest.raises(XmlInterfaceError, match="at most 4"):
        BeamExtension(custom_add_ons=(CustomAddOn(),) * 5)
    with pytest.raises(XmlInterfaceError, match="TrayID"):
        TraySpecification(tray_id="x" * 17)
    with pytest.raises(XmlInterfaceError, match="FieldType"):
        BeamExtension(field_type="NONSENSE")  # type: ignore[arg-type]
    assert BeamExtension(field_type="SETUP").field_type is FieldTypeValues.SETUP  # type: ignore[arg-type]
