"""ProjectionGeometry: RT Image attributes ↔ pixels ↔ patient, with known answers (PS3.3 C.8.8.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openigrt.geometry.projection import ProjectionGeometry, kv_geometry, mv_geometry

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
ISO = (3.5, 12.0, -1.3)


def test_isocenter_lands_where_the_rt_image_attributes_say() -> None:
    # receptor shifted 20 mm along +Xr and -7 mm along Yr; RT Image Position given explicitly
    g = ProjectionGeometry(gantry_angle_deg=33.0, rows=300, columns=400, pixel_spacing_mm=(0.5, 0.4),
                           sid_mm=1600.0, isocenter_mm=ISO, receptor_translation_mm=(20.0, -7.0, -600.0),
                           rt_image_position_mm=(-70.0, 55.0))
    # the receptor axis point is at (x_r, y_r) = (-20, +7): col = (-20 - -70) / 0.4, row = (55 - 7) / 0.5
    np.testing.assert_allclose(g.project([ISO]), [[125.0, 96.0]], atol=1e-9)


def test_default_image_is_centred_on_the_receptor_axis() -> None:
    g = kv_geometry(0.0, isocenter_mm=ISO)
    np.testing.assert_allclose(g.project([ISO]), [[511.5, 383.5]], atol=1e-9)
    assert g.rt_image_position_mm == pytest.approx((-511.5 * 0.388, 383.5 * 0.388))


def test_centred_default_matches_a_real_eclipse_drr() -> None:
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(next((REAL / "eclipse81_prostate_phantom").glob("RI.*.dcm")), stop_before_pixels=True)
    g = ProjectionGeometry.from_rt_image_attributes(ds, isocenter_mm=(0, 0, 0), patient_position="HFS")
    centred = g.replace(rt_image_position_mm=None)
    assert centred.rt_image_position_mm == pytest.approx(tuple(float(v) for v in ds.RTImagePosition), abs=1e-6)


@pytest.mark.parametrize(("position", "gantry", "offset", "direction"), [
    # a point 10 mm towards the patient's left, seen in beam's eye view (columns +Xr, rows -Yr)
    ("HFS", 0.0, (10, 0, 0), (+1, 0)),   # AP: patient's left on the image right
    ("HFP", 0.0, (10, 0, 0), (-1, 0)),   # prone: left on the image left
    ("FFS", 0.0, (10, 0, 0), (-1, 0)),
    ("HFS", 0.0, (0, 0, 10), (0, -1)),   # head towards the gantry = image top
    ("FFS", 0.0, (0, 0, 10), (0, +1)),   # feet first: head at the image bottom
    ("HFS", 90.0, (0, -10, 0), (-1, 0)),  # source on the patient's left: anterior on the image left
    ("HFS", 270.0, (0, -10, 0), (+1, 0)),
    ("HFS", 180.0, (10, 0, 0), (-1, 0)),  # PA
])
def test_projection_directions(position: str, gantry: float, offset: tuple, direction: tuple) -> None:
    g = kv_geometry(gantry, isocenter_mm=ISO, patient_position=position)
    p = np.asarray(ISO) + np.asarray(offset, float)
    delta = g.project([p])[0] - g.project([ISO])[0]
    # at the isocenter plane a 10 mm offset is magnified by SID/SAD = 1.5 → 15 mm / 0.388 mm
    expected = np.asarray(direction) * 10 * 1.5 / 0.388
    np.testing.assert_allclose(delta, expected, atol=1e-6)


def test_couch_angle_rotates_the_patient_under_the_beam() -> None:
    # couch 90 (counter-clockwise seen from above): the HFS patient's head points to -Xf,
    # so at gantry 0 a point towards the head moves to the image left
    g = kv_geometry(0.0, isocenter_mm=ISO, patient_support_angle_deg=90.0)
    delta = g.project([np.asarray(ISO) + (0, 0, 10)])[0] - g.project([ISO])[0]
    np.testing.assert_allclose(delta, [-10 * 1.5 / 0.388, 0.0], atol=1e-6)


def test_receptor_angle_rotates_the_image() -> None:
    g0 = kv_geometry(0.0, isocenter_mm=ISO)
    g90 = kv_geometry(0.0, isocenter_mm=ISO, receptor_angle_deg=90.0)
    p = np.asarray(ISO) + (10.0, 0.0, 0.0)  # +Xg at gantry 0 for HFS
    d0 = g0.project([p])[0] - g0.project([ISO])[0]
    d90 = g90.project([p])[0] - g90.project([ISO])[0]
    assert d0[0] > 0 and abs(d0[1]) < 1e-9
    # receptor turned 90° counter-clockwise seen from the source: +Xg now lies along -Yr → image down
    assert abs(d90[0]) < 1e-9 and d90[1] == pytest.approx(d0[0])


def test_pixel_to_patient_and_back() -> None:
    rng = np.random.default_rng(5)
    g = mv_geometry(217.0, isocenter_mm=ISO, patient_position="FFP", patient_support_angle_deg=12.0,
                    receptor_translation_mm=(3.0, -4.0, -500.0), receptor_angle_deg=2.0)
    colrow = rng.uniform(0, 1000, (40, 2))
    np.testing.assert_allclose(g.project(g.pixel_to_patient_mm(colrow)), colrow, atol=1e-8)
    # every ray goes from the source through its pixel and through the projected 3D points
    src, dirs = g.rays(colrow)
    pts = src + dirs * rng.uniform(200, 1400, (40, 1))
    np.testing.assert_allclose(g.project(pts), colrow, atol=1e-7)
    assert np.linalg.norm(src - np.asarray(ISO)) == pytest.approx(1000.0)


def test_source_is_at_sad_along_the_beam_axis() -> None:
    g = kv_geometry(90.0, isocenter_mm=ISO)
    np.testing.assert_allclose(g.source_position_mm(), np.asarray(ISO) + (1000.0, 0, 0), atol=1e-9)
    np.testing.assert_allclose(g.beam_axis_patient(), [-1.0, 0, 0], atol=1e-12)


def test_attribute_round_trip_and_tolerant_reading() -> None:
    g = kv_geometry(270.0, isocenter_mm=ISO, patient_position="HFP", receptor_translation_mm=(1.5, -2.0, -500.0),
                    rt_image_position_mm=(-190.0, 150.0))
    attrs = g.as_rt_image_attributes()
    assert attrs["XRayImageReceptorTranslation"] == [1.5, -2.0, -500.0]
    assert attrs["ImagePlanePixelSpacing"] == [0.388, 0.388]
    assert ProjectionGeometry.from_rt_image_attributes(attrs) == g
    # a vendor writing 0\0\0 at SID 1500: x, y kept, z taken as SAD - SID
    attrs["XRayImageReceptorTranslation"] = [1.5, -2.0, 0.0]
    assert ProjectionGeometry.from_rt_image_attributes(attrs).receptor_translation_mm == (1.5, -2.0, -500.0)
    del attrs["RTImageSID"]
    with pytest.raises(ValueError, match="RTImageSID"):
        ProjectionGeometry.from_rt_image_attributes(attrs)


def test_inconsistent_receptor_translation_is_refused_when_writing() -> None:
    with pytest.raises(ValueError, match="SAD - SID"):
        kv_geometry(0.0, receptor_translation_mm=(0.0, 0.0, 0.0))


def test_replace_keeps_the_receptor_consistent() -> None:
    g = kv_geometry(0.0, receptor_translation_mm=(2.0, 1.0, -500.0)).replace(sid_mm=1800.0)
    assert g.receptor_translation_mm == (2.0, 1.0, -800.0)


def test_real_elekta_image_without_position_or_isocenter() -> None:
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(REAL / "pynetdicom_elekta_rtimage" / "RTImageStorage.dcm", stop_before_pixels=True)
    with pytest.raises(ValueError, match="IsocenterPosition"):
        ProjectionGeometry.from_rt_image_attributes(ds)
    g = ProjectionGeometry.from_rt_image_attributes(ds, isocenter_mm=(0, 0, 0), patient_position="HFS")
    np.testing.assert_allclose(g.project([(0, 0, 0)]), [[511.5, 511.5]])  # centred (PLAN-5)
    assert g.magnification == pytest.approx(1.6)
