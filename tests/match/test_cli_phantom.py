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
    assert out["details"]["levels"][-1]["samples"] < 150_000  # restricted to PTV + 30 mm
    for k in ("vrt_mm", "lng_mm", "lat_mm"):
        assert out["couch"][k] == pytest.approx(exp[k], abs=0.5), k


def test_unknown_roi_structure_is_one_clear_error(session, capsys):
    d = session / "ph" / "dicom"
    rc = main(["match", "3d3d", "--reference", str(d / "CT"), "--verification", str(session / "cbct"),
               "--structure-set", str(d / "RS_PHANTOM.dcm"), "--roi-structure", "NOPE"])
    err = capsys.readouterr().err
    assert rc == 1 and "NOPE" in err and "Traceback" not in err
