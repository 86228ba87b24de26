"""IEC 61217 coordinate systems of a C-arm linac and the DICOM patient system (numpy only).

One class per **directed** pair of systems, named by direction (``FixedToGantry`` maps a point
given in IEC FIXED coordinates to IEC GANTRY coordinates; ``GantryToFixed`` is its inverse).
Every class is a frozen dataclass with ``matrix()`` (4×4 homogeneous, ``p_to = M @ p_from``),
``apply(points_mm)`` on ``(N, 3)`` arrays and ``inverse()`` returning the reverse-named class.
Lengths are mm, angles degrees.

Systems (IEC 61217 as used by DICOM PS3.3 C.8.8.25.6 and C.8.8.14.12)::

                    +Zf (up)                       Fixed  f : origin at the isocenter; +Yf from the
                     |   +Yf (towards the gantry)           isocenter towards the gantry; +Zf up;
                     |  /                                   +Xf to the right of an observer at the
                     | /                                    couch foot facing the gantry.
     observer -------o------> +Xf                  Gantry g : rotated about Yf by the gantry angle;
     at couch foot                                          +Zg points from the isocenter to the source.
                                                   BLD    b : rotated about Zg by the collimator angle.
                                                   Receptor r: origin at X-Ray Image Receptor
                                                            Translation (in g), rotated about Zg by the
                                                            X-Ray Image Receptor Angle; +Zr towards
                                                            the source.
                                                   Support s: rotated about Zf by the patient support
                                                            (couch) angle.
                                                   Table top t: translated (lateral, longitudinal,
                                                            vertical) in s, then pitch about Xt, then
                                                            roll about Yt.
                                                   Patient p: DICOM LPS (PS3.3 C.7.6.2.1.1), placed on
                                                            the table top according to Patient Position.

Rotation sign (IEC 61217 and PS3.3 C.8.8.25.6.2): an increasing angle is a **clockwise** rotation
seen from the origin looking along the positive rotation axis, which is a **right-handed**
rotation about that axis. Hence:

* ``GantryToFixed``: ``v_f = Ry(gantry) v_g``. Gantry 90° puts the source at +Xf (the patient's
  left for HFS: the "LT LAT" field of a real Eclipse plan in ``tests/data/real``).
* ``PatientSupportToFixed``: ``v_f = Rz(couch) v_s`` (counter-clockwise seen from above).
* ``BeamLimitingDeviceToGantry``: ``v_g = Rz(collimator) v_b``.
* ``ImageReceptorToGantry``: ``v_g = Rz(receptor angle) v_r + translation`` (PS3.3 C.8.8.2: a
  positive X-Ray Image Receptor Angle is counter-clockwise seen from the source).
* ``TableTopToPatientSupport``: ``v_s = (lat, lng, vrt) + Rx(pitch) Ry(roll) v_t``; pitch is
  applied before roll (PS3.3 C.8.8.14.12). The Table Top Eccentric system is taken equal to the
  Patient Support system (eccentric angle and axis distance 0).

Patient on the table top (DICOM Patient Position, PS3.3 C.7.3.1.1.2; table in PS3.17 FFF.1.2.2
re-expressed in IEC table-top axes): the table-top origin is the point rigidly attached to the
table top that sits at the isocenter when the table top is at its planned position, and the
patient's planned isocenter (patient mm) is attached to it:
``v_t = A(position) @ (p - isocenter)``, with the columns of ``A`` the table-top components of
the patient's +x (left), +y (posterior) and +z (head) unit vectors:

======== ============ ============ ============
position +x (left)    +y (post.)   +z (head)
======== ============ ============ ============
HFS      +Xt          -Zt          +Yt
HFP      -Xt          +Zt          +Yt
FFS      -Xt          -Zt          -Yt
FFP      +Xt          +Zt          -Yt
HFDR     +Zt          +Xt          +Yt
HFDL     -Zt          -Xt          +Yt
FFDR     +Zt          -Xt          -Yt
FFDL     -Zt          +Xt          -Yt
======== ============ ============ ============

>>> import numpy as np
>>> np.round(GantryToFixed(gantry_angle_deg=90).apply([[0.0, 0.0, 1000.0]]), 6)  # the source
array([[1000.,    0.,    0.]])
>>> PatientToTableTop(patient_position="HFS", isocenter_mm=(0, 0, 0)).apply([[10.0, 0, 0]])
array([[10.,  0.,  0.]])
>>> PatientToTableTop(patient_position="FFS", isocenter_mm=(0, 0, 0)).apply([[10.0, 0, 0]])
array([[-10.,   0.,   0.]])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.rigid import RigidTransform

__all__ = [
    "PatientPosition",
    "patient_axes_in_table_top",
    "rot_x",
    "rot_y",
    "rot_z",
    "FixedToGantry",
    "GantryToFixed",
    "GantryToBeamLimitingDevice",
    "BeamLimitingDeviceToGantry",
    "GantryToImageReceptor",
    "ImageReceptorToGantry",
    "FixedToPatientSupport",
    "PatientSupportToFixed",
    "PatientSupportToTableTop",
    "TableTopToPatientSupport",
    "PatientToTableTop",
    "TableTopToPatient",
    "PatientToFixed",
    "FixedToPatient",
]


class PatientPosition(str, Enum):
    """DICOM Patient Position (0018,5100) defined terms for a recumbent patient (PS3.3 C.7.3.1.1.2)."""

    HFS = "HFS"
    HFP = "HFP"
    FFS = "FFS"
    FFP = "FFP"
    HFDR = "HFDR"
    HFDL = "HFDL"
    FFDR = "FFDR"
    FFDL = "FFDL"

    @classmethod
    def parse(cls, value: str | PatientPosition) -> PatientPosition:
        """Convert a string (case and surrounding spaces ignored) or raise ValueError naming the value."""
        if isinstance(value, PatientPosition):
            return value
        try:
            return cls(str(value).strip().upper())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValueError(f"Patient Position (0018,5100) {value!r} is not supported (known: {known})") from None


# Columns: table-top components (Xt, Yt, Zt) of the patient unit vectors +x (left), +y (posterior), +z (head).
_AXES: dict[PatientPosition, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    PatientPosition.HFS: ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    PatientPosition.HFP: ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    PatientPosition.FFS: ((-1, 0, 0), (0, 0, -1), (0, -1, 0)),
    PatientPosition.FFP: ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    PatientPosition.HFDR: ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    PatientPosition.HFDL: ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
    PatientPosition.FFDR: ((0, 0, 1), (-1, 0, 0), (0, -1, 0)),
    PatientPosition.FFDL: ((0, 0, -1), (1, 0, 0), (0, -1, 0)),
}


def patient_axes_in_table_top(patient_position: str | PatientPosition) -> NDArray[np.float64]:
    """3×3 rotation ``A`` with ``v_table_top = A @ v_patient`` (see the module table).

    >>> patient_axes_in_table_top("HFS") @ [0, 1, 0]  # posterior is down for a supine patient
    array([ 0.,  0., -1.])
    """
    cols = _AXES[PatientPosition.parse(patient_position)]
    return np.array(cols, dtype=float).T


def rot_x(angle_deg: float) -> NDArray[np.float64]:
    """Right-handed rotation about x (IEC: clockwise seen from the origin along +x)."""
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_deg: float) -> NDArray[np.float64]:
    """Right-handed rotation about y (IEC: clockwise seen from the origin along +y)."""
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle_deg: float) -> NDArray[np.float64]:
    """Right-handed rotation about z (IEC: clockwise seen from the origin along +z)."""
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _homogeneous(rotation: NDArray[np.float64], translation: ArrayLike = (0.0, 0.0, 0.0)) -> NDArray[np.float64]:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = np.asarray(translation, dtype=float)
    return m


def _invert(m: NDArray[np.float64]) -> NDArray[np.float64]:
    r = m[:3, :3]
    return _homogeneous(r.T, -r.T @ m[:3, 3])


def _vec3(value: ArrayLike, name: str) -> tuple[float, float, float]:
    v = np.asarray(value, dtype=float).ravel()
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} needs 3 finite values, got {value!r}")
    return (float(v[0]), float(v[1]), float(v[2]))


class _FrameTransform:
    """Mixin: ``apply``, ``as_rigid`` on top of a ``matrix()`` (4×4, ``p_to = M @ p_from``)."""

    def matrix(self) -> NDArray[np.float64]:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Map points ``(N, 3)`` (mm) from the source system to the target system."""
        p = np.atleast_2d(np.asarray(points_mm, dtype=float))
        m = self.matrix()
        return p @ m[:3, :3].T + m[:3, 3]

    def apply_vectors(self, vectors: ArrayLike) -> NDArray[np.float64]:
        """Map direction vectors ``(N, 3)`` (rotation only)."""
        v = np.atleast_2d(np.asarray(vectors, dtype=float))
        return v @ self.matrix()[:3, :3].T

    def as_rigid(self) -> RigidTransform:
        """The same mapping as a :class:`~openigrt.geometry.rigid.RigidTransform`."""
        return RigidTransform(self.matrix())


# --------------------------------------------------------------------------- gantry
@dataclass(frozen=True)
class GantryToFixed(_FrameTransform):
    """IEC GANTRY → IEC FIXED: ``v_f = Ry(gantry_angle) v_g`` (IEC 61217; PS3.3 C.8.8.25.6).

    For a kV imaging beam ``gantry_angle_deg`` is the kV source angle in IEC FIXED (SPEC PLAN-3).
    """

    gantry_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _homogeneous(rot_y(self.gantry_angle_deg))

    def inverse(self) -> FixedToGantry:
        return FixedToGantry(gantry_angle_deg=self.gantry_angle_deg)


@dataclass(frozen=True)
class FixedToGantry(_FrameTransform):
    """IEC FIXED → IEC GANTRY: ``v_g = Ry(gantry_angle)ᵀ v_f`` (inverse of :class:`GantryToFixed`)."""

    gantry_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _invert(GantryToFixed(gantry_angle_deg=self.gantry_angle_deg).matrix())

    def inverse(self) -> GantryToFixed:
        return GantryToFixed(gantry_angle_deg=self.gantry_angle_deg)


# --------------------------------------------------------------------------- beam limiting device
@dataclass(frozen=True)
class BeamLimitingDeviceToGantry(_FrameTransform):
    """IEC BEAM LIMITING DEVICE → IEC GANTRY: ``v_g = Rz(bld_angle) v_b`` (Beam Limiting Device Angle)."""

    beam_limiting_device_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _homogeneous(rot_z(self.beam_limiting_device_angle_deg))

    def inverse(self) -> GantryToBeamLimitingDevice:
        return GantryToBeamLimitingDevice(beam_limiting_device_angle_deg=self.beam_limiting_device_angle_deg)


@dataclass(frozen=True)
class GantryToBeamLimitingDevice(_FrameTransform):
    """IEC GANTRY → IEC BEAM LIMITING DEVICE (inverse of :class:`BeamLimitingDeviceToGantry`)."""

    beam_limiting_device_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _invert(BeamLimitingDeviceToGantry(
            beam_limiting_device_angle_deg=self.beam_limiting_device_angle_deg).matrix())

    def inverse(self) -> BeamLimitingDeviceToGantry:
        return BeamLimitingDeviceToGantry(beam_limiting_device_angle_deg=self.beam_limiting_device_angle_deg)


# --------------------------------------------------------------------------- image receptor
@dataclass(frozen=True)
class ImageReceptorToGantry(_FrameTransform):
    """IEC X-RAY IMAGE RECEPTOR → IEC GANTRY (PS3.3 C.8.8.2, X-Ray Image Receptor Translation/Angle).

    ``v_g = Rz(receptor_angle) v_r + receptor_translation``. The translation is the position of
    the receptor origin in IEC GANTRY; its z is ``SAD − SID`` (negative: below the isocenter at
    gantry 0).
    """

    receptor_translation_mm: tuple[float, float, float] = (0.0, 0.0, -500.0)
    receptor_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "receptor_translation_mm",
                           _vec3(self.receptor_translation_mm, "X-Ray Image Receptor Translation"))

    def matrix(self) -> NDArray[np.float64]:
        return _homogeneous(rot_z(self.receptor_angle_deg), self.receptor_translation_mm)

    def inverse(self) -> GantryToImageReceptor:
        return GantryToImageReceptor(receptor_translation_mm=self.receptor_translation_mm,
                                     receptor_angle_deg=self.receptor_angle_deg)


@dataclass(frozen=True)
class GantryToImageReceptor(_FrameTransform):
    """IEC GANTRY → IEC X-RAY IMAGE RECEPTOR (inverse of :class:`ImageReceptorToGantry`)."""

    receptor_translation_mm: tuple[float, float, float] = (0.0, 0.0, -500.0)
    receptor_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "receptor_translation_mm",
                           _vec3(self.receptor_translation_mm, "X-Ray Image Receptor Translation"))

    def matrix(self) -> NDArray[np.float64]:
        return _invert(self.inverse().matrix())

    def inverse(self) -> ImageReceptorToGantry:
        return ImageReceptorToGantry(receptor_translation_mm=self.receptor_translation_mm,
                                     receptor_angle_deg=self.receptor_angle_deg)


# --------------------------------------------------------------------------- patient support, table top
@dataclass(frozen=True)
class PatientSupportToFixed(_FrameTransform):
    """IEC PATIENT SUPPORT → IEC FIXED: ``v_f = Rz(patient_support_angle) v_s`` (Patient Support Angle)."""

    patient_support_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _homogeneous(rot_z(self.patient_support_angle_deg))

    def inverse(self) -> FixedToPatientSupport:
        return FixedToPatientSupport(patient_support_angle_deg=self.patient_support_angle_deg)


@dataclass(frozen=True)
class FixedToPatientSupport(_FrameTransform):
    """IEC FIXED → IEC PATIENT SUPPORT (inverse of :class:`PatientSupportToFixed`)."""

    patient_support_angle_deg: float = 0.0

    def matrix(self) -> NDArray[np.float64]:
        return _invert(self.inverse().matrix())

    def inverse(self) -> PatientSupportToFixed:
        return PatientSupportToFixed(patient_support_angle_deg=self.patient_support_angle_deg)


@dataclass(frozen=True)
class TableTopToPatientSupport(_FrameTransform):
    """IEC TABLE TOP → IEC PATIENT SUPPORT: ``v_s = (lat, lng, vrt) + Rx(pitch) Ry(roll) v_t``.

    ``table_top_translation_mm`` = (lateral Xs, longitudinal Ys, vertical Zs) displacement of the
    table-top origin from the isocenter; pitch (about Xt) is applied before roll (about Yt),
    PS3.3 C.8.8.14.12, about the table-top origin.
    """

    table_top_translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    table_top_pitch_angle_deg: float = 0.0
    table_top_roll_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "table_top_translation_mm",
                           _vec3(self.table_top_translation_mm, "table_top_translation_mm"))

    def matrix(self) -> NDArray[np.float64]:
        r = rot_x(self.table_top_pitch_angle_deg) @ rot_y(self.table_top_roll_angle_deg)
        return _homogeneous(r, self.table_top_translation_mm)

    def inverse(self) -> PatientSupportToTableTop:
        return PatientSupportToTableTop(table_top_translation_mm=self.table_top_translation_mm,
                                        table_top_pitch_angle_deg=self.table_top_pitch_angle_deg,
                                        table_top_roll_angle_deg=self.table_top_roll_angle_deg)


@dataclass(frozen=True)
class PatientSupportToTableTop(_FrameTransform):
    """IEC PATIENT SUPPORT → IEC TABLE TOP (inverse of :class:`TableTopToPatientSupport`)."""

    table_top_translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    table_top_pitch_angle_deg: float = 0.0
    table_top_roll_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "table_top_translation_mm",
                           _vec3(self.table_top_translation_mm, "table_top_translation_mm"))

    def matrix(self) -> NDArray[np.float64]:
        return _invert(self.inverse().matrix())

    def inverse(self) -> TableTopToPatientSupport:
        return TableTopToPatientSupport(table_top_translation_mm=self.table_top_translation_mm,
                                        table_top_pitch_angle_deg=self.table_top_pitch_angle_deg,
                                        table_top_roll_angle_deg=self.table_top_roll_angle_deg)


# --------------------------------------------------------------------------- patient
@dataclass(frozen=True)
class PatientToTableTop(_FrameTransform):
    """DICOM patient (LPS, mm) → IEC TABLE TOP: ``v_t = A(position) (p − isocenter)``.

    ``isocenter_mm`` is the planned isocenter in patient coordinates (Isocenter Position
    (300A,012C)); see the module docstring for ``A``.
    """

    patient_position: PatientPosition = PatientPosition.HFS
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patient_position", PatientPosition.parse(self.patient_position))
        object.__setattr__(self, "isocenter_mm", _vec3(self.isocenter_mm, "Isocenter Position"))

    def matrix(self) -> NDArray[np.float64]:
        a = patient_axes_in_table_top(self.patient_position)
        return _homogeneous(a, -a @ np.asarray(self.isocenter_mm))

    def inverse(self) -> TableTopToPatient:
        return TableTopToPatient(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm)


@dataclass(frozen=True)
class TableTopToPatient(_FrameTransform):
    """IEC TABLE TOP → DICOM patient (inverse of :class:`PatientToTableTop`)."""

    patient_position: PatientPosition = PatientPosition.HFS
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patient_position", PatientPosition.parse(self.patient_position))
        object.__setattr__(self, "isocenter_mm", _vec3(self.isocenter_mm, "Isocenter Position"))

    def matrix(self) -> NDArray[np.float64]:
        return _invert(self.inverse().matrix())

    def inverse(self) -> PatientToTableTop:
        return PatientToTableTop(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm)


@dataclass(frozen=True)
class PatientToFixed(_FrameTransform):
    """DICOM patient → IEC FIXED through table top and patient support (the chain of this module).

    ``v_f = Rz(couch) [t + Rx(pitch) Ry(roll) A (p − isocenter)]``. With all table-top parameters
    zero, the planned isocenter maps to the IEC FIXED origin (the machine isocenter).
    """

    patient_position: PatientPosition = PatientPosition.HFS
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    patient_support_angle_deg: float = 0.0
    table_top: TableTopToPatientSupport = field(default_factory=TableTopToPatientSupport)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patient_position", PatientPosition.parse(self.patient_position))
        object.__setattr__(self, "isocenter_mm", _vec3(self.isocenter_mm, "Isocenter Position"))

    def matrix(self) -> NDArray[np.float64]:
        p2t = PatientToTableTop(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm)
        s2f = PatientSupportToFixed(patient_support_angle_deg=self.patient_support_angle_deg)
        return s2f.matrix() @ self.table_top.matrix() @ p2t.matrix()

    def inverse(self) -> FixedToPatient:
        return FixedToPatient(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm,
                              patient_support_angle_deg=self.patient_support_angle_deg, table_top=self.table_top)


@dataclass(frozen=True)
class FixedToPatient(_FrameTransform):
    """IEC FIXED → DICOM patient (inverse of :class:`PatientToFixed`)."""

    patient_position: PatientPosition = PatientPosition.HFS
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    patient_support_angle_deg: float = 0.0
    table_top: TableTopToPatientSupport = field(default_factory=TableTopToPatientSupport)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patient_position", PatientPosition.parse(self.patient_position))
        object.__setattr__(self, "isocenter_mm", _vec3(self.isocenter_mm, "Isocenter Position"))

    def matrix(self) -> NDArray[np.float64]:
        return _invert(self.inverse().matrix())

    def inverse(self) -> PatientToFixed:
        return PatientToFixed(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm,
                              patient_support_angle_deg=self.patient_support_angle_deg, table_top=self.table_top)
