"""The couch in a verification CBCT: the linac's treatment couch, not the planning CT's (SPEC SIM-3).

A real CBCT shows the treatment couch of the linac, a different object from the CT scanner's
table, and it does not follow the patient's setup rotation: the patient lies rotated **on** it.
Both CBCT models (:mod:`openigrt.sim.cbct` ``fast``, :mod:`openigrt.sim.cbct_fdk` ``fdk``) therefore

1. remove the planning CT's couch (:func:`remove_ct_couch`): the caller says where it is — a
   boolean mask on the CT grid, a callable ``points_mm (N, 3) -> bool (N,)`` in reference patient
   mm (e.g. ``lambda p: p[:, 1] >= phantom.couch_top_y_mm`` for the built-in HFS phantom), or
   ``"auto"``: everything outside the body (the largest connected region above −400 HU, holes
   filled slice by slice) is couch or immobilisation and becomes air;
2. place a :class:`TreatmentCouch` (carbon-fibre skins over a foam core, rounded lateral edges)
   in **verification** coordinates (room-fixed axes: the IEC table-top axes at INITLASERISO) with
   its top surface where the patient's back rests: the lowest body point under the planned
   isocenter, carried by the setup error ``T`` (:func:`place_treatment_couch`). The couch thus
   follows the table-top translation of the setup (vertical above all) and is never rotated.

>>> import numpy as np
>>> place = CouchPlacement(patient_position="HFS", isocenter_mm=(0.0, 0.0, 0.0), top_mm=-100.0)
>>> hu = TreatmentCouch().hu(np.array([[0.0, 90.0, 0.0], [0.0, 101.0, 0.0], [0.0, 125.0, 0.0]]), place, voxel_mm=1.0)
>>> [int(v) for v in np.rint(hu)]  # above the couch (air), in a skin, in the foam core
[-1000, 400, -920]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.iec61217 import PatientPosition, PatientToTableTop, TableTopToPatient, patient_axes_in_table_top
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume

__all__ = ["CouchSpec", "TreatmentCouch", "CouchPlacement", "ct_couch_mask", "remove_ct_couch",
           "place_treatment_couch", "couch_volume", "BODY_THRESHOLD_HU"]

#: Where the planning CT's couch is: a mask on the CT grid, a callable on reference patient points,
#: ``"auto"`` (outside the body), or None (keep the CT as it is).
CouchSpec = Union[NDArray[np.bool_], Callable[[NDArray[np.float64]], NDArray[np.bool_]], str, None]
#: Voxels above this HU belong to the body or the couch (for ``"auto"`` and the resting surface).
BODY_THRESHOLD_HU = -400.0
_AIR_HU = -1000.0


@dataclass(frozen=True)
class TreatmentCouch:
    """A linac couch top (carbon-fibre sandwich), CT numbers of its materials.

    Defaults: 530 mm wide, 50 mm thick, 1.5 mm carbon-fibre skins (≈ 1.4 g/cm³: +400 HU), foam
    core −920 HU, lateral edges rounded with a 20 mm radius — different from the built-in CT
    couch (460 × 50 mm, 3 mm skins of +300 HU, −850 HU core, square edges).
    """

    width_mm: float = 530.0
    thickness_mm: float = 50.0
    skin_mm: float = 1.5
    skin_hu: float = 400.0
    core_hu: float = -920.0
    edge_radius_mm: float = 20.0

    def hu(self, points_mm: NDArray[np.float64], placement: CouchPlacement, *, voxel_mm: float) -> NDArray[np.float64]:
        """CT numbers (−1000 outside) at verification points ``(N, 3)``, edges ramped over ``voxel_mm``."""
        t = PatientToTableTop(patient_position=placement.patient_position,
                              isocenter_mm=placement.isocenter_mm).apply(points_mm)
        u = t[:, 0] - placement.lateral_mm
        depth = placement.top_mm - t[:, 2]  # >= 0 below the top surface
        half = np.array([self.width_mm / 2, self.thickness_mm / 2])
        q = np.stack([np.abs(u), np.abs(depth - self.thickness_mm / 2)], axis=1)
        r = min(self.edge_radius_mm, float(half.min()))
        outer = _rounded_box_distance(q, half, r)
        inner = _rounded_box_distance(q, half - self.skin_mm, max(r - self.skin_mm, 0.0))
        f_out = np.clip(0.5 - outer / voxel_mm, 0.0, 1.0)
        f_in = np.clip(0.5 - inner / voxel_mm, 0.0, 1.0)
        return _AIR_HU + f_out * (self.skin_hu - _AIR_HU) + f_in * (self.core_hu - self.skin_hu)


def _rounded_box_distance(q: NDArray[np.float64], half: NDArray[np.float64], r: float) -> NDArray[np.float64]:
    """Signed distance (mm, < 0 inside) of |offsets| ``q`` to a box of half sizes ``half``, corners rounded by r."""
    d = q - (half - r)
    return np.linalg.norm(np.maximum(d, 0.0), axis=1) + np.minimum(d.max(axis=1), 0.0) - r


@dataclass(frozen=True)
class CouchPlacement:
    """Where the treatment couch is: table-top coordinates at ``isocenter_mm`` (INITLASERISO).

    ``top_mm`` is the height (IEC Zt) of the couch's top surface and ``lateral_mm`` its centre
    (Xt), both relative to the machine isocenter, in verification patient coordinates.
    """

    patient_position: PatientPosition | str
    isocenter_mm: tuple[float, float, float]
    top_mm: float
    lateral_mm: float = 0.0


def ct_couch_mask(ct: Volume, couch: CouchSpec) -> NDArray[np.bool_] | None:
    """The planning CT's couch voxels as a mask of the CT's shape (None: nothing to remove)."""
    if couch is None:
        return None
    if isinstance(couch, str):
        if couch != "auto":
            raise ValueError(f"CT couch must be a mask, a callable, 'auto' or None, got {couch!r}")
        return ~_body_mask(ct)
    if callable(couch):
        nz, ny, nx = ct.shape
        jj, ii = np.mgrid[0:ny, 0:nx]
        out = np.zeros(ct.shape, dtype=bool)
        for k in range(nz):
            ijk = np.column_stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)])
            out[k] = np.asarray(couch(ct.index_to_patient_mm(ijk)), dtype=bool).reshape(ny, nx)
        return out
    mask = np.asarray(couch, dtype=bool)
    if mask.shape != ct.shape:
        raise ValueError(f"CT couch mask has shape {mask.shape}, the CT {ct.shape}")
    return mask


def _body_mask(ct: Volume) -> NDArray[np.bool_]:
    """Largest 6-connected region above :data:`BODY_THRESHOLD_HU`, holes filled slice by slice."""
    from scipy import ndimage

    dense = np.asarray(ct.array) > BODY_THRESHOLD_HU
    labels, n = ndimage.label(dense)
    if n == 0:
        return dense
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def remove_ct_couch(ct: Volume, couch: CouchSpec) -> Volume:
    """A copy of the CT with the couch voxels set to air (the CT itself when ``couch`` is None)."""
    mask = ct_couch_mask(ct, couch)
    if mask is None:
        return ct
    arr = np.array(ct.array, copy=True)
    arr[mask] = np.asarray(_AIR_HU).astype(arr.dtype)
    return ct.with_array(arr)


def _rest_height_mm(ct: Volume, patient_position: PatientPosition | str, planned_isocenter_mm: ArrayLike) -> float:
    """Lowest table-top height (Zt, relative to the planned isocenter) of the body in the CT."""
    dense = np.asarray(ct.array) > BODY_THRESHOLD_HU
    if not dense.any():
        return 0.0
    a = patient_axes_in_table_top(patient_position)
    m = ct.index_to_patient_matrix()
    zt_per_index = a[2] @ m[:3, :3]  # change of Zt per unit (i, j, k)
    ijk = np.argwhere(dense)[:, ::-1].astype(float)  # (i, j, k)
    zt = ijk @ zt_per_index + a[2] @ (m[:3, 3] - np.asarray(planned_isocenter_mm, float))
    return float(zt.min() - 0.5 * np.abs(zt_per_index).max())


def place_treatment_couch(ct_without_couch: Volume, *, setup_error: RigidTransform, patient_position: PatientPosition | str,
                          planned_isocenter_mm: ArrayLike, initlaseriso_mm: ArrayLike) -> CouchPlacement:
    """Couch under the displaced patient: the resting point below the planned isocenter, moved by T."""
    rest = _rest_height_mm(ct_without_couch, patient_position, planned_isocenter_mm)
    iso = tuple(float(v) for v in np.asarray(planned_isocenter_mm, float))
    below = TableTopToPatient(patient_position=PatientPosition.parse(patient_position),
                              isocenter_mm=iso).apply([[0.0, 0.0, rest]])  # type: ignore[arg-type]
    machine = tuple(float(v) for v in np.asarray(initlaseriso_mm, float))
    t = PatientToTableTop(patient_position=PatientPosition.parse(patient_position),
                          isocenter_mm=machine).apply(setup_error.apply(below))[0]  # type: ignore[arg-type]
    return CouchPlacement(patient_position=patient_position, isocenter_mm=machine,  # type: ignore[arg-type]
                          top_mm=float(t[2]), lateral_mm=float(t[0]))


def couch_volume(couch: TreatmentCouch, placement: CouchPlacement, *, length_mm: float,
                 spacing_mm: tuple[float, float, float] = (2.0, 0.5, 10.0)) -> Volume:
    """The couch (HU) on its own grid in verification patient mm, aligned with the patient axes.

    ``spacing_mm`` = (lateral Xt, vertical Zt, longitudinal Yt) voxel sizes; the grid covers the
    couch's cross-section and ``length_mm`` along Yt centred on the isocenter.
    """
    a = patient_axes_in_table_top(placement.patient_position)
    table_axis = np.argmax(np.abs(a), axis=0)  # table-top axis (0 x, 1 y, 2 z) of each patient axis
    if sorted(table_axis.tolist()) != [0, 1, 2]:
        raise ValueError("couch_volume needs a patient position whose axes are table-top axes")
    margin = 2.0
    lo_t = np.array([placement.lateral_mm - couch.width_mm / 2 - margin, -length_mm / 2,
                     placement.top_mm - couch.thickness_mm - margin])
    hi_t = np.array([placement.lateral_mm + couch.width_mm / 2 + margin, length_mm / 2, placement.top_mm + margin])
    spacing_t = np.array([spacing_mm[0], spacing_mm[2], spacing_mm[1]])  # indexed by table axis x, y, z
    to_patient = TableTopToPatient(patient_position=PatientPosition.parse(placement.patient_position),
                                   isocenter_mm=placement.isocenter_mm)  # type: ignore[arg-type]
    corners = to_patient.apply(np.array([lo_t, hi_t]))
    lo_p, hi_p = corners.min(axis=0), corners.max(axis=0)
    spacing_p = np.array([spacing_t[table_axis[i]] for i in range(3)])
    n = np.maximum(np.ceil((hi_p - lo_p) / spacing_p).astype(int) + 1, 2)
    grid = Volume(np.zeros((n[2], n[1], n[0]), np.float32), tuple(lo_p), tuple(spacing_p))  # type: ignore[arg-type]
    kk, jj, ii = np.meshgrid(np.arange(n[2]), np.arange(n[1]), np.arange(n[0]), indexing="ij")
    pts = grid.index_to_patient_mm(np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()]))
    hu = couch.hu(pts, placement, voxel_mm=float(spacing_mm[1]))
    return grid.with_array(hu.reshape(grid.shape).astype(np.float32))
