"""Anatomy found in a real CT by thresholds, connected components and body-relative landmarks.

Everything here works on an **axial** CT in HU (a :class:`~openigrt.geometry.volume.Volume`
with identity direction, see :func:`openigrt.sim.ct_file.axial_lps`) and on patient (LPS)
coordinates, so the rules hold whatever the scan's patient position was: anterior is −y, the
patient's right is −x, the head +z. Nothing is tuned to one file: every rule is a named constant
below, and each finding says how it was found.

* :func:`body_mask` — the patient: ``HU > BODY_HU``, opened with a disc of
  :data:`TABLE_DETACH_MM` (which cuts the thin links to the scanner's table, mattress and
  cables), the largest 3D component, grown back inside the threshold, holes filled slice by
  slice (lungs and bowel gas are inside the body).
* :func:`segment` — inside the body: **bone** (``HU > BONE_HU``); **lungs** (air-like
  components of at least :data:`LUNG_MIN_ML` whose voxels are almost never pure air: lung
  parenchyma at CT resolution reads −900…−500 HU, bowel gas below −950 HU); the **liver** (the
  largest soft-tissue component on the patient's right, at least :data:`LIVER_MIN_ML`, at least
  :data:`INNER_MM` inside the skin so the abdominal wall muscles do not join it, cut from the
  heart on the diaphragm by an erosion of :data:`ORGAN_NECK_VOXELS` and grown back short of
  the other organs' cores); the **bladder**
  (the largest homogeneous fluid component, −15…35 HU after smoothing and a local standard
  deviation below :data:`FLUID_MAX_STD_HU`, near the midline, between
  thick bone on both sides = inside the pelvis, and well below the lungs when there are any).
* :func:`choose_site` — where a target goes: ``pelvis`` when a bladder was found, else
  ``liver`` when a liver was found, else ``abdomen`` (the deepest soft-tissue point of the
  middle of the scan). ``site=`` forces one and says clearly when the anatomy is not there.

>>> import numpy as np
>>> from openigrt.geometry.volume import Volume
>>> hu = np.full((12, 40, 40), -1000.0, np.float32)
>>> zz, yy, xx = np.mgrid[0:12, 0:40, 0:40]
>>> hu[(yy - 20) ** 2 + (xx - 20) ** 2 < 12 ** 2] = 40.0     # a water cylinder
>>> hu[:, 36:38, 2:38] = 200.0                                # a thin table below it
>>> ct = Volume(hu, (-58.5, -58.5, 0.0), (3.0, 3.0, 3.0))
>>> body = body_mask(ct)
>>> bool(body[:, 36, 20].any()), bool(body[6, 20, 20])        # the table is not the body
(False, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openigrt.errors import PreconditionError
from openigrt.geometry.volume import Volume

__all__ = ["Anatomy", "TargetSite", "body_mask", "segment", "choose_site", "fill_holes_per_slice", "SITES",
           "BODY_HU", "BONE_HU"]

#: Skin/air threshold of the body outline (HU).
BODY_HU = -350.0
#: Radius of the opening that detaches the scanner's table, pads and cables from the body (mm).
TABLE_DETACH_MM = 6.0
#: Bone threshold (HU).
BONE_HU = 180.0
#: Air-like voxels inside the body (HU): lungs and bowel gas.
AIR_LIKE_HU = -500.0
#: Pure air (HU): bowel gas is mostly below it, lung parenchyma almost never.
PURE_AIR_HU = -950.0
#: A lung component has at least this volume (mL) and at most this fraction of pure-air voxels.
LUNG_MIN_ML = 20.0
LUNG_MAX_PURE_AIR = 0.15
#: Soft tissue of solid organs after smoothing (HU) and the smoothing sigma (mm).
SOFT_TISSUE_HU = (20.0, 200.0)
SMOOTH_MM = 1.5
#: Homogeneity: local standard deviation (Gaussian window of this sigma, mm) of urine stays below
#: FLUID_MAX_STD_HU.
HOMOGENEITY_MM = 3.0
FLUID_MAX_STD_HU = 20.0
#: Organs are looked for at least this deep inside the skin (mm).
INNER_MM = 15.0
#: Smallest liver (mL).
LIVER_MIN_ML = 300.0
#: Erosion (voxels) that cuts the thin necks between touching organs (the heart on the diaphragm
#: above the liver); the chosen organ grows back as far inside its HU band.
ORGAN_NECK_VOXELS = 3
#: ... it grows back at most this far (voxels), never within ORGAN_NECK_VOXELS of another organ's
#: core of at least OTHER_ORGAN_ML.
ORGAN_GROW_VOXELS = 8
OTHER_ORGAN_ML = 20.0
#: Urine after smoothing (HU), smallest bladder (mL), and how far from the midline its centre may
#: lie (fraction of the body width).
FLUID_HU = (-15.0, 35.0)
BLADDER_MIN_ML = 40.0
BLADDER_MAX_OFF_MIDLINE = 0.15
#: "Inside the pelvis": thick bone on each side of the bladder (cm² per side, in at least half of
#: its slices), farther than PELVIS_SIDE_MM from the midline.
PELVIC_BONE_MIN_CM2 = 6.0
PELVIS_SIDE_MM = 40.0
#: The bladder lies at least this far below the lowest lung voxel (mm).
BLADDER_BELOW_LUNG_MM = 150.0
#: Target sites.
SITES = ("auto", "pelvis", "liver", "abdomen")


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Masks on the CT grid (``(nz, ny, nx)`` bool) and the body's per-slice centre."""

    body: NDArray[np.bool_]
    bone: NDArray[np.bool_]
    lungs: NDArray[np.bool_]
    liver: NDArray[np.bool_] | None
    bladder: NDArray[np.bool_] | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class TargetSite:
    """Where the target goes and the organs at risk found around it."""

    site: str
    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    organs: tuple[tuple[str, NDArray[np.bool_]], ...]
    how: str


def _sampling(volume: Volume) -> tuple[float, float, float]:
    dx, dy, dz = volume.spacing_mm
    return (dz, dy, dx)


def _disc(radius_mm: float, dx: float, dy: float) -> NDArray[np.bool_]:
    ry, rx = max(1, int(round(radius_mm / dy))), max(1, int(round(radius_mm / dx)))
    y, x = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    return ((y * dy) ** 2 + (x * dx) ** 2) <= radius_mm**2 + 1e-9


def _largest(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def _edt(mask: NDArray[np.bool_], sampling: tuple[float, float, float]) -> NDArray[np.float32]:
    """Euclidean distance (mm) of each *mask* voxel to the nearest outside voxel, computed on the
    mask's bounding box (+1 voxel) only; 0 outside the mask."""
    from scipy import ndimage

    out = np.zeros(mask.shape, np.float32)
    if not mask.any():
        return out
    lo = [max(0, int(np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0].min()) - 1) for ax in range(3)]
    hi = [min(mask.shape[ax], int(np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0].max()) + 2)
          for ax in range(3)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box] = ndimage.distance_transform_edt(mask[box], sampling=sampling)
    return out


def fill_holes_per_slice(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Each axial slice's holes filled (background not connected in-plane to the slice border)."""
    from scipy import ndimage

    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(~mask, structure=in_plane)
    if n == 0:
        return mask.copy()
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    outside = np.zeros(n + 1, bool)
    outside[border] = True
    outside[0] = False
    return mask | ~outside[lab] & (lab > 0)


def _check_axial(volume: Volume) -> None:
    if not np.allclose(volume.direction, np.eye(3), atol=1e-6):
        raise ValueError("anatomy needs an axial volume with identity direction (use sim.ct_file.axial_lps)")


def body_mask(volume: Volume) -> NDArray[np.bool_]:
    """The patient's body (see the module docstring); raises PreconditionError when there is none."""
    from scipy import ndimage

    _check_axial(volume)
    dx, dy, _ = volume.spacing_mm
    above = np.asarray(volume.array) > BODY_HU
    disc = _disc(TABLE_DETACH_MM, dx, dy)[None]
    core = _largest(ndimage.binary_opening(above, structure=disc))
    if core.sum() == 0:
        raise PreconditionError(f"no body found: no region above {BODY_HU:g} HU survives a {TABLE_DETACH_MM:g} mm opening")
    body = ndimage.binary_dilation(core, structure=disc) & above
    return fill_holes_per_slice(_largest(body))


def _lungs(hu: NDArray[np.floating], body: NDArray[np.bool_], voxel_ml: float) -> NDArray[np.bool_]:
    from scipy import ndimage

    air = (hu < AIR_LIKE_HU) & body
    lab, n = ndimage.label(air)
    if n == 0:
        return np.zeros_like(body)
    idx = np.arange(1, n + 1)
    volume_ml = np.bincount(lab.ravel(), minlength=n + 1)[1:] * voxel_ml
    pure = np.asarray(ndimage.mean(hu < PURE_AIR_HU, lab, idx))
    keep = idx[(volume_ml >= LUNG_MIN_ML) & (pure <= LUNG_MAX_PURE_AIR)]
    return np.isin(lab, keep) if keep.size else np.zeros_like(body)


def _x_mm(volume: Volume) -> NDArray[np.float64]:
    return volume.origin_mm[0] + np.arange(volume.shape[2]) * volume.spacing_mm[0]


def _body_extent_x(volume: Volume, body: NDArray[np.bool_]) -> tuple[float, float]:
    """Body centre and width along x (mm), over the whole scan."""
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    xs = _x_mm(volume)
    counts = body.sum(axis=(0, 1))
    return float((xs * counts).sum() / counts.sum()), float(xs[cols[-1]] - xs[cols[0]] + volume.spacing_mm[0])


@dataclass(frozen=True, eq=False)
class _Fields:
    """Smoothed HU, local standard deviation and depth inside the skin, computed once per CT."""

    smooth: NDArray[np.float32]
    local_std: NDArray[np.float32]
    depth_mm: NDArray[np.float32]

    @classmethod
    def of(cls, volume: Volume, body: NDArray[np.bool_]) -> _Fields:
        from scipy import ndimage

        sigma = 1.0 / np.asarray(_sampling(volume))
        hu = np.asarray(volume.array, np.float32)
        smooth = ndimage.gaussian_filter(hu, SMOOTH_MM * sigma)
        mean = ndimage.gaussian_filter(hu, HOMOGENEITY_MM * sigma)
        square = ndimage.gaussian_filter(hu * hu, HOMOGENEITY_MM * sigma)
        std = np.sqrt(np.maximum(square - mean * mean, 0.0)).astype(np.float32)
        depth = _edt(body, _sampling(volume))
        return cls(smooth, std, depth)

    def band(self, lo_hi: tuple[float, float]) -> NDArray[np.bool_]:
        return (self.smooth > lo_hi[0]) & (self.smooth < lo_hi[1]) & (self.depth_mm > INNER_MM)


def _liver(volume: Volume, fields: _Fields, body: NDArray[np.bool_], voxel_ml: float) -> NDArray[np.bool_] | None:
    from scipy import ndimage

    soft = fields.band(SOFT_TISSUE_HU)
    core = ndimage.binary_erosion(soft, iterations=ORGAN_NECK_VOXELS)
    lab, n = ndimage.label(core)
    if n == 0:
        return None
    cx, width = _body_extent_x(volume, body)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    xs = _x_mm(volume)
    for j in np.argsort(sizes)[::-1][:5]:
        comp = lab == j + 1
        centre_x = float((xs * comp.sum(axis=(0, 1))).sum() / sizes[j])
        if centre_x < cx - 0.05 * width:  # on the patient's right
            others = np.isin(lab, 1 + np.nonzero(sizes * voxel_ml >= OTHER_ORGAN_ML)[0]) & ~comp
            room = soft & ~ndimage.binary_dilation(others, iterations=ORGAN_NECK_VOXELS)
            grown = ndimage.binary_dilation(comp, iterations=ORGAN_GROW_VOXELS, mask=room) | comp
            grown = fill_holes_per_slice(grown)  # vessels belong to the liver
            return np.asarray(grown, bool) if grown.sum() * voxel_ml >= LIVER_MIN_ML else None
    return None


def _bone_sides_cm2(volume: Volume, bone2d: NDArray[np.bool_], cx: float) -> tuple[float, float]:
    xs = _x_mm(volume)
    dx, dy, _ = volume.spacing_mm
    per_col = bone2d.sum(axis=0) * dx * dy / 100.0
    return float(per_col[xs < cx - PELVIS_SIDE_MM].sum()), float(per_col[xs > cx + PELVIS_SIDE_MM].sum())


def _bladder(volume: Volume, fields: _Fields, body: NDArray[np.bool_], bone: NDArray[np.bool_],
             lungs: NDArray[np.bool_], voxel_ml: float) -> NDArray[np.bool_] | None:
    from scipy import ndimage

    fluid = fields.band(FLUID_HU) & (fields.local_std < FLUID_MAX_STD_HU)
    fluid = ndimage.binary_erosion(fluid, structure=np.ones((3, 3, 3), bool))
    lab, n = ndimage.label(fluid)
    if n == 0:
        return None
    cx, width = _body_extent_x(volume, body)
    xs = _x_mm(volume)
    z_lung = np.nonzero(lungs.any(axis=(1, 2)))[0]
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    for j in np.argsort(sizes)[::-1][:8]:
        if sizes[j] * voxel_ml < BLADDER_MIN_ML:
            break
        comp = lab == j + 1
        slices = np.nonzero(comp.any(axis=(1, 2)))[0]
        centre_x = float((xs * comp.sum(axis=(0, 1))).sum() / sizes[j])
        if abs(centre_x - cx) > BLADDER_MAX_OFF_MIDLINE * width:
            continue
        if z_lung.size and (z_lung.min() - slices.max()) * volume.spacing_mm[2] < BLADDER_BELOW_LUNG_MM:
            continue
        sides = [_bone_sides_cm2(volume, bone[k], centre_x) for k in slices]
        if np.mean([min(s) >= PELVIC_BONE_MIN_CM2 for s in sides]) < 0.5:
            continue
        grown = ndimage.binary_dilation(comp, structure=np.ones((3, 3, 3), bool)) & fields.band((-30.0, 50.0))
        return np.asarray(grown, bool)
    return None


def segment(volume: Volume, body: NDArray[np.bool_]) -> Anatomy:
    """Bone, lungs, liver and bladder inside *body* (see the module docstring)."""
    _check_axial(volume)
    hu = np.asarray(volume.array, np.float32)
    voxel_ml = float(np.prod(volume.spacing_mm)) / 1000.0
    bone = (hu > BONE_HU) & body
    lungs = _lungs(hu, body, voxel_ml)
    fields = _Fields.of(volume, body)
    liver = _liver(volume, fields, body, voxel_ml)
    bladder = _bladder(volume, fields, body, bone, lungs, voxel_ml)
    notes = [f"lungs {lungs.sum() * voxel_ml:.0f} mL" if lungs.any() else "no lungs in the scan",
             f"liver {liver.sum() * voxel_ml:.0f} mL" if liver is not None else "no liver found",
             f"bladder {bladder.sum() * voxel_ml:.0f} mL" if bladder is not None else "no bladder found"]
    return Anatomy(body, bone, lungs, liver, bladder, tuple(notes))


# ------------------------------------------------------------------------------ target placement
#: PTV margin around an organ-shaped target and the PTV's largest / smallest semi-axis (mm).
PTV_MARGIN_MM = 5.0
PTV_MAX_SEMI_AXIS_MM = 40.0
PTV_MIN_SEMI_AXIS_MM = 12.0
#: PTV of a liver lesion (mm): a ~35 mm lesion plus margin; at most this fraction of its depth in the liver.
LIVER_PTV_SEMI_AXES_MM = (22.0, 20.0, 24.0)
DEPTH_FRACTION = 0.8
#: PTV of the fallback abdomen target (mm).
ABDOMEN_PTV_SEMI_AXES_MM = (25.0, 20.0, 25.0)
#: The target centre stays this far from the first and last slice (mm).
END_MARGIN_MM = 40.0
#: Rectum model: a tube of this radius (mm) between the bladder and the sacrum, reaching this far
#: above the bladder's top (mm).
RECTUM_RADIUS_MM = 12.0
RECTUM_ABOVE_BLADDER_MM = 20.0


def _z_mm(volume: Volume) -> NDArray[np.float64]:
    return volume.origin_mm[2] + np.arange(volume.shape[0]) * volume.spacing_mm[2]


def _end_ok(volume: Volume) -> NDArray[np.bool_]:
    """Slices whose z lies at least END_MARGIN_MM from both ends of the scan."""
    z = _z_mm(volume)
    return (z - z[0] >= END_MARGIN_MM) & (z[-1] - z >= END_MARGIN_MM)


def _deepest(volume: Volume, mask: NDArray[np.bool_], allowed: NDArray[np.bool_] | None = None
             ) -> tuple[tuple[float, float, float], float]:
    """The point of *mask* farthest from its surface (the scan's ends count as surface), and that depth (mm)."""
    m = mask.copy()
    m[0] = m[-1] = False
    depth = _edt(m, _sampling(volume))
    ok = _end_ok(volume)
    if ok.any():
        depth[~ok] = 0.0
    if allowed is not None:
        depth[~allowed] = 0.0
    k, j, i = np.unravel_index(int(np.argmax(depth)), depth.shape)
    p = volume.index_to_patient_mm([[i, j, k]])[0]
    return (float(p[0]), float(p[1]), float(p[2])), float(depth[k, j, i])


def _moments_ellipsoid(volume: Volume, mask: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Centre and axis-aligned semi-axes (mm) of the solid ellipsoid with the mask's second moments."""
    kji = np.argwhere(mask)
    pts = volume.index_to_patient_mm(kji[:, ::-1])
    centre = pts.mean(axis=0)
    semi = np.sqrt(5.0 * pts.var(axis=0))  # a solid ellipsoid has variance a²/5 along each axis
    return centre, semi


def _tube_mask(volume: Volume, centres: dict[int, tuple[float, float]], radius_mm: float) -> NDArray[np.bool_]:
    nz, ny, nx = volume.shape
    xs = _x_mm(volume)
    ys = volume.origin_mm[1] + np.arange(ny) * volume.spacing_mm[1]
    out = np.zeros(volume.shape, bool)
    for k, (cx, cy) in centres.items():
        out[k] = ((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) <= radius_mm**2
    return out


def _rectum(volume: Volume, anatomy: Anatomy, bladder: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A tube between the bladder's posterior wall and the sacrum's anterior surface, slice by slice."""
    from scipy import ndimage

    centre, _ = _moments_ellipsoid(volume, bladder)
    ys = volume.origin_mm[1] + np.arange(volume.shape[1]) * volume.spacing_mm[1]
    xs = _x_mm(volume)
    near = np.abs(xs - centre[0]) <= RECTUM_RADIUS_MM
    slices = np.nonzero(bladder.any(axis=(1, 2)))[0]
    top = _z_mm(volume)[slices.max()] + RECTUM_ABOVE_BLADDER_MM
    ref_k = int(np.rint(volume.patient_to_index([centre])[0][2]))
    wall = float(ys[np.nonzero(bladder[ref_k][:, near].any(axis=1))[0].max()])
    centres: dict[int, tuple[float, float]] = {}
    for k in range(volume.shape[0]):
        if _z_mm(volume)[k] > top:
            continue
        rows = np.nonzero(bladder[k][:, near].any(axis=1))[0]
        back = float(ys[rows.max()]) if rows.size else wall
        bone_rows = np.nonzero(anatomy.bone[k][:, near].any(axis=1))[0]
        bone_rows = bone_rows[ys[bone_rows] > back]
        front = float(ys[bone_rows.min()]) if bone_rows.size else back + 4 * RECTUM_RADIUS_MM
        cy = (back + front) / 2 if front - back > 2 * RECTUM_RADIUS_MM + 4 else back + RECTUM_RADIUS_MM + 2
        centres[k] = (float(centre[0]), cy)
    if centres:  # smooth the path along z (a rectum does not jump)
        ks = sorted(centres)
        cy = ndimage.median_filter(np.array([centres[k][1] for k in ks]), size=5, mode="nearest")
        centres = {k: (centres[k][0], float(y)) for k, y in zip(ks, cy)}
    return _tube_mask(volume, centres, RECTUM_RADIUS_MM) & anatomy.body & ~bladder & ~anatomy.bone


def _pelvis(volume: Volume, anatomy: Anatomy) -> TargetSite:
    bladder = anatomy.bladder
    if bladder is None:
        raise PreconditionError("no bladder found inside the pelvic bones (fluid of "
                                f"{FLUID_HU[0]:g}…{FLUID_HU[1]:g} HU, >= {BLADDER_MIN_ML:g} mL, near the midline); "
                                "this CT has no pelvis target: try --site liver or abdomen")
    centre, semi = _moments_ellipsoid(volume, bladder)
    semi = np.clip(semi + PTV_MARGIN_MM, PTV_MIN_SEMI_AXIS_MM, PTV_MAX_SEMI_AXIS_MM)
    organs = (("BLADDER", bladder), ("RECTUM", _rectum(volume, anatomy, bladder)))
    return TargetSite("pelvis", tuple(float(v) for v in centre), tuple(float(v) for v in semi), organs,  # type: ignore[arg-type]
                      "bladder-region PTV: the bladder's moment ellipsoid + margin")


def _liver_site(volume: Volume, anatomy: Anatomy) -> TargetSite:
    liver = anatomy.liver
    if liver is None:
        raise PreconditionError(f"no liver found (soft tissue {SOFT_TISSUE_HU[0]:g}…{SOFT_TISSUE_HU[1]:g} HU, "
                                f">= {LIVER_MIN_ML:g} mL, on the patient's right); try --site pelvis or abdomen")
    centre, depth = _deepest(volume, liver)
    semi = np.clip(np.minimum(LIVER_PTV_SEMI_AXES_MM, DEPTH_FRACTION * depth), PTV_MIN_SEMI_AXIS_MM, None)
    organs: list[tuple[str, NDArray[np.bool_]]] = [("LIVER", liver)]
    if anatomy.lungs.any():
        organs.append(("LUNGS", anatomy.lungs))
    return TargetSite("liver", centre, tuple(float(v) for v in semi), tuple(organs),  # type: ignore[arg-type]
                      f"liver-lesion PTV at the liver's deepest point ({depth:.0f} mm inside)")


def _abdomen_site(volume: Volume, anatomy: Anatomy) -> TargetSite:
    from scipy import ndimage

    soft = anatomy.body & ~ndimage.binary_dilation(anatomy.bone, iterations=2) & ~anatomy.lungs
    centre, depth = _deepest(volume, anatomy.body, allowed=soft)
    semi = np.clip(np.minimum(ABDOMEN_PTV_SEMI_AXES_MM, DEPTH_FRACTION * depth), PTV_MIN_SEMI_AXIS_MM, None)
    organs = (("LUNGS", anatomy.lungs),) if anatomy.lungs.any() else ()
    return TargetSite("abdomen", centre, tuple(float(v) for v in semi), organs,  # type: ignore[arg-type]
                      f"PTV at the deepest soft-tissue point of the body ({depth:.0f} mm inside)")


def choose_site(volume: Volume, anatomy: Anatomy, site: str = "auto") -> TargetSite:
    """The target and its organs at risk (see the module docstring); PreconditionError when *site* is absent."""
    if site not in SITES:
        raise ValueError(f"site must be one of {', '.join(SITES)}, got {site!r}")
    if site == "auto":
        site = "pelvis" if anatomy.bladder is not None else "liver" if anatomy.liver is not None else "abdomen"
    return {"pelvis": _pelvis, "liver": _liver_site, "abdomen": _abdomen_site}[site](volume, anatomy)
