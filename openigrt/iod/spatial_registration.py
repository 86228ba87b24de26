"""Spatial Registration reader (PS3.3 A.39, C.20.2): registrations, matrices, private sub type.

Used to check what the IOD-1 builder wrote (the REG *direction*): each item of the Registration
Sequence (0070,0308) names a Frame of Reference UID (or referenced images) and a 4×4 matrix that
maps coordinates **of that Frame of Reference** into the REG's own Frame of Reference (PS3.3
C.20.2.1.1: "transforms the coordinates of the registered Frame of Reference into the coordinate
system of the Registration's Frame of Reference"). So for IOD-1 the reference item's matrix maps
reference (planning) coordinates to verification coordinates, and the verification item's
matrix is the identity; :meth:`SpatialRegistration.transform` composes them for any pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import SpatialRegistrationStorage

from openigrt.config import DEFAULT_PRIVATE_CREATOR
from openigrt.errors import DicomInputError
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod import private
from openigrt.iod.dataset_io import (
    AttributeReader,
    DicomFile,
    PatientStudy,
    ReferencedInstance,
    as_dicom_file,
    check_sop_class,
)


@dataclass(frozen=True)
class RegistrationTypeCode:
    """An item of the Registration Type Code Sequence (0070,030D)."""

    code_value: str | None
    coding_scheme_designator: str | None
    code_meaning: str | None


@dataclass(frozen=True, eq=False)
class Registration:
    """One item of the Registration Sequence; ``matrix`` maps this FoR into the REG's FoR."""

    frame_of_reference_uid: str | None
    referenced_images: tuple[ReferencedInstance, ...]
    matrix: NDArray[np.float64]
    matrix_type: str | None
    registration_type_codes: tuple[RegistrationTypeCode, ...]
    matrices_in_item: int


@dataclass(frozen=True, eq=False)
class SpatialRegistration:
    """A Spatial Registration, read tolerantly. Build with :meth:`from_dataset`."""

    source: str
    sop_instance_uid: str
    patient_study: PatientStudy
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    content_label: str | None
    content_description: str | None
    instance_number: int | None
    registrations: tuple[Registration, ...]
    registration_sub_type: str | None
    referenced_series_instances: tuple[tuple[str, tuple[ReferencedInstance, ...]], ...]
    issues: tuple[str, ...] = ()
    dataset: Dataset | None = field(default=None, repr=False)

    def registration_for(self, frame_of_reference_uid: str) -> Registration | None:
        return next((r for r in self.registrations if r.frame_of_reference_uid == frame_of_reference_uid), None)

    def transform(self, *, source_for: str, target_for: str) -> RigidTransform:
        """Rigid transform taking *source_for* coordinates to *target_for* coordinates.

        ``M_target⁻¹ · M_source`` where each ``M`` maps its FoR into the REG's FoR.
        """
        src, dst = self.registration_for(source_for), self.registration_for(target_for)
        if src is None or dst is None:
            missing = source_for if src is None else target_for
            raise DicomInputError(f"{self.source}: no Registration Sequence item for Frame of Reference {missing}")
        return RigidTransform(dst.matrix).inverse().compose(RigidTransform(src.matrix))

    @classmethod
    def from_dataset(cls, obj: DicomFile | Dataset, *,
                     creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> SpatialRegistration:
        f = as_dicom_file(obj)
        check_sop_class(f, str(SpatialRegistrationStorage))
        r = AttributeReader(f.dataset, f.source)
        regs = tuple(_registration(i) for i in r.items("RegistrationSequence", required=True))
        refs = tuple((s.opt_str("SeriesInstanceUID") or "",
                      tuple(ReferencedInstance.from_item(x) for x in s.items("ReferencedInstanceSequence")))
                     for s in r.items("ReferencedSeriesSequence"))
        return cls(
            source=f.source, sop_instance_uid=f.sop_instance_uid, patient_study=PatientStudy.from_reader(r),
            series_instance_uid=r.opt_str("SeriesInstanceUID"), frame_of_reference_uid=r.opt_str("FrameOfReferenceUID"),
            content_label=r.opt_str("ContentLabel"), content_description=r.opt_str("ContentDescription"),
            instance_number=r.opt_int("InstanceNumber"), registrations=regs,
            registration_sub_type=private.read_private_value(f.dataset, private.REGISTRATION_SUB_TYPE,
                                                             creator_prefix=creator_prefix),
            referenced_series_instances=refs, issues=f.issues, dataset=f.dataset,
        )


def _registration(i: AttributeReader) -> Registration:
    mrs = i.items("MatrixRegistrationSequence", required=True)
    if len(mrs) != 1:
        raise DicomInputError(f"{i.where}: (0070,0309) Matrix Registration Sequence has {len(mrs)} items, expected 1")
    m = mrs[0]
    codes = tuple(RegistrationTypeCode(c.opt_str("CodeValue"), c.opt_str("CodingSchemeDesignator"),
                                       c.opt_str("CodeMeaning")) for c in m.items("RegistrationTypeCodeSequence"))
    matrices = m.items("MatrixSequence", required=True)
    total = np.eye(4)
    types = []
    for mat in matrices:  # PS3.3 C.20.2.1.1: several matrices are applied in order
        values = np.asarray(mat.floats("FrameOfReferenceTransformationMatrix", 16)).reshape(4, 4)
        total = values @ total
        types.append(mat.opt_str("FrameOfReferenceTransformationMatrixType"))
    images = tuple(ReferencedInstance.from_item(x) for x in i.items("ReferencedImageSequence"))
    return Registration(i.opt_str("FrameOfReferenceUID"), images, total, types[0] if len(set(types)) == 1 else None,
                        codes, len(matrices))
