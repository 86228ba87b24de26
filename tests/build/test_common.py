"""Shared builder rules (SPEC §5): identity copying, sex mapping, files, error messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom import dcmread

from openigrt.errors import BuildError
from openigrt.iod.build import PatientStudy, map_patient_sex, write_file
from openigrt.iod.build.common import build_error
from tests.build.factory import Patient, settings


@pytest.mark.parametrize(("given", "written"), [("Female", "F"), ("F", "F"), ("female", "F"), ("Male", "M"), ("M", "M"),
                                                  ("O", "O"), ("Other", "O"), ("", "O"), (None, "O"), ("U", "O")])
def test_patient_sex_mapping(given: str | None, written: str) -> None:
    assert map_patient_sex(given) == written


def test_identity_copied_from_the_sources(patient: Patient) -> None:
    src = copy.deepcopy(patient.plan)
    with pytest.warns(UserWarning, match="Male"):  # received files do carry such values
        src.PatientSex = "Male"
    src.PatientBirthTime = "101010"
    src.SpecificCharacterSet = ["ISO 2022 IR 6", "ISO 2022 IR 100"]
    ps = PatientStudy.from_datasets([src])
    assert (ps.patient_sex, ps.patient_birth_time, ps.patient_name) == ("M", "101010", "PHANTOM^TEST")
    assert ps.specific_character_set == ("ISO 2022 IR 6", "ISO 2022 IR 100")
    assert ps.study_instance_uid == src.StudyInstanceUID and ps.accession_number == "ACC1"


def test_identity_errors(patient: Patient) -> None:
    other = copy.deepcopy(patient.plan)
    other.PatientID = "SOMEONE"
    with pytest.raises(BuildError, match=r"^PatientID \(0010,0020\): the source datasets belong to different"):
        PatientStudy.from_datasets([patient.plan, other])
    with pytest.raises(BuildError, match="no source dataset"):
        PatientStudy.from_datasets([])
    with pytest.raises(BuildError, match=r"^PatientID .*must not be empty"):
        PatientStudy.new(patient_name="A", patient_id=" ", patient_sex="F", uid_root="2.25")
    no_study = copy.deepcopy(patient.plan)
    del no_study.StudyInstanceUID
    with pytest.raises(BuildError, match=r"^StudyInstanceUID .*not a valid UID"):
        PatientStudy.from_datasets([no_study])


def test_write_file_leaves_the_dataset_unchanged(patient: Patient, tmp_path: Path) -> None:
    ds = patient.kv_images[3]
    before = ds.file_meta.TransferSyntaxUID
    write_file(ds, tmp_path / "i.dcm", implicit_vr=True)
    assert ds.file_meta.TransferSyntaxUID == before == "1.2.840.10008.1.2.1"
    back = dcmread(tmp_path / "i.dcm")
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert back.file_meta.ImplementationClassUID == settings().network.implementation_class_uid
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_new_uids_use_the_configured_root(tmp_path: Path) -> None:
    from tests.build.factory import make_patient

    p = make_patient(settings(**{"dicom.uid_root": "1.2.826.0.1.3680043.10.999"}))
    uids = [p.plan.SOPInstanceUID, p.plan.SeriesInstanceUID, p.structure_set.SOPInstanceUID, p.session_for,
            p.ct[0].StudyInstanceUID, p.ct[0].FrameOfReferenceUID, p.cbct[0].SOPInstanceUID, p.mv_image.SOPInstanceUID]
    assert all(u.startswith("1.2.826.0.1.3680043.10.999.") for u in uids)


def test_error_message_names_keyword_and_tag() -> None:
    assert str(build_error("RTImageSID", "x")) == "RTImageSID (3002,0026): x"
    assert isinstance(build_error("RTImageSID", "x"), ValueError)
