"""RT Structure Set builders (SPEC IOD-2, IOD-3, SIM-1; PS3.3 A.19, C.8.8.5-C.8.8.8).

* :func:`build_structure_set` — the general builder (the phantom's BODY, PTV, markers): every
  planar contour must lie on a slice of *images* (or is resampled onto them with
  ``resample_volumetric=True``) and references that slice; POINT contours reference the nearest
  slice when they lie within the slab the slices cover; the Contour Image Sequence of the
  Referenced Frame of Reference Sequence lists every slice.
* :func:`build_isocenter_structure_set` — IOD-2: POINT ROIs ``INITLASERISO`` / ``ACQ_ISOCENTER``
  / ``INITMATCHISO`` with labels ``InitLaserIso`` / ``AcqIsoCenter`` / ``InitMatchIso`` linked to
  the verification CBCT (its Frame of Reference, every slice listed). The patient support
  angle (degrees), when given, is an ROI Physical Properties item with the property
  :data:`PATIENT_SUPPORT_ANGLE_PROPERTY` (ROI Physical Property is a list of *Defined Terms*,
  PS3.3 C.8.8.8, which implementations may extend; none of the standard terms is an angle;
  CS allows at most 16 characters, hence the abbreviation).
* :func:`build_marker_structure_set` — IOD-3: a new structure set in the planning CT's Frame of
  Reference, one POINT ROI per marker (``MARKER`` + private Marker Subtype ``MARKER``), the
  private Referenced Structure Set Sequence (3263,xx01) to the original structure set with
  Structure Set Relationship (3263,xx02) ``ADDITION`` inside its item, and the exported
  volumetric ROIs resampled onto the CT planes (:mod:`.contours`).

Where the private elements go: Marker Subtype (3271,xx00) is written in the ROI's **RT ROI
Observations Sequence item** (it qualifies RT ROI Interpreted Type); the Referenced Structure
Set Sequence (3263,xx01) at the top level, its item holding Referenced SOP Class/Instance UID
and (3263,xx02).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.iod.build._values import coerce_enum
from openigrt.iod.build.common import (
    RT_STRUCTURE_SET_STORAGE,
    PatientStudy,
    SeriesInfo,
    add_private,
    build_error,
    check_number,
    check_text,
    check_vector,
    ds_value,
    ds_values,
    new_dataset,
    now,
    source_value,
    write_frame_of_reference,
)
from openigrt.iod.build.contours import SlicePlanes, contour_z, resample_onto_planes
from openigrt.iod.enum import (
    ContourGeometricTypeValues,
    MarkerSubtypeValues,
    ROIGenerationAlgorithmValues,
    ROIObservationLabelValues,
    RTROIInterpretedTypeValues,
    StructureSetRelationshipValues,
)
from openigrt.iod.private import MARKER_SUBTYPE, REFERENCED_STRUCTURE_SET_SEQUENCE, STRUCTURE_SET_RELATIONSHIP
from openigrt.iod.rt_structure_set import Structure
from openigrt.uids import new_uid

#: ROI Physical Property term recording the patient support angle on isocenter ROIs (IOD-2).
PATIENT_SUPPORT_ANGLE_PROPERTY = "PAT_SUPP_ANGLE"
#: Referenced SOP Class UID of RT Referenced Study Sequence items (Detached Study Management, PS3.3 C.8.8.5).
STUDY_REFERENCE_CLASS = "1.2.840.10008.3.1.2.3.1"
_ISOCENTER_ROIS = (
    (RTROIInterpretedTypeValues.INITLASERISO, ROIObservationLabelValues.INIT_LASER_ISO, (0, 255, 0)),
    (RTROIInterpretedTypeValues.ACQ_ISOCENTER, ROIObservationLabelValues.ACQ_ISO_CENTER, (0, 0, 255)),
    (RTROIInterpretedTypeValues.INITMATCHISO, ROIObservationLabelValues.INIT_MATCH_ISO, (255, 255, 0)),
)


@dataclass(frozen=True, eq=False)
class Roi:
    """One ROI: name, interpreted type, geometric type and its contours (each ``(N, 3)`` mm).

    POINT ROIs have exactly one contour of one point (:meth:`point`). ``marker_subtype``
    writes the private Marker Subtype ``MARKER`` (default: when the type is ``MARKER``).
    """

    roi_name: str
    rt_roi_interpreted_type: RTROIInterpretedTypeValues | str
    contours: tuple[NDArray[np.float64], ...]
    contour_geometric_type: ContourGeometricTypeValues | str = ContourGeometricTypeValues.CLOSED_PLANAR
    roi_display_color: tuple[int, int, int] = (255, 0, 0)
    roi_observation_label: str = ""
    roi_generation_algorithm: ROIGenerationAlgorithmValues | str = ROIGenerationAlgorithmValues.AUTOMATIC
    physical_properties: tuple[tuple[str, float], ...] = ()
    marker_subtype: bool | None = None
    roi_interpreter: str = ""

    def __post_init__(self) -> None:
        check_text("ROIName", self.roi_name, max_len=64)
        kind = coerce_enum(RTROIInterpretedTypeValues, self.rt_roi_interpreted_type, "RTROIInterpretedType")
        geo = coerce_enum(ContourGeometricTypeValues, self.contour_geometric_type, "ContourGeometricType")
        alg = coerce_enum(ROIGenerationAlgorithmValues, self.roi_generation_algorithm, "ROIGenerationAlgorithm")
        object.__setattr__(self, "rt_roi_interpreted_type", kind)
        object.__setattr__(self, "contour_geometric_type", geo)
        object.__setattr__(self, "roi_generation_algorithm", alg)
        check_text("ROIObservationLabel", self.roi_observation_label, max_len=16, required=False)
        color = check_vector("ROIDisplayColor", self.roi_display_color, 3)
        if any(c < 0 or c > 255 or c != int(c) for c in color):
            raise build_error("ROIDisplayColor", f"need 3 integers 0-255, got {self.roi_display_color}")
        object.__setattr__(self, "roi_display_color", tuple(int(c) for c in color))
        object.__setattr__(self, "contours", tuple(self._check_contour(c, geo) for c in self.contours))
        if geo is ContourGeometricTypeValues.POINT and len(self.contours) != 1:
            raise build_error("ContourSequence", f"POINT ROI {self.roi_name!r} needs exactly one contour")
        for prop, value in self.physical_properties:
            check_text("ROIPhysicalProperty", prop, max_len=16)
            check_number("ROIPhysicalPropertyValue", value)
        if self.marker_subtype is None:
            object.__setattr__(self, "marker_subtype", kind is RTROIInterpretedTypeValues.MARKER)

    @staticmethod
    def _check_contour(points: ArrayLike, geo: ContourGeometricTypeValues) -> NDArray[np.float64]:
        pts = np.asarray(points, dtype=float)
        if pts.ndim == 1 and pts.size == 3:
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
            raise build_error("ContourData", f"expected (N, 3) finite points, got shape {pts.shape}")
        need = {ContourGeometricTypeValues.POINT: (1, 1), ContourGeometricTypeValues.CLOSED_PLANAR: (3, None),
                ContourGeometricTypeValues.OPEN_PLANAR: (2, None)}.get(geo, (2, None))
        if pts.shape[0] < need[0] or (need[1] is not None and pts.shape[0] != need[1]):
            raise build_error("NumberOfContourPoints", f"a {geo.value} contour cannot have {pts.shape[0]} points")
        pts = pts.copy()
        pts.setflags(write=False)
        return pts

    @classmethod
    def point(cls, roi_name: str, position_mm: ArrayLike, rt_roi_interpreted_type: RTROIInterpretedTypeValues | str,
              **kwargs: object) -> Roi:
        """A POINT ROI with one contour of one point."""
        pos = check_vector("ContourData", position_mm, 3)
        return cls(roi_name, rt_roi_interpreted_type, (np.asarray([pos]),),  # type: ignore[arg-type]
                   contour_geometric_type=ContourGeometricTypeValues.POINT, **kwargs)  # type: ignore[arg-type]


def roi_from_structure(structure: Structure) -> Roi:
    """A :class:`Roi` from a structure read by :class:`openigrt.iod.rt_structure_set.RTStructureSet`.

    For exporting the original structure set's volumetric ROIs with the markers (IOD-3): name,
    interpreted type, colour and contours are kept; the builder resamples them onto the CT.
    Raises BuildError naming the ROI when it has no contour or mixed geometric types.
    """
    contours = structure.contours
    kinds = {str(getattr(c.contour_geometric_type, "value", c.contour_geometric_type)) for c in contours}
    if not contours or len(kinds) != 1:
        raise build_error("ContourSequence", f"ROI {structure.name!r}: needs contours of one geometric type, got {sorted(kinds)}")
    color = structure.contour.roi_display_color if structure.contour else None
    kind = structure.interpreted_type
    return Roi(structure.name, getattr(kind, "value", kind) or "ORGAN", tuple(c.points_mm for c in contours),
               contour_geometric_type=kinds.pop(), roi_display_color=tuple(color) if color and len(color) == 3 else (255, 0, 0))


@dataclass(frozen=True)
class IsocenterPoints:
    """The isocenter points of a verification CBCT (IOD-2), patient mm in the CBCT's frame."""

    init_laser_iso_mm: tuple[float, float, float]
    acq_isocenter_mm: tuple[float, float, float]
    init_match_iso_mm: tuple[float, float, float] | None = None
    patient_support_angle_deg: float | None = None


@dataclass(frozen=True)
class MarkerPoint:
    """A detected marker: its name and position (patient mm, planning CT frame)."""

    name: str
    position_mm: tuple[float, float, float]


# --------------------------------------------------------------------------- builders
def build_structure_set(
    *,
    images: Sequence[Dataset],
    rois: Sequence[Roi],
    settings: Settings,
    structure_set_label: str,
    structure_set_name: str = "",
    resample_volumetric: bool = False,
    content_datetime: datetime | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """A structure set on the axial slices *images* (see the module docstring).

    Patient, study, Frame of Reference and character set are copied from *images*, which must
    share one Frame of Reference. Raises BuildError (naming the attribute) for duplicate ROI
    names, contours off the slice planes (unless *resample_volumetric*), non-planar contours.
    """
    if not rois:
        raise build_error("StructureSetROISequence", "a structure set needs at least one ROI")
    names = [r.roi_name for r in rois]
    if len(set(names)) != len(names):
        raise build_error("ROIName", f"ROI names must be unique, got {names}")
    for_uid = _single_for(images)
    planes = SlicePlanes.from_images(images)
    when = content_datetime or now()
    ds = new_dataset(sop_class_uid=RT_STRUCTURE_SET_STORAGE, settings=settings,
                     patient_study=PatientStudy.from_datasets(images),
                     series=SeriesInfo(modality="RTSTRUCT", series_instance_uid=new_uid(settings.uid_root)),
                     content_datetime=when, sop_instance_uid=sop_instance_uid)
    write_frame_of_reference(ds, for_uid, str(images[0].get("PositionReferenceIndicator", "") or ""))
    ds.StructureSetLabel = check_text("StructureSetLabel", structure_set_label, max_len=16)
    if structure_set_name:
        ds.StructureSetName = check_text("StructureSetName", structure_set_name, max_len=64)
    ds.StructureSetDate = when.strftime("%Y%m%d")
    ds.StructureSetTime = when.strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame(images, for_uid)]
    ds.StructureSetROISequence = [_structure_set_roi(n, r, for_uid) for n, r in enumerate(rois, 1)]
    ds.ROIContourSequence = [_roi_contour(n, r, planes, resample_volumetric) for n, r in enumerate(rois, 1)]
    ds.RTROIObservationsSequence = [_observation(n, r, settings) for n, r in enumerate(rois, 1)]
    return ds


def build_isocenter_structure_set(
    *,
    cbct_images: Sequence[Dataset],
    points: IsocenterPoints,
    settings: Settings,
    structure_set_label: str = "ISOCENTERS",
    content_datetime: datetime | None = None,
) -> Dataset:
    """IOD-2: the isocenter structure set linked to a verification CBCT (*cbct_images*)."""
    positions = (points.init_laser_iso_mm, points.acq_isocenter_mm, points.init_match_iso_mm)
    props: tuple[tuple[str, float], ...] = ()
    if points.patient_support_angle_deg is not None:
        props = ((PATIENT_SUPPORT_ANGLE_PROPERTY,
                  check_number("ROIPhysicalPropertyValue", points.patient_support_angle_deg, low=-360, high=360)),)
    rois = [Roi.point(label.value, pos, kind, roi_observation_label=label.value, roi_display_color=color,
                      physical_properties=props)
            for (kind, label, color), pos in zip(_ISOCENTER_ROIS, positions, strict=True) if pos is not None]
    return build_structure_set(images=cbct_images, rois=rois, settings=settings,
                               structure_set_label=structure_set_label, content_datetime=content_datetime)


def build_marker_structure_set(
    *,
    planning_ct: Sequence[Dataset],
    original_structure_set: Dataset,
    markers: Sequence[MarkerPoint],
    settings: Settings,
    exported_rois: Sequence[Roi] = (),
    structure_set_label: str = "MARKERS",
    content_datetime: datetime | None = None,
) -> Dataset:
    """IOD-3: detected markers as a new structure set in the planning CT's Frame of Reference."""
    if not markers:
        raise build_error("StructureSetROISequence", "no marker to store")
    if str(source_value(original_structure_set, "SOPClassUID", "original structure set")) != RT_STRUCTURE_SET_STORAGE:
        raise build_error("ReferencedSOPClassUID", "original_structure_set is not an RT Structure Set")
    ct_for = _single_for(planning_ct)
    frames = {str(f.get("FrameOfReferenceUID", "")) for f in original_structure_set.get("ReferencedFrameOfReferenceSequence", [])}
    if ct_for not in frames:
        raise build_error("FrameOfReferenceUID", f"the original structure set does not use the planning CT's "
                          f"Frame of Reference {ct_for} (it uses {sorted(frames)})")
    rois = [Roi.point(m.name, m.position_mm, RTROIInterpretedTypeValues.MARKER, roi_display_color=(255, 128, 0))
            for m in markers]
    ds = build_structure_set(images=planning_ct, rois=[*rois, *exported_rois], settings=settings,
                             structure_set_label=structure_set_label, resample_volumetric=True,
                             content_datetime=content_datetime)
    item = Dataset()
    item.ReferencedSOPClassUID = RT_STRUCTURE_SET_STORAGE
    item.ReferencedSOPInstanceUID = original_structure_set.SOPInstanceUID
    add_private(item, settings, STRUCTURE_SET_RELATIONSHIP, StructureSetRelationshipValues.ADDITION.value)
    add_private(ds, settings, REFERENCED_STRUCTURE_SET_SEQUENCE, [item])
    return ds


# --------------------------------------------------------------------------- pieces
def _single_for(images: Sequence[Dataset]) -> str:
    if not images:
        raise build_error("ContourImageSequence", "no image slices given")
    uids = {str(source_value(ds, "FrameOfReferenceUID", "image")) for ds in images}
    if len(uids) != 1:
        raise build_error("FrameOfReferenceUID", f"the images are in {len(uids)} Frames of Reference: {sorted(uids)}")
    return uids.pop()


def _image_ref(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _referenced_frame(images: Sequence[Dataset], for_uid: str) -> Dataset:
    by_study: dict[str, dict[str, list[Dataset]]] = {}
    for ds in images:
        by_study.setdefault(str(ds.StudyInstanceUID), {}).setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    studies = []
    for study_uid, series in by_study.items():
        study = Dataset()
        study.ReferencedSOPClassUID = STUDY_REFERENCE_CLASS
        study.ReferencedSOPInstanceUID = study_uid
        items = []
        for series_uid, slices in series.items():
            s = Dataset()
            s.SeriesInstanceUID = series_uid
            s.ContourImageSequence = [_image_ref(str(x.SOPClassUID), str(x.SOPInstanceUID)) for x in slices]
            items.append(s)
        study.RTReferencedSeriesSequence = items
        studies.append(study)
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = studies
    return frame


def _structure_set_roi(number: int, roi: Roi, for_uid: str) -> Dataset:
    item = Dataset()
    item.ROINumber = number
    item.ReferencedFrameOfReferenceUID = for_uid
    item.ROIName = roi.roi_name
    item.ROIGenerationAlgorithm = roi.roi_generation_algorithm.value  # type: ignore[union-attr]
    return item


def _roi_contour(number: int, roi: Roi, planes: SlicePlanes, resample: bool) -> Dataset:
    item = Dataset()
    item.ROIDisplayColor = list(roi.roi_display_color)
    geo = roi.contour_geometric_type
    placed = _place_contours(roi, planes, resample)
    contours = []
    for n, (plane, pts) in enumerate(placed, 1):
        c = Dataset()
        if plane is not None:
            c.ContourImageSequence = [_image_ref(planes.sop_class_uids[plane], planes.sop_instance_uids[plane])]
        c.ContourGeometricType = geo.value  # type: ignore[union-attr]
        c.NumberOfContourPoints = int(pts.shape[0])
        c.ContourNumber = n
        c.ContourData = ds_values(pts.ravel())
        contours.append(c)
    item.ContourSequence = contours
    item.ReferencedROINumber = number
    return item


def _place_contours(roi: Roi, planes: SlicePlanes, resample: bool) -> list[tuple[int | None, NDArray[np.float64]]]:
    """(slice index or None, points) for each contour written."""
    geo = roi.contour_geometric_type
    if geo is ContourGeometricTypeValues.POINT:
        return [(planes.nearest(float(roi.contours[0][0, 2])), roi.contours[0])]
    if geo in (ContourGeometricTypeValues.OPEN_NONPLANAR,):
        return [(None, c) for c in roi.contours]
    placed: list[tuple[int | None, NDArray[np.float64]]] = []
    for c in roi.contours:
        z = contour_z(c)
        plane = planes.plane_of(z)
        if plane is None:
            if resample and geo is ContourGeometricTypeValues.CLOSED_PLANAR:
                return list(resample_onto_planes(roi.contours, planes))
            raise build_error("ContourImageSequence", f"ROI {roi.roi_name!r}: contour at z = {z:g} mm is not on a slice "
                              "plane (resample it onto the slices)")
        placed.append((plane, c))
    return placed


def _observation(number: int, roi: Roi, settings: Settings) -> Dataset:
    item = Dataset()
    item.ObservationNumber = number
    item.ReferencedROINumber = number
    if roi.roi_observation_label:
        item.ROIObservationLabel = roi.roi_observation_label
    item.RTROIInterpretedType = roi.rt_roi_interpreted_type.value  # type: ignore[union-attr]
    item.ROIInterpreter = roi.roi_interpreter
    if roi.physical_properties:
        props = []
        for prop, value in roi.physical_properties:
            p = Dataset()
            p.ROIPhysicalProperty = prop
            p.ROIPhysicalPropertyValue = ds_value(value)
            props.append(p)
        item.ROIPhysicalPropertiesSequence = props
    if roi.marker_subtype:
        add_private(item, settings, MARKER_SUBTYPE, MarkerSubtypeValues.MARKER.value)
    return item
