"""Shared fixtures (keep small): settings for a test node, real DICOM peers with guaranteed teardown.

Peer helpers themselves live in :mod:`tests.peers` (importable by benchmarks too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from openigrt.config import Settings, load_settings
from tests.net.tlspki import Pki, make_pki
from tests.peers import Peer, free_port, have, start_dcmqrscp, start_orthanc, start_storescp

OUR_AE = "OPENIGRT"


def require_peer(program: str) -> None:
    """Skip the test when a peer program (DCMTK tool name or absolute path) is not installed."""
    if not have(program):
        pytest.skip(f"{program} is not installed (make peers)")


@pytest.fixture
def node_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Factory of Settings for our node on loopback: AE OPENIGRT, a free port, cache in tmp_path.

    Keyword arguments are ``section.key`` overrides given with ``__`` for the dot, plus
    ``remote=`` / ``allowed=`` (e.g. ``node_settings(remote=peer.remote, network__dimse_timeout=2)``).
    """

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "local.ae_title": OUR_AE,
            "local.port": free_port(),
            "local.bind_address": "127.0.0.1",
            "paths.cache_dir": str(tmp_path / "cache"),
            "network.acse_timeout": 10,
            "network.dimse_timeout": 10,
            "network.network_timeout": 30,
            "network.connect_timeout": 5,
        }
        for key, value in overrides.items():
            values[key if key in ("remote", "allowed") else key.replace("__", ".")] = value
        return load_settings(None, values)

    return make


@pytest.fixture
def storescp_peer(tmp_path: Path) -> Iterator[Peer]:
    """DCMTK storescp on loopback (files in ``peer.extra['out']``)."""
    require_peer("storescp")
    with start_storescp(tmp_path / "storescp") as peer:
        yield peer


@pytest.fixture
def dcmqrscp_factory(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """Start DCMTK dcmqrscp peers (``factory(move_destinations={AET: (host, port)})``); all stopped at teardown."""
    require_peer("dcmqrscp")
    started: list[Peer] = []

    def make(**kwargs: Any) -> Peer:
        peer = start_dcmqrscp(tmp_path / f"dcmqrscp{len(started)}", **kwargs)
        started.append(peer)
        return peer

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """Start Orthanc peers (``factory(modalities={name: (AET, host, port)})``); all stopped at teardown."""
    require_peer("/usr/sbin/Orthanc")
    started: list[Peer] = []

    def make(**kwargs: Any) -> Peer:
        peer = start_orthanc(tmp_path / f"orthanc{len(started)}", **kwargs)
        started.append(peer)
        return peer

    yield make
    for p in started:
        p.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The DICOM TLS test PKI (CA, server, client, expired, wrong-host, unknown-CA certificates), made
    once per session with openssl by scripts/make-test-certs.sh (tests/net/tlspki.py)."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make peers)")
    return make_pki(tmp_path_factory.mktemp("pki"))


STRICT_ENV = "OPENIGRT_REQUIRE_PEERS"
_STRICT_REASONS = ("not installed", "could not import")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (``OPENIGRT_REQUIRE_PEERS=1``, set by ``make test``) a missing peer or module fails.

    Locally a test whose peer (DCMTK, Orthanc, dicom3tools, plastimatch) is not installed is
    skipped; in CI such a skip — or an ``importorskip`` of one of our modules — would hide a
    broken setup, so it is reported as a failure instead.
    """
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not os.environ.get(STRICT_ENV):
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(r in reason for r in _STRICT_REASONS):
        report.outcome = "failed"
        report.longrepr = f"{STRICT_ENV} is set and the test was skipped: {reason}"
