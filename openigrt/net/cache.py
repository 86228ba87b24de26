"""Durable cache of received and imported instances, with a SQLite index (NET-7, NET-8, NET-12, LOAD-3).

Layout under the cache root (``settings.cache_dir``)::

    instances/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   Part 10 files
    index.sqlite3                                                            the index (WAL)

Guarantees
----------
* **Never a partial file.** :func:`atomic_write` writes to a temporary name in the target
  directory (``.<name>.<pid>.<random>.tmp``), ``fsync``\\ s the file, renames it over the final
  name and ``fsync``\\ s the directory. A crash or SIGKILL at any point leaves either the old
  state or the complete new file; orphaned temporary files of dead processes are removed by
  :meth:`InstanceCache.remove_stale_temp_files` (called when the cache is opened).
* **Index after file.** :meth:`InstanceCache.store` returns only after the file is durable and
  its index row is committed, so a caller (the Storage SCP) may then answer success. The index
  runs in WAL mode; it is safe across threads (one connection per cache object, under a lock:
  the descriptors held do not grow with the associations served) and processes (SQLite
  locking, busy timeout), and survives restarts and process crashes. It uses
  ``synchronous=NORMAL`` (no fsync per commit: measured 1-4 ms per instance here): a commit can
  only be lost by an OS crash or power loss, and then the file it described is still durable
  and self-describing, so :meth:`InstanceCache.reconcile` (run by the Storage SCP at start)
  re-indexes it. The instance bytes themselves are always fsynced before success.
* **Data set bytes unchanged.** The data set is stored exactly as received or read; the File
  Meta Information is written by us (our Implementation Class UID / Version Name, the Media
  Storage UIDs taken from the data set, the original transfer syntax, and the sender's AE title
  as Source Application Entity Title).

``atomic_write`` is public: the embedded archive (``openigrt.archive``) uses it too.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> n = atomic_write(root / "a.bin", [b"hello ", b"world"])
>>> (root / "a.bin").read_bytes(), n
(b'hello world', 11)
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openigrt.errors import CacheError, DicomInputError, UnsupportedObjectError
from openigrt.net.header import InstanceHeader, inspect, is_implicit_syntax, read_header, split_part10
from openigrt.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, is_uid_like, is_valid_uid

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

LOG = logging.getLogger("openigrt.net.cache")

INDEX_NAME = "index.sqlite3"
INSTANCES_DIR = "instances"
_SCHEMA_VERSION = 1
_TMP_RE = re.compile(r"^\..+\.(\d+)\.[0-9a-f]+\.tmp$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid      TEXT PRIMARY KEY,
    sop_class_uid         TEXT NOT NULL,
    study_instance_uid    TEXT NOT NULL,
    series_instance_uid   TEXT NOT NULL,
    patient_id            TEXT NOT NULL,
    patient_name          TEXT NOT NULL,
    modality              TEXT NOT NULL,
    specific_character_set TEXT NOT NULL,
    frame_of_reference_uid TEXT NOT NULL,
    instance_number       TEXT NOT NULL,
    path                  TEXT NOT NULL,
    transfer_syntax_uid   TEXT NOT NULL,
    source_ae_title       TEXT NOT NULL,
    received_at           TEXT NOT NULL,
    size                  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_series ON instances (series_instance_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances (study_instance_uid);
"""


# --------------------------------------------------------------------------- atomic write
def fsync_dir(path: Path) -> None:
    """``fsync`` a directory so a rename/creation inside it is durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """Temporary sibling name used by :func:`atomic_write` (carries our PID for cleanup)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: Path, chunks: Iterable[bytes | bytearray | memoryview], *, durable: bool = True) -> int:
    """Write *chunks* to *path* atomically; return the number of bytes written.

    Parameters
    ----------
    path
        Final file name; its directory must exist.
    chunks
        Byte strings written in order.
    durable
        ``fsync`` the file before the rename and the directory after it (default). Turn off only
        for scratch data.

    Raises
    ------
    OSError
        Whatever the file system says (ENOSPC, EACCES, EROFS ...); the temporary file is removed
        and *path* is untouched.
    """
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    total = 0
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                    total += n
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)
    return total


def ensure_dir(path: Path, *, durable: bool = True) -> None:
    """Create *path* and its missing parents, fsyncing each parent of a new directory."""
    if path.is_dir():
        return
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        if durable:
            fsync_dir(d.parent)


def _meta_element(group_elem: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", group_elem >> 16, group_elem & 0xFFFF)
    if vr in (b"OB", b"UN", b"SQ", b"UT"):
        return tag + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _even(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def encode_file_meta(*, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str,
                     source_ae_title: str = "", implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
                     implementation_version_name: str = IMPLEMENTATION_VERSION_NAME) -> bytes:
    """Return preamble + ``DICM`` + File Meta Information group (PS3.10 7.1), Explicit VR LE.

    Hand-encoded (the same bytes pydicom writes, checked by a test) because it is on the
    receive path of every instance.
    """
    body = b"".join((
        _meta_element(0x00020001, b"OB", b"\x00\x01"),
        _meta_element(0x00020002, b"UI", _even(sop_class_uid, b"\x00")),
        _meta_element(0x00020003, b"UI", _even(sop_instance_uid, b"\x00")),
        _meta_element(0x00020010, b"UI", _even(transfer_syntax_uid, b"\x00")),
        _meta_element(0x00020012, b"UI", _even(implementation_class_uid, b"\x00")),
        _meta_element(0x00020013, b"SH", _even(implementation_version_name, b" ")),
        _meta_element(0x00020016, b"AE", _even(source_ae_title.strip(), b" ")) if source_ae_title.strip() else b"",
    ))
    return b"\x00" * 128 + b"DICM" + _meta_element(0x00020000, b"UL", struct.pack("<L", len(body))) + body


# --------------------------------------------------------------------------- index rows
@dataclass(frozen=True)
class CachedInstance:
    """One cached instance: its index row. ``path`` is absolute."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    patient_name: str
    modality: str
    specific_character_set: str
    frame_of_reference_uid: str
    instance_number: str
    path: Path
    transfer_syntax_uid: str
    source_ae_title: str
    received_at: str
    size: int

    def read(self, *, stop_before_pixels: bool = False) -> Dataset:
        """Read the cached file with pydicom."""
        from pydicom import dcmread

        try:
            return dcmread(self.path, stop_before_pixels=stop_before_pixels)
        except FileNotFoundError:
            raise CacheError(f"cached file of {self.sop_instance_uid} is missing: {self.path}") from None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v) for f in fields(self)}


_COLUMNS = [f.name for f in fields(CachedInstance)]


#: Directory of instances without a Study / Series Instance UID.
UNKNOWN_UID_DIR = "unknown"


def _uid_dir(uid: str, what: str) -> str:
    """The file or directory name for a UID; only UID-shaped values ever name a path.

    >>> _uid_dir("1.2.3", "Study Instance UID"), _uid_dir("", "Study Instance UID")
    ('1.2.3', 'unknown')
    >>> _uid_dir("..", "Study Instance UID")
    Traceback (most recent call last):
    ...
    openigrt.errors.DicomInputError: Study Instance UID '..' is not a valid UID
    """
    uid = uid.strip()
    if not uid:
        return UNKNOWN_UID_DIR
    if not is_uid_like(uid):
        raise DicomInputError(f"{what} {uid[:70]!r} is not a valid UID")
    return uid


# --------------------------------------------------------------------------- the cache
class InstanceCache:
    """The cache of instances on disk plus its index.

    Parameters
    ----------
    root
        Cache directory (created when missing).
    implementation_class_uid, implementation_version_name
        Written into the File Meta Information of cached files.

    Raises
    ------
    CacheError
        The directory or index cannot be created/opened.
    """

    def __init__(self, root: Path, *, implementation_class_uid: str = IMPLEMENTATION_CLASS_UID,
                 implementation_version_name: str = IMPLEMENTATION_VERSION_NAME) -> None:
        self.root = Path(root).expanduser().resolve()
        self.instances_dir = self.root / INSTANCES_DIR
        self.index_path = self.root / INDEX_NAME
        self.implementation_class_uid = implementation_class_uid
        self.implementation_version_name = implementation_version_name
        self._db_conn: sqlite3.Connection | None = None
        self._db_lock = threading.RLock()
        try:
            ensure_dir(self.instances_dir)
            self._init_schema()
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"cannot open the cache at {self.root}: {exc}") from None
        self.remove_stale_temp_files()

    @classmethod
    def from_settings(cls, settings: Any) -> InstanceCache:
        """Open the cache of ``settings.cache_dir`` with our implementation identity."""
        return cls(settings.cache_dir, implementation_class_uid=settings.network.implementation_class_uid,
                   implementation_version_name=settings.network.implementation_version_name)

    # ----------------------------------------------------------------- sqlite plumbing
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The index connection, held under a lock: **one** per cache object, whatever the number of
        threads (an SCP serving months of associations, each in its own thread, keeps 3 descriptors:
        the database, its WAL and its shared-memory file). Reopened after :meth:`close`."""
        with self._db_lock:
            if self._db_conn is None:
                conn = sqlite3.connect(self.index_path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
                self._db_conn = conn
            yield self._db_conn

    def _init_schema(self) -> None:
        with self._db() as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                LOG.warning("cache index %s is not in WAL mode (%s)", self.index_path, mode)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise CacheError(f"cache index {self.index_path} has schema {version}, expected {_SCHEMA_VERSION}")
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the index connection (a later call reopens it)."""
        with self._db_lock:
            conn, self._db_conn = self._db_conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:  # pragma: no cover
                    pass

    def __enter__(self) -> InstanceCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writing
    def path_for(self, header: InstanceHeader) -> Path:
        """Final path of an instance in the cache (always inside ``instances/``).

        Raises DicomInputError when a UID is not UID-shaped (e.g. ``..``).
        """
        path = (self.instances_dir / _uid_dir(header.study_instance_uid, "Study Instance UID")
                / _uid_dir(header.series_instance_uid, "Series Instance UID")
                / f"{_uid_dir(header.sop_instance_uid, 'SOP Instance UID')}.dcm")
        if os.path.commonpath([self.instances_dir, os.path.normpath(path)]) != str(self.instances_dir):
            raise DicomInputError(f"instance {header.sop_instance_uid!r} would be written outside the cache")  # pragma: no cover
        return path

    def store(self, dataset: bytes | memoryview, *, transfer_syntax_uid: str, header: InstanceHeader | None = None,
              source_ae_title: str = "", checked: bool = False) -> CachedInstance:
        """Store an encoded data set durably and index it; return its index row.

        Parameters
        ----------
        dataset
            The encoded data set (no meta), kept byte for byte.
        transfer_syntax_uid
            Its transfer syntax (written to the File Meta Information and the index).
        header
            Its header when the caller already read it (the SCP does), else read here.
        source_ae_title
            The sender's AE title (or ``""`` for file import).
        checked
            True when the caller already ran :func:`~openigrt.net.header.inspect` (then *header*
            is its result and is trusted).

        Raises
        ------
        DicomInputError
            The data set is undecodable or has no valid SOP Class/Instance UID.
        CacheError
            The file or index cannot be written (disk full, read-only, ...).
        """
        if checked and header is not None:
            hdr = header
        else:
            hdr = inspect(dataset, transfer_syntax_uid=transfer_syntax_uid)
        if not is_valid_uid(hdr.sop_instance_uid) or not is_valid_uid(hdr.sop_class_uid):
            raise DicomInputError(
                f"invalid SOP Class/Instance UID {hdr.sop_class_uid!r}/{hdr.sop_instance_uid!r}"
            )
        meta = encode_file_meta(
            sop_class_uid=hdr.sop_class_uid, sop_instance_uid=hdr.sop_instance_uid,
            transfer_syntax_uid=transfer_syntax_uid, source_ae_title=source_ae_title,
            implementation_class_uid=self.implementation_class_uid,
            implementation_version_name=self.implementation_version_name,
        )
        path = self.path_for(hdr)
        try:
            ensure_dir(path.parent)
            size = atomic_write(path, (meta, dataset))
        except OSError as exc:
            raise CacheError(_os_message(exc, path)) from None
        row = CachedInstance(
            **{k: getattr(hdr, k) for k in (f.name for f in fields(InstanceHeader))},
            path=path, transfer_syntax_uid=transfer_syntax_uid, source_ae_title=source_ae_title.strip(),
            received_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), size=size,
        )
        self._index(row)
        return row

    def _index(self, row: CachedInstance) -> None:
        values = row.as_dict()
        values["path"] = str(row.path.relative_to(self.root))
        try:
            with self._db() as conn, conn:
                old = conn.execute("SELECT path FROM instances WHERE sop_instance_uid=?",
                                   (row.sop_instance_uid,)).fetchone()
                conn.execute(
                    f"INSERT OR REPLACE INTO instances ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)})", [values[c] for c in _COLUMNS])
        except sqlite3.Error as exc:
            raise CacheError(f"cannot update the cache index {self.index_path}: {exc}") from None
        if old and old[0] != values["path"]:
            try:
                (self.root / old[0]).unlink()
            except OSError:
                pass

    def store_file(self, path: Path, *, source_ae_title: str = "") -> CachedInstance:
        """Import a Part 10 file (NET-12): data set bytes kept, File Meta rewritten.

        Raises
        ------
        DicomInputError
            Not a DICOM file, truncated, or SOP UIDs missing; the message names the file.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DicomInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
        split = split_part10(data, name=str(path))
        body = memoryview(data)[split.dataset_offset:]
        try:
            header = inspect(body, transfer_syntax_uid=split.transfer_syntax_uid)
        except UnsupportedObjectError as exc:
            raise UnsupportedObjectError(f"{path}: {exc}") from None
        except DicomInputError as exc:
            raise DicomInputError(f"{path}: {exc}") from None
        if split.has_meta and split.media_sop_instance_uid and split.media_sop_instance_uid != header.sop_instance_uid:
            LOG.warning("%s: File Meta Media Storage SOP Instance UID %s differs from the data set's %s; "
                        "the data set's is used", path, split.media_sop_instance_uid, header.sop_instance_uid)
        try:
            return self.store(body, transfer_syntax_uid=split.transfer_syntax_uid, header=header,
                              source_ae_title=source_ae_title, checked=True)
        except DicomInputError as exc:
            raise DicomInputError(f"{path}: {exc}") from None

    def store_dataset(self, ds: Dataset, *, source_ae_title: str = "") -> CachedInstance:
        """Encode a pydicom Dataset in its file meta's transfer syntax (default Implicit VR LE) and store it."""
        from pydicom.filewriter import write_dataset
        from pydicom.filebase import DicomBytesIO

        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
        implicit = is_implicit_syntax(ts)
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, implicit
        try:
            write_dataset(fp, ds)
        except Exception as exc:
            raise DicomInputError(f"cannot encode data set {ds.get('SOPInstanceUID', '?')}: {exc}") from None
        return self.store(fp.getvalue(), transfer_syntax_uid=ts, source_ae_title=source_ae_title)

    # ----------------------------------------------------------------- reading
    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[CachedInstance]:
        try:
            with self._db() as conn:
                rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM instances {sql}", tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise CacheError(f"cannot read the cache index {self.index_path}: {exc}") from None
        out = []
        for r in rows:
            d = dict(zip(_COLUMNS, r, strict=True))
            d["path"] = self.root / d["path"]
            out.append(CachedInstance(**d))
        return out

    def get(self, sop_instance_uid: str) -> CachedInstance | None:
        """Return the index row of *sop_instance_uid*, or None."""
        rows = self._rows("WHERE sop_instance_uid=?", (sop_instance_uid,))
        return rows[0] if rows else None

    def query(self, *, study_instance_uid: str | None = None, series_instance_uid: str | None = None,
              sop_class_uid: str | None = None, modality: str | None = None,
              patient_id: str | None = None) -> list[CachedInstance]:
        """Return the rows matching every given criterion (exact match), ordered by series/instance."""
        crit = {"study_instance_uid": study_instance_uid, "series_instance_uid": series_instance_uid,
                "sop_class_uid": sop_class_uid, "modality": modality, "patient_id": patient_id}
        used = {k: v for k, v in crit.items() if v is not None}
        where = ("WHERE " + " AND ".join(f"{k}=?" for k in used)) if used else ""
        return self._rows(f"{where} ORDER BY series_instance_uid, CAST(instance_number AS INTEGER), "
                          "sop_instance_uid", used.values())

    def __len__(self) -> int:
        try:
            with self._db() as conn:
                return int(conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0])
        except sqlite3.Error as exc:
            raise CacheError(f"cannot read the cache index {self.index_path}: {exc}") from None

    def __iter__(self) -> Iterator[CachedInstance]:
        return iter(self.query())

    # ----------------------------------------------------------------- maintenance
    def remove(self, sop_instance_uid: str) -> bool:
        """Remove an instance (file and row); return True when it was present."""
        row = self.get(sop_instance_uid)
        if row is None:
            return False
        try:
            with self._db() as conn, conn:
                conn.execute("DELETE FROM instances WHERE sop_instance_uid=?", (sop_instance_uid,))
        except sqlite3.Error as exc:
            raise CacheError(f"cannot update the cache index {self.index_path}: {exc}") from None
        try:
            row.path.unlink()
        except FileNotFoundError:
            pass
        return True

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files left by dead processes (crash, SIGKILL); return how many."""
        removed = 0
        for dirpath, _dirs, files in os.walk(self.instances_dir):
            for name in files:
                if is_stale_temp_name(name):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except OSError:
                        pass
        if removed:
            LOG.info("removed %d stale temporary file(s) from %s", removed, self.instances_dir)
        return removed

    def reconcile(self) -> tuple[int, int]:
        """Make the index match the files; return (rows added, rows removed).

        Adds every ``.dcm`` file under ``instances/`` the index lacks (e.g. its commit was lost
        to a power failure: the file was fsynced first) and removes rows whose file is gone.
        """
        rows = self.query()
        known = {str(r.path) for r in rows}
        gone = [r for r in rows if not r.path.exists()]
        for r in gone:
            try:
                with self._db() as conn, conn:
                    conn.execute("DELETE FROM instances WHERE sop_instance_uid=? AND path=?",
                                 (r.sop_instance_uid, str(r.path.relative_to(self.root))))
            except sqlite3.Error as exc:
                raise CacheError(f"cannot update the cache index {self.index_path}: {exc}") from None
        added = 0
        for path in sorted(self.instances_dir.rglob("*.dcm")):
            if str(path) not in known and self._index_file(path):
                added += 1
        if added or gone:
            LOG.warning("cache %s reconciled: %d file(s) indexed, %d stale row(s) removed", self.root, added, len(gone))
        return added, len(gone)

    def _index_file(self, path: Path) -> bool:
        try:
            data = path.read_bytes()
            split = split_part10(data, name=str(path))
            hdr = read_header(memoryview(data)[split.dataset_offset:], transfer_syntax_uid=split.transfer_syntax_uid)
        except (OSError, DicomInputError) as exc:
            LOG.warning("reconcile: skipping %s: %s", path, exc)
            return False
        stat = path.stat()
        self._index(CachedInstance(
            **{k: getattr(hdr, k) for k in (f.name for f in fields(InstanceHeader))}, path=path,
            transfer_syntax_uid=split.transfer_syntax_uid, source_ae_title="",
            received_at=datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="milliseconds"),
            size=stat.st_size))
        return True


def is_stale_temp_name(name: str) -> bool:
    """True for a temporary file name of :func:`atomic_write` whose writing process is gone.

    Such a file is the remains of a crash or SIGKILL mid-write and is never a stored instance.
    """
    m = _TMP_RE.match(name)
    return bool(m) and not _pid_alive(int(m.group(1)))  # type: ignore[union-attr]


def is_temp_name(name: str) -> bool:
    """True for a temporary file name of :func:`atomic_write` (``.<name>.<pid>.<hex>.tmp``)."""
    return _TMP_RE.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _os_message(exc: OSError, path: Path) -> str:
    reason = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system",
              errno.EACCES: "permission denied", errno.EDQUOT: "quota exceeded"}.get(exc.errno or 0)
    return f"{reason or exc.strerror or exc}: cannot write {path}"
