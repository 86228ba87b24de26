"""RT Structure Set reader (PS3.3 A.19): ROIs, contours, observations, references, private markers.

:meth:`RTStructureSet.from_dataset` reads the Structure Set ROI Sequence (3006,0020), the ROI
Contour Sequence (3006,0039) with every contour's points as an ``(N, 3)`` float64 array in
patient mm (parsed straight from the Contour Data bytes, fast for large sets), the RT ROI
Observations Sequence (3006,0080) with ROI Physical Properties, the Referenced Frame of Reference
Sequence (3006,0010) > RT Referenced Study > RT Referenced Series > Contour Image Sequence (the CT
slices LOAD-1 fetches), and the private elements of IOD-3/PLAN-11: Marker Subtype (3271,xx00)
and the Referenced Structure Set Sequence (3263,xx01) with its relationship (3263,xx02).

:meth:`RTStructureSet.structures` joins the three ROI sequences by ROI Number into
:class:`Structure` objects, which is what PLAN-10/PLAN-11 and the marker match use.

Where the private Marker Subtype sits is not fixed by the statement: it is looked for in the ROI's
RT ROI Observations item, then its Structure Set ROI item, then its ROI Contour item.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import RTStructureSetStorage

from openigrt.config import DEFAULT_PRIVATE_CREATOR
from openigrt.errors import DicomInputError
from openigrt.iod import private
from openigrt.iod.dataset_io import (
    AttributeReader,
    DicomFile,
    PatientStudy,
    ReferencedInstance,
    as_dicom_file,
    check_sop_class,
)
from openigrt.iod.enum import ContourGeometricTypeValues, RTROIInterpretedTypeValues, coerce


@dataclass(frozen=True, eq=False)
class Contour:
    """One item of a Contour Sequence (3006,0040); ``points_mm`` has shape ``(N, 3)`` (x, y, z)."""

    contour_number: int | None
    contour_geometric_type: ContourGeometricTypeValues | str | None
    number_of_contour_points: int | None
    points_mm: NDArray[np.float64]
    contour_images: tuple[ReferencedInstance, ...] = ()


@dataclass(frozen=True)
class ROI:
    """One item of the Structure Set ROI Sequence (3006,0020)."""

    roi_number: int
    roi_name: str | None
    referenced_frame_of_reference_uid: str | None
    roi_generation_algorithm: str | None


@dataclass(frozen=True, eq=False)
class ROIContour:
    """One item of the ROI Contour Sequence (3006,0039)."""

    referenced_roi_number: int
    roi_display_color: tuple[int, ...] | None
    contours: tuple[Contour, ...]


@dataclass(frozen=True)
class ROIObservation:
    """One item of the RT ROI Observations Sequence (3006,0080)."""

    observation_number: int | None
    referenced_roi_number: int
    roi_observation_label: str | None
    rt_roi_interpreted_type: RTROIInterpretedTypeValues | str | None
    roi_interpreter: str | None
    roi_physical_properties: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ReferencedSeries:
    """Referenced FoR > RT Referenced Study > RT Referenced Series > Contour Image Sequence."""

    frame_of_reference_uid: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    contour_images: tuple[ReferencedInstance, ...]


@dataclass(frozen=True)
class ReferencedStructureSet:
    """An item of the private Referenced Structure Set Sequence (3263,xx01) (IOD-3)."""

    sop_class_uid: str
    sop_instance_uid: str
    structure_set_relationship: str | None


@dataclass(frozen=True, eq=False)
class Structure:
    """An ROI with its contours and observation joined by ROI Number."""

    roi: ROI
    contour: ROIContour | None
    observation: ROIObservation | None
    marker_subtype: str | None

    @property
    def roi_number(self) -> int:
        return self.roi.roi_number

    @property
    def name(self) -> str:
        return self.roi.roi_name or f"ROI {self.roi.roi_number}"

    @property
    def interpreted_type(self) -> RTROIInterpretedTypeValues | str | None:
        return self.observation.rt_roi_interpreted_type if self.observation else None

    @property
    def contours(self) -> tuple[Contour, ...]:
        return self.contour.contours if self.contour else ()

    def point_mm(self) -> NDArray[np.float64] | None:
        """The single point of a POINT ROI with one one-point contour (markers, isocenters), else None."""
        cs = self.contours
        if len(cs) == 1 and cs[0].contour_geometric_type == ContourGeometricTypeValues.POINT and len(
                cs[0].points_mm) == 1:
            return cs[0].points_mm[0].copy()
        return None


@dataclass(frozen=True, eq=False)
class RTStructureSet:
    """An RT Structure Set, read tolerantly. Build with :meth:`from_dataset`."""

    source: str
    sop_instance_uid: str
    patient_study: PatientStudy
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    structure_set_label: str | None
    structure_set_name: str | None
    structure_set_date: str | None
    structure_set_time: str | None
    referenced_series: tuple[ReferencedSeries, ...]
    rois: tuple[ROI, ...]
    roi_contours: tuple[ROIContour, ...]
    observations: tuple[ROIObservation, ...]
    referenced_structure_sets: tuple[ReferencedStructureSet, ...]
    marker_subtypes: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    issues: tuple[str, ...] = ()
    dataset: Dataset | None = field(default=None, repr=False)

    def contour_image_uids(self) -> tuple[str, ...]:
        """Every SOP Instance UID of every Contour Image Sequence of the Referenced FoR tree (LOAD-1)."""
        seen: dict[str, None] = {}
        for s in self.referenced_series:
            for ref in s.contour_images:
                seen.setdefault(ref.sop_instance_uid)
        return tuple(seen)

    def structures(self) -> tuple[Structure, ...]:
        """ROIs joined with their ROI Contour and RT ROI Observations items (by ROI Number)."""
        contours = {c.referenced_roi_number: c for c in self.roi_contours}
        obs = {o.referenced_roi_number: o for o in self.observations}
        return tuple(Structure(r, contours.get(r.roi_number), obs.get(r.roi_number),
                               self.marker_subtypes.get(r.roi_number)) for r in self.rois)

    def structure(self, name_or_number: str | int) -> Structure | None:
        for s in self.structures():
            if s.roi_number == name_or_number or s.roi.roi_name == name_or_number:
                return s
        return None

    @classmethod
    def from_dataset(cls, obj: DicomFile | Dataset, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> RTStructureSet:
        """Read an RT Structure Set. Raises DicomInputError/MissingAttributeError naming file and tag."""
        f = as_dicom_file(obj)
        check_sop_class(f, str(RTStructureSetStorage))
        r = AttributeReader(f.dataset, f.source)
        roi_items = r.items("StructureSetROISequence")
        contour_items = r.items("ROIContourSequence")
        obs_items = r.items("RTROIObservationsSequence")
        rois = tuple(ROI(i.int("ROINumber"), i.opt_str("ROIName"), i.opt_str("ReferencedFrameOfReferenceUID"),
                         i.opt_str("ROIGenerationAlgorithm")) for i in roi_items)
        observations = tuple(_observation(i) for i in obs_items)
        return cls(
            source=f.source, sop_instance_uid=f.sop_instance_uid, patient_study=PatientStudy.from_reader(r),
            series_instance_uid=r.opt_str("SeriesInstanceUID"), frame_of_reference_uid=r.opt_str("FrameOfReferenceUID"),
            structure_set_label=r.opt_str("StructureSetLabel"), structure_set_name=r.opt_str("StructureSetName"),
            structure_set_date=r.opt_str("StructureSetDate"), structure_set_time=r.opt_str("StructureSetTime"),
            referenced_series=_referenced_series(r), rois=rois,
            roi_contours=tuple(_roi_contour(i) for i in contour_items), observations=observations,
            referenced_structure_sets=_private_references(f.dataset, creator_prefix),
            marker_subtypes=MappingProxyType(_marker_subtypes(roi_items, contour_items, obs_items, creator_prefix)),
            issues=f.issues, dataset=f.dataset,
        )


def _observation(i: AttributeReader) -> ROIObservation:
    props = tuple((p.str("ROIPhysicalProperty"), p.float("ROIPhysicalPropertyValue"))
                  for p in i.items("ROIPhysicalPropertiesSequence"))
    return ROIObservation(i.opt_int("ObservationNumber"), i.int("ReferencedROINumber"), i.opt_str("ROIObservationLabel"),
                          coerce(RTROIInterpretedTypeValues, i.opt_str("RTROIInterpretedType")),
                          i.opt_str("ROIInterpreter"), props)


def _roi_contour(i: AttributeReader) -> ROIContour:
    color = i.opt_floats("ROIDisplayColor")
    contours = []
    for c in i.items("ContourSequence"):
        data = c.array("ContourData") if "ContourData" in c.ds else np.zeros(0)
        if data.size % 3:
            raise DicomInputError(f"{c.where}: (3006,0050) Contour Data has {data.size} values, not a multiple of 3")
        declared = c.opt_int("NumberOfContourPoints")
        if declared is not None and declared != data.size // 3:
            raise DicomInputError(f"{c.where}: (3006,0046) Number of Contour Points is {declared} but "
                                  f"(3006,0050) Contour Data holds {data.size // 3} points")
        images = tuple(ReferencedInstance.from_item(x) for x in c.items("ContourImageSequence"))
        contours.append(Contour(c.opt_int("ContourNumber"),
                                coerce(ContourGeometricTypeValues, c.opt_str("ContourGeometricType")),
                                declared, data.reshape(-1, 3), images))
    return ROIContour(i.int("ReferencedROINumber"), tuple(int(v) for v in color) if color else None, tuple(contours))


def _referenced_series(r: AttributeReader) -> tuple[ReferencedSeries, ...]:
    out = []
    for fr in r.items("ReferencedFrameOfReferenceSequence"):
        for_uid = fr.opt_str("FrameOfReferenceUID") or ""
        for st in fr.items("RTReferencedStudySequence"):
            study = st.opt_str("ReferencedSOPInstanceUID")
            for se in st.items("RTReferencedSeriesSequence"):
                images = tuple(ReferencedInstance.from_item(x) for x in se.items("ContourImageSequence"))
                out.append(ReferencedSeries(for_uid, study, se.opt_str("SeriesInstanceUID"), images))
    return tuple(out)


def _private_references(ds: Dataset, prefix: str) -> tuple[ReferencedStructureSet, ...]:
    seq = private.read_private_value(ds, private.REFERENCED_STRUCTURE_SET_SEQUENCE, creator_prefix=prefix) or ()
    top = private.read_private_value(ds, private.STRUCTURE_SET_RELATIONSHIP, creator_prefix=prefix)
    out = []
    for n, item in enumerate(seq, 1):
        r = AttributeReader(item, f"(3263,xx01) Referenced Structure Set Sequence[{n}]")
        rel = private.read_private_value(item, private.STRUCTURE_SET_RELATIONSHIP, creator_prefix=prefix) or top
        out.append(ReferencedStructureSet(r.opt_str("ReferencedSOPClassUID") or "", r.str("ReferencedSOPInstanceUID"),
                                          rel))
    return tuple(out)


def _marker_subtypes(roi_items: list[AttributeReader], contour_items: list[AttributeReader],
                     obs_items: list[AttributeReader], prefix: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for items, key in ((contour_items, "ReferencedROINumber"), (roi_items, "ROINumber"),
                       (obs_items, "ReferencedROINumber")):  # later wins: observations first
        for i in items:
            value = private.read_private_value(i.ds, private.MARKER_SUBTYPE, creator_prefix=prefix)
            number = i.opt_int(key)
            if value is not None and number is not None:
                out[number] = value
    return out
