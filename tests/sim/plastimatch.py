"""Run ``plastimatch drr`` (1.9.4) on a :class:`Volume` with a :class:`ProjectionGeometry` (test/benchmark helper).

Geometry mapping (plastimatch ``src/plastimatch/reconstruct/drr.cxx`` and ``proj_matrix.cxx``):
the source sits at ``isocenter + SAD * nrm`` (``--nrm`` = unit vector isocenter → source);
the image is seen from the source with columns along ``vup × nrm`` and rows along ``−vup``
(``--vup`` = receptor +Yr, image up); pixel ``(c, r)`` lies at the axis point
``+ (c − ic_c) Δx (vup × nrm) − (r − ic_r) Δy vup``. Known traps handled here: ``-r`` and
``-z`` and ``-c`` take **columns first** (despite the help text), and ``-y`` (gantry angle) is
read in radians with a zero that is not IEC's, so the view is set with ``--nrm``/``--vup`` only.
Output ``-t raw``: float32, row-major, first row at the top.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openigrt.geometry.projection import ProjectionGeometry
from openigrt.geometry.volume import Volume

PLASTIMATCH = shutil.which("plastimatch")
#: GNU time, to measure plastimatch's peak memory (optional).
TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None


def write_mha(volume: Volume, path: Path) -> Path:
    """Write *volume* (HU) as MetaImage with its origin, spacing and direction (SimpleITK)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(volume.array))
    img.SetOrigin(volume.origin_mm)
    img.SetSpacing(volume.spacing_mm)
    img.SetDirection(tuple(float(v) for v in np.asarray(volume.direction).ravel()))
    sitk.WriteImage(img, str(path))
    return path


def plastimatch_args(geometry: ProjectionGeometry) -> list[str]:
    """Command-line geometry options reproducing *geometry* in ``plastimatch drr``."""
    g = geometry
    iso = np.asarray(g.isocenter_mm)
    nrm = g.source_position_mm() - iso
    nrm /= np.linalg.norm(nrm)
    _, _, row_step = g.detector_frame_patient_mm()
    vup = -row_step / np.linalg.norm(row_step)
    ic = g.project([iso])[0]
    dy, dx = g.pixel_spacing_mm

    def fmt(v: np.ndarray | list[float]) -> str:
        return " ".join(f"{float(x):.9g}" for x in v)

    return ["-o", fmt(iso), "--nrm", fmt(nrm), "--vup", fmt(vup), "--sad", f"{g.sad_mm:g}",
            "--sid", f"{g.sid_mm:g}", "-r", f"{g.columns} {g.rows}",
            "-z", f"{g.columns * dx:.9g} {g.rows * dy:.9g}", "-c", fmt(ic)]


@dataclass(frozen=True, eq=False)
class PlastimatchRun:
    """One ``plastimatch drr`` run: the image, wall time, its own render time and peak memory."""

    image: np.ndarray
    wall_s: float
    total_s: float | None
    max_rss_mb: float | None


def plastimatch_drr(mha: Path, geometry: ProjectionGeometry, workdir: Path, *, algorithm: str = "exact",
                    window: tuple[int, int, int, int] | None = None, timeout: float = 300.0) -> PlastimatchRun:
    """Render with ``plastimatch drr``.

    ``window`` = (first col, last col, first row, last row), inclusive (plastimatch ``-w``, columns
    first like ``-r``). The image is ``(rows, cols)`` float32 of the window or the whole detector;
    ``total_s`` is plastimatch's own "Total time" (rendering without reading the volume);
    ``max_rss_mb`` its peak resident memory when ``/usr/bin/time`` is available.
    """
    if PLASTIMATCH is None:
        raise RuntimeError("plastimatch is not installed (apt-get install plastimatch)")
    prefix = workdir / "pdrr_"
    cmd = [PLASTIMATCH, "drr", "-A", "cpu", "-i", algorithm, "-t", "raw", "-O", str(prefix),
           *plastimatch_args(geometry)]
    if window is not None:
        cmd += ["-w", " ".join(str(int(v)) for v in window)]
    if TIME is not None:
        cmd = [TIME, "-f", "MAXRSS_KB %M", *cmd]
    t0 = time.perf_counter()
    done = subprocess.run(cmd + [str(mha)], check=True, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    rows, cols = (geometry.rows, geometry.columns) if window is None else \
        (window[3] - window[2] + 1, window[1] - window[0] + 1)
    img = np.fromfile(Path(f"{prefix}0000.raw"), dtype="<f4").reshape(rows, cols)
    total = re.search(r"Total time:\s*([0-9.eE+-]+)", done.stdout)
    rss = re.search(r"MAXRSS_KB (\d+)", done.stderr)
    return PlastimatchRun(img, wall, float(total.group(1)) if total else None,
                          int(rss.group(1)) / 1024.0 if rss else None)
