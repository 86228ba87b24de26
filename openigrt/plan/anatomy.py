"""Checks of the planning CT and structure set: PLAN-9 CT set, PLAN-10 contours, PLAN-11 markers."""

from __future__ import annotations

import numpy as np

from openigrt.config import PlanTolerances
from openigrt.iod.ct_series import CTSeriesGeometry
from openigrt.iod.enum import ContourGeometricTypeValues, MarkerSubtypeValues, RTROIInterpretedTypeValues
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet, Structure
from openigrt.plan import findings as T
from openigrt.plan.findings import Finding, failure, success, warning

_PLANAR = {ContourGeometricTypeValues.CLOSED_PLANAR, ContourGeometricTypeValues.OPEN_PLANAR}


# --------------------------------------------------------------------------- PLAN-9
def check_ct_series(series: CTSeriesGeometry | None, tolerances: PlanTolerances, *, plan: RTPlan | None = None,
                    structure_set: RTStructureSet | None = None, error: str | None = None) -> list[Finding]:
    """PLAN-9: one Frame of Reference, uniform z spacing (warning), x/y of all slices within tolerance.

    *error* is the reason the CT could not be assembled (then the check fails with it).
    """
    if error is not None:
        return [failure("PLAN-9", f"the CT series cannot be used: {error}", tags=(T.IMAGE_POSITION_PATIENT,))]
    if series is None:
        return [failure("PLAN-9", "no CT series among the inputs (marker and 3D/3D matches need the planning CT)")]
    out: list[Finding] = []
    fors = series.frame_of_reference_uids
    subject = f"CT series …{series.series_instance_uid[-12:]} ({len(series.slices)} slices)"
    if len(fors) != 1 or not fors[0]:
        out.append(failure("PLAN-9", f"{subject}: slices belong to {len(fors)} Frames of Reference {list(fors)}",
                           tags=(T.FRAME_OF_REFERENCE_UID,), value=len(fors), tolerance=1, subject=subject))
    else:
        out.extend(_same_frame(series, fors[0], plan, structure_set, subject))
    gaps = np.asarray(series.slice_gaps_mm)
    if gaps.size:
        dev = float(np.abs(gaps - np.median(gaps)).max())
        if series.uniform_spacing:
            out.append(success("PLAN-9", f"{subject}: uniform slice spacing {np.median(gaps):.3f} mm",
                               tags=(T.IMAGE_POSITION_PATIENT,), value=dev,
                               tolerance=tolerances.slice_spacing_uniformity_mm, subject=subject))
        else:
            out.append(warning("PLAN-9", f"{subject}: slice spacing varies from {gaps.min():.3f} to {gaps.max():.3f} mm; "
                                         f"resampled to {np.median(gaps):.3f} mm", tags=(T.IMAGE_POSITION_PATIENT,),
                               value=dev, tolerance=tolerances.slice_spacing_uniformity_mm, subject=subject))
    tol = tolerances.ct_xy_mm
    off = series.max_in_plane_offset_mm
    if off > tol:
        out.append(failure("PLAN-9", f"{subject}: x/y of Image Position (Patient) differ by up to {off:.3f} mm "
                                     f"between slices (at most {tol:g} mm)", tags=(T.IMAGE_POSITION_PATIENT,),
                           value=off, tolerance=tol, subject=subject))
    else:
        out.append(success("PLAN-9", f"{subject}: x/y of all slices agree within {off:.3f} mm",
                           tags=(T.IMAGE_POSITION_PATIENT,), value=off, tolerance=tol, subject=subject))
    if structure_set is not None:
        out.extend(_completeness(series, structure_set, subject))
    return out


def _same_frame(series: CTSeriesGeometry, for_uid: str, plan: RTPlan | None, rs: RTStructureSet | None,
                subject: str) -> list[Finding]:
    out = []
    others = []
    if plan is not None and plan.frame_of_reference_uid:
        others.append(("the plan", plan.frame_of_reference_uid))
    if rs is not None:
        others += [("structure set ROI " + str(r.roi_number), r.referenced_frame_of_reference_uid)
                   for r in rs.rois if r.referenced_frame_of_reference_uid]
    wrong = [(who, uid) for who, uid in others if uid != for_uid]
    if wrong:
        who, uid = wrong[0]
        out.append(failure("PLAN-9", f"{subject}: Frame of Reference {for_uid} differs from {who}'s {uid}",
                           tags=(T.FRAME_OF_REFERENCE_UID,), subject=subject))
    else:
        out.append(success("PLAN-9", f"{subject}: one Frame of Reference {for_uid}", tags=(T.FRAME_OF_REFERENCE_UID,),
                           subject=subject))
    return out


def _completeness(series: CTSeriesGeometry, rs: RTStructureSet, subject: str) -> list[Finding]:
    listed = set(rs.contour_image_uids())
    if not listed:
        return []
    missing = listed - set(series.sop_instance_uids)
    if missing:
        return [warning("PLAN-9", f"{subject}: {len(missing)} of the {len(listed)} CT slices listed in the structure "
                                  "set's Contour Image Sequence are not among the inputs", tags=(T.CONTOUR_IMAGE_SEQUENCE,),
                        value=len(missing), tolerance=0, subject=subject)]
    return []


# --------------------------------------------------------------------------- PLAN-10
def structure_problem(structure: Structure, tolerances: PlanTolerances) -> str | None:
    """Why PLAN-10 skips *structure* (a non-planar contour, mixed open/closed), or None when usable."""
    contours = [c for c in structure.contours if c.contour_geometric_type != ContourGeometricTypeValues.POINT]
    kinds = {c.contour_geometric_type for c in contours}
    for c in contours:
        if c.contour_geometric_type not in _PLANAR:
            return f"contour {c.contour_number} is {c.contour_geometric_type}, not planar"
        if len(c.points_mm):
            spread = float(np.ptp(c.points_mm[:, 2]))
            if spread > tolerances.contour_planarity_mm:
                return (f"contour {c.contour_number} is not in one transverse plane (z varies by {spread:.6g} mm, "
                        f"at most {tolerances.contour_planarity_mm:g})")
    if len(kinds) > 1:
        return "mixes CLOSED_PLANAR and OPEN_PLANAR contours"
    return None


def check_structure_set(rs: RTStructureSet, tolerances: PlanTolerances) -> tuple[list[Finding], set[int]]:
    """PLAN-10: skip (with a warning) every structure with a non-planar contour or mixed contour types.

    Returns the findings and the ROI Numbers skipped.
    """
    out: list[Finding] = []
    skipped: set[int] = set()
    checked = 0
    for s in rs.structures():
        if not any(c.contour_geometric_type != ContourGeometricTypeValues.POINT for c in s.contours):
            continue
        checked += 1
        why = structure_problem(s, tolerances)
        if why:
            skipped.add(s.roi_number)
            out.append(warning("PLAN-10", f"structure {s.roi_number} '{s.name}' skipped: {why}",
                               tags=(T.CONTOUR_GEOMETRIC_TYPE, T.CONTOUR_DATA), tolerance=tolerances.contour_planarity_mm,
                               subject=f"structure '{s.name}'"))
    out.insert(0, success("PLAN-10", f"{checked - len(skipped)} of {checked} contoured structures usable"
                                     + (f", {len(skipped)} skipped" if skipped else ""),
                          tags=(T.CONTOUR_GEOMETRIC_TYPE, T.CONTOUR_DATA)))
    return out, skipped


# --------------------------------------------------------------------------- PLAN-11
def marker_problem(structure: Structure) -> str | None:
    """Why *structure* is not a PLAN-11 marker, or None when it is one."""
    problems = []
    if structure.interpreted_type != RTROIInterpretedTypeValues.MARKER:
        problems.append(f"RT ROI Interpreted Type is {structure.interpreted_type or 'empty'}, not MARKER")
    if structure.marker_subtype != MarkerSubtypeValues.MARKER.value:
        problems.append(f"private Marker Subtype is {structure.marker_subtype or 'absent'}, not MARKER")
    if structure.point_mm() is None:
        cs = structure.contours
        problems.append(f"needs one POINT contour with 1 point, has {len(cs)} contours"
                        + (f" ({', '.join(str(c.contour_geometric_type) for c in cs)})" if cs else ""))
    return "; ".join(problems) or None


def check_markers(plan: RTPlan, rs: RTStructureSet | None) -> tuple[list[Finding], list[Structure]]:
    """PLAN-11: the markers of the structure set referenced by the plan. Returns findings and the markers."""
    tags = (T.RT_ROI_INTERPRETED_TYPE, T.MARKER_SUBTYPE, T.CONTOUR_GEOMETRIC_TYPE, T.NUMBER_OF_CONTOUR_POINTS)
    if rs is None:
        return [failure("PLAN-11", "no RT Structure Set among the inputs (the marker match needs the plan's markers)",
                        tags=(T.REFERENCED_STRUCTURE_SET_SEQUENCE,))], []
    referenced = {r.sop_instance_uid for r in plan.referenced_structure_sets}
    if rs.sop_instance_uid not in referenced:
        return [failure("PLAN-11", f"structure set {rs.sop_instance_uid} is not the one the plan references "
                                   f"({', '.join(sorted(referenced)) or 'none'})",
                        tags=(T.REFERENCED_STRUCTURE_SET_SEQUENCE,))], []
    out: list[Finding] = []
    markers = []
    for s in rs.structures():
        if s.interpreted_type != RTROIInterpretedTypeValues.MARKER and s.marker_subtype is None:
            continue
        why = marker_problem(s)
        if why:
            out.append(warning("PLAN-11", f"structure {s.roi_number} '{s.name}' is not a usable marker: {why}",
                               tags=tags, subject=f"structure '{s.name}'"))
        else:
            markers.append(s)
    if markers:
        listing = ", ".join(f"'{m.name}' ({', '.join(f'{v:.1f}' for v in m.point_mm())})" for m in markers)  # type: ignore[union-attr]
        out.insert(0, success("PLAN-11", f"{len(markers)} marker(s): {listing} mm", tags=tags, value=len(markers)))
    else:
        out.insert(0, failure("PLAN-11", "no usable marker structure (POINT contour of 1 point, RT ROI Interpreted Type "
                                         "MARKER, private Marker Subtype MARKER)", tags=tags, value=0, tolerance=1))
    return out, markers
