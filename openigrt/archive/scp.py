"""The archive's DIMSE services over pynetdicom: C-ECHO, C-STORE, C-FIND and C-MOVE SCP (ARCHIVE-1).

* **C-STORE** (PS3.4 B.2.2): every storage SOP class pynetdicom knows, in every transfer syntax
  pydicom knows (Explicit VR LE preferred, then Implicit VR LE, then the proposed syntax such as
  MPEG2 for RT Image cine). The data set bytes are stored unchanged, durably, before the answer.
  Statuses: 0000 stored; 0117 SOP Instance UID missing/invalid or not the command's Affected
  SOP Instance UID; A900 SOP Class differs from the command or a Study/Series UID is missing;
  C000 undecodable stream; A700 the file or the index could not be written.
* **C-FIND** (PS3.4 C.4.1) through pynetdicom's Q/R service and our handler: pending FF00 per
  match (FF01 when an optional key could not be matched), A900 bad identifier, A700 index
  failure, FE00 after C-CANCEL, then 0000.
* **C-MOVE** (PS3.4 C.4.2) is served by :class:`MoveSCP`, our own implementation, so that every
  status is the right one (pynetdicom's built-in C-MOVE cannot answer A900 before contacting
  the destination). See :meth:`MoveSCP.serve`.

The acceptor side is a pynetdicom ``AssociationServer`` with our :class:`ArchiveRequestHandler`:
it sets TCP_NODELAY on the accepted socket, shares the (read-only) supported contexts instead of
deep-copying ~170 of them per association (~30 ms each), and routes C-MOVE requests of the
Patient/Study Root MOVE classes to :class:`MoveSCP`. These hooks use pynetdicom 3.0 internals
(``RequestHandler._create_association``, ``Association._serve_request``); pyproject pins
pynetdicom < 4 and the archive tests exercise every hook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from openigrt.archive.destinations import MoveDestinations
from openigrt.archive.index import Located
from openigrt.archive.model import FIND_MODELS, MOVE_MODELS
from openigrt.archive.query import Operation, Query, build_identifier, element_texts, match_text, parse_identifier
from openigrt.archive.store import ArchiveStore, check_instance, read_index_header
from openigrt.config import RemoteAE, Settings
from openigrt.errors import (
    AssociationAborted,
    CacheError,
    DicomInputError,
    DimseTimeout,
    NetworkError,
    UnsupportedObjectError,
)
from openigrt.archive.sender import StoreAssociation
from openigrt.net.ae import set_tcp_nodelay
from openigrt.net.sop import sop_class_name
from openigrt.net.status import Category, Service, classify

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset
    from pynetdicom.association import Association
    from pynetdicom.dimse_primitives import C_MOVE
    from pynetdicom.presentation import PresentationContext

LOG = logging.getLogger("openigrt.archive")

# --------------------------------------------------------------------------- statuses we answer
#: PS3.4 B.2.3 / PS3.7 C: C-STORE.
STORE_SUCCESS: Final = 0x0000
STORE_OUT_OF_RESOURCES: Final = 0xA700
STORE_INVALID_OBJECT_INSTANCE: Final = 0x0117
STORE_DATASET_MISMATCH: Final = 0xA900
STORE_CANNOT_UNDERSTAND: Final = 0xC000
#: PS3.4 C.4.1.1.4: C-FIND.
FIND_PENDING: Final = 0xFF00
FIND_PENDING_WARNING: Final = 0xFF01
FIND_OUT_OF_RESOURCES: Final = 0xA700
FIND_IDENTIFIER_MISMATCH: Final = 0xA900
FIND_UNABLE_TO_PROCESS: Final = 0xC000
#: PS3.4 C.4.2.1.5: C-MOVE.
MOVE_SUCCESS: Final = 0x0000
MOVE_PENDING: Final = 0xFF00
MOVE_CANCEL: Final = 0xFE00
MOVE_WARNING_FAILURES: Final = 0xB000
MOVE_CANNOT_COUNT: Final = 0xA701
MOVE_CANNOT_PERFORM: Final = 0xA702
MOVE_DESTINATION_UNKNOWN: Final = 0xA801
MOVE_IDENTIFIER_MISMATCH: Final = 0xA900
MOVE_UNABLE_TO_PROCESS: Final = 0xC000
CANCEL: Final = 0xFE00

#: Max length of Error Comment (0000,0902), LO.
_ERROR_COMMENT_MAX: Final = 64
_IMPLICIT: Final = "1.2.840.10008.1.2"
_EXPLICIT: Final = "1.2.840.10008.1.2.1"
_UNCOMPRESSED: Final = frozenset({_IMPLICIT, _EXPLICIT, "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"})
#: pynetdicom proposes at most 128 presentation contexts (PS3.8 9.3.2.2: odd IDs 1-255).
_MAX_CONTEXTS: Final = 128
#: Socket poll interval of accepted associations, s.
_ACCEPTOR_POLL_S: Final = 0.0002



def status_dataset(code: int, comment: str = "") -> Dataset:
    """A status Dataset for a pynetdicom handler: Status plus an Error Comment (LO, 64 chars)."""
    from pydicom import Dataset

    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = _comment(comment)
    return ds


def _comment(text: str) -> str:
    text = text.replace("\\", "/").replace("\n", " ")
    return text if len(text) <= _ERROR_COMMENT_MAX else text[: _ERROR_COMMENT_MAX - 3] + "..."


def _peer(assoc: Association) -> str:
    return f"{assoc.requestor.ae_title}@{assoc.requestor.address}"


# --------------------------------------------------------------------------- contexts
def acceptor_contexts() -> list[PresentationContext]:
    """Presentation contexts the archive accepts: Verification, Q/R FIND/MOVE, every storage class."""
    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom import AllStoragePresentationContexts
    from pynetdicom.presentation import build_context

    storage_syntaxes = [_EXPLICIT, _IMPLICIT] + [str(ts) for ts in AllTransferSyntaxes if str(ts) not in (_EXPLICIT, _IMPLICIT)]
    contexts = [build_context("1.2.840.10008.1.1", [_EXPLICIT, _IMPLICIT])]
    contexts += [build_context(uid, [_EXPLICIT, _IMPLICIT]) for uid in (*FIND_MODELS, *MOVE_MODELS)]
    contexts += [build_context(cx.abstract_syntax, storage_syntaxes) for cx in AllStoragePresentationContexts]
    return contexts


def move_contexts(located: Sequence[Located]) -> tuple[list[tuple[str, tuple[str, ...]]], set[tuple[str, str]]]:
    """Contexts ``(SOP class, syntaxes)`` to propose for a C-MOVE's sub-operations, and the
    (class, syntax) pairs left out (beyond 128 contexts).

    Per SOP class: one context per stored transfer syntax, offering that syntax alone (so the
    stored bytes can be sent unchanged), plus, when any of its instances is stored uncompressed
    in another syntax, one fallback context with Implicit then Explicit VR LE (pydicom converts).
    Compressed instances are never decompressed, so they have no fallback.
    """
    wanted: list[tuple[str, tuple[str, ...]]] = []
    for loc in located:
        for syntaxes in _syntax_options(loc.transfer_syntax_uid):
            pair = (loc.sop_class_uid, syntaxes)
            if pair not in wanted:
                wanted.append(pair)
    left_out = {(c, s[0]) for c, s in wanted[_MAX_CONTEXTS:] if len(s) == 1}
    return wanted[:_MAX_CONTEXTS], left_out


def _syntax_options(stored: str) -> list[tuple[str, ...]]:
    if stored == _IMPLICIT:
        return [(_IMPLICIT,), (_EXPLICIT,)]
    if stored in _UNCOMPRESSED:
        return [(stored,), (_IMPLICIT, _EXPLICIT)]
    return [(stored,)]


# --------------------------------------------------------------------------- C-STORE
def handle_store(event: Any, store: ArchiveStore) -> int | Dataset:
    """``EVT_C_STORE`` handler: check, store durably, index, then answer (see module docstring)."""
    req = event.request
    syntax = str(event.context.transfer_syntax)
    peer = _peer(event.assoc)
    data = req.DataSet.getvalue()
    try:
        header = read_index_header(data, transfer_syntax_uid=syntax)
    except DicomInputError as exc:
        LOG.warning("C-STORE from %s: %s refused (C000): %s", peer, req.AffectedSOPInstanceUID, exc)
        return status_dataset(STORE_CANNOT_UNDERSTAND, str(exc))
    refusal = _store_refusal(header, req)
    if refusal is not None:
        code, why = refusal
        LOG.warning("C-STORE from %s: %s refused (%04X): %s", peer, req.AffectedSOPInstanceUID, code, why)
        return status_dataset(code, why)
    try:
        outcome = store.store(data, transfer_syntax_uid=syntax, header=header, source_ae_title=event.assoc.requestor.ae_title)
    except (OSError, CacheError) as exc:
        why = f"cannot store: {getattr(exc, 'strerror', None) or exc}"
        LOG.error("C-STORE from %s: %s failed (A700): %s", peer, req.AffectedSOPInstanceUID, why)
        return status_dataset(STORE_OUT_OF_RESOURCES, why)
    except DicomInputError as exc:
        return status_dataset(STORE_DATASET_MISMATCH, str(exc))
    LOG.info("C-STORE from %s: %s %s %s", peer, sop_class_name(str(req.AffectedSOPClassUID)),
             req.AffectedSOPInstanceUID, "replaced" if outcome.replaced else "stored")
    return STORE_SUCCESS


def _store_refusal(header: Dataset, req: Any) -> tuple[int, str] | None:
    sop_uid = str(header.get("SOPInstanceUID", "") or "").strip(" \0")
    if not sop_uid:
        return STORE_INVALID_OBJECT_INSTANCE, "SOP Instance UID (0008,0018) is missing"
    if sop_uid != str(req.AffectedSOPInstanceUID):
        return STORE_INVALID_OBJECT_INSTANCE, f"SOP Instance UID {sop_uid} differs from the Affected SOP Instance UID"
    sop_class = str(header.get("SOPClassUID", "") or "").strip(" \0")
    if sop_class != str(req.AffectedSOPClassUID):
        return STORE_DATASET_MISMATCH, f"SOP Class UID {sop_class or '(missing)'} differs from the Affected SOP Class UID"
    try:
        check_instance(header)
    except DicomInputError as exc:
        code = STORE_INVALID_OBJECT_INSTANCE if "SOPInstanceUID" in str(exc) else STORE_DATASET_MISMATCH
        return code, str(exc)
    return None


# --------------------------------------------------------------------------- C-FIND
def handle_find(event: Any, store: ArchiveStore, ae_title: str) -> Any:
    """``EVT_C_FIND`` handler (a generator of ``(status, identifier)``; PS3.4 C.4.1.2)."""
    started = time.perf_counter()
    model = FIND_MODELS[str(event.request.AffectedSOPClassUID)]
    peer = _peer(event.assoc)
    try:
        identifier = event.identifier
    except Exception as exc:  # noqa: BLE001 - pynetdicom/pydicom decode errors
        LOG.warning("C-FIND from %s: undecodable identifier (C000): %s", peer, exc)
        yield status_dataset(FIND_UNABLE_TO_PROCESS, f"undecodable identifier: {exc}"), None
        return
    try:
        query = parse_identifier(identifier, model=model, operation=Operation.FIND)
        rows = store.index.find(query)
    except DicomInputError as exc:
        LOG.warning("C-FIND %s from %s refused (A900): %s", model.value, peer, exc)
        yield status_dataset(FIND_IDENTIFIER_MISMATCH, str(exc)), None
        return
    except CacheError as exc:
        LOG.error("C-FIND from %s failed (A700): %s", peer, exc)
        yield status_dataset(FIND_OUT_OF_RESOURCES, "archive index unavailable"), None
        return
    pending = FIND_PENDING_WARNING if query.unsupported else FIND_PENDING
    matched = 0
    for row, file_ds in iter_find_matches(store, query, rows=rows):
        if event.is_cancelled:
            LOG.info("C-FIND from %s cancelled after %d matches", peer, matched)
            yield CANCEL, None
            return
        matched += 1
        yield pending, build_identifier(query, row, file_ds, retrieve_ae_title=ae_title)
    LOG.info("C-FIND %s %s from %s: %d match(es) in %.0f ms", model.value, query.level.name, peer, matched,
             (time.perf_counter() - started) * 1000)


def iter_find_matches(store: ArchiveStore, query: Query, *, rows: list[dict[str, Any]] | None = None,
                      ) -> Iterator[tuple[dict[str, Any], Dataset | None]]:
    """Rows matching a C-FIND, with the stored (representative) instance when the query needs it.

    Indexed keys are matched in SQL (*rows*, when already fetched); keys on other attributes
    against the instance's file. Raises CacheError when the index cannot be read.
    """
    for row in store.index.find(query) if rows is None else rows:
        file_ds = _representative(store, row, query)
        if query.file_conditions and not all(
            match_text(c, element_texts(file_ds.get(c.tag) if file_ds is not None and c.tag in file_ds else None))
            for c in query.file_conditions
        ):
            continue
        yield row, file_ds


def _representative(store: ArchiveStore, row: dict[str, Any], query: Query) -> Dataset | None:
    if not query.needs_file:
        return None
    try:
        return store.read(row["path"], stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file must not stop the query
        LOG.warning("C-FIND: cannot read %s for non-indexed keys: %s", row["path"], exc)
        return None


# --------------------------------------------------------------------------- C-MOVE
@dataclass
class _Counts:
    remaining: int
    completed: int = 0
    failed: int = 0
    warning: int = 0


class MoveSCP:
    """C-MOVE SCP of the archive (PS3.4 C.4.2.2).

    Parameters
    ----------
    store
        The archive files and index.
    destinations
        Known move destinations.
    ae_title
        The archive's AE title (Calling AE Title of the sub-operation associations).
    settings
        Timeouts and implementation identity for the sub-operation associations.
    """

    def __init__(self, *, store: ArchiveStore, destinations: MoveDestinations, ae_title: str,
                 settings: Settings) -> None:
        self.store = store
        self.destinations = destinations
        self.ae_title = ae_title
        self.settings = settings

    def serve(self, assoc: Association, req: C_MOVE, context: PresentationContext) -> None:
        """Answer one C-MOVE request on *assoc*.

        Order: decode the identifier (C000 when undecodable) -> parse it (A900) -> resolve the
        destination (A801) -> find the instances (A701 on an index failure; none: 0000 with zero
        counts) -> open **one** association to the destination (A702 when it fails) -> one
        C-STORE per instance, each but the last followed by a pending FF00 response with the
        remaining, completed, failed and warning counts -> final 0000, or B000 when any
        sub-operation failed or warned, with the Failed SOP Instance UID List of the failed ones
        (PS3.4 C.4.2.1.4.2); FE00 with the counts so far after a C-CANCEL.
        """
        started = time.perf_counter()
        model = MOVE_MODELS[str(context.abstract_syntax)]
        responder = _MoveResponder(assoc, req, context)
        peer = _peer(assoc)
        try:
            identifier = _decode_identifier(req, context)
        except Exception as exc:  # noqa: BLE001
            LOG.warning("C-MOVE from %s: undecodable identifier (C000): %s", peer, exc)
            responder.final(MOVE_UNABLE_TO_PROCESS, comment=f"undecodable identifier: {exc}")
            return
        try:
            query = parse_identifier(identifier, model=model, operation=Operation.MOVE)
        except DicomInputError as exc:
            LOG.warning("C-MOVE %s from %s refused (A900): %s", model.value, peer, exc)
            responder.final(MOVE_IDENTIFIER_MISMATCH, comment=str(exc))
            return
        destination = self.destinations.get(str(req.MoveDestination))
        if destination is None:
            known = ", ".join(d.ae_title for d in self.destinations.all()) or "none"
            LOG.warning("C-MOVE from %s: move destination %r unknown (A801); known: %s", peer, req.MoveDestination, known)
            responder.final(MOVE_DESTINATION_UNKNOWN, comment=f"move destination {str(req.MoveDestination).strip()!r} unknown")
            return
        try:
            located = self.store.index.locate(query)
        except CacheError as exc:
            LOG.error("C-MOVE from %s failed (A701): %s", peer, exc)
            responder.final(MOVE_CANNOT_COUNT, comment="archive index unavailable")
            return
        counts = self._run(assoc, req, responder, located, destination)
        LOG.info("C-MOVE %s %s from %s to %s: %d completed, %d failed, %d warning in %.0f ms", model.value,
                 query.level.name, peer, destination, counts.completed, counts.failed, counts.warning,
                 (time.perf_counter() - started) * 1000)

    def _run(self, assoc: Association, req: C_MOVE, responder: _MoveResponder, located: list[Located],
             destination: RemoteAE) -> _Counts:
        counts = _Counts(remaining=len(located))
        if not located:
            responder.final(MOVE_SUCCESS, counts=counts)
            return counts
        contexts, left_out = move_contexts(located)
        failed_uids: list[str] = []
        try:
            with _SubOperations(self, destination, originator=assoc.requestor.ae_title,
                                originator_id=int(req.MessageID), contexts=contexts) as sender:
                for loc in located:
                    if responder.cancelled():
                        responder.final(MOVE_CANCEL, counts=counts, failed_uids=failed_uids, cancel=True)
                        return counts
                    code = sender.send(loc) if (loc.sop_class_uid, loc.transfer_syntax_uid) not in left_out else None
                    _tally(counts, code, loc, failed_uids)
                    if counts.remaining:  # the final response carries the last counts
                        responder.pending(counts)
        except NetworkError as exc:
            LOG.error("C-MOVE: cannot associate with move destination %s (A702): %s", destination, exc)
            counts.failed += counts.remaining
            failed_uids.extend(loc.sop_instance_uid for loc in located[len(located) - counts.remaining:])
            counts.remaining = 0
            responder.final(MOVE_CANNOT_PERFORM, counts=counts, failed_uids=failed_uids,
                            comment=f"cannot associate with {destination.ae_title}")
            return counts
        if counts.failed or counts.warning:
            responder.final(MOVE_WARNING_FAILURES, counts=counts, failed_uids=failed_uids)
        else:
            responder.final(MOVE_SUCCESS, counts=counts)
        return counts


def _tally(counts: _Counts, code: int | None, loc: Located, failed_uids: list[str]) -> None:
    counts.remaining -= 1
    category = classify(code, Service.STORE).category if code is not None else Category.FAILURE
    if category is Category.SUCCESS:
        counts.completed += 1
    elif category is Category.WARNING:
        counts.warning += 1
    else:
        counts.failed += 1
        failed_uids.append(loc.sop_instance_uid)


def _decode_identifier(req: C_MOVE, context: PresentationContext) -> Dataset:
    from pynetdicom.dsutils import decode

    syntax = context.transfer_syntax[0]
    return decode(req.Identifier, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated)


class _MoveResponder:
    """Sends C-MOVE responses on the requesting association (PS3.4 C.4.2.1.6, PS3.7 9.1.4)."""

    def __init__(self, assoc: Association, req: C_MOVE, context: PresentationContext) -> None:
        self.assoc = assoc
        self.req = req
        self.context = context

    def cancelled(self) -> bool:
        msg_id = self.req.MessageID
        return self.assoc.dimse.cancel_req.pop(msg_id, None) is not None

    def _response(self, status: int) -> Any:
        from pynetdicom.dimse_primitives import C_MOVE

        rsp = C_MOVE()
        rsp.MessageIDBeingRespondedTo = self.req.MessageID
        rsp.AffectedSOPClassUID = self.req.AffectedSOPClassUID
        rsp.Status = status
        return rsp

    def pending(self, counts: _Counts) -> None:
        rsp = self._response(MOVE_PENDING)
        rsp.NumberOfRemainingSuboperations = counts.remaining
        rsp.NumberOfCompletedSuboperations = counts.completed
        rsp.NumberOfFailedSuboperations = counts.failed
        rsp.NumberOfWarningSuboperations = counts.warning
        self._send(rsp)

    def final(self, status: int, *, counts: _Counts | None = None, failed_uids: Sequence[str] = (),
              comment: str = "", cancel: bool = False) -> None:
        rsp = self._response(status)
        if counts is not None:
            if cancel:
                rsp.NumberOfRemainingSuboperations = counts.remaining
            rsp.NumberOfCompletedSuboperations = counts.completed
            rsp.NumberOfFailedSuboperations = counts.failed
            rsp.NumberOfWarningSuboperations = counts.warning
        if comment:
            rsp.ErrorComment = _comment(comment)
        if failed_uids or status in (MOVE_WARNING_FAILURES, MOVE_CANCEL):
            rsp.Identifier = self._failed_list(failed_uids)
        self._send(rsp)

    def _failed_list(self, uids: Sequence[str]) -> Any:
        from io import BytesIO

        from pydicom import Dataset
        from pynetdicom.dsutils import encode

        ds = Dataset()
        ds.FailedSOPInstanceUIDList = list(uids) if len(uids) != 1 else uids[0]
        syntax = self.context.transfer_syntax[0]
        return BytesIO(encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated))

    def _send(self, rsp: Any) -> None:
        if self.assoc.is_established:
            self.assoc.dimse.send_msg(rsp, int(self.context.context_id))


class _SubOperations:
    """C-STORE sub-operations of one C-MOVE over one association to the destination.

    The association is a :class:`~openigrt.archive.sender.StoreAssociation` (synchronous, no
    polling threads). Each instance is sent as the stored bytes when the destination accepted
    its stored transfer syntax (no decode, no re-encode), else decoded and re-encoded by pydicom
    in an accepted uncompressed syntax, Implicit VR LE first (a compressed stored syntax is never
    decompressed). When a C-STORE gets no response (DIMSE timeout) or the association is lost,
    the instance is retried once on a fresh association.
    """

    def __init__(self, scp: MoveSCP, destination: RemoteAE, *, originator: str, originator_id: int,
                 contexts: list[tuple[str, tuple[str, ...]]]) -> None:
        self.scp = scp
        self.destination = destination
        self.originator = originator
        self.originator_id = originator_id
        self.contexts = contexts
        self.assoc: StoreAssociation | None = None
        self._retried = False

    def open(self) -> None:
        """Open the association (raises NetworkError naming the destination)."""
        self.assoc = StoreAssociation(self.destination, calling_ae_title=self.scp.ae_title, contexts=self.contexts,
                                      network=self.scp.settings.network).open()

    def close(self) -> None:
        """Release the association (abort when the release fails)."""
        if self.assoc is not None:
            assoc, self.assoc = self.assoc, None
            assoc.release()

    def __enter__(self) -> _SubOperations:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, loc: Located) -> int | None:
        """Send one instance; return the C-STORE status, or None when it failed on our side."""
        try:
            return self._send_once(loc)
        except (DimseTimeout, AssociationAborted) as exc:
            LOG.error("C-MOVE: %s to %s: %s", loc.sop_instance_uid, self.destination, exc)
            if self._retried:
                return None
        self._retried = True
        LOG.warning("C-MOVE: retrying %s on a new association to %s", loc.sop_instance_uid, self.destination)
        try:
            self.open()
            return self._send_once(loc)
        except NetworkError as exc:  # DimseTimeout, AssociationAborted, ConnectionFailed, AssociationRejected
            LOG.error("C-MOVE: retry of %s to %s failed: %s", loc.sop_instance_uid, self.destination, exc)
            return None

    def _send_once(self, loc: Located) -> int | None:
        assoc = self.assoc
        if assoc is None or not assoc.is_open:
            return None
        context_id = assoc.context_id(loc.sop_class_uid, loc.transfer_syntax_uid)
        try:
            if context_id is not None:
                data = self._stored_bytes(loc)
            else:
                context_id, data = self._converted(assoc, loc)
        except (OSError, DicomInputError) as exc:
            LOG.error("C-MOVE: cannot read %s (%s): %s", loc.sop_instance_uid, loc.path, exc)
            return None
        except UnsupportedObjectError as exc:
            LOG.error("C-MOVE: %s not sent to %s: %s", loc.sop_instance_uid, self.destination, exc)
            return None
        rsp = assoc.c_store(context_id, data, sop_class_uid=loc.sop_class_uid, sop_instance_uid=loc.sop_instance_uid,
                            move_originator=self.originator, move_originator_message_id=self.originator_id)
        if rsp.status != 0:
            LOG.warning("C-MOVE: %s answered %s%s for %s", self.destination, classify(rsp.status, Service.STORE),
                        f" ({rsp.comment})" if rsp.comment else "", loc.sop_instance_uid)
        return rsp.status

    def _stored_bytes(self, loc: Located) -> bytes:
        with open(self.scp.store.absolute(loc.path), "rb") as fh:
            fh.seek(loc.dataset_offset)
            return fh.read()

    def _converted(self, assoc: StoreAssociation, loc: Located) -> tuple[int, bytes]:
        """Re-encode an uncompressed instance in an accepted uncompressed syntax of its class."""
        from pynetdicom.dsutils import encode

        if loc.transfer_syntax_uid not in _UNCOMPRESSED:
            raise UnsupportedObjectError(
                f"{self.destination} did not accept {sop_class_name(loc.sop_class_uid)} in its stored "
                f"transfer syntax {loc.transfer_syntax_uid} (the archive does not decompress)")
        for syntax in (_IMPLICIT, _EXPLICIT):
            context_id = assoc.context_id(loc.sop_class_uid, syntax)
            if context_id is not None:
                ds = self.scp.store.read(loc.path)
                data = encode(ds, syntax == _IMPLICIT, True)
                if data is None:
                    raise DicomInputError(f"cannot re-encode {loc.sop_instance_uid} in {syntax}")
                return context_id, data
        raise UnsupportedObjectError(f"{self.destination} accepted no context for {sop_class_name(loc.sop_class_uid)}")

# --------------------------------------------------------------------------- acceptor hooks
def make_request_handler(move_scp: Callable[[], MoveSCP]) -> type:
    """Return a pynetdicom ``RequestHandler`` subclass bound to the archive's :class:`MoveSCP`."""
    from pynetdicom.transport import RequestHandler

    class ArchiveRequestHandler(RequestHandler):
        """Creates acceptor associations: TCP_NODELAY, shared contexts, C-MOVE routed to MoveSCP."""

        def _create_association(self) -> Association:
            from pynetdicom import evt
            from pynetdicom._globals import MODE_ACCEPTOR
            from pynetdicom.association import Association
            from pynetdicom.transport import AssociationSocket

            set_tcp_nodelay(self.request)
            assoc = Association(self.ae, MODE_ACCEPTOR)
            assoc.dul._run_loop_delay = _ACCEPTOR_POLL_S
            assoc._server = self.server
            assoc.name = f"ArchiveAcceptor@{datetime.now():%Y%m%d%H%M%S}"
            assoc.set_socket(AssociationSocket(assoc, client_socket=self.request))
            assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
            assoc.acceptor.ae_title = self.server.ae_title
            assoc.acceptor.address_info = self.local
            assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
            assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
            # negotiation only reads the supported contexts: share them (no deepcopy)
            assoc.acceptor.supported_contexts = list(self.server.contexts)
            assoc.requestor.address_info = self.remote
            for event, handlers in self.server._handlers.items():
                if event.is_intervention and handlers:
                    assoc.bind(event, *handlers)
                elif isinstance(event, evt.NotificationEvent):
                    for handler in handlers:
                        assoc.bind(event, handler[0], handler[1])
            _route_moves(assoc, move_scp())
            return assoc

    return ArchiveRequestHandler


def _route_moves(assoc: Association, scp: MoveSCP) -> None:
    """Serve C-MOVE requests of the Q/R MOVE classes with *scp*; everything else as pynetdicom does."""
    from pynetdicom.dimse_primitives import C_MOVE

    builtin = assoc._serve_request

    def serve_request(msg: Any, context_id: int) -> None:
        context = assoc._accepted_cx.get(context_id)
        if (isinstance(msg, C_MOVE) and context is not None and not assoc._sent_release
                and str(context.abstract_syntax) in MOVE_MODELS):
            assoc.dimse.cancel_req = {}
            assoc._is_paused = True
            try:
                scp.serve(assoc, msg, context)
            except Exception:  # noqa: BLE001 - never let a bug kill the acceptor silently
                LOG.exception("C-MOVE SCP failed; aborting the association with %s", _peer(assoc))
                assoc.abort()
            finally:
                assoc._is_paused = False
                assoc.dimse.cancel_req = {}
            return
        builtin(msg, context_id)

    assoc._serve_request = serve_request  # type: ignore[method-assign]
