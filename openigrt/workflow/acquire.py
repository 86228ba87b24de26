"""Virtual acquisitions written as DICOM (SPEC SIM-3, IOD-4, IOD-6, IOD-2): ``openigrt acquire``.

Given a plan, its planning CT and a **setup error**, simulate what the linac's imagers would
record and write it as the objects a real imaging node stores:

* ``kv`` / ``mv``: one acquired RT Image per requested beam (``sim.acquire`` on the CT, geometry
  from the beam: kV source angle / MV gantry angle, isocenter, couch angle, patient position);
* ``cbct``: verification CT slices (``sim.cbct``) plus the isocenter structure set (INITLASERISO,
  ACQ_ISOCENTER) linked to them.

All images of one call share one new Frame of Reference (the treatment session) and one setup
error. ``truth.json`` records the applied transform (4×4, **reference-CT patient mm →
verification patient mm**), the shift as given, and the couch correction matching should report
(:func:`~openigrt.geometry.couch.couch_correction`).

The setup error (``--shift LAT,LNG,VRT[,RTN,PITCH,ROLL]``) is given in IEC 61217 table-top terms
as **the displacement of the patient from the planned position**, written as the table-top motion
that would have caused it: ``LAT=+3`` means the patient lies where they would be had the table top
moved 3 mm along +Xt (the patient's left for HFS). The couch correction is the motion that undoes
it: for pure translations ``(-LAT, -LNG, -VRT)``. Rotations are about the planned isocenter,
``R = Rz(RTN) Rx(PITCH) Ry(ROLL)`` in table-top axes.

**Couch offset (clinical setup).** As on a real linac the lasers are first put on the patient's
reference marks (tattoos), then the couch is moved by the plan's offset — the Patient Setup's
Table Top Vertical/Longitudinal/Lateral Setup Displacement ``D`` (300A,01D2/01D4/01D6, table-top
axes), which the virtual patients of ``openigrt phantom`` carry. The session's patient coordinates
(the Frame of Reference of the acquired images) are attached to the table top, oriented as the
patient, with their origin at the point the lasers marked before the couch moved (the reference
mark). The machine isocenter during the acquisition is then at **INITLASERISO**
``q = −Aᵀ D`` (``A`` = patient → table-top axes), while the planned isocenter is ``p`` in the
planning CT's coordinates; for a plan without a setup displacement the reference mark is the
isocenter and ``q = (0, 0, 0)``. ``couch_offset=False`` (``--no-couch-offset``) keeps the old
convention ``q = p``. The acquired RT Images' Isocenter Position, the CBCT grid's centre and the
INITLASERISO / ACQ_ISOCENTER points all record ``q``; the transform in ``truth.json`` maps
reference → verification coordinates including the offset: ``T(x) = R (x − p) + q + Aᵀ s``
(``s`` the setup error's translation), so ``T(p) = q`` exactly when the setup is perfect (zero
correction, MATCH-6) and the expected correction is ``couch_correction(T, p, q)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from openigrt.config import Settings
from openigrt.errors import PreconditionError
from openigrt.geometry.couch import CouchCorrection, couch_correction, setup_error_from_table_top
from openigrt.geometry.iec61217 import patient_axes_in_table_top
from openigrt.geometry.projection import ProjectionGeometry, kv_geometry, mv_geometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.iod.build import (
    BeamLimitingDevice,
    CouchPosition,
    CTAcquisition,
    Exposure,
    IsocenterPoints,
    Rescale,
    RTImageGeometry,
    build_acquired_rt_image,
    build_isocenter_structure_set,
    build_verification_ct_series,
    write_file,
)
from openigrt.iod.rt_plan import Beam, RTPlan
from openigrt.sim.acquire import KV_IMAGING, MV_IMAGING, acquire_projection
from openigrt.sim.cbct import CbctParams, simulate_cbct
from openigrt.sim.treatment_couch import CouchSpec
from openigrt.sim.drr import KV_ATTENUATION, MV_ATTENUATION, DrrRenderer
from openigrt.uids import new_uid
from openigrt.workflow.day_change import DayChange

__all__ = ["TableTopShift", "AcquisitionResult", "acquire", "rt_image_geometry", "parse_shift", "initlaseriso_of", "KINDS",
           "CBCT_MODELS",
           "PIXEL_SCALE", "DEFAULT_JAWS_MM"]

#: What ``openigrt acquire`` can simulate.
KINDS = ("kv", "mv", "cbct")
#: CBCT simulations: ``fast`` = image-domain model (sim.cbct), ``fdk`` = projections + FDK by RTK
#: (sim.cbct_fdk). ``fast`` is the default: the fdk model needs ~20 s to load RTK in each new process
#: plus its projections and reconstruction (benchmarks/cbct_bench.py).
CBCT_MODELS = ("fast", "fdk")
DEFAULT_CBCT_MODEL = "fast"
#: Stored pixel value per unit of the simulated log image (line integral); Rescale Slope = 1 / this.
PIXEL_SCALE = 5000.0
#: Jaws (ASYMX, ASYMY) written when the plan beam has none, mm at the isocenter plane.
DEFAULT_JAWS_MM = ((-100.0, 100.0), (-100.0, 100.0))
#: kV exposure written into the acquired images (Exposure Sequence): kVp, mA, ms.
KV_EXPOSURE = (100.0, 80, 25)
#: MV exposure: nominal energy (kV), MU.
MV_EXPOSURE = (6000.0, 1.0)
#: kV technique factor of a lateral view (the beam runs along the patient's left-right axis: its
#: patient x component above :data:`LATERAL_SIN`, whatever the gantry angle and Patient Position):
#: clinical pelvis protocols give the lateral kV image about ten times the mAs of the AP one (the
#: same as the matching benchmark); exposure time and simulated quanta scale together.
LATERAL_KV_FACTOR = 10
LATERAL_SIN = 0.7


@dataclass(frozen=True)
class TableTopShift:
    """A setup error in IEC table-top terms (see the module docstring for the sign convention)."""

    lat_mm: float = 0.0
    lng_mm: float = 0.0
    vrt_mm: float = 0.0
    rtn_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ("lat_mm", "lng_mm", "vrt_mm", "rtn_deg", "pitch_deg", "roll_deg")}

    def transform(self, *, planned_isocenter_mm: Sequence[float], patient_position: str,
                  initlaseriso_mm: Sequence[float] | None = None) -> RigidTransform:
        """The setup error ``T`` (reference → verification patient mm) for this plan.

        ``initlaseriso_mm``: the machine isocenter in the verification frame (default: the planned
        isocenter, no couch offset).
        """
        return setup_error_from_table_top(**self.as_dict(), planned_isocenter_mm=planned_isocenter_mm,
                                          patient_position=patient_position, initlaseriso_mm=initlaseriso_mm)


def initlaseriso_of(plan: RTPlan, beam: Beam, planned_isocenter_mm: Sequence[float], patient_position: str, *,
                    couch_offset: bool = True) -> tuple[float, float, float]:
    """INITLASERISO of a session: ``−Aᵀ D`` from the Patient Setup's setup displacement ``D`` (module docstring)."""
    if not couch_offset:
        return tuple(float(v) for v in planned_isocenter_mm)  # type: ignore[return-value]
    setup = plan.patient_setup(beam.referenced_patient_setup_number)
    if setup is None and len(plan.patient_setups) == 1:
        setup = plan.patient_setups[0]
    vrt, lng, lat = (setup.setup_displacement_mm if setup and setup.setup_displacement_mm else (0.0, 0.0, 0.0))
    d = np.array([lat or 0.0, lng or 0.0, vrt or 0.0], dtype=float)
    q = -(patient_axes_in_table_top(patient_position).T @ d)
    return tuple(float(round(v, 6)) + 0.0 for v in q)  # type: ignore[return-value]


def parse_shift(text: str) -> TableTopShift:
    """Parse ``LAT,LNG,VRT[,RTN,PITCH,ROLL]`` (mm, degrees); ValueError with the reason.

    >>> parse_shift("3,-2,1.5").as_dict()["lng_mm"]
    -2.0
    """
    parts = [p for p in text.replace(" ", "").split(",") if p != ""]
    if len(parts) not in (3, 6):
        raise ValueError(f"expected LAT,LNG,VRT or LAT,LNG,VRT,RTN,PITCH,ROLL, got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"not a number in {text!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError(f"values must be finite, got {text!r}")
    return TableTopShift(*values)


@dataclass(frozen=True)
class AcquisitionResult:
    """What one ``acquire`` call wrote."""

    kind: str
    files: tuple[Path, ...]
    truth_path: Path
    truth: dict[str, Any] = field(repr=False)


# ------------------------------------------------------------------------------------------ helpers
def rt_image_geometry(g: ProjectionGeometry, *, table_top_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                      beam_limiting_device_angle_deg: float = 0.0) -> RTImageGeometry:
    """The builder's :class:`RTImageGeometry` for a :class:`ProjectionGeometry` (same numbers, PS3.3 C.8.8.2).

    ``table_top_mm`` = (vertical, longitudinal, lateral) Table Top positions (the couch readings).
    """
    vrt, lng, lat = table_top_mm
    return RTImageGeometry(
        gantry_angle_deg=g.gantry_angle_deg, beam_limiting_device_angle_deg=beam_limiting_device_angle_deg,
        patient_support_angle_deg=g.patient_support_angle_deg, table_top_vertical_position_mm=vrt,
        table_top_longitudinal_position_mm=lng, table_top_lateral_position_mm=lat,
        isocenter_position_mm=g.isocenter_mm, patient_position=g.patient_position.value,
        radiation_machine_sad_mm=g.sad_mm, rt_image_sid_mm=g.sid_mm,
        image_plane_pixel_spacing_mm=g.pixel_spacing_mm, rt_image_position_mm=g.rt_image_position_mm,  # type: ignore[arg-type]
        xray_image_receptor_translation_mm=g.receptor_translation_mm,  # type: ignore[arg-type]
        xray_image_receptor_angle_deg=g.receptor_angle_deg,
    )


def to_stored(image: NDArray[np.floating]) -> tuple[NDArray[np.uint16], Rescale]:
    """uint16 stored values and the Rescale (slope 1/:data:`PIXEL_SCALE`) of a log / line-integral image."""
    stored = np.clip(np.rint(np.asarray(image, dtype=np.float64) * PIXEL_SCALE), 0, 65535).astype(np.uint16)
    return stored, Rescale(1.0 / PIXEL_SCALE, 0.0, "US")


def beam_jaws(beam: Beam) -> tuple[BeamLimitingDevice, ...]:
    """ASYMX/ASYMY (or X/Y) jaws of the beam's first control point as Exposure Sequence devices."""
    cp = beam.first_control_point
    found: dict[str, tuple[float, float]] = {}
    for d in (cp.beam_limiting_device_positions if cp else ()):
        kind = str(d.rt_beam_limiting_device_type).upper()
        if kind in ("X", "ASYMX", "Y", "ASYMY") and len(d.leaf_jaw_positions_mm) == 2:
            found["ASYM" + kind[-1]] = (float(d.leaf_jaw_positions_mm[0]), float(d.leaf_jaw_positions_mm[1]))
    x = found.get("ASYMX", DEFAULT_JAWS_MM[0])
    y = found.get("ASYMY", DEFAULT_JAWS_MM[1])
    return BeamLimitingDevice("ASYMX", x), BeamLimitingDevice("ASYMY", y)


def _table_top(beam: Beam) -> tuple[float, float, float]:
    cp = beam.first_control_point
    if cp is None:
        return (0.0, 0.0, 0.0)
    return (cp.table_top_vertical_position_mm or 0.0, cp.table_top_longitudinal_position_mm or 0.0,
            cp.table_top_lateral_position_mm or 0.0)


def _beam_context(plan: RTPlan, number: int) -> tuple[Beam, tuple[float, float, float], str]:
    beam = plan.beam(number)
    if beam is None:
        known = ", ".join(str(b.beam_number) for b in plan.beams)
        raise PreconditionError(f"{plan.source}: the plan has no beam {number} (beams: {known})")
    iso = beam.isocenter_position_mm
    if iso is None:
        raise PreconditionError(f"{plan.source}: beam {number} has no Isocenter Position (300A,012C)")
    position = plan.patient_position(beam)
    if not position:
        raise PreconditionError(f"{plan.source}: no Patient Position (0018,5100) for beam {number}")
    return beam, iso, position


def _geometry(kind: str, beam: Beam, iso: tuple[float, float, float], position: str) -> ProjectionGeometry:
    gantry = beam.gantry_angle_deg
    if gantry is None:
        raise PreconditionError(f"beam {beam.beam_number} has no Gantry Angle (300A,011E)")
    make = kv_geometry if kind == "kv" else mv_geometry
    return make(float(gantry), isocenter_mm=iso, patient_position=position,
                patient_support_angle_deg=float(beam.patient_support_angle_deg or 0.0))


# ------------------------------------------------------------------------------------------ acquire
def acquire(
    *,
    kind: str,
    plan_dataset: Dataset,
    ct_volume: Volume,
    beam_numbers: Sequence[int],
    shift: TableTopShift,
    out_dir: Path,
    settings: Settings,
    seed: int = 0,
    frame_of_reference_uid: str | None = None,
    cbct_params: CbctParams | None = None,
    cbct_model: str = DEFAULT_CBCT_MODEL,
    ct_couch: CouchSpec = "auto",
    couch_offset: bool = True,
    day_change: DayChange | None = None,
    progress: Callable[[str], None] | None = None,
    content_datetime: datetime | None = None,
) -> AcquisitionResult:
    """Simulate and write one acquisition session (see the module docstring).

    Parameters
    ----------
    kind
        ``kv``, ``mv`` or ``cbct``.
    plan_dataset, ct_volume
        The RT Plan and its planning CT (HU, reference patient mm).
    beam_numbers
        Beams to image (one RT Image each); for ``cbct`` exactly one (the CBCT setup beam).
    shift
        The setup error in table-top terms.
    frame_of_reference_uid
        The session's Frame of Reference (default: a new UID).
    cbct_model
        One of :data:`CBCT_MODELS`.
    ct_couch
        Where the planning CT's couch is (removed from the CBCT, which shows the treatment couch
        instead): a mask on the CT grid, a callable on patient points, ``"auto"`` (outside the body)
        or None (keep it); see :mod:`openigrt.sim.treatment_couch`.
    couch_offset
        Lasers on the reference marks, couch moved by the plan's setup displacement (default);
        False: INITLASERISO = the planned isocenter.
    day_change
        A non-rigid change of the patient (:mod:`openigrt.workflow.day_change`) imaged on top of
        the rigid setup error; truth.json then also holds the target's and the markers' truth.

    Raises
    ------
    PreconditionError
        Unknown beam, missing isocenter / patient position / gantry angle, several CBCT beams.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if cbct_model not in CBCT_MODELS:
        raise ValueError(f"CBCT model must be one of {CBCT_MODELS}, got {cbct_model!r}")
    if not beam_numbers:
        raise PreconditionError("give at least one --beam")
    plan = RTPlan.from_dataset(plan_dataset, creator_prefix=settings.private_creator)
    contexts = [_beam_context(plan, n) for n in beam_numbers]
    isos = {c[1] for c in contexts}
    positions = {c[2] for c in contexts}
    if len(isos) != 1 or len(positions) != 1:
        raise PreconditionError(f"the beams {list(beam_numbers)} have different isocenters or patient positions; "
                                "acquire them in separate calls")
    iso, position = contexts[0][1], contexts[0][2]
    laser = initlaseriso_of(plan, contexts[0][0], iso, position, couch_offset=couch_offset)
    transform = shift.transform(planned_isocenter_mm=iso, patient_position=position, initlaseriso_mm=laser)
    session_for = frame_of_reference_uid or new_uid(settings.uid_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    when = content_datetime or datetime.now()
    say = progress or (lambda _msg: None)
    if day_change is not None:
        from openigrt.sim.deformation import warp

        say("deforming the planning CT into the patient of the day")
        ct_volume = warp(ct_volume, day_change.deformation)
    if kind == "cbct":
        if len(contexts) != 1:
            raise PreconditionError("a CBCT acquisition images one beam (the CBCT setup beam)")
        files, extra = _acquire_cbct(plan_dataset, ct_volume, (contexts[0][0], laser, contexts[0][2]), transform,
                                     session_for, out_dir, settings, seed, cbct_params or CbctParams(), when, say,
                                     _CbctModel(cbct_model, ct_couch, tuple(float(v) for v in iso)))
    else:
        files, extra = _acquire_projections(kind, plan_dataset, ct_volume, contexts, laser, transform, session_for,
                                            out_dir, settings, seed, when, say)
    correction = couch_correction(transform, planned_isocenter_mm=iso, initlaseriso_mm=laser, patient_position=position)
    truth = _truth(kind, plan, iso, laser, position, shift, transform, correction, session_for, seed, files,
                   out_dir) | extra
    if day_change is not None:
        truth |= _day_change_truth(day_change, transform, iso, laser, position)
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    return AcquisitionResult(kind=kind, files=tuple(files), truth_path=truth_path, truth=truth)


def _acquire_projections(kind: str, plan_ds: Dataset, ct: Volume, contexts: list[tuple[Beam, Any, str]],
                         laser: tuple[float, float, float], transform: RigidTransform, session_for: str, out_dir: Path, settings: Settings, seed: int,
                         when: datetime, say: Callable[[str], None]) -> tuple[list[Path], dict[str, Any]]:
    params = KV_IMAGING if kind == "kv" else MV_IMAGING
    renderer = DrrRenderer(ct, attenuation=KV_ATTENUATION if kind == "kv" else MV_ATTENUATION)
    files: list[Path] = []
    images: list[dict[str, Any]] = []
    for index, (beam, iso, position) in enumerate(contexts):
        g = _geometry(kind, beam, laser, position)  # the machine isocenter, verification coordinates
        factor = _technique_factor(kind, g)
        view_params = replace(params, photons_per_pixel=params.photons_per_pixel * factor)
        say(f"rendering {kind.upper()} image of beam {beam.beam_number} (gantry/source {g.gantry_angle_deg:g} deg)")
        shot = acquire_projection(renderer, g, setup_error=transform, params=view_params, seed=seed + index)
        stored, rescale = to_stored(shot.image)
        label = f"{kind.upper()}{beam.beam_number}"[:16]
        jaws = beam_jaws(beam)
        if kind == "kv":
            kvp, ma, ms = KV_EXPOSURE
            ms *= factor
            exposure = Exposure(kvp=kvp, meterset_exposure=ms / 60000.0, beam_limiting_devices=jaws,
                                xray_tube_current_ma=ma, exposure_time_ms=ms)
            extra: dict[str, Any] = {}
        else:
            energy, mu = MV_EXPOSURE
            exposure = Exposure(kvp=energy, meterset_exposure=mu, beam_limiting_devices=jaws)
            extra = {"start_cumulative_meterset_weight": 0.0}
        ds = build_acquired_rt_image(
            pixel_array=stored, imager=kind.upper(), rt_image_label=label,
            rt_image_description=f"OpenIGRT virtual {kind.upper()} image, seed {seed + index}",
            geometry=rt_image_geometry(g, table_top_mm=_table_top(beam),
                                       beam_limiting_device_angle_deg=_collimator(beam)),
            exposure=exposure, plan=plan_ds, referenced_beam_number=beam.beam_number,
            frame_of_reference_uid=session_for, settings=settings, rescale=rescale, instance_number=index + 1,
            content_datetime=when, **extra)
        path = write_file(ds, out_dir / f"RI_{label}.dcm")
        files.append(path)
        images.append({"file": path.name, "sop_instance_uid": str(ds.SOPInstanceUID), "beam_number": beam.beam_number,
                       "gantry_angle_deg": g.gantry_angle_deg, "seed": seed + index,
                       "planned_isocenter_pixel": g.project(transform.apply([iso]))[0].round(4).tolist(),
                       "rt_image_attributes": g.as_rt_image_attributes()})
    return files, {"images": images}


def _technique_factor(kind: str, g: ProjectionGeometry) -> int:
    """mAs factor of a view: :data:`LATERAL_KV_FACTOR` for kV views through the patient's sides, else 1."""
    lateral = abs(float(g.beam_axis_patient()[0])) > LATERAL_SIN
    return LATERAL_KV_FACTOR if kind == "kv" and lateral else 1


def _collimator(beam: Beam) -> float:
    cp = beam.first_control_point
    return float(cp.beam_limiting_device_angle_deg or 0.0) if cp else 0.0


@dataclass(frozen=True)
class _CbctModel:
    name: str
    ct_couch: Any
    #: The plan's isocenter (reference coordinates): the treatment couch goes under the patient's
    #: resting point below it; the context's isocenter is INITLASERISO (verification coordinates).
    planned_isocenter_mm: tuple[float, float, float] | None = None


def _simulate_cbct(ct: Volume, context: tuple[Beam, Any, str], transform: RigidTransform, seed: int,
                   params: CbctParams, model: _CbctModel) -> tuple[Volume, dict[str, Any]]:
    beam, iso, position = context  # iso: INITLASERISO
    couch_angle = float(beam.patient_support_angle_deg or 0.0)
    if model.name == "fdk":
        from openigrt.sim.cbct_fdk import CbctScan, simulate_cbct_fdk

        scan = CbctScan()
        r = simulate_cbct_fdk(ct, setup_error=transform, isocenter_mm=iso, params=params, scan=scan, seed=seed,
                              patient_position=position, ct_couch=model.ct_couch, patient_support_angle_deg=couch_angle,
                              planned_isocenter_mm=model.planned_isocenter_mm)
        return r.volume, {"model": "fdk", "scan": {"fan": scan.fan, "views": scan.views, "arc_deg": scan.arc,
                                                   "kvp": scan.kvp, "mas": scan.mas},
                          "fov_radius_mm": r.fov_radius_mm, "timing_s": {"projections": round(r.projections_s, 3),
                                                                         "reconstruction": round(r.reconstruction_s, 3),
                                                                         "rtk_load": round(r.rtk_load_s, 3)}}
    volume = simulate_cbct(ct, setup_error=transform, isocenter_mm=iso, params=params, seed=seed,
                           patient_position=position, ct_couch=model.ct_couch,
                           planned_isocenter_mm=model.planned_isocenter_mm)
    return volume, {"model": "fast"}


def _acquire_cbct(plan_ds: Dataset, ct: Volume, context: tuple[Beam, Any, str], transform: RigidTransform,
                  session_for: str, out_dir: Path, settings: Settings, seed: int, params: CbctParams,
                  when: datetime, say: Callable[[str], None],
                  model: _CbctModel = _CbctModel(DEFAULT_CBCT_MODEL, "auto")) -> tuple[list[Path], dict[str, Any]]:
    beam, iso, position = context  # iso: INITLASERISO, the machine isocenter in the session's coordinates
    say(f"simulating CBCT ({model.name}) of beam {beam.beam_number} "
        f"({params.columns}x{params.columns}x{params.slices})")
    volume, how = _simulate_cbct(ct, context, transform, seed, params, model)
    vrt, lng, lat = _table_top(beam)
    couch = CouchPosition(table_height_mm=-vrt, table_top_longitudinal_position_mm=lng,
                          table_top_lateral_position_mm=lat,
                          patient_support_angle_deg=float(beam.patient_support_angle_deg or 0.0))
    slices = build_verification_ct_series(
        volume=volume, sources=[plan_ds], frame_of_reference_uid=session_for, patient_position=position,
        settings=settings, couch=couch, acquisition=CTAcquisition(kvp=125.0, xray_tube_current_ma=60,
                                                                  exposure_time_ms=20,
                                                                  reconstruction_diameter_mm=params.fov_diameter_mm),
        content_datetime=when)
    ct_dir = out_dir / "CBCT"
    ct_dir.mkdir(parents=True, exist_ok=True)
    files = [write_file(ds, ct_dir / f"CT_{k + 1:04d}.dcm") for k, ds in enumerate(slices)]
    points = IsocenterPoints(init_laser_iso_mm=tuple(iso), acq_isocenter_mm=tuple(iso),  # the laser point (context)
                             patient_support_angle_deg=float(beam.patient_support_angle_deg or 0.0))
    rs = build_isocenter_structure_set(cbct_images=slices, points=points, settings=settings, content_datetime=when)
    files.append(write_file(rs, out_dir / "RS_ISOCENTERS.dcm"))
    return files, {"cbct": {"series_instance_uid": str(slices[0].SeriesInstanceUID), "slices": len(slices),
                            "isocenter_structure_set_uid": str(rs.SOPInstanceUID),
                            "grid": {"shape_zyx": list(volume.shape), "origin_mm": list(volume.origin_mm),
                                     "spacing_mm": list(volume.spacing_mm)},
                            "params": {k: getattr(params, k) for k in params.__dataclass_fields__}} | how}


def _day_change_truth(change: DayChange, transform: RigidTransform, iso: Any, laser: Any, position: str
                      ) -> dict[str, Any]:
    def correction_of(t: RigidTransform) -> dict[str, float]:
        return couch_correction(t, planned_isocenter_mm=iso, initlaseriso_mm=laser, patient_position=position).as_dict()

    target = transform.compose(change.target_motion())
    out: dict[str, Any] = {
        "deformation": change.as_dict(),
        "target_transform": {"matrix": target.as_list(),
                             "convention": "setup error o the target's own rigid motion (least squares over the "
                                           "PTV's voxels), reference -> verification patient mm"},
        "expected_couch_correction_target": correction_of(target),
        "truth_for": {"bony anatomy (whole-volume 3D/3D, 2D/2D, simple 2D)": "transform",
                      "a region of interest around the target (3D/3D ROI)": "target_transform",
                      "marker match": "marker_transform"},
    }
    markers = change.marker_motion()
    if markers is not None:
        m = transform.compose(markers)
        out["marker_transform"] = {"matrix": m.as_list(), "convention": "setup error o the markers' rigid motion"}
        out["expected_couch_correction_markers"] = correction_of(m)
    return out


def _truth(kind: str, plan: RTPlan, iso: Any, laser: Any, position: str, shift: TableTopShift,
           transform: RigidTransform, correction: CouchCorrection, session_for: str, seed: int, files: list[Path],
           out_dir: Path) -> dict[str, Any]:
    return {
        "kind": kind,
        "plan_sop_instance_uid": plan.sop_instance_uid,
        "patient_position": position,
        "planned_isocenter_mm": list(iso),
        "initlaseriso_mm": list(laser),
        "couch_offset": {"initlaseriso_minus_planned_isocenter_mm": [float(a - b) for a, b in zip(laser, iso)],
                         "convention": "lasers on the reference marks, couch moved by the plan's Table Top Setup "
                                       "Displacement; session coordinates: origin at the reference mark, patient "
                                       "axes, attached to the table top; INITLASERISO = -A^T D"},
        "frame_of_reference_uid": session_for,
        "seed": seed,
        "shift_table_top": shift.as_dict(),
        "shift_convention": "patient displacement from plan, as the IEC table-top motion that would cause it",
        "transform": {"matrix": transform.as_list(),
                      "convention": "reference (planning CT) patient mm -> verification patient mm"},
        "expected_couch_correction": correction.as_dict(),
        "files": [str(p.relative_to(out_dir)) for p in files],
    }
