"""Projection geometry of an RT Image (kV or MV): the single source of truth for DRRs and 2D matching.

:class:`ProjectionGeometry` holds exactly the RT Image geometry attributes we read and write
(PS3.3 C.8.8.2, SPEC IOD-4 / PLAN-5) plus the plan context (isocenter, patient position, couch
angle) and maps between four spaces::

    patient (LPS mm) --PatientToFixed--> IEC FIXED --FixedToGantry--> IEC GANTRY
        --central projection from the source (0, 0, SAD)_g onto the plane z_g = SAD − SID-->
    IEC X-RAY IMAGE RECEPTOR (x_r, y_r) --RT Image Position, Image Plane Pixel Spacing--> pixel (col, row)

Pixel convention (PS3.3 C.8.8.2.7, RT Image Plane NORMAL): the image is seen from the source
(beam's eye view); **columns** run along +Xr and **rows** along −Yr; ``RT Image Position``
(3002,0012) = (x_r, y_r) of the **centre** of the first transmitted (top-left) pixel;
``Image Plane Pixel Spacing`` (3002,0011) = (row spacing, column spacing), i.e. (Δy_r, Δx_r)::

    (col 0, row 0) = RT Image Position            +Yr
         +------------------------------> col      ^
         |                                         |
         |              o receptor origin          +----> +Xr   (+Zr towards the source)
         v row
    x_r = RTImagePosition[0] + col * spacing[1]
    y_r = RTImagePosition[1] - row * spacing[0]

Pixel coordinates are continuous ``(col, row)`` with integers at pixel centres, the top-left
pixel being (0, 0), i.e. ``array[row, col]``. When RT Image Position is absent the image is
centred on the receptor axis (SPEC PLAN-5): ``((1 − columns)/2 · Δx, (rows − 1)/2 · Δy)``.

>>> g = ProjectionGeometry(gantry_angle_deg=0.0, rows=768, columns=1024, pixel_spacing_mm=(0.388, 0.388))
>>> g.project([g.isocenter_mm])  # the isocenter lands on the receptor axis = image centre
array([[511.5, 383.5]])
>>> g.magnification
1.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openigrt.geometry.iec61217 import (
    FixedToGantry,
    ImageReceptorToGantry,
    PatientPosition,
    PatientToFixed,
    _vec3,
    rot_z,
)

__all__ = [
    "ProjectionGeometry",
    "kv_geometry",
    "mv_geometry",
    "KV_ROWS",
    "KV_COLUMNS",
    "KV_PIXEL_SPACING_MM",
    "KV_SID_MM",
    "MV_ROWS",
    "MV_COLUMNS",
    "MV_PIXEL_SPACING_MM",
    "MV_SID_MM",
    "SAD_MM",
    "RECEPTOR_Z_TOLERANCE_MM",
]

#: Radiation Machine SAD of a C-arm linac (mm).
SAD_MM = 1000.0
#: Default kV imager (a 40 × 30 cm flat panel as on current linacs): 1024 columns × 768 rows, 0.388 mm, SID 1500 mm.
KV_COLUMNS, KV_ROWS, KV_PIXEL_SPACING_MM, KV_SID_MM = 1024, 768, 0.388, 1500.0
#: Default MV portal imager: 1024 columns × 768 rows, 0.392 mm, SID 1500 mm.
MV_COLUMNS, MV_ROWS, MV_PIXEL_SPACING_MM, MV_SID_MM = 1024, 768, 0.392, 1500.0
#: X-Ray Image Receptor Translation z must equal SAD − SID within this (mm) when given.
RECEPTOR_Z_TOLERANCE_MM = 1.0


@dataclass(frozen=True)
class ProjectionGeometry:
    """Conical projection of one RT Image (SPEC SIM-2, IOD-4, PLAN-5; PS3.3 C.8.8.2).

    Parameters
    ----------
    gantry_angle_deg
        Gantry Angle (300A,011E): MV gantry angle, or for a kV image the kV **source** angle in
        IEC FIXED (SPEC PLAN-3).
    rows, columns
        Image size in pixels.
    pixel_spacing_mm
        Image Plane Pixel Spacing (3002,0011) ``(row spacing, column spacing)`` at the receptor plane.
    sad_mm, sid_mm
        Radiation Machine SAD (3002,0022) and RT Image SID (3002,0026).
    isocenter_mm
        Isocenter Position (300A,012C) in patient coordinates (mm).
    patient_position
        Patient Position (0018,5100), e.g. ``"HFS"``.
    patient_support_angle_deg
        Patient Support Angle (300A,0122), IEC 61217 (couch rotation).
    receptor_translation_mm
        X-Ray Image Receptor Translation (3002,000D) in IEC GANTRY; default ``(0, 0, SAD − SID)``.
        Its z must equal ``SAD − SID`` within :data:`RECEPTOR_Z_TOLERANCE_MM`.
    receptor_angle_deg
        X-Ray Image Receptor Angle (3002,000E).
    rt_image_position_mm
        RT Image Position (3002,0012), (x, y) of the top-left pixel centre; default centred.
    """

    gantry_angle_deg: float
    rows: int = KV_ROWS
    columns: int = KV_COLUMNS
    pixel_spacing_mm: tuple[float, float] = (KV_PIXEL_SPACING_MM, KV_PIXEL_SPACING_MM)
    sad_mm: float = SAD_MM
    sid_mm: float = KV_SID_MM
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    patient_position: PatientPosition = PatientPosition.HFS
    patient_support_angle_deg: float = 0.0
    receptor_translation_mm: tuple[float, float, float] | None = None
    receptor_angle_deg: float = 0.0
    rt_image_position_mm: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "patient_position", PatientPosition.parse(self.patient_position))
        setter(self, "isocenter_mm", _vec3(self.isocenter_mm, "Isocenter Position"))
        for name in ("gantry_angle_deg", "sad_mm", "sid_mm", "patient_support_angle_deg", "receptor_angle_deg"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise ValueError(f"ProjectionGeometry.{name} must be finite, got {value}")
            setter(self, name, value)
        if int(self.rows) < 1 or int(self.columns) < 1:
            raise ValueError(f"Rows/Columns must be >= 1, got {self.rows} x {self.columns}")
        setter(self, "rows", int(self.rows))
        setter(self, "columns", int(self.columns))
        spacing = tuple(float(v) for v in np.asarray(self.pixel_spacing_mm, dtype=float).ravel())
        if len(spacing) != 2 or not all(v > 0 for v in spacing):
            raise ValueError(f"Image Plane Pixel Spacing needs 2 positive values, got {self.pixel_spacing_mm!r}")
        setter(self, "pixel_spacing_mm", spacing)
        if not (self.sad_mm > 0 and self.sid_mm > 0):
            raise ValueError(f"SAD and SID must be > 0, got SAD {self.sad_mm}, SID {self.sid_mm}")
        self._init_receptor(setter)

    def _init_receptor(self, setter: Any) -> None:
        z = self.sad_mm - self.sid_mm
        if self.receptor_translation_mm is None:
            setter(self, "receptor_translation_mm", (0.0, 0.0, z))
        else:
            t = _vec3(self.receptor_translation_mm, "X-Ray Image Receptor Translation")
            if abs(t[2] - z) > RECEPTOR_Z_TOLERANCE_MM:
                raise ValueError(
                    f"X-Ray Image Receptor Translation z = {t[2]:g} mm but SAD - SID = {z:g} mm "
                    f"(PS3.3 C.8.8.2: the receptor origin lies SID from the source)")
            setter(self, "receptor_translation_mm", t)
        if self.rt_image_position_mm is None:
            dy, dx = self.pixel_spacing_mm
            setter(self, "rt_image_position_mm", ((1 - self.columns) / 2 * dx, (self.rows - 1) / 2 * dy))
        else:
            pos = np.asarray(self.rt_image_position_mm, dtype=float).ravel()
            if pos.shape != (2,) or not np.all(np.isfinite(pos)):
                raise ValueError(f"RT Image Position needs 2 finite values, got {self.rt_image_position_mm!r}")
            setter(self, "rt_image_position_mm", (float(pos[0]), float(pos[1])))

    # ------------------------------------------------------------------ derived quantities
    @property
    def magnification(self) -> float:
        """SID / SAD: size on the receptor of an object at the isocenter plane."""
        return self.sid_mm / self.sad_mm

    def replace(self, **changes: Any) -> ProjectionGeometry:
        """A copy with some fields changed (``dataclasses.replace``).

        Changing SAD or SID without giving ``receptor_translation_mm`` keeps the receptor's
        lateral offset and moves its z to the new ``SAD − SID``.
        """
        if ({"sad_mm", "sid_mm"} & changes.keys()) and "receptor_translation_mm" not in changes:
            sad = changes.get("sad_mm", self.sad_mm)
            sid = changes.get("sid_mm", self.sid_mm)
            tx, ty, _ = self.receptor_translation_mm  # type: ignore[misc]
            changes["receptor_translation_mm"] = (tx, ty, sad - sid)
        return dataclasses.replace(self, **changes)

    def patient_to_gantry_matrix(self) -> NDArray[np.float64]:
        """4×4 affine taking patient mm to IEC GANTRY mm (PatientToFixed then FixedToGantry)."""
        p2f = PatientToFixed(patient_position=self.patient_position, isocenter_mm=self.isocenter_mm,
                             patient_support_angle_deg=self.patient_support_angle_deg)
        return FixedToGantry(gantry_angle_deg=self.gantry_angle_deg).matrix() @ p2f.matrix()

    def receptor_to_gantry(self) -> ImageReceptorToGantry:
        """IEC X-RAY IMAGE RECEPTOR → IEC GANTRY for this image."""
        return ImageReceptorToGantry(receptor_translation_mm=self.receptor_translation_mm,  # type: ignore[arg-type]
                                     receptor_angle_deg=self.receptor_angle_deg)

    # ------------------------------------------------------------------ pixel <-> receptor
    def pixel_to_receptor_mm(self, colrow: ArrayLike) -> NDArray[np.float64]:
        """Pixel ``(N, 2)`` (col, row) → receptor plane ``(N, 2)`` (x_r, y_r) in mm."""
        cr = np.atleast_2d(np.asarray(colrow, dtype=float))
        x0, y0 = self.rt_image_position_mm  # type: ignore[misc]
        dy, dx = self.pixel_spacing_mm
        return np.column_stack([x0 + cr[:, 0] * dx, y0 - cr[:, 1] * dy])

    def receptor_mm_to_pixel(self, xy_mm: ArrayLike) -> NDArray[np.float64]:
        """Receptor plane ``(N, 2)`` (x_r, y_r) mm → pixel ``(N, 2)`` (col, row)."""
        xy = np.atleast_2d(np.asarray(xy_mm, dtype=float))
        x0, y0 = self.rt_image_position_mm  # type: ignore[misc]
        dy, dx = self.pixel_spacing_mm
        return np.column_stack([(xy[:, 0] - x0) / dx, (y0 - xy[:, 1]) / dy])

    # ------------------------------------------------------------------ projection
    def project(self, points_mm: ArrayLike) -> NDArray[np.float64]:
        """Project patient points ``(N, 3)`` (mm) to pixel coordinates ``(N, 2)`` = (col, row).

        Central projection from the source onto the receptor plane. Points at or behind the
        source plane give NaN.
        """
        p = np.atleast_2d(np.asarray(points_mm, dtype=float))
        g = self.patient_to_gantry_matrix()
        v = p @ g[:3, :3].T + g[:3, 3]
        denom = self.sad_mm - v[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(denom > 1e-9, self.sid_mm / denom, np.nan)
        xy_g = v[:, :2] * m[:, None]
        tx, ty, _ = self.receptor_translation_mm  # type: ignore[misc]
        r = rot_z(self.receptor_angle_deg)[:2, :2]
        xy_r = (xy_g - [tx, ty]) @ r  # = (R^T (xy_g - t)) row-wise
        return self.receptor_mm_to_pixel(xy_r)

    def source_position_mm(self) -> NDArray[np.float64]:
        """Patient position (mm) of the radiation source, shape ``(3,)``."""
        g_inv = np.linalg.inv(self.patient_to_gantry_matrix())
        return g_inv[:3, :3] @ np.array([0.0, 0.0, self.sad_mm]) + g_inv[:3, 3]

    def detector_frame_patient_mm(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(origin, column_step, row_step)`` in patient mm, each shape ``(3,)``.

        The centre of pixel ``(col, row)`` lies at ``origin + col * column_step + row * row_step``.
        """
        g_inv = np.linalg.inv(self.patient_to_gantry_matrix())
        r2g = self.receptor_to_gantry().matrix()
        m = g_inv @ r2g
        x0, y0 = self.rt_image_position_mm  # type: ignore[misc]
        dy, dx = self.pixel_spacing_mm
        origin = m[:3, :3] @ np.array([x0, y0, 0.0]) + m[:3, 3]
        return origin, m[:3, :3] @ np.array([dx, 0.0, 0.0]), m[:3, :3] @ np.array([0.0, -dy, 0.0])

    def pixel_to_patient_mm(self, colrow: ArrayLike) -> NDArray[np.float64]:
        """Patient position (mm) ``(N, 3)`` of pixel centres ``(N, 2)`` (col, row) on the receptor."""
        cr = np.atleast_2d(np.asarray(colrow, dtype=float))
        o, du, dv = self.detector_frame_patient_mm()
        return o + cr[:, :1] * du + cr[:, 1:2] * dv

    def rays(self, colrow: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Rays through pixel centres: ``(source (3,), unit directions (N, 3))`` in patient mm."""
        s = self.source_position_mm()
        d = self.pixel_to_patient_mm(colrow) - s
        return s, d / np.linalg.norm(d, axis=1, keepdims=True)

    def beam_axis_patient(self) -> NDArray[np.float64]:
        """Unit vector (patient) from the source through the isocenter (the central axis)."""
        d = np.asarray(self.isocenter_mm) - self.source_position_mm()
        return d / np.linalg.norm(d)

    # ------------------------------------------------------------------ DICOM attributes
    def as_rt_image_attributes(self) -> dict[str, Any]:
        """RT Image geometry attributes by DICOM keyword (plain numbers; PS3.3 C.8.8.2, SPEC IOD-4).

        ``IsocenterPosition`` and ``PatientSupportAngle`` belong to the RT Image module's beam
        attributes; ``PatientPosition`` to General Series.
        """
        return {
            "Rows": self.rows,
            "Columns": self.columns,
            "RTImagePlane": "NORMAL",
            "ImagePlanePixelSpacing": list(self.pixel_spacing_mm),
            "RTImagePosition": list(self.rt_image_position_mm),  # type: ignore[arg-type]
            "XRayImageReceptorTranslation": list(self.receptor_translation_mm),  # type: ignore[arg-type]
            "XRayImageReceptorAngle": self.receptor_angle_deg,
            "RadiationMachineSAD": self.sad_mm,
            "RTImageSID": self.sid_mm,
            "GantryAngle": self.gantry_angle_deg,
            "PatientSupportAngle": self.patient_support_angle_deg,
            "IsocenterPosition": list(self.isocenter_mm),
            "PatientPosition": self.patient_position.value,
        }

    @classmethod
    def from_rt_image_attributes(
        cls,
        attrs: Mapping[str, Any] | Any,
        *,
        isocenter_mm: ArrayLike | None = None,
        patient_position: str | PatientPosition | None = None,
    ) -> ProjectionGeometry:
        """Build from an RT Image's attributes (anything with ``.get(keyword)``: a dict or a Dataset).

        Tolerant reading: a missing RT Image Position means centred (PLAN-5); a missing receptor
        translation means ``(0, 0, SAD − SID)``; a translation whose z disagrees with SAD − SID
        (some vendors write ``0\\0\\0``) keeps its x, y and takes z = SAD − SID. ``isocenter_mm``
        and ``patient_position`` override the attributes (e.g. from the private 3273 elements or
        the plan). Raises ValueError naming the attribute when a required one is missing.
        """
        def get(keyword: str, default: Any = None) -> Any:
            value = attrs.get(keyword, default)
            return default if value is None or value == "" else value

        def need(keyword: str) -> Any:
            value = get(keyword)
            if value is None:
                raise ValueError(f"RT Image attribute {keyword} is missing or empty")
            return value

        sad, sid = float(need("RadiationMachineSAD")), float(need("RTImageSID"))
        translation = get("XRayImageReceptorTranslation")
        if translation is not None:
            tx, ty, _ = (float(v) for v in translation)
            translation = (tx, ty, sad - sid)
        iso = isocenter_mm if isocenter_mm is not None else need("IsocenterPosition")
        pos = patient_position if patient_position is not None else need("PatientPosition")
        rt_pos = get("RTImagePosition")
        return cls(
            gantry_angle_deg=float(need("GantryAngle")),
            rows=int(need("Rows")),
            columns=int(need("Columns")),
            pixel_spacing_mm=tuple(float(v) for v in need("ImagePlanePixelSpacing")),  # type: ignore[arg-type]
            sad_mm=sad,
            sid_mm=sid,
            isocenter_mm=tuple(float(v) for v in iso),  # type: ignore[arg-type]
            patient_position=PatientPosition.parse(pos),
            patient_support_angle_deg=float(get("PatientSupportAngle", 0.0)),
            receptor_translation_mm=translation,
            receptor_angle_deg=float(get("XRayImageReceptorAngle", 0.0)),
            rt_image_position_mm=None if rt_pos is None else tuple(float(v) for v in rt_pos),  # type: ignore[arg-type]
        )


def kv_geometry(gantry_angle_deg: float, **kwargs: Any) -> ProjectionGeometry:
    """Default kV imager geometry (SPEC SIM-2): SAD 1000, SID 1500, 1024 × 768 px at 0.388 mm.

    ``gantry_angle_deg`` is the kV source angle in IEC FIXED; other fields by keyword.

    >>> kv_geometry(90.0, isocenter_mm=(0, 0, 0)).columns
    1024
    """
    base: dict[str, Any] = {"rows": KV_ROWS, "columns": KV_COLUMNS, "sid_mm": KV_SID_MM,
                            "pixel_spacing_mm": (KV_PIXEL_SPACING_MM, KV_PIXEL_SPACING_MM)}
    base.update(kwargs)
    return ProjectionGeometry(gantry_angle_deg=gantry_angle_deg, **base)


def mv_geometry(gantry_angle_deg: float, **kwargs: Any) -> ProjectionGeometry:
    """Default MV portal imager geometry: SAD 1000, SID 1500, 1024 × 768 px at 0.392 mm."""
    base: dict[str, Any] = {"rows": MV_ROWS, "columns": MV_COLUMNS, "sid_mm": MV_SID_MM,
                            "pixel_spacing_mm": (MV_PIXEL_SPACING_MM, MV_PIXEL_SPACING_MM)}
    base.update(kwargs)
    return ProjectionGeometry(gantry_angle_deg=gantry_angle_deg, **base)
