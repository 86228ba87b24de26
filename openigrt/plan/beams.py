"""Plan-only checks: PLAN-1 field type, PLAN-2 imaging beams, PLAN-3 kV beam rules, PLAN-4 couch
translations, PLAN-12 gating.

Each ``check_*`` function takes the read :class:`~openigrt.iod.rt_plan.RTPlan` (and tolerances
where there is one) and returns :class:`~openigrt.plan.findings.Finding` objects; none raises on
a bad plan.
"""

from __future__ import annotations

from openigrt.config import PlanTolerances
from openigrt.iod.enum import (
    FieldTypeValues,
    RespiratoryMotionCompensationTechniqueValues,
    RespiratorySignalSourceValues,
    RotationDirectionValues,
)
from openigrt.iod.rt_plan import Beam, FieldTypeSourceValues, ImagingKindValues, PatientSetup, RTPlan
from openigrt.plan import findings as T
from openigrt.plan.findings import Finding, failure, success, warning

#: PLAN-3: a kV beam has exactly this many control points.
KV_BEAM_CONTROL_POINTS = 2
#: PLAN-3: Beam Limiting Device Angle of a kV beam (degrees).
KV_BEAM_LIMITING_DEVICE_ANGLE_DEG = 0.0
#: Angles equal within this when a rule says "equal" (floating point of DS values), degrees.
EXACT_ANGLE_DEG = 1e-6


def beam_label(beam: Beam) -> str:
    """``beam 3 'KV0'`` for messages."""
    return f"beam {beam.beam_number} '{beam.beam_name or ''}'"


# --------------------------------------------------------------------------- PLAN-1
def check_field_types(plan: RTPlan) -> list[Finding]:
    """PLAN-1: every beam's field type and how it was decided (XML fallback is a warning)."""
    out = []
    for b in plan.beams:
        d = b.field_type()
        subject = beam_label(b)
        tags: tuple[str, ...] = (T.TREATMENT_DELIVERY_TYPE,)
        if d.source == FieldTypeSourceValues.EXTENDED_INTERFACE_XML:
            tags = (T.TREATMENT_DELIVERY_TYPE, T.EXTENDED_INTERFACE_XML)
        text = f"{subject}: {d.field_type.value} field (from {d.source.value})"
        if d.source == FieldTypeSourceValues.EXTENDED_INTERFACE_XML and d.field_type == FieldTypeValues.SETUP:
            out.append(warning("PLAN-1", f"{text}; {d.note}; Treatment Delivery Type SETUP is preferred",
                               tags=tags, subject=subject))
        elif d.source == FieldTypeSourceValues.DEFAULT or d.note:
            out.append(warning("PLAN-1", f"{text}; {d.note}", tags=tags, subject=subject))
        else:
            out.append(success("PLAN-1", text, tags=tags, subject=subject))
    if plan.extended_interface_error:
        out.append(warning("PLAN-1", f"the extended-interface XML cannot be used for the fallback: "
                                     f"{plan.extended_interface_error}", tags=(T.EXTENDED_INTERFACE_XML,)))
    if not plan.beams:
        out.append(failure("PLAN-1", "the plan has no beams", tags=("(300A,00B0)",)))
    return out


# --------------------------------------------------------------------------- PLAN-2
def check_imaging_beams(plan: RTPlan) -> list[Finding]:
    """PLAN-2: what each setup beam (and each treatment beam with planned imaging) images."""
    out = []
    tags = (T.PLANNED_VERIFICATION_IMAGE_SEQUENCE, T.IMAGING_DEVICE_SPECIFIC_ACQUISITION_PARAMETERS)
    for b in plan.beams:
        im = b.imaging()
        subject = beam_label(b)
        params = f" ({', '.join(im.parameters)})" if any(im.parameters) else ""
        if not b.is_setup:
            if im.kind == ImagingKindValues.MV_PORTAL:
                out.append(success("PLAN-2", f"{subject}: treatment field configured for MV imaging{params}",
                                   tags=tags, subject=subject))
            continue
        if im.kind in (ImagingKindValues.KV_IMAGE, ImagingKindValues.CBCT, ImagingKindValues.MV_PORTAL):
            out.append(success("PLAN-2", f"{subject}: setup field, {im.kind.value}{params}", tags=tags, subject=subject))
        elif im.kind == ImagingKindValues.OTHER and "KV\\CBCT" in im.parameters:  # CBCT on a DYNAMIC beam
            out.append(failure("PLAN-2", f"{subject}: {im.note}", tags=tags + (T.BEAM_TYPE,), subject=subject))
        else:
            out.append(warning("PLAN-2", f"{subject}: setup field, {im.kind.value}{params}: {im.note}; imaging can "
                                         "still be started manually", tags=tags, subject=subject))
    return out


# --------------------------------------------------------------------------- PLAN-3
def kv_beam_violations(beam: Beam) -> list[Finding]:
    """PLAN-3 rules a kV beam (kV image or CBCT) breaks; empty when it is a valid kV beam."""
    subject = beam_label(beam)
    out = []
    counts = ((beam.number_of_wedges, "Number of Wedges", T.NUMBER_OF_WEDGES),
              (beam.number_of_compensators, "Number of Compensators", T.NUMBER_OF_COMPENSATORS),
              (beam.number_of_boli, "Number of Boli", T.NUMBER_OF_BOLI),
              (beam.number_of_blocks, "Number of Blocks", T.NUMBER_OF_BLOCKS))
    for value, name, t in counts:
        if value not in (None, 0):
            out.append(failure("PLAN-3", f"{subject}: {name} is {value}, a kV beam needs 0", tags=(t,), value=value,
                               tolerance=0, subject=subject))
    n = len(beam.control_points)
    if n != KV_BEAM_CONTROL_POINTS:
        out.append(failure("PLAN-3", f"{subject}: {n} control points, a kV beam has exactly {KV_BEAM_CONTROL_POINTS}",
                           tags=(T.CONTROL_POINT_SEQUENCE, T.NUMBER_OF_CONTROL_POINTS), value=n,
                           tolerance=KV_BEAM_CONTROL_POINTS, subject=subject))
    cp = beam.first_control_point
    if cp is not None:
        angle = cp.beam_limiting_device_angle_deg
        if angle is None or abs(angle - KV_BEAM_LIMITING_DEVICE_ANGLE_DEG) > EXACT_ANGLE_DEG:
            out.append(failure("PLAN-3", f"{subject}: Beam Limiting Device Angle is {angle}, a kV beam needs 0.0",
                               tags=(T.BEAM_LIMITING_DEVICE_ANGLE,), value=angle, tolerance=0.0, subject=subject))
        for value, name, t in ((cp.beam_limiting_device_rotation_direction, "Beam Limiting Device Rotation Direction",
                                T.BEAM_LIMITING_DEVICE_ROTATION_DIRECTION),
                               (cp.gantry_rotation_direction, "Gantry Rotation Direction", T.GANTRY_ROTATION_DIRECTION)):
            if value != RotationDirectionValues.NONE.value:
                out.append(failure("PLAN-3", f"{subject}: {name} is {value}, a kV beam needs NONE", tags=(t,),
                                   value=value, tolerance="NONE", subject=subject))
    return out


def is_kv_beam(beam: Beam) -> bool:
    """A setup field whose one planned verification image is kV (kV image or CBCT), PLAN-2."""
    return beam.imaging().kind in (ImagingKindValues.KV_IMAGE, ImagingKindValues.CBCT)


def check_kv_beams(plan: RTPlan) -> list[Finding]:
    """PLAN-3 for every kV beam of the plan (one Success per valid beam)."""
    out = []
    for b in plan.beams:
        if not is_kv_beam(b):
            continue
        bad = kv_beam_violations(b)
        out.extend(bad or [success("PLAN-3", f"{beam_label(b)}: valid kV beam (gantry angle {b.gantry_angle_deg}° = "
                                             "kV source angle, IEC FIXED)", tags=(T.GANTRY_ANGLE,),
                                   subject=beam_label(b))])
    return out


# --------------------------------------------------------------------------- PLAN-4
def check_couch_translations(plan: RTPlan, tolerances: PlanTolerances) -> list[Finding]:
    """PLAN-4: all treatment beams have the same table-top translations within the tolerance per axis."""
    beams = [b for b in plan.treatment_beams() if b.first_control_point is not None]
    axes = (("vertical", "table_top_vertical_position_mm", T.TABLE_TOP_VERTICAL_POSITION),
            ("longitudinal", "table_top_longitudinal_position_mm", T.TABLE_TOP_LONGITUDINAL_POSITION),
            ("lateral", "table_top_lateral_position_mm", T.TABLE_TOP_LATERAL_POSITION))
    tol = tolerances.couch_translation_mm
    out = []
    for axis, attr, t in axes:
        values = {b.beam_number: getattr(b.first_control_point, attr) for b in beams}
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            out.append(success("PLAN-4", f"Table Top {axis.title()} Position not given by any treatment beam "
                                         "(nothing to compare)", tags=(t,)))
            continue
        spread = max(given.values()) - min(given.values())
        missing = sorted(set(values) - set(given))
        if spread > tol:
            lo, hi = min(given, key=given.get), max(given, key=given.get)  # type: ignore[arg-type]
            out.append(failure("PLAN-4", f"Table Top {axis.title()} Position differs by {spread:.2f} mm between "
                                         f"treatment beams {lo} ({given[lo]:g}) and {hi} ({given[hi]:g}); at most "
                                         f"{tol:g} mm allowed", tags=(t,), value=spread, tolerance=tol))
        elif missing:
            out.append(warning("PLAN-4", f"Table Top {axis.title()} Position missing in treatment beams {missing}; "
                                         f"the others agree within {spread:.2f} mm", tags=(t,), value=spread,
                               tolerance=tol))
        else:
            out.append(success("PLAN-4", f"Table Top {axis.title()} Position of all treatment beams agree within "
                                         f"{spread:.2f} mm", tags=(t,), value=spread, tolerance=tol))
    return out


# --------------------------------------------------------------------------- PLAN-12
def is_gated(plan: RTPlan) -> bool:
    """PLAN-12: every Patient Setup item has a Motion Synchronization Sequence whose first item is
    GATING / EXTERNAL_MARKER."""
    return bool(plan.patient_setups) and all(_setup_gated(s) for s in plan.patient_setups)


def _setup_gated(setup: PatientSetup) -> bool:
    m = setup.motion_synchronization
    return m is not None and (
        m.respiratory_motion_compensation_technique == RespiratoryMotionCompensationTechniqueValues.GATING
        and m.respiratory_signal_source == RespiratorySignalSourceValues.EXTERNAL_MARKER)


def check_gating(plan: RTPlan) -> list[Finding]:
    """PLAN-12: gated or not (only the first Motion Synchronization item is read)."""
    tags = (T.PATIENT_SETUP_SEQUENCE, T.MOTION_SYNCHRONIZATION_SEQUENCE, T.RESPIRATORY_MOTION_COMPENSATION_TECHNIQUE,
            T.RESPIRATORY_SIGNAL_SOURCE)
    gated = [s for s in plan.patient_setups if _setup_gated(s)]
    if is_gated(plan):
        return [success("PLAN-12", f"gated plan: all {len(gated)} patient setups use GATING with EXTERNAL_MARKER",
                        tags=tags, value="gated")]
    if gated:
        return [warning("PLAN-12", f"not gated: only {len(gated)} of {len(plan.patient_setups)} patient setups have "
                                   "GATING with EXTERNAL_MARKER (all must)", tags=tags, value="not gated")]
    return [success("PLAN-12", "not gated (no patient setup has GATING with EXTERNAL_MARKER)", tags=tags,
                    value="not gated")]
