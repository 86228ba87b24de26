"""DIMSE-C request/response exchange as association requestor, without pynetdicom's races (NET-2).

pynetdicom's ``send_c_*`` methods pause the association reactor, send, and wait on the DIMSE
message queue. The pause is a check-then-act on ``_is_paused`` that can lose: the reactor may
take the peer's response off the queue and drop it ("Received unexpected C-STORE-RSP"), and the
sender then waits out its whole DIMSE timeout (docs/PEERS.md; pynetdicom issue #875). Timeouts
and aborts also come back as an *empty* status Dataset.

Here every response is captured when the DUL decodes it (``EVT_DIMSE_RECV``, which fires
before the message is queued) into a :class:`ResponseTap`, keyed by Message ID Being Responded
To. The sender waits on the tap, so a response cannot be lost whoever drains the queue; the
race is logged at debug level when it happens. No answer within the DIMSE timeout raises
:class:`~openigrt.errors.DimseTimeout`; an A-ABORT / A-P-ABORT or a lost connection while waiting
raises :class:`~openigrt.errors.AssociationAborted`. Statuses are data (:class:`Response`).
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from openigrt.errors import AssociationAborted, DimseTimeout, NetworkError

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset
    from pynetdicom.association import Association

LOG = logging.getLogger("openigrt.net.dimse")

#: How often a waiting sender checks for an abort / dead connection, s.
POLL_INTERVAL_S: Final = 0.05
#: After a DIMSE timeout we try A-RELEASE for at most this long, then abort (NET-2: never hang).
RELEASE_AFTER_TIMEOUT_S: Final = 5.0
#: Command Field bit set in every response (PS3.7 E.1).
_RESPONSE_BIT: Final = 0x8000
_NO_DATASET: Final = 0x0101

PRIORITY_MEDIUM: Final = 0x0000


@dataclass(frozen=True)
class Response:
    """One DIMSE response: its command set and the encoded data set (identifier), if any."""

    command: Dataset
    data: bytes | None
    context_id: int

    @property
    def status(self) -> int:
        return int(self.command.get("Status", 0xFFFF))

    @property
    def comment(self) -> str:
        """Error Comment (0000,0902), or ``""``."""
        value = self.command.get("ErrorComment", "")
        return str(value or "").strip()

    def count(self, keyword: str) -> int | None:
        """A sub-operation counter (e.g. ``NumberOfCompletedSuboperations``) or None."""
        value = self.command.get(keyword)
        return None if value is None or value == "" else int(value)


class ResponseTap:
    """Collects DIMSE responses as the DUL decodes them (bind :meth:`handler` at associate time)."""

    def __init__(self) -> None:
        self._queues: dict[int, queue.Queue[Response]] = {}
        self._lock = threading.Lock()
        self._next_id = 0

    def handler(self) -> tuple[Any, Any]:
        """The ``(EVT_DIMSE_RECV, callable)`` pair for ``evt_handlers``."""
        from pynetdicom import evt

        return (evt.EVT_DIMSE_RECV, self._on_recv)

    def _queue(self, msg_id: int) -> queue.Queue[Response]:
        with self._lock:
            q = self._queues.get(msg_id)
            if q is None:
                q = self._queues[msg_id] = queue.Queue()
            return q

    def _on_recv(self, event: Any) -> None:
        msg = event.message
        cs = msg.command_set
        if not int(cs.get("CommandField", 0)) & _RESPONSE_BIT:
            return
        data = None
        if int(cs.get("CommandDataSetType", _NO_DATASET)) != _NO_DATASET:
            data = msg.data_set.getvalue()
        mid = int(cs.get("MessageIDBeingRespondedTo", -1))
        self._queue(mid).put(Response(cs, data, int(msg.context_id or 0)))

    def new_message_id(self) -> int:
        """Next Message ID (1 … 65535, wrapping) for this association."""
        with self._lock:
            self._next_id = self._next_id % 65535 + 1
            self._queues.pop(self._next_id, None)
            return self._next_id

    def wait(self, assoc: Association, msg_id: int, *, timeout: float, peer: str, what: str) -> Response:
        """Wait for the next response to *msg_id*.

        Raises
        ------
        DimseTimeout
            No response within *timeout* seconds (the association is left for the caller).
        AssociationAborted
            The peer aborted or the connection was lost while waiting.
        """
        q = self._queue(msg_id)
        deadline = time.monotonic() + timeout
        while True:
            try:
                rsp = q.get(timeout=min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
                _drain_dimse_queue(assoc)
                return rsp
            except queue.Empty:
                pass
            if _is_dead(assoc):
                raise AssociationAborted(f"{peer} aborted the association (or the connection was lost) "
                                         f"while we waited for the {what} response")
            if time.monotonic() >= deadline:
                raise DimseTimeout(f"no {what} response from {peer} within the DIMSE timeout of {timeout:g} s")


def _drain_dimse_queue(assoc: Association) -> None:
    """Remove responses pynetdicom also queued (the tap already has them)."""
    mq = assoc.dimse.msg_queue
    while True:
        try:
            mq.get_nowait()
        except queue.Empty:
            return


def _is_dead(assoc: Association) -> bool:
    return bool(assoc.is_aborted or assoc.acse.is_aborted() or not assoc.dul.is_alive()
                or assoc.dul.socket is None or assoc.dul.socket.socket is None)


@contextmanager
def reactor_paused(assoc: Association) -> Iterator[None]:
    """Keep the association reactor from serving incoming messages while we exchange.

    Uses pynetdicom's own checkpoint (as its ``send_c_*`` methods do). Losing the pause race is
    harmless here: responses are taken from the :class:`ResponseTap`.
    """
    assoc._reactor_checkpoint.clear()
    deadline = time.monotonic() + 1.0
    while not assoc._is_paused and time.monotonic() < deadline:
        time.sleep(0.0001)
    try:
        yield
    finally:
        assoc._reactor_checkpoint.set()


def send_request(assoc: Association, primitive: Any, context_id: int) -> None:
    """Send a DIMSE request primitive on *context_id* (raises AssociationAborted when closed)."""
    if _is_dead(assoc) or not assoc.is_established:
        raise AssociationAborted("the association is no longer established")
    assoc.dimse.send_msg(primitive, context_id)


def context_id_for(assoc: Association, abstract_syntax: str, transfer_syntax: str | None = None) -> int | None:
    """ID of an accepted context for *abstract_syntax* (and *transfer_syntax*), or None."""
    for cx in assoc.accepted_contexts:
        if str(cx.abstract_syntax) == abstract_syntax and (
                transfer_syntax is None or str(cx.transfer_syntax[0]) == transfer_syntax):
            return int(cx.context_id)
    return None


def context_syntax(assoc: Association, context_id: int) -> str:
    """Accepted transfer syntax of a context."""
    for cx in assoc.accepted_contexts:
        if int(cx.context_id) == context_id:
            return str(cx.transfer_syntax[0])
    raise NetworkError(f"no accepted presentation context {context_id}")


def encode_identifier(ds: Dataset, transfer_syntax: str) -> io.BytesIO:
    """Encode a query identifier in the context's transfer syntax."""
    from pynetdicom.dsutils import encode

    implicit = transfer_syntax == "1.2.840.10008.1.2"
    data = encode(ds, implicit, True)
    if data is None:
        raise NetworkError("cannot encode the query identifier")
    return io.BytesIO(data)


def decode_identifier(data: bytes | None, transfer_syntax: str) -> Dataset | None:
    """Decode a response identifier (None when absent or undecodable)."""
    if not data:
        return None
    from pynetdicom.dsutils import decode

    try:
        return decode(io.BytesIO(data), transfer_syntax == "1.2.840.10008.1.2", True)
    except Exception as exc:
        LOG.warning("undecodable identifier in a response: %s", exc)
        return None


def end_after_failure(assoc: Association, *, timed_out: bool) -> None:
    """Finish an association after a DIMSE timeout (try release, bounded) or an abort (NET-2)."""
    assoc._reactor_checkpoint.set()
    if timed_out and assoc.is_established and not _is_dead(assoc):
        saved = assoc.acse_timeout
        assoc.acse_timeout = min(float(saved or RELEASE_AFTER_TIMEOUT_S), RELEASE_AFTER_TIMEOUT_S)
        try:
            assoc.release()
        except Exception:  # pragma: no cover - defensive
            LOG.debug("release after timeout failed", exc_info=True)
        finally:
            assoc.acse_timeout = saved
    if assoc.is_established or not (assoc.is_released or assoc.is_aborted):
        assoc.abort()
