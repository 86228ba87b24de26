"""``openigrt match 3d3d`` and ``openigrt detect-markers`` end to end on DICOM files (MATCH-3/4/6, IOD-1)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod.build.common import PatientStudy, write_file
from openigrt.iod.build.ct_image import CouchPosition, build_planning_ct_series, build_verification_ct_series
from openigrt.uids import new_uid
from tests.match.synthetic import FIDUCIALS_MM, cbct, planning_ct

WHEN = datetime(2024, 5, 6, 7, 8, 9)
COUCH = CouchPosition(table_height_mm=150.0, table_top_longitudinal_position_mm=0.0, table_top_lateral_position_mm=0.0)


@pytest.fixture(scope="module")
def patient(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("patient")
    for sub in ("ct", "cbct"):
        (root / sub).mkdir()
    s = load_settings(None, {})
    ps = PatientStudy.new(patient_name="MATCH^TEST", patient_id="M-1", patient_sex="Male", uid_root=s.uid_root,
                          patient_birth_date="19700101", study_id="S1", accession_number="A1",
                          study_description="match", study_datetime=WHEN)
    ct = planning_ct(shape=(40, 160, 192), spacing=(1.0, 1.0, 2.0))
    ct_ds = build_planning_ct_series(volume=ct, patient_study=ps, patient_position="HFS", settings=s, couch=COUCH,
                                     content_datetime=WHEN)
    for i, ds in enumerate(ct_ds):
        write_file(ds, root / "ct" / f"CT{i:03d}.dcm")
    truth = RigidTransform.from_parameters(translation_mm=(4.0, -6.0, 5.0), rotation_deg=(0.0, 1.0, -1.5))
    cb = cbct(ct, truth, seed=21, shape=(36, 200, 200))
    cb_ds = build_verification_ct_series(volume=cb, sources=ct_ds, frame_of_reference_uid=new_uid(s.uid_root),
                                         patient_position="HFS", settings=s, couch=COUCH, content_datetime=WHEN)
    for i, ds in enumerate(cb_ds):
        write_file(ds, root / "cbct" / f"CT{i:03d}.dcm")
    return {"root": root, "truth": truth}


def test_match_3d3d_json_matrix_couch_and_reg(patient, capsys):
    root, truth = patient["root"], patient["truth"]
    rc = main(["match", "3d3d", "--reference", str(root / "ct"), "--verification", str(root / "cbct"),
               "--isocenter", "0,0,0", "--json", "--out", str(root / "out")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["match"] == "3d3d" and out["dof"] == 6
    m = np.array(out["matrix"])
    err = RigidTransform(m).apply(FIDUCIALS_MM) - truth.apply(FIDUCIALS_MM)
    assert np.linalg.norm(err, axis=1).max() < 0.4
    assert set(out["couch"]) == {"vrt_mm", "lng_mm", "lat_mm", "rtn_deg", "pitch_deg", "roll_deg"}
    # HFS: the patient lies 4 mm to their left (+x) -> the couch moves them back: lateral correction ≈ -4 mm
    # (E's sign convention: lat = table-top x = patient x for HFS); the exact value is E's function's job
    assert abs(abs(out["couch"]["lat_mm"]) - 4.0) < 0.6
    for key in ("metric", "iterations", "stop_reason", "elapsed_s"):
        assert key in out
    reg = pydicom.dcmread(out["written"][0])
    mat = np.array(reg.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0]
                   .FrameOfReferenceTransformationMatrix, float).reshape(4, 4)
    np.testing.assert_allclose(mat, m, atol=1e-4)


def test_match_3d3d_translation_only_human_output(patient, capsys):
    root = patient["root"]
    rc = main(["match", "3d3d", "--reference", str(root / "ct"), "--verification", str(root / "cbct"), "--dof", "3"])
    text = capsys.readouterr().out
    assert rc == 0 and "3d3d match (3 DoF)" in text and "couch correction" in text


def test_detect_markers_cli_finds_every_fiducial(patient, capsys):
    rc = main(["detect-markers", "--ct", str(patient["root"] / "ct"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    found = np.array([m["position_mm"] for m in out["markers"]])
    assert len(found) == len(FIDUCIALS_MM)
    d = np.linalg.norm(found[:, None, :] - FIDUCIALS_MM[None, :, :], axis=2).min(axis=0)
    assert d.max() < 0.5


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["match", "3d3d", "--reference", str(tmp_path / "empty"), "--verification", str(tmp_path / "empty")])
    assert rc == 1
    assert "Traceback" not in capsys.readouterr().err
