"""Query/Retrieve SCU: Study Root C-FIND and C-MOVE at IMAGE level by SOP Instance UID (NET-3 … NET-6).

Identifier keys are exactly those of NET-3: Query/Retrieve Level ``IMAGE``, SOP Instance UID,
Study Instance UID and Series Instance UID (empty return keys for C-FIND unless known; values
when known for C-MOVE). No Specific Character Set is ever put in a query and it is ignored in
responses; no C-CANCEL is ever sent. The move destination is our own AE title.

Hierarchical fallback (documented extension of NET-3): a strictly hierarchical provider (DCMTK
``dcmqrscp``) refuses a SOP-only IMAGE C-FIND (C000) and answers a SOP-only IMAGE C-MOVE with
success and **zero** sub-operations. When that happens and the parents are not known, they are
found by a STUDY-level query (all studies, or the known one), SERIES-level queries in each, and
an IMAGE-level query with both UIDs; the request is then retried with them.

Outcomes follow :func:`~openigrt.net.status.find_outcome` / :func:`~openigrt.net.status.move_outcome`;
a move also checks the completed / failed / warning sub-operation counts and that the instance is
in our cache afterwards (the Storage SCP answers success only once it is indexed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from openigrt.errors import RetrieveError
from openigrt.net import sop
from openigrt.net.dimse import (
    PRIORITY_MEDIUM,
    Response,
    ResponseTap,
    context_id_for,
    context_syntax,
    decode_identifier,
    encode_identifier,
    send_request,
)
from openigrt.net.status import QueryOutcome, Service, classify, find_outcome, move_outcome

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

    from openigrt.net.cache import CachedInstance, InstanceCache

LOG = logging.getLogger("openigrt.net.qr")

LEVEL_IMAGE: Final = "IMAGE"
LEVEL_SERIES: Final = "SERIES"
LEVEL_STUDY: Final = "STUDY"
_UID_KEYS: Final = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class Match:
    """One C-FIND match (only the NET-3 keys are kept)."""

    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"sop_instance_uid": self.sop_instance_uid, "study_instance_uid": self.study_instance_uid,
                "series_instance_uid": self.series_instance_uid}


@dataclass(frozen=True)
class FindResult:
    """Result of locating one instance with C-FIND (NET-5)."""

    sop_instance_uid: str
    matches: tuple[Match, ...]
    status: int | None
    message: str = ""
    fallback_used: bool = False

    @property
    def found(self) -> bool:
        return bool(self.matches)

    def raise_for_status(self) -> None:
        """Raise :class:`~openigrt.errors.RetrieveError` ("object not found") unless found."""
        if not self.found:
            raise RetrieveError(f"object not found: {self.sop_instance_uid}: {self.message}", status=self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"sop_instance_uid": self.sop_instance_uid, "found": self.found,
                "status": None if self.status is None else f"0x{self.status:04X}", "message": self.message,
                "fallback_used": self.fallback_used, "matches": [m.as_dict() for m in self.matches]}


class MoveOutcome(str, Enum):
    """Per-instance result of a retrieve task (NET-6)."""

    RETRIEVED = "retrieved"
    WARNING = "warning"
    FAILED = "failed"
    NOT_TRIED = "not tried"


@dataclass(frozen=True)
class MoveResult:
    """Result of moving one instance into our cache (NET-6)."""

    sop_instance_uid: str
    outcome: MoveOutcome
    status: int | None = None
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    message: str = ""
    path: str = ""
    fallback_used: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"sop_instance_uid": self.sop_instance_uid, "outcome": self.outcome.value,
                "status": None if self.status is None else f"0x{self.status:04X}", "completed": self.completed,
                "failed": self.failed, "warning": self.warning, "message": self.message, "path": self.path,
                "fallback_used": self.fallback_used}


@dataclass(frozen=True)
class MoveReport:
    """Per-instance results of a retrieve task; ``error`` explains a task that stopped early."""

    remote: str
    results: tuple[MoveResult, ...]
    error: str = ""
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and all(r.outcome in (MoveOutcome.RETRIEVED, MoveOutcome.WARNING) for r in self.results)

    @property
    def paths(self) -> dict[str, str]:
        """``{SOP Instance UID: cached path}`` of every retrieved instance."""
        return {r.sop_instance_uid: r.path for r in self.results if r.path}

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        return f"{len(self.results)} instance(s) from {self.remote}: " + ", ".join(f"{v} {k}" for k, v in counts.items())

    def failure_text(self) -> str:
        """One line: the summary, then why the task stopped or the first instance not retrieved and why."""
        bad = next((r for r in self.results if r.outcome not in (MoveOutcome.RETRIEVED, MoveOutcome.WARNING)), None)
        detail = self.error or (f"first failure: {bad.sop_instance_uid}: {bad.message}" if bad else "")
        return f"{self.summary()}; {detail}".rstrip("; ")

    def raise_for_status(self) -> None:
        """Raise :class:`~openigrt.errors.RetrieveError` unless every instance was retrieved."""
        if not self.ok:
            bad = next((r for r in self.results if r.outcome not in (MoveOutcome.RETRIEVED, MoveOutcome.WARNING)), None)
            raise RetrieveError(self.failure_text(), status=bad.status if bad else None)

    def as_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "ok": self.ok, "error": self.error, "elapsed_s": round(self.elapsed_s, 3),
                "summary": self.summary(), "results": [r.as_dict() for r in self.results]}


# --------------------------------------------------------------------------- identifiers
def make_identifier(level: str, *, sop_instance_uid: str | Sequence[str] | None = None,
                    study_instance_uid: str | None = None, series_instance_uid: str | None = None,
                    return_keys: bool = True) -> Dataset:
    """Build a NET-3 identifier (no Specific Character Set, only the NET-3 keys).

    For C-FIND (*return_keys* True) unknown Study/Series Instance UIDs are sent empty (universal
    matching / return keys). For C-MOVE (*return_keys* False) they are sent only when known:
    a move identifier carries unique keys with values (PS3.4 C.4.2.2.1).

    >>> ds = make_identifier("IMAGE", sop_instance_uid="1.2.3")
    >>> sorted(e.keyword for e in ds), ds.StudyInstanceUID
    (['QueryRetrieveLevel', 'SOPInstanceUID', 'SeriesInstanceUID', 'StudyInstanceUID'], '')
    >>> sorted(e.keyword for e in make_identifier("IMAGE", sop_instance_uid="1.2.3", return_keys=False))
    ['QueryRetrieveLevel', 'SOPInstanceUID']
    """
    from pydicom import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = level
    if study_instance_uid or return_keys:
        ds.StudyInstanceUID = study_instance_uid or ""
    if level in (LEVEL_SERIES, LEVEL_IMAGE) and (series_instance_uid or return_keys):
        ds.SeriesInstanceUID = series_instance_uid or ""
    if level == LEVEL_IMAGE:
        ds.SOPInstanceUID = list(sop_instance_uid) if isinstance(sop_instance_uid, list | tuple) else (sop_instance_uid or "")
    return ds


def _match(ident: Dataset | None) -> Match | None:
    if ident is None:
        return None
    values = {k: str(ident.get(k, "") or "").strip() for k in _UID_KEYS}  # Specific Character Set ignored
    return Match(values["SOPInstanceUID"], values["StudyInstanceUID"], values["SeriesInstanceUID"])


# --------------------------------------------------------------------------- exchanges
@dataclass
class QRSession:
    """An established Q/R association plus what is needed to talk on it."""

    assoc: Any
    tap: ResponseTap
    peer: str
    dimse_timeout: float
    move_destination: str
    log: list[str] = field(default_factory=list)

    def _context(self, model: str) -> tuple[int, str]:
        cx = context_id_for(self.assoc, model)
        if cx is None:
            raise RetrieveError(f"{self.peer} did not accept {sop.sop_class_name(model)}")
        return cx, context_syntax(self.assoc, cx)

    def c_find(self, ident: Dataset) -> tuple[int, list[Match]]:
        """Send one C-FIND; return (final status, matches). Raises DimseTimeout / AssociationAborted."""
        from pynetdicom.dimse_primitives import C_FIND

        cx, ts = self._context(sop.STUDY_ROOT_QR_FIND)
        req = C_FIND()
        req.MessageID = self.tap.new_message_id()
        req.AffectedSOPClassUID = sop.STUDY_ROOT_QR_FIND
        req.Priority = PRIORITY_MEDIUM
        req.Identifier = encode_identifier(ident, ts)
        send_request(self.assoc, req, cx)
        matches: list[Match] = []
        while True:
            rsp = self.tap.wait(self.assoc, req.MessageID, timeout=self.dimse_timeout, peer=self.peer,
                                what=f"C-FIND ({ident.QueryRetrieveLevel})")
            outcome = find_outcome(rsp.status)
            if outcome is QueryOutcome.PENDING:
                m = _match(decode_identifier(rsp.data, ts))
                if m is not None:
                    matches.append(m)
                continue
            if outcome is QueryOutcome.FAILED:
                LOG.info("C-FIND %s on %s: %s %s", ident.QueryRetrieveLevel, self.peer,
                         classify(rsp.status, Service.FIND), rsp.comment)
            return rsp.status, matches

    def c_move(self, ident: Dataset, on_pending: Callable[[Response], None] | None = None) -> Response:
        """Send one C-MOVE to our AE title; return the final response (pending ones go to *on_pending*)."""
        from pynetdicom.dimse_primitives import C_MOVE

        cx, ts = self._context(sop.STUDY_ROOT_QR_MOVE)
        req = C_MOVE()
        req.MessageID = self.tap.new_message_id()
        req.AffectedSOPClassUID = sop.STUDY_ROOT_QR_MOVE
        req.Priority = PRIORITY_MEDIUM
        req.MoveDestination = self.move_destination
        req.Identifier = encode_identifier(ident, ts)
        send_request(self.assoc, req, cx)
        while True:
            rsp = self.tap.wait(self.assoc, req.MessageID, timeout=self.dimse_timeout, peer=self.peer, what="C-MOVE")
            if move_outcome(rsp.status) is QueryOutcome.PENDING:
                if on_pending is not None:
                    on_pending(rsp)
                continue
            return rsp


# --------------------------------------------------------------------------- find
def locate(session: QRSession, uid: str, *, study: str | None = None, series: str | None = None) -> FindResult:
    """C-FIND one instance at IMAGE level; fall back to a hierarchical search when refused/empty."""
    code, matches = session.c_find(make_identifier(LEVEL_IMAGE, sop_instance_uid=uid, study_instance_uid=study,
                                                   series_instance_uid=series))
    matches = [m for m in matches if m.sop_instance_uid in ("", uid)]
    if matches:
        return FindResult(uid, tuple(_complete(m, uid) for m in matches), code, "")
    first = classify(code, Service.FIND)
    if study and series:
        return FindResult(uid, (), code, _not_found_text(code, first))
    LOG.info("IMAGE-level C-FIND of %s on %s gave %s; searching the hierarchy", uid, session.peer, first)
    found = _hierarchical_find(session, uid, study=study)
    if found:
        return FindResult(uid, tuple(found), code, "", fallback_used=True)
    return FindResult(uid, (), code, _not_found_text(code, first) + " (hierarchical search found nothing either)",
                      fallback_used=True)


def _complete(m: Match, uid: str) -> Match:
    return m if m.sop_instance_uid else Match(uid, m.study_instance_uid, m.series_instance_uid)


def _not_found_text(code: int, info: Any) -> str:
    if find_outcome(code) is QueryOutcome.COMPLETE:
        return "no match (C-FIND completed with 0 matches)"
    return f"C-FIND failed with {info}"


def _hierarchical_find(session: QRSession, uid: str, *, study: str | None) -> list[Match]:
    studies = [study] if study else _uids(session, make_identifier(LEVEL_STUDY), "study_instance_uid")
    for st in studies:
        for se in _uids(session, make_identifier(LEVEL_SERIES, study_instance_uid=st), "series_instance_uid"):
            code, matches = session.c_find(make_identifier(LEVEL_IMAGE, sop_instance_uid=uid, study_instance_uid=st,
                                                           series_instance_uid=se))
            hits = [_complete(Match(m.sop_instance_uid, m.study_instance_uid or st, m.series_instance_uid or se), uid)
                    for m in matches if m.sop_instance_uid in ("", uid)]
            if hits:
                return hits
    return []


def _uids(session: QRSession, ident: Dataset, attr: str) -> list[str]:
    code, matches = session.c_find(ident)
    if find_outcome(code) is QueryOutcome.FAILED:
        LOG.info("%s-level C-FIND on %s failed: %s", ident.QueryRetrieveLevel, session.peer, classify(code, Service.FIND))
    return sorted({getattr(m, attr) for m in matches if getattr(m, attr)})


# --------------------------------------------------------------------------- move
def _counts(rsp: Response) -> tuple[int | None, int | None, int | None]:
    return (rsp.count("NumberOfCompletedSuboperations"), rsp.count("NumberOfFailedSuboperations"),
            rsp.count("NumberOfWarningSuboperations"))


def move_one(session: QRSession, cache: InstanceCache, uid: str, *, study: str | None = None,
             series: str | None = None) -> MoveResult:
    """C-MOVE one instance into our cache, with the hierarchical fallback (NET-6)."""
    result = _move_attempt(session, cache, uid, study, series)
    if result.outcome in (MoveOutcome.RETRIEVED, MoveOutcome.WARNING) or (study and series):
        return result
    if result.status is not None and move_outcome(result.status) is QueryOutcome.FAILED and result.status == 0xA801:
        return result  # destination unknown: the parents would not help
    found = locate(session, uid, study=study, series=series)
    if not found.found:
        return MoveResult(uid, MoveOutcome.FAILED, result.status, result.completed, result.failed, result.warning,
                          f"{result.message}; {found.message}", fallback_used=True)
    m = found.matches[0]
    LOG.info("retrying C-MOVE of %s with study %s / series %s", uid, m.study_instance_uid, m.series_instance_uid)
    retry = _move_attempt(session, cache, uid, m.study_instance_uid or study, m.series_instance_uid or series)
    return replace(retry, fallback_used=True)


def _move_attempt(session: QRSession, cache: InstanceCache, uid: str, study: str | None, series: str | None) -> MoveResult:
    ident = make_identifier(LEVEL_IMAGE, sop_instance_uid=uid, study_instance_uid=study, series_instance_uid=series,
                            return_keys=False)
    rsp = session.c_move(ident)
    return judge_move(rsp, cache, uid, session.peer)


def judge_move(rsp: Response, cache: InstanceCache, uid: str, peer: str) -> MoveResult:
    """Turn a final C-MOVE response into a per-instance result (status, counts, presence in cache)."""
    code = rsp.status
    completed, failed, warning = _counts(rsp)
    info = classify(code, Service.MOVE)
    outcome = move_outcome(code)
    row: CachedInstance | None = cache.get(uid)
    path = str(row.path) if row is not None else ""
    comment = f" ({rsp.comment})" if rsp.comment else ""
    if outcome is QueryOutcome.FAILED:
        extra = " - is our AE title configured as a move destination on the provider?" if code in (0xA801, 0xC000) else ""
        return MoveResult(uid, MoveOutcome.FAILED, code, completed, failed, warning,
                          f"C-MOVE failed with {info}{comment}{extra}", "")
    if not row:
        why = ("success with 0 sub-operations (provider found nothing to move)" if not completed and not failed
               else f"{completed or 0} completed, {failed or 0} failed sub-operations, but the instance is not in our cache")
        return MoveResult(uid, MoveOutcome.FAILED, code, completed, failed, warning, f"nothing retrieved: {why}", "")
    if outcome is QueryOutcome.WARNING or failed or warning:
        LOG.warning("C-MOVE of %s from %s: %s; %s failed, %s warning sub-operations%s", uid, peer, info, failed,
                    warning, comment)
        return MoveResult(uid, MoveOutcome.WARNING, code, completed, failed, warning,
                          f"{info}: {failed or 0} failed / {warning or 0} warning sub-operation(s){comment}", path)
    return MoveResult(uid, MoveOutcome.RETRIEVED, code, completed, failed, warning, "", path)


def move_batch(session: QRSession, cache: InstanceCache, uids: Sequence[str], *, study: str | None = None,
               series: str | None = None) -> Response:
    """One C-MOVE with a multi-valued SOP Instance UID (fast path); per-UID presence is checked by the caller."""
    ident = make_identifier(LEVEL_IMAGE, sop_instance_uid=list(uids), study_instance_uid=study,
                            series_instance_uid=series, return_keys=False)
    return session.c_move(ident)
