"""Our CT couch model put under a real patient's body, on the side gravity pulls to (SPEC SIM-1).

A real planning CT shows the scanner's own table; a virtual patient replaces it (everything
outside the body mask becomes air) by the same flat carbon-fibre couch top the synthetic phantom
lies on (:mod:`openigrt.sim.phantom`): :data:`COUCH_WIDTH_MM` wide, :data:`COUCH_THICKNESS_MM`
thick, skins of :data:`COUCH_SKIN_MM` (``HU.couch_skin``) around a foam core (``HU.couch_core``),
its top :data:`COUCH_GAP_MM` below the lowest point of the body, centred under it, every edge
anti-aliased over one voxel.

"Below" depends on the Patient Position the virtual patient is treated in: the couch lies along
the IEC table top's −Zt axis, which in patient (LPS) coordinates is ``Aᵀ (0, 0, −1)`` with ``A``
of :func:`~openigrt.geometry.iec61217.patient_axes_in_table_top`: posterior (+y) for HFS/FFS,
anterior (−y) for HFP/FFP, the patient's left (+x) for HFDL/FFDL, right (−x) for HFDR/FFDR. Its
width runs along +Xt. When the grid does not reach far enough below the body to hold the couch,
it is extended (air) on that side.

>>> import numpy as np
>>> from openigrt.geometry.volume import Volume
>>> hu = np.full((4, 30, 30), -1000.0, np.float32)
>>> yy, xx = np.mgrid[0:30, 0:30]
>>> body = np.broadcast_to(((yy - 12) ** 2 + (xx - 15) ** 2) < 64, hu.shape).copy()
>>> hu[body] = 40.0
>>> placed = insert_couch(Volume(hu, (-45.0, -45.0, 0.0), (3.0, 3.0, 3.0)), body, "HFS")
>>> placed.down.tolist(), placed.volume.shape  # posterior; 10 rows of air added below the grid
([0.0, 1.0, 0.0], (4, 40, 30))
>>> placed.top_mm  # skin at y = 12 + 1.5 (last body row's far face), couch top 1 mm below it
14.5
>>> # y = 15 mm: the voxel (13.5 … 16.5) is 2/3 couch skin, 1/3 air; y = 30 mm: foam core
>>> round(float(placed.volume.array[0, 20, 15]), 1), float(placed.volume.array[0, 25, 15])
(-133.3, -850.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.volume import Volume
from openigrt.sim.phantom import HU

__all__ = ["PlacedCouch", "insert_couch", "couch_directions", "COUCH_WIDTH_MM", "COUCH_THICKNESS_MM"]

#: Couch top dimensions (mm), as the phantom's.
COUCH_WIDTH_MM = 460.0
COUCH_THICKNESS_MM = 50.0
COUCH_SKIN_MM = 3.0
#: Gap between the lowest body point and the couch top (mm).
COUCH_GAP_MM = 1.0
#: Air kept beyond the couch's far side when the grid is extended (mm).
COUCH_CLEARANCE_MM = 5.0


@dataclass(frozen=True, eq=False)
class PlacedCouch:
    """The CT with the couch painted in, the body mask on the (possibly extended) grid, and where."""

    volume: Volume
    body: NDArray[np.bool_]
    mask: NDArray[np.bool_]
    down: NDArray[np.float64]
    lateral: NDArray[np.float64]
    top_mm: float
    centre_mm: float
    padded_voxels: int

    def truth(self) -> dict[str, object]:
        return {"down": self.down.tolist(), "lateral": self.lateral.tolist(), "top_mm": round(self.top_mm, 3),
                "centre_mm": round(self.centre_mm, 3), "width_mm": COUCH_WIDTH_MM,
                "thickness_mm": COUCH_THICKNESS_MM, "grid_extended_voxels": self.padded_voxels,
                "convention": "couch top at p.down = top_mm (patient mm), width along lateral"}


def couch_directions(patient_position: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(down, lateral) unit vectors in patient coordinates: table-top −Zt and +Xt."""
    a = patient_axes_in_table_top(patient_position)
    down = a.T @ np.array([0.0, 0.0, -1.0])
    lateral = a.T @ np.array([1.0, 0.0, 0.0])
    return np.rint(down) + 0.0, np.rint(lateral) + 0.0


def _pad(volume: Volume, body: NDArray[np.bool_], axis_xyz: int, sign: float, n: int) -> tuple[Volume, NDArray[np.bool_]]:
    """Extend the grid by *n* voxels of air on the +/- side of patient axis *axis_xyz*."""
    array_axis = 2 - axis_xyz
    widths = [(0, 0)] * 3
    widths[array_axis] = (0, n) if sign > 0 else (n, 0)
    a = np.pad(np.asarray(volume.array, np.float32), widths, constant_values=HU.air)
    b = np.pad(body, widths, constant_values=False)
    origin = np.asarray(volume.origin_mm, dtype=float)
    if sign < 0:
        origin[axis_xyz] -= n * volume.spacing_mm[axis_xyz]
    return Volume(a, tuple(origin), volume.spacing_mm), b  # type: ignore[arg-type]


def _coordinate(volume: Volume, axis_xyz: int) -> NDArray[np.float64]:
    n = volume.shape[2 - axis_xyz]
    return volume.origin_mm[axis_xyz] + np.arange(n) * volume.spacing_mm[axis_xyz]


def _ramp(signed_distance: NDArray[np.float64], width: float) -> NDArray[np.float32]:
    return np.clip(0.5 - signed_distance / width, 0.0, 1.0).astype(np.float32)


def insert_couch(volume: Volume, body: NDArray[np.bool_], patient_position: str) -> PlacedCouch:
    """Paint the couch under *body* (axial volume, HU) for *patient_position* (module docstring)."""
    down, lateral = couch_directions(patient_position)
    d_axis, l_axis = int(np.argmax(np.abs(down))), int(np.argmax(np.abs(lateral)))
    d_sign = float(down[d_axis])
    h = volume.spacing_mm[d_axis]
    coords = _coordinate(volume, d_axis) * d_sign  # position along "down"
    other = tuple(a for a in range(3) if a != 2 - d_axis)
    occupied = np.nonzero(body.any(axis=other))[0]
    if occupied.size == 0:
        raise ValueError("insert_couch: empty body mask")
    lowest = float(coords[occupied].max()) + h / 2  # the skin: the far face of the last body voxel
    top = lowest + COUCH_GAP_MM
    need = top + COUCH_THICKNESS_MM + COUCH_CLEARANCE_MM - float(coords.max())
    padded = int(np.ceil(need / h)) if need > 0 else 0
    if padded:
        volume, body = _pad(volume, body, d_axis, d_sign, padded)
    s = _coordinate(volume, d_axis) * d_sign - top  # depth below the couch top
    u_all = _coordinate(volume, l_axis) * float(lateral[l_axis])
    counts = body.sum(axis=tuple(a for a in range(3) if a != 2 - l_axis))
    centre = float((u_all * counts).sum() / counts.sum())
    u = u_all - centre
    across = _ramp(np.abs(u) - COUCH_WIDTH_MM / 2, volume.spacing_mm[l_axis])
    half = COUCH_THICKNESS_MM / 2
    slab = _ramp(np.abs(s - half) - half, h)
    core = _ramp(np.abs(s - half) - (half - COUCH_SKIN_MM), h)
    shape = [1, 1, 1]
    shape[2 - d_axis] = s.size
    lshape = [1, 1, 1]
    lshape[2 - l_axis] = u.size
    outer = across.reshape(lshape) * slab.reshape(shape)
    inner = across.reshape(lshape) * core.reshape(shape)
    hu = np.array(volume.array, dtype=np.float32)
    free = ~body
    hu += np.where(free, outer * (HU.couch_skin - hu), 0.0).astype(np.float32)
    hu += np.where(free, inner * (HU.couch_core - hu), 0.0).astype(np.float32)
    mask = np.broadcast_to(outer >= 0.5, hu.shape) & free
    return PlacedCouch(volume.with_array(hu), body, mask, down, lateral, top * 1.0, centre, padded)
