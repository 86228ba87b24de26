"""Write → read with the project's readers (engineer C's ``openigrt.iod`` readers) → equal values.

Every object type the builders make is read back by the reader the rest of OpenIGRT uses, in
Explicit and Implicit VR Little Endian files, with no reader issue allowed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openigrt.iod.build import write_file
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_file
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import ImagingKindValues, RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.iod.spatial_registration import SpatialRegistration
from tests.build.factory import ISOCENTER, MARKERS, TRUTH, Patient, all_objects, cine_frames, ct_volume, geometry

pytestmark = pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])


def _file(ds, tmp_path: Path, name: str, implicit: bool):
    f = read_file(write_file(ds, tmp_path / name, implicit_vr=implicit))
    assert f.issues == ()
    return f


@pytest.fixture(scope="module")
def objects(patient: Patient):
    from tests.build.conftest import strict_writing

    with strict_writing():
        return all_objects(patient)


def test_ct_series(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    series = read_ct_series([_file(ds, tmp_path, f"ct{k}.dcm", implicit) for k, ds in enumerate(patient.ct)])
    vol = ct_volume()
    assert series.issues == () and series.frame_of_reference_uid == patient.ct[0].FrameOfReferenceUID
    assert series.uniform_spacing and not series.resampled and series.patient_position == "HFS"
    np.testing.assert_allclose(series.volume.origin_mm, vol.origin_mm)
    np.testing.assert_allclose(series.volume.spacing_mm, vol.spacing_mm)
    np.testing.assert_array_equal(series.volume.array, np.rint(vol.array))
    assert series.sop_instance_uids == tuple(d.SOPInstanceUID for d in patient.ct)


def test_spatial_registrations(patient: Patient, objects, tmp_path: Path, implicit: bool) -> None:
    for key, ref_for in (("REG 3D3D", patient.ct[0].FrameOfReferenceUID), ("REG MARKER", patient.ct[0].FrameOfReferenceUID),
                         ("REG 2D2D", patient.drrs[3].FrameOfReferenceUID), ("REG IHE-RO 2008", patient.ct[0].FrameOfReferenceUID)):
        reg = SpatialRegistration.from_dataset(_file(objects[key], tmp_path, "reg.dcm", implicit))
        assert reg.frame_of_reference_uid == patient.session_for and reg.instance_number == 0
        t = reg.transform(source_for=ref_for, target_for=patient.session_for)
        np.testing.assert_allclose(t.matrix, TRUTH.matrix, atol=1e-9)
        assert {r.matrix_type for r in reg.registrations} == {"RIGID"}
        assert all(r.matrices_in_item == 1 and len(r.registration_type_codes) == 1 for r in reg.registrations)
        assert reg.registration_sub_type == key.split()[1].replace("IHE-RO", "3D3D")


def test_rt_images(patient: Patient, objects, tmp_path: Path, implicit: bool) -> None:
    img = RTImage.from_dataset(_file(objects["RTIMAGE CURVES"], tmp_path, "kv.dcm", implicit))
    g = img.geometry
    expected = geometry(270.0, 40, 48)
    assert img.issues == () and img.image_type == ("ORIGINAL", "PRIMARY", "PORTAL") and not img.is_drr
    assert (img.conversion_type, img.reported_values_origin, img.primary_dosimeter_unit) == ("DI", "ACTUAL", "MINUTE")
    assert (g.gantry_angle_deg, g.rt_image_sid_mm, g.radiation_machine_sad_mm) == (270.0, 1500.0, 1000.0)
    assert g.image_plane_pixel_spacing_mm == expected.image_plane_pixel_spacing_mm
    assert g.rt_image_position_mm == expected.rt_image_position_mm and g.rt_image_position_given
    assert g.x_ray_image_receptor_translation_mm == (0.0, 0.0, -500.0)
    assert g.isocenter_position_mm == g.private_isocenter_position_mm == ISOCENTER
    assert g.patient_position == g.private_patient_position == "HFS"
    assert img.referenced_rt_plan.sop_instance_uid == patient.plan.SOPInstanceUID and img.referenced_beam_number == 4
    assert [c.points.tolist() for c in img.curves] == [[[10.25, 20.5]], [[30.0, 5.75]]]
    assert all((c.curve_dimensions, c.number_of_points, c.type_of_data, c.data_value_representation) == (2, 1, "POLY", 3)
               and c.axis_units == ("PIXL", "PIXL") and c.axis_labels == ("Marker", "Marker") for c in img.curves)
    np.testing.assert_array_equal(img.pixels, patient.kv_images[4].pixel_array)
    drr = RTImage.from_dataset(_file(patient.drrs[3], tmp_path, "drr.dcm", implicit))
    assert drr.is_drr and drr.conversion_type == "WSD" and drr.frame_of_reference_uid == patient.ct[0].FrameOfReferenceUID
    pd = RTImage.from_dataset(_file(objects["RTIMAGE PORTAL DOSE"], tmp_path, "pd.dcm", implicit))
    assert (pd.rescale_type, pd.rescale_slope, pd.image_type[3]) == ("CU", 1e-5, "ACQUIRED_DOSE")
    cine = RTImage.from_dataset(_file(objects["RTIMAGE CINE"], tmp_path, "cine.dcm", implicit))
    assert (cine.number_of_frames, cine.frame_time_vector_ms, cine.cine_rate) == (3, (0.0, 100.0, 100.0), 10.0)
    np.testing.assert_array_equal(cine.pixels, cine_frames(3, 40, 48).astype(np.uint16) * 200)


def test_structure_sets(patient: Patient, objects, tmp_path: Path, implicit: bool) -> None:
    rs = RTStructureSet.from_dataset(_file(objects["RTSTRUCT MARKERS"], tmp_path, "rs.dcm", implicit))
    assert rs.issues == () and rs.frame_of_reference_uid == patient.ct[0].FrameOfReferenceUID
    assert [(r.sop_instance_uid, r.structure_set_relationship) for r in rs.referenced_structure_sets] == \
        [(patient.structure_set.SOPInstanceUID, "ADDITION")]
    markers = [s for s in rs.structures() if s.interpreted_type == "MARKER"]
    assert [s.marker_subtype for s in markers] == ["MARKER"] * 3
    np.testing.assert_array_equal([s.point_mm() for s in markers], MARKERS)
    assert rs.contour_image_uids() == tuple(d.SOPInstanceUID for d in patient.ct)
    ptv = rs.structure("PTV")
    assert all(c.contour_images and c.contour_images[0].sop_instance_uid in rs.contour_image_uids() for c in ptv.contours)
    iso = RTStructureSet.from_dataset(_file(objects["RTSTRUCT ISO"], tmp_path, "iso.dcm", implicit))
    assert {s.observation.roi_observation_label: (s.interpreted_type, tuple(s.point_mm())) for s in iso.structures()} == {
        "InitLaserIso": ("INITLASERISO", (0.0, 0.0, 0.0)), "AcqIsoCenter": ("ACQ_ISOCENTER", (1.0, 2.0, 3.0)),
        "InitMatchIso": ("INITMATCHISO", (1.5, 2.5, 3.5))}
    assert iso.structures()[0].observation.roi_physical_properties == (("PAT_SUPP_ANGLE", 0.0),)
    assert iso.contour_image_uids() == tuple(d.SOPInstanceUID for d in patient.cbct)


def test_rt_plan(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    plan = RTPlan.from_dataset(_file(patient.plan, tmp_path, "plan.dcm", implicit))
    assert plan.issues == () and plan.rt_plan_geometry == "PATIENT"
    assert [b.beam_number for b in plan.treatment_beams()] == [1, 2]
    assert [(b.beam_number, b.imaging().kind) for b in plan.setup_beams()] == \
        [(3, ImagingKindValues.KV_IMAGE), (4, ImagingKindValues.KV_IMAGE), (5, ImagingKindValues.CBCT)]
    assert all(b.isocenter_position_mm == ISOCENTER and b.number_of_control_points == 2 for b in plan.beams)
    assert [b.gantry_angle_deg for b in plan.beams] == [0.0, 90.0, 0.0, 270.0, 0.0]
    assert [r.sop_instance_uid for b in plan.setup_beams() for r in b.referenced_reference_images] == \
        [patient.drrs[3].SOPInstanceUID, patient.drrs[4].SOPInstanceUID]
    assert plan.patient_position(plan.beams[0]) == "HFS"
    assert [r.sop_instance_uid for r in plan.referenced_structure_sets] == [patient.structure_set.SOPInstanceUID]
