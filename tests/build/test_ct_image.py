"""CT series builders (SPEC IOD-6, SIM-1): geometry and HU round trip, encoding, identity."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from openigrt.errors import BuildError
from openigrt.geometry.volume import Volume
from openigrt.iod.build import (
    CouchPosition,
    CTAcquisition,
    PatientStudy,
    build_planning_ct_series,
    build_verification_ct_series,
    write_file,
)
from openigrt.iod.build.ct_image import encode_hu
from openigrt.iod.dataset_io import decode_pixels, read_file
from tests.build.conftest import write_and_read
from tests.build.factory import WHEN, Patient, ct_volume, settings


def _read_volume(paths: list[Path]) -> Volume:
    """Rebuild a Volume from CT files the way a reader must: IPP, IOP, Pixel Spacing, rescale."""
    files = [read_file(p) for p in paths]
    files.sort(key=lambda f: float(f.dataset.ImagePositionPatient[2]))
    ds0 = files[0].dataset
    iop = np.array([float(v) for v in ds0.ImageOrientationPatient])
    row, col = float(ds0.PixelSpacing[0]), float(ds0.PixelSpacing[1])
    dz = float(files[1].dataset.ImagePositionPatient[2]) - float(ds0.ImagePositionPatient[2])
    hu = np.stack([decode_pixels(f) * float(f.dataset.RescaleSlope) + float(f.dataset.RescaleIntercept) for f in files])
    direction = np.column_stack([iop[:3], iop[3:], np.cross(iop[:3], iop[3:])])
    return Volume(hu, origin_mm=tuple(float(v) for v in ds0.ImagePositionPatient), spacing_mm=(col, row, dz),
                  direction=direction)


def test_planning_ct_geometry_and_hu_round_trip(tmp_path: Path) -> None:
    s = settings()
    vol = ct_volume()
    ps = PatientStudy.new(patient_name="A^B", patient_id="P1", patient_sex="Male", uid_root=s.uid_root)
    series = build_planning_ct_series(volume=vol, patient_study=ps, patient_position="FFS", settings=s,
                                      content_datetime=WHEN)
    paths = [write_file(ds, tmp_path / f"ct{k}.dcm") for k, ds in enumerate(series)]
    back = _read_volume(paths)
    np.testing.assert_allclose(back.origin_mm, vol.origin_mm)
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm)
    np.testing.assert_allclose(back.direction, np.eye(3))
    np.testing.assert_array_equal(back.array, np.rint(vol.array))
    ds = read_file(paths[3]).dataset
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert (ds.ScanOptions, float(ds.DistanceSourceToPatient), float(ds.GantryDetectorTilt)) == ("STANDARD", 1000.0, 0.0)
    assert (ds.RescaleType, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == ("HU", 1.0, -1024.0)
    assert (ds.PixelRepresentation, ds.BitsAllocated, ds.SamplesPerPixel, ds.PhotometricInterpretation) == \
        (0, 16, 1, "MONOCHROME2")
    assert (ds.InstanceNumber, ds.SeriesNumber, float(ds.SliceThickness), float(ds.SliceLocation)) == (4, 0, 2.5, 2.5)
    assert (ds.PatientPosition, ds.PatientSex, ds.Modality, ds.KVP) == ("FFS", "M", "CT", None)
    assert len({d.SeriesInstanceUID for d in series}) == 1 and len({d.SOPInstanceUID for d in series}) == 6
    assert len({d.FrameOfReferenceUID for d in series}) == 1 and ds.StudyInstanceUID == ps.study_instance_uid


def test_oblique_direction_round_trip(tmp_path: Path) -> None:
    s = settings()
    c, si = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
    d = np.array([[c, -si, 0], [si, c, 0], [0, 0, 1.0]])
    vol = Volume(np.zeros((2, 4, 5), np.int16), origin_mm=(1.0, 2.0, 3.0), spacing_mm=(0.5, 0.75, 3.0), direction=d)
    ps = PatientStudy.new(patient_name="A^B", patient_id="P1", patient_sex="F", uid_root=s.uid_root)
    series = build_planning_ct_series(volume=vol, patient_study=ps, patient_position="HFS", settings=s)
    back = _read_volume([write_file(ds, tmp_path / f"o{k}.dcm") for k, ds in enumerate(series)])
    np.testing.assert_allclose(back.direction, d, atol=1e-12)
    np.testing.assert_allclose(back.index_to_patient_mm([[4, 3, 1]]), vol.index_to_patient_mm([[4, 3, 1]]), atol=1e-9)


def test_verification_cbct_copies_identity_and_couch(patient: Patient, tmp_path: Path) -> None:
    ds = write_and_read(patient.cbct[0], tmp_path)
    assert (ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex) == \
        ("OIGRT-0001", "PHANTOM^TEST", "19700101", "F")
    assert (ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber) == \
        (patient.plan.StudyInstanceUID, "S1", "ACC1")
    assert ds.FrameOfReferenceUID == patient.session_for != patient.ct[0].FrameOfReferenceUID
    assert (float(ds.TableHeight), float(ds.TableTopLongitudinalPosition), float(ds.TableTopLateralPosition),
            float(ds.PatientSupportAngle)) == (120.0, 850.0, 2.0, 0.0)
    assert float(ds.KVP) == 125.0
    assert (ds.Manufacturer, ds.StationName, ds.ManufacturerModelName) == \
        ("OpenIGRT", "TESTSTATION", "OpenIGRT virtual imager")
    assert ds.SoftwareVersions.startswith("OpenIGRT ")
    assert ds.file_meta.ImplementationVersionName == patient.settings.network.implementation_version_name


def test_hu_encoding_rule() -> None:
    stored, intercept = encode_hu(np.array([[-1024.0, 3071.4]]))
    assert (stored.dtype, intercept, stored.tolist()) == (np.uint16, -1024.0, [[0, 4095]])
    stored, intercept = encode_hu(np.array([[-2000, 100]], np.int32))
    assert (stored.dtype, intercept, stored.tolist()) == (np.int16, 0.0, [[-2000, 100]])
    with pytest.raises(BuildError, match=r"^PixelData .*does not fit"):
        encode_hu(np.array([[-40000.0, 0.0]]))
    with pytest.raises(BuildError, match=r"^PixelData .*NaN"):
        encode_hu(np.array([[np.nan]]))


def test_signed_storage_round_trip(tmp_path: Path) -> None:
    s = settings()
    vol = Volume(np.array([[[-3000.0, 0.0], [500.0, 20.0]]] * 2), origin_mm=(0, 0, 0), spacing_mm=(1, 1, 1))
    ps = PatientStudy.new(patient_name="A^B", patient_id="P1", patient_sex="F", uid_root=s.uid_root)
    series = build_planning_ct_series(volume=vol, patient_study=ps, patient_position="HFS", settings=s)
    back = _read_volume([write_file(ds, tmp_path / f"s{k}.dcm") for k, ds in enumerate(series)])
    assert series[0].PixelRepresentation == 1
    np.testing.assert_array_equal(back.array, vol.array)


def test_invalid_inputs_name_the_attribute(patient: Patient) -> None:
    s = patient.settings
    kwargs = dict(volume=ct_volume(), sources=[patient.plan], frame_of_reference_uid=patient.session_for,
                  patient_position="HFS", settings=s,
                  couch=CouchPosition(table_height_mm=0.0, table_top_longitudinal_position_mm=0.0,
                                      table_top_lateral_position_mm=0.0))
    with pytest.raises(BuildError, match=r"^FrameOfReferenceUID .*not a valid UID"):
        build_verification_ct_series(**{**kwargs, "frame_of_reference_uid": "1.02.3"})
    with pytest.raises(BuildError, match=r"^PatientPosition"):
        build_verification_ct_series(**{**kwargs, "patient_position": "SUPINE"})
    with pytest.raises(BuildError, match=r"^ImageType .*value 3"):
        build_verification_ct_series(**{**kwargs, "image_type_value3": "CORONAL"})
    with pytest.raises(BuildError, match=r"^PixelData .*Volume"):
        build_verification_ct_series(**{**kwargs, "volume": np.zeros((2, 2, 2))})
    with pytest.raises(BuildError, match=r"^XRayTubeCurrent .*integer"):
        CTAcquisition(xray_tube_current_ma=12.5)  # type: ignore[arg-type]
    with pytest.raises(BuildError, match=r"^KVP .*finite number"):
        CTAcquisition(kvp=-120.0)
    with pytest.raises(BuildError, match=r"^TableHeight .*finite number"):
        CouchPosition(table_height_mm=float("inf"), table_top_longitudinal_position_mm=0.0,
                      table_top_lateral_position_mm=0.0)
    with pytest.raises(BuildError, match=r"^PatientID .*different patients"):
        other = copy.deepcopy(patient.ct[0])
        other.PatientID = "X"
        build_verification_ct_series(**{**kwargs, "sources": [patient.plan, other]})
