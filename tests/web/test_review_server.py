"""The review page's boundary: token, bind address, broken sessions, re-rendering, decisions stored once.

Against a real uvicorn server on loopback (the paused HFS demo, or a copy of its session) with
plain HTTP requests; the browser itself is in ``test_browser.py``.
"""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread

from openigrt.config import load_settings
from openigrt.geometry.projection import ProjectionGeometry
from openigrt.geometry.rigid import RigidTransform
from openigrt.web.server import ReviewServer
from openigrt.workflow.review_adjust import Adjustment
from openigrt.workflow.review_decide import AlreadyDecided
from openigrt.workflow.review_session import ReviewSession
from openigrt.workflow.state import ACCEPTED, PROPOSED
from tests.peers import openigrt_argv, peer_env

TIMEOUT_S = 60


def _get(url: str, **kw: Any) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, **kw)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as rsp:
            return rsp.status, rsp.read(), rsp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _base(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", urllib.parse.parse_qs(parts.query)["token"][0]


def _post(base: str, path: str, token: str, doc: dict[str, Any]) -> tuple[int, bytes]:
    status, body, _ = _get(f"{base}{path}?token={token}", data=json.dumps(doc).encode(), method="POST",
                           headers={"Content-Type": "application/json"})
    return status, body


def _unpack(body: bytes) -> tuple[dict[str, Any], dict[tuple[str, str], np.ndarray]]:
    (n,) = struct.unpack("<I", body[:4])
    header = json.loads(body[4:4 + n])
    start = 4 + n + (-(4 + n)) % 4
    layers = {}
    for v in header["views"]:
        for layer in v["layers"]:
            a = np.frombuffer(body, "<f4", layer["length"], start + layer["offset"])
            layers[(v["key"], layer["name"])] = a.reshape(v["rows"], v["cols"])
    return header, layers


@pytest.fixture
def served(session_copy: Path) -> Any:
    """A review server on a copy of the paused HFS session (so tests never depend on each other)."""
    with ReviewServer(ReviewSession(session_copy, load_settings())) as server:
        yield server


# ----------------------------------------------------------------------------- access
def test_every_request_needs_the_token(served: Any) -> None:
    base, token = _base(served.url)
    for path in ("/", "/api/session", "/static/review.js"):
        assert _get(base + path)[0] == 403
        assert _get(f"{base}{path}?token=wrong{token}")[0] == 403
        assert _get(base + path, headers={"Cookie": "openigrt_review=nope"})[0] == 403
    assert _post(base, "/api/matches/2d/decision", "x", {"decision": "accepted"})[0] == 403
    status, body, headers = _get(served.url)
    assert status == 200 and b"review.js" in body
    cookie = headers["set-cookie"].split(";")[0]
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    status, body, _ = _get(base + "/api/session", headers={"Cookie": cookie})
    assert status == 200 and {m["id"] for m in json.loads(body)["matches"]} == {"2d", "2d2d", "marker", "3d3d"}


def _one_line_cli(args: list[str], code: int) -> str:
    cp = subprocess.run(openigrt_argv(*args), capture_output=True, text=True, timeout=TIMEOUT_S, env=peer_env(),
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == code, cp.stdout + cp.stderr
    assert "Traceback" not in cp.stderr and cp.stdout == ""
    lines = [line for line in cp.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, cp.stderr
    return lines[0]


def test_non_loopback_bind_needs_allow_remote(session_copy: Path) -> None:
    line = _one_line_cli(["review", "--workdir", str(session_copy), "--bind", "0.0.0.0"], 2)
    assert "0.0.0.0" in line and "--allow-remote" in line


def test_missing_or_corrupt_session_is_one_line(tmp_path: Path, session_copy: Path) -> None:
    line = _one_line_cli(["review", "--workdir", str(tmp_path / "nowhere")], 1)
    assert "nowhere" in line and "no such session directory" in line
    (session_copy / "session.json").write_text('{"version": 1, "plan_uid": ')
    line = _one_line_cli(["review", "--workdir", str(session_copy)], 1)
    assert "session.json" in line and "not valid JSON" in line


def test_session_broken_while_served_gives_an_error_page(session_copy: Path) -> None:
    review = ReviewSession(session_copy, load_settings())
    with ReviewServer(review) as server:
        base, token = _base(server.url)
        (session_copy / "session.json").write_text("[]")
        status, body, _ = _get(server.url)
        assert status == 500 and b"id='error'" in body and b"Traceback" not in body
        status, body, _ = _get(f"{base}/api/session?token={token}")
        assert status == 400 and "session state" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- rendering
def test_adjusted_view_is_a_drr_of_the_moved_ct(served: Any) -> None:
    """+4 mm lat (HFS): the AP view's reference moves by the projected isocenter displacement."""
    base, token = _base(served.url)
    status, body = _post(base, "/api/matches/2d2d/render", token, {"adjustment": {}})
    assert status == 200, body[:300]
    h0, l0 = _unpack(body)
    status, body = _post(base, "/api/matches/2d2d/render", token, {"adjustment": {"lat_mm": 4.0}})
    h1, l1 = _unpack(body)
    c0 = {r["axis"]: r["correction"] for r in h0["correction"]}
    c1 = {r["axis"]: r["correction"] for r in h1["correction"]}
    assert c1["lat_mm"] - c0["lat_mm"] == pytest.approx(4.0, abs=1e-6)
    assert c1["vrt_mm"] == pytest.approx(c0["vrt_mm"], abs=1e-6) and c1["lng_mm"] == pytest.approx(c0["lng_mm"], abs=1e-6)
    assert "DRR" in h1["reference_source"]
    assert "view 1: rays every 3rd row, every 3rd column" in h1["reference_source"]  # small demo CT: 2 mm voxels
    # expected displacement of the planned isocenter overlay, from the geometry (independently of the renderer)
    iso0 = np.array(h0["views"][0]["overlays"]["planned_isocenter"])
    iso1 = np.array(h1["views"][0]["overlays"]["planned_isocenter"])
    t0, t1 = RigidTransform(np.array(h0["matrix"])), RigidTransform(np.array(h1["matrix"]))
    assert np.allclose(t1.translation_mm - t0.translation_mm, (-4.0, 0.0, 0.0), atol=1e-9)  # HFS: patient's right
    assert iso1[0] - iso0[0] < -5  # AP view of an HFS patient: the patient's right is the image left
    # the re-rendered DRR content moved the same way: cross-correlation peak along the columns
    a, b = l0[("view1", "reference")], l1[("view1", "reference")]
    a, b = a - a.mean(), b - b.mean()
    shifts = range(-20, 21)
    scores = [float((a[:, 30:-30] * np.roll(b, -s, axis=1)[:, 30:-30]).sum()) for s in shifts]
    assert list(shifts)[int(np.argmax(scores))] == pytest.approx(iso1[0] - iso0[0], abs=1.0)
    assert not np.array_equal(l0[("view1", "reference")], l1[("view1", "reference")])
    assert np.array_equal(l0[("view1", "acquired")], l1[("view1", "acquired")])


def test_bad_adjustment_is_a_clear_400(served: Any) -> None:
    base, token = _base(served.url)
    for doc in ({"adjustment": {"lat_mm": "left"}}, {"adjustment": {"rtn_deg": 0.1}}, {"slices": "x"}):
        status, body = _post(base, "/api/matches/2d2d/render", token, doc)
        assert status == 400 and json.loads(body)["error"], doc
    status, body = _post(base, "/api/matches/nope/render", token, {})
    assert status == 400 and "nope" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- decisions
def test_two_simultaneous_accepts_store_one_decision(session_copy: Path) -> None:
    review = ReviewSession(session_copy, load_settings())
    adj = Adjustment(vrt_mm=1.0, rtn_deg=0.1)
    shown = review.render("3d3d", adj, {}).header["matrix"]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def accept(who: str) -> None:
        other = ReviewSession(session_copy, load_settings())  # as a second process would
        barrier.wait()
        try:
            other.decide("3d3d", ACCEPTED, adj, shown_matrix=shown, decided_by=who)
            results.append("stored")
        except AlreadyDecided as exc:
            results.append(f"refused: {exc}")

    threads = [threading.Thread(target=accept, args=(f"browser {k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    assert sorted(r.split(":")[0] for r in results) == ["refused", "stored"], results
    state = review.state()
    record = state.match("3d3d")
    assert record.decision == ACCEPTED and record.decided_by in ("browser 0", "browser 1")
    assert record.adjustment_mm == (0.0, 0.0, 1.0) and record.adjustment_deg == (0.1, 0.0, 0.0)
    regs = [c for c in state.created if c.match_id == "3d3d" and c.kind == "REG"]
    assert len(regs) == 1 and Path(regs[0].path).is_file()
    ds = dcmread(regs[0].path)
    matrices = [np.array([float(v) for v in item.MatrixRegistrationSequence[0].MatrixSequence[0]
                          .FrameOfReferenceTransformationMatrix]).reshape(4, 4) for item in ds.RegistrationSequence]
    assert any(np.allclose(m, shown, atol=1e-6) for m in matrices)
    assert "adjusted" in ds.ContentDescription
    assert [m.decision for m in state.matches if m.match_id != "3d3d"] == [PROPOSED] * 3


def test_decision_refuses_a_stale_page_and_http_409_when_decided(session_copy: Path) -> None:
    review = ReviewSession(session_copy, load_settings())
    with ReviewServer(review) as server:
        base, token = _base(server.url)
        status, body = _post(base, "/api/matches/2d/decision", token,
                             {"decision": "accepted", "adjustment": {"lat_mm": 1.0},
                              "matrix": np.eye(4).tolist()})
        assert status == 400 and "reload" in json.loads(body)["error"]
        status, body = _post(base, "/api/matches/2d/decision", token, {"decision": "rejected"})
        assert status == 200
        assert next(m for m in json.loads(body)["matches"] if m["id"] == "2d")["decided_by"] == "browser at 127.0.0.1"
        status, body = _post(base, "/api/matches/2d/decision", token, {"decision": "accepted"})
        assert status == 409 and "already rejected" in json.loads(body)["error"]


def test_geometry_helpers_used_by_the_views() -> None:
    from openigrt.workflow.review_views import bin_image, binned_geometry

    g = ProjectionGeometry(gantry_angle_deg=30, rows=8, columns=12, pixel_spacing_mm=(0.4, 0.5))
    b = binned_geometry(g)
    p = np.array([[10.0, -20.0, 5.0]])
    full, half = g.project(p)[0], b.project(p)[0]
    assert np.allclose(half, (full - 0.5) / 2)  # the binned pixel centre is the mean of the 2x2 block
    img = np.arange(96, dtype=float).reshape(8, 12)
    assert bin_image(img)[0, 0] == pytest.approx(img[:2, :2].mean())
