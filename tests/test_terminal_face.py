"""The terminal face (issue 13 item 6): the session summary fits 80 columns; the README synopsis is typable."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.console import Console

from openigrt.cli import cli
from openigrt.cli.cmd_workflow import _summary_table

README = Path(__file__).resolve().parents[1] / "README.md"
COUPLE = {"vrt_mm": 7.35, "lng_mm": -13.75, "lat_mm": -2.14}
SIX = {"vrt_mm": -16.32, "lng_mm": -4.85, "lat_mm": 17.83, "rtn_deg": -2.4, "pitch_deg": -0.91, "roll_deg": 10.16}


def _rows() -> list[dict]:
    return [
        {"match": "2d", "decision": "rejected", "couch": {**COUPLE, "vrt_mm": 0.0}, "truth": COUPLE, "stored": False,
         "couch_axes_not_seen": ["vrt_mm"]},
        {"match": "2d2d", "decision": "accepted", "couch": COUPLE, "automatic_couch": COUPLE, "truth": COUPLE,
         "stored": True, "adjustment": {"lat_mm": 1.0}},
        {"match": "marker", "decision": "proposed", "couch": COUPLE, "truth": None, "stored": False},
        {"match": "3d3d", "decision": "accepted", "couch": SIX, "truth": SIX, "stored": True},
    ]


def test_summary_table_fits_80_columns_and_cuts_no_cell() -> None:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    console.print(_summary_table(_rows()))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("correction", "difference", "truth", "adjusted", "automatic", "accepted", "rejected", "proposed",
                 "not stored", "stored", "-16.32", "+17.83", "+10.16"):
        assert word in text, word


def _commands(group: click.Group, prefix: str = "openigrt") -> dict[str, click.Command]:
    out = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, f"{prefix} {name}"))
        else:
            out[f"{prefix} {name}"] = cmd
    return out


def test_readme_synopsis_shows_repeatable_options_as_typed() -> None:
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `openigrt ")]
    checked = 0
    for name, cmd in _commands(cli).items():
        row = next((r for r in rows if r.startswith(f"| `{name} ") or r.startswith(f"| `{name}`")), None)
        if row is None:
            continue
        synopsis = row.split("`")[1]
        for opt in cmd.params:
            if not isinstance(opt, click.Option) or not opt.multiple:
                continue
            flag = max(opt.opts, key=len)
            if flag not in synopsis:
                continue
            checked += 1
            # a repeatable option is shown repeated: "--x V [--x V ...]" (or "--x N [--x M]")
            assert re.search(re.escape(flag) + r" \S+ \[" + re.escape(flag) + r" \S+( \.\.\.)?\]", synopsis), (name, flag)
        for opt in cmd.params:
            if isinstance(opt, click.Option) and not opt.multiple and opt.nargs == 1:
                flag = max(opt.opts, key=len)
                assert not re.search(re.escape(flag) + r" \S+\.\.\.", synopsis), (name, flag, "not repeatable")
    assert checked >= 5
