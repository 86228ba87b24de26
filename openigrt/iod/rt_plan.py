"""RT Plan and RT Ion Plan reader (PS3.3 A.20 / A.49), with PLAN-1/PLAN-2 interpretation helpers.

:meth:`RTPlan.from_dataset` reads, tolerantly and eagerly, what the plan checks and the workflow
need: identity, Referenced Structure Set Sequence, fraction groups, Patient Setup Sequence with
Motion Synchronization (PLAN-12), tolerance tables, beams with their control points, Planned
Verification Image Sequence, Referenced Reference Image Sequence, and the private extended
interface XML (3253,xx00, XML-1). An RT Ion Plan is read by the same code (Ion Beam Sequence,
Ion Control Point Sequence, Ion Tolerance Table Sequence).

Control points carry **effective** values: PS3.3 C.8.8.14.5 lets a control point omit what did
not change, so every value not given in control point *n* is taken from control point *n-1*.

Two interpretations of the statement live here because every consumer needs them:

* :meth:`Beam.field_type` (PLAN-1): SETUP or TREATMENT, and how it was decided — Treatment
  Delivery Type (300A,00CE) (preferred) or the XML ``BeamExtension/FieldType`` (deprecated
  fallback, which is how the Eclipse 8.1 "CBCT" beam is a setup field).
* :meth:`Beam.imaging` (PLAN-2): kV image, CBCT, MV portal, film or none, from the Planned
  Verification Image Sequence (300A,00CA) and its Imaging Device-Specific Acquisition
  Parameters (300A,00CC).

Angles are in degrees (``_deg``), lengths in mm (``_mm``), in the plan's IEC 61217 / DICOM
patient conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pydicom.dataset import Dataset
from pydicom.uid import RTIonPlanStorage, RTPlanStorage

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
)
from openigrt.iod.enum import (
    BeamTypeValues,
    FieldTypeValues,
    ImagingDeviceSpecificAcquisitionParametersValues as DeviceParameters,
    RadiationTypeValues,
    RespiratoryMotionCompensationTechniqueValues,
    RespiratorySignalSourceValues,
    TreatmentDeliveryTypeValues,
    coerce,
)
from openigrt.iod.xml_interface import ExtendedVAPlanInterface, parse_plan_interface

_MV_PORTAL = {DeviceParameters.PORT_IMAGE_HIGH_QUALITY, DeviceParameters.PORT_IMAGE_LOW_DOSE,
              DeviceParameters.PORT_IMAGE_INTEGRATED, DeviceParameters.PORT_IMAGE_CONTINUOUS}


class FieldTypeSourceValues(str, Enum):
    """How PLAN-1 decided a beam's field type."""

    TREATMENT_DELIVERY_TYPE = "TreatmentDeliveryType"
    EXTENDED_INTERFACE_XML = "ExtendedInterfaceXML"
    DEFAULT = "default"


class ImagingKindValues(str, Enum):
    """What a beam images (PLAN-2)."""

    KV_IMAGE = "kV image"
    CBCT = "CBCT"
    MV_PORTAL = "MV portal"
    FILM = "film"
    NONE = "none"
    OTHER = "other"


# --------------------------------------------------------------------------- beam parts
@dataclass(frozen=True)
class BeamLimitingDevicePosition:
    """One item of the Beam Limiting Device Position Sequence (300A,011A)."""

    rt_beam_limiting_device_type: str
    leaf_jaw_positions_mm: tuple[float, ...]


@dataclass(frozen=True)
class ControlPoint:
    """Effective state at one control point (values inherited from earlier control points)."""

    control_point_index: int
    cumulative_meterset_weight: float | None
    nominal_beam_energy: float | None
    gantry_angle_deg: float | None
    gantry_rotation_direction: str | None
    beam_limiting_device_angle_deg: float | None
    beam_limiting_device_rotation_direction: str | None
    patient_support_angle_deg: float | None
    patient_support_rotation_direction: str | None
    table_top_eccentric_angle_deg: float | None
    table_top_vertical_position_mm: float | None
    table_top_longitudinal_position_mm: float | None
    table_top_lateral_position_mm: float | None
    table_top_pitch_angle_deg: float | None
    table_top_roll_angle_deg: float | None
    isocenter_position_mm: tuple[float, float, float] | None
    beam_limiting_device_positions: tuple[BeamLimitingDevicePosition, ...] = ()


_CP_SCALARS = (  # (keyword, field, kind) read per control point, inherited when absent
    ("NominalBeamEnergy", "nominal_beam_energy", "float"),
    ("GantryAngle", "gantry_angle_deg", "float"),
    ("GantryRotationDirection", "gantry_rotation_direction", "str"),
    ("BeamLimitingDeviceAngle", "beam_limiting_device_angle_deg", "float"),
    ("BeamLimitingDeviceRotationDirection", "beam_limiting_device_rotation_direction", "str"),
    ("PatientSupportAngle", "patient_support_angle_deg", "float"),
    ("PatientSupportRotationDirection", "patient_support_rotation_direction", "str"),
    ("TableTopEccentricAngle", "table_top_eccentric_angle_deg", "float"),
    ("TableTopVerticalPosition", "table_top_vertical_position_mm", "float"),
    ("TableTopLongitudinalPosition", "table_top_longitudinal_position_mm", "float"),
    ("TableTopLateralPosition", "table_top_lateral_position_mm", "float"),
    ("TableTopPitchAngle", "table_top_pitch_angle_deg", "float"),
    ("TableTopRollAngle", "table_top_roll_angle_deg", "float"),
)


@dataclass(frozen=True)
class PlannedVerificationImage:
    """One item of the Planned Verification Image Sequence (300A,00CA).

    ``imaging_device_specific_acquisition_parameters`` holds the values of (300A,00CC) (empty
    tuple when the attribute is absent: film, PLAN-2).
    """

    imaging_device_specific_acquisition_parameters: tuple[str, ...]
    start_cumulative_meterset_weight: float | None = None
    end_cumulative_meterset_weight: float | None = None
    meterset_exposure: float | None = None
    rt_image_sid_mm: float | None = None
    referenced_reference_image_number: int | None = None

    @property
    def parameters(self) -> str:
        """The parameter values joined with a backslash (``"KV\\\\CBCT"``), "" when absent."""
        return DeviceParameters.joined(self.imaging_device_specific_acquisition_parameters)

    def kind(self) -> ImagingKindValues:
        """kV image, CBCT, MV portal, film (no parameters) or other (unknown parameters)."""
        p = self.parameters
        if not p:
            return ImagingKindValues.FILM
        if p == DeviceParameters.KV_IMAGE.value:
            return ImagingKindValues.KV_IMAGE
        if p == DeviceParameters.KV_CBCT.value:
            return ImagingKindValues.CBCT
        if p in {m.value for m in _MV_PORTAL}:
            return ImagingKindValues.MV_PORTAL
        return ImagingKindValues.OTHER


@dataclass(frozen=True)
class ReferencedReferenceImage:
    """An item of the Referenced Reference Image Sequence (300C,0042) of a beam."""

    sop_class_uid: str
    sop_instance_uid: str
    reference_image_number: int | None


@dataclass(frozen=True)
class FieldTypeDecision:
    """PLAN-1 result: the field type and where it came from (plus a note on conflicts)."""

    field_type: FieldTypeValues
    source: FieldTypeSourceValues
    note: str | None = None


@dataclass(frozen=True)
class ImagingDecision:
    """PLAN-2 result for a beam: the kind and the device parameter values it is based on."""

    kind: ImagingKindValues
    parameters: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Beam:
    """One beam of the Beam Sequence (300A,00B0) or Ion Beam Sequence (300A,03A2)."""

    beam_number: int
    beam_name: str | None
    beam_description: str | None
    beam_type: BeamTypeValues | str | None
    radiation_type: RadiationTypeValues | str | None
    treatment_delivery_type: TreatmentDeliveryTypeValues | str | None
    treatment_machine_name: str | None
    primary_dosimeter_unit: str | None
    source_axis_distance_mm: float | None
    number_of_wedges: int | None
    number_of_compensators: int | None
    number_of_boli: int | None
    number_of_blocks: int | None
    number_of_control_points: int | None
    final_cumulative_meterset_weight: float | None
    control_points: tuple[ControlPoint, ...]
    planned_verification_images: tuple[PlannedVerificationImage, ...] | None
    referenced_reference_images: tuple[ReferencedReferenceImage, ...]
    referenced_patient_setup_number: int | None
    referenced_tolerance_table_number: int | None
    beam_meterset: float | None = None
    xml_field_type: FieldTypeValues | None = None
    where: str = field(default="", compare=False)

    @property
    def first_control_point(self) -> ControlPoint | None:
        return self.control_points[0] if self.control_points else None

    @property
    def gantry_angle_deg(self) -> float | None:
        """Gantry Angle of the first control point (for a kV beam: the kV source angle, PLAN-3)."""
        cp = self.first_control_point
        return cp.gantry_angle_deg if cp else None

    @property
    def patient_support_angle_deg(self) -> float | None:
        cp = self.first_control_point
        return cp.patient_support_angle_deg if cp else None

    @property
    def isocenter_position_mm(self) -> tuple[float, float, float] | None:
        cp = self.first_control_point
        return cp.isocenter_position_mm if cp else None

    def field_type(self) -> FieldTypeDecision:
        """PLAN-1: SETUP when Treatment Delivery Type is SETUP, else the XML FieldType fallback."""
        tdt = self.treatment_delivery_type
        xml = self.xml_field_type
        if tdt == TreatmentDeliveryTypeValues.SETUP:
            note = ("extended-interface XML says TREATMENT; Treatment Delivery Type wins"
                    if xml == FieldTypeValues.TREATMENT else None)
            return FieldTypeDecision(FieldTypeValues.SETUP, FieldTypeSourceValues.TREATMENT_DELIVERY_TYPE, note)
        if xml == FieldTypeValues.SETUP:
            note = (f"Treatment Delivery Type is {tdt.value if isinstance(tdt, Enum) else tdt}; "
                    "classified SETUP by the deprecated XML fallback" if tdt else None)
            return FieldTypeDecision(FieldTypeValues.SETUP, FieldTypeSourceValues.EXTENDED_INTERFACE_XML, note)
        if tdt is not None:
            return FieldTypeDecision(FieldTypeValues.TREATMENT, FieldTypeSourceValues.TREATMENT_DELIVERY_TYPE)
        if xml is not None:
            return FieldTypeDecision(FieldTypeValues.TREATMENT, FieldTypeSourceValues.EXTENDED_INTERFACE_XML)
        return FieldTypeDecision(FieldTypeValues.TREATMENT, FieldTypeSourceValues.DEFAULT,
                                 "neither Treatment Delivery Type nor XML FieldType given")

    @property
    def is_setup(self) -> bool:
        return self.field_type().field_type == FieldTypeValues.SETUP

    def imaging(self) -> ImagingDecision:
        """PLAN-2: what this beam images, from its Planned Verification Image Sequence."""
        items = self.planned_verification_images or ()
        if not items:
            return ImagingDecision(ImagingKindValues.NONE, (), "no Planned Verification Image Sequence")
        kinds = [i.kind() for i in items]
        params = tuple(i.parameters for i in items)
        if all(k == ImagingKindValues.MV_PORTAL for k in kinds):
            return ImagingDecision(ImagingKindValues.MV_PORTAL, params)
        if len(items) == 1 and kinds[0] in (ImagingKindValues.KV_IMAGE, ImagingKindValues.CBCT):
            if not self.is_setup:
                return ImagingDecision(ImagingKindValues.OTHER, params, "kV imaging planned on a treatment field")
            if kinds[0] == ImagingKindValues.CBCT and self.beam_type != BeamTypeValues.STATIC:
                return ImagingDecision(ImagingKindValues.OTHER, params,
                                       f"KV\\CBCT needs Beam Type STATIC, found {self.beam_type}")
            return ImagingDecision(kinds[0], params)
        if all(k == ImagingKindValues.FILM for k in kinds):
            return ImagingDecision(ImagingKindValues.FILM, params, "no Imaging Device-Specific Acquisition "
                                   "Parameters")
        return ImagingDecision(ImagingKindValues.OTHER, params,
                               f"{len(items)} planned verification images of kinds {[k.value for k in kinds]}")


# --------------------------------------------------------------------------- plan parts
@dataclass(frozen=True)
class MotionSynchronization:
    """First item of a Motion Synchronization Sequence (300A,0410) (PLAN-12)."""

    respiratory_motion_compensation_technique: RespiratoryMotionCompensationTechniqueValues | str | None
    respiratory_signal_source: RespiratorySignalSourceValues | str | None


@dataclass(frozen=True)
class PatientSetup:
    """One item of the Patient Setup Sequence (300A,0180)."""

    patient_setup_number: int | None
    patient_position: str | None
    setup_technique: str | None
    motion_synchronization: MotionSynchronization | None
    where: str = field(default="", compare=False)
    #: Table Top Vertical / Longitudinal / Lateral Setup Displacement (300A,01D2/01D4/01D6), mm: the
    #: table-top motion from the setup position (lasers on the reference marks) to the treatment
    #: position; None when absent.
    setup_displacement_mm: tuple[float | None, float | None, float | None] | None = None


@dataclass(frozen=True)
class ToleranceTable:
    """One item of the (Ion) Tolerance Table Sequence (300A,0040 / 300A,03A0)."""

    tolerance_table_number: int | None
    tolerance_table_label: str | None
    gantry_angle_tolerance_deg: float | None
    beam_limiting_device_angle_tolerance_deg: float | None
    patient_support_angle_tolerance_deg: float | None
    table_top_vertical_position_tolerance_mm: float | None
    table_top_longitudinal_position_tolerance_mm: float | None
    table_top_lateral_position_tolerance_mm: float | None
    beam_limiting_device_position_tolerances_mm: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ReferencedBeam:
    """One item of a fraction group's Referenced Beam Sequence (300C,0004)."""

    referenced_beam_number: int
    beam_meterset: float | None
    beam_dose: float | None


@dataclass(frozen=True)
class FractionGroup:
    """One item of the Fraction Group Sequence (300A,0070)."""

    fraction_group_number: int | None
    number_of_fractions_planned: int | None
    number_of_beams: int | None
    referenced_beams: tuple[ReferencedBeam, ...]


@dataclass(frozen=True)
class RTPlan:
    """An RT Plan or RT Ion Plan, read tolerantly (habit 6). Build with :meth:`from_dataset`."""

    source: str
    sop_class_uid: str
    sop_instance_uid: str
    patient_study: PatientStudy
    series_instance_uid: str | None
    frame_of_reference_uid: str | None
    rt_plan_label: str | None
    rt_plan_name: str | None
    rt_plan_date: str | None
    rt_plan_geometry: str | None
    approval_status: str | None
    referenced_structure_sets: tuple[ReferencedInstance, ...]
    fraction_groups: tuple[FractionGroup, ...]
    patient_setups: tuple[PatientSetup, ...]
    tolerance_tables: tuple[ToleranceTable, ...]
    beams: tuple[Beam, ...]
    extended_interface: ExtendedVAPlanInterface | None
    extended_interface_error: str | None
    issues: tuple[str, ...] = ()
    dataset: Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def is_ion(self) -> bool:
        return self.sop_class_uid == str(RTIonPlanStorage)

    def beam(self, number: int) -> Beam | None:
        return next((b for b in self.beams if b.beam_number == number), None)

    def patient_setup(self, number: int | None) -> PatientSetup | None:
        return next((p for p in self.patient_setups if p.patient_setup_number == number), None)

    def patient_position(self, beam: Beam) -> str | None:
        """Patient Position of the beam's Patient Setup (by Referenced Patient Setup Number)."""
        setup = self.patient_setup(beam.referenced_patient_setup_number)
        if setup is None and len(self.patient_setups) == 1:
            setup = self.patient_setups[0]
        return setup.patient_position if setup else None

    def setup_beams(self) -> tuple[Beam, ...]:
        return tuple(b for b in self.beams if b.is_setup)

    def treatment_beams(self) -> tuple[Beam, ...]:
        return tuple(b for b in self.beams if not b.is_setup)

    @classmethod
    def from_dataset(cls, obj: DicomFile | Dataset, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> RTPlan:
        """Read an RT (Ion) Plan. Raises DicomInputError/MissingAttributeError naming file and tag."""
        f = as_dicom_file(obj)
        check_sop_class(f, str(RTPlanStorage), str(RTIonPlanStorage))
        ion = f.sop_class_uid == str(RTIonPlanStorage)
        r = AttributeReader(f.dataset, f.source)
        issues = list(f.issues)
        xml, xml_error = _read_extended_interface(f, creator_prefix, issues)
        meterset = {rb.referenced_beam_number: rb.beam_meterset
                    for fg in _fraction_groups(r) for rb in fg.referenced_beams}
        beams = tuple(_beam(item, ion=ion, meterset=meterset, xml=xml)
                      for item in r.items("IonBeamSequence" if ion else "BeamSequence"))
        return cls(
            source=f.source, sop_class_uid=f.sop_class_uid, sop_instance_uid=f.sop_instance_uid,
            patient_study=PatientStudy.from_reader(r), series_instance_uid=r.opt_str("SeriesInstanceUID"),
            frame_of_reference_uid=r.opt_str("FrameOfReferenceUID"),
            rt_plan_label=r.opt_str("RTPlanLabel"), rt_plan_name=r.opt_str("RTPlanName"),
            rt_plan_date=r.opt_str("RTPlanDate"), rt_plan_geometry=r.opt_str("RTPlanGeometry"),
            approval_status=r.opt_str("ApprovalStatus"),
            referenced_structure_sets=tuple(ReferencedInstance.from_item(i)
                                            for i in r.items("ReferencedStructureSetSequence")),
            fraction_groups=_fraction_groups(r), patient_setups=_patient_setups(r),
            tolerance_tables=_tolerance_tables(r, ion=ion), beams=beams,
            extended_interface=xml, extended_interface_error=xml_error, issues=tuple(issues), dataset=f.dataset,
        )


# --------------------------------------------------------------------------- readers of the parts
def _read_extended_interface(f: DicomFile, prefix: str, issues: list[str]) -> tuple[ExtendedVAPlanInterface | None,
                                                                                      str | None]:
    try:
        value = private.read_private_value(f.dataset, private.EXTENDED_INTERFACE_XML, creator_prefix=prefix)
        if value is None:
            return None, None
        return parse_plan_interface(value), None
    except (XmlInterfaceError, DicomInputError) as exc:
        message = f"{f.source}: (3253,xx00) Extended Interface XML: {exc}"
        issues.append(message)
        return None, message


def _fraction_groups(r: AttributeReader) -> tuple[FractionGroup, ...]:
    out = []
    for fg in r.items("FractionGroupSequence"):
        beams = tuple(ReferencedBeam(rb.int("ReferencedBeamNumber"), rb.opt_float("BeamMeterset"),
                                     rb.opt_float("BeamDose")) for rb in fg.items("ReferencedBeamSequence"))
        out.append(FractionGroup(fg.opt_int("FractionGroupNumber"), fg.opt_int("NumberOfFractionsPlanned"),
                                 fg.opt_int("NumberOfBeams"), beams))
    return tuple(out)


def _patient_setups(r: AttributeReader) -> tuple[PatientSetup, ...]:
    out = []
    for item in r.items("PatientSetupSequence"):
        sync = item.first("MotionSynchronizationSequence")
        motion = None if sync is None else MotionSynchronization(
            coerce(RespiratoryMotionCompensationTechniqueValues, sync.opt_str("RespiratoryMotionCompensationTechnique")),
            coerce(RespiratorySignalSourceValues, sync.opt_str("RespiratorySignalSource")))
        displacement = tuple(item.opt_float(k) for k in ("TableTopVerticalSetupDisplacement",
                                                         "TableTopLongitudinalSetupDisplacement",
                                                         "TableTopLateralSetupDisplacement"))
        out.append(PatientSetup(item.opt_int("PatientSetupNumber"), item.opt_str("PatientPosition"),
                                item.opt_str("SetupTechnique"), motion, item.where,
                                displacement if any(v is not None for v in displacement) else None))
    return tuple(out)


def _tolerance_tables(r: AttributeReader, *, ion: bool) -> tuple[ToleranceTable, ...]:
    out = []
    for t in r.items("IonToleranceTableSequence" if ion else "ToleranceTableSequence"):
        bld = tuple((d.opt_str("RTBeamLimitingDeviceType") or "", d.float("BeamLimitingDevicePositionTolerance"))
                    for d in t.items("BeamLimitingDeviceToleranceSequence"))
        out.append(ToleranceTable(
            t.opt_int("ToleranceTableNumber"), t.opt_str("ToleranceTableLabel"), t.opt_float("GantryAngleTolerance"),
            t.opt_float("BeamLimitingDeviceAngleTolerance"), t.opt_float("PatientSupportAngleTolerance"),
            t.opt_float("TableTopVerticalPositionTolerance"), t.opt_float("TableTopLongitudinalPositionTolerance"),
            t.opt_float("TableTopLateralPositionTolerance"), bld))
    return tuple(out)


def _beam(b: AttributeReader, *, ion: bool, meterset: dict[int, float | None],
          xml: ExtendedVAPlanInterface | None) -> Beam:
    number = b.int("BeamNumber")
    pvis = None
    if "PlannedVerificationImageSequence" in b.ds:
        pvis = tuple(_planned_image(i) for i in b.items("PlannedVerificationImageSequence"))
    refs = tuple(ReferencedReferenceImage(i.opt_str("ReferencedSOPClassUID") or "", i.str("ReferencedSOPInstanceUID"),
                                          i.opt_int("ReferenceImageNumber"))
                 for i in b.items("ReferencedReferenceImageSequence"))
    return Beam(
        beam_number=number, beam_name=b.opt_str("BeamName"), beam_description=b.opt_str("BeamDescription"),
        beam_type=coerce(BeamTypeValues, b.opt_str("BeamType")),
        radiation_type=coerce(RadiationTypeValues, b.opt_str("RadiationType")),
        treatment_delivery_type=coerce(TreatmentDeliveryTypeValues, b.opt_str("TreatmentDeliveryType")),
        treatment_machine_name=b.opt_str("TreatmentMachineName"), primary_dosimeter_unit=b.opt_str("PrimaryDosimeterUnit"),
        source_axis_distance_mm=None if ion else b.opt_float("SourceAxisDistance"),
        number_of_wedges=b.opt_int("NumberOfWedges"), number_of_compensators=b.opt_int("NumberOfCompensators"),
        number_of_boli=b.opt_int("NumberOfBoli"), number_of_blocks=b.opt_int("NumberOfBlocks"),
        number_of_control_points=b.opt_int("NumberOfControlPoints"),
        final_cumulative_meterset_weight=b.opt_float("FinalCumulativeMetersetWeight"),
        control_points=_control_points(b.items("IonControlPointSequence" if ion else "ControlPointSequence")),
        planned_verification_images=pvis, referenced_reference_images=refs,
        referenced_patient_setup_number=b.opt_int("ReferencedPatientSetupNumber"),
        referenced_tolerance_table_number=b.opt_int("ReferencedToleranceTableNumber"),
        beam_meterset=meterset.get(number), xml_field_type=xml.field_type(number) if xml else None, where=b.where,
    )


def _planned_image(i: AttributeReader) -> PlannedVerificationImage:
    return PlannedVerificationImage(
        i.strs("ImagingDeviceSpecificAcquisitionParameters"), i.opt_float("StartCumulativeMetersetWeight"),
        i.opt_float("EndCumulativeMetersetWeight"), i.opt_float("MetersetExposure"), i.opt_float("RTImageSID"),
        i.opt_int("ReferencedReferenceImageNumber"))


def _control_points(items: list[AttributeReader]) -> tuple[ControlPoint, ...]:
    out: list[ControlPoint] = []
    state: dict[str, object] = {name: None for _, name, _ in _CP_SCALARS}
    state["isocenter_position_mm"] = None
    state["beam_limiting_device_positions"] = ()
    for n, cp in enumerate(items):
        for keyword, name, kind in _CP_SCALARS:
            value = cp.opt_float(keyword) if kind == "float" else cp.opt_str(keyword)
            if value is not None:
                state[name] = value
        iso = cp.opt_floats("IsocenterPosition", 3)
        if iso is not None:
            state["isocenter_position_mm"] = iso
        blds = cp.items("BeamLimitingDevicePositionSequence")
        if blds:
            state["beam_limiting_device_positions"] = tuple(
                BeamLimitingDevicePosition(d.opt_str("RTBeamLimitingDeviceType") or "",
                                           d.opt_floats("LeafJawPositions") or ()) for d in blds)
        index = cp.opt_int("ControlPointIndex")
        out.append(ControlPoint(control_point_index=n if index is None else index,
                                cumulative_meterset_weight=cp.opt_float("CumulativeMetersetWeight"),
                                **state))  # type: ignore[arg-type]
    return tuple(out)
