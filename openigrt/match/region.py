"""The part of the CBCT and of the CT a 3D/3D match works on (SPEC MATCH-3).

Before the pyramid is built, :func:`prepare_region` decides which voxels count, so the match follows
the patient inside the region of interest and costs only what that region costs:

1. **Field of view.** The CBCT's padding value outside the reconstruction cylinder is detected on a
   sample of the voxels (:func:`padding_value`); the coarse masks see a block as valid when none
   of its voxels is padding, the fine mask is computed on the crop only.
2. **Patient.** :func:`~openigrt.match.masks.patient_masks` on the planning CT (whole couch visible)
   and then on the CBCT, with the CT's couch side as a hint: samples are kept inside the body
   (+ margin), not on the couch or other objects, not within the couch margin.
3. **Crop.** The CBCT is cropped to the kept voxels inside the region of interest (mapped into the
   CBCT by the initial estimate) grown by the translation search range; the CT to what those
   samples can reach. Everything after works on the crops.
4. **Reference outside the body.** The CT's voxels that are neither body (+ margin) nor within the
   couch-contact layer are set to its air value: the CT's couch cannot attract the CBCT's patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openigrt.errors import RegistrationError
from openigrt.geometry.volume import Volume
from openigrt.match.masks import BODY_MARGIN_MM, OBJECT_MARGIN_MM, PatientMasks, grow, patient_masks

#: a value is the CBCT's padding when it fills at least this share of a sample of the voxels
PADDING_MIN_FRACTION = 0.02


def padding_value(array: NDArray[np.generic]) -> float | None:
    """The constant written outside a CBCT's field of view, or None (every voxel is valid).

    The most frequent exact value of a regular sample when it fills ≥ 2 % of it (a noisy
    reconstruction never repeats one value that often).
    """
    sample = array[:: max(1, array.shape[0] // 16), ::4, ::4].ravel()
    values, counts = np.unique(sample, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < PADDING_MIN_FRACTION * sample.size:
        return None
    return float(values[top])


@dataclass(frozen=True, eq=False)
class Region:
    """Cropped volumes and masks the 3D/3D pyramid is built from."""

    reference: Volume  # cropped CT, outside the body set to its air value
    verification: Volume  # cropped CBCT (a view of the caller's array)
    fov_mask: NDArray[np.bool_]  # on the cropped CBCT: its field of view
    sample_mask: NDArray[np.bool_]  # on the cropped CBCT: FOV ∩ patient ∩ not couch
    report: dict[str, Any]


def _crop(vol: Volume, lo: NDArray[np.int64], hi: NDArray[np.int64]) -> Volume:
    """Sub-volume ``[lo, hi)`` in (i, j, k) index order (the array is a view)."""
    arr = vol.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    origin = vol.index_to_patient_mm([lo])[0]
    return Volume(arr, tuple(origin), vol.spacing_mm, vol.direction)


def _index_box(vol: Volume, points_mm: NDArray[np.float64], margin_mm: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(i, j, k) box [lo, hi) of *vol* holding *points_mm* grown by *margin_mm*, clipped to the grid."""
    sp = np.asarray(vol.spacing_mm)
    ijk = vol.patient_to_index(points_mm)
    lo = np.floor(ijk.min(axis=0) - margin_mm / sp).astype(np.int64)
    hi = np.ceil(ijk.max(axis=0) + margin_mm / sp).astype(np.int64) + 1
    n = np.array(vol.shape[::-1])
    return np.clip(lo, 0, n), np.clip(hi, 0, n)


def _masks(vol: Volume, valid: NDArray[np.bool_] | None, hint: NDArray[np.float64] | None) -> PatientMasks:
    m = vol.index_to_patient_matrix()
    return patient_masks(vol.array, valid, m[:3, :3], m[:3, 3], couch_hint=hint)


def _mask_points(masks: PatientMasks, vol: Volume) -> NDArray[np.float64]:
    """Patient mm of the coarse voxels kept by *masks* (centres)."""
    f = np.array(masks.factors, float)
    kji = np.argwhere(masks.keep).astype(np.float64)
    native = kji[:, ::-1] * f + (f - 1.0) / 2.0
    return vol.index_to_patient_mm(native)


def prepare_region(reference: Volume, verification: Volume, *, valid: NDArray[np.bool_] | None,
                   s_init: NDArray[np.float64], roi_points_ref_mm: NDArray[np.float64] | None,
                   reach_mm: float, exclude_objects: bool = True) -> Region:
    """Steps 1-4 of the module docstring.

    *valid*: the caller's CBCT field-of-view mask (None: detected); *s_init*: verification →
    reference 4×4 start; *roi_points_ref_mm*: corners (or any points) of the region of interest in
    reference mm (None: the whole patient); *reach_mm*: how far the estimate may still move
    (the translation search range plus a margin).
    """
    pad = padding_value(verification.array) if valid is None else None
    n_ver = np.array(verification.shape[::-1])
    lo, hi = np.zeros(3, np.int64), n_ver.copy()
    if roi_points_ref_mm is not None:
        inv = np.linalg.inv(s_init)
        lo, hi = _index_box(verification, roi_points_ref_mm @ inv[:3, :3].T + inv[:3, 3], reach_mm)
    if np.any(hi - lo < 4):
        raise RegistrationError("3D/3D: the region of interest is outside the verification volume")
    ver_r = _crop(verification, lo, hi)
    valid_r = None if valid is None else np.asarray(valid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]], bool)
    if valid_r is None and pad is not None:
        valid_r = ver_r.array != pad
    ref_c = _reference_crop(reference, ver_r, s_init, reach_mm)
    ref_masks = ver_masks = None
    if exclude_objects:
        ref_masks = _masks(ref_c, None, None)
        hint = None if ref_masks.couch_normal is None else s_init[:3, :3].T @ ref_masks.couch_normal
        ver_masks = _masks(ver_r, valid_r, hint)
        ref_c = _air_outside_body(ref_c, ref_masks)
    lo2, hi2 = np.zeros(3, np.int64), np.array(ver_r.shape[::-1])
    if ver_masks is not None and ver_masks.keep.any():
        margin = 2.0 * max(ver_masks.factors) * float(max(verification.spacing_mm))
        lo2, hi2 = _index_box(ver_r, _mask_points(ver_masks, ver_r), margin)
    if np.any(hi2 - lo2 < 4):
        raise RegistrationError("3D/3D: no patient voxel inside the region of interest and field of view")
    ver_c = _crop(ver_r, lo2, hi2)
    fov = _fov_mask(ver_c, None if valid is None else valid_r[lo2[2]:hi2[2], lo2[1]:hi2[1], lo2[0]:hi2[0]],
                    pad)
    sample = fov.copy()
    if ver_masks is not None:
        sample &= ver_masks.on_level(ver_masks.keep, (int(lo2[2]), int(lo2[1]), int(lo2[0])), (1, 1, 1), ver_c.shape)
    report = {"padding_value": pad, "crop_voxels": int(np.prod(hi2 - lo2)), "verification_voxels": int(np.prod(n_ver)),
              "couch_verification": _couch_report(ver_masks), "couch_reference": _couch_report(ref_masks)}
    return Region(ref_c, ver_c, fov, sample, report)


def _couch_report(m: PatientMasks | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"normal": None if m.couch_normal is None else [float(v) for v in m.couch_normal],
            "top_mm": m.couch_top_mm, "threshold": m.threshold, "body_fraction_cut": m.body_fraction_cut}


def _fov_mask(ver_c: Volume, valid: NDArray[np.bool_] | None, pad: float | None) -> NDArray[np.bool_]:
    """The field of view on the crop: the caller's mask, else not padding (eroded 2 voxels in-plane)."""
    from openigrt.match._kernels import fov_valid

    if valid is not None:  # the caller's mask
        return np.array(valid, bool)
    if pad is not None:
        return fov_valid(ver_c.array, pad, 2)
    return np.ones(ver_c.shape, bool)


def _reference_crop(reference: Volume, ver_c: Volume, s_init: NDArray[np.float64], reach_mm: float) -> Volume:
    nz, ny, nx = ver_c.shape
    corners = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], float)
    c_ref = ver_c.index_to_patient_mm(corners) @ s_init[:3, :3].T + s_init[:3, 3]
    lo, hi = _index_box(reference, c_ref, reach_mm)
    if np.any(hi - lo < 2):
        raise RegistrationError("3D/3D: the verification volume does not overlap the reference CT (no overlap)")
    return _crop(reference, lo, hi)


def _air_outside_body(ref_c: Volume, masks: PatientMasks) -> Volume:
    """The crop with voxels outside the body (+ margin) set to the air value (objects other than
    the body, e.g. the CT's couch, are all at least ``OBJECT_MARGIN_MM`` from it)."""
    if not masks.body.any() or not np.isfinite(masks.air_value):
        return ref_c
    sp = np.asarray(ref_c.spacing_mm) * np.array(masks.factors, float)
    inside = grow(masks.body, min(BODY_MARGIN_MM, OBJECT_MARGIN_MM), sp[::-1])
    keep = masks.on_level(inside, (0, 0, 0), (1, 1, 1), ref_c.shape)
    arr = np.where(keep, ref_c.array, np.asarray(masks.air_value, dtype=np.float32)).astype(np.float32)
    return ref_c.with_array(arr)
