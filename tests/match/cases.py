"""Independent matching cases: anatomy the matchers were not developed on, grids that differ, a couch
that does not follow the patient (issue 12, items 4 and 5).

Used by the matching tests and by ``benchmarks/match_bench.py``. Nothing here comes from
``openigrt.sim.phantom`` (the pelvis phantom the algorithms were first developed on):

* **Patients** (:class:`Patient`): the planning CT with a *CT couch*, the target (an ellipsoid:
  centre and semi-axes), three gold seeds implanted into the voxels next to it (partial volume by
  supersampling, saturated at 3071 HU like a 12-bit CT) and the planned isocenter (the target
  centre). Kinds:

  - ``synthetic``: an abdomen generated here (superellipse body with a fat layer, liver, kidneys,
    aorta, vertebrae with discs and processes, ribs, bowel gas), 512 × 512 × 100 at 0.98 × 2.5 mm
    (``small=True``: 256 × 256 × 50 at 1.96 × 5 mm);
  - ``abdomen``: the abdomen/pelvis CT shipped in the package (TotalSegmentator example, 3 mm),
    ``liver``: the CORT liver patient in tests/data (3 × 3 × 2.5 mm), ``abdomen-regrid``: the
    abdomen resampled (B-spline) to 1.17 × 1.17 × 1.6 mm with an origin on no multiple of either
    grid (a CT of a different grid) — each made a virtual patient by the project's pipeline
    (:func:`openigrt.sim.virtual_patient.build_virtual_patient`: scanner table removed, CT couch
    on the side of the patient position, target at the bladder or in the liver, three seeds).

  The patient position decides where "down" is (the couch side) and the axes of the CT and CBCT
  grids (the scanner's and the linac's room axes expressed in patient coordinates, as in the Image
  Orientation of real series): HFS grids are the identity, FFS a 180° turn, HFP has the couch at
  the anterior side, the decubitus positions at a lateral side.

* **Setup errors** (:func:`setup_error`): seeded translations up to ±15 mm and rotations up to ±3°
  about the isocenter; ``T`` maps reference → verification patient mm.

* **CBCT, fast model** (:func:`fast_cbct`): the patient *without* the CT couch, moved by ``T`` and
  resampled (linear) onto a CBCT grid of 512 × 512 × 88 at 0.9 × 2.0 mm (``small``: 256² × 44 at
  1.8 × 4 mm) whose origin is on no multiple of the CT grid; then a **treatment couch** (another
  shape and other HU than the CT couch) that follows the patient's translation along the vertical
  and a random lateral offset but **not its rotation**; blur, HU scale/offset, cupping, shading,
  correlated noise; a cylindrical field of view of 250-290 mm (the body is truncated laterally),
  outside it a constant (one of -1000, -1024, -3024, 0 HU by seed).

Same kind, seed and options → identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume

KINDS = ("synthetic", "abdomen", "liver", "abdomen-regrid")
GOLD_HU = 30000.0  # before the 12-bit clip
CT_MAX_HU = 3071.0


def real_ct_available() -> bool:
    """The built-in real CTs (abdomen in the package, liver in tests/data) are there."""
    from openigrt.workflow.ct_input import BUILT_IN

    return all(Path(p).exists() for p in BUILT_IN.values())


# ----------------------------------------------------------------------------- room axes
@dataclass(frozen=True)
class RoomAxes:
    """Room directions in patient coordinates for a patient position: lateral (+Xt), down (−Zt),
    longitudinal (+Yt, towards the gantry)."""

    lateral: NDArray[np.float64]
    down: NDArray[np.float64]
    longitudinal: NDArray[np.float64]

    @classmethod
    def of(cls, position: str) -> RoomAxes:
        a = patient_axes_in_table_top(position)  # table top = A @ patient
        return cls(a.T @ np.array([1.0, 0, 0]), a.T @ np.array([0, 0, -1.0]), a.T @ np.array([0, 1.0, 0]))

    @property
    def direction(self) -> NDArray[np.float64]:
        """Grid direction whose columns run along the room's lateral, down and longitudinal axes."""
        return np.column_stack([self.lateral, self.down, self.longitudinal])


def room_grid(centre_mm: NDArray[np.float64], position: str, spacing: tuple[float, float, float],
              shape: tuple[int, int, int], dtype: type = np.float32) -> Volume:
    """Empty grid (nz, ny, nx) along the room axes of *position*, centred on *centre_mm*."""
    d = RoomAxes.of(position).direction
    nz, ny, nx = shape
    half = np.array([(nx - 1) / 2 * spacing[0], (ny - 1) / 2 * spacing[1], (nz - 1) / 2 * spacing[2]])
    origin = np.asarray(centre_mm, float) - d @ half
    return Volume(np.zeros(shape, dtype), tuple(origin), spacing, d)


def grid_points(vol: Volume, k: int | slice = slice(None)) -> NDArray[np.float64]:
    """Patient coordinates (…, 3) of the voxel centres of slices *k* (shape (nk, ny, nx, 3))."""
    nz, ny, nx = vol.shape
    ks = np.arange(nz)[k] if isinstance(k, slice) else np.array([k])
    kk, jj, ii = np.meshgrid(ks, np.arange(ny), np.arange(nx), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).astype(np.float64)
    m = vol.index_to_patient_matrix()
    return ijk @ m[:3, :3].T + m[:3, 3]


# ----------------------------------------------------------------------------- the patient
@dataclass(frozen=True, eq=False)
class Patient:
    """A planning-side virtual patient (see the module docstring)."""

    kind: str
    position: str
    ct: Volume  # planning CT with the CT couch (HU, float32)
    anatomy: Volume  # the same without any couch (air elsewhere): what the CBCT images
    isocenter_mm: NDArray[np.float64]
    target_center_mm: NDArray[np.float64]
    target_semi_axes_mm: NDArray[np.float64]
    markers_mm: NDArray[np.float64]  # (3, 3)
    couch_top_mm: float  # height of the CT couch top along RoomAxes.down (patient mm, from the origin)
    body_mask: NDArray[np.bool_] = field(repr=False)  # on the CT grid

    @property
    def points_mm(self) -> NDArray[np.float64]:
        """TRE points: the target centre and the markers."""
        return np.vstack([self.target_center_mm[None, :], self.markers_mm])

    def target_mask(self, margin_mm: float = 0.0) -> NDArray[np.bool_]:
        """The target ellipsoid (grown by *margin_mm*) on the CT grid."""
        p = grid_points(self.ct)
        r = (p - self.target_center_mm) / (self.target_semi_axes_mm + margin_mm)
        return (r ** 2).sum(axis=-1) <= 1.0


def _soft(signed_mm: NDArray[np.floating], width_mm: float) -> NDArray[np.float32]:
    """Occupancy 1 inside (negative distance), 0 outside, linear over *width_mm* (anti-aliasing)."""
    return np.clip(0.5 - signed_mm / width_mm, 0.0, 1.0).astype(np.float32)


def _mix(hu: NDArray[np.float32], frac: NDArray[np.float32], value: float | NDArray[np.floating]) -> None:
    hu += frac * (value - hu)


def _ellipsoid_sd(p: NDArray[np.float64], c: NDArray[np.float64] | tuple[float, ...],
                  r: NDArray[np.float64] | tuple[float, ...]) -> NDArray[np.float64]:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid."""
    q = (p - np.asarray(c, float)) / np.asarray(r, float)
    return (np.sqrt((q ** 2).sum(axis=-1)) - 1.0) * float(np.min(r))


def _smooth_field(shape: tuple[int, int, int], sigma_vox: tuple[float, float, float], seed: int) -> NDArray[np.float32]:
    """Unit-variance smooth Gaussian random field, built at 1/4 resolution and upsampled."""
    rng = np.random.default_rng(seed)
    small = tuple(max(4, s // 4) for s in shape)
    f = ndimage.gaussian_filter(rng.standard_normal(small), [max(0.5, s / 4) for s in sigma_vox], mode="wrap")
    f = ndimage.zoom(f, [a / b for a, b in zip(shape, small)], order=1)[: shape[0], : shape[1], : shape[2]]
    f = f - f.mean()
    return (f / (f.std() + 1e-9)).astype(np.float32)


def _body_window(grid: Volume, k: int, half_mm: tuple[float, float]) -> tuple[slice, slice]:
    """Rows/columns of slice *k* whose voxel centres can lie within ``|x| <= hx, |y + 4| <= hy``."""
    p = grid_points(grid, k)[0]
    inside = (np.abs(p[..., 0]) <= half_mm[0]) & (np.abs(p[..., 1] + 4.0) <= half_mm[1])
    rows, cols = np.nonzero(inside)
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def _synthetic_anatomy(grid: Volume, seed: int) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
    """HU of a generated abdomen on *grid* (no couch), the target centre and semi-axes."""
    rng = np.random.default_rng(seed)
    nz = grid.shape[0]
    hu = np.full(grid.shape, -1000.0, np.float32)
    vs = float(min(grid.spacing_mm))
    tex = _smooth_field(grid.shape, (1.5, 5.0, 5.0), seed + 1)
    gas_field = _smooth_field(grid.shape, (2.0, 5.0, 5.0), seed + 2)
    tgt_c = np.array([rng.uniform(-75, -35), rng.uniform(-25, 10), rng.uniform(-30, 30)])
    tgt_r = np.array([rng.uniform(14, 22), rng.uniform(12, 18), rng.uniform(14, 22)])
    for k in range(nz):
        rs, cs = _body_window(grid, k, (190.0, 130.0))
        p = grid_points(grid, k)[0][rs, cs]
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        t = tex[k][rs, cs]
        h = hu[k][rs, cs]  # a view: painted in place
        a, b = 168.0 + 9.0 * np.sin(z / 55.0), 112.0 + 6.0 * np.cos(z / 41.0)
        e = 2.4
        rho = (np.abs(x / a) ** e + np.abs((y + 4.0) / b) ** e) ** (1.0 / e)
        sd_body = np.maximum((rho - 1.0) * b, y - 100.0)  # the back flattened on the couch
        _mix(h, _soft(sd_body, vs), -105.0 + 8.0 * t)  # fat
        fat_t = 14.0 + 5.0 * np.sin(np.arctan2(y, x) * 3.0 + z / 70.0)
        _mix(h, _soft(sd_body + fat_t, vs), 52.0 + 12.0 * t)  # muscle wall
        _mix(h, _soft(sd_body + fat_t + 9.0, vs), 28.0 + 22.0 * t)  # abdominal cavity
        _mix(h, _soft(_ellipsoid_sd(p, (-62.0, -12.0, 35.0), (82.0, 68.0, 95.0)), vs), 64.0 + 10.0 * t)  # liver
        for cx in (-68.0, 72.0):  # kidneys
            kc = (cx, 38.0, -15.0 + 0.1 * cx)
            _mix(h, _soft(_ellipsoid_sd(p, kc, (27.0, 21.0, 52.0)), vs), 36.0)
            _mix(h, _soft(_ellipsoid_sd(p, kc, (14.0, 10.0, 38.0)), vs), 12.0)
        _mix(h, _soft(np.hypot(x - 18.0, y - 14.0) - 12.0, vs), 44.0)  # aorta
        _mix(h, _soft(np.hypot(x + 22.0, y - 16.0) - 11.0, vs), 40.0)  # vena cava
        bowel = _soft(_ellipsoid_sd(p, (45.0, -40.0, 0.0), (70.0, 50.0, 400.0)), vs)
        _mix(h, bowel * (gas_field[k][rs, cs] > 1.6), -940.0)
        _vertebra(h, x, y, z, vs)
        _ribs(h, x, y, z, a, b, vs)
        _mix(h, _soft(_ellipsoid_sd(p, tgt_c, tgt_r), vs), 78.0 + 6.0 * t)  # target lesion
    return hu, tgt_c, tgt_r


def _vertebra(h: NDArray[np.float32], x: NDArray, y: NDArray, z: NDArray, vs: float) -> None:
    pitch = 33.0
    phase = np.mod(z + 7.0, pitch)
    disc = (phase > pitch - 7.0)
    r_body = np.hypot(x, (y - 45.0) * 1.15)
    cort = _soft(r_body - 19.0, vs)
    _mix(h, cort, np.where(disc, 85.0, 780.0))
    _mix(h, _soft(r_body - 16.5, vs), np.where(disc, 85.0, 230.0))
    arch = _soft(np.abs(np.hypot(x, y - 69.0) - 12.0) - 3.0, vs) * (y > 63.0) * (~disc)
    _mix(h, arch, 650.0)
    spinous = _soft(np.maximum(np.abs(x) - 4.0, np.abs(y - 88.0) - 12.0), vs) * (~disc)
    _mix(h, spinous, 560.0)
    transverse = _soft(np.maximum(np.abs(x) - 36.0, np.abs(y - 63.0) - 4.5), vs) * (phase < 12.0)
    _mix(h, transverse, 520.0)


def _ribs(h: NDArray[np.float32], x: NDArray, y: NDArray, z: NDArray, a: NDArray, b: NDArray, vs: float) -> None:
    """Ribs: tubes 14 mm inside the body outline, every 26 mm, descending anteriorly, above z = -20 mm."""
    ang = np.arctan2(y / b, x / a)
    drop = 28.0 * (1.0 + np.sin(ang))
    rr = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    radial = (rr - (1.0 - 14.0 / b)) * b
    lateral = np.sin(ang) > -0.85  # no rib across the front
    for n in range(8):
        dz = z - (-20.0 + 26.0 * n - drop)
        near = np.abs(dz) < 8.0
        if not near.any():
            continue
        d = np.hypot(radial, dz) - 5.0
        _mix(h, _soft(d, vs) * lateral, 690.0)
        _mix(h, _soft(d + 2.0, vs) * lateral, 210.0)


def _implant_seeds(hu: NDArray[np.float32], grid: Volume, centres: NDArray[np.float64],
                   axes: NDArray[np.float64], lengths: NDArray[np.float64], diameter_mm: float = 1.0) -> None:
    """Gold seeds (cylinders) by 5³ supersampling of every voxel near them; values clipped at 3071 HU."""
    sub = 5
    off = (np.arange(sub) + 0.5) / sub - 0.5
    oo = np.stack(np.meshgrid(off, off, off, indexing="ij"), axis=-1).reshape(-1, 3)  # (i, j, k) offsets
    m = grid.index_to_patient_matrix()
    for c, ax, ln in zip(centres, axes, lengths):
        ijk0 = np.rint(grid.patient_to_index(c[None, :])[0]).astype(int)
        reach = np.ceil((ln / 2 + 1.0) / np.asarray(grid.spacing_mm)).astype(int) + 1
        rng_i = [np.arange(ijk0[a] - reach[a], ijk0[a] + reach[a] + 1) for a in range(3)]
        for i in rng_i[0]:
            for j in rng_i[1]:
                for k in rng_i[2]:
                    if not (0 <= i < grid.shape[2] and 0 <= j < grid.shape[1] and 0 <= k < grid.shape[0]):
                        continue
                    pts = (np.array([i, j, k]) + oo) @ m[:3, :3].T + m[:3, 3] - c
                    along = pts @ ax
                    radial = np.linalg.norm(pts - np.outer(along, ax), axis=1)
                    frac = float(((np.abs(along) <= ln / 2) & (radial <= diameter_mm / 2)).mean())
                    if frac > 0:
                        hu[k, j, i] += frac * (GOLD_HU - hu[k, j, i])
    np.minimum(hu, CT_MAX_HU, out=hu)


def _seeds(rng: np.random.Generator, target: NDArray[np.float64], semi: NDArray[np.float64]
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Three seed centres inside the target (±60 % of its semi-axes, ≥ 8 mm apart), random axes and lengths."""
    centres: list[NDArray[np.float64]] = []
    while len(centres) < 3:
        c = target + rng.uniform(-0.6, 0.6, 3) * semi
        if all(np.linalg.norm(c - o) >= 8.0 for o in centres):
            centres.append(c)
    axes = rng.normal(size=(3, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return np.array(centres), axes, rng.uniform(3.0, 5.0, 3)


# ----------------------------------------------------------------------------- couches
@dataclass(frozen=True)
class CouchModel:
    """A couch top as layers along 'down' from its top surface (mm), a width and optional rails.

    ``layers``: (thickness_mm, HU) from the top; ``sag_mm``: the top is concave by this much at
    the centre (a curved top); ``rails``: lateral centres (mm from the couch centre), each a solid
    bar of ``rail_size_mm`` (lateral, vertical) and ``rail_hu``, its top at the couch top.
    """

    layers: tuple[tuple[float, float], ...]
    width_mm: float
    sag_mm: float = 0.0
    rails: tuple[float, ...] = ()
    rail_size_mm: tuple[float, float] = (12.0, 30.0)
    rail_hu: float = 600.0


#: the planning CT's couch: flat carbon-fibre top (skins of 350 HU, foam core of -930 HU)
CT_COUCH = CouchModel(layers=((2.5, 350.0), (40.0, -930.0), (2.5, 350.0)), width_mm=500.0)
#: the treatment couch in the CBCT: curved top, thinner, other HU, side rails
TREATMENT_COUCH = CouchModel(layers=((1.6, 170.0), (55.0, -975.0), (1.6, 170.0)), width_mm=530.0, sag_mm=6.0,
                             rails=(-250.0, 250.0), rail_hu=650.0)


def paint_couch(hu: NDArray[np.float32], grid: Volume, couch: CouchModel, axes: RoomAxes, top_mm: float,
                lateral_centre_mm: float) -> None:
    """Add *couch* to *hu* (on *grid*): top surface at ``p·down = top_mm``, centred laterally at
    ``p·lateral = lateral_centre_mm``; anti-aliased over the voxel size along 'down'."""
    vs = float(np.abs(grid.direction.T @ axes.down) @ np.asarray(grid.spacing_mm))
    for k in range(grid.shape[0]):
        p = grid_points(grid, k)[0]
        u = p @ axes.lateral - lateral_centre_mm
        half = couch.width_mm / 2
        top = top_mm + couch.sag_mm * (1.0 - np.clip((u / half) ** 2, 0.0, 1.0))
        depth = p @ axes.down - top
        inside_w = _soft(np.abs(u) - half, vs)
        start = 0.0
        for thick, value in couch.layers:
            layer = _soft(np.abs(depth - (start + thick / 2)) - thick / 2, vs) * inside_w
            _mix(hu[k], layer, value)
            start += thick
        for rc in couch.rails:
            bar = _soft(np.maximum(np.abs(u - rc) - couch.rail_size_mm[0] / 2,
                                   np.abs(p @ axes.down - top_mm - couch.rail_size_mm[1] / 2) - couch.rail_size_mm[1] / 2), vs)
            _mix(hu[k], bar, couch.rail_hu)


# ----------------------------------------------------------------------------- real CTs
def _from_sitk(img) -> Volume:  # type: ignore[no-untyped-def]
    import SimpleITK as sitk

    return Volume(sitk.GetArrayFromImage(img).astype(np.float32), img.GetOrigin(), img.GetSpacing(),
                  np.asarray(img.GetDirection(), float).reshape(3, 3))


def _to_sitk(vol: Volume):  # type: ignore[no-untyped-def]
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array, dtype=np.float32))
    img.SetOrigin(vol.origin_mm)
    img.SetSpacing(vol.spacing_mm)
    img.SetDirection(tuple(float(v) for v in np.asarray(vol.direction).ravel()))
    return img


def _reorient(vol: Volume, position: str) -> Volume:
    """The HFS-acquired CT as a scanner of *position* would store it: array axes along the room axes
    (lateral, down, longitudinal) of that position, by exact flips/transposes (no interpolation)."""
    target = RoomAxes.of(position).direction
    src = np.asarray(vol.direction)
    # column a of target = sign * column perm[a] of src
    perm, sign = [], []
    for a in range(3):
        dots = src.T @ target[:, a]
        b = int(np.argmax(np.abs(dots)))
        perm.append(b)
        sign.append(1.0 if dots[b] > 0 else -1.0)
    arr = np.transpose(vol.array, [2 - perm[2], 2 - perm[1], 2 - perm[0]])  # (k, j, i) of the new axes
    sp = tuple(vol.spacing_mm[b] for b in perm)
    for a in range(3):
        if sign[a] < 0:
            arr = np.flip(arr, axis=2 - a)
    n_new = arr.shape[::-1]  # (ni, nj, nk)
    corner = np.zeros(3)  # old index of the new first voxel
    for a in range(3):
        corner[perm[a]] = 0 if sign[a] > 0 else n_new[a] - 1
    origin = vol.index_to_patient_mm(corner[None, :])[0]
    return Volume(np.ascontiguousarray(arr), tuple(origin), sp, target)


def _regrid(vol: Volume, spacing: tuple[float, float, float], offset_mm: NDArray[np.float64]) -> Volume:
    """Resample (cubic B-spline) onto another spacing with a shifted origin, same direction."""
    import SimpleITK as sitk

    ext = np.asarray(vol.shape[::-1]) * np.asarray(vol.spacing_mm)
    size = [int(e // s) - 1 for e, s in zip(ext, spacing)]
    origin = np.asarray(vol.origin_mm) + vol.direction @ offset_mm
    out = sitk.Resample(_to_sitk(vol), size, sitk.Transform(), sitk.sitkBSpline, tuple(origin), spacing,
                        tuple(vol.direction.ravel()), -1000.0, sitk.sitkFloat32)
    return _from_sitk(out)


def _couch_top(mask: NDArray[np.bool_], grid: Volume, axes: RoomAxes) -> float:
    """Lowest point of the body along 'down' (patient mm), where the couch top goes."""
    kji = np.argwhere(mask[:, ::2, ::2]) * np.array([1, 2, 2])
    p = grid.index_to_patient_mm(kji[:, ::-1].astype(float))
    return float((p @ axes.down).max())


def _finish_patient(kind: str, position: str, anatomy: NDArray[np.float32], grid: Volume, body: NDArray[np.bool_],
                    target: NDArray[np.float64], semi: NDArray[np.float64], rng: np.random.Generator) -> Patient:
    centres, axes_, lengths = _seeds(rng, target, semi)
    _implant_seeds(anatomy, grid, centres, axes_, lengths)
    axes = RoomAxes.of(position)
    top = _couch_top(body, grid, axes) + float(rng.uniform(0.5, 2.0))
    ct = anatomy.copy()
    body_lateral = float(np.median(grid.index_to_patient_mm(np.argwhere(body[::4, ::4, ::4])[:, ::-1] * 4.0) @ axes.lateral))
    paint_couch(ct, grid, CT_COUCH, axes, top, body_lateral)
    return Patient(kind, position, grid.with_array(ct), grid.with_array(anatomy), target.copy(), target, semi, centres,
                   top, body)


def synthetic_patient(seed: int = 0, *, position: str = "HFS", small: bool = False) -> Patient:
    """The generated abdomen on a 512 × 512 × 100 grid of 0.98 × 0.98 × 2.5 mm (``small``: 256² × 50 at 1.96 × 5)."""
    rng = np.random.default_rng(1000 + seed)
    spacing, shape = ((1.96, 1.96, 5.0), (50, 256, 256)) if small else ((0.98, 0.98, 2.5), (100, 512, 512))
    centre = np.array([rng.uniform(-3, 3), rng.uniform(-3, 3) + 20.0, rng.uniform(-4, 4)])
    grid = room_grid(centre, position, spacing, shape)
    hu, target, semi = _synthetic_anatomy(grid, seed)
    body = hu > -350.0
    return _finish_patient("synthetic", position, hu, grid, body, target, semi, rng)


def real_patient(kind: str, seed: int = 0, *, position: str = "HFS") -> Patient:
    """A virtual patient from a real CT (``abdomen``, ``liver`` or ``abdomen-regrid``) built by the
    project's own pipeline (:func:`openigrt.sim.virtual_patient.build_virtual_patient`: table removed,
    CT couch, anatomical target, gold markers); see the module docstring."""
    from openigrt.sim.virtual_patient import build_virtual_patient
    from openigrt.workflow.ct_input import built_in_ct, load_ct

    rng = np.random.default_rng(2000 + seed)
    base = "abdomen" if kind.startswith("abdomen") else kind
    if kind not in KINDS or kind == "synthetic":
        raise ValueError(f"unknown real patient kind {kind!r} (known: {', '.join(KINDS[1:])})")
    vol = load_ct(built_in_ct(base)).volume
    if kind == "abdomen-regrid":
        vol = _regrid(vol, (1.17, 1.17, 1.6), rng.uniform(0.1, 2.9, 3))
    vp = build_virtual_patient(vol, patient_position=position, seed=seed, name=kind)
    ct = _reorient(vp.volume.with_array(np.asarray(vp.volume.array, np.float32)), position)  # room-axis grid
    couch = vp.details["couch"]
    p = grid_points(ct)
    depth = p @ np.asarray(couch["down"], float) - float(couch["top_mm"])
    across = np.abs(p @ np.asarray(couch["lateral"], float) - float(couch["centre_mm"]))
    on_couch = (depth > -1.0) & (depth < float(couch["thickness_mm"]) + 1.0) & (across < float(couch["width_mm"]) / 2 + 2)
    anatomy = np.where(on_couch, -1000.0, ct.array).astype(np.float32)
    from scipy import ndimage as ndi

    body = ndi.binary_opening(anatomy > -350.0, structure=np.ones((1, 3, 3), bool))
    return Patient(kind, vp.patient_position, ct, ct.with_array(anatomy), np.asarray(vp.isocenter_mm, float),
                   np.asarray(vp.ptv.center_mm, float), np.asarray(vp.ptv.semi_axes_mm, float), vp.fiducials_mm,
                   float(couch["top_mm"]), body)


def make_patient(kind: str, seed: int = 0, *, position: str = "HFS", small: bool = False) -> Patient:
    if kind == "synthetic":
        return synthetic_patient(seed, position=position, small=small)
    return real_patient(kind, seed, position=position)


# ----------------------------------------------------------------------------- setup error, CBCT
def setup_error(seed: int, isocenter_mm: NDArray[np.float64], *, max_mm: float = 15.0, max_deg: float = 3.0
                ) -> RigidTransform:
    """Seeded rigid setup error (reference → verification): uniform translations and rotations about the isocenter."""
    rng = np.random.default_rng(3000 + seed)
    return RigidTransform.from_parameters(translation_mm=rng.uniform(-max_mm, max_mm, 3),
                                          rotation_deg=rng.uniform(-max_deg, max_deg, 3), center_mm=isocenter_mm)


@dataclass(frozen=True)
class CbctOptions:
    """Grid and degradations of :func:`fast_cbct` (ranges are drawn per seed)."""

    spacing_mm: tuple[float, float, float] = (0.9, 0.9, 2.0)
    shape: tuple[int, int, int] = (88, 512, 512)
    fov_diameter_mm: tuple[float, float] = (250.0, 290.0)
    blur_mm: tuple[float, float] = (0.5, 0.8)
    hu_scale: tuple[float, float] = (0.88, 1.05)
    hu_offset: tuple[float, float] = (-70.0, 50.0)
    cupping_hu: tuple[float, float] = (30.0, 110.0)
    shading_hu: tuple[float, float] = (10.0, 40.0)
    noise_hu: tuple[float, float] = (18.0, 35.0)
    fill_values: tuple[float, ...] = (-1000.0, -1024.0, -3024.0, 0.0)
    couch: CouchModel = TREATMENT_COUCH

    @classmethod
    def small(cls) -> CbctOptions:
        return cls(spacing_mm=(1.8, 1.8, 4.0), shape=(44, 256, 256))


@dataclass(frozen=True, eq=False)
class Case3D:
    """A 3D/3D case: the patient, the CBCT, the truth (reference → verification) and INITLASERISO."""

    patient: Patient
    cbct: Volume
    truth: RigidTransform
    initlaseriso_mm: NDArray[np.float64]
    seed: int
    couch_mask: NDArray[np.bool_] | None = field(default=None, repr=False)  # dense couch voxels of the CBCT

    def tre_mm(self, estimate: RigidTransform) -> NDArray[np.float64]:
        """Distances (mm) at the target centre and the markers between *estimate* and the truth."""
        p = self.patient.points_mm
        return np.linalg.norm(estimate.apply(p) - self.truth.apply(p), axis=1)

    def rotation_error_deg(self, estimate: RigidTransform) -> float:
        return estimate.compose(self.truth.inverse()).rotation_angle_deg()


def _resample(vol: Volume, grid: Volume, truth: RigidTransform) -> NDArray[np.float32]:
    import SimpleITK as sitk

    inv = truth.inverse()  # output (verification) point -> input (reference) point
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(float(v) for v in inv.matrix[:3, :3].ravel()))
    tx.SetTranslation(tuple(float(v) for v in inv.matrix[:3, 3]))
    nz, ny, nx = grid.shape
    out = sitk.Resample(_to_sitk(vol), (nx, ny, nz), tx, sitk.sitkLinear, grid.origin_mm, grid.spacing_mm,
                        tuple(float(v) for v in grid.direction.ravel()), -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def _within_the_ct(patient: Patient, truth: RigidTransform, axes: RoomAxes, centre: NDArray[np.float64],
                   options: CbctOptions) -> tuple[int, int, int]:
    """The CBCT grid shape, its length cut so that it stays inside the scanned anatomy (a real CBCT
    shows the patient where the CT ends; a simulated one could only show air there). *centre* is
    moved along the longitudinal axis to the middle of what remains (in place)."""
    pts = patient.anatomy.index_to_patient_mm(np.argwhere(patient.body_mask[:, ::8, ::8])[:, ::-1]
                                              * np.array([8.0, 8.0, 1.0]))
    lo, hi = np.percentile(truth.apply(pts) @ axes.longitudinal, [0.5, 99.5])
    dz = options.spacing_mm[2]
    c = float(centre @ axes.longitudinal)
    half = (options.shape[0] - 1) / 2 * dz
    a, b = max(c - half, lo + 2 * dz), min(c + half, hi - 2 * dz)
    n = max(8, int((b - a) // dz) + 1)
    centre += axes.longitudinal * ((a + b) / 2 - c)
    return (min(n, options.shape[0]), options.shape[1], options.shape[2])


def fast_cbct(patient: Patient, truth: RigidTransform, seed: int, *, options: CbctOptions = CbctOptions()) -> Case3D:
    """The image-domain CBCT of the module docstring (treatment couch not rotating with the patient)."""
    rng = np.random.default_rng(4000 + seed)
    axes = RoomAxes.of(patient.position)
    laser = patient.isocenter_mm.copy()
    centre = laser + rng.uniform(-0.5, 0.5, 3) * np.asarray(options.spacing_mm) + rng.uniform(-3.0, 3.0, 3)
    shape = _within_the_ct(patient, truth, axes, centre, options)
    grid = room_grid(centre, patient.position, options.spacing_mm, shape)
    hu = _resample(patient.anatomy, grid, truth)
    lat0 = float(np.median(patient.anatomy.index_to_patient_mm(
        np.argwhere(patient.body_mask[::4, ::4, ::4])[:, ::-1] * 4.0) @ axes.lateral))
    top = patient.couch_top_mm + float(truth.translation_mm @ axes.down) + float(rng.uniform(-0.5, 1.5))
    lateral = lat0 + float(truth.translation_mm @ axes.lateral) + float(rng.uniform(-15.0, 15.0))
    couch_only = np.full(grid.shape, -1000.0, np.float32)
    paint_couch(couch_only, grid, options.couch, axes, top, lateral)
    paint_couch(hu, grid, options.couch, axes, top, lateral)
    u = lambda r: float(rng.uniform(*r))  # noqa: E731
    sp = np.asarray(options.spacing_mm)[::-1]
    hu = ndimage.gaussian_filter(hu, u(options.blur_mm) / sp, mode="nearest")
    p = grid_points(grid)
    rel = p - laser
    lat, dn = rel @ axes.lateral, rel @ axes.down
    radius = u(options.fov_diameter_mm) / 2
    r2 = (lat ** 2 + dn ** 2) / radius ** 2
    bias = -u(options.cupping_hu) * (1.0 - np.minimum(r2, 1.0)) + u(options.shading_hu) * (lat + 0.5 * dn) / radius
    hu = u(options.hu_scale) * hu + u(options.hu_offset) + bias.astype(np.float32)
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), 0.8 / sp)
    hu += noise * (u(options.noise_hu) / (float(noise.std()) + 1e-12))
    hu[r2 > 1.0] = float(options.fill_values[int(rng.integers(len(options.fill_values)))])
    out = np.clip(np.rint(hu), -3024, 3071).astype(np.int16)
    return Case3D(patient, grid.with_array(out), truth, laser, seed, (couch_only > -500.0) & (r2 <= 1.0))


def fdk_cbct(patient: Patient, truth: RigidTransform, seed: int, *, options: CbctOptions = CbctOptions(),
             fan: str | None = None) -> Case3D:
    """A CBCT by projections and FDK (:func:`openigrt.sim.cbct_fdk.simulate_cbct_fdk`, needs ``itk-rtk``):
    the CT couch (where ``patient.ct`` differs from ``patient.anatomy``) replaced by the linac's
    treatment couch, half fan (FOV ⌀ 466 mm) for even seeds, full fan (⌀ 264 mm, truncated) for odd
    ones, on a 0.9 × 0.9 × 2 mm grid of up to 512 × 512 × 88 centred on INITLASERISO."""
    from openigrt.sim.cbct import CbctParams
    from openigrt.sim.cbct_fdk import CbctScan, simulate_cbct_fdk

    fan = fan or ("half" if seed % 2 == 0 else "full")
    axes = RoomAxes.of(patient.position)
    centre = patient.isocenter_mm.copy()
    shape = _within_the_ct(patient, truth, axes, centre, options)  # keep inside the scanned anatomy
    length = shape[0] * options.spacing_mm[2]
    params = CbctParams(pixel_mm=options.spacing_mm[0], slice_mm=options.spacing_mm[2], columns=options.shape[2],
                        length_mm=length, fov_diameter_mm=470.0)
    couch = patient.ct.array != patient.anatomy.array
    laser = patient.isocenter_mm.copy()
    out = simulate_cbct_fdk(patient.ct, setup_error=truth, isocenter_mm=laser, params=params, scan=CbctScan(fan=fan),
                            seed=seed, patient_position=patient.position, ct_couch=couch)
    return Case3D(patient, out.volume, truth, laser, seed)


@dataclass(frozen=True, eq=False)
class Case2D:
    """A kV pair: the reference DRRs of the planning CT, the acquired images (patient moved by the
    truth, the treatment couch not rotated, scatter, heel, noise), their geometries."""

    patient: Patient
    references: tuple[NDArray[np.float32], ...]
    acquired: tuple[NDArray[np.float32], ...]
    geometries: tuple[object, ...]
    truth: RigidTransform
    seed: int

    def tre_mm(self, estimate: RigidTransform) -> NDArray[np.float64]:
        p = self.patient.points_mm
        return np.linalg.norm(estimate.apply(p) - self.truth.apply(p), axis=1)


#: kV source angles of the pair and the lateral view's exposure factor (clinical pelvis technique)
KV_ANGLES_DEG = (0.0, 90.0)
LATERAL_EXPOSURE_FACTOR = 10.0


def kv_case(patient: Patient, truth: RigidTransform, seed: int, *, renderers: dict[str, object] | None = None) -> Case2D:
    """The kV pair of a case (``renderers`` caches the DRR renderers of the patient between cases)."""
    from dataclasses import replace as _replace

    from openigrt.geometry.projection import kv_geometry
    from openigrt.sim.acquire import KV_IMAGING, degrade
    from openigrt.sim.drr import DrrRenderer
    from openigrt.sim.treatment_couch import TreatmentCouch, couch_volume, place_treatment_couch

    cache = renderers if renderers is not None else {}
    if "ct" not in cache:
        cache["ct"], cache["anatomy"] = DrrRenderer(patient.ct), DrrRenderer(patient.anatomy)
    iso = tuple(float(v) for v in patient.isocenter_mm)
    geoms = tuple(kv_geometry(a, isocenter_mm=iso, patient_position=patient.position) for a in KV_ANGLES_DEG)
    place = place_treatment_couch(patient.anatomy, setup_error=truth, patient_position=patient.position,
                                  planned_isocenter_mm=iso, initlaseriso_mm=iso)
    couch = DrrRenderer(couch_volume(TreatmentCouch(), place, length_mm=700.0, spacing_mm=(4.0, 1.0, 20.0)))
    refs, acqs = [], []
    for v, g in enumerate(geoms):
        refs.append(cache["ct"].render(g))  # type: ignore[attr-defined]
        line = cache["anatomy"].render(g, setup_error=truth) + couch.render(g)  # type: ignore[attr-defined]
        params = KV_IMAGING if v == 0 else _replace(KV_IMAGING, photons_per_pixel=LATERAL_EXPOSURE_FACTOR
                                                    * KV_IMAGING.photons_per_pixel)
        acqs.append(degrade(line, g, params=params, seed=5000 + 2 * seed + v))
    return Case2D(patient, tuple(refs), tuple(acqs), geoms, truth, seed)
