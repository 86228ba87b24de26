"""Network test fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """In-process ``openigrt.cli.main`` calls install a RichHandler on the root logger bound to the
    then-current (captured) stderr; put the root logger back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    pyn = logging.getLogger("pynetdicom")
    pyn_level = pyn.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    pyn.setLevel(pyn_level)

