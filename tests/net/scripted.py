"""Scripted pynetdicom peers: a Storage SCP and a Q/R SCP that answer what a test tells them.

They run in-process on loopback (ephemeral port) and answer per SOP Instance UID: a status with
an Error Comment, a delay beyond our DIMSE timeout, or an A-ABORT. Stopped in fixture teardown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, evt

STORAGE = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.1",
           "1.2.840.10008.5.1.4.1.1.66.1", "1.2.840.10008.5.1.4.1.1.481.5")
SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.100"]


@dataclass
class Behaviour:
    """What the scripted peer does for one instance."""

    status: int = 0x0000
    comment: str = ""
    delay: float = 0.0
    abort: bool = False


@dataclass
class Received:
    sop_instance_uid: str
    transfer_syntax: str
    dataset: bytes
    calling_ae_title: str


@dataclass
class ScriptedStorageSCP:
    """A pynetdicom Storage SCP that answers per SOP Instance UID from :attr:`script`."""

    ae_title: str = "SCRIPTED"
    script: dict[str, Behaviour] = field(default_factory=dict)
    handler_delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    pdata_sizes: list[int] = field(default_factory=list)
    peer_identity: list[tuple[str, str, int]] = field(default_factory=list)
    max_concurrent: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Any = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def remote(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def _on_store(self, event: Any) -> Any:
        uid = str(event.request.AffectedSOPInstanceUID)
        self.received.append(Received(uid, str(event.context.transfer_syntax),
                                      event.encoded_dataset(include_meta=False), str(event.assoc.requestor.ae_title)))
        b = self.script.get(uid, Behaviour())
        if b.abort:
            event.assoc.abort()
            return 0x0000
        time.sleep(max(b.delay, self.handler_delay))
        rsp = Dataset()
        rsp.Status = b.status
        if b.comment:
            rsp.ErrorComment = b.comment
        return rsp

    def _on_pdu(self, event: Any) -> None:
        if type(event.pdu).__name__ == "P_DATA_TF":
            self.pdata_sizes.append(len(event.pdu.encode()))

    def _on_established(self, event: Any) -> None:
        rq = event.assoc.requestor
        self.peer_identity.append((str(rq.implementation_class_uid), str(rq.implementation_version_name),
                                   int(rq.maximum_length or 0)))
        with self._lock:
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            self._active -= 1

    def start(self) -> ScriptedStorageSCP:
        ae = AE(ae_title=self.ae_title)
        ae.maximum_associations = 20
        ae.maximum_pdu_size = 0  # unlimited: only the sender's own cap splits data sets
        for uid in STORAGE:
            ae.add_supported_context(uid, SYNTAXES)
        ae.add_supported_context("1.2.840.10008.1.1", SYNTAXES[:2])
        ae.dimse_timeout = ae.acse_timeout = 30
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_PDU_RECV, self._on_pdu),
            (evt.EVT_RELEASED, self._on_closed), (evt.EVT_ABORTED, self._on_closed)])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


@dataclass
class ScriptedQRSCP:
    """A pynetdicom Study Root Q/R SCP over a list of identifiers.

    ``strict`` refuses IMAGE-level requests without Study and Series Instance UID values (C000),
    like a strictly hierarchical provider; ``find_delay`` / ``move_status`` script failures.
    Moves send the matching data sets to the destination's address in ``destinations``.
    """

    instances: list[Dataset] = field(default_factory=list)
    ae_title: str = "SCRIPTEDQR"
    strict: bool = True
    find_delay: float = 0.0
    move_delay: float = 0.0
    move_status: int | None = None
    destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    requests: list[Dataset] = field(default_factory=list)
    _server: Any = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def remote(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def _matches(self, ident: Dataset) -> list[Dataset] | None:
        level = ident.QueryRetrieveLevel
        study, series, sops = ident.get("StudyInstanceUID", ""), ident.get("SeriesInstanceUID", ""), ident.get("SOPInstanceUID", "")
        sops = [sops] if isinstance(sops, str) else list(sops)
        if self.strict and level == "IMAGE" and (not study or not series):
            return None
        if self.strict and level == "SERIES" and not study:
            return None
        out = []
        for ds in self.instances:
            if study and ds.StudyInstanceUID != study:
                continue
            if level in ("SERIES", "IMAGE") and series and ds.SeriesInstanceUID != series:
                continue
            if level == "IMAGE" and sops and sops != [""] and ds.SOPInstanceUID not in sops:
                continue
            out.append(ds)
        if level == "STUDY":
            out = list({d.StudyInstanceUID: d for d in out}.values())
        if level == "SERIES":
            out = list({d.SeriesInstanceUID: d for d in out}.values())
        return out

    def _on_find(self, event: Any) -> Iterator[Any]:
        ident = event.identifier
        self.requests.append(ident)
        time.sleep(self.find_delay)
        found = self._matches(ident)
        if found is None:
            yield 0xC000, None
            return
        for ds in found:
            rsp = Dataset()
            rsp.QueryRetrieveLevel = ident.QueryRetrieveLevel
            for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                if kw in ident:
                    setattr(rsp, kw, ds.get(kw, ""))
            rsp.SpecificCharacterSet = "ISO_IR 100"
            yield 0xFF00, rsp

    def _on_move(self, event: Any) -> Iterator[Any]:
        ident = event.identifier
        self.requests.append(ident)
        time.sleep(self.move_delay)
        if event.move_destination not in self.destinations:
            yield None, None  # unknown destination: pynetdicom answers A801
            return
        yield self.destinations[event.move_destination]
        if self.move_status is not None:
            yield 1
            yield self.move_status, None
            return
        found = self._matches(ident)
        if found is None:
            yield 0xC000, None
            return
        yield len(found)
        for ds in found:
            yield 0xFF00, ds

    def start(self) -> ScriptedQRSCP:
        from pynetdicom.sop_class import (
            StudyRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelMove,
        )

        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        ae.add_supported_context("1.2.840.10008.1.1")
        for uid in STORAGE:
            ae.add_requested_context(uid, SYNTAXES[:2])
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
            (evt.EVT_C_FIND, self._on_find), (evt.EVT_C_MOVE, self._on_move)])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def running(peer: Any) -> Callable[[], None]:
    """Start *peer*; return its stop function (for fixtures)."""
    peer.start()
    return peer.stop
