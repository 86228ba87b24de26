"""File mode (NET-12): ``openigrt import`` / ``openigrt export``, no network."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom import dcmread

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.net.cache import InstanceCache
from tests.net.data import REAL, REAL_CT, REAL_CT2, REAL_RTIMAGE, REAL_RTPLAN, REAL_RTSTRUCT, REG, dataset_bytes, make_instance, same_elements


def _run(capsys, *args: str) -> tuple[int, dict]:
    rc = main(list(args))
    return rc, json.loads(capsys.readouterr().out)


def test_import_real_files_refuses_other_classes(tmp_path: Path, capsys) -> None:
    rc, out = _run(capsys, "import", "--cache", str(tmp_path / "c"), "--json", str(REAL))
    assert rc == 1 and not out["ok"]
    by_outcome: dict[str, list[dict]] = {}
    for r in out["results"]:
        by_outcome.setdefault(r["outcome"], []).append(r)
    assert len(by_outcome["imported"]) == 10  # every CT / RTSTRUCT / RTIMAGE / RTPLAN, incl. the meta-less rtstruct
    assert [Path(r["path"]).name[:2] for r in by_outcome["refused"]] == ["RN", "RN"]
    assert all("RT Ion Plan Storage cannot be imported (NET-12 imports" in r["message"] for r in by_outcome["refused"])
    cache = InstanceCache(tmp_path / "c")
    assert len(cache) == 10
    row = cache.get(dcmread(REAL_RTSTRUCT).SOPInstanceUID)
    assert dataset_bytes(row.path)[1] == dataset_bytes(REAL_RTSTRUCT)[1]


def test_import_only_allowed_classes_exits_zero(tmp_path: Path, capsys) -> None:
    rc, out = _run(capsys, "import", "--cache", str(tmp_path / "c"), "--json", str(REAL_CT), str(REAL_RTPLAN))
    assert rc == 0 and out["ok"] and [r["outcome"] for r in out["results"]] == ["imported", "imported"]


def test_import_non_dicom_is_one_clear_failure(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 200)
    rc = main(["import", "--cache", str(tmp_path / "c"), str(junk)])
    cap = capsys.readouterr()
    assert rc == 1 and "junk.dcm" in cap.err and "not a DICOM file" in cap.err and "Traceback" not in cap.err


def test_export_writes_part10_files_without_dicomdir(tmp_path: Path, capsys) -> None:
    cache_dir = tmp_path / "c"
    assert main(["import", "--cache", str(cache_dir), str(REAL_CT), str(REAL_CT2), str(REAL_RTSTRUCT),
                 str(REAL_RTIMAGE), str(REAL_RTPLAN)]) == 0
    capsys.readouterr()
    settings = load_settings(None, {"paths.cache_dir": str(cache_dir)})
    with InstanceCache.from_settings(settings) as cache:
        reg = cache.store_dataset(make_instance(REG, modality="REG"))
    series = dcmread(REAL_CT).SeriesInstanceUID
    out_dir = tmp_path / "out"
    rc, out = _run(capsys, "export", "--cache", str(cache_dir), "--out", str(out_dir), "--json", series,
                   dcmread(REAL_RTSTRUCT).SOPInstanceUID, dcmread(REAL_RTIMAGE).SOPInstanceUID, reg.sop_instance_uid)
    assert rc == 0 and [r["outcome"] for r in out["results"]] == ["exported"] * 5
    names = sorted(p.name for p in out_dir.iterdir())
    assert "DICOMDIR" not in names and len(names) == 5
    assert sum(n.startswith("CT.") for n in names) == 2 and any(n.startswith("REG.") for n in names)
    for src in (REAL_CT, REAL_CT2, REAL_RTSTRUCT, REAL_RTIMAGE):
        ds = dcmread(src)
        exported = dcmread(out_dir / f"{ds.Modality}.{ds.SOPInstanceUID}.dcm")
        assert same_elements(ds, exported) == [] and exported.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_export_refuses_rt_plan_and_unknown(tmp_path: Path, capsys) -> None:
    cache_dir = tmp_path / "c"
    assert main(["import", "--cache", str(cache_dir), str(REAL_RTPLAN)]) == 0
    capsys.readouterr()
    rc, out = _run(capsys, "export", "--cache", str(cache_dir), "--out", str(tmp_path / "o"), "--json",
                   dcmread(REAL_RTPLAN).SOPInstanceUID, "1.2.3.4.5")
    assert rc == 1
    assert out["results"][0]["outcome"] == "refused" and "RT Plan Storage is not exported" in out["results"][0]["message"]
    assert out["results"][1]["outcome"] == "failed" and "not in the cache" in out["results"][1]["message"]
    assert not list((tmp_path / "o").iterdir())
