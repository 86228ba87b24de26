"""A deterministic pelvis-like phantom patient on a planning-CT grid (SPEC SIM-1, array level).

``make_phantom(PhantomParams(...))`` returns a :class:`Phantom`: the CT as a
:class:`~openigrt.geometry.volume.Volume` of int16 HU (axial, Image Orientation
``1\\0\\0\\0\\1\\0``, patient **HFS** in DICOM patient coordinates: +x left, +y posterior,
+z head) plus the ground truth needed to write the structure set and plan and to score matches:
isocenter, fiducial centres, PTV ellipsoid, body ellipse and contour functions.

Anatomy (all sizes mm, centred on x = 0; body centre at y = 0)::

      anterior (-y)            transverse slice (seen from the feet, patient's left on the right)
           ____________
         /   fat 10 mm  \\      body: elliptic cylinder 300 x 200 (lateral x AP), full CT length
        |  soft tissue   |     PTV: ellipsoid 48 x 38 x 42 at the isocenter (+15 HU)
        | (Fh) PTV*  (Fh)|     *: >= 3 gold fiducials, 1 mm x 4 mm, HU clipped at 3071,
        |      gas       |        at sub-voxel positions (some between slices)
         \\___ spine ____/      Fh: femoral heads (z < 0); iliac wings (z > 0); lungs (z > 60)
      ===================      couch top: carbon skins 3 mm (300 HU) + foam core (-850 HU)
           posterior (+y)

Every edge is anti-aliased (partial-volume ramp one voxel wide); fiducials are supersampled
(5 × 5 × 5 per voxel) so their voxel centroid matches the truth to a small fraction of a voxel.
Texture: seeded smooth Gaussian noise (± ~15 HU). Same seed and parameters → identical array.

>>> ph = make_phantom(PhantomParams.small())
>>> ph.volume.shape, ph.volume.array.dtype.name
((40, 160, 160), 'int16')
>>> bool(ph.volume.array.max() == 3071), len(ph.fiducials_mm) >= 3
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.volume import Volume

__all__ = ["PhantomParams", "Phantom", "Ellipsoid", "Fiducial", "make_phantom", "paint_fiducials", "HU"]


@dataclass(frozen=True)
class _HuValues:
    """Tissue HU values used by the phantom."""

    air: float = -1000.0
    fat: float = -100.0
    soft_tissue: float = 40.0
    ptv: float = 55.0
    lung: float = -820.0
    gas: float = -950.0
    cancellous_bone: float = 300.0
    cortical_bone: float = 1200.0
    couch_skin: float = 300.0
    couch_core: float = -850.0
    ct_min: float = -1024.0
    ct_max: float = 3071.0  # 12-bit CT scale: markers saturate as in real CTs


#: HU of each material (frozen; see :class:`_HuValues`).
HU = _HuValues()


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid: ``Σ ((p − center) / semi_axes)² ≤ 1`` (patient mm)."""

    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]

    def contains(self, points_mm: ArrayLike) -> NDArray[np.bool_]:
        p = (np.atleast_2d(np.asarray(points_mm, float)) - self.center_mm) / self.semi_axes_mm
        return (p**2).sum(axis=1) <= 1.0

    def contour(self, z_mm: float, n_points: int = 64) -> NDArray[np.float64] | None:
        """Closed planar contour ``(n, 3)`` of the cross-section at ``z_mm``, or None if it misses."""
        cx, cy, cz = self.center_mm
        a, b, c = self.semi_axes_mm
        s = 1.0 - ((z_mm - cz) / c) ** 2
        if s <= 1e-6:
            return None
        return _ellipse_points(cx, cy, a * np.sqrt(s), b * np.sqrt(s), z_mm, n_points)


@dataclass(frozen=True)
class Fiducial:
    """A cylindrical gold marker: centre, unit axis, diameter and length (mm)."""

    name: str
    center_mm: tuple[float, float, float]
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    diameter_mm: float = 1.0
    length_mm: float = 4.0


def _default_fiducial_offsets() -> tuple[tuple[float, ...], ...]:
    # offsets from the isocenter (mm): (dx, dy, dz, axis x, axis y, axis z, length)
    return (
        (-8.3, 5.7, -6.1, 0.0, 0.0, 1.0, 4.0),
        (7.9, -4.2, 1.3, 0.0, 0.0, 1.0, 5.0),
        (1.1, 6.6, 9.7, 0.6, 0.0, 0.8, 3.0),
    )


@dataclass(frozen=True)
class PhantomParams:
    """Grid and anatomy parameters of the phantom (defaults: a planning CT, 512 × 512 × 100).

    Parameters
    ----------
    columns, rows, slices
        Grid size (x, y, z).
    pixel_mm, slice_mm
        In-plane pixel size and slice spacing (= thickness).
    isocenter_mm
        Planned isocenter (patient mm); deliberately not on a voxel centre.
    fiducial_offsets
        Marker definitions relative to the isocenter: ``(dx, dy, dz, ax, ay, az, length)``.
    seed
        Seed of the texture noise.
    texture_hu
        Standard deviation of the soft-tissue texture (HU).
    marker_hu
        HU of marker material before partial-volume averaging and clipping at 3071 (real gold is far
        denser; the value sets how far the "blooming" reaches). :meth:`small` raises it so that the
        markers still saturate in 3 × 3 × 5 mm voxels.
    """

    columns: int = 512
    rows: int = 512
    slices: int = 100
    pixel_mm: float = 0.9375
    slice_mm: float = 2.0
    isocenter_mm: tuple[float, float, float] = (3.5, 12.0, -1.3)
    body_semi_axes_mm: tuple[float, float] = (150.0, 100.0)
    fat_mm: float = 10.0
    ptv_semi_axes_mm: tuple[float, float, float] = (24.0, 19.0, 21.0)
    fiducial_offsets: tuple[tuple[float, ...], ...] = field(default_factory=_default_fiducial_offsets)
    seed: int = 0
    texture_hu: float = 15.0
    marker_hu: float = 20000.0

    def __post_init__(self) -> None:
        if min(self.columns, self.rows, self.slices) < 2:
            raise ValueError(f"phantom grid needs >= 2 voxels per axis, got {self.columns}x{self.rows}x{self.slices}")
        if not (self.pixel_mm > 0 and self.slice_mm > 0):
            raise ValueError(f"phantom pixel_mm and slice_mm must be > 0, got {self.pixel_mm}, {self.slice_mm}")

    @classmethod
    def small(cls, **changes: Any) -> PhantomParams:
        """A fast grid for tests: 160 × 160 × 40 at 3 mm × 5 mm (same anatomy, same 480 × 200 mm extent)."""
        base: dict[str, Any] = {"columns": 160, "rows": 160, "slices": 40, "pixel_mm": 3.0, "slice_mm": 5.0,
                                "marker_hu": 60000.0}
        base.update(changes)
        return cls(**base)

    def origin_mm(self) -> tuple[float, float, float]:
        """Image Position (Patient) of the first voxel: grid centred on x = y = 0 and z = 0."""
        return (-(self.columns - 1) / 2 * self.pixel_mm, -(self.rows - 1) / 2 * self.pixel_mm,
                -(self.slices - 1) / 2 * self.slice_mm)


@dataclass(frozen=True, eq=False)
class Phantom:
    """The phantom CT and its ground truth (patient mm, HFS)."""

    volume: Volume
    isocenter_mm: tuple[float, float, float]
    fiducials: tuple[Fiducial, ...]
    ptv: Ellipsoid
    body_center_mm: tuple[float, float]
    body_semi_axes_mm: tuple[float, float]
    couch_top_y_mm: float
    params: PhantomParams
    patient_position: str = "HFS"

    @property
    def fiducials_mm(self) -> NDArray[np.float64]:
        """Fiducial centres ``(N, 3)`` in patient mm."""
        return np.array([f.center_mm for f in self.fiducials], dtype=float)

    def slice_z_mm(self) -> NDArray[np.float64]:
        """z (mm) of every slice, ascending."""
        nz = self.volume.shape[0]
        return self.volume.origin_mm[2] + np.arange(nz) * self.volume.spacing_mm[2]

    def body_contour(self, z_mm: float, n_points: int = 96) -> NDArray[np.float64]:
        """BODY contour ``(n, 3)`` at slice ``z_mm`` (the outer skin ellipse)."""
        (cx, cy), (a, b) = self.body_center_mm, self.body_semi_axes_mm
        return _ellipse_points(cx, cy, a, b, z_mm, n_points)

    def ptv_contour(self, z_mm: float, n_points: int = 64) -> NDArray[np.float64] | None:
        """PTV contour at ``z_mm`` or None when the slice misses the PTV."""
        return self.ptv.contour(z_mm, n_points)

    def truth(self) -> dict[str, Any]:
        """JSON-ready ground truth (``phantom.json``)."""
        return {
            "patient_position": self.patient_position,
            "isocenter_mm": list(self.isocenter_mm),
            "fiducials": [{"name": f.name, "center_mm": list(f.center_mm), "axis": list(f.axis),
                           "diameter_mm": f.diameter_mm, "length_mm": f.length_mm} for f in self.fiducials],
            "ptv": {"center_mm": list(self.ptv.center_mm), "semi_axes_mm": list(self.ptv.semi_axes_mm)},
            "body": {"center_mm": list(self.body_center_mm), "semi_axes_mm": list(self.body_semi_axes_mm)},
            "couch_top_y_mm": self.couch_top_y_mm,
            "grid": {"shape_zyx": list(self.volume.shape), "origin_mm": list(self.volume.origin_mm),
                     "spacing_mm": list(self.volume.spacing_mm)},
            "seed": self.params.seed,
        }


def _ellipse_points(cx: float, cy: float, a: float, b: float, z: float, n: int) -> NDArray[np.float64]:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.column_stack([cx + a * np.cos(t), cy + b * np.sin(t), np.full(n, float(z))])


# ---------------------------------------------------------------------------------- rasterising
def _ramp(signed_distance: NDArray[np.float64], width: float) -> NDArray[np.float32]:
    """Inside fraction from a signed distance (negative inside) over a ramp ``width`` wide."""
    return np.clip(0.5 - signed_distance / width, 0.0, 1.0).astype(np.float32)


def _ellipsoid_distance(x: NDArray, y: NDArray, z: NDArray | float, c: ArrayLike, r: ArrayLike) -> NDArray:
    """Approximate signed distance to an ellipsoid (first-order: (ρ − 1) / |∇ρ|)."""
    c = np.asarray(c, float)
    r = np.asarray(r, float)
    u, v, w = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
    rho = np.sqrt(u * u + v * v + w * w) + 1e-9
    grad = np.sqrt((u / r[0]) ** 2 + (v / r[1]) ** 2 + (w / r[2]) ** 2) / rho + 1e-12
    return (rho - 1.0) / grad


def _mix(hu: NDArray[np.float32], frac: NDArray[np.float32], value: NDArray | float) -> None:
    hu += frac * (value - hu)


def _texture(p: PhantomParams) -> NDArray[np.float32]:
    """Seeded smooth noise (std ≈ ``texture_hu``) on the CT grid: coarse (4 mm) Gaussian noise, linearly upsampled."""
    from scipy import ndimage

    rng = np.random.default_rng(p.seed)
    coarse_mm = 4.0
    shape = (max(2, int(round(p.slices * p.slice_mm / coarse_mm))),
             max(2, int(round(p.rows * p.pixel_mm / coarse_mm))),
             max(2, int(round(p.columns * p.pixel_mm / coarse_mm))))
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.0)
    noise *= p.texture_hu / (noise.std() + 1e-9)
    for axis, n in enumerate((p.slices, p.rows, p.columns)):
        noise = _upsample_linear(noise, axis, n)
    return noise


def _upsample_linear(a: NDArray[np.float32], axis: int, n: int) -> NDArray[np.float32]:
    """Linear resampling of *a* along *axis* to *n* samples spanning the same extent (cell centres)."""
    m = a.shape[axis]
    pos = np.clip((np.arange(n) + 0.5) * m / n - 0.5, 0.0, m - 1.0)
    i0 = np.minimum(pos.astype(int), m - 2)
    w = (pos - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n
    w = w.reshape(shape)
    return np.take(a, i0, axis=axis) * (1 - w) + np.take(a, i0 + 1, axis=axis) * w


def _slice_grid(p: PhantomParams) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ox, oy, _ = p.origin_mm()
    x = ox + np.arange(p.columns) * p.pixel_mm
    y = oy + np.arange(p.rows) * p.pixel_mm
    return np.meshgrid(x, y, indexing="xy")


def _paint_ellipsoid(hu: NDArray[np.float32], xx: NDArray, yy: NDArray, z: float, h: float,
                     center: ArrayLike, semi_axes: ArrayLike, value: NDArray | float) -> NDArray | None:
    """Mix *value* into the slice inside an ellipsoid (anti-aliased); work only in its bounding box.

    Returns the signed distance in the window (for shells) or None when the slice misses it.
    """
    c = np.asarray(center, float)
    r = np.asarray(semi_axes, float)
    if abs(z - c[2]) > r[2] + h:
        return None
    x0, y0 = xx[0, 0], yy[0, 0]
    i_lo = max(0, int(np.floor((c[0] - r[0] - 2 * h - x0) / h)))
    i_hi = min(xx.shape[1], int(np.ceil((c[0] + r[0] + 2 * h - x0) / h)) + 1)
    j_lo = max(0, int(np.floor((c[1] - r[1] - 2 * h - y0) / h)))
    j_hi = min(xx.shape[0], int(np.ceil((c[1] + r[1] + 2 * h - y0) / h)) + 1)
    if i_lo >= i_hi or j_lo >= j_hi:
        return None
    win = (slice(j_lo, j_hi), slice(i_lo, i_hi))
    d = _ellipsoid_distance(xx[win], yy[win], z, c, r)
    v = value[win] if isinstance(value, np.ndarray) else value
    _mix(hu[win], _ramp(d, h), v)
    return d


def _paint_slice(hu: NDArray[np.float32], xx: NDArray, yy: NDArray, z: float, p: PhantomParams,
                 tex: NDArray[np.float32]) -> None:
    """Paint one axial slice (everything but the fiducials), painter's order."""
    h = p.pixel_mm
    a, b = p.body_semi_axes_mm
    couch_top = b + 1.0
    # couch top: skins 3 mm, foam core, 460 mm wide (clipped by the grid)
    in_x = _ramp(np.abs(xx) - 230.0, h)
    _mix(hu, in_x * _ramp(np.abs(yy - (couch_top + 25.0)) - 25.0, h), HU.couch_skin)
    _mix(hu, in_x * _ramp(np.abs(yy - (couch_top + 25.0)) - 22.0, h), HU.couch_core)
    # body: fat, then soft tissue with texture
    _paint_ellipsoid(hu, xx, yy, z, h, (0, 0, z), (a, b, 1e9), HU.fat + 0.5 * tex)
    _paint_ellipsoid(hu, xx, yy, z, h, (0, 0, z), (a - p.fat_mm, b - p.fat_mm, 1e9), HU.soft_tissue + tex)
    for sx in (-1.0, 1.0):  # lungs at the superior end
        _paint_ellipsoid(hu, xx, yy, z, h, (sx * 68.0, 5.0, 140.0), (50.0, 62.0, 80.0), HU.lung + 3.0 * tex)
    _paint_bones(hu, xx, yy, z, h)
    iso = p.isocenter_mm
    _paint_ellipsoid(hu, xx, yy, z, h, (iso[0], iso[1] + 29.0, iso[2] - 4.0), (9.0, 7.0, 16.0), HU.gas)
    _paint_ellipsoid(hu, xx, yy, z, h, iso, p.ptv_semi_axes_mm, HU.ptv + tex)


def _bone(hu: NDArray[np.float32], xx: NDArray, yy: NDArray, z: float, h: float,
          center: ArrayLike, semi_axes: ArrayLike, shell_mm: float) -> None:
    """Cortical ellipsoid filled with cancellous bone (shell ``shell_mm`` thick)."""
    if _paint_ellipsoid(hu, xx, yy, z, h, center, semi_axes, HU.cortical_bone) is not None:
        inner = np.maximum(np.asarray(semi_axes, float) - shell_mm, 0.5)
        _paint_ellipsoid(hu, xx, yy, z, h, center, inner, HU.cancellous_bone)


def _paint_bones(hu: NDArray[np.float32], xx: NDArray, yy: NDArray, z: float, h: float) -> None:
    # spine: vertebral bodies (discs every 30 mm) and spinous processes, along the whole length
    disc = abs(((z + 7.0) % 30.0) - 15.0) > 12.5
    if not disc:
        _bone(hu, xx, yy, z, h, (0.0, 63.0, z), (19.0, 15.0, 1e9), 2.0)
    _bone(hu, xx, yy, z, h, (0.0, 86.0, z), (5.0, 8.0, 1e9), 1.5)
    for sx in (-1.0, 1.0):
        _bone(hu, xx, yy, z, h, (sx * 98.0, 20.0, 20.0), (14.0, 38.0, 40.0), 2.5)  # iliac wings
        _bone(hu, xx, yy, z, h, (sx * 88.0, 8.0, -60.0), (22.0, 22.0, 24.0), 3.0)  # femoral heads


def paint_fiducials(hu: NDArray[np.float32], volume: Volume, fiducials: tuple[Fiducial, ...],
                     marker_hu: float) -> None:
    """Supersampled (5³ per voxel) cylinders of gold, averaged into the voxels they touch."""
    n_sub = 5
    sub = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    for f in fiducials:
        c = np.asarray(f.center_mm)
        ax = np.asarray(f.axis, float) / np.linalg.norm(f.axis)
        reach = f.length_mm / 2 + f.diameter_mm
        lo = np.floor(volume.patient_to_index([c - reach])[0]).astype(int) - 1
        hi = np.ceil(volume.patient_to_index([c + reach])[0]).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, np.array(volume.shape[::-1]) - 1)
        ii, jj, kk = np.meshgrid(*(np.arange(lo[a], hi[a] + 1) for a in range(3)), indexing="ij")
        si, sj, sk = np.meshgrid(sub, sub, sub, indexing="ij")
        idx = (np.stack([ii, jj, kk], -1)[..., None, None, None, :]
               + np.stack([si, sj, sk], -1)[None, None, None])
        pts = volume.index_to_patient_mm(idx.reshape(-1, 3)) - c
        along = pts @ ax
        radial = np.linalg.norm(pts - along[:, None] * ax, axis=1)
        inside = (np.abs(along) <= f.length_mm / 2) & (radial <= f.diameter_mm / 2)
        frac = inside.reshape(ii.shape + (n_sub**3,)).mean(axis=-1).astype(np.float32)
        view = hu[lo[2]: hi[2] + 1, lo[1]: hi[1] + 1, lo[0]: hi[0] + 1]
        view += np.transpose(frac, (2, 1, 0)) * (marker_hu - view)


def make_phantom(params: PhantomParams | None = None) -> Phantom:
    """Build the phantom CT (int16 HU) and its ground truth; deterministic for given params.

    Takes ~3 s for the default 512 × 512 × 100 grid, ~0.1 s for :meth:`PhantomParams.small`.
    """
    p = params or PhantomParams()
    volume_f = Volume(np.zeros((p.slices, p.rows, p.columns), np.float32), p.origin_mm(),
                      (p.pixel_mm, p.pixel_mm, p.slice_mm))
    hu = volume_f.array
    hu[...] = HU.air
    tex = _texture(p)
    xx, yy = _slice_grid(p)
    z_mm = p.origin_mm()[2] + np.arange(p.slices) * p.slice_mm
    for k, z in enumerate(z_mm):
        _paint_slice(hu[k], xx, yy, float(z), p, tex[k])
    iso = tuple(float(v) for v in p.isocenter_mm)
    fiducials = tuple(
        Fiducial(name=f"Marker{i + 1}", center_mm=(iso[0] + o[0], iso[1] + o[1], iso[2] + o[2]),
                 axis=tuple(float(v) for v in np.asarray(o[3:6]) / np.linalg.norm(o[3:6])),  # type: ignore[arg-type]
                 length_mm=float(o[6]))
        for i, o in enumerate(p.fiducial_offsets))
    paint_fiducials(hu, volume_f, fiducials, p.marker_hu)
    ct = np.clip(np.rint(hu), HU.ct_min, HU.ct_max).astype(np.int16)
    return Phantom(
        volume=volume_f.with_array(ct),
        isocenter_mm=iso,  # type: ignore[arg-type]
        fiducials=fiducials,
        ptv=Ellipsoid(center_mm=iso, semi_axes_mm=tuple(p.ptv_semi_axes_mm)),  # type: ignore[arg-type]
        body_center_mm=(0.0, 0.0),
        body_semi_axes_mm=tuple(p.body_semi_axes_mm),  # type: ignore[arg-type]
        couch_top_y_mm=p.body_semi_axes_mm[1] + 1.0,
        params=p,
    )
