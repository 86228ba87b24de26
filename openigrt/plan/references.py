"""Checks against the reference images: PLAN-5 geometry, PLAN-6 same isocenter, PLAN-7 angles.

A *reference image* of a beam is an RT Image whose SOP Instance UID is listed in that beam's
Referenced Reference Image Sequence (300C,0042) (LOAD-2 loads them by that UID).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from openigrt.config import PlanTolerances
from openigrt.iod.enum import MatchTypeValues
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import Beam, RTPlan
from openigrt.plan import findings as T
from openigrt.plan.beams import beam_label
from openigrt.plan.findings import Finding, failure, success, warning


def image_label(image: RTImage) -> str:
    """``RT Image 'AP PROS-DRR' (…150951)`` for messages."""
    name = image.rt_image_label or image.rt_image_name or "?"
    return f"RT Image '{name}' (…{image.sop_instance_uid[-12:]})"


def angle_difference_deg(a: float, b: float) -> float:
    """Smallest absolute difference of two angles in degrees, in [0, 180]."""
    d = (a - b) % 360.0
    return min(d, 360.0 - d)


def reference_images(plan: RTPlan, images: Sequence[RTImage]) -> dict[int, list[RTImage]]:
    """For each beam number, the given RT Images listed in its Referenced Reference Image Sequence."""
    by_uid = {im.sop_instance_uid: im for im in images}
    return {b.beam_number: [by_uid[r.sop_instance_uid] for r in b.referenced_reference_images
                            if r.sop_instance_uid in by_uid] for b in plan.beams}


def is_reference_of(plan: RTPlan, image: RTImage) -> bool:
    uids = {r.sop_instance_uid for b in plan.beams for r in b.referenced_reference_images}
    return image.sop_instance_uid in uids


# --------------------------------------------------------------------------- PLAN-5
_REQUIRED = (  # (what, attribute of RTImageGeometry or RTImage, tag)
    ("Image Plane Pixel Spacing", "image_plane_pixel_spacing_mm", T.IMAGE_PLANE_PIXEL_SPACING),
    ("RT Image SID", "rt_image_sid_mm", T.RT_IMAGE_SID),
    ("Radiation Machine SAD", "radiation_machine_sad_mm", T.RADIATION_MACHINE_SAD),
    ("X-Ray Image Receptor Angle", "x_ray_image_receptor_angle_deg", T.X_RAY_IMAGE_RECEPTOR_ANGLE),
    ("Gantry Angle", "gantry_angle_deg", T.GANTRY_ANGLE),
    ("Patient Support Angle", "patient_support_angle_deg", T.PATIENT_SUPPORT_ANGLE),
)


def check_reference_image(image: RTImage) -> list[Finding]:
    """PLAN-5 for one reference RT Image: scaled, full geometry, FoR, isocenter, patient position."""
    g = image.geometry
    subject = image_label(image)
    missing = [(what, t) for what, attr, t in _REQUIRED if getattr(g, attr) is None]
    if not image.frame_of_reference_uid:
        missing.append(("Frame of Reference UID", T.FRAME_OF_REFERENCE_UID))
    if g.effective_isocenter_position_mm is None:
        missing.append(("Isocenter Position (nor private RT Image Isocenter Position)", T.ISOCENTER_POSITION))
    if g.effective_patient_position is None:
        missing.append(("Patient Position (nor private RT Image Patient Position)", T.PATIENT_POSITION))
    if missing:
        return [failure("PLAN-5", f"{subject}: cannot be used as reference image, missing "
                                  f"{', '.join(w for w, _ in missing)}", tags=tuple(t for _, t in missing),
                        subject=subject)]
    notes = []
    tags = [T.IMAGE_PLANE_PIXEL_SPACING, T.RT_IMAGE_SID, T.RADIATION_MACHINE_SAD, T.ISOCENTER_POSITION]
    if not g.rt_image_position_given:
        notes.append("RT Image Position absent: image centred on the receptor axis")
        tags.append(T.RT_IMAGE_POSITION)
    if g.isocenter_position_mm is None:
        notes.append("isocenter from private (3273,xx00)")
        tags.append(T.RT_IMAGE_ISOCENTER_POSITION)
    if g.patient_position is None:
        notes.append(f"patient position {g.effective_patient_position} from private (3273,xx01)")
        tags.append(T.RT_IMAGE_PATIENT_POSITION)
    detail = f" ({'; '.join(notes)})" if notes else ""
    return [success("PLAN-5", f"{subject}: full reference geometry{detail}", tags=tuple(tags), subject=subject)]


def check_reference_images(plan: RTPlan, images: Sequence[RTImage], beams: Sequence[Beam]) -> list[Finding]:
    """PLAN-5 for every given reference image, plus the reference images *beams* list but were not given."""
    out: list[Finding] = []
    refs = reference_images(plan, images)
    for im in images:
        if is_reference_of(plan, im):
            out.extend(check_reference_image(im))
    for b in beams:
        listed = b.referenced_reference_images
        if not listed:
            out.append(warning("PLAN-5", f"{beam_label(b)}: no Referenced Reference Image Sequence (no reference "
                                         "image to match against)", tags=(T.REFERENCED_REFERENCE_IMAGE_SEQUENCE,),
                               subject=beam_label(b)))
        elif not refs.get(b.beam_number):
            uids = ", ".join(r.sop_instance_uid for r in listed)
            out.append(warning("PLAN-5", f"{beam_label(b)}: reference image {uids} not among the inputs "
                                         "(load it, LOAD-2)", tags=(T.REFERENCED_REFERENCE_IMAGE_SEQUENCE,),
                               subject=beam_label(b)))
    return out


# --------------------------------------------------------------------------- PLAN-6
def check_same_isocenter(plan: RTPlan, images: Sequence[RTImage], tolerances: PlanTolerances, *,
                         match: MatchTypeValues) -> tuple[list[Finding], bool]:
    """PLAN-6: treatment beams and reference images share one isocenter (pairwise within tolerance).

    Returns the findings and whether there is a single isocenter (couch shifts applicable).
    Several isocenters: Warning for a 2D match ("may run, couch shifts not applicable"), Failure
    otherwise.
    """
    points: list[tuple[str, np.ndarray]] = []
    for b in plan.treatment_beams():
        if b.isocenter_position_mm is not None:
            points.append((beam_label(b), np.asarray(b.isocenter_position_mm)))
    for im in images:
        iso = im.geometry.effective_isocenter_position_mm
        if iso is not None and is_reference_of(plan, im):
            points.append((image_label(im), np.asarray(iso)))
    tol = tolerances.isocenter_mm
    tags = (T.ISOCENTER_POSITION, T.RT_IMAGE_ISOCENTER_POSITION)
    if not points:
        return [warning("PLAN-6", "no Isocenter Position in any treatment beam or reference image", tags=tags)], True
    worst_pair, worst = None, 0.0
    for (la, pa), (lb, pb) in combinations(points, 2):
        d = float(np.linalg.norm(pa - pb))
        if d > worst:
            worst_pair, worst = (la, lb), d
    if worst <= tol:
        return [success("PLAN-6", f"one isocenter {_fmt(points[0][1])} mm for {len(points)} treatment beams/reference "
                                  f"images (largest distance {worst:.3f} mm)", tags=tags, value=worst,
                        tolerance=tol)], True
    centres = _distinct(points, tol)
    text = (f"{len(centres)} isocenters: {worst_pair[0]} and {worst_pair[1]} are {worst:.2f} mm apart "  # type: ignore[index]
            f"(at most {tol:g} mm); isocenters {'; '.join(_fmt(c) for c in centres)} mm")
    if match == MatchTypeValues.MATCH_2D:
        return [warning("PLAN-6", f"{text}: a 2D match may run but couch shifts are not applicable", tags=tags,
                        value=worst, tolerance=tol)], False
    return [failure("PLAN-6", f"{text}: a {match.value} match needs a single isocenter", tags=tags, value=worst,
                    tolerance=tol)], False


def _distinct(points: list[tuple[str, np.ndarray]], tol: float) -> list[np.ndarray]:
    centres: list[np.ndarray] = []
    for _, p in points:
        if all(np.linalg.norm(p - c) > tol for c in centres):
            centres.append(p)
    return centres


def _fmt(p: np.ndarray | Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in p) + ")"


# --------------------------------------------------------------------------- PLAN-7
def check_angles(plan: RTPlan, beam: Beam, image: RTImage, tolerances: PlanTolerances) -> list[Finding]:
    """PLAN-7: the beam's gantry angle, patient support angle and patient position equal its reference image's."""
    subject = f"{beam_label(beam)} vs {image_label(image)}"
    tol = tolerances.angle_deg
    out = []
    for what, bv, iv, t in (("Gantry Angle", beam.gantry_angle_deg, image.geometry.gantry_angle_deg, T.GANTRY_ANGLE),
                            ("Patient Support Angle", beam.patient_support_angle_deg,
                             image.geometry.patient_support_angle_deg, T.PATIENT_SUPPORT_ANGLE)):
        if bv is None or iv is None:
            out.append(failure("PLAN-7", f"{subject}: {what} missing ({bv} vs {iv})", tags=(t,), subject=subject))
            continue
        d = angle_difference_deg(bv, iv)
        if d > tol:
            out.append(failure("PLAN-7", f"{subject}: {what} {bv:g}° vs {iv:g}° differ by {d:.2f}° (at most {tol:g}°)",
                               tags=(t,), value=d, tolerance=tol, subject=subject))
    plan_pos, image_pos = plan.patient_position(beam), image.geometry.effective_patient_position
    if plan_pos != image_pos:
        out.append(failure("PLAN-7", f"{subject}: Patient Position {plan_pos} vs {image_pos}", tags=(T.PATIENT_POSITION,),
                           value=f"{plan_pos} vs {image_pos}", subject=subject))
    if not out:
        out.append(success("PLAN-7", f"{subject}: gantry {beam.gantry_angle_deg:g}°, couch "
                                     f"{beam.patient_support_angle_deg:g}°, {plan_pos} agree", tags=(
                               T.GANTRY_ANGLE, T.PATIENT_SUPPORT_ANGLE, T.PATIENT_POSITION), tolerance=tol,
                           subject=subject))
    return out
