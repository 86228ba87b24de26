"""SOP classes, transfer syntaxes and roles of the node, in one place (SPEC §1 table).

Only the classes listed in SPEC §1 are negotiated. The statement misprints the RT Image and RT
Plan UIDs; the standard ones below are used (PS3.4 Annex B.5).

>>> SOP_CLASS_NAMES[CT_IMAGE_STORAGE]
'CT Image Storage'
>>> SCP_STORAGE_CLASSES == (CT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE, RT_IMAGE_STORAGE, RT_PLAN_STORAGE)
True
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- transfer syntaxes
IMPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN: Final = "1.2.840.10008.1.2.1"
MPEG2_MAIN_PROFILE_MAIN_LEVEL: Final = "1.2.840.10008.1.2.4.100"

# --------------------------------------------------------------------------- SOP classes
VERIFICATION: Final = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.2"
SPATIAL_REGISTRATION_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.66.1"
RT_STRUCTURE_SET_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.481.3"
RT_IMAGE_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.481.1"
RT_PLAN_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.481.5"
STUDY_ROOT_QR_FIND: Final = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_QR_MOVE: Final = "1.2.840.10008.5.1.4.1.2.2.2"

SOP_CLASS_NAMES: Final[dict[str, str]] = {
    VERIFICATION: "Verification",
    CT_IMAGE_STORAGE: "CT Image Storage",
    SPATIAL_REGISTRATION_STORAGE: "Spatial Registration Storage",
    RT_STRUCTURE_SET_STORAGE: "RT Structure Set Storage",
    RT_IMAGE_STORAGE: "RT Image Storage",
    RT_PLAN_STORAGE: "RT Plan Storage",
    STUDY_ROOT_QR_FIND: "Study Root Query/Retrieve - FIND",
    STUDY_ROOT_QR_MOVE: "Study Root Query/Retrieve - MOVE",
}

#: Storage SOP classes our Storage SCP accepts (NET-7), in SPEC order.
SCP_STORAGE_CLASSES: Final = (CT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE, RT_IMAGE_STORAGE, RT_PLAN_STORAGE)
#: Transfer syntaxes our SCP accepts for every storage class (NET-7).
SCP_TRANSFER_SYNTAXES: Final = (IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN)
#: Storage SOP classes our Storage SCU sends (NET-1).
SCU_STORAGE_CLASSES: Final = (
    CT_IMAGE_STORAGE, SPATIAL_REGISTRATION_STORAGE, RT_STRUCTURE_SET_STORAGE, RT_IMAGE_STORAGE,
)
#: Transfer syntaxes we may propose as SCU besides Implicit VR LE (multi-frame cine RT Image).
SCU_EXTRA_SYNTAXES: Final[dict[str, tuple[str, ...]]] = {RT_IMAGE_STORAGE: (MPEG2_MAIN_PROFILE_MAIN_LEVEL,)}
#: SOP classes accepted by file import (NET-12) and offered by export (NET-12).
IMPORT_CLASSES: Final = SCP_STORAGE_CLASSES
EXPORT_CLASSES: Final = (CT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE, RT_IMAGE_STORAGE, SPATIAL_REGISTRATION_STORAGE)

#: Application context name always proposed (PS3.7 A.2.1).
APPLICATION_CONTEXT_NAME: Final = "1.2.840.10008.3.1.1.1"


def sop_class_name(uid: str) -> str:
    """Return a readable name for *uid* (the UID itself when unknown).

    >>> sop_class_name("1.2.840.10008.5.1.4.1.1.481.1")
    'RT Image Storage'
    >>> sop_class_name("1.2.840.10008.5.1.4.1.1.4")
    'MR Image Storage'
    """
    if uid in SOP_CLASS_NAMES:
        return SOP_CLASS_NAMES[uid]
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name else uid
