"""Is a match determined? Curvature of the metric at the solution and the stop decision (SPEC MATCH-3).

A Gauss-Newton match minimises the residual ``Σ (F − a·M(T) − b)²``; its normal matrix at the
solution says how fast the residual grows when the transform moves. :func:`curvature` reduces it
to the **relative curvature** along the worst direction: the share by which the residual grows per
mm² of translation or degree² of rotation (one unit each), after the intensity gain and offset are
re-fitted (the Schur complement of their block).

* A structured region: the residual grows by tens of percent per mm² (about
  ``mean(|∇M·u|²) / σ²_residual``) in every direction.
* A **plateau** — a region without structure along some direction (uniform tissue, a
  cylinder along its axis, a region cut by the field of view to a slab) — has a direction along
  which the residual hardly changes: the solution there is whatever the noise makes it.
  :data:`PLATEAU_MIN_CURVATURE` is the bar; below it the match fails with
  :attr:`~openigrt.match.result.StopReason.PLATEAU` and says along which direction.

:func:`stop_of` turns (converged, curvature) into the result's stop reason and its explanation;
a match that did not converge or sits on a plateau is a failure (``MatchResult.success`` False),
never reported as a solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openigrt.match.result import StopReason

#: below this relative curvature (residual growth per mm² along the worst direction) the metric is a plateau
PLATEAU_MIN_CURVATURE = 0.002
_NAMES6 = ("rotation x", "rotation y", "rotation z", "x", "y", "z")
_NAMES3 = ("x", "y", "z")


@dataclass(frozen=True)
class Curvature:
    """Relative curvature of the residual at a solution.

    ``worst`` is the smallest relative curvature (per mm² / degree²), ``direction`` its unit vector
    over (rotation x, y, z [degrees], x, y, z [mm]) or (x, y, z); ``per_axis`` the curvature along
    each parameter with the others re-fitted (``1 / diag(C⁻¹)``); ``lever_mm`` the RMS distance of
    the sample points from the rotation centre.
    """

    worst: float
    direction: tuple[float, ...]
    per_axis: tuple[float, ...]
    lever_mm: float

    def describe(self) -> str:
        """The worst direction in words, e.g. ``'mostly z (0.98)'``."""
        names = _NAMES6 if len(self.direction) == 6 else _NAMES3
        d = np.abs(np.asarray(self.direction))
        i = int(np.argmax(d))
        return f"mostly {names[i]} ({d[i]:.2f})"

    def as_dict(self) -> dict[str, object]:
        return {"worst_per_mm2": self.worst, "direction": list(self.direction), "per_axis_per_mm2": list(self.per_axis),
                "lever_mm": self.lever_mm}


def curvature(h: NDArray[np.float64], residual_ssd: float, gain: float, *, six: bool, lever_mm: float) -> Curvature:
    """Relative curvature from the normal matrix *h* over ``[a, b, (omega), t]`` (see the module docstring).

    *residual_ssd* is the residual sum of squares of the linear fit, *gain* the fitted ``a``.
    """
    hh = np.asarray(h, float)
    ab, mo = hh[:2, :2], hh[:2, 2:]
    c = hh[2:, 2:] - mo.T @ np.linalg.pinv(ab) @ mo
    scale = np.ones(c.shape[0])
    if six:
        scale[:3] = np.pi / 180.0  # rotations per degree
    cs = c * np.outer(scale, scale) * gain * gain / max(residual_ssd, 1e-30)
    cs = 0.5 * (cs + cs.T)
    w, v = np.linalg.eigh(cs)
    try:
        per_axis = 1.0 / np.diag(np.linalg.inv(cs))
    except np.linalg.LinAlgError:
        per_axis = np.zeros(cs.shape[0])
    return Curvature(float(max(w[0], 0.0)), tuple(float(x) for x in v[:, 0]), tuple(float(x) for x in per_axis),
                     float(lever_mm))


def stop_of(converged: bool, curv: Curvature | None, *, what: str) -> tuple[StopReason, str]:
    """Stop reason and explanation of a Gauss-Newton match (non-convergence and plateaus are failures)."""
    if curv is not None and curv.worst < PLATEAU_MIN_CURVATURE:
        return StopReason.PLATEAU, (
            f"{what}: the metric is a plateau along {curv.describe()}: moving 1 mm that way changes the residual by "
            f"{100 * curv.worst:.2f} % (< {100 * PLATEAU_MIN_CURVATURE:.1f} %); the region of interest has no structure "
            "to match in that direction")
    if not converged:
        return StopReason.MAX_ITERATIONS, f"{what}: did not converge (update still above tolerance at the last iteration)"
    return StopReason.CONVERGED, ""
