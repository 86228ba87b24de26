"""3D/3D match (SPEC MATCH-3): verification CBCT vs planning CT, rigid, 3 or 6 degrees of freedom.

Algorithm (deterministic; no random sampling):

1. **Field of view.** The CBCT's valid region comes from ``verification_mask`` or is detected as
   everything that is not the constant padding value outside the reconstruction cylinder
   (:func:`field_of_view_mask`). Only voxels inside it (and inside the optional region of
   interest) are sample points.
2. **Pyramid.** Both images are block-averaged (numpy/numba, each level from the next finer
   one) to levels of ``levels_mm`` voxel size (block size ``round(level / spacing)`` per axis,
   never finer than the native grid); the reference is first cropped to the part that can
   overlap the CBCT and clipped to ``clip_hu`` (metal/markers, air). Each level is **high-pass
   filtered** (image minus its masked Gaussian blur of ``highpass_mm``, computed once on the
   coarsest level and interpolated trilinearly), which removes HU offset and low-frequency
   shading/cupping. The high-pass is applied only where it is used: at the CBCT sample points
   and on the part of each reference level the samples can reach from the current estimate.
3. **Initialisation.** An exhaustive masked-NCC translation search over ``±search_range_mm``
   (FFT, Padfield 2012) at the coarsest level, so the match converges from ±15 mm setup
   errors on every axis.
4. **Gauss-Newton.** On each level the residual ``F(q) − (a·M(S(q)) + b)`` is minimised over
   the rigid ``S`` (verification → reference), the gain ``a`` and offset ``b`` (an NCC-equivalent
   model, robust to intensity scale/offset), compositional updates, trilinear sampling of ``M``
   and its gradient and the normal equations in one numba pass. On the coarser levels the
   gradient is the derivative of the trilinear interpolant (central differences underestimate
   the slope of coarse images, so their steps overshoot and oscillate) and the tolerances are
   ``COARSE_TOLERANCE_FACTOR`` times looser (they only hand a start to the next level); on the
   finest level the gradient is interpolated central differences (smooth in the position: no
   limit cycle at sub-voxel steps).
5. **Quality gates.** Blank image, no overlap, divergence, final NCC below
   :data:`~openigrt.match.result.MIN_NCC_3D` raise :class:`~openigrt.errors.RegistrationError`.

The returned transform maps **reference patient mm → verification patient mm** (``S⁻¹``).
Array axis order of every ``Volume`` is ``(nz, ny, nx)`` (see :mod:`openigrt.geometry.volume`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.match.quality import PLATEAU_MIN_CURVATURE, Curvature, curvature, stop_of
from openigrt.match.region import padding_value, prepare_region
from openigrt.match.result import (
    BLANK_STD,
    MAX_ROTATION_DEG,
    MAX_TRANSLATION_MM,
    MIN_NCC_3D,
    MIN_OVERLAP_FRACTION,
    MatchResult,
    MatchType,
    StopReason,
)

#: default pyramid voxel sizes (mm), coarse to fine
DEFAULT_LEVELS_MM = (4.0, 2.0, 1.0)
#: Gauss-Newton stops on a level when the update is below this share of the level's voxel size
STEP_TOLERANCE_FRACTION = 0.005
#: rotation update tolerance (degrees) at the finest level
ROTATION_TOLERANCE_DEG = 0.002
#: the coarser levels only have to hand a close start to the next one: their tolerances are
#: these multiples of the finest level's
COARSE_TOLERANCE_FACTOR = 10.0


@dataclass(frozen=True)
class BoxROI:
    """Axis-aligned box in **reference** patient mm: centre and half sizes (x, y, z).

    >>> BoxROI((0.0, 0.0, 0.0), (10.0, 10.0, 5.0)).contains(np.array([[9.0, 0.0, 0.0], [0.0, 0.0, 6.0]]))
    array([ True, False])
    """

    center_mm: tuple[float, float, float]
    half_size_mm: tuple[float, float, float]

    def contains(self, points_mm: NDArray[np.float64]) -> NDArray[np.bool_]:
        d = np.abs(points_mm - np.asarray(self.center_mm)) <= np.asarray(self.half_size_mm)
        return np.all(d, axis=1)


# ----------------------------------------------------------------------------- grids
@dataclass(frozen=True, eq=False)
class _Grid:
    """A level image: array (nz, ny, nx) float32 and its index↔patient affine."""

    array: NDArray[np.float32]
    affine: NDArray[np.float64]  # 3x3 direction * spacing
    origin: NDArray[np.float64]

    @property
    def affine_inv(self) -> NDArray[np.float64]:
        return np.linalg.inv(self.affine)

    def points_mm(self, mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        kji = np.argwhere(mask).astype(np.float64)
        return kji[:, ::-1] @ self.affine.T + self.origin

    def to_kji(self, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
        ijk = (points_mm - self.origin) @ self.affine_inv.T
        return ijk[:, ::-1]


def _affine_origin(vol: Volume) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return vol.index_to_patient_matrix()[:3, :3], np.asarray(vol.origin_mm, float)


def _shrink_factors(grid: _Grid, target_mm: float) -> tuple[int, int, int]:
    """Block sizes (i, j, k) towards voxels of ``target_mm``: ``round(target / spacing)``, at least 1
    (and at most the axis length)."""
    sp = np.linalg.norm(grid.affine, axis=0)
    n = grid.array.shape[::-1]
    return tuple(int(min(max(1, round(target_mm / v)), m)) for v, m in zip(sp, n))  # type: ignore[return-value]


def _block_mean(grid: _Grid, factors: tuple[int, int, int], clip: tuple[float, float] | None = None) -> _Grid:
    """Block averages of ``factors`` (i, j, k) voxels (the partial block at the far end of an axis
    is dropped; each new voxel centre is the mean of its block's centres), values first clipped
    to *clip*."""
    from openigrt.match._kernels import block_mean

    fi, fj, fk = factors
    if fi == fj == fk == 1 and clip is None and grid.array.dtype == np.float32:
        return grid
    f = np.array(factors, float)
    return _Grid(block_mean(grid.array, (fk, fj, fi), clip), grid.affine * f[None, :],
                 grid.origin + grid.affine @ ((f - 1.0) / 2.0))


def _block_all(mask: NDArray[np.bool_], factors: tuple[int, int, int]) -> NDArray[np.bool_]:
    """A block is valid when all its voxels are."""
    fi, fj, fk = factors
    if fi == fj == fk == 1:
        return mask
    nz, ny, nx = mask.shape[0] // fk, mask.shape[1] // fj, mask.shape[2] // fi
    out = np.ones((nz, ny, nx), bool)
    for dk in range(fk):
        for dj in range(fj):
            for di in range(fi):
                out &= mask[dk:nz * fk:fk, dj:ny * fj:fj, di:nx * fi:fi]
    return out


def field_of_view_mask(verification: Volume, *, erode_voxels: int = 2) -> NDArray[np.bool_]:
    """Valid-reconstruction mask of a CBCT: voxels that are not the constant padding value.

    The padding value is the most frequent exact value when it fills ≥ 2 % of the grid (a noisy
    reconstruction never repeats one value that often); otherwise every voxel is valid. A voxel
    is inside when at least 13 of its in-plane 5 × 5 neighbours are not padding (isolated
    padding-valued voxels inside the FOV, e.g. an exact -1000 in air, are not "outside"); the
    mask is then eroded by *erode_voxels* in-plane (a voxel is kept when its whole
    ``(2e+1)²`` in-plane neighbourhood is inside) to stay clear of the edge.
    """
    from openigrt.match._kernels import fov_valid

    pad = padding_value(verification.array)
    if pad is None:
        return np.ones(verification.shape, bool)
    return fov_valid(verification.array, pad, max(0, int(erode_voxels)))


# ----------------------------------------------------------------------------- the registration
def _crop_reference(reference: Volume, verification: Volume, s_init: NDArray[np.float64], margin_mm: float) -> Volume:
    nz, ny, nx = verification.shape
    corners = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], float)
    c_mm = verification.index_to_patient_mm(corners)
    c_ref = c_mm @ s_init[:3, :3].T + s_init[:3, 3]
    centre = c_ref.mean(axis=0)
    grown = centre + (c_ref - centre) * 1.0 + np.sign(c_ref - centre) * margin_mm
    ijk = reference.patient_to_index(grown)
    lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.array(reference.shape[::-1]))
    if np.any(hi - lo < 2):
        raise RegistrationError("3D/3D: the verification volume does not overlap the reference CT (no overlap)")
    arr = reference.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    origin = reference.index_to_patient_mm([lo])[0]
    return Volume(arr, tuple(origin), reference.spacing_mm, reference.direction)


def _delta_matrix(omega: NDArray[np.float64], tau: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rigid update ``p -> R(omega)(p - c) + c + tau`` (omega: rotation vector, rad)."""
    theta = float(np.linalg.norm(omega))
    k = np.array([[0, -omega[2], omega[1]], [omega[2], 0, -omega[0]], [-omega[1], omega[0], 0]])
    if theta < 1e-12:
        r = np.eye(3) + k
    else:
        kn = k / theta
        r = np.eye(3) + np.sin(theta) * kn + (1 - np.cos(theta)) * (kn @ kn)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + tau
    return m


@dataclass(frozen=True, eq=False)
class _Level:
    spacing_mm: float
    fixed_points: NDArray[np.float64]  # (N, 3) verification patient mm
    fixed_values: NDArray[np.float64]
    moving: _Grid  # high-passed, cropped to the part the sample points can reach


@dataclass(frozen=True, eq=False)
class _Pyramid:
    """Block-averaged level images (not yet high-passed), the CBCT masks and the low-pass images.

    The high-pass (level minus the low-pass interpolated onto it) is applied where it is needed:
    at the fixed sample points and on the part of each moving level the samples can reach.
    """

    fixed: dict[float, _Grid]
    fixed_mask: dict[float, NDArray[np.bool_]]  # sample points (field of view ∩ patient)
    moving: dict[float, _Grid]
    low_fixed: _Grid | None
    low_moving: _Grid | None
    fixed_fov_top: NDArray[np.bool_]  # field of view on the grid of the fixed low-pass
    highpass_mm: float | None
    fixed_low_grid: _Grid | None = None  # the fixed image at low-pass resolution


#: the low-pass is computed on a grid of about this share of its sigma (block means of the coarsest level)
LOWPASS_GRID_FRACTION = 0.34


def _lowpass_grid(grid: _Grid, sigma_mm: float) -> tuple[_Grid, tuple[int, int, int]]:
    """*grid* block-averaged to about a third of *sigma_mm* (its trilinear interpolation error stays small next to the body outline) (the low-pass is smooth) and the factors."""
    f = tuple(max(1, round(LOWPASS_GRID_FRACTION * sigma_mm / v)) for v in np.linalg.norm(grid.affine, axis=0))
    return (_block_mean(grid, f) if max(f) > 1 else grid), f  # type: ignore[return-value]


def _lowpass(grid: _Grid, mask: NDArray[np.bool_] | None, sigma_mm: float) -> _Grid:
    """Normalised Gaussian low-pass of *grid* (inside *mask*, same grid) on its own grid."""
    import SimpleITK as sitk

    sp = tuple(float(v) for v in np.linalg.norm(grid.affine, axis=0))

    def smooth(a: NDArray[np.float32]) -> NDArray[np.float32]:
        img = sitk.GetImageFromArray(np.ascontiguousarray(a, dtype=np.float32))
        img.SetSpacing(sp)
        return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, float(sigma_mm))).astype(np.float32)

    if mask is None:
        return _Grid(smooth(grid.array), grid.affine, grid.origin)
    m = mask.astype(np.float32)
    low = smooth(grid.array * m) / np.maximum(smooth(m), np.float32(1e-3))
    return _Grid(low.astype(np.float32), grid.affine, grid.origin)


def _build_pyramid(reference: Volume, verification: Volume, fov: NDArray[np.bool_], sample: NDArray[np.bool_],
                   levels_mm: tuple[float, ...], highpass_mm: float | None, clip_hu: tuple[float, float]) -> _Pyramid:
    """Block-average every level from the next finer one (numpy); the low-pass (HU offset, cupping
    and shading are far smoother than the coarsest grid) is computed on the coarsest level: the
    CBCT's inside its field of view, the CT's by :func:`_with_moving_lowpass` inside the same
    field of view mapped through the current estimate (so that both images are low-passed over
    the same anatomy: a CT low-pass that also sees the anatomy outside the CBCT's field of view
    differs from the CBCT's near its edge, and the difference pulls the match)."""
    fine_to_coarse = sorted(set(levels_mm))
    f_prev, fov_prev, sm_prev = _Grid(verification.array, *_affine_origin(verification)), fov, sample
    m_prev = _Grid(reference.array, *_affine_origin(reference))
    f_lv, m_lv, sm_lv = {}, {}, {}
    for n, sp in enumerate(fine_to_coarse):
        ff = _shrink_factors(f_prev, sp)
        f_prev, fov_prev, sm_prev = _block_mean(f_prev, ff), _block_all(fov_prev, ff), _block_all(sm_prev, ff)
        m_prev = _block_mean(m_prev, _shrink_factors(m_prev, sp), clip_hu if n == 0 else None)
        f_lv[sp], m_lv[sp], sm_lv[sp] = f_prev, m_prev, sm_prev
    top = fine_to_coarse[-1]
    g, fov_low = None, fov_prev
    if highpass_mm:
        g, f = _lowpass_grid(f_lv[top], highpass_mm)
        fov_low = _block_all(fov_prev, f) if max(f) > 1 else fov_prev
    return _Pyramid(f_lv, sm_lv, m_lv, None, None, fov_low, highpass_mm, g)


def _with_lowpasses(pyr: _Pyramid, s: NDArray[np.float64]) -> _Pyramid:
    """*pyr* with both low-passes computed over the **overlap** at the estimate ``S``: the CBCT's
    field of view where ``S`` maps it into the CT's grid, and the same region mapped into the CT.

    Each image's low-pass then sees the same anatomy: a CT low-pass that also sees the anatomy
    outside the CBCT's field of view, or a CBCT low-pass over slices the CT does not have, differs
    from the other image's near that edge, and the difference pulls the match.
    """
    from dataclasses import replace

    if not pyr.highpass_mm or pyr.fixed_low_grid is None:
        return pyr
    from openigrt.match._kernels import map_mask

    m_grid, _ = _lowpass_grid(pyr.moving[max(pyr.moving)], pyr.highpass_mm)
    f_grid = pyr.fixed_low_grid
    in_ct = map_mask(np.ones(m_grid.array.shape, bool), m_grid.affine_inv, m_grid.origin, f_grid.array.shape,
                     f_grid.affine, f_grid.origin, s)
    f_mask = pyr.fixed_fov_top & in_ct
    if not f_mask.any():
        f_mask = pyr.fixed_fov_top
    m_mask = map_mask(f_mask, f_grid.affine_inv, f_grid.origin, m_grid.array.shape, m_grid.affine,
                      m_grid.origin, np.linalg.inv(s))
    return replace(pyr, low_fixed=_lowpass(f_grid, f_mask, pyr.highpass_mm),
                   low_moving=_lowpass(m_grid, m_mask if m_mask.any() else None, pyr.highpass_mm))


def _low_at(low: _Grid, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Trilinear value of a low-pass grid at patient points (edge values extended)."""
    from openigrt.match._kernels import sample_mm

    return sample_mm(low.array, low.affine_inv, low.origin, points_mm, clamp=True)[0]


def _separable_coords(low: _Grid, grid: _Grid, lo_kji: NDArray[np.int64], shape: tuple[int, ...]
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None:
    """Continuous (k, j, i) indices in *low* of the crop's slices/rows/columns, or None when the grids
    are not axis-aligned with each other."""
    m = low.affine_inv @ grid.affine
    if np.abs(m - np.diag(np.diag(m))).max() > 1e-9 * np.abs(m).max():
        return None
    off = low.affine_inv @ (grid.origin - low.origin)
    ijk = [off[a] + m[a, a] * (lo_kji[2 - a] + np.arange(shape[2 - a])) for a in range(3)]
    return ijk[2], ijk[1], ijk[0]


def _prepare_level(pyr: _Pyramid, spacing: float, roi_fn: Any, s: NDArray[np.float64], max_samples: int,
                   reach_mm: float) -> _Level:
    from openigrt.match._kernels import highpass_crop

    f_grid, fmask, m_grid = pyr.fixed[spacing], pyr.fixed_mask[spacing], pyr.moving[spacing]
    if roi_fn is not None:
        fmask = roi_fn.select(fmask, f_grid, s)
    from openigrt.match._kernels import points_of

    flat = np.flatnonzero(fmask)
    if len(flat) > max_samples:  # regular subset (deterministic)
        flat = flat[:: int(np.ceil(len(flat) / max_samples))]
    pts = points_of(flat, fmask.shape, f_grid.affine, f_grid.origin)
    vals = f_grid.array.ravel()[flat].astype(np.float64)
    if pyr.low_fixed is not None and len(pts):
        vals = vals - _low_at(pyr.low_fixed, pts)
    lo, hi = _reach_box(m_grid, pts, s, margin_mm=reach_mm)
    shape = tuple(int(v) for v in hi - lo)
    origin = m_grid.origin + m_grid.affine @ lo[::-1].astype(float)
    low = pyr.low_moving
    coords = _separable_coords(low, m_grid, lo, shape) if low is not None else None
    if low is not None and coords is None:  # not axis-aligned (never for levels of one volume)
        sub = highpass_crop(m_grid.array, tuple(lo), shape, None, None)
        kk = np.indices(shape).reshape(3, -1).T.astype(float)
        moving = sub - _low_at(low, kk[:, ::-1] @ m_grid.affine.T + origin).reshape(shape).astype(np.float32)
    else:
        moving = highpass_crop(m_grid.array, tuple(lo), shape, coords, None if low is None else low.array)
    return _Level(spacing, pts, vals, _Grid(moving, m_grid.affine, origin))


def _reach_box(grid: _Grid, pts: NDArray[np.float64], s: NDArray[np.float64], margin_mm: float
               ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Index box (k, j, i) [lo, hi) of the moving level the sample points can reach from ``S`` (± *margin_mm*)."""
    shape = np.array(grid.array.shape)
    if len(pts) == 0:
        return np.zeros(3, np.int64), shape.astype(np.int64)
    from openigrt.match._kernels import transformed_bounds

    p_lo, p_hi = transformed_bounds(pts, s)
    lo_mm, hi_mm = p_lo - margin_mm, p_hi + margin_mm
    corners = np.array([[x, y, z] for x in (lo_mm[0], hi_mm[0]) for y in (lo_mm[1], hi_mm[1])
                        for z in (lo_mm[2], hi_mm[2])])
    kji = grid.to_kji(corners)
    lo = np.clip(np.floor(kji.min(axis=0)).astype(np.int64) - 1, 0, shape - 2)
    hi = np.clip(np.ceil(kji.max(axis=0)).astype(np.int64) + 2, lo + 2, shape)
    return lo, hi


def _gauss_newton(level: _Level, s: NDArray[np.float64], *, dof: int, max_iterations: int,
                  rot_tol_rad: float, step_tol_mm: float, cell_gradient: bool = False
                  ) -> tuple[NDArray[np.float64], int, bool, float, float, Curvature | None]:
    """Minimise over S on one level. Returns (S, iterations, converged, ncc, valid fraction, the
    metric's curvature at the last evaluated estimate).

    *cell_gradient*: the Jacobian uses the derivative of the trilinear interpolant instead of
    interpolated central differences (see :func:`register_3d3d`, step 4).

    The NCC and the valid fraction are those of the last evaluated estimate (before the last,
    below-tolerance update when converged: no extra pass over the samples).
    """
    from openigrt.match._kernels import gauss_newton_sums

    q = level.fixed_points
    a_inv = level.moving.affine_inv
    origin = level.moving.origin
    q_mean = q.mean(axis=0)
    converged = False
    it = 0
    six = dof == 6
    st: dict[str, float] = {"n": 0.0}
    lever = float(np.sqrt(((q - q_mean) ** 2).sum(axis=1).mean()))
    curv: Curvature | None = None
    prev: NDArray[np.float64] | None = None
    damp, reversals = 1.0, 0
    for it in range(1, max_iterations + 1):
        c = s[:3, :3] @ q_mean + s[:3, 3]
        h, g, st = gauss_newton_sums(level.moving.array, q, level.fixed_values, s, a_inv, origin, c, six,
                                     cell_gradient)
        if st["n"] < 100:
            raise RegistrationError("3D/3D: no overlap between the images at the current estimate")
        scale = np.sqrt(np.maximum(np.diag(h), 1e-30))
        hs = h / np.outer(scale, scale)
        hs[np.diag_indices_from(hs)] *= 1.0 + 1e-6
        beta = np.linalg.solve(hs, g / scale) / scale
        gain = beta[0]
        if abs(gain) < 1e-9:
            raise RegistrationError("3D/3D: images do not correlate (intensity gain fitted as zero)")
        curv = curvature(h, float(st["sff"] - beta @ g), gain, six=six, lever_mm=lever)
        if curv.worst < PLATEAU_MIN_CURVATURE:
            break  # a plateau: the update along it is noise; stop before it drifts off (reported by stop_of)
        d = beta[2:] / gain
        omega = d[:3] if six else np.zeros(3)
        tau = d[3:] if six else d
        tn = float(np.linalg.norm(tau))
        if tn > 2 * level.spacing_mm:
            tau = tau * (2 * level.spacing_mm / tn)
        on = float(np.linalg.norm(omega))
        if on > np.deg2rad(2.0):
            omega = omega * (np.deg2rad(2.0) / on)
        step = np.r_[omega * lever, tau]
        if prev is not None and float(step @ prev) < 0.0:
            # the step reverses the previous one: the linearised model overshoots (a damped
            # oscillation: for v_k = -r v_(k-1) the fixed point is v / (1 + r) away) or the update
            # jumps across a cell of the trilinear interpolant (a 2-cycle): damp, more each time
            r = min(1.0, -float(step @ prev) / max(float(prev @ prev), 1e-30))
            damp = min(damp, 1.0 / (1.0 + r)) * (0.5 if reversals else 1.0)
            reversals += 1
        else:
            damp, reversals = min(1.0, 2.0 * damp), 0
        omega, tau, step = omega * damp, tau * damp, step * damp
        prev = step
        tn, on = float(np.linalg.norm(tau)), float(np.linalg.norm(omega))
        s = _delta_matrix(omega, tau, c) @ s
        if tn < step_tol_mm and on < rot_tol_rad:
            converged = True
            break
    n = max(st["n"], 1.0)
    var_m = st["smm"] - st["sm"] ** 2 / n
    var_f = st["sff"] - st["sf"] ** 2 / n
    ncc = (st["smf"] - st["sm"] * st["sf"] / n) / np.sqrt(max(var_m * var_f, 1e-30)) if st["n"] > 10 else -1.0
    return s, it, converged, float(ncc), float(st["n"] / len(q)), curv


def _coarse_translation_search(level: _Level, s: NDArray[np.float64],
                               search_range_mm: float, fixed_grid_and_mask: tuple[_Grid, NDArray[np.bool_]]
                               ) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Exhaustive masked-NCC translation search; returns the updated S and a report."""
    from openigrt.match._kernels import points_of, sample_mm
    from openigrt.match._ncc import masked_ncc_search

    f_grid, f_mask = fixed_grid_and_mask
    nz, ny, nx = f_grid.array.shape
    # the moving level on the fixed grid through S: sample at S q for every fixed voxel q
    m = level.moving
    pts = points_of(np.arange(nz * ny * nx), (nz, ny, nx), s[:3, :3] @ f_grid.affine,
                    s[:3, :3] @ f_grid.origin + s[:3, 3])
    val, valid = sample_mm(m.array, m.affine_inv, m.origin, pts, clamp=False)
    moving_on_fixed = val.reshape(nz, ny, nx)
    valid = valid.reshape(nz, ny, nx)
    sp = np.linalg.norm(f_grid.affine, axis=0)[::-1]  # (k, j, i) voxel sizes
    peak = masked_ncc_search(f_grid.array, moving_on_fixed, fixed_mask=f_mask, moving_mask=valid,
                             max_shift=tuple(search_range_mm / sp), min_overlap_fraction=0.3, compact=True)
    if peak.ncc <= -1.0:
        raise RegistrationError("3D/3D: no overlap between the verification and reference volumes")
    u_ijk = np.asarray(peak.shift)[::-1]
    shift_mm = f_grid.affine @ u_ijk
    # F(q) ≈ M(S(q - shift)): S' = S ∘ translate(-shift)
    t = np.eye(4)
    t[:3, 3] = -shift_mm
    return s @ t, {"shift_mm": shift_mm.tolist(), "ncc": peak.ncc}


def register_3d3d(
    reference: Volume,
    verification: Volume,
    *,
    dof: int = 6,
    roi: BoxROI | None = None,
    reference_roi_mask: NDArray[np.bool_] | None = None,
    verification_mask: NDArray[np.bool_] | None = None,
    initial: RigidTransform | None = None,
    search_range_mm: float = 20.0,
    levels_mm: tuple[float, ...] = DEFAULT_LEVELS_MM,
    highpass_mm: float | None = 15.0,
    clip_hu: tuple[float, float] = (-1000.0, 1500.0),
    max_iterations: int = 25,
    max_samples: int = 150_000,
    exclude_couch: bool = True,
) -> MatchResult:
    """Rigid CBCT-to-CT registration (MATCH-3).

    Parameters
    ----------
    reference : Volume
        Planning CT in HU, array ``(nz, ny, nx)``.
    verification : Volume
        Verification CBCT (any grid, any HU offset/scale; noise, shading, truncated FOV).
    dof : {3, 6}
        3 = translations only; 6 = translations + rotations.
    roi : BoxROI, optional
        Region of interest in reference patient mm (e.g. a box around the isocenter/target).
    reference_roi_mask : ndarray of bool, optional
        Structure mask on the reference grid (e.g. the PTV grown by a margin); combined with *roi*.
    verification_mask : ndarray of bool, optional
        Valid CBCT voxels (default: every voxel that is not the padding value, see
        :func:`~openigrt.match.region.padding_value`).
    initial : RigidTransform, optional
        Starting estimate (reference → verification); default identity, then the coarse search.
    search_range_mm : float
        Half-range of the exhaustive translation search per axis (0 disables it).
    levels_mm, highpass_mm, clip_hu, max_iterations, max_samples
        Pyramid voxel sizes (coarse → fine), high-pass Gaussian sigma (None: off), HU window of the
        reference, Gauss-Newton iterations per level, sample points per level (regular stride).

    Returns
    -------
    MatchResult
        ``transform`` maps reference patient mm → verification patient mm.

    Raises
    ------
    RegistrationError
        Blank image, no overlap, divergence or final NCC below ``MIN_NCC_3D``.
    """
    t0 = time.perf_counter()
    if dof not in (3, 6):
        raise ValueError(f"dof must be 3 or 6, got {dof}")
    if verification_mask is not None and np.shape(verification_mask) != verification.shape:
        raise ValueError(f"verification_mask shape {np.shape(verification_mask)} differs from the volume {verification.shape}")
    _check_not_blank(reference.array, None, "reference CT")
    init = RigidTransform.identity() if initial is None else initial
    s = init.inverse().matrix.copy()  # verification -> reference
    roi_fn = _roi_function(reference, roi, reference_roi_mask)
    region = prepare_region(reference, verification, valid=None if verification_mask is None else
                            np.asarray(verification_mask, bool), s_init=s,
                            roi_points_ref_mm=_roi_points(reference, roi, reference_roi_mask),
                            reach_mm=search_range_mm + 8.0, exclude_objects=exclude_couch)
    _check_not_blank(region.verification.array, region.sample_mask, "verification volume")
    pyr = _build_pyramid(region.reference, region.verification, region.fov_mask, region.sample_mask,
                         tuple(levels_mm), highpass_mm, clip_hu)
    pyr = _with_lowpasses(pyr, s)
    details: dict[str, Any] = {"levels": [], "region": region.report}
    total_it, converged, ncc, frac = 0, False, -1.0, 0.0
    for li, spacing in enumerate(levels_mm):
        reach = search_range_mm + 8.0 if li == 0 else max(12.0, 3.0 * spacing)  # how far S may still move
        level = _prepare_level(pyr, spacing, roi_fn, s, max_samples, reach)
        if len(level.fixed_points) < 100:
            raise RegistrationError("3D/3D: fewer than 100 sample points inside the CBCT field of view and ROI")
        if np.std(level.fixed_values) < BLANK_STD:
            raise RegistrationError("3D/3D: the verification volume is blank inside its field of view / ROI")
        if li == 0 and search_range_mm > 0:
            fg = _coarse_fixed_grid(pyr, spacing, roi_fn, s)
            s, rep = _coarse_translation_search(level, s, search_range_mm, fg)
            details["coarse_search"] = rep
            pyr = _with_lowpasses(pyr, s)  # the field of view has moved over the CT
            level = _prepare_level(pyr, spacing, roi_fn, s, max_samples, reach)
        last = li == len(levels_mm) - 1
        loose = 1.0 if last else COARSE_TOLERANCE_FACTOR
        s, it, converged, ncc, frac, curv = _gauss_newton(level, s, dof=dof, max_iterations=max_iterations,
                                                     rot_tol_rad=np.deg2rad(ROTATION_TOLERANCE_DEG * loose),
                                                     step_tol_mm=STEP_TOLERANCE_FRACTION * spacing * loose,
                                                     cell_gradient=not last)
        total_it += it
        details["levels"].append({"spacing_mm": spacing, "iterations": it, "samples": len(level.fixed_points),
                                  "ncc": ncc, "converged": converged})
        if curv is not None and curv.worst < PLATEAU_MIN_CURVATURE:
            break  # no finer level can resolve a plateau
    result = RigidTransform(_orthonormalise(s)).inverse()
    _check_solution(result, init, ncc, frac, MIN_NCC_3D, "3D/3D")
    stop, why = stop_of(converged, curv, what="3D/3D")
    details["curvature"] = None if curv is None else curv.as_dict()
    return MatchResult(
        transform=result, match_type=MatchType.VOLUME_3D, dof=dof, metric=ncc,
        metric_name="NCC (high-pass, masked)", iterations=total_it, stop_reason=stop,
        overlap_fraction=frac, elapsed_s=time.perf_counter() - t0, details=details, stop_detail=why,
    )


def _coarse_fixed_grid(pyr: _Pyramid, spacing: float, roi_fn: Any, s: NDArray[np.float64]
                       ) -> tuple[_Grid, NDArray[np.bool_]]:
    grid = pyr.fixed[spacing]
    mask = pyr.fixed_mask[spacing]
    if pyr.low_fixed is not None:
        low = pyr.low_fixed
        if low.array.shape == grid.array.shape and np.allclose(low.affine, grid.affine) and np.allclose(low.origin, grid.origin):
            hp = grid.array - low.array
        else:
            from openigrt.match._kernels import points_of

            pts = points_of(np.arange(grid.array.size), grid.array.shape, grid.affine, grid.origin)
            hp = grid.array - _low_at(low, pts).reshape(grid.array.shape)
        grid = _Grid(np.where(mask, hp, 0.0).astype(np.float32), grid.affine, grid.origin)
    if roi_fn is not None:
        mask = roi_fn.select(mask, grid, s)
    return grid, mask


def _roi_points(reference: Volume, roi: BoxROI | None, mask: NDArray[np.bool_] | None) -> NDArray[np.float64] | None:
    """Corners (reference mm) of the box holding the region of interest, or None (no ROI)."""
    boxes = []
    if roi is not None:
        c, h = np.asarray(roi.center_mm), np.asarray(roi.half_size_mm)
        boxes.append((c - h, c + h))
    if mask is not None and np.any(mask):
        kji = np.argwhere(mask)
        ijk = np.array([kji.min(axis=0), kji.max(axis=0)])[:, ::-1].astype(float)
        corners = np.array([[ijk[a, 0], ijk[b, 1], ijk[c, 2]] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        p = reference.index_to_patient_mm(corners)
        boxes.append((p.min(axis=0), p.max(axis=0)))
    if not boxes:
        return None
    lo = np.max([b[0] for b in boxes], axis=0)
    hi = np.min([b[1] for b in boxes], axis=0)
    if np.any(hi < lo):
        raise RegistrationError("3D/3D: the region of interest box and the structure mask do not overlap")
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


@dataclass(frozen=True, eq=False)
class _Roi:
    """The region of interest in reference mm: a box and/or a mask on the reference grid."""

    box: tuple[NDArray[np.float64], NDArray[np.float64]] | None
    mask: NDArray[np.bool_] | None
    mask_affine_inv: NDArray[np.float64] | None
    mask_origin: NDArray[np.float64] | None

    def select(self, mask: NDArray[np.bool_], grid: _Grid, s: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Voxels of *mask* (on *grid*, verification) that ``S`` maps into the region."""
        from openigrt.match._kernels import roi_select

        return roi_select(mask, grid.affine, grid.origin, s, self.box, self.mask, self.mask_affine_inv,
                          self.mask_origin)


def _roi_function(reference: Volume, roi: BoxROI | None, mask: NDArray[np.bool_] | None) -> _Roi | None:
    if roi is None and mask is None:
        return None
    if mask is not None and np.shape(mask) != reference.shape:
        raise ValueError(f"reference_roi_mask shape {np.shape(mask)} differs from the reference {reference.shape}")
    box = None if roi is None else (np.asarray(roi.center_mm, float), np.asarray(roi.half_size_mm, float))
    m = reference.index_to_patient_matrix()
    return _Roi(box, None if mask is None else np.asarray(mask, bool),
                None if mask is None else np.linalg.inv(m[:3, :3]), None if mask is None else m[:3, 3].copy())


def _check_not_blank(array: NDArray[Any], mask: NDArray[np.bool_] | None, what: str) -> None:
    if mask is None:
        sub = array[::2, ::4, ::4]
    else:  # every 8th voxel of the mask (a whole-mask copy costs more than the rest of the check)
        sub = array[::2, ::2, ::2][mask[::2, ::2, ::2]]
        if sub.size < 1000:
            sub = array[mask]
    if sub.size == 0:
        raise RegistrationError(f"3D/3D: the {what} has no valid voxel (empty field of view)")
    if float(np.std(sub)) < BLANK_STD:
        raise RegistrationError(f"3D/3D: the {what} is blank (constant value {float(sub.flat[0]):g})")


def _orthonormalise(m: NDArray[np.float64]) -> NDArray[np.float64]:
    u, _, vt = np.linalg.svd(m[:3, :3])
    out = m.copy()
    out[:3, :3] = u @ vt
    return out


def _check_solution(result: RigidTransform, init: RigidTransform, ncc: float, frac: float, min_ncc: float,
                    what: str) -> None:
    step = result.compose(init.inverse())
    if np.linalg.norm(step.translation_mm) > MAX_TRANSLATION_MM or step.rotation_angle_deg() > MAX_ROTATION_DEG:
        raise RegistrationError(
            f"{what}: diverged (solution {np.round(step.translation_mm, 1).tolist()} mm, "
            f"{step.rotation_angle_deg():.1f}° from the start)")
    if frac < MIN_OVERLAP_FRACTION:
        raise RegistrationError(f"{what}: only {100 * frac:.0f}% of the sample points overlap (no overlap)")
    if not np.isfinite(ncc) or ncc < min_ncc:
        raise RegistrationError(f"{what}: final NCC {ncc:.3f} below {min_ncc} (metric too poor)")
