"""Seeded fuzz campaign against ``openigrt listen`` and ``openigrt archive serve`` subprocesses (issue 9).

The case kinds are in :mod:`tests.net.fuzz`. CI runs ``OPENIGRT_FUZZ_CASES`` (default 3000) cases
per server with seed ``OPENIGRT_FUZZ_SEED`` (default 20261203), plus slowloris connections in the
background and 8 floods of 60 connections, with short timeouts (``acse_timeout`` 1 s,
``network_timeout`` 1.5 s). Afterwards the server must be alive, serve DCMTK echoscu/storescu,
hold no file outside its directory and no partial or stray file, have logged no traceback, and
be back within :data:`FD_SLACK` descriptors and :data:`RSS_SLACK_KB` of RSS of where it started.

More cases: ``OPENIGRT_FUZZ_CASES=20000 pytest tests/net/test_fuzz.py -s`` (the summary line
gives the figures).

The TLS variant (:mod:`tests.net.fuzz_tls`) runs ``OPENIGRT_FUZZ_TLS_CASES`` (default 600) cases
against ``openigrt listen --tls`` (mutual TLS): the plain kinds inside TLS sessions, plus garbage,
partial and mutated ClientHellos, plain PDUs on the TLS port and handshakes abandoned midway;
the same checks afterwards, with DCMTK over TLS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import require_peer
from tests.net.checks import lean_echo, log_problems, outside, real_ct_stored, service_works, stored_consistently
from tests.net.fuzz import Campaign, Server
from tests.net.fuzz_tls import TlsCampaign, tls_context, tls_echo
from tests.net.hostile import CALLING, fd_count, rss_kb, settle, start_target, thread_count, tree

CASES = int(os.environ.get("OPENIGRT_FUZZ_CASES", "3000"))
TLS_CASES = int(os.environ.get("OPENIGRT_FUZZ_TLS_CASES", "600"))
SEED = int(os.environ.get("OPENIGRT_FUZZ_SEED", "20261203"))
ACSE_S, NETWORK_S = 1.0, 1.5
SETTINGS = (f"network.acse_timeout={ACSE_S}", f"network.network_timeout={NETWORK_S}")
#: Descriptors the server may hold above its start once the campaign's connections are gone.
FD_SLACK = 2
#: RSS the server may keep above its (warmed-up) start, kB.
RSS_SLACK_KB = 40_000

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.mark.parametrize("kind", ["listen", "archive"])
def test_fuzz_campaign(kind: str, tmp_path: Path) -> None:
    require_peer("storescu")
    # the archive advertises a PDU limit (P-DATA above it: A-ABORT), listen the SPEC's "unlimited" (cap)
    extra = ("network.max_pdu_receive=65536",) if kind == "archive" else ()
    t = start_target(kind, tmp_path / "server", settings=SETTINGS + extra)
    assert t.peer is not None
    try:
        assert service_works(t) == []  # warm-up: imports, index files
        time.sleep(0.3)
        fd0, rss0 = fd_count(t.pid), rss_kb(t.pid)
        before = tree(tmp_path)
        start = time.monotonic()
        stats = Campaign(Server(t.port, t.ae_title, CALLING), SEED).run(
            CASES, slow_limit=ACSE_S + NETWORK_S + 0.5, echo=lambda: lean_echo(t))
        elapsed = time.monotonic() - start
        peak_threads = thread_count(t.pid)
        assert t.peer.alive(), t.log()[-3000:]
        fd1 = settle(lambda: fd_count(t.pid), limit=fd0 + FD_SLACK, timeout=3 * (ACSE_S + NETWORK_S))
        rss1 = rss_kb(t.pid)
        summary = (f"{kind}: {sum(stats.cases.values())} cases in {elapsed:.1f} s (seed {SEED}) {stats.cases}; "
                   f"statuses { {f'{k:04X}': v for k, v in sorted(stats.statuses.items())} }, "
                   f"{stats.rejected} rejected, {stats.aborted} aborted; slowloris cut after "
                   f"{min(stats.slowloris_cuts, default=0):.2f}-{max(stats.slowloris_cuts, default=0):.2f} s "
                   f"({len(stats.slowloris_cuts)}x); fds {fd0} -> {fd1}; RSS {rss0} -> {rss1} kB; "
                   f"threads after {peak_threads}")
        print(summary)
        assert not stats.client_errors, stats.client_errors[:5]
        assert not stats.echo_failures, (stats.echo_failures, summary)
        assert stats.slowloris_cuts and stats.slowloris_uncut == 0, summary
        assert max(stats.slowloris_cuts) <= ACSE_S + NETWORK_S + 0.5, summary
        assert {0xC000, 0xA900, 0x0122} <= set(stats.statuses), summary  # the cases reach the handlers
        assert fd1 <= fd0 + FD_SLACK, summary
        assert rss1 <= rss0 + RSS_SLACK_KB, summary
        assert service_works(t) == [] and real_ct_stored(t)
        assert outside(t, before, tmp_path) == []
        assert stored_consistently(t) == []
        assert log_problems(t) == [], "\n".join(log_problems(t)[:20])
    finally:
        t.peer.stop()


def test_fuzz_campaign_tls(tmp_path: Path, pki) -> None:
    require_peer("storescu")
    tls = ("tls.listen=true", f"tls.certificate={pki.server}", f"tls.private_key={pki.server_key}",
           f"tls.ca_bundle={pki.ca}")
    t = start_target("listen", tmp_path / "server", settings=SETTINGS + tls)
    assert t.peer is not None
    dcmtk = tuple(pki.dcmtk())
    try:
        assert service_works(t, dcmtk) == []
        time.sleep(0.3)
        fd0, rss0 = fd_count(t.pid), rss_kb(t.pid)
        before = tree(tmp_path)
        server = Server(t.port, t.ae_title, CALLING)
        context = tls_context(str(pki.ca), str(pki.client), str(pki.client_key))
        start = time.monotonic()
        stats = TlsCampaign(server, SEED, context).run(TLS_CASES, slow_limit=ACSE_S + NETWORK_S + 0.5, slow_threads=2,
                                                        floods=3, echo=tls_echo(server, context))
        elapsed = time.monotonic() - start
        assert t.peer.alive(), t.log()[-3000:]
        fd1 = settle(lambda: fd_count(t.pid), limit=fd0 + FD_SLACK, timeout=3 * (ACSE_S + NETWORK_S))
        rss1 = rss_kb(t.pid)
        summary = (f"listen --tls: {sum(stats.cases.values())} cases in {elapsed:.1f} s (seed {SEED}) {stats.cases}; "
                   f"statuses { {f'{k:04X}': v for k, v in sorted(stats.statuses.items())} }; slowloris cut after "
                   f"{min(stats.slowloris_cuts, default=0):.2f}-{max(stats.slowloris_cuts, default=0):.2f} s "
                   f"({len(stats.slowloris_cuts)}x); fds {fd0} -> {fd1}; RSS {rss0} -> {rss1} kB")
        print(summary)
        assert not stats.client_errors, stats.client_errors[:5]
        assert not stats.echo_failures, (stats.echo_failures, summary)
        assert stats.slowloris_cuts and stats.slowloris_uncut == 0, summary
        assert {0xC000, 0xA900} <= set(stats.statuses), summary  # the cases reach the handlers through TLS
        assert fd1 <= fd0 + FD_SLACK and rss1 <= rss0 + RSS_SLACK_KB, summary
        assert service_works(t, dcmtk) == [] and real_ct_stored(t)
        assert outside(t, before, tmp_path) == [] and stored_consistently(t) == []
        assert log_problems(t) == [], "\n".join(log_problems(t)[:20])
        assert "refused: plain (non-TLS) A-ASSOCIATE-RQ on the TLS port" in t.log()
    finally:
        t.peer.stop()
