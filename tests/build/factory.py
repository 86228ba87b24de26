"""A small, deterministic patient built with every builder (shared by the tests of tests/build)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset

from openigrt.config import Settings, load_settings
from openigrt.geometry.rigid import RigidTransform
from openigrt.geometry.volume import Volume
from openigrt.iod.build import (
    BeamLimitingDevice,
    Cine,
    CouchPosition,
    CTAcquisition,
    Exposure,
    IsocenterPoints,
    Jaws,
    MarkerPixel,
    MarkerPoint,
    Mlc,
    PatientStudy,
    PlanSetup,
    Rescale,
    Roi,
    RTImageGeometry,
    SetupBeam,
    TreatmentBeam,
    add_marker_curves,
    build_acquired_rt_image,
    build_isocenter_structure_set,
    build_marker_structure_set,
    build_planning_ct_series,
    build_reference_drr,
    build_rt_plan,
    build_spatial_registration,
    build_structure_set,
    build_verification_ct_series,
    centered_rt_image_position,
)
from openigrt.uids import new_uid

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456)
ISOCENTER = (1.5, -2.0, 2.5)
SLICE_Z = (-5.0, -2.5, 0.0, 2.5, 5.0, 7.5)
MARKERS = ((5.0, 3.0, 0.0), (-4.0, -6.0, 3.7), (0.5, 8.0, 6.1))
#: The match result used for the registrations: reference mm -> verification mm.
TRUTH = RigidTransform.from_parameters(translation_mm=(3.0, -2.0, 5.0), rotation_deg=(1.0, -2.0, 3.0),
                                       center_mm=ISOCENTER)


def settings(**overrides: str) -> Settings:
    return load_settings(None, {"dicom.station_name": "TESTSTATION", **overrides})


def circle(center: tuple[float, float], radius: float, z: float, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([center[0] + radius * np.cos(t), center[1] + radius * np.sin(t), np.full(n, z)])


def ct_volume(seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    ny, nx = 48, 64
    y, x = np.mgrid[0:ny, 0:nx]
    body = ((x - nx / 2) / 28) ** 2 + ((y - ny / 2) / 20) ** 2 <= 1
    arr = np.where(body, 40.0, -1000.0)[None].repeat(len(SLICE_Z), axis=0) + rng.normal(0, 5, (len(SLICE_Z), ny, nx))
    return Volume(arr.astype(np.float32), origin_mm=(-31.5, -23.5, SLICE_Z[0]), spacing_mm=(1.0, 1.0, 2.5))


def jaws_kv() -> tuple[BeamLimitingDevice, ...]:
    return (BeamLimitingDevice("ASYMX", (-60.0, 60.0)), BeamLimitingDevice("ASYMY", (-40.0, 50.0)))


def geometry(gantry: float, rows: int, cols: int, *, sid: float = 1500.0) -> RTImageGeometry:
    spacing = (0.5, 0.5)
    return RTImageGeometry(
        gantry_angle_deg=gantry, beam_limiting_device_angle_deg=0.0, patient_support_angle_deg=0.0,
        table_top_vertical_position_mm=-120.0, table_top_longitudinal_position_mm=850.0,
        table_top_lateral_position_mm=2.0, isocenter_position_mm=ISOCENTER, patient_position="HFS",
        radiation_machine_sad_mm=1000.0, rt_image_sid_mm=sid, image_plane_pixel_spacing_mm=spacing,
        rt_image_position_mm=centered_rt_image_position(rows, cols, spacing),
        xray_image_receptor_translation_mm=(0.0, 0.0, 1000.0 - sid), xray_image_receptor_angle_deg=0.0,
    )


@dataclass
class Patient:
    """Every object of one fraction of the test patient."""

    settings: Settings
    ct: list[Dataset]
    structure_set: Dataset
    plan: Dataset
    drrs: dict[int, Dataset]
    session_for: str
    kv_images: dict[int, Dataset]
    mv_image: Dataset
    cbct: list[Dataset]


def make_patient(s: Settings | None = None, *, charset: str | None = None) -> Patient:
    s = s or settings()
    ps = PatientStudy.new(patient_name="PHANTOM^TEST", patient_id="OIGRT-0001", patient_sex="Female",
                          uid_root=s.uid_root, patient_birth_date="19700101", study_id="S1",
                          accession_number="ACC1", study_description="Phantom", study_datetime=WHEN)
    ct = build_planning_ct_series(volume=ct_volume(), patient_study=ps, patient_position="HFS", settings=s,
                                  couch=CouchPosition(table_height_mm=150.0, table_top_longitudinal_position_mm=0.0,
                                                      table_top_lateral_position_mm=0.0),
                                  acquisition=CTAcquisition(kvp=120.0, xray_tube_current_ma=300, exposure_time_ms=1000,
                                                            convolution_kernel="STANDARD"),
                                  content_datetime=WHEN)
    if charset:
        for ds in ct:
            ds.SpecificCharacterSet = charset
    body = Roi("BODY", "EXTERNAL", tuple(circle((0.0, 0.0), 25.0, z) for z in SLICE_Z), roi_display_color=(0, 255, 0))
    ptv = Roi("PTV", "PTV", tuple(circle(ISOCENTER[:2], 8.0, z) for z in SLICE_Z[1:5]))
    markers = [Roi.point(f"Marker{i + 1}", p, "MARKER") for i, p in enumerate(MARKERS)]
    rs = build_structure_set(images=ct, rois=[body, ptv, *markers], settings=s, structure_set_label="PHANTOM",
                             content_datetime=WHEN)
    drr_uids = {3: new_uid(s.uid_root), 4: new_uid(s.uid_root)}
    mlc = Mlc(tuple(np.arange(-20.0, 21.0, 10.0)), (-10.0, -15.0, -15.0, -10.0, 10.0, 15.0, 15.0, 10.0))
    plan = build_rt_plan(
        structure_set=rs, settings=s, rt_plan_label="PHANTOM", treatment_machine_name="TrueBeam1",
        setup=PlanSetup(isocenter_position_mm=ISOCENTER, patient_position="HFS", table_top_vertical_position_mm=-120.0,
                        table_top_longitudinal_position_mm=850.0, table_top_lateral_position_mm=2.0),
        treatment_beams=[TreatmentBeam(1, "AP", 0.0, Jaws((-50.0, 50.0), (-50.0, 50.0)), 100.0, mlc=mlc),
                         TreatmentBeam(2, "LAT", 90.0, Jaws((-40.0, 40.0), (-50.0, 50.0)), 110.0)],
        setup_beams=[SetupBeam(3, "kV 0", "KV", 0.0, Jaws((-100.0, 100.0), (-100.0, 100.0)), drr_uids[3]),
                     SetupBeam(4, "kV 270", "KV", 270.0, Jaws((-100.0, 100.0), (-100.0, 100.0)), drr_uids[4]),
                     SetupBeam(5, "CBCT", "CBCT", 0.0, Jaws((-130.0, 130.0), (-100.0, 100.0)))],
        content_datetime=WHEN)
    rng = np.random.default_rng(1)
    drrs = {n: build_reference_drr(pixel_array=rng.integers(0, 4000, (40, 48), dtype=np.uint16),
                                   rt_image_label=f"DRR {n}", geometry=geometry(g, 40, 48), plan=plan,
                                   referenced_beam_number=n, settings=s, beam_limiting_devices=jaws_kv(),
                                   sop_instance_uid=drr_uids[n], content_datetime=WHEN)
            for n, g in ((3, 0.0), (4, 270.0))}
    session_for = new_uid(s.uid_root)
    kv = {n: build_acquired_rt_image(
        pixel_array=rng.integers(0, 60000, (40, 48), dtype=np.uint16), imager="KV", rt_image_label=f"KV{n}",
        geometry=geometry(g, 40, 48), exposure=Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=jaws_kv(),
                                                        xray_tube_current_ma=80, exposure_time_ms=25),
        plan=plan, referenced_beam_number=n, frame_of_reference_uid=session_for, settings=s, content_datetime=WHEN)
        for n, g in ((3, 0.0), (4, 270.0))}
    mv = build_acquired_rt_image(
        pixel_array=rng.integers(0, 60000, (40, 48), dtype=np.uint16), imager="MV", rt_image_label="MV1",
        geometry=geometry(0.0, 40, 48), exposure=Exposure(kvp=6000.0, meterset_exposure=2.0,
                                                          beam_limiting_devices=jaws_kv()),
        plan=plan, referenced_beam_number=1, frame_of_reference_uid=session_for, settings=s,
        start_cumulative_meterset_weight=0.0, content_datetime=WHEN)
    cbct = build_verification_ct_series(
        volume=ct_volume(7), sources=[plan], frame_of_reference_uid=session_for, patient_position="HFS", settings=s,
        couch=CouchPosition(table_height_mm=120.0, table_top_longitudinal_position_mm=850.0,
                            table_top_lateral_position_mm=2.0),
        acquisition=CTAcquisition(kvp=125.0), content_datetime=WHEN)
    return Patient(s, ct, rs, plan, drrs, session_for, kv, mv, cbct)


def all_objects(p: Patient) -> dict[str, Dataset]:
    """One instance of every object type and variant the builders make."""
    s = p.settings
    reg = {
        "REG 2D": build_spatial_registration(reference_images=[p.drrs[3]], verification_images=[p.kv_images[3]],
                                             transform=TRUTH, registration_sub_type="2D", settings=s,
                                             content_label="MATCH_2D", content_description="2D match", content_datetime=WHEN),
        "REG 2D2D": build_spatial_registration(reference_images=list(p.drrs.values()),
                                               verification_images=list(p.kv_images.values()), transform=TRUTH,
                                               registration_sub_type="2D2D", settings=s, content_label="MATCH_2D2D",
                                               content_description="2D/2D match", content_datetime=WHEN),
        "REG 3D3D": build_spatial_registration(reference_images=p.ct, verification_images=p.cbct, transform=TRUTH,
                                               registration_sub_type="3D3D", settings=s, content_label="MATCH_3D3D",
                                               content_description="3D/3D match", content_datetime=WHEN),
        "REG MARKER": build_spatial_registration(reference_images=p.ct, verification_images=list(p.kv_images.values()),
                                                 transform=TRUTH, registration_sub_type="MARKER", settings=s,
                                                 content_label="MARKER_MATCH", content_description="marker match",
                                                 content_datetime=WHEN),
    }
    iso = build_isocenter_structure_set(cbct_images=p.cbct, settings=s, content_datetime=WHEN,
                                        points=IsocenterPoints((0.0, 0.0, 0.0), (1.0, 2.0, 3.0), (1.5, 2.5, 3.5), 0.0))
    exported = Roi("PTV", "PTV", tuple(circle(ISOCENTER[:2], 8.0, z) for z in (-3.75, -1.25, 1.25, 3.75)))
    markers = build_marker_structure_set(planning_ct=p.ct, original_structure_set=p.structure_set, settings=s,
                                         markers=[MarkerPoint(f"M{i + 1}", m) for i, m in enumerate(MARKERS)],
                                         exported_rois=[exported], content_datetime=WHEN)
    ihe = build_spatial_registration(reference_images=p.ct, verification_images=p.cbct, transform=TRUTH,
                                     registration_sub_type="3D3D", settings=settings(**{"storage.ihe_ro_2008": "true"}),
                                     content_label="MATCH_3D3D", content_description="3D/3D match (IHE-RO 2008)",
                                     content_datetime=WHEN)
    with_curves = copy.deepcopy(p.kv_images[4])
    add_marker_curves(with_curves, [MarkerPixel(10.25, 20.5, "M1"), MarkerPixel(30.0, 5.75, "M2")])
    return {"CT": p.ct[0], "CBCT": p.cbct[0], "RTSTRUCT": p.structure_set, "RTPLAN": p.plan, "DRR": p.drrs[3],
            "RTIMAGE KV": p.kv_images[3], "RTIMAGE MV": p.mv_image, "RTIMAGE CURVES": with_curves,
            "RTIMAGE PORTAL DOSE": portal_dose_image(p, "CU"), "RTIMAGE CINE": cine_image(p),
            "RTIMAGE MPEG2": mpeg2_image(p), "RTSTRUCT ISO": iso, "RTSTRUCT MARKERS": markers, **reg,
            "REG IHE-RO 2008": ihe}


def portal_dose_image(p: Patient, rescale_type: str) -> Dataset:
    """An MV portal dose image with the given Rescale Type."""
    rng = np.random.default_rng(2)
    return build_acquired_rt_image(
        pixel_array=rng.integers(0, 60000, (40, 48), dtype=np.uint16), imager="MV", rt_image_label="PD1",
        geometry=geometry(0.0, 40, 48), exposure=Exposure(kvp=6000.0, meterset_exposure=100.0,
                                                          beam_limiting_devices=jaws_kv()),
        plan=p.plan, referenced_beam_number=1, frame_of_reference_uid=p.session_for, settings=p.settings,
        portal_dose=True, rescale=Rescale(1e-5, 0.0, rescale_type), start_cumulative_meterset_weight=0.0,
        content_datetime=WHEN)


def cine_frames(n: int, rows: int, cols: int) -> np.ndarray:
    """Smooth moving test frames (uint8), deterministic."""
    y, x = np.mgrid[0:rows, 0:cols]
    return np.stack([(128 + 60 * np.sin((x + 3 * k) / 9.0) + 40 * np.cos(y / 7.0)).clip(0, 255).astype(np.uint8)
                     for k in range(n)])


def cine_image(p: Patient) -> Dataset:
    """A native (uncompressed) 3-frame MV cine with a Frame Time Vector."""
    frames = cine_frames(3, 40, 48).astype(np.uint16) * 200
    return build_acquired_rt_image(
        pixel_array=frames, imager="MV", rt_image_label="CINE1", geometry=geometry(0.0, 40, 48),
        exposure=Exposure(kvp=6000.0, meterset_exposure=5.0, beam_limiting_devices=jaws_kv()), plan=p.plan,
        referenced_beam_number=1, frame_of_reference_uid=p.session_for, settings=p.settings,
        cine=Cine(cine_rate=10, frame_time_vector_ms=(0.0, 100.0, 100.0)), content_datetime=WHEN)


def mpeg2_image(p: Patient, n: int = 8) -> Dataset:
    """An MPEG2 MP@ML kV cine (25 frames/s)."""
    return build_acquired_rt_image(
        pixel_array=cine_frames(n, 48, 64), imager="KV", rt_image_label="FLUORO1", geometry=geometry(0.0, 48, 64),
        exposure=Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=jaws_kv(),
                          xray_tube_current_ma=10, exposure_time_ms=320),
        plan=p.plan, referenced_beam_number=3, frame_of_reference_uid=p.session_for, settings=p.settings,
        cine=Cine(cine_rate=25, frame_time_ms=40.0), mpeg2=True, content_datetime=WHEN)
