"""MATCH-6 couch correction: worked sign examples per patient position, and the motion really fixes the setup."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.couch import (
    COUCH_CORRECTION_KEYS,
    CouchCorrection,
    couch_correction,
    setup_error_from_table_top,
    table_top_angles_from_matrix,
)
from openigrt.geometry.iec61217 import PatientPosition, patient_axes_in_table_top, rot_x, rot_y, rot_z
from openigrt.geometry.rigid import RigidTransform

ISO = np.array([3.5, 12.0, -1.3])


def _corr(t: RigidTransform, position: str, laser: np.ndarray | None = None) -> dict[str, float]:
    q = ISO if laser is None else laser
    return couch_correction(t, planned_isocenter_mm=ISO, initlaseriso_mm=q, patient_position=position).as_dict()


# Worked example (docs/geometry.md): the patient lies 5 mm to their LEFT, 3 mm too far POSTERIOR and
# 2 mm too far towards their HEAD: T = +5 x, +3 y, +2 z (reference -> verification patient mm).
# The couch must move the patient 5 mm to their right, 3 mm anterior, 2 mm towards the feet.
WORKED = {
    #        vrt   lng   lat      anterior is up (supine) / down (prone); head towards/away from the gantry
    "HFS": (+3.0, -2.0, -5.0),  # up; away from gantry; towards the patient's right = -Xt
    "HFP": (-3.0, -2.0, +5.0),  # prone: anterior is down; patient's right is +Xt
    "FFS": (+3.0, +2.0, +5.0),  # feet first: the feet are towards the gantry; patient's right is +Xt
    "FFP": (-3.0, +2.0, -5.0),
    "HFDR": (-5.0, -2.0, -3.0),  # right side down: the patient's left is up, anterior is -Xt
    "HFDL": (+5.0, -2.0, +3.0),
    "FFDR": (-5.0, +2.0, +3.0),
    "FFDL": (+5.0, +2.0, -3.0),
}


@pytest.mark.parametrize("position", list(WORKED))
def test_worked_example_signs(position: str) -> None:
    t = RigidTransform.from_parameters(translation_mm=(5.0, 3.0, 2.0))
    vrt, lng, lat = WORKED[position]
    assert _corr(t, position) == {"vrt_mm": vrt, "lng_mm": lng, "lat_mm": lat,
                                  "rtn_deg": 0.0, "pitch_deg": 0.0, "roll_deg": 0.0}


def test_keys_are_the_documented_ones() -> None:
    assert tuple(CouchCorrection(1, 2, 3).as_dict()) == COUCH_CORRECTION_KEYS == (
        "vrt_mm", "lng_mm", "lat_mm", "rtn_deg", "pitch_deg", "roll_deg")


def test_zero_correction_iff_isocenter_maps_onto_initlaseriso() -> None:
    rng = np.random.default_rng(11)
    laser = ISO + rng.normal(0, 20, 3)  # lasers somewhere else in the verification frame
    r = RigidTransform.from_parameters(rotation_deg=(1.0, -2.0, 0.5), center_mm=(40.0, -3.0, 7.0))
    # choose the translation so that T(p_iso) = INITLASERISO
    t = RigidTransform.from_parameters(translation_mm=laser - r.apply(ISO)[0]).compose(r)
    c = couch_correction(t, planned_isocenter_mm=ISO, initlaseriso_mm=laser, patient_position="HFS")
    assert c.translation_magnitude_mm == pytest.approx(0.0, abs=1e-9)
    moved = RigidTransform.from_parameters(translation_mm=(0.0, 0.0, 0.4)).compose(t)
    assert couch_correction(moved, planned_isocenter_mm=ISO, initlaseriso_mm=laser,
                            patient_position="HFS").translation_magnitude_mm == pytest.approx(0.4)


def _couch_motion_in_patient(c: CouchCorrection, position: str, target: np.ndarray, laser: np.ndarray) -> RigidTransform:
    """The patient-space rigid motion the reported correction performs (translate, then rotate about the isocenter)."""
    a = patient_axes_in_table_top(position)
    rot = a.T @ c.rotation_table_top() @ a
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = laser - rot @ target
    return RigidTransform(m)


@pytest.mark.parametrize("position", [p.value for p in PatientPosition])
def test_applying_the_correction_puts_every_point_back_on_plan(position: str) -> None:
    rng = np.random.default_rng(sum(map(ord, position)))
    laser = ISO + rng.normal(0, 3, 3)
    t = RigidTransform.from_parameters(translation_mm=rng.normal(0, 6, 3), rotation_deg=rng.normal(0, 2, 3),
                                       center_mm=rng.normal(0, 50, 3))
    c = couch_correction(t, planned_isocenter_mm=ISO, initlaseriso_mm=laser, patient_position=position)
    motion = _couch_motion_in_patient(c, position, t.apply(ISO)[0], laser)
    pts = rng.uniform(-150, 150, (30, 3))
    planned = pts - ISO + laser  # the planned pose: isocenter on the lasers, no rotation
    np.testing.assert_allclose(motion.compose(t).apply(pts), planned, atol=1e-9)


@pytest.mark.parametrize("position", [p.value for p in PatientPosition])
def test_setup_error_from_table_top_is_undone_by_the_correction(position: str) -> None:
    rng = np.random.default_rng(3 + len(position))
    lat, lng, vrt = rng.normal(0, 5, 3)
    rtn, pitch, roll = rng.normal(0, 2, 3)
    t = setup_error_from_table_top(lat_mm=lat, lng_mm=lng, vrt_mm=vrt, rtn_deg=rtn, pitch_deg=pitch, roll_deg=roll,
                                   planned_isocenter_mm=ISO, patient_position=position)
    c = couch_correction(t, planned_isocenter_mm=ISO, initlaseriso_mm=ISO, patient_position=position)
    np.testing.assert_allclose(c.translation_table_top_mm, [-lat, -lng, -vrt], atol=1e-9)
    np.testing.assert_allclose(c.rotation_table_top(), (rot_z(rtn) @ rot_x(pitch) @ rot_y(roll)).T, atol=1e-12)


def test_rotation_about_the_long_axis_is_roll_with_position_dependent_sign() -> None:
    t = RigidTransform.from_parameters(rotation_deg=(0.0, 0.0, 2.0), center_mm=ISO)  # about patient +z
    assert _corr(t, "HFS")["roll_deg"] == pytest.approx(-2.0)  # head towards the gantry: +z = +Yt
    assert _corr(t, "FFS")["roll_deg"] == pytest.approx(+2.0)  # +z = -Yt
    t = RigidTransform.from_parameters(rotation_deg=(0.0, 1.5, 0.0), center_mm=ISO)  # about patient +y (posterior)
    assert _corr(t, "HFS")["rtn_deg"] == pytest.approx(+1.5)  # +y = -Zt for supine
    assert _corr(t, "HFP")["rtn_deg"] == pytest.approx(-1.5)
    t = RigidTransform.from_parameters(rotation_deg=(1.0, 0.0, 0.0), center_mm=ISO)  # about patient +x (left)
    assert _corr(t, "HFS")["pitch_deg"] == pytest.approx(-1.0)
    assert _corr(t, "FFS")["pitch_deg"] == pytest.approx(+1.0)


def test_three_dof_couch_reports_no_rotation() -> None:
    t = RigidTransform.from_parameters(translation_mm=(1, 2, 3), rotation_deg=(2, 0, 0), center_mm=ISO)
    c = couch_correction(t, planned_isocenter_mm=ISO, initlaseriso_mm=ISO, patient_position="HFS", six_dof=False)
    assert (c.rtn_deg, c.pitch_deg, c.roll_deg) == (0.0, 0.0, 0.0)
    assert c.as_dict()["lat_mm"] == -1.0


def test_angle_decomposition_round_trip() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        ang = rng.uniform(-80, 80, 3)
        got = table_top_angles_from_matrix(rot_z(ang[0]) @ rot_x(ang[1]) @ rot_y(ang[2]))
        np.testing.assert_allclose(got, ang, atol=1e-9)
