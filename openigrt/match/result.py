"""Result objects and named constants of the matching algorithms (SPEC MATCH-1 … MATCH-5).

Every matcher returns a frozen :class:`MatchResult`. Its ``transform`` follows the project
convention of :mod:`openigrt.geometry.rigid`: the matrix maps **reference** patient coordinates
(planning CT / reference DRR frame, mm) to **verification** patient coordinates (the acquired
images' frame, mm) — the same matrix the Spatial Registration (IOD-1) stores and
``truth.json`` of the virtual imager holds. A matcher that cannot produce a trustworthy answer
raises :class:`openigrt.errors.RegistrationError` whose message says why (blank image, no
overlap, divergence, metric too poor); it never returns a confident wrong answer.

Quality is reported as ``metric`` (the final normalised cross-correlation, 1 = identical up to a
linear intensity change) and ``overlap_fraction`` (share of the sample points that stayed inside
both images / masks at the solution).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openigrt.geometry.rigid import RigidTransform

# --------------------------------------------------------------------------- quality gates
#: below this final NCC a registration is declared failed ("metric too poor")
MIN_NCC_3D = 0.25
#: below this final NCC (band-passed projections) a 2D or 2D/2D match is declared failed
MIN_NCC_2D = 0.20
#: below this share of valid sample points a registration is declared failed ("no overlap")
MIN_OVERLAP_FRACTION = 0.25
#: a region whose intensity standard deviation is below this (in image units) is "blank"
BLANK_STD = 1e-6
#: solutions moving further than this from the start are divergence, not a setup error
MAX_TRANSLATION_MM = 60.0
#: solutions rotating more than this are divergence (setup rotations are a few degrees)
MAX_ROTATION_DEG = 10.0
#: residual (mm at the isocenter plane) beyond which a marker is flagged as an outlier
MARKER_OUTLIER_MM = 2.0


class MatchType(str, enum.Enum):
    """The four match types of SPEC §4 (values are the CLI/JSON names)."""

    SIMPLE_2D = "2d"
    TWO_VIEW_2D = "2d2d"
    VOLUME_3D = "3d3d"
    MARKER = "marker"


class StopReason(str, enum.Enum):
    """Why the optimiser stopped (printed like SimpleITK's stop condition).

    Only :attr:`CONVERGED` and :attr:`CLOSED_FORM` are successes; a match stopped for another reason
    is returned with ``success`` False and an explanation (``stop_detail``) and must not be applied.
    """

    CONVERGED = "converged: parameter update below tolerance"
    MAX_ITERATIONS = "did not converge: maximum number of iterations reached at the finest level"
    PLATEAU = "metric plateau: the solution is not determined in some direction"
    CLOSED_FORM = "closed-form least-squares solution"

    @property
    def is_success(self) -> bool:
        return self in (StopReason.CONVERGED, StopReason.CLOSED_FORM)


@dataclass(frozen=True)
class MarkerResidual:
    """Per-marker result of a marker match (MATCH-5).

    ``residual_mm`` is the distance between the planned marker moved by the fitted shift and the
    position triangulated from this marker's detections alone (mm, patient frame); for a marker
    found in one view only, its reprojection distance in that view scaled to mm at the marker;
    None when it was found in no view. ``outlier`` is True when it exceeds
    :data:`MARKER_OUTLIER_MM` (e.g. a migrated marker); outliers do not contribute to the fitted
    shift but are always reported. ``pixel_per_view[v]`` is None where the marker was not found.
    """

    name: str
    planned_mm: tuple[float, float, float]
    found_mm: tuple[float, float, float] | None
    residual_mm: float | None
    outlier: bool
    pixel_per_view: tuple[tuple[float, float] | None, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "planned_mm": list(self.planned_mm),
            "found_mm": None if self.found_mm is None else list(self.found_mm),
            "residual_mm": self.residual_mm,
            "outlier": self.outlier,
            "pixel_per_view": [None if p is None else list(p) for p in self.pixel_per_view],
        }


@dataclass(frozen=True)
class MatchResult:
    """Outcome of one match (ARCHITECTURE habit 9).

    Attributes
    ----------
    transform : RigidTransform
        Reference patient mm → verification patient mm.
    match_type : MatchType
    dof : int
        3 (translation only) or 6 (translations + rotations). A simple 2D match reports the
        translation it could see (the component along the beam is 0).
    metric : float
        Final normalised cross-correlation (higher is better, ≤ 1); for a marker match, minus the
        RMS reprojection residual in mm.
    metric_name : str
    iterations : int
        Total optimiser iterations over all levels.
    stop_reason : StopReason
    overlap_fraction : float
        Share of sample points valid at the solution (1 for marker matches).
    elapsed_s : float
    details : dict
        Match-type specific extras (per-level iterations, per-view 2D shifts, …); JSON-able.
    markers : tuple of MarkerResidual
        Marker match only.
    stop_detail : str
        Why a match that is not a success failed (empty on success).
    """

    transform: RigidTransform
    match_type: MatchType
    dof: int
    metric: float
    metric_name: str
    iterations: int
    stop_reason: StopReason
    overlap_fraction: float
    elapsed_s: float
    details: dict[str, Any] = field(default_factory=dict)
    markers: tuple[MarkerResidual, ...] = ()
    stop_detail: str = ""

    @property
    def success(self) -> bool:
        """True when the optimiser converged to a determined solution (:attr:`StopReason.is_success`).

        A match that could not produce any answer raises :class:`~openigrt.errors.RegistrationError`;
        one that stopped without converging or on a metric plateau is returned with ``success``
        False: its transform is where it stopped, not a solution.
        """
        return self.stop_reason.is_success

    def failure_message(self) -> str:
        """One line for the user when :attr:`success` is False (empty otherwise)."""
        if self.success:
            return ""
        return self.stop_detail or f"{self.match_type.value} match failed: {self.stop_reason.value}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (the ``openigrt match --json`` fields owned by the algorithm)."""
        out: dict[str, Any] = {
            "match": self.match_type.value,
            "dof": self.dof,
            "success": self.success,
            "matrix": self.transform.as_list(),
            "translation_mm": [float(v) for v in self.transform.translation_mm],
            "rotation_deg": [float(v) for v in self.transform.rotation_deg()],
            "metric": float(self.metric),
            "metric_name": self.metric_name,
            "iterations": int(self.iterations),
            "stop_reason": self.stop_reason.value,
            "stop_detail": self.failure_message(),
            "overlap_fraction": float(self.overlap_fraction),
            "elapsed_s": float(self.elapsed_s),
            "details": _jsonable(self.details),
        }
        if self.markers:
            out["markers"] = [m.as_dict() for m in self.markers]
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj
