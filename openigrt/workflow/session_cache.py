"""What a fraction decodes once and reuses (issue 11: nothing recomputed that the session already has).

A fraction reads the planning CT for the virtual imager (kV and CBCT), for the marker, 2D/2D and
3D/3D matches, and the verification CBCT for the 3D/3D match and its review. :class:`CtCache`
decodes each series once per process: it is keyed by the files' paths **and** their size and
modification time, so a file changed on disk is read again, never served stale. Callers must not
modify the cached voxels in place (none does: tests/workflow/test_session_cache.py checks that a
cached and an uncached session give the same matrices bit for bit and that the cached CT still
equals the files at the end). The arrays are not flagged read-only on purpose: numba compiles
(and caches) a separate machine-code specialisation for read-only arrays, which would put a
compilation back into the first fraction of every installation.

>>> cache = CtCache()
>>> cache.hits, cache.misses
(0, 0)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from openigrt.iod.ct_series import CTSeries

_Key = tuple[tuple[str, int, int], ...]


def _key(paths: Sequence[Path]) -> _Key:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass
class CtCache:
    """CT series (and their datasets) decoded once per fraction, keyed by files, sizes and mtimes."""

    _series: dict[_Key, tuple[CTSeries, list[Dataset]]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def read(self, paths: Sequence[Path]) -> tuple[CTSeries, list[Dataset]]:
        """:func:`openigrt.workflow.matching.read_ct` of *paths*, decoded at most once."""
        from openigrt.workflow.matching import read_ct

        key = _key([Path(p) for p in paths])
        got = self._series.get(key)
        if got is not None:
            self.hits += 1
            return got[0], list(got[1])
        self.misses += 1
        series, datasets = read_ct([Path(p) for p in paths])
        self._series[key] = (series, datasets)
        return series, list(datasets)
