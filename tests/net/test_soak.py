"""Soak: 2000 associations of one C-STORE each against ``openigrt listen`` and ``openigrt archive serve``.

An SCP that runs for months must not grow: after a warm-up of :data:`WARMUP` associations the
server's descriptors stay within :data:`FD_SLACK` of the warm figure at every sample, and its RSS
within :data:`RSS_SLACK_KB`. Each instance is distinct (its own SOP Instance UID), answered 0000
and stored (fsync before success). The requestor is the raw-socket :mod:`tests.net.leanscu`
(a few ms per association). ``OPENIGRT_SOAK_ASSOCIATIONS`` changes the count.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.checks import log_problems, service_works, stored_consistently
from tests.net.data import CT, encode, make_instance
from tests.net.hostile import CALLING, fd_count, rss_kb, start_target, stored_files, thread_count
from tests.net.leanscu import ILE, LeanAssociation

ASSOCIATIONS = int(os.environ.get("OPENIGRT_SOAK_ASSOCIATIONS", "2000"))
WARMUP = 100
SAMPLE_EVERY = 100
#: Descriptors above the warm figure allowed at any sample (a connection closing meanwhile).
FD_SLACK = 2
#: RSS growth allowed from the warm figure to the end, kB.
RSS_SLACK_KB = 8_000

pytestmark = pytest.mark.slow


def _template() -> tuple[bytes, bytes]:
    """An encoded CT instance and the placeholder SOP Instance UID bytes inside it (fixed length)."""
    placeholder = "2.25." + "1" * 39
    return encode(make_instance(CT, rows=16, uid=placeholder)), placeholder.encode("ascii")


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: the soak measures growth, not the disk's fsync time
    (fsync is still called; benchmarks/net_bench.py measures the durable figure)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "store"
        return
    path = Path(tempfile.mkdtemp(prefix="openigrt-soak-", dir=shm))
    try:
        yield path / "store"
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("kind", ["listen", "archive"])
def test_2000_associations_keep_descriptors_and_memory_flat(kind: str, tmp_path: Path, fast_dir: Path) -> None:
    t = start_target(kind, tmp_path / "server", root=fast_dir)
    assert t.peer is not None
    template, placeholder = _template()
    samples: list[tuple[int, int, int]] = []  # (association, fds, RSS kB)
    try:
        start = time.monotonic()
        for i in range(ASSOCIATIONS):
            uid = "2.25." + str(10**38 + i).rjust(39, "1")
            with LeanAssociation(t.port, t.ae_title, CALLING, contexts=[(1, CT, (ILE,))]) as a:
                rsp = a.store(1, CT, uid, template.replace(placeholder, uid.encode("ascii")))
            assert rsp.status == 0, f"association {i}: {rsp}\n{t.log()[-2000:]}"
            if (i + 1) % SAMPLE_EVERY == 0 or i + 1 == WARMUP:
                samples.append((i + 1, fd_count(t.pid), rss_kb(t.pid)))
        elapsed = time.monotonic() - start
        warm = next(s for s in samples if s[0] == WARMUP)
        print(f"{kind}: {ASSOCIATIONS} associations in {elapsed:.1f} s ({1000 * elapsed / ASSOCIATIONS:.1f} ms each); "
              f"fds after {WARMUP}: {warm[1]}, max {max(s[1] for s in samples)}, end {samples[-1][1]}; "
              f"RSS after {WARMUP}: {warm[2]} kB, max {max(s[2] for s in samples)} kB, end {samples[-1][2]} kB; "
              f"threads {thread_count(t.pid)}")
        assert max(s[1] for s in samples if s[0] >= WARMUP) <= warm[1] + FD_SLACK, samples
        assert samples[-1][2] <= warm[2] + RSS_SLACK_KB, samples
        assert stored_files(kind, t.root) == ASSOCIATIONS
        assert stored_consistently(t) == []
        assert service_works(t) == []
        assert log_problems(t) == []
    finally:
        t.peer.stop()
