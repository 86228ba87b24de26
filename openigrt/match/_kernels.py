"""Numba kernels of the matchers: trilinear sampling of a volume and its gradient.

Each kernel writes one output per point (no parallel reduction), so results do not depend on
thread scheduling: the registrations stay deterministic. Points are continuous array indices
in array-axis order ``(k, j, i)`` = (slice, row, column); index ``0`` is the centre of the first
voxel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numpy.typing import NDArray


@njit(parallel=True, cache=True, nogil=True)
def _sample_value_grad(vol, gk, gj, gi, pts, out_val, out_grad, out_valid):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    n = pts.shape[0]
    for p in prange(n):
        k = pts[p, 0]
        j = pts[p, 1]
        i = pts[p, 2]
        if not (k >= 0.0 and j >= 0.0 and i >= 0.0 and k <= nz - 1 and j <= ny - 1 and i <= nx - 1):
            out_valid[p] = False
            out_val[p] = 0.0
            out_grad[p, 0] = 0.0
            out_grad[p, 1] = 0.0
            out_grad[p, 2] = 0.0
            continue
        k0 = min(int(k), nz - 2) if nz > 1 else 0
        j0 = min(int(j), ny - 2) if ny > 1 else 0
        i0 = min(int(i), nx - 2) if nx > 1 else 0
        fk = k - k0
        fj = j - j0
        fi = i - i0
        k1 = min(k0 + 1, nz - 1)
        j1 = min(j0 + 1, ny - 1)
        i1 = min(i0 + 1, nx - 1)
        w000 = (1 - fk) * (1 - fj) * (1 - fi)
        w001 = (1 - fk) * (1 - fj) * fi
        w010 = (1 - fk) * fj * (1 - fi)
        w011 = (1 - fk) * fj * fi
        w100 = fk * (1 - fj) * (1 - fi)
        w101 = fk * (1 - fj) * fi
        w110 = fk * fj * (1 - fi)
        w111 = fk * fj * fi
        out_valid[p] = True
        out_val[p] = (w000 * vol[k0, j0, i0] + w001 * vol[k0, j0, i1] + w010 * vol[k0, j1, i0]
                      + w011 * vol[k0, j1, i1] + w100 * vol[k1, j0, i0] + w101 * vol[k1, j0, i1]
                      + w110 * vol[k1, j1, i0] + w111 * vol[k1, j1, i1])
        out_grad[p, 0] = (w000 * gk[k0, j0, i0] + w001 * gk[k0, j0, i1] + w010 * gk[k0, j1, i0]
                          + w011 * gk[k0, j1, i1] + w100 * gk[k1, j0, i0] + w101 * gk[k1, j0, i1]
                          + w110 * gk[k1, j1, i0] + w111 * gk[k1, j1, i1])
        out_grad[p, 1] = (w000 * gj[k0, j0, i0] + w001 * gj[k0, j0, i1] + w010 * gj[k0, j1, i0]
                          + w011 * gj[k0, j1, i1] + w100 * gj[k1, j0, i0] + w101 * gj[k1, j0, i1]
                          + w110 * gj[k1, j1, i0] + w111 * gj[k1, j1, i1])
        out_grad[p, 2] = (w000 * gi[k0, j0, i0] + w001 * gi[k0, j0, i1] + w010 * gi[k0, j1, i0]
                          + w011 * gi[k0, j1, i1] + w100 * gi[k1, j0, i0] + w101 * gi[k1, j0, i1]
                          + w110 * gi[k1, j1, i0] + w111 * gi[k1, j1, i1])


def sample_value_and_gradient(
    vol: NDArray[np.float32],
    grad: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    points_kji: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Trilinear value and (pre-computed) gradient at continuous indices ``(N, 3)`` (k, j, i).

    Returns ``(values (N,), gradient (N, 3) per index unit in (k, j, i) order, valid (N,))``;
    points outside the grid are invalid (value 0).
    """
    n = points_kji.shape[0]
    val = np.empty(n, np.float64)
    g = np.empty((n, 3), np.float64)
    valid = np.empty(n, np.bool_)
    _sample_value_grad(vol, grad[0], grad[1], grad[2], np.ascontiguousarray(points_kji, dtype=np.float64),
                       val, g, valid)
    return val, g, valid


#: fixed number of partial sums of the Gauss-Newton accumulation (independent of the thread
#: count, so the floating-point summation order, hence the result, never changes)
GN_CHUNKS = 256


@njit(parallel=True, cache=True, nogil=True)
def _gn_accumulate(vol, gk, gj, gi, q, fv, s, a_inv, origin, c, six, out):  # pragma: no cover - jit
    nz, ny, nx = vol.shape
    n = q.shape[0]
    nchunk = out.shape[0]
    npar = 8 if six else 5
    for ch in prange(nchunk):
        lo = (n * ch) // nchunk
        hi = (n * (ch + 1)) // nchunk
        x = np.empty(8)
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
            w000 = (1 - fk) * (1 - fj) * (1 - fi)
            w001 = (1 - fk) * (1 - fj) * fi
            w010 = (1 - fk) * fj * (1 - fi)
            w011 = (1 - fk) * fj * fi
            w100 = fk * (1 - fj) * (1 - fi)
            w101 = fk * (1 - fj) * fi
            w110 = fk * fj * (1 - fi)
            w111 = fk * fj * fi
            m = (w000 * vol[k0, j0, i0] + w001 * vol[k0, j0, i0 + 1] + w010 * vol[k0, j0 + 1, i0]
                 + w011 * vol[k0, j0 + 1, i0 + 1] + w100 * vol[k0 + 1, j0, i0] + w101 * vol[k0 + 1, j0, i0 + 1]
                 + w110 * vol[k0 + 1, j0 + 1, i0] + w111 * vol[k0 + 1, j0 + 1, i0 + 1])
            g_k = (w000 * gk[k0, j0, i0] + w001 * gk[k0, j0, i0 + 1] + w010 * gk[k0, j0 + 1, i0]
                   + w011 * gk[k0, j0 + 1, i0 + 1] + w100 * gk[k0 + 1, j0, i0] + w101 * gk[k0 + 1, j0, i0 + 1]
                   + w110 * gk[k0 + 1, j0 + 1, i0] + w111 * gk[k0 + 1, j0 + 1, i0 + 1])
            g_j = (w000 * gj[k0, j0, i0] + w001 * gj[k0, j0, i0 + 1] + w010 * gj[k0, j0 + 1, i0]
                   + w011 * gj[k0, j0 + 1, i0 + 1] + w100 * gj[k0 + 1, j0, i0] + w101 * gj[k0 + 1, j0, i0 + 1]
                   + w110 * gj[k0 + 1, j0 + 1, i0] + w111 * gj[k0 + 1, j0 + 1, i0 + 1])
            g_i = (w000 * gi[k0, j0, i0] + w001 * gi[k0, j0, i0 + 1] + w010 * gi[k0, j0 + 1, i0]
                   + w011 * gi[k0, j0 + 1, i0 + 1] + w100 * gi[k0 + 1, j0, i0] + w101 * gi[k0 + 1, j0, i0 + 1]
                   + w110 * gi[k0 + 1, j0 + 1, i0] + w111 * gi[k0 + 1, j0 + 1, i0 + 1])
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
                out[ch, a, 8] += x[a] * f
                for b in range(a, npar):
                    out[ch, a, b] += x[a] * x[b]
            out[ch, 8, 0] += 1.0
            out[ch, 8, 1] += f
            out[ch, 8, 2] += f * f
            out[ch, 8, 3] += m * f
            out[ch, 8, 4] += m
            out[ch, 8, 5] += m * m


def gauss_newton_sums(
    vol: NDArray[np.float32],
    grad: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]],
    points_mm: NDArray[np.float64],
    fixed_values: NDArray[np.float64],
    s: NDArray[np.float64],
    affine_inv: NDArray[np.float64],
    origin: NDArray[np.float64],
    centre: NDArray[np.float64],
    six_dof: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, float]]:
    """Normal equations of the linearised model ``F ≈ a·M(S q) + b + J·(a·δ)`` and NCC sums.

    Moving image ``M`` (with pre-computed index-space gradients ``grad`` in (k, j, i) order) is
    sampled at ``S q`` for the fixed points ``q`` (patient mm); ``affine_inv`` / ``origin`` map
    patient mm to the moving index (i, j, k). Returns ``(H, g, stats)`` with ``H`` the upper-
    triangle-filled symmetric matrix over ``[a, b, (omega), t]`` and stats ``n, sf, sff, smf, sm,
    smm`` over the points that fell inside the moving grid.
    """
    out = np.zeros((GN_CHUNKS, 9, 9))
    _gn_accumulate(vol, grad[0], grad[1], grad[2], np.ascontiguousarray(points_mm), np.ascontiguousarray(fixed_values),
                   np.ascontiguousarray(s[:3, :4]), np.ascontiguousarray(affine_inv), np.ascontiguousarray(origin),
                   np.ascontiguousarray(centre, dtype=np.float64), six_dof, out)
    tot = out[0].copy()
    for ch in range(1, GN_CHUNKS):  # fixed order
        tot += out[ch]
    npar = 8 if six_dof else 5
    h = np.triu(tot[:npar, :npar])
    h = h + np.triu(h, 1).T
    stats = dict(zip(("n", "sf", "sff", "smf", "sm", "smm"), (float(v) for v in tot[8, :6])))
    return h, tot[:npar, 8].copy(), stats
