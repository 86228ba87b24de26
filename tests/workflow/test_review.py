"""MATCH-7 review pictures: the PNG shows before/after, the HTML page links every picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openigrt.workflow.review import ReviewPanel, ReviewPicture, blend, checkerboard, couch_lines, render_review, write_html


def _images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:80]
    ref = np.exp(-((xx - 40) ** 2 + (yy - 32) ** 2) / 50.0)
    acq = np.roll(ref, 5, axis=1) + rng.normal(0, 0.01, ref.shape)
    after = np.roll(ref, 5, axis=1)
    return ref, acq, after


def test_blend_grey_where_equal_coloured_where_not() -> None:
    ref, acq, after = _images()
    rgb_after = blend(after, after)
    assert np.allclose(rgb_after[..., 0], rgb_after[..., 1])
    rgb_before = blend(ref, acq)
    assert np.abs(rgb_before[..., 0] - rgb_before[..., 1]).max() > 0.5


def test_checkerboard_tiles_alternate() -> None:
    a = np.zeros((16, 16))
    b = np.tile(np.linspace(1.0, 2.0, 16), (16, 1))  # a ramp: bright on the right
    cb = checkerboard(a, b, tiles=2)
    assert cb[0, 0] == 0.0 and cb[0, 15] > 0.9 and cb[15, 15] == 0.0
    with pytest.raises(ValueError):
        checkerboard(a, np.zeros((3, 3)))


def test_png_and_html_written(tmp_path: Path) -> None:
    ref, acq, after = _images()
    pic = ReviewPicture(
        "2D/2D match",
        [ReviewPanel("kV 0°", ref, after, acq, markers_planned=np.array([[40.0, 32.0]]), markers_found=np.array([[45.0, 32.0]]))],
        couch_lines({"vrt_mm": 0.0, "lng_mm": 0.0, "lat_mm": -5.0}, {"vrt_mm": 0.0, "lng_mm": 0.0, "lat_mm": -5.1}),
    )
    png = render_review(pic, tmp_path / "m1.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    page = write_html([("2D/2D", png, pic.lines)], tmp_path / "index.html")
    text = page.read_text()
    assert "src='m1.png'" in text and "lat -5.00 mm" in text
