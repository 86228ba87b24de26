"""The fast CT series read (issue 11) gives the voxels and geometry of the plain pydicom recipe.

:func:`reference_series` is the reader as it was before (every file read whole by pydicom,
``Dataset.pixel_array`` × Rescale Slope + Intercept in float32, padding to −1000 HU, slices
ordered along the normal); the fast path (header-only read, Pixel Data read from its offset into
the volume, one ``frombuffer`` per native slice) must equal it **bit for bit**, for native
Implicit/Explicit VR files, unused high bits holding garbage, unsigned data with padding,
8-bit data, compressed (RLE) and deflated files (decoded by pydicom), in-memory Datasets and the
real GE and pydicom CT slices.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, RLELossless

from openigrt.errors import DicomInputError
from openigrt.iod.ct_series import PADDING_HU, _resample_z, read_ct_geometry, read_ct_series
from openigrt.iod.dataset_io import read_file, read_paths
from tests.iod import factory as F
from tests.iod.realdata import GE_CT, PYDICOM_CT


def reference_series(paths: list[Path]) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """(HU array, origin, spacing) the way the reader worked before the fast path."""
    dss = [pydicom.dcmread(p) for p in paths]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: float(np.asarray(d.ImagePositionPatient, float) @ normal))
    along = np.array([np.asarray(d.ImagePositionPatient, float) @ normal for d in dss])
    arr = np.empty((len(dss), int(dss[0].Rows), int(dss[0].Columns)), np.float32)
    for k, d in enumerate(dss):
        stored = d.pixel_array
        slope = float(d.get("RescaleSlope", None) or 1.0)
        np.multiply(stored, np.float32(slope), out=arr[k], casting="unsafe")
        arr[k] += np.float32(float(d.get("RescaleIntercept", None) or 0.0))
        if "PixelPaddingValue" in d:
            arr[k][stored == int(d.PixelPaddingValue)] = PADDING_HU
    gaps = np.diff(along)
    dz = float(np.median(gaps)) if gaps.size else float(dss[0].get("SliceThickness", 1.0))
    if gaps.size and np.abs(gaps - dz).max() > 0.01:
        arr = _resample_z(arr, along - along[0], dz)
    ps = [float(v) for v in dss[0].PixelSpacing]
    return arr, tuple(float(v) for v in dss[0].ImagePositionPatient), (ps[1], ps[0], dz)


def _series(directory: Path, n: int = 5, *, rows: int = 12, cols: int = 10, zs: list[float] | None = None,
            bits_stored: int = 16, signed: bool = True, bits: int = 16, slope: float = 1.0, intercept: float = -1024.0,
            padding: int | None = None, syntax: str | None = None, garbage_high_bits: bool = False,
            seed: int = 5) -> list[Path]:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        ds = F.ct_slice(k, rows=rows, cols=cols, slope=slope, intercept=intercept, z=None if zs is None else zs[k])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits_stored, bits_stored - 1
        ds.PixelRepresentation = int(signed)
        dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, (rows, cols), dtype=dtype, endpoint=True)
        if not garbage_high_bits and bits_stored < bits:  # a proper value range
            lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
            values = rng.integers(lo, hi, (rows, cols), endpoint=True).astype(dtype)
        if padding is not None:
            ds.PixelPaddingValue = padding
            values[:2, :3] = padding
        ds.PixelData = values.tobytes()
        path = directory / f"CT{k:03d}.dcm"
        if syntax is None:
            F.save(ds, path)
        elif syntax == str(RLELossless):
            F.save(ds, path, implicit=False)
            ds = pydicom.dcmread(path)
            ds.compress(RLELossless)
            ds.save_as(path, enforce_file_format=True)
        else:
            F._meta(ds, implicit=False)
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


CASES = {
    "implicit int16": {},
    "explicit int16, 12 bits stored, garbage in the high bits, slope": dict(
        syntax=str(ExplicitVRLittleEndian), bits_stored=12, garbage_high_bits=True, slope=2.5, intercept=-1000.5),
    "uint16, 12 bits, padding value": dict(signed=False, bits_stored=12, padding=4095, intercept=-1024.0),
    "uint8, odd pixel count (padded value)": dict(bits=8, bits_stored=8, signed=False, rows=5, cols=7),
    "int32": dict(bits=32, bits_stored=32, slope=0.5),
    "uneven gaps (resampled)": dict(zs=[0.0, 2.0, 4.0, 7.0, 9.0]),
    "RLE Lossless (pydicom decodes)": dict(syntax=str(RLELossless), padding=-2000),
    "deflated (read whole)": dict(syntax=str(DeflatedExplicitVRLittleEndian)),
}


def _assert_same(paths: list[Path], series) -> None:  # type: ignore[no-untyped-def]
    ref, origin, spacing = reference_series(paths)
    assert series.volume.array.dtype == np.float32 and series.volume.shape == ref.shape
    assert np.array_equal(series.volume.array, ref)  # bit for bit
    assert series.volume.origin_mm == origin and series.volume.spacing_mm == pytest.approx(spacing, abs=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_read_equals_the_plain_pydicom_read(tmp_path: Path, case: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # garbage-high-bit values warn when pydicom writes/validates them
        paths = _series(tmp_path / "ct", **CASES[case])  # type: ignore[arg-type]
        fast = read_ct_series(list(reversed(paths)))  # paths: header-only read + pixels from their offsets
        whole = read_ct_series(read_paths([tmp_path / "ct"])[0])  # files read whole: frombuffer on the bytes
        _assert_same(paths, fast)
        _assert_same(paths, whole)
        geometry = read_ct_geometry(paths)
    v = fast.volume
    assert (geometry.shape, geometry.origin_mm, geometry.spacing_mm) == (v.shape, v.origin_mm, v.spacing_mm)
    assert np.array_equal(geometry.direction, v.direction)
    assert geometry.sop_instance_uids == fast.sop_instance_uids and geometry.slice_gaps_mm == fast.slice_gaps_mm
    assert geometry.uniform_spacing == fast.uniform_spacing == (not fast.resampled)


def test_real_ct_slices_and_in_memory_datasets() -> None:
    _assert_same(list(GE_CT), read_ct_series(GE_CT))
    _assert_same([PYDICOM_CT], read_ct_series([PYDICOM_CT]))
    datasets = [pydicom.dcmread(p) for p in GE_CT]
    for ds in datasets:
        del ds.file_meta  # built or received in memory: native Explicit VR LE
    _assert_same(list(GE_CT), read_ct_series(datasets))
    assert read_ct_series(GE_CT).padding_voxels == 2 * 55772


def test_header_only_read_keeps_no_pixels_and_knows_where_they_are(tmp_path: Path) -> None:
    paths = _series(tmp_path / "ct", 2)
    f = read_file(paths[0], defer_pixels=True)
    assert "PixelData" not in f.dataset and f.has_pixel_data()
    assert f.pixel_data is not None and f.pixel_data.length == 12 * 10 * 2
    assert paths[0].read_bytes()[f.pixel_data.offset:f.pixel_data.offset + 240] == pydicom.dcmread(paths[0]).PixelData
    whole = read_file(paths[0])
    assert whole.pixel_data is None and whole.has_pixel_data() and whole.issues == f.issues


def test_pixel_errors_are_the_same_with_and_without_voxels(tmp_path: Path) -> None:
    paths = _series(tmp_path / "ct", 3)
    ds = pydicom.dcmread(paths[1])
    ds.PixelData = ds.PixelData[:-4]
    ds.save_as(paths[1])
    with pytest.raises(DicomInputError) as full:
        read_ct_series(paths)
    with pytest.raises(DicomInputError) as headers:
        read_ct_geometry(paths)
    assert str(full.value) == str(headers.value) and "CT001.dcm" in str(full.value) and "(7FE0,0010)" in str(full.value)


def test_a_file_gone_between_header_and_pixels_is_named(tmp_path: Path) -> None:
    paths = _series(tmp_path / "ct", 3)
    files, _ = read_paths([tmp_path / "ct"], defer_pixels=True)
    shutil.rmtree(tmp_path / "ct")
    with pytest.raises(DicomInputError, match=r"CT000\.dcm: cannot read \(7FE0,0010\) Pixel Data"):
        read_ct_series(files)


def test_identical_flaws_are_reported_for_every_file(tmp_path: Path) -> None:
    """The conversion memo skips converting twins of clean elements, never the report of a flaw."""
    paths = _series(tmp_path / "ct", 3)
    for p in paths:
        ds = pydicom.dcmread(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.StationName = "A_VERY_LONG_STATION_NAME_X"  # SH longer than 16
        ds.save_as(p)
    files, _ = read_paths([tmp_path / "ct"])
    alone = [read_file(p).issues for p in paths]
    assert [f.issues for f in files] == alone
    assert all(any("maximum length of 16" in i and p.name in i for i in f.issues) for f, p in zip(files, paths))
    assert all(str(f.dataset.StationName) == "A_VERY_LONG_STATION_NAME_X" for f in files)
