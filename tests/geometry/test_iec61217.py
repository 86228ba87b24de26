"""IEC 61217 frame transforms: known answers, sign conventions, round trips of every directed pair."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry import iec61217 as iec
from openigrt.geometry.iec61217 import PatientPosition, patient_axes_in_table_top

RNG_SEED = 20261126


def _all_pairs(rng: np.random.Generator) -> list[object]:
    ang = lambda: float(rng.uniform(-180, 180))  # noqa: E731
    vec = lambda: tuple(float(v) for v in rng.uniform(-300, 300, 3))  # noqa: E731
    tt = iec.TableTopToPatientSupport(table_top_translation_mm=vec(), table_top_pitch_angle_deg=float(rng.uniform(-5, 5)),
                                      table_top_roll_angle_deg=float(rng.uniform(-5, 5)))
    return [
        iec.GantryToFixed(gantry_angle_deg=ang()),
        iec.FixedToGantry(gantry_angle_deg=ang()),
        iec.BeamLimitingDeviceToGantry(beam_limiting_device_angle_deg=ang()),
        iec.GantryToBeamLimitingDevice(beam_limiting_device_angle_deg=ang()),
        iec.ImageReceptorToGantry(receptor_translation_mm=vec(), receptor_angle_deg=ang()),
        iec.GantryToImageReceptor(receptor_translation_mm=vec(), receptor_angle_deg=ang()),
        iec.PatientSupportToFixed(patient_support_angle_deg=ang()),
        iec.FixedToPatientSupport(patient_support_angle_deg=ang()),
        tt,
        tt.inverse(),
        iec.PatientToTableTop(patient_position="HFP", isocenter_mm=vec()),
        iec.TableTopToPatient(patient_position="FFDL", isocenter_mm=vec()),
        iec.PatientToFixed(patient_position="FFS", isocenter_mm=vec(), patient_support_angle_deg=ang(), table_top=tt),
        iec.FixedToPatient(patient_position="HFDR", isocenter_mm=vec(), patient_support_angle_deg=ang(), table_top=tt),
    ]


@pytest.mark.parametrize("index", range(14))
def test_round_trip_every_directed_pair(index: int) -> None:
    rng = np.random.default_rng(RNG_SEED + index)
    t = _all_pairs(rng)[index]
    pts = rng.uniform(-500, 500, (50, 3))
    inv = t.inverse()  # type: ignore[attr-defined]
    assert type(inv).__name__ != type(t).__name__
    np.testing.assert_allclose(inv.apply(t.apply(pts)), pts, atol=1e-9)  # type: ignore[attr-defined]
    np.testing.assert_allclose(inv.matrix() @ t.matrix(), np.eye(4), atol=1e-12)  # type: ignore[attr-defined]
    assert inv.inverse() == t  # type: ignore[attr-defined]
    r = t.matrix()[:3, :3]  # type: ignore[attr-defined]
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(t.as_rigid().apply(pts), t.apply(pts))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("gantry", "source_fixed"), [
    (0.0, (0, 0, 1000)), (90.0, (1000, 0, 0)), (180.0, (0, 0, -1000)), (270.0, (-1000, 0, 0)),
])
def test_gantry_angle_moves_the_source_clockwise_seen_from_the_couch_foot(gantry: float, source_fixed: tuple) -> None:
    # IEC 61217: +Zg points to the source; gantry 90 = source at +Xf (observer's right facing the gantry)
    got = iec.GantryToFixed(gantry_angle_deg=gantry).apply([[0.0, 0.0, 1000.0]])[0]
    np.testing.assert_allclose(got, source_fixed, atol=1e-9)


def test_gantry_90_is_the_patients_left_for_hfs_as_in_the_real_eclipse_plan() -> None:
    # The Eclipse 8.1 plan in tests/data/real names gantry 90 "LT LAT" and 270 "RT LAT" (HFS).
    source_fixed = iec.GantryToFixed(gantry_angle_deg=90.0).apply([[0.0, 0.0, 1000.0]])
    source_patient = iec.FixedToPatient(patient_position="HFS").apply(source_fixed)[0]
    assert source_patient[0] == pytest.approx(1000.0)  # +x = patient's left


def test_patient_support_angle_is_counter_clockwise_seen_from_above() -> None:
    # couch 90: the support's +Xs axis points along +Yf (towards the gantry)
    np.testing.assert_allclose(iec.PatientSupportToFixed(patient_support_angle_deg=90).apply([[1.0, 0, 0]])[0],
                               [0, 1, 0], atol=1e-12)


def test_table_top_pitch_lifts_the_gantry_end_and_roll_lowers_plus_x() -> None:
    tt = iec.TableTopToPatientSupport(table_top_pitch_angle_deg=10.0)
    assert tt.apply([[0.0, 100.0, 0.0]])[0, 2] > 17.0  # +Yt end goes up (right-handed about Xt)
    roll = iec.TableTopToPatientSupport(table_top_roll_angle_deg=10.0)
    assert roll.apply([[100.0, 0.0, 0.0]])[0, 2] < -17.0  # right-handed about Yt: +Xt goes down


def test_pitch_is_applied_before_roll() -> None:
    # PS3.3 C.8.8.14.12: v_s = Rx(pitch) Ry(roll) v_t
    tt = iec.TableTopToPatientSupport(table_top_pitch_angle_deg=7.0, table_top_roll_angle_deg=-4.0)
    np.testing.assert_allclose(tt.matrix()[:3, :3], iec.rot_x(7.0) @ iec.rot_y(-4.0))


def test_receptor_angle_is_counter_clockwise_seen_from_the_source() -> None:
    r2g = iec.ImageReceptorToGantry(receptor_translation_mm=(0, 0, -500), receptor_angle_deg=90.0)
    np.testing.assert_allclose(r2g.apply([[1.0, 0, 0]])[0], [0, 1, -500], atol=1e-12)


# PS3.17 FFF.1.2.2 (X-ray table): direction cosines of patient left / posterior / head in the table
# system (Xt right of the table seen from its foot, Yt down, Zt towards the head end of the table).
# An independent source transcribed as printed; converted to IEC TABLE TOP with
# Xiec = Xt, Yiec = Zt (towards the gantry), Ziec = -Yt (up).
_PS317_FFF = {
    "HFS": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "HFP": ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    "HFDR": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    "HFDL": ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
    "FFS": ((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "FFP": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "FFDR": ((0, -1, 0), (-1, 0, 0), (0, 0, -1)),
    "FFDL": ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
}


@pytest.mark.parametrize("position", list(_PS317_FFF))
def test_patient_axes_match_ps317_table(position: str) -> None:
    xa_to_iec = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)
    expected = np.column_stack([xa_to_iec @ np.array(v, float) for v in _PS317_FFF[position]])
    got = patient_axes_in_table_top(position)
    np.testing.assert_array_equal(got, expected)
    assert np.linalg.det(got) == pytest.approx(1.0)


def test_patient_to_table_top_puts_the_isocenter_at_the_origin() -> None:
    iso = (12.5, -40.0, 301.0)
    for pos in PatientPosition:
        np.testing.assert_allclose(iec.PatientToTableTop(patient_position=pos, isocenter_mm=iso).apply([iso]),
                                   [[0, 0, 0]], atol=1e-12)


def test_bad_patient_position_names_the_value() -> None:
    with pytest.raises(ValueError, match="'SITTING'"):
        PatientPosition.parse("SITTING")
    assert PatientPosition.parse(" hfs ") is PatientPosition.HFS
