"""Couch correction (SPEC MATCH-6): from a registration to IEC 61217 table-top motions.

Inputs
    * ``transform`` — a :class:`~openigrt.geometry.rigid.RigidTransform` mapping **reference**
      patient coordinates (planning CT, mm) to **verification** patient coordinates (the frame of
      the acquired images), the project's registration convention (``geometry/rigid.py``). If the
      patient lies 5 mm further to their left than planned, it is a +5 mm x translation.
    * ``planned_isocenter_mm`` — the plan's isocenter, reference patient coordinates.
    * ``initlaseriso_mm`` — INITLASERISO (SPEC IOD-2): the machine isocenter, where the lasers
      pointed when the images were acquired, in verification patient coordinates.
    * ``patient_position`` — the plan's Patient Position (HFS, HFP, FFS, FFP, HFDR, ...).

Output: the **couch motion to apply** to bring the patient onto the plan, as a
:class:`CouchCorrection` in IEC TABLE TOP axes (IEC 61217; ``geometry/iec61217.py``):

* ``vrt_mm`` > 0: table top **up** (+Zt); ``lng_mm`` > 0: towards the **gantry** (+Yt);
  ``lat_mm`` > 0: to the right of an observer at the couch foot facing the gantry (+Xt), which is
  the patient's **left** for HFS and FFP and the patient's right for HFP and FFS;
* ``rtn_deg`` (table-top / patient-support rotation about Zt), ``pitch_deg`` (about Xt: > 0 lifts
  the gantry end) and ``roll_deg`` (about Yt), right-handed = IEC clockwise seen from the origin
  along the axis (PS3.3 C.8.8.14.12), composed as ``R = Rz(rtn) Rx(pitch) Ry(roll)``.

Derivation. The target (planned isocenter) is at ``a = T(p_iso)`` in the verification frame and
must go to ``q = INITLASERISO``. The couch motion is the rigid map ``M = P ∘ T⁻¹`` where ``P`` is
the planned pose (``p ↦ p − p_iso + q``); ``M(x) = Rᵀ (x − a) + q``: translate by ``q − a``, then
rotate by ``Rᵀ`` about the machine isocenter (where the target now is). Expressed in table-top
axes with ``A`` = :func:`~openigrt.geometry.iec61217.patient_axes_in_table_top`:
``(lat, lng, vrt) = A (q − a)`` and ``Rz(rtn) Rx(pitch) Ry(roll) = A Rᵀ Aᵀ``.
Zero translation ⇔ ``T`` maps the planned isocenter onto INITLASERISO (MATCH-6).

Worked example (``docs/geometry.md``): the patient lies 5 mm to their left, 3 mm too far
posterior and 2 mm too far towards the head (``T`` = translation (+5, +3, +2) mm, no couch
offset):

>>> t = RigidTransform.from_parameters(translation_mm=(5, 3, 2))
>>> couch_correction(t, planned_isocenter_mm=(0, 0, 0), initlaseriso_mm=(0, 0, 0), patient_position="HFS").as_dict()
{'vrt_mm': 3.0, 'lng_mm': -2.0, 'lat_mm': -5.0, 'rtn_deg': 0.0, 'pitch_deg': 0.0, 'roll_deg': 0.0}
>>> couch_correction(t, planned_isocenter_mm=(0, 0, 0), initlaseriso_mm=(0, 0, 0), patient_position="FFS").as_dict()
{'vrt_mm': 3.0, 'lng_mm': 2.0, 'lat_mm': 5.0, 'rtn_deg': 0.0, 'pitch_deg': 0.0, 'roll_deg': 0.0}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.iec61217 import PatientPosition, _vec3, patient_axes_in_table_top, rot_x, rot_y, rot_z
from openigrt.geometry.rigid import RigidTransform

__all__ = ["CouchCorrection", "couch_correction", "setup_error_from_table_top", "table_top_angles_from_matrix",
           "COUCH_CORRECTION_KEYS"]

#: Keys of :meth:`CouchCorrection.as_dict`, in this order (truth.json, ``openigrt match --json``).
COUCH_CORRECTION_KEYS = ("vrt_mm", "lng_mm", "lat_mm", "rtn_deg", "pitch_deg", "roll_deg")


@dataclass(frozen=True)
class CouchCorrection:
    """IEC 61217 table-top motion to apply (SPEC MATCH-6); signs in the module docstring."""

    vrt_mm: float
    lng_mm: float
    lat_mm: float
    rtn_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """``{vrt_mm, lng_mm, lat_mm, rtn_deg, pitch_deg, roll_deg}`` as plain floats (rounded to 1e-6)."""
        return {k: _clean(getattr(self, k)) for k in COUCH_CORRECTION_KEYS}

    @property
    def translation_table_top_mm(self) -> NDArray[np.float64]:
        """``(lat, lng, vrt)`` = (Xt, Yt, Zt) components of the motion, mm."""
        return np.array([self.lat_mm, self.lng_mm, self.vrt_mm])

    @property
    def translation_magnitude_mm(self) -> float:
        """Length of the translation (mm)."""
        return float(np.linalg.norm(self.translation_table_top_mm))

    def rotation_table_top(self) -> NDArray[np.float64]:
        """3×3 ``Rz(rtn) Rx(pitch) Ry(roll)`` acting on table-top vectors."""
        return rot_z(self.rtn_deg) @ rot_x(self.pitch_deg) @ rot_y(self.roll_deg)


def _clean(value: float) -> float:
    v = round(float(value), 6)
    return 0.0 if v == 0 else v  # no "-0.0" in reports


def table_top_angles_from_matrix(rotation: ArrayLike) -> tuple[float, float, float]:
    """Decompose ``R = Rz(rtn) Rx(pitch) Ry(roll)`` into ``(rtn, pitch, roll)`` degrees (|pitch| < 90).

    >>> r = rot_z(3.0) @ rot_x(-2.0) @ rot_y(1.5)
    >>> [round(a, 9) for a in table_top_angles_from_matrix(r)]
    [3.0, -2.0, 1.5]
    """
    m = np.asarray(rotation, dtype=float)
    pitch = np.arcsin(np.clip(m[2, 1], -1.0, 1.0))
    roll = np.arctan2(-m[2, 0], m[2, 2])
    rtn = np.arctan2(-m[0, 1], m[1, 1])
    return float(np.rad2deg(rtn)), float(np.rad2deg(pitch)), float(np.rad2deg(roll))


def couch_correction(
    transform: RigidTransform,
    *,
    planned_isocenter_mm: ArrayLike,
    initlaseriso_mm: ArrayLike,
    patient_position: str | PatientPosition,
    six_dof: bool = True,
) -> CouchCorrection:
    """Couch motion that brings the patient onto the plan (SPEC MATCH-6).

    Parameters
    ----------
    transform
        Registration, reference patient mm → verification patient mm.
    planned_isocenter_mm
        Planned isocenter, reference patient coordinates.
    initlaseriso_mm
        INITLASERISO point (machine isocenter at acquisition), verification patient coordinates.
    patient_position
        The plan's Patient Position.
    six_dof
        When False (a 4-/3-DoF couch), rotations are reported as 0 and the translation still moves
        the target onto the isocenter.

    Returns
    -------
    CouchCorrection
        Motion in IEC TABLE TOP axes: translate, then rotate about the machine isocenter.
    """
    a_mat = patient_axes_in_table_top(patient_position)
    p_iso = np.asarray(_vec3(planned_isocenter_mm, "planned isocenter"))
    q = np.asarray(_vec3(initlaseriso_mm, "INITLASERISO"))
    target = transform.apply(p_iso)[0]
    lat, lng, vrt = a_mat @ (q - target)
    rtn = pitch = roll = 0.0
    if six_dof:
        rtn, pitch, roll = table_top_angles_from_matrix(a_mat @ transform.rotation.T @ a_mat.T)
    return CouchCorrection(vrt_mm=float(vrt), lng_mm=float(lng), lat_mm=float(lat),
                           rtn_deg=rtn, pitch_deg=pitch, roll_deg=roll)


def setup_error_from_table_top(
    *,
    lat_mm: float = 0.0,
    lng_mm: float = 0.0,
    vrt_mm: float = 0.0,
    rtn_deg: float = 0.0,
    pitch_deg: float = 0.0,
    roll_deg: float = 0.0,
    planned_isocenter_mm: ArrayLike,
    patient_position: str | PatientPosition,
    initlaseriso_mm: ArrayLike | None = None,
) -> RigidTransform:
    """Setup error ``T`` (reference → verification patient mm) from a displacement in table-top terms.

    The patient is displaced **as if the table top had been moved** by ``(lat, lng, vrt)`` mm and
    rotated by ``Rz(rtn) Rx(pitch) Ry(roll)`` about the isocenter, from the planned position.
    :func:`couch_correction` of the result is the exact inverse motion (for translations only:
    ``lat/lng/vrt`` with opposite signs). ``initlaseriso_mm`` defaults to the planned isocenter
    (lasers on the planned isocenter, no couch offset).

    >>> t = setup_error_from_table_top(lat_mm=2, vrt_mm=-1, planned_isocenter_mm=(0, 0, 0), patient_position="HFS")
    >>> t.translation_mm  # patient 2 mm to the left and 1 mm lower (= posterior when supine)
    array([2., 1., 0.])
    """
    a_mat = patient_axes_in_table_top(patient_position)
    p_iso = np.asarray(_vec3(planned_isocenter_mm, "planned isocenter"))
    q = p_iso if initlaseriso_mm is None else np.asarray(_vec3(initlaseriso_mm, "INITLASERISO"))
    r_t = rot_z(rtn_deg) @ rot_x(pitch_deg) @ rot_y(roll_deg)
    r_p = a_mat.T @ r_t @ a_mat
    t_p = a_mat.T @ np.array([lat_mm, lng_mm, vrt_mm], dtype=float)
    m = np.eye(4)
    m[:3, :3] = r_p
    m[:3, 3] = q + t_p - r_p @ p_iso
    return RigidTransform(m)
