"""Our private data dictionary and the functions that read and write its elements (SPEC IOD-8).

Private elements live in blocks reserved by a *private creator* (PS3.5 7.8.1): the element
``(gggg,00bb)`` holds the creator string and the block's elements are ``(gggg,bbxx)``. We
resolve every element **by creator** — ``"<prefix> gggg"``, prefix configurable
(``Settings.private_creator``, default ``Varian Medical Systems VISION``) — never by group or
block number alone, and never through pydicom's bundled private dictionary (which lists group
3273 under ``BrainLAB_PatientSetup``).

Real files store these elements untyped: UN in explicit-VR files, no VR at all in implicit-VR
files (pydicom then reports UN). :func:`read_private` re-types the value from *our* dictionary
(:data:`PRIVATE_DICTIONARY`), private sequences included: the value bytes of a sequence held as
UN are decoded as Implicit VR Little Endian, as PS3.5 6.2.2 prescribes, with a fallback to
Explicit VR Little Endian for writers that kept the explicit encoding.

>>> from pydicom import Dataset
>>> ds = Dataset()
>>> _ = write_private(ds, RT_IMAGE_PATIENT_POSITION, "HFS")
>>> ds[0x3273, 0x0010].value, ds[0x3273, 0x1001].VR
('Varian Medical Systems VISION 3273', 'CS')
>>> read_private_value(ds, RT_IMAGE_PATIENT_POSITION)
'HFS'
>>> read_private_value(ds, RT_IMAGE_PATIENT_POSITION, creator_prefix="Someone Else") is None
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydicom import config as pydicom_config
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.valuerep import VR as VR_
from pydicom.values import convert_value

from openigrt.config import DEFAULT_PRIVATE_CREATOR
from openigrt.errors import DicomInputError

#: VRs whose values are text (a re-typing between them keeps the string).
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
_VALID_VRS = {v.value for v in VR_}


@dataclass(frozen=True)
class PrivateEntry:
    """One element of our private dictionary.

    Attributes
    ----------
    group : int
        The (odd) group number, e.g. ``0x3273``.
    offset : int
        The element byte within the block, ``0x00``-``0xFF`` (the ``xx`` of ``3273,xx00``).
    vr, vm : str
        Value Representation and Value Multiplicity we read and write it with.
    keyword, name : str
        Our keyword (CamelCase, like a DICOM keyword) and a readable name.
    """

    group: int
    offset: int
    vr: str
    vm: str
    keyword: str
    name: str

    def creator(self, prefix: str = DEFAULT_PRIVATE_CREATOR) -> str:
        """The private creator string of this element's group: ``"<prefix> gggg"``."""
        return private_creator(self.group, prefix)

    def label(self) -> str:
        """``(3273,xx00) RT Image Isocenter Position`` — used in messages."""
        return f"({self.group:04X},xx{self.offset:02X}) {self.name}"


def private_creator(group: int, prefix: str = DEFAULT_PRIVATE_CREATOR) -> str:
    """Return the private creator for *group*: the prefix, a space and the group in hex.

    >>> private_creator(0x3253)
    'Varian Medical Systems VISION 3253'
    """
    return f"{prefix.strip()} {group:04X}"


# --------------------------------------------------------------------------- the dictionary (SPEC IOD-8)
EXTENDED_INTERFACE_XML = PrivateEntry(0x3253, 0x00, "OB", "1", "ExtendedInterfaceXML", "Extended Interface XML")
EXTENDED_INTERFACE_LENGTH = PrivateEntry(0x3253, 0x01, "IS", "1", "ExtendedInterfaceLength",
                                         "Extended Interface Length")
EXTENDED_INTERFACE_FORMAT = PrivateEntry(0x3253, 0x02, "CS", "1", "ExtendedInterfaceFormat",
                                         "Extended Interface Format")
REFERENCED_STRUCTURE_SET_SEQUENCE = PrivateEntry(0x3263, 0x01, "SQ", "1", "PrivateReferencedStructureSetSequence",
                                                 "Referenced Structure Set Sequence")
STRUCTURE_SET_RELATIONSHIP = PrivateEntry(0x3263, 0x02, "CS", "1", "StructureSetRelationship",
                                          "Structure Set Relationship")
MARKER_SUBTYPE = PrivateEntry(0x3271, 0x00, "CS", "1", "MarkerSubtype", "Marker Subtype")
RT_IMAGE_ISOCENTER_POSITION = PrivateEntry(0x3273, 0x00, "DS", "3", "RTImageIsocenterPosition",
                                           "RT Image Isocenter Position")
RT_IMAGE_PATIENT_POSITION = PrivateEntry(0x3273, 0x01, "CS", "1", "RTImagePatientPosition",
                                         "RT Image Patient Position")
REGISTRATION_SUB_TYPE = PrivateEntry(0x3275, 0x00, "CS", "1", "RegistrationSubType", "Registration Sub Type")
PRIMARY_REFERENCE_IMAGE = PrivateEntry(0x3279, 0x00, "CS", "1", "PrimaryReferenceImage",
                                       "Primary Reference Image Flag")
IMAGE_REMARKS = PrivateEntry(0x3281, 0x00, "ST", "1", "ImageRemarks", "Image Remarks")
PRIMARY_FLUENCE_MODE_SEQUENCE = PrivateEntry(0x3285, 0x00, "SQ", "1", "PrivatePrimaryFluenceModeSequence",
                                             "Primary Fluence Mode Sequence")
FLUENCE_MODE = PrivateEntry(0x3285, 0x01, "CS", "1", "PrivateFluenceMode", "Fluence Mode")
FLUENCE_MODE_ID = PrivateEntry(0x3285, 0x02, "SH", "1", "PrivateFluenceModeID", "Fluence Mode ID")

#: Every element we know, in group/offset order. VRs for 3275/3279/3281 are not given by the
#: statement; CS (coded values) and ST (free text) are our choice, documented in CONFORMANCE.md.
PRIVATE_DICTIONARY: tuple[PrivateEntry, ...] = (
    EXTENDED_INTERFACE_XML, EXTENDED_INTERFACE_LENGTH, EXTENDED_INTERFACE_FORMAT,
    REFERENCED_STRUCTURE_SET_SEQUENCE, STRUCTURE_SET_RELATIONSHIP,
    MARKER_SUBTYPE,
    RT_IMAGE_ISOCENTER_POSITION, RT_IMAGE_PATIENT_POSITION,
    REGISTRATION_SUB_TYPE,
    PRIMARY_REFERENCE_IMAGE,
    IMAGE_REMARKS,
    PRIMARY_FLUENCE_MODE_SEQUENCE, FLUENCE_MODE, FLUENCE_MODE_ID,
)
_BY_KEY = {(e.group, e.offset): e for e in PRIVATE_DICTIONARY}


def lookup(group: int, offset: int) -> PrivateEntry | None:
    """Our dictionary entry for ``(group, offset)``, or None when we do not know the element."""
    return _BY_KEY.get((group, offset & 0xFF))


# --------------------------------------------------------------------------- finding the block
def _creator_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    return str(value).strip(" \x00")


def find_block(ds: Dataset, group: int, creator: str) -> int | None:
    """Return the block byte ``bb`` reserved by *creator* in *group* of *ds*, or None.

    Looks at ``(group,0010)`` … ``(group,00FF)`` in this dataset only (sequence items reserve
    their own blocks). Comparison ignores trailing spaces/NULs (LO padding).
    """
    wanted = creator.strip()
    for elem_no in range(0x10, 0x100):
        tag = Tag(group, elem_no)
        if tag in ds and _creator_text(ds.get_item(tag).value) == wanted:
            return elem_no
    return None


def private_tag(ds: Dataset, entry: PrivateEntry, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> BaseTag | None:
    """The actual tag of *entry* in *ds* (block resolved by creator), or None if not reserved."""
    block = find_block(ds, entry.group, entry.creator(creator_prefix))
    return None if block is None else Tag(entry.group, (block << 8) | entry.offset)


# --------------------------------------------------------------------------- re-typing
def _encodings(ds: Dataset) -> list[str]:
    charset = ds.get("SpecificCharacterSet")
    try:
        return convert_encodings(charset) if charset else ["iso8859"]
    except Exception:  # an unknown character set must not stop us reading a CS/DS value
        return ["iso8859"]


def _looks_explicit(value: bytes) -> bool:
    """True when the first element inside the first item carries an explicit two-letter VR."""
    # item tag (4) + item length (4) + element tag (4) then VR (2) in explicit VR
    if len(value) < 14 or value[:4] != b"\xfe\xff\x00\xe0":
        return False
    vr = value[12:14]
    return vr.isalpha() and vr.isupper() and vr.decode("ascii") in _VALID_VRS


def decode_private_bytes(tag: BaseTag, vr: str, value: bytes, *, encodings: list[str] | None = None,
                         is_little_endian: bool = True) -> Any:
    """Decode the raw *value* bytes of an untyped element as *vr* (pydicom's value converters).

    Sequences are decoded as Implicit VR Little Endian (PS3.5 6.2.2) unless their first item
    visibly uses explicit VRs; when the likely encoding fails the other one is tried. Raises :class:`DicomInputError` naming the tag when the bytes do
    not decode.
    """
    if vr != "SQ":
        raw = RawDataElement(tag, vr, len(value), value, 0, True, is_little_endian, True, False)
        try:
            return convert_value(vr, raw, encodings)
        except Exception as exc:  # pydicom raises several types on bad bytes
            raise DicomInputError(f"private element {tag}: cannot decode {len(value)} bytes as {vr}: {exc}") from None
    first = not _looks_explicit(value)
    errors = []
    for implicit in (first, not first):  # the likely encoding first, then the other one
        raw = RawDataElement(tag, vr, len(value), value, 0, implicit, is_little_endian, True, False)
        try:
            _check_items(value, implicit=implicit)
            return convert_value(vr, raw, encodings)
        except Exception as exc:
            errors.append(f"{'implicit' if implicit else 'explicit'} VR: {exc}")
    raise DicomInputError(f"private element {tag}: cannot decode {len(value)} bytes as SQ ({'; '.join(errors)})")


_ITEM = b"\xfe\xff\x00\xe0"
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0"
_UNDEFINED = 0xFFFFFFFF


def _check_items(value: bytes, *, implicit: bool) -> None:
    """Check the item framing of a sequence value (PS3.5 7.5) before trusting pydicom with it.

    pydicom's sequence reader is lenient: garbage decodes to empty items. Every defined-length
    item must fit, and its elements must exactly fill it; undefined-length items are left to
    pydicom (their end is only known by parsing).
    """
    pos = 0
    while pos < len(value):
        head, length = value[pos:pos + 4], int.from_bytes(value[pos + 4:pos + 8], "little")
        if head == _SEQ_DELIMITER:
            return
        if head != _ITEM or pos + 8 > len(value):
            raise ValueError(f"no item tag (FFFE,E000) at byte {pos}")
        if length == _UNDEFINED:
            return
        if pos + 8 + length > len(value):
            raise ValueError(f"item at byte {pos} claims {length} bytes, only {len(value) - pos - 8} left")
        _check_elements(value[pos + 8:pos + 8 + length], implicit=implicit, at=pos + 8)
        pos += 8 + length


def _check_elements(item: bytes, *, implicit: bool, at: int) -> None:
    pos = 0
    while pos < len(item):
        if implicit:
            length, header = int.from_bytes(item[pos + 4:pos + 8], "little"), 8
        else:
            vr = item[pos + 4:pos + 6].decode("latin-1")
            if vr not in _VALID_VRS:
                raise ValueError(f"invalid VR {vr!r} at byte {at + pos}")
            long_form = vr in {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
            length = int.from_bytes(item[pos + 8:pos + 12] if long_form else item[pos + 6:pos + 8], "little")
            header = 12 if long_form else 8
        if length == _UNDEFINED:
            return
        if pos + header + length > len(item):
            raise ValueError(f"element at byte {at + pos} claims {length} bytes, past the end of its item")
        pos += header + length


def read_private(ds: Dataset, entry: PrivateEntry, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> DataElement | None:
    """Return the element *entry* of *ds* re-typed from our dictionary, or None when absent.

    The element is found through its private creator (``"<creator_prefix> gggg"``). An element
    stored as UN / implicit is decoded with our VR (sequences into Datasets); an element already
    carrying our VR is returned as is; one carrying another text VR keeps its string. *ds* is not
    modified.

    Raises
    ------
    DicomInputError
        The bytes cannot be decoded as our VR (the message names the tag).
    """
    tag = private_tag(ds, entry, creator_prefix=creator_prefix)
    if tag is None or tag not in ds:
        return None
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):  # not converted yet: always decode the bytes with our VR
        little = elem.is_little_endian if elem.is_little_endian is not None else True
        return _from_bytes(ds, tag, entry, elem.value, little)
    if elem.VR == entry.vr:
        return elem
    if elem.value is None or isinstance(elem.value, bytes | bytearray):
        return _from_bytes(ds, tag, entry, elem.value, True)
    if elem.VR in _TEXT_VRS and entry.vr in _TEXT_VRS:
        return _element(tag, entry.vr, elem.value)
    raise DicomInputError(f"private element {tag} {entry.name}: stored as {elem.VR}, expected {entry.vr}")


def _from_bytes(ds: Dataset, tag: BaseTag, entry: PrivateEntry, value: bytes | None, little: bool) -> DataElement:
    if not value:
        return _element(tag, entry.vr, [] if entry.vr == "SQ" else None)
    if entry.vr in ("OB", "UN"):
        return _element(tag, entry.vr, bytes(value))
    decoded = decode_private_bytes(tag, entry.vr, bytes(value), encodings=_encodings(ds), is_little_endian=little)
    return _element(tag, entry.vr, decoded)


def _element(tag: BaseTag, vr: str, value: Any) -> DataElement:
    """A re-typed element; vendor values are kept even when they break the VR (tolerant reading)."""
    return DataElement(tag, vr, value, validation_mode=pydicom_config.IGNORE)


def read_private_value(ds: Dataset, entry: PrivateEntry, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR,
                       default: Any = None) -> Any:
    """Like :func:`read_private` but return a plain Python value.

    DS/FD -> float (VM 1) or tuple of floats; IS -> int or tuple; text -> str (stripped;
    a multi-valued text -> tuple of str); OB -> bytes; SQ -> :class:`pydicom.sequence.Sequence`.
    An absent or empty element gives *default*.
    """
    elem = read_private(ds, entry, creator_prefix=creator_prefix)
    if elem is None or elem.value is None or elem.value == "" or (elem.VR == "SQ" and len(elem.value) == 0):
        return default
    return _plain(elem)


def _plain(elem: DataElement) -> Any:
    value = elem.value
    if elem.VR in ("SQ", "OB", "OW", "UN"):
        return value
    many = elem.VM > 1
    values = list(value) if many else [value]
    if elem.VR in ("DS", "FD", "FL"):
        out: list[Any] = [float(v) for v in values]
    elif elem.VR in ("IS", "SL", "SS", "UL", "US"):
        out = [int(v) for v in values]
    else:
        out = [str(v).strip() for v in values]
    return tuple(out) if many else out[0]


def iter_private(ds: Dataset, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> Iterator[tuple[PrivateEntry, BaseTag]]:
    """Yield ``(entry, tag)`` for every element of our dictionary present in *ds* (top level)."""
    for entry in PRIVATE_DICTIONARY:
        tag = private_tag(ds, entry, creator_prefix=creator_prefix)
        if tag is not None and tag in ds:
            yield entry, tag


def retype_private_elements(ds: Dataset, *, creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> int:
    """Replace, **in place** and recursively, every known untyped private element by its typed form.

    Returns the number of elements re-typed. Useful before writing a received object again or
    before a round-trip comparison; readers use :func:`read_private` and leave *ds* untouched.
    """
    count = 0
    for entry, tag in list(iter_private(ds, creator_prefix=creator_prefix)):
        before = ds.get_item(tag)
        typed = read_private(ds, entry, creator_prefix=creator_prefix)
        if typed is not None and (isinstance(before, RawDataElement) or before.VR != typed.VR):
            ds[tag] = typed
            count += 1
    for elem in ds:
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                count += retype_private_elements(item, creator_prefix=creator_prefix)
    return count


# --------------------------------------------------------------------------- writing
def write_private(ds: Dataset, entry: PrivateEntry, value: Any, *,
                  creator_prefix: str = DEFAULT_PRIVATE_CREATOR) -> DataElement:
    """Write *value* as *entry* into *ds*, reserving the creator's block if needed; return it.

    The block is the one already reserved by ``"<creator_prefix> gggg"`` or the first free one
    (pydicom ``Dataset.private_block``). The VR is ours. Text values are stored as given (the
    caller validates enumerated values); a sequence takes a list of Datasets; OB takes bytes
    (pydicom pads to even length on write).
    """
    block = ds.private_block(entry.group, entry.creator(creator_prefix), create=True)
    if entry.vr == "SQ":
        value = Sequence(list(value))
    elif entry.vr == "OB" and isinstance(value, str):
        value = value.encode("utf-8")
    tag = block.get_tag(entry.offset)
    # The vendor's own format values ("ExtendedIF", "ImageProcessing") break the CS repertoire;
    # we write what the TMS reads, so that one element is not validated.
    mode = pydicom_config.IGNORE if entry is EXTENDED_INTERFACE_FORMAT else None
    ds[tag] = DataElement(tag, entry.vr, value, validation_mode=mode)
    return ds[tag]
