"""Who may hold a connection to our acceptors, and for how long (NET-9, issue 9 hardening).

A connection is **pending** from the TCP accept until its A-ASSOCIATE-RQ is answered, then
**associated** until it ends. The two are counted apart, so connections that never send a
valid request cannot take the places of associations:

* pending connections are capped in total (``max_pending_connections``) and per peer address
  (``max_pending_per_address``); a new connection beyond either cap **drops the oldest pending
  one** (of that address, or overall). A well-behaved peer sends its A-ASSOCIATE-RQ within
  milliseconds of connecting, so a flood of silent or slow connections evicts only itself;
* associations are capped in total (``max_accepted_associations``) and per address
  (``max_associations_per_address``); beyond, A-ASSOCIATE-RJ 2/3/2 (local limit exceeded);
* deadlines (enforced by the acceptor's reads): the whole A-ASSOCIATE-RQ within
  ``acse_timeout`` of the accept (not per read: a byte every few seconds does not extend it);
  each PDU of the association within ``network_timeout`` of being awaited; the association
  within ``max_association_duration``.

All limits come from ``[network]`` (:class:`AcceptorLimits`).
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from openigrt.config import NetworkSettings

LOG = logging.getLogger("openigrt.net.acceptor")

#: Why a pending connection was closed by us (read by its thread for its log line).
EVICTED_GLOBAL: Final = "dropped: too many connections still negotiating (max_pending_connections)"
#: At most one log line per this interval about dropped pending connections (a flood is one line), s.
DROP_LOG_INTERVAL_S: Final = 5.0
EVICTED_ADDRESS: Final = "dropped: too many connections still negotiating from this address (max_pending_per_address)"


@dataclass(frozen=True)
class AcceptorLimits:
    """Timeouts and limits of one acceptor (from ``[network]``; see :mod:`openigrt.config`)."""

    acse_timeout: float
    network_timeout: float
    max_pdu_receive: int  # what we advertise; 0 = unlimited
    max_pdu_receive_cap: int
    max_associate_rq: int
    max_message_size: int
    max_associations: int
    max_associations_per_address: int
    max_pending: int
    max_pending_per_address: int
    max_association_duration: float

    @classmethod
    def from_network(cls, net: NetworkSettings, *, max_associations: int | None = None) -> AcceptorLimits:
        """The limits of ``[network]`` (*max_associations* overrides ``max_accepted_associations``)."""
        return cls(acse_timeout=net.acse_timeout, network_timeout=net.network_timeout,
                   max_pdu_receive=net.max_pdu_receive, max_pdu_receive_cap=net.max_pdu_receive_cap,
                   max_associate_rq=net.max_associate_rq, max_message_size=net.max_message_size,
                   max_associations=max_associations or net.max_accepted_associations,
                   max_associations_per_address=net.max_associations_per_address,
                   max_pending=net.max_pending_connections, max_pending_per_address=net.max_pending_per_address,
                   max_association_duration=net.max_association_duration)

    @property
    def p_data_limit(self) -> int:
        """Largest P-DATA-TF PDU length accepted: what we advertised, or the cap when that is 0."""
        return self.max_pdu_receive or self.max_pdu_receive_cap


class TransportRefused(Exception):
    """The transport layer (TLS) refused a connection before any PDU was read: one log line, then close."""


_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    """One TCP connection to an acceptor."""

    sock: socket.socket
    address: str
    accepted_at: float = field(default_factory=time.monotonic)
    associated: bool = False
    evicted: str = ""
    number: int = field(default_factory=lambda: next(_ids))

    def drop(self, why: str) -> None:
        """Close the connection under its thread (its blocked read returns at once)."""
        self.evicted = why
        try:  # the plain socket call, also for a TLS socket (no TLS state touched from this thread)
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass


class ConnectionTable:
    """The pending and associated connections of one acceptor (thread-safe)."""

    def __init__(self, limits: AcceptorLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._pending: dict[int, Connection] = {}  # insertion order = age
        self._associated: dict[int, Connection] = {}
        self._dropped = 0  # since the last log line
        self._dropped_logged = 0.0

    def admit(self, conn: Connection) -> None:
        """Register a new pending connection, dropping the oldest pending ones beyond the caps."""
        with self._lock:
            same = [c for c in self._pending.values() if c.address == conn.address]
            victims = same[:max(0, len(same) + 1 - self.limits.max_pending_per_address)]
            for v in victims:
                self._pending.pop(v.number)
                v.drop(EVICTED_ADDRESS)
            while len(self._pending) >= self.limits.max_pending:
                oldest = next(iter(self._pending.values()))
                self._pending.pop(oldest.number)
                oldest.drop(EVICTED_GLOBAL)
                victims.append(oldest)
            self._pending[conn.number] = conn
            self._dropped += len(victims)
            now = time.monotonic()
            if not self._dropped or now - self._dropped_logged < DROP_LOG_INTERVAL_S:
                return
            dropped, self._dropped, self._dropped_logged = self._dropped, 0, now
        LOG.warning("dropped %d connection(s) that had not associated yet, to make room for new ones "
                    "(max_pending_connections %d, max_pending_per_address %d; latest from %s)", dropped,
                    self.limits.max_pending, self.limits.max_pending_per_address, conn.address)

    def promote(self, conn: Connection) -> str | None:
        """Make a pending connection associated; return why not when a limit is reached."""
        with self._lock:
            per_address = sum(1 for c in self._associated.values() if c.address == conn.address)
            if len(self._associated) >= self.limits.max_associations:
                return f"{self.limits.max_associations} associations already (max_accepted_associations)"
            if per_address >= self.limits.max_associations_per_address:
                return (f"{per_address} associations from {conn.address} already "
                        f"(max_associations_per_address)")
            self._pending.pop(conn.number, None)
            conn.associated = True
            self._associated[conn.number] = conn
            return None

    def remove(self, conn: Connection) -> None:
        """Forget a connection (before its socket is closed)."""
        with self._lock:
            self._pending.pop(conn.number, None)
            self._associated.pop(conn.number, None)

    def counts(self) -> tuple[int, int]:
        """(pending, associated)."""
        with self._lock:
            return len(self._pending), len(self._associated)

    def sockets(self) -> list[socket.socket]:
        """Sockets of every connection (pending and associated)."""
        with self._lock:
            return [c.sock for c in [*self._pending.values(), *self._associated.values()]]
