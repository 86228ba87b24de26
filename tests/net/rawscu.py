"""A pynetdicom requestor for tests that need to send what a well-behaved SCU would not."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pynetdicom.dimse_primitives import C_STORE

from openigrt.config import RemoteAE, Settings
from openigrt.net.ae import build_contexts, make_ae, open_association
from openigrt.net.dimse import Response, ResponseTap, context_id_for, reactor_paused, send_request

ILE, ELE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


@contextmanager
def requestor(settings: Settings, remote: RemoteAE, contexts: Sequence[tuple[str, Sequence[str]]], *,
              bind_address: tuple[str, int] | None = None, ae_title: str | None = None) -> Iterator[tuple[Any, ResponseTap]]:
    """An established association (with its response tap) proposing exactly *contexts*."""
    tap = ResponseTap()
    ae = make_ae(settings, ae_title=ae_title)
    with open_association(ae, remote, settings=settings, contexts=build_contexts(contexts),
                          evt_handlers=[tap.handler()], bind_address=bind_address) as assoc:
        with reactor_paused(assoc):
            yield assoc, tap


def raw_store(assoc: Any, tap: ResponseTap, *, context_class: str, affected_class: str, affected_uid: str,
              payload: bytes, ts: str | None = None, timeout: float = 10.0) -> Response:
    """Send *payload* as the data set of a C-STORE on the context of *context_class*; return the response."""
    cx = context_id_for(assoc, context_class, ts)
    assert cx is not None, f"no accepted context for {context_class}"
    req = C_STORE()
    req.MessageID = tap.new_message_id()
    req.AffectedSOPClassUID = affected_class
    req.AffectedSOPInstanceUID = affected_uid
    req.Priority = 0
    req.DataSet = io.BytesIO(payload)
    send_request(assoc, req, cx)
    return tap.wait(assoc, req.MessageID, timeout=timeout, peer="test peer", what="C-STORE")


def partial_store(assoc: Any, *, context_class: str, uid: str, payload: bytes, fraction: float = 0.5) -> int:
    """Send only the first *fraction* of a C-STORE's P-DATA PDUs (never the last data fragment)."""
    from pynetdicom.dimse_messages import C_STORE_RQ

    cx = context_id_for(assoc, context_class)
    assert cx is not None
    req = C_STORE()
    req.MessageID, req.AffectedSOPClassUID, req.AffectedSOPInstanceUID, req.Priority = 1, context_class, uid, 0
    req.DataSet = io.BytesIO(payload)
    msg = C_STORE_RQ()
    msg.primitive_to_message(req)
    pdatas = list(msg.encode_msg(cx, 16384))
    n = max(2, int(len(pdatas) * fraction))
    assert n < len(pdatas)
    for p in pdatas[:n]:
        assoc.dul.send_pdu(p)
    return n
