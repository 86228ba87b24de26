"""A virtual patient as DICOM (SPEC SIM-1): ``openigrt phantom --out DIR [--patient NAME | --from-ct PATH]``.

Writes any :class:`~openigrt.sim.virtual_patient.VirtualPatient` — the synthetic phantom
(:func:`openigrt.sim.phantom.make_phantom`) or one built from a real CT
(:func:`openigrt.sim.virtual_patient.build_virtual_patient`) — with engineer D's builders
(``openigrt.iod.build``)::

    DIR/dicom/CT/CT_0001.dcm …  planning CT series (its Patient Position, one Frame of Reference)
    DIR/dicom/RS_PHANTOM.dcm RT Structure Set: BODY (EXTERNAL), PTV, the organs at risk (ORGAN) and
                             the couch (SUPPORT) of real-anatomy patients, one POINT ROI per gold
                             marker (RT ROI Interpreted Type MARKER + private Marker Subtype,
                             PLAN-11); Contour Image Sequence lists every CT slice
    DIR/dicom/RP_PHANTOM.dcm RT Plan: 4 static 6 MV treatment fields (one isocenter, one couch
                             position; named by where they enter the patient), an orthogonal kV
                             setup pair (source 0° and 90°, SETUP, KV\\Image, PLAN-3 rules) and a
                             CBCT setup beam (STATIC, KV\\CBCT); Referenced Structure Set; the kV
                             beams reference their DRRs; the Patient Setup carries the plan's
                             **couch offset**: Table Top Vertical/Longitudinal/Lateral Setup
                             Displacement (300A,01D2/01D4/01D6) = the table-top motion from the
                             reference mark at the isocenter (lasers on the tattoos) to the
                             planned isocenter at the isocenter, ``A (m - p)`` (``m`` reference
                             mark, ``p`` planned isocenter, ``A`` patient → table-top axes)
    DIR/dicom/RI_DRR_<n>.dcm reference DRRs of the kV beams: full RT Image geometry (PLAN-5),
                             Referenced RT Plan + Beam, rendered by ``sim.drr`` with the very
                             ProjectionGeometry written into the attributes
    DIR/phantom.json         ground truth: isocenter, reference mark, fiducial centres, PTV,
                             structures, couch, UIDs, beams, files (and for real anatomy the
                             site, how it was found, the CT's provenance)

The DICOM objects sit in ``DIR/dicom`` so that ``openigrt validate DIR/dicom`` sees only DICOM.
Everything but the UIDs and dates is deterministic for a given seed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.projection import kv_geometry
from openigrt.iod.build import (
    BeamLimitingDevice,
    CouchPosition,
    CTAcquisition,
    Jaws,
    PatientStudy,
    PlanSetup,
    Roi,
    SetupBeam,
    TreatmentBeam,
    build_planning_ct_series,
    build_reference_drr,
    build_rt_plan,
    build_structure_set,
    write_file,
)
from openigrt.sim.drr import DrrRenderer
from openigrt.sim.phantom import PhantomParams, make_phantom
from openigrt.sim.virtual_patient import VirtualPatient, from_phantom
from openigrt.uids import new_uid
from openigrt.workflow.acquire import rt_image_geometry, to_stored

__all__ = ["PhantomPatient", "write_patient", "write_phantom_patient", "write_virtual_patient", "setup_displacement",
           "PATIENTS",
           "field_name", "TREATMENT_FIELDS", "KV_PAIR", "CBCT_BEAM", "TABLE_TOP_MM", "DICOM_SUBDIR"]

#: Named patients of ``openigrt phantom --patient``.
PATIENTS = ("synthetic", "abdomen", "liver")
#: (beam number, gantry angle) of the 6 MV treatment fields; named by :func:`field_name`.
TREATMENT_FIELDS = ((1, "AP", 0.0), (2, "LT LAT", 90.0), (3, "PA", 180.0), (4, "RT LAT", 270.0))
#: (beam number, name, kV source angle) of the orthogonal kV setup pair.
KV_PAIR = ((11, "kV 0", 0.0), (12, "kV 90", 90.0))
#: (beam number, name) of the CBCT setup beam.
CBCT_BEAM = (13, "CBCT")
#: Planned couch (Table Top Vertical, Longitudinal, Lateral Position), mm — one couch position for all beams.
TABLE_TOP_MM = (-120.0, 850.0, 0.0)
#: Sub-directory of the output that holds the DICOM files.
DICOM_SUBDIR = "dicom"
_TREATMENT_JAWS = Jaws((-40.0, 40.0), (-45.0, 45.0))
_KV_JAWS = Jaws((-100.0, 100.0), (-100.0, 100.0))
_CBCT_JAWS = Jaws((-130.0, 130.0), (-100.0, 100.0))
_MARKER_COLOUR = (255, 255, 0)


@dataclass(frozen=True, eq=False)
class PhantomPatient:
    """What :func:`write_virtual_patient` wrote (datasets kept for in-process use).

    ``phantom`` is the :class:`~openigrt.sim.virtual_patient.VirtualPatient` (CT volume, isocenter,
    markers, structures) whatever its kind.
    """

    out_dir: Path
    phantom: VirtualPatient
    ct: list[Dataset] = field(repr=False)
    structure_set: Dataset = field(repr=False)
    plan: Dataset = field(repr=False)
    drrs: dict[int, Dataset] = field(repr=False)
    truth: dict[str, Any] = field(repr=False)

    @property
    def dicom_dir(self) -> Path:
        return self.out_dir / DICOM_SUBDIR

    @property
    def plan_path(self) -> Path:
        return self.dicom_dir / "RP_PHANTOM.dcm"

    @property
    def ct_dir(self) -> Path:
        return self.dicom_dir / "CT"


def field_name(gantry_deg: float, patient_position: str) -> str:
    """AP / PA / LT LAT / RT LAT: where a beam from *gantry_deg* enters a patient in *patient_position*.

    >>> field_name(90.0, "HFS"), field_name(90.0, "FFS"), field_name(0.0, "HFP"), field_name(0.0, "HFDL")
    ('LT LAT', 'RT LAT', 'PA', 'RT LAT')
    """
    g = np.deg2rad(gantry_deg)
    source = patient_axes_in_table_top(patient_position).T @ np.array([np.sin(g), 0.0, np.cos(g)])
    axis = int(np.argmax(np.abs(source)))
    return {(0, 1): "LT LAT", (0, -1): "RT LAT", (1, 1): "PA", (1, -1): "AP"}.get(
        (axis, int(np.sign(source[axis]))), f"G{gantry_deg:g}")


def setup_displacement(vp: VirtualPatient) -> tuple[float, float, float]:
    """(vertical, longitudinal, lateral) table-top motion from the reference mark to the isocenter, mm.

    With the lasers on the reference mark ``m``, the couch must move the patient by ``m − p`` so
    that the planned isocenter ``p`` reaches the machine isocenter: ``A (m − p)`` in IEC table-top
    axes (``A`` = patient → table-top axes of the patient position).
    """
    lat, lng, vrt = patient_axes_in_table_top(vp.patient_position) @ (
        np.asarray(vp.reference_mark_mm, float) - np.asarray(vp.isocenter_mm, float))
    return (round(float(vrt), 3), round(float(lng), 3), round(float(lat), 3))


def _rois(vp: VirtualPatient) -> list[Roi]:
    rois = [Roi(s.name, s.kind, s.contours, roi_display_color=s.color) for s in vp.structures if s.contours]
    rois += [Roi.point(f.name, point, "MARKER", roi_display_color=_MARKER_COLOUR)
             for f, point in zip(vp.fiducials, vp.marker_points)]
    return rois


def _plan(rs: Dataset, vp: VirtualPatient, settings: Settings, drr_uids: dict[int, str], when: datetime) -> Dataset:
    vrt, lng, lat = TABLE_TOP_MM
    setup = PlanSetup(isocenter_position_mm=vp.isocenter_mm, patient_position=vp.patient_position,
                      table_top_vertical_position_mm=vrt, table_top_longitudinal_position_mm=lng,
                      table_top_lateral_position_mm=lat, setup_displacement_mm=setup_displacement(vp))
    treatment = [TreatmentBeam(n, field_name(angle, vp.patient_position), angle, _TREATMENT_JAWS, 100.0)
                 for n, _, angle in TREATMENT_FIELDS]
    setup_beams = [SetupBeam(n, name, "KV", angle, _KV_JAWS, drr_uids[n]) for n, name, angle in KV_PAIR]
    setup_beams.append(SetupBeam(CBCT_BEAM[0], CBCT_BEAM[1], "CBCT", 0.0, _CBCT_JAWS))
    label = vp.name.upper()[:16]
    return build_rt_plan(structure_set=rs, treatment_beams=treatment, setup_beams=setup_beams, setup=setup,
                         settings=settings, rt_plan_label="PHANTOM" if vp.site == "phantom" else label,
                         rt_plan_name=f"OpenIGRT {vp.name}"[:64], treatment_machine_name="VIRTUAL_LINAC",
                         content_datetime=when)


def _drrs(vp: VirtualPatient, plan: Dataset, settings: Settings, drr_uids: dict[int, str], when: datetime,
          say: Callable[[str], None]) -> dict[int, Dataset]:
    renderer = DrrRenderer(vp.volume)
    out = {}
    for number, name, angle in KV_PAIR:
        g = kv_geometry(angle, isocenter_mm=vp.isocenter_mm, patient_position=vp.patient_position)
        say(f"rendering the reference DRR of beam {number} ({name}, {g.columns}x{g.rows})")
        stored, rescale = to_stored(renderer.render(g))
        jaws = (BeamLimitingDevice("ASYMX", _KV_JAWS.x_mm), BeamLimitingDevice("ASYMY", _KV_JAWS.y_mm))
        out[number] = build_reference_drr(
            pixel_array=stored, rt_image_label=f"DRR {name}"[:16], rt_image_description=f"DRR of {name}",
            geometry=rt_image_geometry(g, table_top_mm=TABLE_TOP_MM), plan=plan, referenced_beam_number=number,
            settings=settings, primary_dosimeter_unit="MINUTE", beam_limiting_devices=jaws, rescale=rescale,
            sop_instance_uid=drr_uids[number], content_datetime=when)
    return out


def write_phantom_patient(out_dir: Path, *, settings: Settings, seed: int = 0, small: bool = False,
                          patient_position: str | None = None, progress: Callable[[str], None] | None = None,
                          content_datetime: datetime | None = None) -> PhantomPatient:
    """Build the synthetic phantom patient and write it under *out_dir* (see the module docstring).

    ``small`` uses :meth:`PhantomParams.small` (160 × 160 × 40 at 3 × 3 × 5 mm) for fast tests.
    """
    say = progress or (lambda _msg: None)
    params = PhantomParams.small(seed=seed) if small else PhantomParams(seed=seed)
    say(f"building the phantom CT ({params.columns}x{params.rows}x{params.slices}, seed {seed})")
    vp = from_phantom(make_phantom(params), patient_position=patient_position)
    return write_virtual_patient(vp, out_dir, settings=settings, progress=progress, content_datetime=content_datetime,
                                 reconstruction_diameter_mm=params.columns * params.pixel_mm)


def write_patient(out_dir: Path, *, settings: Settings, patient: str = "synthetic", from_ct: Path | None = None,
                  patient_position: str = "HFS", site: str = "auto", seed: int = 0, small: bool = False,
                  progress: Callable[[str], None] | None = None,
                  content_datetime: datetime | None = None) -> PhantomPatient:
    """A named patient (:data:`PATIENTS`) or one built from any CT (*from_ct*), written under *out_dir*.

    Raises OpenIGRTError (one message naming the file) for an unusable CT or a *site* it lacks.
    """
    from openigrt.errors import OpenIGRTError
    from openigrt.sim.virtual_patient import build_virtual_patient
    from openigrt.workflow.ct_input import built_in_ct, load_ct

    if patient not in PATIENTS:
        raise OpenIGRTError(f"unknown patient {patient!r}; choose one of {', '.join(PATIENTS)} or --from-ct PATH")
    if from_ct is None and patient == "synthetic":
        return write_phantom_patient(out_dir, settings=settings, seed=seed, small=small,
                                     patient_position=None if patient_position == "HFS" else patient_position,
                                     progress=progress,
                                     content_datetime=content_datetime)
    say = progress or (lambda _msg: None)
    path = Path(from_ct) if from_ct is not None else built_in_ct(patient)
    name = patient if from_ct is None else _name_of(path)
    t0 = time.perf_counter()
    say(f"reading the CT {path}")
    loaded = load_ct(path)
    t1 = time.perf_counter()
    say(f"building the virtual patient ({'x'.join(map(str, loaded.volume.shape[::-1]))} voxels, {patient_position})")
    try:
        vp = build_virtual_patient(loaded.volume, patient_position=patient_position, site=site, seed=seed, name=name,
                                   source=loaded.provenance())
    except OpenIGRTError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    t2 = time.perf_counter()
    written = write_virtual_patient(vp, out_dir, settings=settings, progress=progress,
                                    content_datetime=content_datetime)
    timings = {"read_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2),
               "write_s": round(time.perf_counter() - t2, 2)}
    written.truth["timings_s"] = timings
    (out_dir / "phantom.json").write_text(json.dumps(written.truth, indent=2) + "\n")
    return written


def _name_of(path: Path) -> str:
    stem = path.name
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:16] or "CT"


def write_virtual_patient(vp: VirtualPatient, out_dir: Path, *, settings: Settings,
                          progress: Callable[[str], None] | None = None, content_datetime: datetime | None = None,
                          reconstruction_diameter_mm: float | None = None) -> PhantomPatient:
    """Write *vp* as planning CT, structure set, RT Plan and reference DRRs under *out_dir*."""
    say = progress or (lambda _msg: None)
    when = content_datetime or datetime.now()
    tag = "PHANTOM" if vp.site == "phantom" else vp.name.upper()
    ps = PatientStudy.new(patient_name=f"OPENIGRT^{tag}"[:64], patient_id=f"OIGRT-{tag}-{vp.seed}"[:64],
                          patient_sex="O", uid_root=settings.uid_root, patient_birth_date="19700101",
                          study_id=tag[:16], accession_number="", study_description=f"OpenIGRT virtual patient {vp.name}"[:64],
                          study_datetime=when)
    diameter = reconstruction_diameter_mm or vp.volume.shape[2] * vp.volume.spacing_mm[0]
    ct = build_planning_ct_series(
        volume=vp.volume, patient_study=ps, patient_position=vp.patient_position, settings=settings,
        couch=CouchPosition(table_height_mm=150.0, table_top_longitudinal_position_mm=0.0,
                            table_top_lateral_position_mm=0.0),
        acquisition=CTAcquisition(kvp=120.0, xray_tube_current_ma=250, exposure_time_ms=1000,
                                  convolution_kernel="STANDARD", reconstruction_diameter_mm=diameter),
        content_datetime=when)
    say("building the structure set and the plan")
    rs = build_structure_set(images=ct, rois=_rois(vp), settings=settings, structure_set_label=tag[:16],
                             structure_set_name=f"OpenIGRT {vp.name}"[:64], content_datetime=when)
    drr_uids = {n: new_uid(settings.uid_root) for n, _, _ in KV_PAIR}
    plan = _plan(rs, vp, settings, drr_uids, when)
    drrs = _drrs(vp, plan, settings, drr_uids, when, say)
    say(f"writing {len(ct) + 2 + len(drrs)} files to {out_dir}")
    files = _write(out_dir / DICOM_SUBDIR, ct, rs, plan, drrs)
    truth = _truth(vp, ct, rs, plan, drrs, files, out_dir)
    (out_dir / "phantom.json").write_text(json.dumps(truth, indent=2) + "\n")
    return PhantomPatient(out_dir=out_dir, phantom=vp, ct=ct, structure_set=rs, plan=plan, drrs=drrs, truth=truth)


def _write(dicom_dir: Path, ct: list[Dataset], rs: Dataset, plan: Dataset, drrs: dict[int, Dataset]) -> list[Path]:
    ct_dir = dicom_dir / "CT"
    ct_dir.mkdir(parents=True, exist_ok=True)
    files = [write_file(ds, ct_dir / f"CT_{k + 1:04d}.dcm") for k, ds in enumerate(ct)]
    files.append(write_file(rs, dicom_dir / "RS_PHANTOM.dcm"))
    files.append(write_file(plan, dicom_dir / "RP_PHANTOM.dcm"))
    files += [write_file(ds, dicom_dir / f"RI_DRR_{n}.dcm") for n, ds in drrs.items()]
    return files


def _truth(vp: VirtualPatient, ct: list[Dataset], rs: Dataset, plan: Dataset, drrs: dict[int, Dataset],
           files: list[Path], out_dir: Path) -> dict[str, Any]:
    beams = [{"beam_number": n, "name": field_name(a, vp.patient_position), "kind": "TREATMENT",
              "gantry_angle_deg": a} for n, _, a in TREATMENT_FIELDS]
    beams += [{"beam_number": n, "name": name, "kind": "KV", "kv_source_angle_deg": a,
               "reference_image_uid": str(drrs[n].SOPInstanceUID)} for n, name, a in KV_PAIR]
    beams.append({"beam_number": CBCT_BEAM[0], "name": CBCT_BEAM[1], "kind": "CBCT", "gantry_angle_deg": 0.0})
    vrt, lng, lat = setup_displacement(vp)
    return vp.truth() | {
        "uids": {"study_instance_uid": str(plan.StudyInstanceUID), "frame_of_reference_uid": str(plan.FrameOfReferenceUID),
                 "ct_series_instance_uid": str(ct[0].SeriesInstanceUID), "ct_sop_instance_uids": [str(d.SOPInstanceUID) for d in ct],
                 "structure_set_uid": str(rs.SOPInstanceUID), "plan_uid": str(plan.SOPInstanceUID),
                 "drr_uids": {str(n): str(d.SOPInstanceUID) for n, d in drrs.items()}},
        "patient_id": str(plan.PatientID),
        "table_top_mm": {"vertical": TABLE_TOP_MM[0], "longitudinal": TABLE_TOP_MM[1], "lateral": TABLE_TOP_MM[2]},
        "setup_displacement_mm": {"vertical": vrt, "longitudinal": lng, "lateral": lat,
                                  "convention": "table-top motion from the reference mark to the isocenter, "
                                                "A (reference_mark - isocenter)"},
        "beams": beams,
        "files": [str(p.relative_to(out_dir)) for p in files],
    }
