"""The archive's synchronous C-STORE requestor (sub-operations) against real peers, and its failure paths."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from openigrt.archive.sender import StoreAssociation, encode_c_store_rq, parse_command
from openigrt.archive.server import EmbeddedArchive
from openigrt.config import NetworkSettings, RemoteAE, load_settings
from openigrt.errors import AssociationAborted, AssociationRejected, ConnectionFailed, DimseTimeout
from openigrt.net.header import split_part10
from tests.archive.content import Series, ct_series
from tests.archive.receiver import EXPLICIT, IMPLICIT, MPEG2, Receiver
from tests.peers import LOOPBACK, free_port, start_storescp

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture()
def series(tmp_path: Path) -> Series:
    return ct_series(tmp_path / "ct", patient_id="S", patient_name="SEND^ER", n=2, explicit=True)


def _payload(path: Path) -> tuple[bytes, str, str]:
    raw = path.read_bytes()
    split = split_part10(raw)
    return raw[split.dataset_offset:], split.transfer_syntax_uid, split.media_sop_instance_uid


def test_command_set_encoding_round_trip() -> None:
    cmd = parse_command(encode_c_store_rq(message_id=7, sop_class_uid=CT, sop_instance_uid="1.2.3.4",
                                          move_originator="MOVESCU", move_originator_message_id=3))
    assert cmd[0x00000002] == CT.encode() + b"\x00"  # odd length padded with NUL (UI)
    assert cmd[0x00001030] == b"MOVESCU "  # odd length padded with space (AE)
    assert int.from_bytes(cmd[0x00000000], "little") == sum(8 + len(v) for t, v in cmd.items() if t)


def test_store_to_dcmtk_with_small_pdus(tmp_path: Path, series: Series) -> None:
    data, syntax, uid = _payload(series.paths[0])
    with start_storescp(tmp_path / "scp", extra_args=["--max-pdu", "4096"]) as scp:
        with StoreAssociation(RemoteAE(scp.ae_title, LOOPBACK, scp.port), calling_ae_title="ARCHIVE",
                              contexts=[(CT, (syntax,))], network=NetworkSettings()) as assoc:
            assert assoc.peer_max_pdu == 4096
            rsp = assoc.c_store(assoc.context_id(CT, syntax), data, sop_class_uid=CT, sop_instance_uid=uid)
        assert rsp.status == 0
        (got,) = scp.extra["out"].iterdir()
        assert dcmread(got) == dcmread(series.paths[0])


def test_rejected_association_names_the_reason(tmp_path: Path) -> None:
    with EmbeddedArchive(tmp_path / "a", ae_title="ARCHIVE", port=0) as archive:
        assoc = StoreAssociation(RemoteAE("NOT_ARCHIVE", LOOPBACK, archive.port), calling_ae_title="X",
                                 contexts=[(CT, (IMPLICIT,))], network=NetworkSettings())
        with pytest.raises(AssociationRejected, match="called-AE-title-not-recognized"):
            assoc.open()
        assert not assoc.is_open


def test_connection_refused_and_no_accepted_context(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        StoreAssociation(RemoteAE("X", LOOPBACK, free_port()), calling_ae_title="X", contexts=[(CT, (IMPLICIT,))],
                         network=NetworkSettings(connect_timeout=2)).open()
    with Receiver(syntaxes=[IMPLICIT]) as rx:
        with pytest.raises(AssociationAborted, match="accepted none"):
            StoreAssociation(rx.remote, calling_ae_title="X", contexts=[(CT, (MPEG2,))], network=NetworkSettings()).open()


def test_dimse_timeout_aborts(series: Series) -> None:
    data, syntax, uid = _payload(series.paths[0])
    release = threading.Event()
    with Receiver(on_store=lambda event: release.wait(5)) as rx:
        assoc = StoreAssociation(rx.remote, calling_ae_title="X", contexts=[(CT, (syntax,))],
                                 network=NetworkSettings(dimse_timeout=0.5)).open()
        with pytest.raises(DimseTimeout, match="within the DIMSE timeout of 0.5 s"):
            assoc.c_store(assoc.context_id(CT, syntax), data, sop_class_uid=CT, sop_instance_uid=uid)
        release.set()
        assert not assoc.is_open


def _first_time(action: Any) -> Any:
    calls = []

    def hook(event: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            action(event)

    return hook


@pytest.mark.parametrize("trouble", ["abort", "timeout"])
def test_move_retries_once_on_a_fresh_association(tmp_path: Path, series: Series, trouble: str) -> None:
    settings = load_settings(None, {"network.dimse_timeout": "1"})
    gate = threading.Event()
    action = (lambda event: event.assoc.abort()) if trouble == "abort" else (lambda event: gate.wait(3))
    with EmbeddedArchive(tmp_path / "a", ae_title="ARCHIVE", port=0, settings=settings) as archive, \
            Receiver(on_store=_first_time(action), syntaxes=[EXPLICIT, IMPLICIT]) as rx:
        archive.import_paths(series.paths)
        archive.add_destination(rx.remote)
        from pynetdicom import AE
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE
        from pydicom import Dataset

        ae = AE("SCU")
        ae.add_requested_context(MOVE)
        assoc = ae.associate(LOOPBACK, archive.port, ae_title="ARCHIVE")
        ident = Dataset()
        ident.QueryRetrieveLevel = "SERIES"
        ident.SeriesInstanceUID = series.series_uid
        final = list(assoc.send_c_move(ident, rx.ae_title, MOVE))[-1][0]
        assoc.release()
        gate.set()
    assert int(final.Status) == 0 and final.NumberOfCompletedSuboperations == 2
    assert rx.associations == 2  # the first one lost, the retry succeeded
    assert set(rx.uids()) >= set(series.sop_uids)
