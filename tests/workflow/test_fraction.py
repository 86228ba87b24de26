"""A whole fraction against real archives (issue "A whole treatment fraction").

* ``openigrt demo --match all`` passes and its couch corrections hold the ground truth;
* a session killed (SIGKILL) after acquisition resumes, loses nothing and stores each object once;
* a CT slice missing from the TMS, a TMS refusing the association, and a plan failing its
  preconditions each end with one clear message, a non-zero exit and nothing stored;
* Orthanc end to end: the phantom in Orthanc, loaded by plan UID with per-image C-MOVEs, matched,
  stored; Orthanc then holds the REG (whose referenced images exist in Orthanc), the structure sets
  (the marker set's private reference points at the original), RT Images with curves and the CT;
  and the same over DICOM TLS (issue 10).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from openigrt.archive.server import EmbeddedArchive
from openigrt.config import RemoteAE, load_settings
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.workflow.phantom import write_phantom_patient
from tests.peers import free_port, openigrt_argv, orthanc_rest, peer_env, start_orthanc, storescu

OUR_AE = "OPENIGRT"
ARCHIVE_AE = "TMS_ARCHIVE"
SESSION_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The full-size phantom patient (the accuracy targets are defined on it)."""
    out = tmp_path_factory.mktemp("phantom")
    return write_phantom_patient(out, settings=load_settings(), seed=5)


class Tms:
    """An embedded archive holding (a copy of) the phantom, knowing our node as move destination."""

    def __init__(self, root: Path, dicom_dir: Path) -> None:
        self.root = root
        self.our_port = free_port()
        self.archive = EmbeddedArchive(root / "archive", ae_title=ARCHIVE_AE, port=0, bind_address="127.0.0.1")
        self.archive.start()
        self.archive.import_paths([dicom_dir])
        self.archive.add_destination(RemoteAE(OUR_AE, "127.0.0.1", self.our_port))

    def uids(self) -> set[str]:
        return {str(ds.SOPInstanceUID) for ds in self.archive.query("IMAGE", SOPInstanceUID="")}

    def session_args(self, workdir: Path, plan_uid: str, *extra: str, remote_ae: str = ARCHIVE_AE) -> list[str]:
        return ["session", "--plan-uid", plan_uid, "--workdir", str(workdir), "--ae-title", OUR_AE,
                "--port", str(self.our_port), "--cache", str(self.root / "cache"),
                "--remote", f"{remote_ae}@127.0.0.1:{self.archive.port}", "--set", "local.bind_address=127.0.0.1",
                "--set", "network.dimse_timeout=30", "--set", "network.acse_timeout=30", "--decision", "accept",
                "--json", *extra]

    def stop(self) -> None:
        self.archive.stop()


@pytest.fixture
def tms(tmp_path: Path, phantom: Any) -> Iterator[Tms]:
    t = Tms(tmp_path, phantom.dicom_dir)
    yield t
    t.stop()


def run_cli(args: list[str], *, timeout: float = SESSION_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(openigrt_argv(*args), capture_output=True, text=True, timeout=timeout, env=peer_env(),
                          stdin=subprocess.DEVNULL)


def _plan_uid(phantom: Any) -> str:
    return str(phantom.truth["uids"]["plan_uid"])


# ----------------------------------------------------------------------------- the demo
@pytest.mark.slow
def test_demo_all_matches_hold_the_ground_truth(tmp_path: Path) -> None:
    cp = run_cli(["demo", "--workdir", str(tmp_path / "demo"), "--match", "all", "--seed", "1", "--json"], timeout=600)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    doc = json.loads(cp.stdout)
    assert doc["ok"] is True
    assert {r["match"] for r in doc["matches"]} == {"2d", "2d2d", "marker", "3d3d"}
    names = {c["name"]: c for c in doc["checks"]}
    for m in ("2d", "2d2d", "marker", "3d3d"):
        assert names[f"{m} accuracy"]["ok"], names[f"{m} accuracy"]
    assert names["stored objects found in the archive"]["ok"]
    assert all(r["stored"] and r["decision"] == "accepted" for r in doc["matches"])
    review = tmp_path / "demo" / "session" / "review"
    assert (review / "index.html").is_file() and len(list(review.glob("*.png"))) == 4
    steps = {t["step"]: t for t in doc["timings"]}  # issue 11: the per-step timing table
    assert {"load", "validate", "acquire", "match 3d3d", "review picture marker", "close (store)"} <= set(steps)
    assert steps["fraction"]["wall_s"] >= steps["match"]["wall_s"] > steps["match 3d3d"]["wall_s"] > 0


# ----------------------------------------------------------------------------- kill and resume
def _wait_for(path: Path, predicate: Any, proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                doc = None
            if doc is not None and predicate(doc):
                return doc
        if proc.poll() is not None:
            raise AssertionError(f"session ended ({proc.returncode}) before the expected state:\n"
                                 + (proc.stdout.read() if proc.stdout else "")
                                 + (proc.stderr.read() if proc.stderr else ""))
        time.sleep(0.05)
    raise AssertionError(f"state not reached within {timeout} s")


KILL_POINTS = {
    "after acquisition": lambda d: len(d["acquisitions"]) == 2,
    "after the first match": lambda d: len(d["matches"]) == 1,
}


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_killed_after_acquisition_resumes_and_stores_each_object_once(tms: Tms, phantom: Any, tmp_path: Path,
                                                                      kill_point: str) -> None:
    workdir = tmp_path / "session"
    before = tms.uids()
    args = tms.session_args(workdir, _plan_uid(phantom), "--match", "2d2d", "--match", "3d3d")
    proc = subprocess.Popen(openigrt_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=peer_env(), stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        state = _wait_for(workdir / "session.json", KILL_POINTS[kill_point], proc, SESSION_TIMEOUT_S)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    acquired = {a["acquisition_id"]: a["files"] for a in state["acquisitions"]}
    mtimes = {f: Path(f).stat().st_mtime_ns for files in acquired.values() for f in files}
    assert tms.uids() == before  # killed before the close: nothing stored yet

    cp = run_cli(args)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    doc = json.loads(cp.stdout)
    assert doc["closed"] is True
    resumed = json.loads((workdir / "session.json").read_text())
    assert {a["acquisition_id"]: a["files"] for a in resumed["acquisitions"]} == acquired  # not re-acquired
    assert all(Path(f).stat().st_mtime_ns == t for f, t in mtimes.items())
    stored = [c for c in resumed["created"] if c["stored"]]
    stored_uids = [c["sop_instance_uid"] for c in stored]
    assert len(stored_uids) == len(set(stored_uids))
    assert set(stored_uids) <= tms.uids() - before
    assert {c["kind"] for c in stored} >= {"REG", "CT", "RTIMAGE", "RTSTRUCT-ISO"}
    assert sorted(c["match_id"] for c in stored if c["kind"] == "REG") == ["2d2d", "3d3d"]
    stamps = {c["sop_instance_uid"]: c["stored_at"] for c in stored}

    again = run_cli(args)  # a third run has nothing left to send
    assert again.returncode == 0, again.stderr[-2000:]
    final = json.loads((workdir / "session.json").read_text())
    assert {c["sop_instance_uid"]: c["stored_at"] for c in final["created"] if c["stored"]} == stamps


# ----------------------------------------------------------------------------- clean failures
def _one_error_line(cp: subprocess.CompletedProcess) -> str:
    assert cp.returncode == 1, cp.stdout[-2000:] + cp.stderr[-2000:]
    assert "Traceback" not in cp.stderr
    errors = [line for line in cp.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, cp.stderr[-3000:]
    return errors[0]


def test_missing_ct_slice_fails_naming_it_and_stores_nothing(tmp_path: Path, phantom: Any) -> None:
    dicom = tmp_path / "dicom"
    shutil.copytree(phantom.dicom_dir, dicom)
    victim = sorted((dicom / "CT").iterdir())[7]
    missing_uid = str(dcmread(victim, stop_before_pixels=True).SOPInstanceUID)
    victim.unlink()
    t = Tms(tmp_path, dicom)
    try:
        before = t.uids()
        line = _one_error_line(run_cli(t.session_args(tmp_path / "s", _plan_uid(phantom), "--match", "3d3d")))
        assert missing_uid in line and "CT image" in line
        assert t.uids() == before
    finally:
        t.stop()


def test_tms_refusing_the_association_is_one_clear_message(tms: Tms, phantom: Any, tmp_path: Path) -> None:
    before = tms.uids()
    line = _one_error_line(run_cli(tms.session_args(tmp_path / "s", _plan_uid(phantom), "--match", "2d",
                                                    remote_ae="WRONG_AE")))
    assert "C-ECHO" in line and "WRONG_AE" in line and "reject" in line.lower()
    assert tms.uids() == before


def test_plan_failing_its_preconditions_stores_nothing(tmp_path: Path, phantom: Any) -> None:
    dicom = tmp_path / "dicom"
    shutil.copytree(phantom.dicom_dir, dicom)
    plan = dcmread(dicom / "RP_PHANTOM.dcm")
    for beam in plan.BeamSequence:  # the kV pair is no longer orthogonal (PLAN-8)
        if int(beam.BeamNumber) == 12:
            for cp in beam.ControlPointSequence:
                if "GantryAngle" in cp:
                    cp.GantryAngle = 45.0
    plan.save_as(dicom / "RP_PHANTOM.dcm")
    t = Tms(tmp_path, dicom)
    try:
        before = t.uids()
        line = _one_error_line(run_cli(t.session_args(tmp_path / "s", _plan_uid(phantom), "--match", "2d2d")))
        assert "PLAN-8" in line or "PLAN-7" in line
        assert t.uids() == before
    finally:
        t.stop()


# ----------------------------------------------------------------------------- Orthanc end to end
def _orthanc_instance(peer: Any, sop_uid: str) -> str | None:
    found = orthanc_rest(peer, "POST", "/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}})
    return found[0] if found else None


@pytest.mark.slow
def test_orthanc_end_to_end(tmp_path: Path, phantom: Any) -> None:
    if not shutil.which("Orthanc") and not Path("/usr/sbin/Orthanc").exists():
        pytest.skip("Orthanc is not installed (make peers)")
    our_port = free_port()
    with start_orthanc(tmp_path / "orthanc", modalities={"openigrt": (OUR_AE, "127.0.0.1", our_port),
                                                          "storescu": ("STORESCU", "127.0.0.1", 104)}) as orthanc:
        storescu(orthanc.ae_title, orthanc.port, sorted(phantom.dicom_dir.rglob("*.dcm")), timeout=120)
        args = ["session", "--plan-uid", _plan_uid(phantom), "--workdir", str(tmp_path / "s"), "--ae-title", OUR_AE,
                "--port", str(our_port), "--cache", str(tmp_path / "cache"),
                "--remote", f"{orthanc.ae_title}@127.0.0.1:{orthanc.port}", "--set", "local.bind_address=127.0.0.1",
                "--decision", "accept", "--json", "--match", "2d2d", "--match", "marker", "--match", "3d3d"]
        cp = run_cli(args)
        assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
        state = json.loads((tmp_path / "s" / "session.json").read_text())
        stored = [c for c in state["created"] if c["stored"]]
        kinds = {c["kind"] for c in stored}
        assert kinds >= {"REG", "RTSTRUCT-ISO", "RTSTRUCT-MARKER", "RTIMAGE-CURVES", "CT"}
        for c in stored:
            assert _orthanc_instance(orthanc, c["sop_instance_uid"]), f"{c['kind']} {c['sop_instance_uid']} not in Orthanc"
        for c in (c for c in stored if c["kind"] == "REG"):
            reg = dcmread(c["path"])
            refs = [r.ReferencedSOPInstanceUID for item in reg.RegistrationSequence
                    for r in item.ReferencedImageSequence]
            assert refs and all(_orthanc_instance(orthanc, u) for u in refs), "a REG references a missing image"
        marker_rs = next(c for c in stored if c["kind"] == "RTSTRUCT-MARKER")
        oid = _orthanc_instance(orthanc, marker_rs["sop_instance_uid"])
        fetched = tmp_path / "marker_rs.dcm"
        with urllib.request.urlopen(f"http://127.0.0.1:{orthanc.http_port}/instances/{oid}/file", timeout=30) as rsp:
            fetched.write_bytes(rsp.read())
        rs = RTStructureSet.from_dataset(dcmread(fetched))
        original = str(phantom.truth["uids"]["structure_set_uid"])
        assert [(r.sop_instance_uid, r.structure_set_relationship) for r in rs.referenced_structure_sets] == [
            (original, "ADDITION")]


def test_session_over_dicom_tls_with_orthanc(tmp_path: Path, phantom: Any, pki: Any) -> None:
    """Issue 10: a whole session with Orthanc's DICOM port TLS-only (DicomTlsEnabled) and its C-MOVE back to
    our SCP over TLS ("UseDicomTls"): load, match, store all over mutual TLS (nothing else can connect)."""
    if not Path("/usr/sbin/Orthanc").exists():
        pytest.skip("Orthanc is not installed (make peers)")
    our_port = free_port()
    config = {"DicomTlsEnabled": True, "DicomTlsCertificate": str(pki.server), "DicomTlsPrivateKey": str(pki.server_key),
              "DicomTlsTrustedCertificates": str(pki.ca), "DicomTlsRemoteCertificateRequired": True,
              "DicomModalities": {"openigrt": {"AET": OUR_AE, "Host": "127.0.0.1", "Port": our_port, "UseDicomTls": True},
                                  "storescu": {"AET": "STORESCU", "Host": "127.0.0.1", "Port": 104, "UseDicomTls": True}}}
    with start_orthanc(tmp_path / "orthanc", extra_config=config) as orthanc:
        storescu(orthanc.ae_title, orthanc.port, sorted(phantom.dicom_dir.rglob("*.dcm")), timeout=120,
                 extra_args=pki.dcmtk())
        args = ["session", "--plan-uid", _plan_uid(phantom), "--workdir", str(tmp_path / "s"), "--ae-title", OUR_AE,
                "--port", str(our_port), "--cache", str(tmp_path / "cache"),
                "--remote", f"{orthanc.ae_title}@127.0.0.1:{orthanc.port}", "--set", "local.bind_address=127.0.0.1",
                "--decision", "accept", "--json", "--match", "2d2d", *pki.cli(cert="server", key="server")]
        cp = run_cli(args)
        assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
        state = json.loads((tmp_path / "s" / "session.json").read_text())
        stored = [c for c in state["created"] if c["stored"]]
        assert "REG" in {c["kind"] for c in stored}
        for c in stored:
            assert _orthanc_instance(orthanc, c["sop_instance_uid"]), f"{c['kind']} not in Orthanc"


# ----------------------------------------------------------------------------- MATCH-7 decisions
def test_adjusted_match_stores_the_adjusted_registration(tms: Tms, phantom: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "s"
    cp = run_cli(tms.session_args(workdir, _plan_uid(phantom), "--match", "2d2d", "--adjust", "1.5,0,-0.5"))
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    state = json.loads((workdir / "session.json").read_text())
    (record,) = state["matches"]
    assert record["decision"] == "accepted" and record["adjustment_mm"] == [1.5, 0.0, -0.5]
    result = record["result"]
    assert result["adjustment_mm"] == {"lat_mm": 1.5, "lng_mm": 0.0, "vrt_mm": -0.5}
    (reg,) = [c for c in state["created"] if c["kind"] == "REG"]
    assert reg["stored"] and reg["sop_instance_uid"] in tms.uids()
    stored = dcmread(reg["path"])
    matrices = [[float(v) for v in item.MatrixRegistrationSequence[0].MatrixSequence[0]
                 .FrameOfReferenceTransformationMatrix] for item in stored.RegistrationSequence]
    adjusted = [v for row in result["matrix"] for v in row]
    assert any(all(abs(a - b) < 1e-4 for a, b in zip(m, adjusted)) for m in matrices)
    assert "adjusted" in stored.ContentDescription


def test_rejected_match_stores_no_registration(tms: Tms, phantom: Any, tmp_path: Path) -> None:
    workdir = tmp_path / "s"
    args = tms.session_args(workdir, _plan_uid(phantom), "--match", "2d")
    args[args.index("--decision") + 1] = "reject"
    cp = run_cli(args)
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    state = json.loads((workdir / "session.json").read_text())
    assert [m["decision"] for m in state["matches"]] == ["rejected"]
    regs = [c for c in state["created"] if c["kind"] == "REG"]
    assert regs and not any(c["stored"] for c in regs)
    assert not {c["sop_instance_uid"] for c in regs} & tms.uids()
