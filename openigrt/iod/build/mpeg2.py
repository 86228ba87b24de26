"""MPEG2 Main Profile @ Main Level encoding of cine frames (SPEC IOD-4; PS3.5 8.2.5, A.4.5).

Transfer syntax 1.2.840.10008.1.2.4.100. What PS3.5 asks and what we write:

* the whole MPEG-2 video elementary stream (ISO/IEC 13818-2) in **one fragment**, after an
  empty Basic Offset Table (pydicom ``encapsulate(..., has_bot=False)``), even length;
* Photometric Interpretation ``YBR_PARTIAL_420``, Samples per Pixel 3, Planar Configuration 0,
  Bits Allocated/Stored 8, High Bit 7, Pixel Representation 0;
* MP@ML limits: at most 720 columns; 25 frames/s with at most 576 rows, or 30 frames/s
  (also 30000/1001) with at most 480 rows. Anything else raises
  :class:`~openigrt.errors.BuildError` (we never resample silently).

Input frames are ``uint8`` grey levels (window them first). YBR_PARTIAL means video range: grey
*g* is written as luma ``Y = 16 + 219 g / 255`` with neutral chroma (128), which any conforming
decoder turns back into the same grey; :func:`decode_mpeg2` inverts the mapping, so decoding
gives the frames back within the lossy tolerance. Encoded with PyAV's
``mpeg2video`` codec (FFmpeg), which is the well-kept encoder available here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from openigrt.iod.build.common import build_error

#: MP@ML frame rates (frames/s) and the maximum rows for each (PS3.5 8.2.5, ISO/IEC 13818-2).
MPML_MAX_ROWS: dict[Fraction, int] = {Fraction(25): 576, Fraction(30): 480, Fraction(30000, 1001): 480}
MPML_MAX_COLUMNS = 720
#: Target bit rate (bits/s); MP@ML allows up to 15 Mbit/s.
MPML_BIT_RATE = 8_000_000
MPML_MAX_BIT_RATE = 15_000_000


@dataclass(frozen=True)
class Mpeg2Stream:
    """An encoded MPEG-2 video elementary stream and what the DICOM attributes must say."""

    data: bytes
    rows: int
    columns: int
    number_of_frames: int
    frame_rate: Fraction

    @property
    def frame_time_ms(self) -> float:
        """Frame Time (0018,1063) in ms."""
        return float(1000 / self.frame_rate)


def check_mpml(rows: int, columns: int, frame_rate: Fraction) -> None:
    """Raise BuildError unless *rows* × *columns* at *frame_rate* fits MPEG2 MP@ML."""
    if frame_rate not in MPML_MAX_ROWS:
        allowed = ", ".join(str(float(f)) for f in MPML_MAX_ROWS)
        raise build_error("CineRate", f"MPEG2 MP@ML needs a frame rate of {allowed} frames/s, got {float(frame_rate):g}")
    if columns > MPML_MAX_COLUMNS or rows > MPML_MAX_ROWS[frame_rate]:
        raise build_error("Rows", f"MPEG2 MP@ML allows at most {MPML_MAX_COLUMNS}x{MPML_MAX_ROWS[frame_rate]} "
                          f"(columns x rows) at {float(frame_rate):g} frames/s, got {columns}x{rows}")
    if rows < 16 or columns < 16 or rows % 2 or columns % 2:
        raise build_error("Rows", f"MPEG2 4:2:0 needs even sizes of at least 16, got {columns}x{rows}")


def encode_mpeg2(frames: NDArray[np.uint8], *, frame_rate: Fraction | float) -> Mpeg2Stream:
    """Encode ``(n, rows, columns)`` uint8 frames as an MPEG2 MP@ML elementary stream."""
    import av  # heavy import kept local

    rate = Fraction(frame_rate).limit_denominator(1001)
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise build_error("PixelData", f"MPEG2 needs (frames, rows, columns) uint8 frames, got {arr.dtype} {arr.shape}")
    n, rows, columns = arr.shape
    check_mpml(rows, columns, rate)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpeg2video") as container:
        stream = container.add_stream("mpeg2video", rate=rate)
        stream.width, stream.height = columns, rows
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = MPML_BIT_RATE
        stream.codec_context.options = {"maxrate": str(MPML_MAX_BIT_RATE), "bufsize": "1835008"}
        stream.codec_context.gop_size = 12
        chroma = np.full((rows // 2, columns // 2), 128, np.uint8)
        for k in range(n):
            frame = av.VideoFrame(columns, rows, "yuv420p")
            frame.planes[0].update(_pad_plane(grey_to_luma(arr[k]), frame.planes[0].line_size))
            for p in (1, 2):
                frame.planes[p].update(_pad_plane(chroma, frame.planes[p].line_size))
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = buf.getvalue()
    return Mpeg2Stream(data=data, rows=rows, columns=columns, number_of_frames=n, frame_rate=rate)


def decode_mpeg2(data: bytes) -> NDArray[np.uint8]:
    """Decode an MPEG-2 elementary stream to ``(n, rows, columns)`` luma frames (for checks)."""
    import av

    out = []
    with av.open(io.BytesIO(data), mode="r", format="mpeg2video") as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="yuv420p")[: frame.height]
            out.append(luma_to_grey(luma))
    return np.stack(out) if out else np.zeros((0, 0, 0), np.uint8)


def grey_to_luma(grey: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Full-range grey 0-255 to video-range luma 16-235 (YBR_PARTIAL, PS3.3 C.7.6.3.1.2)."""
    return np.rint(16.0 + grey.astype(np.float64) * (219.0 / 255.0)).astype(np.uint8)


def luma_to_grey(luma: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Inverse of :func:`grey_to_luma` (clipped to 0-255)."""
    return np.clip(np.rint((luma.astype(np.float64) - 16.0) * (255.0 / 219.0)), 0, 255).astype(np.uint8)


def _pad_plane(plane: NDArray[np.uint8], line_size: int) -> bytes:
    rows, cols = plane.shape
    if line_size == cols:
        return np.ascontiguousarray(plane).tobytes()
    padded = np.zeros((rows, line_size), np.uint8)
    padded[:, :cols] = plane
    return padded.tobytes()
