"""Peak resident memory (RSS) for the benchmark tables (issue 11 item 4), standard library only.

Two ways, for two kinds of measurement:

* :func:`peak_rss` runs a command and returns its **own** peak RSS (``ru_maxrss`` from
  ``wait4`` of that one process and the children it waited for). The command is started by a
  small wrapper interpreter, not by the calling process: a child forked (``vfork``/``fork``)
  from a big process is charged that process's resident pages until it execs, so measuring a
  command straight from a benchmark holding a 500 MB CT would report the benchmark's size.
  Use it to compare with a peer's process (plastimatch, elastix, a DCMTK tool) the same way.
* :class:`PeakRss` measures a block of code inside the current process: it resets the kernel's
  high-water mark (``/proc/self/clear_refs``, Linux) and reads ``VmHWM`` afterwards, so the
  figure is the peak of the whole process **during** the block (what the process already held
  counts: report it with the baseline, :attr:`PeakRss.baseline_mb`). Where the reset is not
  available the peak since process start is reported and ``reset_ok`` is False.

>>> import sys
>>> cp, mb = peak_rss([sys.executable, "-c", "x = b'\\x01' * (64 * 2**20); print('ok')"])
>>> cp.returncode, cp.stdout.strip(), mb > 64
(0, 'ok', True)
>>> with PeakRss() as m:
...     y = b"\x01" * (32 * 2**20)  # written, so resident
>>> m.peak_mb - m.baseline_mb > 30 or not m.reset_ok
True
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_WRAPPER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
p.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(p.returncode)
"""


def peak_rss(argv: Sequence[str], *, timeout: float = 600.0, env: Mapping[str, str] | None = None,
             cwd: str | Path | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run *argv* (text output captured); return ``(completed process, peak RSS in MB)``.

    Raises ``subprocess.TimeoutExpired`` after *timeout* s (the command and the wrapper are killed).
    """
    with tempfile.TemporaryDirectory(prefix="rss_") as tmp:
        out = Path(tmp) / "maxrss_kb"
        proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(out), *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                                env=dict(env) if env is not None else None, cwd=cwd)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        kb = float(out.read_text()) if out.exists() else float("nan")
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr), kb / 1024.0


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


class PeakRss:
    """``with PeakRss() as m: ...`` then ``m.peak_mb`` (process peak during the block), ``m.baseline_mb``."""

    def __init__(self) -> None:
        self.baseline_mb = float("nan")
        self.peak_mb = float("nan")
        self.reset_ok = False

    def __enter__(self) -> PeakRss:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.baseline_mb = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_mb = _status_mb("VmHWM")
