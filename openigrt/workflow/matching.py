"""Matching on DICOM objects (SPEC MATCH-1 … MATCH-7, IOD-1, IOD-3, IOD-5).

The glue between the files a user or the TMS provides and the algorithms of :mod:`openigrt.match`:
read the references and the acquired images, resolve the isocenters and the patient position,
run the match, compute the couch correction (:func:`openigrt.geometry.couch.couch_correction`),
apply a user adjustment (MATCH-7), build the objects to store (REG, marker structure set, RT Images
with marker curves) and the review picture. Used by ``openigrt match`` and by the fraction
workflow (``openigrt demo`` / ``openigrt session``), so both give the same answer.

Isocenter precedence for the couch correction (MATCH-6):

* planned isocenter (reference frame): explicit value > the plan (first treatment beam, else the
  first beam, Isocenter Position) > reference RT Images' Isocenter Position (private 3273 first)
  > the INITLASERISO point;
* INITLASERISO (verification frame): explicit value > the verification's isocenter structure set
  (an RT Structure Set with an INITLASERISO POINT among the verification files) > acquired RT
  Images' Isocenter Position > the planned isocenter;
* patient position: the plan's patient setup > reference images' Patient Position > ``HFS``.

Couch offset (MATCH-6). The verification images have their own patient coordinates, in which the
machine isocenter is INITLASERISO ``q``, usually not the planned isocenter ``p`` (the lasers were on
the reference marks and the couch was moved by the plan's offset; another imaging system's origin).
A registration mapping ``p`` onto ``q`` is a zero correction: every match therefore starts from
``T0 = translate(q − p)`` (:func:`zero_correction`). The projection matches run with the acquired
geometries re-expressed in the reference frame aligned by ``T0`` (isocenter ``p``,
:func:`in_reference_frame`) and their result is composed with ``T0``; the 3D/3D match starts from
``T0``. Every stored transform maps reference → verification coordinates, offset included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.errors import DicomInputError, PreconditionError, RegistrationError
from openigrt.geometry.couch import couch_correction
from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.projection import ProjectionGeometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.iod.ct_series import CTSeries, read_ct_series
from openigrt.iod.dataset_io import DicomFile, read_paths
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.match import MatchResult

XYZ = tuple[float, float, float]

#: Registration Sub Type (3275,xx00) per match type (IOD-1).
SUB_TYPES = {"2d": "2D", "2d2d": "2D2D", "3d3d": "3D3D", "marker": "MARKER"}
#: default 3D/3D region of interest: half sizes (mm) of the box around the planned isocenter, and the
#: smallest box around a target structure (grown by TARGET_ROI_MARGIN_MM). 180 × 180 × 140 mm: on
#: FDK CBCTs (low soft-tissue contrast, streaks, scatter) a 120 × 120 × 100 mm box around a pelvic
#: or liver target holds too little structure (TRE 0.25-0.6 mm, rotations up to 0.57° on the
#: benchmark's real-anatomy cases); this box takes in the bones and body outline around the target
#: (0.07-0.2 mm, ≤ 0.11°, the held-out liver patient included; benchmarks/README.md, issue 12)
DEFAULT_ROI_HALF_MM = (90.0, 90.0, 70.0)
TARGET_ROI_MARGIN_MM = 25.0
#: RT ROI Interpreted Types taken as the target for the default region of interest, in this order
TARGET_TYPES = ("PTV", "CTV", "GTV")
ROTATION_KEYS = ("rtn_deg", "pitch_deg", "roll_deg")


# ----------------------------------------------------------------------------- reading inputs
def read_dicom(paths: Sequence[Path]) -> list[DicomFile]:
    """Read files/directories; raise DicomInputError when nothing readable is there."""
    files, problems = read_paths(paths)
    if not files:
        raise DicomInputError(f"no readable DICOM file in {', '.join(str(p) for p in paths)}"
                              + (f": {problems[0]}" if problems else ""))
    return files


def _modality(f: DicomFile) -> str:
    return str(f.dataset.get("Modality", "")).upper()


def read_ct(paths: Sequence[Path]) -> tuple[CTSeries, list[Dataset]]:
    """The CT series among *paths* (files or directories) and its datasets."""
    files = [f for f in read_dicom(paths) if _modality(f) == "CT"]
    if not files:
        raise DicomInputError(f"no CT image in {', '.join(str(p) for p in paths)}")
    return read_ct_series(files), [f.dataset for f in files]


def _read_ct(paths: Sequence[Path], ct_cache: Any) -> tuple[CTSeries, list[Dataset]]:
    """:func:`read_ct`, or the session's decoded series (:class:`openigrt.workflow.session_cache.CtCache`)."""
    return read_ct(paths) if ct_cache is None else ct_cache.read(paths)


def structure_sets(files: Sequence[DicomFile]) -> list[RTStructureSet]:
    return [RTStructureSet.from_dataset(f) for f in files if _modality(f) == "RTSTRUCT"]


def points_of_type(rs: RTStructureSet, interpreted_type: str) -> list[tuple[str, XYZ]]:
    """POINT ROIs of *rs* with the given RT ROI Interpreted Type: (name, position mm)."""
    out = []
    for s in rs.structures():
        kind = str(getattr(s.interpreted_type, "value", s.interpreted_type) or "").upper()
        p = s.point_mm()
        if kind == interpreted_type and p is not None:
            out.append((s.name, (float(p[0]), float(p[1]), float(p[2]))))
    return out


@dataclass(frozen=True, eq=False)
class Projection:
    """An RT Image ready for matching: reader view, geometry, dataset and pixels (rows, cols)."""

    image: RTImage
    geometry: ProjectionGeometry
    dataset: Dataset
    pixels: NDArray[np.floating]


def read_projections(paths: Sequence[Path]) -> list[Projection]:
    """Each RT Image file as a :class:`Projection` (geometry from its attributes, PLAN-5)."""
    out = []
    for f in read_dicom(paths):
        img = RTImage.from_dataset(f)
        g = img.geometry
        try:
            geom = ProjectionGeometry.from_rt_image_attributes(
                f.dataset, isocenter_mm=g.effective_isocenter_position_mm, patient_position=g.effective_patient_position)
        except ValueError as exc:
            raise DicomInputError(f"{f.source}: {exc}") from None
        if img.pixels is None:
            raise DicomInputError(f"{f.source}: RT Image without pixel data")
        pix = img.pixels if img.pixels.ndim == 2 else img.pixels[0]
        out.append(Projection(img, geom, f.dataset, pix))
    return out


# ----------------------------------------------------------------------------- isocenters (MATCH-6)
@dataclass(frozen=True)
class MatchContext:
    """Where the couch correction is computed from (see the module docstring for precedence)."""

    planned_isocenter_mm: XYZ | None
    initlaseriso_mm: XYZ | None
    patient_position: str


def plan_isocenter(plan: RTPlan) -> tuple[XYZ, str | None]:
    """Isocenter of the first treatment beam (else the first beam) and its patient position."""
    beams = sorted(plan.beams, key=lambda b: b.is_setup)
    for b in beams:
        if b.isocenter_position_mm is not None:
            return b.isocenter_position_mm, plan.patient_position(b)
    raise PreconditionError(f"{plan.source}: no beam of the plan has an Isocenter Position (300A,012C)")


def zero_correction(ctx: MatchContext) -> RigidTransform:
    """``translate(q − p)``: the registration whose couch correction is zero (planned isocenter → INITLASERISO)."""
    if ctx.planned_isocenter_mm is None or ctx.initlaseriso_mm is None:
        return RigidTransform.identity()
    return RigidTransform.from_parameters(
        translation_mm=np.asarray(ctx.initlaseriso_mm, float) - np.asarray(ctx.planned_isocenter_mm, float))


def in_reference_frame(view: Projection, ctx: MatchContext) -> Projection:
    """The acquired view with its geometry in the reference frame aligned by :func:`zero_correction`
    (isocenter = the planned isocenter): ``g'.project(x − (q − p)) == g.project(x)``."""
    if ctx.planned_isocenter_mm is None:
        return view
    return replace(view, geometry=replace(view.geometry, isocenter_mm=tuple(float(v) for v in ctx.planned_isocenter_mm)))


def _with_offset(result: MatchResult, zero: RigidTransform) -> MatchResult:
    """A result found in the aligned reference frame, expressed in verification coordinates."""
    t = zero.translation_mm
    markers = tuple(replace(m, found_mm=None if m.found_mm is None else tuple(float(a + b) for a, b in zip(m.found_mm, t)))
                    for m in result.markers)
    return replace(result, transform=zero.compose(result.transform), markers=markers)


def resolve_context(*, isocenter: XYZ | None = None, initlaseriso: XYZ | None = None, plan: RTPlan | None = None,
                    reference_iso: XYZ | None = None, verification_iso: XYZ | None = None,
                    reference_position: str | None = None) -> MatchContext:
    plan_iso, plan_pos = plan_isocenter(plan) if plan is not None else (None, None)
    planned = isocenter or plan_iso or reference_iso
    laser = initlaseriso or verification_iso
    planned = planned or laser
    laser = laser or planned
    return MatchContext(planned, laser, (plan_pos or reference_position or "HFS").upper())


# ----------------------------------------------------------------------------- outcome
@dataclass(frozen=True, eq=False)
class MatchOutcome:
    """A match on DICOM inputs: the algorithm's result plus what is needed to report and store it.

    ``transform`` is the accepted registration (the result's, or the user-adjusted one);
    ``adjustment_mm`` the (lat, lng, vrt) table-top delta the user added (MATCH-7).
    """

    match_type: str
    result: MatchResult
    context: MatchContext
    transform: RigidTransform
    reference_datasets: tuple[Dataset, ...]
    verification_datasets: tuple[Dataset, ...]
    reference_volume: Volume | None = None
    verification_volume: Volume | None = None
    references: tuple[Projection, ...] = ()
    acquired: tuple[Projection, ...] = ()
    marker_names: tuple[str, ...] = ()
    planned_markers_mm: NDArray[np.float64] | None = None
    adjustment_mm: XYZ | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def couch(self) -> dict[str, float] | None:
        """The couch correction of :attr:`transform` (None when no isocenter is known)."""
        ctx = self.context
        if ctx.planned_isocenter_mm is None or ctx.initlaseriso_mm is None:
            return None
        c = couch_correction(self.transform, planned_isocenter_mm=ctx.planned_isocenter_mm,
                             initlaseriso_mm=ctx.initlaseriso_mm, patient_position=ctx.patient_position,
                             six_dof=self.result.dof == 6).as_dict()
        if self.result.dof != 6:
            for k in ROTATION_KEYS:
                c.pop(k, None)
        return c

    def report(self) -> dict[str, Any]:
        """The ``--json`` document (README "Matching")."""
        out = self.result.as_dict()
        out["matrix"] = self.transform.as_list()
        out["couch"] = self.couch()
        out["planned_isocenter_mm"] = _list(self.context.planned_isocenter_mm)
        out["initlaseriso_mm"] = _list(self.context.initlaseriso_mm)
        out["patient_position"] = self.context.patient_position
        if self.adjustment_mm is not None:
            out["adjustment_mm"] = dict(zip(("lat_mm", "lng_mm", "vrt_mm"), self.adjustment_mm))
            out["unadjusted_matrix"] = self.result.transform.as_list()
        out.update(self.extra)
        return out

    def adjusted(self, lat_mm: float, lng_mm: float, vrt_mm: float) -> MatchOutcome:
        """The same match with the couch correction changed by (lat, lng, vrt) table-top mm (MATCH-7).

        The accepted registration becomes ``T' = translate(-Aᵀ d) ∘ T`` with ``A`` the patient →
        table-top axes of the patient position and ``d`` the delta, so that
        ``couch(T') = couch(T) + d`` (translation part).
        """
        d = np.array([lat_mm, lng_mm, vrt_mm], dtype=float)
        a = patient_axes_in_table_top(self.context.patient_position)
        shift = RigidTransform.from_parameters(translation_mm=-(a.T @ d))
        base = self.result.transform
        return replace(self, transform=shift.compose(base), adjustment_mm=(float(d[0]), float(d[1]), float(d[2])))


def _list(v: XYZ | None) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


# ----------------------------------------------------------------------------- the four matches
def structure_mask(rs: RTStructureSet, name: str, volume: Volume, margin_mm: float) -> NDArray[np.bool_]:
    """Voxels of *volume* inside the CLOSED_PLANAR contours of ROI *name*, grown by *margin_mm*."""
    from matplotlib.path import Path as MplPath
    from scipy import ndimage

    numbers = [r.roi_number for r in rs.rois if (r.roi_name or "").upper() == name.upper()]
    contours = [c for rc in rs.roi_contours if rc.referenced_roi_number in numbers for c in rc.contours
                if len(c.points_mm) >= 3]
    if not contours:
        raise PreconditionError(f"{rs.source}: no closed contour for ROI {name!r}")
    nz, ny, nx = volume.shape
    mask = np.zeros(volume.shape, bool)
    jj, ii = np.mgrid[0:ny, 0:nx]
    for c in contours:
        ijk = volume.patient_to_index(c.points_mm)
        k = int(round(float(np.median(ijk[:, 2]))))
        if 0 <= k < nz:
            inside = MplPath(ijk[:, :2]).contains_points(np.column_stack([ii.ravel(), jj.ravel()]))
            mask[k] |= inside.reshape(ny, nx)
    if margin_mm > 0:
        dist = ndimage.distance_transform_edt(~mask, sampling=volume.spacing_mm[::-1])
        mask = dist <= margin_mm
    return mask


def target_structure(rs: RTStructureSet) -> Any:
    """The structure taken as the target: the first (by ROI Number) whose RT ROI Interpreted Type is
    PTV, else CTV, else GTV, with closed contours; None when there is none."""
    structures = sorted(rs.structures(), key=lambda st: st.roi_number)
    for kind in TARGET_TYPES:
        for st in structures:
            t = str(getattr(st.interpreted_type, "value", st.interpreted_type) or "").upper()
            if t == kind and any(len(c.points_mm) >= 3 for c in st.contours):
                return st
    return None


@dataclass(frozen=True)
class RoiChoice:
    """The 3D/3D region of interest used and where it came from (reported with the match)."""

    source: str  # "target <name>", "isocenter", "--roi", "structure <name>", "whole volume"
    center_mm: XYZ | None
    half_size_mm: XYZ | None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "center_mm": _list(self.center_mm), "half_size_mm": _list(self.half_size_mm)}


def default_roi(*, planned_isocenter_mm: XYZ | None, structure_set: RTStructureSet | None) -> RoiChoice:
    """The default 3D/3D region of interest (used whenever a plan or an isocenter is known).

    * a target structure (:func:`target_structure`): the box around its contours grown by
      :data:`TARGET_ROI_MARGIN_MM`, at least :data:`DEFAULT_ROI_HALF_MM`, centred on the target;
    * else the planned isocenter: a box of :data:`DEFAULT_ROI_HALF_MM` around it;
    * else the whole volume.

    In every case the match samples only the patient: the couch, other objects and the CBCT's
    outside-FOV voxels are excluded by the algorithm (:mod:`openigrt.match.region`).
    """
    target = target_structure(structure_set) if structure_set is not None else None
    if target is not None:
        pts = np.vstack([c.points_mm for c in target.contours if len(c.points_mm)])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        half = np.maximum((hi - lo) / 2 + TARGET_ROI_MARGIN_MM, DEFAULT_ROI_HALF_MM)
        return RoiChoice(f"target {target.name}", _xyz((lo + hi) / 2), _xyz(half))
    if planned_isocenter_mm is not None:
        return RoiChoice("isocenter", planned_isocenter_mm, DEFAULT_ROI_HALF_MM)
    return RoiChoice("whole volume", None, None)


def _xyz(v: Any) -> XYZ:
    return (float(v[0]), float(v[1]), float(v[2]))


def run_3d3d(*, reference_ct: Sequence[Path], verification: Sequence[Path], plan: RTPlan | None = None,
             dof: int = 6, roi_half_mm: XYZ | None = None, isocenter: XYZ | None = None,
             initlaseriso: XYZ | None = None, verification_structure_set: Path | None = None,
             structure_set: Path | None = None, roi_structure: str | None = None,
             roi_margin_mm: float = 10.0, whole_volume: bool = False, ct_cache: Any = None) -> MatchOutcome:
    """3D/3D: verification CBCT (+ its isocenter structure set) vs planning CT (MATCH-3).

    The region of interest is a box of half sizes *roi_half_mm* around the planned isocenter, or
    the structure *roi_structure* of *structure_set* grown by *roi_margin_mm*; without either, the
    default of :func:`default_roi` (target of *structure_set*, else the planned isocenter), unless
    *whole_volume*. A match that did not converge or sits on a metric plateau is returned with
    ``result.success`` False (the caller must not apply it; :func:`require_success`).
    *ct_cache* (a :class:`~openigrt.workflow.session_cache.CtCache`) supplies series the session
    has already decoded, as for the other matches.
    """
    from openigrt.match import BoxROI, register_3d3d

    if roi_structure is not None and structure_set is None:
        raise PreconditionError("a structure region of interest needs the planning structure set")
    ref, ref_ds = _read_ct(reference_ct, ct_cache)
    ver, ver_ds = _read_ct(verification, ct_cache)
    laser = None
    iso_sources = [verification_structure_set] if verification_structure_set else list(verification)
    for rs in structure_sets(read_dicom(iso_sources)):
        pts = points_of_type(rs, "INITLASERISO")
        if pts:
            laser = pts[0][1]
            break
    ctx = resolve_context(isocenter=isocenter, initlaseriso=initlaseriso, plan=plan, verification_iso=laser,
                          reference_position=ref.patient_position)
    rs = structure_sets(read_dicom([structure_set]))[0] if structure_set is not None else None
    mask = None
    if roi_half_mm is not None:
        if ctx.planned_isocenter_mm is None:
            raise PreconditionError("a region of interest needs a planned isocenter (plan or --isocenter)")
        choice = RoiChoice("--roi", ctx.planned_isocenter_mm, roi_half_mm)
    elif roi_structure is not None and rs is not None:
        mask = structure_mask(rs, roi_structure, ref.volume, roi_margin_mm)
        choice = RoiChoice(f"structure {roi_structure} + {roi_margin_mm:g} mm", None, None)
    elif whole_volume:
        choice = RoiChoice("whole volume", None, None)
    else:
        choice = default_roi(planned_isocenter_mm=ctx.planned_isocenter_mm, structure_set=rs)
    box = None if choice.center_mm is None or choice.half_size_mm is None else \
        BoxROI(center_mm=choice.center_mm, half_size_mm=choice.half_size_mm)
    result = register_3d3d(ref.volume, ver.volume, dof=dof, roi=box, reference_roi_mask=mask,
                           initial=zero_correction(ctx))
    return MatchOutcome("3d3d", result, ctx, result.transform, tuple(ref_ds), tuple(ver_ds),
                        reference_volume=ref.volume, verification_volume=ver.volume,
                        extra={"roi": choice.as_dict()})


def require_success(outcome: MatchOutcome) -> MatchOutcome:
    """*outcome* if its match succeeded, else RegistrationError with the reason (not converged, plateau)."""
    if not outcome.result.success:
        raise RegistrationError(outcome.result.failure_message())
    return outcome


#: the 2D/3D optimiser's CT is block-averaged in-plane to at least this pixel size (mm)
RENDER_PIXEL_MM = 1.5


def half_resolution_renderer(volume: Volume) -> Any:
    """DRR renderer of the CT block-averaged 2× in-plane while its pixels are finer than
    :data:`RENDER_PIXEL_MM` (the 2D/3D optimiser's working model: DRRs at ~1-2 mm pixels cost a
    quarter; a coarser CT, e.g. 3 mm, is used as it is: halving it again biased the matches)."""
    from openigrt.sim.drr import DrrRenderer

    sx, sy, sz = volume.spacing_mm
    if min(sx, sy) >= RENDER_PIXEL_MM:
        return DrrRenderer(volume)
    a = volume.array.astype(np.float32)
    nz, ny, nx = a.shape
    a = a[:, : ny // 2 * 2, : nx // 2 * 2].reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4))
    d = np.asarray(volume.direction)
    origin = np.asarray(volume.origin_mm) + d @ np.array([sx / 2, sy / 2, 0.0])
    return DrrRenderer(Volume(a, tuple(origin), (2 * sx, 2 * sy, sz), d))


def _projection_context(refs: Sequence[Projection], acqs: Sequence[Projection], plan: RTPlan | None,
                        isocenter: XYZ | None, initlaseriso: XYZ | None) -> MatchContext:
    return resolve_context(isocenter=isocenter, initlaseriso=initlaseriso, plan=plan,
                           reference_iso=refs[0].image.geometry.effective_isocenter_position_mm if refs else None,
                           verification_iso=acqs[0].image.geometry.effective_isocenter_position_mm,
                           reference_position=refs[0].image.geometry.effective_patient_position if refs else None)


def run_2d2d(*, references: Sequence[Path], acquired: Sequence[Path], ct: Sequence[Path] = (),
             plan: RTPlan | None = None, dof: int = 3, isocenter: XYZ | None = None,
             initlaseriso: XYZ | None = None, ct_cache: Any = None) -> MatchOutcome:
    """2D/2D: two projections ~90° apart vs their references (MATCH-2); 6 DoF needs the CT."""
    from openigrt.match import match_2d2d, match_2d3d

    if dof == 6 and not ct:
        raise PreconditionError("a 6-DoF 2D/2D match renders DRRs from the planning CT: give the CT")
    refs, acqs = read_projections(references), read_projections(acquired)
    if len(refs) != 2 or len(acqs) != 2:
        raise PreconditionError(f"2D/2D needs 2 reference and 2 acquired RT Images, got {len(refs)} and {len(acqs)}")
    ctx = _projection_context(refs, acqs, plan, isocenter, initlaseriso)
    iso = ctx.planned_isocenter_mm or (0.0, 0.0, 0.0)
    volume = _read_ct(ct, ct_cache)[0].volume if ct else None
    renderer = half_resolution_renderer(volume) if volume is not None else None
    ref_pix, acq_pix = [r.pixels for r in refs], [a.pixels for a in acqs]
    geoms = [in_reference_frame(a, ctx).geometry for a in acqs]
    if dof == 6:
        result = match_2d3d(acq_pix, geoms, renderer, isocenter_mm=iso, references=ref_pix)
    else:
        result = match_2d2d(ref_pix, acq_pix, geoms, isocenter_mm=iso, renderer=renderer)
    result = _with_offset(result, zero_correction(ctx))
    return MatchOutcome("2d2d", result, ctx, result.transform, tuple(r.dataset for r in refs),
                        tuple(a.dataset for a in acqs), reference_volume=volume, references=tuple(refs),
                        acquired=tuple(acqs))


def run_2d(*, reference: Path, acquired: Path, plan: RTPlan | None = None, rotation: bool = True,
           isocenter: XYZ | None = None, initlaseriso: XYZ | None = None) -> MatchOutcome:
    """Simple 2D: one projection vs its reference → in-plane shift/rotation (MATCH-1)."""
    from openigrt.match import match_2d

    (ref,), (acq,) = read_projections([reference]), read_projections([acquired])
    ctx = _projection_context([ref], [acq], plan, isocenter, initlaseriso)
    result = match_2d(ref.pixels, acq.pixels, in_reference_frame(acq, ctx).geometry,
                      isocenter_mm=ctx.planned_isocenter_mm or (0.0, 0.0, 0.0), rotation=rotation)
    result = _with_offset(result, zero_correction(ctx))
    return MatchOutcome("2d", result, ctx, result.transform, (ref.dataset,), (acq.dataset,), references=(ref,),
                        acquired=(acq,))


def planned_markers(*, ct: CTSeries, structure_set: Path | None) -> tuple[list[str], NDArray[np.float64]]:
    """Planned marker positions: the structure set's MARKER POINT ROIs, else detected in the CT (MATCH-4)."""
    from openigrt.match import detect_markers

    if structure_set is not None:
        pts = [p for rs in structure_sets(read_dicom([structure_set])) for p in points_of_type(rs, "MARKER")]
        if not pts:
            raise PreconditionError(f"{structure_set}: no MARKER POINT ROI (PLAN-11)")
        return [p[0] for p in pts], np.array([p[1] for p in pts])
    found = detect_markers(ct.volume)
    if not found:
        raise PreconditionError("no marker detected in the planning CT (MATCH-4)")
    return [f"Marker{i + 1}" for i in range(len(found))], np.array([m.position_mm for m in found])


def run_marker(*, ct: Sequence[Path], acquired: Sequence[Path], structure_set: Path | None = None,
               plan: RTPlan | None = None, isocenter: XYZ | None = None,
               initlaseriso: XYZ | None = None, ct_cache: Any = None) -> MatchOutcome:
    """Marker match: markers found in two projections → 3D shift with per-marker residuals (MATCH-5)."""
    from openigrt.match import match_markers, split_markers
    from openigrt.sim.drr import DrrRenderer

    series, ct_ds = _read_ct(ct, ct_cache)
    names, planned = planned_markers(ct=series, structure_set=structure_set)
    acqs = read_projections(acquired)
    ctx = resolve_context(isocenter=isocenter, initlaseriso=initlaseriso, plan=plan,
                          verification_iso=acqs[0].image.geometry.effective_isocenter_position_mm,
                          reference_position=series.patient_position)
    geoms = [in_reference_frame(a, ctx).geometry for a in acqs]
    marker_vol, anatomy_vol = split_markers(series.volume)
    markers_drr, anatomy_drr = DrrRenderer(marker_vol), DrrRenderer(anatomy_vol)  # each volume prepared once
    templates = [markers_drr.render(g) for g in geoms]
    anatomy = [anatomy_drr.render(g) for g in geoms]
    result = match_markers(planned, [a.pixels for a in acqs], geoms, names=names, templates=templates,
                           anatomy=anatomy)
    result = _with_offset(result, zero_correction(ctx))
    return MatchOutcome("marker", result, ctx, result.transform, tuple(ct_ds), tuple(a.dataset for a in acqs),
                        reference_volume=series.volume, acquired=tuple(acqs), marker_names=tuple(names),
                        planned_markers_mm=planned)


# ----------------------------------------------------------------------------- objects to store
def registration(outcome: MatchOutcome, *, settings: Settings) -> Dataset:
    """The Spatial Registration of the accepted transform (IOD-1)."""
    from openigrt.iod.build.spatial_registration import build_spatial_registration

    sub = SUB_TYPES[outcome.match_type]
    note = "" if outcome.adjustment_mm is None else " (adjusted by the user)"
    return build_spatial_registration(
        reference_images=list(outcome.reference_datasets), verification_images=list(outcome.verification_datasets),
        transform=outcome.transform, registration_sub_type=sub, settings=settings, content_label=f"MATCH_{sub}",
        content_description=f"OpenIGRT {outcome.match_type} match{note}")


def marker_images(outcome: MatchOutcome) -> list[Dataset]:
    """Copies of the acquired RT Images with one curve per found marker (IOD-5)."""
    import copy

    from openigrt.iod.build.curves import MarkerPixel, add_marker_curves

    out = []
    for view, acq in enumerate(outcome.acquired):
        pixels = [MarkerPixel(column=p[0], row=p[1], name=m.name)
                  for m in outcome.result.markers if (p := m.pixel_per_view[view]) is not None]
        if pixels:
            ds = copy.deepcopy(acq.dataset)
            add_marker_curves(ds, pixels)
            out.append(ds)
    return out


def marker_structure_set(outcome: MatchOutcome, *, original_structure_set: Dataset, settings: Settings) -> Dataset:
    """The planned markers as a new structure set referencing the original one (IOD-3)."""
    from openigrt.iod.build.structure_set import MarkerPoint, build_marker_structure_set

    if outcome.planned_markers_mm is None:
        raise PreconditionError("not a marker match: no marker positions")
    markers = [MarkerPoint(name, tuple(float(v) for v in p))  # type: ignore[arg-type]
               for name, p in zip(outcome.marker_names, outcome.planned_markers_mm)]
    return build_marker_structure_set(planning_ct=list(outcome.reference_datasets),
                                      original_structure_set=original_structure_set, markers=markers,
                                      settings=settings)
