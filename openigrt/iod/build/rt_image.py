"""RT Image builders: acquired kV/MV projections and cine (SPEC IOD-4), reference DRRs (SIM-1).

PS3.3 A.17 (RT Image IOD) and C.8.8.2 (RT Image module). Inputs are frozen dataclasses that
validate themselves (:class:`RTImageGeometry`, :class:`Exposure`, :class:`BeamLimitingDevice`,
:class:`Rescale`, :class:`Cine`); the builders check the combination and copy patient and study
from the referenced RT (Ion) Plan.

Geometry conventions (IEC 61217, what ``sim`` and the plan reader use):

* ``rt_image_position_mm`` = RT Image Position (3002,0012): x, y of the **centre** of the top-left
  pixel in the IEC X-RAY IMAGE RECEPTOR system, mm; :func:`centered_rt_image_position` gives the
  value for an image centred on the receptor axis.
* ``image_plane_pixel_spacing_mm`` = (row spacing, column spacing) at the receptor plane.
* RT Image Orientation (3002,0010) is written ``1\\0\\0\\0\\-1\\0`` for the NORMAL plane: rows run
  along +X of the receptor, columns along −Y.

Acquired images (IOD-4): Image Type ``ORIGINAL\\PRIMARY\\PORTAL`` (``…\\ACQUIRED_DOSE`` for portal
dose), Conversion Type ``DI``, Reported Values Origin ``ACTUAL``, Primary Dosimeter Unit ``MU``
(MV) or ``MINUTE`` (kV), Fraction Number 0, one Exposure Sequence item, Modality LUT rule:
portal dose keeps Rescale Type ``CU``, ``Gy/MU``, ``RD`` and writes ``US`` for any other type;
other images keep the given rescale values. Multi-frame cine: Number of Frames, Frame
Increment Pointer, Frame Time or Frame Time Vector, Cine Rate and an empty Multiplexed Audio
Channels Description Code Sequence; optionally MPEG2 MP@ML (:mod:`.mpeg2`).

Reference DRRs (SIM-1): Image Type ``DERIVED\\SECONDARY\\DRR``, Conversion Type ``WSD``.
Both write private RT Image Isocenter Position (3273,xx00) and Patient Position (3273,xx01).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from openigrt.config import Settings
from openigrt.iod.build._values import ImagerValues, coerce_enum
from openigrt.iod.build.common import (
    MPEG2_MPML,
    PLAN_CLASSES,
    RT_IMAGE_STORAGE,
    PatientStudy,
    SeriesInfo,
    add_private,
    build_error,
    check_angle,
    check_number,
    check_text,
    check_uid,
    check_vector,
    content_date_time,
    ds_value,
    ds_values,
    new_dataset,
    now,
    source_value,
    write_frame_of_reference,
)
from openigrt.iod.build.mpeg2 import encode_mpeg2
from openigrt.iod.enum import PatientPositionValues, RescaleTypeValues, RTBeamLimitingDeviceTypeValues
from openigrt.iod.private import RT_IMAGE_ISOCENTER_POSITION, RT_IMAGE_PATIENT_POSITION
from openigrt.uids import new_uid

#: RT Image Orientation of a NORMAL image plane (row +X, column -Y of the receptor).
NORMAL_RT_IMAGE_ORIENTATION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
#: Rescale types kept on portal dose images; any other becomes US (SPEC IOD-4).
PORTAL_DOSE_RESCALE_TYPES = frozenset({RescaleTypeValues.CU.value, RescaleTypeValues.GY_PER_MU.value,
                                       RescaleTypeValues.RD.value})
#: Primary Dosimeter Unit per imager (SPEC IOD-4).
PRIMARY_DOSIMETER_UNIT = {ImagerValues.MV: "MU", ImagerValues.KV: "MINUTE"}
_JAW_TYPES = frozenset({"X", "Y", "ASYMX", "ASYMY"})
_SYMMETRIC_TOL_MM = 1e-6


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class BeamLimitingDevice:
    """One Beam Limiting Device Sequence item: jaws (X, Y, ASYMX, ASYMY) or an MLC."""

    rt_beam_limiting_device_type: RTBeamLimitingDeviceTypeValues | str
    leaf_jaw_positions_mm: tuple[float, ...]

    def __post_init__(self) -> None:
        kind = coerce_enum(RTBeamLimitingDeviceTypeValues, self.rt_beam_limiting_device_type,
                           "RTBeamLimitingDeviceType")
        object.__setattr__(self, "rt_beam_limiting_device_type", kind)
        pos = np.asarray(self.leaf_jaw_positions_mm, dtype=float).ravel()
        if pos.size < 2 or pos.size % 2 or not np.all(np.isfinite(pos)):
            raise build_error("LeafJawPositions", f"need an even number (>= 2) of finite positions, got {pos.size}")
        if kind.value in _JAW_TYPES:
            if pos.size != 2 or pos[0] > pos[1]:
                raise build_error("LeafJawPositions", f"{kind.value} jaws need 2 positions with jaw 1 <= jaw 2, got {pos}")
            if kind.value in ("X", "Y") and abs(pos[0] + pos[1]) > _SYMMETRIC_TOL_MM:
                raise build_error("LeafJawPositions", f"symmetric {kind.value} jaws need -a, +a, got {pos}; use ASYM{kind.value}")
        object.__setattr__(self, "leaf_jaw_positions_mm", tuple(float(p) for p in pos))

    @property
    def number_of_leaf_jaw_pairs(self) -> int:
        return len(self.leaf_jaw_positions_mm) // 2

    def to_item(self) -> Dataset:
        item = Dataset()
        item.RTBeamLimitingDeviceType = self.rt_beam_limiting_device_type.value  # type: ignore[union-attr]
        item.NumberOfLeafJawPairs = self.number_of_leaf_jaw_pairs
        item.LeafJawPositions = ds_values(self.leaf_jaw_positions_mm)
        return item


@dataclass(frozen=True)
class Exposure:
    """The single Exposure Sequence item of an acquired image (SPEC IOD-4).

    ``kvp`` in kV (an MV beam gives its nominal energy, e.g. 6000); ``meterset_exposure`` in the
    Primary Dosimeter Unit (MU for MV, minutes for kV); ``xray_tube_current_ma`` and
    ``exposure_time_ms`` are required for kV images (IS, integers).
    """

    kvp: float
    meterset_exposure: float
    beam_limiting_devices: tuple[BeamLimitingDevice, ...]
    xray_tube_current_ma: int | None = None
    exposure_time_ms: int | None = None

    def __post_init__(self) -> None:
        check_number("KVP", self.kvp, low=0.0, low_open=True)
        check_number("MetersetExposure", self.meterset_exposure, low=0.0)
        devices = tuple(self.beam_limiting_devices)
        if not devices or not all(isinstance(d, BeamLimitingDevice) for d in devices):
            raise build_error("BeamLimitingDeviceSequence", "need at least one BeamLimitingDevice (the jaws)")
        kinds = [d.rt_beam_limiting_device_type for d in devices]
        if any(k.value not in _JAW_TYPES for k in kinds):  # type: ignore[union-attr]
            raise build_error("RTBeamLimitingDeviceType", "the Exposure Sequence lists the jaws only (X, Y, ASYMX, "
                              f"ASYMY; SPEC IOD-4), got {[k.value for k in kinds]}")  # type: ignore[union-attr]
        if len(set(kinds)) != len(kinds):
            raise build_error("RTBeamLimitingDeviceType", f"each device type at most once, got {[k.value for k in kinds]}")  # type: ignore[union-attr]
        object.__setattr__(self, "beam_limiting_devices", devices)
        for name, kw in (("xray_tube_current_ma", "XRayTubeCurrent"), ("exposure_time_ms", "ExposureTime")):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0):
                raise build_error(kw, f"must be a non-negative integer (IS), got {v!r}")


@dataclass(frozen=True)
class RTImageGeometry:
    """Full RT Image geometry (SPEC IOD-4, PLAN-5); lengths in mm, angles in degrees (IEC 61217)."""

    gantry_angle_deg: float
    beam_limiting_device_angle_deg: float
    patient_support_angle_deg: float
    table_top_vertical_position_mm: float
    table_top_longitudinal_position_mm: float
    table_top_lateral_position_mm: float
    isocenter_position_mm: tuple[float, float, float]
    patient_position: PatientPositionValues | str
    radiation_machine_sad_mm: float
    rt_image_sid_mm: float
    image_plane_pixel_spacing_mm: tuple[float, float]
    rt_image_position_mm: tuple[float, float]
    xray_image_receptor_translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    xray_image_receptor_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        for name, kw in (("gantry_angle_deg", "GantryAngle"), ("beam_limiting_device_angle_deg", "BeamLimitingDeviceAngle"),
                         ("patient_support_angle_deg", "PatientSupportAngle"),
                         ("xray_image_receptor_angle_deg", "XRayImageReceptorAngle")):
            object.__setattr__(self, name, check_angle(kw, getattr(self, name)))
        for name, kw in (("table_top_vertical_position_mm", "TableTopVerticalPosition"),
                         ("table_top_longitudinal_position_mm", "TableTopLongitudinalPosition"),
                         ("table_top_lateral_position_mm", "TableTopLateralPosition")):
            object.__setattr__(self, name, check_number(kw, getattr(self, name)))
        if self.isocenter_position_mm is None:
            raise build_error("IsocenterPosition", "required (x, y, z in the image's Frame of Reference, mm)")
        object.__setattr__(self, "isocenter_position_mm", check_vector("IsocenterPosition", self.isocenter_position_mm, 3))
        object.__setattr__(self, "patient_position", coerce_enum(PatientPositionValues, self.patient_position, "PatientPosition"))
        sad = check_number("RadiationMachineSAD", self.radiation_machine_sad_mm, low=0.0, low_open=True)
        sid = check_number("RTImageSID", self.rt_image_sid_mm, low=0.0, low_open=True)
        object.__setattr__(self, "radiation_machine_sad_mm", sad)
        object.__setattr__(self, "rt_image_sid_mm", sid)
        spacing = check_vector("ImagePlanePixelSpacing", self.image_plane_pixel_spacing_mm, 2)
        if min(spacing) <= 0:
            raise build_error("ImagePlanePixelSpacing", f"must be positive, got {spacing}")
        object.__setattr__(self, "image_plane_pixel_spacing_mm", spacing)
        if self.rt_image_position_mm is None:
            raise build_error("RTImagePosition", "required; use centered_rt_image_position() for a centred image")
        object.__setattr__(self, "rt_image_position_mm", check_vector("RTImagePosition", self.rt_image_position_mm, 2))
        object.__setattr__(self, "xray_image_receptor_translation_mm",
                           check_vector("XRayImageReceptorTranslation", self.xray_image_receptor_translation_mm, 3))


@dataclass(frozen=True)
class Rescale:
    """Modality LUT: ``output = slope * stored + intercept`` in units ``rescale_type``."""

    rescale_slope: float
    rescale_intercept: float
    rescale_type: str

    def __post_init__(self) -> None:
        slope = check_number("RescaleSlope", self.rescale_slope)
        if slope == 0:
            raise build_error("RescaleSlope", "must not be 0")
        check_number("RescaleIntercept", self.rescale_intercept)
        check_text("RescaleType", self.rescale_type, max_len=64)


@dataclass(frozen=True)
class Cine:
    """Cine timing of a multi-frame image: exactly one of Frame Time or Frame Time Vector (ms)."""

    cine_rate: int
    frame_time_ms: float | None = None
    frame_time_vector_ms: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cine_rate, bool) or not isinstance(self.cine_rate, int | np.integer) or self.cine_rate <= 0:
            raise build_error("CineRate", f"must be a positive integer (frames/s), got {self.cine_rate!r}")
        if (self.frame_time_ms is None) == (self.frame_time_vector_ms is None):
            raise build_error("FrameIncrementPointer", "give exactly one of FrameTime or FrameTimeVector")
        if self.frame_time_ms is not None:
            check_number("FrameTime", self.frame_time_ms, low=0.0, low_open=True)
        else:
            vec = np.asarray(self.frame_time_vector_ms, dtype=float).ravel()
            if vec.size < 1 or not np.all(np.isfinite(vec)) or np.any(vec < 0):
                raise build_error("FrameTimeVector", "need finite non-negative increments (ms)")
            object.__setattr__(self, "frame_time_vector_ms", tuple(float(v) for v in vec))


def centered_rt_image_position(rows: int, columns: int, image_plane_pixel_spacing_mm: ArrayLike) -> tuple[float, float]:
    """RT Image Position of an image centred on the receptor axis (centre of the top-left pixel).

    >>> centered_rt_image_position(512, 512, (0.9765625, 0.9765625))
    (-249.51171875, 249.51171875)
    """
    row_mm, col_mm = (float(v) for v in np.asarray(image_plane_pixel_spacing_mm, dtype=float).ravel()[:2])
    return (-(columns - 1) / 2 * col_mm, (rows - 1) / 2 * row_mm)


# --------------------------------------------------------------------------- builders
def build_acquired_rt_image(
    *,
    pixel_array: NDArray[np.generic],
    imager: ImagerValues | str,
    rt_image_label: str,
    geometry: RTImageGeometry,
    exposure: Exposure,
    plan: Dataset,
    referenced_beam_number: int,
    frame_of_reference_uid: str,
    settings: Settings,
    rt_image_description: str = "",
    portal_dose: bool = False,
    rescale: Rescale | None = None,
    cine: Cine | None = None,
    mpeg2: bool = False,
    start_cumulative_meterset_weight: float | None = None,
    instance_number: int = 1,
    content_datetime: datetime | None = None,
) -> Dataset:
    """An acquired kV or MV RT Image, single- or multi-frame (SPEC IOD-4).

    Parameters
    ----------
    pixel_array
        ``(rows, columns)`` or ``(frames, rows, columns)`` of ``uint16`` or ``uint8`` stored values
        (``uint8`` only with *mpeg2*).
    imager
        ``KV`` or ``MV``: sets Primary Dosimeter Unit (MINUTE / MU) and which exposure values
        are required.
    rt_image_label
        The image id (SH, at most 16 characters).
    plan, referenced_beam_number
        The RT (Ion) Plan the image belongs to (patient and study are copied from it) and the
        number of one of its beams.
    frame_of_reference_uid
        The session's (treatment room) Frame of Reference.
    portal_dose, rescale
        Portal dose image (Image Type value 4 ``ACQUIRED_DOSE``; *rescale* required, its type
        mapped by the SPEC rule) or any other image (rescale kept as given, optional).
    cine, mpeg2
        Timing of a multi-frame image (required when there is more than one frame) and whether
        to encode it as MPEG2 MP@ML.
    start_cumulative_meterset_weight
        MV only (Start Cumulative Meterset Weight, 300C,0008).
    """
    kind = coerce_enum(ImagerValues, imager, "Imager (KV or MV)")
    frames = _check_pixels(pixel_array, mpeg2=mpeg2)
    _check_cine(cine, frames.shape[0], mpeg2=mpeg2)
    _check_exposure_for(kind, exposure)
    if portal_dose and rescale is None:
        raise build_error("RescaleType", "a portal dose image needs Rescale Slope/Intercept/Type")
    if start_cumulative_meterset_weight is not None and kind is ImagerValues.KV:
        raise build_error("StartCumulativeMetersetWeight", "is written for MV images only")
    when = content_datetime or now()
    ds = _start(plan=plan, settings=settings, frame_of_reference_uid=frame_of_reference_uid, when=when,
                transfer_syntax_uid=MPEG2_MPML if mpeg2 else None)
    value4 = ["ACQUIRED_DOSE"] if portal_dose else []
    _write_general_image(ds, ["ORIGINAL", "PRIMARY", "PORTAL", *value4], instance_number, when)
    ds.ConversionType = "DI"
    ds.ReportedValuesOrigin = "ACTUAL"
    _write_rt_image(ds, label=rt_image_label, description=rt_image_description, geometry=geometry,
                    plan=plan, beam_number=referenced_beam_number)
    ds.PrimaryDosimeterUnit = PRIMARY_DOSIMETER_UNIT[kind]
    ds.FractionNumber = 0
    if kind is ImagerValues.MV:
        ds.StartCumulativeMetersetWeight = ds_value(
            check_number("StartCumulativeMetersetWeight", start_cumulative_meterset_weight or 0.0, low=0.0))
    ds.ExposureSequence = [_exposure_item(kind, exposure)]
    _write_modality_lut(ds, rescale, portal_dose=portal_dose)
    _write_pixels(ds, frames, cine=cine, mpeg2=mpeg2)
    _write_private(ds, settings, geometry)
    return ds


def build_reference_drr(
    *,
    pixel_array: NDArray[np.generic],
    rt_image_label: str,
    geometry: RTImageGeometry,
    plan: Dataset,
    referenced_beam_number: int,
    settings: Settings,
    frame_of_reference_uid: str | None = None,
    rt_image_description: str = "",
    primary_dosimeter_unit: str = "MU",
    beam_limiting_devices: tuple[BeamLimitingDevice, ...] = (),
    rescale: Rescale | None = None,
    instance_number: int = 1,
    content_datetime: datetime | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """A reference DRR RT Image for the phantom (SIM-1, read back under PLAN-5).

    Image Type ``DERIVED\\SECONDARY\\DRR``, Conversion Type ``WSD``, RT Image Plane ``NORMAL``,
    full *geometry*, Referenced RT Plan + Beam. The Frame of Reference defaults to the plan's
    (the planning CT's). *beam_limiting_devices* (the beam's jaws) go into one Exposure Sequence
    item when given. *sop_instance_uid* lets the plan reference the DRR before it is built.
    """
    frames = _check_pixels(pixel_array, mpeg2=False)
    if frames.shape[0] != 1:
        raise build_error("NumberOfFrames", "a DRR has one frame")
    for_uid = frame_of_reference_uid or str(source_value(plan, "FrameOfReferenceUID", "RT Plan"))
    if primary_dosimeter_unit not in ("MU", "MINUTE"):
        raise build_error("PrimaryDosimeterUnit", f"must be MU or MINUTE, got {primary_dosimeter_unit!r}")
    when = content_datetime or now()
    ds = _start(plan=plan, settings=settings, frame_of_reference_uid=for_uid, when=when, transfer_syntax_uid=None,
                sop_instance_uid=sop_instance_uid)
    _write_general_image(ds, ["DERIVED", "SECONDARY", "DRR"], instance_number, when)
    ds.ConversionType = "WSD"
    _write_rt_image(ds, label=rt_image_label, description=rt_image_description, geometry=geometry,
                    plan=plan, beam_number=referenced_beam_number)
    ds.PrimaryDosimeterUnit = primary_dosimeter_unit
    if beam_limiting_devices:
        item = Dataset()
        item.BeamLimitingDeviceSequence = [d.to_item() for d in beam_limiting_devices]
        item.NumberOfBlocks = 0
        ds.ExposureSequence = [item]
    _write_modality_lut(ds, rescale, portal_dose=False)
    _write_pixels(ds, frames, cine=None, mpeg2=False)
    _write_private(ds, settings, geometry)
    return ds


# --------------------------------------------------------------------------- checks
def _check_pixels(pixel_array: NDArray[np.generic], *, mpeg2: bool) -> NDArray[np.generic]:
    arr = np.asarray(pixel_array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise build_error("PixelData", f"expected (rows, columns) or (frames, rows, columns), got shape {arr.shape}")
    allowed = (np.uint8,) if mpeg2 else (np.uint16, np.uint8)
    if arr.dtype.type not in allowed:
        names = " or ".join(np.dtype(t).name for t in allowed)
        raise build_error("PixelData", f"stored values must be {names}{' for MPEG2' if mpeg2 else ''}, got {arr.dtype}")
    if arr.shape[1] > 65535 or arr.shape[2] > 65535:
        raise build_error("Rows", f"image too large: {arr.shape[1:]}")
    return arr


def _check_cine(cine: Cine | None, n_frames: int, *, mpeg2: bool) -> None:
    if n_frames > 1 and cine is None:
        raise build_error("FrameIncrementPointer", f"{n_frames} frames need cine timing (FrameTime or FrameTimeVector)")
    if mpeg2 and cine is None:
        raise build_error("FrameTime", "MPEG2 needs cine timing")
    if cine is not None and cine.frame_time_vector_ms is not None:
        if len(cine.frame_time_vector_ms) != n_frames:
            raise build_error("FrameTimeVector", f"{n_frames} frames need {n_frames} values, "
                              f"got {len(cine.frame_time_vector_ms)}")
        if mpeg2:
            raise build_error("FrameTimeVector", "MPEG2 MP@ML has a constant frame rate: give FrameTime")


def _check_exposure_for(kind: ImagerValues, exposure: Exposure) -> None:
    if not isinstance(exposure, Exposure):
        raise build_error("ExposureSequence", f"expected an Exposure, got {type(exposure).__name__}")
    for attr, kw in (("xray_tube_current_ma", "XRayTubeCurrent"), ("exposure_time_ms", "ExposureTime")):
        given = getattr(exposure, attr) is not None
        if kind is ImagerValues.KV and not given:
            raise build_error(kw, "required for a kV image")
        if kind is ImagerValues.MV and given:
            raise build_error(kw, "is written for kV images only (an MV image has no tube current/exposure time)")


# --------------------------------------------------------------------------- writers
def _start(*, plan: Dataset, settings: Settings, frame_of_reference_uid: str, when: datetime,
           transfer_syntax_uid: str | None, sop_instance_uid: str | None = None) -> Dataset:
    if str(source_value(plan, "SOPClassUID", "RT Plan")) not in PLAN_CLASSES:
        raise build_error("ReferencedRTPlanSequence", f"plan must be an RT Plan or RT Ion Plan, got SOP class {plan.SOPClassUID}")
    kwargs = {"transfer_syntax_uid": transfer_syntax_uid} if transfer_syntax_uid else {}
    ds = new_dataset(sop_class_uid=RT_IMAGE_STORAGE, settings=settings, patient_study=PatientStudy.from_datasets([plan]),
                     series=SeriesInfo(modality="RTIMAGE", series_instance_uid=new_uid(settings.uid_root)),
                     content_datetime=when, sop_instance_uid=sop_instance_uid, **kwargs)
    write_frame_of_reference(ds, check_uid("FrameOfReferenceUID", frame_of_reference_uid))
    return ds


def _write_general_image(ds: Dataset, image_type: list[str], instance_number: int, when: datetime) -> None:
    ds.ImageType = image_type
    ds.InstanceNumber = int(instance_number)
    ds.PatientOrientation = ""  # Type 2C, required (empty) because RT Image has no Image Plane module
    ds.AcquisitionNumber = 1
    content_date_time(ds, when)
    ds.AcquisitionDate = ds.ContentDate
    ds.AcquisitionTime = ds.ContentTime


def _write_rt_image(ds: Dataset, *, label: str, description: str, geometry: RTImageGeometry, plan: Dataset,
                    beam_number: int) -> None:
    if not isinstance(geometry, RTImageGeometry):
        raise build_error("RTImagePosition", f"expected an RTImageGeometry, got {type(geometry).__name__}")
    ds.RTImageLabel = check_text("RTImageLabel", label, max_len=16)
    if description:
        ds.RTImageDescription = check_text("RTImageDescription", description, max_len=1024)
    ds.RTImagePlane = "NORMAL"
    ds.XRayImageReceptorTranslation = ds_values(geometry.xray_image_receptor_translation_mm)
    ds.XRayImageReceptorAngle = ds_value(geometry.xray_image_receptor_angle_deg)
    ds.RTImageOrientation = ds_values(NORMAL_RT_IMAGE_ORIENTATION)
    ds.ImagePlanePixelSpacing = ds_values(geometry.image_plane_pixel_spacing_mm)
    ds.RTImagePosition = ds_values(geometry.rt_image_position_mm)
    beam = _plan_beam(plan, beam_number)
    ds.RadiationMachineName = str(beam.get("TreatmentMachineName", "") or "")
    ds.RadiationMachineSAD = ds_value(geometry.radiation_machine_sad_mm)
    ds.RTImageSID = ds_value(geometry.rt_image_sid_mm)
    ref = Dataset()
    ref.ReferencedSOPClassUID = plan.SOPClassUID
    ref.ReferencedSOPInstanceUID = check_uid("ReferencedSOPInstanceUID", source_value(plan, "SOPInstanceUID", "RT Plan"))
    ds.ReferencedRTPlanSequence = [ref]
    ds.ReferencedBeamNumber = int(beam_number)
    ds.GantryAngle = ds_value(geometry.gantry_angle_deg)
    ds.BeamLimitingDeviceAngle = ds_value(geometry.beam_limiting_device_angle_deg)
    ds.PatientSupportAngle = ds_value(geometry.patient_support_angle_deg)
    ds.TableTopVerticalPosition = ds_value(geometry.table_top_vertical_position_mm)
    ds.TableTopLongitudinalPosition = ds_value(geometry.table_top_longitudinal_position_mm)
    ds.TableTopLateralPosition = ds_value(geometry.table_top_lateral_position_mm)
    ds.IsocenterPosition = ds_values(geometry.isocenter_position_mm)
    ds.PatientPosition = geometry.patient_position.value  # type: ignore[union-attr]


def _plan_beam(plan: Dataset, beam_number: int) -> Dataset:
    if isinstance(beam_number, bool) or not isinstance(beam_number, int | np.integer):
        raise build_error("ReferencedBeamNumber", f"must be an integer, got {beam_number!r}")
    beams = list(plan.get("BeamSequence", None) or plan.get("IonBeamSequence", None) or [])
    for beam in beams:
        if int(beam.get("BeamNumber", -1)) == int(beam_number):
            return beam
    numbers = [int(b.get("BeamNumber", -1)) for b in beams]
    raise build_error("ReferencedBeamNumber", f"beam {beam_number} is not in plan {plan.get('SOPInstanceUID', '?')} "
                      f"(beams {numbers})")


def _exposure_item(kind: ImagerValues, exposure: Exposure) -> Dataset:
    item = Dataset()
    item.KVP = ds_value(exposure.kvp)
    if kind is ImagerValues.KV:
        item.XRayTubeCurrent = int(exposure.xray_tube_current_ma)  # type: ignore[arg-type]
        item.ExposureTime = int(exposure.exposure_time_ms)  # type: ignore[arg-type]
    item.MetersetExposure = ds_value(exposure.meterset_exposure)
    item.BeamLimitingDeviceSequence = [d.to_item() for d in exposure.beam_limiting_devices]
    item.NumberOfBlocks = 0
    return item


def portal_dose_rescale_type(rescale_type: str) -> str:
    """SPEC IOD-4: ``CU``, ``Gy/MU``, ``RD`` are kept on portal dose images, anything else is ``US``.

    >>> [portal_dose_rescale_type(t) for t in ("CU", "Gy/MU", "RD", "HU", "OD", "")]
    ['CU', 'Gy/MU', 'RD', 'US', 'US', 'US']
    """
    return rescale_type if rescale_type in PORTAL_DOSE_RESCALE_TYPES else RescaleTypeValues.US.value


def _write_modality_lut(ds: Dataset, rescale: Rescale | None, *, portal_dose: bool) -> None:
    if rescale is None:
        return
    if not isinstance(rescale, Rescale):
        raise build_error("RescaleType", f"expected a Rescale, got {type(rescale).__name__}")
    ds.RescaleIntercept = ds_value(rescale.rescale_intercept)
    ds.RescaleSlope = ds_value(rescale.rescale_slope)
    ds.RescaleType = portal_dose_rescale_type(rescale.rescale_type) if portal_dose else rescale.rescale_type


def _write_pixels(ds: Dataset, frames: NDArray[np.generic], *, cine: Cine | None, mpeg2: bool) -> None:
    n, rows, columns = frames.shape
    ds.Rows, ds.Columns = rows, columns
    if cine is not None:
        _write_cine(ds, cine, n)
    if mpeg2:
        assert cine is not None and cine.frame_time_ms is not None  # checked in _check_cine
        rate = Fraction(1000.0 / cine.frame_time_ms).limit_denominator(1001)
        stream = encode_mpeg2(frames, frame_rate=rate)  # type: ignore[arg-type]
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "YBR_PARTIAL_420"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_13818_2"
        raw = n * rows * columns
        ds.LossyImageCompressionRatio = ds_value(raw / max(len(stream.data), 1))
        ds.PixelData = encapsulate([stream.data], has_bot=False)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        return
    bits = frames.dtype.itemsize * 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    data = np.ascontiguousarray(frames).astype(frames.dtype.newbyteorder("<")).tobytes()
    ds.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    ds["PixelData"].VR = "OW" if bits == 16 else "OB"


def _write_cine(ds: Dataset, cine: Cine, n: int) -> None:
    ds.NumberOfFrames = n
    if cine.frame_time_ms is not None:
        ds.FrameTime = ds_value(cine.frame_time_ms)
        ds.FrameIncrementPointer = 0x00181063
    else:
        ds.FrameTimeVector = ds_values(cine.frame_time_vector_ms or ())
        ds.FrameIncrementPointer = 0x00181065
    ds.CineRate = int(cine.cine_rate)
    ds.MultiplexedAudioChannelsDescriptionCodeSequence = []


def _write_private(ds: Dataset, settings: Settings, geometry: RTImageGeometry) -> None:
    add_private(ds, settings, RT_IMAGE_ISOCENTER_POSITION, ds_values(geometry.isocenter_position_mm))
    add_private(ds, settings, RT_IMAGE_PATIENT_POSITION, geometry.patient_position.value)  # type: ignore[union-attr]
