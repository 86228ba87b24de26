"""Smooth non-rigid change of a patient between planning and treatment (issue 12: clinical setup).

Real patients do not move rigidly: the bladder fills, the rectum fills with gas or stool and pushes
the prostate/bladder base forwards, the patient loses weight. A :class:`Deformation` is a smooth
displacement field ``u`` on the planning CT's patient coordinates: the tissue at ``x`` in the
planning CT is at ``φ(x) = x + u(x)`` in the patient of the day (before the rigid setup error).
It is the sum of components, each a closed-form smooth field:

* :class:`OrganFilling` — an organ (centre ``c``, radius ``R``) grows by ``amount`` mm, away from
  its fixed base ``b`` (a bladder fills upwards and forwards, its base on the pelvic floor stays):
  ``u = amount · (x − b)/(2R) · exp(−(|x − c|² − R²)⁺ / (2 R²))`` — uniform expansion about ``b``
  inside, decaying smoothly outside (``b = c``: symmetric growth by ``amount/2`` at the surface);
* :class:`LocalPush` — a filling organ next to the target pushes it: ``u = amount · d̂ ·
  exp(−|x − c|² / (2 σ²))``;
* :class:`WeightLoss` — the body outline shrinks by ``amount`` mm at the skin (radius ``R`` about
  the body axis), fading inwards with depth: ``u = −amount · (r/R)⁴ · r̂`` in the axial plane.

Bone does not deform: the field is multiplied by a weight that is 0 in bone and rises smoothly
(smoothstep of the distance to bone) to 1 at :data:`BONE_BLEND_MM` from it. The field is sampled on a coarse grid (:data:`FIELD_STEP_MM`)
and interpolated trilinearly; :meth:`Deformation.check` refuses fields that fold (largest
displacement gradient ≥ :data:`MAX_GRADIENT`).

* :func:`warp` resamples the planning CT into the patient of the day: ``ct'(y) = ct(φ⁻¹(y))``
  (fixed-point inverse to :data:`INVERSE_TOLERANCE_MM`), so a marker at ``p`` appears at ``φ(p)``;
  the virtual imager then images ``ct'`` through the rigid setup error ``T`` as before.
* :func:`rigid_motion` is the least-squares rigid motion (Kabsch) of a set of points under ``φ``:
  applied to the target's voxels it is **the target's own rigid motion**, ``T ∘ rigid_motion`` the
  truth for matches on a region of interest around the target and for marker matches; ``T`` alone
  stays the truth of the bony anatomy.

>>> import numpy as np
>>> from openigrt.geometry.volume import Volume
>>> grid = Volume(np.zeros((30, 40, 40), np.float32), (-60.0, -60.0, -45.0), (3.0, 3.0, 3.0))
>>> d = Deformation.build(grid, [LocalPush(center_mm=(0.0, 0.0, 0.0), direction=(0.0, -1.0, 0.0),
...                                        sigma_mm=30.0, amount_mm=4.0)])
>>> np.round(d.displacement([[0.0, 0.0, 0.0]])[0], 1)  # 4 mm anterior at the centre (field sampled every ~4 mm)
array([ 0., -4.,  0.])
>>> m = rigid_motion(d, np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
>>> bool(abs(m.translation_mm[1] + 4.0) < 0.05)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume

__all__ = ["OrganFilling", "LocalPush", "WeightLoss", "Deformation", "warp", "rigid_motion",
           "FIELD_STEP_MM", "MAX_GRADIENT"]

#: Sample spacing of the displacement field (mm); distance from bone at which tissue moves freely (mm).
FIELD_STEP_MM = 4.0
BONE_BLEND_MM = 15.0
#: A field whose displacement gradient reaches this comes close to folding tissue (at 1 it does, and
#: the fixed-point inverse stops converging): refused.
MAX_GRADIENT = 0.8
#: Fixed-point iterations of the inverse map in :func:`warp`: until the update is below
#: INVERSE_TOLERANCE_MM, at most INVERSE_ITERATIONS.
INVERSE_ITERATIONS = 40
INVERSE_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class OrganFilling:
    """An organ of radius *radius_mm* around *center_mm* grows by *amount_mm* (diameter) away from *base_mm*."""

    center_mm: tuple[float, float, float]
    radius_mm: float
    amount_mm: float
    base_mm: tuple[float, float, float] | None = None
    name: str = "organ filling"

    def field(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        c = np.asarray(self.center_mm)
        b = c if self.base_mm is None else np.asarray(self.base_mm)
        r2 = ((p - c) ** 2).sum(axis=1)
        big = self.radius_mm**2
        fall = np.exp(-np.maximum(r2 - big, 0.0) / (2.0 * big))
        return (p - b) * (self.amount_mm / (2.0 * self.radius_mm) * fall)[:, None]


@dataclass(frozen=True)
class LocalPush:
    """Tissue around *center_mm* pushed by *amount_mm* along *direction* (Gaussian of *sigma_mm*)."""

    center_mm: tuple[float, float, float]
    direction: tuple[float, float, float]
    sigma_mm: float
    amount_mm: float
    name: str = "local push"

    def field(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        d = p - np.asarray(self.center_mm)
        unit = np.asarray(self.direction, float) / np.linalg.norm(self.direction)
        w = np.exp(-(d * d).sum(axis=1) / (2.0 * self.sigma_mm**2))
        return (self.amount_mm * w)[:, None] * unit[None]


@dataclass(frozen=True)
class WeightLoss:
    """The axial outline (radius *radius_mm* about the axis through *center_xy_mm*) shrinks by *amount_mm*."""

    center_xy_mm: tuple[float, float]
    radius_mm: float
    amount_mm: float
    name: str = "weight loss"

    def field(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        d = p[:, :2] - np.asarray(self.center_xy_mm)
        r = np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        mag = -self.amount_mm * np.minimum(r / self.radius_mm, 1.5) ** 4
        out = np.zeros_like(p)
        out[:, :2] = d / r[:, None] * mag[:, None]
        return out


Component = OrganFilling | LocalPush | WeightLoss


@dataclass(frozen=True, eq=False)
class Deformation:
    """A displacement field sampled on a coarse grid (reference patient mm); see the module docstring."""

    grid: Volume  # array unused; geometry of the samples
    u: NDArray[np.float32]  # (3, nz, ny, nx): x, y, z components (mm)
    components: tuple[Component, ...]

    @classmethod
    def build(cls, ct: Volume, components: Sequence[Component], *, bone_mask: NDArray[np.bool_] | None = None
              ) -> Deformation:
        """Sample the components over the extent of *ct* (bone weighted out when *bone_mask* is given)."""
        from scipy import ndimage

        nz, ny, nx = ct.shape
        extent = np.array([nx - 1, ny - 1, nz - 1]) * np.asarray(ct.spacing_mm)
        n = np.maximum(np.ceil(extent / FIELD_STEP_MM).astype(int) + 1, 2)
        step = extent / (n - 1)
        grid = Volume(np.zeros((n[2], n[1], n[0]), np.float32), ct.origin_mm, tuple(np.maximum(step, 1e-6)))  # type: ignore[arg-type]
        kk, jj, ii = np.meshgrid(np.arange(n[2]), np.arange(n[1]), np.arange(n[0]), indexing="ij")
        pts = grid.index_to_patient_mm(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
        total = np.zeros_like(pts)
        for c in components:
            total += c.field(pts)
        if bone_mask is not None and bone_mask.any():
            distance = ndimage.distance_transform_edt(~bone_mask, sampling=ct.spacing_mm[::-1])
            ijk = ct.patient_to_index(pts)
            dist = ndimage.map_coordinates(distance, [ijk[:, 2], ijk[:, 1], ijk[:, 0]], order=1, mode="nearest")
            s = np.clip(dist / BONE_BLEND_MM, 0.0, 1.0)
            total *= (s * s * (3.0 - 2.0 * s))[:, None]
        u = total.T.reshape(3, n[2], n[1], n[0]).astype(np.float32)
        return cls(grid, u, tuple(components))

    def displacement(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """``u`` at patient points ``(N, 3)`` (trilinear; constant beyond the grid)."""
        from scipy import ndimage

        ijk = self.grid.patient_to_index(np.atleast_2d(np.asarray(points_mm, float)))
        coords = [ijk[:, 2], ijk[:, 1], ijk[:, 0]]
        return np.column_stack([ndimage.map_coordinates(self.u[a], coords, order=1, mode="nearest")
                                for a in range(3)]).astype(np.float64)

    def apply(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """``φ(x) = x + u(x)``."""
        p = np.atleast_2d(np.asarray(points_mm, float))
        return p + self.displacement(p)

    def max_gradient(self) -> float:
        """Largest absolute entry of the displacement gradient over the grid."""
        grads = [np.gradient(self.u[a], *self.grid.spacing_mm[::-1]) for a in range(3)]
        return float(max(np.abs(g).max() for gs in grads for g in gs))

    def check(self) -> Deformation:
        """Self, or ValueError when the field would fold tissue."""
        g = self.max_gradient()
        if g >= MAX_GRADIENT:
            raise ValueError(f"deformation too strong: displacement gradient {g:.2f} >= {MAX_GRADIENT} (tissue would fold)")
        return self

    def as_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            return [float(x) for x in v] if isinstance(v, tuple | list | np.ndarray) else v

        return {"components": [{"kind": type(c).__name__, **{k: plain(v) for k, v in c.__dict__.items()}}
                               for c in self.components],
                "max_displacement_mm": round(float(np.linalg.norm(self.u, axis=0).max()), 3),
                "max_gradient": round(self.max_gradient(), 4),
                "convention": "tissue at x in the planning CT is at x + u(x) before the rigid setup error"}


def _inverse(d: Deformation, y: NDArray[np.float64]) -> NDArray[np.float64]:
    x = y - d.displacement(y)
    for _ in range(INVERSE_ITERATIONS):
        new = y - d.displacement(x)
        step = float(np.abs(new - x).max()) if len(x) else 0.0
        x = new
        if step < INVERSE_TOLERANCE_MM:
            break
    return x


def warp(ct: Volume, d: Deformation, *, fill_hu: float = -1000.0) -> Volume:
    """The planning CT deformed into the patient of the day: ``ct'(y) = ct(φ⁻¹(y))`` on the same grid."""
    from scipy import ndimage

    nz, ny, nx = ct.shape
    out = np.empty(ct.shape, np.float32)
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    plane = np.column_stack([ii.ravel(), jj.ravel(), np.zeros(ii.size)]).astype(float)
    src = np.asarray(ct.array, np.float32)
    for k in range(nz):
        plane[:, 2] = k
        x = _inverse(d, ct.index_to_patient_mm(plane))
        ijk = ct.patient_to_index(x)
        out[k] = ndimage.map_coordinates(src, [ijk[:, 2], ijk[:, 1], ijk[:, 0]], order=1, mode="constant",
                                         cval=fill_hu).reshape(ny, nx)
    return ct.with_array(out.astype(ct.array.dtype) if np.issubdtype(ct.array.dtype, np.floating)
                         else np.clip(np.rint(out), -32768, 32767).astype(ct.array.dtype))


def rigid_motion(d: Deformation, points_mm: ArrayLike) -> RigidTransform:
    """Least-squares rigid motion (Kabsch) taking *points_mm* to ``φ(points_mm)``."""
    p = np.atleast_2d(np.asarray(points_mm, float))
    q = d.apply(p)
    cp, cq = p.mean(axis=0), q.mean(axis=0)
    h = (p - cp).T @ (q - cq)
    u, _, vt = np.linalg.svd(h)
    s = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(vt.T @ u.T)))])
    r = vt.T @ s @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cq - r @ cp
    return RigidTransform(m)
