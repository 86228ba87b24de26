"""A lean, synchronous association requestor for C-STORE (PS3.8 upper layer, PS3.7 C-STORE).

Used by the Storage SCU (:mod:`openigrt.net.store`, ``openigrt store``, NET-1/NET-2) and by the
archive's C-MOVE sub-operations (:mod:`openigrt.archive.sender`). Why not pynetdicom's requestor
for C-STORE: measured here (benchmarks/README.md, "Network"), pynetdicom hands every P-DATA PDU
through a queue to its DUL thread and back (~0.7 s of lock waits for 200 CT slices in 16 KB
PDUs), its two reactors poll every 1 ms and its release sleeps 10 ms. This requestor does only
what a Storage SCU needs, on the calling thread with one blocking socket:

* A-ASSOCIATE-RQ encoded by hand (application context, the proposed contexts with odd IDs, our
  maximum PDU length, Implementation Class UID and Version Name), A-ASSOCIATE-AC / -RJ / A-ABORT
  decoded by hand with the same hostile-input checks as the acceptor (:mod:`openigrt.net.pdu`);
* C-STORE-RQ command sets encoded by hand (PS3.7 9.3.1.1, Implicit VR LE, group length first);
  the data set bytes go out as they are, fragmented to the smaller of the peer's maximum PDU
  length and ours (``network.max_pdu_send``) with one ``sendmsg`` of many (header, fragment)
  buffers -- no copy of the data set (over TLS, a join per ~1 MiB and ``sendall``);
* the C-STORE-RSP command set parsed by hand (Status, Error Comment; its Message ID Being
  Responded To must match);
* A-RELEASE-RQ -> A-RELEASE-RP (bounded); A-ABORT on any protocol error; TCP_NODELAY; every read
  bounded by the ACSE or DIMSE timeout, every send by the DIMSE timeout;
* after a DIMSE timeout, A-RELEASE is tried for at most
  :data:`~openigrt.net.dimse.RELEASE_AFTER_TIMEOUT_S`, then A-ABORT (NET-2);
* DICOM TLS (:mod:`openigrt.net.tls`): the handshake right after the TCP connect, bounded.

Failures raise from :mod:`openigrt.errors` (each message names the peer):
:class:`~openigrt.errors.ConnectionFailed` (incl. :class:`~openigrt.errors.TlsError`),
:class:`~openigrt.errors.AssociationRejected`, :class:`~openigrt.errors.AssociationAborted`,
:class:`~openigrt.errors.DimseTimeout`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from openigrt.config import NetworkSettings, RemoteAE
from openigrt.errors import AssociationAborted, AssociationRejected, ConnectionFailed, DimseTimeout, NetworkError
from openigrt.net.ae import describe_reject, set_tcp_nodelay
from openigrt.net.command import C_STORE_RQ, C_STORE_RSP, DATASET_PRESENT, command_us, parse_command
from openigrt.net.dimse import PRIORITY_MEDIUM
from openigrt.net.pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    APPLICATION_CONTEXT,
    P_DATA_TF,
    ProtocolError,
    abort_pdu,
    pdu,
    sub_items,
    uid_text,
)
from openigrt.net.tls import client_handshake

LOG = logging.getLogger("openigrt.net.requestor")

#: Largest PDU we send when neither the peer nor ``network.max_pdu_send`` sets a limit, bytes.
UNLIMITED_SEND_PDU: Final = 1024 * 1024
#: Largest PDU accepted from the acceptor when we announced "unlimited" (responses are tiny), bytes.
MAX_INCOMING_PDU: Final = 1024 * 1024
#: Our maximum PDU receive length announced when the caller gives none (responses only), bytes.
DEFAULT_MAX_PDU_RECEIVE: Final = 65536
#: How long a release may take before we abort, s (also after a DIMSE timeout: NET-2).
RELEASE_TIMEOUT_S: Final = 5.0
#: Buffers per ``sendmsg`` call (Linux IOV_MAX is 1024).
IOV_BATCH: Final = 512
#: Over TLS, bytes joined per ``sendall`` (an SSLSocket has no ``sendmsg``).
TLS_SEND_BATCH: Final = 1024 * 1024
#: Most presentation contexts one A-ASSOCIATE-RQ may propose (odd IDs 1..255).
MAX_CONTEXTS: Final = 128


@dataclass(frozen=True)
class StoreResponse:
    """Status and Error Comment of a C-STORE-RSP."""

    status: int
    comment: str = ""


# --------------------------------------------------------------------------- encoding
def element(tag: int, value: bytes) -> bytes:
    """One Implicit VR LE element of a command set."""
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def text_value(value: str, pad: bytes) -> bytes:
    """ASCII text padded to even length (UI with NUL, AE/LO with space)."""
    raw = value.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def encode_c_store_rq(*, message_id: int, sop_class_uid: str, sop_instance_uid: str, move_originator: str = "",
                      move_originator_message_id: int | None = None, priority: int = PRIORITY_MEDIUM) -> bytes:
    """A C-STORE-RQ command set (PS3.7 9.3.1.1), Implicit VR LE, elements in ascending order.

    >>> cmd = encode_c_store_rq(message_id=1, sop_class_uid="1.2", sop_instance_uid="1.2.3")
    >>> parse_command(cmd)[0x00000100], parse_command(cmd)[0x00000800]
    (b'\\x01\\x00', b'\\x00\\x00')
    """
    body = element(0x00000002, text_value(sop_class_uid, b"\x00"))
    body += element(0x00000100, struct.pack("<H", C_STORE_RQ))
    body += element(0x00000110, struct.pack("<H", message_id & 0xFFFF))
    body += element(0x00000700, struct.pack("<H", priority))
    body += element(0x00000800, struct.pack("<H", DATASET_PRESENT))
    body += element(0x00001000, text_value(sop_instance_uid, b"\x00"))
    if move_originator:
        body += element(0x00001030, text_value(move_originator.strip(), b" "))
    if move_originator_message_id is not None:
        body += element(0x00001031, struct.pack("<H", move_originator_message_id & 0xFFFF))
    return element(0x00000000, struct.pack("<L", len(body))) + body


def _pdv_header(length: int, context_id: int, control: int) -> bytes:
    return struct.pack(">LBB", length + 2, context_id, control)


def p_data_buffers(context_id: int, command: bytes, data: bytes | memoryview | None, *, max_pdu: int
                   ) -> list[bytes | memoryview]:
    """The P-DATA-TF PDUs of one DIMSE message as buffers to send in order: the command set, then
    (PDU + PDV header, fragment) pairs of the data set, no PDU longer than *max_pdu* (its length
    field; 0 = unlimited, sent in :data:`UNLIMITED_SEND_PDU` PDUs). The fragments are views of
    *data* (no copy).

    >>> bufs = p_data_buffers(1, b"CMD!", b"0123456789", max_pdu=10)
    >>> len(bufs), [bytes(b) for b in bufs[2::2]], bytes(bufs[1])[-2:], bytes(bufs[-2])[-2:]
    (7, [b'0123', b'4567', b'89'], b'\\x01\\x00', b'\\x01\\x02')
    """
    fragment = max((max_pdu or UNLIMITED_SEND_PDU) - 6, 2)
    fragment -= fragment % 2  # PDV values of even length (PS3.5 data set bytes come in pairs)
    parts: list[bytes | memoryview] = [pdu(P_DATA_TF, _pdv_header(len(command), context_id, 0x03) + command)]
    if data is not None and len(data):
        view = memoryview(data).cast("B")
        total = len(view)
        for start in range(0, total, fragment):
            chunk = view[start:start + fragment]
            control = 0x02 if start + fragment >= total else 0x00
            parts.append(struct.pack(">BBL", P_DATA_TF, 0, len(chunk) + 6) + _pdv_header(len(chunk), context_id, control))
            parts.append(chunk)
    return parts


def encode_p_data(context_id: int, command: bytes, data: bytes | None, *, max_pdu: int) -> bytes:
    """:func:`p_data_buffers` joined into one byte string."""
    return b"".join(p_data_buffers(context_id, command, data, max_pdu=max_pdu))


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def _title(text: str) -> bytes:
    return text.strip().encode("ascii", "replace")[:16].ljust(16, b" ")


def encode_associate_rq(*, calling: str, called: str, contexts: Sequence[tuple[str, Sequence[str]]],
                        max_pdu_receive: int, implementation_class_uid: str,
                        implementation_version_name: str) -> bytes:
    """The A-ASSOCIATE-RQ PDU (PS3.8 9.3.2): context *i* gets ID ``2 i + 1``.

    >>> rq = encode_associate_rq(calling="US", called="THEM", contexts=[("1.2.840.10008.1.1", ["1.2.840.10008.1.2"])],
    ...                          max_pdu_receive=0, implementation_class_uid="1.2.3", implementation_version_name="X")
    >>> from openigrt.net.pdu import parse_associate_rq
    >>> r = parse_associate_rq(rq[6:]); (r.called_ae_title, r.calling_ae_title, r.contexts[0].context_id, r.max_length)
    ('THEM', 'US', 1, 0)
    """
    items = [_item(0x10, APPLICATION_CONTEXT.encode("ascii"))]
    for i, (abstract, syntaxes) in enumerate(contexts):
        sub = _item(0x30, abstract.encode("ascii"))
        sub += b"".join(_item(0x40, ts.encode("ascii")) for ts in syntaxes)
        items.append(_item(0x20, bytes([2 * i + 1, 0, 0, 0]) + sub))
    user = (_item(0x51, struct.pack(">L", max_pdu_receive)) + _item(0x52, implementation_class_uid.encode("ascii"))
            + _item(0x55, implementation_version_name.encode("ascii")[:16]))
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 0x0001, 0) + _title(called) + _title(calling) + bytes(32) + b"".join(items)
    return pdu(0x01, body)


@dataclass(frozen=True)
class AssociateAC:
    """What we use of an A-ASSOCIATE-AC: accepted ``{context id: transfer syntax}`` and the peer's max PDU."""

    accepted: dict[int, str]
    max_length: int


def parse_associate_ac(body: bytes | bytearray) -> AssociateAC:
    """Parse an A-ASSOCIATE-AC body (after the 6-byte header); a malformed one is a ProtocolError."""
    view = memoryview(body)
    if len(view) < 68:
        raise ProtocolError("A-ASSOCIATE-AC too short")
    accepted: dict[int, str] = {}
    max_length = 0
    for item_type, value in sub_items(view, 68, len(view), "A-ASSOCIATE-AC"):
        if item_type == 0x21:
            if len(value) < 4:
                raise ProtocolError("truncated presentation context item")
            syntaxes = [uid_text(sub) for t, sub in sub_items(value, 4, len(value), "presentation context") if t == 0x40]
            if value[2] == 0 and syntaxes:
                accepted[value[0]] = syntaxes[0]
        elif item_type == 0x50:
            for sub_type, sub in sub_items(value, 0, len(value), "user information"):
                if sub_type == 0x51 and len(sub) == 4:
                    max_length = struct.unpack_from(">L", sub, 0)[0]
    return AssociateAC(accepted, max_length)


# --------------------------------------------------------------------------- the association
class StoreAssociation:
    """One association to a Storage SCP, driven synchronously by the calling thread.

    Parameters
    ----------
    remote
        The Storage SCP (AE title, host, port).
    calling_ae_title
        Our AE title.
    contexts
        Proposed ``(SOP Class UID, [transfer syntaxes])``, at most 128.
    network
        Timeouts, PDU limits (``max_pdu_send`` caps what we send) and our implementation identity.
    tls
        DICOM TLS client context (:func:`openigrt.net.tls.client_context`), or None for plain TCP.
    max_pdu_receive
        Our maximum PDU length announced (0 = unlimited); default :data:`DEFAULT_MAX_PDU_RECEIVE`.
    """

    def __init__(self, remote: RemoteAE, *, calling_ae_title: str, contexts: Sequence[tuple[str, Sequence[str]]],
                 network: NetworkSettings, tls: ssl.SSLContext | None = None,
                 max_pdu_receive: int = DEFAULT_MAX_PDU_RECEIVE) -> None:
        if not 0 < len(contexts) <= MAX_CONTEXTS:
            raise ValueError(f"between 1 and {MAX_CONTEXTS} presentation contexts must be proposed")
        self.remote = remote
        self.calling_ae_title = calling_ae_title
        self.contexts = list(contexts)
        self.network = network
        self.tls = tls
        self.max_pdu_receive = max_pdu_receive
        self.accepted: dict[tuple[str, str], int] = {}  # (abstract, transfer syntax) -> context id
        self.peer_max_pdu = 0
        self._sock: socket.socket | None = None
        self._message_id = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> StoreAssociation:
        """Connect and negotiate; raise ConnectionFailed / TlsError / AssociationRejected / AssociationAborted."""
        net = self.network
        try:
            sock = socket.create_connection((self.remote.host, self.remote.port), timeout=net.connect_timeout)
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect to {self.remote}: {exc.strerror or exc} (TCP connection refused "
                                   f"or not answered within {net.connect_timeout:g} s)") from None
        set_tcp_nodelay(sock)
        if self.tls is not None:  # TlsError (a ConnectionFailed) names the peer and says why
            sock = client_handshake(sock, self.tls, host=self.remote.host, peer=str(self.remote),
                                    timeout=min(net.connect_timeout, net.acse_timeout))
        self._sock = sock
        try:
            sock.settimeout(net.acse_timeout)
            sock.sendall(encode_associate_rq(
                calling=self.calling_ae_title, called=self.remote.ae_title, contexts=self.contexts,
                max_pdu_receive=self.max_pdu_receive, implementation_class_uid=net.implementation_class_uid,
                implementation_version_name=net.implementation_version_name))
            pdu_type, body = self._read_pdu(what="A-ASSOCIATE response", timeout_error=AssociationAborted,
                                            timeout=net.acse_timeout)
            self._negotiated(pdu_type, body)
        except OSError as exc:
            self._close()
            raise AssociationAborted(f"connection to {self.remote} lost while associating ({exc.strerror or exc})") from None
        except BaseException:
            self._close()
            raise
        return self

    def _plain_hint(self) -> str:
        return "" if self.tls is not None else " (if it is a DICOM TLS port: --tls)"

    def _negotiated(self, pdu_type: int, body: bytes) -> None:
        if pdu_type == A_ASSOCIATE_RJ:
            if len(body) < 4:
                raise AssociationAborted(f"{self.remote} sent a truncated A-ASSOCIATE-RJ")
            result, source, reason = body[1], body[2], body[3]
            raise AssociationRejected(f"{self.remote} rejected the association ({describe_reject(result, source, reason)}); "
                                      f"check that it knows our AE title {self.calling_ae_title!r} and address",
                                      result=result, source=source, reason=reason)
        if pdu_type == A_ABORT:
            raise AssociationAborted(f"{self.remote} aborted the association request{self._plain_hint()}")
        if pdu_type != A_ASSOCIATE_AC:
            self._abort()
            raise AssociationAborted(f"{self.remote} answered the association request with PDU type 0x{pdu_type:02X}")
        try:
            ac = parse_associate_ac(body)
        except ProtocolError as exc:
            self._abort()
            raise AssociationAborted(f"{self.remote} sent an undecodable A-ASSOCIATE-AC ({exc})") from None
        proposed = {2 * i + 1: cx for i, cx in enumerate(self.contexts)}
        for cx_id, ts in ac.accepted.items():
            if cx_id in proposed and ts in proposed[cx_id][1]:  # only a syntax we proposed
                self.accepted[(proposed[cx_id][0], ts)] = cx_id
        self.peer_max_pdu = ac.max_length
        if not self.accepted:
            self._abort()
            names = ", ".join(sorted({abstract for abstract, _ in self.contexts}))
            raise AssociationAborted(f"{self.remote} accepted none of the {len(self.contexts)} proposed "
                                     f"presentation contexts ({names}); it does not offer this service to us")

    def release(self, *, timeout: float | None = None) -> None:
        """A-RELEASE, bounded by *timeout* (default: the ACSE timeout, at most :data:`RELEASE_TIMEOUT_S`);
        abort when the peer does not answer it properly. Late P-DATA (a response after a timeout) is skipped."""
        sock = self._sock
        if sock is None:
            return
        limit = min(self.network.acse_timeout, RELEASE_TIMEOUT_S) if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            sock.settimeout(limit)
            sock.sendall(pdu(A_RELEASE_RQ, bytes(4)))
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssociationAborted(f"no A-RELEASE-RP from {self.remote} within {limit:g} s")
                pdu_type, _ = self._read_pdu(what="A-RELEASE-RP", timeout_error=AssociationAborted, timeout=left)
                if pdu_type in (A_RELEASE_RP, A_ABORT):
                    break
                if pdu_type != P_DATA_TF:
                    self._abort()
                    return
        except (NetworkError, OSError) as exc:
            LOG.debug("release of %s failed: %s", self.remote, exc)
            self._abort()
            return
        self._close()

    def abort(self) -> None:
        """Send A-ABORT (source: service user) and close."""
        self._abort()

    def _abort(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.settimeout(min(1.0, self.network.network_timeout))
                sock.sendall(abort_pdu(0, 0))
            except OSError:
                pass
        self._close()

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def __enter__(self) -> StoreAssociation:
        return self.open() if self._sock is None else self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.release()
        else:
            self._abort()

    # ------------------------------------------------------------------ C-STORE
    def context_id(self, sop_class_uid: str, transfer_syntax_uid: str) -> int | None:
        """The accepted context for exactly this class and syntax, or None."""
        return self.accepted.get((sop_class_uid, transfer_syntax_uid))

    @property
    def send_pdu_limit(self) -> int:
        """Largest PDU length we send: the peer's limit capped by ``network.max_pdu_send`` (0 = none)."""
        caps = [c for c in (self.peer_max_pdu, self.network.max_pdu_send) if c > 0]
        return min(caps) if caps else 0

    def c_store(self, context_id: int, data: bytes | memoryview, *, sop_class_uid: str, sop_instance_uid: str,
                move_originator: str = "", move_originator_message_id: int | None = None,
                release_after_timeout: bool = False) -> StoreResponse:
        """Send one C-STORE-RQ with *data* (encoded in the context's syntax) and wait for its response.

        Raises DimseTimeout (no response, or no progress sending, within the DIMSE timeout; the
        association is then ended: A-RELEASE tried for at most :data:`RELEASE_TIMEOUT_S` when
        *release_after_timeout* (NET-2), then A-ABORT) or AssociationAborted (peer abort, lost
        connection, protocol error; the association is closed).
        """
        if self._sock is None:
            raise AssociationAborted(f"the association with {self.remote} is closed")
        self._message_id = self._message_id % 65535 + 1
        command = encode_c_store_rq(message_id=self._message_id, sop_class_uid=sop_class_uid,
                                    sop_instance_uid=sop_instance_uid, move_originator=move_originator,
                                    move_originator_message_id=move_originator_message_id)
        try:
            self._send(p_data_buffers(context_id, command, data, max_pdu=self.send_pdu_limit), sop_instance_uid)
            return self._response(self._message_id, sop_instance_uid)
        except DimseTimeout:
            if release_after_timeout:
                self.release(timeout=min(RELEASE_TIMEOUT_S, self.network.acse_timeout))
            else:
                self._abort()
            raise
        except AssociationAborted:
            self._abort()
            raise

    def _send(self, buffers: list[bytes | memoryview], sop_instance_uid: str) -> None:
        sock = self._sock
        assert sock is not None
        sock.settimeout(self.network.dimse_timeout)
        try:
            if isinstance(sock, ssl.SSLSocket):
                _send_joined(sock, buffers)
            else:
                _send_vectored(sock, buffers)
        except TimeoutError:
            raise DimseTimeout(f"{self.remote} took no more data of the C-STORE of {sop_instance_uid} within the "
                               f"DIMSE timeout of {self.network.dimse_timeout:g} s") from None
        except OSError as exc:
            raise AssociationAborted(f"connection to {self.remote} lost while sending ({exc.strerror or exc})") from None

    def _response(self, message_id: int, sop_instance_uid: str) -> StoreResponse:
        what = f"C-STORE response for {sop_instance_uid}"
        command = bytearray()
        deadline = time.monotonic() + self.network.dimse_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DimseTimeout(f"no {what} from {self.remote} within the DIMSE timeout of "
                                   f"{self.network.dimse_timeout:g} s")
            try:
                pdu_type, body = self._read_pdu(what=what, timeout_error=DimseTimeout, timeout=left)
            except DimseTimeout:
                raise DimseTimeout(f"no {what} from {self.remote} within the DIMSE timeout of "
                                   f"{self.network.dimse_timeout:g} s") from None
            if pdu_type == A_ABORT:
                raise AssociationAborted(f"{self.remote} aborted the association during the C-STORE of {sop_instance_uid}")
            if pdu_type != P_DATA_TF:
                raise AssociationAborted(f"{self.remote} sent PDU type 0x{pdu_type:02X} instead of a C-STORE response")
            if _collect(body, command, self.remote):
                break
        try:
            cmd = parse_command(bytes(command))
        except (ValueError, ProtocolError) as exc:
            raise AssociationAborted(f"{self.remote} sent an undecodable C-STORE response ({exc})") from None
        if command_us(cmd, 0x00000100) != C_STORE_RSP or command_us(cmd, 0x00000120) != message_id:
            raise AssociationAborted(f"{self.remote} answered with an unexpected command "
                                     f"(field 0x{command_us(cmd, 0x00000100) or 0:04X}) for {sop_instance_uid}")
        status = command_us(cmd, 0x00000900)
        if status < 0:
            raise AssociationAborted(f"{self.remote} sent a C-STORE response without a Status")
        comment = cmd.get(0x00000902, b"").decode("ascii", "replace").strip("\x00 ")
        return StoreResponse(status, comment)

    # ------------------------------------------------------------------ reading
    def _read_pdu(self, *, what: str, timeout_error: type[NetworkError], timeout: float) -> tuple[int, bytes]:
        header = self._recv(6, what=what, timeout_error=timeout_error, timeout=timeout)
        pdu_type, _, length = struct.unpack(">BBL", header)
        limit = self.max_pdu_receive or MAX_INCOMING_PDU
        if pdu_type not in range(1, 8) or length > max(limit, 1024):
            self._abort()
            raise AssociationAborted(f"{self.remote} sent PDU type 0x{pdu_type:02X} of {length} bytes "
                                     f"(beyond our limit of {max(limit, 1024)})")
        return pdu_type, self._recv(length, what=what, timeout_error=timeout_error, timeout=timeout)

    def _recv(self, n: int, *, what: str, timeout_error: type[NetworkError], timeout: float) -> bytes:
        sock = self._sock
        if sock is None:
            raise AssociationAborted(f"the association with {self.remote} is closed")
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        deadline = time.monotonic() + timeout
        while got < n:
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                k = sock.recv_into(view[got:], n - got)
            except TimeoutError:
                raise timeout_error(f"no {what} from {self.remote} within {timeout:g} s") from None
            except OSError as exc:
                raise AssociationAborted(f"connection to {self.remote} lost waiting for {what} "
                                         f"({exc.strerror or exc})") from None
            if k == 0:
                raise AssociationAborted(f"{self.remote} closed the connection while we waited for {what}")
            got += k
        return bytes(buf)


def _collect(body: bytes, command: bytearray, remote: RemoteAE) -> bool:
    """Add the command fragments of a P-DATA-TF body to *command*; True after the last one."""
    pos, done = 0, False
    while pos < len(body):
        if pos + 6 > len(body):
            raise AssociationAborted(f"{remote} sent a truncated PDV item")
        (length,) = struct.unpack_from(">L", body, pos)
        if length < 2 or pos + 4 + length > len(body):
            raise AssociationAborted(f"{remote} sent a PDV item of bad length {length}")
        control = body[pos + 5]
        if control & 0x01:  # command fragment (responses to C-STORE carry no data set)
            command += body[pos + 6:pos + 4 + length]
            if len(command) > 64 * 1024:
                raise AssociationAborted(f"{remote} sent a response command set of more than 64 KiB")
            done = done or bool(control & 0x02)
        pos += 4 + length
    return done


def _send_vectored(sock: socket.socket, buffers: list[bytes | memoryview]) -> None:
    """``sendall`` of many buffers with ``sendmsg`` (partial sends resumed), no joining copy."""
    pending = [memoryview(b).cast("B") for b in buffers]
    i = 0
    while i < len(pending):
        sent = sock.sendmsg(pending[i:i + IOV_BATCH])
        while sent and i < len(pending):
            size = len(pending[i])
            if sent >= size:
                sent -= size
                i += 1
            else:
                pending[i] = pending[i][sent:]
                sent = 0


def _send_joined(sock: ssl.SSLSocket, buffers: list[bytes | memoryview]) -> None:
    """Over TLS (no ``sendmsg``): join the buffers per :data:`TLS_SEND_BATCH` bytes and ``sendall``."""
    batch: list[bytes | memoryview] = []
    size = 0
    for b in buffers:
        batch.append(b)
        size += len(b)
        if size >= TLS_SEND_BATCH:
            sock.sendall(b"".join(batch))
            batch, size = [], 0
    if batch:
        sock.sendall(b"".join(batch))
