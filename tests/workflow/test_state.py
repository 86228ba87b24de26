"""Session state survives a kill: atomic writes, resume, store-once bookkeeping."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openigrt.errors import WorkflowError
from openigrt.workflow.state import (
    ACCEPTED,
    REJECTED,
    Acquisition,
    CreatedObject,
    MatchRecord,
    SessionState,
    SessionStore,
)


def _state() -> SessionState:
    s = SessionState(plan_uid="1.2.3")
    s = s.with_acquisition(Acquisition("acq1", "kv", (3, 4), ("a.dcm", "b.dcm"), truth="truth.json"))
    s = s.with_match(MatchRecord("m1", "2d2d", "acq1", {"couch": {"lat_mm": 1.0}}))
    s = s.with_match(MatchRecord("m2", "3d3d", "acq1", {"couch": {"lat_mm": 2.0}}))
    s = s.with_created(CreatedObject("9.1", "1.2.840.10008.5.1.4.1.1.66.1", "REG", "reg1.dcm", match_id="m1"))
    s = s.with_created(CreatedObject("9.2", "1.2.840.10008.5.1.4.1.1.66.1", "REG", "reg2.dcm", match_id="m2"))
    s = s.with_created(CreatedObject("9.3", "1.2.840.10008.5.1.4.1.1.481.1", "RTIMAGE", "ri.dcm"))
    return s


def test_round_trip(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    saved = store.save(_state())
    loaded = store.load()
    assert loaded == saved
    assert loaded.acquisition("acq1").beams == (3, 4)


def test_only_accepted_unstored_objects_are_sent_once(tmp_path: Path) -> None:
    s = _state().with_decision("m1", ACCEPTED, (0.5, 0.0, -1.0)).with_decision("m2", REJECTED)
    assert [c.sop_instance_uid for c in s.unstored()] == ["9.1", "9.3"]
    s = s.with_stored(s.unstored()[0], "0000")
    assert [c.sop_instance_uid for c in s.unstored()] == ["9.3"]
    assert s.match("m1").adjustment_mm == (0.5, 0.0, -1.0)


def test_atomic_write_leaves_no_temp_and_old_state_survives_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(tmp_path)
    store.save(_state())
    before = store.path.read_bytes()

    def boom(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save(_state().with_decision("m1", ACCEPTED))
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session.json"]


def test_damaged_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "session.json").write_text("{not json")
    with pytest.raises(WorkflowError, match="not valid JSON"):
        SessionStore(tmp_path).load()
    (tmp_path / "session.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(WorkflowError, match="version"):
        SessionStore(tmp_path).load()


def test_bad_decision_rejected() -> None:
    with pytest.raises(WorkflowError):
        _state().with_decision("m1", "maybe")
    with pytest.raises(WorkflowError):
        _state().with_decision("nope", ACCEPTED)


def test_match_version_of_an_image_wins_and_is_sent_once() -> None:
    s = _state()
    s = s.with_match(MatchRecord("mk", "marker", "acq1", {}))
    s = s.with_created(CreatedObject("9.3", "1.2.840.10008.5.1.4.1.1.481.1", "RTIMAGE-CURVES", "ri_curves.dcm",
                                     match_id="mk"))
    assert {c.path for c in s.unstored() if c.sop_instance_uid == "9.3"} == {"ri.dcm"}  # marker match not accepted
    s = s.with_decision("mk", ACCEPTED)
    chosen = [c for c in s.unstored() if c.sop_instance_uid == "9.3"]
    assert [c.path for c in chosen] == ["ri_curves.dcm"]
    s = s.with_stored(chosen[0], "0000")
    assert all(c.sop_instance_uid != "9.3" for c in s.unstored())
    assert s.without_match_objects("mk").created == s.created  # stored versions are kept
