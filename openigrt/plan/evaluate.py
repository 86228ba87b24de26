"""Decide whether a match type is possible for a plan and its references (SPEC §3, PLAN-8 and the rest).

:func:`collect_inputs` sorts read objects by SOP class into :class:`PatientInputs` (the plan,
structure sets, the planning CT's geometry — headers only, no voxels —, RT Images). :func:`evaluate` runs the
checks relevant to the requested match type and returns an :class:`Evaluation`:

========  =====================================================================================
always    PLAN-1 field types, PLAN-2 imaging beams, PLAN-4 couch translations, PLAN-6 isocenter,
          PLAN-8 match type, PLAN-12 gating, PLAN-13 Type 1 attributes (+ tolerated read flaws)
2d, 2d2d  PLAN-3 kV beams, PLAN-5 reference images, PLAN-7 angles
marker    PLAN-3, PLAN-9 CT set, PLAN-10 structure set, PLAN-11 markers
3d3d      PLAN-3, PLAN-9, PLAN-10 (when a structure set is given)
========  =====================================================================================

The match is **possible** when no finding is a Failure. When PLAN-8 found beams for the match,
a Failure about a beam, image or object the match does not use (a broken DRR of another beam, a
kV beam when the 3D/3D match uses the CBCT beam) is reported as a Warning ending "(not used by
this match)"; when PLAN-8 found none, every Failure stays, since each explains why.

:func:`validate_paths` does everything from files/directories (what ``openigrt validate`` and
the phantom tests call).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom.uid import CTImageStorage, RTImageStorage, RTIonPlanStorage, RTPlanStorage, RTStructureSetStorage

from openigrt.config import DEFAULT_PRIVATE_CREATOR, PlanTolerances
from openigrt.errors import DicomInputError, PreconditionError
from openigrt.iod.ct_series import CTSeriesGeometry, group_ct_series, read_ct_geometry
from openigrt.iod.dataset_io import DicomFile, read_paths, sop_class_name
from openigrt.iod.enum import MatchTypeValues
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.plan import anatomy, beams, match_types, references, type1
from openigrt.plan.findings import Finding, FindingStatusValues, success, warning

PLAN_CLASSES = (str(RTPlanStorage), str(RTIonPlanStorage))
#: Findings about a single beam / image / object that are downgraded when the match does not use it.
_PER_SUBJECT = {"PLAN-2", "PLAN-3", "PLAN-5", "PLAN-7", "PLAN-13"}


@dataclass(frozen=True, eq=False)
class PatientInputs:
    """What was given for one plan, read and sorted by SOP class."""

    plan: RTPlan
    structure_sets: tuple[RTStructureSet, ...] = ()
    ct: CTSeriesGeometry | None = None
    ct_error: str | None = None
    images: tuple[RTImage, ...] = ()
    received: tuple[DicomFile, ...] = ()
    issues: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    def structure_set(self) -> RTStructureSet | None:
        """The structure set the plan references, else the only one given, else None."""
        wanted = {r.sop_instance_uid for r in self.plan.referenced_structure_sets}
        for rs in self.structure_sets:
            if rs.sop_instance_uid in wanted:
                return rs
        return self.structure_sets[0] if len(self.structure_sets) == 1 else None


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The result for one match type: possible or not, the findings, the beams used."""

    match: MatchTypeValues
    possible: bool
    findings: tuple[Finding, ...]
    inputs: PatientInputs = field(repr=False)
    used_beams: tuple[int, ...] = ()
    single_isocenter: bool = True
    gated: bool = False

    @property
    def couch_shifts_applicable(self) -> bool:
        return self.single_isocenter

    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status == FindingStatusValues.FAILURE)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON of ``openigrt validate --json`` (documented in the README)."""
        plan = self.inputs.plan
        return {
            "match": self.match.value,
            "possible": self.possible,
            "plan": {"sop_instance_uid": plan.sop_instance_uid, "label": plan.rt_plan_label, "name": plan.rt_plan_name,
                     "sop_class": sop_class_name(plan.sop_class_uid), "source": plan.source,
                     "patient_id": plan.patient_study.patient_id, "patient_name": plan.patient_study.patient_name,
                     "gated": self.gated, "single_isocenter": self.single_isocenter,
                     "couch_shifts_applicable": self.couch_shifts_applicable},
            "beams": [_beam_json(plan, b, self.used_beams, self.inputs.images) for b in plan.beams],
            "findings": [f.to_json() for f in self.findings],
            "inputs": {"objects": _counts(self.inputs.received), "skipped": list(self.inputs.skipped),
                       "ct_slices": len(self.inputs.ct.slices) if self.inputs.ct else 0},
        }


def _beam_json(plan: RTPlan, b: Any, used: tuple[int, ...], images: Sequence[RTImage]) -> dict[str, Any]:
    ft, im = b.field_type(), b.imaging()
    given = {i.sop_instance_uid for i in images}
    return {"number": b.beam_number, "name": b.beam_name, "field_type": ft.field_type.value,
            "field_type_source": ft.source.value, "imaging": im.kind.value, "imaging_parameters": list(im.parameters),
            "treatment_delivery_type": getattr(b.treatment_delivery_type, "value", b.treatment_delivery_type),
            "beam_type": getattr(b.beam_type, "value", b.beam_type), "gantry_angle": b.gantry_angle_deg,
            "patient_support_angle": b.patient_support_angle_deg, "isocenter": b.isocenter_position_mm,
            "patient_position": plan.patient_position(b), "meterset": b.beam_meterset,
            "reference_images": [{"sop_instance_uid": r.sop_instance_uid, "given": r.sop_instance_uid in given}
                                 for r in b.referenced_reference_images],
            "used": b.beam_number in used}


def _counts(files: Iterable[DicomFile]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in files:
        out[f.sop_class_name] = out.get(f.sop_class_name, 0) + 1
    return out


# --------------------------------------------------------------------------- inputs
def plans_in(files: Sequence[DicomFile]) -> list[DicomFile]:
    return [f for f in files if f.sop_class_uid in PLAN_CLASSES]


def collect_inputs(files: Sequence[DicomFile], *, tolerances: PlanTolerances = PlanTolerances(),
                   creator_prefix: str = DEFAULT_PRIVATE_CREATOR, skipped: Sequence[str] = ()) -> PatientInputs:
    """Sort *files* by SOP class and read them; exactly one RT (Ion) Plan is required.

    Raises
    ------
    PreconditionError
        No RT Plan, or more than one, among *files*.
    """
    plans = plans_in(files)
    if len(plans) != 1:
        found = ", ".join(p.source for p in plans) or "none"
        raise PreconditionError(f"give exactly one RT Plan or RT Ion Plan; found {len(plans)} ({found})")
    plan = RTPlan.from_dataset(plans[0], creator_prefix=creator_prefix)
    rss = tuple(RTStructureSet.from_dataset(f, creator_prefix=creator_prefix) for f in files
                if f.sop_class_uid == str(RTStructureSetStorage))
    images = tuple(RTImage.from_dataset(f, load_pixels=False, creator_prefix=creator_prefix) for f in files
                   if f.sop_class_uid == str(RTImageStorage))
    ct, ct_error = _ct(files, plan, rss, tolerances)
    issues = tuple(i for f in files for i in f.issues) + tuple(plan.issues[len(plans[0].issues):])
    return PatientInputs(plan, rss, ct, ct_error, images, tuple(files), issues, tuple(skipped))


def _ct(files: Sequence[DicomFile], plan: RTPlan, rss: Sequence[RTStructureSet],
        tolerances: PlanTolerances) -> tuple[CTSeriesGeometry | None, str | None]:
    cts = [f for f in files if f.sop_class_uid == str(CTImageStorage)]
    if not cts:
        return None, None
    try:
        groups = group_ct_series(cts)
        wanted = {s.series_instance_uid for rs in rss for s in rs.referenced_series}
        chosen = [uid for uid in groups if uid in wanted] or list(groups)
        if len(chosen) > 1:
            return None, f"{len(chosen)} CT series given and none is the one the structure set references"
        return read_ct_geometry(groups[chosen[0]], uniformity_mm=tolerances.slice_spacing_uniformity_mm), None
    except DicomInputError as exc:
        return None, str(exc)


# --------------------------------------------------------------------------- evaluation
def evaluate(inputs: PatientInputs, match: MatchTypeValues | str, *,
             tolerances: PlanTolerances = PlanTolerances()) -> Evaluation:
    """Run the checks for *match* (see the module docstring) and decide whether it is possible."""
    match = MatchTypeValues(match)
    plan, images = inputs.plan, inputs.images
    found: list[Finding] = []
    found += beams.check_field_types(plan)
    found += beams.check_imaging_beams(plan)
    if match != MatchTypeValues.MATCH_3D3D or any(beams.is_kv_beam(b) for b in plan.beams):
        found += beams.check_kv_beams(plan)
    found += beams.check_couch_translations(plan, tolerances)
    need_ref = match in (MatchTypeValues.MATCH_2D, MatchTypeValues.MATCH_2D2D)
    cands, ref_findings = match_types.candidates(plan, images, tolerances, need_reference=need_ref)
    if need_ref:
        found += references.check_reference_images(
            plan, images, [c.beam for c in cands if c.kind != match_types.CandidateKindValues.CBCT])
        found += ref_findings
    iso, single = references.check_same_isocenter(plan, images, tolerances, match=match)
    found += iso
    match_found, used = match_types.check_match_type(plan, cands, match, tolerances)
    found += match_found
    found += _anatomy(inputs, match, tolerances)
    found += beams.check_gating(plan)
    found += _received(inputs, match, used)
    found = _downgrade_unused(found, plan, used, cands)
    possible = not any(f.status == FindingStatusValues.FAILURE for f in found)
    return Evaluation(match, possible, tuple(found), inputs, used, single, beams.is_gated(plan))


def _anatomy(inputs: PatientInputs, match: MatchTypeValues, tolerances: PlanTolerances) -> list[Finding]:
    if match not in (MatchTypeValues.MARKER, MatchTypeValues.MATCH_3D3D):
        return []
    rs = inputs.structure_set()
    out = anatomy.check_ct_series(inputs.ct, tolerances, plan=inputs.plan, structure_set=rs, error=inputs.ct_error)
    if rs is not None:
        out += anatomy.check_structure_set(rs, tolerances)[0]
    if match == MatchTypeValues.MARKER:
        out += anatomy.check_markers(inputs.plan, rs)[0]
    return out


def _used_objects(inputs: PatientInputs, match: MatchTypeValues, used: tuple[int, ...]) -> set[str]:
    uids = {inputs.plan.sop_instance_uid}
    if match in (MatchTypeValues.MARKER, MatchTypeValues.MATCH_3D3D):
        rs = inputs.structure_set()
        uids |= {rs.sop_instance_uid} if rs else set()
        uids |= set(inputs.ct.sop_instance_uids) if inputs.ct else set()
    else:
        refs = references.reference_images(inputs.plan, inputs.images)
        uids |= {im.sop_instance_uid for n in used for im in refs.get(n, [])}
    return uids


def _received(inputs: PatientInputs, match: MatchTypeValues, used: tuple[int, ...]) -> list[Finding]:
    """PLAN-13 (Failures only for objects this match uses) and the flaws tolerated while reading."""
    uids = _used_objects(inputs, match, used) if used else {f.sop_instance_uid for f in inputs.received}
    used_files = [f for f in inputs.received if f.sop_instance_uid in uids]
    other = [f for f in inputs.received if f.sop_instance_uid not in uids]
    out = type1.check_type1(used_files)
    out += [_not_used(f) for f in type1.check_type1(other) if f.status == FindingStatusValues.FAILURE]
    out += [warning("PLAN-13", f"tolerated: {issue}") for issue in inputs.issues]
    out += [warning("PLAN-13", issue) for issue in inputs.skipped]
    if not out:
        out.append(success("PLAN-13", "no received object to check"))
    return out


def _not_used(f: Finding) -> Finding:
    return replace(f, status=FindingStatusValues.WARNING, message=f"{f.message} (not used by this match)")


def _downgrade_unused(found: list[Finding], plan: RTPlan, used: tuple[int, ...],
                      cands: Sequence[match_types.Candidate]) -> list[Finding]:
    if not used:  # the match is not possible: every failure helps explain why
        return found
    used_labels = {beams.beam_label(b) for b in plan.beams if b.beam_number in used}
    used_labels |= {references.image_label(c.reference) for c in cands
                    if c.reference is not None and c.beam.beam_number in used}
    out = []
    for f in found:
        if (f.status == FindingStatusValues.FAILURE and f.id in _PER_SUBJECT - {"PLAN-13"} and f.subject
                and not any(label in f.subject for label in used_labels)):
            f = _not_used(f)
        out.append(f)
    return out


def validate_paths(paths: Iterable[str | Path], match: MatchTypeValues | str, *,
                   tolerances: PlanTolerances = PlanTolerances(),
                   creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> Evaluation:
    """Read every DICOM file under *paths* and :func:`evaluate` the plan among them for *match*."""
    files, skipped = read_paths(list(paths), defer_pixels=True)  # header-only: geometry is enough
    inputs = collect_inputs(files, tolerances=tolerances, creator_prefix=creator_prefix, skipped=skipped)
    return evaluate(inputs, match, tolerances=tolerances)
