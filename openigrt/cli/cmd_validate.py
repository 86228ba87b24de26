"""``openigrt validate PATH... --match TYPE [--json]``: plan preconditions (SPEC §3, PLAN-1 … PLAN-13).

PATHs are DICOM files or directories (read recursively; non-DICOM files inside directories are
skipped and listed). The objects are sorted by SOP class: exactly one RT Plan or RT Ion Plan,
plus any structure sets, CT slices and RT Images. Exit code 0 when the requested match is
possible, 1 when it is not (or an input cannot be read), 2 on a usage error (no RT Plan among
the inputs, several plans, bad option).
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, common_options, console_err, console_out, escape, print_json
from openigrt.config import Settings

MATCH_CHOICES = ("2d", "2d2d", "marker", "3d3d")
_STYLE = {"Success": "green", "Warning": "yellow", "Failure": "bold red"}
_SHORT = {"Success": "pass", "Warning": "warning", "Failure": "FAIL"}


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--match", "match", required=True, type=click.Choice(MATCH_CHOICES),
              help="Match type to check the plan for (PLAN-8).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (stable keys, see README).")
@click.option("--problems-only", is_flag=True, help="Only list Warning and Failure findings.")
@common_options
def validate_command(*, settings: Settings, paths: tuple[Path, ...], match: str, as_json: bool,
                     problems_only: bool) -> int:
    """Check a plan and its references for a match type; exit 0 if the match is possible, 1 if not."""
    from openigrt.iod.dataset_io import read_paths
    from openigrt.plan.evaluate import collect_inputs, evaluate, plans_in

    # a spinner only on a terminal (rich costs ~4 MB and 50 ms; scripts and --json do without it)
    spinner = console_err().status(f"reading {len(paths)} path(s)…") if sys.stderr.isatty() else nullcontext()
    with spinner:
        files, skipped = read_paths(paths, defer_pixels=True)  # headers only (PLAN-9 needs geometry)
    plans = plans_in(files)
    if len(plans) != 1:
        found = ", ".join(p.source for p in plans) or "none"
        raise click.UsageError(f"give exactly one RT Plan or RT Ion Plan among the inputs; found {len(plans)} "
                               f"({found}) in {len(files)} DICOM object(s)")
    inputs = collect_inputs(files, tolerances=settings.tolerances, creator_prefix=settings.private_creator,
                            skipped=skipped)
    result = evaluate(inputs, match, tolerances=settings.tolerances)
    if as_json:
        print_json(result.to_json())
    else:
        _report(result.to_json(), problems_only=problems_only)
    return EXIT_OK if result.possible else EXIT_FAILURE


def _report(data: dict[str, Any], *, problems_only: bool) -> None:
    from rich.table import Table

    out = console_out()
    plan = data["plan"]
    out.print(f"[bold]{escape(plan['sop_class'])} '{escape(str(plan['label']))}'[/bold] {plan['sop_instance_uid']}  "
              f"patient {escape(str(plan['patient_name']))} ({escape(str(plan['patient_id']))})")
    counts = ", ".join(f"{n} {k}" for k, n in sorted(data["inputs"]["objects"].items()))
    out.print(f"inputs: {counts}" + (f"; {len(data['inputs']['skipped'])} skipped" if data["inputs"]["skipped"] else ""))
    beams = Table(title="Beams", title_justify="left")
    for col in ("#", "name", "field type (from)", "imaging", "gantry°", "couch°", "isocenter mm", "used"):
        beams.add_column(col)
    for b in data["beams"]:
        iso = "" if b["isocenter"] is None else ", ".join(f"{v:.1f}" for v in b["isocenter"])
        beams.add_row(str(b["number"]), escape(str(b["name"])), f"{b['field_type']} ({b['field_type_source']})",
                      b["imaging"], _num(b["gantry_angle"]), _num(b["patient_support_angle"]), iso,
                      "yes" if b["used"] else "")
    out.print(beams)
    findings = Table(title="Findings", title_justify="left", show_lines=False)
    for col in ("id", "status", "tags", "message"):
        findings.add_column(col, overflow="fold")
    for f in data["findings"]:
        if problems_only and f["status"] == "Success":
            continue
        style = _STYLE[f["status"]]
        findings.add_row(f["id"], f"[{style}]{_SHORT[f['status']]}[/{style}]", " ".join(f["tags"]), escape(f["message"]))
    out.print(findings)
    verdict = "[bold green]POSSIBLE[/bold green]" if data["possible"] else "[bold red]NOT POSSIBLE[/bold red]"
    extra = "" if plan["couch_shifts_applicable"] else " (couch shifts not applicable: several isocenters)"
    out.print(f"{data['match']} match: {verdict}{extra}")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def register(group: click.Group) -> None:
    group.add_command(validate_command)

