"""A peer that accepts the association but none of our presentation contexts is named as such."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from openigrt.errors import AssociationRejected
from openigrt.net.client import DicomClient


def test_storage_only_peer_refusing_query_contexts(storescp_peer: Any, node_settings: Callable[..., Any]) -> None:
    client = DicomClient(node_settings(remote=storescp_peer.remote))
    with pytest.raises(AssociationRejected) as info:
        client.find("1.2.3.4")
    text = str(info.value)
    assert "none of the proposed presentation contexts" in text and "FIND" in text
    assert storescp_peer.remote in text
