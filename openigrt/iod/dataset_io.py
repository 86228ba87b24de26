"""Tolerant reading of DICOM files and attributes, with errors that name the file and the tag.

Readers of this package are *tolerant when reading* (docs/ARCHITECTURE.md habit 6): a flaw that
does not change the meaning of the data (a file meta UID with a leading zero, an invalid value
representation in an attribute we do not use) is kept as an **issue** — a sentence naming the
file and the tag — and reading goes on. A flaw that makes the object unusable (not DICOM, an
attribute we need missing or not a number) raises :class:`~openigrt.errors.DicomInputError` or
:class:`~openigrt.errors.MissingAttributeError` whose message names the file and the tag.

* :func:`read_file` / :func:`read_paths` — Part 10 files (NET-12 import) into :class:`DicomFile`.
* :func:`dicom_file` — wrap an in-memory Dataset (received by the SCP) the same way.
* :class:`AttributeReader` — typed, path-aware access to attributes for the object readers.

>>> from pydicom import Dataset
>>> ds = Dataset(); ds.BeamNumber = "3"; ds.GantryAngle = "270"
>>> r = AttributeReader(ds, "plan.dcm, Beam Sequence[1]")
>>> r.int("BeamNumber"), r.float("GantryAngle"), r.opt_float("PatientSupportAngle")
(3, 270.0, None)
>>> r.str("BeamName")
Traceback (most recent call last):
...
openigrt.errors.MissingAttributeError: plan.dcm, Beam Sequence[1]: (300A,00C2) Beam Name is missing
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pydicom import dcmread
from pydicom.datadict import dictionary_description, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    RTImageStorage,
    RTIonPlanStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SpatialRegistrationStorage,
)

from openigrt.errors import DicomInputError, MissingAttributeError, UnsupportedObjectError
from openigrt.iod.pixel_data import PixelDataRef, locate_pixel_data
from openigrt.uids import is_valid_uid

#: SOP classes OpenIGRT reads (SPEC §1 table; RT Ion Plan read like RT Plan where the same).
SOP_CLASS_NAMES: dict[str, str] = {
    str(CTImageStorage): "CT Image",
    str(RTImageStorage): "RT Image",
    str(RTStructureSetStorage): "RT Structure Set",
    str(RTPlanStorage): "RT Plan",
    str(RTIonPlanStorage): "RT Ion Plan",
    str(SpatialRegistrationStorage): "Spatial Registration",
}
#: Attributes whose (large) values readers parse themselves from the raw bytes, never eagerly.
_BULK = {Tag(0x7FE0, 0x0010), Tag(0x3006, 0x0050), Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009)}


def tag_label(keyword_or_tag: str | int | BaseTag) -> str:
    """``"(300A,00C0) Beam Number"`` for a keyword or a tag (private tags: just the tag)."""
    tag = Tag(tag_for_keyword(keyword_or_tag) if isinstance(keyword_or_tag, str) else keyword_or_tag)
    try:
        name = dictionary_description(tag)
    except KeyError:
        name = "private" if tag.is_private else "unknown attribute"
    return f"({tag.group:04X},{tag.element:04X}) {name}"


def sop_class_name(uid: str) -> str:
    """Readable name of a SOP Class UID (ours or pydicom's), else the UID itself."""
    if uid in SOP_CLASS_NAMES:
        return SOP_CLASS_NAMES[uid]
    from pydicom.uid import UID

    name = UID(uid).name
    return name.removesuffix(" Storage") if name and name != uid else uid


@dataclass(frozen=True)
class DicomFile:
    """One DICOM object as read: the Dataset, its identity and the flaws we tolerated.

    Attributes
    ----------
    source : str
        What messages call it: the file path, or ``dataset <SOP Instance UID>``.
    issues : tuple of str
        Tolerated flaws, each naming the tag (shown as warnings by ``openigrt validate``).
    pixel_data : PixelDataRef or None
        Where the Pixel Data value lies in the file when it was not read (``defer_pixels``);
        ``dataset`` then has no (7FE0,0010) element.
    """

    source: str
    dataset: Dataset = field(repr=False)
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str | None
    issues: tuple[str, ...] = ()
    path: Path | None = None
    pixel_data: PixelDataRef | None = None

    @property
    def sop_class_name(self) -> str:
        return sop_class_name(self.sop_class_uid)

    def has_pixel_data(self) -> bool:
        """(7FE0,0010) Pixel Data is present with a non-empty value (read or deferred)."""
        if self.pixel_data is not None:
            return self.pixel_data.length != 0
        if "PixelData" not in self.dataset:
            return False
        return self.dataset["PixelData"].value not in (None, b"")


@contextlib.contextmanager
def captured_pydicom_warnings(issues: list[str], where: str) -> Iterator[None]:
    """Collect pydicom's value warnings as *issues* (prefixed with *where*) instead of printing them.

    pydicom both warns and logs on the ``pydicom`` logger; the logger is silenced by a filter
    for the duration so the CLI does not print each flaw twice.
    """

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return False

    drop = _Drop()
    logger = logging.getLogger("pydicom")
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeFilter(drop)
    for w in caught:
        message = str(w.message).split(" Please see")[0]
        quoted = message.split("'")[1] if message.count("'") >= 2 else None
        if quoted and any(quoted in known for known in issues):
            continue  # already reported with more context (e.g. by _check_identity)
        text = f"{where}: {message}"
        if text not in issues:
            issues.append(text)


class ConversionMemo:
    """Raw elements already converted once without any flaw, to skip converting their twins.

    The slices of a CT series share most of their header bytes (patient, study, series,
    equipment, pixel description). Converting an element depends only on its tag, VR, bytes,
    byte order and character set (elements with an ambiguous VR, resolved from other elements,
    are never memoised), so when an identical raw element converted cleanly before, converting
    it again can neither raise nor warn: it is left raw, and pydicom converts it on first
    access with the same result. Flaws are therefore still reported for every file. One memo
    serves one :func:`read_paths` / series read (no global state).
    """

    #: Values longer than this (bytes) are converted as usual, never memoised.
    MAX_VALUE_BYTES: Final = 256

    def __init__(self) -> None:
        self._clean: set[tuple[Any, ...]] = set()

    def key(self, tag: BaseTag, raw: Any, charset: str) -> tuple[Any, ...] | None:
        """The memo key of a raw element of a data set decoding text with *charset*, or None when it
        must be converted eagerly."""
        if not isinstance(raw, RawDataElement) or raw.value is None or len(raw.value) > self.MAX_VALUE_BYTES:
            return None
        vr = raw.VR or _dictionary_vr(tag)
        if vr is None or vr == "SQ" or " or " in vr:
            return None
        return tag, raw.VR, raw.is_little_endian, raw.is_implicit_VR, charset, raw.value

    def known_clean(self, key: tuple[Any, ...]) -> bool:
        return key in self._clean

    def add_clean(self, key: tuple[Any, ...]) -> None:
        self._clean.add(key)


def _dictionary_vr(tag: BaseTag) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def _charset_key(ds: Dataset) -> str:
    try:
        return repr(ds._character_set)  # the encodings pydicom decodes text with (own or inherited)
    except Exception:  # noqa: BLE001 - an odd Specific Character Set: never equal to a clean key
        return f"unusual {id(ds)}"


def _convert_element(ds: Dataset, tag: BaseTag, where: str, issues: list[str],
                     memo: ConversionMemo | None, charset: str) -> DataElement | None:
    """Convert one raw element (or skip it as a known-clean twin); None when undecodable or skipped."""
    key = memo.key(tag, ds.get_item(tag), charset) if memo is not None else None
    try:
        if key is None:
            return ds[tag]
        if memo.known_clean(key):  # type: ignore[union-attr]
            return None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            elem = ds[tag]
        for w in caught:  # hand them on to captured_pydicom_warnings
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not caught:
            memo.add_clean(key)  # type: ignore[union-attr]
        return elem
    except Exception as exc:  # an undecodable element is an issue, not a crash: keep its bytes as UN
        raw = ds.get_item(tag)
        issues.append(f"{where}: {tag_label(tag)} cannot be decoded ({exc}); kept as raw bytes")
        ds[tag] = DataElement(tag, "UN", getattr(raw, "value", None) or b"")
        return None


def _convert_all(ds: Dataset, where: str, issues: list[str], memo: ConversionMemo | None = None) -> None:
    """Convert every raw element now (eager conversion), except bulk values parsed by readers and
    private elements (whose VR only our private dictionary knows, IOD-8); elements *memo* knows
    to convert cleanly are left raw (see :class:`ConversionMemo`)."""
    charset = _charset_key(ds) if memo is not None else ""
    for tag in list(ds.keys()):
        if tag in _BULK or (tag.group & 0xFF00) == 0x5000 and tag.element == 0x3000:
            continue
        if tag.is_private and not tag.is_private_creator:
            continue  # left raw: openigrt.iod.private types them from our dictionary, by creator
        elem = _convert_element(ds, tag, where, issues, memo, charset)
        if elem is not None and elem.VR == "SQ" and elem.value:
            for item in elem.value:
                _convert_all(item, where, issues, memo)


def _check_identity(ds: Dataset, where: str, issues: list[str]) -> tuple[str, str]:
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    sop_instance = str(ds.get("SOPInstanceUID", "") or "").strip()
    meta = getattr(ds, "file_meta", None)
    meta_class = str(meta.get("MediaStorageSOPClassUID", "") or "").strip() if meta is not None else ""
    meta_instance = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip() if meta is not None else ""
    if not sop_class:
        if not meta_class:
            raise MissingAttributeError(f"{where}: {tag_label('SOPClassUID')} is missing (and no file meta class)")
        issues.append(f"{where}: {tag_label('SOPClassUID')} is missing; using the file meta "
                      f"(0002,0002) {meta_class}")
        sop_class = meta_class
    if not sop_instance:
        raise MissingAttributeError(f"{where}: {tag_label('SOPInstanceUID')} is missing")
    if not is_valid_uid(sop_instance):
        issues.append(f"{where}: {tag_label('SOPInstanceUID')} {sop_instance!r} is not a valid UID")
    if meta_instance and meta_instance != sop_instance:
        bad = "" if is_valid_uid(meta_instance) else " is not a valid UID and"
        issues.append(f"{where}: file meta (0002,0003) Media Storage SOP Instance UID {meta_instance!r}{bad} "
                      f"differs from (0008,0018) SOP Instance UID {sop_instance!r}; using (0008,0018)")
    elif meta_instance and not is_valid_uid(meta_instance):
        issues.append(f"{where}: file meta (0002,0003) Media Storage SOP Instance UID {meta_instance!r} "
                      "is not a valid UID")
    if meta_class and meta_class != sop_class:
        issues.append(f"{where}: file meta (0002,0002) Media Storage SOP Class UID {meta_class} differs from "
                      f"(0008,0016) SOP Class UID {sop_class}; using (0008,0016)")
    return sop_class, sop_instance


def dicom_file(ds: Dataset, *, source: str | None = None, path: Path | None = None,
               issues: Iterable[str] = (), memo: ConversionMemo | None = None,
               pixel_data: PixelDataRef | None = None) -> DicomFile:
    """Wrap an in-memory Dataset as a :class:`DicomFile` (eager conversion, identity checks)."""
    found: list[str] = list(issues)
    sop = str(ds.get("SOPInstanceUID", "") or "?")
    where = source or f"dataset {sop}"
    with captured_pydicom_warnings(found, where):
        _convert_all(ds, where, found, memo)
        sop_class, sop_instance = _check_identity(ds, where, found)
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None
    return DicomFile(where, ds, sop_class, sop_instance, ts, tuple(found), path, pixel_data)


def read_file(path: str | Path, *, stop_before_pixels: bool = False, defer_pixels: bool = False,
              memo: ConversionMemo | None = None) -> DicomFile:
    """Read one Part 10 file (or a bare data set) tolerantly.

    *defer_pixels*: do not read the Pixel Data value, only locate it (``DicomFile.pixel_data``;
    the dataset then has no (7FE0,0010) element): a header-only read that still knows the
    pixels are there and where. Files whose encoding does not allow it are read whole.
    *memo* is shared by the files of one read (:class:`ConversionMemo`).

    Raises
    ------
    DicomInputError
        The file does not exist, cannot be read, or is not DICOM (message names the file).
    """
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise DicomInputError(f"{where}: no such file")
    issues: list[str] = []
    try:
        with captured_pydicom_warnings(issues, where):
            ds, ref = _dcmread(p, stop_before_pixels=stop_before_pixels, defer_pixels=defer_pixels, issues=issues)
    except OSError as exc:
        raise DicomInputError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:
        raise DicomInputError(f"{where}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if len(ds) == 0 or ("SOPClassUID" not in ds and "SOPInstanceUID" not in ds):
        raise DicomInputError(f"{where}: not a DICOM object (no SOP Class/Instance UID)")
    return dicom_file(ds, source=where, path=p, issues=issues, memo=memo, pixel_data=ref)


def _dcmread(p: Path, *, stop_before_pixels: bool, defer_pixels: bool,
             issues: list[str]) -> tuple[Dataset, PixelDataRef | None]:
    stop = stop_before_pixels or defer_pixels
    with open(p, "rb") as fh:
        try:
            ds = dcmread(fh, stop_before_pixels=stop)
        except InvalidDicomError:
            fh.seek(0)
            ds = dcmread(fh, stop_before_pixels=stop, force=True)
            issues.append(f"{p}: no DICOM Part 10 preamble/header; read as a bare data set")
        if stop_before_pixels or not defer_pixels:
            return ds, None
        ref, located = locate_pixel_data(fh, ds, p)
        if located:
            return ds, ref
        fh.seek(0)
        return dcmread(fh, force=True), None  # an encoding we do not locate: read it whole


def iter_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Expand *paths*: files as given, directories recursively (sorted), hidden files skipped."""
    for item in paths:
        p = Path(item)
        if p.is_dir():
            yield from (f for f in sorted(p.rglob("*")) if f.is_file() and not f.name.startswith("."))
        else:
            yield p


def read_paths(paths: Iterable[str | Path], *, stop_before_pixels: bool = False,
               defer_pixels: bool = False) -> tuple[list[DicomFile], list[str]]:
    """Read every DICOM file under *paths*; return ``(files, skipped)``.

    A file named explicitly that cannot be read raises :class:`DicomInputError`; a file found
    inside a directory that is not DICOM is skipped and reported in ``skipped`` (one sentence each).
    *defer_pixels* as for :func:`read_file`; the files share one :class:`ConversionMemo`.
    """
    explicit = {Path(p) for p in paths if not Path(p).is_dir()}
    files: list[DicomFile] = []
    skipped: list[str] = []
    memo = ConversionMemo()
    for p in iter_paths(paths):
        try:
            files.append(read_file(p, stop_before_pixels=stop_before_pixels, defer_pixels=defer_pixels, memo=memo))
        except DicomInputError as exc:
            if p in explicit:
                raise
            skipped.append(f"skipped {exc}")
    return files, skipped


# --------------------------------------------------------------------------- attribute access
class AttributeReader:
    """Typed access to the attributes of one Dataset (or sequence item), naming *where* in errors.

    ``where`` reads like ``"RP.dcm, Beam Sequence[2] > Control Point Sequence[1]"``; every error
    adds the tag and attribute name. ``str``/``int``/``float``/``floats`` require a value
    (:class:`MissingAttributeError` when absent or empty); ``opt_*`` return None instead.
    """

    def __init__(self, ds: Dataset, where: str) -> None:
        self.ds = ds
        self.where = where

    # -- presence
    def has(self, keyword: str) -> bool:
        """True when the attribute is present with a non-empty value."""
        elem = self.ds.get(keyword)
        return elem is not None and elem.value not in (None, "", b"") and not (
            elem.VR == "SQ" and len(elem.value) == 0)

    def _elem_value(self, keyword: str, *, required: bool) -> Any:
        if keyword not in self.ds:
            if required:
                raise MissingAttributeError(f"{self.where}: {tag_label(keyword)} is missing")
            return None
        value = self.ds[keyword].value
        if value is None or value == "" or value == b"":
            if required:
                raise MissingAttributeError(f"{self.where}: {tag_label(keyword)} is empty")
            return None
        return value

    def _bad(self, keyword: str, value: Any, what: str) -> DicomInputError:
        return DicomInputError(f"{self.where}: {tag_label(keyword)} value {value!r} is not {what}")

    # -- scalars
    def str(self, keyword: str) -> str:
        return self._to_str(self._elem_value(keyword, required=True))

    def opt_str(self, keyword: str) -> str | None:
        value = self._elem_value(keyword, required=False)
        return None if value is None else self._to_str(value)

    @staticmethod
    def _to_str(value: Any) -> str:
        if isinstance(value, list | tuple | MultiValue):
            return "\\".join(str(v).strip() for v in value)
        if isinstance(value, bytes):
            return value.decode("latin-1").strip(" \x00")
        return str(value).strip()

    def strs(self, keyword: str) -> tuple[str, ...]:
        """All values of a (possibly multi-valued) text attribute; empty tuple when absent."""
        value = self._elem_value(keyword, required=False)
        if value is None:
            return ()
        if isinstance(value, list | tuple | MultiValue):
            return tuple(str(v).strip() for v in value)
        return (str(value).strip(),)

    def int(self, keyword: str) -> int:
        value = self._elem_value(keyword, required=True)
        return self._to_int(keyword, value)

    def opt_int(self, keyword: str) -> int | None:
        value = self._elem_value(keyword, required=False)
        return None if value is None else self._to_int(keyword, value)

    def _to_int(self, keyword: str, value: Any) -> int:
        if hasattr(value, "__len__") and not isinstance(value, str | bytes):
            if len(value) != 1:
                raise self._bad(keyword, value, "a single integer")
            value = value[0]
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise self._bad(keyword, value, "an integer") from None
        if not np.isfinite(f) or f != int(f):
            raise self._bad(keyword, value, "an integer")
        return int(f)

    def float(self, keyword: str) -> float:
        return self._to_float(keyword, self._elem_value(keyword, required=True))

    def opt_float(self, keyword: str) -> float | None:
        value = self._elem_value(keyword, required=False)
        return None if value is None else self._to_float(keyword, value)

    def _to_float(self, keyword: str, value: Any) -> float:
        if hasattr(value, "__len__") and not isinstance(value, str | bytes):
            if len(value) != 1:
                raise self._bad(keyword, value, "a single number")
            value = value[0]
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise self._bad(keyword, value, "a number") from None
        if not np.isfinite(f):
            raise self._bad(keyword, value, "a finite number")
        return f

    def floats(self, keyword: str, n: int | None = None) -> tuple[float, ...]:
        """All values as floats; *n* checks the count (e.g. 3 for Isocenter Position)."""
        return self._to_floats(keyword, self._elem_value(keyword, required=True), n)

    def opt_floats(self, keyword: str, n: int | None = None) -> tuple[float, ...] | None:
        value = self._elem_value(keyword, required=False)
        return None if value is None else self._to_floats(keyword, value, n)

    def _to_floats(self, keyword: str, value: Any, n: int | None) -> tuple[float, ...]:
        values = [value] if isinstance(value, str | bytes) or not hasattr(value, "__len__") else list(value)
        try:
            out = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise self._bad(keyword, value, "a list of numbers") from None
        if n is not None and len(out) != n:
            raise DicomInputError(f"{self.where}: {tag_label(keyword)} has {len(out)} values, expected {n}")
        if not all(np.isfinite(out)):
            raise self._bad(keyword, value, "finite numbers")
        return out

    def array(self, keyword: str, *, dtype: type = np.float64) -> NDArray[Any]:
        """A multi-valued decimal attribute as a 1D array, parsed fast from the raw bytes when possible."""
        tag = Tag(tag_for_keyword(keyword))
        if tag not in self.ds:
            raise MissingAttributeError(f"{self.where}: {tag_label(keyword)} is missing")
        raw = self.ds.get_item(tag)
        try:
            if isinstance(raw, RawDataElement) and raw.value is not None:
                text = raw.value.decode("latin-1").strip(" \x00")
                return np.array(text.split("\\") if text else [], dtype=dtype)
            value = raw.value
            values = [] if value in (None, "") else [value] if isinstance(value, str | float | int) else list(value)
            return np.asarray([float(v) for v in values], dtype=dtype)
        except (TypeError, ValueError):
            raise self._bad(keyword, str(raw.value)[:40], "a list of numbers") from None

    # -- sequences
    def items(self, keyword: str, *, required: bool = False) -> list[AttributeReader]:
        """Readers for the items of a sequence (empty list when absent unless *required*)."""
        value = self._elem_value(keyword, required=required)
        if not value:
            return []
        name = tag_label(keyword).split(") ", 1)[1]
        return [AttributeReader(item, f"{self.where} > {name}[{i}]") for i, item in enumerate(value, 1)]

    def first(self, keyword: str) -> AttributeReader | None:
        """The first item of a sequence, or None."""
        found = self.items(keyword)
        return found[0] if found else None


# --------------------------------------------------------------------------- identity shared by all readers
@dataclass(frozen=True)
class ReferencedInstance:
    """A (Referenced SOP Class UID, Referenced SOP Instance UID) pair (PS3.3 Table 10-11)."""

    sop_class_uid: str
    sop_instance_uid: str

    @classmethod
    def from_item(cls, item: AttributeReader) -> ReferencedInstance:
        return cls(item.opt_str("ReferencedSOPClassUID") or "", item.str("ReferencedSOPInstanceUID"))


@dataclass(frozen=True)
class PatientStudy:
    """Patient and General Study identity (copied into derived objects, habit 6)."""

    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    study_instance_uid: str | None
    study_id: str | None
    study_date: str | None
    study_time: str | None
    accession_number: str | None

    @classmethod
    def from_reader(cls, r: AttributeReader) -> PatientStudy:
        return cls(r.opt_str("PatientName"), r.opt_str("PatientID"), r.opt_str("PatientBirthDate"),
                   r.opt_str("PatientSex"), r.opt_str("StudyInstanceUID"), r.opt_str("StudyID"),
                   r.opt_str("StudyDate"), r.opt_str("StudyTime"), r.opt_str("AccessionNumber"))


def as_dicom_file(obj: DicomFile | Dataset, source: str | None = None) -> DicomFile:
    """Accept either a :class:`DicomFile` or a bare Dataset (wrapped with :func:`dicom_file`)."""
    return obj if isinstance(obj, DicomFile) else dicom_file(obj, source=source)


def check_sop_class(f: DicomFile, *allowed: str) -> None:
    """Raise :class:`UnsupportedObjectError` naming the file when its SOP class is not *allowed*."""
    if f.sop_class_uid not in allowed:
        names = " or ".join(sop_class_name(a) for a in allowed)
        raise UnsupportedObjectError(f"{f.source}: is a {f.sop_class_name} ({f.sop_class_uid}), expected {names}")


def decode_pixels(f: DicomFile) -> NDArray[Any]:
    """The stored pixel values (``Dataset.pixel_array``); errors name the file and transfer syntax.

    An in-memory Dataset without a file meta (built or received) holds native pixel data; it is
    decoded as Explicit VR Little Endian on a shallow copy, so *f.dataset* is not modified.
    """
    ds = f.dataset
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds = copy.copy(ds)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises many kinds (no handler, bad length, ...)
        raise DicomInputError(f"{f.source}: (7FE0,0010) Pixel Data cannot be decoded "
                              f"(transfer syntax {f.transfer_syntax_uid or 'none'}): {exc}") from None
