"""The archive directory: Part 10 files, durable writes, index updates and file import (ARCHIVE-1).

Layout of an archive directory::

    DIR/index.sqlite            the SQLite index (+ -wal/-shm files while open)
    DIR/objects/ab/<SOP Instance UID>.dcm
                                one Part 10 file per instance; ``ab`` = first byte of the
                                SHA-256 of the UID in hex (256 sub-directories)
    DIR/destinations.toml       optional known C-MOVE destinations (see destinations.py)

A file's name depends only on its SOP Instance UID, so storing an instance again replaces the
file (atomically) and its index row. Every file is written to a temporary name in the same
directory, flushed and fsync'ed, then renamed over the target (and the directory fsync'ed)
**before** the index row is committed and success is reported: a crash never leaves a partial
file under a real name, and an indexed file is always complete.

The data set bytes are kept exactly as received or read (never decoded and re-encoded); the File
Meta Information is rewritten with the data set's own SOP Class/Instance UIDs and our
Implementation Class UID (PS3.10 7.1), which also repairs files whose meta disagrees with the
data set.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Final

from openigrt.archive.index import ArchiveIndex, InstanceRecord, values_from_dataset
from openigrt.archive.model import uid_like
from openigrt.errors import CacheError, DicomInputError, UnsupportedObjectError
from openigrt.net.cache import atomic_write, encode_file_meta, ensure_dir, is_stale_temp_name, is_temp_name
from openigrt.net.header import check_structure, split_part10
from openigrt.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

LOG = logging.getLogger("openigrt.archive")

INDEX_NAME: Final = "index.sqlite"
OBJECTS_DIR: Final = "objects"
#: SOP classes that are not composite instances and cannot be archived.
_NOT_COMPOSITE: Final = {"1.2.840.10008.1.3.10": "a DICOMDIR (Media Storage Directory)"}
#: Type 1 attributes every archived instance needs (PS3.3 C.7.2.1, C.7.3.1, C.12.1).
REQUIRED_KEYWORDS: Final = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class Identity:
    """Who writes the files: our implementation identity (PS3.10 7.1)."""

    implementation_class_uid: str = IMPLEMENTATION_CLASS_UID
    implementation_version_name: str = IMPLEMENTATION_VERSION_NAME


@dataclass(frozen=True)
class StoreOutcome:
    """Result of storing one instance."""

    record: InstanceRecord
    replaced: bool


@dataclass(frozen=True)
class ImportResult:
    """What happened to one file given to :meth:`ArchiveStore.import_paths`.

    ``status`` is ``stored``, ``replaced`` or ``skipped``; ``message`` says why a file was skipped.
    """

    path: Path
    status: str
    sop_instance_uid: str = ""
    message: str = ""


@dataclass(frozen=True)
class ImportReport:
    """All results of one import."""

    results: tuple[ImportResult, ...]

    def count(self, status: str) -> int:
        """Number of files with *status*."""
        return sum(1 for r in self.results if r.status == status)

    @property
    def skipped(self) -> tuple[ImportResult, ...]:
        return tuple(r for r in self.results if r.status == "skipped")


@dataclass(frozen=True)
class ReconcileReport:
    """What :meth:`ArchiveStore.reconcile` changed."""

    indexed: int
    dropped: int
    temp_removed: int


def _record(header: Dataset, values: dict[str, str], *, syntax: str, relative: str, offset: int,
            size: int) -> InstanceRecord:
    charset = header.get("SpecificCharacterSet", "")
    if isinstance(charset, list | tuple) or type(charset).__name__ == "MultiValue":
        charset = "\\".join(charset)
    return InstanceRecord(values=values, transfer_syntax_uid=syntax, path=relative, dataset_offset=offset,
                          size_bytes=size, stored_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          specific_character_set=str(charset or ""))


# --------------------------------------------------------------------------- header
#: Last tag the index needs (all indexed attributes are at or before (0020,0052)).
_INDEX_LAST_TAG: Final = 0x00200052
_DEFLATED: Final = "1.2.840.10008.1.2.1.99"
_BIG_ENDIAN: Final = "1.2.840.10008.1.2.2"
_IMPLICIT: Final = "1.2.840.10008.1.2"


def read_index_header(data: bytes, *, transfer_syntax_uid: str) -> Dataset:
    """Decode the elements of an encoded data set up to (0020,0052), for the index.

    Raises DicomInputError when the stream is truncated or the header cannot be decoded.
    """
    import zlib

    from pydicom.filereader import read_dataset

    if transfer_syntax_uid == _DEFLATED:
        try:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise DicomInputError(f"undecodable deflated data set ({exc})") from None
    if transfer_syntax_uid != _BIG_ENDIAN:
        check_structure(data, implicit_vr=transfer_syntax_uid == _IMPLICIT)
    try:
        ds = read_dataset(BytesIO(data), transfer_syntax_uid == _IMPLICIT, transfer_syntax_uid != _BIG_ENDIAN,
                          stop_when=lambda tag, vr, length: tag > _INDEX_LAST_TAG)
        values_from_dataset(ds)  # decode now: a bad value fails here, not later
    except DicomInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad values
        raise DicomInputError(f"undecodable data set header: {type(exc).__name__}: {exc}") from None
    return ds


def check_instance(ds: Dataset) -> None:
    """Raise DicomInputError unless *ds* has the UIDs the archive indexes by."""
    for keyword in REQUIRED_KEYWORDS:
        value = str(ds.get(keyword, "") or "").strip(" \0")
        if not value:
            raise DicomInputError(f"{keyword} {_tag(keyword)} is missing or empty")
        if not uid_like(value):
            raise DicomInputError(f"{keyword} {_tag(keyword)} {value!r} is not a UID")
    sop_class = str(ds.SOPClassUID)
    if sop_class in _NOT_COMPOSITE:
        raise UnsupportedObjectError(f"{_NOT_COMPOSITE[sop_class]} is not a composite instance")


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword) or 0
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# --------------------------------------------------------------------------- the store
class ArchiveStore:
    """Files and index of one archive directory.

    Parameters
    ----------
    directory
        The archive directory (created when missing).
    identity
        Implementation Class UID / Version Name written into the File Meta Information.
    """

    def __init__(self, directory: Path | str, *, identity: Identity | None = None) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.identity = identity or Identity()
        try:
            (self.directory / OBJECTS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"archive directory {self.directory}: cannot create ({exc.strerror})") from None
        self.index = ArchiveIndex(self.directory / INDEX_NAME)

    def close(self) -> None:
        """Close the index."""
        self.index.close()

    def relative_path(self, sop_instance_uid: str) -> str:
        """Where the file of *sop_instance_uid* lives, relative to the directory."""
        shard = hashlib.sha256(sop_instance_uid.encode("ascii")).hexdigest()[:2]
        return f"{OBJECTS_DIR}/{shard}/{sop_instance_uid}.dcm"

    def absolute(self, relative: str) -> Path:
        """Absolute path of an indexed relative path."""
        return self.directory / relative

    # ------------------------------------------------------------------ storing
    def store(self, dataset_bytes: bytes, *, transfer_syntax_uid: str, header: Dataset | None = None,
              source_ae_title: str = "") -> StoreOutcome:
        """Durably store one encoded data set and index it.

        Parameters
        ----------
        dataset_bytes
            The data set exactly as encoded in *transfer_syntax_uid* (no File Meta); written
            unchanged.
        header
            The data set decoded at least up to (0020,0052); decoded from the bytes when None
            (the stream's structure is checked then too).

        Raises
        ------
        DicomInputError
            Undecodable stream, or a UID the archive needs is missing (nothing is written).
        OSError
            The file could not be written (nothing is indexed).
        CacheError
            The index could not be updated (the file is written but not indexed).
        """
        if header is None:
            header = read_index_header(dataset_bytes, transfer_syntax_uid=transfer_syntax_uid)
        check_instance(header)
        values = values_from_dataset(header)
        sop_uid = values["SOPInstanceUID"]
        meta = encode_file_meta(sop_class_uid=values["SOPClassUID"], sop_instance_uid=sop_uid,
                                transfer_syntax_uid=transfer_syntax_uid, source_ae_title=source_ae_title,
                                implementation_class_uid=self.identity.implementation_class_uid,
                                implementation_version_name=self.identity.implementation_version_name)
        relative = self.relative_path(sop_uid)
        target = self.absolute(relative)
        objects = str(self.directory / OBJECTS_DIR)
        if os.path.commonpath([objects, os.path.normpath(target)]) != objects:  # pragma: no cover - UIDs checked
            raise DicomInputError(f"SOP Instance UID {sop_uid!r} would name a file outside {objects}")
        ensure_dir(target.parent)
        size = atomic_write(target, [meta, dataset_bytes])
        record = _record(header, values, syntax=transfer_syntax_uid, relative=relative, offset=len(meta), size=size)
        previous = self.index.upsert(record)
        if previous and previous != relative:  # indexed elsewhere by an older layout
            self.absolute(previous).unlink(missing_ok=True)
        return StoreOutcome(record, replaced=previous is not None)

    # ------------------------------------------------------------------ consistency
    def reconcile(self) -> ReconcileReport:
        """Make the index agree with the files (the files are the truth); remove dead temporary files.

        A file without a row (e.g. a crash between the file's rename and the index commit, or a
        lost WAL commit after a power failure) is indexed; a row whose file is gone is dropped;
        ``.*.<pid>.<hex>.tmp`` files of processes that no longer run are deleted. Cheap when
        everything agrees (one directory walk, one index scan).
        """
        on_disk, temp_removed = self._scan_objects()
        rows = self.index.paths()
        indexed = dropped = 0
        for relative in sorted(on_disk - set(rows)):
            try:
                self._index_existing(relative)
                indexed += 1
            except (DicomInputError, OSError) as exc:
                LOG.warning("archive %s: %s is not an archivable instance, left unindexed: %s",
                            self.directory, relative, exc)
        for relative in sorted(set(rows) - on_disk):
            self.index.delete(rows[relative])
            dropped += 1
        report = ReconcileReport(indexed, dropped, temp_removed)
        if indexed or dropped or temp_removed:
            LOG.warning("archive %s: index reconciled with the files: %s", self.directory, report)
        return report

    def _scan_objects(self) -> tuple[set[str], int]:
        on_disk: set[str] = set()
        removed = 0
        root = self.directory / OBJECTS_DIR
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if is_temp_name(name):
                    if is_stale_temp_name(name):
                        Path(dirpath, name).unlink(missing_ok=True)
                        removed += 1
                elif name.endswith(".dcm"):
                    on_disk.add(Path(dirpath, name).relative_to(self.directory).as_posix())
        return on_disk, removed

    def _index_existing(self, relative: str) -> None:
        raw = self.absolute(relative).read_bytes()
        split = split_part10(raw, name=relative)
        header = read_index_header(raw[split.dataset_offset:], transfer_syntax_uid=split.transfer_syntax_uid)
        check_instance(header)
        values = values_from_dataset(header)
        if relative != self.relative_path(values["SOPInstanceUID"]):
            raise DicomInputError(f"its SOP Instance UID {values['SOPInstanceUID']} does not match its file name")
        self.index.upsert(_record(header, values, syntax=split.transfer_syntax_uid, relative=relative,
                                  offset=split.dataset_offset, size=len(raw)))

    # ------------------------------------------------------------------ reading
    def read(self, relative: str, *, stop_before_pixels: bool = False) -> Dataset:
        """Read a stored instance as a pydicom Dataset (raises OSError / pydicom errors)."""
        from pydicom import dcmread

        return dcmread(self.absolute(relative), stop_before_pixels=stop_before_pixels)

    # ------------------------------------------------------------------ import
    def import_file(self, path: Path) -> ImportResult:
        """Import one file; never raises for a bad file (the result says why it was skipped)."""
        try:
            data, syntax = read_part10_or_raw(path)
            outcome = self.store(data, transfer_syntax_uid=syntax)
        except DicomInputError as exc:  # includes UnsupportedObjectError
            text = str(exc)
            return ImportResult(path, "skipped", message=text if text.startswith(str(path)) else f"{path}: {text}")
        except OSError as exc:
            raise CacheError(f"archive {self.directory}: cannot store {path} ({exc.strerror or exc})") from None
        status = "replaced" if outcome.replaced else "stored"
        return ImportResult(path, status, sop_instance_uid=outcome.record.sop_instance_uid)

    def import_paths(self, paths: Iterable[Path | str], *,
                     progress: Callable[[ImportResult], None] | None = None) -> ImportReport:
        """Import files and directories (recursively); *progress* is called after each file."""
        results = []
        for path in collect_files(paths, exclude=self.directory):
            result = self.import_file(path)
            if result.status == "skipped":
                LOG.warning("skipped: %s", result.message)
            results.append(result)
            if progress is not None:
                progress(result)
        return ImportReport(tuple(results))


def collect_files(paths: Iterable[Path | str], *, exclude: Path | None = None) -> list[Path]:
    """Expand files and directories (recursively, sorted; hidden files skipped).

    Raises DicomInputError for a path that does not exist.
    """
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise DicomInputError(f"{path}: no such file or directory")
        out.extend(_walk(path, exclude))
    return out


def _walk(path: Path, exclude: Path | None) -> Iterator[Path]:
    resolved = path.resolve()
    if exclude is not None and (resolved == exclude or exclude in resolved.parents):
        return
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        root_path = Path(root)
        if exclude is not None and (root_path.resolve() == exclude or exclude in root_path.resolve().parents):
            dirs[:] = []
            continue
        for name in sorted(files):
            if not name.startswith("."):
                yield root_path / name


def read_part10_or_raw(path: Path) -> tuple[bytes, str]:
    """Return ``(data set bytes, transfer syntax UID)`` of a DICOM file.

    A Part 10 file's data set bytes are returned unchanged; a bare data set (no File Meta) is
    accepted with its transfer syntax guessed (:func:`openigrt.net.header.split_part10`).
    Raises DicomInputError naming the file for anything that is not DICOM.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DicomInputError(f"{path}: cannot read ({exc.strerror})") from None
    split = split_part10(raw, name=str(path))
    return raw[split.dataset_offset:], split.transfer_syntax_uid
