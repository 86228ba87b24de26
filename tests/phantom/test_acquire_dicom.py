"""``openigrt acquire``: valid DICOM, truth.json consistent with the images, documented shift semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.geometry.couch import setup_error_from_table_top
from openigrt.geometry.projection import ProjectionGeometry
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_file, read_paths
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.sim.phantom import PhantomParams, make_phantom
from openigrt.workflow.phantom import write_phantom_patient
from tests.dicom3tools import assert_valid, dciodvfy_path

needs_dciodvfy = pytest.mark.skipif(dciodvfy_path() is None, reason="dicom3tools (dciodvfy) not installed")


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory):
    return write_phantom_patient(tmp_path_factory.mktemp("ph"), settings=load_settings(None, {}), seed=0, small=True)


def _acquire(patient, kind: str, beams: list[int], out: Path, shift: str, seed: int = 2,
             capsys: pytest.CaptureFixture[str] | None = None) -> dict:
    args = ["acquire", kind, "--plan", str(patient.plan_path), "--ct", str(patient.ct_dir), "--shift", shift,
            "--seed", str(seed), "--out", str(out), "--json"]
    for b in beams:
        args += ["--beam", str(b)]
    assert main(args) == 0
    if capsys is not None:
        capsys.readouterr()
    return json.loads((out / "truth.json").read_text())


def _laser(patient) -> np.ndarray:
    """INITLASERISO of a session: lasers on the reference mark m, couch moved by the plan's offset, session
    origin at the mark: the machine isocenter is at p - m (derived from the geometry, not read back)."""
    return np.asarray(patient.phantom.isocenter_mm) - np.asarray(patient.phantom.reference_mark_mm)


def test_kv_pair_truth_and_images(patient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _acquire(patient, "kv", [11, 12], tmp_path / "kv", "2.5,-4,1,1.5,0,0", capsys=capsys)
    iso = patient.phantom.isocenter_mm
    laser = _laser(patient)
    assert np.linalg.norm(laser - np.asarray(iso)) > 10.0  # a real couch offset
    np.testing.assert_allclose(truth["initlaseriso_mm"], laser, atol=1e-6)
    t = setup_error_from_table_top(lat_mm=2.5, lng_mm=-4.0, vrt_mm=1.0, rtn_deg=1.5, planned_isocenter_mm=iso,
                                   patient_position="HFS", initlaseriso_mm=laser)
    np.testing.assert_allclose(truth["transform"]["matrix"], t.matrix, atol=1e-12)
    assert truth["expected_couch_correction"] == pytest.approx(
        {"vrt_mm": -1.0, "lng_mm": 4.0, "lat_mm": -2.5, "rtn_deg": -1.5, "pitch_deg": 0.0, "roll_deg": 0.0})
    uids = set()
    for image, number in zip(truth["images"], (11, 12), strict=True):
        ds = read_file(tmp_path / "kv" / image["file"]).dataset
        assert ds.ReferencedBeamNumber == number and ds.ImageType[:3] == ["ORIGINAL", "PRIMARY", "PORTAL"]
        assert ds.PrimaryDosimeterUnit == "MINUTE" and str(ds.FrameOfReferenceUID) == truth["frame_of_reference_uid"]
        g = ProjectionGeometry.from_rt_image_attributes(ds)
        np.testing.assert_allclose(g.isocenter_mm, laser, atol=1e-6)  # Isocenter Position = INITLASERISO
        np.testing.assert_allclose(g.project(t.apply([iso])), [image["planned_isocenter_pixel"]], atol=1e-3)
        uids.add(str(ds.SOPInstanceUID))
    assert len(uids) == 2


def test_stored_image_is_the_simulated_projection(patient, tmp_path: Path) -> None:
    # the DICOM holds exactly what sim.acquire computes for that geometry, setup error and seed (the
    # marker/anatomy positions of which tests/sim/test_acquire.py checks against project(T(p)))
    from openigrt.geometry.rigid import RigidTransform
    from openigrt.sim.acquire import KV_IMAGING, acquire_projection
    from openigrt.sim.drr import DrrRenderer
    from dataclasses import replace

    from openigrt.workflow.acquire import KV_EXPOSURE, LATERAL_KV_FACTOR, PIXEL_SCALE

    truth = _acquire(patient, "kv", [12], tmp_path / "kv", "6,-1,2,0,1,0", seed=9)
    ds = read_file(tmp_path / "kv" / truth["images"][0]["file"]).dataset
    g = ProjectionGeometry.from_rt_image_attributes(ds)
    t = RigidTransform(np.asarray(truth["transform"]["matrix"]))
    # beam 12 is the lateral view: ten times the AP technique, in the simulation and in the Exposure Sequence
    lateral = replace(KV_IMAGING, photons_per_pixel=KV_IMAGING.photons_per_pixel * LATERAL_KV_FACTOR)
    assert float(ds.ExposureSequence[0].ExposureTime) == KV_EXPOSURE[2] * LATERAL_KV_FACTOR
    expected = acquire_projection(DrrRenderer(patient.phantom.volume), g, setup_error=t, params=lateral, seed=9)
    stored = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(stored, np.clip(expected.image, 0, None), atol=0.5 / PIXEL_SCALE + 1e-6)


def test_cbct_volume_isocenters_and_validity(patient, tmp_path: Path) -> None:
    truth = _acquire(patient, "cbct", [13], tmp_path / "cb", "0,0,0")
    files, _ = read_paths([tmp_path / "cb" / "CBCT"])
    cb = read_ct_series(files)
    np.testing.assert_allclose(cb.volume.center_mm(), _laser(patient), atol=1e-6)
    assert str(cb.frame_of_reference_uid) == truth["frame_of_reference_uid"]
    assert cb.volume.shape[0] * cb.volume.spacing_mm[2] == pytest.approx(170.0)
    rs = RTStructureSet.from_dataset(read_file(tmp_path / "cb" / "RS_ISOCENTERS.dcm"))
    types = {o.referenced_roi_number: str(getattr(o.rt_roi_interpreted_type, "value", o.rt_roi_interpreted_type))
             for o in rs.observations}
    points = {types[c.referenced_roi_number]: c.contours[0].points_mm[0] for c in rs.roi_contours}
    np.testing.assert_allclose(points["INITLASERISO"], truth["initlaseriso_mm"])
    np.testing.assert_allclose(points["ACQ_ISOCENTER"], truth["initlaseriso_mm"])


def test_cbct_shows_the_shift(patient, tmp_path: Path) -> None:
    truth = _acquire(patient, "cbct", [13], tmp_path / "cb", "0,0,9")  # table 9 mm up = patient 9 mm anterior (HFS)
    assert truth["expected_couch_correction"]["vrt_mm"] == -9.0
    cb = read_ct_series(read_paths([tmp_path / "cb" / "CBCT"])[0]).volume
    bare = make_phantom(PhantomParams.small(fiducial_offsets=()))
    # the body's anterior skin (y = -100 mm in the CT) is now at y = -109 mm in the verification frame
    x0, _, z0 = _laser(patient)  # the planned isocenter's column in the verification frame (x, z offset only)
    ys = np.arange(-130.0, -80.0, 0.25)
    i, _, k = np.rint(cb.patient_to_index([[x0, 0.0, z0]])[0]).astype(int)
    profile = np.interp(ys, cb.origin_mm[1] + np.arange(cb.shape[1]) * cb.spacing_mm[1], cb.array[k, :, i])
    edge = ys[np.argmax(profile > -500)]
    assert edge == pytest.approx(-100.0 - 9.0, abs=2.0)
    assert bare.body_semi_axes_mm[1] == 100.0


def test_no_couch_offset_puts_the_lasers_on_the_planned_isocenter(patient, tmp_path: Path) -> None:
    args = ["acquire", "cbct", "--plan", str(patient.plan_path), "--ct", str(patient.ct_dir), "--beam", "13",
            "--shift", "1,2,3", "--out", str(tmp_path / "cb"), "--no-couch-offset"]
    assert main(args) == 0
    truth = json.loads((tmp_path / "cb" / "truth.json").read_text())
    assert truth["initlaseriso_mm"] == truth["planned_isocenter_mm"]
    assert truth["expected_couch_correction"]["vrt_mm"] == -3.0


@needs_dciodvfy
def test_dciodvfy_baseline_for_every_acquired_object(patient, tmp_path: Path) -> None:
    _acquire(patient, "kv", [11], tmp_path / "kv", "1,1,1")
    _acquire(patient, "mv", [1], tmp_path / "mv", "1,1,1")
    _acquire(patient, "cbct", [13], tmp_path / "cb", "1,1,1")
    assert_valid(tmp_path / "kv" / "RI_KV11.dcm", expected_iod="RTImage")
    assert_valid(tmp_path / "mv" / "RI_MV1.dcm", expected_iod="RTImage")
    assert_valid(tmp_path / "cb" / "CBCT" / "CT_0001.dcm", expected_iod="CTImage")
    assert_valid(tmp_path / "cb" / "RS_ISOCENTERS.dcm", expected_iod="RTStructureSet")


def test_user_errors_are_one_line(patient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["acquire", "kv", "--plan", str(patient.plan_path), "--ct", str(patient.ct_dir), "--out", str(tmp_path)]
    assert main([*base, "--beam", "11", "--shift", "1,2"]) == 2
    assert "LAT,LNG,VRT" in capsys.readouterr().err
    assert main([*base, "--beam", "99"]) == 1
    err = capsys.readouterr().err
    assert "no beam 99" in err and "Traceback" not in err
    assert main([*base, "--beam", "11", "--shift", "1,0,0", "--random-shift", "2"]) == 2


def test_help_explains_the_shift_convention(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acquire", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "NOT the couch correction" in text and "expected_couch_correction" in text
