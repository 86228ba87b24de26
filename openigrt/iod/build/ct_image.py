"""CT Image series builders (SPEC IOD-6; PS3.3 A.3, C.8.2.1, C.7.6.2).

One call turns a :class:`~openigrt.geometry.volume.Volume` of Hounsfield units into a list of
CT Image datasets, one per slice ``volume.array[k]``:

* Image Plane: Pixel Spacing = (row spacing, column spacing) = ``(dy, dx)``; Image Orientation
  (Patient) = the first two columns of ``volume.direction``; Image Position (Patient) of slice
  *k* = ``volume.index_to_patient_mm([0, 0, k])``; Slice Thickness = ``dz``; Slice Location =
  the position along the slice normal.
* Pixels: HU are rounded and stored as ``uint16`` with Rescale Intercept −1024 when they lie in
  [−1024, 64511] (the usual CT encoding), otherwise as ``int16`` with intercept 0 when they fit,
  else :class:`~openigrt.errors.BuildError`. Rescale Slope is 1, Rescale Type ``HU``.
* Image Type ``ORIGINAL\\PRIMARY\\AXIAL`` (``LOCALIZER`` accepted as value 3), Scan Options
  ``STANDARD``, Distance Source to Patient 1000, Gantry/Detector Tilt 0, couch and exposure
  parameters when known.

:func:`build_verification_ct_series` (the CBCT, IOD-6) copies patient and study from the source
datasets (the plan or the planning CT) and uses the session's Frame of Reference;
:func:`build_planning_ct_series` (the phantom, SIM-1) takes a new :class:`PatientStudy` and makes
a new Frame of Reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.geometry.volume import Volume
from openigrt.iod.build._values import coerce_enum
from openigrt.iod.build.common import (
    CT_IMAGE_STORAGE,
    PatientStudy,
    SeriesInfo,
    build_error,
    check_angle,
    check_number,
    check_text,
    check_uid,
    content_date_time,
    ds_value,
    ds_values,
    new_dataset,
    now,
    write_frame_of_reference,
)
from openigrt.iod.enum import PatientPositionValues
from openigrt.uids import new_uid

#: SPEC IOD-6 fixed values.
DISTANCE_SOURCE_TO_PATIENT_MM = 1000.0
GANTRY_DETECTOR_TILT_DEG = 0.0
SCAN_OPTIONS = "STANDARD"
#: HU encoding: uint16 with this intercept when the HU range allows it.
UNSIGNED_INTERCEPT = -1024.0
_IMAGE_TYPE_VALUE3 = ("AXIAL", "LOCALIZER")


@dataclass(frozen=True)
class CTAcquisition:
    """Acquisition parameters of a CT series; ``None`` = unknown (written empty or left out).

    Attributes follow the CT Image module (PS3.3 C.8.2.1): ``kvp`` (Type 2), the others Type 3.
    """

    kvp: float | None = None
    xray_tube_current_ma: int | None = None
    exposure_time_ms: int | None = None
    exposure_mas: int | None = None
    filter_type: str = ""
    generator_power_kw: int | None = None
    focal_spots_mm: float | None = None
    convolution_kernel: str = ""
    data_collection_diameter_mm: float | None = None
    reconstruction_diameter_mm: float | None = None
    distance_source_to_detector_mm: float | None = None

    def __post_init__(self) -> None:
        for name, kw in (("kvp", "KVP"), ("data_collection_diameter_mm", "DataCollectionDiameter"),
                         ("reconstruction_diameter_mm", "ReconstructionDiameter"),
                         ("distance_source_to_detector_mm", "DistanceSourceToDetector"),
                         ("focal_spots_mm", "FocalSpots")):
            if getattr(self, name) is not None:
                check_number(kw, getattr(self, name), low=0.0, low_open=True)
        for name, kw in (("xray_tube_current_ma", "XRayTubeCurrent"), ("exposure_time_ms", "ExposureTime"),
                         ("exposure_mas", "Exposure"), ("generator_power_kw", "GeneratorPower")):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int | np.integer) or v < 0):
                raise build_error(kw, f"must be a non-negative integer (IS), got {v!r}")
        check_text("FilterType", self.filter_type, max_len=16, required=False)
        check_text("ConvolutionKernel", self.convolution_kernel, max_len=16, required=False)


@dataclass(frozen=True)
class CouchPosition:
    """Couch of a CT acquisition: Table Height, Table Top Longitudinal/Lateral, Patient Support Angle."""

    table_height_mm: float
    table_top_longitudinal_position_mm: float
    table_top_lateral_position_mm: float
    patient_support_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        check_number("TableHeight", self.table_height_mm)
        check_number("TableTopLongitudinalPosition", self.table_top_longitudinal_position_mm)
        check_number("TableTopLateralPosition", self.table_top_lateral_position_mm)
        object.__setattr__(self, "patient_support_angle_deg",
                           check_angle("PatientSupportAngle", self.patient_support_angle_deg))


def build_verification_ct_series(
    *,
    volume: Volume,
    sources: Sequence[Dataset],
    frame_of_reference_uid: str,
    patient_position: PatientPositionValues | str,
    settings: Settings,
    couch: CouchPosition,
    acquisition: CTAcquisition = CTAcquisition(),
    series_description: str = "CBCT",
    image_type_value3: str = "AXIAL",
    content_datetime: datetime | None = None,
) -> list[Dataset]:
    """Verification CBCT slices (SPEC IOD-6), patient/study copied from *sources*.

    Parameters
    ----------
    volume
        HU on the reconstruction grid (see the module docstring for the mapping).
    sources
        Datasets to copy patient and study from (the RT Plan, the planning CT); all must share
        one Patient ID. Their Specific Character Set is kept.
    frame_of_reference_uid
        The treatment session's Frame of Reference (the acquired images').
    patient_position, couch, acquisition
        General Series Patient Position; Table Height/Top positions and Patient Support Angle;
        exposure parameters when known.
    """
    return _build_ct_series(
        volume=volume, patient_study=PatientStudy.from_datasets(sources),
        frame_of_reference_uid=check_uid("FrameOfReferenceUID", frame_of_reference_uid),
        patient_position=patient_position, settings=settings, couch=couch, acquisition=acquisition,
        series_description=series_description, image_type_value3=image_type_value3,
        content_datetime=content_datetime or now(),
    )


def build_planning_ct_series(
    *,
    volume: Volume,
    patient_study: PatientStudy,
    patient_position: PatientPositionValues | str,
    settings: Settings,
    couch: CouchPosition | None = None,
    acquisition: CTAcquisition = CTAcquisition(),
    series_description: str = "Planning CT",
    frame_of_reference_uid: str | None = None,
    content_datetime: datetime | None = None,
) -> list[Dataset]:
    """Planning CT series for the phantom (SIM-1): a new Frame of Reference unless one is given."""
    return _build_ct_series(
        volume=volume, patient_study=patient_study,
        frame_of_reference_uid=check_uid("FrameOfReferenceUID", frame_of_reference_uid or new_uid(settings.uid_root)),
        patient_position=patient_position, settings=settings, couch=couch, acquisition=acquisition,
        series_description=series_description, image_type_value3="AXIAL",
        content_datetime=content_datetime or now(),
    )


def encode_hu(array: NDArray[np.generic]) -> tuple[NDArray[np.generic], float]:
    """Round HU and choose the stored type: ``(stored, intercept)`` (module docstring rule)."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise build_error("PixelData", f"expected real HU values, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise build_error("PixelData", "the volume contains NaN or infinite HU values")
    hu = np.rint(a.astype(np.float64)) if np.issubdtype(a.dtype, np.floating) else a.astype(np.int64)
    lo, hi = float(hu.min()), float(hu.max())
    if lo >= UNSIGNED_INTERCEPT and hi <= 65535 + UNSIGNED_INTERCEPT:
        return (hu - UNSIGNED_INTERCEPT).astype(np.uint16), UNSIGNED_INTERCEPT
    if lo >= -32768 and hi <= 32767:
        return hu.astype(np.int16), 0.0
    raise build_error("PixelData", f"HU range [{lo}, {hi}] does not fit 16-bit storage")


def _build_ct_series(
    *, volume: Volume, patient_study: PatientStudy, frame_of_reference_uid: str,
    patient_position: PatientPositionValues | str, settings: Settings, couch: CouchPosition | None,
    acquisition: CTAcquisition, series_description: str, image_type_value3: str, content_datetime: datetime,
) -> list[Dataset]:
    if not isinstance(volume, Volume):
        raise build_error("PixelData", f"expected an openigrt.geometry.volume.Volume, got {type(volume).__name__}")
    position = coerce_enum(PatientPositionValues, patient_position, "PatientPosition")
    if image_type_value3 not in _IMAGE_TYPE_VALUE3:
        raise build_error("ImageType", f"value 3 must be one of {_IMAGE_TYPE_VALUE3}, got {image_type_value3!r}")
    check_text("SeriesDescription", series_description, max_len=64, required=False)
    stored, intercept = encode_hu(volume.array)
    series = SeriesInfo(modality="CT", series_instance_uid=new_uid(settings.uid_root),
                        series_description=series_description)
    normal = volume.direction[:, 2]
    out = []
    for k in range(volume.shape[0]):
        ds = new_dataset(sop_class_uid=CT_IMAGE_STORAGE, settings=settings, patient_study=patient_study,
                         series=series, content_datetime=content_datetime)
        ds.PatientPosition = position.value
        write_frame_of_reference(ds, frame_of_reference_uid)
        _write_image(ds, k, image_type_value3, content_datetime)
        position_mm = volume.index_to_patient_mm([[0, 0, k]])[0]
        _write_plane(ds, volume, position_mm, float(position_mm @ normal))
        _write_pixels(ds, stored[k], intercept)
        _write_ct_module(ds, acquisition, couch)
        out.append(ds)
    return out


def _write_image(ds: Dataset, k: int, value3: str, when: datetime) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY", value3]
    ds.InstanceNumber = k + 1
    ds.AcquisitionNumber = 1
    content_date_time(ds, when)
    ds.AcquisitionDate = ds.ContentDate
    ds.AcquisitionTime = ds.ContentTime


def _write_plane(ds: Dataset, volume: Volume, position_mm: NDArray[np.float64], location: float) -> None:
    d = volume.direction
    ds.PixelSpacing = ds_values((volume.spacing_mm[1], volume.spacing_mm[0]))
    ds.ImageOrientationPatient = ds_values((*d[:, 0], *d[:, 1]))
    ds.ImagePositionPatient = ds_values(position_mm)
    ds.SliceThickness = ds_value(volume.spacing_mm[2])
    ds.SliceLocation = ds_value(location)


def _write_pixels(ds: Dataset, plane: NDArray[np.generic], intercept: float) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in plane.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if plane.dtype == np.int16 else 0
    ds.RescaleIntercept = ds_value(intercept)
    ds.RescaleSlope = ds_value(1.0)
    ds.RescaleType = "HU"
    ds.PixelData = np.ascontiguousarray(plane).astype(plane.dtype.newbyteorder("<")).tobytes()


def _write_ct_module(ds: Dataset, acq: CTAcquisition, couch: CouchPosition | None) -> None:
    ds.KVP = ds_value(acq.kvp) if acq.kvp is not None else None
    ds.ScanOptions = SCAN_OPTIONS
    ds.DistanceSourceToPatient = ds_value(DISTANCE_SOURCE_TO_PATIENT_MM)
    ds.GantryDetectorTilt = ds_value(GANTRY_DETECTOR_TILT_DEG)
    for attr, kw in (("data_collection_diameter_mm", "DataCollectionDiameter"),
                     ("reconstruction_diameter_mm", "ReconstructionDiameter"),
                     ("distance_source_to_detector_mm", "DistanceSourceToDetector"),
                     ("focal_spots_mm", "FocalSpots")):
        if getattr(acq, attr) is not None:
            setattr(ds, kw, ds_value(getattr(acq, attr)))
    for attr, kw in (("xray_tube_current_ma", "XRayTubeCurrent"), ("exposure_time_ms", "ExposureTime"),
                     ("exposure_mas", "Exposure"), ("generator_power_kw", "GeneratorPower")):
        if getattr(acq, attr) is not None:
            setattr(ds, kw, int(getattr(acq, attr)))
    if acq.filter_type:
        ds.FilterType = acq.filter_type
    if acq.convolution_kernel:
        ds.ConvolutionKernel = acq.convolution_kernel
    if couch is not None:
        ds.TableHeight = ds_value(couch.table_height_mm)
        ds.TableTopLongitudinalPosition = ds_value(couch.table_top_longitudinal_position_mm)
        ds.TableTopLateralPosition = ds_value(couch.table_top_lateral_position_mm)
        ds.PatientSupportAngle = ds_value(couch.patient_support_angle_deg)
