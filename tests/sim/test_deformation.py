"""Smooth non-rigid change (sim.deformation): tissue goes where the field says, bone stays, truth is its rigid fit."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.volume import Volume
from openigrt.sim.deformation import Deformation, LocalPush, OrganFilling, WeightLoss, rigid_motion, warp


def _grid(value: float = 40.0) -> Volume:
    return Volume(np.full((40, 60, 60), value, np.float32), (-89.0, -89.0, -58.5), (3.0, 3.0, 3.0))


def _blob(volume: Volume, centre: tuple[float, float, float]) -> Volume:
    zz, yy, xx = np.meshgrid(*(volume.origin_mm[a] + volume.spacing_mm[a] * np.arange(n)
                               for a, n in ((2, 40), (1, 60), (0, 60))), indexing="ij")
    r2 = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2
    return volume.with_array((40.0 + 2000.0 * np.exp(-r2 / (2 * 3.0**2))).astype(np.float32))


def _centroid(volume: Volume) -> np.ndarray:
    w = np.clip(np.asarray(volume.array, float) - 40.0, 0, None)
    kji = np.argwhere(w > 1.0)
    weights = w[tuple(kji.T)]
    return volume.index_to_patient_mm([(kji[:, ::-1] * weights[:, None]).sum(0) / weights.sum()])[0]


def test_warp_moves_tissue_to_phi_of_its_position() -> None:
    p = (10.0, -5.0, 6.0)
    ct = _blob(_grid(), p)
    d = Deformation.build(ct, [OrganFilling((0.0, 0.0, 0.0), 40.0, 12.0, (0.0, 20.0, -20.0)),
                               LocalPush((20.0, 10.0, 0.0), (0.0, -1.0, 0.0), 25.0, 5.0)]).check()
    moved = d.apply([p])[0]
    assert np.linalg.norm(moved - p) > 4.0
    np.testing.assert_allclose(_centroid(warp(ct, d)), moved, atol=0.3)


def test_rigid_motion_of_a_uniform_push_is_that_translation() -> None:
    ct = _grid()
    d = Deformation.build(ct, [LocalPush((0.0, 0.0, 0.0), (1.0, 2.0, 2.0), 1e6, 6.0)])
    pts = np.random.default_rng(0).uniform(-30, 30, (200, 3))
    m = rigid_motion(d, pts)
    np.testing.assert_allclose(m.translation_mm, np.array([1.0, 2.0, 2.0]) * 2.0, atol=1e-3)
    assert m.rotation_angle_deg() < 1e-3


def test_bone_does_not_deform_and_weight_loss_shrinks_the_skin() -> None:
    ct = _grid()
    bone = np.zeros(ct.shape, bool)
    bone[:, 25:35, 25:35] = True  # a bone column at the centre
    d = Deformation.build(ct, [WeightLoss((0.0, 0.0), 80.0, 5.0), LocalPush((0.0, 0.0, 0.0), (1, 0, 0), 30.0, 6.0)],
                          bone_mask=bone)
    assert np.linalg.norm(d.displacement([[0.0, 0.0, 0.0]])[0]) < 0.5  # inside the bone: (almost) nothing
    skin = d.displacement([[80.0, 0.0, 0.0], [0.0, -80.0, 0.0]])
    np.testing.assert_allclose(skin[:, :2], [[-5.0, 0.0], [0.0, 5.0]], atol=0.2)


def test_a_folding_field_is_refused() -> None:
    with pytest.raises(ValueError, match="fold"):
        Deformation.build(_grid(), [LocalPush((0.0, 0.0, 0.0), (1, 0, 0), 5.0, 20.0)]).check()
