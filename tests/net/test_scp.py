"""Storage + Verification SCP against real peers (NET-7, NET-8, NET-9, NET-10, NET-13).

DCMTK storescu/echoscu send to ``openigrt listen`` (subprocess) or to the in-process
:class:`~openigrt.net.scp.StorageSCP`; malformed traffic comes from a pynetdicom requestor
(:mod:`tests.net.rawscu`) or a raw socket.
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.config import RemoteAE, Settings
from openigrt.errors import AssociationRejected
from openigrt.net.acceptor import parse_associate_rq
from openigrt.net.ae import socket_nodelay
from openigrt.net.cache import InstanceCache
from openigrt.net.client import DicomClient
from openigrt.net.header import inspect
from openigrt.net.scp import StorageSCP
from tests.conftest import require_peer
from tests.net.data import (
    CT,
    MR,
    REAL_CT,
    REAL_RTIMAGE,
    REAL_RTPLAN,
    REAL_RTSTRUCT,
    REAL_SCP_SET,
    RTSTRUCT,
    dataset_bytes,
    encode,
    make_instance,
    same_elements,
    write_part10,
)
from tests.net.fsutil import read_only_dir, tiny_filesystem
from tests.net.rawscu import ELE, ILE, partial_store, raw_store, requestor
from tests.peers import Peer, free_port, run, start_openigrt_listen, storescu

CALLING = "STORESCU"


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """Start ``openigrt listen`` subprocesses (allowing STORESCU@127.0.0.1 by default); stopped at teardown."""
    require_peer("storescu")
    started: list[Peer] = []

    def make(*, allow: tuple[str, ...] = (f"{CALLING}@127.0.0.1",), cache: Path | None = None,
             port: int | None = None, extra: tuple[str, ...] = ()) -> Peer:
        peer = start_openigrt_listen(tmp_path / f"listen{len(started)}", allow=allow, cache=cache or tmp_path / "cache",
                                     port=port, extra_args=extra)
        started.append(peer)
        return peer

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def scp(node_settings: Callable[..., Settings]) -> Iterator[StorageSCP]:
    """In-process SCP allowing STORESCU and OPENIGRT (our own test requestor) from 127.0.0.1."""
    settings = node_settings(allowed=[f"{CALLING}@127.0.0.1", "TESTSCU@127.0.0.1"])
    with StorageSCP(settings) as server:
        yield server


def _remote(scp: StorageSCP) -> RemoteAE:
    return RemoteAE(scp.ae_title, "127.0.0.1", scp.port)


def _contexts(output: str) -> dict[int, tuple[str, str, str]]:
    """{context id: (abstract syntax, result, accepted TS)} from a DCMTK ``-d`` A-ASSOCIATE-AC dump."""
    ac = output[output.find("A-ASSOCIATE-AC"):]
    out = {}
    for m in re.finditer(r"Context ID:\s+(\d+) \(([^)]+)\)\s+D:\s+Abstract Syntax: =(\S+)(.*?)(?=Context ID:|Requested Extended)",
                         ac, re.S):
        ts = re.search(r"Accepted Transfer Syntax: =(\S+)", m.group(4))
        out[int(m.group(1))] = (m.group(3), m.group(2), ts.group(1) if ts else "")
    return out


# --------------------------------------------------------------------------- NET-7: DCMTK -> openigrt listen
@pytest.mark.parametrize(("options", "wire_ts"), [(["-xi"], ILE), (["-xe", "+C"], ELE)], ids=["implicit", "explicit"])
def test_dcmtk_storescu_to_listen_caches_every_instance_unchanged(listen, tmp_path: Path, options: list[str],
                                                                  wire_ts: str) -> None:
    # -xi: Implicit VR LE only; -xe +C: one context per class listing Explicit LE, Explicit BE, Implicit LE,
    # so the first proposed (Explicit LE) must be chosen and storescu converts the implicit files
    peer = listen()
    cp = storescu(peer.ae_title, peer.port, REAL_SCP_SET, calling_ae=CALLING, extra_args=options)
    assert cp.returncode == 0
    cache = InstanceCache(peer.extra["cache"])
    for path in REAL_SCP_SET:
        src_ts, src_body = dataset_bytes(path)
        uid = inspect(src_body, transfer_syntax_uid=src_ts).sop_instance_uid
        row = cache.get(uid)
        assert row is not None, f"{path.name} not cached"
        assert row.transfer_syntax_uid == wire_ts and row.source_ae_title == CALLING
        cached_ts, cached_body = dataset_bytes(row.path)
        assert cached_ts == wire_ts
        if src_ts == wire_ts:
            assert cached_body == src_body  # stored exactly as sent: byte for byte
        else:  # storescu converted it on the way: the elements must still be equal
            assert same_elements(dcmread(path), dcmread(row.path)) == []
    log = peer.log()
    assert log.count("received ") == len(REAL_SCP_SET), log


def test_first_proposed_transfer_syntax_wins_and_duplicates_accepted(listen, tmp_path: Path) -> None:
    cfg = tmp_path / "storescu.cfg"
    cfg.write_text(
        "[[TransferSyntaxes]]\n[ILE_ELE]\nTransferSyntax1 = LittleEndianImplicit\nTransferSyntax2 = LittleEndianExplicit\n"
        "[ELE_ILE]\nTransferSyntax1 = LittleEndianExplicit\nTransferSyntax2 = LittleEndianImplicit\n"
        "[BE_ELE]\nTransferSyntax1 = BigEndianExplicit\nTransferSyntax2 = LittleEndianExplicit\n"
        "[[PresentationContexts]]\n[Ctx]\n"
        "PresentationContext1 = CTImageStorage\\ILE_ELE\nPresentationContext2 = CTImageStorage\\ELE_ILE\n"
        "PresentationContext3 = RTStructureSetStorage\\ELE_ILE\nPresentationContext4 = RTPlanStorage\\BE_ELE\n"
        "PresentationContext5 = RTImageStorage\\ILE_ELE\nPresentationContext6 = MRImageStorage\\ILE_ELE\n"
        "[[Profiles]]\n[Test]\nPresentationContexts = Ctx\n")
    peer = listen()
    cp = storescu(peer.ae_title, peer.port, [REAL_CT], calling_ae=CALLING, extra_args=["-d", "-xf", str(cfg), "Test"])
    out = cp.stdout + cp.stderr
    # our identity and limits in the A-ASSOCIATE-AC (NET-11): Implementation Class UID / Version Name, max PDU 0
    assert re.search(r"Their Implementation Class UID:\s+2\.25\.57760840550623259324267916666234877844", out)
    assert re.search(r"Their Implementation Version Name:\s+OPENIGRT_010", out)
    assert re.search(r"Application Context Name:\s+1\.2\.840\.10008\.3\.1\.1\.1", out)
    assert re.search(r"Their Max PDU Receive Size:\s+0\b", out)
    cx = _contexts(out)
    assert cx == {
        1: ("CTImageStorage", "Accepted", "LittleEndianImplicit"),
        3: ("CTImageStorage", "Accepted", "LittleEndianExplicit"),
        5: ("RTStructureSetStorage", "Accepted", "LittleEndianExplicit"),
        7: ("RTPlanStorage", "Accepted", "LittleEndianExplicit"),
        9: ("RTImageStorage", "Accepted", "LittleEndianImplicit"),
        11: ("MRImageStorage", "Abstract Syntax Not Supported", ""),
    }


def test_mr_refused_at_negotiation(listen, tmp_path: Path) -> None:
    mr = write_part10(make_instance(MR, modality="MR"), tmp_path / "mr.dcm")
    peer = listen()
    cp = storescu(peer.ae_title, peer.port, [mr], calling_ae=CALLING, extra_args=["-R", "-d"], check=False)
    assert cp.returncode != 0
    assert "No presentation context for: (MR)" in cp.stdout + cp.stderr or "No Acceptable Presentation Contexts" in cp.stdout + cp.stderr
    assert len(InstanceCache(peer.extra["cache"])) == 0


# --------------------------------------------------------------------------- NET-9 access control
def _rejection(output: str) -> tuple[str, str, str]:
    m = re.search(r"Result: (.+?), Source: (.+?)\n.*?Reason: (.+?)\n", output, re.S)
    assert m, output
    return m.group(1).strip(), m.group(2).strip(), m.group(3).strip()


def test_wrong_called_and_calling_ae_rejected_and_logged(listen) -> None:
    peer = listen()
    cp = storescu("NOTUS", peer.port, [REAL_CT], calling_ae=CALLING, check=False)
    assert cp.returncode != 0
    assert _rejection(cp.stdout + cp.stderr) == ("Rejected Permanent", "Service User", "Called AE Title Not Recognized")
    cp = storescu(peer.ae_title, peer.port, [REAL_CT], calling_ae="INTRUDER", check=False)
    assert _rejection(cp.stdout + cp.stderr) == ("Rejected Permanent", "Service User", "Calling AE Title Not Recognized")
    time.sleep(0.2)
    log = " ".join(peer.log().split())  # rich wraps log lines at 80 columns
    assert "called AE title 'NOTUS' is not ours" in log and "calling AE title 'INTRUDER' is not an allowed caller" in log
    assert len(InstanceCache(peer.extra["cache"])) == 0


def _can_bind(address: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


def test_allowed_ae_from_another_address_rejected(node_settings, scp: StorageSCP) -> None:
    if not _can_bind("127.0.0.2"):
        pytest.skip("cannot bind 127.0.0.2 here")
    # DCMTK storescu has no option to bind a source address: our pynetdicom requestor does it
    me = node_settings(remote=f"{scp.ae_title}@127.0.0.1:{scp.port}", local__ae_title=CALLING)
    with pytest.raises(AssociationRejected) as info:
        DicomClient(me).echo(bind_address=("127.0.0.2", 0))
    assert (info.value.result, info.value.source, info.value.reason) == (1, 1, 3)
    assert "calling-AE-title-not-recognized" in str(info.value)
    assert DicomClient(me).echo() > 0  # the same AE from 127.0.0.1 is fine


def test_caller_allowed_from_second_address(node_settings) -> None:
    if not _can_bind("127.0.0.2"):
        pytest.skip("cannot bind 127.0.0.2 here")
    settings = node_settings(allowed=["FAR@127.0.0.2"])
    with StorageSCP(settings) as server:
        me = node_settings(remote=f"{server.ae_title}@127.0.0.1:{server.port}", local__ae_title="FAR")
        assert DicomClient(me).echo(bind_address=("127.0.0.2", 0)) > 0
        with pytest.raises(AssociationRejected):
            DicomClient(me).echo()  # FAR from 127.0.0.1 is not allowed


def test_association_limit(node_settings) -> None:
    settings = node_settings(allowed=["TESTSCU@127.0.0.1"])
    with StorageSCP(settings, max_associations=1) as server:
        me = node_settings(local__ae_title="TESTSCU")
        with requestor(me, _remote(server), [(CT, [ILE])]):
            with pytest.raises(AssociationRejected) as info:
                DicomClient(me, remote=_remote(server)).echo()
            assert (info.value.result, info.value.source, info.value.reason) == (2, 3, 2)
        assert DicomClient(me, remote=_remote(server)).echo() > 0


# --------------------------------------------------------------------------- NET-10 verification, TCP_NODELAY
def test_echo_from_dcmtk(listen) -> None:
    peer = listen()
    cp = run(["echoscu", "-aet", CALLING, "-aec", peer.ae_title, "127.0.0.1", str(peer.port)], timeout=30)
    assert cp.returncode == 0, cp.stderr
    time.sleep(0.2)
    assert "C-ECHO from STORESCU@127.0.0.1" in " ".join(peer.log().split())  # logged at INFO (listen -v)


def test_tcp_nodelay_on_both_ends(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    with requestor(me, _remote(scp), [(CT, [ILE])]) as (assoc, _tap):
        assert socket_nodelay(assoc)  # requestor: set by our EVT_CONN_OPEN handler
        socks = scp.sockets()
        assert len(socks) == 1
        assert socks[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # acceptor


# --------------------------------------------------------------------------- NET-8 statuses
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_statuses_for_bad_instances_then_keeps_serving(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    good = make_instance(CT)
    ts, ct_body = dataset_bytes(REAL_CT)
    no_uid = make_instance(CT)
    del no_uid.SOPInstanceUID
    bad_uid = make_instance(CT, uid="1.2.03.4")
    with requestor(me, _remote(scp), [(CT, [ILE]), (RTSTRUCT, [ILE]), (CT, [ELE])]) as (assoc, tap):
        def store(payload: bytes, *, cx=CT, affected=CT, uid="1.2.3.4", ts_=ILE):
            rsp = raw_store(assoc, tap, context_class=cx, affected_class=affected, affected_uid=uid, payload=payload, ts=ts_)
            return rsp.status, rsp.comment

        assert store(b"\x01\x02garbage" * 50)[0] == 0xC000
        code, comment = store(ct_body[:-100], uid=good.SOPInstanceUID, ts_=ELE)
        assert code == 0xC000 and comment.startswith("undecodable data set: truncated: (7FE0,0010)")
        assert store(encode(no_uid))[0] == 0x0117
        assert store(encode(bad_uid), uid="1.2.03.4")[0] == 0x0117
        assert store(encode(good), uid="1.2.3.999")[0] == 0x0117  # not the Affected SOP Instance UID
        assert store(encode(good), cx=RTSTRUCT, affected=RTSTRUCT, uid=good.SOPInstanceUID)[0] == 0xA900
        assert store(encode(good), cx=RTSTRUCT, affected=CT, uid=good.SOPInstanceUID)[0] == 0xA900
        assert store(encode(good, implicit=False), uid=good.SOPInstanceUID)[0] == 0xC000  # explicit bytes on ILE
        assert len(scp.cache) == 0
        assert store(encode(good), uid=good.SOPInstanceUID) == (0x0000, "")  # same association still works
    assert scp.cache.get(good.SOPInstanceUID) is not None
    assert DicomClient(me, remote=_remote(scp)).echo() > 0  # and new associations too


def test_read_only_cache_answers_a700(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    ds = make_instance(CT)
    with read_only_dir(scp.cache.instances_dir):
        with requestor(me, _remote(scp), [(CT, [ILE])]) as (assoc, tap):
            rsp = raw_store(assoc, tap, context_class=CT, affected_class=CT, affected_uid=ds.SOPInstanceUID,
                            payload=encode(ds))
    assert rsp.status == 0xA700 and "cannot write" in rsp.comment
    assert scp.cache.get(ds.SOPInstanceUID) is None
    assert DicomClient(me, remote=_remote(scp)).store([write_part10(ds, scp.cache.root.parent / "x.dcm")]).ok


def test_disk_full_answers_a700(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    ds = make_instance(CT, rows=256)
    with tiny_filesystem(scp.cache.instances_dir, size_kb=64):
        with requestor(me, _remote(scp), [(CT, [ILE])]) as (assoc, tap):
            rsp = raw_store(assoc, tap, context_class=CT, affected_class=CT, affected_uid=ds.SOPInstanceUID,
                            payload=encode(ds))
        assert rsp.status == 0xA700 and "disk full" in rsp.comment
        assert not [p for p in scp.cache.instances_dir.rglob("*") if p.is_file()]


def test_character_sets_decoded_in_index_bytes_unchanged(listen, tmp_path: Path) -> None:
    files = [
        write_part10(make_instance(CT, charset="ISO_IR 100", patient_name="Müller^Jürgen", patient_id="Ä1"), tmp_path / "l1.dcm"),
        write_part10(make_instance(CT, charset="ISO_IR 192", patient_name="山田^太郎", patient_id="ø2"), tmp_path / "u8.dcm"),
    ]
    peer = listen()
    storescu(peer.ae_title, peer.port, files, calling_ae=CALLING, extra_args=["-xi"])
    cache = InstanceCache(peer.extra["cache"])
    names = {r.patient_name: r for r in cache}
    assert set(names) == {"Müller^Jürgen", "山田^太郎"}
    assert names["Müller^Jürgen"].patient_id == "Ä1" and names["山田^太郎"].patient_id == "ø2"
    for f in files:
        ds = dcmread(f)
        assert dataset_bytes(cache.get(ds.SOPInstanceUID).path)[1] == dataset_bytes(f)[1]


# --------------------------------------------------------------------------- robustness
def _raw_connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_garbage_pdus_and_silence_never_break_the_scp(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    for junk in (b"GET / HTTP/1.0\r\n\r\n", b"\x01\x00\x00\x00\x00\x05abc", b"\x09" * 20, b"\x04\x00\xff\xff\xff\xff",
                 b"\x01\x00" + struct.pack(">L", 80) + bytes(80)):
        with _raw_connect(scp.port) as s:
            s.sendall(junk)
            s.settimeout(5)
            try:
                data = s.recv(100)
            except (ConnectionResetError, TimeoutError):
                data = b""
            assert data == b"" or data[0] in (0x03, 0x07)  # closed, A-ASSOCIATE-RJ or A-ABORT
    with _raw_connect(scp.port):
        pass  # connect and leave
    assert DicomClient(me, remote=_remote(scp)).echo() > 0


def test_silent_peer_dropped_after_acse_timeout(node_settings) -> None:
    settings = node_settings(allowed=["TESTSCU@127.0.0.1"], network__acse_timeout=1)
    with StorageSCP(settings) as server:
        with _raw_connect(server.port) as s:
            s.settimeout(5)
            t0 = time.monotonic()
            assert s.recv(10) == b""
            assert time.monotonic() - t0 < 4


def test_message_on_unaccepted_context_is_aborted(node_settings, scp: StorageSCP) -> None:
    me = node_settings(local__ae_title="TESTSCU")
    with requestor(me, _remote(scp), [(CT, [ILE]), (MR, [ILE])]) as (assoc, tap):
        assert [int(c.result) for c in assoc.rejected_contexts] == [3]
        from pynetdicom.pdu_primitives import P_DATA

        p = P_DATA()
        p.presentation_data_value_list = [[3, b"\x03" + encode(make_instance(CT))]]  # context 3 = MR, rejected
        assoc.dul.send_pdu(p)
        deadline = time.monotonic() + 5
        while assoc.is_established and not assoc.acse.is_aborted() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assoc.acse.is_aborted() or not assoc.is_established
    assert DicomClient(me, remote=_remote(scp)).echo() > 0


def test_parse_associate_rq_matches_pynetdicom_encoding() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, ImplementationClassUIDNotification, MaximumLengthNotification
    from pynetdicom.presentation import build_context

    prim = A_ASSOCIATE()
    prim.calling_ae_title, prim.called_ae_title = "CALLER", "CALLED"
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    cxs = [build_context(CT, [ELE, ILE]), build_context(RTSTRUCT, [ILE])]
    for i, c in enumerate(cxs):
        c.context_id = 2 * i + 1
    prim.presentation_context_definition_list = cxs
    ml, ic = MaximumLengthNotification(), ImplementationClassUIDNotification()
    ml.maximum_length_received, ic.implementation_class_uid = 32768, "1.2.3.4"
    prim.user_information = [ml, ic]
    pdu = A_ASSOCIATE_RQ(prim).encode()
    rq = parse_associate_rq(bytearray(pdu[6:]))
    assert (rq.calling_ae_title, rq.called_ae_title, rq.max_length, rq.implementation_class_uid) == ("CALLER", "CALLED", 32768, "1.2.3.4")
    assert [(c.context_id, c.abstract_syntax, c.transfer_syntaxes) for c in rq.contexts] == [(1, CT, (ELE, ILE)), (3, RTSTRUCT, (ILE,))]


# --------------------------------------------------------------------------- crash safety
def _all_cached_files_complete(cache_dir: Path) -> int:
    cache = InstanceCache(cache_dir)  # opening removes temp files of dead processes
    try:
        assert not [p for p in cache.instances_dir.rglob("*.tmp")], "temporary file left behind"
        cache.reconcile()
        for row in cache:
            ts, body = dataset_bytes(row.path)
            inspect(body, transfer_syntax_uid=ts)  # complete and well formed
        files = list(cache.instances_dir.rglob("*.dcm"))
        assert len(files) == len(cache)
        return len(files)
    finally:
        cache.close()


@pytest.mark.slow
def test_sigkill_mid_association_leaves_no_partial_file(listen, node_settings, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    peer = listen(cache=cache_dir)
    me = node_settings(local__ae_title=CALLING, remote=f"{peer.ae_title}@127.0.0.1:{peer.port}")
    ds = make_instance(CT, rows=512)
    with requestor(me, RemoteAE(peer.ae_title, "127.0.0.1", peer.port), [(CT, [ILE])]) as (assoc, _tap):
        partial_store(assoc, context_class=CT, uid=ds.SOPInstanceUID, payload=encode(ds), fraction=0.5)
        time.sleep(0.3)
        peer.kill()
    assert _all_cached_files_complete(cache_dir) == 0
    # restarted on the same cache it serves again
    peer2 = listen(cache=cache_dir)
    storescu(peer2.ae_title, peer2.port, [REAL_CT, REAL_RTPLAN], calling_ae=CALLING)
    assert _all_cached_files_complete(cache_dir) == 2


@pytest.mark.slow
def test_sigkill_at_random_moments_keeps_the_cache_consistent(listen, tmp_path: Path) -> None:
    import random
    import subprocess

    from tests.peers import dcmtk, peer_env

    rng = random.Random(20240611)
    files = [write_part10(make_instance(CT, rows=256, seed=i), tmp_path / "src" / f"{i}.dcm") for i in range(30)]
    cache_dir = tmp_path / "cache"
    port = free_port()
    for round_ in range(3):
        peer = listen(cache=cache_dir, port=port)
        sender = subprocess.Popen([dcmtk("storescu"), "-aet", CALLING, "-aec", peer.ae_title, "127.0.0.1", str(port),
                                   *map(str, files)], env=peer_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.4))
        peer.proc.send_signal(signal.SIGKILL)
        peer.kill()
        sender.wait(timeout=30)
        _all_cached_files_complete(cache_dir)
    peer = listen(cache=cache_dir, port=port)
    storescu(peer.ae_title, port, files, calling_ae=CALLING)
    assert _all_cached_files_complete(cache_dir) == len(files)
    for f in files:
        ds = dcmread(f, stop_before_pixels=True)
        row = InstanceCache(cache_dir).get(ds.SOPInstanceUID)
        assert row is not None and dataset_bytes(row.path)[1] == dataset_bytes(f)[1]


def test_listen_stops_cleanly_on_sigterm(listen) -> None:
    peer = listen()
    assert peer.stop(sig=signal.SIGTERM) == 0
    assert "stopped" in peer.log()


def test_listen_port_in_use_is_one_clear_error(listen, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        from tests.peers import openigrt_argv

        cp = run(openigrt_argv("listen", "--port", str(port), "--cache", str(tmp_path / "c"),
                               "--set", "local.bind_address=127.0.0.1"), timeout=30)
    assert cp.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in cp.stderr and "Traceback" not in cp.stderr


def test_rt_image_and_plan_cached_with_classes(listen) -> None:
    peer = listen()
    storescu(peer.ae_title, peer.port, [REAL_RTIMAGE, REAL_RTPLAN, REAL_RTSTRUCT], calling_ae=CALLING)
    cache = InstanceCache(peer.extra["cache"])
    assert sorted(r.modality for r in cache) == ["RTIMAGE", "RTPLAN", "RTSTRUCT"]
