"""A seeded fuzz campaign against one SCP on loopback (issue 9): case kinds, generator, runner.

Each case is one connection (or a burst of them) whose bytes come from ``random.Random(f"{seed}/{n}")``,
so a failing case is replayed from its seed and number alone. The kinds:

==================  ==========================================================================
mutated_rq          a valid A-ASSOCIATE-RQ with 1-4 mutations (byte flips, truncation,
                    insertion, a length field set to 0 / small / huge / random)
absurd_length       a PDU header of any type with an absurd length, then a few bytes
wrong_pdu_type      a first PDU that is not an A-ASSOCIATE-RQ (unknown types included)
bad_pdv             after a real association: PDV items with bad lengths, context IDs and
                    fragment flags (data before command, command after last, ...)
bad_dataset         a C-STORE whose data set is garbage, truncated, byte-mutated or in the
                    wrong encoding; and UIDs that would name other directories (``..``)
wrong_class         a C-STORE on the Verification context, or of another class than its context
mid_message         part of a message, then A-RELEASE-RQ, A-ABORT, a reset or a close
abrupt_close        connect and close / reset, possibly after a partial header
slowloris           (background) one byte every 0.25 s, before or after associating
flood               (sequential phase) 60 silent connections at once, then a real C-ECHO
                    that must succeed while they are open
==================  ==========================================================================

What is checked: per case, only that the client side never hangs (every read is bounded) and
that flood-time echoes succeed; after the campaign, :mod:`tests.net.test_fuzz` checks the server.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydicom.uid import generate_uid

from tests.net.data import CT, RTPLAN, encode, make_instance
from tests.net.leanscu import (
    ABORT,
    ELE,
    ILE,
    RELEASE_RQ,
    VERIFICATION,
    LeanAssociation,
    PeerClosed,
    Rejected,
    associate_rq,
    c_echo_rq,
    c_store_rq,
    message_pdus,
    p_data,
    pdu,
    pdv,
    reset_close,
)

KINDS: dict[str, int] = {  # kind -> weight
    "mutated_rq": 30, "absurd_length": 10, "wrong_pdu_type": 6, "bad_pdv": 14, "bad_dataset": 18,
    "wrong_class": 5, "mid_message": 9, "abrupt_close": 8,
}
NASTY_UIDS = ("..", "../..", ".", "/etc/passwd", "1..2", "1.2.", ".1.2", "1.2/../3", "\\..\\..", "9" * 65,
              "1.2\n3", "1.2 3", "")
READ_WAIT_S = 0.05


@dataclass
class Stats:
    """What the campaign did (for the report and the assertions)."""

    cases: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    rejected: int = 0
    aborted: int = 0
    echo_failures: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    slowloris_cuts: list[float] = field(default_factory=list)
    slowloris_uncut: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: dict[int, int] | dict[str, int], key: object) -> None:
        with self.lock:
            what[key] = what.get(key, 0) + 1  # type: ignore[index]


@dataclass(frozen=True)
class Server:
    port: int
    ae_title: str
    calling: str


def _nasty_instances(rng: random.Random, n: int = 40) -> list[tuple[str, bytes, bytes]]:
    """(SOP Instance UID, implicit bytes, explicit bytes) of CT instances whose UIDs would name other
    directories (``..``, ``/etc/passwd``, empty components, ...); pydicom's validation is silenced."""
    from pydicom import config

    out = []
    modes = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        for _ in range(n):
            sop = rng.choice(NASTY_UIDS) if rng.random() < 0.3 else generate_uid()
            ds = make_instance(CT, rows=4, uid=sop or generate_uid(), study=rng.choice(NASTY_UIDS),
                               series=rng.choice(NASTY_UIDS))
            out.append((str(ds.SOPInstanceUID), encode(ds), encode(ds, implicit=False)))
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes
    return out


class Campaign:
    """Generate and run the cases against *server*."""

    def __init__(self, server: Server, seed: int) -> None:
        self.server = server
        self.seed = seed
        self.stats = Stats()
        base = make_instance(CT, rows=16, seed=seed % 1000)
        self.ct = encode(base)
        self.ct_explicit = encode(base, implicit=False)
        self.ct_uid = str(base.SOPInstanceUID)
        self.nasty = _nasty_instances(random.Random(seed))

    # ----------------------------------------------------------------- plumbing
    def _connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def _rq(self, rng: random.Random, contexts: list | None = None) -> bytes:
        contexts = contexts or [(1, CT, [ILE, ELE]), (3, VERIFICATION, [ILE]), (5, RTPLAN, [ELE])]
        calling = self.server.calling if rng.random() < 0.9 else rng.choice(["NOBODY", "X" * 16, "A"])
        return associate_rq(self.server.ae_title, calling, contexts, max_pdu=rng.choice([0, 4096, 16384, 65536]))

    def _finish(self, s: socket.socket, rng: random.Random) -> None:
        """Read what the SCP says for a moment (answers are counted), then close or reset."""
        try:
            s.settimeout(READ_WAIT_S)
            head = s.recv(6)
            with self.stats.lock:
                self.stats.rejected += head[:1] == b"\x03"
                self.stats.aborted += head[:1] == b"\x07"
        except OSError:
            pass
        if rng.random() < 0.5:
            reset_close(s)
        else:
            s.close()

    def _send_raw(self, data: bytes, rng: random.Random, *, pieces: int = 1) -> None:
        s = self._connect()
        try:
            cuts = sorted(rng.randrange(len(data) + 1) for _ in range(pieces - 1))
            for a, b in zip([0, *cuts], [*cuts, len(data)]):
                s.sendall(data[a:b])
        except OSError:
            pass
        self._finish(s, rng)

    def _associated(self, rng: random.Random, contexts=None) -> LeanAssociation | None:
        contexts = contexts or [(1, CT, (ILE,)), (3, VERIFICATION, (ILE,)), (5, CT, (ELE,))]
        a = LeanAssociation(self.server.port, self.server.ae_title, self.server.calling, contexts=contexts,
                            timeout=5, max_pdu=rng.choice([0, 16384]))
        try:
            return a.open()
        except (Rejected, PeerClosed, OSError):
            return None

    # ----------------------------------------------------------------- kinds
    def mutated_rq(self, rng: random.Random) -> None:
        data = bytearray(self._rq(rng))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            if op == 0 and data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                data[rng.randrange(len(data))] = rng.choice([0x00, 0xFF, 0x80, 0x5C, 0x0A])
            elif op == 2:
                del data[rng.randrange(len(data) + 1):]
            elif op == 3:
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.randbytes(rng.randint(1, 64))
            elif op == 4 and len(data) >= 6:  # PDU length
                data[2:6] = struct.pack(">L", rng.choice([0, 1, 67, 68, 0xFFFF, 0x10000, 0x0FFFFFFF, 0xFFFFFFFF,
                                                          rng.getrandbits(32)]))
            elif op == 5 and len(data) > 80:  # an item length somewhere after the fixed fields
                at = rng.randrange(74, len(data) - 2)
                data[at:at + 2] = struct.pack(">H", rng.choice([0, 1, 3, 0xFFFF, rng.getrandbits(16)]))
        self._send_raw(bytes(data), rng, pieces=rng.choice([1, 1, 2, 5]))

    def absurd_length(self, rng: random.Random) -> None:
        pdu_type = rng.choice([1, 1, 1, 2, 3, 4, 5, 6, 7, rng.randrange(256)])
        length = rng.choice([0, 1, 5, 67, 0xFFFF, 0x00FFFFFF, 0x0FFFFFFF, 0x10000000, 0xFFFFFFFF,
                             rng.getrandbits(32)])
        self._send_raw(struct.pack(">BBL", pdu_type, rng.randrange(256), length) + rng.randbytes(rng.randint(0, 200)),
                       rng)

    def wrong_pdu_type(self, rng: random.Random) -> None:
        pdu_type = rng.choice([0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x7F, 0xFF, rng.randrange(8, 256)])
        self._send_raw(pdu(pdu_type, rng.randbytes(rng.choice([0, 4, 10, 68, 200]))), rng)

    def bad_pdv(self, rng: random.Random) -> None:
        a = self._associated(rng)
        if a is None:
            return
        assert a.sock is not None
        cmd = c_store_rq(1, CT, self.ct_uid)
        choice = rng.randrange(8)
        if choice == 0:  # item length 0 / 1 / past the PDU
            body = struct.pack(">LBB", rng.choice([0, 1, 2 + len(cmd) + 100, 0xFFFFFFFF]), 1, 3) + cmd
            data = pdu(0x04, body)
        elif choice == 1:  # context not accepted / even / zero
            data = p_data(pdv(rng.choice([0, 2, 7, 9, 255]), 3, cmd))
        elif choice == 2:  # data set before the command
            data = p_data(pdv(1, 0x02, self.ct[:200]))
        elif choice == 3:  # command fragment after the last one
            data = p_data(pdv(1, 0x03, cmd), pdv(1, 0x01, cmd))
        elif choice == 4:  # random control bits over a real message
            data = b"".join(p_data(pdv(1, rng.randrange(256), chunk)) for chunk in (cmd, self.ct[:512]))
        elif choice == 5:  # many tiny fragments of the command
            data = p_data(*[pdv(1, 0x01, cmd[i:i + 1]) for i in range(len(cmd) - 1)], pdv(1, 0x03, cmd[-1:]))
        elif choice == 6:  # truncated PDV header inside the PDU
            data = pdu(0x04, b"\x00\x00")
        else:  # a command set that is garbage
            data = p_data(pdv(1, 0x03, rng.randbytes(rng.randint(1, 300))))
        try:
            a.sock.sendall(data)
        except OSError:
            pass
        self._finish(a.sock, rng)

    def _dataset(self, rng: random.Random) -> tuple[str, bytes, int]:
        """(SOP Instance UID, data set bytes, context id) of a broken C-STORE."""
        choice = rng.randrange(7)
        if choice == 0:
            return self.ct_uid, rng.randbytes(rng.randint(0, 2000)), 1
        if choice == 1:
            return self.ct_uid, self.ct[:rng.randrange(len(self.ct))], 1
        if choice == 2:
            data = bytearray(self.ct)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return self.ct_uid, bytes(data), 1
        if choice == 3:
            return self.ct_uid, self.ct_explicit, 1  # explicit bytes on the implicit context
        if choice == 4:
            return self.ct_uid, self.ct + struct.pack("<HHL", 0x7FE1, 0x0010, 0xFFFFFFF0), 1  # huge element
        uid, implicit, explicit = rng.choice(self.nasty)
        return (uid, explicit, 5) if rng.random() < 0.3 else (uid, implicit, 1)

    def bad_dataset(self, rng: random.Random) -> None:
        a = self._associated(rng)
        if a is None:
            return
        uid, data, cx = self._dataset(rng)
        self._store(a, cx, CT, uid, data)

    def _store(self, a: LeanAssociation, cx: int, sop_class: str, uid: str, data: bytes) -> None:
        try:
            rsp = a.store(cx, sop_class, uid, data)
            self.stats.count(self.stats.statuses, rsp.status)
            a.release()
        except (PeerClosed, OSError, AssertionError):
            a.close()

    def wrong_class(self, rng: random.Random) -> None:
        a = self._associated(rng)
        if a is None:
            return
        if rng.random() < 0.5:
            ds = make_instance(VERIFICATION, rows=4)
            self._store(a, 3, VERIFICATION, str(ds.SOPInstanceUID), encode(ds))
        else:
            ds = make_instance(RTPLAN, modality="RTPLAN")
            self._store(a, 1, rng.choice([CT, RTPLAN]), str(ds.SOPInstanceUID), encode(ds))

    def mid_message(self, rng: random.Random) -> None:
        a = self._associated(rng)
        if a is None:
            return
        assert a.sock is not None
        pdus = message_pdus(1, c_store_rq(1, CT, self.ct_uid), self.ct, 256)
        try:
            a.sock.sendall(b"".join(pdus[:rng.randint(1, len(pdus) - 1)]))
            end = rng.randrange(4)
            if end == 0:
                a.sock.sendall(RELEASE_RQ)
            elif end == 1:
                a.sock.sendall(ABORT)
            elif end == 2:
                a.sock.sendall(b"".join(message_pdus(3, c_echo_rq(2), None)))
        except OSError:
            pass
        self._finish(a.sock, rng)

    def abrupt_close(self, rng: random.Random) -> None:
        s = self._connect()
        try:
            if rng.random() < 0.6:
                s.sendall(self._rq(rng)[:rng.randint(1, 12)])
        except OSError:
            pass
        reset_close(s) if rng.random() < 0.5 else s.close()

    # ----------------------------------------------------------------- slow and many
    def slowloris(self, stop: threading.Event, rng: random.Random, *, limit: float) -> None:
        """Drip bytes (1 every 0.25 s) until *stop*; every connection must be cut within *limit* s."""
        while not stop.is_set():
            associated = rng.random() < 0.5
            try:
                if associated:
                    a = self._associated(rng)
                    if a is None:
                        continue
                    s, data = a.sock, b"".join(message_pdus(1, c_store_rq(1, CT, self.ct_uid), self.ct, 16384))
                else:
                    s, data = self._connect(), self._rq(rng)
            except OSError:
                continue
            assert s is not None
            start, cut = time.monotonic(), None
            for i in range(len(data)):
                if stop.wait(0.25):
                    break
                try:
                    s.sendall(data[i:i + 1])
                except OSError:
                    cut = time.monotonic() - start
                    break
                if time.monotonic() - start > limit + 2:
                    break
            s.close()
            with self.stats.lock:
                if cut is not None:
                    self.stats.slowloris_cuts.append(cut)
                elif not stop.is_set():
                    self.stats.slowloris_uncut += 1

    def flood(self, n: int, echo: Callable[[], bool]) -> None:
        """*n* silent connections at once; *echo* (a well-behaved peer) must succeed meanwhile."""
        socks = []
        for _ in range(n):
            try:
                socks.append(self._connect())
            except OSError:
                break
        try:
            if not echo():
                self.stats.echo_failures.append(f"C-ECHO failed during a flood of {len(socks)} connections")
        finally:
            for s in socks:
                s.close()

    # ----------------------------------------------------------------- the run
    def plan(self, n: int) -> list[tuple[int, str]]:
        rng = random.Random(self.seed)
        names, weights = zip(*KINDS.items())
        return [(i, rng.choices(names, weights)[0]) for i in range(n)]

    def run_case(self, index: int, kind: str) -> None:
        rng = random.Random(f"{self.seed}/{index}")
        self.stats.count(self.stats.cases, kind)
        try:
            getattr(self, kind)(rng)
        except (OSError, PeerClosed, Rejected):
            pass  # the SCP hung up on us: fine
        except Exception as exc:  # a bug in the fuzzer itself: report, keep going
            self.stats.client_errors.append(f"case {self.seed}/{index} {kind}: {type(exc).__name__}: {exc}")

    def run(self, n: int, *, workers: int = 6, slow_limit: float = 3.0, slow_threads: int = 3,
            floods: int = 8, flood_size: int = 60, echo: Callable[[], bool] | None = None) -> Stats:
        stop = threading.Event()
        slow = [threading.Thread(target=self.slowloris, args=(stop, random.Random(f"{self.seed}/slow{i}")),
                                 kwargs={"limit": slow_limit}, daemon=True) for i in range(slow_threads)]
        for t in slow:
            t.start()
        try:
            started = time.monotonic()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda c: self.run_case(*c), self.plan(n)))
            stop.wait(max(0.0, 2.5 * slow_limit - (time.monotonic() - started)))  # each slow peer gets cut
        finally:
            stop.set()
            for t in slow:
                t.join(timeout=10)
        for _ in range(floods):
            self.flood(flood_size, echo or (lambda: True))
        return self.stats
