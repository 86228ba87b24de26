"""A whole fraction over DICOMweb against Orthanc's DICOMweb plugin (issue 10 part 2, Must show).

The phantom patient is in Orthanc (uploaded through its REST API); ``openigrt session --remote
dicomweb+http://127.0.0.1:PORT/dicom-web`` loads it by plan UID over QIDO-RS / WADO-RS, is killed
(SIGKILL) in the middle of the CT load, and is run again: the instances cached before the kill are
reused (LOAD-3: not fetched again), the fraction completes (validate, virtual acquisition, 2D/2D
and 3D/3D matches, accept) and the REG, RT Images, isocenter RT Structure Set and CBCT slices are
stored by STOW-RS, each once. The stored REG is then found by QIDO-RS and retrieved by WADO-RS
with the very data set bytes we created; a third run sends nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openigrt.config import load_settings
from openigrt.net.cache import InstanceCache
from openigrt.net.dicomweb.client import DicomWebClient
from openigrt.workflow.phantom import write_phantom_patient
from tests.conftest import require_peer
from tests.net.data import dataset_bytes, read_file, same_elements
from tests.peers import ORTHANC_BIN, ORTHANC_DICOMWEB_PLUGIN, Peer, openigrt_argv, orthanc_rest, peer_env, start_orthanc

SESSION_TIMEOUT_S = 420
KILL_AFTER_CACHED = 8  # plan, structure set and 6 of the 40 CT slices


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_phantom_patient(tmp_path_factory.mktemp("phantom"), settings=load_settings(), seed=5, small=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, patient: Any) -> Iterator[Peer]:
    require_peer(ORTHANC_BIN)
    require_peer(ORTHANC_DICOMWEB_PLUGIN)
    with start_orthanc(tmp_path_factory.mktemp("orthanc"), plugins=[ORTHANC_DICOMWEB_PLUGIN]) as peer:
        for f in sorted(patient.dicom_dir.rglob("*.dcm")):
            orthanc_rest(peer, "POST", "/instances", f.read_bytes())
        yield peer


def _instances(peer: Peer) -> set[str]:
    found = orthanc_rest(peer, "POST", "/tools/find", {"Level": "Instance", "Query": {}, "Expand": True})
    return {i["MainDicomTags"]["SOPInstanceUID"] for i in found}


def _cached(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (cache / "instances").rglob("*.dcm")}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(openigrt_argv(*args), capture_output=True, text=True, timeout=SESSION_TIMEOUT_S,
                          env=peer_env(), stdin=subprocess.DEVNULL)


def _kill_during_load(args: list[str], cache: Path) -> dict[Path, int]:
    proc = subprocess.Popen(openigrt_argv(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=peer_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SESSION_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if (cache / "instances").is_dir() and len(_cached(cache)) >= KILL_AFTER_CACHED:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"session ended ({proc.returncode}) before it was killed:\n{proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # what the index holds (a file renamed into place but not yet indexed when the kill came is
    # not in the cache: the resumed load fetches it again and replaces it atomically)
    with InstanceCache(cache) as indexed:
        return {row.path: row.path.stat().st_mtime_ns for row in indexed}


@pytest.mark.slow
def test_session_over_dicomweb_killed_while_loading_resumes_and_stores_each_object_once(
        orthanc: Peer, patient: Any, tmp_path: Path) -> None:
    plan_uid = str(patient.truth["uids"]["plan_uid"])
    cache, workdir = tmp_path / "cache", tmp_path / "session"
    args = ["session", "--plan-uid", plan_uid, "--workdir", str(workdir), "--cache", str(cache),
            "--remote", "dicomweb+" + orthanc.extra["dicomweb"], "--set", "remote.timeout=30",
            "--decision", "accept", "--json", "--match", "2d2d", "--match", "3d3d", "-v"]
    before = _instances(orthanc)
    total = len(list(patient.dicom_dir.rglob("*.dcm")))

    at_kill = _kill_during_load(args, cache)
    assert 2 <= len(at_kill) < total, "the kill did not land in the middle of the load"
    assert _instances(orthanc) == before  # killed while loading: nothing stored

    cp = _run(args)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    assert "Traceback" not in cp.stderr
    doc = json.loads(cp.stdout)
    assert doc["closed"] is True and {m["match"] for m in doc["matches"]} == {"2d2d", "3d3d"}
    assert f"({total - len(at_kill)} retrieved, {len(at_kill)} from the cache)" in cp.stderr  # LOAD-3
    after = _cached(cache)
    assert all(after.get(p) == t for p, t in at_kill.items()), "an instance cached before the kill was fetched again"
    assert not list(cache.rglob("*.tmp")), "a partial file survived the kill"

    state = json.loads((workdir / "session.json").read_text())
    stored = [c for c in state["created"] if c["stored"]]
    uids = [c["sop_instance_uid"] for c in stored]
    assert len(uids) == len(set(uids)) and set(uids) <= _instances(orthanc) - before
    assert {c["kind"] for c in stored} >= {"REG", "RTIMAGE", "RTSTRUCT-ISO", "CT"}
    assert sorted(c["match_id"] for c in stored if c["kind"] == "REG") == ["2d2d", "3d3d"]
    assert all(c["store_status"] == "0x0000" for c in stored)

    _reg_found_by_qido_and_retrieved_intact(orthanc, stored, tmp_path)

    stamps = {c["sop_instance_uid"]: c["stored_at"] for c in stored}
    again = _run(args)  # a third run has nothing left to send
    assert again.returncode == 0, again.stderr[-2000:]
    final = json.loads((workdir / "session.json").read_text())
    assert {c["sop_instance_uid"]: c["stored_at"] for c in final["created"] if c["stored"]} == stamps


def _reg_found_by_qido_and_retrieved_intact(orthanc: Peer, stored: list[dict[str, Any]], tmp_path: Path) -> None:
    settings = load_settings(None, {"remote": "dicomweb+" + orthanc.extra["dicomweb"],
                                    "paths.cache_dir": str(tmp_path / "fresh-cache")})
    with DicomWebClient(settings) as client:
        for reg in (c for c in stored if c["kind"] == "REG"):
            created = Path(reg["path"])
            found = client.locate(reg["sop_instance_uid"])  # QIDO-RS, parents unknown
            assert found.found, found.message
            ds = read_file(created)
            assert (found.matches[0].study_instance_uid, found.matches[0].series_instance_uid) == (
                ds.StudyInstanceUID, ds.SeriesInstanceUID)
            report = client.retrieve([reg["sop_instance_uid"]], study_instance_uid=found.matches[0].study_instance_uid,
                                     series_instance_uid=found.matches[0].series_instance_uid)  # WADO-RS
            assert report.ok, report.failure_text()
            back = Path(report.results[0].path)
            assert dataset_bytes(back) == dataset_bytes(created)  # the very bytes we created
            assert same_elements(read_file(back), ds) == []
            refs = [r.ReferencedSOPInstanceUID for item in ds.RegistrationSequence for r in item.ReferencedImageSequence]
            assert refs and all(client.locate(u).found for u in refs), "a REG references an image Orthanc lacks"
