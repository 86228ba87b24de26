"""ARCHIVE-1 against DCMTK clients: ``openigrt archive serve`` (subprocess) with storescu, findscu,
movescu and echoscu, moving into DCMTK storescp (all with TCP_NODELAY=1, every wait bounded)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.archive.conftest import (
    ARCHIVE_AE,
    Content,
    clear_received,
    findscu,
    movescu,
    received,
    start_archive_process,
)
from tests.archive.content import ECLIPSE, ECLIPSE_RI, ECLIPSE_RP, ECLIPSE_RS, ECLIPSE_STUDY
from tests.peers import LOOPBACK, Peer, dcmtk, run, storescu

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, content: Content, receiver: Peer) -> Iterator[Peer]:
    """The archive, filled through DCMTK storescu with both CT series and the Eclipse RT files."""
    work = tmp_path_factory.mktemp("archive")
    peer = start_archive_process(work, work / "dir", destinations=[f"STORESCP@{LOOPBACK}:{receiver.port}"])
    try:
        files = [*content.phantom.paths, *content.other.paths, *sorted(ECLIPSE.glob("*.dcm"))]
        storescu(ARCHIVE_AE, peer.port, files, calling_ae="STORESCU", timeout=120)
        yield peer
    finally:
        peer.stop()


@pytest.fixture()
def dest(receiver: Peer) -> Peer:
    clear_received(receiver)
    return receiver


def test_echoscu(archive: Peer) -> None:
    cp = run([dcmtk("echoscu"), "-aec", ARCHIVE_AE, LOOPBACK, str(archive.port)], timeout=30)
    assert cp.returncode == 0, cp.stderr


def test_wrong_called_ae_title_is_rejected(archive: Peer) -> None:
    cp = run([dcmtk("echoscu"), "-v", "-aec", "SOMEONE_ELSE", LOOPBACK, str(archive.port)], timeout=30)
    assert cp.returncode != 0
    assert "Called AE Title Not Recognized" in cp.stdout + cp.stderr


def test_storescu_content_is_indexed(archive: Peer, tmp_path: Path, content: Content) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + content.phantom.study_uid,
                                   "SOPInstanceUID=", "InstanceNumber="], work=tmp_path)
    assert reply.status == 0x0000
    assert [str(d.SOPInstanceUID) for d in reply.datasets] == list(content.phantom.sop_uids)
    assert [int(d.InstanceNumber) for d in reply.datasets] == [1, 2, 3, 4]


def test_find_study_level_wildcard_and_return_keys(archive: Peer, tmp_path: Path, content: Content) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=STUDY", "PatientName=PHANT*", "StudyInstanceUID=",
                                   "StudyDate=", "ModalitiesInStudy=", "NumberOfStudyRelatedInstances=",
                                   "NumberOfStudyRelatedSeries=", "PatientID="], work=tmp_path)
    assert reply.status == 0x0000
    assert len(reply.datasets) == 1
    ds = reply.datasets[0]
    assert ds.StudyInstanceUID == content.phantom.study_uid
    assert ds.PatientID == "PAT1" and ds.StudyDate == "20240105"
    assert ds.ModalitiesInStudy == "CT"
    assert int(ds.NumberOfStudyRelatedInstances) == 4 and int(ds.NumberOfStudyRelatedSeries) == 1
    assert ds.QueryRetrieveLevel == "STUDY"


def test_find_study_level_question_mark_wildcard_and_case(archive: Peer, tmp_path: Path) -> None:
    # PN matching is case-insensitive; ? matches one character
    reply = findscu(archive.port, ["QueryRetrieveLevel=STUDY", "PatientName=o?her^two", "PatientID="], work=tmp_path)
    assert [d.PatientID for d in reply.datasets] == ["PAT2"]


def test_find_study_date_and_time_ranges(archive: Peer, tmp_path: Path) -> None:
    def ids(*keys: str) -> list[str]:
        reply = findscu(archive.port, ["QueryRetrieveLevel=STUDY", "PatientID=", *keys], work=tmp_path)
        assert reply.status == 0
        return sorted(d.PatientID for d in reply.datasets)

    assert ids("StudyDate=20240101-20240131") == ["PAT1"]
    assert ids("StudyDate=20240201-") == ["PAT2"]
    assert ids("StudyDate=-20120101") == ["TEST PHYS PROSTATE"]  # the 2011 Eclipse phantom
    assert ids("StudyDate=20240101-", "StudyTime=1200-1500") == ["PAT2"]
    assert ids("StudyDate=20240101-", "StudyTime=-0900") == ["PAT1"]


def test_find_series_level(archive: Peer, tmp_path: Path, content: Content) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={ECLIPSE_STUDY}",
                                   "SeriesInstanceUID=", "Modality=", "NumberOfSeriesRelatedInstances="], work=tmp_path)
    assert reply.status == 0
    assert sorted(d.Modality for d in reply.datasets) == ["RTIMAGE", "RTPLAN", "RTSTRUCT"]
    assert all(int(d.NumberOfSeriesRelatedInstances) == 1 for d in reply.datasets)


def test_find_image_level_by_list_of_uids(archive: Peer, tmp_path: Path, content: Content) -> None:
    wanted = [content.phantom.sop_uids[1], content.other.sop_uids[2]]
    reply = findscu(archive.port, ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=" + "\\".join(wanted),
                                   "PatientID="], work=tmp_path)
    assert reply.status == 0
    assert sorted(str(d.SOPInstanceUID) for d in reply.datasets) == sorted(wanted)
    assert sorted(d.PatientID for d in reply.datasets) == ["PAT1", "PAT2"]


def test_find_image_level_by_sop_uid_only_returns_non_indexed_key(archive: Peer, tmp_path: Path) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={ECLIPSE_RI}",
                                   "RTImageLabel=", "StudyInstanceUID=", "SeriesInstanceUID="], work=tmp_path)
    assert reply.status == 0 and len(reply.datasets) == 1
    ds = reply.datasets[0]
    assert ds.RTImageLabel == "AP PROS-DRR"  # not indexed: read from the stored instance
    assert ds.StudyInstanceUID == ECLIPSE_STUDY


def test_find_patient_root_patient_level(archive: Peer, tmp_path: Path) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=PATIENT", "PatientID=PAT*", "PatientName=",
                                   "NumberOfPatientRelatedStudies=", "NumberOfPatientRelatedInstances="],
                    work=tmp_path, model="-P")
    assert reply.status == 0
    got = {d.PatientID: (str(d.PatientName), int(d.NumberOfPatientRelatedInstances)) for d in reply.datasets}
    assert got == {"PAT1": ("PHANTOM^ONE", 4), "PAT2": ("OTHER^TWO", 3)}


def test_find_patient_level_in_study_root_is_a900(archive: Peer, tmp_path: Path) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=PATIENT", "PatientID="], work=tmp_path)
    assert reply.status == 0xA900 and reply.datasets == ()


def test_find_key_below_level_is_a900(archive: Peer, tmp_path: Path) -> None:
    reply = findscu(archive.port, ["QueryRetrieveLevel=STUDY", "SOPInstanceUID=1.2.3"], work=tmp_path)
    assert reply.status == 0xA900


def test_move_study_level(archive: Peer, dest: Peer, content: Content) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={content.phantom.study_uid}"],
                    destination=dest.ae_title)
    assert (reply.status, reply.completed, reply.failed, reply.warning) == (0, 4, 0, 0)
    # pending responses after each sub-operation but the last: remaining 3, 2, 1
    assert reply.pending == ((3, 1), (2, 2), (1, 3))
    assert set(received(dest)) == set(content.phantom.sop_uids)


def test_move_series_level(archive: Peer, dest: Peer, content: Content) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={content.other.study_uid}",
                                   f"SeriesInstanceUID={content.other.series_uid}"], destination=dest.ae_title)
    assert (reply.status, reply.completed, reply.failed) == (0, 3, 0)
    assert set(received(dest)) == set(content.other.sop_uids)


def test_move_image_level_by_one_uid_only(archive: Peer, dest: Peer) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={ECLIPSE_RP}"],
                    destination=dest.ae_title)
    assert (reply.status, reply.completed, reply.failed) == (0, 1, 0)
    assert list(received(dest)) == [ECLIPSE_RP]


def test_move_image_level_by_uid_list(archive: Peer, dest: Peer, content: Content) -> None:
    uids = [ECLIPSE_RS, ECLIPSE_RI, content.phantom.sop_uids[0]]
    reply = movescu(archive.port, ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=" + "\\".join(uids)],
                    destination=dest.ae_title)
    assert (reply.status, reply.completed, reply.failed) == (0, 3, 0)
    assert set(received(dest)) == set(uids)


def test_moved_data_set_bytes_are_the_stored_bytes(archive: Peer, dest: Peer) -> None:
    movescu(archive.port, ["QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={ECLIPSE_RS}"], destination=dest.ae_title)
    original = dcmread(ECLIPSE / f"RS.{ECLIPSE_RS}.dcm")
    stored_path = next(archive.extra["dir"].glob(f"objects/*/{ECLIPSE_RS}.dcm"))
    stored = stored_path.read_bytes()
    got_path = received(dest)[ECLIPSE_RS]
    got = dcmread(got_path)
    # sent in the syntax it is stored in, and the data set bytes are the stored bytes
    assert got.file_meta.TransferSyntaxUID == dcmread(stored_path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert got_path.read_bytes().endswith(stored[len(stored) - 1_900_000:])
    assert got == original  # every element, private groups included


def test_move_patient_root_patient_level(archive: Peer, dest: Peer, content: Content) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=PATIENT", "PatientID=PAT2"], destination=dest.ae_title,
                    model="-P")
    assert (reply.status, reply.completed) == (0, 3)
    assert set(received(dest)) == set(content.other.sop_uids)


def test_move_unknown_destination_is_a801(archive: Peer, dest: Peer) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={ECLIPSE_RP}"], destination="NOBODY")
    assert reply.status == 0xA801
    assert received(dest) == {}


def test_move_without_unique_key_is_a900(archive: Peer, dest: Peer) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=IMAGE", "PatientID=PAT1"], destination=dest.ae_title)
    assert reply.status == 0xA900
    assert received(dest) == {}


def test_move_of_unknown_uid_completes_with_zero_sub_operations(archive: Peer, dest: Peer) -> None:
    reply = movescu(archive.port, ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID=1.2.3.4.5.6"], destination=dest.ae_title)
    assert (reply.status, reply.completed, reply.failed, reply.warning) == (0, 0, 0, 0)


def test_index_survives_restart(tmp_path: Path, content: Content, receiver: Peer) -> None:
    directory = tmp_path / "dir"
    first = start_archive_process(tmp_path, directory)
    try:
        storescu(ARCHIVE_AE, first.port, content.phantom.paths)
    finally:
        code = first.stop(sig=signal.SIGTERM)
    assert code == 0, first.log()
    log = first.log()
    assert "stopped" in log
    assert log.count("C-STORE from STORESCU@127.0.0.1") == len(content.phantom.paths)  # one line per request
    second = start_archive_process(tmp_path, directory, destinations=[f"STORESCP@{LOOPBACK}:{receiver.port}"])
    try:
        reply = findscu(second.port, ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={content.phantom.study_uid}",
                                      "SOPInstanceUID="], work=tmp_path)
        assert sorted(str(d.SOPInstanceUID) for d in reply.datasets) == sorted(content.phantom.sop_uids)
        clear_received(receiver)
        moved = movescu(second.port, ["QueryRetrieveLevel=IMAGE", f"SOPInstanceUID={content.phantom.sop_uids[0]}"],
                        destination=receiver.ae_title)
        assert (moved.status, moved.completed) == (0, 1)
    finally:
        second.stop()


def test_import_while_serving_is_seen_at_once(archive: Peer, tmp_path: Path) -> None:
    from openigrt.cli import main
    from tests.archive.content import ct_series

    late = ct_series(tmp_path / "late", patient_id="LATE", patient_name="LATE^COMER", n=2, series_number=7)
    assert main(["archive", "import", "--dir", str(archive.extra["dir"]), str(tmp_path / "late")]) == 0
    reply = findscu(archive.port, ["QueryRetrieveLevel=IMAGE", "PatientID=LATE", "SOPInstanceUID="], work=tmp_path)
    assert sorted(str(d.SOPInstanceUID) for d in reply.datasets) == sorted(late.sop_uids)

