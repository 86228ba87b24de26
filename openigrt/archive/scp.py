"""The archive's DIMSE services: C-STORE, C-FIND and C-MOVE SCP logic (ARCHIVE-1).

Transport-independent: :mod:`openigrt.archive.acceptor` decodes the requests and calls
:class:`ArchiveServices` with a responder; C-ECHO is answered by :mod:`openigrt.net.acceptor`.

* **C-STORE** (PS3.4 B.2.2): every storage SOP class pynetdicom knows, in every transfer syntax
  pydicom knows; the proposer's first listed syntax is chosen (net.acceptor). The data set
  bytes are stored unchanged, durably, before the answer. Statuses: 0000 stored; 0117 SOP
  Instance UID missing/invalid or not the command's Affected SOP Instance UID; A900 SOP Class
  differs from the command or a Study/Series UID is missing; C000 undecodable stream; A700 the
  file or the index could not be written.
* **C-FIND** (PS3.4 C.4.1.2): pending FF00 per match (FF01 when a key could not be used for
  matching), A900 bad identifier, A700 index failure, FE00 after C-CANCEL, then 0000.
* **C-MOVE** (PS3.4 C.4.2.2): see :meth:`MoveSCP.serve`.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from openigrt.archive.destinations import MoveDestinations
from openigrt.archive.index import Located
from openigrt.archive.model import FIND_MODELS, MOVE_MODELS
from openigrt.archive.query import Operation, Query, build_identifier, element_texts, match_text, parse_identifier
from openigrt.archive.sender import StoreAssociation
from openigrt.archive.store import ArchiveStore, check_instance, read_index_header
from openigrt.config import RemoteAE, Settings
from openigrt.errors import (
    AssociationAborted,
    CacheError,
    ConfigError,
    DicomInputError,
    DimseTimeout,
    NetworkError,
    UnsupportedObjectError,
)
from openigrt.net.sop import sop_class_name
from openigrt.net.tls import client_context
from openigrt.net.status import (
    Category,
    Service,
    classify,
    CANCEL,
    FIND_IDENTIFIER_MISMATCH,
    FIND_OUT_OF_RESOURCES,
    FIND_PENDING,
    FIND_PENDING_WARNING,
    FIND_SUCCESS,
    MOVE_CANNOT_COUNT,
    MOVE_CANNOT_PERFORM,
    MOVE_DESTINATION_UNKNOWN,
    MOVE_IDENTIFIER_MISMATCH,
    MOVE_PENDING,
    MOVE_SUCCESS,
    MOVE_WARNING_FAILURES,
    SCP_CANNOT_UNDERSTAND,
    SCP_DATASET_MISMATCH,
    SCP_INVALID_OBJECT_INSTANCE,
    SCP_OUT_OF_RESOURCES,
    SCP_SUCCESS,
)

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

    from openigrt.net.acceptor import StoreRequest

LOG = logging.getLogger("openigrt.archive")

#: Max length of Error Comment (0000,0902), LO.
_ERROR_COMMENT_MAX: Final = 64
_IMPLICIT: Final = "1.2.840.10008.1.2"
_EXPLICIT: Final = "1.2.840.10008.1.2.1"
_UNCOMPRESSED: Final = frozenset({_IMPLICIT, _EXPLICIT, "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"})
#: At most 128 presentation contexts can be proposed (PS3.8 9.3.2.2: odd IDs 1-255).
_MAX_CONTEXTS: Final = 128


@dataclass(frozen=True)
class Counts:
    """Sub-operation counters of a C-MOVE response (PS3.7 9.3.4.2)."""

    remaining: int
    completed: int
    failed: int
    warning: int


@dataclass(frozen=True)
class QRRequest:
    """A C-FIND or C-MOVE request as the archive's services see it (identifier decoded)."""

    sop_class_uid: str
    message_id: int
    identifier: Dataset
    move_destination: str
    calling_ae_title: str
    peer_address: str


def _comment(text: str) -> str:
    """An Error Comment (0000,0902): LO, at most 64 characters, no backslash."""
    text = text.replace("\\", "/").replace("\n", " ")
    return text if len(text) <= _ERROR_COMMENT_MAX else text[: _ERROR_COMMENT_MAX - 3] + "..."


class Responder(Protocol):
    """What a C-FIND / C-MOVE service needs from the transport (see acceptor.Responder)."""

    def send(self, status: int, *, identifier: Dataset | None = None, counts: Counts | None = None,
             with_remaining: bool = True, comment: str = "") -> None: ...

    def cancelled(self) -> bool: ...


# --------------------------------------------------------------------------- contexts
def supported_contexts() -> dict[str, tuple[str, ...]]:
    """SOP classes and transfer syntaxes the archive accepts (for net.acceptor negotiation).

    Verification and the Patient/Study Root FIND and MOVE classes in Implicit and Explicit VR
    LE; every storage class pynetdicom knows in every transfer syntax pydicom knows.
    """
    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom import AllStoragePresentationContexts

    storage = (_EXPLICIT, _IMPLICIT, *(str(ts) for ts in AllTransferSyntaxes if str(ts) not in (_EXPLICIT, _IMPLICIT)))
    table: dict[str, tuple[str, ...]] = {str(cx.abstract_syntax): storage for cx in AllStoragePresentationContexts}
    for uid in ("1.2.840.10008.1.1", *FIND_MODELS, *MOVE_MODELS):
        table[uid] = (_IMPLICIT, _EXPLICIT)
    return table


def storage_classes(supported: dict[str, tuple[str, ...]]) -> frozenset[str]:
    """The storage SOP classes among *supported* (a C-STORE on any other context is answered 0x0122)."""
    return frozenset(supported) - {"1.2.840.10008.1.1", *FIND_MODELS, *MOVE_MODELS}


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
def store_instance(request: StoreRequest, store: ArchiveStore) -> tuple[int, str]:
    """Check, store durably, index, then answer ``(status, error comment)`` (see module docstring)."""
    syntax = request.context.transfer_syntax
    peer = f"{request.calling_ae_title}@{request.peer_address}"
    uid = request.affected_sop_instance_uid
    try:
        header = read_index_header(request.dataset, transfer_syntax_uid=syntax)
    except DicomInputError as exc:
        LOG.warning("C-STORE from %s: %s refused (C000): %s", peer, uid, exc)
        return SCP_CANNOT_UNDERSTAND, _comment(str(exc))
    refusal = _store_refusal(header, request)
    if refusal is not None:
        code, why = refusal
        LOG.warning("C-STORE from %s: %s refused (%04X): %s", peer, uid, code, why)
        return code, _comment(why)
    try:
        outcome = store.store(request.dataset, transfer_syntax_uid=syntax, header=header,
                              source_ae_title=request.calling_ae_title)
    except (OSError, CacheError) as exc:
        why = f"cannot store: {getattr(exc, 'strerror', None) or exc}"
        LOG.error("C-STORE from %s: %s failed (A700): %s", peer, uid, why)
        return SCP_OUT_OF_RESOURCES, _comment(why)
    except DicomInputError as exc:
        return SCP_DATASET_MISMATCH, _comment(str(exc))
    LOG.info("C-STORE from %s: %s %s %s", peer, sop_class_name(request.affected_sop_class_uid), uid,
             "replaced" if outcome.replaced else "stored")
    return SCP_SUCCESS, ""


def _store_refusal(header: Dataset, request: StoreRequest) -> tuple[int, str] | None:
    sop_uid = str(header.get("SOPInstanceUID", "") or "").strip(" \0")
    if not sop_uid:
        return SCP_INVALID_OBJECT_INSTANCE, "SOP Instance UID (0008,0018) is missing"
    if sop_uid != request.affected_sop_instance_uid:
        return SCP_INVALID_OBJECT_INSTANCE, f"SOP Instance UID {sop_uid} differs from the Affected SOP Instance UID"
    sop_class = str(header.get("SOPClassUID", "") or "").strip(" \0")
    if sop_class != request.affected_sop_class_uid:
        return SCP_DATASET_MISMATCH, f"SOP Class UID {sop_class or '(missing)'} differs from the Affected SOP Class UID"
    if request.context.abstract_syntax != request.affected_sop_class_uid:
        return SCP_DATASET_MISMATCH, "Affected SOP Class UID differs from the presentation context"
    try:
        check_instance(header)
    except DicomInputError as exc:
        code = SCP_INVALID_OBJECT_INSTANCE if "SOPInstanceUID" in str(exc) else SCP_DATASET_MISMATCH
        return code, str(exc)
    return None


# --------------------------------------------------------------------------- C-FIND
def serve_find(responder: Responder, request: QRRequest, store: ArchiveStore, ae_title: str) -> None:
    """Answer one C-FIND (PS3.4 C.4.1.2): a pending response per match, then the final one."""
    started = time.perf_counter()
    model = FIND_MODELS[request.sop_class_uid]
    peer = f"{request.calling_ae_title}@{request.peer_address}"
    try:
        query = parse_identifier(request.identifier, model=model, operation=Operation.FIND)
        rows = store.index.find(query)
    except DicomInputError as exc:
        LOG.warning("C-FIND %s from %s refused (A900): %s", model.value, peer, exc)
        responder.send(FIND_IDENTIFIER_MISMATCH, comment=_comment(str(exc)))
        return
    except CacheError as exc:
        LOG.error("C-FIND from %s failed (A700): %s", peer, exc)
        responder.send(FIND_OUT_OF_RESOURCES, comment="archive index unavailable")
        return
    pending = FIND_PENDING_WARNING if query.unsupported else FIND_PENDING
    matched = 0
    for row, file_ds in iter_find_matches(store, query, rows=rows):
        if responder.cancelled():
            LOG.info("C-FIND from %s cancelled after %d matches", peer, matched)
            responder.send(CANCEL)
            return
        matched += 1
        responder.send(pending, identifier=build_identifier(query, row, file_ds, retrieve_ae_title=ae_title))
    responder.send(FIND_SUCCESS)
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

    def snapshot(self) -> Counts:
        return Counts(self.remaining, self.completed, self.failed, self.warning)


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
        self._tls_lock = threading.Lock()
        self._tls_context: ssl.SSLContext | None = None
        if settings.tls.remote:  # unusable [tls] files: ConfigError at start, not in the first C-MOVE
            self._tls_context = client_context(settings.tls)

    def tls_for(self, destination: RemoteAE) -> ssl.SSLContext | None:
        """The TLS context for sub-associations to *destination* (None: plain): its ``tls`` flag in
        ``destinations.toml``, else ``tls.remote``. Raises NetworkError when the TLS files are unusable."""
        flag = self.destinations.tls(destination.ae_title)
        if not (self.settings.tls.remote if flag is None else flag):
            return None
        with self._tls_lock:
            if self._tls_context is None:
                try:
                    self._tls_context = client_context(self.settings.tls)
                except ConfigError as exc:
                    raise NetworkError(f"DICOM TLS to {destination}: {exc}") from None
            return self._tls_context

    def serve(self, responder: Responder, request: QRRequest) -> None:
        """Answer one C-MOVE request.

        Order: parse the identifier (A900) -> resolve the destination (A801) -> find the
        instances (A701 on an index failure; none: 0000 with zero counts) -> open **one**
        association to the destination (A702 when it fails) -> one C-STORE per instance, each
        but the last followed by a pending FF00 response with the remaining, completed, failed
        and warning counts -> final 0000, or B000 when any sub-operation failed or warned, with
        the Failed SOP Instance UID List of the failed ones (PS3.4 C.4.2.1.4.2); FE00 with the
        counts so far after a C-CANCEL. (An undecodable identifier is answered C000 by the
        acceptor.)
        """
        started = time.perf_counter()
        model = MOVE_MODELS[request.sop_class_uid]
        peer = f"{request.calling_ae_title}@{request.peer_address}"
        try:
            query = parse_identifier(request.identifier, model=model, operation=Operation.MOVE)
        except DicomInputError as exc:
            LOG.warning("C-MOVE %s from %s refused (A900): %s", model.value, peer, exc)
            responder.send(MOVE_IDENTIFIER_MISMATCH, comment=_comment(str(exc)))
            return
        destination = self.destinations.get(request.move_destination)
        if destination is None:
            known = ", ".join(d.ae_title for d in self.destinations.all()) or "none"
            LOG.warning("C-MOVE from %s: move destination %r unknown (A801); known: %s", peer,
                        request.move_destination, known)
            responder.send(MOVE_DESTINATION_UNKNOWN,
                           comment=_comment(f"move destination {request.move_destination.strip()!r} unknown"))
            return
        try:
            located = self.store.index.locate(query)
        except CacheError as exc:
            LOG.error("C-MOVE from %s failed (A701): %s", peer, exc)
            responder.send(MOVE_CANNOT_COUNT, comment="archive index unavailable")
            return
        counts = self._run(responder, request, located, destination)
        LOG.info("C-MOVE %s %s from %s to %s: %d completed, %d failed, %d warning in %.0f ms", model.value,
                 query.level.name, peer, destination, counts.completed, counts.failed, counts.warning,
                 (time.perf_counter() - started) * 1000)

    def _run(self, responder: Responder, request: QRRequest, located: list[Located],
             destination: RemoteAE) -> _Counts:
        counts = _Counts(remaining=len(located))
        if not located:
            responder.send(MOVE_SUCCESS, counts=counts.snapshot(), with_remaining=False)
            return counts
        contexts, left_out = move_contexts(located)
        failed_uids: list[str] = []
        try:
            with _SubOperations(self, destination, originator=request.calling_ae_title,
                                originator_id=request.message_id, contexts=contexts) as sender:
                for loc in located:
                    if responder.cancelled():
                        responder.send(CANCEL, counts=counts.snapshot(), identifier=_failed_list(failed_uids))
                        return counts
                    code = sender.send(loc) if (loc.sop_class_uid, loc.transfer_syntax_uid) not in left_out else None
                    _tally(counts, code, loc, failed_uids)
                    if counts.remaining:  # the final response carries the last counts
                        responder.send(MOVE_PENDING, counts=counts.snapshot())
        except NetworkError as exc:
            LOG.error("C-MOVE: cannot associate with move destination %s (A702): %s", destination, exc)
            counts.failed += counts.remaining
            failed_uids.extend(loc.sop_instance_uid for loc in located[len(located) - counts.remaining:])
            counts.remaining = 0
            responder.send(MOVE_CANNOT_PERFORM, counts=counts.snapshot(), with_remaining=False,
                           identifier=_failed_list(failed_uids),
                           comment=_comment(f"cannot associate with {destination.ae_title}: {exc}"))
            return counts
        if counts.failed or counts.warning:
            responder.send(MOVE_WARNING_FAILURES, counts=counts.snapshot(), with_remaining=False,
                           identifier=_failed_list(failed_uids))
        else:
            responder.send(MOVE_SUCCESS, counts=counts.snapshot(), with_remaining=False)
        return counts


def _failed_list(uids: Sequence[str]) -> Dataset:
    """Identifier with the Failed SOP Instance UID List (0008,0058)."""
    from pydicom import Dataset

    ds = Dataset()
    ds.FailedSOPInstanceUIDList = list(uids) if len(uids) != 1 else uids[0]
    return ds


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
                                      network=self.scp.settings.network, tls=self.scp.tls_for(self.destination)).open()

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


# --------------------------------------------------------------------------- services
@dataclass(frozen=True)
class ArchiveServices:
    """What the archive's acceptor calls: storage, find and move."""

    store: ArchiveStore
    mover: MoveSCP
    ae_title: str

    def on_store(self, request: StoreRequest) -> tuple[int, str]:
        return store_instance(request, self.store)

    def find(self, responder: Responder, request: QRRequest) -> None:
        serve_find(responder, request, self.store, self.ae_title)

    def move(self, responder: Responder, request: QRRequest) -> None:
        self.mover.serve(responder, request)
