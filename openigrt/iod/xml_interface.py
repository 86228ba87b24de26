"""The Varian extended-interface XML of private attribute (3253,xx00) (SPEC XML-1, IOD-8).

An RT Plan carries an ``ExtendedVAPlanInterface`` document (format ``ExtendedIF``); an RT Image
may carry an ``RTImageExtendedInterface`` document (format ``ImageProcessing``, filter settings).
:func:`parse_extended_interface` turns either into typed, frozen data; :meth:`to_xml` writes it
back, and ``parse(x.to_xml()) == x`` (round trip). Occurrence and length limits of XML-1 are
validated both when parsing and when constructing (strict writing), raising
:class:`~openigrt.errors.XmlInterfaceError` with the path of the offending element.

Parsing uses the standard library's ``xml.etree.ElementTree`` (expat, which since 2.4.1 limits
entity expansion); documents with a DTD are refused outright since the interface never has one.

Field names are the XML element names in snake case; element absent -> ``None``; a present
but empty list container (``<CustomAddOns/>``) -> ``()``. Unknown child elements are kept
verbatim in ``extra`` and written back at the end of their parent.

>>> doc = parse_extended_interface(b'<ExtendedVAPlanInterface Version="1"><Beams><Beam>'
...     b'<ReferencedBeamNumber>5</ReferencedBeamNumber><BeamExtension><FieldType>SETUP</FieldType>'
...     b'</BeamExtension></Beam></Beams></ExtendedVAPlanInterface>')
>>> doc.beam(5).beam_extension.field_type
<FieldTypeValues.SETUP: 'SETUP'>
>>> parse_extended_interface(doc.to_xml()) == doc
True
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from openigrt.errors import XmlInterfaceError
from openigrt.iod.enum import AxisSetupModeValues, CustomAddOnTypeValues, FieldTypeValues, SetupPhotoFormatValues

#: XML-1 occurrence and length limits.
MAX_SETUP_PHOTOS = 2
MAX_CUSTOM_ADD_ONS = 4
MAX_TRAY_ID_CHARS = 16
MAX_BREAKPOINT_WARNING_CHARS = 254

PLAN_ROOT = "ExtendedVAPlanInterface"
IMAGE_ROOT = "RTImageExtendedInterface"


# --------------------------------------------------------------------------- scalar conversion
@dataclass(frozen=True)
class _Field:
    """One scalar child element: XML name, attribute name, kind, optional max length."""

    tag: str
    attr: str
    kind: Any  # "int" | "float" | "bool" | "str" | "hex" | an Enum class
    max_len: int | None = None


def _to_value(f: _Field, text: str | None, where: str) -> Any:
    text = (text or "").strip()
    path = f"{where}/{f.tag}"
    try:
        if f.kind == "str":
            if f.max_len is not None and len(text) > f.max_len:
                raise XmlInterfaceError(f"{path}: {len(text)} characters, at most {f.max_len} allowed")
            return text
        if text == "":
            return None
        if f.kind == "int":
            return int(text)
        if f.kind == "float":
            return float(text)
        if f.kind == "bool":
            if text.lower() not in {"true", "false", "1", "0"}:
                raise ValueError(text)
            return text.lower() in {"true", "1"}
        if f.kind == "hex":
            return bytes.fromhex(text)
        return f.kind(text)
    except XmlInterfaceError:
        raise
    except ValueError:
        allowed = f" (allowed: {', '.join(m.value for m in f.kind)})" if isinstance(f.kind, type) and issubclass(
            f.kind, Enum) else f" (expected {f.kind})"
        raise XmlInterfaceError(f"{path}: invalid value {text[:60]!r}{allowed}") from None


def _to_text(f: _Field, value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, float):
        return repr(value)
    return str(value)


class _Node:
    """Mixin for the typed XML nodes: scalar fields listed in ``FIELDS``, strict post-init checks."""

    FIELDS: ClassVar[tuple[_Field, ...]] = ()
    TAG: ClassVar[str] = ""

    def _check_scalars(self) -> None:
        for f in self.FIELDS:
            value = getattr(self, f.attr)
            if value is None:
                continue
            if isinstance(f.kind, type) and issubclass(f.kind, Enum) and not isinstance(value, f.kind):
                object.__setattr__(self, f.attr, _to_value(f, str(getattr(value, "value", value)), self.TAG))
            elif f.kind == "str" and f.max_len is not None:
                _to_value(f, value, self.TAG)

    def __post_init__(self) -> None:
        self._check_scalars()


def _scalars(elem: ET.Element, cls: type[_Node], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in cls.FIELDS:
        child = elem.find(f.tag)
        if child is not None:
            out[f.attr] = _to_value(f, child.text, where)
    return out


def _extra(elem: ET.Element, known: set[str]) -> tuple[str, ...]:
    return tuple(ET.tostring(c, encoding="unicode") for c in elem if c.tag not in known)


def _write_scalars(parent: ET.Element, node: _Node) -> None:
    for f in node.FIELDS:
        value = getattr(node, f.attr)
        if value is not None:
            ET.SubElement(parent, f.tag).text = _to_text(f, value)


def _write_extra(parent: ET.Element, extra: tuple[str, ...]) -> None:
    for text in extra:
        parent.append(ET.fromstring(text))


def _count(elem: ET.Element, container: str, item: str, limit: int | None, where: str) -> list[ET.Element] | None:
    box = elem.find(container)
    if box is None:
        return None
    items = box.findall(item)
    if limit is not None and len(items) > limit:
        raise XmlInterfaceError(f"{where}/{container}: {len(items)} {item} elements, at most {limit} allowed")
    return items


def _limit(items: tuple[Any, ...] | None, limit: int, where: str) -> None:
    if items is not None and len(items) > limit:
        raise XmlInterfaceError(f"{where}: {len(items)} items, at most {limit} allowed")


# --------------------------------------------------------------------------- Beams
@dataclass(frozen=True)
class FieldSetupPhoto(_Node):
    """``FieldSetupPhotos/FieldSetupPhoto``: a setup photo (picture as raw bytes from hexBinary)."""

    TAG: ClassVar[str] = "FieldSetupPhoto"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("SetupPhotoNumber", "setup_photo_number", "int"),
        _Field("SetupPhotoFormat", "setup_photo_format", SetupPhotoFormatValues),
        _Field("SetupPhotoPicture", "setup_photo_picture", "hex"),
        _Field("PhotoModified", "photo_modified", "bool"),
    )
    setup_photo_number: int | None = None
    setup_photo_format: SetupPhotoFormatValues | None = None
    setup_photo_picture: bytes | None = field(default=None, repr=False)
    photo_modified: bool | None = None


@dataclass(frozen=True)
class CustomAddOn(_Node):
    """``CustomAddOns/CustomAddOn``."""

    TAG: ClassVar[str] = "CustomAddOn"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("CustomAddOnType", "custom_add_on_type", CustomAddOnTypeValues),
        _Field("CustomCode", "custom_code", "str"),
        _Field("ReferencedAddOnNumber", "referenced_add_on_number", "int"),
    )
    custom_add_on_type: CustomAddOnTypeValues | None = None
    custom_code: str | None = None
    referenced_add_on_number: int | None = None


@dataclass(frozen=True)
class TraySpecification(_Node):
    """``TraySpecification``: TrayID (≤16 characters) and SourceTrayDistance (mm)."""

    TAG: ClassVar[str] = "TraySpecification"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("TrayID", "tray_id", "str", MAX_TRAY_ID_CHARS),
        _Field("SourceTrayDistance", "source_tray_distance", "float"),
    )
    tray_id: str | None = None
    source_tray_distance: float | None = None


@dataclass(frozen=True)
class BeamExtension(_Node):
    """``Beam/BeamExtension`` (XML-1). ``field_type`` is PLAN-1's deprecated fallback."""

    TAG: ClassVar[str] = "BeamExtension"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("FieldType", "field_type", FieldTypeValues),
        _Field("RelatedTreatBeamNumber", "related_treat_beam_number", "int"),
        _Field("FieldOrder", "field_order", "int"),
        _Field("GantryRtnExtendedStart", "gantry_rtn_extended_start", "bool"),
        _Field("GantryRtnExtendedStop", "gantry_rtn_extended_stop", "bool"),
        _Field("MUSubtraction", "mu_subtraction", "str"),
    )
    field_type: FieldTypeValues | None = None
    related_treat_beam_number: int | None = None
    field_order: int | None = None
    gantry_rtn_extended_start: bool | None = None
    gantry_rtn_extended_stop: bool | None = None
    mu_subtraction: str | None = None
    field_setup_photos: tuple[FieldSetupPhoto, ...] | None = None
    custom_add_ons: tuple[CustomAddOn, ...] | None = None
    tray_specification: TraySpecification | None = None
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_scalars()
        _limit(self.field_setup_photos, MAX_SETUP_PHOTOS, "BeamExtension/FieldSetupPhotos")
        _limit(self.custom_add_ons, MAX_CUSTOM_ADD_ONS, "BeamExtension/CustomAddOns")


@dataclass(frozen=True)
class Beam(_Node):
    """``Beams/Beam``: the extension of the RT Plan beam with Beam Number ``referenced_beam_number``."""

    TAG: ClassVar[str] = "Beam"
    FIELDS: ClassVar[tuple[_Field, ...]] = (_Field("ReferencedBeamNumber", "referenced_beam_number", "int"),)
    referenced_beam_number: int | None = None
    beam_extension: BeamExtension | None = None
    extra: tuple[str, ...] = ()


# --------------------------------------------------------------------------- Tolerance tables
_SETUP_AXES = ("GantryRtnSetup", "CollRtnSetup", "CollXSetup", "CollYSetup", "PatientSupportAngleSetup",
               "CouchLngSetup", "CouchVrtSetup", "CouchLatSetup", "TableTopEccentricAngleSetup")


def _snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out


@dataclass(frozen=True)
class ToleranceTableExtension(_Node):
    """``ToleranceTableExtension``: how each axis is set up (Automatic | Manual | Remote)."""

    TAG: ClassVar[str] = "ToleranceTableExtension"
    FIELDS: ClassVar[tuple[_Field, ...]] = tuple(_Field(a, _snake(a), AxisSetupModeValues) for a in _SETUP_AXES)
    gantry_rtn_setup: AxisSetupModeValues | None = None
    coll_rtn_setup: AxisSetupModeValues | None = None
    coll_x_setup: AxisSetupModeValues | None = None
    coll_y_setup: AxisSetupModeValues | None = None
    patient_support_angle_setup: AxisSetupModeValues | None = None
    couch_lng_setup: AxisSetupModeValues | None = None
    couch_vrt_setup: AxisSetupModeValues | None = None
    couch_lat_setup: AxisSetupModeValues | None = None
    table_top_eccentric_angle_setup: AxisSetupModeValues | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToleranceTable(_Node):
    """``ToleranceTables/ToleranceTable``."""

    TAG: ClassVar[str] = "ToleranceTable"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("ReferencedToleranceTableNumber", "referenced_tolerance_table_number", "int"),)
    referenced_tolerance_table_number: int | None = None
    tolerance_table_extension: ToleranceTableExtension | None = None
    extra: tuple[str, ...] = ()


# --------------------------------------------------------------------------- Dose references
@dataclass(frozen=True)
class Breakpoint(_Node):
    """``Breakpoints/Breakpoint``: dose [Gy] and a warning text (≤254 characters)."""

    TAG: ClassVar[str] = "Breakpoint"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("BreakpointDose", "breakpoint_dose", "float"),
        _Field("BreakpointWarning", "breakpoint_warning", "str", MAX_BREAKPOINT_WARNING_CHARS),
    )
    breakpoint_dose: float | None = None
    breakpoint_warning: str | None = None


@dataclass(frozen=True)
class DoseReferenceExtension(_Node):
    """``DoseReferenceExtension``: daily and session dose limits [Gy] and breakpoints."""

    TAG: ClassVar[str] = "DoseReferenceExtension"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("DailyDoseLimit", "daily_dose_limit", "float"),
        _Field("SessionDoseLimit", "session_dose_limit", "float"),
    )
    daily_dose_limit: float | None = None
    session_dose_limit: float | None = None
    breakpoints: tuple[Breakpoint, ...] | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class DoseReference(_Node):
    """``DoseReferences/DoseReference``."""

    TAG: ClassVar[str] = "DoseReference"
    FIELDS: ClassVar[tuple[_Field, ...]] = (
        _Field("ReferencedDoseReferenceNumber", "referenced_dose_reference_number", "int"),)
    referenced_dose_reference_number: int | None = None
    dose_reference_extension: DoseReferenceExtension | None = None
    extra: tuple[str, ...] = ()


# --------------------------------------------------------------------------- documents
@dataclass(frozen=True)
class ExtendedVAPlanInterface:
    """The whole ``ExtendedVAPlanInterface`` document of an RT Plan (XML-1)."""

    version: str | None = "1"
    beams: tuple[Beam, ...] | None = None
    tolerance_tables: tuple[ToleranceTable, ...] | None = None
    dose_references: tuple[DoseReference, ...] | None = None
    extra: tuple[str, ...] = ()

    def beam(self, number: int) -> Beam | None:
        """The ``Beam`` whose ReferencedBeamNumber is *number* (PLAN-1 fallback), or None."""
        return next((b for b in self.beams or () if b.referenced_beam_number == number), None)

    def field_type(self, number: int) -> FieldTypeValues | None:
        """``BeamExtension/FieldType`` of beam *number*, or None when not given."""
        b = self.beam(number)
        return b.beam_extension.field_type if b is not None and b.beam_extension is not None else None

    def to_xml(self, *, declaration: bool = True) -> bytes:
        """Serialise as UTF-8 (with an XML declaration unless *declaration* is False)."""
        root = ET.Element(PLAN_ROOT)
        if self.version is not None:
            root.set("Version", self.version)
        _write_list(root, "Beams", self.beams, _write_beam)
        _write_list(root, "ToleranceTables", self.tolerance_tables, _write_tolerance_table)
        _write_list(root, "DoseReferences", self.dose_references, _write_dose_reference)
        _write_extra(root, self.extra)
        body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
        head = '<?xml version="1.0" encoding="utf-8"?>' if declaration else ""
        return (head + body).encode("utf-8")


@dataclass(frozen=True)
class RTImageExtendedInterface:
    """The ``RTImageExtendedInterface`` document of an RT Image (format ``ImageProcessing``).

    Kept verbatim (``xml``) with the names of the processing steps it lists; written back as is.
    """

    xml: str
    processing_names: tuple[str, ...] = ()

    def to_xml(self, *, declaration: bool = False) -> bytes:
        head = '<?xml version="1.0" encoding="utf-8"?>' if declaration else ""
        return (head + self.xml).encode("utf-8")


# --------------------------------------------------------------------------- parsing
def _prepare(data: bytes | str) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    raw = raw.rstrip(b"\x00 \r\n\t")
    if not raw:
        raise XmlInterfaceError("extended interface: empty XML")
    if b"<!DOCTYPE" in raw[:4096] or b"<!ENTITY" in raw:
        raise XmlInterfaceError("extended interface: a DTD/entity declaration is not allowed")
    return raw


def parse_extended_interface(data: bytes | str) -> ExtendedVAPlanInterface | RTImageExtendedInterface:
    """Parse the (3253,xx00) value: ``ExtendedVAPlanInterface`` or ``RTImageExtendedInterface``.

    Trailing NUL/space padding is ignored. Raises :class:`XmlInterfaceError` on malformed XML,
    an unknown root element, a bad value or a violated occurrence/length limit.
    """
    raw = _prepare(data)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise XmlInterfaceError(f"extended interface: malformed XML: {exc}") from None
    if root.tag == PLAN_ROOT:
        return _parse_plan(root)
    if root.tag == IMAGE_ROOT:
        names = tuple(p.get("Name", "") for p in root.iter("Processing"))
        body = raw.decode("utf-8", errors="replace")
        if body.startswith("<?xml"):
            body = body[body.index("?>") + 2:].lstrip()
        return RTImageExtendedInterface(body, names)
    raise XmlInterfaceError(f"extended interface: unknown root element <{root.tag}> "
                            f"(expected <{PLAN_ROOT}> or <{IMAGE_ROOT}>)")


def parse_plan_interface(data: bytes | str) -> ExtendedVAPlanInterface:
    """Like :func:`parse_extended_interface` but require an ``ExtendedVAPlanInterface``."""
    doc = parse_extended_interface(data)
    if not isinstance(doc, ExtendedVAPlanInterface):
        raise XmlInterfaceError(f"extended interface: <{IMAGE_ROOT}> found where <{PLAN_ROOT}> was expected")
    return doc


def _parse_plan(root: ET.Element) -> ExtendedVAPlanInterface:
    where = PLAN_ROOT
    beams = _count(root, "Beams", "Beam", None, where)
    tables = _count(root, "ToleranceTables", "ToleranceTable", None, where)
    doses = _count(root, "DoseReferences", "DoseReference", None, where)
    return ExtendedVAPlanInterface(
        version=root.get("Version"),
        beams=None if beams is None else tuple(_parse_beam(b, f"{where}/Beams/Beam[{i}]")
                                               for i, b in enumerate(beams, 1)),
        tolerance_tables=None if tables is None else tuple(
            _parse_tolerance_table(t, f"{where}/ToleranceTables/ToleranceTable[{i}]") for i, t in enumerate(tables, 1)),
        dose_references=None if doses is None else tuple(
            _parse_dose_reference(d, f"{where}/DoseReferences/DoseReference[{i}]") for i, d in enumerate(doses, 1)),
        extra=_extra(root, {"Beams", "ToleranceTables", "DoseReferences"}),
    )


def _known(cls: type[_Node], *more: str) -> set[str]:
    return {f.tag for f in cls.FIELDS} | set(more)


def _parse_beam(elem: ET.Element, where: str) -> Beam:
    ext = elem.find("BeamExtension")
    return Beam(**_scalars(elem, Beam, where),
                beam_extension=None if ext is None else _parse_beam_extension(ext, f"{where}/BeamExtension"),
                extra=_extra(elem, _known(Beam, "BeamExtension")))


def _parse_beam_extension(elem: ET.Element, where: str) -> BeamExtension:
    photos = _count(elem, "FieldSetupPhotos", "FieldSetupPhoto", MAX_SETUP_PHOTOS, where)
    addons = _count(elem, "CustomAddOns", "CustomAddOn", MAX_CUSTOM_ADD_ONS, where)
    tray = elem.find("TraySpecification")
    return BeamExtension(
        **_scalars(elem, BeamExtension, where),
        field_setup_photos=None if photos is None else tuple(
            FieldSetupPhoto(**_scalars(p, FieldSetupPhoto, f"{where}/FieldSetupPhotos/FieldSetupPhoto[{i}]"))
            for i, p in enumerate(photos, 1)),
        custom_add_ons=None if addons is None else tuple(
            CustomAddOn(**_scalars(a, CustomAddOn, f"{where}/CustomAddOns/CustomAddOn[{i}]"))
            for i, a in enumerate(addons, 1)),
        tray_specification=None if tray is None else TraySpecification(
            **_scalars(tray, TraySpecification, f"{where}/TraySpecification")),
        extra=_extra(elem, _known(BeamExtension, "FieldSetupPhotos", "CustomAddOns", "TraySpecification")),
    )


def _parse_tolerance_table(elem: ET.Element, where: str) -> ToleranceTable:
    ext = elem.find("ToleranceTableExtension")
    return ToleranceTable(
        **_scalars(elem, ToleranceTable, where),
        tolerance_table_extension=None if ext is None else ToleranceTableExtension(
            **_scalars(ext, ToleranceTableExtension, f"{where}/ToleranceTableExtension"),
            extra=_extra(ext, _known(ToleranceTableExtension))),
        extra=_extra(elem, _known(ToleranceTable, "ToleranceTableExtension")))


def _parse_dose_reference(elem: ET.Element, where: str) -> DoseReference:
    ext = elem.find("DoseReferenceExtension")
    extension = None
    if ext is not None:
        w = f"{where}/DoseReferenceExtension"
        points = _count(ext, "Breakpoints", "Breakpoint", None, w)
        extension = DoseReferenceExtension(
            **_scalars(ext, DoseReferenceExtension, w),
            breakpoints=None if points is None else tuple(
                Breakpoint(**_scalars(p, Breakpoint, f"{w}/Breakpoints/Breakpoint[{i}]"))
                for i, p in enumerate(points, 1)),
            extra=_extra(ext, _known(DoseReferenceExtension, "Breakpoints")))
    return DoseReference(**_scalars(elem, DoseReference, where), dose_reference_extension=extension,
                         extra=_extra(elem, _known(DoseReference, "DoseReferenceExtension")))


# --------------------------------------------------------------------------- writing
def _write_list(parent: ET.Element, container: str, items: tuple[Any, ...] | None, writer: Any) -> None:
    if items is None:
        return
    box = ET.SubElement(parent, container)
    for item in items:
        writer(box, item)


def _write_node(parent: ET.Element, node: _Node) -> ET.Element:
    elem = ET.SubElement(parent, node.TAG)
    _write_scalars(elem, node)
    return elem


def _write_beam(parent: ET.Element, beam: Beam) -> None:
    elem = _write_node(parent, beam)
    ext = beam.beam_extension
    if ext is not None:
        e = _write_node(elem, ext)
        _write_list(e, "FieldSetupPhotos", ext.field_setup_photos, _write_node)
        _write_list(e, "CustomAddOns", ext.custom_add_ons, _write_node)
        if ext.tray_specification is not None:
            _write_node(e, ext.tray_specification)
        _write_extra(e, ext.extra)
    _write_extra(elem, beam.extra)


def _write_tolerance_table(parent: ET.Element, table: ToleranceTable) -> None:
    elem = _write_node(parent, table)
    if table.tolerance_table_extension is not None:
        e = _write_node(elem, table.tolerance_table_extension)
        _write_extra(e, table.tolerance_table_extension.extra)
    _write_extra(elem, table.extra)


def _write_dose_reference(parent: ET.Element, ref: DoseReference) -> None:
    elem = _write_node(parent, ref)
    ext = ref.dose_reference_extension
    if ext is not None:
        e = _write_node(elem, ext)
        _write_list(e, "Breakpoints", ext.breakpoints, _write_node)
        _write_extra(e, ext.extra)
    _write_extra(elem, ref.extra)


def replace(node: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` re-exported: a changed copy, validated again."""
    return dataclasses.replace(node, **changes)
