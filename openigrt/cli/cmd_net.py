"""Network node commands: ``listen``, ``echo``, ``store``, ``find``, ``move``, ``import``, ``export`` (SPEC §1).

Heavy imports (pynetdicom, pydicom, ``openigrt.net``) happen inside the commands.
Exit codes: 0 everything worked, 1 a failure (one clear message naming peer/instance/status),
2 usage or configuration error.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, common_options, console_err, console_out, escape, print_json
from openigrt.config import Settings

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table


# --------------------------------------------------------------------------- helpers
def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, plus the files found recursively in directories that have the ``DICM`` prefix or a
    ``.dcm`` name (so a broken ``.dcm`` file is reported, not silently skipped), sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()
                              and (f.suffix.lower() == ".dcm" or _looks_like_dicom(f))))
        else:
            out.append(p)
    return out


class _Bar:
    """A rich progress bar on stderr when it is a terminal (stdout stays clean for --json); nothing
    otherwise (rich would draw nothing there, and its import costs ~50 ms of a script's start-up)."""

    def __init__(self, total: int, label: str) -> None:
        self.progress: Any = None
        if not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console_err(), transient=True)
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, done: int, total: int, _result: Any = None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done)


def _service(client: Any, dimse: str, dicomweb: str) -> str:
    """``"C-STORE to AET"`` for a DIMSE TMS, ``"STOW-RS to host"`` for a DICOMweb one (progress labels)."""
    if client.protocol == "DIMSE":
        return f"{dimse} {client.remote.ae_title}"
    from urllib.parse import urlsplit

    return f"{dicomweb} {urlsplit(client.remote.url).hostname}"


def _style(outcome: str) -> str:
    return {"sent": "green", "retrieved": "green", "imported": "green", "exported": "green",
            "warning": "yellow", "failed": "red", "refused": "red"}.get(outcome, "dim")


def _table(title: str, columns: list[str], rows: Iterable[list[str]]) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*[escape(x) for x in row[:-1]], f"[{_style(row[-1])}]{escape(row[-1])}[/]")
    return t


# --------------------------------------------------------------------------- listen
@click.command("listen")
@common_options
def listen_command(*, settings: Settings) -> int:
    """Run the Storage + Verification SCP until Ctrl-C / SIGTERM (NET-7 … NET-10).

    Accepts CT, RT Structure Set, RT Image and RT Plan (Implicit/Explicit VR LE) from the TMS
    (--remote) and every --allow AET@HOST; each instance is stored in the cache and logged.
    With --tls the port is DICOM TLS only (BCP 195; client certificates required unless
    --no-tls-require-client-cert): plain associations are refused at the handshake.
    """
    from openigrt.net.cache import InstanceCache
    from openigrt.net.scp import ReceivedInstance, StorageSCP
    from openigrt.net.tls import tls_note

    err = console_err()
    stop = threading.Event()

    def on_received(r: ReceivedInstance) -> None:
        i = r.instance
        err.print(f"received {escape(i.modality or '?')} {escape(i.sop_instance_uid)} from "
                  f"{escape(r.calling_ae_title)}@{r.peer_address} -> {escape(str(i.path))}", highlight=False)

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    cache = InstanceCache.from_settings(settings)
    scp = StorageSCP(settings, cache, on_received=on_received)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with scp:
            callers = ", ".join(f"{a.ae_title}@{a.host}" for a in settings.allowed_callers()) or "nobody"
            tls = tls_note(settings.tls) if settings.tls.listen else ""
            err.print(f"listening as {escape(scp.ae_title)} on {settings.local.bind_address}:{scp.port}{tls}; "
                      f"cache {escape(str(cache.root))}; allowed callers: {escape(callers)}", highlight=False)
            while not stop.wait(0.5):
                pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        cache.close()
    err.print("stopped")
    return EXIT_OK


# --------------------------------------------------------------------------- echo
@click.command("echo")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def echo_command(*, settings: Settings, as_json: bool) -> int:
    """C-ECHO the TMS (--remote) (NET-10); for a DICOMweb TMS a QIDO-RS request that proves it answers."""
    from openigrt.net.tms import open_tms

    with open_tms(settings) as client:
        elapsed = client.echo()
    name = "C-ECHO" if client.protocol == "DIMSE" else "DICOMweb echo"
    if as_json:
        print_json({"remote": str(client.remote), "ok": True, "elapsed_ms": round(elapsed * 1000, 2)})
    else:  # plain text: no rich import for the one line (start-up time, NET-10)
        click.echo(f"{name} {client.remote}: ok ({elapsed * 1000:.1f} ms)")
    return EXIT_OK


# --------------------------------------------------------------------------- store
@click.command("store")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the per-instance report as JSON.")
@common_options
def store_command(*, settings: Settings, paths: tuple[Path, ...], as_json: bool) -> int:
    """Send Part 10 files (or directories of them) to the TMS over one association (NET-1, NET-2), or by STOW-RS."""
    from openigrt.net.tms import open_tms

    files = expand_paths(paths)
    if not files:
        raise click.UsageError("no DICOM files found in the given paths")
    with open_tms(settings) as client, _Bar(len(files), _service(client, "C-STORE to", "STOW-RS to")) as bar:
        report = client.store(files, progress=bar)
    if as_json:
        print_json(report.as_dict())
    else:
        rows = [[Path(r.source).name, r.sop_instance_uid, "" if r.status is None else f"0x{r.status:04X}",
                 r.message or r.status_comment, r.outcome.value] for r in report.results]
        console_out().print(_table(report.summary(), ["file", "SOP Instance UID", "status", "detail", "result"], rows))
    if not report.ok:
        console_err().print(f"[red]error:[/red] {escape(report.failure_text())}", highlight=False)
        return EXIT_FAILURE
    return EXIT_OK


# --------------------------------------------------------------------------- find / move
def _uid_options(func: Any) -> Any:
    func = click.option("--series-uid", default=None, help="Series Instance UID, when known.")(func)
    return click.option("--study-uid", default=None, help="Study Instance UID, when known.")(func)


@click.command("find")
@click.option("--sop-instance-uid", "uid", required=True, help="SOP Instance UID to look for.")
@_uid_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def find_command(*, settings: Settings, uid: str, study_uid: str | None, series_uid: str | None, as_json: bool) -> int:
    """C-FIND one instance on the TMS at IMAGE level (NET-3, NET-5), or search it by QIDO-RS."""
    from openigrt.net.tms import open_tms

    with open_tms(settings) as client:
        result = client.locate(uid, study_instance_uid=study_uid, series_instance_uid=series_uid)
    if as_json:
        print_json({"remote": str(client.remote), **result.as_dict()})
    elif result.found:
        for m in result.matches:
            console_out().print(f"found {m.sop_instance_uid} study {m.study_instance_uid} series {m.series_instance_uid}"
                                + (" (hierarchical search)" if result.fallback_used else ""))
    if not result.found:
        console_err().print(f"[red]error:[/red] object not found on {escape(str(client.remote))}: "
                            f"{escape(uid)}: {escape(result.message)}", highlight=False)
        return EXIT_FAILURE
    return EXIT_OK


@click.command("move")
@click.option("--sop-instance-uid", "uids", required=True, multiple=True, help="SOP Instance UID (repeatable).")
@_uid_options
@click.option("--no-listen", is_flag=True, help="Do not start our Storage SCP: one is already running on our port.")
@click.option("--batch", is_flag=True, help="One C-MOVE with all UIDs (faster) instead of one per instance.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-instance report as JSON.")
@common_options
def move_command(*, settings: Settings, uids: tuple[str, ...], study_uid: str | None, series_uid: str | None,
                 no_listen: bool, batch: bool, as_json: bool) -> int:
    """C-MOVE instances from the TMS to our AE title into the cache (NET-3, NET-4, NET-6), or WADO-RS them.

    Over DICOMweb --batch asks for the whole series once (with --study-uid and --series-uid);
    --no-listen has no meaning there.
    """
    from openigrt.net.tms import open_tms

    with open_tms(settings) as client, _Bar(len(uids), _service(client, "C-MOVE from", "WADO-RS from")) as bar:
        if client.protocol == "DIMSE":
            report = client.move(list(uids), study_instance_uid=study_uid, series_instance_uid=series_uid,  # type: ignore[attr-defined]
                                 listen=not no_listen, batch=batch, progress=bar)
        else:
            report = client.retrieve(list(uids), study_instance_uid=study_uid, series_instance_uid=series_uid,  # type: ignore[call-arg]
                                     batch=batch, progress=bar)
    if as_json:
        print_json(report.as_dict())
    else:
        rows = [[r.sop_instance_uid, "" if r.status is None else f"0x{r.status:04X}",
                 "" if r.completed is None else f"{r.completed}/{r.failed or 0}/{r.warning or 0}",
                 r.path or r.message, r.outcome.value] for r in report.results]
        console_out().print(_table(report.summary(), ["SOP Instance UID", "status", "done/failed/warn",
                                                      "cached file or reason", "result"], rows))
    if not report.ok:
        console_err().print(f"[red]error:[/red] {escape(report.failure_text())}", highlight=False)
        return EXIT_FAILURE
    return EXIT_OK


# --------------------------------------------------------------------------- import / export
@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the per-file report as JSON.")
@common_options
def import_command(*, settings: Settings, paths: tuple[Path, ...], as_json: bool) -> int:
    """Put CT, RT Structure Set, RT Image and RT Plan Part 10 files into the cache (NET-12, no network)."""
    from openigrt.net.media import import_files

    files = expand_paths(paths)
    if not files:
        raise click.UsageError("no DICOM files found in the given paths")
    with _Bar(len(files), "import") as bar:
        results = import_files(settings, files, progress=bar)
    return _file_report(results, as_json, "import", ["file", "SOP Instance UID", "class", "detail", "result"])


@click.command("export")
@click.argument("uids", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the Part 10 files to (created).")
@click.option("--json", "as_json", is_flag=True, help="Print the per-instance report as JSON.")
@common_options
def export_command(*, settings: Settings, uids: tuple[str, ...], out_dir: Path, as_json: bool) -> int:
    """Write cached CT, RT Structure Set, RT Image, Spatial Registration as Part 10 files (NET-12).

    Each UID is a SOP Instance UID, or a Series / Study Instance UID (all its exportable
    instances). No DICOMDIR is written.
    """
    from openigrt.net.media import export_instances

    results = export_instances(settings, list(uids), out_dir)
    return _file_report(results, as_json, "export", ["file", "SOP Instance UID", "class", "detail", "result"])


def _file_report(results: list[Any], as_json: bool, what: str, columns: list[str]) -> int:
    ok = all(r.ok for r in results)
    if as_json:
        print_json({"ok": ok, "results": [r.as_dict() for r in results]})
    else:
        good = sum(1 for r in results if r.ok)
        rows = [[Path(r.path).name, r.sop_instance_uid, r.sop_class_name.removesuffix(" Storage"),
                 r.message if not r.ok else "", r.outcome] for r in results]
        console_out().print(_table(f"{what}: {good} of {len(results)} ok", columns, rows))
    if not ok:
        bad = [r for r in results if not r.ok]
        console_err().print(f"[red]error:[/red] {len(bad)} {what} failure(s); first: {escape(bad[0].path)}: "
                            f"{escape(bad[0].message)}", highlight=False)
        return EXIT_FAILURE
    return EXIT_OK


def register(group: click.Group) -> None:
    for cmd in (listen_command, echo_command, store_command, find_command, move_command, import_command,
                export_command):
        group.add_command(cmd)
