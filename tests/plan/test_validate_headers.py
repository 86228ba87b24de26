"""``openigrt validate`` reads headers only (issue 11): the same findings, a fraction of the memory.

* Golden JSON: ``validate_golden.json`` holds what ``validate_paths`` answered **before** the
  header-only read (commit 47b9a74, which decoded every CT voxel), for patients with and without
  defects, every match type; the header-only read must answer exactly the same. Regenerate only
  when a finding is meant to change: ``python -m tests.plan.test_validate_headers --write``.
* Memory: ``openigrt validate`` of a 200-slice 512×512 CT (+ plan, structure set, DRRs) peaks
  at most ``HEADERS_200_MB`` above the same command on a 2-slice CT (before: ~160 MB above, the
  voxels), measured as the maximum resident set of the command's own process
  (benchmarks/_rss.py). The issue's 50 MB absolute target is out of reach with pydicom: the
  interpreter with numpy + pydicom is ~47 MB before reading anything (benchmarks/README.md).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openigrt.plan.evaluate import validate_paths
from tests.iod import factory as F
from tests.iod.realdata import ECLIPSE, GE_CT, GE_RS

GOLDEN = Path(__file__).with_name("validate_golden.json")
MATCHES = ("2d", "2d2d", "marker", "3d3d")
#: The issue's target for ``openigrt validate`` of 200 CT slices (MB): not reachable, see the memory test.
VALIDATE_PEAK_RSS_MB = 50.0
#: What 198 more 512×512 slices may add to the peak when only headers are read (MB; measured ~10).
HEADERS_200_MB = 16.0


def _good(_: Path) -> dict[str, Any]:
    return F.good_patient()


def _defects(_: Path) -> dict[str, Any]:
    p = F.good_patient()
    p["plan"].BeamSequence[1].ControlPointSequence[0].TableTopVerticalPosition = -147.0
    p["drrs"][2].IsocenterPosition = [0.0, 0.0, 4.0]
    del p["ct"][3].RescaleSlope  # PLAN-13 in one slice
    p["ct"][5].FrameOfReferenceUID = "1.2.3.999"  # PLAN-9: two frames of reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns when the builder sets it
        for ct in p["ct"]:  # the same tolerated flaws in every slice: reported for each file
            ct.StationName = "A_VERY_LONG_STATION_NAME_X"  # SH > 16 characters
            ct.AcquisitionNumber = "1.5"  # not an IS
    return p


def _uneven(_: Path) -> dict[str, Any]:
    p = F.good_patient()
    cts = [F.ct_slice(k, z=z) for k, z in enumerate([-10.0, -7.5, -5.0, -1.0, 1.5, 4.0, 6.5, 9.0])]
    p["ct"], p["rs"] = cts, F.structure_set(cts)
    return p


def _in_plane_offset(_: Path) -> dict[str, Any]:
    p = F.good_patient()
    p["ct"][2].ImagePositionPatient = [-14.0, -15.0, -5.0]
    p["ct"][4].PixelData = p["ct"][4].PixelData[:-2]  # wrong Pixel Data length: the CT cannot be read
    return p


CASES: dict[str, Callable[[Path], dict[str, Any]]] = {
    "good": _good, "defects": _defects, "uneven": _uneven, "offset_and_short_pixels": _in_plane_offset}


def _normalised(data: Any, directory: Path) -> Any:
    return json.loads(json.dumps(data).replace(str(directory), "<dir>"))


def answers(tmp: Path) -> dict[str, Any]:
    """``validate_paths(...).to_json()`` per case and match (paths replaced by ``<dir>``)."""
    out: dict[str, Any] = {}
    for name, build in CASES.items():
        d = F.write_patient(tmp / name, build(tmp))
        out[name] = {m: _normalised(validate_paths([d], m).to_json(), d) for m in MATCHES}
    plan = F.save(F.good_plan(), tmp / "RP_for_ge.dcm")
    for name, paths in (("eclipse", [ECLIPSE]), ("ge_ct_rs", [*GE_CT, GE_RS, plan])):
        out[name] = {m: _normalised(_normalised(validate_paths(paths, m).to_json(), ECLIPSE.parent), tmp)
                     for m in MATCHES}
    return out


def test_validate_answers_as_before_the_header_only_read(tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = answers(tmp_path)
    assert set(got) == set(golden)
    for case in golden:
        for m in MATCHES:
            assert got[case][m] == golden[case][m], f"{case} / {m}"


def _patient_with_ct(directory: Path, slices: int) -> Path:
    p = F.good_patient()
    rng = np.random.default_rng(11)
    cts = [F.ct_slice(k, z=-100.0 + 1.0 * k, rows=512, cols=512, spacing=0.9765625, x0=-249.5, y0=-249.5)
           for k in range(slices)]
    for ct in cts:
        ct.PixelData = rng.integers(0, 2000, (512, 512), dtype=np.int16).tobytes()
    p["ct"], p["rs"] = cts, F.structure_set(cts)
    return F.write_patient(directory, p)


def _validate_peak_mb(directory: Path) -> tuple[dict[str, Any], float]:
    from benchmarks._rss import peak_rss
    from tests.peers import openigrt_argv

    cp, mb = peak_rss(openigrt_argv("validate", str(directory), "--match", "3d3d", "--json"), timeout=300)
    assert cp.returncode in (0, 1), cp.stderr
    return json.loads(cp.stdout), mb


@pytest.mark.slow
def test_validate_of_200_slices_reads_headers_only(tmp_path: Path) -> None:
    """The 198 extra 512×512 slices may cost the headers (~10 MB), never the voxels (~200 MB before)."""
    small, small_mb = _validate_peak_mb(_patient_with_ct(tmp_path / "small", 2))
    big, big_mb = _validate_peak_mb(_patient_with_ct(tmp_path / "big", 200))
    assert small["inputs"]["ct_slices"] == 2 and big["inputs"]["ct_slices"] == 200
    assert big["possible"] is True
    assert big_mb - small_mb <= HEADERS_200_MB, (
        f"validate peaked at {big_mb:.1f} MB for 200 slices, {small_mb:.1f} MB for 2")
    # The absolute target (VALIDATE_PEAK_RSS_MB) is not asserted: the interpreter with the
    # modules validate needs (numpy, pydicom and what pydicom imports: PIL, ssl, its dictionaries)
    # already peaks at ~47-50 MB here before reading a file (benchmarks/README.md, "Readers").


if __name__ == "__main__":  # regenerate the golden answers (see the module docstring)
    import tempfile

    if "--write" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            GOLDEN.write_text(json.dumps(answers(Path(tmp)), indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
