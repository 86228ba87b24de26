"""``openigrt validate``: exit codes, JSON contract, every defect listed with tag and message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from openigrt.cli import main
from tests.iod import factory as F
from tests.iod.realdata import ECLIPSE, ELEKTA_RI, GE_CT

JSON_KEYS = {"match", "possible", "plan", "beams", "findings", "inputs"}
BEAM_KEYS = {"number", "name", "field_type", "field_type_source", "imaging", "imaging_parameters",
             "treatment_delivery_type", "beam_type", "gantry_angle", "patient_support_angle", "isocenter",
             "patient_position", "meterset", "reference_images", "used"}
FINDING_KEYS = {"id", "status", "tags", "message", "value", "tolerance", "subject"}


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    rc = main(["validate", *args, "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


@pytest.fixture()
def good_dir(tmp_path: Path) -> Path:
    return F.write_patient(tmp_path / "good", F.good_patient())


@pytest.mark.parametrize("match", ["2d", "2d2d", "marker", "3d3d"])
def test_good_patient_exits_0_for_every_match(capsys, good_dir: Path, match: str) -> None:
    rc, data = _validate(capsys, str(good_dir), "--match", match)
    assert rc == 0 and data["possible"] is True and data["match"] == match
    assert set(data) == JSON_KEYS and all(set(b) == BEAM_KEYS for b in data["beams"])
    assert all(set(f) == FINDING_KEYS for f in data["findings"])
    assert data["plan"]["label"] == "GOOD" and data["inputs"]["ct_slices"] == 8
    assert data["inputs"]["objects"] == {"CT Image": 8, "RT Image": 4, "RT Plan": 1, "RT Structure Set": 1}
    assert {f["status"] for f in data["findings"]} == {"Success"}


def test_plan_with_several_defects_lists_each_and_exits_1(capsys, tmp_path: Path) -> None:
    p = F.good_patient()
    plan = p["plan"]
    plan.BeamSequence[1].ControlPointSequence[0].TableTopVerticalPosition = -147.0  # PLAN-4: 3 mm
    plan.BeamSequence[3].ControlPointSequence[0].GantryAngle = 270.5  # PLAN-7 vs its DRR, PLAN-8 pair
    plan.BeamSequence[2].NumberOfWedges = 1  # PLAN-3
    del plan.RTPlanLabel  # PLAN-13
    p["drrs"][2].IsocenterPosition = [0.0, 0.0, 4.0]  # PLAN-6: the KV0 DRR's isocenter 4 mm off
    directory = F.write_patient(tmp_path / "bad", p)
    rc, data = _validate(capsys, str(directory), "--match", "2d2d")
    assert rc == 1 and data["possible"] is False
    failures = {(f["id"], t) for f in data["findings"] if f["status"] == "Failure" for t in f["tags"]}
    for expected in [("PLAN-4", "(300A,0128)"), ("PLAN-7", "(300A,011E)"), ("PLAN-3", "(300A,00D0)"),
                     ("PLAN-13", "(300A,0002)"), ("PLAN-6", "(300A,012C)"), ("PLAN-8", "(300A,011E)")]:
        assert expected in failures, expected
    messages = " | ".join(f["message"] for f in data["findings"] if f["status"] == "Failure")
    assert "differs by 3.00 mm" in messages and "270.5° vs 270°" in messages and "Number of Wedges is 1" in messages
    assert "RT Plan Label" in messages and "4.00 mm apart" in messages
    # the human report says the same, with the verdict
    rc = main(["validate", str(directory), "--match", "2d2d", "--problems-only"])
    text = capsys.readouterr().out
    assert rc == 1 and "NOT POSSIBLE" in text and "(300A,0128)" in text and "FAIL" in text


def test_eclipse_cbct_beam_and_3d3d_without_ct(capsys) -> None:
    rc, data = _validate(capsys, str(ECLIPSE), "--match", "3d3d")
    assert rc == 1
    cbct = [b for b in data["beams"] if b["number"] == 5][0]
    assert cbct["field_type"] == "SETUP" and cbct["field_type_source"] == "ExtendedInterfaceXML"
    assert cbct["used"] is True
    plan8 = [f for f in data["findings"] if f["id"] == "PLAN-8"][0]
    assert plan8["status"] == "Warning" and "started manually" in plan8["message"]
    assert [f["status"] for f in data["findings"] if f["id"] == "PLAN-9"] == ["Failure"]


def test_usage_errors_exit_2(capsys, tmp_path: Path) -> None:
    assert main(["validate", *map(str, GE_CT), "--match", "2d"]) == 2
    assert "found 0" in capsys.readouterr().err
    assert main(["validate", str(ELEKTA_RI), "--match", "4d"]) == 2
    assert main(["validate", str(tmp_path / "missing"), "--match", "2d"]) == 2
    d = F.write_patient(tmp_path / "two", F.good_patient())
    second = F.good_plan()
    second.SOPInstanceUID = "1.2.3.4.5.6"
    F.save(second, d / "RP2.dcm")
    assert main(["validate", str(d), "--match", "2d"]) == 2
    assert "found 2" in capsys.readouterr().err


def test_unreadable_named_file_is_one_clear_line(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"DICM" * 3)
    rc = main(["validate", str(bad), "--match", "2d"])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.dcm" in err and "Traceback" not in err


def test_console_script_runs_as_a_subprocess(good_dir: Path) -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "openigrt"), "validate", str(good_dir), "--match",
                           "marker"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "marker match: POSSIBLE" in proc.stdout and "Marker1" in proc.stdout


def test_skipped_files_are_listed(capsys, good_dir: Path) -> None:
    (good_dir / "README.txt").write_text("notes, not DICOM")
    rc, data = _validate(capsys, str(good_dir), "--match", "2d2d")
    assert rc == 0 and len(data["inputs"]["skipped"]) == 1 and "README.txt" in data["inputs"]["skipped"][0]
    assert any(f["id"] == "PLAN-13" and f["status"] == "Warning" and "README.txt" in f["message"]
               for f in data["findings"])
