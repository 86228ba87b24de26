"""Adjusting a match in the review (SPEC MATCH-6, MATCH-7): couch-correction deltas → transform.

The reviewer changes the **couch correction** (IEC 61217 table-top motion, ``docs/geometry.md``
§4) axis by axis: ``lat``, ``lng``, ``vrt`` in mm and, on a 6-DoF match, ``rtn``, ``pitch``,
``roll`` in degrees. :func:`adjusted_transform` returns the registration ``T'`` whose couch
correction is exactly the automatic one plus the delta:

* translation: ``T'(p) = q − Aᵀ (t + d_t)`` where ``p`` is the planned isocenter, ``q``
  INITLASERISO, ``A`` the patient → table-top axes of the patient position and ``t`` the
  automatic translation correction, so ``A (q − T'(p)) = t + d_t``;
* rotation (6 DoF): ``R' = Aᵀ R_ttᵀ A`` with ``R_tt = Rz(rtn + d_rtn) Rx(pitch + d_pitch)
  Ry(roll + d_roll)``, the inverse of ``R_tt = A Rᵀ Aᵀ`` in
  :func:`~openigrt.geometry.couch.couch_correction`; on 3-DoF matches the rotation of ``T`` is
  kept and rotation deltas are refused.

With zero rotation delta this is ``translate(−Aᵀ d_t) ∘ T``, the same as
:meth:`openigrt.workflow.matching.MatchOutcome.adjusted` (used by ``--adjust``).

The table the page shows (:func:`correction_rows`) pairs each axis with its tolerance from
``[tolerances]`` (``correction_*``) and marks values out of tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openigrt.config import PlanTolerances
from openigrt.errors import WorkflowError
from openigrt.geometry.couch import couch_correction, table_top_angles_from_matrix
from openigrt.geometry.iec61217 import patient_axes_in_table_top, rot_x, rot_y, rot_z
from openigrt.geometry.rigid import RigidTransform

#: Couch correction axes in the order of the page and of :class:`Adjustment` (IEC table top).
AXES = ("vrt_mm", "lng_mm", "lat_mm", "rtn_deg", "pitch_deg", "roll_deg")
TRANSLATION_AXES = AXES[:3]
ROTATION_AXES = AXES[3:]
#: Largest adjustment accepted per axis (mm, degrees): beyond this it is a new match, not a nudge.
MAX_ADJUST_MM = 50.0
MAX_ADJUST_DEG = 10.0
#: Step sizes offered by the page (buttons, arrow keys).
STEPS_MM = (0.5, 1.0)
STEP_DEG = 0.1


@dataclass(frozen=True)
class Adjustment:
    """A delta added to the automatic couch correction, per table-top axis (mm, degrees)."""

    vrt_mm: float = 0.0
    lng_mm: float = 0.0
    lat_mm: float = 0.0
    rtn_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    @classmethod
    def parse(cls, values: Mapping[str, Any] | None) -> Adjustment:
        """From ``{axis: number}`` (missing axes 0); raises WorkflowError on bad or huge values."""
        values = dict(values or {})
        unknown = set(values) - set(AXES)
        if unknown:
            raise WorkflowError(f"unknown adjustment axis {sorted(unknown)[0]!r} (known: {', '.join(AXES)})")
        out = {}
        for axis in AXES:
            try:
                v = float(values.get(axis, 0.0))
            except (TypeError, ValueError):
                raise WorkflowError(f"adjustment {axis}: expected a number, got {values.get(axis)!r}") from None
            limit = MAX_ADJUST_MM if axis.endswith("_mm") else MAX_ADJUST_DEG
            if not math.isfinite(v) or abs(v) > limit:
                raise WorkflowError(f"adjustment {axis}: {v} is outside ±{limit:g}")
            out[axis] = v
        return cls(**out)

    def as_dict(self) -> dict[str, float]:
        return {axis: float(getattr(self, axis)) for axis in AXES}

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        """``(lat, lng, vrt)``: the order of :attr:`MatchRecord.adjustment_mm`."""
        return (self.lat_mm, self.lng_mm, self.vrt_mm)

    @property
    def rotation_deg(self) -> tuple[float, float, float]:
        """``(rtn, pitch, roll)``."""
        return (self.rtn_deg, self.pitch_deg, self.roll_deg)

    @property
    def is_zero(self) -> bool:
        return all(getattr(self, axis) == 0.0 for axis in AXES)

    @property
    def has_rotation(self) -> bool:
        return any(getattr(self, axis) != 0.0 for axis in ROTATION_AXES)


@dataclass(frozen=True)
class CouchFrame:
    """Where couch corrections are computed from: planned isocenter, INITLASERISO, patient position."""

    planned_isocenter_mm: tuple[float, float, float]
    initlaseriso_mm: tuple[float, float, float]
    patient_position: str
    six_dof: bool

    def correction(self, transform: RigidTransform) -> dict[str, float]:
        """The couch correction of *transform* (rotation keys only on 6-DoF matches)."""
        c = couch_correction(transform, planned_isocenter_mm=self.planned_isocenter_mm,
                             initlaseriso_mm=self.initlaseriso_mm, patient_position=self.patient_position,
                             six_dof=self.six_dof).as_dict()
        return c if self.six_dof else {k: c[k] for k in TRANSLATION_AXES}


def adjusted_transform(base: RigidTransform, adjustment: Adjustment, frame: CouchFrame) -> RigidTransform:
    """The registration whose couch correction is ``correction(base) + adjustment`` (module docstring)."""
    if adjustment.is_zero:
        return base
    if adjustment.has_rotation and not frame.six_dof:
        raise WorkflowError("rotations can be adjusted on 6-DoF matches only")
    a = patient_axes_in_table_top(frame.patient_position)
    p = np.asarray(frame.planned_isocenter_mm, dtype=float)
    q = np.asarray(frame.initlaseriso_mm, dtype=float)
    t = a @ (q - base.apply(p)[0]) + np.array(adjustment.translation_mm)  # unrounded automatic + delta
    if frame.six_dof and adjustment.has_rotation:
        rtn, pitch, roll = table_top_angles_from_matrix(a @ base.rotation.T @ a.T)
        r_tt = (rot_z(rtn + adjustment.rtn_deg) @ rot_x(pitch + adjustment.pitch_deg)
                @ rot_y(roll + adjustment.roll_deg))
        rotation = a.T @ r_tt.T @ a
    else:
        rotation = base.rotation
    target = q - a.T @ t  # where T' puts the planned isocenter
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = target - rotation @ p
    return RigidTransform(m)


@dataclass(frozen=True)
class CorrectionRow:
    """One axis of the couch correction table."""

    axis: str
    automatic: float
    adjustment: float
    correction: float
    tolerance: float
    out_of_tolerance: bool
    visible: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "automatic": self.automatic, "adjustment": self.adjustment,
                "correction": self.correction, "tolerance": self.tolerance,
                "out_of_tolerance": self.out_of_tolerance, "visible": self.visible}


def axis_tolerances(tolerances: PlanTolerances) -> dict[str, float]:
    """Tolerance of each couch axis from ``[tolerances] correction_*`` (mm, degrees)."""
    return {axis: float(getattr(tolerances, f"correction_{axis}")) for axis in AXES}


def correction_rows(automatic: Mapping[str, float], current: Mapping[str, float], *,
                    tolerances: PlanTolerances, not_seen: Sequence[str] = ()) -> list[CorrectionRow]:
    """The table: per axis of *current*, automatic value, delta, value, tolerance, out-of-tolerance.

    An axis a single view cannot see (*not_seen*) is listed but never flagged.
    """
    tol = axis_tolerances(tolerances)
    rows = []
    for axis in AXES:
        if axis not in current:
            continue
        value = float(current[axis])
        auto = float(automatic.get(axis, 0.0))
        visible = axis not in not_seen
        rows.append(CorrectionRow(axis, auto, round(value - auto, 9), value, tol[axis],
                                  visible and abs(value) > tol[axis], visible))
    return rows
