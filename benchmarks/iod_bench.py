"""IOD builder benchmark: writing a CT series and encoding MPEG2 cine, OpenIGRT vs peers (same run).

(a) CT series: a 512×512 × N-slice HU volume to N Part 10 files.
    * OpenIGRT ``build_verification_ct_series`` + ``write_file`` (Explicit VR LE; strict pydicom
      writing validation as in the tests), build and write timed separately;
    * SimpleITK/GDCM ``ImageFileWriter`` slice by slice (the usual ITK recipe);
    * plastimatch ``convert --input vol.mha --output-dicom DIR`` (process start included).
(b) MPEG2 MP@ML: N frames of 720×576 uint8 at 25 frames/s.
    * OpenIGRT ``build_acquired_rt_image(..., mpeg2=True)`` (encode + encapsulate + dataset);
    * the bare PyAV ``mpeg2video`` encode of the same frames (what the builder adds on top).

Each figure is the median of ``--runs`` runs; the machine load is printed with the figures.

Usage: ``python benchmarks/iod_bench.py [--runs 3] [--slices 100] [--frames 100] [--only ct,mpeg2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from openigrt.geometry.volume import Volume  # noqa: E402
from openigrt.iod.build import (  # noqa: E402
    Cine,
    CouchPosition,
    Exposure,
    build_acquired_rt_image,
    build_verification_ct_series,
    write_file,
)
from openigrt.iod.build.mpeg2 import encode_mpeg2  # noqa: E402
from tests.build.conftest import strict_writing  # noqa: E402
from tests.build.factory import cine_frames, jaws_kv, make_patient  # noqa: E402
from tests.build.factory import geometry as rt_geometry  # noqa: E402


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def volume(n: int, seed: int = 20240611) -> Volume:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512]
    body = ((x - 256) / 200) ** 2 + ((y - 256) / 140) ** 2 <= 1
    arr = np.where(body, 30.0, -1000.0)[None] + rng.normal(0, 20, (n, 512, 512))
    return Volume(arr.astype(np.float32), origin_mm=(-250.0, -250.0, -n / 2.0), spacing_mm=(0.977, 0.977, 1.0))


def bench_ct(runs: int, n: int, work: Path) -> list[tuple[str, float]]:
    import SimpleITK as sitk

    vol = volume(n)
    with strict_writing():
        p = make_patient()
    couch = CouchPosition(table_height_mm=100.0, table_top_longitudinal_position_mm=0.0, table_top_lateral_position_mm=0.0)

    def build():  # type: ignore[no-untyped-def]
        with strict_writing():
            return build_verification_ct_series(volume=vol, sources=[p.plan], frame_of_reference_uid=p.session_for,
                                                patient_position="HFS", settings=p.settings, couch=couch)

    series = build()

    def write() -> None:
        out = work / "ours"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        with strict_writing():
            for k, ds in enumerate(series):
                write_file(ds, out / f"{k:04d}.dcm")

    img = sitk.Cast(sitk.GetImageFromArray(np.rint(vol.array)), sitk.sitkInt16)
    img.SetOrigin(vol.origin_mm)
    img.SetSpacing(vol.spacing_mm)

    def sitk_write() -> None:
        out = work / "sitk"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(n):
            sl = img[:, :, k]
            sl.SetMetaData("0008|0060", "CT")
            sl.SetMetaData("0020|0032", "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k))))
            sl.SetMetaData("0020|0013", str(k + 1))
            writer.SetFileName(str(out / f"{k:04d}.dcm"))
            writer.Execute(sl)

    mha = work / "vol.mha"
    sitk.WriteImage(img, str(mha))

    def plastimatch() -> None:
        out = work / "plm"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(["plastimatch", "convert", "--input", str(mha), "--output-dicom", str(out)], check=True,
                       capture_output=True, timeout=600)

    rows = [(f"OpenIGRT build {n} slices (dataset only)", median_time(build, runs)),
            (f"OpenIGRT write {n} files", median_time(write, runs)),
            (f"SimpleITK/GDCM write {n} files", median_time(sitk_write, runs))]
    if shutil.which("plastimatch"):
        rows.append((f"plastimatch convert → {n} files (process incl.)", median_time(plastimatch, runs)))
    return rows


def bench_mpeg2(runs: int, n: int) -> list[tuple[str, float]]:
    frames = cine_frames(n, 576, 720)
    with strict_writing():
        p = make_patient()
    exposure = Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=jaws_kv(), xray_tube_current_ma=10,
                        exposure_time_ms=4000)

    def ours() -> None:
        with strict_writing():
            build_acquired_rt_image(pixel_array=frames, imager="KV", rt_image_label="FLUORO", geometry=rt_geometry(0.0, 576, 720),
                                    exposure=exposure, plan=p.plan, referenced_beam_number=3,
                                    frame_of_reference_uid=p.session_for, settings=p.settings,
                                    cine=Cine(cine_rate=25, frame_time_ms=40.0), mpeg2=True)

    encode_mpeg2(frames[:2], frame_rate=25)  # warm-up: import PyAV/FFmpeg outside the timings
    return [(f"OpenIGRT MPEG2 RT Image, {n} frames 720x576", median_time(ours, runs)),
            (f"PyAV mpeg2video encode only, {n} frames", median_time(lambda: encode_mpeg2(frames, frame_rate=25), runs))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--only", default="ct,mpeg2")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="iod_bench_") as tmp:
        if "ct" in args.only:
            rows += bench_ct(args.runs, args.slices, Path(tmp))
        if "mpeg2" in args.only:
            rows += bench_mpeg2(args.runs, args.frames)
    print(f"load average (1 min) at start {load:.2f}, at end {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}; "
          f"median of {args.runs} runs")
    print("| what | seconds |\n|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
