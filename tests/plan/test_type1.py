"""PLAN-13: every row of the Type 1 table is detected when absent or empty; received-object findings."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    RTImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from openigrt.iod.dataset_io import dicom_file, read_file
from openigrt.plan.evaluate import collect_inputs, evaluate
from openigrt.plan.findings import FindingStatusValues
from openigrt.plan.type1 import TYPE1, check_type1, missing_type1
from tests.iod import factory as F
from tests.iod.realdata import ARIA13, ECLIPSE_RP, ELEKTA_RI


def _good(sop_class: str) -> Dataset:
    return {
        str(CTImageStorage): lambda: F.ct_slice(0),
        str(RTImageStorage): lambda: F.rt_image("1.2.3.4", gantry=0, beam_number=3),
        str(RTStructureSetStorage): lambda: F.structure_set(F.ct_series(2)),
        str(RTPlanStorage): F.good_plan,
        str(RTIonPlanStorage): lambda: pydicom.dcmread(ARIA13),
        str(SpatialRegistrationStorage): F.registration,
    }[sop_class]()


ROWS = [(cls, row) for cls, rows in TYPE1.items() for row in rows]


@pytest.mark.parametrize("sop_class", list(TYPE1), ids=lambda u: u.split(".")[-1])
def test_good_objects_have_every_type1_attribute(sop_class: str) -> None:
    assert missing_type1(_good(sop_class), sop_class) == []


@pytest.mark.parametrize(("sop_class", "row"), ROWS, ids=[f"{c.split('.')[-1]}:{r.path}" for c, r in ROWS])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_each_row_is_detected(sop_class: str, row, how: str) -> None:
    ds = _good(sop_class)
    node = ds
    for step in row.path.split("/")[:-1]:
        node = node[step.removesuffix("[0]")].value[0]
    if how == "absent":
        del node[row.keyword]
    else:
        node[row.keyword].value = [] if node[row.keyword].VR == "SQ" else None
    found = missing_type1(ds, sop_class)
    assert any(r.path == row.path for r, _ in found), f"{row.path} not reported"


def test_type1_findings_name_object_and_tag() -> None:
    ds = F.good_plan()
    del ds.RTPlanLabel
    del ds.BeamSequence[1].BeamType
    found = check_type1([dicom_file(ds, source="plan.dcm")])
    assert len(found) == 1 and found[0].status is FindingStatusValues.FAILURE
    assert found[0].tags == ("(300A,0002)", "(300A,00C4)")
    assert "plan.dcm" in found[0].message and "BeamSequence[2]" in found[0].message
    assert "[RT General Plan C.8.8.9]" in found[0].message
    assert check_type1([read_file(ECLIPSE_RP)])[0].status is FindingStatusValues.SUCCESS


def test_ct_slices_are_summarised_per_series() -> None:
    cts = F.ct_series(4)
    del cts[1].RescaleSlope
    del cts[2].RescaleSlope
    found = check_type1([dicom_file(c) for c in cts])
    assert len(found) == 1 and "2 of 4 slices" in found[0].message and found[0].tags == ("(0028,1053)",)


def test_unused_broken_object_is_a_warning_and_read_flaws_are_reported() -> None:
    p = F.good_patient()
    del p["drrs"][0].RTImageLabel  # the MV treatment field's DRR: not used by 3D/3D
    files = [dicom_file(d) for d in [p["plan"], p["rs"], *p["ct"], *p["drrs"]]] + [read_file(ELEKTA_RI)]
    ev = evaluate(collect_inputs(files), "3d3d")
    assert ev.possible
    p13 = [f for f in ev.findings if f.id == "PLAN-13"]
    assert any(f.status is FindingStatusValues.WARNING and "(3002,0002)" in f.tags
               and f.message.endswith("(not used by this match)") for f in p13)
    assert any("tolerated" in f.message and "(0002,0003)" in f.message for f in p13)
    ev2d = evaluate(collect_inputs(files), "2d")
    assert not ev2d.possible  # beam 1's DRR is used by the 2D match
    assert any(f.status is FindingStatusValues.FAILURE and "(3002,0002)" in f.tags for f in ev2d.findings)

