"""Marker detection in the planning CT (SPEC MATCH-4) and marker match in two projections (MATCH-5).

Detection (:func:`detect_markers`): gold fiducials are small and much denser than anything
around them. A grey-level **opening** with a box larger than a marker gives the local
background (bone, tissue and couch survive it, markers do not); the **excess** ``HU − opening``
is thresholded, connected components are kept when small (volume, extent) and strong (peak
excess), and each position is the **excess-weighted centroid** over the component grown by one
voxel, which is unbiased under linear partial-volume sampling, so markers between slices are
located to a fraction of a voxel.

Marker match (:func:`match_markers`): in each acquired projection a difference-of-Gaussians
blob response is computed; the rigid constellation of the planned markers (projected through the
view's geometry) is first located as a whole by an exhaustive offset search (so neighbouring
markers cannot swap), then each marker is refined locally to sub-pixel precision. Each
marker's 3D position is triangulated from its two detections; a robust (median) shift gives the
inliers, the final shift is the least-squares fit over the inliers' detections, and every marker
gets a residual in mm — a marker that does not fit (migrated) is flagged ``outlier``, never
hidden.

Projection geometry is anything with ``project(points_mm (N, 3)) -> (N, 2)`` pixel
``(column, row)`` (e.g. ``openigrt.geometry`` ``ProjectionGeometry``), plus
``pixel_spacing_mm`` at the receptor and the ``magnification`` at the isocenter, optional: they
are estimated numerically from ``project`` when absent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.errors import RegistrationError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.match.result import MARKER_OUTLIER_MM, MarkerResidual, MatchResult, MatchType, StopReason

#: excess over the local background (HU) a voxel needs to belong to a marker candidate
MARKER_EXCESS_HU = 600.0
#: peak excess (HU) a component needs to be a marker
MARKER_PEAK_EXCESS_HU = 1200.0
#: size limits of a marker component
MARKER_MAX_VOLUME_MM3 = 250.0
MARKER_MAX_EXTENT_MM = 12.0
#: background opening box (mm): larger than any marker, smaller than bone
BACKGROUND_BOX_MM = 9.0


class Projector(Protocol):
    """What the marker and 2D matchers need from a projection geometry."""

    def project(self, points_mm: ArrayLike) -> NDArray[np.float64]:  # (N, 2) (column, row)
        ...


@dataclass(frozen=True)
class DetectedMarker:
    """A fiducial found in the CT: centre in patient mm, peak excess HU, volume and extent."""

    position_mm: tuple[float, float, float]
    peak_excess_hu: float
    volume_mm3: float
    extent_mm: float


def detect_markers(
    ct: Volume,
    *,
    excess_hu: float = MARKER_EXCESS_HU,
    peak_excess_hu: float = MARKER_PEAK_EXCESS_HU,
    max_volume_mm3: float = MARKER_MAX_VOLUME_MM3,
    max_extent_mm: float = MARKER_MAX_EXTENT_MM,
    background_box_mm: float = BACKGROUND_BOX_MM,
) -> tuple[DetectedMarker, ...]:
    """Find implanted gold fiducials in a CT (MATCH-4).

    Parameters
    ----------
    ct : Volume
        Planning CT in HU, array ``(nz, ny, nx)``.
    excess_hu, peak_excess_hu : float
        Candidate and peak thresholds on ``HU − grey_opening(HU)``.
    max_volume_mm3, max_extent_mm : float
        Components larger than this are not markers (bone edges, couch rails, contrast).
    background_box_mm : float
        In-plane size of the opening box (slices: at least 3).

    Returns
    -------
    tuple of DetectedMarker
        Sorted by z, then y, then x (patient mm).

    Examples
    --------
    A 2-voxel "seed" of 3000 HU between two slices, next to a large bone block (not a marker):

    >>> hu = np.zeros((20, 40, 40), np.float32)
    >>> hu[:, 25:40, :] = 800.0
    >>> hu[9:11, 10, 12] = 3000.0
    >>> ct = Volume(hu, origin_mm=(0.0, 0.0, 0.0), spacing_mm=(1.0, 1.0, 2.0))
    >>> [tuple(round(v, 2) for v in m.position_mm) for m in detect_markers(ct)]
    [(12.0, 10.0, 19.0)]
    """
    from scipy import ndimage

    a = np.asarray(ct.array, dtype=np.float32)
    dx, dy, dz = ct.spacing_mm
    size = tuple(max(3, int(np.ceil(background_box_mm / s)) | 1) for s in (dz, dy, dx))
    # a marker is brighter than water + peak_excess_hu: open only around such voxels (speed)
    hot = a > peak_excess_hu
    if not hot.any():
        return ()
    excess = np.zeros_like(a)
    lab_hot, _ = ndimage.label(ndimage.binary_dilation(hot, iterations=2))
    for sl in ndimage.find_objects(lab_hot):
        grown = tuple(slice(max(0, s.start - n), s.stop + n) for s, n in zip(sl, size))
        sub = a[grown]
        excess[grown] = np.maximum(excess[grown], sub - ndimage.grey_opening(sub, size=size))
    cand = excess > excess_hu
    labels, n = ndimage.label(cand, structure=np.ones((3, 3, 3), bool))
    voxel_mm3 = dx * dy * dz
    found: list[DetectedMarker] = []
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == idx
        peak = float(excess[sl][comp].max())
        vol = float(comp.sum()) * voxel_mm3
        kji = np.argwhere(comp) + np.array([s.start for s in sl])
        ext_mm = (kji.max(axis=0) - kji.min(axis=0) + 1) * np.array([dz, dy, dx])
        if peak < peak_excess_hu or vol > max_volume_mm3 or float(ext_mm.max()) > max_extent_mm:
            continue
        centre = _weighted_centre(ct, excess, labels == idx, sl)
        found.append(DetectedMarker((float(centre[0]), float(centre[1]), float(centre[2])), peak, vol,
                                    float(np.linalg.norm(ext_mm))))
    return tuple(sorted(found, key=lambda m: (m.position_mm[2], m.position_mm[1], m.position_mm[0])))


def _weighted_centre(ct: Volume, excess: NDArray[np.float32], comp: NDArray[np.bool_], sl: tuple[slice, ...]) -> NDArray[np.float64]:
    from scipy import ndimage

    grown = tuple(slice(max(0, s.start - 2), s.stop + 2) for s in sl)
    region = ndimage.binary_dilation(comp[grown], structure=np.ones((3, 3, 3), bool))
    w = np.where(region, np.maximum(excess[grown], 0.0), 0.0).astype(np.float64)
    kji = np.argwhere(w > 0)
    ww = w[tuple(kji.T)]
    c_kji = (kji * ww[:, None]).sum(axis=0) / ww.sum() + np.array([s.start for s in grown])
    return ct.index_to_patient_mm([c_kji[::-1]])[0]


# ----------------------------------------------------------------------------- 2D marker finding
#: each marker is first looked for within this distance (mm) of the constellation's position ...
MARKER_LOCAL_MM = 1.0
#: ... and taken from the wider refinement window only when its NCC there is better by this much
MARKER_MIGRATION_NCC_GAIN = 0.15
#: a marker's template NCC must reach this to count as found ...
MARKER_MIN_NCC = 0.45
#: ... and the median over a view's markers this, else the view fails ("markers not visible")
MARKER_MIN_VIEW_NCC = 0.55
#: fine Gaussian of the template matching band-pass (mm at the isocenter): noise suppression
TEMPLATE_FINE_MM = 0.5
#: a marker blob must exceed this many robust standard deviations of the blob response
MARKER_MIN_SNR = 5.0
#: markers that must be found in two views and agree on the shift: a single triangulated marker (the
#: others seen in one view or none) does not confirm the constellation (a wrong lock passed that way)
MARKER_MIN_CONFIRMED = 2


def pixels_per_mm(projector: Projector, at_mm: ArrayLike) -> float:
    """Mean in-plane scale (pixels per patient mm) of *projector* around the point *at_mm*."""
    j = projection_jacobian(projector, np.asarray(at_mm, float).reshape(1, 3))[0]
    sv = np.linalg.svd(j, compute_uv=False)
    return float(sv[:2].mean())


def projection_jacobian(projector: Projector, points_mm: NDArray[np.float64], h_mm: float = 0.5) -> NDArray[np.float64]:
    """Numerical Jacobian ``d(column, row)/d(x, y, z)`` of ``projector.project``, shape ``(N, 2, 3)``."""
    pts = np.atleast_2d(np.asarray(points_mm, float))
    cols = []
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = h_mm
        cols.append((projector.project(pts + e) - projector.project(pts - e)) / (2 * h_mm))
    return np.stack(cols, axis=2)


def blob_response(image: NDArray[np.floating], sigma_px: float) -> NDArray[np.float64]:
    """Difference of Gaussians ``G_sigma − G_3sigma`` (bright blobs positive), array ``(rows, cols)``."""
    from scipy import ndimage

    im = np.asarray(image, dtype=np.float64)
    return ndimage.gaussian_filter(im, sigma_px) - ndimage.gaussian_filter(im, 3.0 * sigma_px)


def _robust_std(a: NDArray[np.float64]) -> float:
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med))) + 1e-12


def _crop(a: NDArray[np.float64], centre_rc: NDArray[np.int64], half: int) -> NDArray[np.float64]:
    out = np.zeros((2 * half + 1, 2 * half + 1))
    r0, c0 = int(centre_rc[0]) - half, int(centre_rc[1]) - half
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + 2 * half + 1, a.shape[0]), min(c0 + 2 * half + 1, a.shape[1])
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = a[rs:re, cs:ce]
    return out


def find_markers_2d(
    image: NDArray[np.floating],
    expected_colrow: NDArray[np.float64],
    *,
    pixels_per_mm_at_iso: float,
    search_mm: float = 20.0,
    refine_mm: float = 4.0,
    marker_diameter_mm: float = 1.0,
    polarity: int = 0,
) -> tuple[list[tuple[float, float] | None], dict[str, Any]]:
    """Find the markers of one projection near their expected pixel positions (MATCH-5).

    Parameters
    ----------
    image : ndarray of shape (rows, cols)
    expected_colrow : ndarray of shape (M, 2)
        Expected ``(column, row)`` of each marker (planned positions projected).
    pixels_per_mm_at_iso : float
        Image scale at the markers (see :func:`pixels_per_mm`).
    search_mm, refine_mm : float
        Half-range of the common (constellation) offset search and of each marker's local
        refinement, in patient mm.
    marker_diameter_mm : float
        Sets the blob filter scale.
    polarity : {0, 1, -1}
        1 = markers brighter than the background, -1 = darker, 0 = decide from the image.

    Returns
    -------
    positions, report
        ``positions[i]`` is ``(column, row)`` sub-pixel, or None when marker *i* was not found
        (no blob above :data:`MARKER_MIN_SNR` in its refinement window).
    """
    from scipy import ndimage

    s = float(pixels_per_mm_at_iso)
    sigma = max(0.8, 0.5 * marker_diameter_mm * s)
    resp = blob_response(image, sigma)
    exp_rc = np.asarray(expected_colrow, float)[:, ::-1]
    base = np.rint(exp_rc).astype(np.int64)
    half = int(np.ceil(search_mm * s))
    crops = np.stack([_crop(resp, b, half) for b in base])
    noise = _robust_std(crops[crops != 0]) if np.any(crops != 0) else 1.0
    best: tuple[float, int, NDArray[np.int64]] | None = None
    for sign in ((1, -1) if polarity == 0 else (polarity,)):
        score = np.maximum(sign * crops, 0.0).sum(axis=0)
        pk = np.array(np.unravel_index(int(np.argmax(score)), score.shape))
        if best is None or score[tuple(pk)] > best[0]:
            best = (float(score[tuple(pk)]), sign, pk)
    assert best is not None
    _, sign, pk = best
    offset = pk - half
    r_ref = int(np.ceil(refine_mm * s))
    out: list[tuple[float, float] | None] = []
    for b in base:
        c = b + offset
        win = np.maximum(sign * _crop(resp, c, r_ref), 0.0)
        peak = float(win.max())
        if peak < MARKER_MIN_SNR * noise:
            out.append(None)
            continue
        lab, _ = ndimage.label(win > 0.5 * peak)
        pr = np.unravel_index(int(np.argmax(win)), win.shape)
        comp = lab == lab[pr]
        w = np.where(comp, win - 0.5 * peak, 0.0)
        rr, cc = np.nonzero(w)
        ww = w[rr, cc]
        row = float((rr * ww).sum() / ww.sum()) + c[0] - r_ref
        col = float((cc * ww).sum() / ww.sum()) + c[1] - r_ref
        out.append((col, row))
    return out, {"offset_px": (float(offset[1]), float(offset[0])), "polarity": int(sign), "noise": noise}


# ----------------------------------------------------------------------------- 3D solve
def _gn_points(projectors: Sequence[Projector], obs: list[tuple[int, NDArray[np.float64]]],
               x0: NDArray[np.float64], iterations: int = 10) -> tuple[NDArray[np.float64], int]:
    """Least-squares 3D point/offset ``x`` with ``project_v(x) = u`` for each (view, u) in *obs*."""
    x = np.asarray(x0, float).copy()
    it = 0
    for it in range(1, iterations + 1):
        rows, res = [], []
        for v, u in obs:
            j = projection_jacobian(projectors[v], x[None, :])[0]
            rows.append(j)
            res.append(u - projectors[v].project(x[None, :])[0])
        a = np.concatenate(rows)
        dx = np.linalg.lstsq(a, np.concatenate(res), rcond=None)[0]
        x = x + dx
        if np.linalg.norm(dx) < 1e-4:
            break
    return x, it


def _fit_shift(projectors: Sequence[Projector], planned: NDArray[np.float64], found: list[list[Any]],
               use: list[int], d0: NDArray[np.float64]) -> tuple[NDArray[np.float64], int]:
    d = d0.copy()
    it = 0
    for it in range(1, 11):
        rows, res = [], []
        for i in use:
            for v, u in enumerate(found[i]):
                if u is None:
                    continue
                p = (planned[i] + d)[None, :]
                rows.append(projection_jacobian(projectors[v], p)[0])
                res.append(np.asarray(u) - projectors[v].project(p)[0])
        dx = np.linalg.lstsq(np.concatenate(rows), np.concatenate(res), rcond=None)[0]
        d = d + dx
        if np.linalg.norm(dx) < 1e-4:
            break
    return d, it


def _kabsch(src: NDArray[np.float64], dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares rigid 4x4 mapping points *src* onto *dst* (Kabsch / Umeyama without scale)."""
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cd - r @ cs
    return m


def match_markers(
    planned_mm: ArrayLike,
    images: Sequence[NDArray[np.floating]],
    projectors: Sequence[Projector],
    *,
    names: Sequence[str] | None = None,
    dof: int = 3,
    initial: RigidTransform | None = None,
    search_mm: float = 20.0,
    refine_mm: float = 4.0,
    marker_diameter_mm: float = 1.0,
    polarity: int = 0,
    outlier_mm: float = MARKER_OUTLIER_MM,
    templates: Sequence[NDArray[np.floating]] | None = None,
    anatomy: Sequence[NDArray[np.floating]] | None = None,
) -> MatchResult:
    """Marker match (MATCH-5): find the planned markers in the projections, solve the 3D shift.

    Parameters
    ----------
    planned_mm : array_like of shape (M, 3)
        Planned marker centres, reference patient mm (from :func:`detect_markers` or the plan's
        MARKER structures).
    images : sequence of ndarray of shape (rows, cols)
        Acquired projections (≥ 2 views for a 3D shift; typically 90° apart).
    projectors : sequence of Projector
        Geometry of each acquired image (``project`` maps verification patient mm to pixels).
    names : sequence of str, optional
        Marker names for the report (default ``M1``, ``M2`` …).
    dof : {3, 6}
        3 = translation (default); 6 = rigid fit of the triangulated inliers (needs ≥ 3).
    initial : RigidTransform, optional
        Where to look first (reference → verification); default identity.
    search_mm, refine_mm, marker_diameter_mm, polarity
        See :func:`find_markers_2d`.
    outlier_mm : float
        Residual beyond which a marker is flagged as an outlier and left out of the fit.
    templates : sequence of ndarray, optional
        Per view, the image of the markers alone at their **planned** positions (DRR of
        :func:`marker_only_volume` in that view's geometry): markers are then found by template
        NCC (:func:`find_markers_2d_template`), which is far more robust against bone edges than
        the blob filter used without templates.
    anatomy : sequence of ndarray, optional
        Per view, the DRR of the CT without its markers (:func:`split_markers`) at the planned
        position: subtracted before the template search (needs *templates*).

    Returns
    -------
    MatchResult
        ``markers`` holds per-marker residuals and outlier flags; ``metric`` is minus the RMS
        residual of the inliers (mm).

    Raises
    ------
    RegistrationError
        Fewer than two views, no marker found in two views, or no consistent inlier set.
    """
    t0 = time.perf_counter()
    planned = np.atleast_2d(np.asarray(planned_mm, float))
    m = len(planned)
    if len(images) != len(projectors) or len(images) < 2:
        raise RegistrationError("marker match: needs two or more acquired images, each with its geometry")
    if m == 0:
        raise RegistrationError("marker match: no planned marker positions")
    if dof not in (3, 6):
        raise ValueError(f"dof must be 3 or 6, got {dof}")
    labels = list(names) if names is not None else [f"M{i + 1}" for i in range(m)]
    init = RigidTransform.identity() if initial is None else initial
    start = init.apply(planned)
    found: list[list[Any]] = [[None] * len(images) for _ in range(m)]
    reports = []
    for v, (img, proj) in enumerate(zip(images, projectors)):
        if float(np.std(img)) < 1e-9:
            raise RegistrationError(f"marker match: acquired image {v + 1} is blank")
        s = pixels_per_mm(proj, start.mean(axis=0))
        if templates is not None:
            pos, rep = find_markers_2d_template(img, templates[v], proj.project(planned), pixels_per_mm_at_iso=s,
                                                search_mm=search_mm, polarity=1 if polarity == 0 else polarity,
                                                anatomy=None if anatomy is None else anatomy[v])
        else:
            pos, rep = find_markers_2d(img, proj.project(start), pixels_per_mm_at_iso=s, search_mm=search_mm,
                                       refine_mm=refine_mm, marker_diameter_mm=marker_diameter_mm,
                                       polarity=polarity)
        reports.append(rep)
        if rep.get("marker_ncc") and float(np.median(rep["marker_ncc"])) < MARKER_MIN_VIEW_NCC:
            raise RegistrationError(
                f"marker match: the markers are not reliably visible in acquired image {v + 1} (median template "
                f"NCC {float(np.median(rep['marker_ncc'])):.2f} < {MARKER_MIN_VIEW_NCC}); check exposure and field")
        for i, p in enumerate(pos):
            found[i][v] = p
    tri: dict[int, NDArray[np.float64]] = {}
    its = 0
    for i in range(m):
        obs = [(v, np.asarray(u)) for v, u in enumerate(found[i]) if u is not None]
        if len(obs) >= 2:
            tri[i], it = _gn_points(projectors, obs, start[i])
            its += it
    if not tri:
        raise RegistrationError("marker match: no marker was found in two views "
                                f"(found per view: {[sum(f[v] is not None for f in found) for v in range(len(images))]})")
    disp = np.array([tri[i] - planned[i] for i in tri])
    d_med = np.median(disp, axis=0)
    inliers = [i for i in tri if np.linalg.norm(tri[i] - planned[i] - d_med) <= outlier_mm]
    if not inliers:
        raise RegistrationError("marker match: the markers disagree (no consistent subset within "
                                f"{outlier_mm} mm); displacements {np.round(disp, 1).tolist()}")
    need = min(MARKER_MIN_CONFIRMED, m)
    if len(inliers) < need:
        raise RegistrationError(
            f"marker match: only {len(inliers)} of {m} markers found consistently in two views (at least {need} "
            "needed to confirm the planned constellation; one triangulated marker cannot tell it from another)")
    if dof == 6:
        if len(inliers) < 3:
            raise RegistrationError(f"marker match: 6 DoF needs 3 consistent markers, found {len(inliers)}")
        mat = _kabsch(planned[inliers], np.array([tri[i] for i in inliers]))
    else:
        d, it = _fit_shift(projectors, planned, found, inliers, d_med)
        its += it
        mat = np.eye(4)
        mat[:3, 3] = d
    transform = RigidTransform(mat)
    fitted = transform.apply(planned)
    residuals = []
    for i in range(m):
        if i in tri:
            r = float(np.linalg.norm(tri[i] - fitted[i]))
            found_mm: tuple[float, float, float] | None = tuple(float(v) for v in tri[i])  # type: ignore[assignment]
        else:  # seen in one view (or none): reprojection distance scaled to mm
            r = _single_view_residual(projectors, found[i], fitted[i])
            found_mm = None
        # outlier = does not fit the common shift; a marker seen in one view only is judged by its
        # reprojection distance, one seen nowhere is reported (no position) but not called an outlier
        outlier = (i not in inliers) if i in tri else bool(np.isfinite(r) and r > outlier_mm)
        residuals.append(MarkerResidual(labels[i], tuple(float(v) for v in planned[i]), found_mm,
                                        r if np.isfinite(r) else None, outlier, tuple(found[i])))  # type: ignore[arg-type]
    rms = float(np.sqrt(np.mean([residuals[i].residual_mm ** 2 for i in inliers])))
    return MatchResult(
        transform=transform, match_type=MatchType.MARKER, dof=dof, metric=-rms, metric_name="-RMS marker residual (mm)",
        iterations=its, stop_reason=StopReason.CLOSED_FORM, overlap_fraction=len(inliers) / m,
        elapsed_s=time.perf_counter() - t0, details={"views": reports, "inliers": [labels[i] for i in inliers]},
        markers=tuple(residuals),
    )


def _single_view_residual(projectors: Sequence[Projector], found: list[Any], fitted: NDArray[np.float64]) -> float:
    for v, u in enumerate(found):
        if u is not None:
            s = pixels_per_mm(projectors[v], fitted)
            return float(np.linalg.norm(np.asarray(u) - projectors[v].project(fitted[None, :])[0]) / s)
    return float("nan")


# ----------------------------------------------------------------------------- template matching
def marker_only_volume(ct: Volume, *, excess_hu: float = MARKER_EXCESS_HU,
                       background_box_mm: float = BACKGROUND_BOX_MM) -> Volume:
    """The CT's markers alone (HU ``−1000 + excess`` inside marker components, −1000 elsewhere).

    Render it with the DRR renderer in each acquired view's geometry to get the marker
    templates of :func:`match_markers` (the exact projected shape of every seed).
    """
    return split_markers(ct, excess_hu=excess_hu, background_box_mm=background_box_mm)[0]


def split_markers(ct: Volume, *, excess_hu: float = MARKER_EXCESS_HU,
                  background_box_mm: float = BACKGROUND_BOX_MM) -> tuple[Volume, Volume]:
    """``(markers only, anatomy without markers)`` of a CT.

    Markers only: ``−1000 + excess`` inside the detected marker components (−1000 elsewhere);
    anatomy: the CT with those voxels replaced by the local background (grey opening). DRRs of
    the two in an acquired view's geometry are the ``templates`` and ``anatomy`` of
    :func:`match_markers`.
    """
    from scipy import ndimage

    a = np.asarray(ct.array, dtype=np.float32)
    dx, dy, dz = ct.spacing_mm
    size = tuple(max(3, int(np.ceil(background_box_mm / s)) | 1) for s in (dz, dy, dx))
    markers = np.full(a.shape, -1000.0, np.float32)
    anatomy = a.copy()
    for m in detect_markers(ct, excess_hu=excess_hu, background_box_mm=background_box_mm):
        k, j, i = np.rint(ct.patient_to_index([m.position_mm])[0][::-1]).astype(int)
        sl = tuple(slice(max(0, c - 2 * n), c + 2 * n + 1) for c, n in zip((k, j, i), size))
        sub = a[sl]
        opened = ndimage.grey_opening(sub, size=size)
        ex = sub - opened
        keep = ndimage.binary_dilation(ex > excess_hu, iterations=1)
        markers[sl] = np.where(keep, np.maximum(markers[sl], -1000.0 + np.maximum(ex, 0.0)), markers[sl])
        anatomy[sl] = np.where(keep, opened, anatomy[sl])
    return ct.with_array(markers), ct.with_array(anatomy)


def _subtract_anatomy(fb: NDArray[np.float64], ab: NDArray[np.float64], search_px: int) -> NDArray[np.float64]:
    """``fb − (g · ab(x − u) + o)``: the band-passed anatomy DRR shifted (searched at half resolution)
    and scaled onto the band-passed image."""
    from scipy import ndimage

    from openigrt.match._ncc import masked_ncc_search

    r, c = (fb.shape[0] // 2) * 2, (fb.shape[1] // 2) * 2
    f2 = fb[:r, :c].reshape(r // 2, 2, c // 2, 2).mean(axis=(1, 3))
    a2 = ab[:r, :c].reshape(r // 2, 2, c // 2, 2).mean(axis=(1, 3))
    pk = masked_ncc_search(f2, a2, max_shift=search_px / 2 + 1, min_overlap_fraction=0.5)
    moved = ndimage.shift(ab, 2.0 * np.asarray(pk.shift), order=1, mode="nearest")
    x = np.column_stack([moved.ravel(), np.ones(moved.size)])
    gain, off = np.linalg.lstsq(x, fb.ravel(), rcond=None)[0]
    return fb - (gain * moved + off)


def _crop_at(a: NDArray[np.float64], origin_rc: NDArray[np.int64], shape: tuple[int, int]) -> NDArray[np.float64]:
    out = np.zeros(shape)
    r0, c0 = int(origin_rc[0]), int(origin_rc[1])
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + shape[0], a.shape[0]), min(c0 + shape[1], a.shape[1])
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = a[rs:re, cs:ce]
    return out


def find_markers_2d_template(
    image: NDArray[np.floating],
    template: NDArray[np.floating],
    expected_colrow: NDArray[np.float64],
    *,
    pixels_per_mm_at_iso: float,
    search_mm: float = 20.0,
    refine_mm: float = 3.0,
    polarity: int = 1,
    anatomy: NDArray[np.floating] | None = None,
) -> tuple[list[tuple[float, float] | None], dict[str, Any]]:
    """Find markers by NCC with their rendered templates (constellation first, then each marker).

    *template* is the image of the markers alone at their planned positions in this view's
    geometry (render of :func:`marker_only_volume`); both images are band-passed. Returns
    ``(column, row)`` per marker (None when the local NCC peak is below 0.3) and a report.
    *polarity* 1 means markers are brighter than their surroundings (image values grow with
    attenuation, as in a DRR); -1 for transmission-like images. With *anatomy* (DRR of the CT
    without markers, planned position, same geometry) the anatomy is first registered (shift),
    scaled and subtracted, so bone edges cannot be taken for markers.
    """
    from openigrt.match._ncc import masked_ncc_map, peak_of
    from openigrt.match.projection2d import bandpass

    s = float(pixels_per_mm_at_iso)
    sign = 1.0 if polarity >= 0 else -1.0
    exp_full = np.asarray(expected_colrow, float)[:, ::-1]
    half_t = int(np.ceil(4.0 * s))  # template half-size around each marker (seed ≤ 5 mm long)
    sp = int(np.ceil(search_mm * s))
    fine, coarse = max(0.7, TEMPLATE_FINE_MM * s), 3.0 * s
    # work on the part of the image the search can reach (+ room for the filters and the anatomy shift)
    margin = half_t + 2 * sp + int(np.ceil(3 * coarse))
    shape_img = np.asarray(np.shape(image))
    lo = np.clip(np.floor(exp_full.min(axis=0)).astype(int) - margin, 0, shape_img)
    hi = np.clip(np.ceil(exp_full.max(axis=0)).astype(int) + margin + 1, 0, shape_img)
    if np.any(hi - lo < 8):
        return [None] * len(exp_full), {"offset_px": (0.0, 0.0), "polarity": int(sign), "marker_ncc": []}
    sl = (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])))
    exp_rc = exp_full - lo
    fb = bandpass(np.asarray(image)[sl], fine_px=fine, coarse_px=coarse)
    tb = sign * bandpass(np.asarray(template)[sl], fine_px=fine, coarse_px=coarse)
    if anatomy is not None:
        ab = sign * bandpass(np.asarray(anatomy)[sl], fine_px=fine, coarse_px=coarse)
        fb = _subtract_anatomy(sign * fb, ab, sp) * sign
    size = 2 * (half_t + sp) + 1
    inside_img = np.ones(fb.shape)
    maps = []
    for e in exp_rc:
        o = np.rint(e).astype(int) - half_t - sp
        fc = _crop_at(fb, o, (size, size))
        tc = _crop_at(tb, o, (size, size))
        near = np.zeros((size, size), bool)
        near[sp:sp + 2 * half_t + 1, sp:sp + 2 * half_t + 1] = True
        support = near & (np.abs(tc) > 0.05 * max(float(np.abs(tc[near]).max()), 1e-12))
        ncc, _ = masked_ncc_map(fc, tc, fixed_mask=_crop_at(inside_img, o, (size, size)) > 0, moving_mask=support,
                                max_shift=(sp, sp), min_overlap_fraction=0.9)
        maps.append(ncc)
    score = np.sum([np.maximum(np.where(np.isfinite(m), m, 0.0), 0.0) for m in maps], axis=0)
    pk = peak_of(np.where(score > 0, score, -np.inf))
    offset = np.rint(np.asarray(pk.shift)).astype(int)
    shape = maps[0].shape
    u = [np.where(np.arange(n) > n // 2, np.arange(n) - n, np.arange(n)) for n in shape]
    dist = np.maximum(np.abs(u[0] - offset[0])[:, None], np.abs(u[1] - offset[1])[None, :])
    near = dist <= max(1, int(np.ceil(MARKER_LOCAL_MM * s)))  # markers move together: stay close
    wide = dist <= int(np.ceil(refine_mm * s))  # ... unless one clearly sits elsewhere (migrated)
    out: list[tuple[float, float] | None] = []
    nccs = []
    for e, m in zip(exp_rc, maps):
        p = peak_of(np.where(near, m, -np.inf))
        p_wide = peak_of(np.where(wide, m, -np.inf))
        if p_wide.ncc > p.ncc + MARKER_MIGRATION_NCC_GAIN:
            p = p_wide
        nccs.append(p.ncc)
        if p.ncc < MARKER_MIN_NCC:
            out.append(None)
            continue
        out.append((float(e[1] + lo[1] + p.shift[1]), float(e[0] + lo[0] + p.shift[0])))
    return out, {"offset_px": (float(offset[1]), float(offset[0])), "offset_subpixel": (float(pk.shift[1]), float(pk.shift[0])),
                 "polarity": int(sign), "marker_ncc": nccs}
