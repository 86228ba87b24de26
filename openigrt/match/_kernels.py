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
