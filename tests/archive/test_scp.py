"""ARCHIVE-1 services in process: EmbeddedArchive against a pynetdicom SCU and scriptable receivers.

Statuses and counters of PS3.4 C.4.1/C.4.2 (pending counts, B000 + Failed SOP Instance UID List,
A900 before any sub-operation, A801, A702, FE00 after C-CANCEL), C-STORE statuses (0117, A900,
C000), transfer syntaxes of sub-operations (stored bytes, conversion, MPEG2 never decompressed),
TCP_NODELAY, character sets, and the destinations file.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import RTImageStorage
from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from openigrt.archive.server import EmbeddedArchive
from openigrt.config import RemoteAE
from openigrt.net.ae import nodelay_handler
from openigrt.net.dimse import ResponseTap, reactor_paused, send_request
from tests.archive.content import ECLIPSE, ECLIPSE_RP, Series, ct_dataset, ct_series, save, uid
from tests.archive.receiver import EXPLICIT, IMPLICIT, MPEG2, Receiver
from tests.peers import LOOPBACK

FIND = StudyRootQueryRetrieveInformationModelFind
MOVE = StudyRootQueryRetrieveInformationModelMove


@pytest.fixture()
def series(tmp_path: Path) -> Series:
    return ct_series(tmp_path / "ct", patient_id="PAT1", patient_name="PHANTOM^ONE", n=3)


@pytest.fixture()
def archive(tmp_path: Path, series: Series) -> Iterator[EmbeddedArchive]:
    with EmbeddedArchive(tmp_path / "archive", ae_title="ARCHIVE", port=0) as arch:
        arch.import_paths([*series.paths, ECLIPSE / f"RP.{ECLIPSE_RP}.dcm"])
        yield arch


def _scu(archive: EmbeddedArchive, *contexts: Any, syntaxes: list[str] | None = None) -> Any:
    ae = AE("TESTSCU")
    for cx in contexts:
        ae.add_requested_context(cx, syntaxes or [IMPLICIT, EXPLICIT])
    assoc = ae.associate(LOOPBACK, archive.port, ae_title=archive.ae_title, evt_handlers=[nodelay_handler()])
    assert assoc.is_established
    return assoc


def _move(archive: EmbeddedArchive, identifier: Dataset, destination: str, *,
          model: str = MOVE) -> list[tuple[Dataset, Dataset | None]]:
    assoc = _scu(archive, model)
    try:
        return list(assoc.send_c_move(identifier, destination, model))
    finally:
        assoc.release()


def _ident(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


# --------------------------------------------------------------------------- C-MOVE statuses
def test_move_pending_counts_then_success(archive: EmbeddedArchive, series: Series) -> None:
    with Receiver() as rx:
        archive.add_destination(rx.remote)
        rsps = _move(archive, _ident("SERIES", SeriesInstanceUID=series.series_uid), rx.ae_title)
    statuses = [(int(s.Status), s.get("NumberOfRemainingSuboperations"), s.get("NumberOfCompletedSuboperations"))
                for s, _ in rsps]
    assert statuses == [(0xFF00, 2, 1), (0xFF00, 1, 2), (0x0000, None, 3)]
    assert rx.uids() == list(series.sop_uids)  # hierarchical order: by Instance Number
    assert rx.associations == 1  # one association per C-MOVE
    assert {a.move_originator for a in rx.arrivals} == {"TESTSCU"}


def test_move_failures_and_warnings_give_b000_with_failed_list(archive: EmbeddedArchive, series: Series) -> None:
    failed, warned = series.sop_uids[0], series.sop_uids[2]
    with Receiver(statuses={failed: 0xA700, warned: 0xB007}) as rx:
        archive.add_destination(rx.remote)
        rsps = _move(archive, _ident("SERIES", SeriesInstanceUID=series.series_uid), rx.ae_title)
    final, identifier = rsps[-1]
    assert int(final.Status) == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations,
            final.NumberOfWarningSuboperations) == (1, 1, 1)
    assert identifier is not None and identifier.FailedSOPInstanceUIDList == failed


def test_move_bad_identifier_is_a900_without_contacting_the_destination(archive: EmbeddedArchive) -> None:
    with Receiver() as rx:
        archive.add_destination(rx.remote)
        rsps = _move(archive, _ident("IMAGE", StudyInstanceUID="1.2.3"), rx.ae_title)
        time.sleep(0.1)
        assert rx.associations == 0
    (final, _), = rsps
    assert int(final.Status) == 0xA900
    assert "SOPInstanceUID" in str(final.ErrorComment)


def test_move_invalid_level_and_uid(archive: EmbeddedArchive) -> None:
    archive.add_destination(RemoteAE("X", LOOPBACK, 9))
    for ident in (_ident("FRAME", SOPInstanceUID="1.2.3"), _ident("IMAGE", SOPInstanceUID="1.2.3*"),
                  _ident("PATIENT", PatientID="PAT1")):  # PATIENT is not a Study Root level
        (final, _), = _move(archive, ident, "X")
        assert int(final.Status) == 0xA900, ident


def test_move_unknown_destination_is_a801(archive: EmbeddedArchive) -> None:
    (final, _), = _move(archive, _ident("IMAGE", SOPInstanceUID=ECLIPSE_RP), "NOWHERE")
    assert int(final.Status) == 0xA801
    assert "NOWHERE" in str(final.ErrorComment)


def test_move_destination_not_listening_is_a702(archive: EmbeddedArchive, series: Series) -> None:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        dead_port = s.getsockname()[1]
    archive.add_destination(RemoteAE("DEAD", LOOPBACK, dead_port))
    (final, identifier), = _move(archive, _ident("SERIES", SeriesInstanceUID=series.series_uid), "DEAD")
    assert int(final.Status) == 0xA702
    assert final.NumberOfFailedSuboperations == 3
    assert identifier is not None and list(identifier.FailedSOPInstanceUIDList) == list(series.sop_uids)


def test_move_cancel_gives_fe00_with_counts(archive: EmbeddedArchive, tmp_path: Path) -> None:
    many = ct_series(tmp_path / "many", patient_id="PAT9", patient_name="MANY", n=8, series_number=9)
    archive.import_paths(many.paths)
    with Receiver(delay=0.15) as rx:
        archive.add_destination(rx.remote)
        assoc = _scu(archive, MOVE)
        try:
            responses = []
            for status, identifier in assoc.send_c_move(_ident("SERIES", SeriesInstanceUID=many.series_uid),
                                                         rx.ae_title, MOVE, msg_id=7):
                responses.append((status, identifier))
                if int(status.Status) == 0xFF00 and len(responses) == 1:
                    assoc.send_c_cancel(7, assoc.accepted_contexts[0].context_id)
        finally:
            assoc.release()
    final, _ = responses[-1]
    assert int(final.Status) == 0xFE00
    assert final.NumberOfRemainingSuboperations > 0
    assert final.NumberOfCompletedSuboperations + final.NumberOfRemainingSuboperations == 8
    assert len(rx.uids()) == final.NumberOfCompletedSuboperations


def test_patient_root_move(archive: EmbeddedArchive, series: Series) -> None:
    with Receiver() as rx:
        archive.add_destination(rx.remote)
        rsps = _move(archive, _ident("PATIENT", PatientID="PAT1"), rx.ae_title,
                     model=PatientRootQueryRetrieveInformationModelMove)
    assert int(rsps[-1][0].Status) == 0 and sorted(rx.uids()) == sorted(series.sop_uids)


# --------------------------------------------------------------------------- sub-operation syntaxes
def test_sub_operations_send_the_stored_bytes(archive: EmbeddedArchive, series: Series) -> None:
    with Receiver() as rx:
        archive.add_destination(rx.remote)
        _move(archive, _ident("IMAGE", SOPInstanceUID=series.sop_uids[0]), rx.ae_title)
    (arrival,) = rx.arrivals
    stored = next(archive.directory.glob(f"objects/*/{series.sop_uids[0]}.dcm")).read_bytes()
    assert arrival.transfer_syntax_uid == EXPLICIT  # as stored
    assert stored.endswith(arrival.data)
    assert len(arrival.data) > 500


def test_explicit_instance_is_converted_for_an_implicit_only_destination(archive: EmbeddedArchive,
                                                                          series: Series) -> None:
    with Receiver(syntaxes=[IMPLICIT]) as rx:
        archive.add_destination(rx.remote)
        rsps = _move(archive, _ident("IMAGE", SOPInstanceUID=series.sop_uids[1]), rx.ae_title)
    assert int(rsps[-1][0].Status) == 0
    (arrival,) = rx.arrivals
    assert arrival.transfer_syntax_uid == IMPLICIT
    from pynetdicom.dsutils import decode

    got = decode(io.BytesIO(arrival.data), True, True)
    assert got == dcmread(series.paths[1])


def _mpeg2_rt_image(path: Path) -> Path:
    """A multi-frame RT Image encapsulated as MPEG2 MP@ML (bytes are not a real stream: never decoded)."""
    from pydicom.dataset import FileMetaDataset

    ds = Dataset()
    ds.SOPClassUID = RTImageStorage
    ds.SOPInstanceUID = uid("rtimage", "mpeg2")
    ds.StudyInstanceUID = uid("study", "cine")
    ds.SeriesInstanceUID = uid("series", "cine")
    ds.Modality = "RTIMAGE"
    ds.PatientID = "CINE"
    ds.PatientName = "CINE^PATIENT"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 16, 16, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = MPEG2
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    return path


def test_mpeg2_rt_image_is_stored_and_moved_in_its_own_syntax(archive: EmbeddedArchive, tmp_path: Path) -> None:
    path = _mpeg2_rt_image(tmp_path / "cine.dcm")
    assoc = _scu(archive, RTImageStorage, syntaxes=[MPEG2])
    try:
        status = assoc.send_c_store(path)
    finally:
        assoc.release()
    assert int(status.Status) == 0
    row = archive.store.index.get(uid("rtimage", "mpeg2"))
    assert row is not None and row["transfer_syntax_uid"] == MPEG2
    with Receiver(ae_title="MPEGOK", syntaxes=[MPEG2, IMPLICIT]) as ok, \
            Receiver(ae_title="NOMPEG", syntaxes=[IMPLICIT, EXPLICIT]) as no:
        archive.add_destination(ok.remote)
        archive.add_destination(no.remote)
        good = _move(archive, _ident("IMAGE", SOPInstanceUID=uid("rtimage", "mpeg2")), "MPEGOK")
        bad = _move(archive, _ident("IMAGE", SOPInstanceUID=uid("rtimage", "mpeg2")), "NOMPEG")
    assert int(good[-1][0].Status) == 0 and ok.arrivals[0].transfer_syntax_uid == MPEG2
    assert path.read_bytes().endswith(ok.arrivals[0].data)
    # the only proposed context (RT Image in MPEG2) is refused, so no association: A702, 1 failed
    final, identifier = bad[-1]
    assert int(final.Status) == 0xA702 and final.NumberOfFailedSuboperations == 1
    assert identifier.FailedSOPInstanceUIDList == uid("rtimage", "mpeg2")
    assert no.arrivals == []


def test_instance_in_a_refused_syntax_fails_alone(archive: EmbeddedArchive, tmp_path: Path, series: Series) -> None:
    path = _mpeg2_rt_image(tmp_path / "cine.dcm")
    archive.import_paths([path])
    with Receiver(ae_title="NOMPEG", syntaxes=[IMPLICIT, EXPLICIT]) as no:
        archive.add_destination(no.remote)
        ident = _ident("IMAGE", SOPInstanceUID=[uid("rtimage", "mpeg2"), series.sop_uids[0]])
        final, identifier = _move(archive, ident, "NOMPEG")[-1]
    assert int(final.Status) == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (1, 1)
    assert identifier.FailedSOPInstanceUIDList == uid("rtimage", "mpeg2")
    assert no.uids() == [series.sop_uids[0]]


def test_sub_operation_and_acceptor_sockets_set_tcp_nodelay(archive: EmbeddedArchive, series: Series,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from openigrt.archive.sender import StoreAssociation

    sub_ops: list[bool] = []
    acceptors: list[bool] = []
    original = StoreAssociation.c_store

    def c_store(self: StoreAssociation, *args: Any, **kwargs: Any) -> Any:
        sub_ops.append(bool(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return original(self, *args, **kwargs)

    def check(event: Any) -> None:
        acceptors.extend(bool(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) for s in archive.sockets())

    monkeypatch.setattr(StoreAssociation, "c_store", c_store)
    with Receiver(on_store=check) as rx:
        archive.add_destination(rx.remote)
        _move(archive, _ident("IMAGE", SOPInstanceUID=series.sop_uids[0]), rx.ae_title)
    assert sub_ops == [True]
    assert acceptors and all(acceptors)


# --------------------------------------------------------------------------- C-STORE statuses
def _raw_store(archive: EmbeddedArchive, *, sop_class: str, sop_uid: str, data: bytes,
               syntax: str = EXPLICIT) -> tuple[int, str]:
    """Send arbitrary bytes in a C-STORE (what pynetdicom's send_c_store would not let us send)."""
    from pynetdicom.dimse_primitives import C_STORE

    tap = ResponseTap()
    ae = AE("RAWSCU")
    ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(LOOPBACK, archive.port, ae_title=archive.ae_title, evt_handlers=[tap.handler()])
    try:
        with reactor_paused(assoc):
            req = C_STORE()
            req.MessageID = tap.new_message_id()
            req.AffectedSOPClassUID, req.AffectedSOPInstanceUID = sop_class, sop_uid
            req.Priority = 0
            req.DataSet = io.BytesIO(data)
            send_request(assoc, req, assoc.accepted_contexts[0].context_id)
            rsp = tap.wait(assoc, req.MessageID, timeout=10, peer="archive", what="C-STORE")
    finally:
        assoc.release()
    return rsp.status, rsp.comment


def _encoded(ds: Dataset, syntax: str = EXPLICIT) -> bytes:
    from pynetdicom.dsutils import encode

    return encode(ds, syntax == IMPLICIT, True)


def _ct(n: int, **changes: Any) -> Dataset:
    ds = ct_dataset(patient_id="STORE", patient_name="STORE^TEST", study_uid=uid("s", "store"),
                    series_uid=uid("se", "store"), sop_uid=uid("store", n), index=n, study_date="20240101",
                    study_time="100000", series_number=1)
    for k, v in changes.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def test_store_success_then_duplicate_replaces(archive: EmbeddedArchive) -> None:
    ds = _ct(1)
    assert _raw_store(archive, sop_class=CTImageStorage, sop_uid=ds.SOPInstanceUID, data=_encoded(ds))[0] == 0
    ds.PatientName = "RENAMED^PATIENT"
    assert _raw_store(archive, sop_class=CTImageStorage, sop_uid=ds.SOPInstanceUID, data=_encoded(ds))[0] == 0
    rows = [r for r in archive.store.index.instances() if r["sop_instance_uid"] == ds.SOPInstanceUID]
    assert len(rows) == 1 and rows[0]["patient_name"] == "RENAMED^PATIENT"
    stored = dcmread(archive.store.absolute(rows[0]["path"]))
    assert stored.PatientName == "RENAMED^PATIENT"
    assert stored.file_meta.SourceApplicationEntityTitle == "RAWSCU"
    assert not list(archive.directory.rglob("*.tmp"))


@pytest.mark.parametrize(("what", "expected"), [
    ("uid differs from the command", 0x0117),
    ("class differs from the command", 0xA900),
    ("no series uid", 0xA900),
    ("truncated", 0xC000),
])
def test_store_refusals(archive: EmbeddedArchive, what: str, expected: int) -> None:
    ds = _ct(2)
    sop_uid, sop_class = ds.SOPInstanceUID, CTImageStorage
    data = _encoded(ds)
    if what == "uid differs from the command":
        sop_uid = uid("another")
    elif what == "class differs from the command":
        sop_class = RTImageStorage
    elif what == "no series uid":
        data = _encoded(_ct(2, SeriesInstanceUID=None))
    else:
        data = data[:-100]
    status, comment = _raw_store(archive, sop_class=sop_class, sop_uid=sop_uid, data=data)
    assert status == expected, comment
    assert comment
    assert archive.store.index.get(ds.SOPInstanceUID) is None


# --------------------------------------------------------------------------- C-FIND
def _find(archive: EmbeddedArchive, identifier: Dataset) -> list[tuple[Dataset, Dataset | None]]:
    assoc = _scu(archive, FIND)
    try:
        return list(assoc.send_c_find(identifier, FIND))
    finally:
        assoc.release()


def test_find_character_sets(archive: EmbeddedArchive, tmp_path: Path) -> None:
    utf8 = ct_series(tmp_path / "utf8", patient_id="UTF8", patient_name="Müller^Jörg", n=1, charset="ISO_IR 192",
                     series_number=4)
    archive.import_paths(utf8.paths)
    # query in Latin-1 (ISO_IR 100), case-insensitive wildcard: the answer comes back in Latin-1
    latin = _ident("STUDY", SpecificCharacterSet="ISO_IR 100", PatientName="MÜLLER*", PatientID="")
    rsps = [i for s, i in _find(archive, latin) if i is not None]
    assert [str(i.PatientName) for i in rsps] == ["Müller^Jörg"]
    assert rsps[0].SpecificCharacterSet == "ISO_IR 100"
    # no character set in the query (NET-3 style): the answer says UTF-8
    plain = _ident("STUDY", PatientName="M*LLER*", PatientID="UTF8")
    rsps = [i for s, i in _find(archive, plain) if i is not None]
    assert [str(i.PatientName) for i in rsps] == ["Müller^Jörg"]
    assert rsps[0].SpecificCharacterSet == "ISO_IR 192"
    # ASCII answers carry no character set
    rsps = [i for s, i in _find(archive, _ident("STUDY", PatientID="PAT1", PatientName="")) if i is not None]
    assert "SpecificCharacterSet" not in rsps[0]


def test_find_sequence_key_gives_ff01(archive: EmbeddedArchive, series: Series) -> None:
    ident = _ident("IMAGE", SOPInstanceUID=series.sop_uids[0])
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    ident.ReferencedImageSequence = [item]
    rsps = _find(archive, ident)
    assert [int(s.Status) for s, _ in rsps] == [0xFF01, 0x0000]


def test_find_cancel_answers_fe00(archive: EmbeddedArchive) -> None:
    from openigrt.archive.scp import QRRequest, serve_find

    class Responder:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send(self, status: int, **kwargs: Any) -> None:
            self.sent.append(status)

        def cancelled(self) -> bool:  # the C-CANCEL arrives after the first match
            return len(self.sent) >= 1

    rsp = Responder()
    serve_find(rsp, QRRequest(FIND, 1, _ident("IMAGE", SOPInstanceUID=""), "", "X", "127.0.0.1"), archive.store,
               "ARCHIVE")
    assert rsp.sent == [0xFF00, 0xFE00]


def test_find_cancel_over_the_wire(archive: EmbeddedArchive, tmp_path: Path) -> None:
    many = ct_series(tmp_path / "many", patient_id="PAT8", patient_name="MANY", n=80, series_number=8)
    archive.import_paths(many.paths)
    assoc = _scu(archive, FIND)
    try:
        statuses = []
        ident = _ident("IMAGE", SeriesInstanceUID=many.series_uid, SOPInstanceUID="", RescaleSlope="")
        for status, _ in assoc.send_c_find(ident, FIND, msg_id=5):
            statuses.append(int(status.Status))
            if len(statuses) == 1:
                assoc.send_c_cancel(5, assoc.accepted_contexts[0].context_id)
    finally:
        assoc.release()
    # non-indexed key: each match reads its file, so the cancel lands long before match 80
    assert statuses[-1] == 0xFE00 and 1 <= len(statuses) - 1 < 80


def test_query_helper_and_destinations_file(archive: EmbeddedArchive, series: Series) -> None:
    studies = archive.query("STUDY", PatientName="phantom*", StudyInstanceUID="", NumberOfStudyRelatedInstances="")
    assert [(s.StudyInstanceUID, int(s.NumberOfStudyRelatedInstances)) for s in studies] == [(series.study_uid, 3)]
    with Receiver(ae_title="FROMFILE") as rx:
        (archive.directory / "destinations.toml").write_text(f'destinations = ["FROMFILE@{LOOPBACK}:{rx.port}"]\n')
        rsps = _move(archive, _ident("IMAGE", SOPInstanceUID=series.sop_uids[0]), "FROMFILE")
    assert int(rsps[-1][0].Status) == 0 and rx.uids() == [series.sop_uids[0]]


def test_restart_keeps_the_index(tmp_path: Path, series: Series) -> None:
    with EmbeddedArchive(tmp_path / "a", port=0) as first:
        first.import_paths(series.paths)
    with EmbeddedArchive(tmp_path / "a", port=0) as second:
        assert [str(d.SOPInstanceUID) for d in second.query("IMAGE", SOPInstanceUID="")] == list(series.sop_uids)


def test_concurrent_moves_from_two_scus(archive: EmbeddedArchive, series: Series) -> None:
    with Receiver() as rx:
        archive.add_destination(rx.remote)
        results: list[int] = []

        def one(uid_: str) -> None:
            results.append(int(_move(archive, _ident("IMAGE", SOPInstanceUID=uid_), rx.ae_title)[-1][0].Status))

        threads = [threading.Thread(target=one, args=(u,)) for u in series.sop_uids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert results == [0, 0, 0] and sorted(rx.uids()) == sorted(series.sop_uids)


@pytest.mark.parametrize("operation", ["find", "move"])
def test_undecodable_identifiers_are_c000_and_the_association_lives_on(archive: EmbeddedArchive,
                                                                        operation: str) -> None:
    from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_MOVE

    from openigrt.config import Settings
    from openigrt.net.ae import build_contexts, make_ae, open_association

    settings = Settings()
    tap = ResponseTap()
    model = FIND if operation == "find" else MOVE
    contexts = build_contexts([(model, [EXPLICIT]), ("1.2.840.10008.1.1", [IMPLICIT])])
    with open_association(make_ae(settings, ae_title="RAW"), archive.remote, settings=settings, contexts=contexts,
                          evt_handlers=[tap.handler()]) as assoc:
        with reactor_paused(assoc):
            for garbage in (b"\x08\x00\x52\x00ZZ\x02\x00AB",  # not a VR
                            b"\x08\x00\x52\x00CS\xff\x7fIMAGE",  # truncated value
                            b"\x01\x02\x03"):  # not even an element header
                req = C_FIND() if operation == "find" else C_MOVE()
                req.MessageID = tap.new_message_id()
                req.AffectedSOPClassUID, req.Priority = model, 0
                if operation == "move":
                    req.MoveDestination = "ANYONE"
                req.Identifier = io.BytesIO(garbage)
                send_request(assoc, req, assoc.accepted_contexts[0].context_id)
                rsp = tap.wait(assoc, req.MessageID, timeout=10, peer="archive", what=operation)
                assert rsp.status == 0xC000 and rsp.comment.startswith("undecodable identifier"), rsp.comment
            echo = C_ECHO()
            echo.MessageID = tap.new_message_id()
            echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
            send_request(assoc, echo, assoc.accepted_contexts[1].context_id)
            assert tap.wait(assoc, echo.MessageID, timeout=10, peer="archive", what="echo").status == 0
