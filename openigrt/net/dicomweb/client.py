"""The node's face towards a DICOMweb TMS: echo, locate, retrieve, store (PS3.18; SPEC NET-1 … NET-6, NET-10).

:class:`DicomWebClient` has the interface of :class:`openigrt.net.tms.TmsClient`, with the result
types of the DIMSE client (``FindResult``, ``MoveReport``, ``StoreReport``), so the workflow
(load, store at close, resume) runs unchanged over DICOMweb::

    with DicomWebClient(settings) as tms:          # settings.dicomweb: the base URL, timeouts, auth
        tms.echo()                                  # QIDO-RS of a study that does not exist
        tms.locate(uid, study_instance_uid=...)     # QIDO-RS, hierarchical fallback
        tms.retrieve([uid, ...], progress=cb)       # WADO-RS into the cache, per-instance results
        tms.store([path, ds, ...], progress=cb)     # STOW-RS, per-instance results

As for DIMSE, "the server said no" is data (per-instance results naming the URL and the HTTP
status or the STOW-RS reason) and "we could not talk" raises from :mod:`openigrt.errors` for echo
and locate, and stops a retrieve/store task with ``report.error`` set and the rest ``not tried``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from openigrt.config import DicomWebRemote, Settings
from openigrt.errors import BadResponse, ConfigError, HttpStatusError, NetworkError
from openigrt.net.cache import InstanceCache
from openigrt.net.dicomweb import qido, stow, wado
from openigrt.net.dicomweb.http import HttpSession
from openigrt.net.qr import FindResult, MoveOutcome, MoveReport, MoveResult
from openigrt.net.store import InstanceResult, StoreReport

LOG = logging.getLogger("openigrt.net.dicomweb.client")

#: The echo asks for this study (a valid UID no archive holds): cheap, and proves QIDO-RS answers.
ECHO_STUDY_UID: Final = "2.25.0"

MoveProgress = Callable[[int, int, MoveResult], None]
StoreProgress = Callable[[int, int, InstanceResult], None]


class DicomWebClient:
    """DICOMweb services of *remote* (default ``settings.dicomweb``); thread-safe; close it (or use ``with``)."""

    protocol: Final = "DICOMweb"
    echo_name: Final = "the DICOMweb echo (QIDO-RS)"

    def __init__(self, settings: Settings, *, remote: DicomWebRemote | None = None, cache: InstanceCache | None = None,
                 http: HttpSession | None = None) -> None:
        remote = remote or settings.dicomweb
        if remote is None:
            raise ConfigError("remote", "no DICOMweb TMS configured: give --remote dicomweb+http://HOST:PORT/PATH "
                              'or [remote] protocol = "dicomweb" with url')
        self.settings = settings
        self.remote = remote
        self.http = http or HttpSession(remote)
        self._cache = cache

    @property
    def cache(self) -> InstanceCache:
        if self._cache is None:
            self._cache = InstanceCache.from_settings(self.settings)
        return self._cache

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> DicomWebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- NET-10
    def echo(self) -> float:
        """Check that the service answers QIDO-RS; return the round trip in seconds.

        Raises NetworkError (ConnectionFailed, HttpTimeout, HttpStatusError, BadResponse) naming the URL.
        """
        t0 = time.perf_counter()
        try:
            qido.search(self.http, "studies", params={"StudyInstanceUID": ECHO_STUDY_UID})
        except HttpStatusError as exc:
            raise HttpStatusError(f"DICOMweb echo failed: {exc}", status=exc.status, url=exc.url) from None
        except NetworkError as exc:
            raise type(exc)(f"DICOMweb echo failed: {exc}") from None
        elapsed = time.perf_counter() - t0
        LOG.info("DICOMweb echo %s ok in %.1f ms", self.remote, elapsed * 1000)
        return elapsed

    # ----------------------------------------------------------------- NET-3/5
    def locate(self, sop_instance_uid: str, *, study_instance_uid: str | None = None,
               series_instance_uid: str | None = None) -> FindResult:
        """QIDO-RS search of one instance (hierarchical fallback); "not found" is data."""
        return qido.locate(self.http, sop_instance_uid, study=study_instance_uid, series=series_instance_uid)

    find = locate  # the DIMSE client's name

    # ----------------------------------------------------------------- NET-6
    def retrieve(self, sop_instance_uids: Sequence[str], *, study_instance_uid: str | None = None,
                 series_instance_uid: str | None = None, batch: bool = False,
                 progress: MoveProgress | None = None) -> MoveReport:
        """WADO-RS the instances into the cache; per-instance results (never raises for network trouble).

        Without both parents an instance is located first (QIDO-RS). With *batch* and both parents
        known, the whole series is asked for once (each part streamed into the cache; the series'
        other instances are not kept) and what it lacked is then asked for one by one.
        """
        t0 = time.perf_counter()
        uids = list(dict.fromkeys(sop_instance_uids))
        results: dict[str, MoveResult] = {}
        error = ""

        def done(result: MoveResult) -> None:
            results[result.sop_instance_uid] = result
            if progress is not None:
                progress(len(results), len(uids), result)

        try:
            if batch and study_instance_uid and series_instance_uid and len(uids) > 1:
                for r in self._series(uids, study_instance_uid, series_instance_uid):
                    done(r)
            for uid in uids:
                if uid not in results:
                    done(self._retrieve_one(uid, study_instance_uid, series_instance_uid))
        except NetworkError as exc:
            error = str(exc)
            LOG.error("retrieve from %s stopped: %s", self.remote, exc)
            failed = next((u for u in uids if u not in results), None)
            if failed is not None:
                done(MoveResult(failed, MoveOutcome.FAILED, message=error))
        ordered = tuple(results.get(u) or MoveResult(u, MoveOutcome.NOT_TRIED, message="not tried: " + error)
                        for u in uids)
        report = MoveReport(str(self.remote), ordered, error, time.perf_counter() - t0)
        LOG.info("%s", report.summary())
        return report

    move = retrieve  # the DIMSE client's name

    def _retrieve_one(self, uid: str, study: str | None, series: str | None) -> MoveResult:
        """One instance; raises only when we cannot talk (ConnectionFailed, HttpTimeout, lost connection)."""
        fallback = False
        if not (study and series):
            found = self.locate(uid, study_instance_uid=study, series_instance_uid=series)
            if not found.found:
                return MoveResult(uid, MoveOutcome.FAILED, message=f"not found: {found.message}",
                                  fallback_used=found.fallback_used)
            study, series, fallback = found.matches[0].study_instance_uid, found.matches[0].series_instance_uid, True
        try:
            url = self.http.url("studies", study or "", "series", series or "", "instances", uid)
            fetched = wado.fetch(self.http, self.cache, url, {uid})
            if uid in fetched.convert:
                LOG.info("%s: asking again in Explicit VR Little Endian", fetched.refused[uid])
                fetched = wado.fetch(self.http, self.cache, url, {uid}, accept=wado.ACCEPT_EXPLICIT_LE)
        except (HttpStatusError, BadResponse) as exc:
            return MoveResult(uid, MoveOutcome.FAILED, message=str(exc), fallback_used=fallback)
        row = fetched.stored.get(uid)
        if row is None:
            return MoveResult(uid, MoveOutcome.FAILED, message=fetched.reason(uid), fallback_used=fallback)
        return MoveResult(uid, MoveOutcome.RETRIEVED, path=str(row.path), fallback_used=fallback)

    def _series(self, uids: list[str], study: str, series: str) -> list[MoveResult]:
        """Retrieved instances of one series-level WADO-RS (failures are left to the per-instance pass)."""
        try:
            fetched = wado.fetch(self.http, self.cache, self.http.url("studies", study, "series", series), set(uids))
        except (HttpStatusError, BadResponse) as exc:
            LOG.info("series retrieve failed, asking instance by instance: %s", exc)
            return []
        return [MoveResult(u, MoveOutcome.RETRIEVED, path=str(fetched.stored[u].path)) for u in uids
                if u in fetched.stored]

    # ----------------------------------------------------------------- NET-1/2
    def store(self, items: Sequence[Any], *, progress: StoreProgress | None = None) -> StoreReport:
        """STOW-RS the files/Datasets; per-instance report (never raises for network trouble)."""
        return stow.store_instances(self.http, items, remote=str(self.remote), progress=progress)

