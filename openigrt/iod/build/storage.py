"""Which created objects are stored to the TMS (SPEC IOD-7, NET-11 ``[storage]`` switches).

:func:`filter_for_storage` is the single place that applies the configuration to a created
object before the Storage SCU or the file export sees it:

==============================================  ===================================  =====================
object                                          switch                               when off
==============================================  ===================================  =====================
Spatial Registration (IOD-1)                    ``storage.store_registrations``      not stored
RT Structure Set with isocenter ROIs (IOD-2)    ``storage.store_ct_isocenters``      not stored
CT Image (verification CBCT, IOD-6)             ``storage.store_ct_isocenters``      not stored
RT Structure Set with markers (IOD-3)           ``storage.store_markers``            not stored
RT Image with marker curves (IOD-5)             ``storage.store_markers``            stored **without** the
                                                                                     curve groups
acquired RT Image (IOD-4), other objects        —                                    always stored
==============================================  ===================================  =====================

The acquired image itself is patient data and always kept; only the marker match result
written into it (the curves) is "marker data".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from openigrt.config import Settings
from openigrt.iod.build.common import CT_IMAGE_STORAGE, RT_IMAGE_STORAGE, RT_STRUCTURE_SET_STORAGE, SPATIAL_REGISTRATION_STORAGE
from openigrt.iod.enum import RTROIInterpretedTypeValues
from openigrt.iod.private import REFERENCED_STRUCTURE_SET_SEQUENCE, private_tag

_ISOCENTER_TYPES = {RTROIInterpretedTypeValues.INITLASERISO.value, RTROIInterpretedTypeValues.ACQ_ISOCENTER.value,
                    RTROIInterpretedTypeValues.INITMATCHISO.value}


@dataclass(frozen=True)
class StorageDecision:
    """What :func:`storage_decision` found: the governing switch, and whether it allows storage."""

    setting: str | None
    store: bool
    strip_marker_curves: bool = False


def storage_decision(ds: Dataset, settings: Settings) -> StorageDecision:
    """Classify a created object and look up its ``[storage]`` switch (table in the module doc)."""
    st = settings.storage
    sop = str(ds.get("SOPClassUID", ""))
    if sop == SPATIAL_REGISTRATION_STORAGE:
        return StorageDecision("storage.store_registrations", st.store_registrations)
    if sop == CT_IMAGE_STORAGE:
        return StorageDecision("storage.store_ct_isocenters", st.store_ct_isocenters)
    if sop == RT_STRUCTURE_SET_STORAGE:
        types = {str(o.get("RTROIInterpretedType", "")) for o in ds.get("RTROIObservationsSequence", [])}
        if types & _ISOCENTER_TYPES:
            return StorageDecision("storage.store_ct_isocenters", st.store_ct_isocenters)
        marker_set = RTROIInterpretedTypeValues.MARKER.value in types or private_tag(
            ds, REFERENCED_STRUCTURE_SET_SEQUENCE, creator_prefix=settings.private_creator) is not None
        if marker_set:
            return StorageDecision("storage.store_markers", st.store_markers)
    if sop == RT_IMAGE_STORAGE and _curve_groups(ds):
        return StorageDecision("storage.store_markers", True, strip_marker_curves=not st.store_markers)
    return StorageDecision(None, True)


def filter_for_storage(ds: Dataset, settings: Settings) -> Dataset | None:
    """The dataset to store for *ds* under *settings*, or None when its storage is switched off.

    *ds* is never modified; an RT Image whose curves must not be stored comes back as a copy
    without its curve groups (50xx).
    """
    decision = storage_decision(ds, settings)
    if not decision.store:
        return None
    if decision.strip_marker_curves:
        out = copy.deepcopy(ds)
        for tag in [t for t in out.keys() if 0x5000 <= t.group <= 0x501E and t.group % 2 == 0]:
            del out[tag]
        return out
    return ds


def _curve_groups(ds: Dataset) -> list[int]:
    return [g for g in range(0x5000, 0x5020, 2) if Tag(g, 0x3000) in ds]
