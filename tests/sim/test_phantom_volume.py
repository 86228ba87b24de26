"""Phantom CT (array level): deterministic, anatomy where documented, markers where the truth says."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.sim.phantom import HU, PhantomParams, make_phantom


@pytest.fixture(scope="module")
def small():
    return make_phantom(PhantomParams.small())


def _hu_at(ph, xyz) -> float:
    i, j, k = np.rint(ph.volume.patient_to_index([xyz])[0]).astype(int)
    return float(ph.volume.array[k, j, i])


def test_same_seed_same_volume_other_seed_other_texture(small) -> None:
    again = make_phantom(PhantomParams.small())
    np.testing.assert_array_equal(small.volume.array, again.volume.array)
    other = make_phantom(PhantomParams.small(seed=1))
    assert not np.array_equal(small.volume.array, other.volume.array)
    np.testing.assert_array_equal(small.fiducials_mm, other.fiducials_mm)


def test_grid_is_a_planning_ct(small) -> None:
    full = PhantomParams()
    assert (full.columns, full.rows, full.slices) == (512, 512, 100)
    assert full.pixel_mm == pytest.approx(0.9375) and full.slice_mm == 2.0
    v = small.volume
    assert v.array.dtype == np.int16 and v.shape == (40, 160, 160)
    np.testing.assert_allclose(v.center_mm(), [0.0, 0.0, 0.0], atol=1e-9)
    assert -1024 <= v.array.min() and v.array.max() <= 3071


def test_anatomy_at_documented_places(small) -> None:
    iso = np.asarray(small.isocenter_mm)
    assert _hu_at(small, (0.0, -200.0, 0.0)) == HU.air                      # anterior to the body
    assert 20 < _hu_at(small, (-60.0, -40.0, 0.0)) < 80                     # soft tissue
    assert -160 < _hu_at(small, (0.0, -95.0, 0.0)) < -40                    # fat layer under the skin
    assert _hu_at(small, (0.0, 63.0, 0.0 + 1.0)) > 250                      # vertebral body (not a disc)
    assert _hu_at(small, (88.0, 8.0, -60.0)) > 250                          # femoral head
    assert _hu_at(small, (68.0, 5.0, 85.0)) < -600                          # lung at the superior end
    assert _hu_at(small, iso + (0.0, 29.0, -4.0)) < -700                    # rectal gas next to the target
    assert _hu_at(small, (0.0, small.couch_top_y_mm + 1.5, 0.0)) > -900     # couch top skin / core
    assert small.ptv.contains([iso])[0]


def test_fiducials_near_the_target_at_sub_voxel_positions() -> None:
    ph = make_phantom(PhantomParams(slices=24, isocenter_mm=(3.5, 12.0, -1.3)))
    assert len(ph.fiducials) >= 3
    assert ph.ptv.contains(ph.fiducials_mm).all()
    v = ph.volume
    frac = v.patient_to_index(ph.fiducials_mm) % 1.0
    assert (np.abs(frac - np.rint(frac)) > 0.05).any(axis=1).all()   # not on voxel centres
    assert (np.abs(frac[:, 2] - 0.5) < 0.45).any()                    # at least one between two slices
    bare = make_phantom(PhantomParams(slices=24, fiducial_offsets=()))
    excess = v.array.astype(float) - bare.volume.array
    for f in ph.fiducials:
        ijk = np.rint(v.patient_to_index([f.center_mm])[0]).astype(int)
        lo, hi = ijk - 6, ijk + 7
        w = excess[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        assert w.max() > 2000 and v.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].max() == 3071
        kk, jj, ii = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        cen = v.index_to_patient_mm([[(w * ii).sum() / w.sum(), (w * jj).sum() / w.sum(), (w * kk).sum() / w.sum()]])
        assert np.linalg.norm(cen[0] - f.center_mm) < 0.3  # voxelised marker centroid vs truth, mm


def test_contours_for_the_structure_set(small) -> None:
    z = float(small.slice_z_mm()[20])
    body = small.body_contour(z)
    assert body.shape[1] == 3 and np.all(body[:, 2] == z)
    a, b = small.body_semi_axes_mm
    np.testing.assert_allclose((body[:, 0] / a) ** 2 + (body[:, 1] / b) ** 2, 1.0)
    ptv = small.ptv_contour(small.isocenter_mm[2])
    assert ptv is not None and small.ptv.contains(ptv * [0.99, 0.99, 1.0] + [0.01 * small.isocenter_mm[0],
                                                                             0.01 * small.isocenter_mm[1], 0]).all()
    assert small.ptv_contour(small.isocenter_mm[2] + 30.0) is None
    truth = small.truth()
    assert truth["isocenter_mm"] == list(small.isocenter_mm) and len(truth["fiducials"]) == 3


def test_bad_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="pixel_mm"):
        PhantomParams(pixel_mm=0.0)
