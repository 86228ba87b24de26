"""MATCH-6/7 review adjustments: a delta on a couch axis changes exactly that axis of the correction."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.config import PlanTolerances
from openigrt.errors import WorkflowError
from openigrt.geometry.rigid import RigidTransform
from openigrt.workflow.review_adjust import AXES, Adjustment, CouchFrame, adjusted_transform, correction_rows

ISO = (3.5, 12.0, -1.3)
BASE = RigidTransform.from_parameters(translation_mm=(2.1, 7.3, -3.7), rotation_deg=(0.9, -0.4, 0.15))


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP", "HFDR"])
@pytest.mark.parametrize("axis", AXES)
def test_each_axis_moves_by_exactly_the_delta(position: str, axis: str) -> None:
    frame = CouchFrame(ISO, (3.0, 11.0, -1.0), position, six_dof=True)
    delta = 1.0 if axis.endswith("_mm") else 0.1
    before = frame.correction(BASE)
    after = frame.correction(adjusted_transform(BASE, Adjustment(**{axis: delta}), frame))
    for k in AXES:
        assert after[k] == pytest.approx(before[k] + (delta if k == axis else 0.0), abs=2e-6), k


# The sign per patient position, independent of the code: a +1 mm couch motion corrects a patient
# displaced the other way (docs/geometry.md §4), so the registration moves the isocenter by -1 mm
# along that table-top axis, expressed in patient axes (LPS).
EXPECTED_SHIFT = {
    ("HFS", "lat_mm"): (-1, 0, 0), ("FFS", "lat_mm"): (1, 0, 0),
    ("HFS", "lng_mm"): (0, 0, -1), ("FFS", "lng_mm"): (0, 0, 1),
    ("HFS", "vrt_mm"): (0, 1, 0), ("FFS", "vrt_mm"): (0, 1, 0),
    ("HFP", "vrt_mm"): (0, -1, 0), ("HFP", "lat_mm"): (1, 0, 0),
}


@pytest.mark.parametrize(("position", "axis"), sorted(EXPECTED_SHIFT))
def test_translation_delta_moves_the_registration_the_documented_way(position: str, axis: str) -> None:
    frame = CouchFrame(ISO, ISO, position, six_dof=False)
    base = RigidTransform.from_parameters(translation_mm=(2.0, -1.0, 0.5))
    t = adjusted_transform(base, Adjustment(**{axis: 1.0}), frame)
    assert np.allclose(t.translation_mm - base.translation_mm, EXPECTED_SHIFT[(position, axis)], atol=1e-12)
    assert np.allclose(t.rotation, base.rotation)


def test_three_dof_refuses_rotation_and_parse_refuses_nonsense() -> None:
    frame = CouchFrame(ISO, ISO, "HFS", six_dof=False)
    with pytest.raises(WorkflowError, match="6-DoF"):
        adjusted_transform(BASE, Adjustment(rtn_deg=0.1), frame)
    assert adjusted_transform(BASE, Adjustment(), frame) is BASE
    for bad in ({"lat_mm": "x"}, {"lat_mm": float("nan")}, {"vrt_mm": 500}, {"yaw": 1}):
        with pytest.raises(WorkflowError):
            Adjustment.parse(bad)


def test_rows_flag_out_of_tolerance_but_not_unseen_axes() -> None:
    tol = PlanTolerances(correction_vrt_mm=5.0, correction_lng_mm=5.0, correction_lat_mm=2.0)
    rows = {r.axis: r for r in correction_rows({"vrt_mm": 0, "lng_mm": 1, "lat_mm": 1.5},
                                               {"vrt_mm": 9.0, "lng_mm": 2.0, "lat_mm": 2.5},
                                               tolerances=tol, not_seen=("vrt_mm",))}
    assert not rows["vrt_mm"].out_of_tolerance and not rows["vrt_mm"].visible
    assert not rows["lng_mm"].out_of_tolerance and rows["lng_mm"].adjustment == pytest.approx(1.0)
    assert rows["lat_mm"].out_of_tolerance and rows["lat_mm"].tolerance == 2.0
