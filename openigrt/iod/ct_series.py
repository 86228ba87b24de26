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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from openigrt.errors import DicomInputError
from openigrt.geometry.volume import Volume
from openigrt.iod.dataset_io import (
    AttributeReader,
    DicomFile,
    PatientStudy,
    as_dicom_file,
    check_sop_class,
    decode_pixels,
    read_file,
)

#: HU given to padding pixels (air).
PADDING_HU = -1000.0
#: Image Orientation (Patient) of two slices agrees within this (direction cosines).
ORIENTATION_TOLERANCE = 1e-4
#: Two slices closer than this along the normal are duplicates (mm).
DUPLICATE_SLICE_MM = 1e-3


@dataclass(frozen=True)
class CTSlice:
    """One slice of a series: identity and geometry, in the order of the volume."""

    sop_instance_uid: str
    source: str
    image_position_mm: tuple[float, float, float]
    position_along_normal_mm: float
    frame_of_reference_uid: str | None
    instance_number: int | None


@dataclass(frozen=True, eq=False)
class CTSeries:
    """A CT series read into a Volume, with the geometry facts PLAN-9 needs."""

    series_instance_uid: str
    patient_study: PatientStudy
    slices: tuple[CTSlice, ...]
    volume: Volume = field(repr=False)
    slice_gaps_mm: tuple[float, ...]
    uniform_spacing: bool
    resampled: bool
    max_in_plane_offset_mm: float
    padding_voxels: int
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


def _as_files(items: Iterable[DicomFile | Dataset | str | Path]) -> list[DicomFile]:
    out = []
    for item in items:
        out.append(read_file(item) if isinstance(item, str | Path) else as_dicom_file(item))
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
        No CT, several series, slices of different size/orientation/spacing, duplicate positions.
    """
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
    plane = _plane(files[0])
    for f in files[1:]:
        _same_plane(plane, _plane(f), f.source)
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
    return _assemble(uid, files, plane, positions, along, gaps, uniformity_mm)


def _same_plane(a: _Plane, b: _Plane, where: str) -> None:
    if (a.rows, a.cols) != (b.rows, b.cols):
        raise DicomInputError(f"{where}: {b.rows}x{b.cols} pixels, other slices of the series have {a.rows}x{a.cols}")
    if not np.allclose(a.spacing, b.spacing, atol=1e-4):
        raise DicomInputError(f"{where}: (0028,0030) Pixel Spacing {b.spacing} differs from the series' {a.spacing}")
    if not (np.allclose(a.row_dir, b.row_dir, atol=ORIENTATION_TOLERANCE)
            and np.allclose(a.col_dir, b.col_dir, atol=ORIENTATION_TOLERANCE)):
        raise DicomInputError(f"{where}: (0020,0037) Image Orientation (Patient) differs from the series'")


def _slice_hu(f: DicomFile, out: NDArray[np.float32]) -> int:
    """Write slice *f* in HU into *out* (rows, cols); return the number of padding pixels."""
    r = AttributeReader(f.dataset, f.source)
    stored = decode_pixels(f)
    if stored.shape != out.shape:
        raise DicomInputError(f"{f.source}: (7FE0,0010) Pixel Data holds {stored.shape}, expected {out.shape}")
    np.multiply(stored, np.float32(r.opt_float("RescaleSlope") or 1.0), out=out, casting="unsafe")
    out += np.float32(r.opt_float("RescaleIntercept") or 0.0)
    padding = r.opt_int("PixelPaddingValue") if "PixelPaddingValue" in f.dataset else None
    if padding is None:
        return 0
    mask = stored == padding
    out[mask] = PADDING_HU
    return int(mask.sum())


def _assemble(uid: str, files: list[DicomFile], plane: _Plane, positions: list[NDArray[np.float64]],
              along: NDArray[np.float64], gaps: NDArray[np.float64], uniformity_mm: float) -> CTSeries:
    issues = [i for f in files for i in f.issues]
    array = np.empty((len(files), plane.rows, plane.cols), np.float32)
    padding = sum(_slice_hu(f, array[k]) for k, f in enumerate(files))
    origin = positions[0]
    in_plane = [np.array([(p - origin) @ plane.row_dir, (p - origin) @ plane.col_dir]) for p in positions]
    max_offset = float(max(np.abs(v).max() for v in in_plane)) if in_plane else 0.0
    uniform, resampled = True, False
    if gaps.size:
        dz = float(np.median(gaps))
        uniform = bool(np.abs(gaps - dz).max() <= uniformity_mm)
        if not uniform:
            array, resampled = _resample_z(array, along - along[0], dz), True
    else:
        r = AttributeReader(files[0].dataset, files[0].source)
        dz = r.opt_float("SpacingBetweenSlices") or r.opt_float("SliceThickness") or 1.0
        issues.append(f"{files[0].source}: single-slice series; slice spacing {dz} mm taken from "
                      "Spacing Between Slices / Slice Thickness")
    direction = np.column_stack([plane.row_dir, plane.col_dir, np.cross(plane.row_dir, plane.col_dir)])
    volume = Volume(array, tuple(origin), (plane.spacing[1], plane.spacing[0], dz), direction)  # type: ignore[arg-type]
    first = AttributeReader(files[0].dataset, files[0].source)
    slices = tuple(
        CTSlice(f.sop_instance_uid, f.source, tuple(float(v) for v in p), float(a),  # type: ignore[arg-type]
                AttributeReader(f.dataset, f.source).opt_str("FrameOfReferenceUID"),
                AttributeReader(f.dataset, f.source).opt_int("InstanceNumber"))
        for f, p, a in zip(files, positions, along, strict=True))
    return CTSeries(uid, PatientStudy.from_reader(first), slices, volume, tuple(float(g) for g in gaps), uniform,
                    resampled, max_offset, padding, first.opt_str("PatientPosition"), tuple(issues))


def _resample_z(array: NDArray[np.float32], z: NDArray[np.float64], dz: float) -> NDArray[np.float32]:
    """Linear interpolation of slices at positions *z* (ascending, from 0) onto ``0, dz, 2dz, …``."""
    n = int(np.floor(z[-1] / dz + 1e-6)) + 1
    target = np.arange(n) * dz
    upper = np.clip(np.searchsorted(z, target, side="right"), 1, len(z) - 1)
    lower = upper - 1
    w = ((target - z[lower]) / (z[upper] - z[lower])).astype(np.float32)[:, None, None]
    return (array[lower] * (1 - w) + array[upper] * w).astype(np.float32)
