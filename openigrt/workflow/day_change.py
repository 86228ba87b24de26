"""The patient of the day: a smooth non-rigid change built from the plan's structures (issue 12).

``openigrt acquire … --deform BLADDER,RECTUM,WEIGHT --structure-set RS`` images a patient whose
bladder has grown by ``BLADDER`` mm (in diameter, away from its base on the pelvic floor), whose rectum pushes the tissue in front of
it by ``RECTUM`` mm towards the target, and who lost ``WEIGHT`` mm at the skin, on top of the rigid
setup error. The components (:mod:`openigrt.sim.deformation`) are placed from the structure set
of the plan: the BLADDER / RECTUM ROIs (centroid, equivalent-sphere radius) and BODY (axial centre
and mean radius); bone (CT > 180 HU inside BODY, not the markers) does not deform. The target's own rigid motion is the
least-squares rigid motion of the PTV's voxels; the markers' that of the marker points.

:func:`day_change` returns a :class:`DayChange`, which :func:`openigrt.workflow.acquire.acquire`
applies and documents in ``truth.json``:

* ``transform`` / ``expected_couch_correction`` — the rigid setup error: the truth of the **bony
  anatomy** (whole-volume 3D/3D, 2D/2D and simple 2D on bone);
* ``target_transform`` / ``expected_couch_correction_target`` — setup error ∘ the target's own
  motion: the truth of a **match on a region of interest around the target**;
* ``marker_transform`` / ``expected_couch_correction_markers`` — the truth of a **marker match**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from openigrt.errors import PreconditionError
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.iod.rt_structure_set import RTStructureSet
from openigrt.sim.deformation import Deformation, LocalPush, OrganFilling, WeightLoss, rigid_motion

__all__ = ["DayChange", "day_change", "parse_deform", "BONE_HU"]

#: Voxels above this (HU) inside the body, in pieces of at least BONE_MIN_ML, are bone: they do not deform.
BONE_HU = 180.0
BONE_MIN_ML = 2.0
#: Where the bladder's fixed base lies from its centre (unit vector, patient LPS: posterior, inferior).
BLADDER_BASE_DIRECTION = np.array([0.0, 1.0, -1.0]) / np.sqrt(2.0)
#: Width of the rectum's push (Gaussian sigma, mm).
RECTUM_PUSH_SIGMA_MM = 25.0


@dataclass(frozen=True, eq=False)
class DayChange:
    """A deformation and the points whose rigid motion is the target's / the markers' truth."""

    deformation: Deformation
    target_points_mm: NDArray[np.float64]
    marker_points_mm: NDArray[np.float64]
    request: dict[str, float]

    def target_motion(self) -> RigidTransform:
        return rigid_motion(self.deformation, self.target_points_mm)

    def marker_motion(self) -> RigidTransform | None:
        return rigid_motion(self.deformation, self.marker_points_mm) if len(self.marker_points_mm) >= 3 else None

    def as_dict(self) -> dict[str, Any]:
        out = self.deformation.as_dict() | {"requested_mm": self.request,
                                            "target_points": int(len(self.target_points_mm))}
        moved = self.deformation.displacement(self.target_points_mm)
        out["target_displacement_mm"] = {"mean": [round(float(v), 3) for v in moved.mean(axis=0)],
                                         "max": round(float(np.linalg.norm(moved, axis=1).max()), 3)}
        return out


def parse_deform(text: str) -> dict[str, float]:
    """``BLADDER,RECTUM,WEIGHT`` (mm, >= 0) → dict; ValueError with the reason.

    >>> parse_deform("8,5,3")
    {'bladder_mm': 8.0, 'rectum_mm': 5.0, 'weight_loss_mm': 3.0}
    """
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected BLADDER,RECTUM,WEIGHT in mm, got {text!r}") from None
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 or v > 30 for v in values):
        raise ValueError(f"expected three values 0-30 mm BLADDER,RECTUM,WEIGHT, got {text!r}")
    return dict(zip(("bladder_mm", "rectum_mm", "weight_loss_mm"), values))


def _mask(rs: RTStructureSet, name: str, ct: Volume) -> NDArray[np.bool_] | None:
    from openigrt.workflow.matching import structure_mask

    try:
        return structure_mask(rs, name, ct, 0.0)
    except PreconditionError:
        return None


def _centre_radius(mask: NDArray[np.bool_], ct: Volume) -> tuple[NDArray[np.float64], float]:
    kji = np.argwhere(mask)
    centre = ct.index_to_patient_mm(kji[:, ::-1].mean(axis=0)[None])[0]
    volume = mask.sum() * float(np.prod(ct.spacing_mm))
    return centre, float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def _bone(ct: Volume, body: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    """Bone: above BONE_HU inside the body, components of at least BONE_MIN_ML (not markers, not the couch)."""
    from scipy import ndimage

    dense = np.asarray(ct.array) > BONE_HU
    if body is not None:
        dense &= body
    lab, n = ndimage.label(dense)
    if n == 0:
        return dense
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(ct.spacing_mm)) / 1000.0
    keep = sizes >= BONE_MIN_ML
    keep[0] = False
    return keep[lab]


def day_change(ct: Volume, rs: RTStructureSet, *, bladder_mm: float = 0.0, rectum_mm: float = 0.0,
               weight_loss_mm: float = 0.0, marker_points_mm: NDArray[np.float64] | None = None) -> DayChange:
    """The patient-of-the-day deformation from the plan's structures (see the module docstring).

    Raises PreconditionError naming the missing ROI (PTV always; BLADDER, RECTUM, BODY when asked for).
    """
    ptv = _mask(rs, "PTV", ct)
    if ptv is None or not ptv.any():
        raise PreconditionError(f"{rs.source}: a deformation needs the target: no PTV contour")
    target_centre, _ = _centre_radius(ptv, ct)
    components: list[Any] = []
    for name, amount in (("BLADDER", bladder_mm), ("RECTUM", rectum_mm), ("BODY", weight_loss_mm)):
        if amount <= 0:
            continue
        mask = _mask(rs, name, ct)
        if mask is None or not mask.any():
            raise PreconditionError(f"{rs.source}: no {name} contour for the requested {name.lower()} change")
        centre, radius = _centre_radius(mask, ct)
        if name == "BLADDER":  # the base (posterior-inferior, on the pelvic floor) stays; the dome rises forwards
            base = centre + radius * BLADDER_BASE_DIRECTION
            components.append(OrganFilling(tuple(centre), radius, amount, tuple(base), "bladder filling"))  # type: ignore[arg-type]
        elif name == "RECTUM":
            towards = target_centre - centre
            components.append(LocalPush(tuple(centre), tuple(towards / np.linalg.norm(towards)),  # type: ignore[arg-type]
                                        RECTUM_PUSH_SIGMA_MM, amount, "rectum filling"))
        else:
            cols, rows = np.nonzero(mask.any(axis=(0, 1)))[0], np.nonzero(mask.any(axis=(0, 2)))[0]
            radius = 0.25 * (np.ptp(cols) * ct.spacing_mm[0] + np.ptp(rows) * ct.spacing_mm[1])
            components.append(WeightLoss((float(centre[0]), float(centre[1])), float(radius), amount, "weight loss"))
    deformation = Deformation.build(ct, components, bone_mask=_bone(ct, _mask(rs, "BODY", ct))).check()
    points = ct.index_to_patient_mm(np.argwhere(ptv)[:, ::-1].astype(float))
    markers = np.zeros((0, 3)) if marker_points_mm is None else np.asarray(marker_points_mm, float)
    return DayChange(deformation, points, markers, {"bladder_mm": bladder_mm, "rectum_mm": rectum_mm,
                                                    "weight_loss_mm": weight_loss_mm})
