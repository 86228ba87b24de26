"""Which voxels of a CBCT (or CT) belong to the patient: body, couch and other objects (SPEC MATCH-3).

A 3D/3D match must follow the **patient**. The treatment couch in a CBCT is another couch than the
CT's, and it does not move with the patient's rotation; immobilisation devices and a disconnected
arm move on their own too. :func:`patient_masks` separates them on a coarse copy of the image
(block means of ~``coarse_mm``), without relying on any particular HU value:

1. **Threshold** between air and tissue by Otsu's method on the coarse voxels inside the field of
   view (robust to HU offset and scale: CBCT numbers are not calibrated HU).
2. **Body** = the largest 3D connected component of the dense voxels after an in-plane opening
   (a couch skin or a sheet a few mm thick does not survive it), grown back by the opening size
   inside the dense voxels, holes filled per slice (lungs, bowel gas).
3. **Other objects** = dense voxels outside the body (couch, rails, supports): excluded, grown by
   ``object_margin_mm``.
4. **Couch side.** CT and CBCT volumes are reconstructed along the room axes, so the couch top is
   parallel to a plane of grid axes: one of the four in-plane directions is "down". It is the one
   where the body's boundary is flat at its extreme over the widest area (the back pressed on the
   couch) plus where dense non-body voxels lie beyond it (the couch itself, visible where it is
   wider than the patient), at least :data:`COUCH_MIN_WIDTH_MM` per slice on average of which
   :data:`COUCH_MIN_OBJECT_WIDTH_MM` objects (a flat belly is no couch); boundaries at the edge
   of the field of view or of the grid do not count (truncation is flat too). In a CBCT the side
   found in the planning CT is the hint, and the flat contact alone
   (:data:`COUCH_HINTED_MIN_WIDTH_MM`) suffices: its field of view often shows only the couch
   under the patient.
   Everything from ``couch_margin_mm`` above the couch top on is excluded, including the couch
   skin in contact with the back (which step 2 cannot separate from the body). The cut is not
   applied when it would remove more than :data:`MAX_COUCH_CUT_FRACTION` of the body.

Masks are returned on the coarse grid with the index arithmetic to look them up from any pyramid
level of the same volume (:meth:`PatientMasks.on_level`).

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. Syst. Man
   Cybern. 9(1):62-66, 1979. doi:10.1109/TSMC.1979.4310076
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: voxel size (mm) of the coarse image the masks are computed on
COARSE_MM = 4.0
#: in-plane opening (mm) that separates thin sheets (couch skins) from the body
OPENING_MM = 8.0
#: excluded margin around objects that are not the body, and the body margin kept around the body
#: (its skin-air edge is information)
OBJECT_MARGIN_MM = 6.0
BODY_MARGIN_MM = 6.0
#: samples closer than this to the couch plane (towards the body) are excluded
COUCH_MARGIN_MM = 8.0
#: mean width (mm per slice) of flat body contact plus objects beyond it that makes a couch side
COUCH_MIN_WIDTH_MM = 60.0
#: ... of which objects beyond the body boundary (the couch where it is wider than the patient) at least
COUCH_MIN_OBJECT_WIDTH_MM = 40.0
#: the same when the couch side is known (from the planning CT): contact alone may do
COUCH_HINTED_MIN_WIDTH_MM = 20.0
#: the couch cut may remove at most this share of the body voxels
MAX_COUCH_CUT_FRACTION = 0.1


def otsu_threshold(values: NDArray[np.floating], bins: int = 256) -> float:
    """Otsu's threshold of *values* (maximises the between-class variance of the histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = np.percentile(v, [0.5, 99.5])
    if not hi > lo:
        return float(lo)
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


@dataclass(frozen=True, eq=False)
class PatientMasks:
    """Coarse masks of one volume: ``keep`` = sample here (body + margin, not couch, not objects).

    ``factors`` are the block sizes (i, j, k) of the coarse grid in native voxels; ``threshold`` the
    Otsu air/tissue threshold; ``couch_normal``/``couch_top_mm`` the couch plane (patient mm, the
    normal pointing from the couch to the body) or None; ``air_value`` the median of the coarse
    voxels below the threshold inside the field of view.
    """

    body: NDArray[np.bool_]
    keep: NDArray[np.bool_]
    factors: tuple[int, int, int]
    threshold: float
    air_value: float
    couch_normal: NDArray[np.float64] | None
    couch_top_mm: float | None
    body_fraction_cut: float

    def on_level(self, mask: NDArray[np.bool_], lo_kji: tuple[int, int, int], level_factors: tuple[int, int, int],
                 shape: tuple[int, int, int]) -> NDArray[np.bool_]:
        """*mask* (a coarse mask of this object) looked up at the voxel centres of a level.

        The level is a block mean of the same volume by *level_factors* (i, j, k), starting at native
        voxel *lo_kji* (k, j, i), of *shape* (nz, ny, nx). Nearest coarse voxel; outside = False.
        """
        from openigrt.match._kernels import lookup

        idx = []
        for a_kji in range(3):
            a_ijk = 2 - a_kji
            f, c = level_factors[a_ijk], self.factors[a_ijk]
            native = lo_kji[a_kji] + np.arange(shape[a_kji]) * f + (f - 1) / 2.0
            idx.append(np.floor((native + 0.5) / c).astype(np.int64))
        return lookup(mask, idx[0], idx[1], idx[2])


def _disc(radius_vox: tuple[float, float]) -> NDArray[np.bool_]:
    ry, rx = (max(1, int(np.ceil(r))) for r in radius_vox)
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    return ((yy / max(radius_vox[0], 1e-6)) ** 2 + (xx / max(radius_vox[1], 1e-6)) ** 2 <= 1.0)[None]


def grow(mask: NDArray[np.bool_], margin_mm: float, sp_kji: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Dilation of *mask* by a ball of *margin_mm* (voxel sizes *sp_kji* in array-axis order)."""
    from scipy import ndimage

    if margin_mm <= 0 or not mask.any():
        return mask
    r = margin_mm / sp_kji
    rk, rj, ri = (int(np.floor(v)) for v in r)
    zz, yy, xx = np.mgrid[-rk:rk + 1, -rj:rj + 1, -ri:ri + 1]
    ball = (zz * sp_kji[0]) ** 2 + (yy * sp_kji[1]) ** 2 + (xx * sp_kji[2]) ** 2 <= margin_mm ** 2
    return ndimage.binary_dilation(mask, structure=ball)


def patient_masks(array: NDArray[np.generic], valid: NDArray[np.bool_] | None, affine: NDArray[np.float64],
                  origin: NDArray[np.float64], *, coarse_mm: float = COARSE_MM,
                  couch_margin_mm: float = COUCH_MARGIN_MM,
                  couch_hint: NDArray[np.float64] | None = None) -> PatientMasks:
    """Body / couch / objects masks of a volume (see the module docstring).

    Parameters
    ----------
    array : ndarray (nz, ny, nx)
        The image (any intensity scale where tissue is brighter than air).
    valid : ndarray of bool, optional
        Field-of-view mask on the same grid (default: every voxel).
    affine, origin
        Index (i, j, k) → patient mm: ``p = affine @ ijk + origin``.
    couch_hint : (3,) array, optional
        Direction from the couch towards the body already known (e.g. found in the planning CT of
        the same patient position, which shows the whole couch): only the grid direction along it
        is considered, with the lower evidence :data:`COUCH_HINTED_MIN_WIDTH_MM` (a CBCT's field of
        view often shows only the part of the couch under the patient).
    """
    from openigrt.match._kernels import block_mean

    sp = np.linalg.norm(affine, axis=0)  # (i, j, k) mm
    f = tuple(int(max(1, round(coarse_mm / s))) for s in sp)
    fi, fj, fk = f
    coarse = block_mean(array, (fk, fj, fi))
    if valid is None:
        cvalid = np.ones(coarse.shape, bool)
    else:
        cvalid = block_mean(valid.astype(np.float32), (fk, fj, fi)) > 0.999
    sp_kji = (sp * np.array(f, float))[::-1]
    inside = coarse[cvalid]
    if inside.size < 100:
        keep = cvalid.copy()
        return PatientMasks(keep, keep, f, float("nan"), float("nan"), None, None, 0.0)
    thr = otsu_threshold(inside[:: max(1, inside.size // 200_000)])
    air = float(np.median(inside[inside < thr])) if np.any(inside < thr) else thr
    dense = (coarse > thr) & cvalid
    body = _body(dense, sp_kji)
    grown_body = grow(body, OBJECT_MARGIN_MM, sp_kji)
    objects = dense & ~grown_body
    keep = grow(body, BODY_MARGIN_MM, sp_kji) & cvalid & ~grow(objects, OBJECT_MARGIN_MM, sp_kji)
    normal, top, cut_frac = None, None, 0.0
    only = None
    if couch_hint is not None:
        h = np.asarray(couch_hint, float) @ (affine / np.linalg.norm(affine, axis=0))  # along i, j, k
        a_ijk = int(np.argmax(np.abs(h[:2])))
        if abs(h[a_ijk]) > 0.9:
            only = (2 - a_ijk, -1 if h[a_ijk] > 0 else 1)  # the couch is on the side opposite the normal
    side = _couch_side(body, objects, cvalid, sp_kji, only=only)
    if side is not None:
        axis, sign, top_idx, _ = side
        cut = _couch_cut(body.shape, side, couch_margin_mm / sp_kji[axis])
        cut_frac = float((cut & body).sum() / max(body.sum(), 1))
        if cut_frac <= MAX_COUCH_CUT_FRACTION:
            keep &= ~cut
            a_ijk = 2 - axis
            direction = affine[:, a_ijk] / np.linalg.norm(affine[:, a_ijk])
            normal = -sign * direction  # from the couch towards the body
            top_native = (top_idx * f[a_ijk] + (f[a_ijk] - 1) / 2.0) * np.linalg.norm(affine[:, a_ijk])
            top = float((origin + direction * top_native) @ -normal)
    return PatientMasks(body, keep, f, thr, air, normal, top, cut_frac)


def _body(dense: NDArray[np.bool_], sp_kji: NDArray[np.float64]) -> NDArray[np.bool_]:
    from scipy import ndimage

    disc = _disc((OPENING_MM / 2 / sp_kji[1], OPENING_MM / 2 / sp_kji[2]))
    pad = ((0, 0), (disc.shape[1], disc.shape[1]), (disc.shape[2], disc.shape[2]))
    # the grid edge is not a boundary of the body (a crop cuts through it): open the edge-extended mask
    opened = ndimage.binary_opening(np.pad(dense, pad, mode="edge"), structure=disc)[
        :, pad[1][0]:pad[1][0] + dense.shape[1], pad[2][0]:pad[2][0] + dense.shape[2]]
    lab, n = ndimage.label(opened)
    if n == 0:
        return np.zeros_like(dense)
    sizes = np.bincount(lab.ravel())[1:]
    core = lab == (1 + int(np.argmax(sizes)))
    body = ndimage.binary_dilation(core, structure=disc) & dense
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_fill_holes(body, structure=in_plane)  # per slice (no connection across slices)


def _couch_side(body: NDArray[np.bool_], objects: NDArray[np.bool_], valid: NDArray[np.bool_],
                sp_kji: NDArray[np.float64], only: tuple[int, int] | None = None) -> tuple[int, int, int, float] | None:
    """The grid side the couch is on: (array axis 1 or 2, sign ±1, index of the couch top along
    that axis, evidence width in mm), or None.

    For each in-plane direction, the **contact** is where the body's boundary in that direction is
    flat at its extreme (within one voxel) and not at the edge of the field of view or grid; the
    **objects** are the dense non-body voxels beyond that boundary. The couch side has the largest
    mean width (mm per slice) of contact plus objects, at least ``COUCH_MIN_WIDTH_MM``; with *only*
    = (axis, sign) just that direction, at least ``COUCH_HINTED_MIN_WIDTH_MM``.
    """
    slices = max(1, int(np.any(body, axis=(1, 2)).sum()))
    best: tuple[int, int, int, float] | None = None
    min_width = COUCH_MIN_WIDTH_MM if only is None else COUCH_HINTED_MIN_WIDTH_MM
    for axis in (1, 2):
        other = 3 - axis  # the remaining in-plane axis
        n = body.shape[axis]
        for sign in (1, -1):
            if only is not None and (axis, sign) != only:
                continue
            b = body if sign > 0 else np.flip(body, axis)
            v = valid if sign > 0 else np.flip(valid, axis)
            o = objects if sign > 0 else np.flip(objects, axis)
            has = b.any(axis=axis)
            last = n - 1 - np.argmax(np.flip(b, axis), axis=axis)
            nxt = np.minimum(last + 1, n - 1)
            # a boundary at (or next to) the edge of the grid or field of view is truncation, not contact
            beyond_ok = (last + 2 < n) & np.take_along_axis(v, np.expand_dims(nxt, axis), axis).squeeze(axis)
            ok = has & beyond_ok
            if not ok.any():
                continue
            bottom = int(np.percentile(last[ok], 99))
            contact = ok & (last >= bottom - 1)
            idx = np.arange(n).reshape([-1 if a == axis else 1 for a in range(3)])
            obj_beyond = (o & (idx >= bottom - 1)).any(axis=axis)
            width = float((contact | obj_beyond).sum() * sp_kji[other] / slices)
            obj_width = float(obj_beyond.sum() * sp_kji[other] / slices)
            if only is None and obj_width < COUCH_MIN_OBJECT_WIDTH_MM:
                continue  # a flat body boundary alone is no couch (a belly is flat on a 4 mm grid)
            if width >= min_width and (best is None or width > best[3]):
                best = (axis, sign, bottom if sign > 0 else n - 1 - bottom, width)
    return best


def _couch_cut(shape: tuple[int, ...], side: tuple[int, int, int, float], margin_vox: float) -> NDArray[np.bool_]:
    """Voxels at or beyond ``couch top − margin`` (towards the couch)."""
    axis, sign, top, _ = side
    idx = np.arange(shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
    cut = (idx >= top - margin_vox) if sign > 0 else (idx <= top + margin_vox)
    return np.broadcast_to(cut, shape)
