"""``openigrt match`` on the virtual imager's DICOM (``openigrt phantom`` + ``openigrt acquire``):
the couch correction reported equals truth.json's expected correction (MATCH-1/2/3/6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openigrt.cli import main

pytest.importorskip("openigrt.workflow.phantom")
pytest.importorskip("openigrt.workflow.acquire")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom_session")
    assert main(["phantom", "--out", str(root / "ph"), "--small"]) == 0
    dicom = root / "ph" / "dicom"
    assert main(["acquire", "kv", "--plan", str(dicom / "RP_PHANTOM.dcm"), "--ct", str(dicom / "CT"),
                 "--beam", "11", "--beam", "12", "--shift", "4,-6,3", "--seed", "2", "--out", str(root / "kv")]) == 0
    assert main(["acquire", "cbct", "--plan", str(dicom / "RP_PHANTOM.dcm"), "--ct", str(dicom / "CT"),
                 "--beam", "13", "--shift", "4,-6,3,1,-1,0.5", "--seed", "3", "--out", str(root / "cbct")]) == 0
    return root


def _run(args: list[str], capsys) -> dict:
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _expected(path: Path) -> dict:
    return json.loads(path.read_text())["expected_couch_correction"]


def test_3d3d_couch_equals_truth(session, capsys):
    d = session / "ph" / "dicom"
    out = _run(["match", "3d3d", "--reference", str(d / "CT"), "--verification", str(session / "cbct"),
                "--plan", str(d / "RP_PHANTOM.dcm"), "--out", str(session / "reg3d")], capsys)
    exp = _expected(session / "cbct" / "truth.json")
    for k in ("vrt_mm", "lng_mm", "lat_mm"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.5), k  # 3 x 3 x 5 mm test phantom
    for k in ("rtn_deg", "pitch_deg", "roll_deg"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.2), k
    assert out["initlaseriso_mm"] is not None and len(out["written"]) == 1


def test_2d2d_with_ct_couch_equals_truth(session, capsys):
    d = session / "ph" / "dicom"
    kv = session / "kv"
    out = _run(["match", "2d2d", "--reference", str(d / "RI_DRR_11.dcm"), str(d / "RI_DRR_12.dcm"),
                "--acquired", str(kv / "RI_KV11.dcm"), str(kv / "RI_KV12.dcm"), "--plan", str(d / "RP_PHANTOM.dcm"),
                "--ct", str(d / "CT"), "--out", str(session / "reg2d")], capsys)
    exp = _expected(kv / "truth.json")
    assert set(out["couch"]) == {"vrt_mm", "lng_mm", "lat_mm"}
    for k in out["couch"]:
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.4), k


def test_simple_2d_reports_only_visible_components(session, capsys):
    d = session / "ph" / "dicom"
    kv = session / "kv"
    out = _run(["match", "2d", "--reference", str(d / "RI_DRR_11.dcm"), "--acquired", str(kv / "RI_KV11.dcm"),
                "--plan", str(d / "RP_PHANTOM.dcm")], capsys)
    exp = _expected(kv / "truth.json")
    assert out["couch"]["vrt_mm"] == pytest.approx(0.0, abs=1e-6)  # along the AP beam: not visible
    for k in ("lng_mm", "lat_mm"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.6), k


def test_2d2d_dof6_needs_ct(session, capsys):
    d = session / "ph" / "dicom"
    kv = session / "kv"
    rc = main(["match", "2d2d", "--reference", str(d / "RI_DRR_11.dcm"), str(d / "RI_DRR_12.dcm"),
               "--acquired", str(kv / "RI_KV11.dcm"), str(kv / "RI_KV12.dcm"), "--dof", "6"])
    assert rc == 2


def test_3d3d_structure_roi(session, capsys):
    d = session / "ph" / "dicom"
    out = _run(["match", "3d3d", "--reference", str(d / "CT"), "--verification", str(session / "cbct"),
                "--plan", str(d / "RP_PHANTOM.dcm"), "--structure-set", str(d / "RS_PHANTOM.dcm"),
                "--roi-structure", "PTV", "--roi-margin", "30"], capsys)
    exp = _expected(session / "cbct" / "truth.json")
    assert out["roi"]["source"] == "structure PTV + 30 mm"
    whole = _run(["match", "3d3d", "--reference", str(d / "CT"), "--verification", str(session / "cbct"),
                  "--whole-volume"], capsys)
    assert whole["roi"]["source"] == "whole volume"
    assert out["details"]["region"]["crop_voxels"] < 0.5 * whole["details"]["region"]["crop_voxels"]
    for k in ("vrt_mm", "lng_mm", "lat_mm"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.5), k


def test_unknown_roi_structure_is_one_clear_error(session, capsys):
    d = session / "ph" / "dicom"
    rc = main(["match", "3d3d", "--reference", str(d / "CT"), "--verification", str(session / "cbct"),
               "--structure-set", str(d / "RS_PHANTOM.dcm"), "--roi-structure", "NOPE"])
    err = capsys.readouterr().err
    assert rc == 1 and "NOPE" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def fine_session(tmp_path_factory) -> Path:
    """The full-resolution phantom (0.94 x 0.94 x 2 mm): 1 mm gold seeds are resolved."""
    root = tmp_path_factory.mktemp("phantom_fine")
    assert main(["phantom", "--out", str(root / "ph")]) == 0
    return root


def _acquire_kv(root: Path, out: str, monkeypatch, *, photons_factor: float, lateral_factor: int) -> Path:
    """``openigrt acquire kv`` of beams 11 (0°) and 12 (90°) with a chosen exposure per view."""
    from dataclasses import replace

    import openigrt.workflow.acquire as wa

    monkeypatch.setattr(wa, "KV_IMAGING", replace(wa.KV_IMAGING, photons_per_pixel=photons_factor
                                                  * wa.KV_IMAGING.photons_per_pixel))
    monkeypatch.setattr(wa, "LATERAL_KV_FACTOR", lateral_factor, raising=False)
    d = root / "ph" / "dicom"
    assert main(["acquire", "kv", "--plan", str(d / "RP_PHANTOM.dcm"), "--ct", str(d / "CT"), "--beam", "11",
                 "--beam", "12", "--shift", "-5,7,-4", "--seed", "4", "--out", str(root / out)]) == 0
    return root / out


def test_detect_markers_writes_marker_structure_set(fine_session, capsys):
    import numpy as np
    import pydicom

    d = fine_session / "ph" / "dicom"
    out = _run(["detect-markers", "--ct", str(d / "CT"), "--structure-set", str(d / "RS_PHANTOM.dcm"),
                "--out", str(fine_session / "RS_MARKERS.dcm")], capsys)
    truth = np.array([f["center_mm"] for f in json.loads((fine_session / "ph" / "phantom.json").read_text())["fiducials"]])
    found = np.array([m["position_mm"] for m in out["markers"]])
    assert len(found) == len(truth)
    assert np.linalg.norm(found[:, None] - truth[None], axis=2).min(axis=0).max() < 0.5
    rs = pydicom.dcmread(out["written"][0])
    assert rs.Modality == "RTSTRUCT" and len(rs.StructureSetROISequence) == len(truth)


def test_marker_match_cli_refuses_invisible_markers(fine_session, capsys, monkeypatch):
    """The lateral pelvis imaged at the AP exposure: ~1 photon per pixel behind the pelvis, the
    seeds are not visible there. The match must say so, not guess."""
    d = fine_session / "ph" / "dicom"
    kv = _acquire_kv(fine_session, "kv_starved", monkeypatch, photons_factor=1.0, lateral_factor=1)
    rc = main(["match", "marker", "--ct", str(d / "CT"), "--structure-set", str(d / "RS_PHANTOM.dcm"),
               "--acquired", str(kv / "RI_KV11.dcm"), str(kv / "RI_KV12.dcm"), "--plan", str(d / "RP_PHANTOM.dcm")])
    err = capsys.readouterr().err
    assert rc == 1 and "not reliably visible in acquired image 2" in err and "Traceback" not in err


def test_marker_match_cli_couch_and_curves(fine_session, capsys, monkeypatch):
    """With a lateral-pelvis exposure (10x the AP one) the seeds are visible: couch = truth, and the
    acquired RT Images are written back with one curve per marker (IOD-5)."""
    import pydicom

    d = fine_session / "ph" / "dicom"
    kv = _acquire_kv(fine_session, "kv10", monkeypatch, photons_factor=10.0, lateral_factor=1)
    out = _run(["match", "marker", "--ct", str(d / "CT"), "--structure-set", str(d / "RS_PHANTOM.dcm"),
                "--acquired", str(kv / "RI_KV11.dcm"), str(kv / "RI_KV12.dcm"), "--plan", str(d / "RP_PHANTOM.dcm"),
                "--out", str(fine_session / "out")], capsys)
    exp = _expected(kv / "truth.json")
    for k in ("vrt_mm", "lng_mm", "lat_mm"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.6), k
    assert len(out["markers"]) == 3 and not any(m["outlier"] for m in out["markers"])
    images = [p for p in out["written"] if Path(p).name.startswith("RI.")]
    assert len(images) == 2 and any(Path(p).name.startswith("REG.") for p in out["written"])
    ds = pydicom.dcmread(images[0])
    assert int(ds[0x5000, 0x0005].value) == 2 and ds[0x5000, 0x0020].value == "POLY"
