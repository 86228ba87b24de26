"""Pixel Data without pydicom's pixel pipeline: locate the value in the file, decode native frames.

Two things the CT reader (and ``openigrt validate``, which needs geometry only) use:

* :func:`locate_pixel_data` — after ``dcmread(fh, stop_before_pixels=True)`` the file is
  positioned at the (7FE0,0010) element; its header gives the value's offset and length, so the
  value can be read later straight into its destination (or never, for a header-only check)
  instead of being held as ``bytes`` in every Dataset. Only uncompressed-header little endian
  files (Implicit/Explicit VR LE, encapsulated syntaxes included) are located; anything else
  (deflated, big endian, Float Pixel Data, a short file) answers "read the file whole".
* :func:`native_layout` / :func:`stored_values` — a single-frame, single-sample, little endian,
  uncompressed image decoded with one ``numpy.frombuffer`` (and the unused high bits cleared and
  sign-extended as ``Dataset.pixel_array`` does, PS3.5 8.1.1). The same values as pydicom's
  ``pixel_array`` (tests/iod/test_ct_fast.py compares them); other images go through pydicom.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.uid import UID

from openigrt.errors import DicomInputError

_PIXEL_DATA: Final = 0x7FE00010
#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_UNDEFINED: Final = 0xFFFFFFFF
_MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})
_NATIVE_LE: Final = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


@dataclass(frozen=True)
class PixelDataRef:
    """The (7FE0,0010) Pixel Data element of a file, located but not read.

    ``offset`` is the file position of the value's first byte, ``length`` its length in bytes
    (None: undefined length, i.e. encapsulated), ``vr`` as encoded (None for Implicit VR).
    """

    path: Path
    offset: int
    length: int | None
    vr: str | None

    def read_into(self, buffer: Any) -> None:
        """Fill *buffer* (writable, ``len(buffer)`` bytes) from the start of the value."""
        n = memoryview(buffer).nbytes
        if self.length is None or n > self.length:
            raise DicomInputError(f"{self.path}: (7FE0,0010) Pixel Data holds {self.length} bytes, {n} needed")
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                got = fh.readinto(buffer)
        except OSError as exc:
            raise DicomInputError(f"{self.path}: cannot read (7FE0,0010) Pixel Data: {exc.strerror or exc}") from None
        if got != n:
            raise DicomInputError(f"{self.path}: (7FE0,0010) Pixel Data truncated: {got} of {n} bytes")


def locate_pixel_data(fh: BinaryIO, ds: Dataset, path: Path) -> tuple[PixelDataRef | None, bool]:
    """``(ref, ok)`` for a file read by ``dcmread(fh, stop_before_pixels=True)``, *fh* where pydicom stopped.

    ``ok`` False means: not located, read the file whole (unsupported encoding or anything odd).
    ``(None, True)``: the data set has no Pixel Data.
    """
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    uid = UID(ts)
    if not ts or not uid.is_transfer_syntax or not uid.is_little_endian or uid.is_deflated:
        return None, False
    start = fh.tell()
    head = fh.read(12)
    if not head:
        return None, True
    if len(head) < 8:
        return None, False
    group, element = struct.unpack_from("<HH", head)
    if (group << 16 | element) != _PIXEL_DATA:
        return None, False  # Float / Double Float Pixel Data, or an unexpected stop
    if uid.is_implicit_VR:
        vr, (length,), header = None, struct.unpack_from("<L", head, 4), 8
    else:
        vr = head[4:6].decode("ascii", "replace")
        if vr in _LONG_VRS:
            if len(head) < 12:
                return None, False
            (length,), header = struct.unpack_from("<L", head, 8), 12
        else:
            (length,), header = struct.unpack_from("<H", head, 6), 8
    offset = start + header
    if length == _UNDEFINED:
        return PixelDataRef(path, offset, None, vr), True
    if offset + length > os.fstat(fh.fileno()).st_size:
        return None, False  # truncated: let pydicom read (and describe) it
    return PixelDataRef(path, offset, length, vr), True


@dataclass(frozen=True)
class NativeLayout:
    """How one uncompressed monochrome frame is stored: ``rows × columns`` of ``dtype``."""

    rows: int
    columns: int
    dtype: np.dtype  # type: ignore[type-arg]
    unused_bits: int

    @property
    def nbytes(self) -> int:
        return self.rows * self.columns * self.dtype.itemsize


def native_layout(ds: Dataset, transfer_syntax_uid: str | None, value_length: int | None) -> NativeLayout | None:
    """The layout when the fast path applies (single frame, 1 sample, 8/16/32 bits, LE native), else None."""
    if transfer_syntax_uid not in _NATIVE_LE or value_length is None:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.PixelRepresentation)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    except (AttributeError, TypeError, ValueError):
        return None  # pydicom's decoder gives the precise message
    if (allocated not in (8, 16, 32) or not 0 < stored <= allocated or signed not in (0, 1) or samples != 1
            or frames != 1 or photometric not in _MONOCHROME or rows <= 0 or cols <= 0):
        return None
    layout = NativeLayout(rows, cols, np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}"), allocated - stored)
    if value_length not in (layout.nbytes, layout.nbytes + 1):  # + 1: the even-length padding byte
        return None
    return layout


def stored_values(layout: NativeLayout, buffer: Any) -> NDArray[Any]:
    """The stored values ``(rows, columns)`` of *buffer* (at least ``layout.nbytes`` bytes).

    A read-only view when no high bits are unused; otherwise a new array with the unused bits
    replaced by the sign (signed) or zero (unsigned), as pydicom's ``pixel_array`` does.
    """
    arr = np.frombuffer(buffer, dtype=layout.dtype, count=layout.rows * layout.columns)
    arr = arr.reshape(layout.rows, layout.columns)
    if layout.unused_bits:
        arr = np.left_shift(arr, layout.unused_bits)
        np.right_shift(arr, layout.unused_bits, out=arr)
    return arr
