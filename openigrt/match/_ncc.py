"""Masked normalised cross-correlation over all integer shifts, by FFT (2D and 3D).

Implements Padfield's masked NCC [1]_ (the algorithm behind scikit-image's masked
``phase_cross_correlation``), used for the exhaustive coarse translation search of every match
type. Arrays are in array-axis order (``(rows, columns)`` or ``(slices, rows, columns)``); shifts
are returned in the same order, in pixels/voxels.

References
----------
.. [1] D. Padfield, "Masked object registration in the Fourier domain", IEEE Trans. Image
   Process. 21(5):2706-2718, 2012. https://doi.org/10.1109/TIP.2011.2181402
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sfft


@dataclass(frozen=True)
class ShiftPeak:
    """Best shift of a masked NCC search.

    ``shift`` (array-axis order, sub-pixel by a parabola through the peak and its neighbours)
    is the displacement ``u`` for which ``fixed(x) ≈ moving(x − u)``; ``ncc`` is the peak value;
    ``overlap`` is the number of overlapping valid pixels at the integer peak.
    """

    shift: tuple[float, ...]
    ncc: float
    overlap: float


def _xcorr(fa: NDArray[np.complex128], fb: NDArray[np.complex128], shape: tuple[int, ...]) -> NDArray[np.float64]:
    return sfft.irfftn(fa * np.conj(fb), s=shape, workers=-1)


def masked_ncc_map(
    fixed: NDArray[np.floating],
    moving: NDArray[np.floating],
    *,
    fixed_mask: NDArray[np.bool_] | None = None,
    moving_mask: NDArray[np.bool_] | None = None,
    max_shift: tuple[float, ...] | float,
    min_overlap_fraction: float = 0.3,
    compact: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Masked NCC for every integer shift (wrapped FFT layout) and the overlap counts.

    Entry ``[u]`` (negative shifts wrap to the end of each axis) is the NCC of
    ``fixed(x)`` with ``moving(x − u)``; shifts outside ``max_shift`` or with too little overlap
    are ``-inf``. See :func:`masked_ncc_search` for the parameters.

    With *compact* the FFTs are only as long as the search needs: per axis
    ``max(len_fixed, len_moving) + ceil(max_shift)`` instead of ``len_fixed + len_moving − 1``
    (the circular correlation is then exact for every ``|u| <= max_shift``; the other entries,
    which wrap, are ``-inf``); the map is smaller, the values the same.
    """
    f = np.asarray(fixed, dtype=np.float64)
    g = np.asarray(moving, dtype=np.float64)
    mf = np.ones(f.shape, bool) if fixed_mask is None else np.asarray(fixed_mask, bool)
    mg = np.ones(g.shape, bool) if moving_mask is None else np.asarray(moving_mask, bool)
    # centre intensities on the masked means: better numerical behaviour of the sums
    f = np.where(mf, f - f[mf].mean(), 0.0)
    g = np.where(mg, g - g[mg].mean(), 0.0)
    mf_d, mg_d = mf.astype(np.float64), mg.astype(np.float64)
    ms = np.broadcast_to(np.asarray(max_shift, dtype=float), (f.ndim,))
    full = [a + b - 1 for a, b in zip(f.shape, g.shape)]
    if compact:
        need = [max(a, b) + int(np.ceil(lim)) for a, b, lim in zip(f.shape, g.shape, ms)]
        full = [min(n, c) if max(a, b) > np.ceil(lim) else n
                for n, c, a, b, lim in zip(full, need, f.shape, g.shape, ms)]
    shape = tuple(sfft.next_fast_len(n, real=True) for n in full)
    fwd = lambda a: sfft.rfftn(a, s=shape, workers=-1)  # noqa: E731
    F_mf, F_f, F_ff = fwd(mf_d), fwd(f), fwd(f * f)
    F_mg, F_g, F_gg = fwd(mg_d), fwd(g), fwd(g * g)
    n = np.round(_xcorr(F_mf, F_mg, shape))
    s_f = _xcorr(F_f, F_mg, shape)
    s_g = _xcorr(F_mf, F_g, shape)
    s_ff = _xcorr(F_ff, F_mg, shape)
    s_gg = _xcorr(F_mf, F_gg, shape)
    s_fg = _xcorr(F_f, F_g, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        nn = np.maximum(n, 1.0)
        num = s_fg - s_f * s_g / nn
        var_f = s_ff - s_f * s_f / nn
        var_g = s_gg - s_g * s_g / nn
        den = np.sqrt(np.maximum(var_f, 0.0) * np.maximum(var_g, 0.0))
        ncc = np.where(den > 1e-9 * max(float(np.abs(s_ff).max()), 1.0), num / den, -np.inf)
    min_n = min_overlap_fraction * min(mf.sum(), mg.sum())
    ncc[n < min_n] = -np.inf
    # restrict to the search window (negative shifts wrap to the end of each axis)
    for ax, (size, lim) in enumerate(zip(shape, ms)):
        u = np.arange(size)
        u = np.where(u > size // 2, u - size, u)
        bad = np.abs(u) > lim
        idx = [slice(None)] * f.ndim
        idx[ax] = bad
        ncc[tuple(idx)] = -np.inf
    return ncc, n


def masked_ncc_search(
    fixed: NDArray[np.floating],
    moving: NDArray[np.floating],
    *,
    fixed_mask: NDArray[np.bool_] | None = None,
    moving_mask: NDArray[np.bool_] | None = None,
    max_shift: tuple[float, ...] | float,
    min_overlap_fraction: float = 0.3,
    compact: bool = False,
) -> ShiftPeak:
    """Exhaustive masked NCC over integer shifts ``|u_axis| <= max_shift[axis]``.

    Parameters
    ----------
    fixed, moving : ndarray of the same ndim (2 or 3)
        Images in array-axis order; they may differ in shape (shift 0 aligns index 0).
    fixed_mask, moving_mask : ndarray of bool, optional
        Valid pixels (default: all).
    max_shift : float or tuple of float
        Search half-range per axis in pixels.
    min_overlap_fraction : float
        Shifts whose overlap is below this share of the smaller mask are ignored.
    compact : bool
        Shorter FFTs, only as long as the search window needs (same result, faster when
        ``max_shift`` is small against the images; see :func:`masked_ncc_map`).

    Returns
    -------
    ShiftPeak

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> moving = rng.normal(size=(64, 64))
    >>> fixed = np.roll(moving, (3, -5), axis=(0, 1))  # fixed(x) = moving(x - (3, -5))
    >>> peak = masked_ncc_search(fixed, moving, max_shift=8)
    >>> [round(v) for v in peak.shift], round(peak.ncc, 2)
    ([3, -5], 1.0)
    """
    ncc, n = masked_ncc_map(fixed, moving, fixed_mask=fixed_mask, moving_mask=moving_mask,
                            max_shift=max_shift, min_overlap_fraction=min_overlap_fraction, compact=compact)
    return peak_of(ncc, n)


def peak_of(ncc: NDArray[np.float64], n: NDArray[np.float64] | None = None) -> ShiftPeak:
    """Best shift of an NCC map in wrapped layout, sub-pixel by a parabola per axis."""
    shape = ncc.shape
    flat = int(np.argmax(ncc))
    peak = np.unravel_index(flat, ncc.shape)
    best = float(ncc[peak])
    if not np.isfinite(best):
        return ShiftPeak(tuple(0.0 for _ in shape), -1.0, 0.0)
    sub = []
    for ax, size in enumerate(shape):
        i0 = peak[ax]
        lo = list(peak)
        hi = list(peak)
        lo[ax] = (i0 - 1) % size
        hi[ax] = (i0 + 1) % size
        y0, ym, yp = best, float(ncc[tuple(lo)]), float(ncc[tuple(hi)])
        off = 0.0
        if np.isfinite(ym) and np.isfinite(yp):
            d = ym - 2 * y0 + yp
            if d < 0:
                off = float(np.clip(0.5 * (ym - yp) / d, -0.5, 0.5))
        u = i0 if i0 <= size // 2 else i0 - size
        sub.append(u + off)
    return ShiftPeak(tuple(sub), best, float(n[peak]) if n is not None else 0.0)
