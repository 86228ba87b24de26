"""The archive's association acceptor: :mod:`openigrt.net.acceptor` plus C-FIND, C-MOVE and C-CANCEL.

``openigrt.net.acceptor`` is the node's lean PS3.8 acceptor (one blocking thread per
association, no polling reactor, hand-parsed A-ASSOCIATE-RQ, first-proposed transfer syntax
rule). It serves C-ECHO and C-STORE; the archive reuses it unchanged for those and adds, in
:class:`ArchiveAssociation`:

* C-FIND-RQ / C-MOVE-RQ: the identifier is decoded with pydicom in the context's transfer
  syntax (undecodable: C000-class status) and handed to the archive's services with a
  :class:`Responder` that hand-encodes the response command sets (PS3.7 9.3.2.2, 9.3.4.2:
  status, Error Comment, sub-operation counts) and pydicom-encodes the response identifiers,
  fragmented to the peer's maximum PDU length;
* C-CANCEL-RQ (PS3.7 9.3.2.3): while an operation runs, :meth:`Responder.cancelled` polls the
  socket (``select`` with a zero timeout) between matches / sub-operations; a C-CANCEL for
  another or finished operation is ignored; any other request meanwhile is a protocol error
  (asynchronous operations are not negotiated), answered with A-ABORT.

Relies on these attributes of ``net.acceptor._Association``: ``_dispatch``, ``send``,
``read_pdu``, ``sock``, ``contexts``, ``calling``, ``address``, ``peer_max_pdu``; the archive
tests exercise each. Connection limits, deadlines and the hostile-peer checks (issue 9) are
``net.acceptor``'s and apply unchanged: the archive only adds the Q/R commands.
"""

from __future__ import annotations

import logging
import select
import struct
from typing import TYPE_CHECKING, Any, Final

from openigrt.archive.model import FIND_MODELS, MOVE_MODELS
from openigrt.archive.scp import Counts, QRRequest
from openigrt.archive.sender import element, encode_p_data, text_value
from openigrt.net.acceptor import AcceptorConfig, AcceptorServer, _Association
from openigrt.net.command import (
    COMMAND_FIELD,
    MESSAGE_ID,
    MESSAGE_ID_BEING_RESPONDED_TO,
    MOVE_DESTINATION,
    NO_DATASET,
    command_text,
    command_us,
    parse_command,
)
from openigrt.net.connections import Connection, ConnectionTable
from openigrt.net.header import check_structure
from openigrt.net.pdu import A_ABORT, P_DATA_TF, AcceptedContext, ProtocolError
from openigrt.net.status import FIND_UNABLE_TO_PROCESS, MOVE_UNABLE_TO_PROCESS, SCP_SOP_CLASS_NOT_SUPPORTED

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

LOG = logging.getLogger("openigrt.archive")

# Command fields (PS3.7 E.1)
C_FIND_RQ: Final = 0x0020
C_MOVE_RQ: Final = 0x0021
C_CANCEL_RQ: Final = 0x0FFF
#: Command Data Set Type when a data set follows (any value but 0x0101).
_DATASET_PRESENT: Final = 0x0001
_IMPLICIT: Final = "1.2.840.10008.1.2"


def encode_qr_response(*, command_field: int, message_id: int, sop_class_uid: str, status: int,
                       dataset_present: bool = False, counts: Counts | None = None, with_remaining: bool = True,
                       error_comment: str = "") -> bytes:
    """A C-FIND-RSP / C-MOVE-RSP command set (Implicit VR LE, ascending tags, group length first).

    >>> cmd = parse_command(encode_qr_response(command_field=0x8021, message_id=3, sop_class_uid="1.2",
    ...                                        status=0xFF00, counts=Counts(2, 1, 0, 0)))
    >>> [command_us(cmd, t) for t in (0x00000120, 0x00000800, 0x00000900, 0x00001020, 0x00001021)]
    [3, 257, 65280, 2, 1]
    """
    body = element(0x00000002, text_value(sop_class_uid, b"\x00"))
    body += element(0x00000100, struct.pack("<H", command_field))
    body += element(0x00000120, struct.pack("<H", message_id & 0xFFFF))
    body += element(0x00000800, struct.pack("<H", _DATASET_PRESENT if dataset_present else NO_DATASET))
    body += element(0x00000900, struct.pack("<H", status))
    if error_comment:
        body += element(0x00000902, text_value(error_comment[:64], b" "))
    if counts is not None:
        if with_remaining:
            body += element(0x00001020, struct.pack("<H", min(counts.remaining, 0xFFFF)))
        body += element(0x00001021, struct.pack("<H", min(counts.completed, 0xFFFF)))
        body += element(0x00001022, struct.pack("<H", min(counts.failed, 0xFFFF)))
        body += element(0x00001023, struct.pack("<H", min(counts.warning, 0xFFFF)))
    return element(0x00000000, struct.pack("<L", len(body))) + body


class Responder:
    """Sends the responses of one C-FIND or C-MOVE and reports a C-CANCEL of it."""

    def __init__(self, assoc: ArchiveAssociation, context: AcceptedContext, *, command_field: int, message_id: int,
                 sop_class_uid: str) -> None:
        self.assoc = assoc
        self.context = context
        self.command_field = command_field
        self.message_id = message_id
        self.sop_class_uid = sop_class_uid

    def send(self, status: int, *, identifier: Dataset | None = None, counts: Counts | None = None,
             with_remaining: bool = True, comment: str = "") -> None:
        """Send one response (pending or final)."""
        data = None
        if identifier is not None:
            from pynetdicom.dsutils import encode

            data = encode(identifier, self.context.transfer_syntax == _IMPLICIT, True)
            if data is None:
                raise ValueError("cannot encode the response identifier")
        command = encode_qr_response(command_field=self.command_field, message_id=self.message_id,
                                     sop_class_uid=self.sop_class_uid, status=status, dataset_present=data is not None,
                                     counts=counts, with_remaining=with_remaining, error_comment=comment)
        self.assoc.send(encode_p_data(self.context.context_id, command, data, max_pdu=self.assoc.peer_max_pdu))

    def cancelled(self) -> bool:
        """True when the peer sent a C-CANCEL-RQ for this operation (never blocks)."""
        return self.assoc.poll_cancel(self.message_id)


class ArchiveAssociation(_Association):
    """One accepted association of the archive (runs in its own thread)."""

    def __init__(self, conn: Connection, config: AcceptorConfig, table: ConnectionTable, services: Any) -> None:
        super().__init__(conn, config, table)
        self.services = services

    def _dispatch(self, ctx_id: int, cmd: dict[int, bytes], dataset: bytes) -> None:
        field = command_us(cmd, COMMAND_FIELD)
        if field == C_CANCEL_RQ:
            return  # for an operation that has already ended (PS3.7 9.3.2.3): no response
        if field not in (C_FIND_RQ, C_MOVE_RQ):
            super()._dispatch(ctx_id, cmd, dataset)  # C-ECHO, C-STORE, or "unrecognised operation"
            return
        context = self.contexts[ctx_id]  # PDVs on other contexts were refused by net.acceptor
        msg_id = command_us(cmd, MESSAGE_ID, 0)
        sop_class = command_text(cmd, 0x00000002) or context.abstract_syntax
        responder = Responder(self, context, command_field=field | 0x8000, message_id=msg_id, sop_class_uid=sop_class)
        models = FIND_MODELS if field == C_FIND_RQ else MOVE_MODELS
        if context.abstract_syntax not in models or sop_class != context.abstract_syntax:
            responder.send(SCP_SOP_CLASS_NOT_SUPPORTED, comment=f"{sop_class} is not served on this context"[:64])
            return
        try:
            identifier = _decode(dataset, context.transfer_syntax)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on garbage
            LOG.warning("%s from %s@%s: undecodable identifier: %s", "C-FIND" if field == C_FIND_RQ else "C-MOVE",
                        self.calling, self.address, exc)
            code = FIND_UNABLE_TO_PROCESS if field == C_FIND_RQ else MOVE_UNABLE_TO_PROCESS
            responder.send(code, comment=f"undecodable identifier: {exc}"[:64])
            return
        request = QRRequest(sop_class, msg_id, identifier, command_text(cmd, MOVE_DESTINATION), self.calling,
                            self.address)
        if field == C_FIND_RQ:
            self.services.find(responder, request)
        else:
            self.services.move(responder, request)

    def poll_cancel(self, message_id: int) -> bool:
        """Read a pending C-CANCEL-RQ, if any, without blocking (see module docstring)."""
        pending = getattr(self.sock, "pending", None)  # a TLS socket may hold decrypted bytes select cannot see
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable and not (pending is not None and pending()):
            return False
        command = bytearray()
        while True:
            pdu_type, body = self.read_pdu()
            if pdu_type == A_ABORT:
                raise ProtocolError("the peer aborted the association during an operation")
            if pdu_type != P_DATA_TF:
                raise ProtocolError(f"PDU type 0x{pdu_type:02X} received during an operation")
            if _command_fragments(body, command):
                break
        cmd = parse_command(bytes(command))
        if command_us(cmd, COMMAND_FIELD) != C_CANCEL_RQ:
            raise ProtocolError("a new request arrived while an operation was running "
                               "(asynchronous operations were not negotiated)")
        return command_us(cmd, MESSAGE_ID_BEING_RESPONDED_TO) == message_id


def _command_fragments(body: bytes | bytearray, command: bytearray) -> bool:
    """Append the command fragments of a P-DATA-TF body; True after the last one (data: protocol error)."""
    view, pos, done = memoryview(body), 0, False
    while pos + 6 <= len(view):
        length, _, control = struct.unpack_from(">LBB", view, pos)
        if length < 2 or pos + 4 + length > len(view):
            raise ProtocolError("bad PDV item length")
        if not control & 0x01:
            raise ProtocolError("a data set arrived while an operation was running")
        command += view[pos + 6:pos + 4 + length]
        done = done or bool(control & 0x02)
        pos += 4 + length
    return done


def _decode(data: bytes, transfer_syntax: str) -> Dataset:
    """Decode an identifier; raise on a truncated or malformed one (pydicom alone reads those silently)."""
    from io import BytesIO

    from pydicom.filereader import read_dataset

    if data:
        check_structure(data, implicit_vr=transfer_syntax == _IMPLICIT)
    ds = read_dataset(BytesIO(data), transfer_syntax == _IMPLICIT, True)
    for _ in ds:  # decode every element now: a bad identifier fails here
        pass
    return ds


class ArchiveServer(AcceptorServer):
    """``net.acceptor.AcceptorServer`` serving :class:`ArchiveAssociation` connections."""

    def __init__(self, address: tuple[str, int], config: AcceptorConfig, services: Any) -> None:
        self.services = services
        super().__init__(address, config)

    def make_association(self, conn: Connection) -> ArchiveAssociation:
        return ArchiveAssociation(conn, self.config, self.table, self.services)
