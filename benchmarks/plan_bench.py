"""Readers and plan-check benchmark: reading a CT series and validating a patient, OpenIGRT vs peers.

(a) CT series read: N slices of 512×512 int16 (Implicit VR LE files, seeded content) to a
    patient-space volume, interleaved runs (median):
    * OpenIGRT ``read_ct_series(files)`` — what the workflow does: every file read header-only
      (tolerant read, every element checked, Pixel Data located), then each slice's pixels read
      from the file straight into the float32 HU volume; ordering along the normal, geometry facts;
    * OpenIGRT ``read_paths(dir)`` (files read whole) + ``read_ct_series``;
    * SimpleITK/GDCM ``ImageSeriesReader`` (``GetGDCMSeriesFileNames`` + ``Execute``), the usual
      ITK recipe (directory scan included, as ours); its origin/spacing/voxels are compared with
      ours (must agree).
    ``--only validate-rss``: peak RSS of ``openigrt validate --json`` on the phantom patient with
    a 2- and an N-slice 512×512 CT (benchmarks/_rss.py; the difference is what the slices cost).
(b) ``validate_paths`` of the phantom patient of ``tests/iod/factory.py`` with an N-slice 512×512 CT,
    for each match type (reading included; what ``openigrt validate`` does minus process start).
(c) the real Eclipse RT Structure Set (1.9 MB, 16 ROIs, 92+ contours): ``read_file`` +
    ``RTStructureSet.from_dataset`` vs plain ``pydicom.dcmread`` + touching every Contour Data.

Each figure is the median of ``--runs`` runs; the machine load is printed with the figures.

Usage: ``python benchmarks/plan_bench.py [--runs 3] [--slices 100] [--only ct,validate,rs]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from openigrt.iod.ct_series import read_ct_series  # noqa: E402
from openigrt.iod.dataset_io import read_file, read_paths  # noqa: E402
from openigrt.iod.rt_structure_set import RTStructureSet  # noqa: E402
from openigrt.plan.evaluate import validate_paths  # noqa: E402
from tests.iod import factory as F  # noqa: E402
from tests.iod.realdata import ECLIPSE_RS  # noqa: E402


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def write_ct(directory: Path, n: int, seed: int = 20240611) -> list:
    """N 512×512 slices, 2.5 mm apart, into *directory*; returns the datasets (pixels seeded)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        ds = F.ct_slice(k, rows=512, cols=512, spacing=0.9765625, x0=-249.51171875, y0=-249.51171875)
        ds.PixelData = rng.integers(0, 2000, (512, 512), dtype=np.int16).tobytes()
        F.save(ds, directory / f"CT{k:04d}.dcm")
        out.append(ds)
    return out


def bench_ct(runs: int, n: int, work: Path) -> list[tuple[str, float]]:
    import SimpleITK as sitk

    d = work / "ct"
    write_ct(d, n)

    def ours():  # type: ignore[no-untyped-def]
        return read_ct_series(sorted(d.iterdir()))

    def ours_whole():  # type: ignore[no-untyped-def]
        files, _ = read_paths([d])
        return read_ct_series(files)

    def itk():  # type: ignore[no-untyped-def]
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(d)))
        return reader.Execute()

    a, b = ours(), itk()
    diff = float(np.abs(a.volume.array - sitk.GetArrayFromImage(b).astype(np.float32)).max())
    assert np.allclose(a.volume.origin_mm, b.GetOrigin()) and np.allclose(a.volume.spacing_mm, b.GetSpacing())
    assert diff == 0.0, f"voxel values differ by {diff}"
    assert np.array_equal(a.volume.array, ours_whole().volume.array)
    times: dict[str, list[float]] = {"ours": [], "whole": [], "itk": []}
    for _ in range(runs):  # interleaved: the machine's load hits all three alike
        for key, fn in (("ours", ours), ("itk", itk), ("whole", ours_whole)):
            times[key].append(median_time(fn, 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    return [(f"OpenIGRT read_ct_series of the {n} files", med["ours"]),
            (f"OpenIGRT read_paths (files read whole) + read_ct_series ({n} slices)", med["whole"]),
            (f"SimpleITK/GDCM ImageSeriesReader ({n} slices)", med["itk"]),
            (f"ratio OpenIGRT read_ct_series / GDCM (< 1: faster); runs "
             f"{[round(t, 3) for t in times['ours']]} / {[round(t, 3) for t in times['itk']]}", med["ours"] / med["itk"])]


def bench_validate_rss(n: int, work: Path) -> list[tuple[str, float]]:
    """Peak RSS (MB) of ``openigrt validate --json`` with a 2- and an n-slice 512×512 CT."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _rss import peak_rss

    from tests.peers import openigrt_argv

    rows = []
    for slices in (2, n):
        d = work / f"rss{slices}"
        cts = write_ct(d, slices)
        F.save(F.good_plan(), d / "RP.dcm")
        F.save(F.structure_set(cts), d / "RS.dcm")
        for i, drr in enumerate(F.good_drrs()):
            F.save(drr, d / f"RI{i}.dcm")
        cp, mb = peak_rss(openigrt_argv("validate", str(d), "--match", "3d3d", "--json"), timeout=600)
        assert cp.returncode in (0, 1), cp.stderr
        rows.append((f"peak RSS MB, openigrt validate --json ({slices} CT slices 512×512 + plan, RS, 4 DRRs)", mb))
    return rows


def bench_validate(runs: int, n: int, work: Path) -> list[tuple[str, float]]:
    d = work / "patient"
    cts = write_ct(d, n)
    F.save(F.good_plan(), d / "RP.dcm")
    F.save(F.structure_set(cts), d / "RS.dcm")
    for i, drr in enumerate(F.good_drrs()):
        F.save(drr, d / f"RI{i}.dcm")
    rows = []
    for match in ("2d", "2d2d", "marker", "3d3d"):
        assert validate_paths([d], match).possible
        rows.append((f"validate_paths {match} ({n} CT slices 512×512 + plan, RS, 4 DRRs)",
                     median_time(lambda m=match: validate_paths([d], m), runs)))
    return rows


def bench_rs(runs: int) -> list[tuple[str, float]]:
    import pydicom

    def plain():  # type: ignore[no-untyped-def]
        ds = pydicom.dcmread(ECLIPSE_RS)
        return sum(len(c.ContourData) for rc in ds.ROIContourSequence for c in rc.get("ContourSequence", []))

    def ours():  # type: ignore[no-untyped-def]
        return RTStructureSet.from_dataset(read_file(ECLIPSE_RS))

    return [("OpenIGRT read_file + RTStructureSet.from_dataset (Eclipse RS)", median_time(ours, runs)),
            ("pydicom dcmread + every ContourData as DS list (Eclipse RS)", median_time(plain, runs))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--only", default="ct,validate,rs,validate-rss")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="plan_bench_") as tmp:
        work = Path(tmp)
        if "ct" in only:
            rows += bench_ct(args.runs, args.slices, work)
        if "validate" in only:
            rows += bench_validate(args.runs, args.slices, work)
        if "rs" in only:
            rows += bench_rs(args.runs)
        if "validate-rss" in only:
            rows += bench_validate_rss(args.slices, work)
    print(f"load average {os.getloadavg()[0]:.2f} (cores {os.cpu_count()}), median of {args.runs} runs")
    print("| what | seconds (or as named) |\n|---|---|")
    for what, t in rows:
        print(f"| {what} | {t:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
