"""A complete virtual patient from any CT, or from the synthetic phantom (SPEC SIM-1, array level).

:func:`build_virtual_patient` turns an axial CT in HU (any scanner, any grid; see
:func:`openigrt.sim.ct_file.axial_lps`) into what a planning system would hand over, with the
ground truth to score matches against:

1. **body** (:func:`openigrt.sim.anatomy.body_mask`); everything outside it (the scanner's table,
   mattress, cables, the reconstruction circle's padding) becomes air;
2. **our CT couch** under the body, on the side gravity pulls to for the chosen Patient Position
   (:mod:`openigrt.sim.ct_couch`);
3. **target and organs at risk** at anatomical positions found in the image
   (:func:`openigrt.sim.anatomy.choose_site`): a bladder-region PTV in a pelvis, a liver-lesion
   PTV (painted :data:`LESION_HU` darker, as a hypodense lesion) in a liver, else the deepest
   soft-tissue point; the **isocenter** at the PTV centre (rounded to :data:`ISOCENTER_STEP_MM`);
4. **gold markers** implanted in soft tissue inside the PTV (seeded positions at least
   :data:`MARKER_MIN_SEPARATION_MM` apart, random axes, sub-voxel positions), painted with the
   phantom's supersampled partial-volume model (:func:`openigrt.sim.phantom.paint_fiducials`),
   nothing denser than soft tissue within :data:`MARKER_CLEARANCE_MM`; the structure set's marker
   points are where each marker appears in the stored CT (the centroid of the HU it adds after
   saturation, :func:`_ct_centroid`: what a planner marks, up to a voxel from the physical centre on
   a 3 mm grid), the physical centres stay in the truth;
5. the **reference mark** where the lasers are set at treatment before the couch is shifted by
   the plan's offset: the body's centre (x, y) on the CT slice nearest to
   :data:`REFERENCE_MARK_BELOW_TARGET_MM` inferior of the isocenter (tattoos are placed on a
   scan slice near, not at, the target);
6. **structures** as closed planar contours on the CT slices: BODY (EXTERNAL), PTV, the organs at
   risk (ORGAN), the couch (SUPPORT); the markers become POINT ROIs when written.

:func:`from_phantom` gives the synthetic phantom the same shape, so one writer
(:mod:`openigrt.workflow.phantom`) serves both. Same CT, position, site and seed → same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openigrt.geometry.iec61217 import PatientPosition
from openigrt.geometry.volume import Volume
from openigrt.sim.anatomy import BODY_HU, TargetSite, body_mask, choose_site, fill_holes_per_slice, segment
from openigrt.sim.ct_couch import insert_couch
from openigrt.sim.phantom import HU, Ellipsoid, Fiducial, Phantom, paint_fiducials

__all__ = ["Structure", "VirtualPatient", "build_virtual_patient", "from_phantom", "mask_contours",
           "reference_mark_for", "MARKER_COUNT"]

#: Gold markers per patient, their length range (mm) and minimum separation (mm).
MARKER_COUNT = 3
MARKER_LENGTHS_MM = (3.0, 5.0)
MARKER_MIN_SEPARATION_MM = 12.0
#: Markers go at this fraction of the PTV's semi-axes from its centre, into tissue of this HU.
MARKER_RADIUS_FRACTION = (0.3, 0.65)
MARKER_TISSUE_HU = (-150.0, 200.0)
#: ... with nothing denser than soft tissue within this distance (mm).
MARKER_CLEARANCE_MM = 6.0
#: Marker material HU before partial-volume averaging (as the phantom: the grid's voxel volume sets
#: how bright a 1 mm marker must be to saturate at 3071 HU in the voxels it crosses).
MARKER_HU_FINE, MARKER_HU_COARSE, FINE_VOXEL_MM3 = 20000.0, 60000.0, 5.0
#: Liver lesion: HU change inside the PTV shrunk by GTV_INSET_MM.
LESION_HU = -25.0
GTV_INSET_MM = 5.0
ISOCENTER_STEP_MM = 0.1
#: Contours: simplification tolerance (fraction of the pixel size) and the smallest island/hole (mm²).
CONTOUR_TOLERANCE_MM = 0.15
MIN_CONTOUR_AREA_MM2 = 20.0
REFERENCE_MARK_BELOW_TARGET_MM = 25.0
_COLOURS = {"BODY": (0, 255, 0), "PTV": (255, 0, 0), "BLADDER": (255, 255, 128), "RECTUM": (160, 82, 45),
            "LIVER": (200, 120, 60), "LUNGS": (100, 180, 255), "COUCH": (128, 128, 128)}


@dataclass(frozen=True, eq=False)
class Structure:
    """A volumetric ROI: closed planar contours ``(N, 3)`` patient mm, each on a CT slice plane."""

    name: str
    kind: str
    contours: tuple[NDArray[np.float64], ...]
    color: tuple[int, int, int] = (255, 0, 0)
    volume_ml: float | None = None


@dataclass(frozen=True, eq=False)
class VirtualPatient:
    """Planning CT (int16 HU), structures, isocenter, markers and ground truth (patient mm)."""

    name: str
    volume: Volume
    patient_position: str
    isocenter_mm: tuple[float, float, float]
    fiducials: tuple[Fiducial, ...]
    ptv: Ellipsoid
    structures: tuple[Structure, ...]
    reference_mark_mm: tuple[float, float, float]
    site: str
    seed: int
    details: dict[str, Any] = field(default_factory=dict)
    #: Where the structure set puts each marker (POINT ROI), patient mm; default: the fiducial centres.
    marker_points_mm: tuple[tuple[float, float, float], ...] | None = None

    @property
    def marker_points(self) -> tuple[tuple[float, float, float], ...]:
        """The marker positions written to the structure set (what a planner finds in this CT)."""
        return self.marker_points_mm or tuple(f.center_mm for f in self.fiducials)

    @property
    def fiducials_mm(self) -> NDArray[np.float64]:
        """Fiducial centres ``(N, 3)`` in patient mm."""
        return np.array([f.center_mm for f in self.fiducials], dtype=float)

    def slice_z_mm(self) -> NDArray[np.float64]:
        """z (mm) of every slice, ascending."""
        return self.volume.origin_mm[2] + np.arange(self.volume.shape[0]) * self.volume.spacing_mm[2]

    def structure(self, name: str) -> Structure:
        return next(s for s in self.structures if s.name == name)

    def truth(self) -> dict[str, Any]:
        """JSON-ready ground truth (``phantom.json``)."""
        offset = np.asarray(self.isocenter_mm) - np.asarray(self.reference_mark_mm)
        return {
            "patient": self.name,
            "site": self.site,
            "patient_position": self.patient_position,
            "isocenter_mm": list(self.isocenter_mm),
            "reference_mark_mm": list(self.reference_mark_mm),
            "isocenter_from_reference_mark_mm": [round(float(v), 6) for v in offset],
            "fiducials": [{"name": f.name, "center_mm": list(f.center_mm), "axis": list(f.axis),
                           "diameter_mm": f.diameter_mm, "length_mm": f.length_mm,
                           "structure_set_point_mm": [round(float(v), 4) for v in point]}
                          for f, point in zip(self.fiducials, self.marker_points)],
            "ptv": {"center_mm": list(self.ptv.center_mm), "semi_axes_mm": list(self.ptv.semi_axes_mm)},
            "structures": [{"name": s.name, "kind": s.kind, "contours": len(s.contours),
                            **({"volume_ml": round(s.volume_ml, 1)} if s.volume_ml is not None else {})}
                           for s in self.structures],
            "grid": {"shape_zyx": list(self.volume.shape), "origin_mm": list(self.volume.origin_mm),
                     "spacing_mm": list(self.volume.spacing_mm)},
            "seed": self.seed,
        } | self.details


# ------------------------------------------------------------------------------------ contours
def _rdp(points: NDArray[np.float64], tolerance: float) -> NDArray[np.bool_]:
    """Keep-mask of the Ramer-Douglas-Peucker simplification of an open polyline (ends kept)."""
    keep = np.zeros(len(points), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        seg = points[b] - points[a]
        rel = points[a + 1:b] - points[a]
        norm = float(np.hypot(*seg))
        dist = (np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm) if norm > 0 else np.hypot(rel[:, 0], rel[:, 1])
        i = int(np.argmax(dist))
        if dist[i] > tolerance:
            keep[a + 1 + i] = True
            stack += [(a, a + 1 + i), (a + 1 + i, b)]
    return keep


def simplify_polygon(points: NDArray[np.float64], tolerance_mm: float) -> NDArray[np.float64]:
    """A closed polygon ``(N, 2)`` with the points that lie within *tolerance_mm* of the outline dropped."""
    if len(points) <= 4:
        return points
    d_prev, d_next = points - np.roll(points, 1, axis=0), np.roll(points, -1, axis=0) - points
    turning = np.abs(d_prev[:, 0] * d_next[:, 1] - d_prev[:, 1] * d_next[:, 0]) > 1e-9 * tolerance_mm**2
    if turning.sum() >= 3:  # drop the points in the middle of straight runs first (exact)
        points = points[turning]
    if len(points) <= 4:
        return points
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    first = _rdp(points[: far + 1], tolerance_mm)
    second = _rdp(np.vstack([points[far:], points[:1]]), tolerance_mm)[:-1]
    keep = np.concatenate([first[:-1], second])
    return points[keep] if keep.sum() >= 3 else points


def _polygon_area(points: NDArray[np.float64]) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def mask_contours(mask: NDArray[np.bool_], volume: Volume) -> tuple[NDArray[np.float64], ...]:
    """Closed planar contours of a mask on the grid of *volume*, one set per slice (marching squares).

    Each polygon is simplified to within :data:`CONTOUR_TOLERANCE_MM` (a fraction of the pixel) and
    islands or holes smaller than :data:`MIN_CONTOUR_AREA_MM2` are dropped.
    """
    import contourpy

    nz, ny, nx = mask.shape
    (ox, oy, _), (dx, dy, _) = volume.origin_mm, volume.spacing_mm
    xs = ox + dx * np.arange(-1, nx + 1)
    ys = oy + dy * np.arange(-1, ny + 1)
    z = volume.origin_mm[2] + volume.spacing_mm[2] * np.arange(nz)
    out: list[NDArray[np.float64]] = []
    for k in np.nonzero(mask.any(axis=(1, 2)))[0]:
        gen = contourpy.contour_generator(xs, ys, np.pad(mask[k].astype(np.float64), 1),
                                          line_type=contourpy.LineType.Separate)
        for line in gen.lines(0.5):
            pts = np.asarray(line, dtype=float)
            if pts.shape[0] > 1 and np.allclose(pts[0], pts[-1]):
                pts = pts[:-1]
            if pts.shape[0] < 3 or _polygon_area(pts) < MIN_CONTOUR_AREA_MM2:
                continue
            pts = simplify_polygon(pts, CONTOUR_TOLERANCE_MM * min(dx, dy))
            out.append(np.column_stack([pts, np.full(pts.shape[0], float(z[k]))]))
    return tuple(out)


def _ellipsoid_contours(ell: Ellipsoid, z_values: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    return tuple(c for c in (ell.contour(float(z)) for z in z_values) if c is not None)


def _structure(name: str, kind: str, mask: NDArray[np.bool_], volume: Volume) -> Structure:
    """An organ's structure: its mask with the holes of each slice filled (vessels in the lungs)."""
    mask = fill_holes_per_slice(mask)
    ml = float(mask.sum() * np.prod(volume.spacing_mm) / 1000.0)
    return Structure(name, kind, mask_contours(mask, volume), _COLOURS.get(name, (255, 128, 0)), ml)


# ------------------------------------------------------------------------------------ markers
def _marker_hu(volume: Volume) -> float:
    return MARKER_HU_FINE if float(np.prod(volume.spacing_mm)) <= FINE_VOXEL_MM3 else MARKER_HU_COARSE


def _place_markers(volume: Volume, ptv: Ellipsoid, rng: np.random.Generator) -> tuple[Fiducial, ...]:
    """MARKER_COUNT markers in soft tissue inside the PTV (seeded), at least MARKER_MIN_SEPARATION_MM apart."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(volume.array, np.float32), 1.0)
    centre, semi = np.asarray(ptv.center_mm), np.asarray(ptv.semi_axes_mm)
    chosen: list[NDArray[np.float64]] = []
    for _ in range(2000):
        u = rng.normal(size=3)
        p = centre + semi * rng.uniform(*MARKER_RADIUS_FRACTION) * u / np.linalg.norm(u)
        ijk = volume.patient_to_index([p])[0]
        if np.any(ijk < 1) or np.any(ijk > np.array(volume.shape[::-1]) - 2):
            continue
        value = float(ndimage.map_coordinates(smooth, [[ijk[2]], [ijk[1]], [ijk[0]]], order=1)[0])
        if not MARKER_TISSUE_HU[0] <= value <= MARKER_TISSUE_HU[1]:
            continue
        lo = np.maximum(np.floor(volume.patient_to_index([p - MARKER_CLEARANCE_MM])[0]).astype(int), 0)
        hi = np.ceil(volume.patient_to_index([p + MARKER_CLEARANCE_MM])[0]).astype(int) + 1
        if float(np.asarray(volume.array)[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].max()) > MARKER_TISSUE_HU[1]:
            continue  # bone (or calcification) next to it: a marker would not be implanted there
        if all(np.linalg.norm(p - q) >= MARKER_MIN_SEPARATION_MM for q in chosen):
            chosen.append(p)
        if len(chosen) == MARKER_COUNT:
            break
    if len(chosen) < MARKER_COUNT:
        raise ValueError(f"could not place {MARKER_COUNT} markers in soft tissue inside the PTV at {ptv.center_mm}")
    markers = []
    for i, p in enumerate(chosen):
        axis = rng.normal(size=3)
        axis[2] = abs(axis[2]) + 1.0  # mostly along the needle track (head-feet), never across it only
        axis /= np.linalg.norm(axis)
        markers.append(Fiducial(name=f"Marker{i + 1}", center_mm=tuple(round(float(v), 3) for v in p),  # type: ignore[arg-type]
                                axis=tuple(round(float(v), 6) for v in axis),  # type: ignore[arg-type]
                                length_mm=float(round(rng.uniform(*MARKER_LENGTHS_MM), 1))))
    return tuple(markers)


# ------------------------------------------------------------------------------------ building
def reference_mark_for(volume: Volume, body: NDArray[np.bool_], isocenter_mm: tuple[float, float, float]
                       ) -> tuple[float, float, float]:
    """The body's centre (x, y) on the slice nearest REFERENCE_MARK_BELOW_TARGET_MM below the isocenter."""
    z = volume.origin_mm[2] + np.arange(volume.shape[0]) * volume.spacing_mm[2]
    k = int(np.argmin(np.abs(z - (isocenter_mm[2] - REFERENCE_MARK_BELOW_TARGET_MM))))
    if not body[k].any():
        k = int(np.argmin(np.abs(z - isocenter_mm[2])))
    jj, ii = np.nonzero(body[k])
    x = volume.origin_mm[0] + ii.mean() * volume.spacing_mm[0]
    y = volume.origin_mm[1] + jj.mean() * volume.spacing_mm[1]
    return (round(float(x), 1), round(float(y), 1), round(float(z[k]), 3))


def _paint_lesion(hu: NDArray[np.float32], volume: Volume, ptv: Ellipsoid) -> None:
    """A hypodense lesion (LESION_HU, soft edge) inside the PTV shrunk by GTV_INSET_MM."""
    semi = np.maximum(np.asarray(ptv.semi_axes_mm) - GTV_INSET_MM, 3.0)
    centre = np.asarray(ptv.center_mm)
    lo = np.maximum(np.floor(volume.patient_to_index([centre - semi - 5.0])[0]).astype(int), 0)
    hi = np.minimum(np.ceil(volume.patient_to_index([centre + semi + 5.0])[0]).astype(int) + 1,
                    np.array(hu.shape[::-1]))
    if np.any(hi <= lo):
        return
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    zz, yy, xx = np.meshgrid(*(volume.origin_mm[a] + volume.spacing_mm[a] * np.arange(lo[a], hi[a])
                               for a in (2, 1, 0)), indexing="ij")
    rho = np.sqrt(((xx - ptv.center_mm[0]) / semi[0]) ** 2 + ((yy - ptv.center_mm[1]) / semi[1]) ** 2
                  + ((zz - ptv.center_mm[2]) / semi[2]) ** 2)
    edge = min(volume.spacing_mm) / float(semi.min())
    hu[box] += (LESION_HU * np.clip(0.5 - (rho - 1.0) / (2 * edge), 0.0, 1.0)).astype(np.float32)


def build_virtual_patient(ct: Volume, *, patient_position: str = "HFS", site: str = "auto", seed: int = 0,
                          name: str = "ct", source: dict[str, Any] | None = None) -> VirtualPatient:
    """The virtual patient of an axial CT in HU (see the module docstring).

    Raises
    ------
    PreconditionError
        No body in the CT, or the requested *site* is not in it (the message says what was looked for).
    """
    position = PatientPosition.parse(patient_position).value
    original = np.asarray(ct.array, np.float32)
    body = body_mask(ct)
    table_voxels = int(((original > BODY_HU) & ~body).sum())
    cleaned = ct.with_array(np.where(body, original, HU.air).astype(np.float32))
    placed = insert_couch(cleaned, body, position)
    volume, body = placed.volume, placed.body
    anatomy = segment(volume, body)
    target: TargetSite = choose_site(volume, anatomy, site)
    step = ISOCENTER_STEP_MM
    iso = tuple(round(round(v / step) * step, 6) for v in target.center_mm)
    ptv = Ellipsoid(center_mm=iso, semi_axes_mm=target.semi_axes_mm)  # type: ignore[arg-type]
    hu = np.array(volume.array, dtype=np.float32)
    if target.site == "liver":
        _paint_lesion(hu, volume, ptv)
    fiducials = _place_markers(volume.with_array(hu), ptv, np.random.default_rng(seed))
    before = np.clip(np.rint(hu), HU.ct_min, HU.ct_max)
    paint_fiducials(hu, volume, fiducials, _marker_hu(volume))
    final = volume.with_array(np.clip(np.rint(hu), HU.ct_min, HU.ct_max).astype(np.int16))
    points = tuple(_ct_centroid(final, before, f) for f in fiducials)
    structures = [_structure("BODY", "EXTERNAL", body, final),
                  Structure("PTV", "PTV", _ellipsoid_contours(ptv, _z(final)), _COLOURS["PTV"]),
                  *(_structure(n, "ORGAN", m, final) for n, m in target.organs),
                  _structure("COUCH", "SUPPORT", placed.mask, final)]
    details = {"site_how": target.how, "anatomy": list(anatomy.notes), "couch": placed.truth(),
               "scanner_table_voxels_removed": table_voxels, "source": source or {}}
    return VirtualPatient(name=name, volume=final, patient_position=position, isocenter_mm=iso,  # type: ignore[arg-type]
                          fiducials=fiducials, ptv=ptv, structures=tuple(structures),
                          reference_mark_mm=reference_mark_for(final, body, iso),  # type: ignore[arg-type]
                          site=target.site, seed=seed, details=details, marker_points_mm=points)


def _ct_centroid(ct: Volume, before: NDArray[np.floating], f: Fiducial) -> tuple[float, float, float]:
    """Centroid of the HU the marker adds to the stored CT (after partial volume and saturation at
    3071 HU): where the marker appears in this CT and in every projection rendered from it, which is
    what a planner marks. On a coarse grid it differs from the physical centre by up to a voxel."""
    reach = f.length_mm / 2 + f.diameter_mm + max(ct.spacing_mm)
    c = np.asarray(f.center_mm)
    lo = np.maximum(np.floor(ct.patient_to_index([c - reach])[0]).astype(int), 0)
    hi = np.minimum(np.ceil(ct.patient_to_index([c + reach])[0]).astype(int) + 1, np.array(ct.shape[::-1]))
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    w = np.clip(np.asarray(ct.array, np.float64)[box] - before[box], 0.0, None)
    kk, jj, ii = np.nonzero(w > 0)
    if kk.size == 0:
        return (float(c[0]), float(c[1]), float(c[2]))
    weights = w[kk, jj, ii]
    ijk = np.column_stack([ii + lo[0], jj + lo[1], kk + lo[2]]).astype(float)
    p = ct.index_to_patient_mm([(ijk * weights[:, None]).sum(axis=0) / weights.sum()])[0]
    return (float(p[0]), float(p[1]), float(p[2]))


def _z(volume: Volume) -> NDArray[np.float64]:
    return volume.origin_mm[2] + np.arange(volume.shape[0]) * volume.spacing_mm[2]


def from_phantom(ph: Phantom, *, patient_position: str | None = None) -> VirtualPatient:
    """The synthetic phantom as a :class:`VirtualPatient` (its analytic BODY and PTV contours).

    The phantom lies supine on its couch; for another *patient_position* its couch is removed and
    our CT couch put on the side gravity pulls to (:func:`~openigrt.sim.ct_couch.insert_couch`).
    Default position: the phantom's own.
    """
    position = PatientPosition.parse(patient_position or ph.patient_position).value
    volume = ph.volume
    details: dict[str, Any] = {k: v for k, v in ph.truth().items() if k in ("body", "couch_top_y_mm")}
    if position != "HFS":
        body = body_mask(volume)
        placed = insert_couch(volume.with_array(np.where(body, volume.array, HU.air).astype(np.float32)), body,
                              position)
        volume = placed.volume.with_array(np.clip(np.rint(placed.volume.array), HU.ct_min, HU.ct_max).astype(np.int16))
        details = {"body": details["body"], "couch": placed.truth()}
    z = volume.origin_mm[2] + np.arange(volume.shape[0]) * volume.spacing_mm[2]
    body_s = Structure("BODY", "EXTERNAL", tuple(ph.body_contour(float(v)) for v in z), _COLOURS["BODY"])
    ptv = Structure("PTV", "PTV", _ellipsoid_contours(ph.ptv, z), _COLOURS["PTV"])
    k = int(np.argmin(np.abs(z - (ph.isocenter_mm[2] - REFERENCE_MARK_BELOW_TARGET_MM))))
    mark = (round(float(ph.body_center_mm[0]), 1), round(float(ph.body_center_mm[1]), 1), round(float(z[k]), 3))
    return VirtualPatient(name="synthetic", volume=volume, patient_position=position,
                          isocenter_mm=ph.isocenter_mm, fiducials=ph.fiducials, ptv=ph.ptv, structures=(body_s, ptv),
                          reference_mark_mm=mark, site="phantom", seed=ph.params.seed, details=details)
