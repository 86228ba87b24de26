"""Numba kernels of the matchers: the 3D/3D pyramid (block means, high-pass of a moving level),
trilinear sampling, the Gauss-Newton normal equations of the 3D/3D match and the CBCT
field-of-view mask.

Each kernel writes one output per point, voxel or fixed chunk (no reduction whose order depends
on the threads), so results do not depend on thread scheduling: the registrations stay
deterministic. Points are continuous array indices in array-axis order ``(k, j, i)`` = (slice,
row, column); index ``0`` is the centre of the first voxel.

Image gradients are central differences per index unit, one-sided at the grid edges (as
``numpy.gradient``), interpolated trilinearly like the values; they are computed on the fly from
the neighbours of each sample (no gradient volumes: a quarter of the memory, and the samples
touch only part of the voxels).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray


@njit(parallel=True, cache=True, nogil=True)
def _highpass_crop(m, k0, j0, i0, low, kidx, kw, jidx, jw, iidx, iw, out):  # pragma: no cover - jit
    """``out = m[crop] − trilinear(low)`` (separable weights per slice, row and column)."""
    nz, ny, nx = out.shape
    ly, lx = low.shape[1], low.shape[2]
    for k in prange(nz):
        a = kidx[k]
        w = kw[k]
        plane = np.empty((ly, lx))
        for y in range(ly):
            for x in range(lx):
                plane[y, x] = (1.0 - w) * low[a, y, x] + w * low[a + 1, y, x]
        for j in range(ny):
            b = jidx[j]
            v = jw[j]
            for i in range(nx):
                c = iidx[i]
                u = iw[i]
                lo0 = plane[b, c] + u * (plane[b, c + 1] - plane[b, c])
                lo1 = plane[b + 1, c] + u * (plane[b + 1, c + 1] - plane[b + 1, c])
                out[k, j, i] = m[k0 + k, j0 + j, i0 + i] - (lo0 + v * (lo1 - lo0))


def highpass_crop(
    moving: NDArray[np.float32],
    lo_kji: tuple[int, int, int],
    shape: tuple[int, int, int],
    low_kji: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]] | None,
    low: NDArray[np.float32] | None,
) -> NDArray[np.float32]:
    """``moving[crop] − low-pass`` on a crop of a level, float32.

    Parameters
    ----------
    moving : ndarray (nz, ny, nx) float32
        The level image.
    lo_kji, shape
        First voxel and shape of the crop (array-axis order).
    low_kji : three 1D arrays, optional
        Continuous (k, j, i) indices in *low* of the crop's slices, rows and columns (the level
        and the low-pass grid are axis-aligned with each other, so the trilinear interpolation is
        separable); ``None``: no high-pass (a copy of the crop).
    low : ndarray (lz, ly, lx) float32, optional
        The low-pass image (its edge values extend beyond its grid).
    """
    k0, j0, i0 = (int(v) for v in lo_kji)
    if low is None or low_kji is None:
        return np.ascontiguousarray(moving[k0:k0 + shape[0], j0:j0 + shape[1], i0:i0 + shape[2]], dtype=np.float32)
    low_a = np.ascontiguousarray(low, dtype=np.float32)
    for ax in range(3):  # every axis at least 2 long (a 1-long axis is repeated: constant)
        if low_a.shape[ax] == 1:
            low_a = np.concatenate([low_a, low_a], axis=ax)
    idx = [_lerp_weights(np.asarray(c, float), n) for c, n in zip(low_kji, low_a.shape)]
    out = np.empty(tuple(int(v) for v in shape), np.float32)
    _highpass_crop(moving, k0, j0, i0, low_a, idx[0][0], idx[0][1], idx[1][0], idx[1][1], idx[2][0], idx[2][1], out)
    return out


def _lerp_weights(c: NDArray[np.float64], n: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Lower neighbour and weight of linear interpolation at *c* on ``0 … n−1`` (n ≥ 2), edges extended."""
    i0 = np.clip(np.floor(c), 0, n - 2).astype(np.int64)
    return i0, np.clip(c - i0, 0.0, 1.0)


@njit(parallel=True, cache=True, nogil=True)
def _sample_clamped(vol, pts, out):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    for p in prange(pts.shape[0]):
        k = min(max(pts[p, 0], 0.0), nz - 1.0)
        j = min(max(pts[p, 1], 0.0), ny - 1.0)
        i = min(max(pts[p, 2], 0.0), nx - 1.0)
        k0 = min(int(k), max(nz - 2, 0))
        j0 = min(int(j), max(ny - 2, 0))
        i0 = min(int(i), max(nx - 2, 0))
        k1 = min(k0 + 1, nz - 1)
        j1 = min(j0 + 1, ny - 1)
        i1 = min(i0 + 1, nx - 1)
        fk, fj, fi = k - k0, j - j0, i - i0
        a = vol[k0, j0, i0] + fi * (vol[k0, j0, i1] - vol[k0, j0, i0])
        b = vol[k0, j1, i0] + fi * (vol[k0, j1, i1] - vol[k0, j1, i0])
        c = vol[k1, j0, i0] + fi * (vol[k1, j0, i1] - vol[k1, j0, i0])
        d = vol[k1, j1, i0] + fi * (vol[k1, j1, i1] - vol[k1, j1, i0])
        ab = a + fj * (b - a)
        cd = c + fj * (d - c)
        out[p] = ab + fk * (cd - ab)


def sample_clamped(vol: NDArray[np.float32], points_kji: NDArray[np.float64]) -> NDArray[np.float64]:
    """Trilinear value of *vol* at continuous indices ``(N, 3)`` (k, j, i); edge values extend
    beyond the grid (as ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``)."""
    out = np.empty(points_kji.shape[0], np.float64)
    _sample_clamped(np.ascontiguousarray(vol), np.ascontiguousarray(points_kji, dtype=np.float64), out)
    return out


@njit(cache=True, nogil=True)
def _bounds(pts, s, out):  # pragma: no cover - jit
    for a in range(3):
        out[0, a] = np.inf
        out[1, a] = -np.inf
    for p in range(pts.shape[0]):
        for a in range(3):
            v = s[a, 0] * pts[p, 0] + s[a, 1] * pts[p, 1] + s[a, 2] * pts[p, 2] + s[a, 3]
            out[0, a] = min(out[0, a], v)
            out[1, a] = max(out[1, a], v)


def transformed_bounds(points_mm: NDArray[np.float64], s: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-axis min and max of ``S p`` over the points ``(N, 3)`` (``S`` 4×4 or 3×4)."""
    out = np.empty((2, 3))
    _bounds(np.ascontiguousarray(points_mm, dtype=np.float64), np.ascontiguousarray(s[:3, :4], dtype=np.float64), out)
    return out[0], out[1]


@njit(parallel=True, cache=True, nogil=True)
def _block_mean3(a, fk, fj, fi, lo, hi, clip, out):  # pragma: no cover - jit
    nz, ny, nx = out.shape
    inv = 1.0 / (fk * fj * fi)
    for k in prange(nz):
        for j in range(ny):
            for i in range(nx):
                acc = 0.0
                for dk in range(fk):
                    for dj in range(fj):
                        for di in range(fi):
                            v = float(a[k * fk + dk, j * fj + dj, i * fi + di])
                            if clip:
                                v = min(max(v, lo), hi)
                            acc += v
                out[k, j, i] = acc * inv


def block_mean(array: NDArray[np.generic], factors_kji: tuple[int, int, int],
               clip: tuple[float, float] | None = None) -> NDArray[np.float32]:
    """Means of ``factors_kji`` blocks (partial blocks at the far ends dropped), float32, values
    first clipped to *clip* (factors (1, 1, 1): the clipped float32 copy)."""
    fk, fj, fi = (int(f) for f in factors_kji)
    a = np.ascontiguousarray(array)
    out = np.empty((a.shape[0] // fk, a.shape[1] // fj, a.shape[2] // fi), np.float32)
    lo, hi = (-np.inf, np.inf) if clip is None else (float(clip[0]), float(clip[1]))
    _block_mean3(a, fk, fj, fi, lo, hi, clip is not None, out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _sample_value(vol, pts, out_val, out_valid):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    for p in prange(pts.shape[0]):
        k = pts[p, 0]
        j = pts[p, 1]
        i = pts[p, 2]
        if not (k >= 0.0 and j >= 0.0 and i >= 0.0 and k <= nz - 1 and j <= ny - 1 and i <= nx - 1):
            out_valid[p] = False
            out_val[p] = 0.0
            continue
        k0 = min(int(k), nz - 2)
        j0 = min(int(j), ny - 2)
        i0 = min(int(i), nx - 2)
        fk, fj, fi = k - k0, j - j0, i - i0
        v = 0.0
        for dk in range(2):
            wk = fk if dk else 1.0 - fk
            for dj in range(2):
                wkj = wk * (fj if dj else 1.0 - fj)
                v += wkj * ((1.0 - fi) * vol[k0 + dk, j0 + dj, i0] + fi * vol[k0 + dk, j0 + dj, i0 + 1])
        out_valid[p] = True
        out_val[p] = v


def sample_value(vol: NDArray[np.float32], points_kji: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Trilinear value of *vol* at continuous indices ``(N, 3)`` (k, j, i).

    Returns ``(values (N,), valid (N,))``; points outside the grid are invalid (value 0). Every
    axis of *vol* has at least 2 voxels.
    """
    n = points_kji.shape[0]
    val = np.empty(n, np.float64)
    valid = np.empty(n, np.bool_)
    _sample_value(vol, np.ascontiguousarray(points_kji, dtype=np.float64), val, valid)
    return val, valid


@njit(cache=True, nogil=True, inline="always")
def _diff(h, k, j, i, nz, ny, nx, ax):  # pragma: no cover - jit
    """Central difference of *h* along axis *ax* at voxel (k, j, i), one-sided at the edges."""
    if ax == 0:
        kp = min(k + 1, nz - 1)
        km = max(k - 1, 0)
        return (h[kp, j, i] - h[km, j, i]) / (kp - km)
    if ax == 1:
        jp = min(j + 1, ny - 1)
        jm = max(j - 1, 0)
        return (h[k, jp, i] - h[k, jm, i]) / (jp - jm)
    ip = min(i + 1, nx - 1)
    im = max(i - 1, 0)
    return (h[k, j, ip] - h[k, j, im]) / (ip - im)


#: fixed number of partial sums of the Gauss-Newton accumulation (independent of the thread
#: count, so the floating-point summation order, hence the result, never changes)
GN_CHUNKS = 256


@njit(parallel=True, cache=True, nogil=True)
def _gn_accumulate(vol, q, fv, s, a_inv, origin, c, six, cell, out):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    n = q.shape[0]
    nchunk = out.shape[0]
    npar = 8 if six else 5
    for ch in prange(nchunk):
        lo = (n * ch) // nchunk
        hi = (n * (ch + 1)) // nchunk
        x = np.empty(8)
        acc = np.zeros((9, 9))
        for p in range(lo, hi):
            px = s[0, 0] * q[p, 0] + s[0, 1] * q[p, 1] + s[0, 2] * q[p, 2] + s[0, 3]
            py = s[1, 0] * q[p, 0] + s[1, 1] * q[p, 1] + s[1, 2] * q[p, 2] + s[1, 3]
            pz = s[2, 0] * q[p, 0] + s[2, 1] * q[p, 1] + s[2, 2] * q[p, 2] + s[2, 3]
            dx, dy, dz = px - origin[0], py - origin[1], pz - origin[2]
            i = a_inv[0, 0] * dx + a_inv[0, 1] * dy + a_inv[0, 2] * dz
            j = a_inv[1, 0] * dx + a_inv[1, 1] * dy + a_inv[1, 2] * dz
            k = a_inv[2, 0] * dx + a_inv[2, 1] * dy + a_inv[2, 2] * dz
            if not (k >= 0.0 and j >= 0.0 and i >= 0.0 and k <= nz - 1 and j <= ny - 1 and i <= nx - 1):
                continue
            k0 = min(int(k), nz - 2)
            j0 = min(int(j), ny - 2)
            i0 = min(int(i), nx - 2)
            fk, fj, fi = k - k0, j - j0, i - i0
            m = 0.0
            g_k = 0.0
            g_j = 0.0
            g_i = 0.0
            if cell:  # derivative of the trilinear interpolant itself
                v000 = vol[k0, j0, i0]
                v001 = vol[k0, j0, i0 + 1]
                v010 = vol[k0, j0 + 1, i0]
                v011 = vol[k0, j0 + 1, i0 + 1]
                v100 = vol[k0 + 1, j0, i0]
                v101 = vol[k0 + 1, j0, i0 + 1]
                v110 = vol[k0 + 1, j0 + 1, i0]
                v111 = vol[k0 + 1, j0 + 1, i0 + 1]
                a00 = v000 + fi * (v001 - v000)
                a01 = v010 + fi * (v011 - v010)
                a10 = v100 + fi * (v101 - v100)
                a11 = v110 + fi * (v111 - v110)
                b0 = a00 + fj * (a01 - a00)
                b1 = a10 + fj * (a11 - a10)
                m = b0 + fk * (b1 - b0)
                g_k = b1 - b0
                g_j = (1.0 - fk) * (a01 - a00) + fk * (a11 - a10)
                g_i = ((1.0 - fk) * ((1.0 - fj) * (v001 - v000) + fj * (v011 - v010))
                       + fk * ((1.0 - fj) * (v101 - v100) + fj * (v111 - v110)))
            else:
                for dk in range(2):
                    wk = fk if dk else 1.0 - fk
                    for dj in range(2):
                        wkj = wk * (fj if dj else 1.0 - fj)
                        for di in range(2):
                            w = wkj * (fi if di else 1.0 - fi)
                            kk, jj, ii = k0 + dk, j0 + dj, i0 + di
                            m += w * vol[kk, jj, ii]
                            g_k += w * _diff(vol, kk, jj, ii, nz, ny, nx, 0)
                            g_j += w * _diff(vol, kk, jj, ii, nz, ny, nx, 1)
                            g_i += w * _diff(vol, kk, jj, ii, nz, ny, nx, 2)
            # patient-space gradient: g_p = A^-T g_ijk
            gx = a_inv[0, 0] * g_i + a_inv[1, 0] * g_j + a_inv[2, 0] * g_k
            gy = a_inv[0, 1] * g_i + a_inv[1, 1] * g_j + a_inv[2, 1] * g_k
            gz = a_inv[0, 2] * g_i + a_inv[1, 2] * g_j + a_inv[2, 2] * g_k
            x[0] = m
            x[1] = 1.0
            if six:
                rx, ry, rz = px - c[0], py - c[1], pz - c[2]
                x[2] = ry * gz - rz * gy
                x[3] = rz * gx - rx * gz
                x[4] = rx * gy - ry * gx
                x[5], x[6], x[7] = gx, gy, gz
            else:
                x[2], x[3], x[4] = gx, gy, gz
            f = fv[p]
            for a in range(npar):
                acc[a, 8] += x[a] * f
                for b in range(a, npar):
                    acc[a, b] += x[a] * x[b]
            acc[8, 0] += 1.0
            acc[8, 1] += f
            acc[8, 2] += f * f
            acc[8, 3] += m * f
            acc[8, 4] += m
            acc[8, 5] += m * m
        for a in range(9):
            for b in range(9):
                out[ch, a, b] = acc[a, b]


def gauss_newton_sums(
    vol: NDArray[np.float32],
    points_mm: NDArray[np.float64],
    fixed_values: NDArray[np.float64],
    s: NDArray[np.float64],
    affine_inv: NDArray[np.float64],
    origin: NDArray[np.float64],
    centre: NDArray[np.float64],
    six_dof: bool,
    cell_gradient: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, float]]:
    """Normal equations of the linearised model ``F ≈ a·M(S q) + b + J·(a·δ)`` and NCC sums.

    Moving image ``M`` (*vol*, its gradient from central differences, see the module docstring)
    is sampled at ``S q`` for the fixed points ``q`` (patient mm); ``affine_inv`` / ``origin`` map
    patient mm to the moving index (i, j, k). Returns ``(H, g, stats)`` with ``H`` the upper-
    triangle-filled symmetric matrix over ``[a, b, (omega), t]`` and stats ``n, sf, sff, smf, sm,
    smm`` over the points that fell inside the moving grid.
    """
    out = np.zeros((GN_CHUNKS, 9, 9))
    _gn_accumulate(vol, np.ascontiguousarray(points_mm), np.ascontiguousarray(fixed_values),
                   np.ascontiguousarray(s[:3, :4]), np.ascontiguousarray(affine_inv), np.ascontiguousarray(origin),
                   np.ascontiguousarray(centre, dtype=np.float64), six_dof, cell_gradient, out)
    tot = out[0].copy()
    for ch in range(1, GN_CHUNKS):  # fixed order
        tot += out[ch]
    npar = 8 if six_dof else 5
    h = np.triu(tot[:npar, :npar])
    h = h + np.triu(h, 1).T
    stats = dict(zip(("n", "sf", "sff", "smf", "sm", "smm"), (float(v) for v in tot[8, :6])))
    return h, tot[:npar, 8].copy(), stats


@njit(parallel=True, cache=True, nogil=True)
def _fov_valid(a, pad, erode, out):  # pragma: no cover - jit
    """Per slice: inside = ≥ 13 of the 5×5 neighbours are not *pad*; kept when its whole
    (2·erode+1)² neighbourhood is inside (zero outside the grid)."""
    nz, ny, nx = a.shape
    n = 2 * erode + 1
    for k in prange(nz):
        v = np.empty((ny, nx), np.int32)
        h = np.empty((ny, nx), np.int32)
        for j in range(ny):
            for i in range(nx):
                v[j, i] = 1 if a[k, j, i] != pad else 0
        _box_rows(v, 2, h)
        _box_cols(h, 2, v)
        for j in range(ny):
            for i in range(nx):
                v[j, i] = 1 if v[j, i] >= 13 else 0
        if erode <= 0:
            for j in range(ny):
                for i in range(nx):
                    out[k, j, i] = v[j, i] > 0
            continue
        _box_rows(v, erode, h)
        _box_cols(h, erode, v)
        for j in range(ny):
            for i in range(nx):
                out[k, j, i] = v[j, i] == n * n


@njit(cache=True, nogil=True)
def _box_rows(v, r, out):  # pragma: no cover - jit
    ny, nx = v.shape
    for j in range(ny):
        acc = 0
        for i in range(min(r, nx)):
            acc += v[j, i]
        for i in range(nx):
            if i + r < nx:
                acc += v[j, i + r]
            if i - r - 1 >= 0:
                acc -= v[j, i - r - 1]
            out[j, i] = acc


@njit(cache=True, nogil=True)
def _box_cols(v, r, out):  # pragma: no cover - jit
    ny, nx = v.shape
    for i in range(nx):
        acc = 0
        for j in range(min(r + 1, ny)):
            acc += v[j, i]
        out[0, i] = acc
    for j in range(1, ny):
        for i in range(nx):
            acc = out[j - 1, i]
            if j + r < ny:
                acc += v[j + r, i]
            if j - r - 1 >= 0:
                acc -= v[j - r - 1, i]
            out[j, i] = acc


def fov_valid(array: NDArray[np.generic], pad: float, erode: int) -> NDArray[np.bool_]:
    """Field-of-view mask of a volume padded with *pad* (see ``volume3d.field_of_view_mask``)."""
    out = np.empty(array.shape, np.bool_)
    a = np.ascontiguousarray(array)
    _fov_valid(a, a.dtype.type(pad), int(erode), out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _bin2d(a, f, out):  # pragma: no cover - jit
    rows, cols = out.shape
    inv = 1.0 / (f * f)
    for r in prange(rows):
        for c in range(cols):
            acc = 0.0
            for dr in range(f):
                for dc in range(f):
                    acc += a[r * f + dr, c * f + dc]
            out[r, c] = acc * inv


def bin2d(image: NDArray[np.generic], f: int) -> NDArray[np.float64]:
    """Means of ``f × f`` pixel blocks (partial blocks at the far ends dropped), float64."""
    a = np.asarray(image)
    if a.dtype.kind not in "iuf":
        a = a.astype(np.float64)
    out = np.empty((a.shape[0] // f, a.shape[1] // f), np.float64)
    _bin2d(np.ascontiguousarray(a), int(f), out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _roi_select(mask, aff, org, s, has_box, c, h, has_ref, ref_mask, ref_aff_inv, ref_org, out):  # pragma: no cover - jit
    nz, ny, nx = mask.shape
    rz, ry, rx = ref_mask.shape
    for k in prange(nz):
        for j in range(ny):
            for i in range(nx):
                if not mask[k, j, i]:
                    out[k, j, i] = False
                    continue
                q0 = aff[0, 0] * i + aff[0, 1] * j + aff[0, 2] * k + org[0]
                q1 = aff[1, 0] * i + aff[1, 1] * j + aff[1, 2] * k + org[1]
                q2 = aff[2, 0] * i + aff[2, 1] * j + aff[2, 2] * k + org[2]
                p0 = s[0, 0] * q0 + s[0, 1] * q1 + s[0, 2] * q2 + s[0, 3]
                p1 = s[1, 0] * q0 + s[1, 1] * q1 + s[1, 2] * q2 + s[1, 3]
                p2 = s[2, 0] * q0 + s[2, 1] * q1 + s[2, 2] * q2 + s[2, 3]
                ok = True
                if has_box:
                    ok = abs(p0 - c[0]) <= h[0] and abs(p1 - c[1]) <= h[1] and abs(p2 - c[2]) <= h[2]
                if ok and has_ref:
                    d0, d1, d2 = p0 - ref_org[0], p1 - ref_org[1], p2 - ref_org[2]
                    ii = int(np.floor(ref_aff_inv[0, 0] * d0 + ref_aff_inv[0, 1] * d1 + ref_aff_inv[0, 2] * d2 + 0.5))
                    jj = int(np.floor(ref_aff_inv[1, 0] * d0 + ref_aff_inv[1, 1] * d1 + ref_aff_inv[1, 2] * d2 + 0.5))
                    kk = int(np.floor(ref_aff_inv[2, 0] * d0 + ref_aff_inv[2, 1] * d1 + ref_aff_inv[2, 2] * d2 + 0.5))
                    ok = 0 <= ii < rx and 0 <= jj < ry and 0 <= kk < rz and ref_mask[kk, jj, ii]
                out[k, j, i] = ok


def roi_select(mask: NDArray[np.bool_], affine: NDArray[np.float64], origin: NDArray[np.float64],
               s: NDArray[np.float64], box: tuple[NDArray[np.float64], NDArray[np.float64]] | None,
               ref_mask: NDArray[np.bool_] | None, ref_affine_inv: NDArray[np.float64] | None,
               ref_origin: NDArray[np.float64] | None) -> NDArray[np.bool_]:
    """Voxels of *mask* (a level of the verification volume, ``p = affine @ ijk + origin``) whose
    image ``S p`` in the reference lies inside *box* ``(centre, half sizes)`` and on a True voxel
    (nearest) of *ref_mask* (reference patient mm → index by ``ref_affine_inv (x − ref_origin)``)."""
    out = np.empty(mask.shape, np.bool_)
    c, h = (np.zeros(3), np.zeros(3)) if box is None else (np.asarray(box[0], float), np.asarray(box[1], float))
    rm = np.ones((1, 1, 1), np.bool_) if ref_mask is None else np.ascontiguousarray(ref_mask, dtype=np.bool_)
    ra = np.eye(3) if ref_affine_inv is None else np.ascontiguousarray(ref_affine_inv, dtype=np.float64)
    ro = np.zeros(3) if ref_origin is None else np.ascontiguousarray(ref_origin, dtype=np.float64)
    _roi_select(np.ascontiguousarray(mask), np.ascontiguousarray(affine, dtype=np.float64),
                np.ascontiguousarray(origin, dtype=np.float64), np.ascontiguousarray(s[:3, :4], dtype=np.float64),
                box is not None, c, h, ref_mask is not None, rm, ra, ro, out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _map_mask(src, src_inv, src_org, aff, org, m, out):  # pragma: no cover - jit
    nz, ny, nx = out.shape
    sz, sy, sx = src.shape
    for k in prange(nz):
        for j in range(ny):
            for i in range(nx):
                p0 = aff[0, 0] * i + aff[0, 1] * j + aff[0, 2] * k + org[0]
                p1 = aff[1, 0] * i + aff[1, 1] * j + aff[1, 2] * k + org[1]
                p2 = aff[2, 0] * i + aff[2, 1] * j + aff[2, 2] * k + org[2]
                q0 = m[0, 0] * p0 + m[0, 1] * p1 + m[0, 2] * p2 + m[0, 3] - src_org[0]
                q1 = m[1, 0] * p0 + m[1, 1] * p1 + m[1, 2] * p2 + m[1, 3] - src_org[1]
                q2 = m[2, 0] * p0 + m[2, 1] * p1 + m[2, 2] * p2 + m[2, 3] - src_org[2]
                ii = int(np.floor(src_inv[0, 0] * q0 + src_inv[0, 1] * q1 + src_inv[0, 2] * q2 + 0.5))
                jj = int(np.floor(src_inv[1, 0] * q0 + src_inv[1, 1] * q1 + src_inv[1, 2] * q2 + 0.5))
                kk = int(np.floor(src_inv[2, 0] * q0 + src_inv[2, 1] * q1 + src_inv[2, 2] * q2 + 0.5))
                out[k, j, i] = 0 <= ii < sx and 0 <= jj < sy and 0 <= kk < sz and src[kk, jj, ii]


def map_mask(src: NDArray[np.bool_], src_affine_inv: NDArray[np.float64], src_origin: NDArray[np.float64],
             shape: tuple[int, int, int], affine: NDArray[np.float64], origin: NDArray[np.float64],
             m: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Mask on a grid (``shape``, ``p = affine @ ijk + origin``) of the voxels whose image ``m p`` (4×4)
    falls on a True voxel (nearest) of *src* (``ijk = src_affine_inv (x − src_origin)``)."""
    out = np.empty(shape, np.bool_)
    _map_mask(np.ascontiguousarray(src, dtype=np.bool_), np.ascontiguousarray(src_affine_inv, dtype=np.float64),
              np.ascontiguousarray(src_origin, dtype=np.float64), np.ascontiguousarray(affine, dtype=np.float64),
              np.ascontiguousarray(origin, dtype=np.float64), np.ascontiguousarray(m[:3, :4], dtype=np.float64), out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _points_of(flat, ny, nx, aff, org, out):  # pragma: no cover - jit
    for p in prange(flat.shape[0]):
        f = flat[p]
        k = f // (ny * nx)
        r = f - k * ny * nx
        j = r // nx
        i = r - j * nx
        for a in range(3):
            out[p, a] = aff[a, 0] * i + aff[a, 1] * j + aff[a, 2] * k + org[a]


def points_of(flat: NDArray[np.int64], shape: tuple[int, int, int], affine: NDArray[np.float64],
              origin: NDArray[np.float64]) -> NDArray[np.float64]:
    """Patient mm ``(N, 3)`` of the voxels with flat (C-order) indices *flat* of a grid of *shape*."""
    out = np.empty((flat.shape[0], 3), np.float64)
    _points_of(np.ascontiguousarray(flat, dtype=np.int64), int(shape[1]), int(shape[2]),
               np.ascontiguousarray(affine, dtype=np.float64), np.ascontiguousarray(origin, dtype=np.float64), out)
    return out


@njit(parallel=True, cache=True, nogil=True)
def _sample_mm(vol, inv, org, pts, clamp, out_val, out_valid):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    for p in prange(pts.shape[0]):
        d0, d1, d2 = pts[p, 0] - org[0], pts[p, 1] - org[1], pts[p, 2] - org[2]
        i = inv[0, 0] * d0 + inv[0, 1] * d1 + inv[0, 2] * d2
        j = inv[1, 0] * d0 + inv[1, 1] * d1 + inv[1, 2] * d2
        k = inv[2, 0] * d0 + inv[2, 1] * d1 + inv[2, 2] * d2
        inside = k >= 0.0 and j >= 0.0 and i >= 0.0 and k <= nz - 1 and j <= ny - 1 and i <= nx - 1
        out_valid[p] = inside
        if not inside and not clamp:
            out_val[p] = 0.0
            continue
        k = min(max(k, 0.0), nz - 1.0)
        j = min(max(j, 0.0), ny - 1.0)
        i = min(max(i, 0.0), nx - 1.0)
        k0 = min(int(k), max(nz - 2, 0))
        j0 = min(int(j), max(ny - 2, 0))
        i0 = min(int(i), max(nx - 2, 0))
        k1, j1, i1 = min(k0 + 1, nz - 1), min(j0 + 1, ny - 1), min(i0 + 1, nx - 1)
        fk, fj, fi = k - k0, j - j0, i - i0
        a = vol[k0, j0, i0] + fi * (vol[k0, j0, i1] - vol[k0, j0, i0])
        b = vol[k0, j1, i0] + fi * (vol[k0, j1, i1] - vol[k0, j1, i0])
        c = vol[k1, j0, i0] + fi * (vol[k1, j0, i1] - vol[k1, j0, i0])
        d = vol[k1, j1, i0] + fi * (vol[k1, j1, i1] - vol[k1, j1, i0])
        ab = a + fj * (b - a)
        cd = c + fj * (d - c)
        out_val[p] = ab + fk * (cd - ab)


def sample_mm(vol: NDArray[np.float32], affine_inv: NDArray[np.float64], origin: NDArray[np.float64],
              points_mm: NDArray[np.float64], *, clamp: bool) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Trilinear values of *vol* at patient points ``(N, 3)`` (``ijk = affine_inv (p − origin)``) and
    whether each lies inside the grid; *clamp*: edge values extend beyond it (else 0)."""
    n = points_mm.shape[0]
    val, valid = np.empty(n, np.float64), np.empty(n, np.bool_)
    _sample_mm(np.ascontiguousarray(vol), np.ascontiguousarray(affine_inv, dtype=np.float64),
               np.ascontiguousarray(origin, dtype=np.float64), np.ascontiguousarray(points_mm, dtype=np.float64),
               clamp, val, valid)
    return val, valid


@njit(parallel=True, cache=True, nogil=True)
def _lookup(mask, ki, ji, ii, out):  # pragma: no cover - jit
    nz, ny, nx = out.shape
    mz, my, mx = mask.shape
    for k in prange(nz):
        a = ki[k]
        for j in range(ny):
            b = ji[j]
            for i in range(nx):
                c = ii[i]
                out[k, j, i] = 0 <= a < mz and 0 <= b < my and 0 <= c < mx and mask[a, b, c]


def lookup(mask: NDArray[np.bool_], k_idx: NDArray[np.int64], j_idx: NDArray[np.int64],
           i_idx: NDArray[np.int64]) -> NDArray[np.bool_]:
    """``mask[k_idx[k], j_idx[j], i_idx[i]]`` for every (k, j, i) (False out of range): a separable lookup."""
    out = np.empty((len(k_idx), len(j_idx), len(i_idx)), np.bool_)
    _lookup(np.ascontiguousarray(mask, dtype=np.bool_), np.ascontiguousarray(k_idx, dtype=np.int64),
            np.ascontiguousarray(j_idx, dtype=np.int64), np.ascontiguousarray(i_idx, dtype=np.int64), out)
    return out
