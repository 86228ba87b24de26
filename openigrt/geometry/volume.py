"""A 3D image on a regular grid placed in DICOM patient coordinates.

Conventions (used by ``sim``, ``match``, ``iod`` readers and the workflow alike):

* ``array`` has shape ``(nz, ny, nx)``: slice, row, column — ``array[k, j, i]``.
* Index coordinates ``(i, j, k)`` are (column, row, slice), i.e. reversed from the array axes,
  as in DICOM and ITK.
* ``origin_mm`` is the patient position (x, y, z) of the **centre** of voxel ``[0, 0, 0]``
  (DICOM Image Position (Patient) of the first slice).
* ``spacing_mm`` is (column spacing, row spacing, slice spacing) = (dx, dy, dz), all > 0.
* ``direction`` is a 3×3 matrix whose **columns** are the patient-space unit vectors of the
  i, j and k index axes (ITK's direction matrix; for an axial CT with Image Orientation
  (Patient) ``1\\0\\0\\0\\1\\0`` it is the identity).
* Patient coordinates are the DICOM Patient-Based Coordinate System (PS3.3 C.7.6.2.1.1):
  +x towards the patient's left, +y posterior, +z head (LPS), in mm.

The same numbers give a SimpleITK image with ``sitk.GetImageFromArray(array)``,
``SetOrigin(origin_mm)``, ``SetSpacing(spacing_mm)``, ``SetDirection(direction.ravel())``.

>>> import numpy as np
>>> v = Volume(np.zeros((3, 4, 5), np.float32), origin_mm=(-10.0, -20.0, 30.0), spacing_mm=(1.0, 2.0, 2.5))
>>> v.index_to_patient_mm([[1, 1, 2]])
array([[ -9., -18.,  35.]])
>>> v.patient_to_index([[-9.0, -18.0, 35.0]])
array([[1., 1., 2.]])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image in patient space; see the module docstring for axis conventions."""

    array: NDArray[np.generic]
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: NDArray[np.float64] = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3D (nz, ny, nx), got shape {self.array.shape}")
        if len(self.origin_mm) != 3 or len(self.spacing_mm) != 3:
            raise ValueError("Volume.origin_mm and Volume.spacing_mm need 3 values (x, y, z)")
        if not all(s > 0 for s in self.spacing_mm):
            raise ValueError(f"Volume.spacing_mm must be positive, got {self.spacing_mm}")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.allclose(d.T @ d, np.eye(3), atol=1e-6):
            raise ValueError("Volume.direction must be a 3x3 orthonormal matrix")
        object.__setattr__(self, "direction", d)
        object.__setattr__(self, "origin_mm", tuple(float(v) for v in self.origin_mm))
        object.__setattr__(self, "spacing_mm", tuple(float(v) for v in self.spacing_mm))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nz, ny, nx)``."""
        return self.array.shape  # type: ignore[return-value]

    def index_to_patient_matrix(self) -> NDArray[np.float64]:
        """4×4 affine taking homogeneous index (i, j, k, 1) to patient (x, y, z, 1) in mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * np.asarray(self.spacing_mm)[None, :]
        m[:3, 3] = self.origin_mm
        return m

    def index_to_patient_mm(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """Map index points ``(N, 3)`` (i=column, j=row, k=slice) to patient mm ``(N, 3)``."""
        p = np.atleast_2d(np.asarray(ijk, dtype=float))
        m = self.index_to_patient_matrix()
        return p @ m[:3, :3].T + m[:3, 3]

    def patient_to_index(self, xyz_mm: ArrayLike) -> NDArray[np.float64]:
        """Map patient points ``(N, 3)`` in mm to continuous index (i, j, k) ``(N, 3)``."""
        p = np.atleast_2d(np.asarray(xyz_mm, dtype=float))
        m = self.index_to_patient_matrix()
        return np.linalg.solve(m[:3, :3], (p - m[:3, 3]).T).T

    def center_mm(self) -> NDArray[np.float64]:
        """Patient position of the geometric centre of the grid."""
        nz, ny, nx = self.shape
        return self.index_to_patient_mm([[(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]])[0]

    def with_array(self, array: NDArray[np.generic]) -> Volume:
        """Same grid, new voxel values (must have the same shape)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the grid {self.array.shape}")
        return Volume(array, self.origin_mm, self.spacing_mm, self.direction)
