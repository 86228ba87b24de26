"""Network test fixtures."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest

from tests.net.tlspki import Pki, make_pki


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


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The test PKI (CA, server, client, expired, wrong-host, unknown-CA certificates), made once with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make peers)")
    return make_pki(tmp_path_factory.mktemp("pki"))
