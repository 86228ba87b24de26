"""match layer: registration algorithms on arrays + geometry (SPEC MATCH-1 … MATCH-5).

Public API (pure functions with keyword-only options; results are frozen
:class:`~openigrt.match.result.MatchResult` objects whose ``transform`` maps reference patient
mm → verification patient mm; failures raise :class:`openigrt.errors.RegistrationError`):

* :func:`register_3d3d` — CBCT vs planning CT (MATCH-3).
"""

from openigrt.match.result import MarkerResidual, MatchResult, MatchType, StopReason
from openigrt.match.volume3d import BoxROI, field_of_view_mask, register_3d3d

__all__ = [
    "BoxROI",
    "MarkerResidual",
    "MatchResult",
    "MatchType",
    "StopReason",
    "field_of_view_mask",
    "register_3d3d",
]
