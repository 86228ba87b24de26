"""DICOM TLS in process (issue 10 part 1): our acceptor and pynetdicom's requestor over the Python ssl module.

Certificates come from the session's test PKI (``pki`` fixture: scripts/make-test-certs.sh). Every
connection is on loopback and every wait bounded. The real peers (DCMTK, Orthanc) are in
tests/net/test_tls_peers.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from openigrt.cli import main
from openigrt.config import RemoteAE, Settings
from openigrt.errors import ConfigError, TlsError
from openigrt.net.cache import InstanceCache
from openigrt.net.client import DicomClient
from openigrt.net.qr import MoveOutcome
from openigrt.net.scp import StorageSCP
from openigrt.net.status import StoreOutcome
from openigrt.net.tls import TLS12_CIPHER_SUITES, client_context
from tests.net.data import REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTSTRUCT, dataset_bytes, same_elements
from tests.net.leanscu import LeanAssociation, PeerClosed, wait_closed
from tests.net.tlspki import Pki

CLIENT = "TLSSCU"
LOG_NAME = "openigrt.net.acceptor"
SENT = (REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE)


def _keys(values: dict[str, str]) -> dict[str, str]:
    return {k.replace(".", "__"): v for k, v in values.items()}


@contextmanager
def tls_scp(node_settings: Callable[..., Settings], pki: Pki, **overrides: Any) -> Iterator[StorageSCP]:
    """Our Storage SCP on a TLS-only port (server.pem, client certificates from ca.pem required)."""
    tls = pki.acceptor(**{k: overrides.pop(k) for k in ("cert", "require_client") if k in overrides})
    settings = node_settings(allowed=[f"{CLIENT}@127.0.0.1"], **_keys(tls), **overrides)
    with StorageSCP(settings, reconcile=False) as scp:
        yield scp


def client(node_settings: Callable[..., Settings], scp: StorageSCP, pki: Pki, *, host: str = "127.0.0.1",
           **tls: Any) -> DicomClient:
    settings = node_settings(local__ae_title=CLIENT, remote=f"{scp.ae_title}@{host}:{scp.port}",
                             **_keys(pki.requestor(**tls)))
    return DicomClient(settings)


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOG_NAME and "refused" in r.getMessage()]


def client_hello(pki: Pki) -> bytes:
    """The bytes of a real TLS ClientHello from our client context (no socket)."""
    ctx = client_context(Settings().tls.__class__(ca_bundle=pki.ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


# --------------------------------------------------------------------------- store / echo over mutual TLS
def test_store_and_echo_over_mutual_tls_cache_bytes_unchanged(node_settings, pki: Pki, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    with tls_scp(node_settings, pki) as scp:
        c = client(node_settings, scp, pki)
        assert c.echo() > 0
        report = c.store(list(SENT))
        assert report.ok, report.as_dict()
        cache = InstanceCache(scp.cache.root)
        for path in SENT:
            src_ts, src_body = dataset_bytes(path)
            row = cache.get(str(dcmread(path, stop_before_pixels=True).SOPInstanceUID))
            assert row is not None
            ts, body = dataset_bytes(row.path)
            if src_ts == ts:
                assert body == src_body  # byte for byte through TLS
            else:  # NET-1 sends Implicit VR LE: converted on the way, elements equal
                assert same_elements(dcmread(path), dcmread(row.path)) == []
    sessions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TLS from 127.0.0.1")]
    assert len(sessions) == 2 and all("peer certificate commonName=openigrt-client" in s for s in sessions)
    assert all(s.split()[3] in ("TLSv1.2", "TLSv1.3") for s in sessions)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_profile_versions_and_cipher_suites(node_settings, pki: Pki, caplog) -> None:
    """TLS 1.2+ only; for TLS 1.2 exactly the BCP 195 AEAD suites, the server choosing the strongest."""
    ours = {c["name"] for c in client_context(Settings().tls.__class__(ca_bundle=pki.ca)).get_ciphers()
            if c["protocol"] == "TLSv1.2"}
    assert ours == set(TLS12_CIPHER_SUITES.values())

    def handshake(port: int, *, version: ssl.TLSVersion, ciphers: str) -> ssl.SSLSocket:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(pki.ca))
        ctx.load_cert_chain(str(pki.client), str(pki.client_key))
        ctx.minimum_version = ssl.TLSVersion.TLSv1 if version < ssl.TLSVersion.TLSv1_2 else version
        ctx.maximum_version = version
        ctx.set_ciphers(ciphers)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")

    with tls_scp(node_settings, pki) as scp:
        with handshake(scp.port, version=ssl.TLSVersion.TLSv1_2, ciphers="ALL") as s:
            assert (s.version(), s.cipher()[0]) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
        with handshake(scp.port, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256") as s:
            assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        with handshake(scp.port, version=ssl.TLSVersion.TLSv1_3, ciphers="ALL") as s:
            assert s.version() == "TLSv1.3"
        for version, ciphers in ((ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA256:AES128-GCM-SHA256:AES256-SHA"),
                                 (ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")):
            with pytest.raises(ssl.SSLError):
                handshake(scp.port, version=version, ciphers=ciphers).close()
        time.sleep(0.2)
    words = [r.getMessage() for r in refusals(caplog)]
    assert any("no cipher suite in common" in w for w in words), words
    assert any("TLS version" in w for w in words), words


# --------------------------------------------------------------------------- refusals at the acceptor
def test_plain_association_on_the_tls_port_is_refused_and_logged(node_settings, pki: Pki, caplog) -> None:
    with tls_scp(node_settings, pki) as scp:
        with pytest.raises((PeerClosed, OSError)):
            LeanAssociation(scp.port, scp.ae_title, CLIENT, timeout=5).open()
        time.sleep(0.1)
        assert client(node_settings, scp, pki).echo() > 0  # TLS clients still served
    [record] = refusals(caplog)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == ("connection from 127.0.0.1 refused: plain (non-TLS) A-ASSOCIATE-RQ on the TLS "
                                   "port; connection closed")


@pytest.mark.parametrize(("tls", "server_words", "client_words"), [
    ({"cert": "unknown-client"}, "client certificate refused: the client's certificate is not signed by a CA in "
     "tls.ca_bundle", "the server does not trust the CA that signed our certificate"),
    ({"cert": "expired-client"}, "client certificate refused: the client's certificate has expired",
     "the server says our certificate (tls.certificate) has expired"),
    ({"cert": None}, "the client sent no certificate", "the server requires a certificate from us"),
], ids=["unknown-ca", "expired", "no-certificate"])
def test_mutual_tls_refuses_bad_client_certificates_at_the_handshake(node_settings, pki: Pki, caplog, tls: dict,
                                                                    server_words: str, client_words: str) -> None:
    caplog.set_level(logging.INFO, logger=LOG_NAME)
    with tls_scp(node_settings, pki) as scp:
        c = client(node_settings, scp, pki, **tls)
        with pytest.raises(TlsError) as info:
            c.echo()
        time.sleep(0.1)
    assert str(info.value).startswith(f"TLS with {c.remote} failed: {client_words}")
    [record] = refusals(caplog)
    assert record.getMessage().startswith("connection from 127.0.0.1 refused: ") and server_words in record.getMessage()
    assert record.exc_info is None
    assert not [r for r in caplog.records if "C-ECHO from" in r.getMessage()]  # never associated


def test_without_client_certificates_required_any_tls_client_is_served(node_settings, pki: Pki) -> None:
    with tls_scp(node_settings, pki, require_client=False) as scp:
        assert client(node_settings, scp, pki, cert=None).echo() > 0


# --------------------------------------------------------------------------- requestor errors
@pytest.mark.parametrize(("server_cert", "client_tls", "host", "words"), [
    ("expired-server", {}, "127.0.0.1", "the server's certificate has expired (certificate has expired)"),
    ("server", {"ca": "other-ca"}, "127.0.0.1", "the server's certificate chain ends in a CA that is not in "
     "tls.ca_bundle"),
    ("wrong-host", {}, "127.0.0.1", "the server's certificate does not name the IP address we connected to"),
], ids=["expired", "wrong-ca", "host-name"])
def test_requestor_tls_errors_name_the_peer(node_settings, pki: Pki, server_cert: str, client_tls: dict, host: str,
                                            words: str, tmp_path: Path, capsys) -> None:
    with tls_scp(node_settings, pki, cert=server_cert) as scp:
        c = client(node_settings, scp, pki, host=host, **client_tls)
        with pytest.raises(TlsError) as info:
            c.echo()
        assert str(info.value).startswith(f"TLS with {scp.ae_title}@{host}:{scp.port} failed: {words}")
        report = c.store([REAL_CT])  # store: the failure is the report's error, the instance not tried
        assert report.results[0].outcome is StoreOutcome.NOT_TRIED and words in report.error
        args = ["--remote", f"{scp.ae_title}@{host}:{scp.port}", "--ae-title", CLIENT, "--cache", str(tmp_path / "c"),
                *pki.cli(**client_tls)]
        assert main(["echo", *args]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"error: TLS with {scp.ae_title}@{host}:{scp.port} failed" in err
        assert words.split(" (")[0] in " ".join(err.split())


def test_host_name_check_can_be_turned_off(node_settings, pki: Pki) -> None:
    with tls_scp(node_settings, pki, cert="wrong-host") as scp:
        settings = node_settings(local__ae_title=CLIENT, remote=f"{scp.ae_title}@127.0.0.1:{scp.port}",
                                 tls__verify_hostname="false", **_keys(pki.requestor()))
        assert DicomClient(settings).echo() > 0  # chain still verified: only the name check is off


def test_tls_client_against_a_plain_port(node_settings, pki: Pki, caplog) -> None:
    with StorageSCP(node_settings(allowed=[f"{CLIENT}@127.0.0.1"]), reconcile=False) as plain:
        with pytest.raises(TlsError, match=r"failed: the server does not speak TLS \(a plain DICOM port\?\)"):
            client(node_settings, plain, pki).echo()
        assert LeanAssociation(plain.port, plain.ae_title, CLIENT, timeout=5).open().echo() == 0  # unchanged
    hint = [r.getMessage() for r in caplog.records if "0x16" in r.getMessage()]
    assert hint and "this port is plain DICOM: tls.listen is off" in hint[0]


# --------------------------------------------------------------------------- time and places
def test_handshake_bounded_by_the_acse_deadline_from_accept(node_settings, pki: Pki, caplog) -> None:
    hello = client_hello(pki)
    with tls_scp(node_settings, pki, network__acse_timeout=1.5) as scp:
        silent = socket.create_connection(("127.0.0.1", scp.port), timeout=5)
        drip = socket.create_connection(("127.0.0.1", scp.port), timeout=5)
        start = time.monotonic()
        drip.sendall(hello[:20])
        cut = None
        for b in hello[20:60]:  # one byte every 0.25 s: the deadline is not extended by progress
            try:
                drip.sendall(bytes([b]))
            except OSError:
                cut = time.monotonic() - start
                break
            if wait_closed(drip, 0.25) is not None:
                cut = time.monotonic() - start
                break
        assert cut is not None and 1.3 < cut < 2.2, cut
        assert wait_closed(silent, 2.0) is not None
        silent.close()
        drip.close()
        assert client(node_settings, scp, pki).echo() > 0
    words = [r.getMessage() for r in refusals(caplog)]
    assert sum("not completed within the ACSE timeout" in w or "no TLS handshake within the ACSE timeout" in w
               for w in words) == 2, words


def test_stalled_handshakes_hold_pending_places_only(node_settings, pki: Pki) -> None:
    """A peer that never completes its handshake is a pending connection: evicted like a silent one."""
    hello = client_hello(pki)
    with tls_scp(node_settings, pki, network__max_pending_per_address=3, network__max_pending_connections=5,
                 network__max_accepted_associations=1) as scp:
        stalled = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", scp.port), timeout=5)
            s.sendall(hello[: len(hello) // 2])
            stalled.append(s)
            time.sleep(0.03)
        time.sleep(0.3)
        kept = [s for s in stalled if wait_closed(s, 0.05) is None]
        assert kept == stalled[-3:]  # the oldest were dropped, also mid-handshake
        c = client(node_settings, scp, pki)
        assert c.echo() > 0  # the one association place was never taken by them
        for s in stalled:
            s.close()


# --------------------------------------------------------------------------- the archive
def test_archive_over_tls_find_and_move_to_a_tls_destination(node_settings, pki: Pki, tmp_path: Path) -> None:
    """``archive serve --tls``: TLS port, C-MOVE sub-associations over TLS to our TLS SCP."""
    from openigrt.archive.server import EmbeddedArchive

    node = {**pki.acceptor(), **pki.requestor(cert="server", key="server")}  # one certificate, both roles
    settings = node_settings(**_keys(node))
    with EmbeddedArchive(tmp_path / "archive", settings=settings) as archive:
        archive.import_paths([REAL_CT, REAL_CT2])
        archive.add_destination(RemoteAE(settings.local.ae_title, "127.0.0.1", settings.local.port))
        ours = node_settings(remote=str(archive.remote), local__port=settings.local.port, **_keys(node))
        c = DicomClient(ours)
        uid = str(dcmread(REAL_CT2, stop_before_pixels=True).SOPInstanceUID)
        assert c.find(uid).found
        report = c.move([uid, str(dcmread(REAL_CT, stop_before_pixels=True).SOPInstanceUID)])
        assert [r.outcome for r in report.results] == [MoveOutcome.RETRIEVED] * 2, report.as_dict()
        assert dataset_bytes(Path(report.results[0].path))[1] == dataset_bytes(REAL_CT2)[1]
        (tmp_path / "archive" / "destinations.toml").write_text(  # this destination said to be plain: refused
            f'[[destination]]\nae_title = "PLAINDEST"\nhost = "127.0.0.1"\nport = {settings.local.port}\ntls = false\n')
        plain = DicomClient(node_settings(remote=str(archive.remote), local__ae_title="PLAINDEST",
                                          local__port=settings.local.port, **_keys(node)))
        failed = plain.move([uid]).results[0]  # our TLS SCP closed the archive's plain association: A702
        assert failed.outcome is MoveOutcome.FAILED and failed.status == 0xA702, failed


# --------------------------------------------------------------------------- configuration
def test_tls_configuration_errors_name_the_key(node_settings, pki: Pki, tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="tls.certificate: required to accept TLS connections"):
        StorageSCP(node_settings(tls__listen="true"), reconcile=False).start()
    with pytest.raises(ConfigError, match="tls.ca_bundle: required to check client certificates"):
        StorageSCP(node_settings(**_keys({**pki.acceptor(), "tls.ca_bundle": ""})), reconcile=False).start()
    with pytest.raises(ConfigError, match="tls.certificate: .* not a usable PEM certificate and matching"):
        StorageSCP(node_settings(**_keys({**pki.acceptor(), "tls.private_key": str(pki.client_key)})),
                   reconcile=False).start()
    with pytest.raises(ConfigError, match="tls.ca_bundle: file not found"):
        node_settings(tls__ca_bundle=str(tmp_path / "nope.pem"))
    assert main(["listen", "--tls", "--port", "0", "--cache", str(tmp_path / "c")]) == 2
    assert "tls.certificate: required" in capsys.readouterr().err
