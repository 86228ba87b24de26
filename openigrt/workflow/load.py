"""Loading a patient from the TMS by RT Plan UID (SPEC LOAD-1 … LOAD-3, NET-3 … NET-6, NET-10).

The TMS is any :class:`openigrt.net.tms.TmsClient`: DIMSE (C-ECHO, C-FIND, C-MOVE, as below) or
DICOMweb (the same steps as a QIDO-RS echo, QIDO-RS searches and WADO-RS retrievals).

Order (LOAD-1, LOAD-2)::

    C-ECHO the TMS (NET-10; a failing echo aborts the load)
    C-MOVE the RT Plan by SOP Instance UID (Study/Series UIDs sent when the user gave them)
    read the plan → Referenced Structure Set Sequence (300C,0060)
    C-FIND the structure set (IMAGE level, by SOP Instance UID) → its Study/Series → C-MOVE it
    read the structure set → every CT image of its Contour Image Sequence (3006,0016)
    C-MOVE each CT image by SOP Instance UID, with the Study/Series UIDs from the structure set
    reference RT Images: the plan's Referenced Reference Image Sequence (300C,0042) of every
    beam, plus any UIDs the user gives → C-FIND each (presence) → C-MOVE each

LOAD-3: every instance already in the cache is used from the cache (no network traffic for it);
progress goes to a callback; a failure names the instance, what it is, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from openigrt.errors import DicomInputError, NetworkError, WorkflowError
from openigrt.iod.dataset_io import read_file
from openigrt.iod.rt_plan import RTPlan
from openigrt.iod.rt_structure_set import RTStructureSet

if TYPE_CHECKING:  # pragma: no cover
    from openigrt.net.tms import TmsClient

LOG = logging.getLogger("openigrt.workflow.load")


@dataclass(frozen=True)
class LoadProgress:
    """A notification: *step* ("echo", "plan", "structure set", "CT", "reference images"), counts."""

    step: str
    done: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[LoadProgress], None]


@dataclass(frozen=True)
class LoadedPatient:
    """What a load brought into the cache (paths of cached Part 10 files) and the parsed plan/RS."""

    plan_path: Path
    plan: RTPlan
    structure_set_path: Path | None
    structure_set: RTStructureSet | None
    ct_paths: tuple[Path, ...]
    reference_paths: tuple[Path, ...]
    from_cache: int
    retrieved: int


class LoadFailed(WorkflowError):
    """A load step failed; the message names the instance and why."""


def load_patient(
    client: TmsClient,
    plan_uid: str,
    *,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    reference_uids: Sequence[str] = (),
    need_ct: bool = True,
    progress: ProgressCallback | None = None,
) -> LoadedPatient:
    """Load plan → structure set → CT → reference images into the cache (LOAD-1/2/3).

    Parameters
    ----------
    client
        The TMS (DIMSE or DICOMweb); its cache receives the instances (for DIMSE our Storage SCP
        runs in-process for the moves).
    plan_uid
        RT Plan SOP Instance UID; *study_instance_uid*/*series_instance_uid* are sent when given.
    reference_uids
        Further reference RT Image UIDs (besides those the plan references).
    need_ct
        Load the CT of the structure set (marker and 3D/3D matches need it).

    Raises
    ------
    LoadFailed
        Echo failed, or an instance could not be found or retrieved; names the instance.
    """
    loader = _Loader(client, progress=progress)
    loader.echo()
    plan_path = loader.get("plan", "RT Plan", [plan_uid], study_instance_uid, series_instance_uid)[0]
    plan = _read(plan_path, RTPlan.from_dataset, "RT Plan")
    rs_path: Path | None = None
    rs: RTStructureSet | None = None
    ct_paths: list[Path] = []
    if plan.referenced_structure_sets:
        rs_uid = plan.referenced_structure_sets[0].sop_instance_uid
        study, series = loader.locate(rs_uid, "structure set", plan.patient_study.study_instance_uid)
        rs_path = loader.get("structure set", "RT Structure Set", [rs_uid], study, series)[0]
        rs = _read(rs_path, RTStructureSet.from_dataset, "RT Structure Set")
        if need_ct:
            for ref in rs.referenced_series:
                uids = [c.sop_instance_uid for c in ref.contour_images]
                ct_paths += loader.get("CT", "CT image", uids, ref.study_instance_uid, ref.series_instance_uid)
            if not ct_paths:
                raise LoadFailed(f"structure set {rs_uid} lists no CT image in its Contour Image Sequence (3006,0016)")
    elif need_ct:
        raise LoadFailed(f"RT Plan {plan_uid} has no Referenced Structure Set Sequence (300C,0060): cannot find the CT")
    refs = list(dict.fromkeys([r.sop_instance_uid for b in plan.beams for r in b.referenced_reference_images]
                              + list(reference_uids)))
    ref_paths: list[Path] = []
    for uid in refs:
        study, series = loader.locate(uid, "reference images", plan.patient_study.study_instance_uid)
        ref_paths += loader.get("reference images", "reference RT Image", [uid], study, series)
    return LoadedPatient(plan_path, plan, rs_path, rs, tuple(ct_paths), tuple(ref_paths),
                         loader.from_cache, loader.retrieved)


def _read(path: Path, reader: Callable[..., object], what: str) -> object:
    try:
        return reader(read_file(path))
    except DicomInputError as exc:
        raise LoadFailed(f"the retrieved {what} cannot be used: {exc}") from None


class _Loader:
    """Cache-first retrieval with progress (LOAD-3)."""

    def __init__(self, client: TmsClient, *, progress: ProgressCallback | None) -> None:
        self.client = client
        self.progress = progress
        self.from_cache = 0
        self.retrieved = 0

    def _notify(self, step: str, done: int, total: int, detail: str = "") -> None:
        if self.progress is not None:
            self.progress(LoadProgress(step, done, total, detail))

    def echo(self) -> None:
        self._notify("echo", 0, 1, str(self.client.remote))
        try:
            self.client.echo()
        except NetworkError as exc:
            raise LoadFailed(f"TMS {self.client.remote} did not answer {self.client.echo_name}, load aborted: "
                             f"{exc}") from None
        self._notify("echo", 1, 1, str(self.client.remote))

    def locate(self, uid: str, step: str, study: str | None) -> tuple[str | None, str | None]:
        """Study/Series of *uid*: from the cache, else by C-FIND / QIDO-RS (raises when not found)."""
        cached = self.client.cache.get(uid)
        if cached is not None:
            return cached.study_instance_uid or study, cached.series_instance_uid or None
        try:
            found = self.client.locate(uid, study_instance_uid=study)
        except NetworkError as exc:
            what = "C-FIND" if self.client.protocol == "DIMSE" else "QIDO-RS search"
            raise LoadFailed(f"{what} of {step} {uid} at {self.client.remote} failed: {exc}") from None
        if not found.found:
            raise LoadFailed(f"{step} {uid} not found at {self.client.remote}: {found.message or 'no match'}")
        m = found.matches[0]
        return m.study_instance_uid or study, m.series_instance_uid or None

    def get(self, step: str, what: str, uids: Sequence[str], study: str | None, series: str | None) -> list[Path]:
        """Paths of *uids* in the cache, retrieving the missing ones; raises naming the first failure."""
        uids = list(dict.fromkeys(uids))
        paths: dict[str, Path] = {}
        missing = []
        for uid in uids:
            cached = self.client.cache.get(uid)
            if cached is not None and Path(cached.path).is_file():
                paths[uid] = Path(cached.path)
            else:
                missing.append(uid)
        self.from_cache += len(paths)
        self._notify(step, len(paths), len(uids), "from cache" if paths else "")
        if missing:
            done0 = len(paths)

            def cb(done: int, total: int, result: object) -> None:
                self._notify(step, done0 + done, len(uids), getattr(result, "sop_instance_uid", ""))

            report = self.client.retrieve(missing, study_instance_uid=study, series_instance_uid=series, progress=cb)
            for r in report.results:
                if r.path:
                    paths[r.sop_instance_uid] = Path(r.path)
            bad = [r for r in report.results if not r.path]
            if bad:
                first = bad[0]
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                reason = first.message or report.error or first.outcome.value
                raise LoadFailed(f"{what} {first.sop_instance_uid} could not be retrieved from "
                                 f"{self.client.remote}: {reason}{more}")
            self.retrieved += len(missing)
        LOG.info("%s: %d instance(s), %d from cache", step, len(uids), len(uids) - len(missing))
        return [paths[u] for u in uids]
