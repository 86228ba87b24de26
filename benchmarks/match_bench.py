"""Matching benchmark (SPEC MATCH-1 … MATCH-5): accuracy and time against ground truth, with peers.

Cases come from the virtual imager (``openigrt.sim``): the default phantom CT (512×512×100,
0.94 × 0.94 × 2 mm, three 1 × 4 mm gold seeds), seeded setup errors (translations up to ±15 mm,
rotations up to ±3° about the isocenter), simulated CBCTs (noise, cupping, shading, HU
offset/scale, 250 mm FOV, 170 mm length) and kV projections (quantum + electronic noise,
scatter, blur, heel effect, log conversion).

3D/3D is compared **in the same run** with SimpleITK's stock Euler3D + Mattes MI registration
(the SimpleITK examples' settings) and elastix's default rigid parameter map (itk-elastix).

Errors: TRE = distance at the fiducials between the estimated and the true transform; "iso" =
the same at the isocenter; rotation = angle of ``T_est ∘ T_true⁻¹``. Times are wall-clock per
case on this machine (2 cores), excluding data simulation.

Run: ``python benchmarks/match_bench.py [--cases 10] [--write-readme]`` (``--write-readme``
replaces the "Matching" section of ``benchmarks/README.md`` with this run's tables).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume

ROOT = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- helpers
def errors(est: RigidTransform, truth: RigidTransform, fiducials: np.ndarray, iso: np.ndarray) -> dict[str, float]:
    tre = np.linalg.norm(est.apply(fiducials) - truth.apply(fiducials), axis=1)
    return {"tre_max": float(tre.max()), "tre_mean": float(tre.mean()),
            "iso": float(np.linalg.norm(est.apply(iso[None, :]) - truth.apply(iso[None, :]))),
            "rot": est.compose(truth.inverse()).rotation_angle_deg()}


def setup_errors(n: int, *, seed: int, max_mm: float = 15.0, max_deg: float = 3.0, iso: np.ndarray) -> list[RigidTransform]:
    rng = np.random.default_rng(seed)
    out = []
    corners = [(max_mm, -max_mm, max_mm), (-max_mm, max_mm, -max_mm)]
    for i in range(n):
        t = corners[i] if i < len(corners) else rng.uniform(-max_mm, max_mm, 3)
        r = rng.uniform(-max_deg, max_deg, 3) if max_deg > 0 else np.zeros(3)
        if i < len(corners) and max_deg > 0:
            r = np.array([max_deg, -max_deg, max_deg]) * (1 if i == 0 else -1)
        out.append(RigidTransform.from_parameters(translation_mm=t, rotation_deg=r, center_mm=iso))
    return out


def summary(rows: list[dict[str, float]], key: str) -> tuple[float, float]:
    v = np.array([r[key] for r in rows])
    return float(np.median(v)), float(v.max())


def to_sitk(vol: Volume) -> Any:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array, dtype=np.float32))
    img.SetOrigin(vol.origin_mm)
    img.SetSpacing(vol.spacing_mm)
    img.SetDirection(tuple(np.asarray(vol.direction).ravel()))
    return img


def affine_of_sitk(tx: Any) -> np.ndarray:
    """4x4 of a SimpleITK/ITK matrix-offset transform (fixed point -> moving point)."""
    m = np.eye(4)
    a = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    t = np.asarray(tx.GetTranslation())
    m[:3, :3] = a
    m[:3, 3] = c + t - a @ c
    return m


# ----------------------------------------------------------------------------- 3D/3D peers
def sitk_euler_mi(ct: Volume, cb: Volume) -> RigidTransform:
    """SimpleITK stock rigid registration (examples' settings): Mattes MI, GD, 3 levels."""
    import SimpleITK as sitk

    fixed, moving = to_sitk(cb), to_sitk(ct)
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(0.01, seed=1)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=100, convergenceMinimumValue=1e-6,
                                    convergenceWindowSize=10)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel([4, 2, 1])
    r.SetSmoothingSigmasPerLevel([2, 1, 0])
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    init = sitk.Euler3DTransform()
    nz, ny, nx = cb.shape
    init.SetCenter(cb.index_to_patient_mm([[(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]])[0].tolist())
    r.SetInitialTransform(init, inPlace=False)
    out = r.Execute(fixed, moving)
    tx = sitk.Euler3DTransform(out.GetNthTransform(0) if out.GetName() == "CompositeTransform" else out)
    return RigidTransform(affine_of_sitk(tx)).inverse()


def elastix_rigid(ct: Volume, cb: Volume) -> RigidTransform:
    """elastix default rigid parameter map (itk-elastix)."""
    import itk
    import SimpleITK as sitk

    def img(vol: Volume) -> Any:
        im = itk.image_from_array(np.ascontiguousarray(vol.array, dtype=np.float32))
        im.SetOrigin(vol.origin_mm)
        im.SetSpacing(vol.spacing_mm)
        return im

    po = itk.ParameterObject.New()
    po.AddParameterMap(po.GetDefaultParameterMap("rigid"))
    _, params = itk.elastix_registration_method(img(cb), img(ct), parameter_object=po, log_to_console=False)
    pm = params.GetParameterMap(0)
    rx, ry, rz, tx, ty, tz = (float(v) for v in pm["TransformParameters"])
    centre = [float(v) for v in pm["CenterOfRotationPoint"]]
    e = sitk.Euler3DTransform(centre, rx, ry, rz, (tx, ty, tz))
    return RigidTransform(affine_of_sitk(e)).inverse()


# ----------------------------------------------------------------------------- the benchmark
def run_3d3d(ph: Any, n: int, peers: bool) -> tuple[list[str], dict[str, Any]]:
    from openigrt.match import register_3d3d
    from openigrt.sim.cbct import CbctParams, simulate_cbct

    iso = np.asarray(ph.isocenter_mm)
    fid = np.array([f.center_mm for f in ph.fiducials])
    methods: dict[str, Callable[[Volume, Volume], RigidTransform]] = {
        "OpenIGRT 3D/3D (6 DoF)": lambda ct, cb: register_3d3d(ct, cb, dof=6).transform}
    if peers:
        methods["elastix default rigid"] = elastix_rigid
        methods["SimpleITK Euler3D + Mattes MI"] = sitk_euler_mi
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in methods}
    det = None
    # one untimed run first: numba kernels load from their cache (or compile) on the first call
    warm = simulate_cbct(ph.volume, setup_error=RigidTransform.identity(), isocenter_mm=iso, params=CbctParams(), seed=1)
    register_3d3d(ph.volume, warm)
    for i, truth in enumerate(setup_errors(n, seed=100, iso=iso)):
        cb = simulate_cbct(ph.volume, setup_error=truth, isocenter_mm=iso, params=CbctParams(), seed=200 + i)
        for name, fn in methods.items():
            t0 = time.perf_counter()
            try:
                est = fn(ph.volume, cb)
                row = errors(est, truth, fid, iso)
            except Exception as exc:  # a peer failing is a result too
                print(f"  {name} case {i}: failed: {exc}", file=sys.stderr)
                row = {"tre_max": np.inf, "tre_mean": np.inf, "iso": np.inf, "rot": np.inf}
                est = None
            row["time"] = time.perf_counter() - t0
            rows[name].append(row)
            if i == 0 and name.startswith("OpenIGRT") and est is not None:
                det = np.array_equal(est.matrix, fn(ph.volume, cb).matrix)
            print(f"  3d3d case {i} {name}: TRE max {row['tre_max']:.3f} mm, rot {row['rot']:.3f}°, "
                  f"{row['time']:.2f} s", file=sys.stderr)
    lines = ["| method | cases | TRE median / max (mm) | iso error median / max (mm) | rotation error median / max (°) | time median / max (s) |",
             "|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        tre = [r["tre_mean"] for r in rs]
        lines.append(f"| {name} | {len(rs)} | {np.median(tre):.3f} / {max(r['tre_max'] for r in rs):.3f} | "
                     "{:.3f} / {:.3f} | {:.3f} / {:.3f} | {:.2f} / {:.2f} |".format(
                         *summary(rs, "iso"), *summary(rs, "rot"), *summary(rs, "time")))
    return lines, {"deterministic": det, "rows": rows}


def targets(info3d: dict[str, Any], res2d: dict[str, list[dict[str, float]]], detection: dict[str, float]) -> list[str]:
    """The issue's targets, each marked met / NOT met with the figure reached."""
    ours = info3d["rows"]["OpenIGRT 3D/3D (6 DoF)"]
    ela = info3d["rows"].get("elastix default rigid")

    def med(rs: list[dict[str, float]], k: str) -> float:
        return float(np.median([r[k] for r in rs]))

    def mx(rs: list[dict[str, float]], k: str) -> float:
        return float(max(r[k] for r in rs))

    tre_med = float(np.median([r["tre_mean"] for r in ours]))
    speed = med(ela, "time") / med(ours, "time") if ela else float("nan")
    items = [
        ("3D/3D time ≤ 2 s per case (median)", med(ours, "time") <= 2.0, f"{med(ours, 'time'):.2f} s"),
        ("3D/3D ≥ 2× faster than elastix (medians)", speed >= 2.0, f"{speed:.1f}×"),
        ("3D/3D TRE median ≤ 0.15 mm, max ≤ 0.5 mm", tre_med <= 0.15 and mx(ours, "tre_max") <= 0.5,
         f"{tre_med:.3f} / {mx(ours, 'tre_max'):.3f} mm"),
        ("3D/3D rotation error median ≤ 0.1°", med(ours, "rot") <= 0.1, f"{med(ours, 'rot'):.3f}°"),
        ("3D/3D deterministic", bool(info3d["deterministic"]), str(info3d["deterministic"])),
        ("3D/3D converges from ±15 mm on every axis (cases 0, 1)", max(r["tre_max"] for r in ours[:2]) <= 0.5,
         f"{max(r['tre_max'] for r in ours[:2]):.3f} mm"),
    ]
    for key, name in (("tr_pure", "2D/2D translation, shifts only"), ("tr_drr", "2D/2D translation, DRR-refined")):
        rs = res2d[key]
        items.append((f"{name}: ≤ 0.5 s, median ≤ 0.3 mm, max ≤ 0.8 mm",
                      med(rs, "time") <= 0.5 and med(rs, "iso") <= 0.3 and mx(rs, "iso") <= 0.8,
                      f"{med(rs, 'time'):.2f} s, {med(rs, 'iso'):.3f} / {mx(rs, 'iso'):.3f} mm"))
    rs = res2d["six"]
    items.append(("2D/2D 6 DoF: ≤ 5 s, median ≤ 0.5 mm (rotations ≤ 3°)",
                  med(rs, "time") <= 5.0 and med(rs, "tre_max") <= 0.5,
                  f"{med(rs, 'time'):.2f} s, {med(rs, 'tre_max'):.3f} mm"))
    rs = res2d["marker"]
    items.append(("marker match: ≤ 0.5 s, ≤ 0.5 mm", med(rs, "time") <= 0.5 and mx(rs, "tre_max") <= 0.5,
                  f"{med(rs, 'time'):.2f} s, max {mx(rs, 'tre_max'):.3f} mm"))
    items.append(("marker detection: every fiducial within 0.5 mm, nothing else",
                  detection["all_found"] and detection["false_positives"] == 0,
                  f"max {detection['max_error']:.3f} mm, {detection['false_positives']} false positives"))
    out = ["| target | met | reached |", "|---|---|---|"]
    out += [f"| {name} | {'yes' if ok else '**NO**'} | {fig} |" for name, ok, fig in items]
    return out


def run_2d(ph: Any, n: int) -> tuple[list[str], dict[str, list[dict[str, float]]]]:
    from openigrt.geometry.projection import kv_geometry
    from openigrt.match import match_2d2d, match_2d3d, match_markers, split_markers
    from openigrt.sim.acquire import KV_IMAGING, acquire_projection
    from openigrt.sim.drr import DrrRenderer

    # kV technique per view: the lateral pelvis gets 10x the AP exposure (as clinical protocols do);
    # at the AP exposure the simulated lateral image is photon-starved (≈1 photon per pixel)
    params = [KV_IMAGING, replace(KV_IMAGING, photons_per_pixel=10 * KV_IMAGING.photons_per_pixel)]

    iso = np.asarray(ph.isocenter_mm)
    fid = np.array([f.center_mm for f in ph.fiducials])
    geoms = [kv_geometry(a, isocenter_mm=tuple(iso)) for a in (0.0, 90.0)]
    renderer = DrrRenderer(ph.volume)
    refs = [renderer.render(g) for g in geoms]
    half = _downsample(ph.volume)
    r_half = DrrRenderer(half)
    t0 = time.perf_counter()
    markers, anatomy = split_markers(ph.volume)
    templates = [DrrRenderer(markers).render(g) for g in geoms]
    anat = [DrrRenderer(anatomy).render(g) for g in geoms]
    t_prep = time.perf_counter() - t0
    from openigrt.match import detect_markers

    planned = np.array([m.position_mm for m in detect_markers(ph.volume)])
    res: dict[str, list[dict[str, float]]] = {"tr_pure": [], "tr_drr": [], "tr_rot": [], "six": [], "marker": []}
    for i, truth in enumerate(setup_errors(n, seed=300, max_deg=0.0, iso=iso)):
        acq = [acquire_projection(renderer, g, setup_error=truth, params=params[k], seed=400 + 2 * i + k).image
               for k, g in enumerate(geoms)]
        t = time.perf_counter()
        est = match_2d2d(refs, acq, geoms, isocenter_mm=iso).transform
        res["tr_pure"].append(dict(errors(est, truth, fid, iso), time=time.perf_counter() - t))
        t = time.perf_counter()
        est = match_2d2d(refs, acq, geoms, isocenter_mm=iso, renderer=r_half).transform
        res["tr_drr"].append(dict(errors(est, truth, fid, iso), time=time.perf_counter() - t))
        t = time.perf_counter()
        est = match_markers(planned, acq, geoms, templates=templates, anatomy=anat).transform
        res["marker"].append(dict(errors(est, truth, fid, iso), time=time.perf_counter() - t))
        print(f"  2d case {i}: 2D/2D iso {res['tr_pure'][-1]['iso']:.3f} mm, with DRRs {res['tr_drr'][-1]['iso']:.3f} mm, "
              f"marker {res['marker'][-1]['tre_max']:.3f} mm", file=sys.stderr)
    for i, truth in enumerate(setup_errors(n, seed=500, iso=iso)):
        acq = [acquire_projection(renderer, g, setup_error=truth, params=params[k], seed=600 + 2 * i + k).image
               for k, g in enumerate(geoms)]
        t = time.perf_counter()
        start = match_2d2d(refs, acq, geoms, isocenter_mm=iso)
        res["tr_rot"].append(dict(errors(start.transform, truth, fid, iso), time=time.perf_counter() - t))
        t = time.perf_counter()
        est = match_2d3d(acq, geoms, r_half, isocenter_mm=iso, initial=start.transform).transform
        res["six"].append(dict(errors(est, truth, fid, iso), time=time.perf_counter() - t + res["tr_rot"][-1]["time"]))
        print(f"  2d rot case {i}: translation-only iso {res['tr_rot'][-1]['iso']:.3f} mm, "
              f"6 DoF TRE {res['six'][-1]['tre_max']:.3f} mm rot {res['six'][-1]['rot']:.3f}°", file=sys.stderr)
    lines = ["| match | setup errors | cases | error median / max (mm) | rotation error median / max (°) | time median / max (s) |",
             "|---|---|---|---|---|---|"]
    spec = [("2D/2D translation, image shifts only (no CT)", "tr_pure", "translations ±15 mm", "iso"),
            ("2D/2D translation, refined with DRRs of the CT", "tr_drr", "translations ±15 mm", "iso"),
            ("2D/2D translation, image shifts only (no CT)", "tr_rot", "translations ±15 mm + rotations ±3°", "iso"),
            ("2D/2D 6 DoF (2D/3D, DRRs on the fly)", "six", "translations ±15 mm + rotations ±3°", "tre_max"),
            ("marker match (3 seeds)", "marker", "translations ±15 mm", "tre_max")]
    for name, key, what, err in spec:
        rs = res[key]
        lines.append(f"| {name} | {what} | {len(rs)} | " + "{:.3f} / {:.3f} | {:.3f} / {:.3f} | {:.2f} / {:.2f} |".format(
            *summary(rs, err), *summary(rs, "rot"), *summary(rs, "time")))
    lines.append("")
    lines.append(f"Per-plan preparation of the marker match (split the CT, render the two marker templates and the "
                 f"two marker-free anatomy DRRs, done once when the plan is loaded): {t_prep:.2f} s.")
    return lines, res


def _downsample(v: Volume) -> Volume:
    """2× block mean in-plane (the 6-DoF optimiser's renderer)."""
    a = v.array.astype(np.float32)
    nz, ny, nx = a.shape
    a = a[:, : ny // 2 * 2, : nx // 2 * 2].reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4))
    o = (v.origin_mm[0] + v.spacing_mm[0] / 2, v.origin_mm[1] + v.spacing_mm[1] / 2, v.origin_mm[2])
    return Volume(a, o, (v.spacing_mm[0] * 2, v.spacing_mm[1] * 2, v.spacing_mm[2]))


def run_detection(ph: Any) -> tuple[list[str], dict[str, Any]]:
    from openigrt.match import detect_markers

    fid = np.array([f.center_mm for f in ph.fiducials])
    t = time.perf_counter()
    found = np.array([m.position_mm for m in detect_markers(ph.volume)])
    dt = time.perf_counter() - t
    d = np.linalg.norm(found[:, None, :] - fid[None, :, :], axis=2)
    matched = d.min(axis=0)
    false_pos = int((d.min(axis=1) > 2.0).sum())
    lines = ["| fiducials | found | false positives | max error (mm) | time (s) |", "|---|---|---|---|---|",
             f"| {len(fid)} | {int((matched < 0.5).sum())} within 0.5 mm | {false_pos} | {matched.max():.3f} | {dt:.2f} |"]
    return lines, {"all_found": bool((matched < 0.5).all()), "false_positives": false_pos,
                   "max_error": float(matched.max())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--no-peers", action="store_true", help="skip elastix and SimpleITK (quick check)")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args(argv)
    from openigrt.sim.phantom import PhantomParams, make_phantom

    load0 = os.getloadavg()[0]
    ph = make_phantom(PhantomParams())
    det_lines, det_info = run_detection(ph)
    lines_3d, info = run_3d3d(ph, args.cases, not args.no_peers)
    lines_2d, res_2d = run_2d(ph, args.cases)
    target_lines = targets(info, res_2d, det_info) if not args.no_peers else []
    load1 = os.getloadavg()[0]
    header = (f"Last run: {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, "
              f"load average {load0:.2f} at start / {load1:.2f} at end, command "
              f"`python benchmarks/match_bench.py --cases {args.cases}{' --no-peers' if args.no_peers else ''}`.")
    body = "\n".join([
        header, "",
        "### 3D/3D (CBCT vs planning CT), same cases for every method", "", *lines_3d, "",
        f"OpenIGRT deterministic (same matrix twice, bit for bit): {info['deterministic']}.", "",
        "### 2D/2D, simple 2D building block and marker match (kV pair 0°/90°, 1024×768 at 0.388 mm)", "",
        *lines_2d, "",
        "### Marker detection in the planning CT", "", *det_lines, "",
        "### Targets (issue \"Matching\"), judged on this run", "", *target_lines, ""])
    print(body)
    if args.write_readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        # up to the next section or the first subsection another benchmark owns (<!-- match_bench_*: begin -->)
        pat = re.compile(r"(## Matching \(`match_bench.py`\)\n)(.*?)(?=\n## |\n<!-- match_bench_|\Z)", re.S)
        intro = _INTRO
        text = pat.sub(lambda m: m.group(1) + "\n" + intro + "\n" + body, text)
        readme.write_text(text)
    return 0


_INTRO = """Command: `python benchmarks/match_bench.py --cases 10 --write-readme` (rewrites this section).
Data: the virtual imager (`openigrt.sim`): phantom CT 512×512×100 (0.94×0.94×2 mm) with three
1×4 mm gold seeds, seeded setup errors (the first two cases at the ±15 mm / ±3° corners),
CBCTs with noise, cupping, shading, HU offset/scale, 250 mm FOV × 170 mm (1×1×2 mm), kV images
with quantum/electronic noise, scatter, blur, heel effect and log conversion. Errors against the
known transform: TRE at the fiducials (median of the per-case mean, max over all), error at the
isocenter, rotation angle of `T_est ∘ T_true⁻¹`. Times per case (wall clock, data simulation
excluded). Peers run in the same process on the same cases: elastix default rigid map
(itk-elastix) and SimpleITK Euler3D + Mattes MI as in the SimpleITK examples (both register the
whole volumes from the identity, as OpenIGRT does). One untimed OpenIGRT registration runs first
(numba kernels load from their on-disk cache on the first call of a process, ~2-3 s once).
kV technique: the lateral (90°) view gets 10× the AP exposure, as clinical pelvis protocols do; at
the AP exposure the simulated lateral image is photon-starved and the seeds are not visible (the
marker match then refuses the view). Translation-only rows cannot see rotations: their
"rotation error" is the true rotation. Marker match times exclude the per-plan preparation
(reported below the table).

Limits behind the targets marked **NO** (see also the README "Matching"): 2D/2D translation from
image shifts alone is fast but biased by the depth-dependent magnification (anatomy off the
isocenter plane moves more or less than the isocenter: 1-2 mm at 15 mm setup errors on this
pelvis); no speed-up changes that. Refining against DRRs of the CT removes the bias (< 0.2 mm):
a 2 mm shift search, one DRR iteration at 2 mm and one or two at 1 mm pixels, each DRR rendered
only on a window around the region of interest (the DRRs are most of the ~0.1-0.15 s per case).
Times are wall clock on a 2-core machine shared with other jobs (load given above; the benchmark
itself keeps both cores busy, hence the load at the end): with one core busy elsewhere the
numba-parallel parts get about one core and the times grow up to ~2× (3D/3D median 0.85-1.3 s
instead of ~0.65 s; its CPU time is ~1.2 s per case).
"""


if __name__ == "__main__":
    raise SystemExit(main())
