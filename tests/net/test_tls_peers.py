"""DICOM TLS with the real peers (issue 10 part 1): DCMTK 3.6.7 and Orthanc 1.10.1 on loopback.

DCMTK is called with ``+tls KEY CERT +cf CA`` (its default profile ``+py``, the Non-downgrading BCP 195
TLS profile, requires and verifies the peer's certificate: ``-rc``); in 3.6.7 storescu, storescp,
echoscu and findscu have TLS, movescu / getscu / dcmqrscp do not. Orthanc runs with
``DicomTlsEnabled`` (since 1.9.0), ``DicomTlsCertificate`` / ``DicomTlsPrivateKey`` /
``DicomTlsTrustedCertificates`` (1.9.0), ``DicomTlsRemoteCertificateRequired`` (1.9.3) and the
modality's ``"UseDicomTls": true`` (1.9.0), all present in the Debian 1.10.1 binary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.cli import main
from openigrt.net.cache import InstanceCache
from openigrt.net.header import inspect
from tests.conftest import require_peer
from tests.net.data import REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTSTRUCT, REAL_SCP_SET, dataset_bytes, same_elements
from tests.net.leanscu import ILE
from tests.net.tlspki import Pki
from tests.peers import (
    LOOPBACK,
    Peer,
    _spawn,
    _started,
    free_port,
    openigrt_argv,
    orthanc_rest,
    run,
    start_openigrt_listen,
    start_orthanc,
    start_storescp,
    storescu,
)

CALLING = "STORESCU"
#: How long the server gets to write a log line after the client returned, s.
LOG_WAIT_S = 5.0


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def wait_log(peer: Peer, needle: str, *, count: int = 1) -> str:
    """The peer's log once *needle* appears *count* times in it (bounded)."""
    end = time.monotonic() + LOG_WAIT_S
    while (log := peer.log()).count(needle) < count and time.monotonic() < end:
        time.sleep(0.05)
    assert log.count(needle) >= count, f"{needle!r} x{count} not in the log:\n{log[-3000:]}"
    return log


@pytest.fixture
def tls_listen(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., Peer]]:
    """``openigrt listen --tls`` subprocesses (server.pem or *cert*; clients from ca.pem required)."""
    require_peer("storescu")
    started: list[Peer] = []

    def make(cert: str = "server") -> Peer:
        peer = start_openigrt_listen(tmp_path / f"listen{len(started)}", allow=[f"{CALLING}@127.0.0.1"],
                                     extra_args=pki.cli(cert=cert, key="server"))
        started.append(peer)
        return peer

    yield make
    for p in started:
        p.stop()


def _assert_cached_unchanged(cache_dir: Path, sources: tuple[Path, ...], wire_ts: str) -> None:
    cache = InstanceCache(cache_dir)
    for path in sources:
        src_ts, src_body = dataset_bytes(path)
        row = cache.get(inspect(src_body, transfer_syntax_uid=src_ts).sop_instance_uid)
        assert row is not None, f"{path.name} not cached"
        ts, body = dataset_bytes(row.path)
        assert ts == wire_ts
        if src_ts == ts:
            assert body == src_body  # byte for byte through TLS
        else:
            assert same_elements(dcmread(path), dcmread(row.path)) == []


# --------------------------------------------------------------------------- DCMTK -> openigrt listen --tls
def test_dcmtk_over_tls_to_listen_cached_unchanged_and_bad_clients_refused(tls_listen, pki: Pki) -> None:
    peer = tls_listen()
    cp = storescu(peer.ae_title, peer.port, REAL_SCP_SET, calling_ae=CALLING, extra_args=["-xi", *pki.dcmtk()])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    _assert_cached_unchanged(peer.extra["cache"], REAL_SCP_SET, ILE)
    echo = ["echoscu", "-aet", CALLING, "-aec", peer.ae_title]
    assert run([*echo, *pki.dcmtk(), LOOPBACK, str(peer.port)]).returncode == 0
    refused = {  # client -> what our log says (one line each, with the address)
        "wrong CA": (pki.dcmtk(ca="other-ca"), "TLS handshake failed: the client does not trust the CA that signed our "
                                               "certificate"),
        "expired": (pki.dcmtk(cert="expired-client"), "client certificate refused: the client's certificate has expired"),
        "unknown": (pki.dcmtk(cert="unknown-client"), "client certificate refused: the client's certificate is not "
                                                      "signed by a CA in tls.ca_bundle"),
        "plain": ([], "plain (non-TLS) A-ASSOCIATE-RQ on the TLS port; connection closed"),
    }
    for name, (options, words) in refused.items():
        cp = run([*echo, *options, LOOPBACK, str(peer.port)], timeout=30)
        assert cp.returncode != 0, name
        log = wait_log(peer, f"connection from 127.0.0.1 refused: {words}")
    assert log.count("received ") == len(REAL_SCP_SET) and log.count("C-ECHO from") == 1
    assert "Traceback" not in log and " ERROR " not in log
    assert peer.alive()


def test_dcmtk_refuses_our_expired_server_certificate(tls_listen, pki: Pki) -> None:
    peer = tls_listen(cert="expired-server")
    cp = storescu(peer.ae_title, peer.port, [REAL_CT], calling_ae=CALLING, extra_args=pki.dcmtk(), check=False)
    assert cp.returncode != 0 and "certificate verify failed" in cp.stdout + cp.stderr
    wait_log(peer, "refused: TLS handshake failed: the client says our certificate (tls.certificate) has expired")
    assert len(InstanceCache(peer.extra["cache"])) == 0


# --------------------------------------------------------------------------- openigrt store/echo --tls -> DCMTK storescp
def test_store_and_echo_over_tls_to_dcmtk_storescp(tmp_path: Path, pki: Pki, capsys) -> None:
    require_peer("storescp")
    sent = (REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE)
    with start_storescp(tmp_path / "scp", extra_args=["+B", *pki.dcmtk(cert="server", key="server")]) as scp:
        base = ["--remote", scp.remote, "--ae-title", "OPENIGRT", "--cache", str(tmp_path / "c")]
        assert main(["store", *base, *pki.cli(), "--json", *map(str, sent)]) == 0, capsys.readouterr()
        received = {_uid(f): f for f in scp.extra["out"].iterdir()}
        for path in sent:
            src_ts, src_body = dataset_bytes(path)
            got_ts, got_body = dataset_bytes(received[_uid(path)])
            assert got_body == src_body if src_ts == got_ts else same_elements(dcmread(path), dcmread(received[_uid(path)])) == []
        assert main(["echo", *base, *pki.cli()]) == 0
        capsys.readouterr()
        assert main(["store", *base, *pki.cli(ca="other-ca"), str(REAL_CT)]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert f"TLS with {scp.remote} failed: the server's certificate chain ends in a CA that is not in tls.ca_bundle" in err
        assert main(["echo", *base, *pki.cli(cert="unknown-client")]) == 1
        assert "the server does not trust the CA that signed our certificate" in capsys.readouterr().err
        assert main(["echo", *base]) == 1  # plain client on DCMTK's TLS port
        assert "(if it is a DICOM TLS port: --tls)" in " ".join(capsys.readouterr().err.split())
    with start_storescp(tmp_path / "plain") as plain:
        assert main(["echo", "--remote", plain.remote, *pki.cli()]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert f"TLS with {plain.remote} failed: the server closed the connection during the TLS handshake" in err
        assert "Traceback" not in err


# --------------------------------------------------------------------------- Orthanc over TLS as the TMS
def test_orthanc_over_tls_as_the_tms_store_find_move(tmp_path: Path, pki: Pki, capsys) -> None:
    require_peer("/usr/sbin/Orthanc")
    our_port = free_port()
    config = {
        "DicomTlsEnabled": True, "DicomTlsCertificate": str(pki.server), "DicomTlsPrivateKey": str(pki.server_key),
        "DicomTlsTrustedCertificates": str(pki.ca), "DicomTlsRemoteCertificateRequired": True,
        "DicomModalities": {"openigrt": {"AET": "OPENIGRT", "Host": LOOPBACK, "Port": our_port, "UseDicomTls": True}},
    }
    with start_orthanc(tmp_path / "orthanc", extra_config=config) as orthanc:
        base = ["--remote", orthanc.remote, "--ae-title", "OPENIGRT", "--port", str(our_port),
                "--cache", str(tmp_path / "cache"), "--set", "local.bind_address=127.0.0.1"]
        tls = pki.cli(cert="server", key="server")  # our SCP (move) and SCU: a certificate for both roles
        assert main(["store", *base, *tls, "--json", str(REAL_CT), str(REAL_CT2)]) == 0
        stored = orthanc_rest(orthanc, "GET", "/instances")
        assert len(stored) == 2
        uid = _uid(REAL_CT2)
        assert main(["find", *base, *tls, "--sop-instance-uid", uid]) == 0
        assert main(["move", *base, *tls, "--json", "--sop-instance-uid", uid, "--sop-instance-uid", _uid(REAL_CT)]) == 0
        capsys.readouterr()
        cache = InstanceCache(tmp_path / "cache")
        for path in (REAL_CT, REAL_CT2):
            row = cache.get(_uid(path))
            assert row is not None and row.source_ae_title == orthanc.ae_title
            assert same_elements(dcmread(path), dcmread(row.path)) == []
            [found] = orthanc_rest(orthanc, "POST", "/tools/lookup", _uid(path).encode())
            held = tmp_path / "held.dcm"
            held.write_bytes(_http_bytes(orthanc, f"/instances/{found['ID']}/file"))
            assert dataset_bytes(row.path) == dataset_bytes(held)  # what Orthanc holds, moved over TLS unchanged
        assert main(["echo", *base]) == 1  # plain client on Orthanc's TLS port
        assert main(["echo", *base, *pki.cli(cert="unknown-client")]) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "does not trust the CA that signed our certificate" in err and "Traceback" not in err


def _http_bytes(peer: Peer, path: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(f"http://{LOOPBACK}:{peer.http_port}{path}", timeout=30) as rsp:
        return rsp.read()


# --------------------------------------------------------------------------- openigrt archive serve --tls
def test_archive_serve_tls_with_dcmtk_and_a_tls_move_destination(tmp_path: Path, pki: Pki) -> None:
    """DCMTK storescu/findscu +tls into ``archive serve --tls``; its C-MOVE sub-associations over TLS to
    DCMTK storescp +tls (movescu has no TLS in 3.6.7: the C-MOVE comes from pynetdicom over TLS)."""
    require_peer("storescp")
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE
    from pydicom import Dataset

    from openigrt.config import load_settings
    from openigrt.net.tls import client_context

    with start_storescp(tmp_path / "dest", extra_args=["+B", *pki.dcmtk(cert="server", key="server")]) as dest:
        port = free_port()
        argv = openigrt_argv("archive", "serve", "--dir", str(tmp_path / "archive"), "--ae-title", "ARCHIVE",
                             "--port", str(port), "--destination", dest.remote, *pki.cli(cert="server", key="server"))
        proc, log = _spawn("archive", argv, tmp_path / "arch")
        archive = _started(Peer("archive", proc, "ARCHIVE", port, tmp_path / "arch", log_path=log))
        try:
            assert storescu("ARCHIVE", port, [REAL_CT, REAL_CT2], calling_ae=CALLING, extra_args=pki.dcmtk()).returncode == 0
            cp = run(["findscu", "-S", "-aet", CALLING, "-aec", "ARCHIVE", *pki.dcmtk(), "-k", "QueryRetrieveLevel=IMAGE",
                      "-k", "SOPInstanceUID", "-k", f"StudyInstanceUID={dcmread(REAL_CT).StudyInstanceUID}",
                      "-k", "SeriesInstanceUID", LOOPBACK, str(port)])
            assert cp.returncode == 0 and cp.stdout.count("(0008,0018)") + cp.stderr.count("(0008,0018)") >= 2
            settings = load_settings(None, {"tls.ca_bundle": str(pki.ca), "tls.certificate": str(pki.client),
                                            "tls.private_key": str(pki.client_key)})
            ae = AE(ae_title="PYMOVESCU")
            ae.add_requested_context(MOVE)
            assoc = ae.associate(LOOPBACK, port, ae_title="ARCHIVE", tls_args=(client_context(settings.tls), LOOPBACK))
            assert assoc.is_established
            ds = Dataset()
            ds.QueryRetrieveLevel, ds.SOPInstanceUID = "IMAGE", _uid(REAL_CT2)
            ds.StudyInstanceUID = dcmread(REAL_CT2).StudyInstanceUID
            ds.SeriesInstanceUID = dcmread(REAL_CT2).SeriesInstanceUID
            statuses = [int(st.Status) for st, _ in assoc.send_c_move(ds, dest.ae_title, MOVE) if st]
            assoc.release()
            assert statuses[-1] == 0x0000, statuses
            [received] = list(dest.extra["out"].iterdir())
            assert dataset_bytes(received)[1] == dataset_bytes(REAL_CT2)[1]  # stored bytes, moved over TLS
            cp = storescu("ARCHIVE", port, [REAL_CT], calling_ae=CALLING, check=False)  # plain: refused
            assert cp.returncode != 0
            wait_log(archive, "plain (non-TLS) A-ASSOCIATE-RQ on the TLS port")
            assert "Traceback" not in archive.log()
        finally:
            archive.stop()
