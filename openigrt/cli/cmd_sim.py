"""``openigrt phantom`` and ``openigrt acquire``: the virtual patient and the virtual imager (SPEC SIM-1 … SIM-3).

``phantom`` writes a complete, valid phantom patient (CT, structure set, plan, reference DRRs) and
``phantom.json`` (ground truth). ``acquire`` simulates kV / MV images or a CBCT of a plan's
patient with a known setup error and writes them as DICOM plus ``truth.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import EXIT_OK, common_options, console_err, console_out, print_json
from openigrt.config import Settings

_SHIFT_HELP = (
    "Setup error LAT,LNG,VRT[,RTN,PITCH,ROLL] (mm, degrees) in IEC 61217 table-top terms: the patient's "
    "displacement from the planned position, written as the table-top motion that would have caused it "
    "(+LAT = +Xt, the patient's left for HFS; +LNG = towards the gantry; +VRT = up). It is NOT the couch "
    "correction: matching should report the inverse motion (-LAT,-LNG,-VRT for a pure translation), "
    "which truth.json lists as expected_couch_correction. Default: no setup error.")


@click.command("phantom")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (DICOM files under OUT/dicom, ground truth in OUT/phantom.json).")
@click.option("--patient", type=click.Choice(["synthetic", "abdomen", "liver"]), default="synthetic",
              show_default=True, help="Built-in patient: the synthetic phantom, the real abdomen/pelvis CT shipped "
                                      "with OpenIGRT, or the real liver CT of the source tree's tests/data.")
@click.option("--from-ct", "from_ct", type=click.Path(exists=True, path_type=Path), default=None,
              metavar="DIR|FILE", help="Build the virtual patient from this CT instead: a DICOM series (directory or "
                                       "files) or a NIfTI / MetaImage / NRRD file (HU).")
@click.option("--position", "position", type=click.Choice(["HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR"]),
              default="HFS", show_default=True, help="Patient Position of the plan (the couch goes below the body).")
@click.option("--site", type=click.Choice(["auto", "pelvis", "liver", "abdomen"]), default="auto", show_default=True,
              help="Real anatomy: where the target goes (auto: pelvis when a bladder is found, else liver, else "
                   "the deepest soft tissue).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the phantom's texture / the markers.")
@click.option("--small", is_flag=True, help="Synthetic phantom only: coarse 160x160x40 grid (3 x 3 x 5 mm) for fast tests.")
@click.option("--json", "as_json", is_flag=True, help="Print phantom.json on stdout.")
@common_options
def phantom_command(*, settings: Settings, out: Path, patient: str, from_ct: Path | None, position: str, site: str,
                    seed: int, small: bool, as_json: bool) -> int:
    """Write a virtual patient: planning CT, structure set, RT Plan, reference DRRs (SIM-1)."""
    from openigrt.workflow.phantom import write_patient

    if small and (from_ct is not None or patient != "synthetic"):
        raise click.UsageError("--small applies to the synthetic phantom only")
    err = console_err()
    with err.status("building the virtual patient…") as status:
        result = write_patient(out, settings=settings, patient=patient, from_ct=from_ct, patient_position=position,
                               site=site, seed=seed, small=small, progress=lambda msg: status.update(msg))
    if as_json:
        print_json(result.truth)
        return EXIT_OK
    t = result.truth
    con = console_out()
    con.print(f"virtual patient {t['patient_id']} written to {out} ({len(t['files'])} DICOM files + phantom.json)")
    con.print(f"  planning CT: {t['grid']['shape_zyx'][0]} slices, isocenter {_xyz(t['isocenter_mm'])} mm "
              f"({t['patient_position']}), target site {t['site']}")
    con.print(f"  reference mark {_xyz(t['reference_mark_mm'])} mm; couch offset (vrt, lng, lat) "
              + _xyz([t["setup_displacement_mm"][k] for k in ("vertical", "longitudinal", "lateral")]) + " mm")
    for f in t["fiducials"]:
        con.print(f"  {f['name']}: {_xyz(f['center_mm'])} mm")
    con.print("  structures: " + ", ".join(s["name"] for s in t["structures"]))
    con.print("  beams: " + ", ".join(f"{b['beam_number']} {b['name']}" for b in t["beams"]))
    con.print(f"  check it: openigrt validate {out / 'dicom'} --match 2d2d")
    return EXIT_OK


def _xyz(v: Any) -> str:
    return ", ".join(f"{float(x):.2f}" for x in v)


def _parse_shift(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from openigrt.workflow.acquire import TableTopShift, parse_shift

    if value is None:
        return TableTopShift()
    try:
        return parse_shift(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("acquire")
@click.argument("kind", type=click.Choice(["kv", "mv", "cbct"]))
@click.option("--plan", "plan_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The RT Plan (file).")
@click.option("--ct", "ct_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The planning CT (directory or file list of its slices).")
@click.option("--beam", "beams", required=True, multiple=True, type=int,
              help="Beam number to image (repeatable: one RT Image per beam, one session).")
@click.option("--shift", callback=_parse_shift, default=None, metavar="LAT,LNG,VRT[,RTN,PITCH,ROLL]",
              help=_SHIFT_HELP)
@click.option("--random-shift", "random_shift", default=None, metavar="SD_MM[,SD_DEG]",
              help="Instead of --shift: draw the setup error at random (normal, seeded by --seed).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the noise (and of --random-shift).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--frame-of-reference", "for_uid", default=None, help="Session Frame of Reference UID (default: new).")
@click.option("--cbct-model", "cbct_model", type=click.Choice(["fast", "fdk"]), default="fast", show_default=True,
              help="For cbct: fast = image-domain model (~1 s); fdk = projections over the arc (bow-tie, beam "
              "hardening, scatter, noise) reconstructed by RTK's FDK (~20 s to load RTK, then the scan).")
@click.option("--no-couch-offset", "no_couch_offset", is_flag=True,
              help="Put the lasers on the planned isocenter (INITLASERISO = planned isocenter) instead of on the "
                   "reference marks followed by the plan's couch offset (Table Top Setup Displacement).")
@click.option("--deform", "deform", default=None, metavar="BLADDER,RECTUM,WEIGHT",
              help="Non-rigid change on top of the setup error (mm): bladder filling at its surface, rectum "
                   "filling pushing towards the target, weight loss at the skin; needs --structure-set (BLADDER, "
                   "RECTUM, BODY, PTV). truth.json then also gives the target's and the markers' truth.")
@click.option("--structure-set", "structure_set", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The plan's structure set (--deform).")
@click.option("--json", "as_json", is_flag=True, help="Print truth.json on stdout.")
@common_options
def acquire_command(*, settings: Settings, kind: str, plan_path: Path, ct_path: Path, beams: tuple[int, ...],
                    shift: Any, random_shift: str | None, seed: int, out: Path, for_uid: str | None,
                    cbct_model: str, no_couch_offset: bool, deform: str | None, structure_set: Path | None,
                    as_json: bool) -> int:
    """Simulate kV/MV images or a CBCT of the plan's patient with a known setup error (SIM-3).

    Writes RT Images (kv, mv) or verification CT slices + isocenter structure set (cbct) to OUT,
    and OUT/truth.json with the applied transform (4x4, planning CT patient mm -> verification
    patient mm) and the couch correction a correct match reports.
    """
    from openigrt.iod.ct_series import read_ct_series
    from openigrt.iod.dataset_io import read_file, read_paths
    from openigrt.uids import is_valid_uid
    from openigrt.workflow.acquire import acquire

    if random_shift is not None:
        if any(v != 0 for v in shift.as_dict().values()):
            raise click.UsageError("give either --shift or --random-shift, not both")
        shift = _random_shift(random_shift, seed)
    change_request = None
    if deform is not None:
        from openigrt.workflow.day_change import parse_deform

        if structure_set is None:
            raise click.UsageError("--deform needs --structure-set (the plan's RT Structure Set)")
        try:
            change_request = parse_deform(deform)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--deform") from None
    if for_uid is not None and not is_valid_uid(for_uid):
        raise click.BadParameter(f"not a valid UID: {for_uid!r}", param_hint="--frame-of-reference")
    err = console_err()
    with err.status("reading the plan and the CT…") as status:
        plan_ds = read_file(plan_path).dataset
        files, _ = read_paths([ct_path])
        ct_files = [f for f in files if str(f.dataset.get("Modality", "")) == "CT"]
        if not ct_files:
            from openigrt.errors import DicomInputError
            raise DicomInputError(f"{ct_path}: no CT image found")
        ct = read_ct_series(ct_files)
        change = None
        if change_request is not None and structure_set is not None:
            change = _day_change(structure_set, ct.volume, change_request, settings)
        result = acquire(kind=kind, plan_dataset=plan_ds, ct_volume=ct.volume, beam_numbers=beams, shift=shift,
                         out_dir=out, settings=settings, seed=seed, frame_of_reference_uid=for_uid,
                         cbct_model=cbct_model, couch_offset=not no_couch_offset, day_change=change,
                         progress=lambda msg: status.update(msg))
    if as_json:
        print_json(result.truth)
        return EXIT_OK
    t = result.truth
    con = console_out()
    con.print(f"{kind.upper()} acquisition written to {out}: {len(result.files)} file(s) + truth.json")
    con.print("  setup error (table-top terms): " + ", ".join(f"{k} {v:+.2f}" for k, v in t["shift_table_top"].items()))
    con.print(f"  INITLASERISO {_xyz(t['initlaseriso_mm'])} mm (planned isocenter {_xyz(t['planned_isocenter_mm'])} mm)")
    con.print("  expected couch correction:     " + ", ".join(
        f"{k} {v:+.2f}" for k, v in t["expected_couch_correction"].items()))
    return EXIT_OK


def _day_change(structure_set: Path, ct: Any, request: dict[str, float], settings: Settings) -> Any:
    import numpy as np

    from openigrt.iod.dataset_io import read_file
    from openigrt.iod.rt_structure_set import RTStructureSet
    from openigrt.workflow.day_change import day_change
    from openigrt.workflow.matching import points_of_type

    rs = RTStructureSet.from_dataset(read_file(structure_set))
    markers = np.array([p for _, p in points_of_type(rs, "MARKER")]).reshape(-1, 3)
    return day_change(ct, rs, marker_points_mm=markers, **request)


def _random_shift(text: str, seed: int) -> Any:
    import numpy as np

    from openigrt.workflow.acquire import TableTopShift

    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected SD_MM[,SD_DEG], got {text!r}", param_hint="--random-shift") from None
    if len(parts) not in (1, 2) or any(p < 0 for p in parts):
        raise click.BadParameter(f"expected SD_MM[,SD_DEG] >= 0, got {text!r}", param_hint="--random-shift")
    sd_mm, sd_deg = parts[0], (parts[1] if len(parts) == 2 else 0.0)
    rng = np.random.default_rng(seed)
    t = rng.normal(0.0, sd_mm, 3) if sd_mm > 0 else np.zeros(3)
    r = rng.normal(0.0, sd_deg, 3) if sd_deg > 0 else np.zeros(3)
    return TableTopShift(*(float(round(v, 2)) for v in (*t, *r)))


def register(group: click.Group) -> None:
    group.add_command(phantom_command)
    group.add_command(acquire_command)
