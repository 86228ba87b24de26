"""2D/2D 6-DoF match (SPEC MATCH-2 "rotations where the data supports them"): 2D/3D registration.

The rigid transform ``T`` (reference patient mm → verification patient mm) is optimised so that
DRRs of the planning CT rendered **on the fly** through ``T`` match every acquired projection:

* images are binned to ~``working_pixel_mm`` at the isocenter and band-pass filtered (as in
  :mod:`openigrt.match.projection2d`), inside a region of interest around the isocenter; the
  DRRs are rendered directly at that pixel size and only on a window around the region of
  interest (the ROI plus the reach of the filters, which run on the same window for the
  acquired image and for every DRR);
* per view an intensity gain/offset is fitted (NCC-equivalent), the 6 parameters
  (rotation vector about the isocenter, translation) are updated by Gauss-Newton, compositional
  updates; the translation columns of the Jacobian come from the image gradient, the rotation
  columns from forward differences (3 extra renders per view and iteration);
* optionally (``coarse_pixel_mm``) the first iterations run on views binned twice as coarse
  (renders ~4× cheaper);
* the start is the 2D/2D translation solution (:func:`~openigrt.match.projection2d.match_2d2d`)
  unless ``initial`` is given.

The renderer is anything with ``render(geometry, *, setup_error=RigidTransform) -> image``
(e.g. ``openigrt.sim.drr.DrrRenderer``; build it on a 2×-downsampled CT for speed), and each
geometry must offer ``replace(rows=, columns=, pixel_spacing_mm=, rt_image_position_mm=)`` and
``rt_image_position_mm`` / ``pixel_spacing_mm`` (``openigrt.geometry.projection.ProjectionGeometry``)
so that binned views can be rendered directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.match.markers import projection_jacobian
from openigrt.match.projection2d import BANDPASS_COARSE_MM, ROI_HALF_MM, _bin, bandpass, match_2d2d
from openigrt.match.result import MIN_NCC_2D, MatchResult, MatchType, StopReason
from openigrt.match.volume3d import _check_solution, _delta_matrix

#: working pixel size at the isocenter plane (mm) of the 6-DoF optimisation
WORKING_PIXEL_6DOF_MM = 1.0
#: finite-difference steps of the Jacobian
FD_ROTATION_RAD = np.deg2rad(0.5)
FD_TRANSLATION_MM = 0.5
#: convergence: translation (mm) and rotation (degrees) updates below these
TOL_MM = 0.03
TOL_DEG = 0.03
#: margin of the render window around the ROI, in coarse band-pass sigmas (the reach of the
#: band-pass and local-contrast Gaussians, cut at 3 sigma: the ROI is filtered as on the whole image)
WINDOW_MARGIN_SIGMAS = 3.0
#: divide band-passed images by their local RMS (robust to scatter / non-linear response)
LOCAL_CONTRAST = True
#: map every DRR to the acquired image's intensities by a local linear fit (scatter, heel, processing)
LOCAL_INTENSITY_MODEL = True
#: Gaussian window (mm at the isocenter) of that fit
INTENSITY_WINDOW_MM = 20.0
#: pixels binned by this factor for the window means
WINDOW_BINNING = 4
#: the acquired image is taken to be in line-integral units when its global gain against the DRR is
#: in this range (scatter lowers it below 1)
LOG_UNITS_GAIN = (0.5, 1.15)


def bin_geometry(geometry: Any, factor: int) -> Any:
    """The geometry of the image binned by *factor* (block means; pixel centres kept consistent)."""
    if factor <= 1:
        return geometry
    dy, dx = geometry.pixel_spacing_mm
    x0, y0 = geometry.rt_image_position_mm
    return geometry.replace(rows=geometry.rows // factor, columns=geometry.columns // factor,
                            pixel_spacing_mm=(dy * factor, dx * factor),
                            rt_image_position_mm=(x0 + (factor - 1) / 2.0 * dx, y0 - (factor - 1) / 2.0 * dy))


def _window_geometry(geometry: Any, row0: int, col0: int, rows: int, columns: int) -> Any:
    """The geometry of the sub-image ``[row0:row0+rows, col0:col0+columns]`` (same pixel centres)."""
    dy, dx = geometry.pixel_spacing_mm
    x0, y0 = geometry.rt_image_position_mm
    return geometry.replace(rows=rows, columns=columns, rt_image_position_mm=(x0 + col0 * dx, y0 - row0 * dy))


class _View:
    """One binned, band-passed acquired view with its ROI and binned geometry.

    With *window* only the part of the binned image around the ROI (ROI + ``WINDOW_MARGIN_SIGMAS``
    coarse band-pass sigmas) is filtered and rendered: the acquired image and every model are
    filtered on the same window (same boundary handling), so the model still equals the image at
    the solution.
    """

    def __init__(self, acquired: NDArray[np.floating], geometry: Any, iso: NDArray[np.float64], working_mm: float,
                 roi_half_mm: float, *, window: bool = False) -> None:
        j = projection_jacobian(geometry, iso[None, :])[0]
        s = float(np.linalg.svd(j, compute_uv=False)[:2].mean())
        self.f = max(1, int(round(working_mm * s)))
        binned = _bin(acquired, self.f)
        self.geometry = bin_geometry(geometry, self.f)
        s_w = s / self.f
        self.coarse = BANDPASS_COARSE_MM * s_w
        c = self.geometry.project(iso[None, :])[0]
        half = roi_half_mm * s_w
        edge = 2.0 * self.coarse
        if window:
            pad = half + WINDOW_MARGIN_SIGMAS * self.coarse
            r0 = int(np.clip(np.floor(c[1] - pad), 0, binned.shape[0]))
            r1 = int(np.clip(np.ceil(c[1] + pad) + 1, r0, binned.shape[0]))
            c0 = int(np.clip(np.floor(c[0] - pad), 0, binned.shape[1]))
            c1 = int(np.clip(np.ceil(c[0] + pad) + 1, c0, binned.shape[1]))
            if r1 - r0 < 8 or c1 - c0 < 8:
                raise RegistrationError("2D/3D: the region of interest around the isocenter is outside the image")
            n_rows, n_cols = binned.shape
            binned = binned[r0:r1, c0:c1]
            self.geometry = _window_geometry(self.geometry, r0, c0, r1 - r0, c1 - c0)
            c = c - (c0, r0)
            rr, cc = np.indices(binned.shape)
            rr_img, cc_img = rr + r0, cc + c0  # the same ROI as without the window
            self.roi = ((np.abs(cc - c[0]) <= half) & (np.abs(rr - c[1]) <= half) & (rr_img >= edge)
                        & (cc_img >= edge) & (rr_img < n_rows - edge) & (cc_img < n_cols - edge))
        else:
            rr, cc = np.indices(binned.shape)
            self.roi = ((np.abs(cc - c[0]) <= half) & (np.abs(rr - c[1]) <= half) & (rr >= edge) & (cc >= edge)
                        & (rr < binned.shape[0] - edge) & (cc < binned.shape[1] - edge))
        self.raw = np.asarray(binned, dtype=np.float64)
        self.window_px = INTENSITY_WINDOW_MM * s_w
        self.fixed = self._filter(binned)
        if self.roi.sum() < 400:
            raise RegistrationError("2D/3D: the region of interest around the isocenter is outside the image")
        self.f_roi = self.fixed[self.roi]
        self.j_iso = projection_jacobian(self.geometry, iso[None, :])[0]  # binned px per mm at the isocenter

    def _filter(self, img: NDArray[np.floating]) -> NDArray[np.float64]:
        from scipy import ndimage

        bp = bandpass(img, fine_px=1.0, coarse_px=self.coarse)
        if not LOCAL_CONTRAST:
            return bp
        # local contrast normalisation: scatter and the log response scale edge contrast with the
        # local attenuation; dividing by the local RMS makes every region count the same
        rms = np.sqrt(ndimage.gaussian_filter(bp * bp, self.coarse, mode="nearest", truncate=3.0))
        return bp / (rms + 0.1 * float(np.median(rms)) + 1e-12)

    def _window_mean(self, img: NDArray[np.float64]) -> NDArray[np.float64]:
        """Gaussian-weighted local mean (sigma ``window_px``), computed on 4× binned pixels (the window
        is 20 mm wide: a smooth field) and interpolated back."""
        from scipy import ndimage

        f = WINDOW_BINNING
        r, c = img.shape
        pr, pc = (-r) % f, (-c) % f
        a = np.pad(img, ((0, pr), (0, pc)), mode="edge")
        small = a.reshape(a.shape[0] // f, f, a.shape[1] // f, f).mean(axis=(1, 3))
        small = ndimage.gaussian_filter(small, self.window_px / f, mode="nearest", truncate=3.0)
        rows = (np.arange(r) - (f - 1) / 2.0) / f
        cols = (np.arange(c) - (f - 1) / 2.0) / f
        rr = np.clip(rows, 0, small.shape[0] - 1)
        cc = np.clip(cols, 0, small.shape[1] - 1)
        return ndimage.map_coordinates(small, np.meshgrid(rr, cc, indexing="ij"), order=1, mode="nearest")

    def _model(self, drr: NDArray[np.floating]) -> NDArray[np.float64]:
        """The DRR (line integrals) mapped to the acquired image by a **local** linear fit in the
        transmission domain, ``t_acq ≈ a(x)·exp(−DRR) + b(x)`` (Gaussian windows of
        INTENSITY_WINDOW_MM), returned as a log image: scatter adds a smooth field to the
        transmission and the anode heel multiplies it, which in the log image is a non-linear,
        position-dependent response that shifts edges and biased the 2D/2D shift by ~0.2 mm."""
        from scipy import ndimage

        if not LOCAL_INTENSITY_MODEL:
            return np.asarray(drr, dtype=np.float64)
        line = np.asarray(drr, dtype=np.float64)
        # the acquired image must be a log image in line-integral units (an RT Image after its
        # Rescale, as the virtual imager and kV imagers deliver them; any offset is a factor on the
        # transmission, absorbed by a(x)); a global gain far from 1 means it is not: then the DRR
        # is used as it is (global gain and offset only)
        x = np.column_stack([line[self.roi], np.ones(int(self.roi.sum()))])
        gain = float(np.linalg.lstsq(x, self.raw[self.roi], rcond=None)[0][0])
        if not LOG_UNITS_GAIN[0] <= gain <= LOG_UNITS_GAIN[1]:
            return line
        m = np.exp(-line)
        v = np.exp(-np.clip(self.raw, -5.0, 50.0))
        g = self._window_mean
        mm, vv = g(m), g(v)
        var = g(m * m) - mm * mm
        cov = g(m * v) - mm * vv
        a = cov / np.maximum(var, 1e-6 * (float(np.max(var)) + 1e-30))
        return -np.log(np.maximum(a * m + (vv - a * mm), 1e-6))

    def moving(self, renderer: Any, t: NDArray[np.float64]) -> NDArray[np.float64]:
        img = renderer.render(self.geometry, setup_error=RigidTransform(t))
        return self._filter(self._model(img))[self.roi]

    def moving_and_shift_jacobian(self, renderer: Any, t: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Model at *t* and its approximate derivative w.r.t. a patient translation (ROI, (N, 3)).

        The approximation moves the whole DRR like the isocenter plane (``−∇M · J_iso``); used
        only as the Gauss-Newton Jacobian, so the fixed point (model = image) stays exact.
        """
        full = self._filter(self._model(renderer.render(self.geometry, setup_error=RigidTransform(t))))
        g_r, g_c = np.gradient(full)
        jac = -(g_c[self.roi][:, None] * self.j_iso[0][None, :] + g_r[self.roi][:, None] * self.j_iso[1][None, :])
        return full[self.roi], jac


def _fit_gain_joint(f: NDArray[np.float64], m: NDArray[np.float64], jac: NDArray[np.float64]) -> tuple[float, float]:
    """Gain and offset of ``f ≈ g·m + o + jac·x`` (x discarded)."""
    x = np.column_stack([m, np.ones_like(m), jac])
    sc = np.sqrt((x * x).mean(axis=0)) + 1e-12
    beta = np.linalg.lstsq(x / sc, f, rcond=None)[0] / sc
    return float(beta[0]), float(beta[1])


def match_2d3d(
    acquired: Sequence[NDArray[np.floating]],
    geometries: Sequence[Any],
    renderer: Any,
    *,
    isocenter_mm: ArrayLike,
    references: Sequence[NDArray[np.floating]] | None = None,
    initial: RigidTransform | None = None,
    working_pixel_mm: float = WORKING_PIXEL_6DOF_MM,
    roi_half_mm: float = ROI_HALF_MM,
    max_iterations: int = 12,
    dof: int = 6,
    image_jacobian: bool = True,
    window: bool = True,
    tolerance_mm: float = TOL_MM,
    tolerance_deg: float = TOL_DEG,
    coarse_pixel_mm: float | None = None,
    coarse_iterations: int = 1,
) -> MatchResult:
    """6-DoF 2D/2D match by 2D/3D registration against DRRs rendered on the fly (MATCH-2).

    Parameters
    ----------
    acquired : sequence of ndarray of shape (rows, cols)
        The acquired projections (two views ~90° apart).
    geometries : sequence
        Their projection geometries (``ProjectionGeometry``).
    renderer : object
        ``render(geometry, *, setup_error)`` of the planning CT (e.g. ``DrrRenderer``).
    isocenter_mm : (3,) array_like
        Rotation centre and ROI centre (planned isocenter).
    references : sequence of ndarray, optional
        Reference DRRs of the views: with them the start is the 2D/2D translation solution.
    initial : RigidTransform, optional
        Start (reference → verification); overrides *references*.
    working_pixel_mm, roi_half_mm, max_iterations
        Working resolution and ROI half-size at the isocenter; Gauss-Newton iterations.
    dof : {6, 3}
        3 = translations only (removes the depth-dependent magnification bias of the pure 2D
        shift method).
    image_jacobian : bool
        Translation columns of the Jacobian from the image gradient (no extra render) instead of
        finite differences (3 renders per view and iteration); rotations always use finite
        differences. The converged solution is the same (the model itself is exact).
    window : bool
        Render and filter only the part of each (binned) view around the region of interest
        (the ROI plus the reach of the filters) instead of the whole receptor.
    tolerance_mm, tolerance_deg
        Convergence: stop when the translation and rotation updates are below these (the last
        update is applied; the remaining error is a fraction of it).
    coarse_pixel_mm, coarse_iterations
        First *coarse_iterations* Gauss-Newton iterations on views binned to *coarse_pixel_mm*
        (renders ~4× cheaper at twice the pixel size) before the working resolution: from a start
        a few mm off, the fine level then mostly needs one or two iterations.

    Returns
    -------
    MatchResult
        6-DoF transform; ``metric`` is the mean band-passed NCC of the views.
    """
    t0 = time.perf_counter()
    iso = np.asarray(isocenter_mm, float)
    if len(acquired) != len(geometries) or len(acquired) < 2:
        raise RegistrationError("2D/3D: needs two or more acquired images with their geometries")
    details: dict[str, Any] = {}
    if initial is None and references is not None:
        start = match_2d2d(references, acquired, geometries, isocenter_mm=iso)
        initial = start.transform
        details["start_translation_mm"] = start.transform.translation_mm.tolist()
    t = (RigidTransform.identity() if initial is None else initial).matrix.copy()
    if dof not in (3, 6):
        raise ValueError(f"dof must be 3 or 6, got {dof}")
    steps = ([np.r_[FD_ROTATION_RAD * e, np.zeros(3)] for e in np.eye(3)] if dof == 6 else []) + \
            [np.r_[np.zeros(3), FD_TRANSLATION_MM * e] for e in np.eye(3)]
    levels = [(working_pixel_mm, max_iterations)]
    if coarse_pixel_mm is not None and coarse_pixel_mm > working_pixel_mm and coarse_iterations > 0:
        levels.insert(0, (coarse_pixel_mm, coarse_iterations))
    converged, total_it = False, 0
    last_nccs: list[float] = []
    for level_mm, level_iterations in levels:
        views = [_View(a, g, iso, level_mm, roi_half_mm, window=window) for a, g in zip(acquired, geometries)]
        t, it, converged, last_nccs = _gauss_newton_2d3d(views, renderer, t, iso, dof=dof, steps=steps,
                                                         image_jacobian=image_jacobian,
                                                         max_iterations=level_iterations,
                                                         tolerance_mm=tolerance_mm, tolerance_deg=tolerance_deg)
        total_it += it
    # NCC of the last rendered models (before the last, sub-tolerance step: no extra renders)
    nccs = last_nccs
    result = RigidTransform(t)
    _check_solution(result, RigidTransform.identity() if initial is None else initial, min(nccs), 1.0,
                    MIN_NCC_2D, "2D/3D")
    details["view_ncc"] = nccs
    return MatchResult(
        transform=result, match_type=MatchType.TWO_VIEW_2D, dof=dof, metric=float(np.mean(nccs)),
        metric_name="NCC (band-passed DRR vs acquired, mean of views)", iterations=total_it,
        stop_reason=StopReason.CONVERGED if converged else StopReason.MAX_ITERATIONS, overlap_fraction=1.0,
        elapsed_s=time.perf_counter() - t0, details=details,
    )


def _gauss_newton_2d3d(views: Sequence[_View], renderer: Any, t: NDArray[np.float64], iso: NDArray[np.float64], *,
                       dof: int, steps: list[NDArray[np.float64]], image_jacobian: bool, max_iterations: int,
                       tolerance_mm: float, tolerance_deg: float) -> tuple[NDArray[np.float64], int, bool, list[float]]:
    """Gauss-Newton on one working resolution: (transform, iterations, converged, NCC per view of the
    last rendered models)."""
    converged, it = False, 0
    prev: NDArray[np.float64] | None = None
    last_nccs: list[float] = []
    for it in range(1, max_iterations + 1):
        rows, res = [], []
        ncc_now: list[float] = []
        for v in views:
            if image_jacobian:  # translations from the image gradient, rotations by finite differences
                m0, jac_t = v.moving_and_shift_jacobian(renderer, t)
                jac_r = [(v.moving(renderer, _delta_matrix(st[:3], st[3:], iso) @ t) - m0) / np.linalg.norm(st)
                         for st in steps[:3]] if dof == 6 else []
                jac = np.column_stack([*jac_r, jac_t])
            else:
                m0 = v.moving(renderer, t)
                jac = np.column_stack([(v.moving(renderer, _delta_matrix(st[:3], st[3:], iso) @ t) - m0)
                                       / np.linalg.norm(st) for st in steps])  # d(model)/d(omega [rad], tau [mm])
            # gain and offset fitted jointly with the motion columns (as NCC's Gauss-Newton needs:
            # a gain fitted alone is biased low by the mismatch and makes the steps overshoot)
            g, o = _fit_gain_joint(v.f_roi, m0, jac)
            ncc_now.append(float(np.corrcoef(v.f_roi, m0)[0, 1]))
            rows.append(g * jac)
            res.append(v.f_roi - (g * m0 + o))
        last_nccs = ncc_now
        a, b = np.vstack(rows), np.concatenate(res)
        sc = np.sqrt((a * a).mean(axis=0)) + 1e-12
        delta = np.linalg.lstsq(a / sc, b, rcond=None)[0] / sc
        omega, tau = (delta[:3], delta[3:]) if dof == 6 else (np.zeros(3), delta)
        tau = tau * min(1.0, 5.0 / (np.linalg.norm(tau) + 1e-12))
        omega = omega * min(1.0, np.deg2rad(2.0) / (np.linalg.norm(omega) + 1e-12))
        step = np.r_[omega / FD_ROTATION_RAD, tau / FD_TRANSLATION_MM]
        if prev is not None and float(np.dot(step, prev)) < 0:  # overshoot: halve (rough objective)
            omega, tau, step = 0.5 * omega, 0.5 * tau, 0.5 * step
        prev = step
        t = _delta_matrix(omega, tau, iso) @ t
        if np.linalg.norm(tau) < tolerance_mm and np.rad2deg(np.linalg.norm(omega)) < tolerance_deg:
            converged = True
            break
    return t, it, converged, last_nccs
