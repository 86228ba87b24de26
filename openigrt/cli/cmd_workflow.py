"""``openigrt demo`` and ``openigrt session``: a whole treatment fraction (LOAD, MATCH-6/7, IOD, NET-10)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, common_options, console_err, console_out, print_json
from openigrt.config import Settings

if TYPE_CHECKING:  # pragma: no cover
    from rich.progress import Progress
    from rich.table import Table

CBCT_MODEL_HELP = ("Virtual CBCT: fast = image-domain model (resampled CT + documented degradations, ~1 s); "
                   "fdk = projections over the arc with beam hardening, scatter and noise, reconstructed by "
                   "RTK's FDK (~20 s to load RTK once, then the scan; see benchmarks/cbct_bench.py).")
MATCH_CHOICES = ["2d", "2d2d", "marker", "3d3d", "all"]
ALL_MATCHES = ("2d", "2d2d", "marker", "3d3d")


def _match_types(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or "all" in values:
        return ALL_MATCHES
    return tuple(dict.fromkeys(values))


def _parse_adjust(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(f"expected LAT,LNG,VRT in mm, got {text!r}", param_hint="--adjust") from None
    if len(vals) != 3:
        raise click.BadParameter(f"expected 3 values LAT,LNG,VRT, got {text!r}", param_hint="--adjust")
    return vals  # type: ignore[return-value]


class _ProgressSink:
    """Shows fraction events as one progress line per step (rich, on stderr)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: Any) -> None:
        task = self.tasks.get(event.step)
        text = f"[bold]{event.step:<9}[/bold] {event.message}"
        if task is None:
            task = self.tasks[event.step] = self.progress.add_task(text, total=event.total)
        fields: dict[str, Any] = {"description": text}
        if event.total is not None:
            fields.update(total=event.total, completed=event.done or 0)
        self.progress.update(task, **fields)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console_err(), transient=False)


_KEYS = ("vrt_mm", "lng_mm", "lat_mm", "rtn_deg", "pitch_deg", "roll_deg")


def _cells(c: dict[str, float] | None, skip: tuple[str, ...] | list[str], keys: tuple[str, ...]) -> list[str]:
    return ["n/a" if k in skip else f"{c[k]:+.2f}" if c and k in c else "—" for k in keys]


def _summary_table(rows: list[dict[str, Any]]) -> Table:
    """Per match: the couch correction, the ground truth (virtual imager) and their difference.

    Fits an 80-column terminal without cutting any cell: the first column stacks the match type,
    the decision and whether it was stored on the three lines of the match; no outer border.
    """
    from rich import box
    from rich.table import Table

    t = Table(title="Couch correction (IEC table top: mm, °)", title_justify="left", show_edge=False,
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("match", no_wrap=True)
    t.add_column("", no_wrap=True)
    for k in _KEYS:
        t.add_column(k.split("_")[0], justify="right", no_wrap=True)
    for r in rows:
        skip = r.get("couch_axes_not_seen", ())
        keys = tuple(k for k in _KEYS if (r["couch"] or {}).get(k) is not None) or _KEYS[:3]
        shown = [k if k in keys else None for k in _KEYS]
        adjusted = bool(r.get("adjustment"))

        def line(c: dict[str, float] | None) -> list[str]:
            return [cell if k else "" for k, cell in zip(shown, _cells(c, skip, _KEYS))]

        first = ["correction", "adjusted"][adjusted]
        t.add_row(r["match"], first, *line(r["couch"]))
        second = [r["decision"], "stored" if r["stored"] else "not stored"]
        if r["truth"]:
            auto = r.get("automatic_couch") or r["couch"]
            diff = {k: auto[k] - r["truth"][k] for k in keys if auto and k in auto and k in r["truth"]}
            if adjusted:
                t.add_row(second[0], "automatic", *line(auto))
                second = [second[1], ""]
            t.add_row(second[0], "truth", *line(r["truth"]))
            t.add_row(second[1], "difference", *line(diff), end_section=True)
        else:
            t.add_row(second[0], "", *[""] * 6)
            t.add_row(second[1], "", *[""] * 6, end_section=True)
    return t


def _fmt_couch(c: dict[str, float] | None) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in (c or {}).items()) or "not available"


@click.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Work directory (default: a new temporary directory). Re-running on it resumes.")
@click.option("--match", "match", multiple=True, type=click.Choice(MATCH_CHOICES), default=("all",),
              show_default=True, help="Match type(s) to run (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Phantom and setup-error seed.")
@click.option("--small", is_flag=True, help="Small phantom (fast; for tests).")
@click.option("--patient", type=click.Choice(["synthetic", "abdomen", "liver"]), default="synthetic",
              show_default=True, help="Virtual patient: the synthetic phantom or a real-anatomy CT (see openigrt phantom).")
@click.option("--position", "position", default="HFS", show_default=True,
              type=click.Choice(["HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR"]),
              help="Patient Position of the virtual patient's plan.")
@click.option("--decision", type=click.Choice(["accept", "ask", "web"]), default="accept", show_default=True,
              help="What to do with each proposed match (web = review workstation in the browser, see "
              "`openigrt review`; ask = terminal prompt).")
@click.option("--cbct-model", "cbct_model", type=click.Choice(["fast", "fdk"]), default="fast", show_default=True,
              help=CBCT_MODEL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def demo_command(*, settings: Settings, workdir: Path | None, match: tuple[str, ...], seed: int, small: bool,
                 patient: str, position: str, decision: str, cbct_model: str, as_json: bool) -> int:
    """A whole fraction on the built-in phantom against an embedded archive on loopback."""
    from openigrt.workflow.demo import run_demo

    if small and patient != "synthetic":
        raise click.UsageError("--small applies to the synthetic phantom only")
    workdir = (workdir or Path(tempfile.mkdtemp(prefix="openigrt-demo-"))).resolve()
    console_err().print(f"[bold]OpenIGRT demo[/bold] in {workdir} (seed {seed})")
    with _progress() as progress:
        decide = _decider(decision, None, session_dir=workdir / "session", settings=settings, progress=progress)
        result = run_demo(settings=settings, workdir=workdir, match_types=_match_types(match), seed=seed, small=small,
                          patient=patient, patient_position=position, on_event=_ProgressSink(progress), decide=decide,
                          cbct_model=cbct_model)
    if as_json:
        print_json({"ok": result.ok, "workdir": str(result.workdir), "matches": result.rows,
                    "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
                    "timings": result.timings})
    else:
        out = console_out()
        out.print(_summary_table(result.rows))
        for c in result.checks:
            out.print(f"{'[green]✔[/green]' if c.ok else '[red]✘[/red]'} {c.name}: {c.detail}")
        out.print(f"review page: {result.workdir / 'session' / 'review' / 'index.html'}")
        out.print("[green]demo passed[/green]" if result.ok else "[red]demo FAILED[/red]")
    return EXIT_OK if result.ok else EXIT_FAILURE


def _decider(mode: str, adjust: tuple[float, float, float] | None, *, session_dir: Path, settings: Settings,
             progress: Progress) -> Any:
    from openigrt.workflow.fraction import Decision

    if mode == "web":
        from openigrt.web.server import web_decider

        def announce(url: str) -> None:
            progress.console.print(f"review the matches in a browser on this machine: {url}", highlight=False,
                                   markup=False, soft_wrap=True)
            progress.console.print(f"waiting up to {settings.review.decision_timeout_s:.0f} s for every decision "
                                   "(Ctrl-C leaves the session resumable)", highlight=False, markup=False)

        return web_decider(session_dir, settings, announce=announce)

    def decide(outcome: Any, record: Any) -> Decision:
        if mode == "reject":
            return Decision("rejected", decided_by="command line (--decision reject)")
        if mode == "accept":
            return Decision("accepted", adjust, decided_by="command line (--decision accept)")
        out = console_out()
        out.print(f"\n[bold]{record.match_type} match[/bold]: couch correction {_fmt_couch(outcome.couch())}")
        out.print(f"review picture: {record.review_png}")
        while True:
            answer = click.prompt("accept (a), reject (r) or adjust (LAT,LNG,VRT mm)", default="a").strip().lower()
            if answer in ("a", "accept"):
                return Decision("accepted", decided_by="terminal prompt")
            if answer in ("r", "reject"):
                return Decision("rejected", decided_by="terminal prompt")
            try:
                return Decision("accepted", _parse_adjust(answer), decided_by="terminal prompt")
            except click.BadParameter as exc:
                out.print(f"[red]{exc.message}[/red]")

    return decide


@click.command("session")
@click.option("--plan-uid", required=True, help="RT Plan SOP Instance UID to load from the TMS.")
@click.option("--study-uid", default=None, help="Study Instance UID of the plan (sent with the C-MOVE).")
@click.option("--series-uid", default=None, help="Series Instance UID of the plan.")
@click.option("--reference-uid", multiple=True, help="Further reference RT Image UID (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Session directory (default: <cache>/sessions/<plan UID>). Re-running on it resumes.")
@click.option("--match", "match", multiple=True, type=click.Choice(MATCH_CHOICES), default=("all",),
              show_default=True, help="Match type(s) (repeatable).")
@click.option("--source", type=click.Choice(["virtual", "files", "received"]), default="virtual", show_default=True,
              help="Acquisition: virtual imager, image files (--acquired), or images received by our Storage SCP.")
@click.option("--acquired", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Acquired image files/directories (file mode).")
@click.option("--seed", type=int, default=0, show_default=True, help="Virtual imager seed.")
@click.option("--receive-timeout", type=float, default=300.0, show_default=True,
              help="Seconds to wait for received images.")
@click.option("--decision", type=click.Choice(["accept", "reject", "ask", "web"]), default="ask", show_default=True,
              help="What to do with each proposed match (ask = terminal prompt; web = review workstation in the "
              "browser: prints its URL and waits until every match is decided there).")
@click.option("--adjust", default=None, metavar="LAT,LNG,VRT",
              help="With --decision accept: add this table-top correction (mm) before storing.")
@click.option("--stop-after", type=click.Choice(["load", "validate", "acquire", "match"]), default=None,
              help="Stop after this step (resume later on the same --workdir).")
@click.option("--no-store", is_flag=True, help="Do not close the fraction (store nothing) in this run.")
@click.option("--cbct-model", "cbct_model", type=click.Choice(["fast", "fdk"]), default="fast", show_default=True,
              help=CBCT_MODEL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the session summary as JSON.")
@common_options
def session_command(*, settings: Settings, plan_uid: str, study_uid: str | None, series_uid: str | None,
                    reference_uid: tuple[str, ...], workdir: Path | None, match: tuple[str, ...], source: str,
                    acquired: tuple[Path, ...], seed: int, receive_timeout: float, decision: str, adjust: str | None,
                    stop_after: str | None, no_store: bool, cbct_model: str, as_json: bool) -> int:
    """A fraction against a real TMS: load by plan UID, validate, acquire, match, review, store."""
    from openigrt.net.tms import open_tms
    from openigrt.workflow.fraction import Fraction, FractionOptions, match_summary

    adjustment = _parse_adjust(adjust)
    if adjustment is not None and decision != "accept":
        raise click.UsageError("--adjust needs --decision accept")
    workdir = workdir or settings.cache_dir / "sessions" / plan_uid
    options = FractionOptions(match_types=_match_types(match), source=source, acquired_paths=acquired, seed=seed,
                              reference_uids=reference_uid, study_instance_uid=study_uid,
                              series_instance_uid=series_uid, receive_timeout_s=receive_timeout,
                              stop_after=stop_after, store=not no_store, cbct_model=cbct_model)
    with open_tms(settings) as client, _progress() as progress:
        decide = _decider(decision, adjustment, session_dir=Path(workdir).resolve(), settings=settings,
                          progress=progress)
        fraction = Fraction(settings=settings, client=client, workdir=workdir, plan_uid=plan_uid, options=options,
                            on_event=_ProgressSink(progress), decide=decide)
        state = fraction.run()
    rows = match_summary(state)
    if as_json:
        print_json({"workdir": str(workdir), "plan_uid": plan_uid, "closed": state.closed, "matches": rows,
                    "created": [{"sop_instance_uid": c.sop_instance_uid, "kind": c.kind, "stored": c.stored,
                                 "status": c.store_status, "match": c.match_id} for c in state.created]})
    else:
        out = console_out()
        if rows:
            out.print(_summary_table(rows))
        stored = sum(1 for c in state.created if c.stored)
        out.print(f"session {workdir}: {stored} object(s) stored, fraction {'closed' if state.closed else 'open'}")
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(demo_command)
    group.add_command(session_command)
