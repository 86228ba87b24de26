"""Durable session state of a treatment fraction (issue "whole fraction", SPEC LOAD-3, MATCH-7).

The state of a session — what was loaded, acquired, matched, accepted, created and stored — is one
JSON document ``session.json`` in the session directory, rewritten atomically (temporary file,
fsync, rename, fsync of the directory) after every step. A session that is killed at any point
can be resumed: completed steps are not repeated, and every created object is stored exactly once
(an object is marked ``stored`` only after the TMS answered success for it).

Step order::

    echo → load (plan, structure set, CT, references) → validate → acquire → match → review
         → accept / reject / adjust → close fraction (store every accepted, unstored object)
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from openigrt.errors import WorkflowError

STATE_FILE = "session.json"
LOCK_FILE = "session.lock"
STATE_VERSION = 1

#: Review decisions of a match (MATCH-7).
PROPOSED = "proposed"
ACCEPTED = "accepted"
REJECTED = "rejected"
DECISIONS = (PROPOSED, ACCEPTED, REJECTED)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LoadedObjects:
    """What LOAD-1/LOAD-2 brought into the session (paths are relative to the session dir)."""

    plan: str | None = None
    structure_set: str | None = None
    ct: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Acquisition:
    """One acquisition (kV/MV pair, single projection, or CBCT) and its files."""

    acquisition_id: str
    kind: str  # "kv", "mv", "cbct"
    beams: tuple[int, ...]
    files: tuple[str, ...]
    truth: str | None = None  # truth.json of the virtual imager, when simulated
    source: str = "virtual"  # "virtual", "files", "received"


@dataclass(frozen=True)
class MatchRecord:
    """A match result and the user's decision on it."""

    match_id: str
    match_type: str  # "2d", "2d2d", "marker", "3d3d"
    acquisition_id: str
    result: dict[str, Any]
    decision: str = PROPOSED
    adjustment_mm: tuple[float, float, float] | None = None  # (lat, lng, vrt) added by the user
    review_png: str | None = None
    decided_at: str | None = None
    adjustment_deg: tuple[float, float, float] | None = None  # (rtn, pitch, roll) added by the user (6 DoF)
    decided_by: str | None = None  # who decided: "cli", "script", or "browser at <calling host>"
    inputs: dict[str, Any] | None = None  # files the match used: reference, acquired, ct, structure_set


@dataclass(frozen=True)
class CreatedObject:
    """A DICOM object the session created, and whether the TMS has it."""

    sop_instance_uid: str
    sop_class_uid: str
    kind: str  # "REG", "RTSTRUCT-ISO", "RTSTRUCT-MARKER", "RTIMAGE", "CT"
    path: str
    match_id: str | None = None
    stored: bool = False
    store_status: str | None = None
    stored_at: str | None = None


@dataclass(frozen=True)
class SessionState:
    """The whole session; every change goes through :meth:`SessionStore.save`."""

    plan_uid: str
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    version: int = STATE_VERSION
    echo_ok: bool = False
    loaded: LoadedObjects = field(default_factory=LoadedObjects)
    validated: dict[str, bool] = field(default_factory=dict)  # match type -> possible
    acquisitions: tuple[Acquisition, ...] = ()
    matches: tuple[MatchRecord, ...] = ()
    created: tuple[CreatedObject, ...] = ()
    closed: bool = False

    # ------------------------------------------------------------------ queries
    def match(self, match_id: str) -> MatchRecord:
        for m in self.matches:
            if m.match_id == match_id:
                return m
        raise WorkflowError(f"session has no match {match_id!r}")

    def acquisition(self, acquisition_id: str) -> Acquisition:
        for a in self.acquisitions:
            if a.acquisition_id == acquisition_id:
                return a
        raise WorkflowError(f"session has no acquisition {acquisition_id!r}")

    def unstored(self) -> tuple[CreatedObject, ...]:
        """The objects to send at "close fraction": one version per SOP Instance UID, not yet stored.

        Objects of accepted matches and objects of no match (acquired images) qualify. When one
        instance exists in several versions (an acquired RT Image, and the same image with the
        marker curves of an accepted marker match, IOD-5), the match's version wins. An instance
        any version of which was stored is never sent again.
        """
        accepted = {m.match_id for m in self.matches if m.decision == ACCEPTED}
        stored = {c.sop_instance_uid for c in self.created if c.stored}
        chosen: dict[str, CreatedObject] = {}
        for c in self.created:
            if c.sop_instance_uid in stored or not (c.match_id is None or c.match_id in accepted):
                continue
            if c.sop_instance_uid not in chosen or c.match_id is not None:
                chosen[c.sop_instance_uid] = c
        return tuple(chosen.values())

    # ------------------------------------------------------------------ updates (pure)
    def with_acquisition(self, acq: Acquisition) -> SessionState:
        others = tuple(a for a in self.acquisitions if a.acquisition_id != acq.acquisition_id)
        return replace(self, acquisitions=others + (acq,))

    def with_match(self, record: MatchRecord) -> SessionState:
        others = tuple(m for m in self.matches if m.match_id != record.match_id)
        return replace(self, matches=others + (record,))

    def with_decision(
        self, match_id: str, decision: str, adjustment_mm: tuple[float, float, float] | None = None, *,
        adjustment_deg: tuple[float, float, float] | None = None, decided_by: str | None = None,
    ) -> SessionState:
        if decision not in DECISIONS:
            raise WorkflowError(f"decision must be one of {DECISIONS}, got {decision!r}")
        rec = replace(self.match(match_id), decision=decision, adjustment_mm=adjustment_mm,
                      adjustment_deg=adjustment_deg, decided_by=decided_by, decided_at=_now())
        return self.with_match(rec)

    def with_created(self, obj: CreatedObject) -> SessionState:
        """Add or replace the object with the same (SOP Instance UID, match)."""
        key = (obj.sop_instance_uid, obj.match_id)
        others = tuple(c for c in self.created if (c.sop_instance_uid, c.match_id) != key)
        return replace(self, created=others + (obj,))

    def without_match_objects(self, match_id: str) -> SessionState:
        """Drop the (unstored) objects of a match, e.g. before rebuilding them after an adjustment."""
        return replace(self, created=tuple(c for c in self.created if c.match_id != match_id or c.stored))

    def with_stored(self, obj: CreatedObject, status: str) -> SessionState:
        """Mark *obj* (this version of the instance) as stored with *status*."""
        for c in self.created:
            if (c.sop_instance_uid, c.match_id) == (obj.sop_instance_uid, obj.match_id):
                return self.with_created(replace(c, stored=True, store_status=status, stored_at=_now()))
        raise WorkflowError(f"session created no object {obj.sop_instance_uid}")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SessionState:
        if not isinstance(doc, dict):
            raise WorkflowError(f"session state is damaged: expected a JSON object, got {type(doc).__name__}")
        if doc.get("version") != STATE_VERSION:
            raise WorkflowError(f"session state version {doc.get('version')!r} is not {STATE_VERSION}")
        try:
            return cls(
                plan_uid=doc["plan_uid"],
                created_at=doc["created_at"],
                updated_at=doc["updated_at"],
                version=doc["version"],
                echo_ok=bool(doc["echo_ok"]),
                loaded=_build(LoadedObjects, doc["loaded"]),
                validated=dict(doc["validated"]),
                acquisitions=tuple(_build(Acquisition, a) for a in doc["acquisitions"]),
                matches=tuple(_build(MatchRecord, m) for m in doc["matches"]),
                created=tuple(_build(CreatedObject, c) for c in doc["created"]),
                closed=bool(doc["closed"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise WorkflowError(f"session state is damaged: {exc}") from None


def _build(cls: type, data: dict[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            value = data[f.name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


class SessionStore:
    """Reads and atomically writes ``session.json`` in a session directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of the session (``session.lock``, flock) across threads and processes.

        Hold it around read-check-write sequences that must not interleave, e.g. recording a
        decision taken in a browser while another browser decides the same match.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> SessionState:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise WorkflowError(f"no session in {self.directory} (missing {STATE_FILE})") from None
        except json.JSONDecodeError as exc:
            raise WorkflowError(f"{self.path}: session state is not valid JSON: {exc}") from None
        return SessionState.from_json(doc)

    def save(self, state: SessionState) -> SessionState:
        """Write *state* durably (temp file, fsync, rename, fsync dir); return it with updated_at."""
        state = replace(state, updated_at=_now())
        self.directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(state.to_json(), indent=2).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=".session-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return state
