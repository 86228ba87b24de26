"""RT Image builders (SPEC IOD-4, IOD-5; SIM-1 DRR): round trips, portal dose, cine, MPEG2, curves."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.tag import Tag

from openigrt.errors import BuildError
from openigrt.iod.build import (
    BeamLimitingDevice,
    Cine,
    Exposure,
    MarkerPixel,
    Rescale,
    RTImageGeometry,
    add_marker_curves,
    build_acquired_rt_image,
    build_reference_drr,
    read_marker_curves,
    write_file,
)
from openigrt.iod.build.mpeg2 import decode_mpeg2
from openigrt.iod.dataset_io import decode_pixels, read_file
from openigrt.iod.private import RT_IMAGE_ISOCENTER_POSITION, RT_IMAGE_PATIENT_POSITION, read_private_value
from tests.build.conftest import write_and_read
from tests.build.factory import (
    ISOCENTER,
    WHEN,
    Patient,
    cine_frames,
    cine_image,
    geometry,
    jaws_kv,
    mpeg2_image,
    portal_dose_image,
)

RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
MPEG2_MPML = "1.2.840.10008.1.2.4.100"


def _kv(p: Patient, **kw):
    args = dict(pixel_array=np.arange(40 * 48, dtype=np.uint16).reshape(40, 48), imager="KV", rt_image_label="KV1",
                geometry=geometry(90.0, 40, 48),
                exposure=Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=jaws_kv(),
                                  xray_tube_current_ma=80, exposure_time_ms=25),
                plan=p.plan, referenced_beam_number=4, frame_of_reference_uid=p.session_for, settings=p.settings,
                content_datetime=WHEN)
    args.update(kw)
    return build_acquired_rt_image(**args)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_kv_image_round_trip(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    built = _kv(patient)
    ds = write_and_read(built, tmp_path, implicit_vr=implicit)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "PORTAL"]
    assert (ds.ConversionType, ds.ReportedValuesOrigin, ds.RTImagePlane) == ("DI", "ACTUAL", "NORMAL")
    assert (ds.RTImageLabel, ds.PrimaryDosimeterUnit, ds.FractionNumber) == ("KV1", "MINUTE", 0)
    assert (ds.Modality, ds.SeriesNumber, ds.SamplesPerPixel, ds.PhotometricInterpretation) == \
        ("RTIMAGE", 0, 1, "MONOCHROME2")
    (exp,) = ds.ExposureSequence
    assert (float(exp.KVP), exp.XRayTubeCurrent, exp.ExposureTime, float(exp.MetersetExposure), exp.NumberOfBlocks) == \
        (100.0, 80, 25, 0.0, 0)
    assert [(d.RTBeamLimitingDeviceType, d.NumberOfLeafJawPairs, [float(v) for v in d.LeafJawPositions])
            for d in exp.BeamLimitingDeviceSequence] == [("ASYMX", 1, [-60.0, 60.0]), ("ASYMY", 1, [-40.0, 50.0])]
    g = geometry(90.0, 40, 48)
    assert float(ds.GantryAngle) == 90.0 and float(ds.RTImageSID) == 1500.0 and float(ds.RadiationMachineSAD) == 1000.0
    assert [float(v) for v in ds.ImagePlanePixelSpacing] == list(g.image_plane_pixel_spacing_mm)
    assert [float(v) for v in ds.RTImagePosition] == list(g.rt_image_position_mm) == [-11.75, 9.75]
    assert [float(v) for v in ds.XRayImageReceptorTranslation] == [0.0, 0.0, -500.0]
    assert [float(v) for v in ds.RTImageOrientation] == [1, 0, 0, 0, -1, 0]
    assert [float(v) for v in ds.IsocenterPosition] == list(ISOCENTER) and ds.PatientPosition == "HFS"
    assert (float(ds.TableTopVerticalPosition), float(ds.TableTopLongitudinalPosition),
            float(ds.TableTopLateralPosition)) == (-120.0, 850.0, 2.0)
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == patient.plan.SOPInstanceUID
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPClassUID == RT_PLAN
    assert ds.ReferencedBeamNumber == 4 and ds.RadiationMachineName == "TrueBeam1"
    assert ds.FrameOfReferenceUID == patient.session_for
    assert "StartCumulativeMetersetWeight" not in ds
    assert read_private_value(ds, RT_IMAGE_ISOCENTER_POSITION) == ISOCENTER
    assert read_private_value(ds, RT_IMAGE_PATIENT_POSITION) == "HFS"
    f = read_file(write_file(built, tmp_path / "again.dcm", implicit_vr=implicit))
    np.testing.assert_array_equal(decode_pixels(f), built.pixel_array)


def test_mv_image(patient: Patient, tmp_path: Path) -> None:
    ds = write_and_read(patient.mv_image, tmp_path)
    assert (ds.PrimaryDosimeterUnit, float(ds.StartCumulativeMetersetWeight)) == ("MU", 0.0)
    exp = ds.ExposureSequence[0]
    assert float(exp.KVP) == 6000.0 and float(exp.MetersetExposure) == 2.0
    assert "XRayTubeCurrent" not in exp and "ExposureTime" not in exp


@pytest.mark.parametrize(("given", "written"), [("CU", "CU"), ("Gy/MU", "Gy/MU"), ("RD", "RD"), ("HU", "US"),
                                                  ("OD", "US"), ("mGy", "US"), ("US", "US")])
def test_portal_dose_rescale_types(patient: Patient, tmp_path: Path, given: str, written: str) -> None:
    ds = write_and_read(portal_dose_image(patient, given), tmp_path)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "PORTAL", "ACQUIRED_DOSE"]
    assert (ds.RescaleType, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (written, 1e-5, 0.0)


def test_other_images_keep_their_rescale(patient: Patient) -> None:
    ds = _kv(patient, rescale=Rescale(2.0, -100.0, "OD"))
    assert (ds.RescaleType, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == ("OD", 2.0, -100.0)
    with pytest.raises(BuildError, match=r"^RescaleType .*portal dose image needs"):
        _kv(patient, portal_dose=True)


def test_reference_drr(patient: Patient, tmp_path: Path) -> None:
    ds = write_and_read(patient.drrs[4], tmp_path)
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "DRR"]
    assert (ds.ConversionType, ds.RTImagePlane, ds.ReferencedBeamNumber) == ("WSD", "NORMAL", 4)
    assert ds.FrameOfReferenceUID == patient.ct[0].FrameOfReferenceUID == patient.plan.FrameOfReferenceUID
    assert [float(v) for v in ds.IsocenterPosition] == list(ISOCENTER) and float(ds.GantryAngle) == 270.0
    beam = next(b for b in patient.plan.BeamSequence if b.BeamNumber == 4)
    assert beam.ReferencedReferenceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert "ReportedValuesOrigin" not in ds


def test_native_cine_with_frame_time_vector(patient: Patient, tmp_path: Path) -> None:
    built = cine_image(patient)
    ds = write_and_read(built, tmp_path, implicit_vr=True)
    assert ds.NumberOfFrames == 3 and ds.FrameIncrementPointer == Tag(0x0018, 0x1065)
    assert [float(v) for v in ds.FrameTimeVector] == [0.0, 100.0, 100.0] and ds.CineRate == 10
    assert len(ds.MultiplexedAudioChannelsDescriptionCodeSequence) == 0
    f = read_file(write_file(built, tmp_path / "cine.dcm"))
    np.testing.assert_array_equal(decode_pixels(f), cine_frames(3, 40, 48).astype(np.uint16) * 200)


def test_mpeg2_cine_decodes_back(patient: Patient, tmp_path: Path) -> None:
    ds = write_and_read(mpeg2_image(patient, n=12), tmp_path)
    assert ds.file_meta.TransferSyntaxUID == MPEG2_MPML
    assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (3, "YBR_PARTIAL_420", 0)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
    assert (ds.NumberOfFrames, float(ds.FrameTime), ds.CineRate) == (12, 40.0, 25)
    assert ds.FrameIncrementPointer == Tag(0x0018, 0x1063)
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_13818_2")
    fragments = list(generate_fragments(ds.PixelData))
    assert parse_basic_offsets(ds.PixelData) == [] and len(fragments) == 2  # empty BOT item + one fragment
    stream = fragments[1]
    assert stream[:4] == b"\x00\x00\x01\xb3"  # MPEG-2 sequence header
    decoded = decode_mpeg2(stream)
    frames = cine_frames(12, 48, 64)
    assert decoded.shape == frames.shape
    err = np.abs(decoded.astype(int) - frames.astype(int))
    assert err.mean() < 2.0 and np.percentile(err, 99) <= 8, (err.mean(), err.max())
    with pytest.raises(BuildError, match="cannot re-encode"):
        write_file(ds, tmp_path / "x.dcm", implicit_vr=True)


@pytest.mark.parametrize(("shape", "rate", "attribute"), [
    ((2, 576, 720), 30.0, "Rows"), ((2, 480, 736), 30.0, "Rows"), ((2, 96, 128), 24.0, "CineRate"),
    ((2, 600, 704), 25.0, "Rows"),
])
def test_mpeg2_main_level_limits(patient: Patient, shape: tuple[int, int, int], rate: float, attribute: str) -> None:
    with pytest.raises(BuildError, match=rf"^{attribute} .*MPEG2 MP@ML"):
        _kv(patient, pixel_array=np.zeros(shape, np.uint8), geometry=geometry(90.0, shape[1], shape[2]),
            cine=Cine(cine_rate=int(rate), frame_time_ms=1000.0 / rate), mpeg2=True)


def test_mpeg2_input_checks(patient: Patient) -> None:
    with pytest.raises(BuildError, match=r"^PixelData .*uint8 for MPEG2"):
        _kv(patient, pixel_array=np.zeros((2, 48, 64), np.uint16), cine=Cine(cine_rate=25, frame_time_ms=40.0),
            mpeg2=True)
    with pytest.raises(BuildError, match=r"^FrameTimeVector .*constant frame rate"):
        _kv(patient, pixel_array=np.zeros((2, 48, 64), np.uint8),
            cine=Cine(cine_rate=25, frame_time_vector_ms=(0.0, 40.0)), mpeg2=True)


def test_invalid_inputs_name_the_attribute(patient: Patient) -> None:
    g = geometry(90.0, 40, 48)
    fields = {f: getattr(g, f) for f in g.__dataclass_fields__}
    with pytest.raises(BuildError, match=r"^IsocenterPosition \(300A,012C\): required"):
        RTImageGeometry(**{**fields, "isocenter_position_mm": None})
    with pytest.raises(BuildError, match=r"^RTImagePosition \(3002,0012\): required"):
        RTImageGeometry(**{**fields, "rt_image_position_mm": None})
    with pytest.raises(BuildError, match=r"^PatientPosition .*'XYZ'"):
        RTImageGeometry(**{**fields, "patient_position": "XYZ"})
    with pytest.raises(BuildError, match=r"^RTImageSID .*finite number"):
        RTImageGeometry(**{**fields, "rt_image_sid_mm": float("nan")})
    with pytest.raises(BuildError, match=r"^FrameTimeVector \(0018,1065\): 3 frames need 3 values, got 2"):
        _kv(patient, pixel_array=np.zeros((3, 40, 48), np.uint16), cine=Cine(cine_rate=10,
                                                                            frame_time_vector_ms=(0.0, 100.0)))
    with pytest.raises(BuildError, match=r"^FrameIncrementPointer .*3 frames need cine timing"):
        _kv(patient, pixel_array=np.zeros((3, 40, 48), np.uint16))
    with pytest.raises(BuildError, match=r"^FrameIncrementPointer .*exactly one of"):
        Cine(cine_rate=10, frame_time_ms=40.0, frame_time_vector_ms=(0.0, 40.0))
    with pytest.raises(BuildError, match=r"^XRayTubeCurrent .*required for a kV image"):
        _kv(patient, exposure=Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=jaws_kv()))
    with pytest.raises(BuildError, match=r"^ReferencedBeamNumber .*beam 9 is not in plan"):
        _kv(patient, referenced_beam_number=9)
    with pytest.raises(BuildError, match=r"^ReferencedRTPlanSequence .*RT Plan or RT Ion Plan"):
        _kv(patient, plan=patient.ct[0])
    with pytest.raises(BuildError, match=r"^LeafJawPositions .*symmetric X jaws"):
        BeamLimitingDevice("X", (-10.0, 20.0))
    with pytest.raises(BuildError, match=r"^RTBeamLimitingDeviceType .*jaws only"):
        Exposure(kvp=100.0, meterset_exposure=0.0, beam_limiting_devices=(BeamLimitingDevice("MLCX", (-1.0, 1.0)),))
    with pytest.raises(BuildError, match=r"^RTBeamLimitingDeviceType .*'Z'"):
        BeamLimitingDevice("Z", (-10.0, 10.0))
    with pytest.raises(BuildError, match=r"^StartCumulativeMetersetWeight .*MV images only"):
        _kv(patient, start_cumulative_meterset_weight=0.0)
    with pytest.raises(BuildError, match=r"^PixelData .*must be uint16 or uint8"):
        _kv(patient, pixel_array=np.zeros((40, 48), np.float32))
    with pytest.raises(BuildError, match=r"^RTImageLabel .*at most 16"):
        _kv(patient, rt_image_label="x" * 17)
    with pytest.raises(BuildError, match=r"^ReferencedBeamNumber .*must be an integer"):
        build_reference_drr(pixel_array=np.zeros((40, 48), np.uint16), rt_image_label="D", geometry=g,
                            plan=patient.plan, referenced_beam_number="3", settings=patient.settings)  # type: ignore[arg-type]


def test_character_set_kept_from_the_plan(patient: Patient, tmp_path: Path) -> None:
    plan = copy.deepcopy(patient.plan)
    plan.SpecificCharacterSet = "ISO_IR 192"
    plan.PatientName = "Müller^Jörg"
    ds = write_and_read(_kv(patient, plan=plan), tmp_path)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jörg"


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_marker_curves_round_trip_as_float64(patient: Patient, tmp_path: Path, implicit: bool) -> None:
    ds = _kv(patient)
    markers = [MarkerPixel(10.123456789012345, 20.5, "M1"), MarkerPixel(47.25, 0.0, "M2"), MarkerPixel(0.1, 39.4)]
    add_marker_curves(ds, markers)
    back = write_and_read(ds, tmp_path, implicit_vr=implicit)
    assert read_marker_curves(back) == markers  # bit-exact float64 (column, row)
    for group in (0x5000, 0x5002, 0x5004):
        assert back[group, 0x0005].value == 2 and back[group, 0x0010].value == 1
        assert back[group, 0x0020].value == "POLY" and back[group, 0x0103].value == 3
        assert list(back[group, 0x0030].value) == ["PIXL", "PIXL"]
        assert list(back[group, 0x0040].value) == ["Marker", "Marker"]
        assert back[group, 0x0005].VR == "US" and back[group, 0x0030].VR == "SH"
        assert len(back[group, 0x3000].value) == 16
    assert Tag(0x5006, 0x3000) not in back


def test_marker_curve_errors(patient: Patient) -> None:
    ds = _kv(patient)
    with pytest.raises(BuildError, match=r"^CurveData: .*outside the 48x40 image"):
        add_marker_curves(ds, [MarkerPixel(48.0, 3.0)])
    with pytest.raises(BuildError, match=r"^CurveData: .*at most 16"):
        add_marker_curves(ds, [MarkerPixel(1.0, 1.0)] * 17)
    with pytest.raises(BuildError, match=r"^CurveData: .*no marker"):
        add_marker_curves(ds, [])
    add_marker_curves(ds, [MarkerPixel(1.0, 1.0)])
    with pytest.raises(BuildError, match=r"^CurveData: .*already holds curves"):
        add_marker_curves(ds, [MarkerPixel(1.0, 1.0)])


def test_mv_exposure_refuses_kv_only_values(patient: Patient) -> None:
    with pytest.raises(BuildError, match=r"^XRayTubeCurrent .*kV images only"):
        build_acquired_rt_image(
            pixel_array=np.zeros((40, 48), np.uint16), imager="MV", rt_image_label="MV", geometry=geometry(0.0, 40, 48),
            exposure=Exposure(kvp=6000.0, meterset_exposure=1.0, beam_limiting_devices=jaws_kv(), xray_tube_current_ma=5),
            plan=patient.plan, referenced_beam_number=1, frame_of_reference_uid=patient.session_for,
            settings=patient.settings)
