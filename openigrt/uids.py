"""UID generation under a configurable root (SPEC §1: default ``2.25.<uuid as integer>``).

Also the project's own Implementation Class UID and Version Name: never a vendor's.
"""

from __future__ import annotations

import re
import uuid

#: Our Implementation Class UID (2.25 form, generated once for OpenIGRT).
IMPLEMENTATION_CLASS_UID = "2.25.57760840550623259324267916666234877844"
#: Our Implementation Version Name (SH, at most 16 characters).
IMPLEMENTATION_VERSION_NAME = "OPENIGRT_010"
#: Default UID root: UUID-derived UIDs (PS3.5 B.2).
DEFAULT_UID_ROOT = "2.25"

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_UID_SHAPE_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_valid_uid(value: str) -> bool:
    """Return True when *value* is a syntactically valid DICOM UID (PS3.5 9.1).

    >>> is_valid_uid("1.2.840.10008.1.2")
    True
    >>> is_valid_uid("1.2.03")
    False
    """
    return 0 < len(value) <= 64 and _UID_RE.fullmatch(value) is not None


def is_uid_like(value: str) -> bool:
    """Return True when *value* has the shape of a UID: digits and dots, 1-64 characters, no empty component.

    Lenient where PS3.5 9.1 is strict in a way that cannot harm (a leading zero in a component,
    which some vendors write), strict where a value could name another file or directory (``..``,
    ``.``, empty components, slashes, any other character).

    >>> is_uid_like("1.2.03"), is_uid_like(".."), is_uid_like("1..2"), is_uid_like("1.2."), is_uid_like("")
    (True, False, False, False, False)
    """
    return 0 < len(value) <= 64 and _UID_SHAPE_RE.fullmatch(value) is not None


def new_uid(root: str = DEFAULT_UID_ROOT) -> str:
    """Return a new unique UID under *root*.

    With the default root ``2.25`` the UID is ``2.25.<uuid4 as integer>``. With any
    other root, a decimal suffix derived from a UUID is appended and truncated to keep
    the UID within 64 characters.

    >>> uid = new_uid("1.2.3")
    >>> uid.startswith("1.2.3.") and is_valid_uid(uid)
    True
    """
    root = root.rstrip(".")
    if not is_valid_uid(root):
        raise ValueError(f"invalid UID root {root!r}")
    suffix = str(uuid.uuid4().int)
    room = 64 - len(root) - 1
    if room < 8:
        raise ValueError(f"UID root {root!r} is too long to leave room for a unique suffix")
    suffix = suffix[:room].lstrip("0") or "1"
    return f"{root}.{suffix}"
