"""DICOMweb against a real peer: Orthanc with its DICOMweb plugin (Debian orthanc-dicomweb) on loopback.

STOW-RS of real files with the per-instance report, QIDO-RS of each (with and without its
parents), WADO-RS back into a fresh cache — data set bytes identical to what we sent — instance by
instance and by series, and the CLI (`openigrt echo/store/find/move --remote dicomweb+http://…`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openigrt.cli import main
from openigrt.config import Settings
from openigrt.errors import HttpStatusError
from openigrt.net.dicomweb.client import DicomWebClient
from openigrt.net.header import read_header, split_part10
from openigrt.net.status import StoreOutcome
from tests.conftest import require_peer
from tests.net.data import REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTPLAN, REAL_RTSTRUCT, dataset_bytes, read_file, same_elements
from tests.peers import ORTHANC_BIN, ORTHANC_DICOMWEB_PLUGIN, Peer, orthanc_rest, start_orthanc

SENT = (REAL_CT, REAL_CT2, REAL_RTSTRUCT, REAL_RTIMAGE)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_peer(ORTHANC_BIN)
    require_peer(ORTHANC_DICOMWEB_PLUGIN)
    with start_orthanc(tmp_path_factory.mktemp("orthanc-dicomweb"), plugins=[ORTHANC_DICOMWEB_PLUGIN]) as peer:
        yield peer


def _header(path: Path) -> tuple[str, str, str]:
    data = path.read_bytes()
    split = split_part10(data)
    h = read_header(memoryview(data)[split.dataset_offset:], transfer_syntax_uid=split.transfer_syntax_uid)
    return h.sop_instance_uid, h.study_instance_uid, h.series_instance_uid


@pytest.fixture(scope="module")
def stored(orthanc: Peer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """STOW-RS the real files once (the RT Plan is refused before sending: not an SCU class, NET-1)."""
    from openigrt.config import load_settings

    settings = load_settings(None, {"remote": "dicomweb+" + orthanc.extra["dicomweb"],
                                    "paths.cache_dir": str(tmp_path_factory.mktemp("stow-cache"))})
    seen: list[tuple[int, int, str]] = []
    with DicomWebClient(settings) as client:
        report = client.store([*SENT, REAL_RTPLAN], progress=lambda d, t, r: seen.append((d, t, r.outcome.value)))
    outcomes = [r.outcome for r in report.results]
    assert outcomes == [StoreOutcome.SENT] * 4 + [StoreOutcome.FAILED], report.as_dict()
    assert [r.status for r in report.results[:4]] == [0] * 4
    assert "RT Plan Storage is not sent by our Storage SCU" in report.results[4].message
    assert [(d, t) for d, t, _ in seen] == [(i, 5) for i in range(1, 6)]  # progress per instance
    assert sorted(o for _, _, o in seen) == ["failed"] + ["sent"] * 4
    return {_header(p)[0]: p for p in SENT}


def test_stored_instances_are_in_orthanc(orthanc: Peer, stored: dict[str, Path]) -> None:
    for uid in stored:
        assert orthanc_rest(orthanc, "POST", "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": uid}})


def test_locate_and_retrieve_every_instance_unchanged(orthanc: Peer, stored: dict[str, Path],
                                                      node_settings: Callable[..., Settings]) -> None:
    with DicomWebClient(node_settings(remote="dicomweb+" + orthanc.extra["dicomweb"])) as client:
        assert client.echo() < 5.0
        for uid, path in stored.items():
            _, study, series = _header(path)
            for found in (client.locate(uid), client.locate(uid, study_instance_uid=study),
                          client.locate(uid, study_instance_uid=study, series_instance_uid=series)):
                assert found.found, found.message
                assert (found.matches[0].study_instance_uid, found.matches[0].series_instance_uid) == (study, series)
        assert not client.locate("1.2.3.4.5.6.7.8").found
        report = client.retrieve(list(stored))  # parents unknown: QIDO-RS first, then WADO-RS
        assert report.ok, report.failure_text()
        for r in report.results:
            original = stored[r.sop_instance_uid]
            assert dataset_bytes(Path(r.path)) == dataset_bytes(original), original.name
            assert same_elements(read_file(Path(r.path)), read_file(original)) == []
            assert client.cache.get(r.sop_instance_uid) is not None


def test_series_retrieve(orthanc: Peer, stored: dict[str, Path], node_settings: Callable[..., Settings]) -> None:
    cts = [u for u, p in stored.items() if p in (REAL_CT, REAL_CT2)]
    _, study, series = _header(REAL_CT)
    assert _header(REAL_CT2)[1:] == (study, series)
    with DicomWebClient(node_settings(remote="dicomweb+" + orthanc.extra["dicomweb"])) as client:
        report = client.retrieve(cts, study_instance_uid=study, series_instance_uid=series, batch=True)
        assert report.ok, report.failure_text()
        assert {dataset_bytes(Path(r.path)) for r in report.results} == {dataset_bytes(REAL_CT), dataset_bytes(REAL_CT2)}


def test_wrong_root_and_unknown_instance(orthanc: Peer, node_settings: Callable[..., Settings]) -> None:
    base = f"dicomweb+http://127.0.0.1:{orthanc.http_port}/not-dicom-web"
    with DicomWebClient(node_settings(remote=base)) as client, pytest.raises(HttpStatusError, match="HTTP 404"):
        client.echo()
    _, study, series = _header(REAL_CT)
    with DicomWebClient(node_settings(remote="dicomweb+" + orthanc.extra["dicomweb"])) as client:
        (r,) = client.retrieve(["1.2.3.4.5.6.7.8"], study_instance_uid=study, series_instance_uid=series).results
        assert r.outcome.value == "failed" and "HTTP 404" in r.message and "/instances/1.2.3.4.5.6.7.8" in r.message


def test_cli_over_dicomweb(orthanc: Peer, stored: dict[str, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    remote = ["--remote", "dicomweb+" + orthanc.extra["dicomweb"], "--cache", str(tmp_path / "cache")]
    assert main(["echo", *remote]) == 0
    assert "DICOMweb echo" in capsys.readouterr().out
    uid, study, series = _header(REAL_RTSTRUCT)
    assert main(["find", *remote, "--sop-instance-uid", uid, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["found"] and doc["matches"][0]["series_instance_uid"] == series
    assert main(["move", *remote, "--sop-instance-uid", uid, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and dataset_bytes(Path(doc["results"][0]["path"])) == dataset_bytes(REAL_RTSTRUCT)
    assert main(["store", *remote, str(REAL_RTIMAGE), "--json"]) == 0  # again: Orthanc accepts the same instance
    assert json.loads(capsys.readouterr().out)["results"][0]["outcome"] == "sent"
