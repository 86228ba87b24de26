"""RT Plan builder for the phantom patient (SIM-1; PS3.3 A.20, C.8.8.9-C.8.8.14).

Not an object SPEC §5 asks us to export, but the phantom needs a valid plan that the plan
checks (PLAN-1 … PLAN-12) accept:

* RT General Plan (label, date/time, geometry ``PATIENT``, Referenced Structure Set Sequence),
  Frame of Reference = the structure set's, patient/study copied from the structure set;
* Patient Setup (position, setup technique, optional Motion Synchronization Sequence with
  ``GATING`` / ``EXTERNAL_MARKER``, PLAN-12);
* Tolerance Table, Fraction Group (treatment beams with Beam Meterset, setup beams listed
  without one);
* Beam Sequence: **treatment beams** (photon, ``STATIC``, 2 control points, ASYMX/ASYMY jaws and
  optional MLCX, gantry/collimator/couch angles, isocenter, table top positions); **setup
  beams** (Treatment Delivery Type ``SETUP``, 2 control points, Beam Limiting Device Angle 0,
  rotation directions ``NONE``, no wedges/compensators/boli/blocks, PLAN-3) that are either a
  kV image beam (Planned Verification Image Sequence item with Imaging Device-Specific
  Acquisition Parameters ``KV\\Image``) or a CBCT beam (``STATIC``, ``KV\\CBCT``), PLAN-2;
* Referenced Reference Image Sequence of a beam → its DRR (the DRR's SOP Instance UID is chosen
  first, then passed to both this builder and
  :func:`~openigrt.iod.build.rt_image.build_reference_drr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.iod.build._values import SetupTechniqueValues, coerce_enum
from openigrt.iod.build.common import (
    RT_IMAGE_STORAGE,
    RT_PLAN_STORAGE,
    RT_STRUCTURE_SET_STORAGE,
    PatientStudy,
    SeriesInfo,
    build_error,
    check_angle,
    check_number,
    check_text,
    check_uid,
    check_vector,
    ds_value,
    ds_values,
    new_dataset,
    now,
    source_value,
    write_frame_of_reference,
)
from openigrt.iod.enum import PatientPositionValues
from openigrt.uids import new_uid

#: Imaging Device-Specific Acquisition Parameters of setup beams (SPEC PLAN-2).
KV_IMAGE_PARAMETERS = ("KV", "Image")
KV_CBCT_PARAMETERS = ("KV", "CBCT")
SETUP_KINDS = ("KV", "CBCT")
PATIENT_SETUP_NUMBER = 1
TOLERANCE_TABLE_NUMBER = 1
FRACTION_GROUP_NUMBER = 1


@dataclass(frozen=True)
class Jaws:
    """Asymmetric jaw positions (mm at the isocenter plane): X1, X2 and Y1, Y2."""

    x_mm: tuple[float, float]
    y_mm: tuple[float, float]

    def __post_init__(self) -> None:
        for name, kw in (("x_mm", "ASYMX"), ("y_mm", "ASYMY")):
            v = check_vector("LeafJawPositions", getattr(self, name), 2)
            if v[0] >= v[1]:
                raise build_error("LeafJawPositions", f"{kw} jaw 1 must be < jaw 2, got {v}")
            object.__setattr__(self, name, v)


@dataclass(frozen=True)
class Mlc:
    """An MLCX: N leaf pairs with N+1 Leaf Position Boundaries and 2N positions (bank A then B)."""

    leaf_position_boundaries_mm: tuple[float, ...]
    leaf_positions_mm: tuple[float, ...]

    def __post_init__(self) -> None:
        b = np.asarray(self.leaf_position_boundaries_mm, dtype=float).ravel()
        p = np.asarray(self.leaf_positions_mm, dtype=float).ravel()
        n = b.size - 1
        if n < 1 or np.any(np.diff(b) <= 0) or not np.all(np.isfinite(b)):
            raise build_error("LeafPositionBoundaries", "need >= 2 strictly increasing finite boundaries")
        if p.size != 2 * n or not np.all(np.isfinite(p)) or np.any(p[:n] > p[n:]):
            raise build_error("LeafJawPositions", f"MLCX needs {2 * n} finite positions with bank A <= bank B")
        object.__setattr__(self, "leaf_position_boundaries_mm", tuple(float(v) for v in b))
        object.__setattr__(self, "leaf_positions_mm", tuple(float(v) for v in p))


@dataclass(frozen=True)
class TreatmentBeam:
    """A static photon treatment beam (2 control points)."""

    beam_number: int
    beam_name: str
    gantry_angle_deg: float
    jaws: Jaws
    beam_meterset_mu: float
    beam_limiting_device_angle_deg: float = 0.0
    patient_support_angle_deg: float = 0.0
    nominal_beam_energy_mev: float = 6.0
    dose_rate_set_mu_per_min: float = 600.0
    mlc: Mlc | None = None
    reference_image_uid: str | None = None


@dataclass(frozen=True)
class SetupBeam:
    """A setup beam: ``kind`` ``KV`` (a kV image, ``KV\\Image``) or ``CBCT`` (``KV\\CBCT``)."""

    beam_number: int
    beam_name: str
    kind: str
    gantry_angle_deg: float
    jaws: Jaws
    reference_image_uid: str | None = None


@dataclass(frozen=True)
class PlanSetup:
    """Where the beams point: isocenter (patient mm), table top positions, patient position."""

    isocenter_position_mm: tuple[float, float, float]
    patient_position: PatientPositionValues | str
    table_top_vertical_position_mm: float = 0.0
    table_top_longitudinal_position_mm: float = 0.0
    table_top_lateral_position_mm: float = 0.0
    setup_technique: SetupTechniqueValues | str = SetupTechniqueValues.ISOCENTRIC
    gated: bool = False
    #: (vertical, longitudinal, lateral) Table Top Setup Displacement (300A,01D2/01D4/01D6), mm: the
    #: table-top motion from the setup position (lasers on the reference marks) to the treatment
    #: position.
    setup_displacement_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "isocenter_position_mm", check_vector("IsocenterPosition", self.isocenter_position_mm, 3))
        object.__setattr__(self, "patient_position", coerce_enum(PatientPositionValues, self.patient_position, "PatientPosition"))
        object.__setattr__(self, "setup_technique", coerce_enum(SetupTechniqueValues, self.setup_technique, "SetupTechnique"))
        for name, kw in (("table_top_vertical_position_mm", "TableTopVerticalPosition"),
                         ("table_top_longitudinal_position_mm", "TableTopLongitudinalPosition"),
                         ("table_top_lateral_position_mm", "TableTopLateralPosition")):
            object.__setattr__(self, name, check_number(kw, getattr(self, name)))
        if self.setup_displacement_mm is not None:
            object.__setattr__(self, "setup_displacement_mm",
                               check_vector("TableTopVerticalSetupDisplacement", self.setup_displacement_mm, 3))


def build_rt_plan(
    *,
    structure_set: Dataset,
    treatment_beams: Sequence[TreatmentBeam],
    setup_beams: Sequence[SetupBeam],
    setup: PlanSetup,
    settings: Settings,
    rt_plan_label: str,
    treatment_machine_name: str,
    number_of_fractions_planned: int = 1,
    rt_plan_name: str = "",
    content_datetime: datetime | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """Build the phantom's RT Plan (see the module docstring for what is written).

    Raises
    ------
    BuildError
        Duplicate beam numbers, an unknown setup kind, a non-structure-set reference, invalid
        angles, jaws, MLC or meterset, an invalid label.
    """
    if str(source_value(structure_set, "SOPClassUID", "structure set")) != RT_STRUCTURE_SET_STORAGE:
        raise build_error("ReferencedStructureSetSequence", "structure_set must be an RT Structure Set")
    _check_beams(treatment_beams, setup_beams)
    check_text("TreatmentMachineName", treatment_machine_name, max_len=16)
    if isinstance(number_of_fractions_planned, bool) or not isinstance(number_of_fractions_planned, int) \
            or number_of_fractions_planned < 1:
        raise build_error("NumberOfFractionsPlanned", f"must be a positive integer, got {number_of_fractions_planned!r}")
    when = content_datetime or now()
    ds = new_dataset(sop_class_uid=RT_PLAN_STORAGE, settings=settings,
                     patient_study=PatientStudy.from_datasets([structure_set]),
                     series=SeriesInfo(modality="RTPLAN", series_instance_uid=new_uid(settings.uid_root)),
                     content_datetime=when, sop_instance_uid=sop_instance_uid)
    frames = source_value(structure_set, "ReferencedFrameOfReferenceSequence", "structure set")
    write_frame_of_reference(ds, str(frames[0].FrameOfReferenceUID))
    _write_general_plan(ds, structure_set, rt_plan_label, rt_plan_name, when)
    ds.PatientSetupSequence = [_patient_setup(setup)]
    ds.ToleranceTableSequence = [_tolerance_table()]
    ds.FractionGroupSequence = [_fraction_group(treatment_beams, setup_beams, number_of_fractions_planned)]
    beams = [_treatment_beam(b, setup, treatment_machine_name) for b in treatment_beams]
    beams += [_setup_beam(b, setup, treatment_machine_name) for b in setup_beams]
    ds.BeamSequence = beams
    return ds


def _check_beams(treatment: Sequence[TreatmentBeam], setup: Sequence[SetupBeam]) -> None:
    numbers = [b.beam_number for b in (*treatment, *setup)]
    if not numbers:
        raise build_error("BeamSequence", "a plan needs at least one beam")
    if len(set(numbers)) != len(numbers) or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in numbers):
        raise build_error("BeamNumber", f"beam numbers must be unique positive integers, got {numbers}")
    for b in treatment:
        check_number("BeamMeterset", b.beam_meterset_mu, low=0.0, low_open=True)
        check_number("NominalBeamEnergy", b.nominal_beam_energy_mev, low=0.0, low_open=True)
    for b in setup:
        if b.kind not in SETUP_KINDS:
            raise build_error("ImagingDeviceSpecificAcquisitionParameters",
                              f"setup beam {b.beam_number}: kind must be one of {SETUP_KINDS}, got {b.kind!r}")
    for b in (*treatment, *setup):
        check_text("BeamName", b.beam_name, max_len=64)
        if b.reference_image_uid is not None:
            check_uid("ReferencedSOPInstanceUID", b.reference_image_uid)


def _write_general_plan(ds: Dataset, structure_set: Dataset, label: str, name: str, when: datetime) -> None:
    ds.RTPlanLabel = check_text("RTPlanLabel", label, max_len=16)
    if name:
        ds.RTPlanName = check_text("RTPlanName", name, max_len=64)
    ds.RTPlanDate = when.strftime("%Y%m%d")
    ds.RTPlanTime = when.strftime("%H%M%S")
    ds.RTPlanGeometry = "PATIENT"
    ds.InstanceNumber = 1
    ref = Dataset()
    ref.ReferencedSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ref.ReferencedSOPInstanceUID = structure_set.SOPInstanceUID
    ds.ReferencedStructureSetSequence = [ref]
    ds.ApprovalStatus = "UNAPPROVED"


def _patient_setup(setup: PlanSetup) -> Dataset:
    item = Dataset()
    item.PatientPosition = setup.patient_position.value  # type: ignore[union-attr]
    item.PatientSetupNumber = PATIENT_SETUP_NUMBER
    item.SetupTechnique = setup.setup_technique.value  # type: ignore[union-attr]
    if setup.setup_displacement_mm is not None:
        vrt, lng, lat = setup.setup_displacement_mm
        item.TableTopVerticalSetupDisplacement = ds_value(vrt)
        item.TableTopLongitudinalSetupDisplacement = ds_value(lng)
        item.TableTopLateralSetupDisplacement = ds_value(lat)
    if setup.gated:
        motion = Dataset()
        motion.RespiratoryMotionCompensationTechnique = "GATING"
        motion.RespiratorySignalSource = "EXTERNAL_MARKER"
        item.MotionSynchronizationSequence = [motion]
    return item


def _tolerance_table() -> Dataset:
    item = Dataset()
    item.ToleranceTableNumber = TOLERANCE_TABLE_NUMBER
    item.ToleranceTableLabel = "PHOTON"
    item.GantryAngleTolerance = ds_value(0.5)
    item.BeamLimitingDeviceAngleTolerance = ds_value(0.5)
    devices = []
    for kind in ("ASYMX", "ASYMY"):
        d = Dataset()
        d.RTBeamLimitingDeviceType = kind
        d.BeamLimitingDevicePositionTolerance = ds_value(2.0)
        devices.append(d)
    item.BeamLimitingDeviceToleranceSequence = devices
    item.PatientSupportAngleTolerance = ds_value(1.0)
    item.TableTopVerticalPositionTolerance = ds_value(20.0)
    item.TableTopLongitudinalPositionTolerance = ds_value(20.0)
    item.TableTopLateralPositionTolerance = ds_value(20.0)
    return item


def _fraction_group(treatment: Sequence[TreatmentBeam], setup: Sequence[SetupBeam], fractions: int) -> Dataset:
    item = Dataset()
    item.FractionGroupNumber = FRACTION_GROUP_NUMBER
    item.NumberOfFractionsPlanned = fractions
    item.NumberOfBeams = len(treatment) + len(setup)
    item.NumberOfBrachyApplicationSetups = 0
    refs = []
    for b in (*treatment, *setup):
        ref = Dataset()
        if isinstance(b, TreatmentBeam):
            ref.BeamMeterset = ds_value(b.beam_meterset_mu)
        ref.ReferencedBeamNumber = b.beam_number
        refs.append(ref)
    item.ReferencedBeamSequence = refs
    return item


def _beam_common(number: int, name: str, machine: str, delivery: str, jaws: Jaws, mlc: Mlc | None) -> Dataset:
    beam = Dataset()
    beam.TreatmentMachineName = machine
    beam.PrimaryDosimeterUnit = "MU"
    beam.SourceAxisDistance = ds_value(1000.0)
    devices = []
    for kind in ("ASYMX", "ASYMY"):
        d = Dataset()
        d.RTBeamLimitingDeviceType = kind
        d.NumberOfLeafJawPairs = 1
        devices.append(d)
    if mlc is not None:
        d = Dataset()
        d.RTBeamLimitingDeviceType = "MLCX"
        d.NumberOfLeafJawPairs = len(mlc.leaf_position_boundaries_mm) - 1
        d.LeafPositionBoundaries = ds_values(mlc.leaf_position_boundaries_mm)
        devices.append(d)
    beam.BeamLimitingDeviceSequence = devices
    beam.BeamNumber = number
    beam.BeamName = name
    beam.BeamType = "STATIC"
    beam.RadiationType = "PHOTON"
    beam.TreatmentDeliveryType = delivery
    beam.NumberOfWedges = 0
    beam.NumberOfCompensators = 0
    beam.NumberOfBoli = 0
    beam.NumberOfBlocks = 0
    beam.FinalCumulativeMetersetWeight = ds_value(1.0)
    beam.NumberOfControlPoints = 2
    beam.ReferencedPatientSetupNumber = PATIENT_SETUP_NUMBER
    beam.ReferencedToleranceTableNumber = TOLERANCE_TABLE_NUMBER
    return beam


def _control_points(*, gantry: float, collimator: float, couch: float, jaws: Jaws, mlc: Mlc | None,
                    setup: PlanSetup, energy_mev: float | None, dose_rate: float | None) -> list[Dataset]:
    cp0 = Dataset()
    cp0.ControlPointIndex = 0
    if energy_mev is not None:
        cp0.NominalBeamEnergy = ds_value(energy_mev)
    if dose_rate is not None:
        cp0.DoseRateSet = ds_value(dose_rate)
    positions = []
    for kind, values in (("ASYMX", jaws.x_mm), ("ASYMY", jaws.y_mm)) + ((("MLCX", mlc.leaf_positions_mm),) if mlc else ()):
        p = Dataset()
        p.RTBeamLimitingDeviceType = kind
        p.LeafJawPositions = ds_values(values)
        positions.append(p)
    cp0.BeamLimitingDevicePositionSequence = positions
    cp0.GantryAngle = ds_value(check_angle("GantryAngle", gantry))
    cp0.GantryRotationDirection = "NONE"
    cp0.BeamLimitingDeviceAngle = ds_value(check_angle("BeamLimitingDeviceAngle", collimator))
    cp0.BeamLimitingDeviceRotationDirection = "NONE"
    cp0.PatientSupportAngle = ds_value(check_angle("PatientSupportAngle", couch))
    cp0.PatientSupportRotationDirection = "NONE"
    cp0.TableTopEccentricAngle = ds_value(0.0)
    cp0.TableTopEccentricRotationDirection = "NONE"
    cp0.TableTopPitchAngle = 0.0
    cp0.TableTopPitchRotationDirection = "NONE"
    cp0.TableTopRollAngle = 0.0
    cp0.TableTopRollRotationDirection = "NONE"
    cp0.TableTopVerticalPosition = ds_value(setup.table_top_vertical_position_mm)
    cp0.TableTopLongitudinalPosition = ds_value(setup.table_top_longitudinal_position_mm)
    cp0.TableTopLateralPosition = ds_value(setup.table_top_lateral_position_mm)
    cp0.IsocenterPosition = ds_values(setup.isocenter_position_mm)
    cp0.CumulativeMetersetWeight = ds_value(0.0)
    cp1 = Dataset()
    cp1.ControlPointIndex = 1
    cp1.CumulativeMetersetWeight = ds_value(1.0)
    return [cp0, cp1]


def _reference_image(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = RT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = uid
    item.ReferenceImageNumber = 1
    return item


def _treatment_beam(b: TreatmentBeam, setup: PlanSetup, machine: str) -> Dataset:
    beam = _beam_common(b.beam_number, b.beam_name, machine, "TREATMENT", b.jaws, b.mlc)
    beam.ControlPointSequence = _control_points(
        gantry=b.gantry_angle_deg, collimator=b.beam_limiting_device_angle_deg, couch=b.patient_support_angle_deg,
        jaws=b.jaws, mlc=b.mlc, setup=setup, energy_mev=b.nominal_beam_energy_mev, dose_rate=b.dose_rate_set_mu_per_min)
    if b.reference_image_uid:
        beam.ReferencedReferenceImageSequence = [_reference_image(b.reference_image_uid)]
    return beam


def _setup_beam(b: SetupBeam, setup: PlanSetup, machine: str) -> Dataset:
    beam = _beam_common(b.beam_number, b.beam_name, machine, "SETUP", b.jaws, None)
    image = Dataset()
    image.ImagingDeviceSpecificAcquisitionParameters = list(KV_CBCT_PARAMETERS if b.kind == "CBCT" else KV_IMAGE_PARAMETERS)
    beam.PlannedVerificationImageSequence = [image]
    beam.ControlPointSequence = _control_points(
        gantry=b.gantry_angle_deg, collimator=0.0, couch=0.0, jaws=b.jaws, mlc=None, setup=setup,
        energy_mev=None, dose_rate=None)
    if b.reference_image_uid:
        beam.ReferencedReferenceImageSequence = [_reference_image(b.reference_image_uid)]
    return beam
