"""``openigrt match {3d3d,2d2d,2d,marker}`` and ``openigrt detect-markers`` (SPEC MATCH-1 … MATCH-6).

Every command prints a human summary or, with ``--json``, the stable schema documented in the
README section "Matching": ``match``, ``matrix`` (4×4 row-major, reference patient mm →
verification patient mm), ``couch`` (IEC 61217 table-top correction: ``vrt_mm``, ``lng_mm``,
``lat_mm`` and, for 6 DoF, ``rtn_deg``, ``pitch_deg``, ``roll_deg``), ``metric``, ``iterations``,
``stop_reason``, ``elapsed_s`` (+ per-marker residuals for marker matches).

Reading the inputs, the isocenter precedence for the couch correction (MATCH-6) and the objects
written with ``--out`` are those of :mod:`openigrt.workflow.matching`, shared with the fraction
workflow (``openigrt session`` / ``openigrt demo``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, common_options, console_err, console_out, print_json
from openigrt.config import Settings


# ----------------------------------------------------------------------------- inputs
def _parse_xyz(text: str | None, what: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(f"{what}: expected X,Y,Z in mm, got {text!r}") from None
    if len(vals) != 3:
        raise click.BadParameter(f"{what}: expected 3 values X,Y,Z, got {text!r}")
    return vals  # type: ignore[return-value]


def _plan(path: Path | None) -> Any:
    if path is None:
        return None
    from openigrt.iod.rt_plan import RTPlan
    from openigrt.workflow.matching import read_dicom

    return RTPlan.from_dataset(read_dicom([path])[0])


def _isos(plan: Path | None, isocenter: str | None, init_laser_iso: str | None) -> dict[str, Any]:
    """Keyword arguments of the ``workflow.matching.run_*`` functions for the isocenter options."""
    return {"plan": _plan(plan), "isocenter": _parse_xyz(isocenter, "--isocenter"),
            "initlaseriso": _parse_xyz(init_laser_iso, "--init-laser-iso")}


def _finish(outcome: Any, *, settings: Settings, out_dir: Path | None, as_json: bool) -> int:
    """Write the REG (and marker curves) with --out, then print the report.

    A match that did not succeed (not converged, metric plateau) writes nothing, prints the report
    with ``success`` false and the reason, and exits with 1.
    """
    from openigrt.iod.build.common import write_file
    from openigrt.workflow.matching import marker_images, registration

    written: list[str] = []
    ok = outcome.result.success
    if out_dir is not None and ok:
        out_dir.mkdir(parents=True, exist_ok=True)
        if settings.storage.store_registrations:
            reg = registration(outcome, settings=settings)
            written.append(str(write_file(reg, out_dir / f"REG.{reg.SOPInstanceUID}.dcm")))
        if outcome.match_type == "marker" and settings.storage.store_markers:
            written += [str(write_file(ds, out_dir / f"RI.{ds.SOPInstanceUID}.dcm")) for ds in marker_images(outcome)]
    out = outcome.report()
    out["written"] = written
    if as_json:
        print_json(out)
    else:
        _print_human(out)
    if not ok:
        console_err().print(f"[red]match failed[/red]: {outcome.result.failure_message()} (nothing written)")
        return EXIT_FAILURE
    return EXIT_OK


def _print_human(out: dict[str, Any]) -> None:
    con = console_out()
    t = out["translation_mm"]
    r = out["rotation_deg"]
    con.print(f"[bold]{out['match']}[/bold] match ({out['dof']} DoF): {out['stop_reason']}, "
              f"{out['iterations']} iterations, {out['metric_name']} = {out['metric']:.4f}, "
              f"overlap {100 * out['overlap_fraction']:.0f}%, {out['elapsed_s']:.2f} s")
    if out.get("roi"):
        roi = out["roi"]
        where = "" if roi["center_mm"] is None else (
            f" centre {', '.join(f'{v:.1f}' for v in roi['center_mm'])} mm, half sizes "
            f"{', '.join(f'{v:.0f}' for v in roi['half_size_mm'])} mm")
        con.print(f"  region of interest: {roi['source']}{where} (couch and outside the field of view excluded)")
    if not out["success"]:
        con.print(f"  [red]NOT A SOLUTION[/red]: {out.get('stop_detail', '')}")
    con.print(f"  translation (x, y, z) mm: {t[0]:+.2f} {t[1]:+.2f} {t[2]:+.2f}; "
              f"rotation (x, y, z) deg: {r[0]:+.2f} {r[1]:+.2f} {r[2]:+.2f}")
    if out.get("couch"):
        c = out["couch"]
        txt = ", ".join(f"{k} {v:+.2f}" for k, v in c.items())
        con.print(f"  couch correction ({out['patient_position']}): {txt}")
    else:
        con.print("  couch correction: not available (no isocenter known)")
    for m in out.get("markers", []):
        flag = " [red]OUTLIER[/red]" if m["outlier"] else ""
        res = "not found" if m["residual_mm"] is None else f"residual {m['residual_mm']:.2f} mm"
        seen = sum(p is not None for p in m["pixel_per_view"])
        con.print(f"  marker {m['name']}: {res}, found in {seen} view(s){flag}")


# ----------------------------------------------------------------------------- commands
@click.group("match")
def match_group() -> None:
    """Match acquired images to the references and compute the couch correction (MATCH-1…6)."""


_COMMON_ISO = [
    click.option("--plan", "plan", type=click.Path(exists=True, path_type=Path), default=None,
                 help="RT Plan: planned isocenter and patient position."),
    click.option("--isocenter", default=None, metavar="X,Y,Z", help="Planned isocenter (reference patient mm)."),
    click.option("--init-laser-iso", default=None, metavar="X,Y,Z",
                 help="INITLASERISO point (verification patient mm)."),
    click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (README 'Matching')."),
    click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Also write the Spatial Registration (IOD-1) here."),
]


def _iso_options(f: Any) -> Any:
    for opt in reversed(_COMMON_ISO):
        f = opt(f)
    return f


@match_group.command("3d3d")
@click.option("--reference", type=click.Path(exists=True, path_type=Path), required=True, help="Planning CT directory.")
@click.option("--verification", type=click.Path(exists=True, path_type=Path), required=True,
              help="Verification CBCT directory (its isocenter structure set may be inside).")
@click.option("--structure-set", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Planning structure set (for --roi-structure).")
@click.option("--verification-structure-set", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Isocenter structure set of the CBCT (INITLASERISO).")
@click.option("--dof", type=click.Choice(["3", "6"]), default="6", show_default=True)
@click.option("--roi", default=None, metavar="HX,HY,HZ",
              help="Box half sizes (mm) around the planned isocenter to restrict the match to.")
@click.option("--roi-structure", default=None, metavar="NAME",
              help="Restrict the match to this structure of --structure-set (e.g. PTV), grown by --roi-margin.")
@click.option("--roi-margin", type=float, default=10.0, show_default=True, help="Margin (mm) around --roi-structure.")
@click.option("--whole-volume", is_flag=True,
              help="No default region of interest: match the whole patient in the CBCT's field of view.")
@_iso_options
@common_options
def match_3d3d(*, settings: Settings, reference: Path, verification: Path, structure_set: Path | None,
               verification_structure_set: Path | None, dof: str, roi: str | None, roi_structure: str | None,
               roi_margin: float, whole_volume: bool, plan: Path | None,
               isocenter: str | None, init_laser_iso: str | None, as_json: bool, out_dir: Path | None) -> int:
    """3D/3D: verification CBCT vs planning CT (MATCH-3).

    Default region of interest when a plan or an isocenter is known: the box around the target
    (PTV, else CTV, else GTV of --structure-set) grown by 25 mm, at least 60 x 60 x 50 mm half
    sizes, else that box around the planned isocenter; the couch, other objects and voxels outside
    the CBCT's field of view are always excluded.
    """
    from openigrt.workflow.matching import run_3d3d

    if roi_structure is not None and structure_set is None:
        raise click.UsageError("--roi-structure needs --structure-set")
    isos = _isos(plan, isocenter, init_laser_iso)
    roi_half = _parse_xyz(roi, "--roi")
    if roi_half is not None and isos["plan"] is None and isos["isocenter"] is None:
        raise click.BadParameter("--roi needs a planned isocenter (--plan or --isocenter)")
    outcome = run_3d3d(reference_ct=[reference], verification=[verification], dof=int(dof), roi_half_mm=roi_half,
                       verification_structure_set=verification_structure_set, structure_set=structure_set,
                       roi_structure=roi_structure, roi_margin_mm=roi_margin, whole_volume=whole_volume, **isos)
    return _finish(outcome, settings=settings, out_dir=out_dir, as_json=as_json)


@match_group.command("2d2d")
@click.option("--reference", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The two reference RT Images (DRRs).")
@click.option("--acquired", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The two acquired RT Images, in the same order.")
@click.option("--ct", "ct_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="Planning CT: refine against DRRs rendered on the fly (needed for --dof 6).")
@click.option("--dof", type=click.Choice(["3", "6"]), default="3", show_default=True,
              help="3 = translation; 6 = translations + rotations (2D/3D, needs --ct).")
@_iso_options
@common_options
def match_2d2d_cmd(*, settings: Settings, reference: tuple[Path, Path], acquired: tuple[Path, Path],
                   ct_dir: Path | None, dof: str, plan: Path | None, isocenter: str | None, init_laser_iso: str | None,
                   as_json: bool, out_dir: Path | None) -> int:
    """2D/2D: two projections ~90° apart vs their references → 3D translation (and rotations) (MATCH-2)."""
    from openigrt.workflow.matching import run_2d2d

    if dof == "6" and ct_dir is None:
        raise click.UsageError("--dof 6 needs --ct (DRRs are rendered from the planning CT)")
    outcome = run_2d2d(references=list(reference), acquired=list(acquired), ct=[ct_dir] if ct_dir else [],
                       dof=int(dof), **_isos(plan, isocenter, init_laser_iso))
    return _finish(outcome, settings=settings, out_dir=out_dir, as_json=as_json)


@match_group.command("2d")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--acquired", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--no-rotation", is_flag=True, help="Shift only (no in-plane rotation).")
@_iso_options
@common_options
def match_2d_cmd(*, settings: Settings, reference: Path, acquired: Path, no_rotation: bool, plan: Path | None,
                 isocenter: str | None, init_laser_iso: str | None, as_json: bool, out_dir: Path | None) -> int:
    """Simple 2D: one projection vs its reference → in-plane shift/rotation (MATCH-1)."""
    from openigrt.workflow.matching import run_2d

    outcome = run_2d(reference=reference, acquired=acquired, rotation=not no_rotation,
                     **_isos(plan, isocenter, init_laser_iso))
    return _finish(outcome, settings=settings, out_dir=out_dir, as_json=as_json)


@match_group.command("marker")
@click.option("--ct", "ct_dir", type=click.Path(exists=True, path_type=Path), required=True, help="Planning CT.")
@click.option("--structure-set", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Use its MARKER POINT ROIs instead of detecting markers in the CT.")
@click.option("--acquired", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@_iso_options
@common_options
def match_marker_cmd(*, settings: Settings, ct_dir: Path, structure_set: Path | None, acquired: tuple[Path, Path],
                     plan: Path | None, isocenter: str | None, init_laser_iso: str | None, as_json: bool,
                     out_dir: Path | None) -> int:
    """Marker match: markers found in two projections → 3D shift, per-marker residuals (MATCH-5)."""
    from openigrt.workflow.matching import run_marker

    outcome = run_marker(ct=[ct_dir], acquired=list(acquired), structure_set=structure_set,
                         **_isos(plan, isocenter, init_laser_iso))
    return _finish(outcome, settings=settings, out_dir=out_dir, as_json=as_json)


@click.command("detect-markers")
@click.option("--ct", "ct_dir", type=click.Path(exists=True, path_type=Path), required=True, help="Planning CT.")
@click.option("--structure-set", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Original structure set (referenced by the marker structure set written with --out).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the markers as a new RT Structure Set (IOD-3); needs --structure-set.")
@click.option("--json", "as_json", is_flag=True)
@common_options
def detect_markers_cmd(*, settings: Settings, ct_dir: Path, structure_set: Path | None, out_file: Path | None,
                       as_json: bool) -> int:
    """Find implanted gold markers in the planning CT (MATCH-4)."""
    from openigrt.match import detect_markers

    from openigrt.workflow.matching import read_ct, read_dicom

    t0 = time.perf_counter()
    ct, ct_ds = read_ct([ct_dir])
    found = detect_markers(ct.volume)
    written = None
    if out_file is not None:
        if structure_set is None:
            raise click.UsageError("--out needs --structure-set (the new set references the original one)")
        from openigrt.iod.build.common import write_file
        from openigrt.iod.build.structure_set import MarkerPoint, build_marker_structure_set

        original = read_dicom([structure_set])[0].dataset
        ds = build_marker_structure_set(
            planning_ct=ct_ds, original_structure_set=original, settings=settings,
            markers=[MarkerPoint(f"Marker{i + 1}", m.position_mm) for i, m in enumerate(found)])
        out_file.parent.mkdir(parents=True, exist_ok=True)
        written = str(write_file(ds, out_file))
    out = {"markers": [{"name": f"Marker{i + 1}", "position_mm": list(m.position_mm),
                        "peak_excess_hu": m.peak_excess_hu, "volume_mm3": m.volume_mm3} for i, m in enumerate(found)],
           "elapsed_s": time.perf_counter() - t0, "written": [written] if written else []}
    if as_json:
        print_json(out)
    else:
        con = console_out()
        con.print(f"{len(found)} marker(s) found in {ct_dir}")
        for m in out["markers"]:
            p = m["position_mm"]
            con.print(f"  {m['name']}: ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f}) mm, peak +{m['peak_excess_hu']:.0f} HU")
        if written:
            con.print(f"written: {written}")
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(match_group)
    group.add_command(detect_markers_cmd)
