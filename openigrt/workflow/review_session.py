"""The review of a session work directory (SPEC MATCH-6, MATCH-7): what the browser workstation shows.

:class:`ReviewSession` opens ``WORKDIR/session.json`` and, per match, the files the match used
(``MatchRecord.inputs``: reference and acquired images, planning CT, structure set). It answers
three questions, all from the session's real data and with no state of its own besides caches:

* :meth:`describe` — every match with its decision, what was matched (images, ROI, DoF), its
  metric, the automatic couch correction with the tolerance of each axis, and its views;
* :meth:`render` — for an :class:`~openigrt.workflow.review_adjust.Adjustment`, the adjusted
  transform, its couch correction table and the re-rendered views
  (:mod:`openigrt.workflow.review_views`);
* :meth:`decide` — accept (with or without the adjustment) or reject, recorded atomically with
  who and when (:mod:`openigrt.workflow.review_decide`).

The session state is re-read from disk on every question, so a second browser (or a second
process on the same directory) sees decisions as soon as they are stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openigrt.config import Settings
from openigrt.errors import WorkflowError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.iod.dataset_io import read_file
from openigrt.workflow.review_adjust import (
    STEP_DEG,
    STEPS_MM,
    Adjustment,
    CouchFrame,
    adjusted_transform,
    correction_rows,
)
from openigrt.workflow.review_views import (
    PLANE_NAMES,
    PlaneViews,
    ProjectionInput,
    ProjectionViews,
    StructureMask,
    ViewImage,
)
from openigrt.workflow.state import PROPOSED, MatchRecord, SessionState, SessionStore

TITLES = {"2d": "Simple 2D match", "2d2d": "2D/2D match", "marker": "Marker match", "3d3d": "3D/3D match"}
#: RT ROI Interpreted Types drawn as the target (first found) and as the body.
TARGET_TYPES = ("PTV", "CTV", "GTV")
BODY_TYPES = ("EXTERNAL",)


@dataclass(frozen=True, eq=False)
class Rendering:
    """The answer to a render request: header (JSON-able) and the views' layers."""

    header: dict[str, Any]
    views: list[ViewImage]


def _drr_source(steps: list[tuple[int, int]]) -> str:
    """What the page says of its 2D references: DRRs of the moved CT, and at which ray spacing."""
    def every(n: int, what: str) -> str:
        return f"every {what}" if n == 1 else f"every {n}{'nd' if n == 2 else 'rd' if n == 3 else 'th'} {what}"

    spacing = "; ".join(f"view {i + 1}: rays {every(r, 'row')}, {every(c, 'column')}" for i, (r, c) in enumerate(steps))
    return (f"DRR of the planning CT moved by the transform ({spacing}: one ray per CT voxel plane, "
            "linearly interpolated between)" if any(r > 1 or c > 1 for r, c in steps) else
            "DRR of the planning CT moved by the transform (one ray per display pixel)")


def _transform(matrix: Any) -> RigidTransform:
    return RigidTransform(np.asarray(matrix, dtype=float))


class ReviewMatch:
    """One match as the review sees it: its record, couch frame and automatic transform."""

    def __init__(self, record: MatchRecord) -> None:
        self.record = record
        r = record.result
        self.match_id = record.match_id
        self.match_type = record.match_type
        self.dof = int(r.get("dof", 3))
        self.automatic = _transform(r.get("unadjusted_matrix") or r["matrix"])
        self.frame: CouchFrame | None = None
        if r.get("planned_isocenter_mm") and r.get("initlaseriso_mm"):
            self.frame = CouchFrame(tuple(r["planned_isocenter_mm"]), tuple(r["initlaseriso_mm"]),  # type: ignore[arg-type]
                                    str(r.get("patient_position") or "HFS"), self.dof == 6)
        self.not_seen = tuple(r.get("couch_axes_not_seen") or ())

    def transform(self, adjustment: Adjustment) -> RigidTransform:
        if adjustment.is_zero:
            return self.automatic
        if self.frame is None:
            raise WorkflowError(f"{self.match_id}: no isocenter known, the couch correction cannot be adjusted")
        return adjusted_transform(self.automatic, adjustment, self.frame)

    def correction_table(self, transform: RigidTransform, settings: Settings) -> list[dict[str, Any]]:
        if self.frame is None:
            return []
        rows = correction_rows(self.frame.correction(self.automatic), self.frame.correction(transform),
                               tolerances=settings.tolerances, not_seen=self.not_seen)
        return [row.as_dict() for row in rows]


class ReviewSession:
    """The review of the session in *workdir* (module docstring). Thread-safe."""

    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.workdir = Path(workdir)
        self.settings = settings
        self.store = SessionStore(self.workdir)
        self.lock = threading.Lock()
        self._cache_lock = threading.RLock()
        self._render_lock = threading.Lock()  # numba's parallel kernels are not re-entrant across threads
        self._views: dict[str, Any] = {}
        self._volumes: dict[tuple[str, ...], Volume] = {}
        self._renderers: dict[tuple[str, ...], Any] = {}
        self.state()

    # ------------------------------------------------------------------ state
    def state(self) -> SessionState:
        """The session state as on disk now (raises WorkflowError naming the problem)."""
        if not self.workdir.is_dir():
            raise WorkflowError(f"{self.workdir}: no such session directory")
        return self.store.load()

    def match(self, match_id: str, state: SessionState | None = None) -> ReviewMatch:
        return ReviewMatch((state or self.state()).match(match_id))

    def all_decided(self, state: SessionState | None = None) -> bool:
        state = state or self.state()
        return bool(state.matches) and all(m.decision != PROPOSED for m in state.matches)

    # ------------------------------------------------------------------ describe
    def describe(self) -> dict[str, Any]:
        state = self.state()
        return {"plan_uid": state.plan_uid, "workdir": str(self.workdir), "closed": state.closed,
                "all_decided": self.all_decided(state), "updated_at": state.updated_at,
                "steps": {"mm": list(STEPS_MM), "deg": STEP_DEG},
                "matches": [self._describe_match(ReviewMatch(r)) for r in state.matches]}

    def _describe_match(self, m: ReviewMatch) -> dict[str, Any]:
        r, rec = m.record.result, m.record
        current = _transform(r["matrix"]) if rec.decision != PROPOSED else m.automatic
        inputs = rec.inputs or {}
        images = [Path(p).name for p in inputs.get("reference", [])] + [Path(p).name for p in inputs.get("acquired", [])
                                                                         if m.match_type != "3d3d"]
        if m.match_type == "3d3d":
            images = [f"planning CT ({len(inputs.get('ct', []))} slices)",
                      f"verification CBCT ({len(inputs.get('acquired', []))} files)"]
        details = r.get("details") or {}
        roi = r.get("roi") or details.get("roi") or "none: the whole overlap of the images"
        return {
            "id": m.match_id, "type": m.match_type, "title": TITLES.get(m.match_type, m.match_type),
            "decision": rec.decision, "decided_at": rec.decided_at, "decided_by": rec.decided_by,
            "adjustment": r.get("adjustment") or ({"lat_mm": rec.adjustment_mm[0], "lng_mm": rec.adjustment_mm[1],
                                                   "vrt_mm": rec.adjustment_mm[2]} if rec.adjustment_mm else None),
            "dof": m.dof, "metric": r.get("metric"), "metric_name": r.get("metric_name"),
            "stop_reason": r.get("stop_reason"), "iterations": r.get("iterations"), "elapsed_s": r.get("elapsed_s"),
            "patient_position": m.frame.patient_position if m.frame else None,
            "matched": {"images": images, "roi": roi, "dof": m.dof},
            "automatic_matrix": m.automatic.as_list(), "matrix": current.as_list(),
            "correction": m.correction_table(current, self.settings),
            "adjustable": m.frame is not None and rec.decision == PROPOSED,
            "not_seen": list(m.not_seen), "kind": "planes" if m.match_type == "3d3d" else "projection",
            "markers": [{"name": k.get("name"), "residual_mm": k.get("residual_mm"), "outlier": k.get("outlier")}
                        for k in r.get("markers") or []],
        }

    # ------------------------------------------------------------------ render
    def render(self, match_id: str, adjustment: Adjustment, slices: Mapping[str, int] | None = None) -> Rendering:
        """The views of *match_id* for the automatic transform plus *adjustment*."""
        m = self.match(match_id)
        transform = m.transform(adjustment)
        with self._render_lock:
            return self._render(m, self.views(m), transform, adjustment, slices)

    def _render(self, m: ReviewMatch, views: ProjectionViews | PlaneViews, transform: RigidTransform,
                adjustment: Adjustment, slices: Mapping[str, int] | None) -> Rendering:
        t0 = time.perf_counter()
        match_id = m.match_id
        if isinstance(views, PlaneViews):
            rendered = views.render(transform, dict(slices or {}))
            ranges = {p: list(views.slice_range(p)) for p in PLANE_NAMES}
            source = "planning CT resampled through the transform"
        else:
            rendered = views.render(transform, m.automatic)
            ranges = {}
            source = (_drr_source(views.ray_steps(transform)) if views.uses_drr else
                      "reference image shifted by the isocenter displacement (no planning CT in the session)")
        header = {"match_id": match_id, "matrix": transform.as_list(), "adjustment": adjustment.as_dict(),
                  "correction": m.correction_table(transform, self.settings), "slice_ranges": ranges,
                  "reference_source": source, "render_s": round(time.perf_counter() - t0, 4)}
        return Rendering(header, rendered)

    def views(self, m: ReviewMatch) -> ProjectionViews | PlaneViews:
        """The (cached) view renderer of a match; built from its input files on first use."""
        with self._cache_lock:
            if m.match_id not in self._views:
                if not m.record.inputs:
                    raise WorkflowError(f"{m.match_id}: the session does not record which files the match used "
                                        "(made by an older OpenIGRT): run the match again")
                self._views[m.match_id] = (self._plane_views(m) if m.match_type == "3d3d"
                                           else self._projection_views(m))
            return self._views[m.match_id]

    def _volume(self, paths: list[str]) -> Volume:
        from openigrt.workflow.matching import read_ct

        key = tuple(paths)
        if key not in self._volumes:
            self._volumes[key] = read_ct([Path(p) for p in paths])[0].volume
        return self._volumes[key]

    def _renderer(self, paths: list[str]) -> Any:
        from openigrt.sim.drr import DrrRenderer

        key = tuple(paths)
        if key not in self._renderers:
            self._renderers[key] = DrrRenderer(self._volume(paths))
        return self._renderers[key]

    def _plane_views(self, m: ReviewMatch) -> PlaneViews:
        inputs = m.record.inputs or {}
        reference = self._volume(list(inputs["ct"] or inputs["reference"]))
        verification = self._volume(list(inputs["acquired"]))
        center = m.frame.initlaseriso_mm if m.frame else tuple(verification.center_mm())
        return PlaneViews(reference, verification, center_mm=center,
                          structures=self._structures(inputs.get("structure_set"), reference))

    def _structures(self, path: str | None, ct: Volume) -> list[StructureMask]:
        from openigrt.iod.rt_structure_set import RTStructureSet

        if not path:
            return []
        rs = RTStructureSet.from_dataset(read_file(path))
        kinds = {s.name: str(getattr(s.interpreted_type, "value", s.interpreted_type) or "").upper()
                 for s in rs.structures()}
        target = next((n for t in TARGET_TYPES for n, k in kinds.items() if k == t), None)
        chosen = [(n, "target") for n in [target] if n] + [(n, "body") for n, k in kinds.items() if k in BODY_TYPES]
        out = []
        for name, kind in chosen:
            s = rs.structure(name)
            if s is not None:
                out.append(StructureMask.from_contours(name, kind, [c.points_mm for c in s.contours], ct))
        return out

    def _projection_views(self, m: ReviewMatch) -> ProjectionViews:
        from openigrt.workflow.matching import read_projections

        inputs = m.record.inputs or {}
        acquired = read_projections([Path(p) for p in inputs["acquired"]])
        references = read_projections([Path(p) for p in inputs["reference"]]) if inputs.get("reference") else []
        jaws = self._jaws()
        markers = m.record.result.get("markers") or []
        views = []
        for i, a in enumerate(acquired):
            beam = int(a.dataset.get("ReferencedBeamNumber", 0) or 0)
            ref = references[i].pixels if i < len(references) and references[i].pixels.shape == a.pixels.shape else None
            found = tuple((k["name"], (k["pixel_per_view"][i] if i < len(k.get("pixel_per_view") or []) else None),
                           k.get("residual_mm"), bool(k.get("outlier"))) for k in markers)
            label = f"{a.image.rt_image_label or f'view {i + 1}'} (gantry {a.geometry.gantry_angle_deg:.0f}°)"
            j = jaws.get(beam, (None, 0.0))
            views.append(ProjectionInput(label, a.geometry, a.pixels, ref, j[0], j[1], found))
        ct = list(inputs.get("ct") or [])
        renderer = self._renderer(ct) if ct else None
        ctx = m.frame
        planned = ctx.planned_isocenter_mm if ctx else (0.0, 0.0, 0.0)
        laser = ctx.initlaseriso_mm if ctx else planned
        planned_markers = np.array([k["planned_mm"] for k in markers], dtype=float) if markers else None
        return ProjectionViews(views, renderer=renderer, planned_isocenter_mm=planned, initlaseriso_mm=laser,
                               planned_markers_mm=planned_markers, marker_names=[k["name"] for k in markers])

    def _jaws(self) -> dict[int, tuple[Any, float]]:
        """Per beam number of the plan: ((x1, x2), (y1, y2)) jaws at the isocenter plane and collimator angle."""
        from openigrt.iod.rt_plan import RTPlan

        plan_path = self.state().loaded.plan
        if not plan_path:
            return {}
        plan = RTPlan.from_dataset(read_file(plan_path))
        out: dict[int, tuple[Any, float]] = {}
        for b in plan.beams:
            cp = b.first_control_point
            if cp is None:
                continue
            found = {str(d.rt_beam_limiting_device_type).upper()[-1]: tuple(d.leaf_jaw_positions_mm)
                     for d in cp.beam_limiting_device_positions
                     if str(d.rt_beam_limiting_device_type).upper() in ("X", "Y", "ASYMX", "ASYMY")
                     and len(d.leaf_jaw_positions_mm) == 2}
            if "X" in found and "Y" in found:
                out[int(b.beam_number)] = ((found["X"], found["Y"]), float(cp.beam_limiting_device_angle_deg or 0.0))
        return out

    # ------------------------------------------------------------------ decide
    def decide(self, match_id: str, decision: str, adjustment: Adjustment, *, shown_matrix: Any = None,
               decided_by: str) -> SessionState:
        """Record *decision* on *match_id* (see :func:`openigrt.workflow.review_decide.record_decision`)."""
        from openigrt.workflow.review_decide import record_decision

        with self.lock:
            return record_decision(self, match_id, decision, adjustment, shown_matrix=shown_matrix,
                                   decided_by=decided_by)
