"""RT Structure Set builders (SPEC IOD-2, IOD-3, SIM-1) and contour resampling onto CT planes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from openigrt.errors import BuildError
from openigrt.iod.build import (
    IsocenterPoints,
    MarkerPoint,
    Roi,
    build_isocenter_structure_set,
    build_marker_structure_set,
    build_structure_set,
)
from openigrt.iod.build.contours import SlicePlanes, resample_onto_planes
from openigrt.iod.private import (
    MARKER_SUBTYPE,
    REFERENCED_STRUCTURE_SET_SEQUENCE,
    STRUCTURE_SET_RELATIONSHIP,
    read_private_value,
)
from tests.build.conftest import write_and_read
from tests.build.factory import ISOCENTER, MARKERS, SLICE_Z, WHEN, Patient, circle

RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


def _points(contour: Dataset) -> np.ndarray:
    return np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)


def _by_name(ds: Dataset) -> dict[str, tuple[Dataset, Dataset, Dataset]]:
    rois = {r.ROINumber: r for r in ds.StructureSetROISequence}
    obs = {o.ReferencedROINumber: o for o in ds.RTROIObservationsSequence}
    return {rois[c.ReferencedROINumber].ROIName: (rois[c.ReferencedROINumber], c, obs[c.ReferencedROINumber])
            for c in ds.ROIContourSequence}


def _contour_images(ds: Dataset) -> list[str]:
    (frame,) = ds.ReferencedFrameOfReferenceSequence
    return [i.ReferencedSOPInstanceUID for st in frame.RTReferencedStudySequence
            for se in st.RTReferencedSeriesSequence for i in se.ContourImageSequence]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_general_structure_set_round_trip(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    ds = write_and_read(patient.structure_set, tmp_path, implicit_vr=implicit)
    uid_at_z = {float(c.ImagePositionPatient[2]): c.SOPInstanceUID for c in patient.ct}
    assert ds.FrameOfReferenceUID == patient.ct[0].FrameOfReferenceUID
    assert ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == ds.FrameOfReferenceUID
    assert _contour_images(ds) == [c.SOPInstanceUID for c in patient.ct]
    assert (ds.StructureSetLabel, ds.Modality, ds.SeriesNumber) == ("PHANTOM", "RTSTRUCT", 0)
    rois = _by_name(ds)
    assert list(rois) == ["BODY", "PTV", "Marker1", "Marker2", "Marker3"]
    assert [r[0].ROINumber for r in rois.values()] == [1, 2, 3, 4, 5]
    assert {r[0].ReferencedFrameOfReferenceUID for r in rois.values()} == {ds.FrameOfReferenceUID}
    for name, z_list in (("BODY", SLICE_Z), ("PTV", SLICE_Z[1:5])):
        _, contour, obs = rois[name]
        assert len(contour.ContourSequence) == len(z_list)
        for c, z in zip(contour.ContourSequence, z_list, strict=True):
            pts = _points(c)
            assert c.ContourGeometricType == "CLOSED_PLANAR" and c.NumberOfContourPoints == len(pts) == 24
            assert np.all(pts[:, 2] == z)
            assert c.ContourImageSequence[0].ReferencedSOPInstanceUID == uid_at_z[z]
        assert read_private_value(obs, MARKER_SUBTYPE) is None
    assert rois["PTV"][2].RTROIInterpretedType == "PTV" and rois["BODY"][2].RTROIInterpretedType == "EXTERNAL"
    for i, m in enumerate(MARKERS):
        _, contour, obs = rois[f"Marker{i + 1}"]
        (c,) = contour.ContourSequence
        assert (c.ContourGeometricType, c.NumberOfContourPoints) == ("POINT", 1)
        np.testing.assert_array_equal(_points(c), [m])
        nearest = min(uid_at_z, key=lambda z: abs(z - m[2]))
        assert c.ContourImageSequence[0].ReferencedSOPInstanceUID == uid_at_z[nearest]
        assert obs.RTROIInterpretedType == "MARKER"
        assert read_private_value(obs, MARKER_SUBTYPE) == "MARKER"


def test_isocenter_structure_set(patient: Patient, tmp_path: Path) -> None:
    points = IsocenterPoints(init_laser_iso_mm=(0.0, 0.0, 0.0), acq_isocenter_mm=(1.0, 2.0, 3.0),
                             init_match_iso_mm=(1.5, 2.5, 3.5), patient_support_angle_deg=2.5)
    ds = write_and_read(build_isocenter_structure_set(cbct_images=patient.cbct, points=points, settings=patient.settings,
                                                      content_datetime=WHEN), tmp_path, implicit_vr=True)
    assert ds.FrameOfReferenceUID == patient.session_for and _contour_images(ds) == [c.SOPInstanceUID for c in patient.cbct]
    rois = _by_name(ds)
    expected = {"InitLaserIso": ("INITLASERISO", (0.0, 0.0, 0.0)), "AcqIsoCenter": ("ACQ_ISOCENTER", (1.0, 2.0, 3.0)),
                "InitMatchIso": ("INITMATCHISO", (1.5, 2.5, 3.5))}
    assert set(rois) == set(expected)
    for name, (kind, pos) in expected.items():
        _, contour, obs = rois[name]
        assert (obs.RTROIInterpretedType, obs.ROIObservationLabel) == (kind, name)
        np.testing.assert_array_equal(_points(contour.ContourSequence[0]), [pos])
        (prop,) = obs.ROIPhysicalPropertiesSequence
        assert (prop.ROIPhysicalProperty, float(prop.ROIPhysicalPropertyValue)) == ("PAT_SUPP_ANGLE", 2.5)
        assert read_private_value(obs, MARKER_SUBTYPE) is None
    no_match = build_isocenter_structure_set(cbct_images=patient.cbct, settings=patient.settings,
                                             points=IsocenterPoints((0.0, 0.0, 0.0), (1.0, 2.0, 3.0)))
    assert [o.ROIObservationLabel for o in no_match.RTROIObservationsSequence] == ["InitLaserIso", "AcqIsoCenter"]
    assert "ROIPhysicalPropertiesSequence" not in no_match.RTROIObservationsSequence[0]


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_marker_structure_set(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    exported = Roi("PTV", "PTV", tuple(circle(ISOCENTER[:2], 8.0, z) for z in (-3.75, -1.25, 1.25, 3.75)))
    built = build_marker_structure_set(planning_ct=patient.ct, original_structure_set=patient.structure_set,
                                       markers=[MarkerPoint(f"M{i}", m) for i, m in enumerate(MARKERS)],
                                       exported_rois=[exported], settings=patient.settings)
    ds = write_and_read(built, tmp_path, implicit_vr=implicit)
    assert ds.SOPInstanceUID != patient.structure_set.SOPInstanceUID
    assert ds.FrameOfReferenceUID == patient.ct[0].FrameOfReferenceUID
    (ref,) = read_private_value(ds, REFERENCED_STRUCTURE_SET_SEQUENCE)
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (RT_STRUCT, patient.structure_set.SOPInstanceUID)
    assert read_private_value(ref, STRUCTURE_SET_RELATIONSHIP) == "ADDITION"
    rois = _by_name(ds)
    for i, m in enumerate(MARKERS):
        _, contour, obs = rois[f"M{i}"]
        assert obs.RTROIInterpretedType == "MARKER" and read_private_value(obs, MARKER_SUBTYPE) == "MARKER"
        np.testing.assert_array_equal(_points(contour.ContourSequence[0]), [m])
    # the exported PTV was drawn between the CT planes: resampled onto the planes inside its extent
    uid_at_z = {float(c.ImagePositionPatient[2]): c.SOPInstanceUID for c in patient.ct}
    contours = rois["PTV"][1].ContourSequence
    zs = [float(_points(c)[0, 2]) for c in contours]
    assert zs == [-2.5, 0.0, 2.5]
    for c, z in zip(contours, zs, strict=True):
        pts = _points(c)
        assert np.all(pts[:, 2] == z) and c.ContourImageSequence[0].ReferencedSOPInstanceUID == uid_at_z[z]
        radius = np.linalg.norm(pts[:, :2] - ISOCENTER[:2], axis=1)
        assert abs(radius.mean() - 8.0) < 0.3 and radius.std() < 0.3


def _planes(z: list[float]) -> SlicePlanes:
    return SlicePlanes(np.asarray(z, float), tuple(f"1.2.{i}" for i in range(len(z))), ("1.2.840.10008.5.1.4.1.1.2",) * len(z))


def test_resampling_of_a_cone_and_an_annulus() -> None:
    """Shape-based interpolation is exact for linearly varying radii (within the raster step)."""
    source_z = [-6.0, -3.0, 0.0, 3.0, 6.0]
    cone = [circle((5.0, -2.0), 10.0 + z, z, n=90) for z in source_z]
    out = resample_onto_planes(cone, _planes([-7.0, -4.5, -1.5, 0.0, 1.5, 4.5, 7.5]))
    got = {k: poly for k, poly in out}
    assert sorted(got) == [1, 2, 3, 4, 5]  # -7.0 and 7.5 lie outside the ROI's z extent
    for k, z in zip([1, 2, 3, 4, 5], [-4.5, -1.5, 0.0, 1.5, 4.5], strict=True):
        r = np.linalg.norm(got[k][:, :2] - (5.0, -2.0), axis=1)
        assert abs(r.mean() - (10.0 + z)) < 0.3 and r.max() - r.min() < 0.6, (z, r.mean())
        assert np.all(got[k][:, 2] == z)
    np.testing.assert_array_equal(got[3], cone[2])  # a coinciding plane keeps the source contour
    annulus = [c for z in source_z for c in (circle((0.0, 0.0), 12.0, z, 90), circle((0.0, 0.0), 5.0, z, 90))]
    out = resample_onto_planes(annulus, _planes([1.5]))
    radii = sorted(np.linalg.norm(p[:, :2], axis=1).mean() for _, p in out)
    assert len(out) == 2 and abs(radii[0] - 5.0) < 0.3 and abs(radii[1] - 12.0) < 0.3


def test_invalid_inputs_name_the_attribute(patient: Patient) -> None:
    body = Roi("BODY", "EXTERNAL", (circle((0.0, 0.0), 20.0, 1.0),))
    with pytest.raises(BuildError, match=r"^ContourImageSequence .*z = 1 mm is not on a slice plane"):
        build_structure_set(images=patient.ct, rois=[body], settings=patient.settings, structure_set_label="X")
    tilted = circle((0.0, 0.0), 20.0, 0.0)
    tilted[0, 2] = 0.5
    with pytest.raises(BuildError, match=r"^ContourData .*not in one transverse plane"):
        build_structure_set(images=patient.ct, rois=[Roi("T", "ORGAN", (tilted,))], settings=patient.settings,
                            structure_set_label="X")
    with pytest.raises(BuildError, match=r"^ROIName .*unique"):
        build_structure_set(images=patient.ct, rois=[Roi.point("A", (0, 0, 0), "MARKER")] * 2,
                            settings=patient.settings, structure_set_label="X")
    with pytest.raises(BuildError, match=r"^NumberOfContourPoints .*POINT contour cannot have 2"):
        Roi("P", "MARKER", (np.zeros((2, 3)),), contour_geometric_type="POINT")
    with pytest.raises(BuildError, match=r"^ROIDisplayColor"):
        Roi.point("P", (0, 0, 0), "MARKER", roi_display_color=(300, 0, 0))
    with pytest.raises(BuildError, match=r"^RTROIInterpretedType .*'TUMOUR'"):
        Roi.point("P", (0, 0, 0), "TUMOUR")
    with pytest.raises(BuildError, match=r"^StructureSetLabel .*at most 16"):
        build_structure_set(images=patient.ct, rois=[body], settings=patient.settings, structure_set_label="L" * 17)
    mixed = [copy.deepcopy(patient.ct[0]), *patient.ct[1:]]
    mixed[0].FrameOfReferenceUID = "1.2.3"
    with pytest.raises(BuildError, match=r"^FrameOfReferenceUID .*2 Frames of Reference"):
        build_structure_set(images=mixed, rois=[body], settings=patient.settings, structure_set_label="X")
    oblique = [copy.deepcopy(d) for d in patient.ct]
    oblique[2].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    with pytest.raises(BuildError, match=r"^ImageOrientationPatient .*not axial"):
        build_structure_set(images=oblique, rois=[body], settings=patient.settings, structure_set_label="X")
    with pytest.raises(BuildError, match=r"^FrameOfReferenceUID .*original structure set does not use"):
        build_marker_structure_set(planning_ct=patient.cbct, original_structure_set=patient.structure_set,
                                   markers=[MarkerPoint("M", (0.0, 0.0, 0.0))], settings=patient.settings)
    with pytest.raises(BuildError, match=r"^StructureSetROISequence .*no marker"):
        build_marker_structure_set(planning_ct=patient.ct, original_structure_set=patient.structure_set, markers=[],
                                   settings=patient.settings)
    with pytest.raises(BuildError, match=r"^ReferencedSOPClassUID .*not an RT Structure Set"):
        build_marker_structure_set(planning_ct=patient.ct, original_structure_set=patient.plan,
                                   markers=[MarkerPoint("M", (0.0, 0.0, 0.0))], settings=patient.settings)


def test_export_rois_read_from_the_original_structure_set(patient: Patient, tmp_path: Path) -> None:
    """IOD-3 with the project's reader: the original PTV, read back, is exported with the markers."""
    from openigrt.iod.build import roi_from_structure, write_file
    from openigrt.iod.dataset_io import read_file
    from openigrt.iod.rt_structure_set import RTStructureSet

    original = RTStructureSet.from_dataset(read_file(write_file(patient.structure_set, tmp_path / "rs.dcm")))
    ptv = roi_from_structure(original.structure("PTV"))
    assert (ptv.roi_name, ptv.rt_roi_interpreted_type.value, len(ptv.contours)) == ("PTV", "PTV", 4)
    ds = build_marker_structure_set(planning_ct=patient.ct, original_structure_set=patient.structure_set,
                                    markers=[MarkerPoint("M1", MARKERS[0])], exported_rois=[ptv],
                                    settings=patient.settings)
    (_, contour, _) = _by_name(ds)["PTV"]
    assert [float(_points(c)[0, 2]) for c in contour.ContourSequence] == list(SLICE_Z[1:5])
    marker = original.structure("Marker1")
    with pytest.raises(BuildError, match=r"^ContourSequence .*'Marker1': needs contours"):
        roi_from_structure(type(marker)(marker.roi, None, None, None))  # an ROI without contours
