"""The builders' phantom objects pass the plan checks (SIM-1 needs a plan the PLAN-* checks accept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openigrt.iod.build import write_file
from openigrt.plan.evaluate import validate_paths
from openigrt.plan.findings import FindingStatusValues
from tests.build.factory import Patient


@pytest.fixture(scope="module")
def phantom_dir(patient: Patient, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    for k, ds in enumerate(patient.ct):
        write_file(ds, out / f"CT{k}.dcm", implicit_vr=True)
    write_file(patient.structure_set, out / "RS.dcm", implicit_vr=True)
    write_file(patient.plan, out / "RP.dcm", implicit_vr=True)
    for n, ds in patient.drrs.items():
        write_file(ds, out / f"RI{n}.dcm", implicit_vr=True)
    return out


@pytest.mark.parametrize("match", ["2d", "2d2d", "marker", "3d3d"])
def test_every_match_type_is_possible_without_failures(phantom_dir: Path, match: str) -> None:
    ev = validate_paths([phantom_dir], match)
    bad = [f"{f.id}: {f.message}" for f in ev.findings if f.status == FindingStatusValues.FAILURE]
    warnings = [f"{f.id}: {f.message}" for f in ev.findings if f.status == FindingStatusValues.WARNING]
    assert ev.possible and ev.single_isocenter, bad
    assert not bad
    # the CBCT setup beam has, by design, no reference DRR; nothing else may warn
    assert all("'CBCT': no Referenced Reference Image Sequence" in w for w in warnings), warnings
