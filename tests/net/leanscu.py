"""A lean raw-socket DICOM requestor for hostile-peer tests, the fuzz campaign and the soak test.

Written from PS3.8 9.3 / PS3.7 E.1 independently of ``openigrt.net`` (so a bug in our encoder
cannot hide one in our decoder), and cheap: one association with one C-STORE costs a few ms,
where pynetdicom needs ~10 ms and a DCMTK process ~20 ms. Every read is bounded by a timeout.

>>> rq = associate_rq("US", "THEM", [(1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"])])
>>> rq[0], struct.unpack(">L", rq[2:6])[0] == len(rq) - 6
(1, True)
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
ILE, ELE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
NO_DATASET = 0x0101


# --------------------------------------------------------------------------- encoding
def _even(raw: bytes, pad: bytes = b"\x00") -> bytes:
    return raw + pad if len(raw) % 2 else raw


def item(item_type: int, value: bytes) -> bytes:
    """A ``type reserved length(2) value`` item of an A-ASSOCIATE PDU."""
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def ae_field(title: str | bytes) -> bytes:
    raw = title if isinstance(title, bytes) else title.encode("ascii")
    return raw[:16].ljust(16, b" ")


def context_item(context_id: int, abstract: str | bytes, syntaxes: Iterable[str | bytes]) -> bytes:
    def b(x: str | bytes) -> bytes:
        return x if isinstance(x, bytes) else x.encode("ascii")

    body = bytes([context_id, 0, 0, 0]) + item(0x30, b(abstract))
    for ts in syntaxes:
        body += item(0x40, b(ts))
    return item(0x20, body)


def associate_rq(called: str | bytes, calling: str | bytes,
                 contexts: Sequence[tuple[int, str | bytes, Sequence[str | bytes]]], *,
                 max_pdu: int = 16384, app_context: str | bytes = APP_CONTEXT,
                 implementation_uid: str = "1.2.826.0.1.3680043.9.7156.1", user_info: bool = True) -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2); without the User Information item when *user_info* is False."""
    ctx = app_context if isinstance(app_context, bytes) else app_context.encode("ascii")
    body = struct.pack(">HH", 1, 0) + ae_field(called) + ae_field(calling) + bytes(32) + item(0x10, ctx)
    body += b"".join(context_item(c, a, ts) for c, a, ts in contexts)
    if not user_info:
        return pdu(0x01, body)
    user = item(0x51, struct.pack(">L", max_pdu)) + item(0x52, implementation_uid.encode("ascii"))
    return pdu(0x01, body + item(0x50, user))


def element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def command_set(elements: Sequence[tuple[int, bytes]]) -> bytes:
    """A group 0000 command set with its group length (Implicit VR LE)."""
    body = b"".join(element(t, v) for t, v in sorted(elements))
    return element(0x00000000, struct.pack("<L", len(body))) + body


def c_store_rq(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    return command_set([
        (0x00000002, _even(sop_class.encode("ascii"))), (0x00000100, struct.pack("<H", 0x0001)),
        (0x00000110, struct.pack("<H", message_id)), (0x00000700, struct.pack("<H", 0)),
        (0x00000800, struct.pack("<H", 0x0001)), (0x00001000, _even(sop_instance.encode("ascii"))),
    ])


def c_echo_rq(message_id: int) -> bytes:
    return command_set([
        (0x00000002, _even(VERIFICATION.encode("ascii"))), (0x00000100, struct.pack("<H", 0x0030)),
        (0x00000110, struct.pack("<H", message_id)), (0x00000800, struct.pack("<H", NO_DATASET)),
    ])


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    """One presentation data value item (control: bit 0 command, bit 1 last fragment)."""
    return struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment


def p_data(*pdvs: bytes) -> bytes:
    return pdu(0x04, b"".join(pdvs))


def message_pdus(context_id: int, command: bytes, dataset: bytes | None, max_pdu: int = 16384) -> list[bytes]:
    """P-DATA-TF PDUs carrying a command set and an optional data set, fragmented to *max_pdu*."""
    room = max(max_pdu - 6, 1) if max_pdu else 1 << 30
    out = []
    for data, kind in ((command, 0x01), (dataset, 0x00)):
        if data is None:
            continue
        chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
        for i, chunk in enumerate(chunks):
            out.append(p_data(pdv(context_id, kind | (0x02 if i == len(chunks) - 1 else 0), chunk)))
    return out


RELEASE_RQ = pdu(0x05, bytes(4))
ABORT = pdu(0x07, bytes([0, 0, 0, 0]))


# --------------------------------------------------------------------------- decoding
class PeerClosed(Exception):
    """The SCP closed the connection (or did not answer in time)."""


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (TimeoutError, OSError) as exc:
            raise PeerClosed(str(exc)) from None
        if not chunk:
            raise PeerClosed("closed by the SCP")
        buf += chunk
    return bytes(buf)


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    head = recv_exact(sock, 6)
    pdu_type, _, length = struct.unpack(">BBL", head)
    if length > 1 << 24:
        raise PeerClosed(f"absurd PDU length {length} from the SCP")
    return pdu_type, recv_exact(sock, length)


@dataclass(frozen=True)
class AssociateAC:
    """What we read from an A-ASSOCIATE-AC: ``{context id: (result, transfer syntax)}`` and max PDU."""

    results: dict[int, tuple[int, str]]
    max_pdu: int


def parse_associate_ac(body: bytes) -> AssociateAC:
    pos, results, max_pdu = 68, {}, -1
    while pos + 4 <= len(body):
        t, _, n = struct.unpack_from(">BBH", body, pos)
        value = body[pos + 4:pos + 4 + n]
        if t == 0x21:
            ts = ""
            if len(value) >= 8 and value[4] == 0x40:
                ts_len = struct.unpack_from(">H", value, 6)[0]
                ts = value[8:8 + ts_len].decode("ascii")
            results[value[0]] = (value[2], ts)
        elif t == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                st, _, sn = struct.unpack_from(">BBH", value, sub)
                if st == 0x51:
                    max_pdu = struct.unpack_from(">L", value, sub + 4)[0]
                sub += 4 + sn
        pos += 4 + n
    return AssociateAC(results, max_pdu)


def parse_command(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos + 8 <= len(data):
        g, e, n = struct.unpack_from("<HHL", data, pos)
        out[(g << 16) | e] = data[pos + 8:pos + 8 + n]
        pos += 8 + n
    return out


@dataclass(frozen=True)
class Response:
    command_field: int
    status: int
    comment: str


# --------------------------------------------------------------------------- one association
class Rejected(Exception):
    """A-ASSOCIATE-RJ (result, source, reason)."""

    def __init__(self, result: int, source: int, reason: int) -> None:
        super().__init__(f"A-ASSOCIATE-RJ {result}/{source}/{reason}")
        self.result, self.source, self.reason = result, source, reason


@dataclass
class LeanAssociation:
    """One association from a raw socket. Use as a context manager (released, or closed on error)."""

    port: int
    called: str
    calling: str
    contexts: Sequence[tuple[int, str, Sequence[str]]] = ((1, VERIFICATION, (ILE,)),)
    host: str = LOOPBACK
    timeout: float = 10.0
    max_pdu: int = 16384
    sock: socket.socket | None = None
    ac: AssociateAC | None = None
    _msg_id: int = field(default=0)

    def open(self) -> LeanAssociation:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(associate_rq(self.called, self.calling, self.contexts, max_pdu=self.max_pdu))
        pdu_type, body = read_pdu(self.sock)
        if pdu_type == 0x03:
            self.close()
            raise Rejected(body[1], body[2], body[3])
        if pdu_type != 0x02:
            self.close()
            raise PeerClosed(f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu_type:02X}")
        self.ac = parse_associate_ac(body)
        return self

    def accepted(self, context_id: int) -> bool:
        return self.ac is not None and self.ac.results.get(context_id, (-1, ""))[0] == 0

    def send_message(self, context_id: int, command: bytes, dataset: bytes | None = None) -> None:
        assert self.sock is not None
        peer_max = self.ac.max_pdu if self.ac else 16384
        size = min(peer_max, 65536) if peer_max > 0 else 65536
        self.sock.sendall(b"".join(message_pdus(context_id, command, dataset, size)))

    def read_response(self) -> Response:
        assert self.sock is not None
        command = b""
        while True:
            pdu_type, body = read_pdu(self.sock)
            if pdu_type != 0x04:
                raise PeerClosed(f"PDU type 0x{pdu_type:02X} instead of a response")
            pos = 0
            while pos + 6 <= len(body):
                n, _, ctrl = struct.unpack_from(">LBB", body, pos)
                command += body[pos + 6:pos + 4 + n]
                pos += 4 + n
                if ctrl & 0x03 == 0x03:
                    cmd = parse_command(command)
                    field_ = struct.unpack("<H", cmd[0x00000100][:2])[0]
                    status = struct.unpack("<H", cmd[0x00000900][:2])[0]
                    comment = cmd.get(0x00000902, b"").decode("ascii", "replace").strip()
                    return Response(field_, status, comment)

    def next_id(self) -> int:
        self._msg_id = (self._msg_id + 1) & 0xFFFF
        return self._msg_id

    def echo(self, context_id: int = 1) -> int:
        self.send_message(context_id, c_echo_rq(self.next_id()))
        return self.read_response().status

    def store(self, context_id: int, sop_class: str, sop_instance: str, dataset: bytes) -> Response:
        self.send_message(context_id, c_store_rq(self.next_id(), sop_class, sop_instance), dataset)
        return self.read_response()

    def release(self) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(RELEASE_RQ)
            pdu_type, _ = read_pdu(self.sock)
            assert pdu_type == 0x06, f"expected A-RELEASE-RP, got 0x{pdu_type:02X}"
        finally:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> LeanAssociation:
        return self.open() if self.sock is None else self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self.sock is not None:
            self.release()
        else:
            self.close()


def reset_close(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed or killed peer does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the SCP closed *sock* (reading and discarding), or None when still open after *timeout*."""
    start = time.monotonic()
    end = start + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            return None
        except OSError:
            return time.monotonic() - start
