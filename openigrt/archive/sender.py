"""The archive's requestor for C-MOVE sub-operations: the node's lean C-STORE requestor.

The synchronous requestor that used to live here (one blocking socket, no polling reactor; open +
one C-STORE + release in ~1-2 ms where pynetdicom needs ~10-15 ms, ARCHIVE-1) moved to
:mod:`openigrt.net.requestor`, where the Storage SCU (``openigrt store``, NET-1) uses it too.
The names the archive uses are re-exported here; a DIMSE timeout aborts the sub-association at
once (the default of :meth:`~openigrt.net.requestor.StoreAssociation.c_store`).
"""

from __future__ import annotations

from openigrt.net.command import parse_command
from openigrt.net.requestor import (
    StoreAssociation,
    StoreResponse,
    element,
    encode_c_store_rq,
    encode_p_data,
    text_value,
)

__all__ = ["StoreAssociation", "StoreResponse", "element", "encode_c_store_rq", "encode_p_data", "parse_command",
           "text_value"]
