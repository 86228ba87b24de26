"""IOD-7: each created object type's storage can be switched off (NET-11 [storage] switches)."""

from __future__ import annotations

import pytest
from pydicom.tag import Tag

from openigrt.iod.build.storage import filter_for_storage, storage_decision
from tests.build.conftest import strict_writing
from tests.build.factory import Patient, all_objects, settings

SWITCHES = ("storage.store_registrations", "storage.store_markers", "storage.store_ct_isocenters")
GOVERNED = {"REG 2D": SWITCHES[0], "REG 2D2D": SWITCHES[0], "REG 3D3D": SWITCHES[0], "REG MARKER": SWITCHES[0],
            "REG IHE-RO 2008": SWITCHES[0], "RTSTRUCT MARKERS": SWITCHES[1], "RTSTRUCT ISO": SWITCHES[2],
            "CBCT": SWITCHES[2], "CT": SWITCHES[2], "RTSTRUCT": SWITCHES[1], "RTIMAGE CURVES": SWITCHES[1]}


@pytest.fixture(scope="module")
def objects(patient: Patient):
    with strict_writing():
        return all_objects(patient)


def test_defaults_store_everything(objects) -> None:
    s = settings()
    for name, ds in objects.items():
        assert filter_for_storage(ds, s) is ds, name
        assert storage_decision(ds, s).setting == GOVERNED.get(name), name


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_turns_off_its_objects_only(objects, switch: str) -> None:
    s = settings(**{switch: "false"})
    for name, ds in objects.items():
        kept = filter_for_storage(ds, s)
        if GOVERNED.get(name) != switch:
            assert kept is ds, name
        elif name == "RTIMAGE CURVES":  # the acquired image is kept, its marker curves are not
            assert kept is not None and kept is not ds and kept.SOPInstanceUID == ds.SOPInstanceUID
            assert Tag(0x5000, 0x3000) not in kept and Tag(0x5002, 0x0005) not in kept
            assert Tag(0x5000, 0x3000) in ds and kept.PixelData == ds.PixelData
        else:
            assert kept is None, name
