"""``openigrt acquire cbct --cbct-model fdk``: the physical CBCT through the CLI, valid DICOM, the shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_paths
from openigrt.workflow.phantom import write_phantom_patient
from tests.dicom3tools import assert_valid, dciodvfy_path

pytest.importorskip("itk")


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory):
    return write_phantom_patient(tmp_path_factory.mktemp("ph"), settings=load_settings(None, {}), seed=0, small=True)


def test_fdk_cbct_through_the_workflow(patient, tmp_path: Path) -> None:
    # the CLI's --cbct-model goes straight into workflow.acquire (checked below); the grid is the small
    # one to keep the test cheap (the default grid is timed in benchmarks/cbct_bench.py)
    from openigrt.iod.dataset_io import read_file
    from openigrt.sim.cbct import CbctParams
    from openigrt.workflow.acquire import TableTopShift, acquire

    out = tmp_path / "cb"
    result = acquire(kind="cbct", plan_dataset=read_file(patient.plan_path).dataset,
                     ct_volume=read_ct_series(read_paths([patient.ct_dir])[0]).volume, beam_numbers=[13],
                     shift=TableTopShift(vrt_mm=9.0), out_dir=out, settings=load_settings(None, {}), seed=3,
                     cbct_params=CbctParams.small(pixel_mm=2.0, columns=126), cbct_model="fdk")
    truth = json.loads(result.truth_path.read_text())
    assert truth["cbct"]["model"] == "fdk" and truth["cbct"]["scan"]["fan"] == "half"
    assert truth["cbct"]["timing_s"]["projections"] > 0
    cb = read_ct_series(read_paths([out / "CBCT"])[0]).volume
    # table 9 mm up = the patient 9 mm anterior (HFS): the anterior skin (y = -100 in the CT) at -109
    iso = patient.phantom.isocenter_mm
    ys = np.arange(-130.0, -80.0, 0.25)
    i, _, k = np.rint(cb.patient_to_index([[iso[0], 0.0, iso[2]]])[0]).astype(int)
    column = cb.array[k - 1: k + 2, :, i - 1: i + 2].astype(float).mean(axis=(0, 2))
    profile = np.interp(ys, cb.origin_mm[1] + np.arange(cb.shape[1]) * cb.spacing_mm[1], column)
    assert ys[np.argmax(profile > -500)] == pytest.approx(-109.0, abs=2.0)
    if dciodvfy_path() is not None:
        assert_valid(out / "CBCT" / "CT_0001.dcm", expected_iod="CTImage")


def test_cli_passes_the_cbct_model(patient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import openigrt.workflow.acquire as wa
    from openigrt.errors import PreconditionError

    seen = {}

    def fake_acquire(**kw):
        seen.update(kw)
        raise PreconditionError("stopped here by the test")

    monkeypatch.setattr(wa, "acquire", fake_acquire)
    base = ["acquire", "cbct", "--plan", str(patient.plan_path), "--ct", str(patient.ct_dir), "--beam", "13",
            "--out", str(tmp_path / "x")]
    assert main([*base, "--cbct-model", "fdk"]) == 1
    assert seen["cbct_model"] == "fdk"
    assert main([*base, "--cbct-model", "slow"]) == 2
    assert "slow" in capsys.readouterr().err
