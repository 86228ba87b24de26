"""The TLS variant of the fuzz campaign (issue 10): :class:`TlsCampaign` against a TLS-only SCP port.

Every kind of :mod:`tests.net.fuzz` runs *inside* a completed TLS session (mutual TLS with the test
PKI's client certificate), plus kinds that attack the handshake itself:

================  ==========================================================================
garbage           random bytes instead of a ClientHello (some starting like a TLS record)
partial_hello     a real ClientHello cut at a random point, then a close, a reset or silence
mutated_hello     a real ClientHello with 1-4 byte flips or length fields changed
plain_pdu         a plain A-ASSOCIATE-RQ (or another PDU) on the TLS port
mid_handshake     a real handshake driven through memory BIOs, abandoned after the ServerHello
                  arrives (close or reset), or answered with garbage
tls_then_junk     a completed handshake, then bytes that are not TLS records on the same socket
================  ==========================================================================
"""

from __future__ import annotations

import random
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from tests.net.fuzz import KINDS, Campaign, Server
from tests.net.leanscu import LeanAssociation, PeerClosed, Rejected, associate_rq, parse_associate_ac, read_pdu, reset_close
from tests.net.leanscu import VERIFICATION, ILE

TLS_KINDS: dict[str, int] = {  # the plain kinds run inside TLS, with less weight, plus the handshake kinds
    **{k: max(1, w // 3) for k, w in KINDS.items()},
    "garbage": 8, "partial_hello": 12, "mutated_hello": 12, "plain_pdu": 8, "mid_handshake": 10, "tls_then_junk": 6,
}


def tls_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class TlsLeanAssociation(LeanAssociation):
    """:class:`LeanAssociation` over TLS (*context* verifies the server, presents our certificate)."""

    context: ssl.SSLContext | None = None

    def open(self) -> TlsLeanAssociation:
        assert self.context is not None
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
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


def tls_echo(server: Server, context: ssl.SSLContext) -> Callable[[], bool]:
    """A C-ECHO over TLS from our raw-socket requestor; False when refused or lost."""

    def echo() -> bool:
        try:
            with TlsLeanAssociation(server.port, server.ae_title, server.calling, contexts=[(1, VERIFICATION, (ILE,))],
                                    timeout=10, context=context) as a:
                return a.echo() == 0
        except (PeerClosed, Rejected, OSError):
            return False

    return echo


class TlsCampaign(Campaign):
    """:class:`~tests.net.fuzz.Campaign` on a TLS port: the plain kinds inside TLS, plus handshake attacks."""

    def __init__(self, server: Server, seed: int, context: ssl.SSLContext) -> None:
        super().__init__(server, seed)
        self.context = context
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        probe = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        try:
            probe.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.hello = outgoing.read()  # a real ClientHello (a fresh random per case is not needed)

    # ----------------------------------------------------------------- plumbing: TLS for the plain kinds
    def _raw_connect(self) -> socket.socket:
        return Campaign._connect(self)

    def _connect(self) -> socket.socket:
        raw = self._raw_connect()
        try:
            return self.context.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise

    def _associated(self, rng: random.Random, contexts=None) -> LeanAssociation | None:
        contexts = contexts or [(1, "1.2.840.10008.5.1.4.1.1.2", (ILE,)), (3, VERIFICATION, (ILE,)),
                                (5, "1.2.840.10008.5.1.4.1.1.2", ("1.2.840.10008.1.2.1",))]
        a = TlsLeanAssociation(self.server.port, self.server.ae_title, self.server.calling, contexts=contexts,
                               timeout=5, max_pdu=rng.choice([0, 16384]), context=self.context)
        try:
            return a.open()
        except (Rejected, PeerClosed, OSError):
            return None

    def plan(self, n: int) -> list[tuple[int, str]]:
        rng = random.Random(self.seed)
        names, weights = zip(*TLS_KINDS.items())
        return [(i, rng.choices(names, weights)[0]) for i in range(n)]

    def flood(self, n: int, echo: Callable[[], bool]) -> None:
        """*n* silent TCP connections (no handshake) at once; a TLS C-ECHO must succeed meanwhile."""
        socks = []
        for _ in range(n):
            try:
                socks.append(self._raw_connect())
            except OSError:
                break
        try:
            if not echo():
                self.stats.echo_failures.append(f"TLS C-ECHO failed during a flood of {len(socks)} connections")
        finally:
            for s in socks:
                s.close()

    def _raw_send(self, data: bytes, rng: random.Random) -> None:
        s = self._raw_connect()
        try:
            s.sendall(data)
        except OSError:
            pass
        self._end(s, rng)

    def _end(self, s: socket.socket, rng: random.Random) -> None:
        """Wait a moment for the server's answer (an alert, a close), then close or reset."""
        try:
            s.settimeout(0.05)
            s.recv(4096)
        except OSError:
            pass
        reset_close(s) if rng.random() < 0.5 else s.close()

    # ----------------------------------------------------------------- handshake kinds
    def garbage(self, rng: random.Random) -> None:
        head = rng.choice([b"", b"\x16", b"\x16\x03\x01", b"\x16\x03\x03\xff\xff", b"\x80", b"\x15\x03\x03\x00\x02"])
        self._raw_send(head + rng.randbytes(rng.randint(0, 600)), rng)

    def partial_hello(self, rng: random.Random) -> None:
        s = self._raw_connect()
        try:
            s.sendall(self.hello[:rng.randrange(1, len(self.hello))])
        except OSError:
            pass
        if rng.random() < 0.2:  # silence: the server's ACSE deadline cuts it (counted by the campaign)
            s.settimeout(0.3)
            try:
                s.recv(1)
            except OSError:
                pass
        self._end(s, rng)

    def mutated_hello(self, rng: random.Random) -> None:
        data = bytearray(self.hello)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            if op == 0:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1:  # record length
                data[3:5] = struct.pack(">H", rng.choice([0, 1, 0x4000, 0xFFFF, rng.getrandbits(16)]))
            elif op == 2:  # handshake message length
                data[6:9] = rng.choice([b"\x00\x00\x00", b"\xff\xff\xff", rng.randbytes(3)])
            else:
                at = rng.randrange(5, len(data))
                data[at:at] = rng.randbytes(rng.randint(1, 40))
        self._raw_send(bytes(data), rng)

    def plain_pdu(self, rng: random.Random) -> None:
        rq = self._rq(rng)
        self._raw_send(rq if rng.random() < 0.7 else struct.pack(">BBL", rng.randrange(8), 0, 4) + bytes(4), rng)

    def mid_handshake(self, rng: random.Random) -> None:
        s = self._raw_connect()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        try:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            s.sendall(outgoing.read())
            s.settimeout(1.0)
            got = s.recv(rng.choice([5, 100, 65536]))  # part or all of the ServerHello flight
            if got and rng.random() < 0.5:
                s.sendall(rng.randbytes(rng.randint(1, 300)))  # garbage instead of our Certificate/Finished
        except OSError:
            pass
        self._end(s, rng)

    def tls_then_junk(self, rng: random.Random) -> None:
        try:
            tls = self._connect()
        except OSError:
            return
        raw = socket.socket(fileno=tls.detach())  # the same TCP connection, under the TLS layer
        try:
            raw.sendall(rng.choice([b"", b"\x17\x03\x03\x00\x10"]) + rng.randbytes(rng.randint(1, 300)))
        except OSError:
            pass
        self._end(raw, rng)
