"""Recording a decision taken in the review workstation (SPEC MATCH-7, IOD-1).

:func:`record_decision` is the only writer of browser decisions. Under the session lock
(:meth:`~openigrt.workflow.state.SessionStore.lock`: threads and processes) it re-reads the state,
refuses a match that is already decided (a decision is final; two simultaneous accepts store
one), checks that the transform the page showed is the one the adjustment gives, and in **one**
atomic state write records the decision, the adjustment, who (the calling host) and when, and —
for an adjusted accept — the match's new Spatial Registration carrying exactly that transform
(the REG of the automatic result is dropped; it was never stored). Nothing is sent here: the
fraction's "close" step stores accepted objects.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openigrt.errors import WorkflowError
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod.build import write_file
from openigrt.iod.dataset_io import read_file
from openigrt.workflow.matching import SUB_TYPES
from openigrt.workflow.review_adjust import Adjustment
from openigrt.workflow.state import ACCEPTED, PROPOSED, REJECTED, CreatedObject, MatchRecord, SessionState

if TYPE_CHECKING:
    from openigrt.workflow.review_session import ReviewMatch, ReviewSession

#: How far (per matrix element) the page's transform may be from the recomputed one.
SHOWN_MATRIX_TOLERANCE = 1e-9


class AlreadyDecided(WorkflowError):
    """The match was decided before (by this or another browser, or the command line)."""


def record_decision(review: ReviewSession, match_id: str, decision: str, adjustment: Adjustment, *,
                    shown_matrix: Any, decided_by: str) -> SessionState:
    """Record *decision* (accepted / rejected) on *match_id*; return the saved state (module docstring)."""
    if decision not in (ACCEPTED, REJECTED):
        raise WorkflowError(f"decision must be {ACCEPTED} or {REJECTED}, got {decision!r}")
    with review.store.lock():
        state = review.state()
        record = state.match(match_id)
        if record.decision != PROPOSED:
            raise AlreadyDecided(f"the {match_id} match was already {record.decision}"
                                 + (f" at {record.decided_at}" if record.decided_at else "")
                                 + (f" by {record.decided_by}" if record.decided_by else ""))
        m = review.match(match_id, state)
        if decision == REJECTED:
            return review.store.save(state.with_decision(match_id, REJECTED, decided_by=decided_by))
        transform = m.transform(adjustment)
        if shown_matrix is not None:
            shown = np.asarray(shown_matrix, dtype=float)
            if shown.shape != (4, 4) or not np.allclose(shown, transform.matrix, rtol=0, atol=SHOWN_MATRIX_TOLERANCE):
                raise WorkflowError(f"the {match_id} match shown in the page is not the adjustment sent; reload the page")
        old_reg: list[CreatedObject] = []
        if not adjustment.is_zero:
            record = replace(record, result=adjusted_result(m, transform, adjustment))
            state = state.with_match(record)
            state, old_reg = _with_adjusted_registration(review, state, record, transform)
        state = state.with_decision(match_id, ACCEPTED, None if adjustment.is_zero else adjustment.translation_mm,
                                    adjustment_deg=adjustment.rotation_deg if adjustment.has_rotation else None,
                                    decided_by=decided_by)
        saved = review.store.save(state)
    for c in old_reg:  # after the save: a crash before it leaves the old state whole
        Path(c.path).unlink(missing_ok=True)
    return saved


def adjusted_result(m: ReviewMatch, transform: RigidTransform, adjustment: Adjustment) -> dict[str, Any]:
    """The match's result document for the adjusted transform (the automatic values kept alongside)."""
    r = dict(m.record.result)
    correction = m.frame.correction(transform) if m.frame else None
    r.update({
        "matrix": transform.as_list(),
        "translation_mm": [float(v) for v in transform.translation_mm],
        "rotation_deg": [float(v) for v in transform.rotation_deg()],
        "couch": correction,
        "automatic_couch": m.record.result.get("automatic_couch", m.record.result.get("couch")),
        "unadjusted_matrix": m.automatic.as_list(),
        "adjustment": adjustment.as_dict(),
        "adjustment_mm": dict(zip(("lat_mm", "lng_mm", "vrt_mm"), adjustment.translation_mm)),
    })
    return json.loads(json.dumps(r, default=float))


def _with_adjusted_registration(review: ReviewSession, state: SessionState, record: MatchRecord,
                                transform: RigidTransform) -> tuple[SessionState, list[CreatedObject]]:
    """Replace the match's unstored REG by one of *transform* (IOD-1); returns the state and the old REGs."""
    from openigrt.iod.build.spatial_registration import build_spatial_registration

    m = record.match_id
    old = [c for c in state.created if c.match_id == m and c.kind == "REG" and not c.stored]
    if not review.settings.storage.store_registrations:
        return state, []
    inputs = record.inputs or {}
    reference = inputs["reference"] if record.match_type in ("2d", "2d2d") else inputs["ct"]
    verification = [read_file(p).dataset for p in inputs["acquired"]]
    if record.match_type == "3d3d":
        verification = [ds for ds in verification if str(ds.get("Modality", "")).upper() == "CT"]
    sub = SUB_TYPES[record.match_type]
    ds = build_spatial_registration(
        reference_images=[read_file(p).dataset for p in reference], verification_images=verification,
        transform=transform, registration_sub_type=sub, settings=review.settings, content_label=f"MATCH_{sub}",
        content_description=f"OpenIGRT {record.match_type} match (adjusted by the user)")
    path = write_file(ds, review.workdir / "created" / m / f"REG_{ds.SOPInstanceUID}.dcm")
    kept = tuple(c for c in state.created if c not in old)
    state = replace(state, created=kept).with_created(
        CreatedObject(str(ds.SOPInstanceUID), str(ds.SOPClassUID), "REG", str(path), match_id=m))
    return state, old
