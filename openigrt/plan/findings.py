"""Findings: the named results of the plan precondition checks (SPEC §3, PLAN-1 … PLAN-13).

Every check is a function returning a list of :class:`Finding`. A finding names the requirement
(``"PLAN-6"``), a status in the Success / Warning / Failure vocabulary of DIMSE statuses
(docs/ARCHITECTURE.md habit 1; the same words ``openigrt.net.status`` uses), the tag(s)
involved, a message for a human, and — where the check compares a number with a tolerance —
the measured value and the tolerance (mm or degrees, as the message says).

>>> f = failure("PLAN-6", "isocenters differ by 3.20 mm", tags=("(300A,012C)",), value=3.2, tolerance=1.0)
>>> f.status.value, f.to_json()["tags"]
('Failure', ['(300A,012C)'])
>>> worst([f, success("PLAN-1", "ok")]) is FindingStatusValues.FAILURE
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class FindingStatusValues(str, Enum):
    """Outcome of one check: pass (Success), warning (Warning) or fail (Failure)."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"

    @property
    def rank(self) -> int:
        return {"Success": 0, "Warning": 1, "Failure": 2}[self.value]

    @property
    def short(self) -> str:
        """``pass`` / ``warning`` / ``FAIL`` for the human report."""
        return {"Success": "pass", "Warning": "warning", "Failure": "FAIL"}[self.value]


@dataclass(frozen=True)
class Finding:
    """One named result of a precondition check."""

    id: str
    status: FindingStatusValues
    message: str
    tags: tuple[str, ...] = ()
    value: float | str | None = None
    tolerance: float | str | None = None
    subject: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (README "openigrt validate --json")."""
        return {"id": self.id, "status": self.status.value, "tags": list(self.tags), "message": self.message,
                "value": self.value, "tolerance": self.tolerance, "subject": self.subject}


def _make(status: FindingStatusValues, id_: str, message: str, *, tags: Iterable[str] = (),
          value: float | str | None = None, tolerance: float | str | None = None, subject: str | None = None) -> Finding:
    if isinstance(value, float):
        value = round(value, 6)
    return Finding(id_, status, message, tuple(tags), value, tolerance, subject)


def success(id_: str, message: str, **kw: Any) -> Finding:
    return _make(FindingStatusValues.SUCCESS, id_, message, **kw)


def warning(id_: str, message: str, **kw: Any) -> Finding:
    return _make(FindingStatusValues.WARNING, id_, message, **kw)


def failure(id_: str, message: str, **kw: Any) -> Finding:
    return _make(FindingStatusValues.FAILURE, id_, message, **kw)


def worst(findings: Iterable[Finding]) -> FindingStatusValues:
    """The worst status among *findings* (Success when empty)."""
    return max((f.status for f in findings), key=lambda s: s.rank, default=FindingStatusValues.SUCCESS)


def tag(group: int, element: int) -> str:
    """``"(300A,012C)"``."""
    return f"({group:04X},{element:04X})"


# Tags the checks name, in one place.
TREATMENT_DELIVERY_TYPE = tag(0x300A, 0x00CE)
EXTENDED_INTERFACE_XML = "(3253,xx00)"
PLANNED_VERIFICATION_IMAGE_SEQUENCE = tag(0x300A, 0x00CA)
IMAGING_DEVICE_SPECIFIC_ACQUISITION_PARAMETERS = tag(0x300A, 0x00CC)
BEAM_TYPE = tag(0x300A, 0x00C4)
NUMBER_OF_WEDGES = tag(0x300A, 0x00D0)
NUMBER_OF_COMPENSATORS = tag(0x300A, 0x00E0)
NUMBER_OF_BOLI = tag(0x300A, 0x00ED)
NUMBER_OF_BLOCKS = tag(0x300A, 0x00F0)
NUMBER_OF_CONTROL_POINTS = tag(0x300A, 0x0110)
CONTROL_POINT_SEQUENCE = tag(0x300A, 0x0111)
GANTRY_ANGLE = tag(0x300A, 0x011E)
GANTRY_ROTATION_DIRECTION = tag(0x300A, 0x011F)
BEAM_LIMITING_DEVICE_ANGLE = tag(0x300A, 0x0120)
BEAM_LIMITING_DEVICE_ROTATION_DIRECTION = tag(0x300A, 0x0121)
PATIENT_SUPPORT_ANGLE = tag(0x300A, 0x0122)
TABLE_TOP_VERTICAL_POSITION = tag(0x300A, 0x0128)
TABLE_TOP_LONGITUDINAL_POSITION = tag(0x300A, 0x0129)
TABLE_TOP_LATERAL_POSITION = tag(0x300A, 0x012A)
ISOCENTER_POSITION = tag(0x300A, 0x012C)
PATIENT_POSITION = tag(0x0018, 0x5100)
PATIENT_SETUP_SEQUENCE = tag(0x300A, 0x0180)
MOTION_SYNCHRONIZATION_SEQUENCE = tag(0x300A, 0x0410)
RESPIRATORY_MOTION_COMPENSATION_TECHNIQUE = tag(0x0018, 0x9170)
RESPIRATORY_SIGNAL_SOURCE = tag(0x0018, 0x9171)
REFERENCED_REFERENCE_IMAGE_SEQUENCE = tag(0x300C, 0x0042)
REFERENCED_STRUCTURE_SET_SEQUENCE = tag(0x300C, 0x0060)
IMAGE_PLANE_PIXEL_SPACING = tag(0x3002, 0x0011)
RT_IMAGE_POSITION = tag(0x3002, 0x0012)
RT_IMAGE_SID = tag(0x3002, 0x0026)
RADIATION_MACHINE_SAD = tag(0x3002, 0x0022)
X_RAY_IMAGE_RECEPTOR_ANGLE = tag(0x3002, 0x000E)
FRAME_OF_REFERENCE_UID = tag(0x0020, 0x0052)
RT_IMAGE_ISOCENTER_POSITION = "(3273,xx00)"
RT_IMAGE_PATIENT_POSITION = "(3273,xx01)"
IMAGE_POSITION_PATIENT = tag(0x0020, 0x0032)
SLICE_POSITION = IMAGE_POSITION_PATIENT
CONTOUR_GEOMETRIC_TYPE = tag(0x3006, 0x0042)
CONTOUR_DATA = tag(0x3006, 0x0050)
NUMBER_OF_CONTOUR_POINTS = tag(0x3006, 0x0046)
RT_ROI_INTERPRETED_TYPE = tag(0x3006, 0x00A4)
MARKER_SUBTYPE = "(3271,xx00)"
CONTOUR_IMAGE_SEQUENCE = tag(0x3006, 0x0016)
