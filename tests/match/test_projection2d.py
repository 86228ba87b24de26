"""MATCH-1 simple 2D and MATCH-2 2D/2D (translation, and 6 DoF by 2D/3D) on DRRs of a known setup error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.match import match_2d, match_2d2d
from openigrt.match.projection2d3d import match_2d3d
from tests.match.synthetic import FIDUCIALS_MM, planning_ct

projection = pytest.importorskip("openigrt.geometry.projection")
drr = pytest.importorskip("openigrt.sim.drr")

ISO = (0.0, 0.0, 0.0)
TRANSLATION_TOL_MM = 0.8   # 2D/2D translation-only, pure translations (parallax bias included)
SIX_DOF_TOL_MM = 0.5


def _small(angle: float):
    """512 x 384 kV imager at 0.776 mm (the 1024 x 768 panel binned 2x): fast tests."""
    return projection.kv_geometry(angle, isocenter_mm=ISO, rows=384, columns=512, pixel_spacing_mm=(0.776, 0.776))


@pytest.fixture(scope="module")
def setup(ct_fine):
    geoms = [_small(0.0), _small(90.0)]
    renderer = drr.DrrRenderer(ct_fine)
    return {"geoms": geoms, "renderer": renderer, "refs": [renderer.render(g) for g in geoms]}


def _acquire(setup, truth, seed, *, gain=1.3, offset=0.2, noise=0.03):
    rng = np.random.default_rng(seed)
    return [ndimage.gaussian_filter(setup["renderer"].render(g, setup_error=truth), 1.0) * gain + offset
            + rng.normal(0, noise, (g.rows, g.columns)) for g in setup["geoms"]]


def _tre(result, truth):
    return np.linalg.norm(result.transform.apply(FIDUCIALS_MM) - truth.apply(FIDUCIALS_MM), axis=1)


@pytest.mark.parametrize("shift", [(8.0, -5.0, 12.0), (-15.0, 15.0, -15.0)])
def test_2d2d_translation(setup, shift):
    truth = RigidTransform.from_parameters(translation_mm=shift)
    res = match_2d2d(setup["refs"], _acquire(setup, truth, 1), setup["geoms"], isocenter_mm=ISO)
    assert res.dof == 3 and np.allclose(res.transform.rotation, np.eye(3))
    np.testing.assert_allclose(res.transform.translation_mm, shift, atol=TRANSLATION_TOL_MM)
    assert res.metric > 0.5
    assert all(v["residual_mm"] < 1.0 for v in res.details["views"])


def _half(ct: Volume) -> Volume:
    """2× block mean in-plane (the DRR refinement's working model, as the workflow builds it)."""
    a = ct.array
    nz, ny, nx = a.shape
    return Volume(a.reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4)),
                  (ct.origin_mm[0] + 0.5 * ct.spacing_mm[0], ct.origin_mm[1] + 0.5 * ct.spacing_mm[1], ct.origin_mm[2]),
                  (2 * ct.spacing_mm[0], 2 * ct.spacing_mm[1], ct.spacing_mm[2]))


@pytest.mark.parametrize("shift", [(8.0, -5.0, 12.0), (-15.0, 15.0, -15.0)])
def test_2d2d_translation_refined_with_drrs(setup, ct_fine, shift):
    truth = RigidTransform.from_parameters(translation_mm=shift)
    acq = _acquire(setup, truth, 5)
    renderer = drr.DrrRenderer(_half(ct_fine))
    res = match_2d2d(setup["refs"], acq, setup["geoms"], isocenter_mm=ISO, renderer=renderer)
    assert res.details["refined_with_drr"] and res.dof == 3 and np.allclose(res.transform.rotation, np.eye(3))
    np.testing.assert_allclose(res.transform.translation_mm, shift, atol=0.3)
    again = match_2d2d(setup["refs"], acq, setup["geoms"], isocenter_mm=ISO, renderer=renderer)
    assert np.array_equal(again.transform.matrix, res.transform.matrix)  # deterministic


def test_drr_of_a_window_is_the_window_of_the_drr(setup):
    from openigrt.match.projection2d3d import _window_geometry, bin_geometry

    g = bin_geometry(setup["geoms"][1], 2)
    full = setup["renderer"].render(g)
    win = setup["renderer"].render(_window_geometry(g, 30, 41, 100, 77))
    np.testing.assert_allclose(win, full[30:130, 41:118], rtol=1e-4, atol=1e-4)


def test_simple_2d_sees_only_in_plane_components(setup):
    truth = RigidTransform.from_parameters(translation_mm=(6.0, -7.0, 9.0))
    acq = _acquire(setup, truth, 2)
    res = match_2d(setup["refs"][0], acq[0], setup["geoms"][0], isocenter_mm=ISO, rotation=False)
    t = res.transform.translation_mm
    # gantry 0 (HFS): the beam runs along patient y; x and z are visible, y is not
    assert abs(t[1]) < 1e-6
    np.testing.assert_allclose(t[[0, 2]], [6.0, 9.0], atol=TRANSLATION_TOL_MM)


def test_simple_2d_in_plane_rotation(setup):
    truth = RigidTransform.from_parameters(rotation_deg=(0.0, 2.0, 0.0), center_mm=ISO)  # about the AP axis
    acq = _acquire(setup, truth, 3)
    res = match_2d(setup["refs"][0], acq[0], setup["geoms"][0], isocenter_mm=ISO, rotation=True)
    axis_angle = res.transform.rotation_deg()
    assert abs(axis_angle[1] - 2.0) < 0.3 and abs(axis_angle[0]) < 0.05 and abs(axis_angle[2]) < 0.05


def test_2d2d_six_dof():
    ct = planning_ct(shape=(90, 160, 200), spacing=(1.0, 1.0, 2.0))  # 180 mm long: its cut ends stay out of the ROI
    geoms = [_small(0.0), _small(90.0)]
    renderer = drr.DrrRenderer(ct)
    setup = {"geoms": geoms, "renderer": renderer}
    truth = RigidTransform.from_parameters(translation_mm=(5.0, -8.0, 7.0), rotation_deg=(2.5, -2.0, 3.0), center_mm=ISO)
    a = ct.array
    nz, ny, nx = a.shape
    half = Volume(a.reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4)),
                  (ct.origin_mm[0] + 0.5, ct.origin_mm[1] + 0.5, ct.origin_mm[2]), (2.0, 2.0, ct.spacing_mm[2]))
    res = match_2d3d(_acquire(setup, truth, 4), geoms, drr.DrrRenderer(half), isocenter_mm=ISO,
                     references=[renderer.render(g) for g in geoms], roi_half_mm=60.0)
    assert res.dof == 6
    assert _tre(res, truth).max() < SIX_DOF_TOL_MM
    assert res.transform.compose(truth.inverse()).rotation_angle_deg() < 0.3


def test_blank_acquired_image_is_a_failure(setup):
    blank = [np.zeros((g.rows, g.columns)) for g in setup["geoms"]]
    with pytest.raises(RegistrationError, match="blank"):
        match_2d2d(setup["refs"], blank, setup["geoms"], isocenter_mm=ISO)


def test_unrelated_image_is_a_failure(setup):
    rng = np.random.default_rng(9)
    noise = [ndimage.gaussian_filter(rng.normal(0, 1, (g.rows, g.columns)), 2.0) for g in setup["geoms"]]
    with pytest.raises(RegistrationError, match="NCC|overlap"):
        match_2d2d(setup["refs"], noise, setup["geoms"], isocenter_mm=ISO)
