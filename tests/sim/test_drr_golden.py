"""The DRR renderer answers as before its speed-up (issue 11), within float32 rounding.

``drr_golden.npz`` holds DRRs of the small phantom rendered by the renderer as it was before the
speed-up (commit 47b9a74: float64 accumulation, clamped indices, one ray at a time) for views
covering every code path: marching along x, y and z, rows whose rays change marching axis,
a rotated setup error, a rotated receptor, a non-coplanar couch, MV. Regenerate only when the
rendering is meant to change: ``python -m tests.sim.test_drr_golden --write``.

A second, independent check: :func:`joseph_reference` — the plain Joseph projector (no empty
space skipping, no support box, float64) written out in a few lines. A third: an int16 CT (kept
as int16 with a HU → μ table) and the same CT as float32 render bit for bit the same image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from openigrt.geometry.projection import ProjectionGeometry, kv_geometry, mv_geometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.sim.drr import KV_ATTENUATION, MV_ATTENUATION, DrrRenderer
from openigrt.sim.phantom import PhantomParams, make_phantom

GOLDEN = Path(__file__).with_name("drr_golden.npz")
#: Largest difference allowed, relative to the image maximum (float32 accumulation of ~100 samples).
RELATIVE_TOLERANCE = 2e-6


def views(iso: tuple[float, float, float]) -> dict[str, tuple[ProjectionGeometry, RigidTransform | None, str]]:
    small = dict(rows=60, columns=76, pixel_spacing_mm=(4.1, 4.1), isocenter_mm=iso)
    setup = RigidTransform.from_parameters(translation_mm=(4.0, -3.0, 6.0), rotation_deg=(2.0, -1.5, 3.0))
    return {
        "kv 0": (kv_geometry(0.0, **small), None, "kV"),
        "kv 90": (kv_geometry(90.0, **small), None, "kV"),
        "kv 131": (kv_geometry(131.0, **small), None, "kV"),
        "kv 45 (rows change marching axis)": (kv_geometry(45.0, **small), None, "kV"),
        "kv 33 rotated setup error": (kv_geometry(33.0, **small), setup, "kV"),
        "kv 300 rotated receptor": (ProjectionGeometry(gantry_angle_deg=300.0, rows=60, columns=76,
                                                       pixel_spacing_mm=(3.5, 3.9), isocenter_mm=iso,
                                                       receptor_angle_deg=7.0, receptor_translation_mm=(11.0, -6.0, -500.0)),
                                    None, "kV"),
        "kv 80 couch 70 FFP (marching along z)": (ProjectionGeometry(gantry_angle_deg=80.0, rows=60, columns=76,
                                                                     pixel_spacing_mm=(4.1, 4.1), isocenter_mm=iso,
                                                                     patient_position="FFP",
                                                                     patient_support_angle_deg=70.0), None, "kV"),
        "mv 180": (mv_geometry(180.0, **small), None, "MV"),
    }


def render_all() -> dict[str, np.ndarray]:
    ph = make_phantom(PhantomParams.small())
    renderers = {"kV": DrrRenderer(ph.volume, attenuation=KV_ATTENUATION),
                 "MV": DrrRenderer(ph.volume, attenuation=MV_ATTENUATION)}
    return {name: renderers[beam].render(g, setup_error=t) for name, (g, t, beam) in views(ph.isocenter_mm).items()}


@pytest.fixture(scope="module")
def rendered() -> dict[str, np.ndarray]:
    return render_all()


@pytest.mark.parametrize("name", list(views((0.0, 0.0, 0.0))))
def test_drr_equals_the_renderer_before_the_speed_up(rendered: dict[str, np.ndarray], name: str) -> None:
    golden = np.load(GOLDEN)[name]
    got = rendered[name]
    assert got.dtype == np.float32 and got.shape == golden.shape
    assert golden.max() > 1.0  # a real image, not empty
    assert np.abs(got - golden).max() <= RELATIVE_TOLERANCE * golden.max(), name


@numba.njit(cache=False)
def _reference_kernel(mu, src, det0, du, dv, idx2mm, out):  # type: ignore[no-untyped-def]
    nz, ny, nx = mu.shape
    n = (nx, ny, nz)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            d = det0 + c * du + r * dv - src
            m = int(np.argmax(np.abs(d)))
            a, b = (1, 2) if m == 0 else ((0, 2) if m == 1 else (0, 1))
            total = 0.0
            for k in range(n[m]):
                t = (k - src[m]) / d[m]
                if t < 0.0 or t > 1.0:
                    continue
                pa, pb = src[a] + t * d[a], src[b] + t * d[b]
                if pa < 0.0 or pb < 0.0 or pa > n[a] - 1 or pb > n[b] - 1:
                    continue
                ia, ib = min(int(pa), n[a] - 2), min(int(pb), n[b] - 2)
                fa, fb = pa - ia, pb - ib
                idx = np.zeros(3, np.int64)
                idx[m] = k
                v = 0.0
                for da, db, w in ((0, 0, (1 - fa) * (1 - fb)), (1, 0, fa * (1 - fb)), (0, 1, (1 - fa) * fb),
                                  (1, 1, fa * fb)):
                    idx[a], idx[b] = ia + da, ib + db
                    v += w * mu[idx[2], idx[1], idx[0]]
                total += v
            step = idx2mm @ (d / abs(d[m]))
            out[r, c] = total * np.sqrt((step * step).sum())


def joseph_reference(renderer: DrrRenderer, g: ProjectionGeometry, setup: RigidTransform | None) -> np.ndarray:
    out = np.zeros((g.rows, g.columns))
    src, det0, du, dv = renderer._index_geometry(g, setup)
    idx2mm = np.ascontiguousarray(renderer.volume.index_to_patient_matrix()[:3, :3])
    _reference_kernel(np.ascontiguousarray(renderer.mu, dtype=np.float64), src, det0, du, dv, idx2mm, out)
    return out


def test_drr_equals_the_plain_joseph_projector(rendered: dict[str, np.ndarray]) -> None:
    ph = make_phantom(PhantomParams.small())
    kv = DrrRenderer(ph.volume)
    for name in ("kv 0", "kv 45 (rows change marching axis)", "kv 33 rotated setup error",
                 "kv 80 couch 70 FFP (marching along z)"):
        g, t, _ = views(ph.isocenter_mm)[name]
        ref = joseph_reference(kv, g, t)
        assert np.abs(rendered[name] - ref).max() <= 1e-5 * ref.max(), name


def test_int16_ct_and_float_ct_render_the_same(rendered: dict[str, np.ndarray]) -> None:
    """An int16 CT is kept as int16 + a HU → μ table, any other as float32 μ: the same image, bit for bit."""
    from openigrt.geometry.volume import Volume

    ph = make_phantom(PhantomParams.small())
    v = ph.volume
    as_float = DrrRenderer(Volume(v.array.astype(np.float32), v.origin_mm, v.spacing_mm, v.direction))
    as_int = DrrRenderer(v)
    assert 2 * as_int._padded.nbytes == as_float._padded.nbytes  # half the bytes per voxel
    assert np.array_equal(as_int.mu, as_float.mu)
    for name in ("kv 90", "kv 33 rotated setup error", "kv 80 couch 70 FFP (marching along z)"):
        g, t, _ = views(ph.isocenter_mm)[name]
        assert np.array_equal(as_float.render(g, setup_error=t), rendered[name]), name


if __name__ == "__main__" and "--write" in sys.argv:
    np.savez_compressed(GOLDEN, **render_all())
    print(f"wrote {GOLDEN}")
