"""The archive's on-disk SQLite index (ARCHIVE-1): one row per stored instance.

One denormalised table ``instance`` keyed by SOP Instance UID, with indexes on the Patient ID,
Study, Series Instance UIDs; the columns are derived from
:data:`~openigrt.archive.model.ATTRIBUTES`. PATIENT, STUDY and SERIES entities are the
``GROUP BY`` of their unique key. The database runs in WAL mode with ``synchronous=NORMAL``:
it stays consistent after any crash, and a commit lost to a power failure is restored by
:meth:`~openigrt.archive.store.ArchiveStore.reconcile` (the Part 10 files, written durably
first, are the truth). Several processes (``archive serve`` and ``archive import``) may use it
at once. Storing an instance again (same SOP Instance UID) replaces its row:
there are never duplicate rows.

The schema version is kept in ``PRAGMA user_version``; an index written by a newer version is
refused with a :class:`~openigrt.errors.CacheError`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from openigrt.archive.model import ATTRIBUTES, BY_KEYWORD, MODALITIES_IN_STUDY, UNIQUE_KEYS, Level, fold_pn, normalise_da, normalise_is, normalise_tm
from openigrt.archive.query import Condition, MatchKind, Query
from openigrt.errors import CacheError

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

SCHEMA_VERSION: Final = 1
#: How long a writer waits for another process holding the database lock, ms.
BUSY_TIMEOUT_MS: Final = 15000

_STORAGE_COLUMNS: Final = ("transfer_syntax_uid", "path", "dataset_offset", "size_bytes", "stored_at",
                            "specific_character_set")
_INTEGER_COLUMNS: Final = frozenset({"dataset_offset", "size_bytes"})


def _value_columns() -> list[str]:
    cols: list[str] = []
    for a in ATTRIBUTES:
        cols.append(a.column)
        if a.match_column != a.column:
            cols.append(a.match_column)
    return cols


COLUMNS: Final[tuple[str, ...]] = tuple(_value_columns()) + _STORAGE_COLUMNS


@dataclass(frozen=True)
class InstanceRecord:
    """One indexed instance (values as decoded text; DA as YYYYMMDD; missing = ``""``).

    ``path`` is relative to the archive directory; the data set starts at byte
    ``dataset_offset`` of the file (after the File Meta Information).
    """

    values: Mapping[str, str]
    transfer_syntax_uid: str
    path: str
    dataset_offset: int
    size_bytes: int
    stored_at: str
    specific_character_set: str = ""

    @property
    def sop_instance_uid(self) -> str:
        return self.values["SOPInstanceUID"]

    @property
    def sop_class_uid(self) -> str:
        return self.values["SOPClassUID"]

    def row(self) -> dict[str, Any]:
        """The SQL row (value columns, derived match columns, storage columns)."""
        out: dict[str, Any] = {}
        for a in ATTRIBUTES:
            text = self.values.get(a.keyword, "")
            out[a.column] = text
            if a.vr == "PN":
                out[a.match_column] = fold_pn(text)
            elif a.vr == "TM":
                out[a.match_column] = normalise_tm(text)
        out.update(transfer_syntax_uid=self.transfer_syntax_uid, path=self.path, dataset_offset=self.dataset_offset,
                   size_bytes=self.size_bytes,
                   stored_at=self.stored_at, specific_character_set=self.specific_character_set)
        return out


@dataclass(frozen=True)
class Located:
    """Where a matched instance is: what a C-MOVE needs to send it."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    dataset_offset: int


@dataclass(frozen=True)
class Summary:
    """What the archive holds."""

    patients: int
    studies: int
    series: int
    instances: int
    size_bytes: int


def values_from_dataset(ds: Dataset) -> dict[str, str]:
    """Extract the indexed attribute values of *ds* as text (decoded per its character set).

    DA values are normalised to ``YYYYMMDD`` (invalid dates are kept as text, so they never
    match a date key but are still returned); IS values to canonical integers.
    """
    out: dict[str, str] = {}
    for a in ATTRIBUTES:
        elem = ds.get(a.tag) if a.tag in ds else None
        value = elem.value if elem is not None else None
        if value is None or value == "":
            out[a.keyword] = ""
            continue
        if type(value).__name__ == "MultiValue" or isinstance(value, list | tuple):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        text = text.strip(" \0")
        if a.vr == "DA":
            text = normalise_da(text) or text
        elif a.vr == "IS":
            text = normalise_is(text)
        out[a.keyword] = text
    return out


# --------------------------------------------------------------------------- SQL building
def _escape_glob(pattern: str) -> str:
    """DICOM wildcard pattern -> SQLite GLOB pattern (``[`` is literal in DICOM)."""
    return pattern.replace("[", "[[]")


def condition_sql(cond: Condition) -> tuple[str, list[str]]:
    """SQL for one indexed condition (or ModalitiesInStudy)."""
    if cond.tag == MODALITIES_IN_STUDY:
        marks = ",".join("?" * len(cond.values))
        return (f"study_instance_uid IN (SELECT study_instance_uid FROM instance WHERE modality IN ({marks}))",
                list(cond.values))
    assert cond.attribute is not None
    col = cond.attribute.match_column
    if cond.kind is MatchKind.SINGLE:
        return f"{col} = ?", [cond.values[0]]
    if cond.kind is MatchKind.WILDCARD:
        return f"{col} GLOB ?", [_escape_glob(cond.values[0])]
    if cond.kind is MatchKind.LIST:
        return f"{col} IN ({','.join('?' * len(cond.values))})", list(cond.values)
    low, high = cond.values
    parts, params = [f"{col} <> ''"], []
    if low:
        parts.append(f"{col} >= ?")
        params.append(low)
    if high:
        parts.append(f"{col} <= ?")
        params.append(high)
    return " AND ".join(parts), params


def where_sql(conditions: Sequence[Condition]) -> tuple[str, list[str]]:
    """``WHERE`` clause joining the conditions with AND ('' when there are none)."""
    parts, params = [], []
    for cond in conditions:
        sql, p = condition_sql(cond)
        parts.append(f"({sql})")
        params.extend(p)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


_COUNTS: Final[dict[Level, list[str]]] = {
    Level.PATIENT: [
        "COUNT(DISTINCT study_instance_uid) AS NumberOfPatientRelatedStudies",
        "COUNT(DISTINCT series_instance_uid) AS NumberOfPatientRelatedSeries",
        "COUNT(*) AS NumberOfPatientRelatedInstances",
    ],
    Level.STUDY: [
        "GROUP_CONCAT(DISTINCT modality) AS ModalitiesInStudy",
        "GROUP_CONCAT(DISTINCT sop_class_uid) AS SOPClassesInStudy",
        "COUNT(DISTINCT series_instance_uid) AS NumberOfStudyRelatedSeries",
        "COUNT(*) AS NumberOfStudyRelatedInstances",
    ],
    Level.SERIES: ["COUNT(*) AS NumberOfSeriesRelatedInstances"],
    Level.IMAGE: [],
}
_ORDER: Final[dict[Level, str]] = {
    Level.PATIENT: "patient_id",
    Level.STUDY: "study_date, study_time_norm, study_instance_uid",
    Level.SERIES: "study_instance_uid, CAST(series_number AS INTEGER), series_instance_uid",
    Level.IMAGE: "study_instance_uid, series_instance_uid, CAST(instance_number AS INTEGER), sop_instance_uid",
}


def find_sql(query: Query) -> tuple[str, list[str]]:
    """The SELECT that answers a C-FIND: one row per matching entity at the query level."""
    where, params = where_sql(query.conditions)
    if query.level is Level.IMAGE:
        return f"SELECT * FROM instance{where} ORDER BY {_ORDER[Level.IMAGE]}", params
    key = UNIQUE_KEYS[query.level].column
    cols = [key] + [f"MAX({c}) AS {c}" for c in COLUMNS if c not in (key, "path")] + ["MIN(path) AS path"]
    cols += _COUNTS[query.level]  # computed keys of the entity (counts, modalities)
    group = f"SELECT {', '.join(cols)} FROM instance{where} GROUP BY {key}"
    return f"SELECT * FROM ({group}) ORDER BY {_ORDER[query.level]}", params


# --------------------------------------------------------------------------- the index
class ArchiveIndex:
    """SQLite index of the archive directory (thread-safe; one connection guarded by a lock)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                                         isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._setup()
        except sqlite3.Error as exc:
            raise CacheError(f"archive index {self.db_path}: cannot open ({exc})") from None

    def _setup(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")  # WAL: consistent after any crash; reconcile() covers power loss
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CacheError(f"archive index {self.db_path} has schema version {version}, newer than this "
                             f"OpenIGRT's {SCHEMA_VERSION}: upgrade OpenIGRT or import into a new directory")
        cols = ",\n  ".join(
            f"{c} INTEGER NOT NULL DEFAULT 0" if c in _INTEGER_COLUMNS else f"{c} TEXT NOT NULL DEFAULT ''"
            for c in COLUMNS if c != "sop_instance_uid"
        )
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(f"CREATE TABLE IF NOT EXISTS instance (\n  sop_instance_uid TEXT PRIMARY KEY NOT NULL,\n  {cols}\n)")
            for col in ("patient_id", "study_instance_uid", "series_instance_uid"):
                c.execute(f"CREATE INDEX IF NOT EXISTS instance_{col} ON instance({col})")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _cursor(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise CacheError(f"archive index {self.db_path}: {what} failed ({exc})") from None

    # ------------------------------------------------------------------ writing
    def upsert(self, record: InstanceRecord) -> str | None:
        """Insert or replace the row of ``record``'s SOP Instance UID.

        Returns the previous relative path when the instance was already indexed, else None.
        """
        row = record.row()
        names = list(row)
        sql = (f"INSERT INTO instance ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT(sop_instance_uid) DO UPDATE SET "
               + ", ".join(f"{n} = excluded.{n}" for n in names if n != "sop_instance_uid"))
        with self._cursor(f"storing {record.sop_instance_uid}") as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                old = c.execute("SELECT path FROM instance WHERE sop_instance_uid = ?",
                                (record.sop_instance_uid,)).fetchone()
                c.execute(sql, [row[n] for n in names])
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        return old["path"] if old else None

    def delete(self, sop_instance_uid: str) -> bool:
        """Remove one row; True when it existed."""
        with self._cursor(f"deleting {sop_instance_uid}") as c:
            cur = c.execute("DELETE FROM instance WHERE sop_instance_uid = ?", (sop_instance_uid,))
            return cur.rowcount > 0

    # ------------------------------------------------------------------ reading
    def find(self, query: Query) -> list[dict[str, Any]]:
        """Rows answering a C-FIND at ``query.level`` (column name -> value)."""
        sql, params = find_sql(query)
        with self._cursor("C-FIND query") as c:
            return [dict(r) for r in c.execute(sql, params).fetchall()]

    def locate(self, query: Query) -> list[Located]:
        """Instances matched by a C-MOVE identifier, in hierarchical order."""
        where, params = where_sql(query.conditions)
        sql = (f"SELECT sop_instance_uid, sop_class_uid, transfer_syntax_uid, path, dataset_offset FROM instance{where} "
               f"ORDER BY {_ORDER[Level.IMAGE]}")
        with self._cursor("C-MOVE lookup") as c:
            return [Located(*r) for r in c.execute(sql, params).fetchall()]

    def get(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The row of one instance, or None."""
        with self._cursor(f"reading {sop_instance_uid}") as c:
            r = c.execute("SELECT * FROM instance WHERE sop_instance_uid = ?", (sop_instance_uid,)).fetchone()
        return dict(r) if r else None

    def paths(self) -> dict[str, str]:
        """Relative file path -> SOP Instance UID of every row."""
        with self._cursor("listing paths") as c:
            return {r[0]: r[1] for r in c.execute("SELECT path, sop_instance_uid FROM instance").fetchall()}

    def instances(self) -> list[dict[str, Any]]:
        """Every row, in hierarchical order."""
        with self._cursor("listing") as c:
            return [dict(r) for r in c.execute(f"SELECT * FROM instance ORDER BY {_ORDER[Level.IMAGE]}").fetchall()]

    def summary(self) -> Summary:
        """Counts of patients, studies, series, instances and bytes."""
        sql = ("SELECT COUNT(DISTINCT patient_id), COUNT(DISTINCT study_instance_uid), "
               "COUNT(DISTINCT series_instance_uid), COUNT(*), COALESCE(SUM(size_bytes), 0) FROM instance")
        with self._cursor("summary") as c:
            return Summary(*c.execute(sql).fetchone())

    def series_table(self) -> list[dict[str, Any]]:
        """One row per series with its patient/study identity and instance count."""
        sql = ("SELECT MAX(patient_id) AS patient_id, MAX(patient_name) AS patient_name, study_instance_uid, "
               "MAX(study_date) AS study_date, series_instance_uid, MAX(modality) AS modality, "
               "MAX(series_number) AS series_number, MAX(series_description) AS series_description, "
               "COUNT(*) AS instances FROM instance GROUP BY series_instance_uid "
               "ORDER BY patient_id, study_date, study_instance_uid, CAST(series_number AS INTEGER)")
        with self._cursor("listing series") as c:
            return [dict(r) for r in c.execute(sql).fetchall()]


def attribute_column(keyword: str) -> str:
    """SQL column of an indexed keyword (KeyError when not indexed)."""
    return BY_KEYWORD[keyword].column
