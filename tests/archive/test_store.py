"""Archive directory: import of files/directories, file layout, meta repair, no duplicates, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.archive.store import ArchiveStore
from openigrt.cli import main
from openigrt.uids import IMPLEMENTATION_CLASS_UID
from tests.archive.content import ECLIPSE_RP, REAL, ct_series

ELEKTA = REAL / "pynetdicom_elekta_rtimage" / "RTImageStorage.dcm"


def test_import_real_files_skips_non_dicom_with_a_message(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a")
    seen = []
    report = store.import_paths([REAL], progress=seen.append)
    assert report.count("stored") == 12
    skipped = {r.path.name: r.message for r in report.skipped}
    assert set(skipped) == {"PROVENANCE.md", "aria13_RN_ExtendedVAPlanInterface.xml",
                            "aria16_RN_ExtendedVAPlanInterface.xml", "eclipse81_RI_RTImageExtendedInterface.xml",
                            "eclipse81_RP_ExtendedVAPlanInterface.xml"}
    assert all("not a DICOM file" in m and str(REAL) in m for m in skipped.values())
    assert len(seen) == 17
    again = store.import_paths([REAL])
    assert again.count("replaced") == 12
    assert store.index.summary().instances == 12


def test_file_meta_is_rewritten_from_the_data_set(tmp_path: Path) -> None:
    # the Elekta file's meta has an invalid Media Storage SOP Instance UID differing from the data set's
    store = ArchiveStore(tmp_path / "a")
    (result,) = store.import_paths([ELEKTA]).results
    assert result.status == "stored"
    original = dcmread(ELEKTA)
    assert original.file_meta.MediaStorageSOPInstanceUID != original.SOPInstanceUID
    stored_path = store.absolute(store.index.get(str(original.SOPInstanceUID))["path"])
    stored = dcmread(stored_path)
    assert stored.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert stored.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert stored == original  # the data set itself is unchanged
    raw = ELEKTA.read_bytes()
    assert raw.endswith(stored_path.read_bytes()[store.index.get(str(original.SOPInstanceUID))["dataset_offset"]:])


def test_layout_and_no_temporary_files(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a")
    series = ct_series(tmp_path / "ct", patient_id="P", patient_name="P^P", n=3)
    store.import_paths([tmp_path / "ct"])
    for sop in series.sop_uids:
        rel = store.relative_path(sop)
        assert rel.startswith("objects/") and rel.endswith(f"/{sop}.dcm")
        assert store.absolute(rel).is_file()
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.endswith(".tmp")]


def test_bare_data_set_without_meta_is_imported(tmp_path: Path) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = dcmread(REAL / "eclipse81_prostate_phantom" / f"RP.{ECLIPSE_RP}.dcm")
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = True, True
    write_dataset(buf, ds)
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(buf.getvalue())
    store = ArchiveStore(tmp_path / "a")
    (result,) = store.import_paths([bare]).results
    assert result.status == "stored" and result.sop_instance_uid == ECLIPSE_RP
    assert store.index.get(ECLIPSE_RP)["transfer_syntax_uid"] == "1.2.840.10008.1.2"


def test_truncated_file_is_skipped(tmp_path: Path) -> None:
    series = ct_series(tmp_path / "ct", patient_id="T", patient_name="T^T", n=1)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(series.paths[0].read_bytes()[:-50])
    store = ArchiveStore(tmp_path / "a")
    (result,) = store.import_paths([cut]).results
    assert result.status == "skipped" and "truncated" in result.message
    assert store.index.summary().instances == 0


def test_cli_import_ls_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "a"
    assert main(["archive", "import", "--dir", str(directory), str(REAL / "eclipse81_prostate_phantom")]) == 0
    assert "imported 3 instance(s)" in capsys.readouterr().out
    assert main(["archive", "ls", "--dir", str(directory), "--json", "--instances"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["patients"], data["studies"], data["series"], data["instances"]) == (1, 1, 3, 3)
    assert ECLIPSE_RP in {i["sop_instance_uid"] for i in data["instance_list"]}
    assert main(["archive", "ls", "--dir", str(directory)]) == 0
    assert "1 patient(s), 1 study(ies), 3 series, 3 instance(s)" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["archive", "ls", "--dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "not an archive directory" in err and "Traceback" not in err
    assert main(["archive", "import", "--dir", str(tmp_path / "a"), str(tmp_path / "missing.dcm")]) == 1
    assert "missing.dcm: no such file or directory" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["archive", "import", "--dir", str(tmp_path / "a"), str(tmp_path / "notes.txt")]) == 1
    captured = capsys.readouterr()
    assert "notes.txt: not a DICOM file" in captured.err and "imported 0 instance(s)" in captured.out
    assert main(["archive", "serve", "--dir", str(tmp_path / "a"), "--destination", "bad-destination"]) == 2
    assert "--destination[0]" in capsys.readouterr().err


def test_reconcile_makes_the_index_agree_with_the_files(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path / "a")
    series = ct_series(tmp_path / "ct", patient_id="R", patient_name="RE^CON", n=3)
    store.import_paths(series.paths)
    # a crash after a file's rename but before its index commit: the row is missing
    assert store.index.delete(series.sop_uids[0])
    # a file deleted behind the archive's back: its row is stale
    store.absolute(store.relative_path(series.sop_uids[1])).unlink()
    # a temporary file of a process that no longer exists, and one of a live process (ours)
    dead = store.directory / "objects" / "00" / ".x.dcm.999999999.abcd.tmp"
    dead.parent.mkdir(parents=True, exist_ok=True)
    dead.write_bytes(b"partial")
    live = store.directory / "objects" / "00" / f".y.dcm.{os.getpid()}.abcd.tmp"
    live.write_bytes(b"partial")
    report = store.reconcile()
    assert (report.indexed, report.dropped, report.temp_removed) == (1, 1, 1)
    assert sorted(store.index.paths().values()) == sorted([series.sop_uids[0], series.sop_uids[2]])
    assert not dead.exists() and live.exists()
    assert store.reconcile() == type(report)(0, 0, 0)


def test_cli_serve_port_in_use_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["archive", "serve", "--dir", str(tmp_path / "a"), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
