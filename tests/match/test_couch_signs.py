"""MATCH-6 end to end: a setup error given in table-top terms → simulated CBCT → 3D/3D match →
couch correction that undoes it, for HFS, HFP and FFS (E's geometry.couch conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.rigid import RigidTransform
from openigrt.match import register_3d3d

couch = pytest.importorskip("openigrt.geometry.couch")
phantom = pytest.importorskip("openigrt.sim.phantom")
cbct = pytest.importorskip("openigrt.sim.cbct")

TOL_MM = 0.6
TOL_DEG = 0.3


@pytest.fixture(scope="module")
def ph():
    return phantom.make_phantom(phantom.PhantomParams(columns=200, rows=160, slices=50, pixel_mm=1.5, slice_mm=3.0))


@pytest.mark.parametrize("position, dof", [("HFS", 3), ("HFS", 6), ("HFP", 6), ("FFS", 6)])
def test_setup_error_in_correction_out(ph, position, dof):
    iso = ph.isocenter_mm
    motion = {"lat_mm": 6.0, "lng_mm": -9.0, "vrt_mm": 4.0}
    if dof == 6:
        motion.update(rtn_deg=1.5, pitch_deg=-1.0, roll_deg=2.0)
    truth = couch.setup_error_from_table_top(**motion, planned_isocenter_mm=iso, patient_position=position)
    params = cbct.CbctParams(pixel_mm=1.5, slice_mm=3.0, columns=150, length_mm=150.0)
    vol = cbct.simulate_cbct(ph.volume, setup_error=truth, isocenter_mm=iso, params=params, seed=5)
    res = register_3d3d(ph.volume, vol, dof=dof)
    got = couch.couch_correction(res.transform, planned_isocenter_mm=iso, initlaseriso_mm=iso,
                                 patient_position=position, six_dof=dof == 6)
    expected = couch.couch_correction(truth, planned_isocenter_mm=iso, initlaseriso_mm=iso,
                                      patient_position=position, six_dof=dof == 6)
    # the correction undoes the displacement: opposite signs of the table-top setup error
    for key in ("lat_mm", "lng_mm", "vrt_mm"):
        assert getattr(expected, key) == pytest.approx(-motion[key], abs=1e-6 if dof == 3 else 0.5)
        assert getattr(got, key) == pytest.approx(getattr(expected, key), abs=TOL_MM), key
    if dof == 6:
        for key in ("rtn_deg", "pitch_deg", "roll_deg"):
            assert getattr(got, key) == pytest.approx(getattr(expected, key), abs=TOL_DEG), key
            assert np.sign(getattr(got, key)) == -np.sign(motion[key])
