"""RT Image reader (PS3.3 A.17): geometry (PLAN-5), references, pixels with rescale, frames, curves.

:meth:`RTImage.from_dataset` reads a reference image (DRR) or an acquired image tolerantly and
eagerly. The geometry is what PLAN-5 asks for and what the virtual imager and the 2D matching
use:

* Image Plane Pixel Spacing (3002,0011) is ``(row spacing, column spacing)`` in mm **at the
  image plane** (distance RT Image SID from the source); at the isocenter plane multiply by
  ``SAD / SID`` (:meth:`RTImage.pixel_spacing_at_isocenter_mm`).
* RT Image Position (3002,0012) is the ``(x, y)`` in mm of the centre of the first pixel
  (upper left) in the image-plane coordinate system (PS3.3 C.8.8.2.3, +x right, +y up). It may
  be absent (PLAN-5): then the image is centred on the receptor axis and
  :attr:`RTImage.rt_image_position_mm` is computed as ``(-(cols-1)/2·dx, +(rows-1)/2·dy)``;
  :attr:`RTImage.rt_image_position_given` says which.
* Isocenter Position and Patient Position come from (300A,012C) and (0018,5100) when present,
  else from the private RT Image Isocenter Position / Patient Position (3273,xx00/xx01) that
  Eclipse writes in DRRs (IOD-8); both are kept.

Pixels are ``float32`` (``stored * slope + intercept``), shape ``(rows, cols)`` or
``(frames, rows, cols)``; MPEG2 cine (IOD-4) is decoded with PyAV (the luma mapped back to
0-255 grey, as the builder wrote it). Retired curves (50xx, IOD-5) are read into ``(N, dimensions)`` float64
arrays (for marker curves: pixel column, row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import RTImageStorage

from openigrt.config import DEFAULT_PRIVATE_CREATOR
from openigrt.errors import DicomInputError, XmlInterfaceError
from openigrt.iod import private
from openigrt.iod.dataset_io import (
    AttributeReader,
    DicomFile,
    PatientStudy,
    ReferencedInstance,
    as_dicom_file,
    check_sop_class,
    decode_pixels,
)
from openigrt.iod.xml_interface import ExtendedVAPlanInterface, RTImageExtendedInterface, parse_extended_interface

#: Curve Data Value Representation (50xx,0103) -> numpy dtype (PS3.3-2004 C.10.2.1.2).
CURVE_DTYPES: dict[int, str] = {0: "<u2", 1: "<i2", 2: "<f4", 3: "<f8", 4: "<i4"}


@dataclass(frozen=True, eq=False)
class Curve:
    """One retired curve group (50xx,....) (IOD-5: one per matched marker)."""

    group: int
    curve_dimensions: int
    number_of_points: int
    type_of_data: str | None
    axis_units: tuple[str, ...]
    axis_labels: tuple[str, ...]
    data_value_representation: int
    points: NDArray[np.float64]  # shape (number_of_points, curve_dimensions)


@dataclass(frozen=True)
class RTImageGeometry:
    """The geometry PLAN-5 requires of a reference image (None = absent)."""

    image_plane_pixel_spacing_mm: tuple[float, float] | None
    rt_image_position_mm: tuple[float, float] | None
    rt_image_position_given: bool
    rt_image_sid_mm: float | None
    radiation_machine_sad_mm: float | None
    x_ray_image_receptor_translation_mm: tuple[float, float, float] | None
    x_ray_image_receptor_angle_deg: float | None
    rt_image_orientation: tuple[float, ...] | None
    rt_image_plane: str | None
    gantry_angle_deg: float | None
    beam_limiting_device_angle_deg: float | None
    patient_support_angle_deg: float | None
    table_top_vertical_position_mm: float | None
    table_top_longitudinal_position_mm: float | None
    table_top_lateral_position_mm: float | None
    isocenter_position_mm: tuple[float, float, float] | None
    patient_position: str | None
    private_isocenter_position_mm: tuple[float, float, float] | None
    private_patient_position: str | None

    @property
    def effective_isocenter_position_mm(self) -> tuple[float, float, float] | None:
        """(300A,012C) when present, else the private (3273,xx00)."""
        return self.isocenter_position_mm or self.private_isocenter_position_mm

    @property
    def effective_patient_position(self) -> str | None:
        """(0018,5100) when present, else the private (3273,xx01)."""
        return self.patient_position or self.private_patient_position


@dataclass(frozen=True, eq=False)
class RTImage:
    """An RT Image, read tolerantly. Build with :meth:`from_dataset`."""

    source: str
    sop_instance_uid: str
    patient_study: PatientStudy
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    modality: str | None
    image_type: tuple[str, ...]
    conversion_type: str | None
    reported_values_origin: str | None
    rt_image_label: str | None
    rt_image_name: str | None
    rt_image_description: str | None
    primary_dosimeter_unit: str | None
    rows: int
    columns: int
    geometry: RTImageGeometry
    referenced_rt_plan: ReferencedInstance | None
    referenced_beam_number: int | None
    rescale_slope: float
    rescale_intercept: float
    rescale_type: str | None
    number_of_frames: int
    frame_time_ms: float | None
    frame_time_vector_ms: tuple[float, ...] | None
    cine_rate: float | None
    curves: tuple[Curve, ...]
    primary_reference_image: str | None
    image_remarks: str | None
    extended_interface: RTImageExtendedInterface | ExtendedVAPlanInterface | None
    pixels: NDArray[np.float32] | None = field(default=None, repr=False)
    issues: tuple[str, ...] = ()
    dataset: Dataset | None = field(default=None, repr=False)

    @property
    def is_drr(self) -> bool:
        return len(self.image_type) > 2 and self.image_type[2] == "DRR"

    def pixel_spacing_at_isocenter_mm(self) -> tuple[float, float] | None:
        """Image Plane Pixel Spacing scaled to the isocenter plane (``× SAD / SID``), (row, col)."""
        g = self.geometry
        if g.image_plane_pixel_spacing_mm is None or not g.rt_image_sid_mm or not g.radiation_machine_sad_mm:
            return None
        f = g.radiation_machine_sad_mm / g.rt_image_sid_mm
        return (g.image_plane_pixel_spacing_mm[0] * f, g.image_plane_pixel_spacing_mm[1] * f)

    @classmethod
    def from_dataset(cls, obj: DicomFile | Dataset, *, load_pixels: bool = True,
                     creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> RTImage:
        """Read an RT Image; *load_pixels* False skips decoding the pixel data."""
        f = as_dicom_file(obj)
        check_sop_class(f, str(RTImageStorage))
        r = AttributeReader(f.dataset, f.source)
        issues = list(f.issues)
        rows, cols = r.int("Rows"), r.int("Columns")
        geometry = _geometry(r, rows, cols, creator_prefix)
        plan_ref = r.first("ReferencedRTPlanSequence")
        slope, intercept = r.opt_float("RescaleSlope"), r.opt_float("RescaleIntercept")
        pixels = _pixels(f, slope or 1.0, intercept or 0.0) if load_pixels and "PixelData" in f.dataset else None
        return cls(
            source=f.source, sop_instance_uid=f.sop_instance_uid, patient_study=PatientStudy.from_reader(r),
            series_instance_uid=r.opt_str("SeriesInstanceUID"), frame_of_reference_uid=r.opt_str("FrameOfReferenceUID"),
            modality=r.opt_str("Modality"), image_type=r.strs("ImageType"), conversion_type=r.opt_str("ConversionType"),
            reported_values_origin=r.opt_str("ReportedValuesOrigin"), rt_image_label=r.opt_str("RTImageLabel"),
            rt_image_name=r.opt_str("RTImageName"), rt_image_description=r.opt_str("RTImageDescription"),
            primary_dosimeter_unit=r.opt_str("PrimaryDosimeterUnit"), rows=rows, columns=cols, geometry=geometry,
            referenced_rt_plan=ReferencedInstance.from_item(plan_ref) if plan_ref else None,
            referenced_beam_number=r.opt_int("ReferencedBeamNumber"),
            rescale_slope=1.0 if slope is None else slope, rescale_intercept=0.0 if intercept is None else intercept,
            rescale_type=r.opt_str("RescaleType"), number_of_frames=r.opt_int("NumberOfFrames") or 1,
            frame_time_ms=r.opt_float("FrameTime"), frame_time_vector_ms=r.opt_floats("FrameTimeVector"),
            cine_rate=r.opt_float("CineRate"), curves=_curves(f.dataset, f.source),
            primary_reference_image=private.read_private_value(f.dataset, private.PRIMARY_REFERENCE_IMAGE,
                                                               creator_prefix=creator_prefix),
            image_remarks=private.read_private_value(f.dataset, private.IMAGE_REMARKS, creator_prefix=creator_prefix),
            extended_interface=_xml(f, creator_prefix, issues), pixels=pixels, issues=tuple(issues),
            dataset=f.dataset,
        )


def _geometry(r: AttributeReader, rows: int, cols: int, prefix: str) -> RTImageGeometry:
    spacing = r.opt_floats("ImagePlanePixelSpacing", 2)
    position = r.opt_floats("RTImagePosition", 2)
    given = position is not None
    if position is None and spacing is not None:
        position = (-(cols - 1) / 2.0 * spacing[1], (rows - 1) / 2.0 * spacing[0])  # centred on the receptor axis
    iso_private = private.read_private_value(r.ds, private.RT_IMAGE_ISOCENTER_POSITION, creator_prefix=prefix)
    if iso_private is not None and (not isinstance(iso_private, tuple) or len(iso_private) != 3):
        raise DicomInputError(f"{r.where}: private (3273,xx00) RT Image Isocenter Position has "
                              f"{iso_private!r}, expected 3 numbers")
    return RTImageGeometry(
        image_plane_pixel_spacing_mm=spacing,  # type: ignore[arg-type]
        rt_image_position_mm=position, rt_image_position_given=given,  # type: ignore[arg-type]
        rt_image_sid_mm=r.opt_float("RTImageSID"), radiation_machine_sad_mm=r.opt_float("RadiationMachineSAD"),
        x_ray_image_receptor_translation_mm=r.opt_floats("XRayImageReceptorTranslation", 3),  # type: ignore[arg-type]
        x_ray_image_receptor_angle_deg=r.opt_float("XRayImageReceptorAngle"),
        rt_image_orientation=r.opt_floats("RTImageOrientation", 6), rt_image_plane=r.opt_str("RTImagePlane"),
        gantry_angle_deg=r.opt_float("GantryAngle"), beam_limiting_device_angle_deg=r.opt_float("BeamLimitingDeviceAngle"),
        patient_support_angle_deg=r.opt_float("PatientSupportAngle"),
        table_top_vertical_position_mm=r.opt_float("TableTopVerticalPosition"),
        table_top_longitudinal_position_mm=r.opt_float("TableTopLongitudinalPosition"),
        table_top_lateral_position_mm=r.opt_float("TableTopLateralPosition"),
        isocenter_position_mm=r.opt_floats("IsocenterPosition", 3),  # type: ignore[arg-type]
        patient_position=r.opt_str("PatientPosition"),
        private_isocenter_position_mm=iso_private,
        private_patient_position=private.read_private_value(r.ds, private.RT_IMAGE_PATIENT_POSITION, creator_prefix=prefix),
    )


#: MPEG2 transfer syntaxes (MP@ML, MP@HL) of multi-frame cine RT Images (SPEC §1, IOD-4).
MPEG2_TRANSFER_SYNTAXES = ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101")


def _pixels(f: DicomFile, slope: float, intercept: float) -> NDArray[np.float32]:
    stored = _decode_mpeg2(f) if f.transfer_syntax_uid in MPEG2_TRANSFER_SYNTAXES else decode_pixels(f)
    out = stored.astype(np.float32)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
    return out


def _decode_mpeg2(f: DicomFile) -> NDArray[np.uint8]:
    """Frames of an MPEG2 cine (PyAV, which pydicom 3 lacks a decoder for): luma mapped back to grey."""
    from pydicom.encaps import generate_fragments

    from openigrt.iod.build.mpeg2 import decode_mpeg2

    try:
        stream = b"".join(generate_fragments(f.dataset.PixelData))
        frames = decode_mpeg2(stream)
    except Exception as exc:  # PyAV / fragment parsing errors
        raise DicomInputError(f"{f.source}: (7FE0,0010) MPEG2 Pixel Data cannot be decoded: {exc}") from None
    rows, cols = int(f.dataset.Rows), int(f.dataset.Columns)
    if frames.ndim != 3 or frames.shape[1] < rows or frames.shape[2] < cols:
        raise DicomInputError(f"{f.source}: MPEG2 stream holds frames of {frames.shape[1:]} pixels, expected "
                              f"{rows}x{cols}")
    frames = frames[:, :rows, :cols]
    return frames[0] if frames.shape[0] == 1 else frames


def _curves(ds: Dataset, where: str) -> tuple[Curve, ...]:
    out = []
    for group in range(0x5000, 0x5020, 2):
        data_tag = Tag(group, 0x3000)
        if data_tag not in ds:
            continue
        r = AttributeReader(ds, f"{where} > curve group {group:04X}")
        dims = _curve_int(ds, group, 0x0005, r.where)
        npts = _curve_int(ds, group, 0x0010, r.where)
        rep = _curve_int(ds, group, 0x0103, r.where)
        if rep not in CURVE_DTYPES:
            raise DicomInputError(f"{r.where}: ({group:04X},0103) Data Value Representation {rep} is not 0-4")
        raw = ds.get_item(data_tag).value
        data = np.frombuffer(bytes(raw), dtype=CURVE_DTYPES[rep]).astype(np.float64)
        if data.size < dims * npts:
            raise DicomInputError(f"{r.where}: ({group:04X},3000) Curve Data has {data.size} values, "
                                  f"expected {dims} x {npts}")
        out.append(Curve(group, dims, npts, _curve_text(ds, group, 0x0020), _curve_texts(ds, group, 0x0030),
                         _curve_texts(ds, group, 0x0040), rep, data[:dims * npts].reshape(npts, dims)))
    return tuple(out)


def _curve_int(ds: Dataset, group: int, element: int, where: str) -> int:
    tag = Tag(group, element)
    if tag not in ds:
        raise DicomInputError(f"{where}: ({group:04X},{element:04X}) is missing")
    value = ds[tag].value
    if isinstance(value, bytes):
        value = int.from_bytes(value[:2], "little")
    return int(value[0] if isinstance(value, list | tuple) else value)


def _curve_texts(ds: Dataset, group: int, element: int) -> tuple[str, ...]:
    text = _curve_text(ds, group, element)
    return tuple(text.split("\\")) if text else ()


def _curve_text(ds: Dataset, group: int, element: int) -> str | None:
    tag = Tag(group, element)
    if tag not in ds:
        return None
    value = ds[tag].value
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _xml(f: DicomFile, prefix: str, issues: list[str]) -> RTImageExtendedInterface | ExtendedVAPlanInterface | None:
    try:
        value = private.read_private_value(f.dataset, private.EXTENDED_INTERFACE_XML, creator_prefix=prefix)
        return None if value is None else parse_extended_interface(value)
    except (XmlInterfaceError, DicomInputError) as exc:
        issues.append(f"{f.source}: (3253,xx00) Extended Interface XML: {exc}")
        return None
