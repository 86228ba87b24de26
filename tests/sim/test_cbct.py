"""Simulated CBCT: anatomy at T(p), documented field of view and degradations, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.couch import setup_error_from_table_top
from openigrt.geometry.rigid import RigidTransform
from openigrt.sim.cbct import CbctParams, simulate_cbct
from openigrt.sim.phantom import PhantomParams, make_phantom


GRID = dict(columns=256, rows=256, pixel_mm=1.875, slices=50, slice_mm=4.0)


@pytest.fixture(scope="module")
def ph():
    return make_phantom(PhantomParams(**GRID))


@pytest.fixture(scope="module")
def bare():
    return make_phantom(PhantomParams(**GRID, fiducial_offsets=()))


def _marker_centroid(vol, excess, near_mm, half=6) -> np.ndarray:
    ijk = np.rint(vol.patient_to_index([near_mm])[0]).astype(int)
    lo, hi = ijk - half, ijk + half + 1
    w = excess[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].astype(float)
    kk, jj, ii = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    return vol.index_to_patient_mm([[(w * ii).sum() / w.sum(), (w * jj).sum() / w.sum(), (w * kk).sum() / w.sum()]])[0]


def test_fiducials_appear_at_T_of_p(ph, bare) -> None:
    t = setup_error_from_table_top(lat_mm=4.0, lng_mm=-6.0, vrt_mm=2.5, rtn_deg=2.0, roll_deg=-1.0,
                                   planned_isocenter_mm=ph.isocenter_mm, patient_position="HFS")
    params = CbctParams(noise_hu=0.0)  # the same degradations on both, minus the random part

    def excess(transform: RigidTransform) -> tuple:
        cb = simulate_cbct(ph.volume, setup_error=transform, isocenter_mm=ph.isocenter_mm, params=params)
        cb0 = simulate_cbct(bare.volume, setup_error=transform, isocenter_mm=ph.isocenter_mm, params=params)
        return cb, cb.array.astype(float) - cb0.array

    cb_ref, ex_ref = excess(RigidTransform.identity())
    cb, ex = excess(t)
    for p, tp in zip(ph.fiducials_mm, t.apply(ph.fiducials_mm)):
        # displacement of the (resampled, blurred) marker blob = displacement T(p) - p; linear
        # resampling of 4 mm CT slices onto 2 mm CBCT slices moves a blob centroid by up to ~0.2 mm
        moved = _marker_centroid(cb, ex, tp) - _marker_centroid(cb_ref, ex_ref, p)
        np.testing.assert_allclose(moved, tp - p, atol=0.25)


def test_field_of_view_length_and_fill(ph) -> None:
    params = CbctParams.small()
    cb = simulate_cbct(ph.volume, setup_error=RigidTransform.identity(), isocenter_mm=ph.isocenter_mm,
                       params=params, seed=1)
    nz, ny, nx = cb.shape
    assert nz * params.slice_mm == pytest.approx(170.0) and nx == ny == 84
    np.testing.assert_allclose(cb.center_mm(), ph.isocenter_mm, atol=1e-9)
    # corners are outside the 250 mm cylinder -> fill value; the body inside is not
    assert (cb.array[:, 0, 0] == -1000).all() and (cb.array[:, -1, -1] == -1000).all()
    c = cb.array[:, ny // 2, nx // 2]
    assert (c > -300).all()


def test_degradations_are_the_documented_ones(ph) -> None:
    ident = RigidTransform.identity()
    clean = simulate_cbct(ph.volume, setup_error=ident, isocenter_mm=ph.isocenter_mm,
                          params=CbctParams.small(hu_scale=1.0, hu_offset=0.0, cupping_hu=0.0, shading_hu=0.0,
                                                  noise_hu=0.0))
    a = simulate_cbct(ph.volume, setup_error=ident, isocenter_mm=ph.isocenter_mm, params=CbctParams.small(), seed=5)
    b = simulate_cbct(ph.volume, setup_error=ident, isocenter_mm=ph.isocenter_mm, params=CbctParams.small(), seed=5)
    c = simulate_cbct(ph.volume, setup_error=ident, isocenter_mm=ph.isocenter_mm, params=CbctParams.small(), seed=6)
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)
    inside = clean.array > -500
    diff = (a.array.astype(float) - clean.array)[inside]
    p = CbctParams.small()
    assert diff.std() > 0.8 * p.noise_hu  # noise is there
    # the mean offset in soft tissue follows scale, offset and cupping: between the edge and centre values
    assert -40.0 - 60.0 - 15.0 < np.median(diff) < -40.0 + 5.0
    # cupping + shading, isolated from the HU miscalibration: -cupping (1 - r²/R²) + shading (x + y/2) / R
    bias = a.array.astype(float) - (p.hu_scale * clean.array + p.hu_offset)
    nz, ny, nx = a.shape

    def at(x_mm: float, y_mm: float) -> float:  # mean over a 3x3 patch, all slices (relative to the isocenter)
        i, j = int(round((nx - 1) / 2 + x_mm / p.pixel_mm)), int(round((ny - 1) / 2 + y_mm / p.pixel_mm))
        return float(bias[:, j - 1: j + 2, i - 1: i + 2].mean())

    assert at(0.0, 0.0) == pytest.approx(-p.cupping_hu, abs=6.0)
    r = 100.0 / (p.fov_diameter_mm / 2)
    assert at(0.0, -100.0) == pytest.approx(-p.cupping_hu * (1 - r * r) - p.shading_hu * 0.5 * r, abs=6.0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="fov_diameter_mm"):
        CbctParams(fov_diameter_mm=0.0)
