"""Make a directory unwritable or tiny for a test, as root (bind/tmpfs mounts) or not (chmod)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, timeout=10).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


@contextmanager
def read_only_dir(path: Path) -> Iterator[None]:
    """*path* (existing) cannot be written inside for the duration (EROFS as root, EACCES otherwise)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if not (_mount(["--bind", str(path), str(path)]) and _mount(["-o", "remount,ro,bind", str(path)])):
        _umount(path)
        pytest.skip("cannot make a read-only directory here (root without mount permission)")
    try:
        yield
    finally:
        _umount(path)


@contextmanager
def tiny_filesystem(path: Path, size_kb: int = 64) -> Iterator[None]:
    """Mount a *size_kb* tmpfs on *path* (root only) so writes fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount(["-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield
    finally:
        _umount(path)
