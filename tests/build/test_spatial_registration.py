"""Spatial Registration builder (SPEC IOD-1): direction, layout, IHE-RO option, strictness."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from openigrt.errors import BuildError
from openigrt.geometry.rigid import RigidTransform
from openigrt.iod.build import build_spatial_registration, write_file
from openigrt.iod.private import REGISTRATION_SUB_TYPE, read_private_value
from tests.build.conftest import write_and_read
from tests.build.factory import TRUTH, WHEN, Patient, settings

CT = "1.2.840.10008.5.1.4.1.1.2"


def _reg(p: Patient, *, refs: list[Dataset] | None = None, vers: list[Dataset] | None = None, transform=TRUTH,
         sub_type: str = "3D3D", **kw) -> Dataset:
    return build_spatial_registration(
        reference_images=p.ct if refs is None else refs, verification_images=p.cbct if vers is None else vers,
        transform=transform, registration_sub_type=sub_type, settings=kw.pop("s", p.settings),
        content_label=kw.pop("content_label", "MATCH"), content_description="test", content_datetime=WHEN, **kw)


def _matrix_for(reg: Dataset, frame_of_reference_uid: str) -> np.ndarray:
    items = [i for i in reg.RegistrationSequence if i.FrameOfReferenceUID == frame_of_reference_uid]
    assert len(items) == 1
    mreg = items[0].MatrixRegistrationSequence
    assert len(mreg) == 1 and len(mreg[0].MatrixSequence) == 1
    m = mreg[0].MatrixSequence[0]
    assert m.FrameOfReferenceTransformationMatrixType == "RIGID"
    assert len(m.FrameOfReferenceTransformationMatrix) == 16
    return np.array([float(v) for v in m.FrameOfReferenceTransformationMatrix]).reshape(4, 4)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_direction_maps_reference_ct_point_onto_verification_point(patient: Patient, tmp_path: Path,
                                                                   implicit: bool) -> None:
    """PS3.3 C.20.2: the matrix registers the referenced (planning CT) frame into the REG's (CBCT) frame."""
    reg = write_and_read(_reg(patient), tmp_path, implicit_vr=implicit)
    ref_for = patient.ct[0].FrameOfReferenceUID
    assert reg.FrameOfReferenceUID == patient.session_for == patient.cbct[0].FrameOfReferenceUID
    m = _matrix_for(reg, ref_for)
    # a point of the planning CT: pixel (row 20, column 10) of slice 2
    ct = patient.ct[2]
    ipp = np.array([float(v) for v in ct.ImagePositionPatient])
    p_ref = ipp + np.array([10 * float(ct.PixelSpacing[1]), 20 * float(ct.PixelSpacing[0]), 0.0])
    expected = TRUTH.apply([p_ref])[0]
    got = (m @ np.append(p_ref, 1.0))[:3]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    inverted = (np.linalg.inv(m) @ np.append(p_ref, 1.0))[:3]
    assert np.linalg.norm(inverted - expected) > 5.0  # the classic bug would be caught
    np.testing.assert_allclose(_matrix_for(reg, patient.session_for), np.eye(4), atol=0)


def test_layout_references_and_identity(patient: Patient, tmp_path: Path) -> None:
    reg = write_and_read(_reg(patient), tmp_path)
    assert [i.FrameOfReferenceUID for i in reg.RegistrationSequence] == [patient.ct[0].FrameOfReferenceUID,
                                                                          patient.session_for]
    ref_item, ver_item = reg.RegistrationSequence
    assert [r.ReferencedSOPInstanceUID for r in ref_item.ReferencedImageSequence] == [d.SOPInstanceUID for d in patient.ct]
    assert {r.ReferencedSOPClassUID for r in ref_item.ReferencedImageSequence} == {CT}
    assert [r.ReferencedSOPInstanceUID for r in ver_item.ReferencedImageSequence] == [d.SOPInstanceUID for d in patient.cbct]
    codes = [i.MatrixRegistrationSequence[0].RegistrationTypeCodeSequence[0] for i in reg.RegistrationSequence]
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in codes] == [("125024", "DCM"), ("125021", "DCM")]
    assert (reg.Modality, reg.SeriesNumber, reg.InstanceNumber) == ("REG", 0, 0)
    assert (reg.ContentLabel, reg.ContentDescription, reg.ContentDate) == ("MATCH", "test", "20240506")
    assert read_private_value(reg, REGISTRATION_SUB_TYPE) == "3D3D"
    assert (reg.PatientID, reg.PatientName, reg.PatientSex) == ("OIGRT-0001", "PHANTOM^TEST", "F")
    assert reg.StudyInstanceUID == patient.cbct[0].StudyInstanceUID
    assert (reg.Manufacturer, reg.StationName) == ("OpenIGRT", "TESTSTATION")
    assert reg.file_meta.ImplementationClassUID == patient.settings.network.implementation_class_uid
    listed = {i.ReferencedSOPInstanceUID for s in reg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert listed == {d.SOPInstanceUID for d in (*patient.ct, *patient.cbct)}
    assert "StudiesContainingOtherReferencedInstancesSequence" not in reg


def test_common_instance_reference_lists_other_studies(patient: Patient) -> None:
    other_study = []
    for ds in patient.ct:
        c = copy.deepcopy(ds)
        c.StudyInstanceUID = "1.2.3.4.5"
        other_study.append(c)
    reg = _reg(patient, refs=other_study)
    (other,) = reg.StudiesContainingOtherReferencedInstancesSequence
    assert other.StudyInstanceUID == "1.2.3.4.5"
    assert [i.ReferencedSOPInstanceUID for i in other.ReferencedSeriesSequence[0].ReferencedInstanceSequence] == \
        [d.SOPInstanceUID for d in patient.ct]
    assert {i.ReferencedSOPInstanceUID for s in reg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence} == \
        {d.SOPInstanceUID for d in patient.cbct}


@pytest.mark.parametrize(("sub_type", "code"), [("2D", "125024"), ("2D2D", "125024"), ("MARKER", "125022")])
def test_variants_2d_2d2d_marker(patient: Patient, sub_type: str, code: str) -> None:
    kv = list(patient.kv_images.values())
    refs = {"2D": [patient.drrs[3]], "2D2D": list(patient.drrs.values()), "MARKER": patient.ct}[sub_type]
    vers = kv[:1] if sub_type == "2D" else kv
    reg = _reg(patient, refs=refs, vers=vers, sub_type=sub_type)
    assert reg.FrameOfReferenceUID == patient.session_for  # the acquired RT images' frame
    ref_item = reg.RegistrationSequence[0]
    assert ref_item.FrameOfReferenceUID == refs[0].FrameOfReferenceUID
    assert ref_item.MatrixRegistrationSequence[0].RegistrationTypeCodeSequence[0].CodeValue == code
    assert read_private_value(reg, REGISTRATION_SUB_TYPE) == sub_type


def test_ihe_ro_2008_option(patient: Patient) -> None:
    s = settings(**{"storage.ihe_ro_2008": "true"})
    m = TRUTH.matrix.copy()
    m[:3, :3] *= 1 + 4e-6  # within the default rigidity tolerance, outside the IHE-RO one
    reg = _reg(patient, s=s, transform=TRUTH)
    fixed, moving = reg.RegistrationSequence
    assert fixed.FrameOfReferenceUID == reg.FrameOfReferenceUID == patient.session_for
    np.testing.assert_allclose(_matrix_for(reg, patient.session_for), np.eye(4))
    assert moving.FrameOfReferenceUID == patient.ct[0].FrameOfReferenceUID
    assert len(reg.RegistrationSequence) == 2
    _reg(patient, transform=m)  # accepted without the option
    with pytest.raises(BuildError, match=r"FrameOfReferenceTransformationMatrix .*IHE-RO"):
        _reg(patient, s=s, transform=m)


@pytest.mark.parametrize(("matrix", "why"), [
    (np.diag([1.01, 1.0, 1.0, 1.0]), "not a RIGID matrix"),
    (np.diag([-1.0, 1.0, 1.0, 1.0]), "not a RIGID matrix"),
    (np.eye(3), "4x4"),
    (np.full((4, 4), np.nan), "finite 4x4"),
])
def test_non_rigid_matrix_is_refused(patient: Patient, matrix: np.ndarray, why: str) -> None:
    with pytest.raises(BuildError, match=rf"^FrameOfReferenceTransformationMatrix \(3006,00C6\): .*{why}"):
        _reg(patient, transform=matrix)


def test_invalid_inputs_name_the_attribute(patient: Patient) -> None:
    kv = list(patient.kv_images.values())
    with pytest.raises(BuildError, match=r"^ReferencedImageSequence .*2D2D registration needs at least 2 reference"):
        _reg(patient, refs=[patient.drrs[3]], vers=kv, sub_type="2D2D")
    with pytest.raises(BuildError, match=r"^ReferencedSOPClassUID .*must be of SOP class"):
        _reg(patient, refs=patient.ct, vers=kv, sub_type="3D3D")
    mixed = [copy.deepcopy(patient.cbct[0]), patient.cbct[1]]
    mixed[0].FrameOfReferenceUID = "1.2.3"
    with pytest.raises(BuildError, match=r"^FrameOfReferenceUID .*verification images are in 2 Frames"):
        _reg(patient, vers=mixed)
    with pytest.raises(BuildError, match=r"^FrameOfReferenceUID .*share one Frame of Reference"):
        _reg(patient, vers=patient.ct)
    assert _reg(patient, vers=patient.ct, transform=RigidTransform.identity())  # identity in one frame is fine
    with pytest.raises(BuildError, match=r"^ContentLabel"):
        _reg(patient, content_label="bad label!")
    with pytest.raises(BuildError, match=r"RegistrationSubType .*'4D'"):
        _reg(patient, sub_type="4D")
    other = [copy.deepcopy(d) for d in patient.cbct]
    for d in other:
        d.PatientID = "SOMEONE-ELSE"
    with pytest.raises(BuildError, match=r"^PatientID .*different patients"):
        _reg(patient, vers=other)


@pytest.mark.skipif(shutil.which("plastimatch") is None, reason="plastimatch not installed")
def test_direction_agrees_with_plastimatch_sro(patient: Patient, tmp_path: Path) -> None:
    """An independent writer (plastimatch xf-convert) stores the same matrix for the same registration.

    ITK's transform maps fixed (verification) points to moving (reference) points, i.e. it is
    ``TRUTH⁻¹``; plastimatch turns it into a Spatial Registration in the fixed image's frame.
    Its item for the moving (planning CT) frame must hold our reference item's matrix.
    """
    for name, images in (("fixed", patient.cbct), ("moving", patient.ct)):
        (tmp_path / name).mkdir()
        for k, ds in enumerate(images):
            write_file(ds, tmp_path / name / f"{k}.dcm")
    itk = TRUTH.inverse().matrix
    params = " ".join(f"{v:.17g}" for v in (*itk[:3, :3].ravel(), *itk[:3, 3]))
    (tmp_path / "xf.txt").write_text("#Insight Transform File V1.0\n#Transform 0\n"
                                     f"Transform: AffineTransform_double_3_3\nParameters: {params}\n"
                                     "FixedParameters: 0 0 0\n")
    subprocess.run(["plastimatch", "xf-convert", "--input", str(tmp_path / "xf.txt"), "--output-dicom",
                    str(tmp_path / "out"), "--fixed-rcs", str(tmp_path / "fixed"), "--moving-rcs",
                    str(tmp_path / "moving")], check=True, capture_output=True, timeout=120)
    (sro,) = (tmp_path / "out").glob("sro_*.dcm")
    theirs = dcmread(sro)
    ours = _reg(patient)
    assert theirs.FrameOfReferenceUID == ours.FrameOfReferenceUID == patient.session_for
    ref_for = patient.ct[0].FrameOfReferenceUID
    np.testing.assert_allclose(_matrix_for(theirs, ref_for), _matrix_for(ours, ref_for), atol=1e-5)
    np.testing.assert_allclose(_matrix_for(theirs, patient.session_for), np.eye(4))
