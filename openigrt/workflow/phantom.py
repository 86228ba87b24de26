"""The phantom patient as DICOM (SPEC SIM-1): ``openigrt phantom --out DIR``.

Writes, from :func:`openigrt.sim.phantom.make_phantom` and engineer D's builders
(``openigrt.iod.build``)::

    DIR/dicom/CT/CT_0001.dcm …  planning CT series (HFS, one Frame of Reference)
    DIR/dicom/RS_PHANTOM.dcm RT Structure Set: BODY (EXTERNAL), PTV, one POINT ROI per gold marker
                             (RT ROI Interpreted Type MARKER + private Marker Subtype, PLAN-11);
                             Contour Image Sequence lists every CT slice
    DIR/dicom/RP_PHANTOM.dcm RT Plan: 4 static 6 MV treatment fields (one isocenter, one couch
                             position), an orthogonal kV setup pair (source 0° and 90°, SETUP,
                             KV\\Image, PLAN-3 rules) and a CBCT setup beam (STATIC, KV\\CBCT);
                             Referenced Structure Set; the kV beams reference their DRRs
    DIR/dicom/RI_DRR_<n>.dcm reference DRRs of the kV beams: full RT Image geometry (PLAN-5),
                             Referenced RT Plan + Beam, rendered by ``sim.drr`` with the very
                             ProjectionGeometry written into the attributes
    DIR/phantom.json         ground truth: isocenter, fiducial centres, PTV, UIDs, beams, files

The DICOM objects sit in ``DIR/dicom`` so that ``openigrt validate DIR/dicom`` sees only DICOM.
Everything but the UIDs and dates is deterministic for a given seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from openigrt.config import Settings
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
from openigrt.sim.phantom import Phantom, PhantomParams, make_phantom
from openigrt.uids import new_uid
from openigrt.workflow.acquire import rt_image_geometry, to_stored

__all__ = ["PhantomPatient", "write_phantom_patient", "TREATMENT_FIELDS", "KV_PAIR", "CBCT_BEAM",
           "TABLE_TOP_MM", "DICOM_SUBDIR"]

#: (beam number, name, gantry angle) of the 6 MV treatment fields.
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


@dataclass(frozen=True, eq=False)
class PhantomPatient:
    """What :func:`write_phantom_patient` wrote (datasets kept for in-process use)."""

    out_dir: Path
    phantom: Phantom
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


def _rois(ph: Phantom, z_values: np.ndarray) -> list[Roi]:
    body = Roi("BODY", "EXTERNAL", tuple(ph.body_contour(float(z)) for z in z_values),
               roi_display_color=(0, 255, 0))
    ptv_contours = [c for c in (ph.ptv_contour(float(z)) for z in z_values) if c is not None]
    ptv = Roi("PTV", "PTV", tuple(ptv_contours), roi_display_color=(255, 0, 0))
    markers = [Roi.point(f.name, f.center_mm, "MARKER", roi_display_color=(255, 255, 0))
               for f in ph.fiducials]
    return [body, ptv, *markers]


def _plan(rs: Dataset, ph: Phantom, settings: Settings, drr_uids: dict[int, str], when: datetime) -> Dataset:
    vrt, lng, lat = TABLE_TOP_MM
    setup = PlanSetup(isocenter_position_mm=ph.isocenter_mm, patient_position=ph.patient_position,
                      table_top_vertical_position_mm=vrt, table_top_longitudinal_position_mm=lng,
                      table_top_lateral_position_mm=lat)
    treatment = [TreatmentBeam(n, name, angle, _TREATMENT_JAWS, 100.0) for n, name, angle in TREATMENT_FIELDS]
    setup_beams = [SetupBeam(n, name, "KV", angle, _KV_JAWS, drr_uids[n]) for n, name, angle in KV_PAIR]
    setup_beams.append(SetupBeam(CBCT_BEAM[0], CBCT_BEAM[1], "CBCT", 0.0, _CBCT_JAWS))
    return build_rt_plan(structure_set=rs, treatment_beams=treatment, setup_beams=setup_beams, setup=setup,
                         settings=settings, rt_plan_label="PHANTOM", rt_plan_name="OpenIGRT phantom",
                         treatment_machine_name="VIRTUAL_LINAC", content_datetime=when)


def _drrs(ph: Phantom, plan: Dataset, settings: Settings, drr_uids: dict[int, str], when: datetime,
          say: Callable[[str], None]) -> dict[int, Dataset]:
    renderer = DrrRenderer(ph.volume)
    out = {}
    for number, name, angle in KV_PAIR:
        g = kv_geometry(angle, isocenter_mm=ph.isocenter_mm, patient_position=ph.patient_position)
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
                          progress: Callable[[str], None] | None = None,
                          content_datetime: datetime | None = None) -> PhantomPatient:
    """Build the phantom patient and write it under *out_dir* (see the module docstring).

    ``small`` uses :meth:`PhantomParams.small` (160 × 160 × 40 at 3 × 3 × 5 mm) for fast tests.
    """
    say = progress or (lambda _msg: None)
    when = content_datetime or datetime.now()
    params = PhantomParams.small(seed=seed) if small else PhantomParams(seed=seed)
    say(f"building the phantom CT ({params.columns}x{params.rows}x{params.slices}, seed {seed})")
    ph = make_phantom(params)
    ps = PatientStudy.new(patient_name="OPENIGRT^PHANTOM", patient_id=f"OIGRT-PHANTOM-{seed}", patient_sex="O",
                          uid_root=settings.uid_root, patient_birth_date="19700101", study_id="PHANTOM",
                          accession_number="", study_description="OpenIGRT virtual phantom", study_datetime=when)
    ct = build_planning_ct_series(
        volume=ph.volume, patient_study=ps, patient_position=ph.patient_position, settings=settings,
        couch=CouchPosition(table_height_mm=150.0, table_top_longitudinal_position_mm=0.0,
                            table_top_lateral_position_mm=0.0),
        acquisition=CTAcquisition(kvp=120.0, xray_tube_current_ma=250, exposure_time_ms=1000,
                                  convolution_kernel="STANDARD",
                                  reconstruction_diameter_mm=params.columns * params.pixel_mm),
        content_datetime=when)
    say("building the structure set and the plan")
    rs = build_structure_set(images=ct, rois=_rois(ph, ph.slice_z_mm()), settings=settings,
                             structure_set_label="PHANTOM", structure_set_name="OpenIGRT phantom",
                             content_datetime=when)
    drr_uids = {n: new_uid(settings.uid_root) for n, _, _ in KV_PAIR}
    plan = _plan(rs, ph, settings, drr_uids, when)
    drrs = _drrs(ph, plan, settings, drr_uids, when, say)
    say(f"writing {len(ct) + 2 + len(drrs)} files to {out_dir}")
    files = _write(out_dir / DICOM_SUBDIR, ct, rs, plan, drrs)
    truth = _truth(ph, ct, rs, plan, drrs, files, out_dir)
    (out_dir / "phantom.json").write_text(json.dumps(truth, indent=2) + "\n")
    return PhantomPatient(out_dir=out_dir, phantom=ph, ct=ct, structure_set=rs, plan=plan, drrs=drrs, truth=truth)


def _write(dicom_dir: Path, ct: list[Dataset], rs: Dataset, plan: Dataset, drrs: dict[int, Dataset]) -> list[Path]:
    ct_dir = dicom_dir / "CT"
    ct_dir.mkdir(parents=True, exist_ok=True)
    files = [write_file(ds, ct_dir / f"CT_{k + 1:04d}.dcm") for k, ds in enumerate(ct)]
    files.append(write_file(rs, dicom_dir / "RS_PHANTOM.dcm"))
    files.append(write_file(plan, dicom_dir / "RP_PHANTOM.dcm"))
    files += [write_file(ds, dicom_dir / f"RI_DRR_{n}.dcm") for n, ds in drrs.items()]
    return files


def _truth(ph: Phantom, ct: list[Dataset], rs: Dataset, plan: Dataset, drrs: dict[int, Dataset],
           files: list[Path], out_dir: Path) -> dict[str, Any]:
    beams = [{"beam_number": n, "name": name, "kind": "TREATMENT", "gantry_angle_deg": a} for n, name, a in TREATMENT_FIELDS]
    beams += [{"beam_number": n, "name": name, "kind": "KV", "kv_source_angle_deg": a,
               "reference_image_uid": str(drrs[n].SOPInstanceUID)} for n, name, a in KV_PAIR]
    beams.append({"beam_number": CBCT_BEAM[0], "name": CBCT_BEAM[1], "kind": "CBCT", "gantry_angle_deg": 0.0})
    return ph.truth() | {
        "uids": {"study_instance_uid": str(plan.StudyInstanceUID), "frame_of_reference_uid": str(plan.FrameOfReferenceUID),
                 "ct_series_instance_uid": str(ct[0].SeriesInstanceUID), "ct_sop_instance_uids": [str(d.SOPInstanceUID) for d in ct],
                 "structure_set_uid": str(rs.SOPInstanceUID), "plan_uid": str(plan.SOPInstanceUID),
                 "drr_uids": {str(n): str(d.SOPInstanceUID) for n, d in drrs.items()}},
        "patient_id": str(plan.PatientID),
        "table_top_mm": {"vertical": TABLE_TOP_MM[0], "longitudinal": TABLE_TOP_MM[1], "lateral": TABLE_TOP_MM[2]},
        "beams": beams,
        "files": [str(p.relative_to(out_dir)) for p in files],
    }
