"""CT series reader: slices -> :class:`~openigrt.geometry.volume.Volume` in patient space (PLAN-9, LOAD-1).

:func:`group_ct_series` sorts CT Image objects by Series Instance UID; :func:`read_ct_series`
orders one series' slices along the slice normal (``row × column`` of Image Orientation
(Patient)), converts stored values to HU (``stored * Rescale Slope + Rescale Intercept``,
float32, per slice) and assembles a Volume whose origin is the first slice's Image Position
(Patient), whose spacing is ``(column spacing, row spacing, slice spacing)`` and whose direction
columns are the row, column and normal unit vectors.

Geometry facts PLAN-9 checks are kept, not hidden: per-slice SOP Instance UIDs, positions and
Frame of Reference UIDs, the gaps between consecutive slices, and the largest in-plane (x/y)
offset between slices. When the gaps are not uniform (beyond ``uniformity_mm``) the slices are
resampled linearly onto a uniform grid of the median gap, so the Volume is geometrically true;
``resampled`` says so. Pixels equal to Pixel Padding Value (0028,0120) — outside the
reconstruction circle of GE scanners — become air (-1000 HU) and are counted.

:func:`read_ct_geometry` does all of that but the voxels (PLAN-9 and ``openigrt validate`` need
geometry only): files given as paths are read header-only (``defer_pixels``, the Pixel Data
value located but not read; native pixel data of length Rows × Columns × Bits Allocated / 8 is
not read at all, anything else is decoded and dropped so that the errors are those of
:func:`read_ct_series`). :func:`read_ct_series` reads paths the same way and then each slice's pixels
straight from the file into the volume (one ``numpy.frombuffer`` per native slice, pydicom's
decoder for compressed ones), so the pixel bytes of the whole series are never held at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage

from openigrt.errors import DicomInputError
from openigrt.geometry.volume import Volume
from openigrt.iod.dataset_io import (
    AttributeReader,
    ConversionMemo,
    DicomFile,
    PatientStudy,
    as_dicom_file,
    check_sop_class,
    decode_pixels,
    read_file,
)
from openigrt.iod.pixel_data import NativeLayout, native_layout, stored_values

#: HU given to padding pixels (air).
PADDING_HU = -1000.0
#: Image Orientation (Patient) of two slices agrees within this (direction cosines).
ORIENTATION_TOLERANCE = 1e-4
#: Two slices closer than this along the normal are duplicates (mm).
DUPLICATE_SLICE_MM = 1e-3
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
#: Uncompressed little endian transfer syntaxes (Implicit, Explicit VR).
_NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", EXPLICIT_VR_LE})


@dataclass(frozen=True)
class CTSlice:
    """One slice of a series: identity and geometry, in the order of the volume."""

    sop_instance_uid: str
    source: str
    image_position_mm: tuple[float, float, float]
    position_along_normal_mm: float
    frame_of_reference_uid: str | None
    instance_number: int | None


@dataclass(frozen=True, eq=False, kw_only=True)
class CTSeriesGeometry:
    """A CT series' identity and geometry, without voxels: the facts PLAN-9 needs.

    ``shape``, ``origin_mm``, ``spacing_mm`` and ``direction`` are those of the Volume that
    :func:`read_ct_series` builds (after resampling onto the median gap when the gaps are not
    uniform).
    """

    series_instance_uid: str
    patient_study: PatientStudy
    slices: tuple[CTSlice, ...]
    shape: tuple[int, int, int]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: NDArray[np.float64] = field(repr=False)
    slice_gaps_mm: tuple[float, ...]
    uniform_spacing: bool
    max_in_plane_offset_mm: float
    patient_position: str | None
    issues: tuple[str, ...] = ()

    @property
    def frame_of_reference_uids(self) -> tuple[str, ...]:
        """Distinct Frame of Reference UIDs of the slices (PLAN-9: exactly one)."""
        return tuple(sorted({s.frame_of_reference_uid or "" for s in self.slices}))

    @property
    def frame_of_reference_uid(self) -> str | None:
        uids = self.frame_of_reference_uids
        return uids[0] if len(uids) == 1 and uids[0] else None

    @property
    def sop_instance_uids(self) -> tuple[str, ...]:
        return tuple(s.sop_instance_uid for s in self.slices)


@dataclass(frozen=True, eq=False, kw_only=True)
class CTSeries(CTSeriesGeometry):
    """A CT series read into a Volume, with the geometry facts PLAN-9 needs."""

    volume: Volume = field(repr=False)
    resampled: bool
    padding_voxels: int


def _as_files(items: Iterable[DicomFile | Dataset | str | Path]) -> list[DicomFile]:
    """Paths are read header-only (pixels located, see :func:`~openigrt.iod.dataset_io.read_file`)."""
    out = []
    memo = ConversionMemo()
    for item in items:
        out.append(read_file(item, defer_pixels=True, memo=memo) if isinstance(item, str | Path) else as_dicom_file(item))
    return out


def group_ct_series(items: Iterable[DicomFile | Dataset | str | Path]) -> dict[str, list[DicomFile]]:
    """CT Image objects of *items* by Series Instance UID (other SOP classes are ignored)."""
    groups: dict[str, list[DicomFile]] = {}
    for f in _as_files(items):
        if f.sop_class_uid != str(CTImageStorage):
            continue
        uid = str(f.dataset.get("SeriesInstanceUID", "") or "")
        if not uid:
            raise DicomInputError(f"{f.source}: (0020,000E) Series Instance UID is missing")
        groups.setdefault(uid, []).append(f)
    return groups


@dataclass(frozen=True)
class _Plane:
    rows: int
    cols: int
    spacing: tuple[float, float]  # (row spacing, column spacing)
    row_dir: NDArray[np.float64]
    col_dir: NDArray[np.float64]


def _plane(f: DicomFile) -> _Plane:
    r = AttributeReader(f.dataset, f.source)
    iop = np.asarray(r.floats("ImageOrientationPatient", 6))
    row_dir, col_dir = iop[:3], iop[3:]
    if abs(np.linalg.norm(row_dir) - 1) > 1e-3 or abs(np.linalg.norm(col_dir) - 1) > 1e-3 or abs(
            row_dir @ col_dir) > 1e-3:
        raise DicomInputError(f"{f.source}: (0020,0037) Image Orientation (Patient) {iop.tolist()} is not two "
                              "orthogonal unit vectors")
    ps = r.floats("PixelSpacing", 2)
    if min(ps) <= 0:
        raise DicomInputError(f"{f.source}: (0028,0030) Pixel Spacing {ps} must be positive")
    return _Plane(r.int("Rows"), r.int("Columns"), (ps[0], ps[1]), row_dir / np.linalg.norm(row_dir),
                  col_dir / np.linalg.norm(col_dir))


_PLANE_TAGS = tuple(Tag(k) for k in ("ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"))


class _Planes:
    """:func:`_plane` of each file, decoded once per distinct raw header bytes (the slices of a series
    share them; a flaw in them is reported for the first file that has it, as without the memo)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, ...], _Plane] = {}

    def __call__(self, f: DicomFile) -> _Plane:
        raws = [f.dataset.get_item(t) for t in _PLANE_TAGS]
        if not all(isinstance(r, RawDataElement) and r.value is not None for r in raws):
            return _plane(f)
        key = tuple((r.VR, r.is_little_endian, r.is_implicit_VR, r.value) for r in raws)
        if key not in self._seen:
            self._seen[key] = _plane(f)
        return self._seen[key]


def read_ct_series(items: Iterable[DicomFile | Dataset | str | Path], *, series_instance_uid: str | None = None,
                   uniformity_mm: float = 0.01) -> CTSeries:
    """Read one CT series into a :class:`CTSeries` (see the module docstring).

    Parameters
    ----------
    items
        Files, paths or Datasets; must hold exactly one CT series unless *series_instance_uid*
        picks one.
    uniformity_mm
        Slice gaps differing by at most this from the median count as uniform
        (``PlanTolerances.slice_spacing_uniformity_mm``).

    Raises
    ------
    DicomInputError
        No CT, several series, slices of different size/orientation/spacing, duplicate positions,
        pixel data that cannot be decoded.
    """
    ordered = _ordered(items, series_instance_uid)
    geometry = _geometry(ordered, uniformity_mm)
    files, plane, along = ordered.files, ordered.plane, ordered.along
    array = np.empty((len(files), plane.rows, plane.cols), np.float32)
    scratch = _Scratch()
    padding = sum(_slice_hu(f, array[k], scratch) for k, f in enumerate(files))
    resampled = not geometry.uniform_spacing
    if resampled:
        array = _resample_z(array, along - along[0], geometry.spacing_mm[2])
    volume = Volume(array, geometry.origin_mm, geometry.spacing_mm, geometry.direction)
    fields = {f.name: getattr(geometry, f.name) for f in dataclasses.fields(CTSeriesGeometry)}
    return CTSeries(**fields, volume=volume, resampled=resampled, padding_voxels=padding)


def read_ct_geometry(items: Iterable[DicomFile | Dataset | str | Path], *, series_instance_uid: str | None = None,
                     uniformity_mm: float = 0.01) -> CTSeriesGeometry:
    """Everything :func:`read_ct_series` finds except the voxels; the same errors, plus a Pixel
    Data check: native slices of the expected length are not read at all, any other slice is
    decoded and dropped (compressed series: one slice in memory at a time)."""
    ordered = _ordered(items, series_instance_uid)
    for f in ordered.files:
        _check_pixel_data(f, ordered.plane)
    return _geometry(ordered, uniformity_mm)


@dataclass(frozen=True)
class _Ordered:
    uid: str
    files: list[DicomFile]
    plane: _Plane
    positions: list[NDArray[np.float64]]
    along: NDArray[np.float64]
    gaps: NDArray[np.float64]


def _ordered(items: Iterable[DicomFile | Dataset | str | Path], series_instance_uid: str | None) -> _Ordered:
    """The one series' slices, checked for a common plane and sorted along the normal."""
    groups = group_ct_series(items)
    if series_instance_uid is not None:
        groups = {k: v for k, v in groups.items() if k == series_instance_uid}
    if not groups:
        raise DicomInputError("no CT Image slices found" + (f" of series {series_instance_uid}"
                                                            if series_instance_uid else ""))
    if len(groups) > 1:
        raise DicomInputError(f"{len(groups)} CT series given ({', '.join(sorted(groups))}); choose one")
    uid, files = next(iter(groups.items()))
    for f in files:
        check_sop_class(f, str(CTImageStorage))
    planes = _Planes()
    plane = planes(files[0])
    for f in files[1:]:
        _same_plane(plane, planes(f), f.source)
    normal = np.cross(plane.row_dir, plane.col_dir)
    positions = [np.asarray(AttributeReader(f.dataset, f.source).floats("ImagePositionPatient", 3)) for f in files]
    order = np.argsort([p @ normal for p in positions], kind="stable")
    files = [files[i] for i in order]
    positions = [positions[i] for i in order]
    along = np.array([p @ normal for p in positions])
    gaps = np.diff(along)
    if gaps.size and gaps.min() < DUPLICATE_SLICE_MM:
        i = int(np.argmin(gaps))
        raise DicomInputError(f"{files[i].source} and {files[i + 1].source}: two slices at the same position "
                              f"{along[i]:.3f} mm along the slice normal")
    return _Ordered(uid, files, plane, positions, along, gaps)


def _same_plane(a: _Plane, b: _Plane, where: str) -> None:
    if (a.rows, a.cols) != (b.rows, b.cols):
        raise DicomInputError(f"{where}: {b.rows}x{b.cols} pixels, other slices of the series have {a.rows}x{a.cols}")
    if not np.allclose(a.spacing, b.spacing, atol=1e-4):
        raise DicomInputError(f"{where}: (0028,0030) Pixel Spacing {b.spacing} differs from the series' {a.spacing}")
    if not (np.allclose(a.row_dir, b.row_dir, atol=ORIENTATION_TOLERANCE)
            and np.allclose(a.col_dir, b.col_dir, atol=ORIENTATION_TOLERANCE)):
        raise DicomInputError(f"{where}: (0020,0037) Image Orientation (Patient) differs from the series'")


class _Scratch:
    """One reusable buffer for the raw bytes of the slice being decoded."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def view(self, nbytes: int) -> memoryview:
        if len(self.buffer) < nbytes:
            self.buffer = bytearray(nbytes)
        return memoryview(self.buffer)[:nbytes]


def _pixel_length(f: DicomFile) -> int | None:
    """Length of the Pixel Data value in bytes (None: encapsulated or absent)."""
    if f.pixel_data is not None:
        return f.pixel_data.length
    if "PixelData" not in f.dataset:
        return None
    elem = f.dataset["PixelData"]
    return len(elem.value) if isinstance(elem.value, bytes | bytearray) and not elem.is_undefined_length else None


def _check_pixel_data(f: DicomFile, plane: _Plane) -> None:
    """Header-only when the pixel data is native and of the expected length; any other slice is
    decoded (and dropped) as :func:`read_ct_series` would, so the errors are the same."""
    layout = native_layout(f.dataset, _syntax(f), _pixel_length(f))
    if layout is not None and (layout.rows, layout.columns) == (plane.rows, plane.cols):
        return
    stored = _stored(f, _Scratch())
    if stored.shape != (plane.rows, plane.cols):
        raise DicomInputError(f"{f.source}: (7FE0,0010) Pixel Data holds {stored.shape}, expected "
                              f"{(plane.rows, plane.cols)}")


def _syntax(f: DicomFile) -> str | None:
    """The transfer syntax the pixel data is in (an in-memory Dataset without file meta: native
    Explicit VR LE, as :func:`~openigrt.iod.dataset_io.decode_pixels` assumes)."""
    if f.transfer_syntax_uid is None and f.pixel_data is None:
        return EXPLICIT_VR_LE
    return f.transfer_syntax_uid


def _stored(f: DicomFile, scratch: _Scratch) -> NDArray[Any]:
    """The stored values of slice *f*: fast for native pixel data, else pydicom's decoder."""
    layout: NativeLayout | None = native_layout(f.dataset, _syntax(f), _pixel_length(f))
    if layout is not None and f.pixel_data is not None:
        buf = scratch.view(layout.nbytes)
        f.pixel_data.read_into(buf)
        return stored_values(layout, buf)
    if layout is not None:
        return stored_values(layout, f.dataset.PixelData)
    if f.pixel_data is not None and f.path is not None:  # located but compressed/unusual: read it whole
        f = read_file(f.path)
    return decode_pixels(f)


def _slice_hu(f: DicomFile, out: NDArray[np.float32], scratch: _Scratch) -> int:
    """Write slice *f* in HU into *out* (rows, cols); return the number of padding pixels."""
    r = AttributeReader(f.dataset, f.source)
    stored = _stored(f, scratch)
    if stored.shape != out.shape:
        raise DicomInputError(f"{f.source}: (7FE0,0010) Pixel Data holds {stored.shape}, expected {out.shape}")
    slope = np.float32(r.opt_float("RescaleSlope") or 1.0)
    if slope == 1.0:
        out[...] = stored  # exact, and what stored * 1.0 gives
    else:
        np.multiply(stored, slope, out=out, casting="unsafe")
    out += np.float32(r.opt_float("RescaleIntercept") or 0.0)
    padding = r.opt_int("PixelPaddingValue") if "PixelPaddingValue" in f.dataset else None
    if padding is None:
        return 0
    mask = stored == padding
    out[mask] = PADDING_HU
    return int(mask.sum())


def _geometry(o: _Ordered, uniformity_mm: float) -> CTSeriesGeometry:
    files, plane, positions, gaps = o.files, o.plane, o.positions, o.gaps
    issues = [i for f in files for i in f.issues]
    origin = positions[0]
    in_plane = [np.array([(p - origin) @ plane.row_dir, (p - origin) @ plane.col_dir]) for p in positions]
    max_offset = float(max(np.abs(v).max() for v in in_plane)) if in_plane else 0.0
    uniform, nz = True, len(files)
    if gaps.size:
        dz = float(np.median(gaps))
        uniform = bool(np.abs(gaps - dz).max() <= uniformity_mm)
        if not uniform:
            nz = _resampled_count(o.along - o.along[0], dz)
    else:
        r = AttributeReader(files[0].dataset, files[0].source)
        dz = r.opt_float("SpacingBetweenSlices") or r.opt_float("SliceThickness") or 1.0
        issues.append(f"{files[0].source}: single-slice series; slice spacing {dz} mm taken from "
                      "Spacing Between Slices / Slice Thickness")
    direction = np.column_stack([plane.row_dir, plane.col_dir, np.cross(plane.row_dir, plane.col_dir)])
    first = AttributeReader(files[0].dataset, files[0].source)
    slices = tuple(
        CTSlice(f.sop_instance_uid, f.source, tuple(float(v) for v in p), float(a),  # type: ignore[arg-type]
                AttributeReader(f.dataset, f.source).opt_str("FrameOfReferenceUID"),
                AttributeReader(f.dataset, f.source).opt_int("InstanceNumber"))
        for f, p, a in zip(files, positions, o.along, strict=True))
    return CTSeriesGeometry(
        series_instance_uid=o.uid, patient_study=PatientStudy.from_reader(first), slices=slices,
        shape=(nz, plane.rows, plane.cols), origin_mm=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        spacing_mm=(float(plane.spacing[1]), float(plane.spacing[0]), float(dz)), direction=direction,
        slice_gaps_mm=tuple(float(g) for g in gaps), uniform_spacing=uniform, max_in_plane_offset_mm=max_offset,
        patient_position=first.opt_str("PatientPosition"), issues=tuple(issues))


def _resampled_count(z: NDArray[np.float64], dz: float) -> int:
    """Number of slices ``0, dz, 2dz, …`` up to the last position *z* (ascending, from 0)."""
    return int(np.floor(z[-1] / dz + 1e-6)) + 1


def _resample_z(array: NDArray[np.float32], z: NDArray[np.float64], dz: float) -> NDArray[np.float32]:
    """Linear interpolation of slices at positions *z* (ascending, from 0) onto ``0, dz, 2dz, …``."""
    n = _resampled_count(z, dz)
    target = np.arange(n) * dz
    upper = np.clip(np.searchsorted(z, target, side="right"), 1, len(z) - 1)
    lower = upper - 1
    w = ((target - z[lower]) / (z[upper] - z[lower])).astype(np.float32)[:, None, None]
    return (array[lower] * (1 - w) + array[upper] * w).astype(np.float32)
