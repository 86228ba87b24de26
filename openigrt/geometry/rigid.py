"""Rigid transforms in DICOM patient coordinates (4×4 homogeneous matrices, mm and degrees).

A :class:`RigidTransform` is named by what it maps: ``RigidTransform.matrix`` takes a point
**from** the source frame **to** the target frame, ``p_target = M @ p_source`` on column vectors
``(x, y, z, 1)``. The registration result convention of the whole project (SPEC IOD-1, the REG
Frame of Reference Transformation Matrix, ``truth.json`` and ``openigrt match --json``) is:

    ``matrix`` maps **reference** patient coordinates (planning CT, mm) to **verification**
    patient coordinates (the acquired images' frame, mm).

Rotation parameters ``rotation_deg = (rx, ry, rz)`` are right-handed rotations about the patient
x, y and z axes through ``center_mm``, applied in the order x, then y, then z (so
``R = Rz @ Ry @ Rx``). IEC 61217 table-top angles (pitch, roll, rotation) and their signs are
converted in :mod:`openigrt.geometry` modules about the couch, not here.

>>> t = RigidTransform.from_parameters(translation_mm=(1, 2, 3))
>>> t.apply([[0.0, 0.0, 0.0]])
array([[1., 2., 3.]])
>>> r = RigidTransform.from_parameters(rotation_deg=(0, 0, 90), center_mm=(10, 0, 0))
>>> np.round(r.apply([[11.0, 0.0, 0.0]]), 6)
array([[10.,  1.,  0.]])
>>> np.allclose(r.inverse().compose(r).matrix, np.eye(4))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


def rotation_matrix_xyz(rotation_deg: ArrayLike) -> NDArray[np.float64]:
    """3×3 rotation ``Rz @ Ry @ Rx`` for right-handed angles (degrees) about x, y, z."""
    rx, ry, rz = np.deg2rad(np.asarray(rotation_deg, dtype=float))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_z @ r_y @ r_x


def euler_xyz_from_matrix(rotation: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`rotation_matrix_xyz`: angles (rx, ry, rz) in degrees, |ry| < 90."""
    r = np.asarray(rotation, dtype=float)
    ry = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    rx = np.arctan2(r[2, 1], r[2, 2])
    rz = np.arctan2(r[1, 0], r[0, 0])
    return np.rad2deg([rx, ry, rz])


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A rigid 4×4 transform ``p_target = matrix @ p_source`` (mm)."""

    matrix: NDArray[np.float64]

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=float)
        if m.shape != (4, 4):
            raise ValueError(f"RigidTransform.matrix must be 4x4, got {m.shape}")
        if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
            raise ValueError("RigidTransform.matrix last row must be 0 0 0 1")
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise ValueError("RigidTransform.matrix upper 3x3 must be a proper rotation")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> RigidTransform:
        return cls(np.eye(4))

    @classmethod
    def from_parameters(
        cls,
        *,
        translation_mm: ArrayLike = (0.0, 0.0, 0.0),
        rotation_deg: ArrayLike = (0.0, 0.0, 0.0),
        center_mm: ArrayLike = (0.0, 0.0, 0.0),
    ) -> RigidTransform:
        """``p' = R (p - c) + c + t`` with ``R = Rz Ry Rx`` (see module docstring)."""
        r = rotation_matrix_xyz(rotation_deg)
        c = np.asarray(center_mm, dtype=float)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = c - r @ c + np.asarray(translation_mm, dtype=float)
        return cls(m)

    @property
    def rotation(self) -> NDArray[np.float64]:
        return self.matrix[:3, :3].copy()

    @property
    def translation_mm(self) -> NDArray[np.float64]:
        return self.matrix[:3, 3].copy()

    def rotation_deg(self) -> NDArray[np.float64]:
        """Euler angles (rx, ry, rz) in degrees of the rotation part (order of the module doc)."""
        return euler_xyz_from_matrix(self.matrix[:3, :3])

    def rotation_angle_deg(self) -> float:
        """Total rotation angle (axis-angle magnitude) in degrees."""
        c = (np.trace(self.matrix[:3, :3]) - 1.0) / 2.0
        return float(np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0))))

    def apply(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Map points ``(N, 3)`` from the source frame to the target frame."""
        p = np.atleast_2d(np.asarray(points_mm, dtype=float))
        return p @ self.matrix[:3, :3].T + self.matrix[:3, 3]

    def inverse(self) -> RigidTransform:
        m = np.eye(4)
        r = self.matrix[:3, :3]
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ self.matrix[:3, 3]
        return RigidTransform(m)

    def compose(self, first: RigidTransform) -> RigidTransform:
        """``self ∘ first``: apply *first*, then *self*."""
        return RigidTransform(self.matrix @ first.matrix)

    def as_list(self) -> list[list[float]]:
        """Row-major nested list (for JSON and the REG matrix)."""
        return [[float(v) for v in row] for row in self.matrix]
