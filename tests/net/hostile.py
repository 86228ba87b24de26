"""Servers and process probes for the hostile-peer, fuzz and soak tests.

* :class:`Target` — one SCP under attack: ``openigrt listen`` or ``openigrt archive serve``
  as a subprocess on loopback (so its descriptors and RSS are its own), with what the checks
  need: port, AE title, the directory everything must stay in, its log.
* :func:`fd_count` / :func:`rss_kb` read ``/proc/PID``.
* :func:`tree` lists every file under a directory (to find files written where they must not be).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers import Peer, free_port, openigrt_argv, peer_env, wait_for_port

CALLING = "FUZZSCU"


def fd_count(pid: int) -> int:
    """Open file descriptors of *pid*."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    """Resident set size of *pid* in kB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def tree(root: Path) -> set[Path]:
    """Every file (and symlink) under *root*."""
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        out.update(Path(dirpath, f) for f in files)
    return out


def settle(probe: Callable[[], int], *, limit: int, timeout: float = 10.0) -> int:
    """Wait (bounded) until ``probe() <= limit``; return the last value."""
    end = time.monotonic() + timeout
    value = probe()
    while value > limit and time.monotonic() < end:
        time.sleep(0.1)
        value = probe()
    return value


@dataclass
class Target:
    """An SCP under test."""

    kind: str  # "listen" or "archive"
    port: int
    ae_title: str
    root: Path  # everything the server writes must stay under here
    stored: Callable[[], int]
    peer: Peer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.peer is not None, "in-process target has no own pid"
        return self.peer.proc.pid

    def log(self) -> str:
        return self.peer.log() if self.peer is not None else ""


def _spawn(workdir: Path, name: str, argv: Sequence[str], nofile: int | None) -> Any:
    import resource
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(argv), cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=peer_env(), start_new_session=True,
                                preexec_fn=limit)
    return proc, log_path


def start_target(kind: str, workdir: Path, *, settings: Sequence[str] = (), nofile: int | None = None,
                 root: Path | None = None) -> Target:
    """``openigrt listen`` (allowing FUZZSCU@127.0.0.1) or ``openigrt archive serve`` as a subprocess.

    *settings* are ``section.key=value`` overrides (``--set``); *nofile* an ``ulimit -n``; *root*
    the cache / archive directory (default ``workdir/cache`` or ``workdir/archive``).
    """
    port = free_port()
    sets = [a for s in settings for a in ("--set", s)]
    if kind == "listen":
        root = root or workdir / "cache"
        argv = openigrt_argv("listen", "--ae-title", "OPENIGRT", "--port", str(port), "--cache", str(root),
                             "--allow", f"{CALLING}@127.0.0.1", "--set", "local.bind_address=127.0.0.1", "-v", *sets)
        ae = "OPENIGRT"
    elif kind == "archive":
        root = root or workdir / "archive"
        argv = openigrt_argv("archive", "serve", "--dir", str(root), "--ae-title", "ARCHIVE", "--port", str(port),
                             *sets)
        ae = "ARCHIVE"
    else:  # pragma: no cover
        raise ValueError(kind)
    proc, log_path = _spawn(workdir, kind, argv, nofile)
    peer = Peer(kind, proc, ae, port, workdir, log_path=log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout=30, proc=proc)
    except BaseException:
        peer.stop()
        raise RuntimeError(f"{kind} did not start:\n{peer.log()[-3000:]}") from None
    return Target(kind, port, ae, root, lambda: stored_files(kind, root), peer=peer)


def stored_files(kind: str, root: Path) -> int:
    """Complete instance files the server holds (``.dcm`` under its instance directory)."""
    sub = root / ("instances" if kind == "listen" else "objects")
    return sum(1 for p in tree(sub) if p.name.endswith(".dcm"))
