"""MATCH-3: 3D/3D CBCT-to-CT registration recovers known rigid setup errors, or fails loudly."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.match import BoxROI, MatchType, register_3d3d
from tests.match.synthetic import FIDUCIALS_MM, cbct, planning_ct

TRE_TOL_MM = 0.3
ROT_TOL_DEG = 0.1


@pytest.fixture(scope="module")
def ct() -> Volume:
    return planning_ct()


def _tre(result, truth) -> np.ndarray:
    return np.linalg.norm(result.transform.apply(FIDUCIALS_MM) - truth.apply(FIDUCIALS_MM), axis=1)


@pytest.mark.parametrize("translation, rotation", [
    ((12.0, -9.0, 14.0), (2.0, -1.5, 2.5)),
    ((-15.0, 15.0, -15.0), (-3.0, 2.0, -1.0)),
])
def test_six_dof_recovers_setup_error(ct, translation, rotation):
    truth = RigidTransform.from_parameters(translation_mm=translation, rotation_deg=rotation, center_mm=(5, -3, 2))
    result = register_3d3d(ct, cbct(ct, truth, seed=3), dof=6)
    assert result.match_type is MatchType.VOLUME_3D
    assert _tre(result, truth).max() < TRE_TOL_MM
    rot_err = result.transform.compose(truth.inverse()).rotation_angle_deg()
    assert rot_err < ROT_TOL_DEG
    assert result.metric > 0.8 and result.overlap_fraction > 0.9


def test_translation_only_converges_from_15mm_on_every_axis(ct):
    truth = RigidTransform.from_parameters(translation_mm=(15.0, -15.0, 15.0))
    result = register_3d3d(ct, cbct(ct, truth, seed=4), dof=3)
    assert np.allclose(result.transform.rotation, np.eye(3))
    np.testing.assert_allclose(result.transform.translation_mm, truth.translation_mm, atol=0.25)


def test_deterministic(ct):
    truth = RigidTransform.from_parameters(translation_mm=(3.3, 4.4, -5.5), rotation_deg=(1, 1, 1))
    cb = cbct(ct, truth, seed=5)
    a = register_3d3d(ct, cb)
    b = register_3d3d(ct, cb)
    assert np.array_equal(a.transform.matrix, b.transform.matrix)
    assert a.iterations == b.iterations and a.metric == b.metric


def test_roi_box_restricts_and_still_recovers(ct):
    truth = RigidTransform.from_parameters(translation_mm=(-6.0, 7.0, 4.0), rotation_deg=(0.0, 0.0, 1.5))
    roi = BoxROI(center_mm=(0.0, 0.0, 0.0), half_size_mm=(45.0, 45.0, 30.0))
    full = register_3d3d(ct, cbct(ct, truth, seed=6))
    boxed = register_3d3d(ct, cbct(ct, truth, seed=6), roi=roi)
    assert boxed.details["levels"][-1]["samples"] < full.details["levels"][-1]["samples"]
    assert _tre(boxed, truth).max() < TRE_TOL_MM


def test_blank_verification_is_a_failure(ct):
    blank = Volume(np.full((20, 60, 60), -1000.0, np.float32), (-30.0, -30.0, -20.0), (1.0, 1.0, 2.0))
    with pytest.raises(RegistrationError, match="blank|no valid voxel"):
        register_3d3d(ct, blank)


def test_no_overlap_is_a_failure(ct):
    cb = cbct(ct, RigidTransform.identity(), seed=7)
    far = Volume(cb.array, (cb.origin_mm[0] + 900.0, cb.origin_mm[1], cb.origin_mm[2]), cb.spacing_mm)
    with pytest.raises(RegistrationError, match="overlap"):
        register_3d3d(ct, far)


def test_unrelated_image_is_a_failure(ct):
    rng = np.random.default_rng(11)
    cb = cbct(ct, RigidTransform.identity(), seed=8)
    noise = cb.with_array(np.where(cb.array > -3000, rng.normal(0, 300, cb.shape), cb.array).astype(np.float32))
    with pytest.raises(RegistrationError, match="NCC|diverged|overlap"):
        register_3d3d(ct, noise)
