"""The node's SCU face towards one remote AE (the TMS): echo, store, find, move (NET-1 … NET-6, NET-10).

:class:`DicomClient` is what the workflow and the CLI use::

    client = DicomClient(settings)                # remote = settings.remote (the TMS)
    client.echo()                                 # NET-10; raises NetworkError on failure
    report = client.store([path, ds, ...], progress=cb)        # StoreReport, per instance
    found = client.find(uid, study_instance_uid=..., series_instance_uid=...)   # FindResult
    moved = client.move([uid, ...], progress=cb)  # MoveReport, paths of cached instances

It owns one pynetdicom AE and an :class:`~openigrt.net.ae.AssociationLimiter`, so all
associations it initiates respect ``network.max_associations``. "The peer said no" comes back
as data (reports with statuses); "we could not talk" raises from :mod:`openigrt.errors` for
echo/find and is recorded in the report's ``error`` for store/move (so every instance still has
a result). Thread-safe: several threads may share one client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from openigrt.config import RemoteAE, Settings
from openigrt.errors import AssociationAborted, DimseTimeout, NetworkError
from openigrt.net import sop
from openigrt.net.ae import AssociationLimiter, build_contexts, make_ae, open_association
from openigrt.net.cache import InstanceCache
from openigrt.net.dimse import ResponseTap, end_after_failure, reactor_paused, send_request
from openigrt.net.qr import FindResult, MoveOutcome, MoveReport, MoveResult, QRSession, judge_move, locate, move_batch, move_one
from openigrt.net.scp import StorageSCP
from openigrt.net.status import Service, classify
from openigrt.net.store import InstanceResult, StoreReport, send_instances
from openigrt.net.tls import ClientTls

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom.association import Association

LOG = logging.getLogger("openigrt.net.client")

MoveProgress = Callable[[int, int, MoveResult], None]
StoreProgress = Callable[[int, int, InstanceResult], None]
_QR_CONTEXTS = ((sop.STUDY_ROOT_QR_FIND, (sop.IMPLICIT_VR_LITTLE_ENDIAN,)),
                (sop.STUDY_ROOT_QR_MOVE, (sop.IMPLICIT_VR_LITTLE_ENDIAN,)))


class DicomClient:
    """SCU services towards *remote* (default: the configured TMS).

    Parameters
    ----------
    settings
        Loaded settings (our identity, timeouts, PDU sizes, cache directory).
    remote
        The peer; default ``settings.require_remote()`` (raises ConfigError when unset).
    cache
        Cache moved instances land in (default ``InstanceCache.from_settings(settings)``, opened lazily).
    """

    #: For messages of the protocol-neutral workflow (:class:`openigrt.net.tms.TmsClient`).
    protocol = "DIMSE"
    echo_name = "C-ECHO"

    def __init__(self, settings: Settings, *, remote: RemoteAE | None = None, cache: InstanceCache | None = None) -> None:
        self.settings = settings
        self.remote = remote or settings.require_remote()
        self.limiter = AssociationLimiter(settings.network.max_associations)
        self._pynetdicom_ae: Any = None  # made on first use: a send needs no pynetdicom (import ~0.1 s)
        self._cache = cache
        #: DICOM TLS towards the remote (``tls.remote``); ConfigError here when its files are unusable.
        self.tls = ClientTls.from_settings(settings.tls) if settings.tls.remote else None

    @property
    def _ae(self) -> Any:
        """The pynetdicom AE for echo / find / move (made on first use)."""
        if self._pynetdicom_ae is None:
            self._pynetdicom_ae = make_ae(self.settings)
        return self._pynetdicom_ae

    @property
    def cache(self) -> InstanceCache:
        if self._cache is None:
            self._cache = InstanceCache.from_settings(self.settings)
        return self._cache

    @contextmanager
    def _associate(self, contexts: Sequence[tuple[str, Sequence[str]]], tap: ResponseTap,
                   bind_address: tuple[str, int] | None = None) -> Iterator[Association]:
        with open_association(self._ae, self.remote, settings=self.settings, contexts=build_contexts(contexts),
                              limiter=self.limiter, evt_handlers=[tap.handler()], bind_address=bind_address,
                              tls=self.tls) as assoc:
            with reactor_paused(assoc):
                yield assoc

    # ----------------------------------------------------------------- NET-10
    def echo(self, *, bind_address: tuple[str, int] | None = None) -> float:
        """C-ECHO the remote; return the round trip in seconds.

        Raises
        ------
        NetworkError
            Connection refused, association rejected/aborted, DIMSE timeout, or a non-success
            status; the message names the peer.
        """
        from pynetdicom.dimse_primitives import C_ECHO

        tap = ResponseTap()
        peer = str(self.remote)
        with self._associate([(sop.VERIFICATION, (sop.IMPLICIT_VR_LITTLE_ENDIAN,))], tap, bind_address) as assoc:
            req = C_ECHO()
            req.MessageID = tap.new_message_id()
            req.AffectedSOPClassUID = sop.VERIFICATION
            if not assoc.accepted_contexts:
                raise NetworkError(f"{peer} did not accept the Verification SOP Class")
            t0 = time.perf_counter()
            send_request(assoc, req, int(assoc.accepted_contexts[0].context_id))
            try:
                rsp = tap.wait(assoc, req.MessageID, timeout=self.settings.network.dimse_timeout, peer=peer,
                               what="C-ECHO")
            except (DimseTimeout, AssociationAborted):
                end_after_failure(assoc, timed_out=True)
                raise
            elapsed = time.perf_counter() - t0
        if rsp.status != 0x0000:
            raise NetworkError(f"C-ECHO to {peer} failed: {classify(rsp.status, Service.ECHO)}")
        LOG.info("C-ECHO %s ok in %.1f ms", peer, elapsed * 1000)
        return elapsed

    # ----------------------------------------------------------------- NET-1/2
    def store(self, items: Sequence[Any], *, progress: StoreProgress | None = None) -> StoreReport:
        """Send files/Datasets over one association; never raises for network trouble (see StoreReport)."""
        return send_instances(self.remote, items, settings=self.settings, limiter=self.limiter,
                              progress=progress, tls=self.tls)

    # ----------------------------------------------------------------- NET-3/4/5
    def _session(self, tap: ResponseTap, assoc: Association) -> QRSession:
        return QRSession(assoc, tap, str(self.remote), self.settings.network.dimse_timeout,
                         self.settings.local.ae_title)

    def find(self, sop_instance_uid: str, *, study_instance_uid: str | None = None,
             series_instance_uid: str | None = None) -> FindResult:
        """Locate one instance by C-FIND at IMAGE level (hierarchical fallback when refused).

        Raises NetworkError (incl. DimseTimeout / AssociationAborted) when we cannot talk;
        "not found" is data (``FindResult.found`` / ``raise_for_status``).
        """
        tap = ResponseTap()
        with self._associate(_QR_CONTEXTS, tap) as assoc:
            try:
                return locate(self._session(tap, assoc), sop_instance_uid, study=study_instance_uid,
                              series=series_instance_uid)
            except (DimseTimeout, AssociationAborted) as exc:
                end_after_failure(assoc, timed_out=isinstance(exc, DimseTimeout))
                raise

    # ----------------------------------------------------------------- NET-3/4/6
    def move(self, sop_instance_uids: Sequence[str], *, study_instance_uid: str | None = None,
             series_instance_uid: str | None = None, listen: bool = True, batch: bool = False,
             progress: MoveProgress | None = None) -> MoveReport:
        """Retrieve instances into our cache by C-MOVE to our own AE title (NET-6).

        Parameters
        ----------
        sop_instance_uids
            The instances; one IMAGE-level C-MOVE each (the statement's behaviour) over one
            association, or one multi-valued C-MOVE when *batch* (faster; missing ones are then
            retried one by one).
        study_instance_uid, series_instance_uid
            Parents when known (sent as values; NET-3 extension).
        listen
            Run our Storage SCP in-process for the duration (on ``settings.local.port``); False
            when one is already running (e.g. ``openigrt listen`` on the same cache).
        progress
            Called after each instance with (done, total, MoveResult).
        """
        t0 = time.perf_counter()
        uids = list(dict.fromkeys(sop_instance_uids))
        results: dict[str, MoveResult] = {}
        error = ""
        scp = StorageSCP(self.settings, self.cache, reconcile=False) if listen else nullcontext()
        try:
            with scp:
                error = self._move_all(uids, results, study_instance_uid, series_instance_uid, batch, progress)
        except NetworkError as exc:
            error = error or str(exc)
            LOG.error("retrieve from %s: %s", self.remote, exc)
        ordered = tuple(results.get(u) or MoveResult(u, MoveOutcome.NOT_TRIED, message="not tried: " + (error or "task stopped"))
                        for u in uids)
        report = MoveReport(str(self.remote), ordered, error, time.perf_counter() - t0)
        LOG.info("%s", report.summary())
        return report

    def _move_all(self, uids: list[str], results: dict[str, MoveResult], study: str | None, series: str | None,
                  batch: bool, progress: MoveProgress | None) -> str:
        tap = ResponseTap()
        with self._associate(_QR_CONTEXTS, tap) as assoc:
            session = self._session(tap, assoc)
            try:
                if batch and len(uids) > 1:
                    rsp = move_batch(session, self.cache, uids, study=study, series=series)
                    for uid in uids:
                        r = judge_move(rsp, self.cache, uid, session.peer)
                        if r.outcome in (MoveOutcome.RETRIEVED, MoveOutcome.WARNING):
                            results[uid] = r
                            _notify(progress, len(results), len(uids), r)
                for uid in uids:
                    if uid in results:
                        continue
                    results[uid] = move_one(session, self.cache, uid, study=study, series=series)
                    _notify(progress, len(results), len(uids), results[uid])
            except (DimseTimeout, AssociationAborted) as exc:
                LOG.error("retrieve from %s stopped: %s", self.remote, exc)
                end_after_failure(assoc, timed_out=isinstance(exc, DimseTimeout))
                return str(exc)
        return ""


    # ----------------------------------------------------------------- TmsClient (openigrt.net.tms)
    def locate(self, sop_instance_uid: str, *, study_instance_uid: str | None = None,
               series_instance_uid: str | None = None) -> FindResult:
        """:meth:`find` under the protocol-neutral name."""
        return self.find(sop_instance_uid, study_instance_uid=study_instance_uid,
                         series_instance_uid=series_instance_uid)

    def retrieve(self, sop_instance_uids: Sequence[str], *, study_instance_uid: str | None = None,
                 series_instance_uid: str | None = None, progress: MoveProgress | None = None) -> MoveReport:
        """:meth:`move` (one IMAGE-level C-MOVE each, our Storage SCP listening) under the protocol-neutral name."""
        return self.move(sop_instance_uids, study_instance_uid=study_instance_uid,
                         series_instance_uid=series_instance_uid, progress=progress)


def _notify(progress: MoveProgress | None, done: int, total: int, result: MoveResult) -> None:
    if progress is not None:
        progress(done, total, result)
