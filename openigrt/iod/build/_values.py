"""Strict enum conversion for the builders, and the two value lists only builders need.

The shared ``<Attribute>Values`` enums live in :mod:`openigrt.iod.enum` (engineer C); its
``coerce`` is tolerant (readers keep unknown Defined Terms as text). Builders are strict
(docs/ARCHITECTURE.md habit 5): :func:`coerce_enum` turns ``str | Enum`` into the member or raises
:class:`~openigrt.errors.BuildError` naming the attribute (and its tag when it is a DICOM keyword).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from openigrt.iod.build.common import build_error


class ImagerValues(str, Enum):
    """Which beam made an acquired RT Image: the kV imaging tube or the MV treatment beam (IOD-4)."""

    KV = "KV"
    MV = "MV"


class SetupTechniqueValues(str, Enum):
    """Setup Technique (300A,01B0), PS3.3 C.8.8.12 (Defined Terms)."""

    ISOCENTRIC = "ISOCENTRIC"
    FIXED_SSD = "FIXED_SSD"
    TBI = "TBI"
    BREAST_BRIDGE = "BREAST_BRIDGE"
    SKIN_APPOSITION = "SKIN_APPOSITION"


E = TypeVar("E", bound=Enum)


def coerce_enum(enum: type[E], value: object, keyword: str) -> E:
    """Convert ``str | Enum`` to a member of *enum*, or raise ``BuildError`` naming *keyword*.

    >>> coerce_enum(ImagerValues, "KV", "Imager")
    <ImagerValues.KV: 'KV'>
    >>> coerce_enum(ImagerValues, "XV", "Imager")
    Traceback (most recent call last):
    ...
    openigrt.errors.BuildError: Imager: 'XV' is not one of KV, MV
    """
    if isinstance(value, enum):
        return value
    try:
        return enum(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise build_error(keyword, f"{value!r} is not one of {allowed}") from None
