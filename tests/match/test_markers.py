"""MATCH-4 marker detection in the CT and MATCH-5 marker match in two projections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.match import detect_markers, match_markers
from openigrt.match.markers import split_markers
from tests.match.synthetic import FIDUCIALS_MM, planning_ct

projection = pytest.importorskip("openigrt.geometry.projection")
drr = pytest.importorskip("openigrt.sim.drr")

DETECT_TOL_MM = 0.5
MATCH_TOL_MM = 0.5


def _nearest(found: np.ndarray) -> np.ndarray:
    return np.linalg.norm(found[:, None, :] - FIDUCIALS_MM[None, :, :], axis=2).min(axis=0)


def test_detects_every_fiducial_and_nothing_else(ct_fine):
    found = np.array([m.position_mm for m in detect_markers(ct_fine)])
    assert len(found) == len(FIDUCIALS_MM)  # no bone, couch or lung edge taken for a marker
    assert _nearest(found).max() < DETECT_TOL_MM


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 3.0), (1.2, 1.2, 2.5)])
def test_detection_is_sub_voxel_between_slices(spacing):
    ct = planning_ct(shape=(int(100 / spacing[2]), int(160 / spacing[1]), int(200 / spacing[0])), spacing=spacing)
    found = np.array([m.position_mm for m in detect_markers(ct)])
    assert len(found) == len(FIDUCIALS_MM)
    assert _nearest(found).max() < DETECT_TOL_MM


def test_no_marker_in_a_ct_without_markers(ct_fine):
    _, anatomy = split_markers(ct_fine)
    assert detect_markers(anatomy) == ()


@pytest.fixture(scope="module")
def views(ct_fine):
    iso = (0.0, 0.0, 0.0)
    geoms = [projection.kv_geometry(a, isocenter_mm=iso) for a in (0.0, 90.0)]
    markers, anatomy = split_markers(ct_fine)
    return {
        "geoms": geoms,
        "renderer": drr.DrrRenderer(ct_fine),
        "templates": [drr.DrrRenderer(markers).render(g) for g in geoms],
        "anatomy": [drr.DrrRenderer(anatomy).render(g) for g in geoms],
        "planned": np.array([m.position_mm for m in detect_markers(ct_fine)]),
    }


def _acquire(views, truth, seed):
    rng = np.random.default_rng(seed)
    return [ndimage.gaussian_filter(views["renderer"].render(g, setup_error=truth), 1.0) * 0.8 + 0.3
            + rng.normal(0, 0.02, (g.rows, g.columns)) for g in views["geoms"]]


@pytest.mark.parametrize("shift", [(12.0, -9.0, 14.0), (-14.0, 15.0, -6.0)])
def test_marker_match_recovers_the_shift(views, shift):
    truth = RigidTransform.from_parameters(translation_mm=shift)
    res = match_markers(views["planned"], _acquire(views, truth, 1), views["geoms"], templates=views["templates"],
                        anatomy=views["anatomy"])
    err = np.linalg.norm(res.transform.apply(FIDUCIALS_MM) - truth.apply(FIDUCIALS_MM), axis=1)
    assert err.max() < MATCH_TOL_MM
    assert not any(m.outlier for m in res.markers)
    assert all(m.residual_mm < 1.0 for m in res.markers)


def test_migrated_marker_is_flagged_not_hidden(views):
    truth = RigidTransform.from_parameters(translation_mm=(5.0, -4.0, 6.0))
    moved = FIDUCIALS_MM.copy()
    moved[1] += (0.0, 0.0, 6.0)  # marker 2 migrated 6 mm cranially since the planning CT
    today = drr.DrrRenderer(planning_ct(shape=(40, 160, 200), spacing=(1.0, 1.0, 2.0), fiducials=moved))
    rng = np.random.default_rng(2)
    acq = [ndimage.gaussian_filter(today.render(g, setup_error=truth), 1.0) + rng.normal(0, 0.02, (g.rows, g.columns))
           for g in views["geoms"]]
    res = match_markers(views["planned"], acq, views["geoms"], templates=views["templates"], anatomy=views["anatomy"])
    migrated = int(np.argmin(np.linalg.norm(views["planned"] - FIDUCIALS_MM[1], axis=1)))
    flags = [m.outlier for m in res.markers]
    assert flags == [i == migrated for i in range(len(flags))]
    assert res.markers[migrated].residual_mm > 2.0  # a lower bound when it moved further than refine_mm
    np.testing.assert_allclose(res.transform.translation_mm, truth.translation_mm, atol=MATCH_TOL_MM)


def test_blank_projection_is_a_failure(views):
    blank = [np.zeros((g.rows, g.columns)) for g in views["geoms"]]
    with pytest.raises(RegistrationError, match="blank"):
        match_markers(views["planned"], blank, views["geoms"], templates=views["templates"])
