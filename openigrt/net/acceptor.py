"""A lean PS3.8 association acceptor for the Storage and Verification SCP (NET-7 … NET-10).

Why not pynetdicom's acceptor: measured here (docs/PEERS.md, benchmarks/README.md), its two
polling reactors (DUL and association, each sleeping 1 ms when idle) and per-message pydicom
command encoding put a floor of ~0.8 s under 200 CT C-STOREs with a handler that does nothing,
and ~10-15 ms under each accepted association; with the per-instance ``fsync`` the cache needs,
the SCP could not reach the speed targets. This acceptor does only what a Storage/Verification
SCP needs, on one blocking thread per connection:

* reads PDUs with ``recv_into`` (TCP_NODELAY set on accept), no polling;
* parses A-ASSOCIATE-RQ and encodes A-ASSOCIATE-AC / -RJ by hand (:mod:`openigrt.net.pdu`),
  applies the access policy (NET-9), checks the application context name, and applies the
  first-proposed transfer syntax rule (NET-7);
* reassembles P-DATA fragments into command set + encoded data set without copying per PDV,
  parses the command set by hand (:mod:`openigrt.net.command`) and answers C-STORE / C-ECHO;
  any other command is answered 0x0211 (unrecognised operation);
* A-RELEASE-RQ → A-RELEASE-RP; A-ABORT → close; unexpected PDU or garbage → A-ABORT
  (source 2, reason 2) and close.

Everything a peer sends is hostile until checked (issue 9):

* **memory**: a PDU's length is checked before anything is allocated — an A-ASSOCIATE-RQ
  against ``max_associate_rq`` (it arrives before any AE title check), a P-DATA-TF against the
  maximum we advertised (``max_pdu_receive``; when that is 0, "unlimited", against
  ``max_pdu_receive_cap``), any other PDU against :data:`MAX_CONTROL_PDU_BYTES` — and a body
  beyond :data:`READ_CHUNK_BYTES` is read incrementally, so the memory held is what the peer
  really sent; a reassembled message is capped at ``max_message_size``;
* **time and places**: see :mod:`openigrt.net.connections` (deadlines from accept, pending vs
  associated connections, per-address caps, eviction of the oldest pending connection);
* **negotiation**: undecodable UIDs refuse their context, AE titles outside PS3.5's repertoire
  are rejected (A-ASSOCIATE-RJ 1/1/3 or 1/1/7);
* **DIMSE**: a PDV on a context that was not accepted is a protocol error at once; a C-STORE on
  a context whose SOP class is not a storage class we accept is answered 0x0122;
* **network events**: a reset, a broken pipe, a close or a passed deadline ends the connection
  with one info line (:class:`PeerGone`), never a traceback.

The accept → TCP_NODELAY → wrap step is :meth:`AcceptorServer.open_connection`, the one place a
TLS layer (``AcceptorConfig.wrap_socket``, :class:`openigrt.net.tls.TlsAcceptor`) plugs in: it
runs in the connection's thread, while the connection is still *pending* (so a peer that never
completes its handshake holds a pending place only, and is evicted like a silent one), under the
ACSE deadline counted from the accept; a refused handshake is one log line with the address.
The association code only uses ``recv_into``/``sendall``/``settimeout``/``shutdown``, which an
``ssl.SSLSocket`` provides.

What it deliberately does not do (not needed by a Storage/Verification SCP): extended
negotiation replies (role selection, asynchronous operations window: one operation at a time is
the default), user identity.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from openigrt.net.ae import set_tcp_nodelay
from openigrt.net.command import (
    AFFECTED_SOP_CLASS_UID,
    AFFECTED_SOP_INSTANCE_UID,
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    COMMAND_DATA_SET_TYPE,
    COMMAND_FIELD,
    MAX_COMMAND_BYTES,
    MESSAGE_ID,
    NO_DATASET,
    command_text,
    command_us,
    encode_response,
    parse_command,
)
from openigrt.net.connections import AcceptorLimits, Connection, ConnectionTable, TransportRefused
from openigrt.net.pdu import (
    A_ABORT,
    A_ASSOCIATE_RQ,
    A_RELEASE_RQ,
    APPLICATION_CONTEXT,
    P_DATA_TF,
    PDU_TYPES,
    RELEASE_RP,
    AcceptedContext,
    ProtocolError,
    abort_pdu,
    encode_associate_ac,
    negotiate_contexts,
    p_data_command,
    parse_associate_rq,
    reject_pdu,
    valid_ae_title,
)
from openigrt.net.status import SCP_CANNOT_UNDERSTAND, SCP_SOP_CLASS_NOT_SUPPORTED, SCP_UNRECOGNISED_OPERATION
from openigrt.net.tls import describe_session

LOG = logging.getLogger("openigrt.net.acceptor")

#: How long we wait for the peer to close after A-ASSOCIATE-RJ / A-RELEASE-RP (in total), s.
CLOSE_WAIT_S: Final = 5.0
#: PDU bodies up to this size are read into one buffer of their length; larger ones grow
#: (doubling) as their bytes arrive, so a length claim alone allocates nothing.
READ_CHUNK_BYTES: Final = 1024 * 1024
#: Largest PDU other than A-ASSOCIATE-RQ and P-DATA-TF (A-RELEASE and A-ABORT bodies are 4 bytes).
MAX_CONTROL_PDU_BYTES: Final = 1024
#: A socket timeout is re-armed when this much time passed since it was set (bounds the overshoot), s.
TIMEOUT_SLACK_S: Final = 0.2
#: Listen backlog (a burst of connections waits in the kernel, not in SYN retransmits).
LISTEN_BACKLOG: Final = 128
#: After accept() fails for lack of descriptors or memory, wait this long before the next try, s.
ACCEPT_BACKOFF_S: Final = 0.05
_ACCEPT_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class PeerGone(Exception):
    """The peer closed or reset the connection, or a deadline passed: an ordinary network event."""


# --------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class StoreRequest:
    """One complete C-STORE request as the handler sees it."""

    context: AcceptedContext
    message_id: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    dataset: bytes
    calling_ae_title: str
    peer_address: str


@dataclass(frozen=True)
class AcceptorConfig:
    """What the acceptor needs; built by :class:`~openigrt.net.scp.StorageSCP` and the archive."""

    ae_title: str
    supported: dict[str, tuple[str, ...]]
    storage_classes: frozenset[str]  # contexts on which a C-STORE is served (others: 0x0122)
    check_access: Callable[[str, str, str], Any]  # (called, calling, address) -> Rejection | None
    on_store: Callable[[StoreRequest], tuple[int, str]]  # -> (status, error comment)
    implementation_class_uid: str
    implementation_version_name: str
    limits: AcceptorLimits
    #: Hook for a TLS layer: ``wrap(conn, deadline)`` in the connection's thread; replaces ``conn.sock``,
    #: finishes by *deadline* (monotonic: the accept + ``acse_timeout``), raises TransportRefused to refuse.
    wrap_socket: Callable[[Connection, float], None] | None = None


@dataclass(frozen=True)
class _Rejection:
    result: int
    source: int
    reason: int
    why: str


@dataclass
class _Message:
    """The fragments of the DIMSE message being received."""

    context_id: int = -1
    command: list[memoryview] = field(default_factory=list)
    data: list[memoryview] = field(default_factory=list)
    cmd: dict[int, bytes] | None = None
    command_size: int = 0
    size: int = 0


# --------------------------------------------------------------------------- one association
class _Association:
    """Serve one connection (runs in its own thread)."""

    def __init__(self, conn: Connection, config: AcceptorConfig, table: ConnectionTable) -> None:
        self.conn = conn
        self.sock = conn.sock
        self.address = conn.address
        self.cfg = config
        self.limits = config.limits
        self.table = table
        self.calling = ""
        self.contexts: dict[int, AcceptedContext] = {}
        self.peer_max_pdu = 0
        self._hdr = bytearray(6)
        self._end = conn.accepted_at + self.limits.acse_timeout  # end of the current phase
        self._end_why = f"no complete A-ASSOCIATE-RQ within the ACSE timeout ({self.limits.acse_timeout:g} s)"
        self._armed = (0.0, 0.0)  # (deadline, when the socket timeout was set for it)
        self._pdu_deadline = 0.0

    # ----------------------------------------------------------------- I/O
    def _arm(self, deadline: float, why: str) -> None:
        now = time.monotonic()
        if now >= deadline:
            raise PeerGone(why)
        if self._armed[0] != deadline or now - self._armed[1] > TIMEOUT_SLACK_S:
            self.sock.settimeout(deadline - now)
            self._armed = (deadline, now)

    def _recv_into(self, view: memoryview, deadline: float, why: str) -> None:
        got = 0
        while got < len(view):
            try:
                self._arm(deadline, why)
                n = self.sock.recv_into(view[got:])
            except TimeoutError:
                raise PeerGone(why) from None
            except OSError as exc:
                raise PeerGone(self.conn.evicted or str(exc.strerror or exc)) from None
            if n == 0:
                raise PeerGone(self.conn.evicted or "connection closed by peer")
            got += n

    def _read_body(self, length: int, deadline: float, why: str) -> bytearray:
        if length <= READ_CHUNK_BYTES:
            body = bytearray(length)
            self._recv_into(memoryview(body), deadline, why)
            return body
        body, got = bytearray(READ_CHUNK_BYTES), 0
        while True:
            self._recv_into(memoryview(body)[got:], deadline, why)
            got = len(body)
            if got == length:
                return body
            body.extend(bytes(min(got, length - got)))  # only after the peer really sent `got` bytes

    def _read(self, deadline: float, why: str, limit: Callable[[int], int]) -> tuple[int, bytearray]:
        self._recv_into(memoryview(self._hdr), deadline, why)
        pdu_type, _, length = struct.unpack(">BBL", self._hdr)
        if pdu_type not in PDU_TYPES:
            hint = " (a TLS ClientHello? this port is plain DICOM: tls.listen is off)" if pdu_type == 0x16 else ""
            raise ProtocolError(f"unknown PDU type 0x{pdu_type:02X}{hint}")
        if length > limit(pdu_type):
            raise ProtocolError(f"PDU type 0x{pdu_type:02X} of {length} bytes is beyond our limit of "
                                f"{limit(pdu_type)} bytes")
        return pdu_type, self._read_body(length, deadline, why)

    def _dimse_limit(self, pdu_type: int) -> int:
        return self.limits.p_data_limit if pdu_type == P_DATA_TF else MAX_CONTROL_PDU_BYTES

    def read_pdu(self) -> tuple[int, bytearray]:
        """Read the next PDU of the association: within ``network_timeout`` (less at most
        :data:`TIMEOUT_SLACK_S`, so the socket timeout is not re-armed for every PDU of a busy
        association) and the association's end."""
        now = time.monotonic()
        if self._pdu_deadline - now < self.limits.network_timeout - TIMEOUT_SLACK_S:
            self._pdu_deadline = now + self.limits.network_timeout
        pdu_deadline = self._pdu_deadline
        if pdu_deadline < self._end:
            why = f"no complete PDU within the network timeout ({self.limits.network_timeout:g} s)"
            return self._read(pdu_deadline, why, self._dimse_limit)
        return self._read(self._end, self._end_why, self._dimse_limit)

    def send(self, data: bytes) -> None:
        """Send bytes within ``network_timeout``; a lost connection is :class:`PeerGone`."""
        try:
            self.sock.settimeout(self.limits.network_timeout)
            self._armed = (0.0, 0.0)
            self.sock.sendall(data)
        except OSError as exc:
            raise PeerGone(f"connection lost while sending ({exc.strerror or exc})") from None

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.sock.settimeout(min(CLOSE_WAIT_S, self.limits.network_timeout))
            self.sock.sendall(data)
        except OSError:
            pass

    def _close_after(self, data: bytes) -> None:
        """Send a final PDU, then wait (bounded in total) for the peer to close (PS3.8 ARTIM)."""
        deadline = time.monotonic() + min(CLOSE_WAIT_S, self.limits.acse_timeout)
        try:
            self.send(data)
            self.sock.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                if not self.sock.recv(4096):
                    break
        except (OSError, PeerGone):
            pass

    # ----------------------------------------------------------------- association
    def serve(self) -> None:
        """Run the association to its end; nothing raises out of here."""
        who = lambda: f"{self.calling or '?'}@{self.address}"  # noqa: E731
        try:
            pdu_type, body = self._read(self._end, self._end_why, lambda _t: self.limits.max_associate_rq)
            if pdu_type == A_ABORT:
                raise PeerGone("aborted by the peer before associating")
            if pdu_type != A_ASSOCIATE_RQ:
                raise ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}")
            if self._associate(body):
                self._run()
        except ProtocolError as exc:
            LOG.warning("association from %s aborted: %s", who(), exc)
            self._send_quietly(abort_pdu(2, 2))
        except PeerGone as exc:
            LOG.log(logging.DEBUG if self.conn.evicted else logging.INFO, "association from %s ended: %s", who(), exc)
        except Exception:  # never let anything escape the connection thread
            LOG.exception("association from %s failed", who())
            self._send_quietly(abort_pdu(2, 0))

    def _decide(self, rq: Any) -> _Rejection | None:
        """The A-ASSOCIATE-RJ to send, or None to accept (before the association limits)."""
        if not rq.protocol_version & 0x01:
            return _Rejection(1, 2, 2, f"protocol version {rq.protocol_version} not supported")
        if not valid_ae_title(rq.raw_called):
            return _Rejection(1, 1, 7, f"called AE title {bytes(rq.raw_called).rstrip(b' ')!r} is not a valid AE title")
        if not valid_ae_title(rq.raw_calling):
            return _Rejection(1, 1, 3, f"calling AE title {bytes(rq.raw_calling).rstrip(b' ')!r} is not a valid AE title")
        decision = self.cfg.check_access(rq.called_ae_title, rq.calling_ae_title, self.address)
        if decision is None and rq.application_context != APPLICATION_CONTEXT:
            decision = _Rejection(1, 1, 2, f"application context {rq.application_context!r} not supported")
        return decision

    def _associate(self, body: bytearray) -> bool:
        rq = parse_associate_rq(body)
        valid = valid_ae_title(rq.raw_calling)
        self.calling = rq.calling_ae_title if valid else repr(bytes(rq.raw_calling).rstrip(b" "))
        decision = self._decide(rq)
        if decision is None and (full := self.table.promote(self.conn)) is not None:
            decision = _Rejection(2, 3, 2, full)
        if decision is not None:
            LOG.warning("rejected association from %s@%s to %r: %s (A-ASSOCIATE-RJ %d/%d/%d)", self.calling,
                        self.address, rq.called_ae_title, decision.why, decision.result, decision.source,
                        decision.reason)
            self._close_after(reject_pdu(decision.result, decision.source, decision.reason))
            return False
        self.peer_max_pdu = rq.max_length
        results, self.contexts = negotiate_contexts(rq.contexts, self.cfg.supported)
        self._end = time.monotonic() + self.limits.max_association_duration
        self._end_why = f"association lasted longer than {self.limits.max_association_duration:g} s"
        self.send(encode_associate_ac(rq, results, max_length=self.limits.max_pdu_receive,
                                      implementation_class_uid=self.cfg.implementation_class_uid,
                                      implementation_version_name=self.cfg.implementation_version_name))
        LOG.debug("accepted association from %s@%s: %d of %d contexts", self.calling, self.address,
                  len(self.contexts), len(results))
        return True

    # ----------------------------------------------------------------- DIMSE
    def _run(self) -> None:
        msg = _Message()
        while True:
            pdu_type, body = self.read_pdu()
            if pdu_type == A_RELEASE_RQ:
                LOG.debug("association from %s@%s released", self.calling, self.address)
                self._close_after(RELEASE_RP)
                return
            if pdu_type == A_ABORT:
                LOG.info("association from %s@%s aborted by the peer", self.calling, self.address)
                return
            if pdu_type != P_DATA_TF:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X} during the association")
            msg = self._pdvs(memoryview(body), msg)

    def _pdvs(self, view: memoryview, msg: _Message) -> _Message:
        """Add the PDVs of one P-DATA-TF body to *msg*; dispatch each complete message."""
        pos = 0
        while pos < len(view):
            if pos + 6 > len(view):
                raise ProtocolError("truncated PDV item")
            item_len, pcid, ctrl = struct.unpack_from(">LBB", view, pos)
            if item_len < 2 or pos + 4 + item_len > len(view):
                raise ProtocolError("bad PDV item length")
            if pcid not in self.contexts:
                raise ProtocolError(f"PDV on presentation context {pcid}, which was not accepted")
            if msg.context_id not in (-1, pcid):
                raise ProtocolError("PDVs of one message on different presentation contexts")
            fragment = view[pos + 6:pos + 4 + item_len]
            pos += 4 + item_len
            msg.context_id, msg.size = pcid, msg.size + len(fragment)
            if msg.size > self.limits.max_message_size:
                raise ProtocolError(f"message of more than {self.limits.max_message_size} bytes (max_message_size)")
            if ctrl & 0x01:
                msg = self._command_fragment(msg, fragment, last=bool(ctrl & 0x02))
            elif msg.cmd is None:
                raise ProtocolError("data set fragment before the command set")
            else:
                msg.data.append(fragment)
                if ctrl & 0x02:
                    self._dispatch(pcid, msg.cmd, b"".join(msg.data))
                    msg = _Message()
        return msg

    def _command_fragment(self, msg: _Message, fragment: memoryview, *, last: bool) -> _Message:
        if msg.cmd is not None:
            raise ProtocolError("command fragment after the last command fragment")
        msg.command.append(fragment)
        msg.command_size += len(fragment)
        if msg.command_size > MAX_COMMAND_BYTES:
            raise ProtocolError(f"command set of more than {MAX_COMMAND_BYTES} bytes")
        if not last:
            return msg
        msg.cmd = parse_command(b"".join(msg.command))
        if command_us(msg.cmd, COMMAND_DATA_SET_TYPE, NO_DATASET) == NO_DATASET:
            self._dispatch(msg.context_id, msg.cmd, b"")
            return _Message()
        return msg

    def _store(self, context: AcceptedContext, msg_id: int, sop_class: str, uid: str,
               dataset: bytes) -> tuple[int, str]:
        if context.abstract_syntax not in self.cfg.storage_classes:
            LOG.warning("C-STORE of %s from %s@%s on the %s context refused with 0x%04X", uid or "?", self.calling,
                        self.address, context.abstract_syntax, SCP_SOP_CLASS_NOT_SUPPORTED)
            return SCP_SOP_CLASS_NOT_SUPPORTED, f"{context.abstract_syntax} is not a storage SOP class we accept"
        try:
            return self.cfg.on_store(StoreRequest(context, msg_id, sop_class, uid, dataset, self.calling,
                                                  self.address))
        except Exception as exc:  # a handler bug must not end the association
            LOG.exception("C-STORE of %s from %s@%s: handler failed", uid or "?", self.calling, self.address)
            return SCP_CANNOT_UNDERSTAND, f"internal error: {type(exc).__name__}"

    def _dispatch(self, ctx_id: int, cmd: dict[int, bytes], dataset: bytes) -> None:
        context = self.contexts[ctx_id]
        command_field = command_us(cmd, COMMAND_FIELD)
        msg_id = command_us(cmd, MESSAGE_ID, 0)
        sop_class = command_text(cmd, AFFECTED_SOP_CLASS_UID)
        if command_field == C_ECHO_RQ:
            LOG.info("C-ECHO from %s@%s", self.calling, self.address)
            rsp = encode_response(command_field=C_ECHO_RSP, message_id=msg_id, status=0x0000,
                                  sop_class_uid=sop_class or context.abstract_syntax)
        elif command_field == C_STORE_RQ:
            uid = command_text(cmd, AFFECTED_SOP_INSTANCE_UID)
            status, comment = self._store(context, msg_id, sop_class, uid, dataset)
            rsp = encode_response(command_field=C_STORE_RSP, message_id=msg_id, status=status,
                                  sop_class_uid=sop_class, sop_instance_uid=uid, error_comment=comment)
        else:
            LOG.warning("unsupported DIMSE command 0x%04X from %s@%s", command_field & 0xFFFF, self.calling,
                        self.address)
            rsp = encode_response(command_field=(command_field | 0x8000) & 0xFFFF, message_id=msg_id,
                                  status=SCP_UNRECOGNISED_OPERATION, sop_class_uid=sop_class)
        self.send(p_data_command(ctx_id, rsp))


# --------------------------------------------------------------------------- the server
class AcceptorServer(socketserver.TCPServer):
    """TCP server running one :class:`_Association` per connection, each in its own thread.

    Subclasses serve other association types by overriding :meth:`make_association`.
    """

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], config: AcceptorConfig) -> None:
        self.config = config
        self.table = ConnectionTable(config.limits)
        self._accept_warned = 0.0
        super().__init__(address, socketserver.BaseRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _ACCEPT_ERRORS:  # out of descriptors/memory: back off instead of spinning
                now = time.monotonic()
                if now - self._accept_warned > 60:
                    LOG.warning("cannot accept connections: %s (retrying)", exc.strerror or exc)
                    self._accept_warned = now
                time.sleep(ACCEPT_BACKOFF_S)
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        conn = Connection(request, str(client_address[0]))
        self.table.admit(conn)
        thread = threading.Thread(target=self._serve_connection, args=(conn,), daemon=True,
                                  name=f"openigrt-assoc-{client_address[0]}:{client_address[1]}")
        try:
            thread.start()
        except RuntimeError as exc:  # cannot start a thread: refuse this connection only
            LOG.warning("connection from %s refused: %s", conn.address, exc)
            self.table.remove(conn)
            self.shutdown_request(request)

    def open_connection(self, conn: Connection) -> None:
        """Prepare an accepted connection: TCP_NODELAY, then the optional wrap (TLS) under the ACSE
        deadline from the accept. The one place for both."""
        set_tcp_nodelay(conn.sock)
        if self.config.wrap_socket is not None:
            self.config.wrap_socket(conn, conn.accepted_at + self.config.limits.acse_timeout)
            if LOG.isEnabledFor(logging.DEBUG):
                LOG.debug("TLS from %s: %s", conn.address, describe_session(conn.sock))

    def make_association(self, conn: Connection) -> _Association:
        return _Association(conn, self.config, self.table)

    def _serve_connection(self, conn: Connection) -> None:
        try:
            try:
                self.open_connection(conn)
            except TransportRefused as exc:
                LOG.log(logging.DEBUG if conn.evicted else logging.WARNING, "connection from %s refused: %s",
                        conn.address, exc)
                return
            except OSError as exc:
                LOG.info("connection from %s lost before associating: %s", conn.address, exc.strerror or exc)
                return
            self.make_association(conn).serve()
        except Exception:  # pragma: no cover - serve() catches everything; belt and braces
            LOG.exception("connection from %s failed", conn.address)
        finally:
            self.table.remove(conn)
            self.shutdown_request(conn.sock)

    def handle_error(self, request: Any, client_address: Any) -> None:  # pragma: no cover - accept-loop errors
        LOG.exception("error while accepting a connection from %s", client_address)

    def active_count(self) -> int:
        """Connections currently open (pending and associated)."""
        return sum(self.table.counts())

    def sockets(self) -> list[socket.socket]:
        """The sockets of the connections being served (tests read their options)."""
        return self.table.sockets()

    def abort_all(self) -> None:
        """A-ABORT every open connection (used when the SCP stops)."""
        for s in self.table.sockets():
            try:
                if not isinstance(s, ssl.SSLSocket):  # a TLS socket is not written from another thread
                    s.settimeout(1.0)
                    s.sendall(abort_pdu(1, 0))
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
