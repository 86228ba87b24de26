"""Storage SCU (NET-1, NET-2) and echo (NET-10): DCMTK storescp and a scripted pynetdicom SCP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate

from openigrt.cli import main
from openigrt.errors import AssociationRejected, ConnectionFailed, StoreError
from openigrt.net.client import DicomClient
from openigrt.net.status import StoreOutcome
from tests.net.data import (
    CT,
    REAL_CT,
    REAL_DRR,
    REAL_RTIMAGE,
    REAL_RTPLAN,
    REAL_RTSTRUCT,
    RTIMAGE,
    dataset_bytes,
    make_instance,
    same_elements,
    write_part10,
)
from tests.net.scripted import Behaviour, ScriptedStorageSCP
from tests.peers import free_port

SENDABLE = (REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE, REAL_DRR)


@pytest.fixture
def scripted() -> Iterator[ScriptedStorageSCP]:
    peer = ScriptedStorageSCP().start()
    yield peer
    peer.stop()


def _instances(tmp_path: Path, n: int, **kw) -> list[Path]:
    return [write_part10(make_instance(CT, seed=i, **kw), tmp_path / "src" / f"{i}.dcm") for i in range(n)]


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


# --------------------------------------------------------------------------- to DCMTK storescp
def test_store_to_dcmtk_storescp(storescp_peer, node_settings, capsys) -> None:
    settings = node_settings(remote=storescp_peer.remote)
    report = DicomClient(settings).store(list(SENDABLE))
    assert report.ok, report.as_dict()
    assert [r.outcome for r in report.results] == [StoreOutcome.SENT] * 4
    out = storescp_peer.extra["out"]
    received = {dcmread(p).SOPInstanceUID: p for p in out.iterdir()}
    for src in SENDABLE:
        got = received[_uid(src)]
        assert dcmread(got).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"  # NET-1: Implicit VR LE proposed
        assert same_elements(dcmread(src), dcmread(got)) == []


@pytest.mark.parametrize("max_pdu_send", [0, 4096])
def test_lean_requestor_sends_identical_bytes(tmp_path: Path, node_settings, max_pdu_send: int) -> None:
    """Send path identity: DCMTK storescp in bit-preserving mode (+B) writes exactly the data set
    bytes it received; they are the bytes of each Implicit VR LE file sent (odd and even sizes,
    fragmented to storescp's 16 KB PDUs or to our 4 KB cap) and, for the Explicit VR LE source, its
    data set re-encoded Implicit VR LE."""
    from tests.net.data import encode
    from tests.conftest import require_peer
    from tests.peers import start_storescp

    require_peer("storescp")
    files = [write_part10(make_instance(CT, seed=i, rows=rows), tmp_path / "src" / f"{i}.dcm")
             for i, rows in enumerate((1, 33, 256))]
    files.append(REAL_CT)  # Explicit VR LE: re-encoded Implicit
    with start_storescp(tmp_path / "scp", extra_args=["+B"]) as scp:
        settings = node_settings(remote=scp.remote, network__max_pdu_send=max_pdu_send)
        report = DicomClient(settings).store(files)
        assert report.ok, report.as_dict()
        received = {_uid(f): f for f in scp.extra["out"].iterdir()}
    assert len(received) == len(files)
    for path in files:
        ts, body = dataset_bytes(received[_uid(path)])
        assert ts == "1.2.840.10008.1.2"
        src_ts, src_body = dataset_bytes(path)
        expected = src_body if src_ts == ts else encode(dcmread(path))
        assert body == expected, path


def test_cli_store_json_and_exit_code(storescp_peer, tmp_path: Path, capsys) -> None:
    rc = main(["store", "--remote", storescp_peer.remote, "--ae-title", "OPENIGRT", "--cache", str(tmp_path / "c"),
               "--json", str(REAL_CT), str(REAL_RTSTRUCT)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"] and [r["outcome"] for r in out["results"]] == ["sent", "sent"]
    assert out["results"][0]["status"] == "0x0000"


def test_directory_and_refused_items(storescp_peer, node_settings, tmp_path: Path, capsys) -> None:
    d = tmp_path / "dir"
    write_part10(make_instance(CT), d / "a" / "ct.dcm", implicit=False)
    (d / "notes.txt").write_text("not DICOM")  # skipped when walking a directory
    rc = main(["store", "--remote", storescp_peer.remote, "--cache", str(tmp_path / "c"), "--json", str(d),
               str(REAL_RTPLAN), str(tmp_path / "dir" / "notes.txt")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and not out["ok"]
    by_source = {Path(r["source"]).name: r for r in out["results"]}
    assert by_source["ct.dcm"]["outcome"] == "sent"
    assert by_source[REAL_RTPLAN.name]["outcome"] == "failed"
    assert "RT Plan Storage is not sent by our Storage SCU" in by_source[REAL_RTPLAN.name]["message"]
    assert by_source["notes.txt"]["outcome"] == "failed" and "not a DICOM file" in by_source["notes.txt"]["message"]


# --------------------------------------------------------------------------- statuses (NET-1)
def test_status_table_per_instance(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path, caplog) -> None:
    files = _instances(tmp_path, 8)
    codes = [0x0000, 0xA700, 0xA900, 0xC000, 0xB000, 0xB007, 0x0122, 0xB123]
    for f, code in zip(files, codes, strict=True):
        scripted.script[_uid(f)] = Behaviour(status=code, comment=f"scripted {code:04X}" if code else "")
    report = DicomClient(node_settings(remote=scripted.remote)).store(files)
    got = [(r.outcome, r.status, r.status_comment) for r in report.results]
    assert got == [
        (StoreOutcome.SENT, 0x0000, ""),
        (StoreOutcome.FAILED, 0xA700, "scripted A700"),
        (StoreOutcome.FAILED, 0xA900, "scripted A900"),
        (StoreOutcome.FAILED, 0xC000, "scripted C000"),
        (StoreOutcome.WARNING, 0xB000, "scripted B000"),
        (StoreOutcome.WARNING, 0xB007, "scripted B007"),
        (StoreOutcome.FAILED, 0x0122, "scripted 0122"),
        (StoreOutcome.WARNING, 0xB123, "scripted B123"),
    ]
    assert report.results[1].message == "0xA700 (Failure: Refused: Out of resources): scripted A700"
    assert not report.ok and report.error == ""
    assert any("stored by" in r.message and "scripted B000" in r.message for r in caplog.records)  # warning logged
    with pytest.raises(StoreError, match="8 instance"):
        report.raise_for_status()


def test_dimse_timeout_stops_task_rest_not_tried(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    files = _instances(tmp_path, 4)
    scripted.script[_uid(files[1])] = Behaviour(delay=3.0)
    t0 = time.monotonic()
    report = DicomClient(node_settings(remote=scripted.remote, network__dimse_timeout=1)).store(files)
    elapsed = time.monotonic() - t0
    assert [r.outcome for r in report.results] == [StoreOutcome.SENT, StoreOutcome.FAILED, StoreOutcome.NOT_TRIED,
                                                   StoreOutcome.NOT_TRIED]
    assert "no C-STORE" in report.results[1].message and "within the DIMSE timeout of 1 s" in report.error
    assert elapsed < 9  # 1 s timeout + bounded release, never the peer's whims
    assert len(scripted.received) == 2


def test_peer_abort_stops_task(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    files = _instances(tmp_path, 4)
    scripted.script[_uid(files[1])] = Behaviour(abort=True)
    t0 = time.monotonic()
    report = DicomClient(node_settings(remote=scripted.remote)).store(files)
    assert [r.outcome for r in report.results] == [StoreOutcome.SENT, StoreOutcome.FAILED, StoreOutcome.NOT_TRIED,
                                                   StoreOutcome.NOT_TRIED]
    assert "aborted" in report.error and time.monotonic() - t0 < 5


def test_cli_exit_codes_for_failures(scripted: ScriptedStorageSCP, tmp_path: Path, capsys) -> None:
    files = _instances(tmp_path, 2)
    scripted.script[_uid(files[1])] = Behaviour(status=0xA700, comment="disk full")
    rc = main(["store", "--remote", scripted.remote, "--cache", str(tmp_path / "c"), *map(str, files)])
    cap = capsys.readouterr()
    assert rc == 1 and "Traceback" not in cap.err and "error:" in cap.err
    assert "failed" in cap.out and "0xA700" in cap.out


def test_connection_refused_and_rejected(node_settings, tmp_path: Path, capsys) -> None:
    files = _instances(tmp_path, 2)
    dead = f"NOBODY@127.0.0.1:{free_port()}"
    report = DicomClient(node_settings(remote=dead)).store(files)
    assert [r.outcome for r in report.results] == [StoreOutcome.NOT_TRIED] * 2
    assert report.error.startswith("cannot connect to NOBODY@127.0.0.1")
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        DicomClient(node_settings(remote=dead)).echo()
    rc = main(["echo", "--remote", dead])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot connect to NOBODY@127.0.0.1" in err and "Traceback" not in err
    assert main(["echo"]) == 2  # no remote configured: usage/config error


def test_rejected_association_reports_ps38_reason(node_settings, tmp_path: Path) -> None:
    from openigrt.net.scp import StorageSCP

    with StorageSCP(node_settings(allowed=["SOMEONE@127.0.0.1"])) as scp:  # we are not allowed
        remote = f"{scp.ae_title}@127.0.0.1:{scp.port}"
        report = DicomClient(node_settings(remote=remote)).store(_instances(tmp_path, 1))
        assert report.results[0].outcome is StoreOutcome.NOT_TRIED
        assert "calling-AE-title-not-recognized" in report.error
        with pytest.raises(AssociationRejected):
            DicomClient(node_settings(remote=remote)).echo()


# --------------------------------------------------------------------------- encodings
def test_datasets_and_explicit_files_go_out_implicit(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    ds = make_instance(CT, charset="ISO_IR 192", patient_name="山田^太郎")
    explicit = write_part10(make_instance(CT, seed=3), tmp_path / "e.dcm", implicit=False)
    implicit = write_part10(make_instance(CT, seed=4), tmp_path / "i.dcm", implicit=True)
    report = DicomClient(node_settings(remote=scripted.remote)).store([ds, explicit, implicit])
    assert report.ok
    assert [r.transfer_syntax for r in scripted.received] == ["1.2.840.10008.1.2"] * 3
    assert scripted.received[2].dataset == dataset_bytes(implicit)[1]  # implicit file: sent as its bytes
    from tests.net.data import encode

    assert scripted.received[0].dataset == encode(ds)  # Dataset: encoded Implicit VR LE


def test_mpeg2_cine_rt_image_proposed_in_its_own_syntax(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    ds = make_instance(RTIMAGE, modality="RTIMAGE")
    ds.NumberOfFrames = 2
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60), b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    path = write_part10(ds, tmp_path / "cine.dcm", implicit=False)
    meta = dcmread(path)
    meta.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    meta.save_as(path, enforce_file_format=True)
    report = DicomClient(node_settings(remote=scripted.remote)).store([path, REAL_RTIMAGE])
    assert report.ok, report.as_dict()
    assert [r.transfer_syntax for r in scripted.received] == ["1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2"]
    assert scripted.received[0].dataset == dataset_bytes(path)[1]


# --------------------------------------------------------------------------- robustness / limits
def test_responses_taken_by_the_reactor_are_not_lost(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path,
                                                     monkeypatch, caplog) -> None:
    """The pynetdicom race (docs/PEERS.md) on the response tap that echo/find/move still use (the
    Storage SCU has its own requestor now): forced on every message, the tap still has each status."""
    import openigrt.net.dimse as dimse
    from openigrt.net.store import prepare
    from tests.net.rawscu import ILE

    monkeypatch.setattr(dimse, "_drain_dimse_queue", lambda assoc: None)
    monkeypatch.setattr(dimse, "reactor_paused", lambda assoc: contextmanager(lambda: (yield))())
    import tests.net.rawscu as rawscu

    monkeypatch.setattr(rawscu, "reactor_paused", dimse.reactor_paused)  # do not pause the reactor at all
    files = _instances(tmp_path, 6)
    scripted.script[_uid(files[2])] = Behaviour(status=0xA700)
    caplog.set_level("WARNING", logger="pynetdicom")
    settings = node_settings(remote=scripted.remote, network__dimse_timeout=20)
    t0 = time.monotonic()
    statuses = []
    with rawscu.requestor(settings, settings.require_remote(), [(CT, (ILE,))]) as (assoc, tap):
        for f in files:
            prep = prepare(f)
            rsp = rawscu.raw_store(assoc, tap, context_class=CT, affected_class=CT, affected_uid=prep.sop_instance_uid,
                                   payload=bytes(prep.payload), timeout=20)
            statuses.append(rsp.status)
    assert statuses == [0, 0, 0xA700, 0, 0, 0]
    assert time.monotonic() - t0 < 10  # no DIMSE timeout waited out
    stolen = [r for r in caplog.records if "Received unexpected C-STORE" in r.getMessage()]
    assert stolen, "the reactor never took a response: the race was not exercised"


def test_max_associations_respected(node_settings, tmp_path: Path) -> None:
    files = _instances(tmp_path, 2)
    for limit, expected in ((1, 1), (2, 2)):
        peer = ScriptedStorageSCP(handler_delay=0.4).start()
        try:
            client = DicomClient(node_settings(remote=peer.remote, network__max_associations=limit))
            threads = [threading.Thread(target=client.store, args=([f],)) for f in files]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            assert peer.max_concurrent == expected and len(peer.received) == 2
        finally:
            peer.stop()


def test_identity_and_pdu_limits_from_settings(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    files = _instances(tmp_path, 2, rows=128)  # 32 KB of pixels each
    settings = node_settings(remote=scripted.remote, network__max_pdu_send=16384, network__max_pdu_receive=65536,
                             network__implementation_version_name="OPENIGRT_TEST")
    assert DicomClient(settings).store(files).ok
    assert scripted.peer_identity == [(settings.network.implementation_class_uid, "OPENIGRT_TEST", 65536)]
    # PS3.8 D.1: the limit is on the PDU length field (the PDU minus its 6-byte header)
    assert max(scripted.pdata_sizes) - 6 <= 16384 and len(scripted.pdata_sizes) >= 6  # split at our send cap


def test_progress_callback_sees_every_instance(scripted: ScriptedStorageSCP, node_settings, tmp_path: Path) -> None:
    files = _instances(tmp_path, 3)
    seen: list[tuple[int, int, str]] = []
    DicomClient(node_settings(remote=scripted.remote)).store(files, progress=lambda d, t, r: seen.append((d, t, r.outcome.value)))
    assert seen == [(1, 3, "sent"), (2, 3, "sent"), (3, 3, "sent")]


def test_echo_round_trip(scripted: ScriptedStorageSCP, node_settings, capsys) -> None:
    assert DicomClient(node_settings(remote=scripted.remote)).echo() < 1.0
    assert main(["echo", "--remote", scripted.remote, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# --------------------------------------------------------------------------- association request failures
@contextmanager
def _raw_server(reply: bytes | None) -> Iterator[int]:
    """A TCP server that reads the A-ASSOCIATE-RQ and answers *reply* (or nothing), for one connection."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    done = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
            done.wait(10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        done.set()
        srv.close()
        t.join(timeout=5)


def test_silent_peer_times_out_the_association_request(node_settings) -> None:
    from openigrt.errors import AssociationAborted

    with _raw_server(None) as port:
        t0 = time.monotonic()
        with pytest.raises(AssociationAborted, match="did not accept the association within 1 s"):
            DicomClient(node_settings(remote=f"MUTE@127.0.0.1:{port}", network__acse_timeout=1)).echo()
        assert time.monotonic() - t0 < 5


def test_peer_aborting_the_request_is_reported(node_settings) -> None:
    from openigrt.errors import AssociationAborted
    from openigrt.net.acceptor import abort_pdu

    with _raw_server(abort_pdu(2, 0)) as port:
        with pytest.raises(AssociationAborted, match="aborted the association request"):
            DicomClient(node_settings(remote=f"ABORTER@127.0.0.1:{port}")).echo()
