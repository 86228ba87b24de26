"""Fixtures and DCMTK client helpers for the archive tests (real peers, bounded waits, killed in teardown)."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from tests.archive.content import ECLIPSE, REAL, Series, ct_series
from tests.peers import LOOPBACK, Peer, dcmtk, free_port, openigrt_argv, peer_env, run, wait_for_port

ARCHIVE_AE = "ARCHIVE"


@dataclass(frozen=True)
class DimseReply:
    """What a DCMTK client printed about the responses it received (``-d``)."""

    status: int
    completed: int | None = None
    failed: int | None = None
    warning: int | None = None
    pending: tuple[tuple[int | None, int | None], ...] = ()  # (remaining, completed) of each pending
    datasets: tuple[Dataset, ...] = field(default=())
    output: str = ""


_BLOCK = re.compile(r"INCOMING DIMSE MESSAGE(.*?)END DIMSE MESSAGE", re.S)


def _field(block: str, name: str) -> int | None:
    m = re.search(rf"{name}\s*:\s*(0x[0-9a-fA-F]{{4}}|\S+)", block)
    if not m or m.group(1) == "none":
        return None
    return int(m.group(1), 16) if m.group(1).startswith("0x") else int(m.group(1))


def parse_reply(output: str, message_type: str) -> DimseReply:
    """Status and counters of the last *message_type* response in a DCMTK ``-d`` log."""
    blocks = [b for b in _BLOCK.findall(output) if re.search(rf"Message Type\s*:\s*{message_type}", b)]
    if not blocks:
        raise AssertionError(f"no {message_type} in the client output:\n{output[-3000:]}")
    pending = []
    for b in blocks[:-1]:
        pending.append((_field(b, "Remaining Suboperations"), _field(b, "Completed Suboperations")))
    last = blocks[-1]
    status = _field(last, "DIMSE Status")
    assert status is not None, last
    return DimseReply(status, _field(last, "Completed Suboperations"), _field(last, "Failed Suboperations"),
                      _field(last, "Warning Suboperations"), tuple(pending), output=output)


def findscu(port: int, keys: Sequence[str], *, work: Path, model: str = "-S", ae_title: str = ARCHIVE_AE) -> DimseReply:
    """DCMTK findscu; returns the final status and the response identifiers (``-X`` files)."""
    out = work / f"find-{uuid.uuid4().hex[:8]}"
    out.mkdir(parents=True)
    argv = [dcmtk("findscu"), model, "-d", "-X", "-od", str(out), "-aec", ae_title]
    for k in keys:
        argv += ["-k", k]
    cp = run([*argv, LOOPBACK, str(port)], timeout=60)
    reply = parse_reply(cp.stdout + cp.stderr, "C-FIND RSP")
    datasets = tuple(dcmread(p) for p in sorted(out.glob("rsp*.dcm")))
    return DimseReply(reply.status, datasets=datasets, output=reply.output)


def movescu(port: int, keys: Sequence[str], *, destination: str, model: str = "-S",
            ae_title: str = ARCHIVE_AE) -> DimseReply:
    """DCMTK movescu (the destination is another AE); returns the final response's status and counts."""
    argv = [dcmtk("movescu"), model, "-d", "-aec", ae_title, "-aem", destination]
    for k in keys:
        argv += ["-k", k]
    cp = run([*argv, LOOPBACK, str(port)], timeout=120)
    return parse_reply(cp.stdout + cp.stderr, "C-MOVE RSP")


def start_archive_process(workdir: Path, directory: Path, *, port: int | None = None, ae_title: str = ARCHIVE_AE,
                          destinations: Sequence[str] = ()) -> Peer:
    """``openigrt archive serve`` as a subprocess (stopped by ``Peer.stop``: SIGTERM, then SIGKILL)."""
    port = port or free_port()
    args = ["archive", "serve", "--dir", str(directory), "--ae-title", ae_title, "--port", str(port)]
    for d in destinations:
        args += ["--destination", d]
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"archive-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(openigrt_argv(*args), cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=peer_env(), start_new_session=True)
    peer = Peer("archive", proc, ae_title, port, workdir, log_path=log_path, extra={"dir": directory})
    try:
        wait_for_port(LOOPBACK, port, timeout=30, proc=proc)
    except BaseException:
        peer.stop()
        raise RuntimeError(f"archive did not start:\n{peer.log()[-3000:]}") from None
    return peer


@dataclass(frozen=True)
class Content:
    """Files given to the archive in the DCMTK tests."""

    phantom: Series  # PHANTOM^ONE, 4 explicit-VR CT slices, study 20240105 08:30
    other: Series  # OTHER^TWO, 3 implicit-VR CT slices, study 20240310 14:15
    directory: Path


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    root = tmp_path_factory.mktemp("content")
    phantom = ct_series(root / "ct", patient_id="PAT1", patient_name="PHANTOM^ONE", n=4, study_date="20240105",
                        study_time="083000", series_number=2)
    other = ct_series(root / "ct", patient_id="PAT2", patient_name="OTHER^TWO", n=3, study_date="20240310",
                      study_time="141500", series_number=5, explicit=False)
    return Content(phantom, other, root)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """DCMTK storescp (TCP_NODELAY=1) as the move destination ``STORESCP``."""
    from tests.peers import start_storescp

    peer = start_storescp(tmp_path_factory.mktemp("storescp"))
    try:
        yield peer
    finally:
        peer.stop()


def received(peer: Peer) -> dict[str, Path]:
    """Files storescp holds, by SOP Instance UID (its file names are ``<modality>.<uid>``)."""
    out: Path = peer.extra["out"]
    return {p.name.split(".", 1)[1]: p for p in out.iterdir() if "." in p.name}


def clear_received(peer: Peer) -> None:
    for p in peer.extra["out"].iterdir():
        p.unlink()


__all__ = ["ECLIPSE", "REAL", "ARCHIVE_AE", "Content", "DimseReply", "clear_received", "findscu", "movescu",
           "parse_reply", "received", "start_archive_process", "wait_for_port"]
