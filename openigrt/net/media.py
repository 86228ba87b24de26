"""File mode (NET-12): import Part 10 files into the cache and export cached instances as Part 10 files.

* Import accepts CT Image, RT Structure Set, RT Image and RT Plan; any other class is refused
  with a message naming the file and its class. The data set bytes are kept; the File Meta
  Information is rewritten by the cache (:meth:`~openigrt.net.cache.InstanceCache.store_file`).
* Export writes CT Image, RT Structure Set, RT Image and Spatial Registration instances from
  the cache to ``<out>/<MODALITY>.<SOPInstanceUID>.dcm`` (atomic write); other classes (RT Plan)
  are refused. No DICOMDIR is written. A UID may name an instance, a series or a study.

No network peer is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openigrt.config import Settings
from openigrt.errors import CacheError, DicomInputError
from openigrt.net import sop
from openigrt.net.cache import CachedInstance, InstanceCache, atomic_write, ensure_dir
from openigrt.net.header import read_header, split_part10


@dataclass(frozen=True)
class FileResult:
    """One file imported or exported."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    outcome: str  # imported / exported / refused / failed
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("imported", "exported")

    @property
    def sop_class_name(self) -> str:
        return sop.sop_class_name(self.sop_class_uid) if self.sop_class_uid else ""

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sop_instance_uid": self.sop_instance_uid, "sop_class_uid": self.sop_class_uid,
                "outcome": self.outcome, "message": self.message}


def _names(classes: Sequence[str]) -> str:
    return ", ".join(sop.SOP_CLASS_NAMES[c] for c in classes)


def import_file(cache: InstanceCache, path: Path) -> FileResult:
    """Import one file (NET-12); never raises for a bad file (the result says why)."""
    try:
        data = path.read_bytes()
        split = split_part10(data, name=str(path))
        header = read_header(memoryview(data)[split.dataset_offset:], transfer_syntax_uid=split.transfer_syntax_uid)
    except (OSError, DicomInputError) as exc:
        return FileResult(str(path), "", "", "failed", str(exc))
    if header.sop_class_uid not in sop.IMPORT_CLASSES:
        return FileResult(str(path), header.sop_instance_uid, header.sop_class_uid, "refused",
                          f"{sop.sop_class_name(header.sop_class_uid)} cannot be imported "
                          f"(NET-12 imports {_names(sop.IMPORT_CLASSES)})")
    try:
        row = cache.store_file(path)
    except (DicomInputError, CacheError) as exc:
        return FileResult(str(path), header.sop_instance_uid, header.sop_class_uid, "failed", str(exc))
    return FileResult(str(path), row.sop_instance_uid, row.sop_class_uid, "imported", str(row.path))


def import_files(settings: Settings, paths: Sequence[Path],
                 progress: Callable[[int, int, FileResult], None] | None = None) -> list[FileResult]:
    """Import files into ``settings.cache_dir``; one :class:`FileResult` each."""
    out = []
    with InstanceCache.from_settings(settings) as cache:
        for i, p in enumerate(paths):
            out.append(import_file(cache, Path(p)))
            if progress is not None:
                progress(i + 1, len(paths), out[-1])
    return out


def _resolve(cache: InstanceCache, uid: str) -> list[CachedInstance]:
    row = cache.get(uid)
    if row is not None:
        return [row]
    return cache.query(series_instance_uid=uid) or cache.query(study_instance_uid=uid)


def export_instances(settings: Settings, uids: Sequence[str], out_dir: Path) -> list[FileResult]:
    """Export cached instances named by SOP/Series/Study UIDs to *out_dir* (NET-12)."""
    results: list[FileResult] = []
    with InstanceCache.from_settings(settings) as cache:
        try:
            ensure_dir(Path(out_dir))
        except OSError as exc:
            raise CacheError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
        for uid in uids:
            rows = _resolve(cache, uid)
            if not rows:
                results.append(FileResult("", uid, "", "failed", "not in the cache (no instance, series or study)"))
            results.extend(_export_one(row, Path(out_dir)) for row in rows)
    return results


def _export_one(row: CachedInstance, out_dir: Path) -> FileResult:
    if row.sop_class_uid not in sop.EXPORT_CLASSES:
        return FileResult(str(row.path), row.sop_instance_uid, row.sop_class_uid, "refused",
                          f"{sop.sop_class_name(row.sop_class_uid)} is not exported "
                          f"(NET-12 exports {_names(sop.EXPORT_CLASSES)})")
    target = out_dir / f"{row.modality or 'OT'}.{row.sop_instance_uid}.dcm"
    try:
        data = row.path.read_bytes()
        atomic_write(target, [data])
    except OSError as exc:
        return FileResult(str(target), row.sop_instance_uid, row.sop_class_uid, "failed",
                          f"cannot copy {row.path}: {exc.strerror or exc}")
    return FileResult(str(target), row.sop_instance_uid, row.sop_class_uid, "exported", "")
