"""``multipart/related`` bodies (RFC 2046 / RFC 2387) as DICOMweb uses them (PS3.18 8.6.1.2).

Reading is incremental: :class:`MultipartReader` is fed the response body chunk by chunk and
returns each part as soon as its closing delimiter has arrived, so a WADO-RS series response is
never held in memory as a whole (one part at a time, at most ``max_part_bytes``). Anything that is
not a well-formed body raises :class:`MultipartError` naming the part and what is wrong: no
boundary, a header block that never ends, a part's ``Content-Length`` that disagrees with its
bytes, a part over the size limit, or a body that ends before the closing delimiter (truncated).
Parts completed before the problem have already been returned.

Writing (STOW-RS) is :func:`part_head` + the part's bytes + :data:`PART_TAIL`, then
:func:`closing_delimiter`; :func:`content_length` gives the exact length so the request can be
streamed with a ``Content-Length`` (no chunked encoding needed).

>>> body = part_head("b1", "application/dicom") + b"DATA" + PART_TAIL + closing_delimiter("b1")
>>> reader = MultipartReader("b1", max_part_bytes=100)
>>> [(p.index, p.content_type, p.body) for p in reader.feed(body)], reader.finished
([(1, 'application/dicom', b'DATA')], True)
>>> parse_media_type('multipart/related; type="application/dicom"; boundary=xyz')
MediaType(type='multipart/related', params={'type': 'application/dicom', 'boundary': 'xyz'})
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from openigrt.errors import BadResponse

#: Longest header block of one part we accept (bytes).
MAX_PART_HEADER_BYTES: Final = 16 * 1024
#: Ends every part's bytes before the next delimiter.
PART_TAIL: Final = b"\r\n"
_CRLF: Final = b"\r\n"
_BOUNDARY_RE: Final = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046 bchars
_TOKEN_RE: Final = re.compile(r'\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)\s*(?:;|$)')


class MultipartError(BadResponse):
    """The body is not a well-formed ``multipart/related`` body (the message says where)."""


@dataclass(frozen=True)
class MediaType:
    """A parsed ``Content-Type``: lower-case type/subtype and parameters (names lower-case, values unquoted)."""

    type: str
    params: dict[str, str] = field(default_factory=dict)


def parse_media_type(header: str | None) -> MediaType:
    """Parse a Content-Type header value (``""`` type when absent)."""
    if not header:
        return MediaType("")
    main, _, rest = header.partition(";")
    params: dict[str, str] = {}
    for m in _TOKEN_RE.finditer(rest):
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
    return MediaType(main.strip().lower(), params)


@dataclass(frozen=True)
class Part:
    """One body part: its 1-based position, its headers (names lower-case) and its bytes."""

    index: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return parse_media_type(self.headers.get("content-type")).type


def check_boundary(boundary: str) -> str:
    """Return *boundary* if RFC 2046 allows it (1-70 bchars, no trailing space), else raise MultipartError."""
    if not _BOUNDARY_RE.match(boundary) or boundary.endswith(" "):
        raise MultipartError(f"invalid multipart boundary {boundary[:80]!r}")
    return boundary


class MultipartReader:
    """Incremental parser of one ``multipart/related`` body.

    Parameters
    ----------
    boundary
        The ``boundary`` parameter of the body's Content-Type.
    max_part_bytes
        Largest part accepted; a bigger one raises MultipartError (a hostile or broken server
        cannot make us buffer without limit).
    """

    def __init__(self, boundary: str, *, max_part_bytes: int) -> None:
        self._delimiter = b"\r\n--" + check_boundary(boundary).encode("ascii")
        self._max_part = max_part_bytes
        self._buf = bytearray(_CRLF)  # so a body starting with "--boundary" matches the delimiter
        self._state = "preamble"
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._parts = 0
        self._seen = 0

    @property
    def finished(self) -> bool:
        """True once the closing delimiter was read (what follows it, the epilogue, is ignored)."""
        return self._state == "done"

    @property
    def parts(self) -> int:
        """Number of complete parts returned so far."""
        return self._parts

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Part]:
        """Add body bytes; return the parts completed by them."""
        self._seen += len(chunk)
        if self._state == "done":
            return []
        self._buf += chunk
        out: list[Part] = []
        while self._step(out):
            pass
        return out

    def close(self) -> None:
        """Declare the end of the body; raise MultipartError when it was truncated."""
        if self._state == "done":
            return
        if self._state == "preamble":
            raise MultipartError(f"no multipart boundary found in the body ({self._seen} bytes)")
        where = (f"inside part {self._parts + 1} after {len(self._body) + len(self._buf)} bytes of it"
                 if self._state == "body" else f"in the headers of part {self._parts + 1}")
        raise MultipartError(f"truncated multipart body: it ended {where}, before the closing boundary "
                             f"({self._seen} bytes received)")

    # ----------------------------------------------------------------- states
    def _step(self, out: list[Part]) -> bool:
        """Advance the state machine once; False when more bytes are needed."""
        if self._state == "headers":
            return self._read_headers()
        i, kind, after = self._find_delimiter()
        if self._state == "body":
            self._body += self._buf[:i]
            self._check_size()
        del self._buf[:i]
        if kind == "wait":
            return False
        if self._state == "body":
            self._finish_part(out)
        if kind == "close":
            self._state = "done"
            self._buf.clear()
            return False
        del self._buf[:after]
        self._state = "headers"
        return True

    def _find_delimiter(self) -> tuple[int, str, int]:
        """The next delimiter line in the buffer: (its offset, "next" | "close" | "wait", length of its line).

        A delimiter is CRLF "--" boundary, then "--" (the close delimiter) or optional spaces/tabs
        and CRLF. The same bytes followed by anything else are content (RFC 2046 5.1.1). "wait":
        offset up to which the buffer is certainly content; more bytes are needed to decide.
        """
        start = 0
        n = len(self._delimiter)
        while True:
            i = self._buf.find(self._delimiter, start)
            if i < 0:
                return max(0, len(self._buf) - (n - 1)), "wait", 0
            rest = self._buf[i + n:i + n + 2]
            if len(rest) < 2:
                return i, "wait", 0
            if rest == b"--":
                return i, "close", 0
            j = i + n
            while j < len(self._buf) and self._buf[j] in b" \t":
                j += 1
            if self._buf[j:j + 2] == _CRLF:
                return i, "next", j + 2 - i
            if j + 2 > len(self._buf) and j - i - n < 256:
                return i, "wait", 0
            start = i + 1  # the boundary string inside content: not a delimiter

    def _read_headers(self) -> bool:
        if self._buf[:2] == _CRLF:
            raw = b""
            del self._buf[:2]
        else:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_PART_HEADER_BYTES:
                    raise MultipartError(f"the headers of part {self._parts + 1} exceed {MAX_PART_HEADER_BYTES} bytes")
                return False
            raw = bytes(self._buf[:end])
            del self._buf[:end + 4]
        self._headers = _parse_headers(raw, self._parts + 1)
        self._body = bytearray()
        self._state = "body"
        return True

    def _finish_part(self, out: list[Part]) -> None:
        self._parts += 1
        part = Part(self._parts, self._headers, bytes(self._body))
        self._body = bytearray()
        _check_length(part)
        out.append(part)

    def _check_size(self) -> None:
        if len(self._body) > self._max_part:
            raise MultipartError(f"part {self._parts + 1} exceeds the limit of {self._max_part} bytes")


def _parse_headers(raw: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    text = raw.decode("latin-1")
    for line in re.split(r"\r\n(?![ \t])", text) if text else []:
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise MultipartError(f"malformed header line in part {index}: {line[:60]!r}")
        headers[name.strip().lower()] = " ".join(value.split())
    return headers


def _check_length(part: Part) -> None:
    declared = part.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit() or int(declared) != len(part.body):
        raise MultipartError(f"part {part.index} declares Content-Length {declared} but has {len(part.body)} bytes "
                             "before the next boundary")


def iter_parts(chunks: Iterable[bytes], boundary: str, *, max_part_bytes: int) -> Iterator[Part]:
    """Parts of a body given as chunks (raises MultipartError at the first problem)."""
    reader = MultipartReader(boundary, max_part_bytes=max_part_bytes)
    for chunk in chunks:
        yield from reader.feed(chunk)
    reader.close()


# --------------------------------------------------------------------------- writing
def new_boundary() -> str:
    """A random boundary (32 hex digits; the writer checks that no part contains it)."""
    return "openigrt-" + secrets.token_hex(16)


def part_head(boundary: str, content_type: str, *, content_length: int | None = None) -> bytes:
    """Delimiter line and headers of one part (the part's bytes follow, then :data:`PART_TAIL`)."""
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def closing_delimiter(boundary: str) -> bytes:
    """The closing delimiter line that ends the body."""
    return f"--{boundary}--\r\n".encode("ascii")


def content_length(boundary: str, content_type: str, sizes: Sequence[int]) -> int:
    """Exact length of a body of parts of *sizes* bytes written with :func:`part_head` (with Content-Length)."""
    return (sum(len(part_head(boundary, content_type, content_length=n)) + n + len(PART_TAIL) for n in sizes)
            + len(closing_delimiter(boundary)))


def contains_delimiter(data: bytes, boundary: str) -> bool:
    """True when part bytes *data* contain the delimiter of *boundary* (the body would be ambiguous)."""
    delimiter = b"\r\n--" + boundary.encode("ascii")
    return delimiter in data or data.startswith(delimiter[2:])
