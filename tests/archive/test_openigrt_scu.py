"""Our own Q/R SCU (``openigrt find`` / ``openigrt move``, NET-3..6) against the embedded archive."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from openigrt.archive.server import EmbeddedArchive
from openigrt.cli import main
from openigrt.config import RemoteAE
from tests.archive.content import ECLIPSE, ECLIPSE_RI, ECLIPSE_RP, ECLIPSE_RS, ECLIPSE_STUDY
from tests.peers import LOOPBACK, free_port

OUR_AE = "OPENIGRT"


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[tuple[EmbeddedArchive, int]]:
    our_port = free_port()
    with EmbeddedArchive(tmp_path / "archive", ae_title="ARCHIVE", port=0) as arch:
        arch.import_paths([ECLIPSE])
        arch.add_destination(RemoteAE(OUR_AE, LOOPBACK, our_port))
        yield arch, our_port


def _common(archive: EmbeddedArchive, our_port: int, cache: Path) -> list[str]:
    return ["--remote", f"ARCHIVE@{LOOPBACK}:{archive.port}", "--ae-title", OUR_AE, "--port", str(our_port),
            "--cache", str(cache), "--set", "local.bind_address=127.0.0.1", "--json"]


def test_openigrt_find_by_sop_instance_uid_only(archive: tuple[EmbeddedArchive, int], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    arch, port = archive
    assert main(["find", "--sop-instance-uid", ECLIPSE_RS, *_common(arch, port, tmp_path / "c")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert ECLIPSE_STUDY in json.dumps(out)
    assert main(["find", "--sop-instance-uid", "1.2.3.4.5", *_common(arch, port, tmp_path / "c")]) == 1


@pytest.mark.parametrize("batch", [False, True])
def test_openigrt_move_into_its_cache(archive: tuple[EmbeddedArchive, int], tmp_path: Path, batch: bool,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    arch, port = archive
    cache = tmp_path / "c"
    args = ["move", *_common(arch, port, cache), "--study-uid", ECLIPSE_STUDY]
    for uid in (ECLIPSE_RP, ECLIPSE_RS, ECLIPSE_RI):
        args += ["--sop-instance-uid", uid]
    if batch:
        args.append("--batch")  # one C-MOVE with the list of UIDs
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    cached = {p.stem for p in cache.rglob("*.dcm")}
    assert {ECLIPSE_RP, ECLIPSE_RS, ECLIPSE_RI} <= cached
