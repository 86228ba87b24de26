"""The panels of a match's review picture (SPEC MATCH-7), from a :class:`MatchOutcome`.

* 3D/3D: axial, coronal and sagittal planes through the INITLASERISO point of the verification
  CBCT; the planning CT is sampled on the same planes **before** (identity) and **after** the match
  (at ``T⁻¹(x)`` for each verification point ``x``) — exact, trilinear.
* 2D, 2D/2D and marker match: each acquired projection against its reference (the reference DRR,
  or for marker matches a DRR of the planning CT rendered in the acquired geometry). The "after"
  image is the reference shifted by the displacement the accepted transform gives the isocenter
  in that view — exact for translations at the isocenter depth, approximate for rotations and
  off-isocenter depths (a display aid, not the match). Marker matches also show the planned marker
  positions projected (magenta +) and the markers found (green o).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from openigrt.geometry.volume import Volume
from openigrt.workflow.matching import MatchOutcome, Projection
from openigrt.workflow.review import ReviewPanel, ReviewPicture, couch_lines

PLANE_HALF_MM = 100.0
PLANE_STEP_MM = 1.0
_TITLES = {"2d": "Simple 2D match", "2d2d": "2D/2D match", "marker": "Marker match", "3d3d": "3D/3D match"}


def sample(volume: Volume, points_mm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Trilinear samples of *volume* at patient points ``(..., 3)``; NaN outside."""
    shape = points_mm.shape[:-1]
    ijk = volume.patient_to_index(points_mm.reshape(-1, 3))
    coords = ijk[:, ::-1].T  # (k, j, i) = array axes
    vals = ndimage.map_coordinates(volume.array.astype(np.float32), coords, order=1, mode="constant", cval=np.nan)
    return vals.reshape(shape)


def _plane(center: NDArray[np.float64], u: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    n = int(2 * PLANE_HALF_MM / PLANE_STEP_MM) + 1
    s = np.linspace(-PLANE_HALF_MM, PLANE_HALF_MM, n)
    return center + s[:, None, None] * v + s[None, :, None] * u


def _volume_panels(outcome: MatchOutcome) -> list[ReviewPanel]:
    ref, ver = outcome.reference_volume, outcome.verification_volume
    assert ref is not None and ver is not None
    center = np.asarray(outcome.context.initlaseriso_mm or ver.center_mm(), dtype=float)
    inverse = outcome.transform.inverse()
    x, y, z = np.eye(3)
    planes = {"axial": (x, y), "coronal": (x, -z), "sagittal": (y, -z)}
    panels = []
    for name, (u, v) in planes.items():
        pts = _plane(center, u, v)
        acquired = sample(ver, pts)
        before = sample(ref, pts)
        after = sample(ref, inverse.apply(pts.reshape(-1, 3)).reshape(pts.shape))
        fill = np.nanmin(before) if np.isfinite(before).any() else 0.0
        panels.append(ReviewPanel(f"{name} through INITLASERISO", np.nan_to_num(before, nan=fill),
                                  np.nan_to_num(after, nan=fill), np.nan_to_num(acquired, nan=fill)))
    return panels


def _reference_image(outcome: MatchOutcome, view: int, acq: Projection, renderers: list[Any]) -> NDArray[np.floating]:
    """The reference of *view*: its reference image, else a DRR of the planning CT (the CT prepared
    once for all views: *renderers* holds the renderer after the first call)."""
    if view < len(outcome.references) and outcome.references[view].pixels.shape == acq.pixels.shape:
        return outcome.references[view].pixels
    if outcome.reference_volume is not None:
        from openigrt.sim.drr import DrrRenderer

        if not renderers:
            renderers.append(DrrRenderer(outcome.reference_volume))
        return renderers[0].render(acq.geometry)  # type: ignore[no-any-return]
    return np.zeros_like(acq.pixels)


def _projection_panels(outcome: MatchOutcome) -> list[ReviewPanel]:
    iso = np.asarray(outcome.context.initlaseriso_mm or (0.0, 0.0, 0.0), dtype=float)
    panels = []
    renderers: list[Any] = []
    for view, acq in enumerate(outcome.acquired):
        g = acq.geometry
        ref = _reference_image(outcome, view, acq, renderers)
        d_colrow = g.project(outcome.transform.apply(iso[None]))[0] - g.project(iso[None])[0]
        after = ndimage.shift(np.asarray(ref, dtype=np.float32), (d_colrow[1], d_colrow[0]), order=1, mode="nearest")
        planned = found = None
        if outcome.planned_markers_mm is not None:
            planned = g.project(outcome.planned_markers_mm)
            found_list = [m.pixel_per_view[view] for m in outcome.result.markers if m.pixel_per_view[view] is not None]
            found = np.array(found_list, dtype=float) if found_list else None
        label = acq.image.rt_image_label or f"view {view + 1}"
        panels.append(ReviewPanel(f"{label} (gantry {g.gantry_angle_deg:.0f}°)", ref, after, acq.pixels,
                                  markers_planned=planned, markers_found=found))
    return panels


def review_picture(outcome: MatchOutcome, *, truth: Mapping[str, float] | None = None) -> ReviewPicture:
    """The review picture of *outcome* (couch correction, and the ground truth when known)."""
    panels = _volume_panels(outcome) if outcome.match_type == "3d3d" else _projection_panels(outcome)
    couch = outcome.couch()
    lines = couch_lines(couch, truth) if couch else ["couch correction not available (no isocenter known)"]
    r = outcome.result
    lines.append(f"{r.metric_name} {r.metric:.4f}, {r.iterations} iterations, {r.stop_reason.value}, "
                 f"{r.elapsed_s:.2f} s")
    if outcome.adjustment_mm is not None:
        lines.append("adjusted by the user (lat, lng, vrt) mm: " + ", ".join(f"{v:+.2f}" for v in outcome.adjustment_mm))
    for m in r.markers:
        lines.append(f"marker {m.name}: residual {m.residual_mm:.2f} mm" + (" OUTLIER" if m.outlier else ""))
    return ReviewPicture(_TITLES[outcome.match_type], panels, lines)
