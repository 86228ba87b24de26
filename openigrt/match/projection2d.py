"""Simple 2D (SPEC MATCH-1) and 2D/2D translation (MATCH-2) matches of projections.

Each acquired projection is registered to its reference image (a DRR) in the image plane:

1. Both images are binned to a working resolution (~0.75 mm at the isocenter), **band-pass
   filtered** (difference of Gaussians: noise above, scatter/heel/gain below) and divided by their
   local RMS (scatter and the log response scale edge contrast with the local attenuation: a
   lateral kV view through the pelvis keeps a fraction of its DRR's contrast), which makes the match
   insensitive to intensity offset, gain, smooth non-uniformity, scatter and noise.
2. An exhaustive masked-NCC **shift search** (FFT) over ``±search_mm`` inside a region of
   interest around the projected isocenter, then **Gauss-Newton** refinement of the shift (and
   the in-plane rotation when asked, and the magnification change a translation along the beam
   causes) with an intensity gain/offset, sampled by ``scipy.ndimage.map_coordinates``.
3. The pixel shift ``u`` of each view is related to the patient translation ``d`` (reference →
   verification, mm) by the projection Jacobian at the isocenter, ``u = J d`` (``J`` 2×3, from the
   view's geometry ``project``). Simple 2D reports the minimum-norm ``d`` (no component along the
   beam: it is not visible); 2D/2D solves the stacked 4×3 system by least squares. From images
   alone, ``J`` of each view is taken at the depth of its anatomy's mass centroid along the beam
   (seen in the other view's reference, :func:`_mass_depth`): anatomy off the isocenter plane is
   magnified differently and a translation moves it more or less than the isocenter (parallax: a
   bias of 3-8 % of the setup error on the real CTs when ``J`` was taken at the isocenter).

Images are arrays ``(rows, columns)``; pixel positions are ``(column, row)`` as returned by
``ProjectionGeometry.project`` (``openigrt.geometry.projection``). 6-DoF 2D/2D (DRRs rendered
on the fly from the CT) is in :mod:`openigrt.match.projection2d3d`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.match.markers import Projector, projection_jacobian
from openigrt.match.result import BLANK_STD, MIN_NCC_2D, MIN_OVERLAP_FRACTION, MatchResult, MatchType, StopReason

#: working pixel size at the isocenter plane (mm) the images are binned to
WORKING_PIXEL_MM = 0.75
#: band-pass: fine Gaussian (working pixels) and coarse Gaussian (mm at the isocenter)
BANDPASS_FINE_PX = 1.0
BANDPASS_COARSE_MM = 8.0
#: half-size (mm at the isocenter) of the default region of interest around the isocenter
ROI_HALF_MM = 80.0
#: Gauss-Newton sample points per view (regular subset of the ROI) and step tolerance (working px)
MAX_SAMPLES_2D = 40_000
STEP_TOL_PX = 0.005
#: 2D/2D with DRR refinement: pixel size (mm at the isocenter) of the shift search that starts it
#: and of its first DRR iteration; the refinement (1 mm) stops when its update is below
#: DRR_REFINE_TOL_MM (the update is applied: the error left is a small fraction of it)
DRR_START_PIXEL_MM = 2.0
DRR_REFINE_TOL_MM = 0.2
#: 2D/2D from images alone: fit each view's magnification change about the projected isocenter
#: (a translation along the beam magnifies the anatomy: the radial parallax biased the shift)
IMAGE_MAGNIFICATION = True
#: 2D/2D from images alone: each view's shift is related to the translation at the depth of its
#: anatomy's mass centroid (from the other view), not at the isocenter (see _mass_depth)
MASS_DEPTH = True
#: divide band-passed images by their local RMS (see _filtered)
LOCAL_CONTRAST = True


@dataclass(frozen=True)
class View2DResult:
    """In-plane result of one view: the acquired image is the reference magnified by ``scale``
    and rotated by ``rotation_deg`` (counter-clockwise as displayed, rows down) about
    ``center_px``, which moves by ``shift_px`` = (d_column, d_row) full-resolution pixels."""

    shift_px: tuple[float, float]
    rotation_deg: float
    center_px: tuple[float, float]
    ncc: float
    iterations: int
    overlap_fraction: float
    scale: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"shift_px": list(self.shift_px), "rotation_deg": self.rotation_deg, "scale": self.scale,
                "center_px": list(self.center_px), "ncc": self.ncc, "iterations": self.iterations,
                "overlap_fraction": self.overlap_fraction}


def _bin(image: NDArray[np.floating], f: int) -> NDArray[np.float64]:
    """Means of ``f × f`` pixel blocks (float64; the partial blocks at the far ends are dropped)."""
    from openigrt.match._kernels import bin2d

    if f <= 1:
        return np.asarray(image, dtype=np.float64)
    return bin2d(image, f)


def bandpass(image: NDArray[np.floating], *, fine_px: float, coarse_px: float) -> NDArray[np.float64]:
    """Difference of Gaussians ``G_fine − G_coarse`` (array ``(rows, cols)``, kernels cut at 3 sigma)."""
    from scipy import ndimage

    a = np.asarray(image, dtype=np.float64)
    return (ndimage.gaussian_filter(a, fine_px, mode="nearest", truncate=3.0)
            - ndimage.gaussian_filter(a, coarse_px, mode="nearest", truncate=3.0))


def _filtered(img: NDArray[np.float64], coarse_px: float) -> NDArray[np.float64]:
    """Band-pass, then (:data:`LOCAL_CONTRAST`) divided by the local RMS of the band-passed image:
    scatter and the log response scale edge contrast with the local attenuation (a lateral view
    through the pelvis keeps a tenth of its DRR's contrast); every region then counts the same."""
    from scipy import ndimage

    bp = bandpass(img, fine_px=BANDPASS_FINE_PX, coarse_px=coarse_px)
    if not LOCAL_CONTRAST:
        return bp
    rms = np.sqrt(ndimage.gaussian_filter(bp * bp, coarse_px, mode="nearest", truncate=3.0))
    return bp / (rms + 0.1 * float(np.median(rms)) + 1e-12)


def _rot(theta: float) -> NDArray[np.float64]:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def register_projection(
    reference: NDArray[np.floating],
    acquired: NDArray[np.floating],
    *,
    center_colrow: ArrayLike,
    pixels_per_mm: float,
    rotation: bool = False,
    search_mm: float = 20.0,
    roi_half_mm: float = ROI_HALF_MM,
    max_iterations: int = 20,
    working_pixel_mm: float = WORKING_PIXEL_MM,
    scale: bool = False,
) -> View2DResult:
    """In-plane registration of one acquired projection to its reference (MATCH-1 building block).

    Parameters
    ----------
    reference, acquired : ndarray of shape (rows, cols)
        Same geometry (same size and pixel grid).
    center_colrow : (float, float)
        Projected isocenter (full-resolution pixels): ROI centre and rotation centre.
    pixels_per_mm : float
        Image scale at the isocenter (pixels per patient mm).
    rotation : bool
        Also fit the in-plane rotation.
    search_mm, roi_half_mm, max_iterations
        Shift search half-range and ROI half-size (mm at the isocenter); Gauss-Newton iterations.
    working_pixel_mm : float
        Pixel size at the isocenter the images are binned to.

    Raises
    ------
    RegistrationError
        Blank image, different sizes, no overlap or NCC below ``MIN_NCC_2D``.
    """
    from openigrt.match._ncc import masked_ncc_search

    if np.shape(reference) != np.shape(acquired):
        raise RegistrationError(f"2D: reference {np.shape(reference)} and acquired {np.shape(acquired)} images differ in size")
    f = max(1, int(round(working_pixel_mm * pixels_per_mm)))
    s = pixels_per_mm / f  # working pixels per mm
    coarse = BANDPASS_COARSE_MM * s
    binned = []
    for name, img in (("reference", reference), ("acquired", acquired)):
        b = _bin(img, f)  # a non-finite pixel makes its block non-finite
        if not np.all(np.isfinite(b)) or float(np.std(b)) < BLANK_STD:
            raise RegistrationError(f"2D: the {name} image is blank or not finite")
        binned.append(b)
    fb = _filtered(binned[1], coarse)
    mb = _filtered(binned[0], coarse)
    c = (np.asarray(center_colrow, float) - (f - 1) / 2.0) / f  # working (col, row)
    rr, cc = np.indices(fb.shape)
    half = roi_half_mm * s
    edge = 2.0 * coarse
    roi = ((np.abs(cc - c[0]) <= half) & (np.abs(rr - c[1]) <= half) & (rr >= edge) & (cc >= edge)
           & (rr < fb.shape[0] - edge) & (cc < fb.shape[1] - edge))
    if roi.sum() < 400:
        raise RegistrationError("2D: the region of interest around the isocenter is outside the image")
    valid_m = np.zeros(mb.shape, bool)
    valid_m[int(edge):mb.shape[0] - int(edge), int(edge):mb.shape[1] - int(edge)] = True
    peak = masked_ncc_search(fb, mb, fixed_mask=roi, moving_mask=valid_m, max_shift=search_mm * s,
                             min_overlap_fraction=0.5, compact=True)
    if peak.ncc <= -1.0:
        raise RegistrationError("2D: no overlap between the acquired and the reference image")
    # fixed(x) ≈ moving(A x): A(x) = R(theta)(x - c) + c + t, x = (row, col) working pixels
    t = -np.asarray(peak.shift, float)
    theta, it, ncc, frac = _gauss_newton_2d(fb, mb, roi, valid_m, c[::-1], t, rotation, max_iterations, scale)
    if frac < MIN_OVERLAP_FRACTION:
        raise RegistrationError(f"2D: only {100 * frac:.0f}% of the region of interest overlaps (no overlap)")
    if ncc < MIN_NCC_2D:
        raise RegistrationError(f"2D: final NCC {ncc:.3f} below {MIN_NCC_2D} (metric too poor)")
    mag = float(np.exp(-theta[2]))  # acquired = reference magnified by mag about c
    shift_rc = -theta[1] * mag * f  # the point at c moves by -t / e^lambda (rows, cols), full-res pixels
    return View2DResult((float(shift_rc[1]), float(shift_rc[0])), float(np.rad2deg(-theta[0])),
                        (float(center_colrow[0]), float(center_colrow[1])), ncc, it, frac, mag)  # type: ignore[index]


def _gauss_newton_2d(fb: NDArray[np.float64], mb: NDArray[np.float64], roi: NDArray[np.bool_],
                     valid_m: NDArray[np.bool_], c_rc: NDArray[np.float64], t: NDArray[np.float64],
                     rotation: bool, max_iterations: int, scale: bool = False) -> tuple[Any, int, float, float]:
    """Gauss-Newton of ``fixed(x) ≈ g·moving(A x) + o``, ``A(x) = e^λ R(θ)(x − c) + c + t``.

    Returns ``((θ, t, λ), iterations, NCC, overlap)``; λ (log scale) is fitted with *scale*, θ with
    *rotation* (both compositional about ``c``)."""
    from scipy import ndimage

    g_r, g_c = np.gradient(mb)
    x = np.argwhere(roi).astype(float)  # (N, 2) row, col
    fv = fb[roi]
    if len(x) > MAX_SAMPLES_2D:  # regular subset (deterministic)
        step = int(np.ceil(len(x) / MAX_SAMPLES_2D))
        x, fv = x[::step], fv[::step]
    th, lam = 0.0, 0.0
    t = np.asarray(t, float).copy()
    it = 0
    prev: NDArray[np.float64] | None = None
    for it in range(1, max_iterations + 1):
        y = np.exp(lam) * (x - c_rc) @ _rot(th).T + c_rc + t
        m = ndimage.map_coordinates(mb, y.T, order=1, mode="constant", cval=np.nan)
        ok = np.isfinite(m) & (ndimage.map_coordinates(valid_m.astype(float), y.T, order=0) > 0)
        if ok.sum() < 100:
            raise RegistrationError("2D: no overlap between the acquired and the reference image")
        gr = ndimage.map_coordinates(g_r, y[ok].T, order=1)
        gc = ndimage.map_coordinates(g_c, y[ok].T, order=1)
        cols = [m[ok], np.ones(int(ok.sum()))]
        d = y[ok] - c_rc
        if rotation:  # d y / d theta (compositional, about c) = perp(y - c)
            cols.append(gc * d[:, 0] - gr * d[:, 1])
        if scale:  # d y / d lambda (compositional, about c) = y - c
            cols.append(gr * d[:, 0] + gc * d[:, 1])
        cols += [gr, gc]
        a = np.column_stack(cols)
        sc = np.sqrt((a * a).mean(axis=0)) + 1e-12
        beta = np.linalg.lstsq(a / sc, fv[ok], rcond=None)[0] / sc
        if abs(beta[0]) < 1e-12:
            raise RegistrationError("2D: images do not correlate (intensity gain fitted as zero)")
        step = beta[2:] / beta[0]
        dth = float(step[0]) if rotation else 0.0
        dlam = float(step[1 if rotation else 0]) if scale else 0.0
        dt = step[-2:]
        dt = dt * min(1.0, 3.0 / (np.linalg.norm(dt) + 1e-12))
        if prev is not None and float(np.dot(dt, prev)) < 0:  # limit cycle of the bilinear interpolant
            dt, dth, dlam = 0.5 * dt, 0.5 * dth, 0.5 * dlam
        prev = dt
        # compose: y' = e^dlam R(dth)(y - c) + c + dt
        t = np.exp(dlam) * _rot(dth) @ t + dt
        th += dth
        lam += dlam
        if np.linalg.norm(dt) < STEP_TOL_PX and abs(dth) < 1e-4 and abs(dlam) < 1e-5:
            break
    y = np.exp(lam) * (x - c_rc) @ _rot(th).T + c_rc + t
    m = ndimage.map_coordinates(mb, y.T, order=1, mode="constant", cval=np.nan)
    ok = np.isfinite(m)
    ncc = float(np.corrcoef(m[ok], fv[ok])[0, 1]) if ok.sum() > 10 else -1.0
    return (th, t, lam), it, ncc, float(ok.mean())


# ----------------------------------------------------------------------------- views -> patient
def _beam_axis(projector: Projector, iso: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit vector along which a point does not move in the image (the ray through *iso*)."""
    j = projection_jacobian(projector, iso[None, :])[0]
    axis = np.linalg.svd(j)[2][-1]
    return axis / np.linalg.norm(axis)


def _image_angle_sign(projector: Projector, iso: NDArray[np.float64], axis: NDArray[np.float64]) -> float:
    """+1 if a right-handed patient rotation about *axis* turns the image counter-clockwise."""
    e = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    e = 20.0 * e / np.linalg.norm(e)
    r = _axis_angle(axis, np.deg2rad(1.0))
    p = projector.project(np.array([iso, iso + e, iso + r @ e]))
    v0, v1 = p[1] - p[0], p[2] - p[0]
    # displayed ccw with rows down: angle measured in (col, -row)
    a0 = np.arctan2(-v0[1], v0[0])
    a1 = np.arctan2(-v1[1], v1[0])
    return float(np.sign(np.angle(np.exp(1j * (a1 - a0)))))


def _axis_angle(axis: NDArray[np.float64], angle_rad: float) -> NDArray[np.float64]:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


def _view_setup(projector: Projector, iso: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    j = projection_jacobian(projector, iso[None, :])[0]
    c = projector.project(iso[None, :])[0]
    return j, c, float(np.linalg.svd(j, compute_uv=False)[:2].mean())


def _mass_depth(references: Sequence[NDArray[np.floating]], projectors: Sequence[Projector], iso: NDArray[np.float64],
                view: int, roi_half_mm: float) -> float:
    """Signed depth (mm, along view *view*'s beam from the isocenter, + away from the source) of the
    centroid of the attenuating anatomy in front of its region of interest, seen in the other views:
    each other view's reference (line integrals, ≥ 0) within the ROI's extent along the common axis,
    its pixels placed on that view's isocenter plane. The image of a translated patient moves like
    the anatomy at that depth (magnification ``SID / (SAD + depth)``), not like the isocenter plane."""
    axis_v = _beam_axis(projectors[view], iso)
    zs, ws = [], []
    for o, (ref, proj) in enumerate(zip(references, projectors)):
        if o == view:
            continue
        j, c, s = _view_setup(proj, iso)
        axis_o = _beam_axis(proj, iso)
        common = np.cross(axis_v, axis_o)
        if np.linalg.norm(common) < 0.5:  # (nearly) parallel views say nothing about each other's depth
            continue
        common /= np.linalg.norm(common)
        f = max(1, int(round(2.0 * s)))  # ~2 mm pixels are plenty for a centroid
        img = np.maximum(_bin(ref, f), 0.0)
        rr, cc = np.indices(img.shape)
        px = np.stack([cc.ravel() * f + (f - 1) / 2.0 - c[0], rr.ravel() * f + (f - 1) / 2.0 - c[1]])
        pts = np.linalg.pinv(j) @ px  # (3, N) on the isocenter plane of view o, relative to the isocenter
        keep = np.abs(common @ pts) <= roi_half_mm
        zs.append(axis_v @ pts[:, keep])
        ws.append(img.ravel()[keep])
    if not zs:
        return 0.0
    z, w = np.concatenate(zs), np.concatenate(ws)
    return float((z * w).sum() / w.sum()) if w.sum() > 0 else 0.0


def match_2d(
    reference: NDArray[np.floating],
    acquired: NDArray[np.floating],
    projector: Projector,
    *,
    isocenter_mm: ArrayLike,
    rotation: bool = True,
    search_mm: float = 20.0,
    roi_half_mm: float = ROI_HALF_MM,
) -> MatchResult:
    """Simple 2D match (MATCH-1): one acquired projection against its reference image.

    Parameters
    ----------
    reference, acquired : ndarray of shape (rows, cols)
        Reference image (DRR) and acquired image on the same pixel grid.
    projector : Projector
        Geometry of the acquired image (``project``: verification patient mm → (col, row)).
    isocenter_mm : (3,) array_like
        Planned isocenter (patient mm): ROI centre and rotation centre.
    rotation : bool
        Fit the in-plane rotation too (reported as a rotation about the beam axis).

    Returns
    -------
    MatchResult
        ``transform``: translation perpendicular to the beam (the component along the beam is not
        visible and is 0) and, with *rotation*, the rotation about the beam axis through the
        isocenter. ``details["view"]`` holds the in-plane shift (pixels) and rotation (degrees).
    """
    t0 = time.perf_counter()
    iso = np.asarray(isocenter_mm, float)
    j, c, s = _view_setup(projector, iso)
    v = register_projection(reference, acquired, center_colrow=c, pixels_per_mm=s, rotation=rotation,
                            search_mm=search_mm, roi_half_mm=roi_half_mm, scale=IMAGE_MAGNIFICATION)
    d = np.linalg.pinv(j) @ np.asarray(v.shift_px)
    m = np.eye(4)
    if rotation:
        axis = _beam_axis(projector, iso)
        k = _image_angle_sign(projector, iso, axis)
        r = _axis_angle(axis, np.deg2rad(v.rotation_deg) * k)
        m[:3, :3] = r
        m[:3, 3] = iso - r @ iso
    m[:3, 3] += d
    return MatchResult(
        transform=RigidTransform(m), match_type=MatchType.SIMPLE_2D, dof=3,
        metric=v.ncc, metric_name="NCC (band-passed)", iterations=v.iterations,
        stop_reason=StopReason.CONVERGED, overlap_fraction=v.overlap_fraction,
        elapsed_s=time.perf_counter() - t0,
        details={"view": v.as_dict(), "visible_axes_mm": np.linalg.svd(j)[2][:2].tolist()},
    )


def match_2d2d(
    references: Sequence[NDArray[np.floating]],
    acquired: Sequence[NDArray[np.floating]],
    projectors: Sequence[Projector],
    *,
    isocenter_mm: ArrayLike,
    search_mm: float = 20.0,
    roi_half_mm: float = ROI_HALF_MM,
    renderer: Any = None,
) -> MatchResult:
    """2D/2D translation match (MATCH-2): two (or more) views → 3D translation by least squares.

    Each view's in-plane shift ``u_v`` (pixels) is measured by :func:`register_projection`;
    the translation ``d`` solves ``[J_1; J_2] d = [u_1; u_2]`` with ``J_v`` the projection
    Jacobian of view *v* at the isocenter. ``details["views"]`` has each view's shift and the
    residual (mm) of the fit, a consistency check of the two views along their common axis.

    A pure image shift is only exact for anatomy in the isocenter plane: structures nearer to
    or further from the source are magnified differently, which biases ``d`` by a few percent
    of the setup error (1-2 mm at 15 mm on a pelvis). With a *renderer* of the planning CT
    (``render(geometry, *, setup_error)``, e.g. ``DrrRenderer`` of a 2×-downsampled CT) the
    translation is then refined against DRRs rendered through it
    (:func:`~openigrt.match.projection2d3d.match_2d3d` with ``dof=3``), which removes that bias:
    the image shifts are then only its start (shift search at ``DRR_START_PIXEL_MM``, no
    Gauss-Newton), followed by one DRR iteration at that pixel size and DRR iterations at 1 mm
    until the update is below ``DRR_REFINE_TOL_MM`` (typically one or two; every DRR is rendered
    only on a window around the region of interest).
    """
    t0 = time.perf_counter()
    if not (len(references) == len(acquired) == len(projectors)) or len(acquired) < 2:
        raise RegistrationError("2D/2D: needs two reference images, two acquired images and their geometries")
    iso = np.asarray(isocenter_mm, float)
    js, us, views = [], [], []
    for ref, acq, proj in zip(references, acquired, projectors):
        j, c, s = _view_setup(proj, iso)
        # with a renderer, only a start for the DRR refinement: the shift search at 2 mm
        v = register_projection(ref, acq, center_colrow=c, pixels_per_mm=s, rotation=False,
                                search_mm=search_mm, roi_half_mm=roi_half_mm,
                                max_iterations=0 if renderer is not None else 20,
                                working_pixel_mm=DRR_START_PIXEL_MM if renderer is not None else WORKING_PIXEL_MM,
                                scale=renderer is None and IMAGE_MAGNIFICATION)
        js.append(j)
        us.append(np.asarray(v.shift_px))
        views.append(v)
    depths = [0.0] * len(js)
    if renderer is None and MASS_DEPTH:  # the views' motion happens at the depth of their anatomy (parallax)
        depths = [_mass_depth(references, projectors, iso, v, roi_half_mm) for v in range(len(js))]
        js = [projection_jacobian(p, (iso + z * _beam_axis(p, iso))[None, :])[0] for p, z in zip(projectors, depths)]
    a, b = np.vstack(js), np.concatenate(us)
    if np.linalg.matrix_rank(a, tol=1e-3 * np.abs(a).max()) < 3:
        raise RegistrationError("2D/2D: the views do not determine a 3D translation (parallel beams)")
    d = np.linalg.lstsq(a, b, rcond=None)[0]
    res = (a @ d - b).reshape(-1, 2)
    m = np.eye(4)
    m[:3, 3] = d
    det = [dict(v.as_dict(), residual_mm=float(np.linalg.norm(r) / _view_setup(p, iso)[2]), anatomy_depth_mm=z)
           for v, r, p, z in zip(views, res, projectors, depths)]
    if renderer is not None:
        from openigrt.match.projection2d3d import match_2d3d

        refined = match_2d3d(acquired, projectors, renderer, isocenter_mm=iso, initial=RigidTransform(m), dof=3,
                             roi_half_mm=roi_half_mm, coarse_pixel_mm=DRR_START_PIXEL_MM, coarse_iterations=1,
                             tolerance_mm=DRR_REFINE_TOL_MM)
        return MatchResult(
            transform=refined.transform, match_type=MatchType.TWO_VIEW_2D, dof=3, metric=refined.metric,
            metric_name=refined.metric_name, iterations=refined.iterations + sum(v.iterations for v in views),
            stop_reason=refined.stop_reason, overlap_fraction=float(min(v.overlap_fraction for v in views)),
            elapsed_s=time.perf_counter() - t0,
            details={"views": det, "shift_solution_mm": d.tolist(), "refined_with_drr": True},
        )
    return MatchResult(
        transform=RigidTransform(m), match_type=MatchType.TWO_VIEW_2D, dof=3,
        metric=float(np.mean([v.ncc for v in views])), metric_name="NCC (band-passed, mean of views)",
        iterations=sum(v.iterations for v in views), stop_reason=StopReason.CONVERGED,
        overlap_fraction=float(min(v.overlap_fraction for v in views)), elapsed_s=time.perf_counter() - t0,
        details={"views": det},
    )
