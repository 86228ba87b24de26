"""Read just enough of an encoded data set: structure check and index header (NET-7, NET-8, NET-13).

The Storage SCP and file import keep a received data set's bytes unchanged. They only need to
know (a) that the stream is a complete, well-formed little-endian data set, and (b) a few
identifying attributes for the cache index and the status checks. Both are done here without
decoding the whole data set:

* :func:`check_structure` walks the element headers (tag, VR, length) and the items of
  undefined-length sequences and encapsulated pixel data, and fails when a length runs past
  the end of the stream, a VR is not a VR, or a delimiter is missing: a truncated or garbage
  stream is refused (C000) instead of being cached. pydicom itself reads truncated values
  silently, hence this walker.
* :func:`inspect` does that walk and, in the same pass, collects the few top-level elements the
  index needs (:data:`HEADER_TAGS`), decoded per the data set's Specific Character Set with
  pydicom's codec tables (ISO_IR 100, ISO_IR 192 / UTF-8, ISO 2022 …; NET-13) into a frozen
  :class:`InstanceHeader`. :func:`read_header` reads only the elements up to (0020,0052).
* :func:`split_part10` separates the File Meta Information of a Part 10 file from its data set.

Only little-endian, non-deflated transfer syntaxes are walked (Implicit VR LE, Explicit VR LE and
the encapsulated syntaxes, which are explicit VR LE); others raise
:class:`~openigrt.errors.UnsupportedObjectError`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

from openigrt.errors import DicomInputError, UnsupportedObjectError

_UNDEFINED: Final = 0xFFFFFFFF
_ITEM: Final = 0xFFFEE000
_ITEM_DELIM: Final = 0xFFFEE00D
_SEQ_DELIM: Final = 0xFFFEE0DD
_MAX_DEPTH: Final = 64
#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS: Final = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS: Final = frozenset({
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH",
    b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
})
_NOT_WALKABLE: Final = {
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
}
#: Last tag read for the index header (Frame of Reference UID).
_HEADER_LAST_TAG: Final = 0x00200052


@dataclass(frozen=True)
class InstanceHeader:
    """Identifying attributes of one instance, as indexed by the cache.

    Text values are decoded per the data set's Specific Character Set; missing values are ``""``.
    """

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    patient_id: str = ""
    patient_name: str = ""
    modality: str = ""
    specific_character_set: str = ""
    frame_of_reference_uid: str = ""
    instance_number: str = ""


# --------------------------------------------------------------------------- structure walk
#: Top-level elements read for the index: tag -> VR (their VR in Implicit VR streams).
HEADER_TAGS: Final[dict[int, str]] = {
    0x00080005: "CS",  # SpecificCharacterSet
    0x00080016: "UI",  # SOPClassUID
    0x00080018: "UI",  # SOPInstanceUID
    0x00080060: "CS",  # Modality
    0x00100010: "PN",  # PatientName
    0x00100020: "LO",  # PatientID
    0x0020000D: "UI",  # StudyInstanceUID
    0x0020000E: "UI",  # SeriesInstanceUID
    0x00200013: "IS",  # InstanceNumber
    0x00200052: "UI",  # FrameOfReferenceUID
}


class _Walker:
    """Walk a little-endian data set's element headers (no value decoding).

    Top-level elements listed in *wanted* are collected raw into :attr:`found`.
    """

    def __init__(self, data: bytes | memoryview, wanted: frozenset[int] | dict[int, str] = frozenset()) -> None:
        self.buf = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self.end = len(self.buf)
        self.wanted = wanted
        self.found: dict[int, bytes] = {}

    def fail(self, offset: int, what: str) -> DicomInputError:
        return DicomInputError(f"undecodable data set: {what} (at byte {offset})")

    def header(self, pos: int, implicit: bool) -> tuple[int, int, bytes | None, int]:
        """Return (tag, length, vr, value offset) of the element at *pos*."""
        if pos + 8 > self.end:
            raise self.fail(pos, "element header runs past the end (truncated)")
        group, elem = struct.unpack_from("<HH", self.buf, pos)
        tag = (group << 16) | elem
        if tag in (_ITEM, _ITEM_DELIM, _SEQ_DELIM) or implicit:
            return tag, struct.unpack_from("<L", self.buf, pos + 4)[0], None, pos + 8
        vr = bytes(self.buf[pos + 4:pos + 6])
        if vr in _SHORT_VRS:
            return tag, struct.unpack_from("<H", self.buf, pos + 6)[0], vr, pos + 8
        if vr in _LONG_VRS:
            if pos + 12 > self.end:
                raise self.fail(pos, "element header runs past the end (truncated)")
            return tag, struct.unpack_from("<L", self.buf, pos + 8)[0], vr, pos + 12
        raise self.fail(pos, f"invalid VR {vr!r} for tag ({group:04X},{elem:04X}) (not explicit VR?)")

    def dataset(self, pos: int, end: int, implicit: bool, depth: int, *, until_delim: bool) -> int:
        """Walk elements from *pos*; return the offset after the data set (or its delimiter)."""
        if depth > _MAX_DEPTH:
            raise self.fail(pos, f"sequences nested deeper than {_MAX_DEPTH} levels")
        while pos < end:
            tag, length, vr, value = self.header(pos, implicit)
            if tag == _ITEM_DELIM:
                if not until_delim:
                    raise self.fail(pos, "item delimiter outside an undefined-length item")
                return value
            if tag in (_ITEM, _SEQ_DELIM):
                raise self.fail(pos, "item tag where a data element was expected")
            if length == _UNDEFINED:
                pos = self.sequence(value, implicit or vr == b"UN", depth + 1)
                continue
            pos = value + length
            if pos > end:
                raise self.fail(value, f"truncated: ({tag >> 16:04X},{tag & 0xFFFF:04X}) value of {length} bytes "
                                       "runs past the end of the data")
            if depth == 0 and tag in self.wanted:
                self.found[tag] = bytes(self.buf[value:pos])
        if until_delim:
            raise self.fail(pos, "undefined-length item is missing its delimiter (truncated)")
        if pos != end:  # pragma: no cover - loop condition makes this unreachable
            raise self.fail(pos, "trailing bytes")
        return pos

    def sequence(self, pos: int, implicit: bool, depth: int) -> int:
        """Walk the items of an undefined-length sequence; return the offset after its delimiter."""
        while True:
            if pos + 8 > self.end:
                raise self.fail(pos, "undefined-length sequence is missing its delimiter (truncated)")
            group, elem, length = struct.unpack_from("<HHL", self.buf, pos)
            tag = (group << 16) | elem
            if tag == _SEQ_DELIM:
                return pos + 8
            if tag != _ITEM:
                raise self.fail(pos, f"expected an item tag in a sequence, found ({group:04X},{elem:04X})")
            if length == _UNDEFINED:
                pos = self.dataset(pos + 8, self.end, implicit, depth, until_delim=True)
            else:
                if pos + 8 + length > self.end:
                    raise self.fail(pos, "sequence item runs past the end of the data (truncated)")
                pos += 8 + length


def check_structure(data: bytes | memoryview, *, implicit_vr: bool) -> None:
    """Check that *data* is a complete, well-formed little-endian data set.

    Parameters
    ----------
    data
        The encoded data set (no preamble, no File Meta Information).
    implicit_vr
        True for Implicit VR Little Endian, False for the explicit VR little-endian syntaxes.

    Raises
    ------
    DicomInputError
        Empty, truncated or garbage stream; the message gives the byte offset.

    Examples
    --------
    >>> check_structure(b"\\x08\\x00\\x18\\x00\\x04\\x00\\x00\\x001.2\\x00", implicit_vr=True)
    >>> check_structure(b"\\x08\\x00\\x18\\x00\\x40\\x00\\x00\\x001.2\\x00", implicit_vr=True)
    Traceback (most recent call last):
    ...
    openigrt.errors.DicomInputError: undecodable data set: truncated: (0008,0018) value of 64 bytes runs past the end of the data (at byte 8)
    """
    if len(data) == 0:
        raise DicomInputError("undecodable data set: empty")
    walker = _Walker(data)
    walker.dataset(0, walker.end, implicit_vr, 0, until_delim=False)


def is_implicit_syntax(transfer_syntax_uid: str) -> bool:
    """Return True for Implicit VR LE; raise UnsupportedObjectError for syntaxes we cannot walk."""
    if transfer_syntax_uid in _NOT_WALKABLE:
        raise UnsupportedObjectError(
            f"transfer syntax {_NOT_WALKABLE[transfer_syntax_uid]} ({transfer_syntax_uid}) is not supported"
        )
    return transfer_syntax_uid == "1.2.840.10008.1.2"


# --------------------------------------------------------------------------- header
def _decode_header(found: dict[int, bytes]) -> InstanceHeader:
    """Decode the collected header elements (text per the Specific Character Set, NET-13)."""
    from pydicom.charset import convert_encodings, decode_bytes
    from pydicom.valuerep import PersonName

    def ascii_(tag: int) -> str:
        return found.get(tag, b"").decode("ascii", "replace").rstrip("\x00 ").strip()

    charset_raw = ascii_(0x00080005)
    terms = [t.strip() for t in charset_raw.split("\\")] if charset_raw else [""]
    try:
        encodings = convert_encodings(terms)
    except Exception as exc:
        raise DicomInputError(f"unknown Specific Character Set {charset_raw!r}: {exc}") from None

    def text(tag: int) -> str:
        raw = found.get(tag, b"")
        return decode_bytes(raw, encodings, set()).rstrip("\x00 ").strip() if raw else ""

    raw_pn = found.get(0x00100010, b"").rstrip(b"\x00 ")
    patient_name = str(PersonName(raw_pn, encodings=encodings)) if raw_pn else ""
    return InstanceHeader(
        sop_class_uid=ascii_(0x00080016), sop_instance_uid=ascii_(0x00080018),
        study_instance_uid=ascii_(0x0020000D), series_instance_uid=ascii_(0x0020000E),
        patient_id=text(0x00100020), patient_name=patient_name, modality=ascii_(0x00080060),
        specific_character_set=charset_raw, frame_of_reference_uid=ascii_(0x00200052),
        instance_number=ascii_(0x00200013),
    )


def inspect(data: bytes | memoryview, *, transfer_syntax_uid: str) -> InstanceHeader:
    """Check the structure of an encoded data set and read its index header, in one pass.

    Raises
    ------
    DicomInputError
        Empty, truncated, garbage, or undecodable header values (the message says where).
    UnsupportedObjectError
        Big endian or deflated transfer syntax.
    """
    implicit = is_implicit_syntax(transfer_syntax_uid)
    if len(data) == 0:
        raise DicomInputError("undecodable data set: empty")
    walker = _Walker(data, HEADER_TAGS)
    walker.dataset(0, walker.end, implicit, 0, until_delim=False)
    try:
        return _decode_header(walker.found)
    except DicomInputError:
        raise
    except Exception as exc:
        raise DicomInputError(f"undecodable data set header: {type(exc).__name__}: {exc}") from None


def read_header(data: bytes | memoryview, *, transfer_syntax_uid: str) -> InstanceHeader:
    """Read the identifying attributes of an encoded data set (stops after (0020,0052); no full decode).

    Unlike :func:`inspect` it does not require the rest of the data set to be well formed.

    Raises
    ------
    DicomInputError
        When the header elements cannot be decoded.
    """
    implicit = is_implicit_syntax(transfer_syntax_uid)
    walker = _Walker(data, HEADER_TAGS)
    pos = 0
    try:
        while pos < walker.end:
            tag, length, vr, value = walker.header(pos, implicit)
            if tag > _HEADER_LAST_TAG:
                break
            if length == _UNDEFINED:
                pos = walker.sequence(value, implicit or vr == b"UN", 1)
                continue
            if tag in HEADER_TAGS:
                walker.found[tag] = bytes(walker.buf[value:value + length])
            pos = value + length
        return _decode_header(walker.found)
    except DicomInputError:
        raise
    except Exception as exc:
        raise DicomInputError(f"undecodable data set header: {type(exc).__name__}: {exc}") from None


def read_sop_uids(data: bytes | memoryview, *, transfer_syntax_uid: str) -> tuple[str, str]:
    """(SOP Class UID, SOP Instance UID) of an encoded data set: the elements before (0008,0019)
    walked, nothing decoded per character set (UIDs are ASCII), no pydicom import.

    >>> read_sop_uids(b"\\x08\\x00\\x16\\x00\\x04\\x00\\x00\\x001.2\\x00\\x08\\x00\\x18\\x00\\x02\\x00\\x00\\x009\\x00",
    ...               transfer_syntax_uid="1.2.840.10008.1.2")
    ('1.2', '9')
    """
    implicit = is_implicit_syntax(transfer_syntax_uid)
    walker = _Walker(data)
    found: dict[int, bytes] = {}
    pos = 0
    while pos < walker.end:
        tag, length, vr, value = walker.header(pos, implicit)
        if tag > 0x00080018:
            break
        if length == _UNDEFINED:
            pos = walker.sequence(value, implicit or vr == b"UN", 1)
            continue
        if tag in (0x00080016, 0x00080018):
            found[tag] = bytes(walker.buf[value:value + length])
        pos = value + length
    return tuple(found.get(t, b"").decode("ascii", "replace").rstrip("\x00 ").strip()  # type: ignore[return-value]
                 for t in (0x00080016, 0x00080018))


# --------------------------------------------------------------------------- Part 10 files
@dataclass(frozen=True)
class Part10Split:
    """A Part 10 file (or raw data set) split into its meta information and data set."""

    transfer_syntax_uid: str
    media_sop_class_uid: str
    media_sop_instance_uid: str
    dataset_offset: int
    has_meta: bool


def _raw_text(ds: object, tag: int) -> str:
    """The undecoded value of a text element as ASCII, padding removed (``""`` when absent)."""
    if tag not in ds:  # type: ignore[operator]
        return ""
    value = ds.get_item(tag).value  # type: ignore[attr-defined]
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00 ").strip()
    return str(value or "").strip()


def _split_meta(data: bytes) -> Part10Split | None:
    """The File Meta Information (Explicit VR LE group 0002 after ``DICM``) walked by hand, no
    pydicom import; None when it is not plain (pydicom's reader then decides, with its messages).

    >>> meta = b"\\x02\\x00\\x10\\x00UI\\x12\\x001.2.840.10008.1.2\\x00"
    >>> _split_meta(bytes(128) + b"DICM" + meta + b"\\x08\\x00\\x16\\x00")
    Part10Split(transfer_syntax_uid='1.2.840.10008.1.2', media_sop_class_uid='', media_sop_instance_uid='', dataset_offset=158, has_meta=True)
    """
    walker = _Walker(data)
    pos, values = 132, {}
    try:
        while pos + 8 <= walker.end and struct.unpack_from("<H", data, pos)[0] == 0x0002:
            tag, length, _vr, value = walker.header(pos, False)
            if length == _UNDEFINED or value + length > walker.end:
                return None
            values[tag] = bytes(data[value:value + length])
            pos = value + length
    except DicomInputError:
        return None
    ts, media_class, media_uid = (values.get(t, b"").decode("ascii", "replace").rstrip("\x00 ").strip()
                                  for t in (0x00020010, 0x00020002, 0x00020003))
    if not ts:
        return None
    return Part10Split(ts, media_class, media_uid, pos, True)


def split_part10(data: bytes, *, name: str = "data") -> Part10Split:
    """Locate the data set in a Part 10 file; accept a raw data set without meta as a fallback.

    A raw data set (no preamble / ``DICM``) is accepted when its first element looks like a
    group 0008 element; its transfer syntax is guessed (explicit when bytes 4-5 are a VR).

    Raises
    ------
    DicomInputError
        Not a DICOM file; the message names *name*.
    """
    if len(data) >= 132 and data[128:132] == b"DICM":
        fast = _split_meta(data)
        if fast is not None:
            return fast
        from pydicom.filereader import read_dataset

        try:
            fp = io.BytesIO(data)
            fp.seek(132)
            meta = read_dataset(fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
            offset = fp.tell()
            # raw values: no pydicom validation warnings for the (often broken) media UIDs
            ts, media_class, media_uid = (_raw_text(meta, t) for t in (0x00020010, 0x00020002, 0x00020003))
        except Exception as exc:
            raise DicomInputError(f"{name}: unreadable File Meta Information: {exc}") from None
        if not ts:
            raise DicomInputError(f"{name}: File Meta Information has no Transfer Syntax UID (0002,0010)")
        return Part10Split(ts, media_class, media_uid, offset, True)
    if len(data) >= 8 and data[0:2] == b"\x08\x00":
        explicit = bytes(data[4:6]) in _SHORT_VRS | _LONG_VRS
        ts = "1.2.840.10008.1.2.1" if explicit else "1.2.840.10008.1.2"
        return Part10Split(ts, "", "", 0, False)
    raise DicomInputError(f"{name}: not a DICOM file (no 'DICM' prefix at byte 128 and no raw data set)")
