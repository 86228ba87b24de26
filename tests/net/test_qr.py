"""Q/R SCU: C-FIND / C-MOVE at IMAGE level by SOP Instance UID (NET-3 … NET-6).

Against DCMTK dcmqrscp (strictly hierarchical: exercises the fallback), Orthanc, and a scripted
pynetdicom Q/R SCP (refusals, timeouts, identifier keys). Moved instances arrive in our
in-process Storage SCP and are checked in the cache.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.cli import main
from openigrt.config import Settings
from openigrt.errors import DimseTimeout, RetrieveError
from openigrt.net.client import DicomClient
from openigrt.net.qr import MoveOutcome
from openigrt.net.scp import StorageSCP
from tests.net.data import CT, MR, REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTPLAN, REAL_RTSTRUCT, dataset_bytes, make_instance, same_elements, write_part10
from tests.net.scripted import ScriptedQRSCP
from tests.peers import Peer, free_port, orthanc_rest, storescu

LOADED = (REAL_CT, REAL_CT2, REAL_RTSTRUCT, REAL_RTPLAN, REAL_RTIMAGE)
CT_UID = "2.16.840.1.114362.1.11940992.23790159890.563423471.893.87"
CT_STUDY = "1.2.840.113619.2.405.3.84541899.902.1605198123.910"
CT_SERIES = "2.16.840.1.114362.1.11940992.23790159890.563423471.893.88"
PLAN_UID = "1.2.246.352.71.5.2088656855.377401.20110920153647"
STRUCT_UID = "1.2.246.352.71.4.2088656855.2404649.20110920153449"
RTIMAGE_UID = "1.3.46.423632.132218.1438566266.11"


def _uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.fixture
def qr_setup(dcmqrscp_factory, node_settings, tmp_path: Path) -> tuple[Peer, Settings]:
    """dcmqrscp filled with the real files; settings of our node with it as the TMS."""
    port = free_port()
    mr = write_part10(make_instance(MR, modality="MR", study=CT_STUDY, series=CT_SERIES, uid="1.2.3.99.1"),
                      tmp_path / "mr.dcm")
    qr = dcmqrscp_factory(move_destinations={"OPENIGRT": ("127.0.0.1", port)})
    storescu(qr.ae_title, qr.port, [*LOADED, mr])
    return qr, node_settings(remote=qr.remote, local__port=port)


# --------------------------------------------------------------------------- dcmqrscp
def test_find_on_dcmqrscp(qr_setup) -> None:
    _qr, settings = qr_setup
    client = DicomClient(settings)
    r = client.find(CT_UID)  # SOP only, Study/Series as return keys
    assert r.found and r.matches[0].study_instance_uid == CT_STUDY and r.matches[0].series_instance_uid == CT_SERIES
    r2 = client.find(CT_UID, study_instance_uid=CT_STUDY, series_instance_uid=CT_SERIES)
    assert r2.found and not r2.fallback_used
    missing = client.find("1.2.3.4.5.6.7")
    assert not missing.found and "no match" in missing.message
    with pytest.raises(RetrieveError, match="object not found: 1.2.3.4.5.6.7"):
        missing.raise_for_status()


def test_move_sop_only_uses_hierarchical_fallback_on_dcmqrscp(qr_setup) -> None:
    _qr, settings = qr_setup
    report = DicomClient(settings).move([CT_UID, PLAN_UID, STRUCT_UID, RTIMAGE_UID])
    assert report.ok, report.as_dict()
    for r in report.results:
        # dcmqrscp answers a SOP-only IMAGE C-MOVE with success and 0 sub-operations (docs/PEERS.md)
        assert r.outcome is MoveOutcome.RETRIEVED and r.fallback_used and r.completed == 1
    src = {_uid(p): p for p in LOADED}
    for uid, path in report.paths.items():  # dcmqrscp re-encodes what it stores: compare the elements
        assert same_elements(dcmread(src[uid]), dcmread(path)) == []


def test_move_with_known_parents_and_batch(qr_setup) -> None:
    _qr, settings = qr_setup
    client = DicomClient(settings)
    one = client.move([CT_UID], study_instance_uid=CT_STUDY, series_instance_uid=CT_SERIES)
    assert one.ok and not one.results[0].fallback_used
    both = client.move([CT_UID, _uid(REAL_CT2)], study_instance_uid=CT_STUDY, series_instance_uid=CT_SERIES, batch=True)
    assert both.ok and [r.completed for r in both.results] == [2, 2]  # one C-MOVE for both


def test_move_missing_instance_fails_clearly(qr_setup) -> None:
    _qr, settings = qr_setup
    report = DicomClient(settings).move(["1.2.3.4.5.6.7", CT_UID])
    assert [r.outcome for r in report.results] == [MoveOutcome.FAILED, MoveOutcome.RETRIEVED]
    assert "nothing retrieved" in report.results[0].message
    with pytest.raises(RetrieveError, match="1.2.3.4.5.6.7"):
        report.raise_for_status()


def test_move_some_suboperations_failed_b000(qr_setup) -> None:
    """Our SCP refuses MR at negotiation: dcmqrscp reports the failed sub-operation (NET-6 B000)."""
    _qr, settings = qr_setup
    report = DicomClient(settings).move([CT_UID, "1.2.3.99.1"], study_instance_uid=CT_STUDY,
                                        series_instance_uid=CT_SERIES, batch=True)
    ct, mr = report.results
    assert ct.status == 0xB000 and ct.outcome is MoveOutcome.WARNING and ct.failed == 1 and ct.path
    assert mr.outcome is MoveOutcome.FAILED and not mr.path
    assert not report.ok


def test_move_destination_unknown(dcmqrscp_factory, node_settings) -> None:
    qr = dcmqrscp_factory(move_destinations={})
    storescu(qr.ae_title, qr.port, [REAL_CT])
    report = DicomClient(node_settings(remote=qr.remote)).move([CT_UID], study_instance_uid=CT_STUDY,
                                                               series_instance_uid=CT_SERIES)
    r = report.results[0]
    assert r.outcome is MoveOutcome.FAILED and r.status == 0xA801
    assert "Move destination unknown" in r.message and "move destination on the provider" in r.message


def test_cli_find_and_move_json(qr_setup, capsys) -> None:
    qr, settings = qr_setup
    common = ["--remote", qr.remote, "--ae-title", "OPENIGRT", "--port", str(settings.local.port),
              "--cache", str(settings.cache_dir), "--set", "local.bind_address=127.0.0.1"]
    assert main(["find", *common, "--sop-instance-uid", PLAN_UID, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["found"] and out["matches"][0]["sop_instance_uid"] == PLAN_UID
    assert main(["find", *common, "--sop-instance-uid", "1.2.3.4.5"]) == 1
    assert "object not found" in capsys.readouterr().err
    assert main(["move", *common, "--sop-instance-uid", PLAN_UID, "--sop-instance-uid", STRUCT_UID, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and all(Path(r["path"]).exists() for r in out["results"])
    assert main(["move", *common, "--sop-instance-uid", "1.2.3.4.5"]) == 1
    cap = capsys.readouterr()
    assert "error:" in cap.err and "Traceback" not in cap.err


def test_move_into_running_listener_no_listen(qr_setup) -> None:
    _qr, settings = qr_setup
    with StorageSCP(settings):  # e.g. `openigrt listen` on the same cache
        report = DicomClient(settings).move([PLAN_UID], listen=False)
    assert report.ok


def test_move_port_busy_is_a_clear_error(qr_setup) -> None:
    _qr, settings = qr_setup
    with StorageSCP(settings):
        report = DicomClient(settings).move([PLAN_UID])  # tries to start a second SCP on the same port
    assert not report.ok and "cannot listen on 127.0.0.1" in report.error
    assert report.results[0].outcome is MoveOutcome.NOT_TRIED


# --------------------------------------------------------------------------- scripted Q/R SCP
@pytest.fixture
def scripted_qr(node_settings, tmp_path: Path):
    port = free_port()
    study, series = "1.2.826.0.1.3680043.10.1", "1.2.826.0.1.3680043.10.1.1"
    instances = []
    for i in range(3):
        ds = make_instance(CT, study=study, series=series if i < 2 else series + ".2", seed=i)
        write_part10(ds, tmp_path / "qr" / f"{i}.dcm")
        instances.append(ds)
    peer = ScriptedQRSCP(instances=instances, destinations={"OPENIGRT": ("127.0.0.1", port)}).start()
    yield peer, node_settings(remote=peer.remote, local__port=port), instances
    peer.stop()


def test_strict_provider_hierarchical_search(scripted_qr) -> None:
    peer, settings, instances = scripted_qr
    target = instances[2]
    client = DicomClient(settings)
    r = client.find(target.SOPInstanceUID)
    assert r.found and r.fallback_used and r.matches[0].series_instance_uid == target.SeriesInstanceUID
    levels = [ident.QueryRetrieveLevel for ident in peer.requests]
    assert levels[:3] == ["IMAGE", "STUDY", "SERIES"] and levels[-1] == "IMAGE"
    peer.requests.clear()
    m = client.move([target.SOPInstanceUID])
    assert m.ok and m.results[0].fallback_used
    assert dataset_bytes(Path(m.results[0].path))[1]  # cached


def test_identifiers_have_exactly_the_net3_keys(scripted_qr) -> None:
    peer, settings, instances = scripted_qr
    DicomClient(settings).find(instances[0].SOPInstanceUID, study_instance_uid=instances[0].StudyInstanceUID,
                               series_instance_uid=instances[0].SeriesInstanceUID)
    DicomClient(settings).move([instances[0].SOPInstanceUID])
    for ident in peer.requests:
        keys = {e.keyword for e in ident}
        assert "SpecificCharacterSet" not in keys
        if ident.QueryRetrieveLevel == "IMAGE":
            assert keys <= {"QueryRetrieveLevel", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"}
            assert "SOPInstanceUID" in keys
    first_move = next(i for i in peer.requests if "StudyInstanceUID" not in i)  # move, parents unknown: not sent
    assert first_move.SOPInstanceUID == instances[0].SOPInstanceUID


def test_find_timeout_is_reported(scripted_qr, capsys) -> None:
    peer, settings, instances = scripted_qr
    peer.find_delay = 3.0
    slow = replace(settings, network=replace(settings.network, dimse_timeout=1.0))
    t0 = time.monotonic()
    with pytest.raises(DimseTimeout, match="no C-FIND .* within the DIMSE timeout of 1 s"):
        DicomClient(slow).find(instances[0].SOPInstanceUID)
    assert time.monotonic() - t0 < 9


def test_move_timeout_rest_not_tried(scripted_qr) -> None:
    peer, settings, instances = scripted_qr
    peer.move_delay = 3.0
    slow = replace(settings, network=replace(settings.network, dimse_timeout=1.0))
    report = DicomClient(slow).move([i.SOPInstanceUID for i in instances],
                                    study_instance_uid=instances[0].StudyInstanceUID)
    assert [r.outcome for r in report.results] == [MoveOutcome.NOT_TRIED] * 3
    assert "no C-MOVE response" in report.error and not report.ok


def test_move_failure_statuses(scripted_qr) -> None:
    peer, settings, instances = scripted_qr
    uid = instances[0].SOPInstanceUID
    for code in (0xA701, 0xA702, 0xA900, 0xC123, 0xFE00):
        peer.move_status = code
        r = DicomClient(settings).move([uid], study_instance_uid=instances[0].StudyInstanceUID,
                                       series_instance_uid=instances[0].SeriesInstanceUID).results[0]
        assert r.outcome is MoveOutcome.FAILED and r.status == code and "C-MOVE failed" in r.message


def test_scripted_unknown_destination_a801(scripted_qr) -> None:
    peer, settings, instances = scripted_qr
    peer.destinations.clear()
    r = DicomClient(settings).move([instances[0].SOPInstanceUID]).results[0]
    assert r.status == 0xA801 and r.outcome is MoveOutcome.FAILED


# --------------------------------------------------------------------------- Orthanc
@pytest.fixture
def orthanc_setup(orthanc_factory, node_settings):
    port = free_port()
    orthanc = orthanc_factory(modalities={"openigrt": ("OPENIGRT", "127.0.0.1", port)})
    return orthanc, node_settings(remote=orthanc.remote, local__port=port)


@pytest.mark.slow
def test_store_find_move_with_orthanc(orthanc_setup) -> None:
    orthanc, settings = orthanc_setup
    client = DicomClient(settings)
    assert client.echo() > 0
    report = client.store([REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE])
    assert report.ok, report.as_dict()
    assert len(orthanc_rest(orthanc, "GET", "/instances")) == 3
    found = client.find(STRUCT_UID)
    assert found.found and not found.fallback_used  # Orthanc matches SOP-only IMAGE queries
    moved = client.move([CT_UID, STRUCT_UID, RTIMAGE_UID])
    assert moved.ok and all(not r.fallback_used for r in moved.results)
    for src in (REAL_CT, REAL_RTSTRUCT, REAL_RTIMAGE):
        path = Path(moved.paths[_uid(src)])
        assert dcmread(path).SOPInstanceUID == _uid(src)
    batch = client.move([CT_UID, STRUCT_UID], batch=True)
    assert batch.ok and batch.results[0].completed == 2


@pytest.mark.slow
def test_orthanc_unreachable_destination_reported(orthanc_factory, node_settings) -> None:
    """Orthanc knows our AE title but at a port where nobody listens: the move fails, clearly."""
    wrong_port = free_port()
    orthanc = orthanc_factory(modalities={"openigrt": ("OPENIGRT", "127.0.0.1", wrong_port)})
    settings = node_settings(remote=orthanc.remote)
    assert DicomClient(settings).store([REAL_CT]).ok
    report = DicomClient(settings).move([CT_UID], listen=True)  # our SCP listens on settings.local.port, not wrong_port
    r = report.results[0]
    assert r.outcome is MoveOutcome.FAILED and r.status is not None and r.status != 0
    assert "C-MOVE failed" in r.message or "nothing retrieved" in r.message
    assert not Path(settings.cache_dir / "instances").exists() or not list((settings.cache_dir / "instances").rglob("*.dcm"))


@pytest.mark.slow
def test_orthanc_stores_into_our_scp(orthanc_setup) -> None:
    orthanc, settings = orthanc_setup
    assert DicomClient(settings).store([REAL_CT, REAL_RTSTRUCT]).ok
    ids = orthanc_rest(orthanc, "GET", "/instances")
    received = []
    with StorageSCP(settings, on_received=received.append) as scp:
        job = orthanc_rest(orthanc, "POST", "/modalities/openigrt/store", {"Resources": ids, "Synchronous": True})
        assert job.get("FailedInstancesCount", 0) == 0, job
        assert {r.instance.sop_instance_uid for r in received} == {CT_UID, STRUCT_UID}
        assert {r.calling_ae_title for r in received} == {orthanc.ae_title}
        assert scp.cache.get(STRUCT_UID) is not None
