"""CT image files and orientation: NIfTI RAS becomes LPS, any axis order becomes axial, oblique is resampled."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from openigrt.geometry.volume import Volume
from openigrt.sim.ct_file import _from_sitk, _to_sitk, axial_lps, read_ct_image


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_reordering_equals_simpleitk_dicomorient_for_every_signed_permutation(perm: tuple[int, ...]) -> None:
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    for signs in itertools.product([1.0, -1.0], repeat=3):
        d = np.zeros((3, 3))
        for i in range(3):
            d[perm[i], i] = signs[i]
        v = Volume(rng.standard_normal((4, 5, 6)).astype(np.float32), (1.0, -2.0, 3.5), (0.7, 1.1, 2.5), d)
        ours = axial_lps(v)
        ref = _from_sitk(sitk.DICOMOrient(_to_sitk(v), "LPS"))
        assert ours.reoriented in ("none", "reordered")
        np.testing.assert_array_equal(ours.volume.array, ref.array)
        np.testing.assert_allclose(ours.volume.origin_mm, ref.origin_mm, atol=1e-9)
        np.testing.assert_allclose(ours.volume.spacing_mm, ref.spacing_mm)
        np.testing.assert_allclose(ours.volume.direction, np.eye(3))


def _write_nifti_ras(path: Path, data_xyz: np.ndarray, affine: np.ndarray) -> None:
    """A minimal NIfTI-1 writer (sform = qform = *affine*, RAS mm), independent of SimpleITK's writer."""
    import gzip
    import struct

    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    dims = [3, *data_xyz.shape, 1, 1, 1, 1]
    struct.pack_into("<8h", hdr, 40, *dims)
    struct.pack_into("<hh", hdr, 70, 4, 16)  # NIFTI_TYPE_INT16, 16 bits
    pixdim = [1.0, *np.linalg.norm(affine[:3, :3], axis=0), 1, 1, 1, 1]
    struct.pack_into("<8f", hdr, 76, *pixdim)
    struct.pack_into("<f", hdr, 108, 352.0)  # vox_offset
    struct.pack_into("<f", hdr, 112, 1.0)  # scl_slope
    hdr[123] = 2  # xyzt_units: mm
    struct.pack_into("<hh", hdr, 252, 0, 2)  # qform_code 0, sform_code 2 (aligned)
    for row in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * row, *affine[row])
    hdr[344:348] = b"n+1\0"
    payload = bytes(hdr) + b"\0" * 4 + np.asarray(data_xyz, "<i2").tobytes(order="F")
    path.write_bytes(gzip.compress(payload))


def test_nifti_ras_becomes_lps(tmp_path: Path) -> None:
    data = np.full((10, 12, 8), -1000, np.int16)  # x, y, z (NIfTI order)
    data[3, 4, 5] = 1000
    affine = np.array([[2.0, 0, 0, -10.0], [0, 3.0, 0, -20.0], [0, 0, 4.0, 30.0], [0, 0, 0, 1]])  # RAS
    path = tmp_path / "ct.nii.gz"
    _write_nifti_ras(path, data, affine)
    ras = affine @ np.array([3, 4, 5, 1.0])
    v = axial_lps(read_ct_image(path)).volume
    k, j, i = np.argwhere(v.array == 1000)[0]
    lps = v.index_to_patient_mm([[i, j, k]])[0]
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-4)
    np.testing.assert_allclose(v.spacing_mm, (2.0, 3.0, 4.0), atol=1e-6)


def test_oblique_volume_is_resampled_onto_an_axial_grid() -> None:
    from openigrt.geometry.iec61217 import rot_z

    a = np.full((20, 30, 30), -1000.0, np.float32)
    a[8:12, 13:17, 13:17] = 500.0  # a 4-voxel cube around index (14.5, 14.5, 9.5)
    d = rot_z(10.0)
    v = Volume(a, (5.0, -7.0, 2.0), (1.0, 1.0, 1.0), d)
    truth = v.index_to_patient_mm([[14.5, 14.5, 9.5]])[0]
    out = axial_lps(v)
    assert out.reoriented == "resampled"
    w = out.volume
    assert np.allclose(w.direction, np.eye(3))
    kji = np.argwhere(w.array > 0)
    weights = w.array[w.array > 0]
    centroid = w.index_to_patient_mm([(kji[:, ::-1] * weights[:, None]).sum(0) / weights.sum()])[0]
    np.testing.assert_allclose(centroid, truth, atol=0.2)
