"""CBCT benchmark (SPEC SIM-3): one physical CBCT (``--cbct-model fdk``) — time, memory, geometry, HU.

For the phantom planning CT (512 × 512 × 100, 0.94 × 0.94 × 2 mm) and the default CBCT grid
(256 × 256 × 85 at 1 × 1 × 2 mm, ⌀ 250 mm FOV) it reports, per scan mode (full fan: 200°, half
fan: 360° with the panel shifted 160 mm), each in a fresh process:

* time: RTK's module load (first use in a process), the projections (renderer preparation,
  line integrals, physics, noise) and the FDK reconstruction (RTK), and the fast model's time;
* peak RSS: after imports + phantom, at the end of the projections, at the end of the reconstruction;
* geometry: three 3 mm beads and a rod in a water cylinder, setup error with rotations, default
  scan: worst bead error (mm) and rod angle error (°);
* image quality vs the CT resampled onto the CBCT grid (the fast model with every degradation off):
  HU error in soft tissue (mean, SD), cupping (soft-tissue error in the central 30 mm minus the
  ring 90–120 mm from the isocenter), noise (SD of the difference of two seeds / √2) and the marker
  streak level (SD of "with markers − without markers" 4–15 mm around the markers, same seed).

Usage: ``python benchmarks/cbct_bench.py [--json FILE]``. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from openigrt.geometry.couch import setup_error_from_table_top  # noqa: E402
from openigrt.geometry.rigid import RigidTransform  # noqa: E402
from openigrt.sim.cbct import CbctParams, simulate_cbct  # noqa: E402
from openigrt.sim.phantom import PhantomParams, make_phantom  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one(fan: str) -> dict[str, float]:
    """One fdk CBCT of the phantom in this (fresh) process: timings and peak RSS."""
    from openigrt.sim import cbct_fdk

    ph = make_phantom(PhantomParams())
    couch = lambda p: p[:, 1] >= ph.couch_top_y_mm - 0.25  # noqa: E731
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    _, _, load = cbct_fdk._rtk()
    rss_load = _rss_mb()
    marks: dict[str, float] = {}
    real_fdk = cbct_fdk.fdk_reconstruct

    def timed_fdk(*a, **kw):  # type: ignore[no-untyped-def]
        marks["rss_projections_mb"] = _rss_mb()
        return real_fdk(*a, **kw)

    cbct_fdk.fdk_reconstruct = timed_fdk  # type: ignore[assignment]
    r = cbct_fdk.simulate_cbct_fdk(ph.volume, setup_error=RigidTransform.identity(), isocenter_mm=ph.isocenter_mm,
                                   scan=cbct_fdk.CbctScan(fan=fan), seed=1, ct_couch=couch)
    return {"rtk_load_s": load, "projections_s": r.projections_s, "reconstruction_s": r.reconstruction_s,
            "total_s": time.perf_counter() - t0 - load, "rss_before_mb": rss0, "rss_rtk_loaded_mb": rss_load,
            "rss_projections_mb": marks["rss_projections_mb"], "rss_end_mb": _rss_mb(), "views": cbct_fdk.CbctScan(fan=fan).views}


def _subprocess_one(fan: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--one", fan], check=True, capture_output=True, text=True,
                         timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _quality(fan: str) -> dict[str, float]:
    from openigrt.sim.cbct_fdk import CbctScan, simulate_cbct_fdk

    ph = make_phantom(PhantomParams())
    bare = make_phantom(PhantomParams(fiducial_offsets=()))
    couch = lambda p: p[:, 1] >= ph.couch_top_y_mm - 0.25  # noqa: E731
    ident = RigidTransform.identity()
    kw = dict(setup_error=ident, isocenter_mm=ph.isocenter_mm, scan=CbctScan(fan=fan), ct_couch=couch)
    a = simulate_cbct_fdk(ph.volume, seed=1, **kw).volume.array.astype(float)
    b = simulate_cbct_fdk(ph.volume, seed=2, **kw).volume.array.astype(float)
    c = simulate_cbct_fdk(bare.volume, seed=1, **kw).volume.array.astype(float)
    t0 = time.perf_counter()
    clean = CbctParams(hu_scale=1.0, hu_offset=0.0, cupping_hu=0.0, shading_hu=0.0, noise_hu=0.0, blur_mm=0.0)
    truth = simulate_cbct(ph.volume, setup_error=ident, isocenter_mm=ph.isocenter_mm, params=clean, ct_couch=couch)
    fast_s = time.perf_counter() - t0
    grid = truth
    ref = truth.array.astype(float)
    nz, ny, nx = ref.shape
    c1 = (np.arange(nx) - (nx - 1) / 2) * grid.spacing_mm[0]
    xx, yy = np.meshgrid(c1, c1, indexing="xy")
    r = np.hypot(xx, yy)
    soft = (ref > 0) & (ref < 80)
    mid = np.zeros_like(soft)
    mid[nz // 4: 3 * nz // 4] = True
    err = a - ref
    inner, outer = soft & mid & (r < 30)[None], soft & mid & ((r >= 90) & (r < 120))[None]
    pts = grid.patient_to_index(ph.fiducials_mm)
    kk, jj, ii = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    near = np.zeros(ref.shape, bool)
    for i, j, k in pts:
        d = np.sqrt(((ii - i) * grid.spacing_mm[0]) ** 2 + ((jj - j) * grid.spacing_mm[1]) ** 2
                    + ((kk - k) * grid.spacing_mm[2]) ** 2)
        near |= (d >= 4.0) & (d <= 15.0)
    return {"hu_error_mean": float(err[soft & mid].mean()), "hu_error_sd": float(err[soft & mid].std()),
            "cupping_hu": float(err[inner].mean() - err[outer].mean()),
            "noise_hu": float(np.std((a - b)[soft & mid]) / np.sqrt(2)),
            "marker_streak_sd_hu": float(np.std((a - c)[near])), "fast_model_s": fast_s}


def _beads(fan: str) -> dict[str, float]:
    from tests.sim.test_cbct_fdk import BEADS, ISO, ROD_AXIS, ROD_CENTER, _bead_ct, _excess_centroid, _rod_axis

    from openigrt.sim.cbct_fdk import CbctScan, simulate_cbct_fdk

    t = setup_error_from_table_top(lat_mm=3.7, lng_mm=-2.9, vrt_mm=5.3, rtn_deg=2.5, pitch_deg=-1.5, roll_deg=2.0,
                                   planned_isocenter_mm=ISO, patient_position="HFS")
    cb = simulate_cbct_fdk(_bead_ct(), setup_error=t, isocenter_mm=ISO, params=CbctParams(length_mm=100.0),
                           scan=CbctScan(fan=fan), seed=2, ct_couch=None, treatment_couch=None).volume
    excess = cb.array.astype(float) - np.median(cb.array[cb.array > -500])
    errs = [np.abs(_excess_centroid(cb, excess, tb, half=4) - tb).max() for tb in t.apply(BEADS)]
    axis = _rod_axis(cb, excess, t.apply([ROD_CENTER])[0])
    angle = float(np.degrees(np.arccos(min(1.0, abs(float(axis @ (t.rotation @ ROD_AXIS)))))))
    return {"bead_error_max_mm": float(max(errs)), "rod_angle_error_deg": angle}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--one", choices=["full", "half"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one)))
        return 0
    load_start = os.getloadavg()[0]
    report: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
                                 "load_start": load_start}
    for fan in ("full", "half"):
        row = _subprocess_one(fan)
        row.update(_beads(fan))
        row.update(_quality(fan))
        report[fan] = row
    report["load_end"] = os.getloadavg()[0]
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _print(r: dict) -> None:  # type: ignore[type-arg]
    print(f"CBCT benchmark {r['date']}, {r['cores']} cores, load {r['load_start']:.2f} -> {r['load_end']:.2f}")
    print("| fan | views | RTK load s | projections s | FDK s | total s (no load) | fast model s | peak RSS MB: "
          "phantom / +RTK / projections / end | bead max mm | rod ° | HU err mean ± SD | cupping HU | noise HU "
          "| marker streak SD HU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fan in ("full", "half"):
        v = r[fan]
        print(f"| {fan} | {v['views']} | {v['rtk_load_s']:.1f} | {v['projections_s']:.1f} | {v['reconstruction_s']:.1f} "
              f"| {v['total_s']:.1f} | {v['fast_model_s']:.1f} | {v['rss_before_mb']:.0f} / {v['rss_rtk_loaded_mb']:.0f} / "
              f"{v['rss_projections_mb']:.0f} / {v['rss_end_mb']:.0f} | {v['bead_error_max_mm']:.3f} "
              f"| {v['rod_angle_error_deg']:.2f} | {v['hu_error_mean']:+.0f} ± {v['hu_error_sd']:.0f} "
              f"| {v['cupping_hu']:+.0f} | {v['noise_hu']:.1f} | {v['marker_streak_sd_hu']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
