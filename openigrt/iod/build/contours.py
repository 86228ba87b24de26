"""Planar contours on CT slice planes: find each contour's slice, resample ROIs onto the slices.

SPEC IOD-3 requires that "volumetric ROIs that are exported are resampled onto the CT planes,
so every contour references an image slice". The planning system's contours may sit on other
z planes (another CT, or a structure drawn every 2nd slice). :func:`resample_onto_planes`
computes the ROI's cross-section on each target plane by **shape-based interpolation**
(Raya & Udupa 1990, doi:10.1109/42.52980; Herman, Zheng & Bucholtz 1992,
doi:10.1109/38.135915): each source plane's contours are rasterised (even-odd rule, so holes
work) on a common x/y grid, turned into a signed distance map (scipy ``distance_transform_edt``),
the maps of the two bracketing source planes are interpolated linearly in z, and the zero level
set is traced back to polygons with ``contourpy`` (the marching-squares library matplotlib uses).
A target plane that coincides with a source plane (within :data:`PLANE_TOL_MM`) gets the
source contours unchanged. Planes outside the ROI's z extent get nothing.

We chose this over a nearest-plane copy (which shifts surfaces by up to half the source spacing)
and over a mesh library (none is in our stack); numpy, scipy and contourpy are.

Axial slices only: the planes are ``z = const`` in patient coordinates (Image Orientation
(Patient) ``1\\0\\0\\0\\1\\0`` within :data:`AXIAL_TOL`), which PLAN-9/PLAN-10 assume as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from openigrt.iod.build.common import build_error, source_value

#: Contour points within this distance (mm) of a slice plane lie on it.
PLANE_TOL_MM = 1e-3
#: Image Orientation (Patient) within this of 1\0\0\0\1\0 counts as axial.
AXIAL_TOL = 1e-4
#: Default raster step (mm) of the shape-based interpolation, and the grid size limit.
DEFAULT_GRID_MM = 0.5
_MAX_GRID = 2048


@dataclass(frozen=True, eq=False)
class SlicePlanes:
    """The z planes of a set of axial CT slices, sorted by z, with their SOP Instance UIDs."""

    z_mm: NDArray[np.float64]
    sop_instance_uids: tuple[str, ...]
    sop_class_uids: tuple[str, ...]

    @classmethod
    def from_images(cls, images: Sequence[Dataset]) -> SlicePlanes:
        """Collect the planes of axial *images*; BuildError for non-axial or duplicate planes."""
        if not images:
            raise build_error("ContourImageSequence", "no image slices given")
        zs, uids, classes = [], [], []
        for ds in images:
            iop = np.asarray([float(v) for v in source_value(ds, "ImageOrientationPatient", "CT slice")])
            if iop.size != 6 or not np.allclose(iop, [1, 0, 0, 0, 1, 0], atol=AXIAL_TOL):
                raise build_error("ImageOrientationPatient", f"slice {ds.get('SOPInstanceUID', '?')} is not axial: {iop}")
            ipp = [float(v) for v in source_value(ds, "ImagePositionPatient", "CT slice")]
            zs.append(ipp[2])
            uids.append(str(ds.SOPInstanceUID))
            classes.append(str(ds.SOPClassUID))
        order = np.argsort(zs, kind="stable")
        z = np.asarray(zs, dtype=float)[order]
        if np.any(np.diff(z) < PLANE_TOL_MM):
            raise build_error("ImagePositionPatient", "two slices share one z plane")
        return cls(z, tuple(uids[i] for i in order), tuple(classes[i] for i in order))

    def plane_of(self, z: float) -> int | None:
        """Index of the plane at *z* (within :data:`PLANE_TOL_MM`), or None."""
        i = int(np.argmin(np.abs(self.z_mm - z)))
        return i if abs(self.z_mm[i] - z) <= PLANE_TOL_MM else None

    def nearest(self, z: float) -> int | None:
        """Index of the nearest plane when *z* lies within the slab the slices cover, else None."""
        i = int(np.argmin(np.abs(self.z_mm - z)))
        half = (np.diff(self.z_mm).max() / 2) if self.z_mm.size > 1 else 0.5
        return i if abs(self.z_mm[i] - z) <= half + PLANE_TOL_MM else None


def contour_z(points_mm: NDArray[np.float64]) -> float:
    """The z of a planar contour ``(N, 3)``; BuildError when its points are not in one z plane."""
    z = points_mm[:, 2]
    if np.ptp(z) > PLANE_TOL_MM:
        raise build_error("ContourData", f"contour is not in one transverse plane (z from {z.min():g} to {z.max():g} mm)")
    return float(z.mean())


def resample_onto_planes(contours: Sequence[NDArray[np.float64]], planes: SlicePlanes, *,
                         grid_mm: float = DEFAULT_GRID_MM) -> list[tuple[int, NDArray[np.float64]]]:
    """Cross-sections of a closed-planar ROI on every target plane (module docstring).

    Parameters
    ----------
    contours
        The ROI's closed polygons, each ``(N, 3)`` patient mm in one z plane (N >= 3).
    planes
        Target slice planes.
    grid_mm
        Raster step of the interpolation (coarsened automatically for very large ROIs).

    Returns
    -------
    list of (plane index, polygon ``(M, 3)``)
        Sorted by plane index; polygons are open point lists (the closing edge is implicit).
    """
    by_z = _group_by_plane(contours)
    if not by_z:
        return []
    source_z = np.array(sorted(by_z))
    grid = _Grid.around([c for cs in by_z.values() for c in cs], grid_mm)
    sdf_cache: dict[float, NDArray[np.float64]] = {}
    out: list[tuple[int, NDArray[np.float64]]] = []
    for k, z in enumerate(planes.z_mm):
        if z < source_z[0] - PLANE_TOL_MM or z > source_z[-1] + PLANE_TOL_MM:
            continue
        exact = source_z[np.abs(source_z - z) <= PLANE_TOL_MM]
        if exact.size:
            out += [(k, _on_plane(c, z)) for c in by_z[float(exact[0])]]
            continue
        b = int(np.searchsorted(source_z, z))
        za, zb = float(source_z[b - 1]), float(source_z[b])
        w = (z - za) / (zb - za)
        sdf = (1 - w) * _sdf(sdf_cache, grid, za, by_z[za]) + w * _sdf(sdf_cache, grid, zb, by_z[zb])
        out += [(k, poly) for poly in grid.zero_level(sdf, float(z))]
    return out


def _group_by_plane(contours: Sequence[NDArray[np.float64]]) -> dict[float, list[NDArray[np.float64]]]:
    by_z: dict[float, list[NDArray[np.float64]]] = {}
    keys: list[float] = []
    for c in contours:
        pts = np.asarray(c, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 3 or not np.all(np.isfinite(pts)):
            raise build_error("ContourData", f"a closed planar contour needs >= 3 finite (x, y, z) points, got {pts.shape}")
        z = contour_z(pts)
        key = next((kz for kz in keys if abs(kz - z) <= PLANE_TOL_MM), None)
        if key is None:
            keys.append(z)
            key = z
        by_z.setdefault(key, []).append(pts)
    return by_z


def _on_plane(points: NDArray[np.float64], z: float) -> NDArray[np.float64]:
    out = points.copy()
    out[:, 2] = z
    return out


def _sdf(cache: dict[float, NDArray[np.float64]], grid: _Grid, z: float,
         polys: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    if z not in cache:
        cache[z] = grid.signed_distance(polys)
    return cache[z]


@dataclass(frozen=True, eq=False)
class _Grid:
    """A regular x/y raster (pixel centres ``x0 + i*step``, ``y0 + j*step``)."""

    x0: float
    y0: float
    step: float
    nx: int
    ny: int

    @classmethod
    def around(cls, polys: list[NDArray[np.float64]], step: float) -> _Grid:
        pts = np.concatenate([p[:, :2] for p in polys])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        step = max(float(step), float((hi - lo).max()) / (_MAX_GRID - 8))
        margin = 4 * step
        n = np.ceil((hi - lo + 2 * margin) / step).astype(int) + 1
        return cls(float(lo[0] - margin), float(lo[1] - margin), step, int(n[0]), int(n[1]))

    def signed_distance(self, polys: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        """Signed distance (mm) to the even-odd union of *polys*: negative inside."""
        from matplotlib.path import Path
        from scipy.ndimage import distance_transform_edt

        xs = self.x0 + self.step * np.arange(self.nx)
        ys = self.y0 + self.step * np.arange(self.ny)
        gx, gy = np.meshgrid(xs, ys)
        centres = np.column_stack([gx.ravel(), gy.ravel()])
        inside = np.zeros(centres.shape[0], dtype=bool)
        for p in polys:
            inside ^= Path(p[:, :2]).contains_points(centres)
        mask = inside.reshape(self.ny, self.nx)
        if not mask.any():
            return np.full(mask.shape, self.step * max(self.nx, self.ny))
        return (distance_transform_edt(~mask) - distance_transform_edt(mask)) * self.step

    def zero_level(self, sdf: NDArray[np.float64], z: float) -> list[NDArray[np.float64]]:
        """Closed polygons of ``sdf == 0`` at height *z* (patient mm)."""
        import contourpy

        xs = self.x0 + self.step * np.arange(self.nx)
        ys = self.y0 + self.step * np.arange(self.ny)
        gen = contourpy.contour_generator(xs, ys, sdf, line_type=contourpy.LineType.Separate)
        polys = []
        for line in gen.lines(0.0):
            pts = np.asarray(line, dtype=float)
            if pts.shape[0] > 1 and np.allclose(pts[0], pts[-1]):
                pts = pts[:-1]
            if pts.shape[0] >= 3:
                polys.append(np.column_stack([pts, np.full(pts.shape[0], z)]))
        return polys
