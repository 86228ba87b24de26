"""What the review workstation draws for a match, re-rendered from any transform (SPEC MATCH-7).

Two kinds of view, both returning :class:`ViewImage` (a reference layer, an acquired layer on
the same pixel grid, and vector overlays in that grid's pixel coordinates (column, row)):

* :class:`ProjectionViews` (2D, 2D/2D, marker): each acquired RT Image on a display grid binned
  :data:`BIN` × :data:`BIN` from its own geometry. The reference layer is a **DRR of the planning
  CT moved by the transform**, rendered in that display geometry with one ray per CT voxel plane
  where the display is finer than the CT (:func:`~openigrt.workflow.review_render.display_drr`),
  so a nudge of the match is seen as the patient would look, not as an image shift. Without a CT (a 2D/2D session in file mode that loaded none) the reference RT Image is
  shifted by the displacement the transform gives the isocenter in that view (exact at the
  isocenter depth; the page says so). Overlays: INITLASERISO (the machine isocenter), the planned
  isocenter moved by the transform, the imaging field outline (the beam's jaws at the isocenter
  plane), planned markers moved by the transform and the markers found, with their residuals.
* :class:`PlaneViews` (3D/3D): axial, coronal and sagittal planes through INITLASERISO (offset
  slice by slice along the plane normal by the CBCT voxel spacing) of the verification CBCT, and
  the planning CT sampled at ``T⁻¹(x)`` for each plane point ``x`` (trilinear, the plane mapped
  into the CT's index space: :func:`~openigrt.workflow.review_render.sample_plane`), in HU. Overlays:
  the contours of the target and body structures of the RT Structure Set (rasterised once on
  the CT grid, :class:`StructureMask`), cut by the same planes after the transform.

Both layers of a projection view are scaled to about [0, 1] by the 1st/99th percentiles of the
automatic result's images (fixed per view, so window/level presets stay meaningful while the
match moves); plane views stay in HU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from openigrt.geometry.iec61217 import BeamLimitingDeviceToGantry
from openigrt.geometry.projection import ProjectionGeometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.workflow.review_render import display_drr, plane_in_index, ray_steps, sample_plane

#: Display binning of projection views (1024 × 768 kV images are shown at 512 × 384).
BIN = 2
#: Plane views: pixel size limits (mm) and the largest number of pixels per side.
PLANE_MIN_PIXEL_MM = 0.5
PLANE_MAX_PIXELS = 384
PLANE_NAMES = ("axial", "coronal", "sagittal")
#: Value of plane samples outside a volume (HU of air).
AIR_HU = -1000.0
#: (u, v, normal) of each plane in patient LPS: the axial plane seen from the feet (patient's right
#: on the left), coronal from the front (head up), sagittal from the patient's left (anterior left).
PLANE_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), 2),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), 1),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), 0),
}


@dataclass(frozen=True, eq=False)
class ViewImage:
    """One view: two layers of equal shape ``(rows, columns)`` float32, overlays in pixel (col, row)."""

    key: str
    title: str
    reference: NDArray[np.float32]
    acquired: NDArray[np.float32]
    pixel_mm: tuple[float, float]  # (row, column) spacing at the isocenter plane / in the plane
    overlays: dict[str, Any] = field(default_factory=dict)
    unit: str = "normalised"
    slice_index: int | None = None
    slice_count: int | None = None
    slice_offset_mm: float | None = None


# ----------------------------------------------------------------------------- projections
def binned_geometry(g: ProjectionGeometry, factor: int = BIN) -> ProjectionGeometry:
    """The geometry of the image block-averaged *factor* × *factor* (same detector, bigger pixels)."""
    dy, dx = g.pixel_spacing_mm
    x0, y0 = g.rt_image_position_mm  # type: ignore[misc]
    rows, cols = g.rows // factor, g.columns // factor
    return g.replace(rows=rows, columns=cols, pixel_spacing_mm=(dy * factor, dx * factor),
                     rt_image_position_mm=(x0 + (factor - 1) * dx / 2, y0 - (factor - 1) * dy / 2))


def bin_image(image: NDArray[np.floating], factor: int = BIN) -> NDArray[np.float32]:
    """Block mean *factor* × *factor* (trailing rows/columns that do not fill a block dropped)."""
    a = np.asarray(image, dtype=np.float32)
    rows, cols = a.shape[0] // factor, a.shape[1] // factor
    return a[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def _to_display_pixel(colrow: Sequence[float], factor: int = BIN) -> list[float]:
    """Full-resolution pixel (col, row) → binned pixel coordinates (pixel centres at integers)."""
    return [(float(colrow[0]) - (factor - 1) / 2) / factor, (float(colrow[1]) - (factor - 1) / 2) / factor]


def _scale(lo_hi: tuple[float, float], a: NDArray[np.floating]) -> NDArray[np.float32]:
    lo, hi = lo_hi
    return ((np.nan_to_num(np.asarray(a, dtype=np.float32)) - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def _percentiles(a: NDArray[np.floating]) -> tuple[float, float]:
    lo, hi = np.percentile(np.nan_to_num(a), [1.0, 99.0])
    return float(lo), float(hi)


@dataclass(frozen=True, eq=False)
class ProjectionInput:
    """One view of a projection match: the acquired image, its reference image and the imaging field."""

    label: str
    geometry: ProjectionGeometry
    acquired: NDArray[np.floating]
    reference: NDArray[np.floating] | None = None
    jaws_mm: tuple[tuple[float, float], tuple[float, float]] | None = None  # (x1, x2), (y1, y2)
    collimator_deg: float = 0.0
    found_markers_px: tuple[tuple[str, tuple[float, float] | None, float | None, bool], ...] = ()


class ProjectionViews:
    """Renders the views of a 2D, 2D/2D or marker match for any transform (module docstring)."""

    def __init__(self, views: Sequence[ProjectionInput], *, renderer: Any | None,
                 planned_isocenter_mm: Sequence[float], initlaseriso_mm: Sequence[float],
                 planned_markers_mm: NDArray[np.float64] | None = None,
                 marker_names: Sequence[str] = ()) -> None:
        self.views = list(views)
        self.renderer = renderer
        self.planned = np.asarray(planned_isocenter_mm, dtype=float)
        self.laser = np.asarray(initlaseriso_mm, dtype=float)
        self.markers = planned_markers_mm
        self.marker_names = list(marker_names)
        self.display = [binned_geometry(v.geometry) for v in self.views]
        self.acquired = [bin_image(v.acquired) for v in self.views]
        self._ranges: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {}

    @property
    def uses_drr(self) -> bool:
        return self.renderer is not None

    def reference_layer(self, index: int, transform: RigidTransform) -> NDArray[np.float32]:
        """The reference of view *index* for *transform*: DRR of the moved CT, else the shifted reference."""
        g = self.display[index]
        if self.renderer is not None:
            return display_drr(self.renderer, g, transform)
        ref = self.views[index].reference
        if ref is None:
            return np.zeros_like(self.acquired[index])
        d = g.project(transform.apply(self.laser[None]))[0] - g.project(self.laser[None])[0]
        return ndimage.shift(bin_image(ref), (d[1], d[0]), order=1, mode="nearest")

    def ray_steps(self, transform: RigidTransform) -> list[tuple[int, int]]:
        """Per view, the (row, column) ray spacing in display pixels of its DRR for *transform*."""
        if self.renderer is None:
            return []
        return [ray_steps(self.renderer.volume, g, transform) for g in self.display]

    def render(self, transform: RigidTransform, automatic: RigidTransform) -> list[ViewImage]:
        out = []
        for i, view in enumerate(self.views):
            reference = self.reference_layer(i, transform)
            if i not in self._ranges:
                base = reference if transform is automatic else self.reference_layer(i, automatic)
                self._ranges[i] = (_percentiles(base), _percentiles(self.acquired[i]))
            ref_range, acq_range = self._ranges[i]
            g = self.display[i]
            out.append(ViewImage(f"view{i + 1}", view.label, _scale(ref_range, reference),
                                 _scale(acq_range, self.acquired[i]),
                                 (g.pixel_spacing_mm[0] / g.magnification, g.pixel_spacing_mm[1] / g.magnification),
                                 self._overlays(i, transform)))
        return out

    def _overlays(self, index: int, transform: RigidTransform) -> dict[str, Any]:
        g, view = self.display[index], self.views[index]
        out: dict[str, Any] = {
            "machine_isocenter": g.project(self.laser[None])[0].tolist(),
            "planned_isocenter": g.project(transform.apply(self.planned[None]))[0].tolist(),
        }
        if view.jaws_mm is not None:
            out["field"] = field_outline(g, view.jaws_mm, view.collimator_deg).tolist()
        if self.markers is not None and len(self.markers):
            planned = g.project(transform.apply(self.markers))
            found = {name: (px, res, outlier) for name, px, res, outlier in view.found_markers_px}
            out["markers"] = [
                {"name": name, "planned": planned[k].tolist(),
                 "found": None if found.get(name, (None,))[0] is None else _to_display_pixel(found[name][0]),  # type: ignore[arg-type]
                 "residual_mm": found.get(name, (None, None))[1], "outlier": bool(found.get(name, (0, 0, False))[2])}
                for k, name in enumerate(self.marker_names)]
        return out


def field_outline(g: ProjectionGeometry, jaws_mm: tuple[tuple[float, float], tuple[float, float]],
                  collimator_deg: float = 0.0) -> NDArray[np.float64]:
    """The jaw rectangle at the isocenter plane (IEC BEAM LIMITING DEVICE) projected: ``(4, 2)`` (col, row)."""
    (x1, x2), (y1, y2) = jaws_mm
    corners_bld = np.array([[x1, y1, 0.0], [x2, y1, 0.0], [x2, y2, 0.0], [x1, y2, 0.0]])
    corners_g = BeamLimitingDeviceToGantry(beam_limiting_device_angle_deg=collimator_deg).apply(corners_bld)
    g_inv = np.linalg.inv(g.patient_to_gantry_matrix())
    corners_patient = corners_g @ g_inv[:3, :3].T + g_inv[:3, 3]
    return g.project(corners_patient)


# ----------------------------------------------------------------------------- planes
@dataclass(frozen=True, eq=False)
class StructureMask:
    """A closed-planar structure rasterised once on the planning CT's voxel grid (inside = 1).

    Kept only over the structure's bounding box (+2 voxels); sampled trilinearly at CT index
    coordinates, the 0.5 level is the structure's surface cut by any plane.
    """

    name: str
    kind: str  # "target" or "body"
    offset_ijk: NDArray[np.float64]  # index (i, j, k) of mask[0, 0, 0] in the CT grid
    mask: NDArray[np.float32]  # (k, j, i)

    @classmethod
    def from_contours(cls, name: str, kind: str, contours: Sequence[NDArray[np.float64]],
                      volume: Volume) -> StructureMask:
        from matplotlib.path import Path as MplPath

        polys = [volume.patient_to_index(np.asarray(c, dtype=float)) for c in contours if len(c) >= 3]
        if not polys:
            return cls(name, kind, np.zeros(3), np.zeros((1, 1, 1), np.float32))
        allp = np.concatenate(polys)
        nz, ny, nx = volume.shape
        lo = np.maximum(np.floor(allp.min(axis=0)) - 2, 0).astype(int)
        hi = np.minimum(np.ceil(allp.max(axis=0)) + 2, [nx - 1, ny - 1, nz - 1]).astype(int)
        mask = np.zeros((hi[2] - lo[2] + 1, hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), np.float32)
        jj, ii = np.mgrid[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
        centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
        counts: dict[int, NDArray[np.int64]] = {}
        for poly in polys:
            k = int(round(float(np.median(poly[:, 2]))))
            if lo[2] <= k <= hi[2]:
                inside = MplPath(poly[:, :2]).contains_points(centres).astype(np.int64)
                counts[k] = counts.get(k, 0) + inside
        for k, count in counts.items():
            mask[k - lo[2]] = (count % 2 == 1).reshape(mask.shape[1:])
        return cls(name, kind, lo.astype(float), mask)

    def sample(self, ijk: NDArray[np.float64]) -> NDArray[np.float32]:
        """Trilinear mask values at CT index points ``(N, 3)`` (i, j, k); 0 outside."""
        local = (ijk - self.offset_ijk)[:, ::-1].T
        return ndimage.map_coordinates(self.mask, local, order=1, mode="constant", cval=0.0, prefilter=False)


def _section_lines(values: NDArray[np.floating]) -> list[list[list[float]]]:
    """The 0.5 level of a 2D mask sample as polylines of (col, row) points (marching squares)."""
    import contourpy

    if not (values > 0.5).any():
        return []
    gen = contourpy.contour_generator(z=np.asarray(values, dtype=np.float64), name="serial")
    return [np.round(line, 2).tolist() for line in gen.lines(0.5) if len(line) >= 3]


class PlaneViews:
    """Renders the three orthogonal planes of a 3D/3D match for any transform and slice (module docstring)."""

    def __init__(self, reference: Volume, verification: Volume, *, center_mm: Sequence[float],
                 structures: Sequence[StructureMask] = ()) -> None:
        self.reference = reference
        self.verification = verification
        self._ref = np.ascontiguousarray(reference.array, dtype=np.float32)
        self._ver = np.ascontiguousarray(verification.array, dtype=np.float32)
        self.center = np.asarray(center_mm, dtype=float)
        self.structures = list(structures)
        sx, sy, sz = verification.spacing_mm
        self.pixel_mm = max(PLANE_MIN_PIXEL_MM, min(sx, sy, sz))
        lo = verification.index_to_patient_mm(np.zeros((1, 3)))[0]
        hi = verification.index_to_patient_mm(np.array([[n - 1 for n in verification.shape[::-1]]]))[0]
        self.lo, self.hi = np.minimum(lo, hi), np.maximum(lo, hi)
        half = np.max(self.hi - self.lo) / 2
        self.half_pixels = int(min(PLANE_MAX_PIXELS // 2, np.ceil(half / self.pixel_mm)))
        self.step_mm = np.abs(np.array(verification.spacing_mm, dtype=float))

    def slice_range(self, plane: str) -> tuple[int, int]:
        """Slice indices (inclusive) available along the normal of *plane*; 0 is through INITLASERISO."""
        axis = PLANE_AXES[plane][2]
        step = self.step_mm[axis]
        return (int(np.ceil((self.lo[axis] - self.center[axis]) / step)),
                int(np.floor((self.hi[axis] - self.center[axis]) / step)))

    def grid(self, plane: str, index: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """First point, row step and column step (patient mm, verification frame) of *plane* at slice *index*."""
        u, v, axis = PLANE_AXES[plane]
        center = self.center.copy()
        center[axis] += index * self.step_mm[axis]
        row, col = self.pixel_mm * np.asarray(v), self.pixel_mm * np.asarray(u)
        return center - self.half_pixels * (row + col), row, col

    def points(self, plane: str, index: int) -> NDArray[np.float64]:
        """Patient points ``(rows, cols, 3)`` of *plane* at slice *index* (verification frame)."""
        origin, row, col = self.grid(plane, index)
        n = np.arange(2 * self.half_pixels + 1, dtype=float)
        return origin + n[:, None, None] * row + n[None, :, None] * col

    def render(self, transform: RigidTransform, slices: dict[str, int]) -> list[ViewImage]:
        """The three planes: CBCT sampled on the plane, CT at ``T⁻¹`` of each plane point (one plane in the
        CT's index space: :func:`~openigrt.workflow.review_render.sample_plane`), structure cuts likewise."""
        ver_index = np.linalg.inv(self.verification.index_to_patient_matrix())
        ref_index = np.linalg.inv(self.reference.index_to_patient_matrix()) @ transform.inverse().matrix
        shape = (2 * self.half_pixels + 1, 2 * self.half_pixels + 1)
        out = []
        for plane in PLANE_NAMES:
            lo, hi = self.slice_range(plane)
            index = int(np.clip(int(slices.get(plane, 0)), lo, hi))
            grid = self.grid(plane, index)
            acquired = sample_plane(self._ver, *plane_in_index(ver_index, *grid), shape, AIR_HU)
            ref_origin, ref_row, ref_col = plane_in_index(ref_index, *grid)
            reference = sample_plane(self._ref, ref_origin, ref_row, ref_col, shape, AIR_HU)
            contours = [{"name": s.name, "kind": s.kind,
                         "lines": _section_lines(sample_plane(s.mask, ref_origin - s.offset_ijk, ref_row, ref_col, shape, 0.0))}
                        for s in self.structures]
            overlays = {"contours": contours, "machine_isocenter": [float(self.half_pixels), float(self.half_pixels)]}
            axis = PLANE_AXES[plane][2]
            out.append(ViewImage(plane, f"{plane} (slice {index:+d}, {index * self.step_mm[axis]:+.1f} mm)",
                                 reference, acquired, (self.pixel_mm, self.pixel_mm), overlays, unit="HU",
                                 slice_index=index, slice_count=hi - lo + 1,
                                 slice_offset_mm=float(index * self.step_mm[axis])))
        return out
