"""DIMSE status tables per service and the category/behaviour of any code (NET-1, NET-5, NET-6, NET-8).

Tables are ``{code: (category, description)}`` as in pynetdicom's ``status.py``, plus ranges
(``A7xx`` …) for codes the standard defines by range. :func:`classify` gives the category and
description of any code for a service (exact code first, then the service's ranges, then the
general rules of PS3.7 C.1); :func:`store_outcome`, :func:`find_outcome` and
:func:`move_outcome` give our SCU's behaviour for a code per the SPEC tables.

>>> classify(0xA712, Service.STORE).description
'Refused: Out of resources'
>>> classify(0xA801, Service.MOVE)
StatusInfo(code=43009, category=<Category.FAILURE: 'Failure'>, description='Refused: Move destination unknown')
>>> store_outcome(0xB007), store_outcome(0xC123), store_outcome(0xB123), store_outcome(0x0122)
(<StoreOutcome.WARNING: 'warning'>, <StoreOutcome.FAILED: 'failed'>, <StoreOutcome.WARNING: 'warning'>, <StoreOutcome.FAILED: 'failed'>)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class Category(str, Enum):
    """Status categories of PS3.7 C.1 (pynetdicom's vocabulary; plan findings reuse it)."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILURE = "Failure"
    CANCEL = "Cancel"
    PENDING = "Pending"


class Service(str, Enum):
    """DIMSE-C services the node uses."""

    ECHO = "C-ECHO"
    STORE = "C-STORE"
    FIND = "C-FIND"
    MOVE = "C-MOVE"


S, W, F, C, P = Category.SUCCESS, Category.WARNING, Category.FAILURE, Category.CANCEL, Category.PENDING

# PS3.7 Annex C: statuses common to every service.
GENERAL_STATUS: Final[dict[int, tuple[Category, str]]] = {
    0x0000: (S, "Success"),
    0x0001: (W, "Requested optional attributes are not supported"),
    0x0105: (F, "No such attribute"),
    0x0106: (F, "Invalid attribute value"),
    0x0107: (W, "Attribute list error"),
    0x0110: (F, "Processing failure"),
    0x0111: (F, "Duplicate SOP Instance"),
    0x0112: (F, "No such SOP Instance"),
    0x0113: (F, "No such event type"),
    0x0114: (F, "No such argument"),
    0x0115: (F, "Invalid argument value"),
    0x0116: (W, "Attribute value out of range"),
    0x0117: (F, "Invalid object instance"),
    0x0118: (F, "No such SOP Class"),
    0x0119: (F, "Class-instance conflict"),
    0x0120: (F, "Missing attribute"),
    0x0121: (F, "Missing attribute value"),
    0x0122: (F, "Refused: SOP Class not supported"),
    0x0123: (F, "No such action"),
    0x0124: (F, "Refused: Not authorised"),
    0x0210: (F, "Duplicate invocation"),
    0x0211: (F, "Unrecognised operation"),
    0x0212: (F, "Mistyped argument"),
    0x0213: (F, "Resources limitation"),
    0xFE00: (C, "Cancel"),
}

# PS3.4 B.2.3: Storage Service Class.
STORE_STATUS: Final[dict[int, tuple[Category, str]]] = {
    0xB000: (W, "Coercion of data elements"),
    0xB006: (W, "Elements discarded"),
    0xB007: (W, "Data set does not match SOP Class"),
}
STORE_RANGES: Final[tuple[tuple[int, int, Category, str], ...]] = (
    (0xA700, 0xA7FF, F, "Refused: Out of resources"),
    (0xA900, 0xA9FF, F, "Error: Data set does not match SOP Class"),
    (0xC000, 0xCFFF, F, "Error: Cannot understand"),
)

# PS3.4 C.4.1.1.4: Query/Retrieve FIND.
FIND_STATUS: Final[dict[int, tuple[Category, str]]] = {
    0xA700: (F, "Refused: Out of resources"),
    0xA900: (F, "Identifier does not match SOP Class"),
    0xFF00: (P, "Matches are continuing, current match supplied"),
    0xFF01: (P, "Matches are continuing, optional keys not supported"),
}
FIND_RANGES: Final = ((0xC000, 0xCFFF, F, "Unable to process"),)

# PS3.4 C.4.2.1.5: Query/Retrieve MOVE.
MOVE_STATUS: Final[dict[int, tuple[Category, str]]] = {
    0xA701: (F, "Refused: Out of resources, unable to calculate number of matches"),
    0xA702: (F, "Refused: Out of resources, unable to perform sub-operations"),
    0xA801: (F, "Refused: Move destination unknown"),
    0xA900: (F, "Identifier does not match SOP Class"),
    0xB000: (W, "Sub-operations complete, one or more failures"),
    0xFF00: (P, "Sub-operations are continuing"),
}
MOVE_RANGES: Final = ((0xC000, 0xCFFF, F, "Unable to process"),)

_TABLES: Final = {
    Service.ECHO: ({}, ()),
    Service.STORE: (STORE_STATUS, STORE_RANGES),
    Service.FIND: (FIND_STATUS, FIND_RANGES),
    Service.MOVE: (MOVE_STATUS, MOVE_RANGES),
}

# --------------------------------------------------------------------------- our SCP answers (NET-8)
#: Stored durably and indexed.
SCP_SUCCESS: Final = 0x0000
#: Cache unwritable, disk full, index error.
SCP_OUT_OF_RESOURCES: Final = 0xA700
#: SOP Instance UID missing/invalid, or different from the command's Affected SOP Instance UID.
SCP_INVALID_OBJECT_INSTANCE: Final = 0x0117
#: Data set SOP Class UID differs from the presentation context / command.
SCP_DATASET_MISMATCH: Final = 0xA900
#: Empty, truncated or otherwise undecodable data set.
SCP_CANNOT_UNDERSTAND: Final = 0xC000
#: PS3.7 C.5.x: a request on a context whose SOP class does not serve it (e.g. a C-STORE on the
#: Verification context, a C-FIND on a storage context).
SCP_SOP_CLASS_NOT_SUPPORTED: Final = 0x0122
#: PS3.7 C.5.x: a DIMSE command the SCP does not implement.
SCP_UNRECOGNISED_OPERATION: Final = 0x0211

# --------------------------------------------------------------------------- Q/R SCP answers (ARCHIVE-1)
#: PS3.4 C.4.1.1.4: C-FIND responses of the embedded archive.
FIND_SUCCESS: Final = 0x0000
FIND_PENDING: Final = 0xFF00
FIND_PENDING_WARNING: Final = 0xFF01
FIND_OUT_OF_RESOURCES: Final = 0xA700
FIND_IDENTIFIER_MISMATCH: Final = 0xA900
FIND_UNABLE_TO_PROCESS: Final = 0xC000
#: PS3.4 C.4.2.1.5: C-MOVE responses of the embedded archive.
MOVE_SUCCESS: Final = 0x0000
MOVE_PENDING: Final = 0xFF00
MOVE_WARNING_FAILURES: Final = 0xB000
MOVE_CANNOT_COUNT: Final = 0xA701
MOVE_CANNOT_PERFORM: Final = 0xA702
MOVE_DESTINATION_UNKNOWN: Final = 0xA801
MOVE_IDENTIFIER_MISMATCH: Final = 0xA900
MOVE_UNABLE_TO_PROCESS: Final = 0xC000
#: PS3.7 C.4: the operation was cancelled by C-CANCEL (C-FIND and C-MOVE).
CANCEL: Final = 0xFE00


@dataclass(frozen=True)
class StatusInfo:
    """A status code with its category and description for one service."""

    code: int
    category: Category
    description: str

    def __str__(self) -> str:
        return f"0x{self.code:04X} ({self.category.value}: {self.description})"


def _general_category(code: int) -> Category:
    """PS3.7 C.1 rules for a code no table lists."""
    if code == 0x0000:
        return S
    if code in (0xFF00, 0xFF01):
        return P
    if code == 0xFE00:
        return C
    if 0xB000 <= code <= 0xBFFF or code == 0x0001:
        return W
    return F


def classify(code: int, service: Service) -> StatusInfo:
    """Category and description of *code* for *service*.

    Order: the service's exact codes, then its ranges, then the general table of PS3.7 C,
    then the PS3.7 C.1 rules (``Bxxx`` warning, ``FF0x`` pending, anything else failure).

    >>> str(classify(0xC311, Service.FIND))
    '0xC311 (Failure: Unable to process)'
    >>> str(classify(0xB123, Service.STORE))
    '0xB123 (Warning: Unknown status)'
    """
    exact, ranges = _TABLES[service]
    if code in exact:
        cat, desc = exact[code]
        return StatusInfo(code, cat, desc)
    for lo, hi, cat, desc in ranges:
        if lo <= code <= hi:
            return StatusInfo(code, cat, desc)
    if code in GENERAL_STATUS:
        cat, desc = GENERAL_STATUS[code]
        return StatusInfo(code, cat, desc)
    return StatusInfo(code, _general_category(code), "Unknown status")


# --------------------------------------------------------------------------- SCU behaviour
class StoreOutcome(str, Enum):
    """Per-instance result of a send task (NET-1, NET-2)."""

    SENT = "sent"
    WARNING = "warning"
    FAILED = "failed"
    NOT_TRIED = "not tried"


def store_outcome(code: int) -> StoreOutcome:
    """Our Storage SCU's behaviour for a C-STORE response status (NET-1 table).

    0000 sent (silent); B000/B006/B007 and any other Bxxx: stored with a warning (the Status
    Comment is logged); A7xx, A9xx, Cxxx and anything else: failed.
    """
    cat = classify(code, Service.STORE).category
    if cat is S:
        return StoreOutcome.SENT
    if cat is W:
        return StoreOutcome.WARNING
    return StoreOutcome.FAILED


class QueryOutcome(str, Enum):
    """What our Q/R SCU does with a response (NET-5, NET-6)."""

    PENDING = "pending"
    COMPLETE = "complete"
    WARNING = "warning"
    FAILED = "failed"


def find_outcome(code: int) -> QueryOutcome:
    """NET-5: FF00/FF01 pending (collect the identifier); 0000 complete; anything else failure.

    >>> find_outcome(0xFF01), find_outcome(0x0000), find_outcome(0xFE00), find_outcome(0xB000)
    (<QueryOutcome.PENDING: 'pending'>, <QueryOutcome.COMPLETE: 'complete'>, <QueryOutcome.FAILED: 'failed'>, <QueryOutcome.FAILED: 'failed'>)
    """
    if code in (0xFF00, 0xFF01):
        return QueryOutcome.PENDING
    if code == 0x0000:
        return QueryOutcome.COMPLETE
    return QueryOutcome.FAILED


def move_outcome(code: int) -> QueryOutcome:
    """NET-6: FF00 pending (progress); 0000 complete; B000 warning (some failed); anything else failure.

    >>> move_outcome(0xFF00), move_outcome(0xB000), move_outcome(0xA801), move_outcome(0xFE00)
    (<QueryOutcome.PENDING: 'pending'>, <QueryOutcome.WARNING: 'warning'>, <QueryOutcome.FAILED: 'failed'>, <QueryOutcome.FAILED: 'failed'>)
    """
    if code == 0xFF00:
        return QueryOutcome.PENDING
    if code == 0x0000:
        return QueryOutcome.COMPLETE
    if code == 0xB000:
        return QueryOutcome.WARNING
    return QueryOutcome.FAILED
