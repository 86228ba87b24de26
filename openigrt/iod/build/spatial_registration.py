"""Spatial Registration builder (SPEC IOD-1; PS3.3 A.39.1, C.20.2).

Which matrix is stored, and why it is the project's convention
----------------------------------------------------------------
PS3.3 C.20.2 says each Registration Sequence item "defines a spatial registration of the images
referenced in that item to the Registered RCS established by this SOP Instance", and
C.20.2.1.1 that the Frame of Reference Transformation Matrix :sup:`A`\\ M\\ :sub:`B` transforms a
point given in RCS B (the referenced images' Frame of Reference, the *Source RCS*) into RCS A
(the REG's own Frame of Reference, the *Registered RCS*): ``p_REG = M @ p_source``.

The REG's own Frame of Reference is the **verification** images' (SPEC IOD-1). So the item that
references the **reference** images (planning CT slices or reference DRRs) stores the matrix
that maps reference patient coordinates to verification patient coordinates — exactly
``RigidTransform.matrix`` of a match result (:mod:`openigrt.geometry.rigid`: "maps reference
patient mm → verification patient mm"). It is written unchanged, never inverted. The item that
references the verification images stores the identity. plastimatch's independent writer
(``xf-convert --output-dicom``) stores the same matrix for the same registration
(``tests/build/test_spatial_registration.py``).

Layout
------
* Registration Sequence item (a): reference images, the reference Frame of Reference UID, Matrix
  Registration Sequence › Registration Type Code Sequence (DCM 125024 *Image Content-based
  Alignment*; DCM 125022 *Fiducial Alignment* for the marker match) and Matrix Sequence with
  exactly one item (the 4×4 matrix as 16 DS values, row-major; Matrix Type ``RIGID``).
* Item (b): verification images, their Frame of Reference UID, identity matrix with DCM 125021
  *Frame of Reference Identity*.
* Private Registration Sub Type (3275,xx00): ``2D``, ``2D2D``, ``3D3D`` or ``MARKER``.
* Common Instance Reference module: every referenced instance by study and series.

IHE-RO 2008 option (``settings.storage.ihe_ro_2008``)
-----------------------------------------------------
The IHE-RO Multimodality Registration (MMR-RO) content profile text is not in our sources; we
apply the constraints of it that we know and that are checkable here:

1. exactly two Registration Sequence items, the **fixed** (registered) image set first with
   the identity matrix, the moving (reference) set second;
2. every item carries both the Frame of Reference UID and a Referenced Image Sequence;
3. exactly one Matrix Sequence item, Matrix Type ``RIGID`` only, the rotation part orthonormal
   within 1e-6 (stricter than our 1e-5 default) and re-orthonormalised before writing;
4. no Used Fiducials Sequence (we never write one).

Without the option the items are in the SPEC's order (reference first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.errors import BuildError
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod.build._values import coerce_enum
from openigrt.iod.build.common import (
    CT_IMAGE_STORAGE,
    RT_IMAGE_STORAGE,
    SPATIAL_REGISTRATION_STORAGE,
    PatientStudy,
    SeriesInfo,
    add_private,
    build_error,
    check_text,
    common_instance_reference,
    content_date_time,
    ds_values,
    new_dataset,
    now,
    sop_reference,
    source_value,
)
from openigrt.iod.enum import RegistrationSubTypeValues
from openigrt.iod.private import REGISTRATION_SUB_TYPE
from openigrt.uids import new_uid

#: Orthonormality tolerance of the rotation part with the IHE-RO 2008 option.
IHE_RO_ORTHONORMAL_TOL = 1e-6
#: CID 7100 RCS Registration Method codes (scheme DCM, PS3.16).
CODE_IMAGE_CONTENT = ("125024", "DCM", "Image Content-based Alignment")
CODE_FIDUCIAL = ("125022", "DCM", "Fiducial Alignment")
CODE_FOR_IDENTITY = ("125021", "DCM", "Frame of Reference Identity")

#: (reference SOP class, verification SOP class, minimum count of each) per sub type (SPEC IOD-1).
_VARIANTS: dict[RegistrationSubTypeValues, tuple[str, str, int]] = {
    RegistrationSubTypeValues.MATCH_2D: (RT_IMAGE_STORAGE, RT_IMAGE_STORAGE, 1),
    RegistrationSubTypeValues.MATCH_2D2D: (RT_IMAGE_STORAGE, RT_IMAGE_STORAGE, 2),
    RegistrationSubTypeValues.MATCH_3D3D: (CT_IMAGE_STORAGE, CT_IMAGE_STORAGE, 1),
    RegistrationSubTypeValues.MARKER: (CT_IMAGE_STORAGE, RT_IMAGE_STORAGE, 1),
}


def build_spatial_registration(
    *,
    reference_images: Sequence[Dataset],
    verification_images: Sequence[Dataset],
    transform: RigidTransform | ArrayLike,
    registration_sub_type: RegistrationSubTypeValues | str,
    settings: Settings,
    content_label: str,
    content_description: str,
    content_creator_name: str = "",
    content_datetime: datetime | None = None,
) -> Dataset:
    """Build a Spatial Registration from a match result (SPEC IOD-1).

    Parameters
    ----------
    reference_images
        The reference images of the match: reference RT Images (2D, 2D/2D) or planning CT
        slices (3D/3D, marker match), all in one Frame of Reference.
    verification_images
        The acquired images: RT Images (2D, 2D/2D, marker match) or CBCT slices (3D/3D), all in
        one Frame of Reference, which becomes the REG's Frame of Reference. Patient and study
        identity are copied from the first one.
    transform
        The match result: maps reference patient mm to verification patient mm (4×4 or
        :class:`RigidTransform`). Stored unchanged (see the module docstring).
    registration_sub_type
        ``2D``, ``2D2D``, ``3D3D`` or ``MARKER``; also checks the SOP classes of the images.
    settings
        UID root, equipment, private creator, IHE-RO 2008 option.
    content_label
        Content Label (0070,0080), CS: at most 16 of ``A-Z 0-9 _`` and space.
    content_description
        Content Description (0070,0081), LO.
    content_creator_name
        Content Creator's Name (0070,0084), PN (Type 2: empty when not given).
    content_datetime
        Content Date/Time; now when omitted.

    Raises
    ------
    BuildError
        Naming the attribute: wrong image classes for the sub type, mixed or equal Frames of
        Reference, a non-rigid matrix, an invalid label.
    """
    sub_type = coerce_enum(RegistrationSubTypeValues, registration_sub_type, "RegistrationSubType (3275,xx00)")
    _check_variant(sub_type, reference_images, verification_images)
    ref_for = _single_frame_of_reference(reference_images, "reference images")
    ver_for = _single_frame_of_reference(verification_images, "verification images")
    ihe = settings.storage.ihe_ro_2008
    matrix = rigid_matrix(transform, strict=ihe)
    if ref_for == ver_for and not np.allclose(matrix, np.eye(4), atol=1e-9):
        raise build_error("FrameOfReferenceUID", "reference and verification images share one Frame of Reference "
                          f"({ref_for}) but the matrix is not the identity")
    _check_content_label(content_label)
    when = content_datetime or now()
    ds = new_dataset(
        sop_class_uid=SPATIAL_REGISTRATION_STORAGE, settings=settings,
        patient_study=PatientStudy.from_datasets([*verification_images, *reference_images],
                                                 study_from=verification_images[0]),
        series=SeriesInfo(modality="REG", series_instance_uid=new_uid(settings.uid_root)),
        content_datetime=when,
    )
    ds.FrameOfReferenceUID = ver_for
    ds.PositionReferenceIndicator = str(verification_images[0].get("PositionReferenceIndicator", "") or "")
    content_date_time(ds, when)
    ds.InstanceNumber = 0
    ds.ContentLabel = content_label
    ds.ContentDescription = check_text("ContentDescription", content_description, max_len=64, required=False)
    ds.ContentCreatorName = content_creator_name
    moving = _registration_item(reference_images, ref_for, matrix,
                                CODE_FIDUCIAL if sub_type is RegistrationSubTypeValues.MARKER else CODE_IMAGE_CONTENT)
    fixed = _registration_item(verification_images, ver_for, np.eye(4), CODE_FOR_IDENTITY)
    ds.RegistrationSequence = [fixed, moving] if ihe else [moving, fixed]
    common_instance_reference(ds, [*reference_images, *verification_images])
    add_private(ds, settings, REGISTRATION_SUB_TYPE, sub_type.value)
    return ds


def rigid_matrix(transform: RigidTransform | ArrayLike, *, strict: bool = False) -> NDArray[np.float64]:
    """Validate a 4×4 rigid matrix (proper rotation + translation, last row 0 0 0 1).

    With *strict* (IHE-RO option) the rotation must be orthonormal within
    :data:`IHE_RO_ORTHONORMAL_TOL` and is re-orthonormalised (SVD) before it is returned.
    """
    raw = transform.matrix if isinstance(transform, RigidTransform) else transform
    try:
        m = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise build_error("FrameOfReferenceTransformationMatrix", "expected a 4x4 matrix of numbers") from None
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise build_error("FrameOfReferenceTransformationMatrix", f"expected a finite 4x4 matrix, got shape {m.shape}")
    try:
        RigidTransform(m)
    except ValueError as exc:
        raise build_error("FrameOfReferenceTransformationMatrix", f"not a RIGID matrix: {exc}") from None
    if strict:
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), rtol=0.0, atol=IHE_RO_ORTHONORMAL_TOL):
            raise build_error("FrameOfReferenceTransformationMatrix",
                              f"rotation not orthonormal within {IHE_RO_ORTHONORMAL_TOL} (IHE-RO 2008 option)")
        u, _, vt = np.linalg.svd(r)
        m = m.copy()
        m[:3, :3] = u @ vt
    return m


def _check_variant(sub_type: RegistrationSubTypeValues, refs: Sequence[Dataset], vers: Sequence[Dataset]) -> None:
    ref_class, ver_class, minimum = _VARIANTS[sub_type]
    for role, images, cls in (("reference images", refs, ref_class), ("verification images", vers, ver_class)):
        if len(images) < minimum:
            raise build_error("ReferencedImageSequence",
                              f"a {sub_type.value} registration needs at least {minimum} {role}, got {len(images)}")
        for ds in images:
            got = str(source_value(ds, "SOPClassUID", role))
            if got != cls:
                raise build_error("ReferencedSOPClassUID", f"{sub_type.value} registration: {role} must be of SOP class "
                                  f"{cls}, got {got} (SOP Instance UID {ds.get('SOPInstanceUID', '?')})")


def _single_frame_of_reference(images: Sequence[Dataset], role: str) -> str:
    uids = {str(source_value(ds, "FrameOfReferenceUID", role)) for ds in images}
    if len(uids) != 1:
        raise build_error("FrameOfReferenceUID", f"the {role} are in {len(uids)} Frames of Reference: {sorted(uids)}")
    return uids.pop()


def _check_content_label(label: str) -> None:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ ")
    if not isinstance(label, str) or not label.strip() or len(label) > 16 or not set(label) <= allowed:
        raise build_error("ContentLabel", f"must be 1-16 characters of A-Z, 0-9, '_' and space (CS), got {label!r}")


def _registration_item(images: Sequence[Dataset], frame_of_reference_uid: str, matrix: NDArray[np.float64],
                       code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.FrameOfReferenceUID = frame_of_reference_uid
    item.ReferencedImageSequence = [sop_reference(ds) for ds in images]
    code_item = Dataset()
    code_item.CodeValue, code_item.CodingSchemeDesignator, code_item.CodeMeaning = code
    matrix_item = Dataset()
    matrix_item.FrameOfReferenceTransformationMatrix = ds_values(matrix.ravel())
    matrix_item.FrameOfReferenceTransformationMatrixType = "RIGID"
    mreg = Dataset()
    mreg.RegistrationTypeCodeSequence = [code_item]
    mreg.MatrixSequence = [matrix_item]
    item.MatrixRegistrationSequence = [mreg]
    return item


__all__ = ["build_spatial_registration", "rigid_matrix", "BuildError"]
