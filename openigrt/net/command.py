"""DIMSE command sets by hand: parse a request, encode a C-STORE / C-ECHO response (PS3.7 E.1, 9.3).

The command set is always Implicit VR Little Endian, group 0000. Parsing keeps the raw values
(``{tag: bytes}``); the acceptor reads the few fields it needs with :func:`command_us` and
:func:`command_text`.
"""

from __future__ import annotations

import struct
from typing import Final

from openigrt.net.pdu import ProtocolError

# Command Field values (PS3.7 E.1)
C_STORE_RQ: Final = 0x0001
C_STORE_RSP: Final = 0x8001
C_ECHO_RQ: Final = 0x0030
C_ECHO_RSP: Final = 0x8030
#: Command Data Set Type (0000,0800) meaning "no data set follows".
NO_DATASET: Final = 0x0101
#: Command Data Set Type (0000,0800) meaning "a data set follows" (any value but 0x0101; we send 0x0000).
DATASET_PRESENT: Final = 0x0000
#: Largest command set we reassemble (a real one is ~100-200 bytes), bytes.
MAX_COMMAND_BYTES: Final = 65536

# Command set tags
COMMAND_GROUP_LENGTH: Final = 0x00000000
AFFECTED_SOP_CLASS_UID: Final = 0x00000002
COMMAND_FIELD: Final = 0x00000100
MESSAGE_ID: Final = 0x00000110
MESSAGE_ID_BEING_RESPONDED_TO: Final = 0x00000120
MOVE_DESTINATION: Final = 0x00000600
COMMAND_DATA_SET_TYPE: Final = 0x00000800
STATUS: Final = 0x00000900
ERROR_COMMENT: Final = 0x00000902
AFFECTED_SOP_INSTANCE_UID: Final = 0x00001000


def parse_command(data: bytes) -> dict[int, bytes]:
    """Parse an Implicit VR LE group 0000 command set into ``{tag: raw value}``.

    >>> parse_command(bytes.fromhex("00000001" "02000000" "3000"))
    {256: b'0\\x00'}
    """
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHL", data, pos)
        pos += 8
        if pos + length > end:
            raise ProtocolError("truncated command set")
        out[(group << 16) | elem] = bytes(data[pos:pos + length])
        pos += length
    if pos != end:
        raise ProtocolError("trailing bytes in command set")
    return out


def command_text(cmd: dict[int, bytes], tag: int) -> str:
    """A text value of a command set, padding removed (undecodable bytes become U+FFFD)."""
    return cmd.get(tag, b"").decode("ascii", "replace").rstrip("\x00 ").strip()


def command_us(cmd: dict[int, bytes], tag: int, default: int = -1) -> int:
    """A US value of a command set (*default* when absent or too short)."""
    raw = cmd.get(tag)
    return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def _pad(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def encode_response(*, command_field: int, message_id: int, status: int, sop_class_uid: str,
                    sop_instance_uid: str = "", error_comment: str = "") -> bytes:
    """Encode a DIMSE-C response command set (Implicit VR LE, elements ascending, group length first)."""
    body = _element(AFFECTED_SOP_CLASS_UID, _pad(sop_class_uid, b"\x00"))
    body += _element(COMMAND_FIELD, struct.pack("<H", command_field))
    body += _element(MESSAGE_ID_BEING_RESPONDED_TO, struct.pack("<H", message_id & 0xFFFF))
    body += _element(COMMAND_DATA_SET_TYPE, struct.pack("<H", NO_DATASET))
    body += _element(STATUS, struct.pack("<H", status))
    if error_comment:
        body += _element(ERROR_COMMENT, _pad(error_comment[:64], b" "))
    if sop_instance_uid:
        body += _element(AFFECTED_SOP_INSTANCE_UID, _pad(sop_instance_uid, b"\x00"))
    return _element(COMMAND_GROUP_LENGTH, struct.pack("<L", len(body))) + body
