"""Hostile and broken peers against ``openigrt listen`` and ``openigrt archive serve`` (issue 9).

One regression test per defect the fuzz campaign found, each run against both SCPs as
subprocesses on loopback, driven by the raw-socket requestor of :mod:`tests.net.leanscu`:

1. a UID that would leave the cache/archive directory is refused (A900 Study/Series, 0117 SOP);
2. descriptors stay bounded under ``ulimit -n 96`` over 120 storing associations;
3. a PDU length claim allocates nothing (A-ASSOCIATE-RQ cap, incremental reading, P-DATA cap);
4. idle, slow and flooding connections cannot lock well-behaved peers out;
5. an undecodable transfer syntax refuses its context (result 4), the association goes on;
6. resets and broken pipes are one info line, never a traceback;
7. a C-STORE on a non-storage context is refused 0122, nothing stored.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from tests.conftest import require_peer
from tests.net.data import CT, RTPLAN, encode, make_instance
from tests.net.hostile import CALLING, Target, fd_count, rss_kb, settle, start_target, stored_files, tree
from tests.net.leanscu import (
    ILE,
    VERIFICATION,
    LeanAssociation,
    PeerClosed,
    Rejected,
    associate_rq,
    c_echo_rq,
    c_store_rq,
    message_pdus,
    parse_associate_ac,
    read_pdu,
    reset_close,
    wait_closed,
)
from tests.peers import run

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI", "ignore:The value length")

TARGETS = ("listen", "archive")
#: Short timeouts so the idle/slow cases finish quickly (existing keys only, so these tests also
#: run against the code before the fix).
SHORT = ("network.acse_timeout=2", "network.network_timeout=3", "network.max_pdu_receive=65536")
FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = start_target(request.param, tmp_path_factory.mktemp(request.param), settings=SHORT)
    yield t
    assert t.peer is not None
    t.peer.stop()


def _assoc(t: Target, contexts=((1, CT, (ILE,)),), **kw) -> LeanAssociation:
    return LeanAssociation(t.port, t.ae_title, CALLING, contexts=contexts, **kw)


def _connect(t: Target) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", t.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _echo_ok(t: Target) -> bool:
    """A well-behaved peer (DCMTK echoscu) gets its C-ECHO answered."""
    require_peer("echoscu")
    cp = run(["echoscu", "-aet", CALLING, "-aec", t.ae_title, "127.0.0.1", str(t.port)], timeout=30)
    return cp.returncode == 0


# --------------------------------------------------------------------------- 1 path traversal
@pytest.mark.parametrize(("study", "series"), [("..", ".."), ("../..", "1.2"), ("1..2", "1.2"), ("1.2.", "1.2"),
                                              (".", "1.2"), ("1.2", "9" * 65)],
                         ids=["dotdot", "slashes", "empty-component", "trailing-dot", "dot", "too-long"])
def test_study_or_series_uid_that_is_not_a_uid_is_refused(target: Target, study: str, series: str) -> None:
    ds = make_instance(CT, study=study, series=series)
    before = tree(target.root.parent)
    with _assoc(target) as a:
        rsp = a.store(1, CT, ds.SOPInstanceUID, encode(ds))
    assert rsp.status == 0xA900, rsp
    assert "UID" in rsp.comment
    written = {p for p in tree(target.root.parent) - before if not p.name.endswith(".log")}
    assert not [p for p in written if p.name.endswith(".dcm")], written
    assert ds.SOPInstanceUID in target.log()  # refused with a log line naming the instance


@pytest.mark.parametrize("sop_uid", ["..", "1..2", ".1.2", "1.2.3." + "4" * 60])
def test_sop_instance_uid_that_is_not_a_uid_is_refused(target: Target, sop_uid: str) -> None:
    ds = make_instance(CT, uid=sop_uid)
    before = tree(target.root.parent)
    with _assoc(target) as a:
        rsp = a.store(1, CT, sop_uid, encode(ds))
    assert rsp.status == 0x0117, rsp
    assert not [p for p in tree(target.root.parent) - before if p.name.endswith(".dcm")]


# --------------------------------------------------------------------------- 2 descriptors
@pytest.mark.slow
@pytest.mark.parametrize("kind", TARGETS)
def test_descriptors_stay_bounded_under_ulimit_96(kind: str, tmp_path: Path) -> None:
    t = start_target(kind, tmp_path, nofile=96)
    assert t.peer is not None
    try:
        with _assoc(t, contexts=[(1, VERIFICATION, [ILE])]) as a:
            assert a.echo() == 0
        start = fd_count(t.pid)
        statuses = []
        for i in range(120):
            ds = make_instance(CT, rows=4, seed=i)
            with _assoc(t) as a:
                statuses.append(a.store(1, CT, ds.SOPInstanceUID, encode(ds)).status)
        assert statuses == [0] * 120, f"first failure at {next(i for i, s in enumerate(statuses) if s)}: " \
                                      f"{sorted(set(statuses))}\n{t.log()[-2000:]}"
        assert stored_files(kind, t.root) == 120
        assert settle(lambda: fd_count(t.pid), limit=start + 3) <= start + 3
    finally:
        t.peer.stop()


# --------------------------------------------------------------------------- 3 memory
def test_associate_rq_length_claim_allocates_nothing(target: Target) -> None:
    base = rss_kb(target.pid)
    socks = [_connect(target) for _ in range(3)]
    for s in socks:
        s.sendall(b"\x01\x00" + struct.pack(">L", 0x0FFFFFF0))  # 256 MiB A-ASSOCIATE-RQ, no AE check yet
    time.sleep(0.5)
    grown_kb = rss_kb(target.pid) - base
    closed = [wait_closed(s, 3.0) for s in socks]
    for s in socks:
        s.close()
    assert grown_kb < 30_000, f"RSS grew {grown_kb} kB for 18 bytes received"
    assert all(c is not None and c < 1.0 for c in closed), closed  # refused at once, not after the timeout


def test_p_data_beyond_the_advertised_maximum_is_aborted(target: Target) -> None:
    a = _assoc(target).open()
    assert a.ac is not None and a.ac.max_pdu == 65536  # what we advertised (network.max_pdu_receive)
    base = rss_kb(target.pid)
    assert a.sock is not None
    a.sock.sendall(b"\x04\x00" + struct.pack(">L", 64 * 1024 * 1024) + bytes(1024))
    start = time.monotonic()
    pdu_type = None
    try:
        pdu_type, _ = read_pdu(a.sock)
    except PeerClosed:
        pass
    elapsed = time.monotonic() - start
    a.close()
    assert pdu_type == 0x07 and elapsed < 1.0, (pdu_type, elapsed)  # A-ABORT at once
    assert rss_kb(target.pid) - base < 30_000


@pytest.mark.parametrize("kind", TARGETS)
def test_p_data_length_claim_with_unlimited_pdu_reads_incrementally(kind: str, tmp_path: Path) -> None:
    t = start_target(kind, tmp_path)  # network.max_pdu_receive = 0 (unlimited, the SPEC default)
    assert t.peer is not None
    try:
        conns = []
        for _ in range(3):
            a = _assoc(t).open()
            assert a.ac is not None and a.ac.max_pdu == 0
            conns.append(a)
        base = rss_kb(t.pid)
        for a in conns:
            assert a.sock is not None
            a.sock.sendall(b"\x04\x00" + struct.pack(">L", 0x0FFFFFF0) + bytes(256 * 1024))
        time.sleep(0.5)
        grown_kb = rss_kb(t.pid) - base
        for a in conns:
            reset_close(a.sock)  # type: ignore[arg-type]
        assert grown_kb < 40_000, f"RSS grew {grown_kb} kB for 3 x 256 kB received"
        assert _echo_ok(t)
    finally:
        t.peer.stop()


# --------------------------------------------------------------------------- 4 idle, slow, floods
def test_idle_connections_do_not_lock_out_a_real_peer(target: Target) -> None:
    idle = []
    for _ in range(40):  # more than either server's association limit, each one accepted by the server
        idle.append(_connect(target))
        time.sleep(0.01)
    try:
        time.sleep(0.3)
        assert _echo_ok(target), target.log()[-2000:]
    finally:
        for s in idle:
            s.close()


def _drip(sock: socket.socket, data: bytes, interval: float, stop: threading.Event) -> None:
    for i in range(len(data)):
        if stop.wait(interval):
            return
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return


def test_slowloris_associate_rq_is_cut_at_the_acse_deadline(target: Target) -> None:
    rq = associate_rq(target.ae_title, CALLING, [(1, VERIFICATION, [ILE])])
    s = _connect(target)
    stop = threading.Event()
    threading.Thread(target=_drip, args=(s, rq, 0.4, stop), daemon=True).start()
    try:
        closed = wait_closed(s, 6.0)  # acse_timeout = 2 s, counted from accept, not per byte
    finally:
        stop.set()
        s.close()
    assert closed is not None and closed < 3.5, closed


def test_slowloris_during_the_association_is_cut(target: Target) -> None:
    a = _assoc(target).open()
    assert a.sock is not None
    ds = make_instance(CT, rows=4)
    message = b"".join(message_pdus(1, c_store_rq(1, CT, ds.SOPInstanceUID), encode(ds), 16384))
    stop = threading.Event()
    threading.Thread(target=_drip, args=(a.sock, message, 0.4, stop), daemon=True).start()
    try:
        closed = wait_closed(a.sock, 8.0)  # network_timeout = 3 s for a whole PDU
    finally:
        stop.set()
        a.close()
    assert closed is not None and closed < 4.5, closed


def test_one_address_cannot_hold_every_pending_slot(target: Target) -> None:
    socks = []
    for _ in range(30):  # each one accepted by the server (not left in the kernel's backlog)
        socks.append(_connect(target))
        time.sleep(0.01)
    time.sleep(0.3)
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            still_open += s.recv(1) != b""
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
        s.close()
    assert still_open <= 8, f"{still_open} silent connections from one address kept"


# --------------------------------------------------------------------------- 5 undecodable UIDs
def test_non_ascii_transfer_syntax_refuses_only_its_context(target: Target) -> None:
    s = _connect(target)
    try:
        rq = associate_rq(target.ae_title, CALLING, [(1, VERIFICATION, [b"\xff"])], user_info=False)
        assert len(rq) == 133  # the case of the issue
        s.sendall(rq)
        pdu_type, body = read_pdu(s)
        assert pdu_type == 0x02, f"PDU 0x{pdu_type:02X} instead of A-ASSOCIATE-AC"
        assert parse_associate_ac(body).results == {1: (4, "1.2.840.10008.1.2")}
    finally:
        s.close()
    with _assoc(target, contexts=[(1, VERIFICATION, [b"\xff\xfe", ILE]), (3, b"1.2.\xff", [ILE]),
                                  (5, VERIFICATION, [b"1.2.840.10008.1.2.\x80"]), (7, VERIFICATION, [ILE])]) as a:
        assert a.ac is not None
        assert {k: v[0] for k, v in a.ac.results.items()} == {1: 0, 3: 3, 5: 4, 7: 0}
        assert a.echo(7) == 0
    assert "Traceback" not in target.log()


def test_non_ascii_or_empty_ae_titles_rejected(target: Target) -> None:
    for calling in (b"\xffBAD", b" " * 16, b"A\x00\x01B"):
        with pytest.raises(Rejected) as info:
            LeanAssociation(target.port, target.ae_title, calling, contexts=[(1, CT, [ILE])]).open()  # type: ignore[arg-type]
        assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 3)
    with pytest.raises(Rejected) as info:
        LeanAssociation(target.port, b"\xff" + target.ae_title.encode(), CALLING).open()  # type: ignore[arg-type]
    assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 7)
    assert "Traceback" not in target.log()


# --------------------------------------------------------------------------- 6 network events
def test_resets_and_broken_pipes_are_one_info_line(target: Target) -> None:
    ds = make_instance(CT, rows=64)
    store = b"".join(message_pdus(1, c_store_rq(1, CT, ds.SOPInstanceUID), encode(ds), 16384))
    rq = associate_rq(target.ae_title, CALLING, [(1, CT, [ILE]), (3, VERIFICATION, [ILE])])
    echo = b"".join(message_pdus(3, c_echo_rq(1), None))
    for _ in range(15):
        for script in ([rq], [rq + echo], [rq + store], [rq + store + echo + echo]):
            s = _connect(target)
            for chunk in script:
                s.sendall(chunk)
            reset_close(s)
        a = _assoc(target).open()
        assert a.sock is not None
        a.sock.sendall(store)  # the SCP answers into a closed socket
        a.sock.close()
    time.sleep(1.0)
    log = target.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert _echo_ok(target)


# --------------------------------------------------------------------------- 7 non-storage classes
def test_c_store_on_a_verification_context_is_refused_0122(target: Target) -> None:
    ds = make_instance(VERIFICATION, study=generate_uid(), series=generate_uid())
    before = stored_files(target.kind, target.root)
    with _assoc(target, contexts=[(1, VERIFICATION, [ILE]), (3, CT, [ILE])]) as a:
        rsp = a.store(1, VERIFICATION, ds.SOPInstanceUID, encode(ds))
        assert rsp.status == 0x0122, rsp
        plan = make_instance(RTPLAN, modality="RTPLAN")
        assert a.store(3, RTPLAN, plan.SOPInstanceUID, encode(plan)).status == 0xA900  # not the context's class
        assert a.store(3, CT, plan.SOPInstanceUID, encode(plan)).status == 0xA900
    assert stored_files(target.kind, target.root) == before


def test_c_store_on_a_query_context_is_refused_0122(tmp_path: Path) -> None:
    t = start_target("archive", tmp_path, settings=SHORT)
    assert t.peer is not None
    try:
        ds = make_instance(FIND, study=generate_uid(), series=generate_uid())
        with _assoc(t, contexts=[(1, FIND, [ILE])]) as a:
            assert a.store(1, FIND, ds.SOPInstanceUID, encode(ds)).status == 0x0122
        assert stored_files("archive", t.root) == 0
    finally:
        t.peer.stop()
