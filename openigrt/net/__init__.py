"""DICOM network node: association set-up, SCU and SCP services, durable cache (SPEC §1, NET-1 … NET-13).

``net`` moves data sets; it never builds IODs. Import the submodules directly (this package
imports nothing, so ``import openigrt.net`` stays cheap).

Public API (what the workflow, the CLI and the archive use)
-----------------------------------------------------------
**Talking to the TMS** — :class:`openigrt.net.client.DicomClient`::

    from openigrt.net.client import DicomClient
    client = DicomClient(settings)                 # remote = settings.remote (raises ConfigError if unset)
    client.echo() -> float                          # NET-10; raises NetworkError (ConnectionFailed,
                                                    #   AssociationRejected, AssociationAborted, DimseTimeout)
    client.store(items, *, progress=None) -> StoreReport
        # items: Sequence[Path | str | pydicom.Dataset]; one association, per-instance InstanceResult
        # (outcome sent/warning/failed/not tried, status, status_comment, message); never raises for
        # network trouble: StoreReport.error says why the task stopped; report.ok / raise_for_status()
    client.find(sop_instance_uid, *, study_instance_uid=None, series_instance_uid=None) -> FindResult
        # .found, .matches (Match: sop/study/series UIDs), .status, .message, raise_for_status()
    client.move(sop_instance_uids, *, study_instance_uid=None, series_instance_uid=None,
                listen=True, batch=False, progress=None) -> MoveReport
        # into our cache via our own AE title; listen=True runs a StorageSCP on settings.local.port
        # for the duration (False when `openigrt listen` already runs on the same cache);
        # MoveReport.results[i]: MoveResult (outcome retrieved/warning/failed/not tried, status,
        # completed/failed/warning counts, path), MoveReport.paths {uid: cached path}

    progress callbacks: ``progress(done: int, total: int, result)`` after each instance.

A client is thread-safe and limits the associations it initiates to ``network.max_associations``.

**The TMS over DIMSE or DICOMweb** — ``with open_tms(settings) as tms`` (:mod:`openigrt.net.tms`):
``tms.echo()``, ``tms.locate(uid, ...)`` (FindResult), ``tms.retrieve(uids, ...)`` (MoveReport),
``tms.store(items)`` (StoreReport); ``DicomClient`` or
:class:`openigrt.net.dicomweb.client.DicomWebClient` (``[remote] protocol = "dicomweb"``).

**Receiving** — :class:`openigrt.net.scp.StorageSCP` (context manager, background thread)::

    from openigrt.net.scp import StorageSCP, ReceivedInstance
    with StorageSCP(settings, cache, on_received=callback) as scp:   # port=0 for an ephemeral port
        scp.port
    # callback(ReceivedInstance(instance: CachedInstance, calling_ae_title, peer_address)) is called
    # in the association's thread once the instance is durable and indexed, before 0000 is answered.

**The cache** — :class:`openigrt.net.cache.InstanceCache` (``InstanceCache.from_settings(settings)``):
``get(uid) -> CachedInstance | None``, ``query(study_instance_uid=, series_instance_uid=,
sop_class_uid=, modality=, patient_id=)``, ``store(bytes, transfer_syntax_uid=)``,
``store_file(path)``, ``store_dataset(ds)``, ``remove(uid)``, ``reconcile()``;
``CachedInstance.path`` / ``.read()``. Shared helpers: :func:`openigrt.net.cache.atomic_write`
(temp name in the same directory, fsync, rename, fsync directory), :func:`openigrt.net.cache.ensure_dir`.

**Association helpers** (archive): :func:`openigrt.net.ae.make_ae` (one configured pynetdicom AE),
:func:`openigrt.net.ae.nodelay_handler` (``(EVT_CONN_OPEN, handler)`` setting TCP_NODELAY: pass it in
``evt_handlers`` of ``AE.start_server`` / ``AE.associate``), :func:`openigrt.net.ae.open_association`.

**File mode** (NET-12): :func:`openigrt.net.media.import_files`, :func:`openigrt.net.media.export_instances`.

Modules
-------
=====================  =====================================================================
``net.sop``            SOP class / transfer syntax UIDs and the roles table of SPEC §1
``net.status``         DIMSE status tables per service, :func:`~openigrt.net.status.classify`,
                       our SCU's behaviour per code (``store_outcome``, ``find_outcome``, ``move_outcome``)
``net.ae``             one configured AE, TCP_NODELAY, association limiter, ``open_association``
``net.dimse``          DIMSE-C request/response exchange that cannot lose a response
``net.store``          Storage SCU (NET-1, NET-2)
``net.qr``             Q/R SCU: C-FIND / C-MOVE at IMAGE level, hierarchical fallback (NET-3 … NET-6)
``net.client``         :class:`DicomClient`, the SCU face towards one remote AE
``net.acceptor``       lean PS3.8 association acceptor (negotiation, P-DATA, release/abort, deadlines)
``net.pdu``            PS3.8 PDUs by hand: A-ASSOCIATE-RQ parsing, context negotiation, AC/RJ/ABORT
``net.command``        DIMSE command sets by hand: parse a request, encode a C-STORE/C-ECHO response
``net.connections``    acceptor limits (``[network]``), pending vs associated connections, eviction
``net.tls``            DICOM TLS (BCP 195 profile): server/client ``ssl`` contexts, the acceptor's
                       handshake hook, pynetdicom ``tls_args``, error words (``[tls]``)
``net.scp``            Storage + Verification SCP: access policy (NET-9) and C-STORE handling (NET-8)
``net.header``         structure walk and index header of an encoded data set (no full decode)
``net.cache``          durable cache: atomic write + SQLite (WAL) index
``net.media``          file import / export (NET-12)
``net.tms``            :class:`~openigrt.net.tms.TmsClient`, the protocol-neutral TMS the workflow uses,
                       and ``open_tms(settings)`` (DIMSE or DICOMweb)
``net.dicomweb``       DICOMweb TMS client: QIDO-RS, WADO-RS, STOW-RS over httpx (its own table)
=====================  =====================================================================
"""
