"""PLAN-1 … PLAN-12: every check passes on the good phantom patient and fails on a mutated copy."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from openigrt.config import PlanTolerances
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import dicom_file, read_file
from openigrt.iod.enum import MatchTypeValues
from openigrt.iod.rt_image import RTImage
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.plan import anatomy, beams, references
from openigrt.plan.evaluate import Evaluation, collect_inputs, evaluate
from openigrt.plan.findings import Finding, FindingStatusValues
from tests.iod import factory as F
from tests.iod.realdata import ECLIPSE_RI, ECLIPSE_RP, ELEKTA_RI

TOL = PlanTolerances()
S, W, X = FindingStatusValues.SUCCESS, FindingStatusValues.WARNING, FindingStatusValues.FAILURE


def _statuses(found: list[Finding], id_: str) -> list[FindingStatusValues]:
    return [f.status for f in found if f.id == id_]


def _run(patient: dict[str, object], match: str) -> Evaluation:
    objs = [patient["plan"], patient["rs"], *patient["ct"], *patient["drrs"]]  # type: ignore[misc]
    return evaluate(collect_inputs([dicom_file(d) for d in objs if d is not None]), match)


def _only(ev: Evaluation, id_: str, status: FindingStatusValues | None = None) -> list[Finding]:
    return [f for f in ev.findings if f.id == id_ and (status is None or f.status == status)]


# --------------------------------------------------------------------------- PLAN-1
def test_plan1_field_types_pass_and_fallback() -> None:
    found = beams.check_field_types(RTPlan.from_dataset(F.good_plan()))
    assert _statuses(found, "PLAN-1") == [S] * 5
    assert "SETUP field (from TreatmentDeliveryType)" in found[2].message
    eclipse = beams.check_field_types(RTPlan.from_dataset(read_file(ECLIPSE_RP)))
    cbct = [f for f in eclipse if f.subject == "beam 5 'CBCT'"][0]
    assert cbct.status is W and "ExtendedInterfaceXML" in cbct.message and "(3253,xx00)" in cbct.tags


def test_plan1_fails_without_beams() -> None:
    ds = F.good_plan()
    ds.BeamSequence = []
    found = beams.check_field_types(RTPlan.from_dataset(ds))
    assert _statuses(found, "PLAN-1") == [X] and "(300A,00B0)" in found[0].tags


# --------------------------------------------------------------------------- PLAN-2
def test_plan2_imaging_beams() -> None:
    ds = F.good_plan()
    found = beams.check_imaging_beams(RTPlan.from_dataset(ds))
    assert _statuses(found, "PLAN-2") == [S, S, S, S]  # MV on treatment field, kV, kV, CBCT
    ds.BeamSequence[4].BeamType = "DYNAMIC"  # a CBCT beam must be STATIC
    del ds.BeamSequence[3].PlannedVerificationImageSequence  # no parameters: manual (warning)
    found = beams.check_imaging_beams(RTPlan.from_dataset(ds))
    bad = [f for f in found if f.status is X]
    assert len(bad) == 1 and "STATIC" in bad[0].message and "(300A,00C4)" in bad[0].tags
    manual = [f for f in found if f.status is W]
    assert len(manual) == 1 and "started manually" in manual[0].message and "KV270" in manual[0].message


# --------------------------------------------------------------------------- PLAN-3
def test_plan3_kv_beam_rules() -> None:
    assert _statuses(beams.check_kv_beams(RTPlan.from_dataset(F.good_plan())), "PLAN-3") == [S, S, S]
    ds = F.good_plan()
    kv = ds.BeamSequence[2]
    kv.NumberOfWedges = 1
    kv.ControlPointSequence.append(Dataset())
    kv.ControlPointSequence[-1].ControlPointIndex = 2
    kv.ControlPointSequence[0].BeamLimitingDeviceAngle = 10
    kv.ControlPointSequence[0].GantryRotationDirection = "CW"
    found = [f for f in beams.check_kv_beams(RTPlan.from_dataset(ds)) if f.status is X]
    tags = sorted(t for f in found for t in f.tags)
    assert tags == ["(300A,00D0)", "(300A,0110)", "(300A,0111)", "(300A,011F)", "(300A,0120)"]
    assert all("beam 3 'KV0'" in f.message for f in found)
    assert any(f.value == 3 and f.tolerance == 2 for f in found)


# --------------------------------------------------------------------------- PLAN-4
@pytest.mark.parametrize(("delta", "status"), [(1.9, S), (2.5, X)])
def test_plan4_couch_translations(delta: float, status: FindingStatusValues) -> None:
    ds = F.good_plan()
    ds.BeamSequence[1].ControlPointSequence[0].TableTopLongitudinalPosition = 800.0 + delta
    found = beams.check_couch_translations(RTPlan.from_dataset(ds), TOL)
    longitudinal = [f for f in found if "(300A,0129)" in f.tags][0]
    assert longitudinal.status is status and longitudinal.value == pytest.approx(delta)
    assert longitudinal.tolerance == 2.0
    assert _statuses([f for f in found if f is not longitudinal], "PLAN-4") == [S, S]


def test_plan4_couch_rotations_may_differ() -> None:
    ds = F.good_plan()
    ds.BeamSequence[1].ControlPointSequence[0].PatientSupportAngle = 15
    assert _statuses(beams.check_couch_translations(RTPlan.from_dataset(ds), TOL), "PLAN-4") == [S, S, S]


# --------------------------------------------------------------------------- PLAN-5
def test_plan5_reference_images() -> None:
    drr = RTImage.from_dataset(F.rt_image("1.2.3.4", gantry=0, beam_number=3))
    assert _statuses(references.check_reference_image(drr), "PLAN-5") == [S]
    ds = F.rt_image("1.2.3.4", gantry=0, beam_number=3)
    del ds.RTImageSID, ds.FrameOfReferenceUID, ds.PatientPosition
    found = references.check_reference_image(RTImage.from_dataset(ds))
    assert found[0].status is X
    assert set(found[0].tags) == {"(3002,0026)", "(0020,0052)", "(0018,5100)"}
    assert "RT Image SID" in found[0].message and "Frame of Reference UID" in found[0].message


def test_plan5_position_may_be_missing_and_privates_count() -> None:
    ds = F.rt_image("1.2.3.4", gantry=0, beam_number=3)
    del ds.RTImagePosition
    found = references.check_reference_image(RTImage.from_dataset(ds))
    assert found[0].status is S and "centred on the receptor axis" in found[0].message
    assert "(3002,0012)" in found[0].tags
    eclipse = references.check_reference_image(RTImage.from_dataset(read_file(ECLIPSE_RI)))
    assert eclipse[0].status is S and "(3273,xx00)" in eclipse[0].tags and "HFS from private" in eclipse[0].message
    elekta = references.check_reference_image(RTImage.from_dataset(read_file(ELEKTA_RI)))  # an acquired image
    assert elekta[0].status is X and "Frame of Reference UID" in elekta[0].message


def test_plan5_missing_reference_image_blocks_that_beam() -> None:
    p = F.good_patient()
    p["drrs"] = p["drrs"][:3]  # the KV270 DRR is not given
    ev = _run(p, "2d2d")
    assert not ev.possible
    assert any("KV270" in f.message and "not among the inputs" in f.message for f in _only(ev, "PLAN-5", W))
    assert "no usable reference image" in _only(ev, "PLAN-8", X)[0].message
    assert _run(p, "2d").possible  # 2D still has KV0 and the MV treatment field


# --------------------------------------------------------------------------- PLAN-6
def test_plan6_same_isocenter() -> None:
    plan = RTPlan.from_dataset(F.good_plan())
    imgs = [RTImage.from_dataset(d) for d in F.good_drrs()]
    found, single = references.check_same_isocenter(plan, imgs, TOL, match=MatchTypeValues.MATCH_2D2D)
    assert single and found[0].status is S and found[0].tolerance == 1.0
    ds = F.good_plan()
    ds.BeamSequence[1].ControlPointSequence[0].IsocenterPosition = [0.0, 0.9, 0.0]
    found, single = references.check_same_isocenter(RTPlan.from_dataset(ds), imgs, TOL,
                                                     match=MatchTypeValues.MATCH_2D2D)
    assert single and found[0].status is S and found[0].value == pytest.approx(0.9)


def test_plan6_several_isocenters() -> None:
    p = F.good_patient()
    p["plan"].BeamSequence[1].ControlPointSequence[0].IsocenterPosition = [30.0, 0.0, 0.0]
    ev2d = _run(p, "2d")
    iso = _only(ev2d, "PLAN-6")[0]
    assert iso.status is W and "couch shifts are not applicable" in iso.message and iso.value == pytest.approx(30.0)
    assert ev2d.possible and not ev2d.couch_shifts_applicable and ev2d.to_json()["plan"]["couch_shifts_applicable"] is False
    ev = _run(p, "2d2d")
    assert not ev.possible and _only(ev, "PLAN-6")[0].status is X and "(300A,012C)" in _only(ev, "PLAN-6")[0].tags


# --------------------------------------------------------------------------- PLAN-7
@pytest.mark.parametrize(("image_gantry", "status"), [(270.15, S), (270.3, X), (269.9, S)])
def test_plan7_angles(image_gantry: float, status: FindingStatusValues) -> None:
    plan = RTPlan.from_dataset(F.good_plan())
    im = RTImage.from_dataset(F.rt_image(F.KV270_DRR, gantry=image_gantry, beam_number=4))
    found = references.check_angles(plan, plan.beam(4), im, TOL)
    assert found[0].status is status
    if status is X:
        assert found[0].value == pytest.approx(0.3) and found[0].tolerance == 0.2 and "(300A,011E)" in found[0].tags


def test_plan7_angle_wraps_and_patient_position() -> None:
    plan = RTPlan.from_dataset(F.good_plan())
    wrap = RTImage.from_dataset(F.rt_image(F.KV0_DRR, gantry=359.9, beam_number=3))
    assert references.check_angles(plan, plan.beam(3), wrap, TOL)[0].status is S
    ffs = RTImage.from_dataset(F.rt_image(F.KV0_DRR, gantry=0, beam_number=3, patient_position="FFS"))
    found = references.check_angles(plan, plan.beam(3), ffs, TOL)
    assert found[0].status is X and "HFS vs FFS" in found[0].message and found[0].tags == ("(0018,5100)",)


# --------------------------------------------------------------------------- PLAN-8
@pytest.mark.parametrize("match", ["2d", "2d2d", "marker", "3d3d"])
def test_plan8_good_patient_allows_every_match(match: str) -> None:
    ev = _run(F.good_patient(), match)
    assert ev.possible, [f.message for f in ev.failures()]
    assert _only(ev, "PLAN-8")[0].status is S
    assert ev.used_beams == {"2d": (1, 3, 4), "2d2d": (3, 4), "marker": (3, 4), "3d3d": (5,)}[match]


def test_plan8_pair_must_be_90_degrees_apart() -> None:
    p = F.good_patient()
    p["plan"].BeamSequence[3].ControlPointSequence[0].GantryAngle = 280
    p["drrs"][3].GantryAngle = 280
    ev = _run(p, "2d2d")
    assert not ev.possible
    msg = _only(ev, "PLAN-8", X)[0].message
    assert "90.0° apart" in msg and "KV270' (kV, 280°)" in msg
    p["plan"].BeamSequence[3].ControlPointSequence[0].GantryAngle = 269.9
    p["drrs"][3].GantryAngle = 269.9
    ok = _run(p, "2d2d")
    assert ok.possible and _only(ok, "PLAN-8")[0].value == pytest.approx(90.1)


def test_plan8_invalid_kv_beam_cannot_be_used() -> None:
    p = F.good_patient()
    p["plan"].BeamSequence[2].NumberOfBlocks = 1
    ev = _run(p, "marker")
    assert not ev.possible
    assert "Number of Blocks is 1" in _only(ev, "PLAN-8", X)[0].message
    assert _run(p, "3d3d").possible  # the CBCT beam is still valid; the broken kV beam is not used
    unused = [f for f in _run(p, "3d3d").findings if f.id == "PLAN-3" and f.status is W]
    assert unused and unused[0].message.endswith("(not used by this match)")


def test_plan8_3d3d_needs_a_cbct_beam() -> None:
    p = F.good_patient()
    p["plan"].BeamSequence[4].PlannedVerificationImageSequence[0].ImagingDeviceSpecificAcquisitionParameters = ["KV",
                                                                                                               "Image"]
    ev = _run(p, "3d3d")
    assert not ev.possible and "CBCT" in _only(ev, "PLAN-8", X)[0].message


def test_plan8_2d_without_imaging_beams() -> None:
    p = F.good_patient()
    for b in p["plan"].BeamSequence:
        b.TreatmentDeliveryType = "TREATMENT"
        if "PlannedVerificationImageSequence" in b:
            del b.PlannedVerificationImageSequence
    ev = _run(p, "2d")
    assert not ev.possible and "the plan has no such beam" in _only(ev, "PLAN-8", X)[0].message


# --------------------------------------------------------------------------- PLAN-9
def test_plan9_ct_set() -> None:
    series = read_ct_series(F.ct_series())
    found = anatomy.check_ct_series(series, TOL)
    assert set(_statuses(found, "PLAN-9")) == {S}
    cts = F.ct_series()
    cts[3].ImagePositionPatient = [-14.8, -15.0, cts[3].ImagePositionPatient[2]]
    found = anatomy.check_ct_series(read_ct_series(cts), TOL)
    bad = [f for f in found if f.status is X]
    assert len(bad) == 1 and bad[0].value == pytest.approx(0.2) and bad[0].tolerance == 0.1
    assert "(0020,0032)" in bad[0].tags


def test_plan9_frame_of_reference_spacing_and_absence() -> None:
    cts = F.ct_series()
    cts[2].FrameOfReferenceUID = "1.2.3.4.5"
    assert X in _statuses(anatomy.check_ct_series(read_ct_series(cts), TOL), "PLAN-9")
    uneven = [F.ct_slice(k, z=z) for k, z in enumerate([0, 2.5, 5, 8, 10.5])]
    found = anatomy.check_ct_series(read_ct_series(uneven), TOL)
    assert W in _statuses(found, "PLAN-9") and X not in _statuses(found, "PLAN-9")
    assert anatomy.check_ct_series(None, TOL)[0].status is X
    rs = RTStructureSet.from_dataset(F.structure_set(F.ct_series()))
    other_for = read_ct_series(F.ct_series(for_uid="1.2.3.4.6"))
    mismatch = anatomy.check_ct_series(other_for, TOL, structure_set=rs)
    assert any(f.status is X and "differs from structure set ROI" in f.message for f in mismatch)


def test_plan9_missing_slices_warn() -> None:
    p = F.good_patient()
    p["ct"] = p["ct"][:6]
    ev = _run(p, "3d3d")
    assert ev.possible and any("2 of the 8 CT slices" in f.message for f in _only(ev, "PLAN-9", W))


# --------------------------------------------------------------------------- PLAN-10
def test_plan10_structure_set() -> None:
    cts = F.ct_series(3)
    found, skipped = anatomy.check_structure_set(RTStructureSet.from_dataset(F.structure_set(cts)), TOL)
    assert _statuses(found, "PLAN-10") == [S] and not skipped
    ds = F.structure_set(cts)
    data = list(ds.ROIContourSequence[0].ContourSequence[1].ContourData)
    data[5] = float(data[5]) + 1e-3  # one point 1 µm off the plane
    ds.ROIContourSequence[0].ContourSequence[1].ContourData = data
    found, skipped = anatomy.check_structure_set(RTStructureSet.from_dataset(ds), TOL)
    assert skipped == {1} and found[1].status is W and "not in one transverse plane" in found[1].message
    assert "1 of 1" not in found[0].message and "skipped" in found[0].message


def test_plan10_mixed_contour_types_skip() -> None:
    ds = F.structure_set(F.ct_series(3))
    ds.ROIContourSequence[0].ContourSequence[0].ContourGeometricType = "OPEN_PLANAR"
    found, skipped = anatomy.check_structure_set(RTStructureSet.from_dataset(ds), TOL)
    assert skipped == {1} and "mixes CLOSED_PLANAR and OPEN_PLANAR" in found[1].message


def test_plan10_skip_continues_the_match() -> None:
    p = F.good_patient()
    p["rs"].ROIContourSequence[0].ContourSequence[0].ContourGeometricType = "OPEN_NONPLANAR"
    ev = _run(p, "marker")
    assert ev.possible and _only(ev, "PLAN-10", W)


# --------------------------------------------------------------------------- PLAN-11
def test_plan11_markers() -> None:
    plan = RTPlan.from_dataset(F.good_plan())
    rs = RTStructureSet.from_dataset(F.structure_set(F.ct_series(3)))
    found, markers = anatomy.check_markers(plan, rs)
    assert found[0].status is S and [m.name for m in markers] == ["Marker1"]


def test_plan11_marker_without_private_subtype_or_with_two_points() -> None:
    plan = RTPlan.from_dataset(F.good_plan())
    no_subtype = RTStructureSet.from_dataset(F.structure_set(F.ct_series(3), marker_subtype=False))
    found, markers = anatomy.check_markers(plan, no_subtype)
    assert not markers and found[0].status is X and "(3271,xx00)" in found[0].tags
    assert "private Marker Subtype is absent" in found[1].message
    ds = F.structure_set(F.ct_series(3))
    c = ds.ROIContourSequence[1].ContourSequence[0]
    c.ContourData, c.NumberOfContourPoints = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2
    found, markers = anatomy.check_markers(plan, RTStructureSet.from_dataset(ds))
    assert not markers and "1 point" in found[1].message


def test_plan11_structure_set_must_be_the_plans() -> None:
    plan_ds = F.good_plan()
    plan_ds.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = "1.2.3.4.99"
    rs = RTStructureSet.from_dataset(F.structure_set(F.ct_series(3)))
    found, _ = anatomy.check_markers(RTPlan.from_dataset(plan_ds), rs)
    assert found[0].status is X and "not the one the plan references" in found[0].message


# --------------------------------------------------------------------------- PLAN-12
def test_plan12_gating() -> None:
    gated = RTPlan.from_dataset(F.good_plan(gated=True))
    assert beams.is_gated(gated) and beams.check_gating(gated)[0].value == "gated"
    ds = F.good_plan(gated=True)
    extra = Dataset()
    extra.PatientSetupNumber, extra.PatientPosition = 2, "HFS"
    ds.PatientSetupSequence.append(extra)
    partial = beams.check_gating(RTPlan.from_dataset(ds))
    assert partial[0].status is W and "only 1 of 2" in partial[0].message
    ds = F.good_plan(gated=True)
    ds.PatientSetupSequence[0].MotionSynchronizationSequence[0].RespiratoryMotionCompensationTechnique = "BREATH_HOLD"
    assert not beams.is_gated(RTPlan.from_dataset(ds))
    assert beams.check_gating(RTPlan.from_dataset(ds))[0].value == "not gated"
    second = Dataset()
    second.RespiratoryMotionCompensationTechnique, second.RespiratorySignalSource = "GATING", "EXTERNAL_MARKER"
    ds.PatientSetupSequence[0].MotionSynchronizationSequence.append(second)  # only the first item is read
    assert not beams.is_gated(RTPlan.from_dataset(ds))
