"""Marker match results as (retired) curves in an acquired RT Image (SPEC IOD-5).

One curve group per marker, groups ``5000``, ``5002``, … ``501E`` (PS3.3-2004 C.10.2, retired):

==========================  ===========  =======================================
attribute                   VR           value
==========================  ===========  =======================================
Curve Dimensions (50xx,0005)  US         2
Number of Points (50xx,0010)  US         1
Type of Data (50xx,0020)      CS         ``POLY``
Curve Description (50xx,0022) LO        the marker name (optional)
Axis Units (50xx,0030)        SH         ``PIXL\\PIXL``
Axis Labels (50xx,0040)       SH         ``Marker\\Marker``
Data Value Representation     US         3 (IEEE double)
(50xx,0103)
Curve Data (50xx,3000)        OB         2 float64 little endian: **(column, row)**
==========================  ===========  =======================================

Coordinates are continuous 0-based pixel indices: ``(0.0, 0.0)`` is the centre of the top-left
pixel, the first value runs along a row (column index), the second down the image (row index)
— the order of the curve's two dimensions (x, y), and of ``Volume``'s index convention.

VRs survive an Implicit VR Little Endian round trip without registering anything: pydicom's
repeater dictionary already types ``50xx0005`` … ``50xx0103`` (US/CS/LO/SH), and Curve Data is
``OB or OW`` there, which keeps the raw bytes; :func:`read_marker_curves` decodes those bytes as
little-endian float64 whatever the VR label. No global pydicom state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from openigrt.iod.build.common import build_error, check_text, check_vector

#: First curve group and the number of repeating groups available (5000-501E, even).
FIRST_CURVE_GROUP = 0x5000
MAX_CURVES = 16
#: Data Value Representation 3 = double (PS3.3-2004 C.10.2.1.2).
DATA_VALUE_REPRESENTATION_DOUBLE = 3


@dataclass(frozen=True)
class MarkerPixel:
    """A matched marker position in an RT Image: ``(column, row)`` 0-based pixel indices."""

    column: float
    row: float
    name: str = ""

    def __post_init__(self) -> None:
        col, row = check_vector("CurveData", (self.column, self.row), 2)
        object.__setattr__(self, "column", col)
        object.__setattr__(self, "row", row)
        check_text("CurveDescription", self.name, max_len=64, required=False)


def add_marker_curves(ds: Dataset, markers: Sequence[MarkerPixel]) -> None:
    """Write one curve group per marker into the RT Image *ds* (SPEC IOD-5).

    Raises BuildError when there is no marker, more than :data:`MAX_CURVES`, a marker outside
    the image, or curve groups are already present.
    """
    if not markers:
        raise build_error("CurveData", "no marker position to store")
    if len(markers) > MAX_CURVES:
        raise build_error("CurveData", f"at most {MAX_CURVES} curve groups (5000-501E), got {len(markers)} markers")
    if any(Tag(g, 0x0005) in ds for g in range(FIRST_CURVE_GROUP, FIRST_CURVE_GROUP + 2 * MAX_CURVES, 2)):
        raise build_error("CurveData", "the image already holds curves")
    rows, cols = int(ds.Rows), int(ds.Columns)
    for i, m in enumerate(markers):
        if not (-0.5 <= m.column <= cols - 0.5 and -0.5 <= m.row <= rows - 0.5):
            raise build_error("CurveData", f"marker {i + 1} at (column {m.column}, row {m.row}) is outside the "
                              f"{cols}x{rows} image")
        _write_curve(ds, FIRST_CURVE_GROUP + 2 * i, m)


def _write_curve(ds: Dataset, group: int, m: MarkerPixel) -> None:
    def put(elem: int, vr: str, value: object) -> None:
        ds[Tag(group, elem)] = DataElement(Tag(group, elem), vr, value)

    put(0x0005, "US", 2)
    put(0x0010, "US", 1)
    put(0x0020, "CS", "POLY")
    if m.name:
        put(0x0022, "LO", m.name)
    put(0x0030, "SH", ["PIXL", "PIXL"])
    put(0x0040, "SH", ["Marker", "Marker"])
    put(0x0103, "US", DATA_VALUE_REPRESENTATION_DOUBLE)
    put(0x3000, "OB", np.asarray([m.column, m.row], dtype="<f8").tobytes())


def read_marker_curves(ds: Dataset) -> list[MarkerPixel]:
    """Read back the marker curves written by :func:`add_marker_curves` (float64 column, row).

    Groups that are not 2-D, 1-point, double POLY curves are skipped (tolerant reading).
    """
    out = []
    for group in range(FIRST_CURVE_GROUP, FIRST_CURVE_GROUP + 2 * MAX_CURVES, 2):
        if Tag(group, 0x3000) not in ds:
            continue
        try:
            dims = int(ds[Tag(group, 0x0005)].value)
            npts = int(ds[Tag(group, 0x0010)].value)
            dvr = int(ds[Tag(group, 0x0103)].value)
        except (KeyError, TypeError, ValueError):
            continue
        data = ds[Tag(group, 0x3000)].value
        if dims != 2 or npts != 1 or dvr != DATA_VALUE_REPRESENTATION_DOUBLE or len(data) < 16:
            continue
        col, row = np.frombuffer(bytes(data)[:16], dtype="<f8")
        name = ds.get(Tag(group, 0x0022))
        out.append(MarkerPixel(float(col), float(row), str(name.value) if name is not None else ""))
    return out
