"""``openigrt match {3d3d,2d2d,2d,marker}`` and ``openigrt detect-markers`` (SPEC MATCH-1 … MATCH-6).

Every command prints a human summary or, with ``--json``, the stable schema documented in the
README section "Matching": ``match``, ``matrix`` (4×4 row-major, reference patient mm →
verification patient mm), ``couch`` (IEC 61217 table-top correction: ``vrt_mm``, ``lng_mm``,
``lat_mm`` and, for 6 DoF, ``rtn_deg``, ``pitch_deg``, ``roll_deg``), ``metric``, ``iterations``,
``stop_reason``, ``elapsed_s`` (+ per-marker residuals for marker matches).

Isocenter precedence for the couch correction (MATCH-6):

* planned isocenter (reference frame): ``--isocenter`` > ``--plan`` (first treatment beam, else
  first beam, Isocenter Position) > reference RT Images' Isocenter Position (private 3273 first)
  > the INITLASERISO point;
* INITLASERISO (verification frame): ``--init-laser-iso`` > the verification's isocenter structure
  set (``--verification-structure-set`` or an RT Structure Set with an INITLASERISO POINT found
  among the verification files) > acquired RT Images' Isocenter Position > the planned isocenter;
* patient position: ``--plan`` patient setup > reference images' Patient Position > ``HFS``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import EXIT_OK, common_options, console_out, print_json
from openigrt.config import Settings
from openigrt.errors import DicomInputError, PreconditionError


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


def _read_files(paths: Sequence[Path]) -> list[Any]:
    from openigrt.iod.dataset_io import read_paths

    files, problems = read_paths(paths)
    if not files:
        raise DicomInputError(f"no readable DICOM file in {', '.join(str(p) for p in paths)}"
                              + (f": {problems[0]}" if problems else ""))
    return files


def _ct(path: Path) -> tuple[Any, list[Any]]:
    """(CTSeries, CT datasets) of a directory or file list."""
    from openigrt.iod.ct_series import read_ct_series

    files = [f for f in _read_files([path]) if str(f.dataset.get("Modality", "")) == "CT"]
    if not files:
        raise DicomInputError(f"{path}: no CT image found")
    return read_ct_series(files), [f.dataset for f in files]


def _structure_sets(files: Sequence[Any]) -> list[Any]:
    from openigrt.iod.rt_structure_set import RTStructureSet

    return [RTStructureSet.from_dataset(f) for f in files if str(f.dataset.get("Modality", "")) == "RTSTRUCT"]


def _points(rs: Any, interpreted_type: str) -> list[tuple[str, tuple[float, float, float]]]:
    """POINT ROIs of *rs* whose RT ROI Interpreted Type is *interpreted_type*: (name, position)."""
    types = {o.referenced_roi_number: str(getattr(o.rt_roi_interpreted_type, "value", o.rt_roi_interpreted_type))
             for o in rs.observations}
    names = {r.roi_number: r.roi_name or f"ROI{r.roi_number}" for r in rs.rois}
    out = []
    for rc in rs.roi_contours:
        if types.get(rc.referenced_roi_number, "").upper() != interpreted_type:
            continue
        for c in rc.contours:
            if len(c.points_mm):
                p = c.points_mm[0]
                out.append((names.get(rc.referenced_roi_number, "?"), (float(p[0]), float(p[1]), float(p[2]))))
                break
    return out


def _structure_mask(rs: Any, name: str, volume: Any, margin_mm: float) -> Any:
    """Voxels of *volume* inside the CLOSED_PLANAR contours of ROI *name*, grown by *margin_mm*."""
    import numpy as np
    from matplotlib.path import Path as MplPath
    from scipy import ndimage

    numbers = [r.roi_number for r in rs.rois if (r.roi_name or "").upper() == name.upper()]
    contours = [c for rc in rs.roi_contours if rc.referenced_roi_number in numbers for c in rc.contours
                if len(c.points_mm) >= 3]
    if not contours:
        raise PreconditionError(f"{rs.source}: no closed contour for ROI {name!r}")
    nz, ny, nx = volume.shape
    mask = np.zeros(volume.shape, bool)
    jj, ii = np.mgrid[0:ny, 0:nx]
    for c in contours:
        ijk = volume.patient_to_index(c.points_mm)
        k = int(round(float(np.median(ijk[:, 2]))))
        if 0 <= k < nz:
            inside = MplPath(ijk[:, :2]).contains_points(np.column_stack([ii.ravel(), jj.ravel()]))
            mask[k] |= inside.reshape(ny, nx)
    if margin_mm > 0:
        dist = ndimage.distance_transform_edt(~mask, sampling=volume.spacing_mm[::-1])
        mask = dist <= margin_mm
    return mask


@dataclass(frozen=True)
class _Context:
    planned_iso: tuple[float, float, float] | None
    laser_iso: tuple[float, float, float] | None
    patient_position: str


def _plan_context(plan_path: Path | None) -> tuple[tuple[float, float, float] | None, str | None]:
    if plan_path is None:
        return None, None
    from openigrt.iod.rt_plan import RTPlan

    plan = RTPlan.from_dataset(_read_files([plan_path])[0])
    beams = sorted(plan.beams, key=lambda b: str(getattr(b.treatment_delivery_type, "value",
                                                            b.treatment_delivery_type)) != "TREATMENT")
    for b in beams:
        iso = b.isocenter_position_mm
        if iso is not None:
            return iso, plan.patient_position(b)
    raise PreconditionError(f"{plan_path}: no beam of the plan has an Isocenter Position (300A,012C)")


def _resolve(*, isocenter: str | None, init_laser_iso: str | None, plan: Path | None,
             ref_iso: tuple[float, float, float] | None, ver_iso: tuple[float, float, float] | None,
             ref_position: str | None) -> _Context:
    plan_iso, plan_pos = _plan_context(plan)
    planned = _parse_xyz(isocenter, "--isocenter") or plan_iso or ref_iso
    laser = _parse_xyz(init_laser_iso, "--init-laser-iso") or ver_iso
    planned = planned or laser
    laser = laser or planned
    return _Context(planned, laser, (plan_pos or ref_position or "HFS").upper())


def _couch(result: Any, ctx: _Context) -> dict[str, float] | None:
    if ctx.planned_iso is None or ctx.laser_iso is None:
        return None
    from openigrt.geometry.couch import couch_correction

    c = couch_correction(result.transform, planned_isocenter_mm=ctx.planned_iso, initlaseriso_mm=ctx.laser_iso,
                         patient_position=ctx.patient_position, six_dof=result.dof == 6)
    d = c.as_dict()
    if result.dof != 6:
        for k in ("rtn_deg", "pitch_deg", "roll_deg"):
            d.pop(k, None)
    return d


def _report(result: Any, ctx: _Context, *, as_json: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out = result.as_dict()
    out["couch"] = _couch(result, ctx)
    out["planned_isocenter_mm"] = None if ctx.planned_iso is None else list(ctx.planned_iso)
    out["initlaseriso_mm"] = None if ctx.laser_iso is None else list(ctx.laser_iso)
    out["patient_position"] = ctx.patient_position
    if extra:
        out.update(extra)
    if as_json:
        print_json(out)
    else:
        _print_human(out)
    return out


def _print_human(out: dict[str, Any]) -> None:
    con = console_out()
    t = out["translation_mm"]
    r = out["rotation_deg"]
    con.print(f"[bold]{out['match']}[/bold] match ({out['dof']} DoF): {out['stop_reason']}, "
              f"{out['iterations']} iterations, {out['metric_name']} = {out['metric']:.4f}, "
              f"overlap {100 * out['overlap_fraction']:.0f}%, {out['elapsed_s']:.2f} s")
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


def _write_reg(out_dir: Path | None, *, refs: Sequence[Any], vers: Sequence[Any], result: Any, sub_type: str,
               settings: Settings) -> Path | None:
    if out_dir is None or not settings.storage.store_registrations:
        return None
    from openigrt.iod.build.common import write_file
    from openigrt.iod.build.spatial_registration import build_spatial_registration

    out_dir.mkdir(parents=True, exist_ok=True)
    ds = build_spatial_registration(reference_images=refs, verification_images=vers, transform=result.transform,
                                    registration_sub_type=sub_type, settings=settings,
                                    content_label=f"MATCH_{sub_type}",
                                    content_description=f"OpenIGRT {result.match_type.value} match")
    return write_file(ds, out_dir / f"REG.{ds.SOPInstanceUID}.dcm")


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
@_iso_options
@common_options
def match_3d3d(*, settings: Settings, reference: Path, verification: Path, structure_set: Path | None,
               verification_structure_set: Path | None, dof: str, roi: str | None, roi_structure: str | None,
               roi_margin: float, plan: Path | None,
               isocenter: str | None, init_laser_iso: str | None, as_json: bool, out_dir: Path | None) -> int:
    """3D/3D: verification CBCT vs planning CT (MATCH-3)."""
    from openigrt.match import BoxROI, register_3d3d

    ref, ref_ds = _ct(reference)
    ver, ver_ds = _ct(verification)
    ver_files = _read_files([verification_structure_set]) if verification_structure_set else _read_files([verification])
    laser = None
    for rs in _structure_sets(ver_files):
        pts = _points(rs, "INITLASERISO")
        if pts:
            laser = pts[0][1]
            break
    ctx = _resolve(isocenter=isocenter, init_laser_iso=init_laser_iso, plan=plan, ref_iso=None, ver_iso=laser,
                   ref_position=ref.patient_position)
    box = None
    if roi is not None:
        half = _parse_xyz(roi, "--roi")
        if ctx.planned_iso is None:
            raise click.BadParameter("--roi needs a planned isocenter (--plan or --isocenter)")
        box = BoxROI(center_mm=ctx.planned_iso, half_size_mm=half)  # type: ignore[arg-type]
    mask = None
    if roi_structure is not None:
        if structure_set is None:
            raise click.UsageError("--roi-structure needs --structure-set")
        mask = _structure_mask(_structure_sets(_read_files([structure_set]))[0], roi_structure, ref.volume, roi_margin)
    result = register_3d3d(ref.volume, ver.volume, dof=int(dof), roi=box, reference_roi_mask=mask)
    reg = _write_reg(out_dir, refs=ref_ds, vers=ver_ds, result=result, sub_type="3D3D", settings=settings)
    _report(result, ctx, as_json=as_json, extra={"written": [str(reg)] if reg else []})
    return EXIT_OK


def _rt_images(paths: Sequence[Path]) -> list[tuple[Any, Any, Any]]:
    """(RTImage, ProjectionGeometry, dataset) per file."""
    from openigrt.geometry.projection import ProjectionGeometry
    from openigrt.iod.rt_image import RTImage

    out = []
    for f in _read_files(paths):
        img = RTImage.from_dataset(f)
        g = img.geometry
        try:
            geom = ProjectionGeometry.from_rt_image_attributes(
                f.dataset, isocenter_mm=g.effective_isocenter_position_mm,
                patient_position=g.effective_patient_position)
        except ValueError as exc:
            raise DicomInputError(f"{f.source}: {exc}") from None
        if img.pixels is None:
            raise DicomInputError(f"{f.source}: RT Image without pixel data")
        pix = img.pixels if img.pixels.ndim == 2 else img.pixels[0]
        out.append((img, geom, f.dataset, pix))
    return out  # type: ignore[return-value]


def _half_renderer(volume: Any) -> Any:
    """DRR renderer of the CT block-averaged 2× in-plane (the 2D/3D optimiser's working model)."""
    import numpy as np

    from openigrt.geometry.volume import Volume
    from openigrt.sim.drr import DrrRenderer

    a = volume.array.astype(np.float32)
    nz, ny, nx = a.shape
    a = a[:, : ny // 2 * 2, : nx // 2 * 2].reshape(nz, ny // 2, 2, nx // 2, 2).mean(axis=(2, 4))
    d = np.asarray(volume.direction)
    sx, sy, sz = volume.spacing_mm
    origin = np.asarray(volume.origin_mm) + d @ np.array([sx / 2, sy / 2, 0.0])
    return DrrRenderer(Volume(a, tuple(origin), (2 * sx, 2 * sy, sz), d))


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
    from openigrt.match import match_2d2d, match_2d3d

    if dof == "6" and ct_dir is None:
        raise click.UsageError("--dof 6 needs --ct (DRRs are rendered from the planning CT)")
    refs = _rt_images(reference)
    acqs = _rt_images(acquired)
    ctx = _resolve(isocenter=isocenter, init_laser_iso=init_laser_iso, plan=plan,
                   ref_iso=refs[0][0].geometry.effective_isocenter_position_mm,
                   ver_iso=acqs[0][0].geometry.effective_isocenter_position_mm,
                   ref_position=refs[0][0].geometry.effective_patient_position)
    iso = ctx.laser_iso or (0.0, 0.0, 0.0)
    renderer = _half_renderer(_ct(ct_dir)[0].volume) if ct_dir is not None else None
    ref_pix, acq_pix, geoms = [r[3] for r in refs], [a[3] for a in acqs], [a[1] for a in acqs]
    if dof == "6":
        result = match_2d3d(acq_pix, geoms, renderer, isocenter_mm=iso, references=ref_pix)
    else:
        result = match_2d2d(ref_pix, acq_pix, geoms, isocenter_mm=iso, renderer=renderer)
    reg = _write_reg(out_dir, refs=[r[2] for r in refs], vers=[a[2] for a in acqs], result=result,
                     sub_type="2D2D", settings=settings)
    _report(result, ctx, as_json=as_json, extra={"written": [str(reg)] if reg else []})
    return EXIT_OK


@match_group.command("2d")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--acquired", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--no-rotation", is_flag=True, help="Shift only (no in-plane rotation).")
@_iso_options
@common_options
def match_2d_cmd(*, settings: Settings, reference: Path, acquired: Path, no_rotation: bool, plan: Path | None,
                 isocenter: str | None, init_laser_iso: str | None, as_json: bool, out_dir: Path | None) -> int:
    """Simple 2D: one projection vs its reference → in-plane shift/rotation (MATCH-1)."""
    from openigrt.match import match_2d

    (r_img, _, r_ds, r_pix), = _rt_images([reference])
    (a_img, a_geom, a_ds, a_pix), = _rt_images([acquired])
    ctx = _resolve(isocenter=isocenter, init_laser_iso=init_laser_iso, plan=plan,
                   ref_iso=r_img.geometry.effective_isocenter_position_mm,
                   ver_iso=a_img.geometry.effective_isocenter_position_mm,
                   ref_position=r_img.geometry.effective_patient_position)
    result = match_2d(r_pix, a_pix, a_geom, isocenter_mm=ctx.laser_iso or (0.0, 0.0, 0.0), rotation=not no_rotation)
    reg = _write_reg(out_dir, refs=[r_ds], vers=[a_ds], result=result, sub_type="2D", settings=settings)
    _report(result, ctx, as_json=as_json, extra={"written": [str(reg)] if reg else []})
    return EXIT_OK


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
    import numpy as np

    from openigrt.match import detect_markers, match_markers, split_markers

    ct, ct_ds = _ct(ct_dir)
    if structure_set is not None:
        pts = _points(_structure_sets(_read_files([structure_set]))[0], "MARKER")
        if not pts:
            raise PreconditionError(f"{structure_set}: no MARKER POINT ROI")
        names, planned = [p[0] for p in pts], np.array([p[1] for p in pts])
    else:
        found = detect_markers(ct.volume)
        if not found:
            raise PreconditionError(f"{ct_dir}: no marker detected in the planning CT")
        names, planned = [f"Marker{i + 1}" for i in range(len(found))], np.array([m.position_mm for m in found])
    acqs = _rt_images(acquired)
    from openigrt.sim.drr import DrrRenderer

    marker_vol, anatomy_vol = split_markers(ct.volume)
    templates = [DrrRenderer(marker_vol).render(a[1]) for a in acqs]
    anatomy = [DrrRenderer(anatomy_vol).render(a[1]) for a in acqs]
    ctx = _resolve(isocenter=isocenter, init_laser_iso=init_laser_iso, plan=plan, ref_iso=None,
                   ver_iso=acqs[0][0].geometry.effective_isocenter_position_mm, ref_position=ct.patient_position)
    result = match_markers(planned, [a[3] for a in acqs], [a[1] for a in acqs], names=names, templates=templates,
                           anatomy=anatomy)
    reg = _write_reg(out_dir, refs=ct_ds, vers=[a[2] for a in acqs], result=result, sub_type="MARKER",
                     settings=settings)
    written = [str(reg)] if reg else []
    if out_dir is not None and settings.storage.store_markers:
        written += _write_marker_curves(out_dir, [a[2] for a in acqs], result)
    _report(result, ctx, as_json=as_json, extra={"written": written})
    return EXIT_OK


def _write_marker_curves(out_dir: Path, datasets: Sequence[Any], result: Any) -> list[str]:
    """The acquired RT Images with the matched marker positions as curves (IOD-5), one file each."""
    import copy

    from openigrt.iod.build.common import write_file
    from openigrt.iod.build.curves import MarkerPixel, add_marker_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for v, ds in enumerate(datasets):
        pix = [MarkerPixel(p[0], p[1], m.name) for m in result.markers if (p := m.pixel_per_view[v]) is not None]
        if not pix:
            continue
        copy_ds = copy.deepcopy(ds)
        add_marker_curves(copy_ds, pix)
        paths.append(str(write_file(copy_ds, out_dir / f"RI.{copy_ds.SOPInstanceUID}.dcm")))
    return paths


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

    t0 = time.perf_counter()
    ct, ct_ds = _ct(ct_dir)
    found = detect_markers(ct.volume)
    written = None
    if out_file is not None:
        if structure_set is None:
            raise click.UsageError("--out needs --structure-set (the new set references the original one)")
        from openigrt.iod.build.common import write_file
        from openigrt.iod.build.structure_set import MarkerPoint, build_marker_structure_set

        original = _read_files([structure_set])[0].dataset
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
