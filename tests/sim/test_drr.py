"""DRR renderer: lands where ProjectionGeometry.project says (0.1 px), right values, exact skipping, plastimatch."""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.iec61217 import rot_z
from openigrt.geometry.projection import ProjectionGeometry, kv_geometry, mv_geometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.sim.drr import KV_ATTENUATION, MV_ATTENUATION, DrrRenderer, render_drr

CENTROID_TOLERANCE_PX = 0.1


def _point_volume(ijk: tuple[int, int, int], *, spacing=(1.0, 1.0, 1.0), direction=None,
                  origin=(-20.0, -20.0, -20.0), shape=(41, 41, 41)) -> Volume:
    hu = np.full(shape, -1000, np.int16)
    hu[ijk[2], ijk[1], ijk[0]] = 2000
    return Volume(hu, origin_mm=origin, spacing_mm=spacing, direction=np.eye(3) if direction is None else direction)


def _centroid(img: np.ndarray) -> np.ndarray:
    rr, cc = np.mgrid[0: img.shape[0], 0: img.shape[1]]
    w = img.astype(float)
    return np.array([(w * cc).sum(), (w * rr).sum()]) / w.sum()


GEOMETRIES = {
    "AP HFS": dict(gantry_angle_deg=0.0),
    "LAT 90": dict(gantry_angle_deg=90.0),
    "oblique 33.7 FFP couch 15": dict(gantry_angle_deg=33.7, patient_position="FFP", patient_support_angle_deg=15.0),
    "PA-oblique 217 HFDL": dict(gantry_angle_deg=217.0, patient_position="HFDL"),
    "shifted rotated receptor": dict(gantry_angle_deg=300.0, receptor_translation_mm=(11.0, -6.0, -500.0),
                                     receptor_angle_deg=7.0, rt_image_position_mm=(-50.0, 45.0)),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("ijk", [(20, 20, 20), (27, 14, 23)])
def test_bright_voxel_lands_on_project(name: str, ijk: tuple[int, int, int]) -> None:
    vol = _point_volume(ijk, spacing=(0.9, 1.1, 1.7))
    p = vol.index_to_patient_mm([ijk])[0]
    g = ProjectionGeometry(rows=240, columns=280, pixel_spacing_mm=(0.4, 0.35), isocenter_mm=(1.0, -2.0, 3.0),
                           **GEOMETRIES[name])
    target = g.project([p])[0]
    # the whole blob (a few pixels wide) must be inside the image for the centroid to mean anything
    assert 20 < target[0] < 260 and 20 < target[1] < 220
    img = render_drr(vol, g)
    assert img.min() >= 0.0 and img.max() > 0.0
    np.testing.assert_allclose(_centroid(img), target, atol=CENTROID_TOLERANCE_PX)


def test_volume_with_a_flipped_direction_matrix() -> None:
    # an axial CT stored feet-to-head reversed (direction z = -1) must render identically in patient space
    ijk = (23, 18, 12)
    direction = np.diag([1.0, 1.0, -1.0])
    vol = _point_volume(ijk, direction=direction, origin=(-20.0, -20.0, 20.0))
    p = vol.index_to_patient_mm([ijk])[0]
    g = kv_geometry(90.0, rows=120, columns=160, pixel_spacing_mm=(0.5, 0.5), isocenter_mm=(0, 0, 0))
    np.testing.assert_allclose(_centroid(render_drr(vol, g)), g.project([p])[0], atol=CENTROID_TOLERANCE_PX)


def test_line_integral_of_a_water_slab() -> None:
    # 100 mm of water (0 HU) between y = -50 and +50: the central AP ray integrates mu_water * 100 mm
    hu = np.full((30, 140, 60), -1000, np.int16)
    hu[:, 20:120, :] = 0  # rows 20..119 at 1 mm: y in [-50, 49] -> 100 voxel planes ~ 100 mm
    vol = Volume(hu, origin_mm=(-30.0, -70.0, -15.0), spacing_mm=(1.0, 1.0, 1.0))
    g = kv_geometry(0.0, rows=21, columns=21, pixel_spacing_mm=(1.0, 1.0), isocenter_mm=(0.5, 0.0, 0.0))
    for model in (KV_ATTENUATION, MV_ATTENUATION):
        img = render_drr(vol, g, attenuation=model)
        # Joseph: 100 planes at 1 mm, each contributing mu; the edge planes of the slab are half-ramped
        assert img[10, 10] == pytest.approx(model.mu_water_per_mm * 100.0, rel=0.015)


def test_setup_error_equals_moving_the_volume() -> None:
    # rendering with T must equal rendering a CT whose grid was moved by T (here: 90 deg about z + shift)
    rng = np.random.default_rng(1)
    hu = (rng.random((24, 40, 32)) * 1500 - 500).astype(np.int16)
    vol = Volume(hu, origin_mm=(-16.0, -20.0, -12.0), spacing_mm=(1.0, 1.0, 1.0))
    t = RigidTransform.from_parameters(translation_mm=(3.0, -2.0, 4.0), rotation_deg=(0, 0, 90.0))
    moved = Volume(hu, origin_mm=tuple(t.apply([vol.origin_mm])[0]), spacing_mm=vol.spacing_mm,
                   direction=rot_z(90.0) @ vol.direction)
    for gantry in (0.0, 90.0, 45.0):
        g = kv_geometry(gantry, rows=64, columns=80, pixel_spacing_mm=(1.0, 1.0))
        np.testing.assert_allclose(DrrRenderer(vol).render(g, setup_error=t), DrrRenderer(moved).render(g),
                                   rtol=1e-5, atol=1e-5)


def test_empty_space_skipping_is_exact() -> None:
    from openigrt.sim.phantom import PhantomParams, make_phantom

    ph = make_phantom(PhantomParams.small())
    r = DrrRenderer(ph.volume)
    assert 0.05 < r.occupancy.mean() < 0.95  # the phantom does have empty blocks to skip
    # a rotated setup error: the rows are not coherent, every ray is clipped and trimmed on its own
    # (the coherent sweep of couch-0 views needs no trimming; tests/sim/test_drr_golden.py)
    tilt = RigidTransform.from_parameters(translation_mm=(2.0, -3.0, 1.0), rotation_deg=(1.5, -2.0, 2.5))
    for gantry in (0.0, 90.0, 131.0):
        g = kv_geometry(gantry, isocenter_mm=ph.isocenter_mm, rows=96, columns=128, pixel_spacing_mm=(3.1, 3.1))
        fast = r.render(g, setup_error=tilt)
        occupancy, runs = r.occupancy.copy(), r.empty_runs.copy()
        r.occupancy[:] = 1  # no block is empty: every plane inside the support box is sampled
        r.empty_runs[:] = 0
        full = r.render(g, setup_error=tilt)
        r.occupancy[:], r.empty_runs[:] = occupancy, runs
        assert fast.max() > 1.0
        np.testing.assert_array_equal(fast, full)  # the samples skipped are exactly 0 (sums in plane order)


def test_first_pixel_is_top_left_head_up_for_hfs() -> None:
    # a bone block towards the head (+z) and the patient's left (+x): AP image top-right quadrant
    hu = np.full((40, 40, 40), -1000, np.int16)
    hu[30:36, 18:22, 30:36] = 1000
    vol = Volume(hu, origin_mm=(-20.0, -20.0, -20.0), spacing_mm=(1.0, 1.0, 1.0))
    img = render_drr(vol, kv_geometry(0.0, rows=80, columns=80, pixel_spacing_mm=(1.0, 1.0)))
    r, c = np.unravel_index(np.argmax(img), img.shape)
    assert r < 40 and c > 40


def test_mv_geometry_and_renderer_reuse() -> None:
    vol = _point_volume((20, 20, 20))
    r = DrrRenderer(vol, attenuation=MV_ATTENUATION)
    g = mv_geometry(180.0, rows=100, columns=100, pixel_spacing_mm=(0.5, 0.5))
    a = r.render(g)
    b = r.render(g)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(_centroid(a), [49.5, 49.5], atol=CENTROID_TOLERANCE_PX)


def test_too_thin_volume_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 voxels"):
        DrrRenderer(Volume(np.zeros((1, 10, 10), np.int16), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
