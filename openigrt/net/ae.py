"""Association set-up shared by every service: one AE, TCP_NODELAY, timeouts, limits (NET-3, NET-11).

Everything that opens or accepts an association goes through here, so the node always shows
the same face to peers:

* one AE title (``settings.local.ae_title``), our Implementation Class UID / Version Name,
  application context ``1.2.840.10008.3.1.1.1`` (pynetdicom's fixed default);
* maximum PDU receive size from ``network.max_pdu_receive`` (0 = unlimited) and a send-side cap
  of ``network.max_pdu_send`` applied on top of the peer's announced limit;
* ACSE, DIMSE, network and connect timeouts from ``[network]``;
* **TCP_NODELAY on every association socket**, requestor and acceptor. pynetdicom does not set
  it; without it each DIMSE response waits for the peer's delayed ACK (~40 ms, docs/PEERS.md).
  The hook is pynetdicom's ``EVT_CONN_OPEN`` notification, which fires for both roles once the
  socket is connected and before any PDU is exchanged: see :func:`nodelay_handler`;
* at most ``network.max_associations`` associations *initiated* at the same time
  (:class:`AssociationLimiter`, one per :class:`~openigrt.net.client.DicomClient`).

Failures to talk raise from :mod:`openigrt.errors` (``ConnectionFailed``,
``AssociationRejected``, ``AssociationAborted``) with a message naming the peer.

The archive (``openigrt.archive``) reuses :func:`make_ae`, :func:`nodelay_handler` and
:func:`open_association`.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openigrt.config import RemoteAE, Settings
from openigrt.errors import AssociationAborted, AssociationRejected, ConnectionFailed, NetworkError, TlsError

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom import AE

    from openigrt.net.tls import ClientTls
    from pynetdicom.association import Association
    from pynetdicom.presentation import PresentationContext

LOG = logging.getLogger("openigrt.net")

#: PS3.8 9.3.4 A-ASSOCIATE-RJ result / source / reason values we use or report.
RJ_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
RJ_SOURCES = {1: "service-user", 2: "service-provider (ACSE)", 3: "service-provider (presentation)"}
RJ_REASONS = {
    (1, 1): "no-reason-given",
    (1, 2): "application-context-name-not-supported",
    (1, 3): "calling-AE-title-not-recognized",
    (1, 7): "called-AE-title-not-recognized",
    (2, 1): "no-reason-given",
    (2, 2): "protocol-version-not-supported",
    (3, 1): "temporary-congestion",
    (3, 2): "local-limit-exceeded",
}


def describe_reject(result: int, source: int, reason: int) -> str:
    """Render an A-ASSOCIATE-RJ triple as PS3.8 words.

    >>> describe_reject(1, 1, 7)
    'rejected-permanent, source service-user, reason 7 called-AE-title-not-recognized'
    """
    words = RJ_REASONS.get((source, reason), "unknown reason")
    return f"{RJ_RESULTS.get(result, f'result {result}')}, source {RJ_SOURCES.get(source, source)}, reason {reason} {words}"


# --------------------------------------------------------------------------- TCP_NODELAY
def set_tcp_nodelay(sock: socket.socket) -> None:
    """Disable Nagle's algorithm on a TCP socket (no-op for non-TCP sockets)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _on_conn_open(event: Any) -> None:
    """``EVT_CONN_OPEN`` handler: set TCP_NODELAY on the association's socket (both roles)."""
    wrapper = event.assoc.dul.socket
    sock = getattr(wrapper, "socket", None) if wrapper is not None else None
    if sock is not None:
        set_tcp_nodelay(sock)


def nodelay_handler() -> tuple[Any, Any]:
    """Return the ``(EVT_CONN_OPEN, handler)`` pair that sets TCP_NODELAY.

    Pass it in ``evt_handlers`` of ``AE.associate`` and ``AE.start_server``.
    """
    from pynetdicom import evt

    return (evt.EVT_CONN_OPEN, _on_conn_open)



def socket_nodelay(assoc: Association) -> bool:
    """Return True when the association's socket has TCP_NODELAY set (used by tests)."""
    sock = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    if sock is None:
        return False
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


# --------------------------------------------------------------------------- the AE
def make_ae(settings: Settings, *, ae_title: str | None = None) -> AE:
    """Create a pynetdicom AE configured from *settings* (identity, PDU size, timeouts).

    Parameters
    ----------
    settings
        Loaded settings; ``local.ae_title`` and ``[network]`` are used.
    ae_title
        Override of the AE title (the archive serves under its own title).

    Notes
    -----
    Access control is **not** configured here: pynetdicom's ``require_calling_aet`` cannot check
    the peer address, so the Storage SCP does it itself (NET-9, :mod:`openigrt.net.scp`).
    """
    from pynetdicom import AE

    net = settings.network
    ae = AE(ae_title=ae_title or settings.local.ae_title)
    ae.implementation_class_uid = net.implementation_class_uid
    ae.implementation_version_name = net.implementation_version_name
    ae.maximum_pdu_size = net.max_pdu_receive
    ae.acse_timeout = net.acse_timeout
    ae.dimse_timeout = net.dimse_timeout
    ae.network_timeout = net.network_timeout
    ae.connection_timeout = net.connect_timeout
    ae.require_called_aet = False
    ae.require_calling_aet = []
    return ae


def build_contexts(pairs: Sequence[tuple[str, Sequence[str]]]) -> list[PresentationContext]:
    """Build presentation contexts from ``(abstract syntax, [transfer syntaxes])`` pairs."""
    from pynetdicom.presentation import build_context

    return [build_context(abstract, list(syntaxes)) for abstract, syntaxes in pairs]


class AssociationLimiter:
    """Bound the number of associations initiated at the same time (NET-11).

    >>> lim = AssociationLimiter(1)
    >>> with lim.slot(timeout=0.1):
    ...     lim.in_use
    1
    >>> lim.in_use
    0
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        """Associations currently open through this limiter."""
        return self._in_use

    @contextmanager
    def slot(self, *, timeout: float) -> Iterator[None]:
        """Hold one slot; wait at most *timeout* seconds for it (raises NetworkError)."""
        if not self._sem.acquire(timeout=timeout):
            raise NetworkError(
                f"no association slot free within {timeout:g} s "
                f"(network.max_associations = {self.limit} already in use)"
            )
        with self._lock:
            self._in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_use -= 1
            self._sem.release()


@dataclass
class _Trace:
    """What happened while an association was requested (to explain a failure)."""

    connected: bool = False
    abort_received: bool = False
    events: list[str] = field(default_factory=list)


def _trace_conn(event: Any, trace: _Trace) -> None:
    trace.connected = True


def _trace_acse(event: Any, trace: _Trace) -> None:
    name = type(event.primitive).__name__
    trace.events.append(name)
    if name in ("A_ABORT", "A_P_ABORT"):
        trace.abort_received = True


def _assoc_error(assoc: Association, remote: RemoteAE, trace: _Trace, settings: Settings, *,
                 tls_used: bool = False, tls_error: BaseException | None = None) -> NetworkError:
    """Turn a failed ``AE.associate`` into the right exception (message names the peer)."""
    if tls_error is not None and not assoc.is_rejected:
        from openigrt.net.tls import failure_message

        return TlsError(failure_message(str(remote), tls_error))
    if not trace.connected:
        return ConnectionFailed(
            f"cannot connect to {remote}: TCP connection refused or not answered within "
            f"{settings.network.connect_timeout:g} s"
        )
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        result, source, reason = int(rsp.result or 0), int(rsp.result_source or 0), int(rsp.diagnostic or 0)
        return AssociationRejected(
            f"{remote} rejected the association ({describe_reject(result, source, reason)}); "
            f"check that it knows our AE title {assoc.requestor.ae_title!r} and address",
            result=result, source=source, reason=reason,
        )
    hint = "" if tls_used else " (if it is a DICOM TLS port: --tls)"
    if trace.abort_received:
        return AssociationAborted(f"{remote} aborted the association request{hint}")
    if "A_ASSOCIATE" in trace.events and not assoc.accepted_contexts:
        proposed = sorted({str(cx.abstract_syntax.name) for cx in assoc.rejected_contexts}) or ["(none)"]
        return AssociationRejected(
            f"{remote} accepted the association but none of the proposed presentation contexts "
            f"({', '.join(proposed)}); it does not offer this service to us"
        )
    return AssociationAborted(
        f"{remote} did not accept the association within {settings.network.acse_timeout:g} s "
        f"(no A-ASSOCIATE response, or the connection was closed){hint}"
    )


@contextmanager
def open_association(
    ae: AE,
    remote: RemoteAE,
    *,
    settings: Settings,
    contexts: Sequence[PresentationContext],
    limiter: AssociationLimiter | None = None,
    evt_handlers: Sequence[Any] = (),
    bind_address: tuple[str, int] | None = None,
    tls: ClientTls | None = None,
) -> Iterator[Association]:
    """Open an association to *remote*, yield it, then release it (abort if release fails).

    With *tls* the connection is DICOM TLS (:mod:`openigrt.net.tls`); a failed handshake raises
    :class:`~openigrt.errors.TlsError` saying why (certificate expired, unknown CA, host name,
    a plain port, our certificate refused).

    Raises
    ------
    ConnectionFailed, AssociationRejected, AssociationAborted
        When the association cannot be established; the message names the peer.
    """
    from pynetdicom import evt

    lim = limiter or AssociationLimiter(settings.network.max_associations)
    trace = _Trace()
    handlers = [nodelay_handler(), (evt.EVT_CONN_OPEN, _trace_conn, [trace]),
                (evt.EVT_ACSE_RECV, _trace_acse, [trace]), *evt_handlers]
    with lim.slot(timeout=settings.network.acse_timeout):
        kwargs: dict[str, Any] = {}
        if bind_address is not None:
            kwargs["bind_address"] = bind_address
        tls_trace = tls.trace() if tls is not None else None
        if tls_trace is not None:
            kwargs["tls_args"] = (tls_trace, remote.host)
        assoc = ae.associate(
            remote.host, remote.port, contexts=list(contexts), ae_title=remote.ae_title,
            max_pdu=settings.network.max_pdu_receive, evt_handlers=handlers, **kwargs,
        )
        if not assoc.is_established:
            raise _assoc_error(assoc, remote, trace, settings, tls_used=tls_trace is not None,
                               tls_error=tls_trace.error if tls_trace else None)
        _cap_send_pdu(assoc, settings.network.max_pdu_send)
        LOG.debug("association to %s established", remote)
        try:
            yield assoc
        finally:
            close_association(assoc)


def _cap_send_pdu(assoc: Association, cap: int) -> None:
    """Apply our max PDU send size on top of the peer's announced receive limit."""
    from pynetdicom.pdu_primitives import MaximumLengthNotification

    if cap <= 0:
        return
    peer = int(assoc.acceptor.maximum_length or 0)
    value = cap if peer == 0 else min(peer, cap)
    # After negotiation pynetdicom's setter refuses; DIMSE reads the peer's (received) item.
    for item in assoc.acceptor.user_information:
        if isinstance(item, MaximumLengthNotification):
            item.maximum_length_received = value


def close_association(assoc: Association) -> None:
    """Release an established association; abort when the release does not complete."""
    if assoc.is_established:
        try:
            assoc.release()
        except Exception:  # pragma: no cover - defensive: never leave a socket open
            LOG.exception("release failed; aborting")
        if assoc.is_established:
            assoc.abort()
    elif not (assoc.is_released or assoc.is_aborted or assoc.is_rejected):
        assoc.abort()
