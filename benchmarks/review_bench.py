"""Review workstation: time to re-render an adjusted match (issue 13, target ≤ 0.3 s each).

Builds the full-size phantom demo session (512 × 512 × 100 CT, 1024 × 768 kV pair, CBCT) paused
at the decide step, then times, for a sequence of adjustments (each one a new transform):

* the 2D/2D view pair: two DRRs of the moved planning CT rendered on the 512 × 384 display grid
  (``ReviewSession.render``), with the full-resolution CT (what the page uses) and, for
  comparison, the 2×-downsampled CT the 2D/3D matcher works on;
* the 3D/3D three planes (axial, coronal, sagittal of CBCT and resampled CT, with structure
  contours);
* each through HTTP as the page does it (POST to the live server on loopback, binary answer).

Usage: ``python benchmarks/review_bench.py [--runs 10] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from openigrt.config import load_settings
from openigrt.web.server import ReviewServer
from openigrt.workflow.demo import run_demo
from openigrt.workflow.matching import half_resolution_renderer
from openigrt.workflow.review_adjust import Adjustment
from openigrt.workflow.review_session import ReviewSession

TARGET_S = 0.3


class _Paused(Exception):
    pass


def _session(workdir: Path) -> Path:
    session = workdir / "session"
    if (session / "session.json").is_file():
        return session

    def stop(outcome: Any, record: Any) -> Any:
        raise _Paused

    try:
        run_demo(settings=load_settings(), workdir=workdir, match_types=("2d2d", "3d3d"), seed=5, decide=stop)
    except _Paused:
        pass
    return session


def _adjustments(n: int) -> list[Adjustment]:
    return [Adjustment(lat_mm=0.5 * ((k % 5) - 2), vrt_mm=1.0 * (k % 3), lng_mm=-0.5 * (k % 4)) for k in range(1, n + 1)]


def _time(fn: Any, n: int) -> list[float]:
    out = []
    for adj in _adjustments(n):
        t0 = time.perf_counter()
        fn(adj)
        out.append(time.perf_counter() - t0)
    return out


def _http(server: ReviewServer, match: str, adj: Adjustment) -> None:
    parts = urllib.parse.urlsplit(server.url)
    req = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/api/matches/{match}/render?{parts.query}",
                                 data=json.dumps({"adjustment": adj.as_dict(), "slices": {}}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as rsp:
        rsp.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="openigrt-review-bench-"))
    t0 = time.perf_counter()
    session = _session(workdir)
    print(f"session {session} ready in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f}")
    review = ReviewSession(session, load_settings())
    for m in ("2d2d", "3d3d"):  # first use: reads the images, prepares the CT (not timed per adjustment)
        t0 = time.perf_counter()
        review.render(m, Adjustment(), {})
        print(f"{m}: first render (reads the files, prepares the CT) {time.perf_counter() - t0:.2f} s")
    rows = [("2D/2D view pair, DRRs of the moved full-resolution CT (page)",
             _time(lambda a: review.render("2d2d", a, {}), args.runs)),
            ("3D/3D three planes + contours", _time(lambda a: review.render("3d3d", a, {}), args.runs))]
    with ReviewServer(review) as server:
        rows += [("2D/2D view pair over HTTP (render + binary answer)", _time(lambda a: _http(server, "2d2d", a), args.runs)),
                 ("3D/3D three planes over HTTP", _time(lambda a: _http(server, "3d3d", a), args.runs))]
    views = review.views(review.match("2d2d"))
    views.renderer = half_resolution_renderer(views.renderer.volume)
    rows.append(("2D/2D view pair, 2x-downsampled CT (comparison)",
                 _time(lambda a: review.render("2d2d", a, {}), args.runs)))
    print(f"\n| what (median of {args.runs} adjustments) | median s | min s | max s | target ≤ {TARGET_S} s |")
    print("|---|---|---|---|---|")
    for name, times in rows:
        med = statistics.median(times)
        print(f"| {name} | {med:.3f} | {min(times):.3f} | {max(times):.3f} | {'met' if med <= TARGET_S else 'NOT met'} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
