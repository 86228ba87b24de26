"""Per-step timings of a fraction (issue 11: the ``--json`` timing table of ``openigrt demo``).

A :class:`StepClock` records, for each step it times, the wall time, the process's CPU time
(user + system of every thread: numba's worker threads and the embedded archive's included) and
the process's peak resident memory so far (``ru_maxrss``: a high-water mark since the process
started, so it never decreases from one row to the next; a step that raises it is the one that
needed the memory).

>>> clock = StepClock()
>>> with clock.step("sum"):
...     _ = sum(range(1000))
>>> [t.step for t in clock.timings], clock.timings[0].wall_s >= 0.0
(['sum'], True)
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def peak_rss_mb() -> float:
    """The process's peak resident memory since it started (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


@dataclass(frozen=True)
class StepTiming:
    """One timed step: wall and CPU seconds, and the process's peak RSS (MB) at its end."""

    step: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4),
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


@dataclass
class StepClock:
    """Collects :class:`StepTiming` rows in the order the steps ran (nested steps are allowed: the
    inner step's row comes first, the outer one includes it)."""

    timings: list[StepTiming] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings.append(StepTiming(name, time.perf_counter() - w0, time.process_time() - c0, peak_rss_mb()))

    def as_list(self) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self.timings]
