"""MATCH-7 adjustment: the stored transform moves the couch correction by exactly the user's delta."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.rigid import RigidTransform
from openigrt.match import MatchResult, MatchType, StopReason
from openigrt.workflow.matching import MatchContext, MatchOutcome


def _outcome(position: str, dof: int = 6) -> MatchOutcome:
    t = RigidTransform.from_parameters(translation_mm=(4.0, -2.5, 7.0), rotation_deg=(0.5, -1.0, 1.5),
                                       center_mm=(10.0, 20.0, -30.0))
    result = MatchResult(t, MatchType.VOLUME_3D, dof, 0.9, "NCC", 12, StopReason.CONVERGED, 1.0, 0.5)
    ctx = MatchContext((10.0, 20.0, -30.0), (10.0, 20.0, -30.0), position)
    return MatchOutcome("3d3d", result, ctx, t, (), ())


@pytest.mark.parametrize("position", ["HFS", "HFP", "FFS", "FFP", "HFDL"])
def test_adjustment_adds_exactly_to_the_correction(position: str) -> None:
    o = _outcome(position)
    before = o.couch()
    after = o.adjusted(1.5, -2.0, 0.75)
    c = after.couch()
    assert c is not None and before is not None
    assert c["lat_mm"] == pytest.approx(before["lat_mm"] + 1.5, abs=1e-9)
    assert c["lng_mm"] == pytest.approx(before["lng_mm"] - 2.0, abs=1e-9)
    assert c["vrt_mm"] == pytest.approx(before["vrt_mm"] + 0.75, abs=1e-9)
    for k in ("rtn_deg", "pitch_deg", "roll_deg"):  # rotations untouched
        assert c[k] == pytest.approx(before[k], abs=1e-9)
    report = after.report()
    assert report["adjustment_mm"] == {"lat_mm": 1.5, "lng_mm": -2.0, "vrt_mm": 0.75}
    assert np.allclose(report["unadjusted_matrix"], o.transform.matrix)
    assert not np.allclose(report["matrix"], o.transform.matrix)


def test_three_dof_report_has_no_rotations_and_no_isocenter_means_no_couch() -> None:
    o = _outcome("HFS", dof=3)
    assert set(o.couch() or {}) == {"vrt_mm", "lng_mm", "lat_mm"}
    blind = MatchOutcome("3d3d", o.result, MatchContext(None, None, "HFS"), o.transform, (), ())
    assert blind.couch() is None and blind.report()["couch"] is None
