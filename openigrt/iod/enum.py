"""Enumerated values of the attributes OpenIGRT reads and writes (``<Attribute>Values`` enums).

One shared module for readers (``openigrt.iod.*``) and builders (``openigrt.iod.build``), in the
style of highdicom's ``sc/enum.py`` (docs/ARCHITECTURE.md habit 7). Each enum is named after the
DICOM keyword of its attribute and cites the PS3.3 clause that lists the values; the member's
value is the exact DICOM string. Enums whose values are *Defined Terms* (open lists) hold the
terms we use; readers therefore keep unknown terms as plain strings instead of failing
(:func:`coerce`).

Private values (IOD-8, XML-1) are in the second half of the module and cite the SPEC.

>>> TreatmentDeliveryTypeValues("SETUP") is TreatmentDeliveryTypeValues.SETUP
True
>>> coerce(RTROIInterpretedTypeValues, "MARKER")
<RTROIInterpretedTypeValues.MARKER: 'MARKER'>
>>> coerce(RTROIInterpretedTypeValues, "SOMETHING_NEW")
'SOMETHING_NEW'
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


def coerce(enum_type: type[E], value: str | None) -> E | str | None:
    """Return ``enum_type(value)`` when *value* is a member, else the stripped string (or None).

    Readers are tolerant (habit 6): a Defined Term we do not know is kept as text, never an error.
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        return enum_type(text)
    except ValueError:
        return text


# --------------------------------------------------------------------------- RT Plan (PS3.3 C.8.8)
class TreatmentDeliveryTypeValues(str, Enum):
    """Treatment Delivery Type (300A,00CE), PS3.3 C.8.8.14 (RT Beams), C.8.8.25 (RT Ion Beams)."""

    TREATMENT = "TREATMENT"
    OPEN_PORTFILM = "OPEN_PORTFILM"
    TRMT_PORTFILM = "TRMT_PORTFILM"
    CONTINUATION = "CONTINUATION"
    SETUP = "SETUP"


class BeamTypeValues(str, Enum):
    """Beam Type (300A,00C4), PS3.3 C.8.8.14."""

    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"


class RadiationTypeValues(str, Enum):
    """Radiation Type (300A,00C6), PS3.3 C.8.8.14 / C.8.8.25 (Defined Terms)."""

    PHOTON = "PHOTON"
    ELECTRON = "ELECTRON"
    NEUTRON = "NEUTRON"
    PROTON = "PROTON"
    ION = "ION"


class RotationDirectionValues(str, Enum):
    """Gantry / Beam Limiting Device / Patient Support Rotation Direction, PS3.3 C.8.8.14.8."""

    CW = "CW"
    CC = "CC"
    NONE = "NONE"


class PatientPositionValues(str, Enum):
    """Patient Position (0018,5100), PS3.3 C.7.3.1.1.2 (Defined Terms)."""

    HFP = "HFP"
    HFS = "HFS"
    HFDR = "HFDR"
    HFDL = "HFDL"
    FFDR = "FFDR"
    FFDL = "FFDL"
    FFP = "FFP"
    FFS = "FFS"
    LFP = "LFP"
    LFS = "LFS"
    RFP = "RFP"
    RFS = "RFS"
    AFDR = "AFDR"
    AFDL = "AFDL"
    PFDR = "PFDR"
    PFDL = "PFDL"


class PrimaryDosimeterUnitValues(str, Enum):
    """Primary Dosimeter Unit (300A,00B3), PS3.3 C.8.8.14 / C.8.8.2 (RT Image: IOD-4)."""

    MU = "MU"
    MINUTE = "MINUTE"
    NP = "NP"


class RTBeamLimitingDeviceTypeValues(str, Enum):
    """RT Beam Limiting Device Type (300A,00B8), PS3.3 C.8.8.14."""

    X = "X"
    Y = "Y"
    ASYMX = "ASYMX"
    ASYMY = "ASYMY"
    MLCX = "MLCX"
    MLCY = "MLCY"


class RespiratoryMotionCompensationTechniqueValues(str, Enum):
    """Respiratory Motion Compensation Technique (0018,9170), PS3.3 C.7.6.16.2.17 (PLAN-12)."""

    NONE = "NONE"
    BREATH_HOLD = "BREATH_HOLD"
    REALTIME = "REALTIME"
    GATING = "GATING"
    TRACKING = "TRACKING"
    PHASE_ORDERING = "PHASE_ORDERING"
    PHASE_RESCANNING = "PHASE_RESCANNING"
    RETROSPECTIVE = "RETROSPECTIVE"
    CORRECTION = "CORRECTION"
    UNKNOWN = "UNKNOWN"


class RespiratorySignalSourceValues(str, Enum):
    """Respiratory Signal Source (0018,9171), PS3.3 C.7.6.16.2.17 (PLAN-12)."""

    NONE = "NONE"
    BELT = "BELT"
    NASAL_PROBE = "NASAL_PROBE"
    CO2_SENSOR = "CO2_SENSOR"
    NAVIGATOR = "NAVIGATOR"
    MR_PHASE = "MR_PHASE"
    ECG = "ECG"
    SPIROMETER = "SPIROMETER"
    EXTERNAL_MARKER = "EXTERNAL_MARKER"
    INTERNAL_MARKER = "INTERNAL_MARKER"
    IMAGE = "IMAGE"
    UNKNOWN = "UNKNOWN"


class ImagingDeviceSpecificAcquisitionParametersValues(str, Enum):
    """Imaging Device-Specific Acquisition Parameters (300A,00CC) as used by the statement (PLAN-2).

    The attribute is LO, VM 1-n. The kV values are **two** DICOM values (``KV`` and ``Image`` /
    ``CBCT``); the members below hold them joined with a backslash, which is how the statement
    writes them. Compare with :meth:`joined` of the read values.
    """

    PORT_IMAGE_HIGH_QUALITY = "PortImageHighQuality"
    PORT_IMAGE_LOW_DOSE = "PortImageLowDose"
    PORT_IMAGE_INTEGRATED = "PortImageIntegrated"
    PORT_IMAGE_CONTINUOUS = "PortImageContinuous"
    KV_IMAGE = "KV\\Image"
    KV_CBCT = "KV\\CBCT"

    @staticmethod
    def joined(values: tuple[str, ...] | list[str]) -> str:
        """Join read values with a backslash: ``("KV", "CBCT")`` -> ``"KV\\\\CBCT"``."""
        return "\\".join(v.strip() for v in values)


# --------------------------------------------------------------------------- RT Image (C.8.8.2)
class RTImagePlaneValues(str, Enum):
    """RT Image Plane (3002,000C), PS3.3 C.8.8.2."""

    NORMAL = "NORMAL"
    NON_NORMAL = "NON_NORMAL"


class ReportedValuesOriginValues(str, Enum):
    """Reported Values Origin (3002,000A), PS3.3 C.8.8.2."""

    OPERATOR = "OPERATOR"
    PLAN = "PLAN"
    ACTUAL = "ACTUAL"


class ConversionTypeValues(str, Enum):
    """Conversion Type (0008,0064), PS3.3 C.7.6.6 (Defined Terms)."""

    DV = "DV"
    DI = "DI"
    DF = "DF"
    WSD = "WSD"
    SD = "SD"
    SI = "SI"
    DRW = "DRW"
    SYN = "SYN"


class RescaleTypeValues(str, Enum):
    """Rescale Type (0028,1054), PS3.3 C.11.1.1.2; the portal-dose types of IOD-4."""

    US = "US"
    OD = "OD"
    HU = "HU"
    CU = "CU"
    GY_PER_MU = "Gy/MU"
    RD = "RD"


class RTImageTypeValue3Values(str, Enum):
    """Image Type (0008,0008) value 3 of an RT Image, PS3.3 C.8.8.2.1 (Defined Terms)."""

    DRR = "DRR"
    PORTAL = "PORTAL"
    SIMULATOR = "SIMULATOR"
    RADIOGRAPH = "RADIOGRAPH"
    BLANK = "BLANK"
    FLUENCE = "FLUENCE"


class ImageTypeValue1Values(str, Enum):
    """Image Type value 1 (pixel data characteristics), PS3.3 C.7.6.1.1.2."""

    ORIGINAL = "ORIGINAL"
    DERIVED = "DERIVED"


class ImageTypeValue2Values(str, Enum):
    """Image Type value 2 (patient examination characteristics), PS3.3 C.7.6.1.1.2."""

    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


class CTImageTypeValue3Values(str, Enum):
    """Image Type value 3 of a CT Image, PS3.3 C.8.2.1.1.1 (IOD-6)."""

    AXIAL = "AXIAL"
    LOCALIZER = "LOCALIZER"


class PhotometricInterpretationValues(str, Enum):
    """Photometric Interpretation (0028,0004), PS3.3 C.7.6.3.1.2 (the two we write)."""

    MONOCHROME2 = "MONOCHROME2"
    YBR_PARTIAL_420 = "YBR_PARTIAL_420"


# --------------------------------------------------------------------------- RT Structure Set (C.8.8.5-8)
class ContourGeometricTypeValues(str, Enum):
    """Contour Geometric Type (3006,0042), PS3.3 C.8.8.6.1."""

    POINT = "POINT"
    OPEN_PLANAR = "OPEN_PLANAR"
    OPEN_NONPLANAR = "OPEN_NONPLANAR"
    CLOSED_PLANAR = "CLOSED_PLANAR"
    CLOSEDPLANAR_XOR = "CLOSEDPLANAR_XOR"


class ROIGenerationAlgorithmValues(str, Enum):
    """ROI Generation Algorithm (3006,0036), PS3.3 C.8.8.5 (Defined Terms)."""

    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"


class RTROIInterpretedTypeValues(str, Enum):
    """RT ROI Interpreted Type (3006,00A4), PS3.3 C.8.8.8 (Defined Terms).

    ``INITLASERISO``, ``ACQ_ISOCENTER`` and ``INITMATCHISO`` are the statement's terms for the
    isocenter structure set of a verification CBCT (IOD-2).
    """

    EXTERNAL = "EXTERNAL"
    PTV = "PTV"
    CTV = "CTV"
    GTV = "GTV"
    TREATED_VOLUME = "TREATED_VOLUME"
    IRRAD_VOLUME = "IRRAD_VOLUME"
    BOLUS = "BOLUS"
    AVOIDANCE = "AVOIDANCE"
    ORGAN = "ORGAN"
    MARKER = "MARKER"
    REGISTRATION = "REGISTRATION"
    ISOCENTER = "ISOCENTER"
    CONTRAST_AGENT = "CONTRAST_AGENT"
    CAVITY = "CAVITY"
    SUPPORT = "SUPPORT"
    FIXATION = "FIXATION"
    DOSE_REGION = "DOSE_REGION"
    CONTROL = "CONTROL"
    INITLASERISO = "INITLASERISO"
    ACQ_ISOCENTER = "ACQ_ISOCENTER"
    INITMATCHISO = "INITMATCHISO"


class ROIObservationLabelValues(str, Enum):
    """ROI Observation Label (3006,0085) of the isocenter ROIs (IOD-2)."""

    INIT_LASER_ISO = "InitLaserIso"
    ACQ_ISO_CENTER = "AcqIsoCenter"
    INIT_MATCH_ISO = "InitMatchIso"


# --------------------------------------------------------------------------- Spatial Registration (C.20.2)
class FrameOfReferenceTransformationMatrixTypeValues(str, Enum):
    """Frame of Reference Transformation Matrix Type (0070,030C), PS3.3 C.20.2.1.1."""

    RIGID = "RIGID"
    RIGID_SCALE = "RIGID_SCALE"
    AFFINE = "AFFINE"


# --------------------------------------------------------------------------- match types (SPEC §4)
class MatchTypeValues(str, Enum):
    """The four match types of the statement (SPEC §4, PLAN-8); values are the CLI spellings."""

    MATCH_2D = "2d"
    MATCH_2D2D = "2d2d"
    MARKER = "marker"
    MATCH_3D3D = "3d3d"


# --------------------------------------------------------------------------- private values (IOD-8)
class ExtendedInterfaceFormatValues(str, Enum):
    """Extended Interface Format (3253,xx02), SPEC IOD-8."""

    EXTENDED_IF = "ExtendedIF"
    IMAGE_PROCESSING = "ImageProcessing"


class StructureSetRelationshipValues(str, Enum):
    """Private Structure Set Relationship (3263,xx02), SPEC IOD-3 / IOD-8."""

    PREDECESSOR = "PREDECESSOR"
    ADDITION = "ADDITION"


class MarkerSubtypeValues(str, Enum):
    """Private Marker Subtype (3271,xx00), SPEC PLAN-11."""

    MARKER = "MARKER"


class PrimaryReferenceImageValues(str, Enum):
    """Private primary reference image flag (3279,xx00), SPEC IOD-8."""

    PRIMARY = "PRIMARY"
    NOT_PRIMARY = "NOT_PRIMARY"


class RegistrationSubTypeValues(str, Enum):
    """Private Registration Sub Type (3275,xx00): names the match type (SPEC IOD-1).

    The statement gives no value list; these are OpenIGRT's, one per :class:`MatchTypeValues`.
    """

    MATCH_2D = "2D"
    MATCH_2D2D = "2D2D"
    MARKER = "MARKER"
    MATCH_3D3D = "3D3D"

    @classmethod
    def for_match(cls, match: MatchTypeValues | str) -> RegistrationSubTypeValues:
        """The sub type written for a match type (``"2d2d"`` -> ``2D2D``)."""
        return {
            MatchTypeValues.MATCH_2D: cls.MATCH_2D,
            MatchTypeValues.MATCH_2D2D: cls.MATCH_2D2D,
            MatchTypeValues.MARKER: cls.MARKER,
            MatchTypeValues.MATCH_3D3D: cls.MATCH_3D3D,
        }[MatchTypeValues(match)]


class FluenceModeValues(str, Enum):
    """Private primary fluence mode (3285,xx01); same terms as Fluence Mode (3002,0051)."""

    STANDARD = "STANDARD"
    NON_STANDARD = "NON_STANDARD"


# --------------------------------------------------------------------------- extended-interface XML (XML-1)
class FieldTypeValues(str, Enum):
    """``BeamExtension/FieldType`` of the extended-interface XML (XML-1, PLAN-1 fallback)."""

    TREATMENT = "TREATMENT"
    SETUP = "SETUP"


class SetupPhotoFormatValues(str, Enum):
    """``FieldSetupPhoto/SetupPhotoFormat`` (XML-1)."""

    JPG = "JPG"
    BMP = "BMP"


class CustomAddOnTypeValues(str, Enum):
    """``CustomAddOn/CustomAddOnType`` (XML-1)."""

    BLOCK = "BLOCK"
    COMPENSATOR = "COMPENSATOR"
    TRAY = "TRAY"


class AxisSetupModeValues(str, Enum):
    """The ``…Setup`` children of ``ToleranceTableExtension`` (XML-1)."""

    AUTOMATIC = "Automatic"
    MANUAL = "Manual"
    REMOTE = "Remote"
