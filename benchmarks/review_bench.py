"""Review workstation: time to re-render an adjusted match (issue 13, target ≤ 0.3 s each).

Builds the full-size phantom demo session (512 × 512 × 100 CT, 1024 × 768 kV pair, CBCT) paused
at the decide step, then times, for a sequence of adjustments (each one a new transform):

* the 2D/2D view pair: two DRRs of the moved full-resolution planning CT on the 512 × 384 display
  grid, rays at the CT's resolution (``ReviewSession.render``, what the page shows), and for
  comparison with one ray per display pixel (what the page showed before) and with a 6-DoF
  transform (1° rotations: the DRR's slower non-sweep path);
* the 3D/3D three planes (axial, coronal, sagittal of the CBCT and of the moved CT, with the
  structure contours);
* each through HTTP as the page does it (POST to the live server on loopback, binary answer).

Per render: wall time (``time.perf_counter``) and CPU time of the process (``time.process_time``,
all threads: the work, whatever the load). Usage: ``python benchmarks/review_bench.py [--runs 10]
[--workdir DIR]`` (default run: ~2 min building the demo session, then < 1 min).
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
from openigrt.geometry.iec61217 import rot_x, rot_y, rot_z
from openigrt.geometry.rigid import RigidTransform
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


def _time(fn: Any, n: int) -> tuple[list[float], list[float]]:
    """(wall s, CPU s) per call of *fn* for *n* different adjustments."""
    wall, cpu = [], []
    for adj in _adjustments(n):
        c0, t0 = time.process_time(), time.perf_counter()
        fn(adj)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _rotated(transform: RigidTransform, adj: Adjustment) -> RigidTransform:
    """*transform* with 1° rotations and the adjustment's translation (a 6-DoF nudge)."""
    m = transform.matrix.copy()
    m[:3, :3] = rot_z(1.0) @ rot_x(-1.0) @ rot_y(1.0) @ m[:3, :3]
    m[:3, 3] += (adj.lat_mm, adj.vrt_mm, adj.lng_mm)
    return RigidTransform(m)


def _one_ray_per_pixel(views: Any, transform: RigidTransform) -> None:
    for g in views.display:
        views.renderer.render(g, setup_error=transform)


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
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    session = _session(workdir)
    print(f"session {session} ready in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f}")
    review = ReviewSession(session, load_settings())
    for m in ("2d2d", "3d3d"):  # first use: reads the images, prepares the CT (not timed per adjustment)
        t0 = time.perf_counter()
        review.render(m, Adjustment(), {})
        print(f"{m}: first render (reads the files, prepares the CT) {time.perf_counter() - t0:.2f} s")
    m2 = review.match("2d2d")
    views = review.views(m2)
    rows = [("2D/2D view pair, DRRs of the moved CT, rays at the CT's resolution (page)",
             _time(lambda a: review.render("2d2d", a, {}), args.runs)),
            ("3D/3D three planes + contours (page)", _time(lambda a: review.render("3d3d", a, {}), args.runs))]
    with ReviewServer(review) as server:
        rows += [("2D/2D view pair over HTTP (render + binary answer)", _time(lambda a: _http(server, "2d2d", a), args.runs)),
                 ("3D/3D three planes over HTTP", _time(lambda a: _http(server, "3d3d", a), args.runs))]
    rows += [("2D/2D view pair, 6-DoF transform (1° rotations), rays at the CT's resolution",
              _time(lambda a: views.render(_rotated(m2.automatic, a), m2.automatic), args.runs)),
             ("comparison: 2D/2D DRR pair, one ray per display pixel (before)",
              _time(lambda a: _one_ray_per_pixel(views, m2.transform(a)), args.runs))]
    print(f"\n| what (median of {args.runs} adjustments) | wall s median | wall min | wall max | CPU s median "
          f"| target ≤ {TARGET_S} s (wall) |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in rows:
        med = statistics.median(wall)
        verdict = "—" if name.startswith("comparison") else ("met" if med <= TARGET_S else "NOT met")
        print(f"| {name} | {med:.3f} | {min(wall):.3f} | {max(wall):.3f} | {statistics.median(cpu):.3f} | {verdict} |")
    print(f"\nload average (1 min) at the start {load0:.2f}, at the end {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
