"""Real-anatomy virtual patients (issue 12 item 1): valid DICOM, anatomy where it belongs, clear errors.

* the abdomen patient (shipped in the package) passes ``openigrt validate`` for every match type
  and the dciodvfy baseline; its target, markers, couch and offset are where the truth says;
* ``openigrt phantom --from-ct`` on the CORT liver series (tests/data/real_ct) builds a liver target;
* a non-CT file, an unreadable file, a label map and a 2-slice series each get one clear message
  naming the file, a non-zero exit and no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openigrt.cli import main
from openigrt.config import load_settings
from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.iod.ct_series import read_ct_series
from openigrt.iod.dataset_io import read_file, read_paths
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.sim.ct_couch import couch_directions
from tests.dicom3tools import assert_valid, dciodvfy_path

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
REAL_CT = Path(__file__).resolve().parents[1] / "data" / "real_ct"
LIVER_CT = REAL_CT / "cort_liver_ct"
POSITIONS = ("HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")


@pytest.fixture(scope="module")
def abdomen(tmp_path_factory: pytest.TempPathFactory):
    from openigrt.workflow.phantom import write_patient

    return write_patient(tmp_path_factory.mktemp("abdomen"), settings=load_settings(None, {}), patient="abdomen", seed=1)


@pytest.mark.parametrize("match", ["2d", "2d2d", "marker", "3d3d"])
def test_abdomen_validates_for_every_match_type(abdomen, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(abdomen.dicom_dir), "--match", match, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["possible"] is True
    assert [f for f in result["findings"] if f["status"] != "Success"] == []
    if match == "marker":
        assert "PLAN-11" in {f["id"] for f in result["findings"]}


@pytest.mark.skipif(dciodvfy_path() is None, reason="dicom3tools (dciodvfy) not installed")
@pytest.mark.parametrize(("name", "iod"), [("CT/CT_0001.dcm", "CTImage"), ("CT/CT_0112.dcm", "CTImage"),
                                           ("RS_PHANTOM.dcm", "RTStructureSet"), ("RP_PHANTOM.dcm", "RTPlan"),
                                           ("RI_DRR_11.dcm", "RTImage"), ("RI_DRR_12.dcm", "RTImage")])
def test_abdomen_dciodvfy_baseline(abdomen, name: str, iod: str) -> None:
    assert_valid(abdomen.dicom_dir / name, expected_iod=iod)


def _structures(rs_path: Path) -> tuple[RTStructureSet, dict[str, str]]:
    rs = RTStructureSet.from_dataset(read_file(rs_path))
    kinds = {o.referenced_roi_number: str(getattr(o.rt_roi_interpreted_type, "value", o.rt_roi_interpreted_type))
             for o in rs.observations}
    return rs, {r.roi_name: kinds[r.roi_number] for r in rs.rois}


def test_abdomen_anatomy_is_where_the_truth_says(abdomen) -> None:
    t = abdomen.truth
    assert t["site"] == "pelvis" and t["patient_position"] == "HFS"
    rs, kinds = _structures(abdomen.dicom_dir / "RS_PHANTOM.dcm")
    assert kinds["BODY"] == "EXTERNAL" and kinds["PTV"] == "PTV" and kinds["COUCH"] == "SUPPORT"
    assert kinds["BLADDER"] == "ORGAN" and kinds["RECTUM"] == "ORGAN"
    assert [kinds[f"Marker{i}"] for i in (1, 2, 3)] == ["MARKER"] * 3
    ct = read_ct_series(read_paths([abdomen.ct_dir])[0]).volume
    np.testing.assert_array_equal(ct.array, abdomen.phantom.volume.array)  # HU round trip
    iso = np.asarray(t["isocenter_mm"])
    ptv = t["ptv"]
    for f in t["fiducials"]:  # markers inside the PTV, and bright (saturated gold) in the CT
        rel = (np.asarray(f["center_mm"]) - iso) / np.asarray(ptv["semi_axes_mm"])
        assert np.linalg.norm(rel) < 1.0
        i, j, k = np.rint(ct.patient_to_index([f["center_mm"]])[0]).astype(int)
        assert ct.array[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2].max() >= 3000
    # the isocenter is in soft tissue (urine/muscle), inside the body, above the couch
    i, j, k = np.rint(ct.patient_to_index([iso])[0]).astype(int)
    assert -100 < float(np.median(ct.array[k, j - 1:j + 2, i - 1:i + 2])) < 100
    couch = t["couch"]
    assert couch["down"] == [0.0, 1.0, 0.0] and couch["top_mm"] > iso[1]
    plan = RTPlan.from_dataset(read_file(abdomen.plan_path))
    (setup,) = plan.patient_setups
    vrt, lng, lat = setup.setup_displacement_mm
    expected = patient_axes_in_table_top("HFS") @ (np.asarray(t["reference_mark_mm"]) - iso)
    np.testing.assert_allclose([lat, lng, vrt], expected, atol=1e-3)
    assert np.linalg.norm(expected) > 10.0  # a real couch offset, not zero


def test_shipped_ct_and_licence_are_packaged() -> None:
    from openigrt.workflow.ct_input import BUILT_IN

    here = BUILT_IN["abdomen"].parent
    assert BUILT_IN["abdomen"].stat().st_size == 2206612
    assert "Apache License" in (here / "LICENSE-Apache-2.0.txt").read_text()
    assert "0e65a448d557382b1e925276212b3bec7f5aff83" in (here / "PROVENANCE.md").read_text()
    assert "sim/data/**/*" in (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()


@pytest.mark.parametrize("position", POSITIONS)
def test_couch_goes_below_the_body_for_every_position(position: str) -> None:
    """The couch lies on the patient's side that faces the floor: table-top -Zt in patient axes."""
    down, lateral = couch_directions(position)
    a = patient_axes_in_table_top(position)
    np.testing.assert_allclose(a @ down, [0.0, 0.0, -1.0])
    np.testing.assert_allclose(a @ lateral, [1.0, 0.0, 0.0])


def test_synthetic_phantom_lying_on_its_left_side_gets_the_couch_on_its_left(tmp_path: Path) -> None:
    from openigrt.workflow.phantom import write_phantom_patient

    p = write_phantom_patient(tmp_path / "p", settings=load_settings(None, {}), small=True, patient_position="HFDL")
    v = p.phantom.volume
    k = v.shape[0] // 2
    row = v.array[k, v.shape[1] // 2]  # the central row, along x
    x = v.origin_mm[0] + np.arange(v.shape[2]) * v.spacing_mm[0]
    skin = x[(row > -300) & (row < 150) & (x > 140)]  # body reaches x = +150 (its left side)
    couch = x[(row > 200) & (x > 150)]  # couch skin (300 HU) beyond the body on the left
    assert skin.size and couch.size and couch.min() > 150.0
    assert p.truth["patient_position"] == "HFDL" and p.truth["couch"]["down"] == [1.0, 0.0, 0.0]
    assert not ((row > 200) & (x < -160)).any()  # nothing left of the old posterior couch on the right


# ------------------------------------------------------------------------------------ from any CT
@pytest.mark.slow
def test_phantom_from_the_liver_ct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "liver"
    assert main(["phantom", "--out", str(out), "--from-ct", str(LIVER_CT), "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["site"] == "liver" and t["source"]["format"] == "DICOM" and t["source"]["slices"] == 168
    iso = np.asarray(t["isocenter_mm"])
    assert iso[0] < -30.0  # the liver is on the patient's right (-x)
    rs, kinds = _structures(out / "dicom" / "RS_PHANTOM.dcm")
    assert kinds["LIVER"] == "ORGAN" and kinds["LUNGS"] == "ORGAN"
    ct = read_ct_series(read_paths([out / "dicom" / "CT"])[0]).volume
    i, j, k = np.rint(ct.patient_to_index([iso])[0]).astype(int)
    assert 0 < float(np.median(ct.array[k, j - 1:j + 2, i - 1:i + 2])) < 200  # liver parenchyma (lesion)
    assert main(["validate", str(out / "dicom"), "--match", "3d3d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["possible"] is True


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, " ".join(captured.err.split())


def test_a_non_ct_dicom_file_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = REAL / "pydicom_rt_fragments" / "rtplan.dcm"
    code, err = _error(["phantom", "--out", str(tmp_path / "o"), "--from-ct", str(plan)], capsys)
    assert code == 1 and "rtplan.dcm" in err and "no CT image" in err and "RTPLAN" in err
    assert "Traceback" not in err and "internal error" not in err


def test_a_two_slice_series_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = REAL / "rt_utils_ge_phantom"
    code, err = _error(["phantom", "--out", str(tmp_path / "o"), "--from-ct", str(series)], capsys)
    assert code == 1 and "rt_utils_ge_phantom" in err and "2 slice(s)" in err and "at least 8 slices" in err
    assert "Traceback" not in err and "internal error" not in err


def test_unreadable_and_non_ct_image_files_are_one_clear_error(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import SimpleITK as sitk

    garbage = tmp_path / "scan.nii.gz"
    garbage.write_bytes(b"this is not an image" * 50)
    code, err = _error(["phantom", "--out", str(tmp_path / "o"), "--from-ct", str(garbage)], capsys)
    assert code == 1 and "scan.nii.gz" in err and "not a readable image" in err and "internal error" not in err
    labels = tmp_path / "labels.mha"  # a segmentation, not HU
    image = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 5, (30, 40, 40)).astype(np.int16))
    image.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(image, str(labels))
    code, err = _error(["phantom", "--out", str(tmp_path / "o2"), "--from-ct", str(labels)], capsys)
    assert code == 1 and "labels.mha" in err and "does not look like a CT" in err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    code, err = _error(["phantom", "--out", str(tmp_path / "o3"), "--from-ct", str(text)], capsys)
    assert code == 1 and "notes.txt" in err and "Traceback" not in err and "internal error" not in err


def test_small_is_refused_for_real_anatomy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _error(["phantom", "--out", str(tmp_path / "o"), "--patient", "abdomen", "--small"], capsys)
    assert code == 2 and "--small" in err


def test_deformed_patient_of_the_day_and_its_truths(abdomen, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--deform: the markers in the CBCT sit at T(φ(p)), not T(p); truth.json says which truth is whose."""
    from openigrt.geometry.rigid import RigidTransform
    from openigrt.workflow.day_change import day_change
    from openigrt.workflow.matching import points_of_type

    out = tmp_path / "cb"
    rs_path = abdomen.dicom_dir / "RS_PHANTOM.dcm"
    assert main(["acquire", "cbct", "--plan", str(abdomen.plan_path), "--ct", str(abdomen.ct_dir), "--beam", "13",
                 "--shift", "3,-4,2,1,-0.5,0.8", "--deform", "10,6,4", "--structure-set", str(rs_path),
                 "--out", str(out), "--json"]) == 0
    truth = json.loads(capsys.readouterr().out)
    assert set(truth["truth_for"].values()) == {"transform", "target_transform", "marker_transform"}
    t = RigidTransform(np.asarray(truth["transform"]["matrix"]))
    rs = RTStructureSet.from_dataset(read_file(rs_path))
    markers = np.array([p for _, p in points_of_type(rs, "MARKER")])
    ct = read_ct_series(read_paths([abdomen.ct_dir])[0]).volume
    change = day_change(ct, rs, bladder_mm=10, rectum_mm=6, weight_loss_mm=4, marker_points_mm=markers)
    cb = read_ct_series(read_paths([out / "CBCT"])[0]).volume
    moved = 0.0
    for p in markers:
        expected = t.apply(change.deformation.apply([p]))[0]
        i, j, k = np.rint(cb.patient_to_index([expected])[0]).astype(int)
        box = np.asarray(cb.array, float)[k - 3:k + 4, j - 6:j + 7, i - 6:i + 7]
        excess = box - np.percentile(box, 50)
        w = np.clip(excess - 0.3 * excess.max(), 0, None)  # the blob's upper 70 %
        kk, jj, ii = np.nonzero(w)
        idx = np.column_stack([ii + i - 6, jj + j - 6, kk + k - 3]).astype(float)
        found = cb.index_to_patient_mm([(idx * w[kk, jj, ii][:, None]).sum(0) / w.sum()])[0]
        assert np.linalg.norm(found - expected) < 1.5, (p, found, expected)  # 1 mm CBCT of a 3 mm CT
        moved = max(moved, float(np.linalg.norm(found - t.apply([p])[0])))
    assert moved > 3.0  # the deformation moved the markers beyond the rigid setup error
    target = np.asarray(truth["expected_couch_correction_target"]["vrt_mm"])
    assert abs(target - truth["expected_couch_correction"]["vrt_mm"]) > 1.0  # the target moved against the bone
