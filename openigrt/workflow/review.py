"""Review pictures of a match (SPEC MATCH-7): PNG per match and an HTML page showing them.

Each picture shows reference vs acquired **before** and **after** the match, as a checkerboard
and as a colour blend (reference in magenta, acquired in green: grey where they agree), plus
projected markers when given, and the couch correction in the title. The callers prepare the
arrays (2D projections, or orthogonal slices through the isocenter of a CBCT and the resampled
planning CT), so this module has no geometry of its own.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CHECKER_TILES = 8
#: review picture layout: figure width and panel-row height (inches), resolution (dots per inch)
FIGURE_WIDTH_IN = 16.0
ROW_HEIGHT_IN = 3.8
REVIEW_DPI = 90
#: PNG compression of the review pictures (zlib level: 1 is ~3x faster to write than the default 6)
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class ReviewPanel:
    """One view (a projection, or a CBCT slice): the same grid for all three images.

    ``markers_*`` are (N, 2) pixel positions (column, row) to draw on the acquired image.
    """

    title: str
    reference_before: NDArray[np.floating]
    reference_after: NDArray[np.floating]
    acquired: NDArray[np.floating]
    markers_planned: NDArray[np.floating] | None = None
    markers_found: NDArray[np.floating] | None = None


@dataclass(frozen=True)
class ReviewPicture:
    """A whole review picture: panels plus the text lines shown above them."""

    title: str
    panels: Sequence[ReviewPanel]
    lines: Sequence[str] = field(default_factory=tuple)


def normalise(image: NDArray[np.floating], *, lo_pct: float = 1.0, hi_pct: float = 99.0) -> NDArray[np.float64]:
    """Scale to [0, 1] between two percentiles (robust window), NaN → 0.

    >>> normalise(np.array([[0.0, 1.0], [2.0, 3.0]]), lo_pct=0, hi_pct=100).tolist()
    [[0.0, 0.3333333333333333], [0.6666666666666666, 1.0]]
    """
    a = np.nan_to_num(np.asarray(image, dtype=float))
    lo, hi = np.percentile(a, [lo_pct, hi_pct])
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def checkerboard(a: NDArray[np.floating], b: NDArray[np.floating], *, tiles: int = CHECKER_TILES) -> NDArray[np.float64]:
    """Alternate tiles of two equally shaped images (both normalised first)."""
    if a.shape != b.shape:
        raise ValueError(f"checkerboard needs equal shapes, got {a.shape} and {b.shape}")
    rows, cols = a.shape
    r = (np.arange(rows) * tiles // max(rows, 1))[:, None]
    c = (np.arange(cols) * tiles // max(cols, 1))[None, :]
    mask = (r + c) % 2 == 0
    return np.where(mask, normalise(a), normalise(b))


def blend(reference: NDArray[np.floating], acquired: NDArray[np.floating]) -> NDArray[np.float64]:
    """RGB blend: reference → magenta, acquired → green (grey where they agree)."""
    r = normalise(reference)
    g = normalise(acquired)
    return np.stack([r, g, r], axis=-1)


def display_step(shape: tuple[int, ...], *, dpi: int = REVIEW_DPI) -> int:
    """Integer subsampling that keeps an image of *shape* (rows, cols) at least as fine as its cell of
    the review picture (a quarter of the figure width by one row height): what the picture can show.

    >>> display_step((768, 1024)), display_step((256, 256))
    (2, 1)
    """
    cell_cols, cell_rows = FIGURE_WIDTH_IN / 4 * dpi, ROW_HEIGHT_IN * dpi
    return max(1, int(min(shape[0] / cell_rows, shape[1] / cell_cols)))


def render_review(picture: ReviewPicture, path: Path, *, dpi: int = REVIEW_DPI) -> Path:
    """Write the picture as a PNG (rows: panels; columns: before blend/checker, after blend/checker).

    Images finer than their cell of the picture are subsampled first (:func:`display_step`; drawn
    in their original pixel coordinates, so markers stay where they are): the PNG cannot show more.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(picture.panels)
    if n == 0:
        raise ValueError("a review picture needs at least one panel")
    header_in = 0.22 * (len(picture.lines) + 2)
    fig_h = ROW_HEIGHT_IN * n + header_in
    fig, axes = plt.subplots(n, 4, figsize=(FIGURE_WIDTH_IN, fig_h), squeeze=False)
    for row, panel in enumerate(picture.panels):
        rows, cols = np.shape(panel.acquired)[:2]
        k = display_step((rows, cols), dpi=dpi)
        before, after, acquired = (np.asarray(a)[::k, ::k] for a in (panel.reference_before, panel.reference_after,
                                                                   panel.acquired))
        images = [
            ("before: blend", blend(before, acquired)),
            ("before: checkerboard", checkerboard(before, acquired)),
            ("after: blend", blend(after, acquired)),
            ("after: checkerboard", checkerboard(after, acquired)),
        ]
        extent = (-0.5, k * acquired.shape[1] - 0.5, k * acquired.shape[0] - 0.5, -0.5)
        for col, (label, img) in enumerate(images):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray", interpolation="nearest", extent=extent)
            ax.set_title(f"{panel.title} — {label}", fontsize=9)
            ax.set_axis_off()
            _draw_markers(ax, panel, after=col >= 2)
    header = picture.title + ("\n" + "\n".join(picture.lines) if picture.lines else "")
    fig.suptitle(header, fontsize=11, family="monospace")
    fig.tight_layout(rect=(0, 0, 1, 1 - header_in / fig_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    plt.close(fig)
    return path


def _draw_markers(ax: object, panel: ReviewPanel, *, after: bool) -> None:
    if panel.markers_found is not None and len(panel.markers_found):
        m = np.asarray(panel.markers_found)
        ax.scatter(m[:, 0], m[:, 1], s=60, facecolors="none", edgecolors="lime", linewidths=1.2)  # type: ignore[attr-defined]
    if panel.markers_planned is not None and len(panel.markers_planned) and not after:
        m = np.asarray(panel.markers_planned)
        ax.scatter(m[:, 0], m[:, 1], s=40, marker="+", color="magenta", linewidths=1.2)  # type: ignore[attr-defined]


def couch_lines(couch: Mapping[str, float], truth: Mapping[str, float] | None = None) -> list[str]:
    """Text lines with the couch correction (and the ground truth when known).

    >>> couch_lines({"vrt_mm": 1.0, "lng_mm": -2.5, "lat_mm": 0.25})
    ['couch correction  vrt +1.00 mm  lng -2.50 mm  lat +0.25 mm']
    """
    def fmt(c: Mapping[str, float]) -> str:
        parts = [f"{k.split('_')[0]} {c[k]:+.2f} mm" for k in ("vrt_mm", "lng_mm", "lat_mm") if k in c]
        parts += [f"{k.split('_')[0]} {c[k]:+.2f}°" for k in ("rtn_deg", "pitch_deg", "roll_deg") if k in c]
        return "  ".join(parts)

    lines = [f"couch correction  {fmt(couch)}"]
    if truth is not None:
        lines.append(f"ground truth      {fmt(truth)}")
    return lines


def write_html(pages: Sequence[tuple[str, Path, Sequence[str]]], path: Path, *, title: str = "OpenIGRT review") -> Path:
    """An HTML page showing each (caption, png, lines) with relative links."""
    parts = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}img{max-width:100%;border:1px solid #ccc}"
        "pre{background:#f4f4f4;padding:.5em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for caption, png, lines in pages:
        rel = Path(png).resolve().relative_to(path.parent.resolve()) if Path(png).resolve().is_relative_to(
            path.parent.resolve()) else Path(png).resolve()
        parts.append(f"<h2>{html.escape(caption)}</h2>")
        if lines:
            parts.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        parts.append(f"<img src='{html.escape(str(rel))}' alt='{html.escape(caption)}'>")
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
