"""Every acceptor limit of ``[network]`` does what its documentation says (in-process StorageSCP, loopback)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from openigrt.config import Settings
from openigrt.net.acceptor import AcceptorConfig, AcceptorServer
from openigrt.net.connections import AcceptorLimits, Connection
from openigrt.net.scp import StorageSCP
from tests.net.data import CT, encode, make_instance
from tests.net.leanscu import (
    ILE,
    VERIFICATION,
    LeanAssociation,
    PeerClosed,
    Rejected,
    associate_rq,
    c_echo_rq,
    message_pdus,
    p_data,
    pdv,
    read_pdu,
    wait_closed,
)

CALLING = "TESTSCU"


def _scp(node_settings: Callable[..., Settings], **limits: object) -> StorageSCP:
    settings = node_settings(allowed=[f"{CALLING}@127.0.0.1"], **{f"network__{k}": v for k, v in limits.items()})
    return StorageSCP(settings, reconcile=False)


def _assoc(scp: StorageSCP, contexts=((1, VERIFICATION, (ILE,)),)) -> LeanAssociation:
    return LeanAssociation(scp.port, scp.ae_title, CALLING, contexts=contexts, timeout=5)


def test_association_limits_total_and_per_address(node_settings) -> None:
    with _scp(node_settings, max_accepted_associations=3, max_associations_per_address=2) as scp:
        held = [_assoc(scp).open(), _assoc(scp).open()]
        with pytest.raises(Rejected) as info:  # a third one from 127.0.0.1
            _assoc(scp).open()
        assert (info.value.result, info.value.source, info.value.reason) == (2, 3, 2)
        for a in held:
            a.release()
        assert _assoc(scp).open().echo() == 0  # the places are free again


def test_pending_connections_per_address_and_total(node_settings) -> None:
    with _scp(node_settings, max_pending_per_address=3, max_pending_connections=5) as scp:
        socks = []
        for _ in range(10):
            socks.append(socket.create_connection(("127.0.0.1", scp.port), timeout=5))
            time.sleep(0.02)
        time.sleep(0.3)
        kept = [s for s in socks if wait_closed(s, 0.05) is None]
        assert len(kept) == 3 and kept == socks[-3:]  # the oldest were dropped, the newest kept
        with _assoc(scp) as a:  # and a well-behaved peer still gets in
            assert a.echo() == 0
        for s in socks:
            s.close()


def test_associate_rq_cap(node_settings) -> None:
    with _scp(node_settings, max_associate_rq=4096) as scp:
        many = [(2 * i + 1, VERIFICATION, (ILE,)) for i in range(120)]  # ~6 kB of contexts
        rq = associate_rq(scp.ae_title, CALLING, many)
        assert len(rq) > 4096 + 6
        with socket.create_connection(("127.0.0.1", scp.port), timeout=5) as s:
            s.sendall(rq[:6])  # the header alone is enough to refuse it
            assert read_pdu(s)[0] == 0x07
        with _assoc(scp, contexts=many[:40]) as a:  # 2 kB is fine
            assert a.echo(79) == 0


def test_message_size_cap(node_settings) -> None:
    with _scp(node_settings, max_message_size=8192) as scp:
        ds = make_instance(CT, rows=64)  # 8 kB of pixels + header
        a = _assoc(scp, contexts=[(1, CT, (ILE,))]).open()
        with pytest.raises((PeerClosed, OSError), match="PDU type 0x07|closed by the SCP|reset"):
            a.store(1, CT, ds.SOPInstanceUID, encode(ds))  # A-ABORT (or a reset while still sending)
        a.close()
        assert len(scp.cache) == 0


def test_p_data_cap_when_unlimited_is_advertised(node_settings) -> None:
    with _scp(node_settings, max_pdu_receive_cap=8192) as scp:
        a = _assoc(scp, contexts=[(1, CT, (ILE,))]).open()
        assert a.ac is not None and a.ac.max_pdu == 0 and a.sock is not None  # "unlimited" advertised
        ds = make_instance(CT, rows=64)
        a.sock.sendall(b"".join(message_pdus(1, c_echo_rq(1), None)))
        assert a.read_response().status == 0
        a.sock.sendall(p_data(pdv(1, 0x00, encode(ds)))[:6 + 4096])  # the start of one PDU > 8192
        with pytest.raises(PeerClosed, match="PDU type 0x07"):
            a.read_response()
        a.close()


def test_association_duration_cap(node_settings) -> None:
    with _scp(node_settings, max_association_duration=1.0) as scp:
        a = _assoc(scp).open()
        start = time.monotonic()
        with pytest.raises((PeerClosed, OSError)):
            while time.monotonic() - start < 5:
                assert a.echo() == 0  # busy, never idle: only the duration cap ends it
                time.sleep(0.1)
        assert 0.9 < time.monotonic() - start < 2.0
        a.close()


def test_network_timeout_counts_per_pdu(node_settings) -> None:
    with _scp(node_settings, network_timeout=1.0) as scp:
        a = _assoc(scp).open()
        assert a.sock is not None
        closed = wait_closed(a.sock, 4.0)  # idle after associating
        assert closed is not None and 0.8 < closed < 1.7
        a.close()


def test_tls_hook_is_called_once_per_connection(node_settings) -> None:
    """``AcceptorConfig.wrap_socket`` (where TLS plugs in) is called once per accepted connection, in its
    thread, with the ACSE deadline counted from the accept."""
    wrapped: list[tuple[int, float]] = []

    def wrap(conn: Connection, deadline: float) -> None:
        wrapped.append((conn.sock.fileno(), deadline - conn.accepted_at))

    settings = node_settings()
    config = AcceptorConfig(ae_title="US", supported={VERIFICATION: (ILE,)}, storage_classes=frozenset(),
                            check_access=lambda called, calling, address: None, on_store=lambda req: (0, ""),
                            implementation_class_uid="1.2.3", implementation_version_name="TEST",
                            limits=AcceptorLimits.from_network(settings.network), wrap_socket=wrap)
    server = AcceptorServer(("127.0.0.1", 0), config)
    import threading

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for _ in range(2):
            with LeanAssociation(port, "US", CALLING, timeout=5) as a:
                assert a.echo() == 0
        assert len(wrapped) == 2 and all(d == settings.network.acse_timeout for _, d in wrapped)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
