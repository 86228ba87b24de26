"""STOW-RS: store instances with a per-instance report (PS3.18 10.5), as the Storage SCU does (NET-1, NET-2).

A send task goes out as few ``POST {base}/studies`` requests (at most :data:`STOW_MAX_INSTANCES`
instances / :data:`STOW_MAX_BYTES` each), ``Content-Type: multipart/related;
type="application/dicom"``, one Part 10 file per part, streamed from disk with an exact
``Content-Length`` (one instance in memory at a time). Files are sent as they are: DICOMweb has no
transfer syntax negotiation, and Explicit VR Little Endian is its default; the same checks as
the DIMSE SCU apply first (the four SCU classes of SPEC §1; Implicit / Explicit VR LE, MPEG2 for
a cine RT Image), and a refused item fails alone, named.

Each instance's result comes from the Store Instances Response (``application/dicom+json``):

=========================================================  ====================================
in Referenced SOP Sequence (0008,1199)                      ``sent``, status 0x0000
… with Warning Reason (0008,1196)                           ``warning``, status = the reason
in Failed SOP Sequence (0008,1198), Failure Reason (0008,1197)  ``failed``, status = the reason
in neither (or no usable response)                          ``failed``: HTTP status, URL, detail
=========================================================  ====================================

Reasons are PS3.4 Storage status codes (:func:`openigrt.net.status.classify`). An instance is
never reported stored without the server's acknowledgement. A connection failure or timeout
stops the task: the instances of the request in flight fail ("may or may not have been
stored"), the rest are ``not tried`` and ``StoreReport.error`` says why (NET-2).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from openigrt.errors import DicomInputError, NetworkError
from openigrt.net import sop
from openigrt.net.dicomweb.http import HttpSession, StreamedResponse, error_detail
from openigrt.net.dicomweb.multipart import (
    PART_TAIL,
    closing_delimiter,
    contains_delimiter,
    content_length,
    new_boundary,
    part_head,
)
from openigrt.net.dicomweb.qido import uid_value
from openigrt.net.header import read_header, split_part10
from openigrt.net.status import Service, StoreOutcome, classify, store_outcome
from openigrt.net.store import InstanceResult, StoreReport

LOG = logging.getLogger("openigrt.net.dicomweb.stow")

#: Instances per STOW-RS request (a failed request fails at most this many).
STOW_MAX_INSTANCES: Final = 32
#: Bytes of instances per STOW-RS request (streamed: this bounds a lost request, not memory).
STOW_MAX_BYTES: Final = 256 * 1024 * 1024
DICOM: Final = "application/dicom"
REFERENCED_SOP_SEQUENCE: Final = "00081199"
FAILED_SOP_SEQUENCE: Final = "00081198"
REFERENCED_SOP_INSTANCE_UID: Final = "00081155"
WARNING_REASON: Final = "00081196"
FAILURE_REASON: Final = "00081197"

ProgressCallback = Callable[[int, int, InstanceResult], None]


@dataclass(frozen=True)
class _Item:
    """One instance ready to go: where its Part 10 bytes come from and what it is."""

    source: str
    sop_class_uid: str
    sop_instance_uid: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is None:  # pragma: no cover - prepare() sets one of them
            raise DicomInputError(f"{self.source}: nothing to send")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise DicomInputError(f"{self.source}: cannot read: {exc.strerror or exc}") from None
        if len(data) != self.size:
            raise DicomInputError(f"{self.source}: changed while it was being sent")
        return data


def _source_name(item: Any) -> str:
    return str(item) if isinstance(item, str | Path) else f"dataset {getattr(item, 'SOPInstanceUID', '?')}"


def _check(name: str, sop_class: str, ts: str) -> None:
    """The DIMSE SCU's rules (NET-1): the four SCU classes; ILE/ELE, MPEG2 for cine RT Image."""
    if sop_class not in sop.SCU_STORAGE_CLASSES:
        allowed = ", ".join(sop.SOP_CLASS_NAMES[c] for c in sop.SCU_STORAGE_CLASSES)
        raise DicomInputError(f"{name}: {sop.sop_class_name(sop_class)} is not sent by our Storage SCU "
                              f"(NET-1: {allowed})")
    if ts not in sop.SCP_TRANSFER_SYNTAXES and ts not in sop.SCU_EXTRA_SYNTAXES.get(sop_class, ()):
        raise DicomInputError(f"{name}: stored in transfer syntax {ts}; our Storage SCU sends Implicit/Explicit "
                              "VR LE (and MPEG2 for cine RT Image) only: convert it first")


def prepare(item: Any) -> _Item:
    """Check a file path or Dataset and describe its Part 10 bytes (raises DicomInputError)."""
    name = _source_name(item)
    if isinstance(item, str | Path):
        path = Path(item)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DicomInputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        split = split_part10(data, name=name)
        if not split.has_meta:
            raise DicomInputError(f"{name}: not a Part 10 file (no File Meta Information): STOW-RS sends Part 10 files")
        hdr = read_header(memoryview(data)[split.dataset_offset:], transfer_syntax_uid=split.transfer_syntax_uid)
        _check(name, hdr.sop_class_uid, split.transfer_syntax_uid)
        return _Item(name, hdr.sop_class_uid, hdr.sop_instance_uid, len(data), path=path)
    sop_class = str(getattr(item, "SOPClassUID", "") or "")
    uid = str(getattr(item, "SOPInstanceUID", "") or "")
    if not sop_class or not uid:
        raise DicomInputError(f"{name}: data set has no SOP Class UID / SOP Instance UID")
    ts = str(getattr(getattr(item, "file_meta", None), "TransferSyntaxUID", "") or sop.EXPLICIT_VR_LITTLE_ENDIAN)
    _check(name, sop_class, ts)
    data = _part10_bytes(item, ts, name)
    return _Item(name, sop_class, uid, len(data), data=data)


def _part10_bytes(ds: Any, ts: str, name: str) -> bytes:
    from pydicom import dcmwrite
    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset(getattr(ds, "file_meta", None) or FileMetaDataset())
    meta.TransferSyntaxUID = ts
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    original = getattr(ds, "file_meta", None)
    fp = io.BytesIO()
    try:
        ds.file_meta = meta
        dcmwrite(fp, ds, enforce_file_format=True)
    except Exception as exc:
        raise DicomInputError(f"{name}: cannot encode: {exc}") from None
    finally:
        if original is not None:
            ds.file_meta = original
    return fp.getvalue()


# --------------------------------------------------------------------------- the task
class _Task:
    def __init__(self, items: Sequence[Any], remote: str, progress: ProgressCallback | None) -> None:
        self.items = list(items)
        self.remote = remote
        self.progress = progress
        self.results: list[InstanceResult | None] = [None] * len(self.items)
        self.error = ""

    def done(self, i: int, result: InstanceResult) -> None:
        self.results[i] = result
        if self.progress is not None:
            self.progress(sum(r is not None for r in self.results), len(self.items), result)

    def report(self, elapsed: float) -> StoreReport:
        out = []
        for item, r in zip(self.items, self.results, strict=True):
            if r is None:
                uid = "" if isinstance(item, str | Path) else str(getattr(item, "SOPInstanceUID", ""))
                r = InstanceResult(_source_name(item), uid, "", StoreOutcome.NOT_TRIED, None, "",
                                   "not tried: " + (self.error or "task stopped"))
            out.append(r)
        return StoreReport(self.remote, tuple(out), self.error, elapsed)


def _batches(task: _Task) -> Iterator[list[tuple[int, _Item]]]:
    batch: list[tuple[int, _Item]] = []
    size = 0
    for i, item in enumerate(task.items):
        try:
            prepared = prepare(item)
        except DicomInputError as exc:
            LOG.error("%s", exc)
            source = _source_name(item)
            task.done(i, InstanceResult(source, "", "", StoreOutcome.FAILED, None, "",
                                        str(exc).removeprefix(f"{source}: ")))
            continue
        if batch and (len(batch) >= STOW_MAX_INSTANCES or size + prepared.size > STOW_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((i, prepared))
        size += prepared.size
    if batch:
        yield batch


def store_instances(http: HttpSession, items: Sequence[Any], *, remote: str,
                    progress: ProgressCallback | None = None) -> StoreReport:
    """Send *items* (paths or Datasets) by STOW-RS; never raises for network trouble (see the module docstring)."""
    t0 = time.perf_counter()
    task = _Task(items, remote, progress)
    url = http.url("studies")
    for batch in _batches(task):
        try:
            _post(http, url, batch, task)
        except (NetworkError, DicomInputError) as exc:
            stop = isinstance(exc, NetworkError)
            if stop:
                task.error = str(exc)
                LOG.error("send task to %s stopped: %s", remote, exc)
            for i, item in batch:
                if task.results[i] is None:
                    task.done(i, InstanceResult(item.source, item.sop_instance_uid, item.sop_class_uid,
                                                StoreOutcome.FAILED, None, "",
                                                f"{exc} (it may or may not have been stored)"))
            if stop:
                break
    report = task.report(time.perf_counter() - t0)
    LOG.info("%s", report.summary())
    return report


def _body(boundary: str, batch: list[tuple[int, _Item]]) -> Iterator[bytes]:
    for _i, item in batch:
        data = item.read()
        if contains_delimiter(data, boundary):
            raise DicomInputError(f"{item.source}: contains the multipart boundary")  # pragma: no cover - 2^-128
        yield part_head(boundary, DICOM, content_length=len(data))
        yield data
        yield PART_TAIL
    yield closing_delimiter(boundary)


def _post(http: HttpSession, url: str, batch: list[tuple[int, _Item]], task: _Task) -> None:
    boundary = new_boundary()
    headers = {"Content-Type": f'multipart/related; type="{DICOM}"; boundary={boundary}',
               "Accept": "application/dicom+json",
               "Content-Length": str(content_length(boundary, DICOM, [item.size for _i, item in batch]))}
    with http.stream("POST", url, headers=headers, content=_body(boundary, batch), what="STOW-RS") as rsp:
        answer = _read_response(rsp)
    for i, item in batch:
        task.done(i, _result(item, answer))


@dataclass(frozen=True)
class _Answer:
    """A Store Instances Response: ``{uid: (stored, reason)}``; *context* names the request and status."""

    verdicts: dict[str, tuple[bool, int | None]]
    context: str
    usable: bool


def _read_response(rsp: StreamedResponse) -> _Answer:
    if not 200 <= rsp.status < 300 and "json" not in rsp.content_type.lower():
        return _Answer({}, str(rsp.error()), False)
    context = f"{rsp.label}: {rsp.status_text()}"
    try:
        doc = rsp.json()
    except NetworkError as exc:
        return _Answer({}, f"{context}: no usable Store Instances Response: {exc}", False)
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    if not isinstance(doc, dict):
        return _Answer({}, f"{context}: the Store Instances Response is not a data set", False)
    if not 200 <= rsp.status < 300 and not {REFERENCED_SOP_SEQUENCE, FAILED_SOP_SEQUENCE} & set(doc):
        return _Answer({}, f"{context}: {error_detail(json.dumps(doc).encode())}", False)
    verdicts: dict[str, tuple[bool, int | None]] = {}
    for tag, stored, reason_tag in ((FAILED_SOP_SEQUENCE, False, FAILURE_REASON),
                                    (REFERENCED_SOP_SEQUENCE, True, WARNING_REASON)):
        element = doc.get(tag)
        for obj in (element.get("Value") or []) if isinstance(element, dict) else []:
            if isinstance(obj, dict) and (uid := uid_value(obj, REFERENCED_SOP_INSTANCE_UID)):
                verdicts[uid] = (stored, _us_value(obj, reason_tag))
    return _Answer(verdicts, context, True)


def _us_value(obj: dict[str, Any], tag: str) -> int | None:
    element = obj.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], int) and 0 <= values[0] <= 0xFFFF:
        return int(values[0])
    return None


def _result(item: _Item, answer: _Answer) -> InstanceResult:
    base = (item.source, item.sop_instance_uid, item.sop_class_uid)
    verdict = answer.verdicts.get(item.sop_instance_uid)
    if verdict is None:
        message = (f"{answer.context}: not acknowledged in its Referenced/Failed SOP Sequence" if answer.usable
                   else answer.context)
        LOG.error("%s not stored: %s", item.sop_instance_uid, message)
        return InstanceResult(*base, StoreOutcome.FAILED, None, "", message)
    stored, reason = verdict
    if stored and reason is None:
        return InstanceResult(*base, StoreOutcome.SENT, 0x0000, "", "")
    code = reason if reason is not None else 0x0110  # failed without a reason: Processing failure
    info = classify(code, Service.STORE)
    outcome = store_outcome(code) if stored else StoreOutcome.FAILED
    if stored and outcome is StoreOutcome.FAILED:
        outcome = StoreOutcome.WARNING  # listed as stored: a failure code there is only a warning
    label = "Warning Reason" if stored else "Failure Reason"
    message = f"{answer.context}: {label} {info}"
    (LOG.warning if stored else LOG.error)("%s: %s", item.sop_instance_uid, message)
    return InstanceResult(*base, outcome, code, "", message)
