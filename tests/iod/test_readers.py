"""Readers: tolerant file reading, RT Plan / Ion Plan, RT Image, CT series, RT Structure Set, REG."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import SpatialRegistrationStorage

from openigrt.errors import DicomInputError, MissingAttributeError, UnsupportedObjectError
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod import private as P
from openigrt.iod.ct_series import PADDING_HU, read_ct_series
from openigrt.iod.dataset_io import AttributeReader, dicom_file, read_file, read_paths
from openigrt.iod.enum import BeamTypeValues, FieldTypeValues, TreatmentDeliveryTypeValues
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import FieldTypeSourceValues, ImagingKindValues, RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.iod.spatial_registration import SpatialRegistration
from tests.iod import factory as F
from tests.iod.realdata import (
    ARIA13,
    ARIA16,
    ECLIPSE_RI,
    ECLIPSE_RP,
    ECLIPSE_RS,
    ELEKTA_RI,
    GE_CT,
    GE_RS,
    PYDICOM_RS,
    REAL,
)

ECLIPSE_ISO = (-1.31333e-4, 0.90895911, -3.333e-6)


# --------------------------------------------------------------------------- file reading
def test_missing_and_non_dicom_files_name_the_file(tmp_path) -> None:
    with pytest.raises(DicomInputError, match=r"nothere\.dcm: no such file"):
        read_file(tmp_path / "nothere.dcm")
    text = tmp_path / "notes.txt"
    text.write_text("hello, not DICOM\n" * 20)
    with pytest.raises(DicomInputError, match=r"notes\.txt: not a"):
        read_file(text)
    files, skipped = read_paths([REAL / "xml_samples"])
    assert files == [] and len(skipped) == 4 and all("skipped" in s and ".xml" in s for s in skipped)


def test_elekta_broken_file_meta_uid_is_reported_and_tolerated() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks as a Python warning
        f = read_file(ELEKTA_RI)
    assert f.sop_instance_uid == "1.3.46.423632.132218.1438566266.11"
    assert len(f.issues) == 1
    assert "(0002,0003)" in f.issues[0] and "not a valid UID" in f.issues[0] and "RTImageStorage.dcm" in f.issues[0]


def test_attribute_reader_messages() -> None:
    ds = Dataset()
    ds[0x300A011E] = RawDataElement(Tag(0x300A011E), None, 4, b"abc ", 0, True, True)  # as read from a file
    ds.BeamName = ""
    ds.IsocenterPosition = [1, 2]
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.481.5", "1.2.3"
    f = dicom_file(ds, source="x.dcm", issues=())
    r = AttributeReader(f.dataset, "x.dcm > Beam Sequence[2]")
    with pytest.raises(DicomInputError, match=r"x\.dcm > Beam Sequence\[2\]: \(300A,011E\) Gantry Angle value "
                                              r"b?'abc ?' is not a number"):
        r.float("GantryAngle")
    with pytest.raises(MissingAttributeError, match=r"\(300A,00C2\) Beam Name is empty"):
        r.str("BeamName")
    with pytest.raises(DicomInputError, match=r"\(300A,012C\) Isocenter Position has 2 values, expected 3"):
        r.floats("IsocenterPosition", 3)


# --------------------------------------------------------------------------- RT Plan
def test_eclipse_plan() -> None:
    plan = RTPlan.from_dataset(read_file(ECLIPSE_RP))
    assert plan.rt_plan_label == "PROS" and plan.patient_study.patient_id == "TEST PHYS PROSTATE"
    assert [b.beam_number for b in plan.beams] == [1, 2, 3, 4, 5]
    assert [b.gantry_angle_deg for b in plan.beams] == [0.0, 270.0, 180.0, 90.0, 0.0]
    assert plan.referenced_structure_sets[0].sop_instance_uid == "1.2.246.352.71.4.2088656855.2404649.20110920153449"
    assert plan.beams[0].referenced_reference_images[0].sop_instance_uid == \
        "1.2.246.352.71.3.2088656855.2381134.20110921150951"
    assert all(b.isocenter_position_mm == pytest.approx(ECLIPSE_ISO) for b in plan.beams)
    assert plan.beams[0].beam_meterset == pytest.approx(52.7393266658738) and plan.beams[4].beam_meterset is None
    assert plan.patient_position(plan.beams[2]) == "HFS"
    assert plan.tolerance_tables[0].tolerance_table_number == 6
    assert plan.tolerance_tables[0].gantry_angle_tolerance_deg == pytest.approx(0.5)
    assert plan.extended_interface is not None and plan.extended_interface_error is None
    cp = plan.beams[0].control_points[1]  # inherits from control point 0
    assert cp.gantry_angle_deg == 0.0 and cp.isocenter_position_mm == pytest.approx(ECLIPSE_ISO)
    assert cp.cumulative_meterset_weight == 1.0
    assert plan.beams[0].control_points[0].table_top_vertical_position_mm is None  # present but empty


def test_eclipse_cbct_beam_is_setup_by_xml_fallback() -> None:
    plan = RTPlan.from_dataset(read_file(ECLIPSE_RP))
    cbct = plan.beam(5)
    assert cbct.beam_name == "CBCT" and cbct.treatment_delivery_type is TreatmentDeliveryTypeValues.TREATMENT
    decision = cbct.field_type()
    assert decision.field_type is FieldTypeValues.SETUP
    assert decision.source is FieldTypeSourceValues.EXTENDED_INTERFACE_XML
    assert "TREATMENT" in decision.note
    treatment = plan.beam(1).field_type()
    assert treatment.field_type is FieldTypeValues.TREATMENT
    assert treatment.source is FieldTypeSourceValues.TREATMENT_DELIVERY_TYPE
    assert [b.beam_number for b in plan.setup_beams()] == [5]
    assert cbct.imaging().kind is ImagingKindValues.NONE  # no Planned Verification Image Sequence


@pytest.mark.parametrize(("path", "n_beams", "n_cps"), [(ARIA13, 4, 2), (ARIA16, 1, 48)])
def test_aria_ion_plans(path, n_beams, n_cps) -> None:
    plan = RTPlan.from_dataset(read_file(path))
    assert plan.is_ion and len(plan.beams) == n_beams and len(plan.beams[0].control_points) == n_cps
    assert plan.beams[0].radiation_type == "PROTON"
    assert plan.extended_interface is not None and plan.extended_interface.beam(1).beam_extension.field_order == 1
    assert plan.beams[0].field_type().source is FieldTypeSourceValues.TREATMENT_DELIVERY_TYPE
    if path == ARIA13:
        cp = plan.beams[0].control_points[0]
        assert (cp.table_top_vertical_position_mm, cp.table_top_longitudinal_position_mm,
                cp.table_top_lateral_position_mm) == (-307.4, 700.0, 0.0)


def test_imaging_kinds() -> None:
    ds = F.good_plan()
    for b, params in zip(ds.BeamSequence, (["PortImageLowDose"], None, ["KV", "Image"], ["KV", "CBCT"], ["KV", "CBCT"]),
                         strict=True):
        if params is None:
            b.PlannedVerificationImageSequence = [Dataset()]  # item without parameters: film
        else:
            b.PlannedVerificationImageSequence[0].ImagingDeviceSpecificAcquisitionParameters = params
    ds.BeamSequence[4].BeamType = "DYNAMIC"
    del ds.BeamSequence[1].PlannedVerificationImageSequence[0:0]
    plan = RTPlan.from_dataset(ds)
    kinds = [b.imaging().kind for b in plan.beams]
    assert kinds == [ImagingKindValues.MV_PORTAL, ImagingKindValues.FILM, ImagingKindValues.KV_IMAGE,
                     ImagingKindValues.CBCT, ImagingKindValues.OTHER]
    assert "STATIC" in plan.beam(5).imaging().note
    assert plan.beam(4).imaging().parameters == ("KV\\CBCT",)


def test_field_type_rules() -> None:
    ds = F.good_plan()
    P.write_private(ds, P.EXTENDED_INTERFACE_XML,
                    b"<ExtendedVAPlanInterface Version='1'><Beams><Beam><ReferencedBeamNumber>3</ReferencedBeamNumber>"
                    b"<BeamExtension><FieldType>TREATMENT</FieldType></BeamExtension></Beam></Beams>"
                    b"</ExtendedVAPlanInterface>")
    del ds.BeamSequence[1].TreatmentDeliveryType
    plan = RTPlan.from_dataset(ds)
    kv = plan.beam(3).field_type()
    assert kv.field_type is FieldTypeValues.SETUP and kv.source is FieldTypeSourceValues.TREATMENT_DELIVERY_TYPE
    assert "Treatment Delivery Type wins" in kv.note
    default = plan.beam(2).field_type()
    assert default.field_type is FieldTypeValues.TREATMENT and default.source is FieldTypeSourceValues.DEFAULT


def test_control_point_values_are_inherited_and_overridden() -> None:
    ds = F.good_plan()
    cps = ds.BeamSequence[0].ControlPointSequence
    cps[1].GantryAngle = 10
    plan = RTPlan.from_dataset(ds)
    cp0, cp1 = plan.beams[0].control_points
    assert (cp0.gantry_angle_deg, cp1.gantry_angle_deg) == (0.0, 10.0)
    assert cp1.table_top_longitudinal_position_mm == 800.0 and cp1.beam_limiting_device_positions[0].leaf_jaw_positions_mm == (-50.0, 50.0)


def test_plan_errors_name_file_and_tag(tmp_path) -> None:
    ds = F.good_plan()
    del ds.BeamSequence[1].BeamNumber
    path = F.save(ds, tmp_path / "bad_plan.dcm")
    with pytest.raises(MissingAttributeError, match=r"bad_plan\.dcm > Beam Sequence\[2\]: \(300A,00C0\) Beam Number "
                                                    "is missing"):
        RTPlan.from_dataset(read_file(path))
    with pytest.raises(UnsupportedObjectError, match=r"is a RT Image .* expected RT Plan or RT Ion Plan"):
        RTPlan.from_dataset(read_file(ECLIPSE_RI))


def test_malformed_plan_xml_is_an_issue_not_a_crash() -> None:
    ds = F.good_plan()
    P.write_private(ds, P.EXTENDED_INTERFACE_XML, b"<ExtendedVAPlanInterface><Beams>")
    plan = RTPlan.from_dataset(ds)
    assert plan.extended_interface is None
    assert "(3253,xx00)" in plan.extended_interface_error and "malformed XML" in plan.extended_interface_error
    assert plan.extended_interface_error in plan.issues


def test_motion_synchronization() -> None:
    plan = RTPlan.from_dataset(F.good_plan(gated=True))
    motion = plan.patient_setups[0].motion_synchronization
    assert motion.respiratory_motion_compensation_technique == "GATING"
    assert motion.respiratory_signal_source == "EXTERNAL_MARKER"


# --------------------------------------------------------------------------- RT Image
def test_eclipse_drr_geometry_and_private_fallbacks() -> None:
    im = RTImage.from_dataset(read_file(ECLIPSE_RI))
    g = im.geometry
    assert im.is_drr and (im.rows, im.columns) == (512, 512) and im.pixels.shape == (512, 512)
    assert g.image_plane_pixel_spacing_mm == (0.9765625, 0.9765625) and g.rt_image_position_given
    assert g.rt_image_position_mm == (-249.51171875, 249.51171875)
    assert g.isocenter_position_mm is None and g.patient_position is None
    assert g.effective_isocenter_position_mm == pytest.approx(ECLIPSE_ISO)
    assert g.effective_patient_position == "HFS"
    assert im.referenced_rt_plan.sop_instance_uid == "1.2.246.352.71.5.2088656855.377401.20110920153647"
    assert im.referenced_beam_number == 1
    assert im.extended_interface.processing_names == ("None",)


def test_elekta_rt_image_without_position_is_centred_on_the_receptor_axis() -> None:
    im = RTImage.from_dataset(read_file(ELEKTA_RI))
    g = im.geometry
    assert not g.rt_image_position_given
    half = 1023 / 2 * 0.402
    assert g.rt_image_position_mm == pytest.approx((-half, half))
    # the image centre (pixel (511.5, 511.5)) is then at (0, 0) of the image plane
    assert g.rt_image_position_mm[0] + 511.5 * 0.402 == pytest.approx(0.0)
    assert im.pixel_spacing_at_isocenter_mm() == pytest.approx((0.402 * 1000 / 1600,) * 2)
    assert any("(0002,0003)" in i for i in im.issues)


def test_rt_image_rescale_multiframe_and_curves() -> None:
    ds = F.rt_image("1.2.3.4", gantry=90, beam_number=2, rows=4, cols=3)
    ds.NumberOfFrames = 2
    ds.FrameTime = 66.7
    ds.FrameIncrementPointer = 0x00181063
    ds.PixelData = np.arange(24, dtype=np.uint16).tobytes()
    for n, (col, row) in enumerate([(1.25, 2.5), (100.0, 7.75)]):
        g = 0x5000 + 2 * n
        ds.add_new((g, 0x0005), "US", 2)
        ds.add_new((g, 0x0010), "US", 1)
        ds.add_new((g, 0x0020), "CS", "POLY")
        ds.add_new((g, 0x0030), "SH", ["PIXL", "PIXL"])
        ds.add_new((g, 0x0040), "SH", ["Marker", "Marker"])
        ds.add_new((g, 0x0103), "US", 3)
        ds.add_new((g, 0x3000), "OB", np.array([col, row], "<f8").tobytes())
    im = RTImage.from_dataset(ds)
    assert im.pixels.shape == (2, 4, 3) and im.pixels.dtype == np.float32
    assert im.pixels[1, 0, 0] == 12 * 2 - 100  # slope 2, intercept -100
    assert im.number_of_frames == 2 and im.frame_time_ms == pytest.approx(66.7)
    assert [c.group for c in im.curves] == [0x5000, 0x5002]
    assert im.curves[1].points.tolist() == [[100.0, 7.75]] and im.curves[0].axis_units == ("PIXL", "PIXL")


# --------------------------------------------------------------------------- CT series
def test_ge_ct_slices() -> None:
    s = read_ct_series(reversed(GE_CT))  # order does not matter
    v = s.volume
    assert v.shape == (2, 512, 512) and v.array.dtype == np.float32
    assert v.origin_mm == (-125.0, -125.0, 60.0) and v.spacing_mm == pytest.approx((0.488281, 0.488281, 5.0))
    assert np.allclose(v.direction, np.eye(3))
    assert [sl.image_position_mm[2] for sl in s.slices] == [60.0, 65.0]
    assert s.sop_instance_uids[0].endswith(".87") and s.uniform_spacing and not s.resampled
    assert len(s.frame_of_reference_uids) == 1
    # padding -2000 (outside the reconstruction circle) becomes air, the rest is stored - 1024
    raw = pydicom.dcmread(GE_CT[0]).pixel_array
    assert s.padding_voxels == 2 * 55772
    assert v.array[0][raw == -2000].max() == PADDING_HU
    assert v.array[0, 256, 256] == raw[256, 256] - 1024


def test_ct_non_uniform_spacing_is_reported_and_resampled() -> None:
    zs = [0.0, 2.0, 4.0, 7.0, 9.0]
    cts = [F.ct_slice(k, z=z) for k, z in enumerate(zs)]
    s = read_ct_series(cts)
    assert not s.uniform_spacing and s.resampled and s.slice_gaps_mm == (2.0, 2.0, 3.0, 2.0)
    assert s.volume.spacing_mm[2] == 2.0 and s.volume.shape[0] == 5  # 0, 2, 4, 6, 8
    # slice values are k - 24 HU; at z = 6 mm: between k=2 (z 4) and k=3 (z 7), weight 2/3
    assert s.volume.array[3, 0, 0] == pytest.approx((2 - 24) + 2 / 3)
    assert read_ct_series(F.ct_series(4)).uniform_spacing


def test_ct_geometry_facts_and_errors() -> None:
    cts = F.ct_series(3)
    cts[1].FrameOfReferenceUID = "1.2.3.999"
    cts[2].ImagePositionPatient = [-14.95, -15.0, -5.0]
    s = read_ct_series(cts)
    assert len(s.frame_of_reference_uids) == 2 and s.frame_of_reference_uid is None
    assert s.max_in_plane_offset_mm == pytest.approx(0.05)
    dup = F.ct_series(2)
    dup[1].ImagePositionPatient = dup[0].ImagePositionPatient
    with pytest.raises(DicomInputError, match="same position"):
        read_ct_series(dup)
    bad = F.ct_series(2)
    bad[1] = F.ct_slice(1, rows=8)
    with pytest.raises(DicomInputError, match="8x16 pixels"):
        read_ct_series(bad)
    with pytest.raises(DicomInputError, match="2 CT series"):
        read_ct_series([F.ct_slice(0), F.ct_slice(1, series="1.2.3.5")])


def test_ct_oblique_orientation_direction() -> None:
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    orient = (c, s, 0, -s, c, 0)
    cts = [F.ct_slice(k, z=2.0 * k, orientation=orient) for k in range(3)]
    v = read_ct_series(cts).volume
    assert np.allclose(v.direction[:, 0], [c, s, 0]) and np.allclose(v.direction[:, 1], [-s, c, 0])
    assert np.allclose(v.direction[:, 2], [0, 0, 1]) and v.spacing_mm[2] == pytest.approx(2.0)


# --------------------------------------------------------------------------- RT Structure Set
def test_eclipse_structure_set() -> None:
    rs = RTStructureSet.from_dataset(read_file(ECLIPSE_RS))
    assert len(rs.rois) == 16 and len(rs.contour_image_uids()) == 92
    body = rs.structure("BODY")
    assert body.interpreted_type == "EXTERNAL" and len(body.contours) == 92
    assert body.contours[0].points_mm.shape == (602, 3)
    assert all(np.ptp(c.points_mm[:, 2]) == 0 for c in body.contours)
    marker = rs.structure("XApprox")
    assert marker.interpreted_type == "MARKER" and marker.contours == () and marker.point_mm() is None


def test_ge_and_pydicom_structure_sets() -> None:
    rs = RTStructureSet.from_dataset(read_file(GE_RS))
    assert len(rs.contour_image_uids()) == 2
    roi = rs.structures()[0]
    assert roi.contours[0].points_mm[:, 2].tolist() == [60.0] * 4
    assert roi.contours[0].contour_images[0].sop_instance_uid.endswith(".87")
    iso = RTStructureSet.from_dataset(read_file(PYDICOM_RS)).structure("Isocenter 1")
    assert iso.interpreted_type == "ISOCENTER" and iso.point_mm() is not None


def test_structure_set_private_marker_subtype_and_references(tmp_path) -> None:
    cts = F.ct_series(3)
    ds = F.structure_set(cts)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    P.write_private(item, P.STRUCTURE_SET_RELATIONSHIP, "ADDITION")
    P.write_private(ds, P.REFERENCED_STRUCTURE_SET_SEQUENCE, [item])
    rs = RTStructureSet.from_dataset(read_file(F.save(ds, tmp_path / "rs.dcm")))  # implicit VR: privates untyped
    marker = rs.structure("Marker1")
    assert marker.marker_subtype == "MARKER" and marker.point_mm().tolist() == [5.0, 2.0, -1.0]
    assert rs.referenced_structure_sets[0].sop_instance_uid == "1.2.3.4.5"
    assert rs.referenced_structure_sets[0].structure_set_relationship == "ADDITION"


def test_contour_point_count_mismatch_names_tag() -> None:
    ds = F.structure_set(F.ct_series(2))
    ds.ROIContourSequence[0].ContourSequence[1].NumberOfContourPoints = 5
    with pytest.raises(DicomInputError, match=r"Contour Sequence\[2\]: \(3006,0046\) Number of Contour Points is 5"):
        RTStructureSet.from_dataset(ds)


# --------------------------------------------------------------------------- Spatial Registration
def _reg_dataset(matrix: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = str(SpatialRegistrationStorage)
    ds.SOPInstanceUID = "1.2.3.77"
    ds.FrameOfReferenceUID = "1.2.3.8"
    items = []
    for for_uid, m in (("1.2.3.9", matrix), ("1.2.3.8", np.eye(4))):
        it = Dataset()
        it.FrameOfReferenceUID = for_uid
        mr = Dataset()
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "125024", "DCM", "Image Content-based Alignment"
        mr.RegistrationTypeCodeSequence = [code]
        mat = Dataset()
        mat.FrameOfReferenceTransformationMatrix = [float(v) for v in m.ravel()]
        mat.FrameOfReferenceTransformationMatrixType = "RIGID"
        mr.MatrixSequence = [mat]
        it.MatrixRegistrationSequence = [mr]
        items.append(it)
    ds.RegistrationSequence = items
    P.write_private(ds, P.REGISTRATION_SUB_TYPE, "3D3D")
    return ds


def test_spatial_registration_direction() -> None:
    t = RigidTransform.from_parameters(translation_mm=(1.0, -2.0, 3.0), rotation_deg=(0, 0, 5))
    reg = SpatialRegistration.from_dataset(_reg_dataset(t.matrix))
    assert reg.registration_sub_type == "3D3D"
    ref_to_ver = reg.transform(source_for="1.2.3.9", target_for="1.2.3.8")
    assert np.allclose(ref_to_ver.matrix, t.matrix)
    assert np.allclose(reg.transform(source_for="1.2.3.8", target_for="1.2.3.9").matrix, t.inverse().matrix)
    assert reg.registrations[0].registration_type_codes[0].code_value == "125024"
    with pytest.raises(DicomInputError, match="no Registration Sequence item"):
        reg.transform(source_for="9.9", target_for="1.2.3.8")


def test_read_paths_named_bad_file_raises_but_directory_skips(tmp_path) -> None:
    d = tmp_path / "mixed"
    F.write_patient(d, F.good_patient())
    (d / "notes.txt").write_text("not DICOM")
    (d / ".hidden").write_bytes(b"\x00" * 10)
    files, skipped = read_paths([d])
    assert len(files) == 14 and len(skipped) == 1 and "notes.txt" in skipped[0]
    with pytest.raises(DicomInputError, match="notes.txt"):
        read_paths([d / "notes.txt"])


def test_private_elements_stay_raw_until_typed_by_creator() -> None:
    f = read_file(ECLIPSE_RI)
    assert isinstance(f.dataset.get_item(Tag(0x3273, 0x1000)), RawDataElement)
    assert not isinstance(f.dataset.get_item(Tag(0x3273, 0x0010)), RawDataElement)  # creators are converted
    assert P.read_private(f.dataset, P.RT_IMAGE_ISOCENTER_POSITION).VR == "DS"


def test_mpeg2_cine_rt_image_is_decoded(tmp_path) -> None:
    from openigrt.iod.build import write_file
    from tests.build.conftest import strict_writing
    from tests.build.factory import cine_frames, make_patient, mpeg2_image

    with strict_writing():
        ds = mpeg2_image(make_patient(), n=12)
    im = RTImage.from_dataset(read_file(write_file(ds, tmp_path / "cine.dcm")))
    assert im.pixels.shape == (12, 48, 64) and im.number_of_frames == 12
    original = cine_frames(12, 48, 64).astype(np.float32)
    assert float(np.abs(im.pixels - original).mean()) < 3.0  # lossy MPEG2, grey levels 0-255
