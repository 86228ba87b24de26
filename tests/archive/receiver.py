"""A scriptable in-process move destination (pynetdicom Storage SCP) for the archive tests.

It records what arrives (SOP Instance UID, transfer syntax, data set bytes), answers the status
the test asks for per SOP Instance UID, can be slow, and can restrict its transfer syntaxes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openigrt.config import RemoteAE
from openigrt.net.ae import nodelay_handler
from tests.peers import LOOPBACK

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
MPEG2 = "1.2.840.10008.1.2.4.100"


@dataclass(frozen=True)
class Arrival:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    data: bytes
    move_originator: str


@dataclass
class Receiver:
    """Storage SCP answering ``statuses.get(uid, 0x0000)`` after ``delay`` seconds."""

    ae_title: str = "RECEIVER"
    statuses: Mapping[str, int] = field(default_factory=dict)
    delay: float = 0.0
    syntaxes: Sequence[str] = (IMPLICIT, EXPLICIT)
    on_store: Callable[[Any], None] | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    associations: int = 0
    _server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        ae = AE(self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, list(self.syntaxes))
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_ACCEPTED, self._on_accepted), nodelay_handler()]
        self._server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
        self._ae = ae
        return self

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def remote(self) -> RemoteAE:
        return RemoteAE(self.ae_title, LOOPBACK, self.port)

    def _on_accepted(self, event: Any) -> None:
        with self._lock:
            self.associations += 1

    def _on_store(self, event: Any) -> int:
        if self.on_store is not None:
            self.on_store(event)
        req = event.request
        uid = str(req.AffectedSOPInstanceUID)
        with self._lock:
            self.arrivals.append(Arrival(uid, str(req.AffectedSOPClassUID), str(event.context.transfer_syntax),
                                         req.DataSet.getvalue(), str(req.MoveOriginatorApplicationEntityTitle or "")))
        if self.delay:
            time.sleep(self.delay)
        return self.statuses.get(uid, 0x0000)

    def uids(self) -> list[str]:
        with self._lock:
            return [a.sop_instance_uid for a in self.arrivals]

    def stop(self) -> None:
        if self._server is not None:
            self._ae.shutdown()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
