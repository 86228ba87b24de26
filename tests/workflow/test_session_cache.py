"""Issue 11: the faster fraction gives the same answers as the plain one.

* a fraction decoding each CT series once (:class:`~openigrt.workflow.session_cache.CtCache`)
  gives the same registration matrices, bit for bit, as the same session stopped after its
  acquisitions and resumed by a new fraction that decodes every CT itself (no cache);
* nothing modifies the cached voxels in place (they still equal the files at the end);
* a changed file is read again, never served from the cache;
* ``openigrt demo``'s timing table has a row per step and per match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openigrt.config import load_settings
from openigrt.workflow.demo import run_demo
from openigrt.workflow.fraction import MATCH_TYPES
from openigrt.workflow.matching import read_ct
from openigrt.workflow.session_cache import CtCache


def _matrices(result: Any) -> dict[str, list[list[float]]]:
    return {r.match_id: r.result["matrix"] for r in result.state.matches}


@pytest.mark.slow
def test_cached_fraction_equals_a_resumed_uncached_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    caches: list[CtCache] = []
    served: dict[tuple[str, ...], Any] = {}
    real_read = CtCache.read

    def recording(self: CtCache, paths: Any) -> Any:
        if self not in caches:
            caches.append(self)
        series, datasets = real_read(self, paths)
        served[tuple(str(p) for p in paths)] = series
        return series, datasets

    monkeypatch.setattr(CtCache, "read", recording)
    cached = run_demo(settings=settings, workdir=tmp_path / "cached", match_types=MATCH_TYPES, seed=3, small=True)
    # identity, not accuracy, is tested here (the accuracy checks belong to the matching tests)
    assert cached.state.closed and len(cached.state.matches) == len(MATCH_TYPES)
    assert len(caches) == 1 and caches[0].misses == 2 and caches[0].hits >= 4  # planning CT and CBCT, once each
    for paths, series in served.items():  # nobody wrote into the shared voxels
        assert np.array_equal(series.volume.array, read_ct([Path(p) for p in paths])[0].volume.array)
    steps = [t["step"] for t in cached.timings]
    assert {"load", "validate", "acquire cbct", "acquire kv", "close (store)"} <= set(steps)
    assert {f"match {m}" for m in MATCH_TYPES} | {f"review picture {m}" for m in MATCH_TYPES} <= set(steps)
    assert all(t["wall_s"] >= 0 and t["cpu_s"] >= 0 and t["peak_rss_mb"] > 0 for t in cached.timings)

    monkeypatch.setattr(CtCache, "read", lambda self, paths: read_ct([Path(p) for p in paths]))  # no cache
    stopped = run_demo(settings=settings, workdir=tmp_path / "resumed", match_types=MATCH_TYPES, seed=3, small=True,
                       stop_after="acquire")
    assert not stopped.state.matches and len(stopped.state.acquisitions) == 2
    resumed = run_demo(settings=settings, workdir=tmp_path / "resumed", match_types=MATCH_TYPES, seed=3, small=True)
    assert resumed.state.closed
    assert _matrices(resumed) == _matrices(cached)  # floats compared exactly
    assert set(_matrices(cached)) == set(MATCH_TYPES)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    from openigrt.workflow.phantom import write_phantom_patient

    ph = write_phantom_patient(tmp_path / "p", settings=load_settings(), small=True)
    paths = sorted(ph.ct_dir.glob("*.dcm"))
    assert paths
    cache = CtCache()
    first, _ = cache.read(paths)
    again, _ = cache.read(paths)
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    st = paths[0].stat()
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third, _ = cache.read(paths)
    assert third is not first and cache.misses == 2
    assert np.array_equal(third.volume.array, first.volume.array)
