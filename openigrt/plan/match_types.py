"""PLAN-8: which imaging beams a match type can use, and whether the match is possible.

* 2D: at least one valid kV or MV setup beam, or a treatment beam configured for MV imaging,
  with a usable reference image (PLAN-5, PLAN-7).
* 2D/2D and marker match: two valid kV/MV setup beams whose gantry (kV source) angles differ by
  90.0° (within ``orthogonality_deg``); for 2D/2D both need a usable reference image.
* 3D/3D: a valid CBCT setup beam (STATIC, ``KV\\CBCT``, PLAN-3 rules).

A setup beam without Imaging Device-Specific Acquisition Parameters is a *manual* candidate
(PLAN-2: "imaging can still be started manually"): it makes the match possible with a Warning
— this is how the Eclipse 8.1 plan's "CBCT" setup field (no Planned Verification Image
Sequence) allows a 3D/3D match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import combinations

from openigrt.config import PlanTolerances
from openigrt.iod.enum import BeamTypeValues, MatchTypeValues
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import Beam, ImagingKindValues, RTPlan
from openigrt.plan import findings as T
from openigrt.plan.beams import beam_label, kv_beam_violations
from openigrt.plan.findings import Finding, FindingStatusValues, failure, success, warning
from openigrt.plan.references import angle_difference_deg, check_angles, check_reference_image, reference_images

#: PLAN-8: the two beams of a 2D/2D or marker match are this far apart (degrees).
ORTHOGONAL_DEG = 90.0


class CandidateKindValues(str, Enum):
    """How a beam could image for a match."""

    KV = "kV"
    MV = "MV"
    CBCT = "CBCT"
    MANUAL = "manual"
    MV_TREATMENT = "MV on treatment field"


@dataclass(frozen=True)
class Candidate:
    """A beam that could image for the match, whether it can, and why not."""

    beam: Beam
    kind: CandidateKindValues
    problems: tuple[str, ...] = ()
    reference: RTImage | None = None

    @property
    def usable(self) -> bool:
        return not self.problems

    def label(self) -> str:
        return f"{beam_label(self.beam)} ({self.kind.value}, {self.beam.gantry_angle_deg:g}°)"


def _kind(beam: Beam) -> CandidateKindValues | None:
    im = beam.imaging().kind
    if not beam.is_setup:
        return CandidateKindValues.MV_TREATMENT if im == ImagingKindValues.MV_PORTAL else None
    return {ImagingKindValues.KV_IMAGE: CandidateKindValues.KV, ImagingKindValues.CBCT: CandidateKindValues.CBCT,
            ImagingKindValues.MV_PORTAL: CandidateKindValues.MV,
            ImagingKindValues.NONE: CandidateKindValues.MANUAL}.get(im)


def candidates(plan: RTPlan, images: Sequence[RTImage], tolerances: PlanTolerances, *,
               need_reference: bool) -> tuple[list[Candidate], list[Finding]]:
    """Every imaging candidate of the plan, with the PLAN-5/PLAN-7 findings of its reference image."""
    refs = reference_images(plan, images)
    out: list[Candidate] = []
    found: list[Finding] = []
    for b in plan.beams:
        kind = _kind(b)
        if kind is None:
            continue
        problems = [f.message.split(": ", 1)[-1] for f in kv_beam_violations(b)] if kind in (
            CandidateKindValues.KV, CandidateKindValues.CBCT) else []
        if b.gantry_angle_deg is None:
            problems.append("no Gantry Angle")
        reference = None
        if need_reference and kind != CandidateKindValues.CBCT:  # a CBCT is matched against the CT
            reference, ref_findings = _reference(plan, b, refs.get(b.beam_number, []), tolerances)
            found.extend(ref_findings)
            if reference is None:
                problems.append("no usable reference image" + _why(ref_findings))
        out.append(Candidate(b, kind, tuple(problems), reference))
    return out, found


def _why(found: list[Finding]) -> str:
    bad = [f.message.split(": ", 1)[-1] for f in found if f.status == FindingStatusValues.FAILURE]
    return f" ({'; '.join(bad)})" if bad else ""


def _reference(plan: RTPlan, beam: Beam, images: list[RTImage],
               tolerances: PlanTolerances) -> tuple[RTImage | None, list[Finding]]:
    out: list[Finding] = []
    for im in images:
        geometry = check_reference_image(im)
        angles = check_angles(plan, beam, im, tolerances)
        out.extend(angles)
        if all(f.status != FindingStatusValues.FAILURE for f in geometry + angles):
            return im, out
    return None, out


# --------------------------------------------------------------------------- PLAN-8
def check_match_type(plan: RTPlan, cands: Sequence[Candidate], match: MatchTypeValues,
                     tolerances: PlanTolerances) -> tuple[list[Finding], tuple[int, ...]]:
    """PLAN-8 for *match*; returns the findings and the beam numbers the match would use."""
    if match == MatchTypeValues.MATCH_2D:
        return _single(cands, {CandidateKindValues.KV, CandidateKindValues.MV, CandidateKindValues.MANUAL,
                               CandidateKindValues.MV_TREATMENT}, "2D match", "a valid kV or MV setup beam, or a "
                       "treatment beam configured for MV imaging, with a usable reference image")
    if match == MatchTypeValues.MATCH_3D3D:
        usable = [c for c in cands if c.kind == CandidateKindValues.CBCT or (
            c.kind == CandidateKindValues.MANUAL and c.beam.beam_type == BeamTypeValues.STATIC)]
        return _single(usable, {CandidateKindValues.CBCT, CandidateKindValues.MANUAL}, "3D/3D match",
                       "a valid CBCT setup beam (Beam Type STATIC, KV\\CBCT)")
    return _pair(cands, match, tolerances)


def _single(cands: Sequence[Candidate], kinds: set[CandidateKindValues], what: str,
            need: str) -> tuple[list[Finding], tuple[int, ...]]:
    tags = (T.TREATMENT_DELIVERY_TYPE, T.IMAGING_DEVICE_SPECIFIC_ACQUISITION_PARAMETERS)
    pool = [c for c in cands if c.kind in kinds]
    usable = [c for c in pool if c.usable]
    preferred = [c for c in usable if c.kind != CandidateKindValues.MANUAL]
    if preferred:
        return [success("PLAN-8", f"{what} possible with {', '.join(c.label() for c in preferred)}", tags=tags)], tuple(
            c.beam.beam_number for c in preferred)
    if usable:
        return [warning("PLAN-8", f"{what} possible only with imaging started manually on "
                                  f"{', '.join(c.label() for c in usable)} (no Imaging Device-Specific Acquisition "
                                  "Parameters)", tags=tags)], tuple(c.beam.beam_number for c in usable)
    return [failure("PLAN-8", f"{what} not possible: needs {need}; " + _rejected(pool), tags=tags)], ()


def _rejected(pool: Sequence[Candidate]) -> str:
    if not pool:
        return "the plan has no such beam"
    return "; ".join(f"{c.label()}: {', '.join(c.problems)}" for c in pool)


def _pair(cands: Sequence[Candidate], match: MatchTypeValues,
          tolerances: PlanTolerances) -> tuple[list[Finding], tuple[int, ...]]:
    what = "2D/2D match" if match == MatchTypeValues.MATCH_2D2D else "marker match"
    tags = (T.GANTRY_ANGLE, T.TREATMENT_DELIVERY_TYPE, T.IMAGING_DEVICE_SPECIFIC_ACQUISITION_PARAMETERS)
    pool = [c for c in cands if c.kind in (CandidateKindValues.KV, CandidateKindValues.MV, CandidateKindValues.MANUAL)]
    usable = [c for c in pool if c.usable]
    tol = tolerances.orthogonality_deg
    pairs = []
    for a, b in combinations(usable, 2):
        diff = angle_difference_deg(a.beam.gantry_angle_deg, b.beam.gantry_angle_deg)  # type: ignore[arg-type]
        if abs(diff - ORTHOGONAL_DEG) <= tol:
            manual = (a.kind == CandidateKindValues.MANUAL) + (b.kind == CandidateKindValues.MANUAL)
            pairs.append((manual, abs(diff - ORTHOGONAL_DEG), a, b, diff))
    if pairs:
        manual, _, a, b, diff = min(pairs, key=lambda p: (p[0], p[1]))
        text = f"{what} possible with {a.label()} and {b.label()}, {diff:.2f}° apart"
        make = warning if manual else success
        extra = "; imaging must be started manually" if manual else ""
        return [make("PLAN-8", text + extra, tags=tags, value=diff, tolerance=tol)], (a.beam.beam_number,
                                                                                   b.beam.beam_number)
    angles = ", ".join(c.label() for c in usable) or "none"
    rejected = [c for c in pool if not c.usable]
    text = (f"{what} not possible: needs two valid kV/MV setup beams {ORTHOGONAL_DEG:.1f}° apart (±{tol:g}°); "
            f"valid: {angles}")
    if rejected:
        text += "; rejected: " + _rejected(rejected)
    return [failure("PLAN-8", text, tags=tags, tolerance=tol)], ()
