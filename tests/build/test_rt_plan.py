"""RT Plan builder for the phantom (SIM-1): what the plan checks (PLAN-1 … PLAN-12) rely on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openigrt.errors import BuildError
from openigrt.iod.build import Jaws, Mlc, PlanSetup, SetupBeam, TreatmentBeam, build_rt_plan
from tests.build.conftest import write_and_read
from tests.build.factory import ISOCENTER, Patient

RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_IMAGE = "1.2.840.10008.5.1.4.1.1.481.1"


def test_plan_round_trip(patient: Patient, tmp_path: Path) -> None:
    ds = write_and_read(patient.plan, tmp_path, implicit_vr=True)
    assert (ds.Modality, ds.RTPlanLabel, ds.RTPlanGeometry, ds.SeriesNumber) == ("RTPLAN", "PHANTOM", "PATIENT", 0)
    assert ds.FrameOfReferenceUID == patient.ct[0].FrameOfReferenceUID
    ref = ds.ReferencedStructureSetSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (RT_STRUCT, patient.structure_set.SOPInstanceUID)
    (setup,) = ds.PatientSetupSequence
    assert (setup.PatientPosition, setup.PatientSetupNumber, setup.SetupTechnique) == ("HFS", 1, "ISOCENTRIC")
    assert "MotionSynchronizationSequence" not in setup
    (fg,) = ds.FractionGroupSequence
    assert (fg.NumberOfBeams, fg.NumberOfFractionsPlanned, fg.NumberOfBrachyApplicationSetups) == (5, 1, 0)
    meterset = {r.ReferencedBeamNumber: r.get("BeamMeterset") for r in fg.ReferencedBeamSequence}
    assert {k: (float(v) if v is not None else None) for k, v in meterset.items()} == \
        {1: 100.0, 2: 110.0, 3: None, 4: None, 5: None}
    beams = {b.BeamNumber: b for b in ds.BeamSequence}
    assert sorted(beams) == [1, 2, 3, 4, 5]
    for b in beams.values():
        cp0, cp1 = b.ControlPointSequence
        assert (b.NumberOfControlPoints, b.BeamType, b.RadiationType) == (2, "STATIC", "PHOTON")
        assert (b.NumberOfWedges, b.NumberOfCompensators, b.NumberOfBoli, b.NumberOfBlocks) == (0, 0, 0, 0)
        assert (float(cp0.CumulativeMetersetWeight), float(cp1.CumulativeMetersetWeight)) == (0.0, 1.0)
        assert [float(v) for v in cp0.IsocenterPosition] == list(ISOCENTER)
        assert (float(cp0.TableTopVerticalPosition), float(cp0.TableTopLongitudinalPosition),
                float(cp0.TableTopLateralPosition)) == (-120.0, 850.0, 2.0)
        assert (cp0.GantryRotationDirection, cp0.BeamLimitingDeviceRotationDirection) == ("NONE", "NONE")
        assert b.TreatmentMachineName == "TrueBeam1" and b.ReferencedToleranceTableNumber == 1
    assert [beams[n].TreatmentDeliveryType for n in (1, 2, 3, 4, 5)] == ["TREATMENT"] * 2 + ["SETUP"] * 3
    assert [float(beams[n].ControlPointSequence[0].GantryAngle) for n in (1, 2, 3, 4, 5)] == [0, 90, 0, 270, 0]
    mlc = beams[1].BeamLimitingDeviceSequence[2]
    assert (mlc.RTBeamLimitingDeviceType, mlc.NumberOfLeafJawPairs) == ("MLCX", 4)
    positions = {p.RTBeamLimitingDeviceType: [float(v) for v in p.LeafJawPositions]
                 for p in beams[1].ControlPointSequence[0].BeamLimitingDevicePositionSequence}
    assert positions["ASYMX"] == [-50.0, 50.0] and len(positions["MLCX"]) == 8
    for n, params in ((3, ["KV", "Image"]), (4, ["KV", "Image"]), (5, ["KV", "CBCT"])):
        (image,) = beams[n].PlannedVerificationImageSequence
        assert list(image.ImagingDeviceSpecificAcquisitionParameters) == params
        assert float(beams[n].ControlPointSequence[0].BeamLimitingDeviceAngle) == 0.0
    for n in (3, 4):
        (ref,) = beams[n].ReferencedReferenceImageSequence
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (RT_IMAGE, patient.drrs[n].SOPInstanceUID)
    assert "ReferencedReferenceImageSequence" not in beams[5]


def _plan(p: Patient, **kw):
    args = dict(structure_set=p.structure_set, settings=p.settings, rt_plan_label="P", treatment_machine_name="TB",
                setup=PlanSetup(isocenter_position_mm=ISOCENTER, patient_position="HFS"),
                treatment_beams=[TreatmentBeam(1, "AP", 0.0, Jaws((-50.0, 50.0), (-50.0, 50.0)), 100.0)],
                setup_beams=[SetupBeam(2, "kV", "KV", 90.0, Jaws((-50.0, 50.0), (-50.0, 50.0)))])
    args.update(kw)
    return build_rt_plan(**args)


def test_gated_plan(patient: Patient) -> None:
    ds = _plan(patient, setup=PlanSetup(isocenter_position_mm=ISOCENTER, patient_position="HFP", gated=True))
    (motion,) = ds.PatientSetupSequence[0].MotionSynchronizationSequence
    assert (motion.RespiratoryMotionCompensationTechnique, motion.RespiratorySignalSource) == ("GATING", "EXTERNAL_MARKER")
    assert ds.PatientSetupSequence[0].PatientPosition == "HFP"


def test_invalid_inputs_name_the_attribute(patient: Patient) -> None:
    jaws = Jaws((-50.0, 50.0), (-50.0, 50.0))
    with pytest.raises(BuildError, match=r"^BeamNumber .*unique"):
        _plan(patient, setup_beams=[SetupBeam(1, "kV", "KV", 90.0, jaws)])
    with pytest.raises(BuildError, match=r"^ImagingDeviceSpecificAcquisitionParameters .*'MV'"):
        _plan(patient, setup_beams=[SetupBeam(2, "mv", "MV", 90.0, jaws)])
    with pytest.raises(BuildError, match=r"^BeamMeterset .*finite number"):
        _plan(patient, treatment_beams=[TreatmentBeam(1, "AP", 0.0, jaws, 0.0)])
    with pytest.raises(BuildError, match=r"^LeafJawPositions .*jaw 1 must be < jaw 2"):
        Jaws((50.0, -50.0), (-50.0, 50.0))
    with pytest.raises(BuildError, match=r"^LeafPositionBoundaries"):
        Mlc((0.0, 0.0), (1.0, 2.0))
    with pytest.raises(BuildError, match=r"^LeafJawPositions .*MLCX needs 4"):
        Mlc((0.0, 5.0, 10.0), (1.0, 2.0))
    with pytest.raises(BuildError, match=r"^ReferencedStructureSetSequence"):
        _plan(patient, structure_set=patient.ct[0])
    with pytest.raises(BuildError, match=r"^NumberOfFractionsPlanned"):
        _plan(patient, number_of_fractions_planned=0)
    with pytest.raises(BuildError, match=r"^GantryAngle .*finite number"):
        _plan(patient, treatment_beams=[TreatmentBeam(1, "AP", float("nan"), jaws, 10.0)])
    with pytest.raises(BuildError, match=r"^IsocenterPosition .*3 finite numbers"):
        PlanSetup(isocenter_position_mm=(0.0, 0.0), patient_position="HFS")
    with pytest.raises(BuildError, match=r"^SetupTechnique"):
        PlanSetup(isocenter_position_mm=ISOCENTER, patient_position="HFS", setup_technique="MAGIC")
    assert np.isclose(float(_plan(patient).BeamSequence[0].ControlPointSequence[0].NominalBeamEnergy), 6.0)
