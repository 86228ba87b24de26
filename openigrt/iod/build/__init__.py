"""IOD builders: strict constructors of the DICOM objects OpenIGRT creates (SPEC §5, SIM-1).

Every builder takes keyword-only, typed arguments (frozen dataclasses for composite inputs),
validates eagerly and either returns a valid :class:`pydicom.dataset.Dataset` (with file meta,
Explicit VR Little Endian unless MPEG2) or raises :class:`openigrt.errors.BuildError` whose
message starts with the offending attribute's keyword. Patient, study, Frame of Reference and
character set are copied from the source datasets; Series Number is 0; UIDs come from
``settings.uid_root``; equipment from the settings.

=========================================  ===========================================  ======
builder                                    object                                       SPEC
=========================================  ===========================================  ======
:func:`build_spatial_registration`         Spatial Registration (2D, 2D/2D, 3D/3D, marker)  IOD-1
:func:`build_isocenter_structure_set`      RT Structure Set with isocenter points        IOD-2
:func:`build_marker_structure_set`         RT Structure Set with markers (+ resampled ROIs) IOD-3
:func:`build_structure_set`                general RT Structure Set (phantom)             SIM-1
:func:`build_acquired_rt_image`            acquired kV/MV RT Image, cine, MPEG2           IOD-4
:func:`add_marker_curves`                  marker curves in an acquired RT Image          IOD-5
:func:`build_reference_drr`                reference DRR RT Image (phantom)               SIM-1
:func:`build_verification_ct_series`       verification CBCT slices                      IOD-6
:func:`build_planning_ct_series`           planning CT slices (phantom)                   SIM-1
:func:`build_rt_plan`                      RT Plan with treatment and setup beams (phantom) SIM-1
:func:`filter_for_storage`                 applies the ``[storage]`` switches              IOD-7
=========================================  ===========================================  ======
"""

from openigrt.iod.build._values import ImagerValues, SetupTechniqueValues
from openigrt.iod.build.common import PatientStudy, map_patient_sex, write_file
from openigrt.iod.build.ct_image import (
    CouchPosition,
    CTAcquisition,
    build_planning_ct_series,
    build_verification_ct_series,
)
from openigrt.iod.build.curves import MarkerPixel, add_marker_curves, read_marker_curves
from openigrt.iod.build.rt_image import (
    BeamLimitingDevice,
    Cine,
    Exposure,
    Rescale,
    RTImageGeometry,
    build_acquired_rt_image,
    build_reference_drr,
    centered_rt_image_position,
)
from openigrt.iod.build.rt_plan import Jaws, Mlc, PlanSetup, SetupBeam, TreatmentBeam, build_rt_plan
from openigrt.iod.build.spatial_registration import build_spatial_registration
from openigrt.iod.build.storage import filter_for_storage, storage_decision
from openigrt.iod.build.structure_set import (
    IsocenterPoints,
    MarkerPoint,
    Roi,
    build_isocenter_structure_set,
    build_marker_structure_set,
    build_structure_set,
    roi_from_structure,
)

__all__ = [
    "BeamLimitingDevice", "CTAcquisition", "Cine", "CouchPosition", "Exposure", "ImagerValues", "IsocenterPoints",
    "Jaws", "MarkerPixel", "MarkerPoint", "Mlc", "PatientStudy", "PlanSetup", "RTImageGeometry", "Rescale", "Roi",
    "SetupBeam", "SetupTechniqueValues", "TreatmentBeam", "add_marker_curves", "build_acquired_rt_image",
    "build_isocenter_structure_set", "build_marker_structure_set", "build_planning_ct_series",
    "build_reference_drr", "build_rt_plan", "build_spatial_registration", "build_structure_set",
    "build_verification_ct_series", "centered_rt_image_position", "filter_for_storage", "map_patient_sex",
    "read_marker_curves", "roi_from_structure", "storage_decision", "write_file",
]
