"""Every object type the builders make passes dciodvfy apart from the reviewed baseline (SPEC §5).

The comparison is message-exact (tests/dicom3tools.py): a message that is not in
tests/build/dciodvfy_baseline.toml fails the test, whatever its severity. The baseline must
equal the table at the end of docs/CONFORMANCE.md, and every entry must still be needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openigrt.iod.build import write_file
from tests.build.conftest import needs_dciodvfy, strict_writing
from tests.build.factory import all_objects, make_patient, portal_dose_image
from tests.dicom3tools import (
    DEFAULT_BASELINE,
    Message,
    Report,
    load_baseline,
    parse_output,
    run_dciodvfy,
    unexpected,
    used_entries,
)

CONFORMANCE = Path(__file__).resolve().parents[2] / "docs" / "CONFORMANCE.md"
EXPECTED_IOD = {"CT": "CTImage", "CBCT": "CTImage", "RTSTRUCT": "RTStructureSet", "RTPLAN": "RTPlan",
                "DRR": "RTImage", "REG": "SpatialRegistration", "RTIMAGE": "RTImage"}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    """dciodvfy reports of every object (explicit and implicit VR files), built in strict mode."""
    out = tmp_path_factory.mktemp("dciodvfy")
    with strict_writing():
        p = make_patient()
        objects = all_objects(p)
        objects |= {f"RTIMAGE PORTAL DOSE {t}": portal_dose_image(p, t) for t in ("Gy/MU", "RD", "OTHER")}
    result = {}
    for name, ds in objects.items():
        for implicit in (False, True):
            if implicit and ds.file_meta.TransferSyntaxUID not in ("1.2.840.10008.1.2.1",):
                continue
            key = f"{name} {'implicit' if implicit else 'explicit'}"
            path = write_file(ds, out / (re.sub(r"\W+", "_", key) + ".dcm"), implicit_vr=implicit)
            result[key] = run_dciodvfy(path)
    return result


@needs_dciodvfy
def test_every_object_type_has_only_baseline_messages(reports: dict[str, Report]) -> None:
    baseline = load_baseline()
    failures = []
    for key, report in reports.items():
        expected = next(v for k, v in EXPECTED_IOD.items() if key.startswith(k))
        if report.iod != expected:
            failures.append(f"{key}: dciodvfy recognised {report.iod!r}, expected {expected}")
        failures += [f"{key} ({report.iod}): {m}" for m in unexpected(report, baseline)]
    assert not failures, "messages not in the reviewed baseline:\n" + "\n".join(failures)


@needs_dciodvfy
def test_every_baseline_entry_is_still_needed(reports: dict[str, Report]) -> None:
    baseline = load_baseline()
    stale = set(baseline) - used_entries(list(reports.values()), baseline)
    assert not stale, "baseline entries no object needs any more (remove them here and in CONFORMANCE.md):\n" + \
        "\n".join(f"  {e.object}: {e.message}" for e in stale)


def _conformance_table() -> set[tuple[str, str, str]]:
    text = CONFORMANCE.read_text(encoding="utf-8")
    section = text.split("## dciodvfy baseline", 1)[1]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")] if line.startswith("|") else []
        if len(cells) == 3 and cells[0] not in ("Object", "---") and not set(cells[0]) <= {"-"}:
            rows.add((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    return rows


def test_baseline_file_and_conformance_table_agree() -> None:
    toml = {(e.object, e.message, e.reason) for e in load_baseline(DEFAULT_BASELINE)}
    table = _conformance_table()
    assert {t[:2] for t in toml} == {t[:2] for t in table}, (
        f"only in {DEFAULT_BASELINE.name}: {sorted({t[:2] for t in toml} - {t[:2] for t in table})}\n"
        f"only in CONFORMANCE.md: {sorted({t[:2] for t in table} - {t[:2] for t in toml})}")
    assert toml == table, "reasons differ between the baseline file and docs/CONFORMANCE.md"


def test_comparison_is_message_exact() -> None:
    """A new message fails even when it is only a warning and close to an accepted one."""
    baseline = load_baseline()
    iod, messages = parse_output(
        "Warning - </RescaleType(0028,1054)[1]> - Unrecognized defined term = <CU>\n"
        "RTImage\n"
        "Warning - </RescaleType(0028,1054)[1]> - Unrecognized defined term = <CUX>\n"
        "Error - </Laterality(0020,0060)> - Missing attribute for Type 2C Conditional - Module=<GeneralSeries>\n")
    report = Report(Path("x.dcm"), iod, messages, 1)
    bad = unexpected(report, baseline)
    assert iod == "RTImage"
    assert bad == [Message("Warning", "Warning - </RescaleType(0028,1054)[1]> - Unrecognized defined term = <CUX>"),
                   Message("Error", "Error - </Laterality(0020,0060)> - Missing attribute for Type 2C Conditional - "
                                    "Module=<GeneralSeries>")]


@needs_dciodvfy
def test_real_vendor_file_is_not_clean(tmp_path: Path) -> None:
    """The checker is not blind: a real Eclipse structure set has messages outside our baseline."""
    real = Path(__file__).resolve().parents[1] / "data" / "real" / "eclipse81_prostate_phantom"
    report = run_dciodvfy(next(real.glob("RS.*.dcm")))
    assert report.iod == "RTStructureSet"
    assert any("FrameOfReferenceUID" in m.text for m in unexpected(report, load_baseline()))
