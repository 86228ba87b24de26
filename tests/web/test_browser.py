"""The review workstation in a real headless Chromium (Debian chromium + chromium-driver, Selenium).

On the paused demo sessions (``conftest.py``): every match panel renders (canvas pixel statistics
read back from the canvas), overlay modes switch, the slice scroll changes the 3D/3D plane it
belongs to, a 1 mm nudge changes the couch correction by exactly 1 mm on its axis with the sign
documented for the patient position (HFS and FFS), accept → the demo stores the REG whose matrix
is the page's, reject → nothing stored for that match.

Screenshots of each panel kind are written to ``docs/review/`` when ``OPENIGRT_UPDATE_SCREENSHOTS=1``
(otherwise to the test's temporary directory, so CI never rewrites tracked files).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_ENV = "OPENIGRT_UPDATE_SCREENSHOTS"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "review"
WAIT_S = 90
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1700,1400", "--force-device-scale-factor=1")

STATS_JS = """
const c = document.getElementById(arguments[0]);
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let s = 0, s2 = 0, h = 0; const n = d.length / 4;
for (let i = 0; i < d.length; i += 4) {
  const v = (d[i] + d[i + 1] + d[i + 2]) / 3; s += v; s2 += v * v;
  h = (Math.imul(h, 31) + d[i] * 3 + d[i + 1] * 5 + d[i + 2]) >>> 0;
}
const m = s / n; return [m, Math.sqrt(Math.max(s2 / n - m * m, 0)), h, c.width, c.height];
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("OPENIGRT_REQUIRE_PEERS"):
            pytest.fail("chromium / chromium-driver are not installed (scripts/install-peers.sh)")
        pytest.skip("chromium / chromium-driver are not installed (make peers)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in CHROMIUM_ARGS:
        opts.add_argument(a)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate: Any, what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _el(driver: Any, id_: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_)


def _renders(driver: Any, match: str) -> int:
    from selenium.common.exceptions import NoSuchElementException

    try:
        return int(_el(driver, f"match-{match}").get_attribute("data-renders") or 0)
    except NoSuchElementException:  # the panel is not built yet
        return 0


def _click_and_render(driver: Any, match: str, button: str) -> None:
    before = _renders(driver, match)
    _el(driver, button).click()
    _wait(lambda: _renders(driver, match) > before and not _el(driver, f"accept-{match}").get_attribute("disabled"),
          f"{match} re-rendered after {button}")


def _stats(driver: Any, canvas: str) -> tuple[float, float, int, int, int]:
    return tuple(driver.execute_script(STATS_JS, canvas))  # type: ignore[return-value]


def _correction(driver: Any, match: str, axis: str) -> tuple[float, float]:
    cell = _el(driver, f"corr-{match}-{axis}")
    return float(cell.get_attribute("data-value")), float(cell.text.split()[0])


def _matrix(driver: Any, match: str) -> np.ndarray:
    return np.array(json.loads(_el(driver, f"match-{match}").get_attribute("data-matrix")))


def _open(driver: Any, url: str, matches: list[str]) -> None:
    driver.get(url)
    for m in matches:
        _wait(lambda m=m: _renders(driver, m) >= 1, f"first render of the {m} panel")


def _reg_matrices(path: str) -> list[np.ndarray]:
    ds = dcmread(path)
    return [np.array([float(v) for v in item.MatrixRegistrationSequence[0].MatrixSequence[0]
                      .FrameOfReferenceTransformationMatrix]).reshape(4, 4) for item in ds.RegistrationSequence]


def _stored_reg(state: Any, match: str) -> Any:
    regs = [c for c in state.created if c.match_id == match and c.kind == "REG"]
    assert len(regs) == 1, regs
    return regs[0]


# ----------------------------------------------------------------------------- HFS: the four panel kinds
def test_every_panel_renders_overlays_switch_and_slices_scroll(browser: Any, hfs_demo: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    _open(browser, hfs_demo.url, ["2d", "2d2d", "marker", "3d3d"])
    canvases = {"2d": ["view1"], "2d2d": ["view1", "view2"], "marker": ["view1", "view2"],
                "3d3d": ["axial", "coronal", "sagittal"]}
    for match, keys in canvases.items():
        for key in keys:
            mean, std, _, w, h = _stats(browser, f"canvas-{match}-{key}")
            assert w > 100 and h > 100 and 10 < mean < 245 and std > 10, (match, key, mean, std)
    assert "DRR of the planning CT" in _el(browser, "status-2d2d").text
    assert "out of tolerance" in _el(browser, "flag-3d3d-lat_mm").text  # +7.8 mm > 5 mm
    assert "not visible" in _el(browser, "flag-2d-vrt_mm").text

    # overlay modes: each gives other pixels; flicker alternates by itself
    seen = {}
    for mode in ("blend", "colour", "checkerboard", "difference", "reference", "acquired"):
        Select(_el(browser, "mode-2d2d")).select_by_value(mode)
        seen[mode] = _stats(browser, "canvas-2d2d-view1")[2]
    assert len(set(seen.values())) == len(seen), seen
    Select(_el(browser, "mode-2d2d")).select_by_value("flicker")
    hashes = set()
    for _ in range(8):
        hashes.add(_stats(browser, "canvas-2d2d-view1")[2])
        time.sleep(0.2)
    assert hashes == {seen["reference"], seen["acquired"]}, hashes
    Select(_el(browser, "mode-2d2d")).select_by_value("blend")
    before = _stats(browser, "canvas-2d2d-view1")[2]
    _el(browser, "alpha-2d2d").send_keys("\ue012" * 4)  # slider left: more reference
    assert _stats(browser, "canvas-2d2d-view1")[2] != before
    Select(_el(browser, "wl-3d3d")).select_by_value("bone")
    assert "W 1800 L 400" in _el(browser, "wllabel-3d3d").text

    # the slice scroll changes the plane it belongs to and no other
    planes = {p: _stats(browser, f"canvas-3d3d-{p}")[2] for p in ("axial", "coronal", "sagittal")}
    _click_and_render(browser, "3d3d", "slice-3d3d-axial-plus")
    _click_and_render(browser, "3d3d", "slice-3d3d-axial-plus")
    assert _el(browser, "slicelabel-3d3d-axial").text.startswith("+2")
    after = {p: _stats(browser, f"canvas-3d3d-{p}")[2] for p in planes}
    assert after["axial"] != planes["axial"]
    assert after["coronal"] == planes["coronal"] and after["sagittal"] == planes["sagittal"]
    _click_and_render(browser, "3d3d", "slice-3d3d-axial-minus")
    _click_and_render(browser, "3d3d", "slice-3d3d-axial-minus")
    Select(_el(browser, "wl-3d3d")).select_by_value("soft tissue")

    out = DOCS if os.environ.get(SCREENSHOT_ENV) == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    Select(_el(browser, "mode-2d2d")).select_by_value("colour")
    Select(_el(browser, "mode-3d3d")).select_by_value("checkerboard")
    for match, name in (("2d", "review-2d"), ("2d2d", "review-2d2d"), ("marker", "review-marker"),
                        ("3d3d", "review-3d3d")):
        png = out / f"{name}.png"
        _el(browser, f"match-{match}").screenshot(str(png))
        assert png.stat().st_size > 20_000, png


def test_adjust_accept_reject_and_the_stored_registrations(browser: Any, hfs_demo: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    _open(browser, hfs_demo.url, ["2d", "2d2d", "marker", "3d3d"])
    # 2D/2D, HFS: +1 mm lat by button, +1 mm lng by the arrow key
    lat0, lat0_text = _correction(browser, "2d2d", "lat_mm")
    vrt0, _ = _correction(browser, "2d2d", "vrt_mm")
    m0 = _matrix(browser, "2d2d")
    view0 = _stats(browser, "canvas-2d2d-view1")[2]
    _click_and_render(browser, "2d2d", "nudge-2d2d-lat_mm-p1")
    lat1, lat1_text = _correction(browser, "2d2d", "lat_mm")
    assert lat1 - lat0 == pytest.approx(1.0, abs=2e-6) and lat1_text - lat0_text == pytest.approx(1.0, abs=1e-9)
    assert _correction(browser, "2d2d", "vrt_mm")[0] == pytest.approx(vrt0, abs=2e-6)
    m1 = _matrix(browser, "2d2d")
    assert np.allclose(m1[:3, 3] - m0[:3, 3], (-1.0, 0.0, 0.0), atol=1e-9)  # HFS: +lat corrects a patient lying to the right
    assert _stats(browser, "canvas-2d2d-view1")[2] != view0  # the DRR of the moved CT was re-rendered
    lng1, _ = _correction(browser, "2d2d", "lng_mm")
    before = _renders(browser, "2d2d")
    _el(browser, "match-2d2d").send_keys(Keys.ARROW_UP)
    _wait(lambda: _renders(browser, "2d2d") > before, "render after the arrow key")
    assert _correction(browser, "2d2d", "lng_mm")[0] - lng1 == pytest.approx(1.0, abs=2e-6)
    assert np.allclose(_matrix(browser, "2d2d")[:3, 3] - m1[:3, 3], (0.0, 0.0, -1.0), atol=1e-9)
    assert _el(browser, "accept-2d2d").text == "accept with adjustment"
    shown_2d2d = _matrix(browser, "2d2d")
    _el(browser, "accept-2d2d").click()
    _wait(lambda: _el(browser, "match-2d2d").get_attribute("data-decision") == "accepted", "2d2d accepted")
    assert "browser at 127.0.0.1" in _el(browser, "decided-2d2d").text
    assert _el(browser, "nudge-2d2d-lat_mm-p1").get_attribute("disabled") is not None  # final once stored

    # 3D/3D: a typed value and a 0.1° rotation; reset first proves the automatic result comes back
    auto3 = _matrix(browser, "3d3d")
    _click_and_render(browser, "3d3d", "nudge-3d3d-vrt_mm-m0.5")
    _click_and_render(browser, "3d3d", "reset-3d3d")
    assert np.allclose(_matrix(browser, "3d3d"), auto3, atol=0)
    rtn0, _ = _correction(browser, "3d3d", "rtn_deg")
    _click_and_render(browser, "3d3d", "nudge-3d3d-rtn_deg-p0.1")
    assert _correction(browser, "3d3d", "rtn_deg")[0] - rtn0 == pytest.approx(0.1, abs=2e-6)
    box = _el(browser, "input-3d3d-vrt_mm")
    target = round(_correction(browser, "3d3d", "vrt_mm")[0] + 0.5, 2)
    before = _renders(browser, "3d3d")
    box.clear()
    box.send_keys(f"{target}\n")
    _wait(lambda: _renders(browser, "3d3d") > before and abs(_correction(browser, "3d3d", "vrt_mm")[0] - target) < 2e-6,
          "render after a typed value")
    assert _correction(browser, "3d3d", "rtn_deg")[0] - rtn0 == pytest.approx(0.1, abs=2e-6)  # kept
    shown_3d3d = _matrix(browser, "3d3d")
    _el(browser, "accept-3d3d").click()
    _wait(lambda: _el(browser, "match-3d3d").get_attribute("data-decision") == "accepted", "3d3d accepted")

    shown_marker = _matrix(browser, "marker")
    _el(browser, "accept-marker").click()
    _el(browser, "reject-2d").click()
    _wait(lambda: browser.find_element("tag name", "body").get_attribute("data-all-decided") == "true",
          "every match decided")

    result = hfs_demo.finish()
    state = result.state
    assert state.closed and {m.match_id: m.decision for m in state.matches} == {
        "2d": "rejected", "2d2d": "accepted", "marker": "accepted", "3d3d": "accepted"}
    for match, shown in (("2d2d", shown_2d2d), ("3d3d", shown_3d3d), ("marker", shown_marker)):
        reg = _stored_reg(state, match)
        assert reg.stored, match
        assert any(np.allclose(m, shown, atol=1e-6) for m in _reg_matrices(reg.path)), match
    assert not _stored_reg(state, "2d").stored  # rejected: its REG never left the session
    assert state.match("2d2d").adjustment_mm == (1.0, 1.0, 0.0)
    checks = {c.name: c for c in result.checks}
    assert checks["stored objects found in the archive"].ok, checks
    assert checks["2d2d accuracy"].ok  # judged on the automatic result, not on the reviewer's nudge


# ----------------------------------------------------------------------------- FFS: the signs follow the position
def test_feet_first_adjustment_signs_and_stored_matrix(browser: Any, ffs_demo: Any) -> None:
    _open(browser, ffs_demo.url, ["2d2d"])
    assert "patient position FFS" in _el(browser, "match-2d2d").text
    lat0, _ = _correction(browser, "2d2d", "lat_mm")
    m0 = _matrix(browser, "2d2d")
    _click_and_render(browser, "2d2d", "nudge-2d2d-lat_mm-p1")
    assert _correction(browser, "2d2d", "lat_mm")[0] - lat0 == pytest.approx(1.0, abs=2e-6)
    m1 = _matrix(browser, "2d2d")
    assert np.allclose(m1[:3, 3] - m0[:3, 3], (1.0, 0.0, 0.0), atol=1e-9)  # FFS: +Xt is the patient's right
    lng0, _ = _correction(browser, "2d2d", "lng_mm")
    _click_and_render(browser, "2d2d", "nudge-2d2d-lng_mm-p1")
    assert _correction(browser, "2d2d", "lng_mm")[0] - lng0 == pytest.approx(1.0, abs=2e-6)
    assert np.allclose(_matrix(browser, "2d2d")[:3, 3] - m1[:3, 3], (0.0, 0.0, 1.0), atol=1e-9)  # feet to the gantry
    shown = _matrix(browser, "2d2d")
    _el(browser, "accept-2d2d").click()
    result = ffs_demo.finish()
    reg = _stored_reg(result.state, "2d2d")
    assert reg.stored and any(np.allclose(m, shown, atol=1e-6) for m in _reg_matrices(reg.path))
    assert result.state.match("2d2d").result["patient_position"] == "FFS"
