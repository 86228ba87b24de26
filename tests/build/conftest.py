"""Fixtures of tests/build: pydicom strict writing, the test patient, write-and-read helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset

from openigrt.iod.build import write_file
from openigrt.iod.dataset_io import read_file
from tests.build.factory import Patient, make_patient
from tests.dicom3tools import dciodvfy_path


@contextlib.contextmanager
def strict_writing() -> Iterator[None]:
    """pydicom ``writing_validation_mode = RAISE`` for the block, restored afterwards."""
    before = pydicom_config.settings.writing_validation_mode
    pydicom_config.settings.writing_validation_mode = pydicom_config.RAISE
    try:
        yield
    finally:
        pydicom_config.settings.writing_validation_mode = before


@pytest.fixture(autouse=True)
def _strict() -> Iterator[None]:
    with strict_writing():
        yield


@pytest.fixture(scope="module")
def patient() -> Patient:
    """The test patient built once per module, in strict mode."""
    with strict_writing():
        return make_patient()


def write_and_read(ds: Dataset, directory: Path, name: str = "obj.dcm", *, implicit_vr: bool = False) -> Dataset:
    """Write *ds* as a Part 10 file and read it back with the project's tolerant reader (no issues allowed)."""
    path = write_file(ds, directory / name, implicit_vr=implicit_vr)
    f = read_file(path)
    assert f.issues == (), f"reading our own {name} reported issues: {f.issues}"
    return f.dataset


needs_dciodvfy = pytest.mark.skipif(dciodvfy_path() is None, reason="dicom3tools (dciodvfy) not installed")
