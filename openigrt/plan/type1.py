"""PLAN-13: received objects must have all Type 1 attributes; report the missing ones.

The table :data:`TYPE1` lists, per SOP class, the Type 1 attributes (and the Type 1C ones whose
condition we evaluate) of the IOD modules OpenIGRT uses. It was typed from the module tables of
DICOM PS3.3 (2024 edition, https://dicom.nema.org/medical/dicom/current/output/chtml/part03/):
SOP Common C.12.1, General Study C.7.2.1, General Series C.7.3.1, RT Series C.8.8.1, Frame of
Reference C.7.4.1, Image Plane C.7.6.2, Image Pixel C.7.6.3, CT Image C.8.2.1, RT Image C.8.8.2,
Structure Set C.8.8.5, ROI Contour C.8.8.6, RT ROI Observations C.8.8.8, RT General Plan C.8.8.9,
RT Patient Setup C.8.8.12, RT Fraction Scheme C.8.8.13, RT Beams C.8.8.14, RT Ion Beams
C.8.8.25, Spatial Registration C.20.2 and Content Identification (Table 10-12). Modules that
are optional in the IOD (e.g. Frame of Reference in RT Plan) are left out, and the check does not
descend into optional sequences that are absent. Each row is tested (tests/plan/test_type1.py).

A ``path`` is ``Keyword`` or ``Sequence/…/Keyword``; ``Sequence[0]`` means the first item only
(the control point attributes required "for the first control point").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    RTImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from openigrt.iod.dataset_io import DicomFile, sop_class_name, tag_label
from openigrt.plan.findings import Finding, failure, success


@dataclass(frozen=True)
class Type1:
    """One required attribute: where it is (path), its module, and a condition for Type 1C."""

    path: str
    module: str
    condition: Callable[[Dataset], bool] | None = None

    @property
    def keyword(self) -> str:
        return self.path.split("/")[-1]


def _rows(module: str, *paths: str) -> tuple[Type1, ...]:
    return tuple(Type1(p, module) for p in paths)


_SOP_COMMON = _rows("SOP Common C.12.1", "SOPClassUID", "SOPInstanceUID")
_STUDY = _rows("General Study C.7.2.1", "StudyInstanceUID")
_SERIES = _rows("General Series C.7.3.1", "Modality", "SeriesInstanceUID")
_FOR = _rows("Frame of Reference C.7.4.1", "FrameOfReferenceUID")
_PIXEL = _rows("Image Pixel C.7.6.3", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
               "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PixelData")

_CT = _SOP_COMMON + _STUDY + _SERIES + _FOR + _PIXEL + _rows(
    "Image Plane C.7.6.2", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient") + _rows(
    "CT Image C.8.2.1", "ImageType", "RescaleIntercept", "RescaleSlope")

_RT_IMAGE = _SOP_COMMON + _STUDY + _SERIES + _PIXEL + _rows(
    "RT Image C.8.8.2", "RTImageLabel", "ImageType", "RTImagePlane")

_STRUCTURE_SET = _SOP_COMMON + _STUDY + _SERIES + _rows(
    "Structure Set C.8.8.5", "StructureSetLabel", "StructureSetROISequence", "StructureSetROISequence/ROINumber",
    "StructureSetROISequence/ReferencedFrameOfReferenceUID",
    "ReferencedFrameOfReferenceSequence/FrameOfReferenceUID",
    "ReferencedFrameOfReferenceSequence/RTReferencedStudySequence/RTReferencedSeriesSequence",
    "ReferencedFrameOfReferenceSequence/RTReferencedStudySequence/RTReferencedSeriesSequence/SeriesInstanceUID",
    "ReferencedFrameOfReferenceSequence/RTReferencedStudySequence/RTReferencedSeriesSequence/ContourImageSequence",
) + _rows(
    "ROI Contour C.8.8.6", "ROIContourSequence", "ROIContourSequence/ReferencedROINumber",
    "ROIContourSequence/ContourSequence/ContourGeometricType", "ROIContourSequence/ContourSequence/NumberOfContourPoints",
    "ROIContourSequence/ContourSequence/ContourData",
) + _rows(
    "RT ROI Observations C.8.8.8", "RTROIObservationsSequence", "RTROIObservationsSequence/ObservationNumber",
    "RTROIObservationsSequence/ReferencedROINumber",
)


def _patient_geometry(ds: Dataset) -> bool:
    return str(ds.get("RTPlanGeometry", "")).strip() == "PATIENT"


_PLAN_COMMON = _SOP_COMMON + _STUDY + _SERIES + (
    Type1("RTPlanLabel", "RT General Plan C.8.8.9"),
    Type1("RTPlanGeometry", "RT General Plan C.8.8.9"),
    Type1("ReferencedStructureSetSequence", "RT General Plan C.8.8.9 (1C: RT Plan Geometry PATIENT)",
          _patient_geometry),
) + _rows(
    "RT Patient Setup C.8.8.12", "PatientSetupSequence", "PatientSetupSequence/PatientSetupNumber",
) + _rows(
    "RT Fraction Scheme C.8.8.13", "FractionGroupSequence", "FractionGroupSequence/FractionGroupNumber",
    "FractionGroupSequence/NumberOfBeams", "FractionGroupSequence/NumberOfBrachyApplicationSetups",
    "FractionGroupSequence/ReferencedBeamSequence/ReferencedBeamNumber",
)

_FIRST_CP = ("GantryAngle", "GantryRotationDirection", "BeamLimitingDeviceAngle", "BeamLimitingDeviceRotationDirection",
             "PatientSupportAngle", "PatientSupportRotationDirection")

_PLAN = _PLAN_COMMON + _rows(
    "RT Beams C.8.8.14", "BeamSequence", "BeamSequence/BeamNumber", "BeamSequence/BeamType",
    "BeamSequence/BeamLimitingDeviceSequence", "BeamSequence/BeamLimitingDeviceSequence/RTBeamLimitingDeviceType",
    "BeamSequence/BeamLimitingDeviceSequence/NumberOfLeafJawPairs", "BeamSequence/NumberOfWedges",
    "BeamSequence/NumberOfCompensators", "BeamSequence/NumberOfBoli", "BeamSequence/NumberOfBlocks",
    "BeamSequence/NumberOfControlPoints", "BeamSequence/ControlPointSequence",
    "BeamSequence/ControlPointSequence/ControlPointIndex",
    *(f"BeamSequence/ControlPointSequence[0]/{k}" for k in _FIRST_CP),
)

_ION_PLAN = _PLAN_COMMON + _rows(
    "RT Ion Beams C.8.8.25", "IonBeamSequence", "IonBeamSequence/BeamNumber", "IonBeamSequence/BeamType",
    "IonBeamSequence/RadiationType", "IonBeamSequence/NumberOfWedges", "IonBeamSequence/NumberOfCompensators",
    "IonBeamSequence/NumberOfBoli", "IonBeamSequence/NumberOfBlocks", "IonBeamSequence/NumberOfControlPoints",
    "IonBeamSequence/IonControlPointSequence", "IonBeamSequence/IonControlPointSequence/ControlPointIndex",
    *(f"IonBeamSequence/IonControlPointSequence[0]/{k}" for k in ("GantryAngle", "GantryRotationDirection",
                                                                   "PatientSupportAngle",
                                                                   "PatientSupportRotationDirection")),
)

_REG = _SOP_COMMON + _STUDY + _SERIES + _FOR + _rows(
    "Content Identification Table 10-12", "InstanceNumber", "ContentLabel") + _rows(
    "Spatial Registration C.20.2", "ContentDate", "ContentTime", "RegistrationSequence",
    "RegistrationSequence/MatrixRegistrationSequence",
    "RegistrationSequence/MatrixRegistrationSequence/MatrixSequence",
    "RegistrationSequence/MatrixRegistrationSequence/MatrixSequence/FrameOfReferenceTransformationMatrix",
    "RegistrationSequence/MatrixRegistrationSequence/MatrixSequence/FrameOfReferenceTransformationMatrixType",
)

#: Type 1 (and evaluated 1C) attributes per SOP Class UID.
TYPE1: dict[str, tuple[Type1, ...]] = {
    str(CTImageStorage): _CT,
    str(RTImageStorage): _RT_IMAGE,
    str(RTStructureSetStorage): _STRUCTURE_SET,
    str(RTPlanStorage): _PLAN,
    str(RTIonPlanStorage): _ION_PLAN,
    str(SpatialRegistrationStorage): _REG,
}


def _empty(ds: Dataset, keyword: str) -> bool:
    if keyword not in ds:
        return True
    value = ds[keyword].value
    return value is None or value == "" or value == b"" or (ds[keyword].VR == "SQ" and len(value) == 0)


def _datasets(ds: Dataset, steps: Sequence[str]) -> Iterable[tuple[Dataset, str]]:
    """The datasets reached through the sequence steps, with a readable path of items."""
    if not steps:
        yield ds, ""
        return
    step, rest = steps[0], steps[1:]
    first_only = step.endswith("[0]")
    keyword = step.removesuffix("[0]")
    if _empty(ds, keyword):
        return
    items = list(ds[keyword].value)[:1] if first_only else list(ds[keyword].value)
    for n, item in enumerate(items, 1):
        for sub, where in _datasets(item, rest):
            yield sub, f"{keyword}[{n}]" + (f" > {where}" if where else "")


def missing_type1(ds: Dataset, sop_class_uid: str, *, present: frozenset[str] = frozenset()) -> list[tuple[Type1, str]]:
    """Every ``(requirement, item path)`` of :data:`TYPE1` that *ds* violates (absent or empty).

    *present*: top-level keywords known to be present with a value although not in *ds* (Pixel
    Data located but not read, ``DicomFile.pixel_data``).
    """
    out = []
    for req in TYPE1.get(sop_class_uid, ()):
        if req.condition is not None and not req.condition(ds):
            continue
        if req.path in present:
            continue
        steps = req.path.split("/")
        for sub, where in _datasets(ds, steps[:-1]):
            if _empty(sub, req.keyword):
                out.append((req, where))
    return out


def check_type1(objects: Sequence[DicomFile]) -> list[Finding]:
    """PLAN-13 over received objects: one Failure per object with missing Type 1 attributes.

    CT slices are summarised per series (which attributes, in how many slices); objects of a
    SOP class without a table are skipped.
    """
    out: list[Finding] = []
    ct: dict[str, list[tuple[DicomFile, list[tuple[Type1, str]]]]] = {}
    checked = 0
    for f in objects:
        if f.sop_class_uid not in TYPE1:
            continue
        checked += 1
        located = frozenset({"PixelData"}) if f.pixel_data is not None and f.has_pixel_data() else frozenset()
        missing = missing_type1(f.dataset, f.sop_class_uid, present=located)
        if f.sop_class_uid == str(CTImageStorage):
            ct.setdefault(str(f.dataset.get("SeriesInstanceUID", "")), []).append((f, missing))
        elif missing:
            out.append(_object_failure(f, missing))
    for series, slices in ct.items():
        bad = [(f, m) for f, m in slices if m]
        if bad:
            labels = sorted({tag_label(r.keyword) for _, m in bad for r, _ in m})
            out.append(failure("PLAN-13", f"CT series …{series[-12:]}: {len(bad)} of {len(slices)} slices miss Type 1 "
                                          f"{', '.join(labels)} (first: {bad[0][0].source})",
                               tags=tuple(sorted({label.split(' ')[0] for label in labels})),
                               subject=f"CT series {series}"))
    if not out and checked:
        out.append(success("PLAN-13", f"all Type 1 attributes present in the {checked} received objects checked"))
    return out


def _object_failure(f: DicomFile, missing: list[tuple[Type1, str]]) -> Finding:
    parts = []
    for req, where in missing[:12]:
        parts.append(f"{tag_label(req.keyword)}" + (f" in {where}" if where else "") + f" [{req.module}]")
    more = f" and {len(missing) - 12} more" if len(missing) > 12 else ""
    tags = tuple(dict.fromkeys(tag_label(r.keyword).split(" ")[0] for r, _ in missing))
    return failure("PLAN-13", f"{sop_class_name(f.sop_class_uid)} {f.source}: missing or empty Type 1 "
                              f"{'; '.join(parts)}{more}", tags=tags, subject=f.source)
