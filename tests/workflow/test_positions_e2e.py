"""End to end on the real abdomen patient, every Patient Position, with a couch offset (issue 12 item 3).

For each of HFS, HFP, FFS, FFP, HFDL, HFDR, FFDL, FFDR: the abdomen virtual patient is written in
that position (its plan carries the couch offset from the reference marks to the isocenter), the
virtual imager acquires a CBCT with a 6-DoF setup error (INITLASERISO ≠ planned isocenter), the
3D/3D match runs through ``workflow.matching`` exactly as ``openigrt match`` / the fraction does,
and

* the expected correction is derived here from the geometry alone (translation = −the table-top
  shift, rotation = its inverse; INITLASERISO = planned isocenter − reference mark) and equals
  truth.json's;
* the couch correction equals it within 0.5 mm / 0.15°, signs included;
* the stored REG (written, read back) maps the planned isocenter where the truth puts it, i.e.
  onto INITLASERISO after the correction, and onto INITLASERISO itself for a perfect setup.

The 3D/3D match runs with the matcher's default region of interest (what ``openigrt match`` and
the fraction do). ``openigrt demo --patient abdomen`` runs once (FFS, 2D/2D) through the archive.

The kV matches (2D/2D with the CT, marker) run for HFS and HFDL in CI; all eight
with ``OPENIGRT_E2E_ALL_POSITIONS=1``; ``OPENIGRT_E2E_CBCT_MODEL=fdk`` runs the 3D/3D cases on the
FDK CBCT (projections + RTK) instead of the fast image-domain model. Their tolerances are the issue's targets (2D/2D 0.8 mm max,
marker 0.5 mm max); cases the matcher misses are marked xfail with the measured error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openigrt.config import load_settings
from openigrt.geometry.couch import couch_correction, table_top_angles_from_matrix
from openigrt.geometry.iec61217 import patient_axes_in_table_top, rot_x, rot_y, rot_z
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod.build import write_file
from openigrt.iod.dataset_io import read_file
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.spatial_registration import SpatialRegistration
from openigrt.workflow.acquire import TableTopShift, acquire
from openigrt.workflow.matching import registration, run_2d2d, run_3d3d, run_marker
from openigrt.workflow.phantom import write_patient

POSITIONS = ("HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")
KV_POSITIONS = POSITIONS if os.environ.get("OPENIGRT_E2E_ALL_POSITIONS") else ("HFS", "HFDL")
#: CBCT model of the 3D/3D cases (``OPENIGRT_E2E_CBCT_MODEL=fdk`` for the physical one; CI: fast).
CBCT_MODEL = os.environ.get("OPENIGRT_E2E_CBCT_MODEL", "fast")
TOL_MM, TOL_DEG = 0.5, 0.15
KV_TOL_MM = {"2d2d": 0.8, "marker": 0.5}
#: Seeded 6-DoF setup errors (table-top LAT, LNG, VRT mm, RTN, PITCH, ROLL deg), one per position.
SHIFTS = {
    "HFS": (4.2, -6.1, 3.3, 1.2, -0.8, 1.5), "HFP": (-5.5, 3.9, -2.7, -1.4, 1.1, 0.6),
    "FFS": (6.8, 2.2, -4.4, 0.9, 1.6, -1.2), "FFP": (-3.1, -7.3, 5.2, -1.7, -0.6, -1.4),
    "HFDL": (2.6, 5.8, 6.1, 1.5, 0.7, -1.8), "HFDR": (-6.4, -2.9, -5.0, -0.7, -1.5, 1.1),
    "FFDL": (5.1, -4.6, -3.8, 1.8, -1.2, 0.8), "FFDR": (-2.2, 6.5, 4.7, -1.1, 1.4, -0.9),
}
#: kV matches the matcher misses on this real anatomy (see the report): (match, position) -> reason.
KV_KNOWN_MISSES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def settings() -> Any:
    return load_settings(None, {})


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> dict[str, Any]:
    """The abdomen patient in each position (built lazily, kept for the module)."""
    return {"root": tmp_path_factory.mktemp("positions"), "settings": settings}


def _patient(patients: dict[str, Any], position: str) -> Any:
    if position not in patients:
        patients[position] = write_patient(patients["root"] / position, settings=patients["settings"],
                                           patient="abdomen", patient_position=position, seed=3)
    return patients[position]


def _acquire(patient: Any, kind: str, shift: tuple[float, ...], out: Path, settings: Any) -> dict[str, Any]:
    beams = [13] if kind == "cbct" else [11, 12]
    result = acquire(kind=kind, plan_dataset=read_file(patient.plan_path).dataset, ct_volume=patient.phantom.volume,
                     beam_numbers=beams, shift=TableTopShift(*shift), out_dir=out, settings=settings, seed=7,
                     cbct_model=CBCT_MODEL)
    return result.truth | {"files": [str(p) for p in result.files]}


def _geometry_truth(patient: Any, position: str, shift: tuple[float, ...], truth: dict[str, Any]) -> dict[str, float]:
    """The expected correction from the geometry alone, checked against truth.json on the way."""
    p = np.asarray(patient.truth["isocenter_mm"])
    q = p - np.asarray(patient.truth["reference_mark_mm"])  # lasers on the mark, couch moved by the offset
    np.testing.assert_allclose(truth["initlaseriso_mm"], q, atol=1e-6)
    assert np.linalg.norm(q - p) > 20.0  # the offset is real
    a = patient_axes_in_table_top(position)
    r_t = rot_z(shift[3]) @ rot_x(shift[4]) @ rot_y(shift[5])
    t = np.eye(4)
    t[:3, :3] = a.T @ r_t @ a
    t[:3, 3] = q + a.T @ np.asarray(shift[:3]) - t[:3, :3] @ p
    np.testing.assert_allclose(truth["transform"]["matrix"], t, atol=1e-9)
    rtn, pitch, roll = table_top_angles_from_matrix(r_t.T)  # the correction undoes the rotation ...
    expected = {"lat_mm": -shift[0], "lng_mm": -shift[1], "vrt_mm": -shift[2],  # ... and the translation
                "rtn_deg": rtn, "pitch_deg": pitch, "roll_deg": roll}
    for k, v in expected.items():
        assert truth["expected_couch_correction"][k] == pytest.approx(v, abs=1e-5), k
    return expected


def _check_signs(couch: dict[str, float], expected: dict[str, float], keys: tuple[str, ...]) -> None:
    for k in keys:
        if abs(expected[k]) >= 1.0:
            assert np.sign(couch[k]) == np.sign(expected[k]), f"{k}: {couch[k]:+.2f} vs truth {expected[k]:+.2f}"


def _stored_reg(outcome: Any, settings: Any, path: Path) -> RigidTransform:
    write_file(registration(outcome, settings=settings), path)
    reg = SpatialRegistration.from_dataset(read_file(path))
    ref_for = str(outcome.reference_datasets[0].FrameOfReferenceUID)
    ver_for = str(outcome.verification_datasets[0].FrameOfReferenceUID)
    assert reg.frame_of_reference_uid == ver_for
    return reg.transform(source_for=ref_for, target_for=ver_for)


@pytest.mark.parametrize("position", POSITIONS)
def test_3d3d_couch_correction_and_reg_for_every_position(patients: dict[str, Any], position: str,
                                                          tmp_path: Path) -> None:
    settings = patients["settings"]
    patient = _patient(patients, position)
    shift = SHIFTS[position]
    truth = _acquire(patient, "cbct", shift, tmp_path / "cbct", settings)
    expected = _geometry_truth(patient, position, shift, truth)
    plan = RTPlan.from_dataset(read_file(patient.plan_path))
    outcome = run_3d3d(reference_ct=sorted(patient.ct_dir.glob("*.dcm")), verification=[Path(f) for f in truth["files"]],
                       plan=plan)  # the default region of interest, as openigrt match and the fraction
    couch = outcome.couch()
    err_mm = max(abs(couch[k] - expected[k]) for k in ("vrt_mm", "lng_mm", "lat_mm"))
    err_deg = max(abs(couch[k] - expected[k]) for k in ("rtn_deg", "pitch_deg", "roll_deg"))
    assert err_mm <= TOL_MM and err_deg <= TOL_DEG, (position, couch, expected)
    _check_signs(couch, expected, ("vrt_mm", "lng_mm", "lat_mm"))
    reg = _stored_reg(outcome, settings, tmp_path / "REG.dcm")
    p, q = np.asarray(truth["planned_isocenter_mm"]), np.asarray(truth["initlaseriso_mm"])
    t = RigidTransform(np.asarray(truth["transform"]["matrix"]))
    np.testing.assert_allclose(reg.apply([p])[0], t.apply([p])[0], atol=TOL_MM)  # the REG holds the offset
    # undoing the stored correction brings the planned isocenter onto INITLASERISO
    from_reg = couch_correction(reg, planned_isocenter_mm=p, initlaseriso_mm=q, patient_position=position)
    moved = q - patient_axes_in_table_top(position).T @ from_reg.translation_table_top_mm
    np.testing.assert_allclose(moved, reg.apply([p])[0], atol=1e-6)
    assert max(abs(from_reg.as_dict()[k] - expected[k]) for k in ("vrt_mm", "lng_mm", "lat_mm")) <= TOL_MM


def test_perfect_setup_reg_maps_the_planned_isocenter_onto_initlaseriso(patients: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    settings = patients["settings"]
    patient = _patient(patients, "HFDR")
    truth = _acquire(patient, "cbct", (0.0,) * 6, tmp_path / "cbct", settings)
    outcome = run_3d3d(reference_ct=sorted(patient.ct_dir.glob("*.dcm")), verification=[Path(f) for f in truth["files"]],
                       plan=RTPlan.from_dataset(read_file(patient.plan_path)))
    reg = _stored_reg(outcome, settings, tmp_path / "REG.dcm")
    p, q = np.asarray(truth["planned_isocenter_mm"]), np.asarray(truth["initlaseriso_mm"])
    assert np.linalg.norm(q - p) > 20.0
    np.testing.assert_allclose(reg.apply([p])[0], q, atol=TOL_MM)
    assert np.rad2deg(np.arccos(np.clip((np.trace(reg.rotation) - 1) / 2, -1, 1))) <= TOL_DEG
    assert all(abs(v) <= TOL_MM for k, v in outcome.couch().items() if k.endswith("_mm"))


@pytest.mark.parametrize("match", ["2d2d", "marker"])
@pytest.mark.parametrize("position", KV_POSITIONS)
def test_kv_matches_for_the_positions(patients: dict[str, Any], position: str, match: str, tmp_path: Path,
                                      request: pytest.FixtureRequest) -> None:
    if (match, position) in KV_KNOWN_MISSES:
        request.applymarker(pytest.mark.xfail(reason=KV_KNOWN_MISSES[(match, position)], strict=False))
    settings = patients["settings"]
    patient = _patient(patients, position)
    shift = SHIFTS[position][:3] + (0.0, 0.0, 0.0)  # kV matches solve translations
    truth = _acquire(patient, "kv", shift, tmp_path / "kv", settings)
    expected = _geometry_truth(patient, position, shift, truth)
    plan = RTPlan.from_dataset(read_file(patient.plan_path))
    acquired = [Path(f) for f in truth["files"]]
    if match == "2d2d":
        outcome = run_2d2d(references=[patient.dicom_dir / "RI_DRR_11.dcm", patient.dicom_dir / "RI_DRR_12.dcm"],
                           acquired=acquired, ct=sorted(patient.ct_dir.glob("*.dcm")), plan=plan)
    else:
        outcome = run_marker(ct=sorted(patient.ct_dir.glob("*.dcm")), acquired=acquired,
                             structure_set=patient.dicom_dir / "RS_PHANTOM.dcm", plan=plan)
    couch = outcome.couch()
    err = max(abs(couch[k] - expected[k]) for k in ("vrt_mm", "lng_mm", "lat_mm"))
    assert err <= KV_TOL_MM[match], f"{match} {position}: {err:.2f} mm, couch {couch}, truth {expected}"
    _check_signs(couch, expected, ("vrt_mm", "lng_mm", "lat_mm"))
    reg = _stored_reg(outcome, settings, tmp_path / "REG.dcm")
    p = np.asarray(truth["planned_isocenter_mm"])
    np.testing.assert_allclose(reg.apply([p])[0], RigidTransform(np.asarray(truth["transform"]["matrix"])).apply([p])[0],
                               atol=KV_TOL_MM[match])
    json.dumps(outcome.report(), default=float)  # the report is JSON-able with the offset


def test_demo_on_the_abdomen_patient_feet_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``openigrt demo --patient abdomen``: the whole fraction (archive, C-MOVE, match, REG stored and found)."""
    from openigrt.cli import main

    code = main(["demo", "--workdir", str(tmp_path / "demo"), "--patient", "abdomen", "--position", "FFS",
                 "--match", "2d2d", "--seed", "2", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] is True, doc["checks"]
    (row,) = doc["matches"]
    assert row["stored"] and row["decision"] == "accepted"
    assert max(abs(row["couch"][k] - row["truth"][k]) for k in ("vrt_mm", "lng_mm", "lat_mm")) <= KV_TOL_MM["2d2d"]
    assert max(abs(row["truth"][k]) for k in ("vrt_mm", "lng_mm", "lat_mm")) > 2.0  # a real correction
    truth = json.loads((tmp_path / "demo" / "phantom" / "phantom.json").read_text())
    assert truth["patient"] == "abdomen" and truth["patient_position"] == "FFS"
