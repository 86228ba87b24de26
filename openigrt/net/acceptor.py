"""A lean PS3.8 association acceptor for the Storage and Verification SCP (NET-7 … NET-10).

Why not pynetdicom's acceptor: measured here (docs/PEERS.md, benchmarks/README.md), its two
polling reactors (DUL and association, each sleeping 1 ms when idle) and per-message pydicom
command encoding put a floor of ~0.8 s under 200 CT C-STOREs with a handler that does nothing,
and ~10-15 ms under each accepted association; with the per-instance ``fsync`` the cache needs,
the SCP could not reach the speed targets. This acceptor does only what a Storage/Verification
SCP needs, on one blocking thread per association:

* reads PDUs with ``recv_into`` (TCP_NODELAY set on accept), no polling;
* parses A-ASSOCIATE-RQ and encodes A-ASSOCIATE-AC / -RJ by hand (PS3.8 9.3.2-9.3.4; the
  tests decode them with pynetdicom and DCMTK), applies the access policy (NET-9), checks the
  application context name, and applies the first-proposed transfer syntax rule (NET-7);
* reassembles P-DATA fragments into command set + encoded data set without copying per PDV,
  parses the command set (group 0000, Implicit VR LE) by hand and answers C-STORE / C-ECHO with
  a hand-encoded response command (PS3.7 9.3.1.2, 9.3.5.2); any other command is answered
  0x0211 (unrecognised operation);
* A-RELEASE-RQ → A-RELEASE-RP; A-ABORT → close; unexpected PDU or garbage → A-ABORT
  (source 2, reason 2) and close; no A-ASSOCIATE-RQ within the ACSE timeout or no PDU within the
  network timeout → close. Nothing a peer sends can raise out of the connection thread.

What it deliberately does not do (not needed by a Storage/Verification SCP): extended
negotiation replies (role selection, asynchronous operations window: one operation at a time is
the default), user identity, TLS.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from openigrt.net.ae import set_tcp_nodelay

LOG = logging.getLogger("openigrt.net.acceptor")

# PDU types (PS3.8 9.3.1)
A_ASSOCIATE_RQ: Final = 0x01
A_ASSOCIATE_AC: Final = 0x02
A_ASSOCIATE_RJ: Final = 0x03
P_DATA_TF: Final = 0x04
A_RELEASE_RQ: Final = 0x05
A_RELEASE_RP: Final = 0x06
A_ABORT: Final = 0x07
#: Largest PDU we read into memory (a peer claiming more is aborted).
MAX_PDU_BYTES: Final = 256 * 1024 * 1024
#: How long we wait for the peer to close after A-ASSOCIATE-RJ / A-RELEASE-RP, s.
CLOSE_WAIT_S: Final = 5.0
#: Presentation context results (PS3.8 9.3.3.2).
CX_ACCEPTANCE, CX_ABSTRACT_NOT_SUPPORTED, CX_TS_NOT_SUPPORTED = 0, 3, 4

# Command set (PS3.7 E.1)
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
NO_DATASET: Final = 0x0101
STATUS_UNRECOGNISED_OPERATION: Final = 0x0211


class ProtocolError(Exception):
    """The peer broke the protocol (we answer A-ABORT)."""


class _Closed(Exception):
    """The peer closed the connection or a read timed out."""


# --------------------------------------------------------------------------- command sets
def parse_command(data: bytes) -> dict[int, bytes]:
    """Parse an Implicit VR LE group 0000 command set into ``{tag: raw value}``.

    >>> parse_command(bytes.fromhex("00000001" "02000000" "3000"))
    {256: b'0\\x00'}
    """
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHL", data, pos)
        pos += 8
        if pos + length > end:
            raise ProtocolError("truncated command set")
        out[(group << 16) | elem] = bytes(data[pos:pos + length])
        pos += length
    if pos != end:
        raise ProtocolError("trailing bytes in command set")
    return out


def command_text(cmd: dict[int, bytes], tag: int) -> str:
    return cmd.get(tag, b"").decode("ascii", "replace").rstrip("\x00 ").strip()


def command_us(cmd: dict[int, bytes], tag: int, default: int = -1) -> int:
    raw = cmd.get(tag)
    return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _pad(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def encode_response(*, command_field: int, message_id: int, status: int, sop_class_uid: str,
                    sop_instance_uid: str = "", error_comment: str = "") -> bytes:
    """Encode a DIMSE-C response command set (Implicit VR LE, elements ascending, group length first)."""
    body = _element(0x00000002, _pad(sop_class_uid, b"\x00"))
    body += _element(0x00000100, struct.pack("<H", command_field))
    body += _element(0x00000120, struct.pack("<H", message_id & 0xFFFF))
    body += _element(0x00000800, struct.pack("<H", NO_DATASET))
    body += _element(0x00000900, struct.pack("<H", status))
    if error_comment:
        body += _element(0x00000902, _pad(error_comment[:64], b" "))
    if sop_instance_uid:
        body += _element(0x00001000, _pad(sop_instance_uid, b"\x00"))
    return _element(0x00000000, struct.pack("<L", len(body))) + body


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def p_data_command(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF PDU carrying a whole command set (control header: command, last fragment)."""
    return _pdu(P_DATA_TF, struct.pack(">LBB", len(command) + 2, context_id, 0x03) + command)


def abort_pdu(source: int = 2, reason: int = 2) -> bytes:
    return _pdu(A_ABORT, bytes([0, 0, source, reason]))


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return _pdu(A_ASSOCIATE_RJ, bytes([0, result, source, reason]))


# --------------------------------------------------------------------------- negotiation
@dataclass(frozen=True)
class AcceptedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntax: str


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
class ProposedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class AssociateRQ:
    """The fields of an A-ASSOCIATE-RQ PDU we use (PS3.8 9.3.2)."""

    protocol_version: int
    called_ae_title: str
    calling_ae_title: str
    raw_titles: bytes  # called AE, calling AE and the 32 reserved bytes, echoed in the A-ASSOCIATE-AC
    application_context: str
    contexts: tuple[ProposedContext, ...]
    max_length: int
    implementation_class_uid: str


def _uid_text(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("ascii", "replace").rstrip("\x00 ").strip()


def _sub_items(view: memoryview, pos: int, end: int, what: str) -> list[tuple[int, memoryview]]:
    """Split ``type(1) reserved(1) length(2) value`` items (PS3.8 9.3.2.2-3)."""
    items = []
    while pos < end:
        if pos + 4 > end:
            raise ProtocolError(f"truncated {what} item")
        item_type, _, length = struct.unpack_from(">BBH", view, pos)
        if pos + 4 + length > end:
            raise ProtocolError(f"{what} item 0x{item_type:02X} runs past its parent")
        items.append((item_type, view[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return items


def parse_associate_rq(body: bytes | bytearray) -> AssociateRQ:
    """Parse an A-ASSOCIATE-RQ PDU body (after the 6-byte PDU header).

    Hand-written: pynetdicom's PDU item classes validate every UID with pydicom and cost
    ~20 ms for the ~120 contexts DCMTK's dcmqrscp proposes on each C-MOVE sub-association.
    """
    view = memoryview(body)
    if len(view) < 68:
        raise ProtocolError("A-ASSOCIATE-RQ too short")
    version = struct.unpack_from(">H", view, 0)[0]
    called, calling = _uid_text(view[4:20]), _uid_text(view[20:36])
    app_context, contexts, max_length, impl = "", [], 0, ""
    for item_type, value in _sub_items(view, 68, len(view), "A-ASSOCIATE-RQ"):
        if item_type == 0x10:
            app_context = _uid_text(value)
        elif item_type == 0x20:
            if len(value) < 4:
                raise ProtocolError("truncated presentation context item")
            abstract, syntaxes = "", []
            for sub_type, sub in _sub_items(value, 4, len(value), "presentation context"):
                if sub_type == 0x30:
                    abstract = _uid_text(sub)
                elif sub_type == 0x40:
                    syntaxes.append(_uid_text(sub))
            contexts.append(ProposedContext(value[0], abstract, tuple(syntaxes)))
        elif item_type == 0x50:
            for sub_type, sub in _sub_items(value, 0, len(value), "user information"):
                if sub_type == 0x51 and len(sub) == 4:
                    max_length = struct.unpack_from(">L", sub, 0)[0]
                elif sub_type == 0x52:
                    impl = _uid_text(sub)
    return AssociateRQ(version, called, calling, bytes(view[4:68]), app_context, tuple(contexts), max_length, impl)


def negotiate_contexts(requested: tuple[ProposedContext, ...], supported: dict[str, tuple[str, ...]]
                       ) -> tuple[list[tuple[int, int, str]], dict[int, AcceptedContext]]:
    """``(context id, result, transfer syntax)`` for every proposed context, and the accepted ones.

    Every context of a supported class with a supported syntax is accepted (duplicates too);
    the **first syntax the proposer listed** that we support is chosen (NET-7).

    >>> negotiate_contexts((ProposedContext(1, "1.2", ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")),
    ...                     ProposedContext(3, "1.2", ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")),
    ...                     ProposedContext(5, "9.9", ("1.2.840.10008.1.2",))),
    ...                    {"1.2": ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")})[0]
    [(1, 0, '1.2.840.10008.1.2.1'), (3, 0, '1.2.840.10008.1.2'), (5, 3, '1.2.840.10008.1.2')]
    """
    results, accepted = [], {}
    for rq in requested:
        ours = supported.get(rq.abstract_syntax)
        first = next((ts for ts in rq.transfer_syntaxes if ours and ts in ours), None)
        fallback = rq.transfer_syntaxes[0] if rq.transfer_syntaxes else "1.2.840.10008.1.2"
        if ours is None:
            results.append((rq.context_id, CX_ABSTRACT_NOT_SUPPORTED, fallback))
        elif first is None:
            results.append((rq.context_id, CX_TS_NOT_SUPPORTED, fallback))
        else:
            results.append((rq.context_id, CX_ACCEPTANCE, first))
            accepted[rq.context_id] = AcceptedContext(rq.context_id, rq.abstract_syntax, first)
    return results, accepted


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def encode_associate_ac(rq: AssociateRQ, results: list[tuple[int, int, str]], *, max_length: int,
                        implementation_class_uid: str, implementation_version_name: str) -> bytes:
    """Encode the A-ASSOCIATE-AC PDU (PS3.8 9.3.3): AE title and reserved fields echoed, one result per context."""
    items = [_item(0x10, b"1.2.840.10008.3.1.1.1")]
    for cx_id, result, ts in results:
        items.append(_item(0x21, bytes([cx_id, 0, result, 0]) + _item(0x40, ts.encode("ascii"))))
    user = (_item(0x51, struct.pack(">L", max_length)) + _item(0x52, implementation_class_uid.encode("ascii"))
            + _item(0x55, implementation_version_name.encode("ascii")))
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 0x0001, 0) + rq.raw_titles + b"".join(items)  # PS3.8 9.3.3: fields echoed
    return _pdu(A_ASSOCIATE_AC, body)


@dataclass(frozen=True)
class AcceptorConfig:
    """What the acceptor needs; built by :class:`~openigrt.net.scp.StorageSCP`."""

    ae_title: str
    supported: dict[str, tuple[str, ...]]
    check_access: Callable[[str, str, str], Any]  # (called, calling, address) -> Rejection | None
    on_store: Callable[[StoreRequest], tuple[int, str]]  # -> (status, error comment)
    implementation_class_uid: str
    implementation_version_name: str
    max_pdu_receive: int
    acse_timeout: float
    network_timeout: float
    max_associations: int


# --------------------------------------------------------------------------- one association
class _Association:
    """Serve one connection (runs in its own thread)."""

    def __init__(self, sock: socket.socket, address: str, config: AcceptorConfig,
                 active_count: Callable[[], int]) -> None:
        self.sock = sock
        self.address = address
        self.cfg = config
        self.active_count = active_count
        self.calling = ""
        self.contexts: dict[int, AcceptedContext] = {}
        self.peer_max_pdu = 0
        self._hdr = bytearray(6)

    # ----------------------------------------------------------------- I/O
    def _recv_exact(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            try:
                n = self.sock.recv_into(view[got:])
            except (TimeoutError, OSError) as exc:
                raise _Closed(str(exc)) from None
            if n == 0:
                raise _Closed("connection closed by peer")
            got += n

    def read_pdu(self) -> tuple[int, bytearray]:
        self._recv_exact(memoryview(self._hdr))
        pdu_type, _, length = struct.unpack(">BBL", self._hdr)
        if pdu_type not in (1, 2, 3, 4, 5, 6, 7):
            raise ProtocolError(f"unknown PDU type 0x{pdu_type:02X}")
        if length > MAX_PDU_BYTES:
            raise ProtocolError(f"PDU of {length} bytes is beyond our limit")
        body = bytearray(length)
        self._recv_exact(memoryview(body))
        return pdu_type, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _close_after(self, data: bytes) -> None:
        """Send a final PDU, then wait (bounded) for the peer to close (PS3.8 ARTIM)."""
        try:
            self.send(data)
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(min(CLOSE_WAIT_S, self.cfg.acse_timeout))
            while self.sock.recv(4096):
                pass
        except OSError:
            pass

    # ----------------------------------------------------------------- association
    def serve(self) -> None:
        try:
            self.sock.settimeout(self.cfg.acse_timeout)
            pdu_type, body = self.read_pdu()
            if pdu_type != A_ASSOCIATE_RQ:
                raise ProtocolError(f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}")
            if not self._associate(body):
                return
            self.sock.settimeout(self.cfg.network_timeout)
            self._run()
        except ProtocolError as exc:
            LOG.warning("association from %s@%s aborted: %s", self.calling or "?", self.address, exc)
            try:
                self.send(abort_pdu(2, 2))
            except OSError:
                pass
        except _Closed as exc:
            LOG.info("association from %s@%s ended: %s", self.calling or "?", self.address, exc)
        except Exception:  # never let anything escape the connection thread
            LOG.exception("association from %s@%s failed", self.calling or "?", self.address)
            try:
                self.send(abort_pdu(2, 0))
            except OSError:
                pass

    def _associate(self, body: bytearray) -> bool:
        rq = parse_associate_rq(body)
        self.calling, called = rq.calling_ae_title, rq.called_ae_title
        if not rq.protocol_version & 0x01:
            LOG.warning("rejected association from %s@%s: protocol version %d not supported",
                        self.calling, self.address, rq.protocol_version)
            self._close_after(reject_pdu(1, 2, 2))
            return False
        decision = self.cfg.check_access(called, self.calling, self.address)
        if decision is None and rq.application_context != "1.2.840.10008.3.1.1.1":
            decision = _Rejection(1, 1, 2, f"application context {rq.application_context!r} not supported")
        if decision is None and self.active_count() > self.cfg.max_associations:
            decision = _Rejection(2, 3, 2, f"more than {self.cfg.max_associations} simultaneous associations")
        if decision is not None:
            LOG.warning("rejected association from %s@%s to %s: %s (A-ASSOCIATE-RJ %d/%d/%d)", self.calling,
                        self.address, called, decision.why, decision.result, decision.source, decision.reason)
            self._close_after(reject_pdu(decision.result, decision.source, decision.reason))
            return False
        self.peer_max_pdu = rq.max_length
        results, self.contexts = negotiate_contexts(rq.contexts, self.cfg.supported)
        self.send(encode_associate_ac(rq, results, max_length=self.cfg.max_pdu_receive,
                                      implementation_class_uid=self.cfg.implementation_class_uid,
                                      implementation_version_name=self.cfg.implementation_version_name))
        LOG.debug("accepted association from %s@%s: %d of %d contexts", self.calling, self.address,
                  len(self.contexts), len(results))
        return True

    # ----------------------------------------------------------------- DIMSE
    def _run(self) -> None:
        command: list[bytes | memoryview] = []
        data: list[bytes | memoryview] = []
        ctx_id = -1
        cmd: dict[int, bytes] | None = None
        while True:
            pdu_type, body = self.read_pdu()
            if pdu_type == A_RELEASE_RQ:
                LOG.debug("association from %s@%s released", self.calling, self.address)
                self._close_after(_pdu(A_RELEASE_RP, bytes(4)))
                return
            if pdu_type == A_ABORT:
                LOG.info("association from %s@%s aborted by the peer", self.calling, self.address)
                return
            if pdu_type != P_DATA_TF:
                raise ProtocolError(f"unexpected PDU type 0x{pdu_type:02X} during the association")
            view = memoryview(body)
            pos = 0
            while pos < len(view):
                if pos + 6 > len(view):
                    raise ProtocolError("truncated PDV item")
                item_len, pcid, ctrl = struct.unpack_from(">LBB", view, pos)
                if item_len < 2 or pos + 4 + item_len > len(view):
                    raise ProtocolError("bad PDV item length")
                fragment = view[pos + 6:pos + 4 + item_len]
                pos += 4 + item_len
                if ctx_id not in (-1, pcid):
                    raise ProtocolError("PDVs of one message on different presentation contexts")
                ctx_id = pcid
                if ctrl & 0x01:
                    if cmd is not None:
                        raise ProtocolError("command fragment after the last command fragment")
                    command.append(fragment)
                    if ctrl & 0x02:
                        cmd = parse_command(b"".join(command))
                        if command_us(cmd, 0x00000800, NO_DATASET) == NO_DATASET:
                            self._dispatch(ctx_id, cmd, b"")
                            command, data, ctx_id, cmd = [], [], -1, None
                else:
                    if cmd is None:
                        raise ProtocolError("data set fragment before the command set")
                    data.append(fragment)
                    if ctrl & 0x02:
                        self._dispatch(ctx_id, cmd, b"".join(data))
                        command, data, ctx_id, cmd = [], [], -1, None

    def _dispatch(self, ctx_id: int, cmd: dict[int, bytes], dataset: bytes) -> None:
        context = self.contexts.get(ctx_id)
        if context is None:
            raise ProtocolError(f"message on presentation context {ctx_id}, which was not accepted")
        field = command_us(cmd, 0x00000100)
        msg_id = command_us(cmd, 0x00000110, 0)
        sop_class = command_text(cmd, 0x00000002)
        if field == C_ECHO_RQ:
            LOG.info("C-ECHO from %s@%s", self.calling, self.address)
            rsp = encode_response(command_field=C_ECHO_RSP, message_id=msg_id, status=0x0000,
                                  sop_class_uid=sop_class or context.abstract_syntax)
        elif field == C_STORE_RQ:
            uid = command_text(cmd, 0x00001000)
            status, comment = self.cfg.on_store(StoreRequest(context, msg_id, sop_class, uid, dataset,
                                                             self.calling, self.address))
            rsp = encode_response(command_field=C_STORE_RSP, message_id=msg_id, status=status,
                                  sop_class_uid=sop_class, sop_instance_uid=uid, error_comment=comment)
        else:
            LOG.warning("unsupported DIMSE command 0x%04X from %s@%s", field, self.calling, self.address)
            rsp = encode_response(command_field=(field | 0x8000) & 0xFFFF, message_id=msg_id,
                                  status=STATUS_UNRECOGNISED_OPERATION, sop_class_uid=sop_class)
        self.send(p_data_command(ctx_id, rsp))


@dataclass(frozen=True)
class _Rejection:
    result: int
    source: int
    reason: int
    why: str


# --------------------------------------------------------------------------- the server
class _Handler(socketserver.BaseRequestHandler):
    server: AcceptorServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        set_tcp_nodelay(sock)
        threading.current_thread().name = f"openigrt-assoc-{self.client_address[0]}:{self.client_address[1]}"
        assoc = _Association(sock, str(self.client_address[0]), self.server.config, self.server.active_count)
        with self.server.track(sock):
            assoc.serve()


class AcceptorServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP server running one :class:`_Association` per connection."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], config: AcceptorConfig) -> None:
        self.config = config
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    class _Tracker:
        def __init__(self, server: AcceptorServer, sock: socket.socket) -> None:
            self.server, self.sock = server, sock

        def __enter__(self) -> None:
            with self.server._open_lock:
                self.server._open.add(self.sock)

        def __exit__(self, *exc: object) -> None:
            with self.server._open_lock:
                self.server._open.discard(self.sock)

    def track(self, sock: socket.socket) -> AcceptorServer._Tracker:
        return AcceptorServer._Tracker(self, sock)

    def active_count(self) -> int:
        """Associations (connections) currently being served."""
        with self._open_lock:
            return len(self._open)

    def sockets(self) -> list[socket.socket]:
        """The sockets of the connections being served (tests read their options)."""
        with self._open_lock:
            return list(self._open)

    def abort_all(self) -> None:
        """A-ABORT every open association (used when the SCP stops)."""
        with self._open_lock:
            socks = list(self._open)
        for s in socks:
            try:
                s.sendall(abort_pdu(1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
