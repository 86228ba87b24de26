"""PS3.4 C.2.2.2 matching as the archive implements it: identifier parsing and the SQL index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset

from openigrt.archive.model import Level, Model
from openigrt.archive.query import MatchKind, Operation, choose_character_set, match_text, make_condition, parse_identifier
from openigrt.archive.store import ArchiveStore
from openigrt.errors import DicomInputError
from tests.archive.content import ct_series


def _ident(level: str, **keys: Any) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    return ds


def _find(level: str, **keys: Any) -> Any:
    return parse_identifier(_ident(level, **keys), model=Model.STUDY_ROOT, operation=Operation.FIND)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ArchiveStore:
    root = tmp_path_factory.mktemp("q")
    s = ArchiveStore(root / "archive")
    s.import_paths(ct_series(root, patient_id="A1", patient_name="Alpha^Anna", n=2, study_date="20230105",
                             study_time="0815", series_number=1).paths)
    s.import_paths(ct_series(root, patient_id="A1", patient_name="Alpha^Anna", n=1, study_date="20230105",
                             study_time="0815", series_number=2).paths)
    s.import_paths(ct_series(root, patient_id="B2", patient_name="Beta^Bob", n=3, study_date="20231224",
                             study_time="173000.25", series_number=3).paths)
    s.import_paths(ct_series(root, patient_id="C[3]", patient_name="Gamma^[Cat]", n=1, study_date="20240229",
                             study_time="23", series_number=4).paths)
    return s


def _ids(store: ArchiveStore, level: str = "STUDY", **keys: Any) -> list[str]:
    keys.setdefault("PatientID", "")
    rows = store.index.find(_find(level, **keys))
    return sorted(r["patient_id"] for r in rows)


# --------------------------------------------------------------------------- parsing
def test_universal_single_wildcard_list_range_kinds() -> None:
    q = _find("IMAGE", PatientID="", PatientName="A*", StudyInstanceUID="1.2.3", SOPInstanceUID=["1.2", "1.3"],
              StudyDate="20230101-20231231")
    kinds = {c.keyword: c.kind for c in q.conditions}
    assert kinds == {"PatientName": MatchKind.WILDCARD, "StudyInstanceUID": MatchKind.SINGLE,
                     "SOPInstanceUID": MatchKind.LIST, "StudyDate": MatchKind.RANGE}
    assert [k.keyword for k in q.return_keys][:2] == ["SOPInstanceUID", "StudyDate"]  # tag order


@pytest.mark.parametrize("keys", [
    {"QueryRetrieveLevel": ""},
    {"QueryRetrieveLevel": "FRAME"},
    {"QueryRetrieveLevel": "PATIENT"},  # not a Study Root level
    {"QueryRetrieveLevel": "STUDY", "SeriesInstanceUID": "1.2.3"},  # below the level, with a value
    {"QueryRetrieveLevel": "IMAGE", "SOPInstanceUID": "1.2.x"},
    {"QueryRetrieveLevel": "IMAGE", "StudyDate": "2023-01-01"},
    {"QueryRetrieveLevel": "IMAGE", "StudyDate": "20231231-20230101"},
    {"QueryRetrieveLevel": "IMAGE", "StudyTime": "25"},
    {"QueryRetrieveLevel": "IMAGE", "InstanceNumber": b"1*"},
    {"QueryRetrieveLevel": "IMAGE", "Modality": ["CT", "MR"]},  # lists only for UI
])
def test_identifiers_that_do_not_match_the_sop_class(keys: dict[str, Any]) -> None:
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = Dataset()
    for k, v in keys.items():
        if isinstance(v, bytes):  # as received: undecoded until read
            tag = Tag(tag_for_keyword(k))
            ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(v), v, 0, False, True)
        else:
            setattr(ds, k, v)
    with pytest.raises(DicomInputError):
        parse_identifier(ds, model=Model.STUDY_ROOT, operation=Operation.FIND)


def test_move_needs_the_unique_key_of_its_level() -> None:
    for level, keys in (("STUDY", {}), ("SERIES", {"StudyInstanceUID": "1.2"}), ("IMAGE", {"SOPInstanceUID": ""}),
                        ("IMAGE", {"SOPInstanceUID": "*"})):
        with pytest.raises(DicomInputError):
            parse_identifier(_ident(level, **keys), model=Model.STUDY_ROOT, operation=Operation.MOVE)
    q = parse_identifier(_ident("PATIENT", PatientID="A1"), model=Model.PATIENT_ROOT, operation=Operation.MOVE)
    assert q.level is Level.PATIENT and q.conditions[0].values == ("A1",)


def test_lower_level_key_without_value_is_ignored() -> None:
    q = _find("STUDY", SOPInstanceUID="", StudyInstanceUID="")
    assert [k.keyword for k in q.return_keys] == ["StudyInstanceUID"]


def test_patient_keys_are_study_keys_in_study_root() -> None:
    q = _find("STUDY", PatientName="X*")
    assert q.conditions[0].keyword == "PatientName"


# --------------------------------------------------------------------------- matching in SQL
def test_single_value_and_pn_case_insensitive(store: ArchiveStore) -> None:
    assert _ids(store, PatientName="ALPHA^ANNA") == ["A1"]
    assert _ids(store, PatientName="alpha^anna^^") == ["A1"]  # empty trailing components ignored
    assert _ids(store, PatientID="a1") == []  # LO is case-sensitive


def test_wildcards(store: ArchiveStore) -> None:
    assert _ids(store, PatientName="*a^a*") == ["A1"]
    assert _ids(store, PatientName="*a^*") == ["A1", "B2", "C[3]"]
    assert _ids(store, PatientName="?eta*") == ["B2"]
    assert _ids(store, PatientID="C[3]") == ["C[3]"]  # '[' is literal in DICOM, not a GLOB class
    assert _ids(store, PatientName="gamma^[c*") == ["C[3]"]
    assert _ids(store, PatientName="*") == ["A1", "B2", "C[3]"]


def test_date_ranges(store: ArchiveStore) -> None:
    assert _ids(store, StudyDate="20230105") == ["A1"]
    assert _ids(store, StudyDate="20230601-") == ["B2", "C[3]"]
    assert _ids(store, StudyDate="-20231224") == ["A1", "B2"]
    assert _ids(store, StudyDate="20231225-20240228") == []


def test_time_ranges_and_partial_times(store: ArchiveStore) -> None:
    assert _ids(store, StudyTime="0815") == ["A1"]  # 08:15:00-08:15:59.999999
    assert _ids(store, StudyTime="08") == ["A1"]
    assert _ids(store, StudyTime="1730-") == ["B2", "C[3]"]  # C[3] has TM "23" = 23:00:00
    assert _ids(store, StudyTime="-173000.1") == ["A1"]  # B2 is at 17:30:00.25
    assert _ids(store, StudyTime="-173000.2") == ["A1", "B2"]  # .2 denotes .200000-.299999
    assert _ids(store, StudyTime="173000.25-173000.25") == ["B2"]


def test_list_of_uids_and_levels(store: ArchiveStore) -> None:
    series = store.index.find(_find("SERIES", PatientID="A1", SeriesInstanceUID="", NumberOfSeriesRelatedInstances=""))
    assert sorted(int(r["NumberOfSeriesRelatedInstances"]) for r in series) == [1, 2]
    uids = [r["series_instance_uid"] for r in series]
    images = store.index.find(_find("IMAGE", SeriesInstanceUID=uids))
    assert len(images) == 3
    studies = store.index.find(_find("STUDY", PatientID="A1", NumberOfStudyRelatedSeries=""))
    assert [int(r["NumberOfStudyRelatedSeries"]) for r in studies] == [2]


def test_modalities_in_study(store: ArchiveStore) -> None:
    assert _ids(store, ModalitiesInStudy="CT") == ["A1", "B2", "C[3]"]
    assert _ids(store, ModalitiesInStudy=["MR", "RTPLAN"]) == []


def test_patient_root_patient_level(store: ArchiveStore) -> None:
    q = parse_identifier(_ident("PATIENT", PatientID="", NumberOfPatientRelatedStudies="",
                                NumberOfPatientRelatedInstances=""),
                         model=Model.PATIENT_ROOT, operation=Operation.FIND)
    rows = {r["patient_id"]: (r["NumberOfPatientRelatedStudies"], r["NumberOfPatientRelatedInstances"])
            for r in store.index.find(q)}
    assert rows == {"A1": (1, 3), "B2": (1, 3), "C[3]": (1, 1)}


def test_move_locate_by_uid_list(store: ArchiveStore) -> None:
    images = store.index.find(_find("IMAGE", PatientID="B2", SOPInstanceUID=""))
    wanted = [images[2]["sop_instance_uid"], images[0]["sop_instance_uid"]]
    q = parse_identifier(_ident("IMAGE", SOPInstanceUID=wanted), model=Model.STUDY_ROOT, operation=Operation.MOVE)
    located = store.index.locate(q)
    assert sorted(loc.sop_instance_uid for loc in located) == sorted(wanted)
    assert all(loc.dataset_offset > 132 for loc in located)


# --------------------------------------------------------------------------- python-side matching
def test_match_text_for_non_indexed_keys() -> None:
    cond = make_condition("RTImageLabel", 0x30020002, "SH", ["AP*"])
    assert cond is not None and match_text(cond, ["AP PROS-DRR"]) and not match_text(cond, ["LAT"])
    date = make_condition("AcquisitionDate", 0x00080022, "DA", ["20200101-"])
    assert date is not None and match_text(date, ["20210101"]) and not match_text(date, ["20191231"])
    multi = make_condition("ImageType", 0x00080008, "CS", ["PORTAL"])
    assert multi is not None and match_text(multi, ["ORIGINAL", "PRIMARY", "PORTAL"])


def test_response_character_set() -> None:
    assert choose_character_set(("ISO_IR 100",), ["plain"]) == "ISO_IR 100"
    assert choose_character_set(("ISO_IR 100",), ["Ярослав"]) == "ISO_IR 192"  # not Latin-1
    assert choose_character_set(("ISO_IR 144",), ["Ярослав"]) == "ISO_IR 144"


def test_index_is_wal_and_has_no_duplicate_rows(store: ArchiveStore, tmp_path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(store.index.db_path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        n, distinct = con.execute("SELECT COUNT(*), COUNT(DISTINCT sop_instance_uid) FROM instance").fetchone()
    finally:
        con.close()
    assert n == distinct == 7
