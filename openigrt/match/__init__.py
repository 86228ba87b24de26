"""match layer: registration algorithms on arrays + geometry (SPEC MATCH-1 … MATCH-5).

Public API (pure functions with keyword-only options; results are frozen
:class:`~openigrt.match.result.MatchResult` objects whose ``transform`` maps reference patient
mm → verification patient mm; failures raise :class:`openigrt.errors.RegistrationError`):

* :func:`register_3d3d` — CBCT vs planning CT (MATCH-3).
* :func:`match_2d` — one projection vs its reference DRR (MATCH-1).
* :func:`match_2d2d` — two projections → 3D translation (MATCH-2).
* :func:`match_2d3d` — two projections → 6 DoF, DRRs rendered on the fly (MATCH-2).
* :func:`detect_markers` — gold fiducials in the planning CT (MATCH-4).
* :func:`match_markers` — markers in two projections → 3D shift, per-marker residuals (MATCH-5);
  :func:`marker_only_volume` gives the volume whose DRRs are its marker templates.
"""

from openigrt.match.result import MarkerResidual, MatchResult, MatchType, StopReason
from openigrt.match.markers import DetectedMarker, detect_markers, marker_only_volume, match_markers, split_markers
from openigrt.match.projection2d import View2DResult, match_2d, match_2d2d, register_projection
from openigrt.match.projection2d3d import bin_geometry, match_2d3d
from openigrt.match.volume3d import BoxROI, field_of_view_mask, register_3d3d

__all__ = [
    "BoxROI",
    "DetectedMarker",
    "View2DResult",
    "detect_markers",
    "marker_only_volume",
    "match_2d",
    "match_2d2d",
    "match_2d3d",
    "bin_geometry",
    "split_markers",
    "match_markers",
    "register_projection",
    "MarkerResidual",
    "MatchResult",
    "MatchType",
    "StopReason",
    "field_of_view_mask",
    "register_3d3d",
]
