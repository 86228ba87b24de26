"""PS3.8 PDUs by hand: parse an A-ASSOCIATE-RQ, negotiate its contexts, encode AC / RJ / ABORT / P-DATA.

Hand-written: pynetdicom's PDU item classes validate every UID with pydicom and cost ~20 ms for
the ~120 contexts DCMTK's dcmqrscp proposes on each C-MOVE sub-association. Everything here
treats the peer's bytes as hostile: a length that runs past its parent is a
:class:`ProtocolError`; a UID or AE title that is not plain ASCII is kept as text with U+FFFD in
it and never reaches an encoder (:func:`is_plain_uid`, :func:`valid_ae_title`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

# PDU types (PS3.8 9.3.1)
A_ASSOCIATE_RQ: Final = 0x01
A_ASSOCIATE_AC: Final = 0x02
A_ASSOCIATE_RJ: Final = 0x03
P_DATA_TF: Final = 0x04
A_RELEASE_RQ: Final = 0x05
A_RELEASE_RP: Final = 0x06
A_ABORT: Final = 0x07
PDU_TYPES: Final = frozenset(range(0x01, 0x08))
#: Bytes of a PDU header (type, reserved, 4-byte length).
PDU_HEADER_BYTES: Final = 6
#: Fixed part of an A-ASSOCIATE-RQ body: version, reserved, called and calling AE, 32 reserved bytes.
ASSOCIATE_RQ_FIXED_BYTES: Final = 68
#: Presentation context results (PS3.8 9.3.3.2).
CX_ACCEPTANCE, CX_PROVIDER_REJECTION, CX_ABSTRACT_NOT_SUPPORTED, CX_TS_NOT_SUPPORTED = 0, 2, 3, 4
APPLICATION_CONTEXT: Final = "1.2.840.10008.3.1.1.1"
IMPLICIT_VR_LE: Final = "1.2.840.10008.1.2"
_UID_BYTES: Final = frozenset(b"0123456789.")


class ProtocolError(Exception):
    """The peer broke the protocol (we answer A-ABORT)."""


def is_plain_uid(text: str) -> bool:
    """True for a non-empty string of digits and dots (what may be echoed in an A-ASSOCIATE-AC).

    >>> is_plain_uid("1.2.840.10008.1.2"), is_plain_uid("\\ufffd"), is_plain_uid("")
    (True, False, False)
    """
    return 0 < len(text) <= 64 and all(c in "0123456789." for c in text)


def valid_ae_title(raw: bytes) -> bool:
    """True for an AE title field PS3.5 6.2 allows: default repertoire, no control character, no
    backslash, not only spaces. Trailing NUL padding (written by some old implementations) is
    tolerated, as our parser strips it.

    >>> valid_ae_title(b"STORESCU        "), valid_ae_title(b"OLDPEER\\0\\0"), valid_ae_title(b" " * 16)
    (True, True, False)
    >>> valid_ae_title(b"\\xffX"), valid_ae_title(b"A\\\\B"), valid_ae_title(b"A\\0B")
    (False, False, False)
    """
    raw = bytes(raw).rstrip(b"\0 ")
    return bool(raw.strip(b" ")) and all(0x20 <= b <= 0x7E and b != 0x5C for b in raw)


# --------------------------------------------------------------------------- A-ASSOCIATE-RQ
@dataclass(frozen=True)
class ProposedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class AcceptedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntax: str


@dataclass(frozen=True)
class AssociateRQ:
    """The fields of an A-ASSOCIATE-RQ PDU we use (PS3.8 9.3.2)."""

    protocol_version: int
    called_ae_title: str
    calling_ae_title: str
    raw_titles: bytes  # called AE, calling AE and the 32 reserved bytes, echoed in the A-ASSOCIATE-AC
    application_context: str
    contexts: tuple[ProposedContext, ...]
    max_length: int
    implementation_class_uid: str

    @property
    def raw_called(self) -> bytes:
        return self.raw_titles[0:16]

    @property
    def raw_calling(self) -> bytes:
        return self.raw_titles[16:32]


def uid_text(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("ascii", "replace").rstrip("\x00 ").strip()


def sub_items(view: memoryview, pos: int, end: int, what: str) -> list[tuple[int, memoryview]]:
    """Split ``type(1) reserved(1) length(2) value`` items (PS3.8 9.3.2.2-3)."""
    items = []
    while pos < end:
        if pos + 4 > end:
            raise ProtocolError(f"truncated {what} item")
        item_type, _, length = struct.unpack_from(">BBH", view, pos)
        if pos + 4 + length > end:
            raise ProtocolError(f"{what} item 0x{item_type:02X} runs past its parent")
        items.append((item_type, view[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return items


def _context(value: memoryview) -> ProposedContext:
    if len(value) < 4:
        raise ProtocolError("truncated presentation context item")
    abstract, syntaxes = "", []
    for sub_type, sub in sub_items(value, 4, len(value), "presentation context"):
        if sub_type == 0x30:
            abstract = uid_text(sub)
        elif sub_type == 0x40:
            syntaxes.append(uid_text(sub))
    return ProposedContext(value[0], abstract, tuple(syntaxes))


def parse_associate_rq(body: bytes | bytearray) -> AssociateRQ:
    """Parse an A-ASSOCIATE-RQ PDU body (after the 6-byte PDU header)."""
    view = memoryview(body)
    if len(view) < ASSOCIATE_RQ_FIXED_BYTES:
        raise ProtocolError("A-ASSOCIATE-RQ too short")
    version = struct.unpack_from(">H", view, 0)[0]
    called, calling = uid_text(view[4:20]), uid_text(view[20:36])
    app_context, contexts, max_length, impl = "", [], 0, ""
    for item_type, value in sub_items(view, ASSOCIATE_RQ_FIXED_BYTES, len(view), "A-ASSOCIATE-RQ"):
        if item_type == 0x10:
            app_context = uid_text(value)
        elif item_type == 0x20:
            contexts.append(_context(value))
        elif item_type == 0x50:
            for sub_type, sub in sub_items(value, 0, len(value), "user information"):
                if sub_type == 0x51 and len(sub) == 4:
                    max_length = struct.unpack_from(">L", sub, 0)[0]
                elif sub_type == 0x52:
                    impl = uid_text(sub)
    return AssociateRQ(version, called, calling, bytes(view[4:68]), app_context, tuple(contexts), max_length, impl)


def negotiate_contexts(requested: tuple[ProposedContext, ...], supported: dict[str, tuple[str, ...]]
                       ) -> tuple[list[tuple[int, int, str]], dict[int, AcceptedContext]]:
    """``(context id, result, transfer syntax)`` for every proposed context, and the accepted ones.

    Every context of a supported class with a supported syntax is accepted (duplicates too);
    the **first syntax the proposer listed** that we support is chosen (NET-7). A context whose
    ID is even or used before is refused (provider rejection; PS3.8 9.3.2.2 wants unique odd IDs);
    an undecodable UID is simply not supported. The syntax echoed for a refused context is the
    first one proposed when it is a plain UID, else Implicit VR LE (the field must hold a UID).

    >>> negotiate_contexts((ProposedContext(1, "1.2", ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")),
    ...                     ProposedContext(3, "1.2", ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")),
    ...                     ProposedContext(5, "9.9", ("1.2.840.10008.1.2",)),
    ...                     ProposedContext(7, "1.2", ("\\ufffd",))),
    ...                    {"1.2": ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")})[0]
    [(1, 0, '1.2.840.10008.1.2.1'), (3, 0, '1.2.840.10008.1.2'), (5, 3, '1.2.840.10008.1.2'), (7, 4, '1.2.840.10008.1.2')]
    """
    results, accepted, seen = [], {}, set()
    for rq in requested:
        ours = supported.get(rq.abstract_syntax)
        first = next((ts for ts in rq.transfer_syntaxes if ours and ts in ours), None)
        proposed = rq.transfer_syntaxes[0] if rq.transfer_syntaxes else ""
        fallback = proposed if is_plain_uid(proposed) else IMPLICIT_VR_LE
        if rq.context_id % 2 == 0 or rq.context_id in seen:
            results.append((rq.context_id, CX_PROVIDER_REJECTION, fallback))
        elif ours is None:
            results.append((rq.context_id, CX_ABSTRACT_NOT_SUPPORTED, fallback))
        elif first is None:
            results.append((rq.context_id, CX_TS_NOT_SUPPORTED, fallback))
        else:
            results.append((rq.context_id, CX_ACCEPTANCE, first))
            accepted[rq.context_id] = AcceptedContext(rq.context_id, rq.abstract_syntax, first)
        seen.add(rq.context_id)
    return results, accepted


# --------------------------------------------------------------------------- our PDUs
def pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def encode_associate_ac(rq: AssociateRQ, results: list[tuple[int, int, str]], *, max_length: int,
                        implementation_class_uid: str, implementation_version_name: str) -> bytes:
    """Encode the A-ASSOCIATE-AC PDU (PS3.8 9.3.3): AE title and reserved fields echoed, one result per context.

    The transfer syntaxes come from :func:`negotiate_contexts`, so they are plain ASCII UIDs.
    """
    items = [_item(0x10, APPLICATION_CONTEXT.encode("ascii"))]
    for cx_id, result, ts in results:
        items.append(_item(0x21, bytes([cx_id, 0, result, 0]) + _item(0x40, ts.encode("ascii"))))
    user = (_item(0x51, struct.pack(">L", max_length)) + _item(0x52, implementation_class_uid.encode("ascii"))
            + _item(0x55, implementation_version_name.encode("ascii")))
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 0x0001, 0) + rq.raw_titles + b"".join(items)  # PS3.8 9.3.3: fields echoed
    return pdu(A_ASSOCIATE_AC, body)


def p_data_command(context_id: int, command: bytes) -> bytes:
    """One P-DATA-TF PDU carrying a whole command set (control header: command, last fragment)."""
    return pdu(P_DATA_TF, struct.pack(">LBB", len(command) + 2, context_id, 0x03) + command)


def abort_pdu(source: int = 2, reason: int = 2) -> bytes:
    return pdu(A_ABORT, bytes([0, 0, source, reason]))


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return pdu(A_ASSOCIATE_RJ, bytes([0, result, source, reason]))


RELEASE_RP: Final = pdu(A_RELEASE_RP, bytes(4))
