"""The fast building blocks of the matchers against their plain (slow) definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from openigrt.match._kernels import (
    bin2d,
    block_mean,
    fov_valid,
    highpass_crop,
    sample_clamped,
)
from openigrt.match._ncc import masked_ncc_map, peak_of


@pytest.mark.parametrize("shape, max_shift", [((64, 80), 8), ((40, 30, 50), (5, 4, 6.5)), ((20, 200), 25)])
def test_compact_ncc_search_equals_full(shape, max_shift):
    rng = np.random.default_rng(0)
    moving = rng.normal(size=shape)
    fixed = np.roll(moving, 3, axis=tuple(range(len(shape)))) + 0.3 * rng.normal(size=shape)
    fm, mm = rng.random(shape) > 0.2, rng.random(shape) > 0.1
    full, n_full = masked_ncc_map(fixed, moving, fixed_mask=fm, moving_mask=mm, max_shift=max_shift)
    small, n_small = masked_ncc_map(fixed, moving, fixed_mask=fm, moving_mask=mm, max_shift=max_shift, compact=True)
    assert small.size < full.size
    lim = np.broadcast_to(np.asarray(max_shift, float), (len(shape),))
    for u in itertools.product(*[range(-int(v), int(v) + 1) for v in lim]):
        a, b = full[u], small[u]
        assert (a == b == -np.inf) or abs(a - b) < 1e-12
    assert peak_of(full, n_full).shift == pytest.approx(peak_of(small, n_small).shift, abs=1e-9)


def test_block_means_and_binning():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(11, 13, 17)).astype(np.float32)
    ref = a[:10, :12, :15].reshape(5, 2, 4, 3, 5, 3).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(block_mean(a, (2, 3, 3)), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(block_mean(a, (1, 1, 1), clip=(-0.5, 0.5)), np.clip(a, -0.5, 0.5))
    img = rng.normal(size=(37, 50)).astype(np.float32)
    np.testing.assert_allclose(bin2d(img, 4), img[:36, :48].astype(float).reshape(9, 4, 12, 4).mean(axis=(1, 3)),
                               rtol=1e-12, atol=1e-12)


def test_highpass_crop_is_the_crop_minus_the_trilinear_low_pass():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(12, 20, 24)).astype(np.float32)
    low = rng.normal(size=(4, 6, 7)).astype(np.float32)
    lo, shape = (2, 3, 4), (8, 14, 16)
    kji = [np.linspace(-0.7, 3.6, shape[0]), np.linspace(0.2, 5.9, shape[1]), np.linspace(-1.0, 7.5, shape[2])]
    out = highpass_crop(m, lo, shape, tuple(kji), low)
    grid = np.stack(np.meshgrid(*kji, indexing="ij"), axis=-1).reshape(-1, 3)
    expect = ndimage.map_coordinates(low, grid.T, order=1, mode="nearest").reshape(shape)
    crop = m[2:10, 3:17, 4:20]
    np.testing.assert_allclose(out, crop - expect, atol=1e-5)
    np.testing.assert_allclose(sample_clamped(low, grid), expect.ravel(), atol=1e-5)


def _fov_reference(a: np.ndarray, pad: float, erode: int) -> np.ndarray:
    """The previous scipy definition of field_of_view_mask's kernel."""
    valid = ndimage.uniform_filter((a != pad).astype(np.float32), size=(1, 5, 5), mode="constant") > 0.5
    n = 2 * erode + 1
    return ndimage.uniform_filter(valid.astype(np.float32), size=(1, n, n), mode="constant") > 1.0 - 1e-3


@pytest.mark.parametrize("erode", [0, 2, 3])
def test_field_of_view_kernel_matches_the_filter_definition(erode):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 40, 50)).astype(np.float32)
    yy, xx = np.mgrid[0:40, 0:50]
    a[:, (yy - 20) ** 2 + (xx - 24) ** 2 > 16**2] = -3024.0
    a[1, 20, 20] = -3024.0  # an isolated padding-valued voxel inside
    a[2, :, :3] = -3024.0
    expect = _fov_reference(a, -3024.0, erode) if erode else \
        ndimage.uniform_filter((a != -3024.0).astype(np.float32), size=(1, 5, 5), mode="constant") > 0.5
    assert np.array_equal(fov_valid(a, -3024.0, erode), expect)
