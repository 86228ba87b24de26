"""Storage SCU: one association per send task, many C-STOREs, release, per-instance report (NET-1, NET-2).

Each item (a Part 10 file path or a pydicom Dataset) ends with exactly one
:class:`InstanceResult`: ``sent``, ``warning`` (stored, Status Comment logged), ``failed``
(with the status / reason) or ``not tried`` (the task stopped before it).

* Proposed: the four SCU classes of SPEC §1 with Implicit VR LE; an RT Image context with MPEG2
  Main Profile @ Main Level is added only when an item is encoded so (multi-frame cine).
* A file already in Implicit VR LE is sent as its bytes (no decode/re-encode); an Explicit VR LE
  file or a Dataset is encoded to Implicit VR LE by pydicom.
* Status → outcome by :func:`openigrt.net.status.store_outcome` (NET-1 table).
* The association is the lean synchronous requestor :class:`~openigrt.net.requestor.StoreAssociation`
  (no pynetdicom; the data set bytes go out without a copy, fragmented to the peer's PDU limit).
* DIMSE timeout: the in-flight instance fails, A-RELEASE is tried for at most
  :data:`~openigrt.net.requestor.RELEASE_TIMEOUT_S` then A-ABORT, the rest is ``not tried``.
  Peer abort / lost connection: the same without the release (NET-2).
* A refused or failed association: every instance ``not tried``; ``StoreReport.error`` says why.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openigrt.config import RemoteAE, Settings
from openigrt.errors import AssociationAborted, DicomInputError, DimseTimeout, NetworkError, StoreError
from openigrt.net import sop
from openigrt.net.ae import AssociationLimiter
from openigrt.net.header import is_implicit_syntax, read_sop_uids, split_part10
from openigrt.net.requestor import StoreAssociation
from openigrt.net.status import Service, StoreOutcome, classify, store_outcome

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

    from openigrt.net.tls import ClientTls

LOG = logging.getLogger("openigrt.net.store")

ProgressCallback = Callable[[int, int, "InstanceResult"], None]


@dataclass(frozen=True)
class InstanceResult:
    """The result of one item of a send task."""

    source: str
    sop_instance_uid: str
    sop_class_uid: str
    outcome: StoreOutcome
    status: int | None = None
    status_comment: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sop_instance_uid": self.sop_instance_uid,
                "sop_class_uid": self.sop_class_uid, "outcome": self.outcome.value,
                "status": None if self.status is None else f"0x{self.status:04X}",
                "status_comment": self.status_comment, "message": self.message}


@dataclass(frozen=True)
class StoreReport:
    """Per-instance results of one send task; ``error`` explains a task that stopped early."""

    remote: str
    results: tuple[InstanceResult, ...]
    error: str = ""
    elapsed_s: float = 0.0

    def count(self, outcome: StoreOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def ok(self) -> bool:
        """True when every instance was stored (possibly with a warning)."""
        return not self.error and all(r.outcome in (StoreOutcome.SENT, StoreOutcome.WARNING) for r in self.results)

    def summary(self) -> str:
        parts = [f"{self.count(o)} {o.value}" for o in StoreOutcome if self.count(o)]
        return f"{len(self.results)} instance(s) to {self.remote}: " + (", ".join(parts) or "nothing to send")

    def failure_text(self) -> str:
        """One line: the summary, then why the task stopped or the first failed instance and why."""
        first = next((r for r in self.results if r.outcome is StoreOutcome.FAILED), None)
        detail = self.error or (f"first failure: {first.sop_instance_uid or first.source}: {first.message}"
                                if first else "")
        return f"{self.summary()}; {detail}".rstrip("; ")

    def raise_for_status(self) -> None:
        """Raise :class:`~openigrt.errors.StoreError` unless :attr:`ok`."""
        if not self.ok:
            raise StoreError(self.failure_text())

    def as_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "ok": self.ok, "error": self.error, "elapsed_s": round(self.elapsed_s, 3),
                "summary": self.summary(), "results": [r.as_dict() for r in self.results]}


@dataclass
class _Prepared:
    source: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    payload: bytes | memoryview = field(repr=False)


# --------------------------------------------------------------------------- preparing items
def _source_name(item: Any) -> str:
    if isinstance(item, str | Path):
        return str(item)
    return f"dataset {getattr(item, 'SOPInstanceUID', '?')}"


def _encode(ds: Dataset, *, implicit: bool) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def _check_class(name: str, sop_class: str) -> None:
    if sop_class not in sop.SCU_STORAGE_CLASSES:
        allowed = ", ".join(sop.SOP_CLASS_NAMES[c] for c in sop.SCU_STORAGE_CLASSES)
        raise DicomInputError(f"{name}: {sop.sop_class_name(sop_class)} is not sent by our Storage SCU "
                              f"(NET-1: {allowed})")


def _wire_syntax(name: str, sop_class: str, ts: str) -> str:
    """Transfer syntax the item goes out in (NET-1): Implicit VR LE, or MPEG2 for cine RT Image."""
    if ts in (sop.IMPLICIT_VR_LITTLE_ENDIAN, sop.EXPLICIT_VR_LITTLE_ENDIAN):
        return sop.IMPLICIT_VR_LITTLE_ENDIAN
    if ts in sop.SCU_EXTRA_SYNTAXES.get(sop_class, ()):
        return ts
    raise DicomInputError(f"{name}: stored in transfer syntax {ts}; our Storage SCU sends Implicit VR LE "
                          "(and MPEG2 for cine RT Image) only: convert it first")


def prepare(item: Any) -> _Prepared:
    """Turn a file path or Dataset into the bytes to send (raises DicomInputError)."""
    name = _source_name(item)
    if isinstance(item, str | Path):
        try:
            data = Path(item).read_bytes()
        except OSError as exc:
            raise DicomInputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        split = split_part10(data, name=name)
        body = memoryview(data)[split.dataset_offset:]
        ts = split.transfer_syntax_uid
        sop_class, uid = read_sop_uids(body, transfer_syntax_uid=ts)
        _check_class(name, sop_class)
        wire = _wire_syntax(name, sop_class, ts)
        if wire != ts:
            from pydicom.filereader import read_dataset

            ds = read_dataset(io.BytesIO(body), is_implicit_syntax(ts), True)
            body = memoryview(_encode(ds, implicit=True))
        return _Prepared(name, sop_class, uid, wire, body)
    ds = item
    sop_class = str(getattr(ds, "SOPClassUID", "") or "")
    uid = str(getattr(ds, "SOPInstanceUID", "") or "")
    if not sop_class or not uid:
        raise DicomInputError(f"{name}: data set has no SOP Class UID / SOP Instance UID")
    _check_class(name, sop_class)
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or sop.IMPLICIT_VR_LITTLE_ENDIAN)
    wire = _wire_syntax(name, sop_class, ts)
    try:
        payload = _encode(ds, implicit=wire == sop.IMPLICIT_VR_LITTLE_ENDIAN)
    except Exception as exc:
        raise DicomInputError(f"{name}: cannot encode: {exc}") from None
    return _Prepared(name, sop_class, uid, wire, payload)


def _peek_syntax(item: Any) -> str:
    """Transfer syntax of an item without reading it whole (for choosing contexts)."""
    if isinstance(item, str | Path):
        try:
            with open(item, "rb") as fh:
                head = fh.read(4096)
            return split_part10(head + b"\x00" * 8, name=str(item)).transfer_syntax_uid
        except (OSError, DicomInputError):
            return sop.IMPLICIT_VR_LITTLE_ENDIAN
    return str(getattr(getattr(item, "file_meta", None), "TransferSyntaxUID", "") or sop.IMPLICIT_VR_LITTLE_ENDIAN)


def proposed_contexts(items: Sequence[Any]) -> list[tuple[str, tuple[str, ...]]]:
    """Contexts for a send task (NET-1): each SCU class with Implicit VR LE, plus MPEG2 RT Image if needed."""
    pairs = [(uid, (sop.IMPLICIT_VR_LITTLE_ENDIAN,)) for uid in sop.SCU_STORAGE_CLASSES]
    if any(_peek_syntax(i) == sop.MPEG2_MAIN_PROFILE_MAIN_LEVEL for i in items):
        pairs.append((sop.RT_IMAGE_STORAGE, (sop.MPEG2_MAIN_PROFILE_MAIN_LEVEL,)))
    return pairs


# --------------------------------------------------------------------------- sending
def _result_from_status(prep: _Prepared, code: int, comment: str, peer: str) -> InstanceResult:
    outcome = store_outcome(code)
    info = classify(code, Service.STORE)
    text = f"{info}" + (f": {comment}" if comment else "")
    if outcome is StoreOutcome.WARNING:
        LOG.warning("%s stored by %s with warning %s", prep.sop_instance_uid, peer, text)
    elif outcome is StoreOutcome.FAILED:
        LOG.error("%s refused by %s: %s", prep.sop_instance_uid, peer, text)
    return InstanceResult(prep.source, prep.sop_instance_uid, prep.sop_class_uid, outcome, code, comment,
                          "" if outcome is StoreOutcome.SENT else text)


class _Task:
    """State of one send task (results filled in order)."""

    def __init__(self, items: Sequence[Any], remote: RemoteAE, progress: ProgressCallback | None) -> None:
        self.items = list(items)
        self.remote = str(remote)
        self.progress = progress
        self.results: list[InstanceResult | None] = [None] * len(self.items)
        self.error = ""

    def done(self, i: int, result: InstanceResult) -> None:
        self.results[i] = result
        if self.progress is not None:
            self.progress(i + 1, len(self.items), result)

    def fail_prepare(self, i: int, exc: Exception) -> None:
        LOG.error("%s", exc)
        source = _source_name(self.items[i])
        message = str(exc).removeprefix(f"{source}: ")  # the result names the source already
        self.done(i, InstanceResult(source, "", "", StoreOutcome.FAILED, None, "", message))

    def report(self, elapsed: float) -> StoreReport:
        out = []
        for item, r in zip(self.items, self.results, strict=True):
            if r is None:
                uid = "" if isinstance(item, str | Path) else str(getattr(item, "SOPInstanceUID", ""))
                r = InstanceResult(_source_name(item), uid, "", StoreOutcome.NOT_TRIED, None, "",
                                   "not tried: " + (self.error or "task stopped"))
            out.append(r)
        return StoreReport(self.remote, tuple(out), self.error, elapsed)


def _run_items(task: _Task, assoc: StoreAssociation) -> None:
    for i, item in enumerate(task.items):
        try:
            prep = prepare(item)
        except DicomInputError as exc:
            task.fail_prepare(i, exc)
            continue
        cx = assoc.context_id(prep.sop_class_uid, prep.transfer_syntax_uid)
        if cx is None:
            task.done(i, InstanceResult(prep.source, prep.sop_instance_uid, prep.sop_class_uid, StoreOutcome.FAILED,
                                        None, "", f"{task.remote} did not accept {sop.sop_class_name(prep.sop_class_uid)} "
                                        f"in {prep.transfer_syntax_uid}"))
            continue
        try:  # NET-2: after a DIMSE timeout A-RELEASE is tried (bounded), then A-ABORT
            rsp = assoc.c_store(cx, prep.payload, sop_class_uid=prep.sop_class_uid,
                                sop_instance_uid=prep.sop_instance_uid, release_after_timeout=True)
        except (DimseTimeout, AssociationAborted) as exc:
            task.error = str(exc)
            LOG.error("send task to %s stopped: %s", task.remote, exc)
            task.done(i, InstanceResult(prep.source, prep.sop_instance_uid, prep.sop_class_uid, StoreOutcome.FAILED,
                                        None, "", f"{exc} (it may or may not have been stored)"))
            return
        task.done(i, _result_from_status(prep, rsp.status, rsp.comment, task.remote))


def send_instances(remote: RemoteAE, items: Sequence[Any], *, settings: Settings,
                   limiter: AssociationLimiter | None = None, progress: ProgressCallback | None = None,
                   tls: ClientTls | None = None) -> StoreReport:
    """Send *items* (paths or Datasets) to *remote* over one association (NET-1, NET-2), over DICOM TLS with *tls*.

    The association is :class:`~openigrt.net.requestor.StoreAssociation` (lean, synchronous; no
    pynetdicom). Never raises for network trouble: the report carries per-instance results and ``error``.
    """
    t0 = time.perf_counter()
    task = _Task(items, remote, progress)
    if not task.items:
        return task.report(0.0)
    net = settings.network
    lim = limiter or AssociationLimiter(net.max_associations)
    assoc = StoreAssociation(remote, calling_ae_title=settings.local.ae_title, contexts=proposed_contexts(task.items),
                             network=net, tls=tls.context if tls is not None else None,
                             max_pdu_receive=net.max_pdu_receive)
    try:
        with lim.slot(timeout=net.acse_timeout):
            assoc.open()
            try:
                _run_items(task, assoc)
            finally:
                if assoc.is_open:
                    assoc.release()
    except NetworkError as exc:
        task.error = task.error or str(exc)
        LOG.error("send task to %s: %s", remote, exc)
    except BaseException:
        assoc.abort()
        raise
    report = task.report(time.perf_counter() - t0)
    LOG.info("%s", report.summary())
    return report
