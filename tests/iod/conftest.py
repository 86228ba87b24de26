"""Fixtures of tests/iod."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def tmp_copy(tmp_path: Path):
    """Return a function copying a real file into tmp_path (the originals are read-only)."""

    def _copy(src: Path) -> Path:
        dst = tmp_path / src.name
        dst.write_bytes(src.read_bytes())
        return dst

    return _copy
