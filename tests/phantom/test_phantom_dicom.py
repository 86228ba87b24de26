"""The phantom patient as DICOM (SIM-1): valid for every match type, dciodvfy-clean, consistent with its truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.geometry.projection import ProjectionGeometry, kv_geometry
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_file, read_paths
from openigrt.iod.private import read_private_value
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.sim.drr import DrrRenderer
from openigrt.workflow.acquire import PIXEL_SCALE
from openigrt.workflow.phantom import KV_PAIR, write_phantom_patient
from tests.dicom3tools import assert_valid, dciodvfy_path


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("phantom")
    return write_phantom_patient(out, settings=load_settings(None, {}), seed=3, small=True)


@pytest.mark.parametrize("match", ["2d", "2d2d", "marker", "3d3d"])
def test_validate_says_possible_with_no_warning(patient, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(patient.dicom_dir), "--match", match, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["possible"] is True
    problems = [f for f in result["findings"] if f["status"] != "Success"]
    assert problems == []
    ids = {f["id"] for f in result["findings"]}
    assert {"PLAN-1", "PLAN-2", "PLAN-4", "PLAN-6", "PLAN-8", "PLAN-13"} <= ids
    if match in ("2d", "2d2d"):
        assert {"PLAN-3", "PLAN-5", "PLAN-7"} <= ids
    if match == "marker":
        assert "PLAN-11" in ids


@pytest.mark.skipif(dciodvfy_path() is None, reason="dicom3tools (dciodvfy) not installed")
@pytest.mark.parametrize(("name", "iod"), [("CT/CT_0001.dcm", "CTImage"), ("CT/CT_0040.dcm", "CTImage"),
                                           ("RS_PHANTOM.dcm", "RTStructureSet"), ("RP_PHANTOM.dcm", "RTPlan"),
                                           ("RI_DRR_11.dcm", "RTImage"), ("RI_DRR_12.dcm", "RTImage")])
def test_dciodvfy_baseline(patient, name: str, iod: str) -> None:
    assert_valid(patient.dicom_dir / name, expected_iod=iod)


def test_structure_set_has_body_ptv_and_markers_on_every_slice(patient) -> None:
    rs_file = read_file(patient.dicom_dir / "RS_PHANTOM.dcm")
    rs = RTStructureSet.from_dataset(rs_file)
    ds = rs_file.dataset
    ct_uids = {str(d.SOPInstanceUID) for d in patient.ct}
    listed = {str(i.ReferencedSOPInstanceUID) for i in
              ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
              .RTReferencedSeriesSequence[0].ContourImageSequence}
    assert listed == ct_uids  # Contour Image Sequence lists every slice
    names = {r.roi_name for r in rs.rois}
    assert {"BODY", "PTV", "Marker1", "Marker2", "Marker3"} <= names
    types = {o.referenced_roi_number: str(getattr(o.rt_roi_interpreted_type, "value", o.rt_roi_interpreted_type))
             for o in rs.observations}
    by_name = {r.roi_name: r.roi_number for r in rs.rois}
    assert types[by_name["BODY"]] == "EXTERNAL" and types[by_name["PTV"]] == "PTV"
    markers = {f["name"]: f["center_mm"] for f in patient.truth["fiducials"]}
    for item in ds.RTROIObservationsSequence:
        name = next(r.roi_name for r in rs.rois if r.roi_number == item.ReferencedROINumber)
        if name in markers:
            assert item.RTROIInterpretedType == "MARKER"
            assert read_private_value(item, _marker_subtype()) == "MARKER"  # PLAN-11 private 3271
    for rc in ds.ROIContourSequence:
        name = next(r.roi_name for r in rs.rois if r.roi_number == rc.ReferencedROINumber)
        if name in markers:
            (contour,) = rc.ContourSequence
            assert contour.ContourGeometricType == "POINT"
            np.testing.assert_allclose([float(v) for v in contour.ContourData], markers[name], atol=1e-4)


def _marker_subtype():
    from openigrt.iod import private

    return private.MARKER_SUBTYPE


def test_drrs_are_what_the_geometry_in_their_attributes_renders(patient) -> None:
    files, _ = read_paths([patient.ct_dir])
    ct = read_ct_series(files)
    np.testing.assert_allclose(ct.volume.array, patient.phantom.volume.array)  # CT round trip, HU exact
    renderer = DrrRenderer(ct.volume)
    for number, _, angle in KV_PAIR:
        ds = read_file(patient.dicom_dir / f"RI_DRR_{number}.dcm").dataset
        g = ProjectionGeometry.from_rt_image_attributes(ds)
        used = kv_geometry(angle, isocenter_mm=patient.phantom.isocenter_mm, patient_position="HFS")
        for key, value in used.as_rt_image_attributes().items():  # DS strings round to ~1e-14
            assert g.as_rt_image_attributes()[key] == (value if isinstance(value, str) else pytest.approx(value)), key
        assert ds.ReferencedBeamNumber == number
        assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == patient.plan.SOPInstanceUID
        stored = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(stored, renderer.render(g), atol=0.5 / PIXEL_SCALE + 1e-6)


def test_truth_file_matches_the_dicom(patient) -> None:
    truth = json.loads((patient.out_dir / "phantom.json").read_text())
    assert truth["uids"]["plan_uid"] == str(patient.plan.SOPInstanceUID)
    assert truth["uids"]["frame_of_reference_uid"] == str(patient.ct[0].FrameOfReferenceUID)
    assert truth["isocenter_mm"] == list(patient.phantom.isocenter_mm)
    plan = read_file(patient.dicom_dir / "RP_PHANTOM.dcm").dataset
    isos = {tuple(float(v) for v in b.ControlPointSequence[0].IsocenterPosition) for b in plan.BeamSequence}
    assert isos == {tuple(truth["isocenter_mm"])}
    for rel in truth["files"]:
        assert (patient.out_dir / rel).is_file()


def test_same_seed_same_pixels(tmp_path: Path, patient) -> None:
    again = write_phantom_patient(tmp_path / "again", settings=load_settings(None, {}), seed=3, small=True)
    for a, b in zip(again.ct, patient.ct, strict=True):
        assert a.PixelData == b.PixelData
    assert again.drrs[11].PixelData == patient.drrs[11].PixelData
    assert again.plan.SOPInstanceUID != patient.plan.SOPInstanceUID  # new UIDs every time


def test_cli_phantom_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phantom", "--out", str(tmp_path / "p"), "--small", "--seed", "1", "--json"]) == 0
    truth = json.loads(capsys.readouterr().out)
    assert truth["seed"] == 1 and len(truth["fiducials"]) == 3
    assert (tmp_path / "p" / "phantom.json").is_file() and (tmp_path / "p" / "dicom" / "RP_PHANTOM.dcm").is_file()
