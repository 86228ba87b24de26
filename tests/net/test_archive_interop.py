"""Our Q/R SCU against the embedded archive (``openigrt archive serve``, ARCHIVE-1) as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.net.client import DicomClient
from openigrt.net.qr import MoveOutcome
from tests.net.data import REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTPLAN, REAL_RTSTRUCT, dataset_bytes
from tests.peers import LOOPBACK, Peer, _spawn, _started, free_port, openigrt_argv, run

pytestmark = pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "openigrt/cli/cmd_archive.py").exists(),
                                reason="the archive (openigrt archive serve) is not in this checkout")
FILES = (REAL_CT, REAL_CT2, REAL_RTSTRUCT, REAL_RTPLAN, REAL_RTIMAGE)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Peer, int]]:
    our_port, port = free_port(), free_port()
    root = tmp_path / "archive"
    cp = run(openigrt_argv("archive", "import", "--dir", str(root), *map(str, FILES)), timeout=60)
    assert cp.returncode == 0, cp.stderr
    argv = openigrt_argv("archive", "serve", "--dir", str(root), "--ae-title", "ARCHIVE", "--port", str(port),
                         "--bind", LOOPBACK, "--destination", f"OPENIGRT@{LOOPBACK}:{our_port}")
    proc, log = _spawn("archive", argv, tmp_path / "archive-run")
    peer = _started(Peer("archive", proc, "ARCHIVE", port, tmp_path / "archive-run", log_path=log))
    yield peer, our_port
    peer.stop()


def test_find_and_move_from_the_archive(archive, node_settings) -> None:
    peer, our_port = archive
    client = DicomClient(node_settings(remote=peer.remote, local__port=our_port))
    assert client.echo() > 0
    for src in FILES:
        uid = dcmread(src, stop_before_pixels=True).SOPInstanceUID
        assert client.find(uid).found
    uids = [dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in FILES]
    report = client.move(uids)
    assert report.ok, report.as_dict()
    assert all(r.outcome is MoveOutcome.RETRIEVED and r.completed == 1 for r in report.results)
    for src in FILES:
        uid = dcmread(src, stop_before_pixels=True).SOPInstanceUID
        assert dataset_bytes(Path(report.paths[uid]))[1] == dataset_bytes(src)[1]
    assert not client.find("1.2.3.4.5.6").found
    missing = client.move(["1.2.3.4.5.6"]).results[0]
    assert missing.outcome is MoveOutcome.FAILED
