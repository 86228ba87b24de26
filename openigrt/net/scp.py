"""Storage SCP + Verification SCP (NET-7, NET-8, NET-9, NET-10, NET-13).

:class:`StorageSCP` listens on ``settings.local`` (or a port given to it, 0 = ephemeral) under our
AE title, in a background thread, and is a context manager::

    with StorageSCP(settings, cache, on_received=print) as scp:
        ...  # scp.port is the bound port; received instances are in cache

The associations are served by the lean acceptor of :mod:`openigrt.net.acceptor` (one blocking
thread per association, TCP_NODELAY, no polling); this module holds the policy and the C-STORE
handling.

Negotiation (NET-7)
    Exactly the SPEC classes (CT, RT Structure Set, RT Image, RT Plan; Verification) with
    Implicit and Explicit VR LE. Every proposed context of a supported class is accepted,
    duplicates included; from each context the **first transfer syntax the proposer listed**
    that we support is chosen (pynetdicom's acceptor would pick in the *acceptor's* order).

Access control (NET-9), checked on the A-ASSOCIATE-RQ, answered with A-ASSOCIATE-RJ
(PS3.8 9.3.4) and logged:

====================================================  =======  =======  =======
condition                                              result   source   reason
====================================================  =======  =======  =======
Called AE Title is not ours                           1 perm.  1 user   7 called AE not recognized
Calling AE Title is not an allowed caller             1 perm.  1 user   3 calling AE not recognized
Calling AE allowed, but not from this peer address    1 perm.  1 user   3 calling AE not recognized
====================================================  =======  =======  =======

(The last row is our choice: the pair (AE title, address) is what identifies a caller, and
PS3.8 has no address-specific reason; "no reason given" would hide the cause from the peer's log.)

C-STORE (NET-7, NET-8): the received encoded data set is kept as is (no decode/re-encode): its
structure is walked and its header read (:mod:`openigrt.net.header`), it is written atomically
and indexed (:class:`~openigrt.net.cache.InstanceCache`), and only then is 0000 answered.

========  ==============================================================================
status    when
========  ==============================================================================
0000      stored durably and indexed
A700      the cache cannot be written (disk full, read-only, index error)
A900      SOP Class UID of the data set (or of the command) differs from the context's;
          or a Study / Series Instance UID that is not a UID (it would name a cache
          directory: ``..``, empty components, other characters, more than 64 characters)
0117      SOP Instance UID missing or invalid, or differs from the command's Affected
          SOP Instance UID (we refuse rather than guess which one is right)
0122      the C-STORE came on a context that is not a storage class we accept (e.g.
          Verification): answered by the acceptor, the handler is not called
C000      empty, truncated or undecodable data set
========  ==============================================================================

B000/B006/B007 are never answered: nothing is coerced or discarded. The handler never raises
across the wire; any unexpected exception answers C000 (A700 for cache errors) with an Error
Comment (0000,0902). ``on_received`` is called in the association's thread after the instance is indexed
and before the response is sent; exceptions in it are logged and do not change the status.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from openigrt.config import Settings
from openigrt.errors import CacheError, ConnectionFailed, DicomInputError
from openigrt.net import sop, status
from openigrt.net.acceptor import AcceptorConfig, AcceptorServer, StoreRequest
from openigrt.net.cache import CachedInstance, InstanceCache
from openigrt.net.connections import AcceptorLimits
from openigrt.net.header import InstanceHeader, inspect
from openigrt.net.tls import acceptor_tls, tls_note
from openigrt.uids import is_uid_like, is_valid_uid

LOG = logging.getLogger("openigrt.net.scp")


@dataclass(frozen=True)
class ReceivedInstance:
    """Notification for one stored instance (``on_received`` argument)."""

    instance: CachedInstance
    calling_ae_title: str
    peer_address: str


@dataclass(frozen=True)
class Rejection:
    """An A-ASSOCIATE-RJ decision (PS3.8 9.3.4) with the reason for the log."""

    result: int
    source: int
    reason: int
    why: str


# --------------------------------------------------------------------------- access control
def _normalise_ip(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def resolve_host(host: str) -> frozenset[str]:
    """All IP addresses of *host* (an IP literal resolves to itself); empty when unresolvable."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return frozenset()
    return frozenset(_normalise_ip(str(info[4][0])) for info in infos)


@dataclass(frozen=True)
class AccessPolicy:
    """Who may open associations to us (NET-9): our AE title + allowed (AE title, addresses)."""

    ae_title: str
    callers: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def from_settings(cls, settings: Settings, *, ae_title: str | None = None) -> AccessPolicy:
        """Resolve ``settings.allowed_callers()`` host names once."""
        callers = []
        for caller in settings.allowed_callers():
            addrs = resolve_host(caller.host)
            if not addrs:
                LOG.warning("allowed caller %s@%s: host does not resolve; it can never connect",
                            caller.ae_title, caller.host)
            callers.append((caller.ae_title.strip(), addrs))
        return cls((ae_title or settings.local.ae_title).strip(), tuple(callers))

    def check(self, called: str, calling: str, address: str) -> Rejection | None:
        """Return None to accept, or the rejection to send.

        >>> p = AccessPolicy("US", (("TMS", frozenset({"127.0.0.1"})),))
        >>> p.check("US", "TMS", "127.0.0.1") is None
        True
        >>> [(r.result, r.source, r.reason) for r in (p.check("X", "TMS", "127.0.0.1"),
        ...  p.check("US", "Y", "127.0.0.1"), p.check("US", "TMS", "127.0.0.2"))]
        [(1, 1, 7), (1, 1, 3), (1, 1, 3)]
        """
        called, calling, address = called.strip(), calling.strip(), _normalise_ip(address)
        if called != self.ae_title:
            return Rejection(1, 1, 7, f"called AE title {called!r} is not ours ({self.ae_title!r})")
        known = [addrs for aet, addrs in self.callers if aet == calling]
        if not known:
            return Rejection(1, 1, 3, f"calling AE title {calling!r} is not an allowed caller")
        if not any(address in addrs for addrs in known):
            return Rejection(1, 1, 3, f"calling AE title {calling!r} is not allowed from address {address}")
        return None


# --------------------------------------------------------------------------- C-STORE
def _refuse(code: int, comment: str, calling: str, uid: str) -> tuple[int, str]:
    LOG.warning("C-STORE of %s from %s refused with 0x%04X: %s", uid or "?", calling, code, comment)
    return code, comment


def check_store(req: StoreRequest) -> tuple[int, str, InstanceHeader | None]:
    """Run the NET-8 checks on a received C-STORE; return (status, comment, header or None)."""
    cx_class, cx_ts = req.context.abstract_syntax, req.context.transfer_syntax
    if req.affected_sop_class_uid != cx_class:
        return status.SCP_DATASET_MISMATCH, f"Affected SOP Class {req.affected_sop_class_uid} is not the context's", None
    try:
        header = inspect(req.dataset, transfer_syntax_uid=cx_ts)
    except DicomInputError as exc:
        return status.SCP_CANNOT_UNDERSTAND, str(exc), None
    if header.sop_class_uid != cx_class:
        return status.SCP_DATASET_MISMATCH, f"data set SOP Class {header.sop_class_uid or 'missing'}", None
    if not header.sop_instance_uid or not is_valid_uid(header.sop_instance_uid):
        return status.SCP_INVALID_OBJECT_INSTANCE, "SOP Instance UID missing or invalid", None
    if header.sop_instance_uid != req.affected_sop_instance_uid:
        return status.SCP_INVALID_OBJECT_INSTANCE, "SOP Instance UID differs from Affected SOP Instance UID", None
    for name, value in (("Study", header.study_instance_uid), ("Series", header.series_instance_uid)):
        if value and not is_uid_like(value):  # it names a cache directory: never "..", "/", ...
            return status.SCP_DATASET_MISMATCH, f"{name} Instance UID {value[:24]!r} is not a valid UID", None
    return status.SCP_SUCCESS, "", header


def handle_store(req: StoreRequest, cache: InstanceCache,
                 notify: Callable[[ReceivedInstance], None] | None) -> tuple[int, str]:
    """Check, store durably, index, notify; return the NET-8 (status, error comment). Never raises."""
    uid = req.affected_sop_instance_uid
    try:
        code, comment, header = check_store(req)
        if code != status.SCP_SUCCESS:
            return _refuse(code, comment, req.calling_ae_title, uid)
        try:
            row = cache.store(req.dataset, transfer_syntax_uid=req.context.transfer_syntax, header=header,
                              source_ae_title=req.calling_ae_title, checked=True)
        except CacheError as exc:
            return _refuse(status.SCP_OUT_OF_RESOURCES, str(exc), req.calling_ae_title, uid)
        except DicomInputError as exc:
            return _refuse(status.SCP_CANNOT_UNDERSTAND, str(exc), req.calling_ae_title, uid)
    except Exception as exc:  # never let a handler error cross the wire without a status
        LOG.exception("unexpected error while storing %s", uid)
        return _refuse(status.SCP_CANNOT_UNDERSTAND, f"internal error: {type(exc).__name__}", req.calling_ae_title, uid)
    LOG.info("stored %s %s from %s -> %s", sop.sop_class_name(row.sop_class_uid), row.sop_instance_uid,
             req.calling_ae_title, row.path)
    if notify is not None:
        try:
            notify(ReceivedInstance(row, req.calling_ae_title, req.peer_address))
        except Exception:
            LOG.exception("on_received callback failed for %s (instance is stored)", row.sop_instance_uid)
    return status.SCP_SUCCESS, ""


# --------------------------------------------------------------------------- the SCP
class StorageSCP:
    """Storage + Verification SCP running in a background thread (context manager).

    Parameters
    ----------
    settings
        Our AE title, port, bind address, allowed callers, timeouts.
    cache
        Where received instances go; default ``InstanceCache.from_settings(settings)``.
    on_received
        Called once per stored instance with a :class:`ReceivedInstance`.
    port, bind_address, ae_title
        Overrides of the settings (``port=0`` binds an ephemeral port; see :attr:`port`).
    max_associations
        Simultaneous associations accepted (default ``network.max_accepted_associations``); beyond,
        A-ASSOCIATE-RJ 2/3/2 (local limit exceeded). The other limits come from ``settings.network``.
    reconcile
        Reconcile the cache index with its files at start (crash recovery; walks the whole cache).
        ``openigrt listen`` does; a short-lived SCP inside one process's retrieve need not.
    """

    def __init__(self, settings: Settings, cache: InstanceCache | None = None, *,
                 on_received: Callable[[ReceivedInstance], None] | None = None, port: int | None = None,
                 bind_address: str | None = None, ae_title: str | None = None,
                 max_associations: int | None = None, reconcile: bool = True) -> None:
        self.settings = settings
        self.cache = cache if cache is not None else InstanceCache.from_settings(settings)
        self.on_received = on_received
        self.ae_title = ae_title or settings.local.ae_title
        self._requested_port = settings.local.port if port is None else port
        self.bind_address = bind_address or settings.local.bind_address
        self.policy = AccessPolicy.from_settings(settings, ae_title=self.ae_title)
        self.max_associations = max_associations
        self.reconcile = reconcile
        self._server: AcceptorServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`), else the configured one."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    @property
    def running(self) -> bool:
        return self._server is not None

    def sockets(self) -> list[socket.socket]:
        """Sockets of the associations being served (empty when stopped)."""
        return self._server.sockets() if self._server is not None else []

    def supported(self) -> dict[str, tuple[str, ...]]:
        """The SOP classes and transfer syntaxes we accept (NET-7 table + Verification)."""
        table = {uid: sop.SCP_TRANSFER_SYNTAXES for uid in sop.SCP_STORAGE_CLASSES}
        table[sop.VERIFICATION] = sop.SCP_TRANSFER_SYNTAXES
        return table

    def start(self) -> StorageSCP:
        """Bind and serve in a background thread (raises ConnectionFailed if the port is taken)."""
        with self._lock:
            if self._server is not None:
                return self
            net = self.settings.network
            config = AcceptorConfig(
                ae_title=self.ae_title, supported=self.supported(), storage_classes=frozenset(sop.SCP_STORAGE_CLASSES),
                check_access=self.policy.check, on_store=lambda req: handle_store(req, self.cache, self.on_received),
                implementation_class_uid=net.implementation_class_uid,
                implementation_version_name=net.implementation_version_name,
                limits=AcceptorLimits.from_network(net, max_associations=self.max_associations),
                wrap_socket=acceptor_tls(self.settings),
            )
            if self.reconcile:
                self.cache.reconcile()
            try:
                server = AcceptorServer((self.bind_address, self._requested_port), config)
            except OSError as exc:
                raise ConnectionFailed(
                    f"cannot listen on {self.bind_address}:{self._requested_port}: {exc.strerror or exc}"
                ) from None
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name=f"openigrt-scp-{self.ae_title}", daemon=True)
            self._server = server
            self._thread.start()
        LOG.info("Storage SCP %s listening on %s:%d%s", self.ae_title, self.bind_address, self.port,
                 tls_note(self.settings.tls) if self.settings.tls.listen else "")
        if not self.policy.callers:
            LOG.warning("no allowed callers configured: every association will be rejected "
                        "(give --allow AET@HOST or --remote)")
        return self

    def stop(self) -> None:
        """Stop listening and A-ABORT running associations."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.abort_all()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        LOG.info("Storage SCP %s stopped", self.ae_title)

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
