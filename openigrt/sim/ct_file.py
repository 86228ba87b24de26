"""CT volumes from image files (NIfTI, MetaImage, NRRD) and reorientation to axial LPS (no DICOM here).

A virtual patient can be built from any CT a user has. DICOM series are read by
:mod:`openigrt.iod.ct_series`; everything else goes through SimpleITK, which reads the file's
geometry into **LPS** physical coordinates (ITK's convention, the DICOM patient system). NIfTI's
world is RAS (+x towards the patient's right, +y anterior); ITK's NIfTI reader negates x and y,
so the direction matrix of a usual RAS-ordered NIfTI comes out as ``diag(-1, -1, 1)`` in LPS.

:func:`axial_lps` then turns any :class:`~openigrt.geometry.volume.Volume` into the axial grid
the rest of OpenIGRT writes as a planning CT (direction = identity, Image Orientation (Patient)
``1\\0\\0\\0\\1\\0``):

* a direction that is a signed permutation of the axes (RAS NIfTI, prone or feet-first DICOM
  orientations, sagittal/coronal stacks) is reordered **exactly** (flips and transposes, no
  interpolation);
* an oblique direction (rotated by more than :data:`OBLIQUE_TOLERANCE`) is **resampled**
  (trilinear) onto an axis-aligned grid covering the same box, with the input's spacings
  assigned to the nearest axes; outside the input is air (-1000 HU). ``reoriented`` says which.

:func:`check_ct_values` refuses a file whose values are not Hounsfield units of a CT (a label
map, an MR image, a probability map): one clear message naming the file.

>>> import numpy as np
>>> from openigrt.geometry.volume import Volume
>>> v = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), (10.0, 20.0, 30.0), (1.0, 2.0, 3.0),
...            np.diag([-1.0, -1.0, 1.0]))
>>> a = axial_lps(v).volume
>>> a.origin_mm, a.spacing_mm, bool(np.allclose(a.direction, np.eye(3)))
((7.0, 16.0, 30.0), (1.0, 2.0, 3.0), True)
>>> float(a.array[0, 0, 0]) == float(v.array[0, 2, 3])  # the voxel at the smallest x, y
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openigrt.errors import ImageInputError
from openigrt.geometry.volume import Volume

__all__ = ["ReorientedVolume", "read_ct_image", "axial_lps", "check_ct_values", "IMAGE_SUFFIXES",
           "AIR_HU", "OBLIQUE_TOLERANCE"]

#: File name endings read through SimpleITK.
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
#: A CT in HU has air: some voxel at or below this value (outside the body, lungs, bowel gas).
AIR_HU = -900.0
#: Largest value of a CT in HU we accept (12-bit scale + margin; metal can reach it).
MAX_CT_HU = 32767.0
#: A CT has soft tissue / fat: at least this fraction of voxels in [-200, 200] HU.
MIN_SOFT_TISSUE_FRACTION = 0.03
#: Direction cosines within this of a signed permutation count as axis-aligned.
OBLIQUE_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class ReorientedVolume:
    """An axial LPS volume and how it was obtained (``"none"``, ``"reordered"`` or ``"resampled"``)."""

    volume: Volume
    reoriented: str


def _to_sitk(volume: Volume) -> Any:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(volume.array, dtype=np.float32))
    img.SetOrigin(tuple(float(v) for v in volume.origin_mm))
    img.SetSpacing(tuple(float(v) for v in volume.spacing_mm))
    img.SetDirection(tuple(float(v) for v in np.asarray(volume.direction).ravel()))
    return img


def _from_sitk(img: Any) -> Volume:
    import SimpleITK as sitk

    return Volume(sitk.GetArrayFromImage(img).astype(np.float32), tuple(img.GetOrigin()), tuple(img.GetSpacing()),
                  np.asarray(img.GetDirection(), dtype=float).reshape(3, 3))


def _signed_permutation(direction: NDArray[np.float64]) -> bool:
    d = np.abs(np.asarray(direction, dtype=float))
    return bool(np.all((np.abs(d - 1.0) <= OBLIQUE_TOLERANCE) | (d <= OBLIQUE_TOLERANCE))
                and np.all(np.sum(d > 0.5, axis=0) == 1) and np.all(np.sum(d > 0.5, axis=1) == 1))


def axial_lps(volume: Volume) -> ReorientedVolume:
    """*volume* on an axial grid with identity direction (see the module docstring)."""
    d = np.asarray(volume.direction, dtype=float)
    if np.allclose(d, np.eye(3), atol=OBLIQUE_TOLERANCE):
        return ReorientedVolume(Volume(volume.array, volume.origin_mm, volume.spacing_mm), "none")
    if _signed_permutation(d):
        return ReorientedVolume(_reorder(volume), "reordered")
    return ReorientedVolume(_resample_axial(volume), "resampled")


def _reorder(volume: Volume) -> Volume:
    """Exact flips/transposes of a signed-permutation direction onto identity (no interpolation)."""
    d = np.rint(np.asarray(volume.direction, dtype=float))
    a = np.asarray(volume.array)
    nz, ny, nx = a.shape
    sizes = (nx, ny, nz)
    # index axis i (0 = column) runs along patient axis p(i) with sign s(i)
    p = [int(np.argmax(np.abs(d[:, i]))) for i in range(3)]
    s = [float(d[p[i], i]) for i in range(3)]
    flips = tuple(2 - i for i in range(3) if s[i] < 0)  # array axis of index axis i is 2 - i
    if flips:
        a = np.flip(a, axis=flips)
    corner = np.array([(sizes[i] - 1) if s[i] < 0 else 0 for i in range(3)], dtype=float)
    origin = volume.index_to_patient_mm([corner])[0]
    # array axis of patient axis q: the index axis i with p(i) == q, array position 2 - i
    order = [2 - p.index(2 - k) for k in range(3)]  # new array axis k (z, y, x) <- old array axis
    a = np.transpose(a, order)
    spacing = tuple(volume.spacing_mm[p.index(q)] for q in range(3))
    return Volume(np.ascontiguousarray(a), tuple(origin), spacing)  # type: ignore[arg-type]


def _resample_axial(volume: Volume) -> Volume:
    """Trilinear resampling of an oblique volume onto an axis-aligned grid covering its box."""
    import SimpleITK as sitk

    img = _to_sitk(volume)
    nz, ny, nx = volume.shape
    corners = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], dtype=float)
    pts = volume.index_to_patient_mm(corners)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    d = np.abs(np.asarray(volume.direction, dtype=float))
    spacing = np.array([volume.spacing_mm[int(np.argmax(d[q, :]))] for q in range(3)])
    size = [int(np.floor((hi[q] - lo[q]) / spacing[q] + 1e-6)) + 1 for q in range(3)]
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, tuple(float(v) for v in lo),
                        tuple(float(v) for v in spacing), tuple(float(v) for v in np.eye(3).ravel()), -1000.0,
                        sitk.sitkFloat32)
    return _from_sitk(out)


def read_ct_image(path: Path | str) -> Volume:
    """A CT volume (float32 HU, LPS) from a NIfTI / MetaImage / NRRD file, as stored (any direction).

    Raises
    ------
    ImageInputError
        Not readable as an image, not 3D, several components, or no finite values; names the file.
    """
    import SimpleITK as sitk

    path = Path(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith(("Description",))), "")
        raise ImageInputError(f"{path}: not a readable image file (NIfTI, MHA, NRRD)"
                              + (f": {first.removeprefix('Description:').strip()}" if first else "")) from None
    if img.GetDimension() != 3:
        raise ImageInputError(f"{path}: a {img.GetDimension()}D image; a CT volume needs 3 dimensions")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ImageInputError(f"{path}: {img.GetNumberOfComponentsPerPixel()} components per voxel; a CT has one")
    volume = _from_sitk(sitk.Cast(img, sitk.sitkFloat32))
    if not np.all(np.isfinite(volume.array)):
        raise ImageInputError(f"{path}: holds NaN or infinite values, not a CT in HU")
    return volume


def check_ct_values(volume: Volume, source: str) -> None:
    """Raise ImageInputError (naming *source*) unless the values look like the HU of a CT."""
    a = np.asarray(volume.array)
    lo, hi = float(a.min()), float(a.max())
    soft = float(np.mean((a > -200.0) & (a < 200.0)))
    if lo > AIR_HU or hi > MAX_CT_HU or soft < MIN_SOFT_TISSUE_FRACTION:
        why = (f"no voxel at or below {AIR_HU:g} HU (air)" if lo > AIR_HU else
               f"values up to {hi:g}, beyond a CT's HU range" if hi > MAX_CT_HU else
               f"only {100 * soft:.1f} % of voxels in soft tissue/fat [-200, 200] HU")
        raise ImageInputError(f"{source}: does not look like a CT in Hounsfield units: {why} "
                              f"(values {lo:g} … {hi:g})")
