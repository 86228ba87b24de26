"""The durable cache: atomic write, index, reconcile, File Meta, concurrency (NET-7, NET-8, NET-12)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.errors import CacheError, DicomInputError
from openigrt.net.cache import InstanceCache, atomic_write, encode_file_meta, temp_name
from openigrt.net.header import inspect
from openigrt.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from tests.net.data import CT, REAL_SCP_SET, dataset_bytes, encode, make_instance
from tests.net.fsutil import read_only_dir, tiny_filesystem


@pytest.mark.parametrize("path", REAL_SCP_SET, ids=lambda p: p.name[:30])
def test_store_file_keeps_dataset_bytes_and_writes_our_meta(tmp_path: Path, path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    row = cache.store_file(path)
    ts, body = dataset_bytes(path)
    cached_ts, cached_body = dataset_bytes(row.path)
    assert (cached_ts, cached_body) == (ts, body)  # the data set, byte for byte
    ds = dcmread(row.path)
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == row.sop_instance_uid
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == row.sop_class_uid
    assert cache.get(row.sop_instance_uid) == row
    assert row.path.is_relative_to(cache.root / "instances" / row.study_instance_uid / row.series_instance_uid)


def test_meta_encoding_is_what_pydicom_writes() -> None:
    import io

    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    for aet in ("", "STORESCU", "ODD"):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT, "1.2.3.45"
        meta.TransferSyntaxUID = "1.2.840.10008.1.2"
        meta.ImplementationClassUID, meta.ImplementationVersionName = "2.25.1", "OPENIGRT_010"
        if aet:
            meta.SourceApplicationEntityTitle = aet
        fp = io.BytesIO(b"\x00" * 128 + b"DICM")
        fp.seek(132)
        write_file_meta_info(fp, meta, enforce_standard=True)
        ours = encode_file_meta(sop_class_uid=CT, sop_instance_uid="1.2.3.45", transfer_syntax_uid="1.2.840.10008.1.2",
                                source_ae_title=aet, implementation_class_uid="2.25.1",
                                implementation_version_name="OPENIGRT_010")
        assert ours == fp.getvalue()


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.dcm"
    target.write_bytes(b"old")

    def chunks():
        yield b"new part"
        raise RuntimeError("disk died")

    with pytest.raises(RuntimeError):
        atomic_write(target, chunks())
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dcm"]
    assert temp_name(target).name.startswith(".x.dcm.") and temp_name(target).name.endswith(".tmp")


def test_stale_temp_files_of_dead_processes_removed(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    d = cache.instances_dir / "1.2" / "3.4"
    d.mkdir(parents=True)
    proc = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    proc.start()
    proc.join()
    dead = d / f".5.6.dcm.{proc.pid}.abcd1234.tmp"
    alive = d / f".7.8.dcm.{os.getpid()}.abcd1234.tmp"
    dead.write_bytes(b"partial")
    alive.write_bytes(b"in progress")
    cache.close()
    InstanceCache(tmp_path / "c").close()
    assert not dead.exists() and alive.exists()


def test_refuses_undecodable_and_uidless(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    data = encode(make_instance(CT))
    with pytest.raises(DicomInputError):
        cache.store(data[:-5], transfer_syntax_uid="1.2.840.10008.1.2")
    ds = make_instance(CT)
    del ds.SOPInstanceUID
    with pytest.raises(DicomInputError, match="invalid SOP"):
        cache.store(encode(ds), transfer_syntax_uid="1.2.840.10008.1.2")
    assert len(cache) == 0 and not list(cache.instances_dir.rglob("*.dcm"))


def test_same_instance_again_replaces_and_moves(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    ds = make_instance(CT, uid="1.2.3.4.5")
    first = cache.store(encode(ds), transfer_syntax_uid="1.2.840.10008.1.2")
    ds.SeriesInstanceUID = "1.2.3.9"  # corrected series: the file moves, the old one goes
    second = cache.store(encode(ds), transfer_syntax_uid="1.2.840.10008.1.2")
    assert len(cache) == 1 and second.path.exists() and not first.path.exists()
    assert cache.query(series_instance_uid="1.2.3.9") == [second]


def test_query_and_remove(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    rows = [cache.store(encode(make_instance(CT, study="1.1", series="1.1.1", seed=i)), transfer_syntax_uid="1.2.840.10008.1.2")
            for i in range(3)]
    assert {r.sop_instance_uid for r in cache.query(study_instance_uid="1.1")} == {r.sop_instance_uid for r in rows}
    assert cache.query(modality="MR") == []
    assert cache.remove(rows[0].sop_instance_uid) and not rows[0].path.exists()
    assert not cache.remove(rows[0].sop_instance_uid)
    assert len(cache) == 2 and rows[0].as_dict()["path"] == str(rows[0].path)


def test_reconcile_restores_lost_rows_and_drops_stale_ones(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    a = cache.store(encode(make_instance(CT, seed=1)), transfer_syntax_uid="1.2.840.10008.1.2")
    b = cache.store(encode(make_instance(CT, seed=2)), transfer_syntax_uid="1.2.840.10008.1.2")
    with cache._db() as conn, conn:  # simulate a commit lost to a power failure
        conn.execute("DELETE FROM instances WHERE sop_instance_uid=?", (a.sop_instance_uid,))
    b.path.unlink()  # and a file deleted behind our back
    assert cache.reconcile() == (1, 1)
    again = cache.get(a.sop_instance_uid)
    assert again is not None and again.path == a.path and cache.get(b.sop_instance_uid) is None
    assert cache.reconcile() == (0, 0)


def test_index_survives_reopen(tmp_path: Path) -> None:
    with InstanceCache(tmp_path / "c") as cache:
        row = cache.store(encode(make_instance(CT)), transfer_syntax_uid="1.2.840.10008.1.2", source_ae_title="TMS")
    with InstanceCache(tmp_path / "c") as cache2:
        assert cache2.get(row.sop_instance_uid) == row and row.source_ae_title == "TMS"
        with cache2._db() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_threads_store_concurrently(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    datas = [encode(make_instance(CT, seed=i)) for i in range(40)]
    errors: list[BaseException] = []

    def work(chunk: list[bytes]) -> None:
        try:
            for d in chunk:
                cache.store(d, transfer_syntax_uid="1.2.840.10008.1.2")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(datas[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(cache) == 40


def _store_in_child(root: str, seeds: list[int]) -> None:
    cache = InstanceCache(Path(root))
    for s in seeds:
        cache.store(encode(make_instance(CT, seed=s, uid=f"1.2.826.0.1.3680043.10.999.{s}")),
                    transfer_syntax_uid="1.2.840.10008.1.2")


def test_processes_share_one_cache(tmp_path: Path) -> None:
    root = tmp_path / "c"
    InstanceCache(root).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_store_in_child, args=(str(root), list(range(i, 30, 3)))) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(InstanceCache(root)) == 30


def test_unwritable_cache_raises_cache_error_naming_the_path(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    data = encode(make_instance(CT))
    with read_only_dir(cache.instances_dir):
        with pytest.raises(CacheError, match=r"^(read-only file system|permission denied): cannot write .*instances"):
            cache.store(data, transfer_syntax_uid="1.2.840.10008.1.2")
    assert len(cache) == 0


def test_disk_full_raises_cache_error_and_leaves_no_partial(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    big = make_instance(CT, rows=256)  # 128 KB of pixels > 64 KB file system
    with tiny_filesystem(cache.instances_dir, size_kb=64):
        with pytest.raises(CacheError, match="disk full"):
            cache.store(encode(big), transfer_syntax_uid="1.2.840.10008.1.2")
        assert not [p for p in cache.instances_dir.rglob("*") if p.is_file()]
    assert len(cache) == 0


def test_cannot_open_cache_on_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CacheError, match="cannot open the cache"):
        InstanceCache(f)


def test_store_dataset_round_trip(tmp_path: Path) -> None:
    cache = InstanceCache(tmp_path / "c")
    ds = make_instance(CT, charset="ISO_IR 100", patient_name="Müller^Jürgen")
    row = cache.store_dataset(ds, source_ae_title="LOCAL")
    back = row.read()
    assert back.PatientName == "Müller^Jürgen" and row.patient_name == "Müller^Jürgen"
    assert inspect(dataset_bytes(row.path)[1], transfer_syntax_uid=row.transfer_syntax_uid) == dataclasses.replace(
        inspect(encode(ds), transfer_syntax_uid="1.2.840.10008.1.2"))
