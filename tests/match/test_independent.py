"""MATCH-3 on cases the 3D/3D match was not developed on (issue 12): another anatomy, a CT and a CBCT on
different grids along the room axes of the patient position, a treatment couch that does not rotate
with the patient, truncated field of view; a real CT; the region the match samples; failures.

Cases come from :mod:`tests.match.cases` (small grids here: 1.96 × 1.96 × 5 mm CT, 1.8 × 1.8 × 4 mm
CBCT; the benchmark runs the full-size grids). TRE points: the target centre and the three seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.match import BoxROI, StopReason, register_3d3d
from openigrt.match.region import prepare_region
from tests.match.cases import (CbctOptions, CouchModel, fast_cbct, fdk_cbct, real_ct_available, real_patient,
                               setup_error, synthetic_patient)

#: issue 12 targets for synthetic cases on different grids (mm, degrees)
TRE_MAX_MM = 0.5
ROT_MAX_DEG = 0.15
#: issue 12 targets on real anatomy (median over the target centre and the markers, max)
REAL_TRE_MEDIAN_MM, REAL_TRE_MAX_MM = 0.3, 0.8
ROI_HALF_MM = (60.0, 60.0, 50.0)


#: (position, seed, field-of-view diameter range): half-fan-like fields show the couch beside the
#: patient, the truncated one only under it
CASES = [("HFS", 11, (400.0, 420.0)), ("FFP", 12, (250.0, 290.0)), ("HFDR", 13, (400.0, 420.0))]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p[0])
def synthetic_case(request):
    from dataclasses import replace

    position, seed, fov = request.param
    patient = synthetic_patient(seed, position=position, small=True)
    opts = replace(CbctOptions.small(), fov_diameter_mm=fov)
    return fast_cbct(patient, setup_error(seed, patient.isocenter_mm), seed, options=opts)


def test_independent_synthetic_case_meets_the_targets(synthetic_case):
    c = synthetic_case
    r = register_3d3d(c.patient.ct, c.cbct, roi=BoxROI(tuple(c.patient.isocenter_mm), ROI_HALF_MM))
    assert r.success and r.stop_reason is StopReason.CONVERGED
    assert c.tre_mm(r.transform).max() <= TRE_MAX_MM
    assert c.rotation_error_deg(r.transform) <= ROT_MAX_DEG


def test_whole_volume_is_not_pulled_by_the_couch(synthetic_case):
    """No region of interest: the treatment couch (not rotated with the patient) must not pull the match."""
    c = synthetic_case
    r = register_3d3d(c.patient.ct, c.cbct)
    assert r.success
    assert c.tre_mm(r.transform).max() <= TRE_MAX_MM
    assert c.rotation_error_deg(r.transform) <= ROT_MAX_DEG


def test_samples_exclude_couch_and_outside_the_field_of_view(synthetic_case):
    c = synthetic_case
    reg = prepare_region(c.patient.ct, c.cbct, valid=None, s_init=np.eye(4), roi_points_ref_mm=None, reach_mm=28.0)
    sample = _on_full_grid(reg, c.cbct)
    wide = float(np.max(np.abs(c.cbct.index_to_patient_mm(np.argwhere(c.cbct.array != reg.report["padding_value"])
                                                           [::97, ::-1].astype(float)) - c.initlaseriso_mm)[:, :2]))
    if wide > 180.0:  # a half-fan-like field of view shows the couch
        assert c.couch_mask.sum() > 1000, "the case's couch should reach into the field of view"
    assert not (sample & c.couch_mask).any()  # not one couch voxel
    pad = c.cbct.array == reg.report["padding_value"]
    assert not (sample & pad).any()  # nothing outside the field of view
    body_in_fov = _body_on(c, c.cbct, c.truth.inverse()) & ~pad  # the patient in the CBCT: mostly sampled
    assert (sample & body_in_fov).sum() >= 0.85 * body_in_fov.sum()


def _on_full_grid(reg, cbct: Volume) -> np.ndarray:
    """The region's sample mask on the whole CBCT grid (False outside the crop)."""
    lo = np.rint(cbct.patient_to_index([reg.verification.origin_mm])[0]).astype(int)
    full = np.zeros(cbct.shape, bool)
    nz, ny, nx = reg.verification.shape
    full[lo[2]:lo[2] + nz, lo[1]:lo[1] + ny, lo[0]:lo[0] + nx] = reg.sample_mask
    return full


def _body_on(c, grid: Volume, inv: RigidTransform) -> np.ndarray:
    nz, ny, nx = grid.shape
    kji = np.indices(grid.shape).reshape(3, -1).T
    p = inv.apply(grid.index_to_patient_mm(kji[:, ::-1].astype(float)))
    ijk = np.rint(c.patient.anatomy.patient_to_index(p)).astype(int)
    n = np.array(c.patient.anatomy.shape[::-1])
    ok = np.all((ijk >= 0) & (ijk < n), axis=1)
    out = np.zeros(len(p), bool)
    out[ok] = c.patient.body_mask[ijk[ok, 2], ijk[ok, 1], ijk[ok, 0]]
    return out.reshape(grid.shape)


def test_couch_and_intensities_unlike_the_phantom_are_still_excluded():
    """Couch detection does not depend on HU values: another couch top (skins of 900 HU, core of
    -700 HU, 70 mm thick, no rails) and a CBCT scaled by 0.8 and shifted by -250 HU."""
    patient = synthetic_patient(14, position="HFS", small=True)
    solid = CouchModel(layers=((2.0, 900.0), (66.0, -700.0), (2.0, 900.0)), width_mm=480.0)
    opts = CbctOptions(spacing_mm=(1.8, 1.8, 4.0), shape=(44, 256, 256), hu_scale=(0.8, 0.8), hu_offset=(-250.0, -250.0),
                       couch=solid, fov_diameter_mm=(400.0, 420.0))
    c = fast_cbct(patient, setup_error(14, patient.isocenter_mm), 14, options=opts)
    reg = prepare_region(patient.ct, c.cbct, valid=None, s_init=np.eye(4), roi_points_ref_mm=None, reach_mm=28.0)
    assert c.couch_mask.sum() > 1000
    assert not (_on_full_grid(reg, c.cbct) & c.couch_mask).any()
    r = register_3d3d(patient.ct, c.cbct)
    assert r.success and c.tre_mm(r.transform).max() <= TRE_MAX_MM


@pytest.mark.skipif(not real_ct_available(), reason="built-in real CTs (package abdomen, tests/data liver) not found")
def test_real_liver_ct_crop():
    """The CORT liver CT (3 × 3 × 2.5 mm), its scanner table removed, our CT couch under it; a CBCT of
    another grid with the treatment couch: the default region of interest around the isocenter."""
    patient = real_patient("liver", 3, position="HFS")
    c = fast_cbct(patient, setup_error(3, patient.isocenter_mm), 3, options=CbctOptions.small())
    r = register_3d3d(patient.ct, c.cbct, roi=BoxROI(tuple(patient.isocenter_mm), ROI_HALF_MM))
    assert r.success
    assert c.tre_mm(r.transform).max() <= 0.8  # issue 12: real anatomy max 0.8 mm
    assert c.rotation_error_deg(r.transform) <= ROT_MAX_DEG


def _target_roi(patient) -> BoxROI:
    """The default region of interest the CLI takes from a plan's target (openigrt.workflow.matching)."""
    from openigrt.workflow.matching import DEFAULT_ROI_HALF_MM, TARGET_ROI_MARGIN_MM

    half = np.maximum(patient.target_semi_axes_mm + TARGET_ROI_MARGIN_MM, DEFAULT_ROI_HALF_MM)
    return BoxROI(tuple(float(v) for v in patient.target_center_mm), tuple(float(v) for v in half))


@pytest.mark.skipif(not real_ct_available(), reason="built-in real CTs (package abdomen, tests/data liver) not found")
def test_real_abdomen_fdk_cbct_meets_the_real_anatomy_targets():
    """A CBCT by projections and RTK FDK (full fan: ⌀ 264 mm, the body truncated laterally; beam
    hardening, scatter, noise, the treatment couch not rotated) of the abdomen patient prone with the
    feet first (a position the benchmark does not use), on a grid of its own: the default ROI from the
    target reaches the issue's real-anatomy targets, converged."""
    pytest.importorskip("itk")
    patient = real_patient("abdomen", 7, position="FFP")
    c = fdk_cbct(patient, setup_error(7, patient.isocenter_mm), 7, options=CbctOptions.small(), fan="full")
    r = register_3d3d(patient.ct, c.cbct, roi=_target_roi(patient))
    assert r.success and r.stop_reason is StopReason.CONVERGED, r.failure_message()
    tre = c.tre_mm(r.transform)
    assert np.median(tre) <= REAL_TRE_MEDIAN_MM and tre.max() <= REAL_TRE_MAX_MM, tre
    assert c.rotation_error_deg(r.transform) <= ROT_MAX_DEG


def _cylinder_case() -> tuple[Volume, Volume]:
    """A textured elliptic cylinder constant along z (no structure along z) and its CBCT."""
    rng = np.random.default_rng(3)
    from scipy import ndimage

    ny = nx = 128
    yy, xx = np.mgrid[0:ny, 0:nx] * 2.0 - 127.0
    tex = ndimage.gaussian_filter(rng.normal(0, 1, (ny, nx)), 2.0) * 600.0
    sl = np.where((xx / 110) ** 2 + (yy / 80) ** 2 <= 1, 40.0 + tex, -1000.0).astype(np.float32)
    ct = Volume(np.repeat(sl[None], 40, axis=0), (-127.0, -127.0, -97.5), (2.0, 2.0, 5.0))
    truth = RigidTransform.from_parameters(translation_mm=(2.0, -1.5, 3.0))
    from tests.match.cases import _resample

    grid = Volume(np.zeros((30, 120, 120), np.float32), (-107.1, -107.1, -60.0), (1.8, 1.8, 4.0))
    cb = _resample(ct, grid, truth) + rng.normal(0, 20, grid.shape).astype(np.float32)
    return ct, grid.with_array(cb.astype(np.float32))


def test_plateau_is_a_failure_with_the_reason():
    ct, cb = _cylinder_case()
    r = register_3d3d(ct, cb, dof=3)
    assert not r.success and r.stop_reason is StopReason.PLATEAU
    assert "plateau" in r.failure_message() and "z" in r.failure_message()
    assert r.as_dict()["success"] is False


def test_not_converged_is_a_failure(synthetic_case):
    c = synthetic_case
    r = register_3d3d(c.patient.ct, c.cbct, max_iterations=1, roi=BoxROI(tuple(c.patient.isocenter_mm), ROI_HALF_MM))
    assert not r.success and r.stop_reason is StopReason.MAX_ITERATIONS
    assert "did not converge" in r.failure_message()
