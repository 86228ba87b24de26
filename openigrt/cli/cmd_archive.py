"""``openigrt archive``: the embedded Q/R + Storage SCP archive (ARCHIVE-1).

``serve`` runs the archive until Ctrl-C or SIGTERM, ``import`` adds files and directories,
``ls`` shows what an archive directory holds. ``--ae-title`` and ``--port`` given on the command
line name the *archive's* AE title and port (defaults ``OPENIGRT_ARCHIVE`` and 11112); the other
common options (timeouts via ``--set network.*``, ``-v``) apply as everywhere.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click

from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, common_options, console_err, console_out, print_json
from openigrt.config import Settings

DEFAULT_ARCHIVE_PORT = 11112

_dir_option = click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
                           help="Archive directory (files + SQLite index); created when missing.")


def _given(name: str) -> bool:
    """True when option *name* was typed on the command line (not a default or config value)."""
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE


@click.group("archive")
def archive_group() -> None:
    """Embedded archive (TMS stand-in): Study/Patient Root C-FIND/C-MOVE and C-STORE on loopback."""


@archive_group.command("serve")
@_dir_option
@click.option("--destination", "destinations", multiple=True, metavar="AET@HOST:PORT",
              help="Known C-MOVE destination (repeatable); also read from DIR/destinations.toml.")
@click.option("--bind", "bind_address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@common_options
def serve_command(*, settings: Settings, directory: Path, destinations: tuple[str, ...], bind_address: str) -> int:
    """Run the archive until Ctrl-C or SIGTERM, logging each association and request.

    --ae-title and --port set the archive's AE title [OPENIGRT_ARCHIVE] and port [11112].
    """
    from openigrt.archive.server import DEFAULT_ARCHIVE_AE_TITLE, EmbeddedArchive, parse_destination_options

    ae_title = settings.local.ae_title if _given("ae_title") else DEFAULT_ARCHIVE_AE_TITLE
    port = settings.local.port if _given("port") else DEFAULT_ARCHIVE_PORT
    _log_requests()
    archive = EmbeddedArchive(directory, ae_title=ae_title, port=port, bind_address=bind_address,
                              destinations=parse_destination_options(destinations), settings=settings)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        archive.start()
        try:
            archive.wait(stop)
        except KeyboardInterrupt:
            pass
        console_err().print(f"archive {archive.ae_title} stopped")
    finally:
        archive.close()
        signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


def _log_requests() -> None:
    """Show the archive's INFO log (one line per association/request) even without -v.

    A plain stream handler, not rich's: rich renders a record in ~1-3 ms, which would add to
    every C-MOVE of a busy archive.
    """
    import sys

    root_handlers = logging.getLogger().handlers
    quiet_root = bool(root_handlers) and root_handlers[0].level > logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    for name in ("openigrt.archive", "openigrt.net.acceptor"):  # requests; C-ECHO and rejections
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        if quiet_root:
            log.addHandler(handler)
            log.propagate = False


@archive_group.command("import")
@_dir_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the per-file results as JSON.")
@common_options
def import_command(*, settings: Settings, directory: Path, paths: tuple[Path, ...], as_json: bool) -> int:
    """Import DICOM files and directories (recursively) into the archive.

    Files that are not DICOM or cannot be archived are skipped with one message each. Exit code 1
    when nothing could be imported.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from openigrt.archive.store import ArchiveStore, collect_files

    store = ArchiveStore(directory, identity=_identity(settings))
    try:
        files = collect_files(paths, exclude=store.directory)
        err = console_err()
        with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=as_json) as bar:
            task = bar.add_task("import", total=len(files))
            results = []
            for path in files:
                result = store.import_file(path)
                if result.status == "skipped":
                    bar.console.print(f"[yellow]skipped[/yellow] {result.message}", highlight=False, markup=True)
                results.append(result)
                bar.advance(task)
    finally:
        store.close()
    stored = sum(r.status == "stored" for r in results)
    replaced = sum(r.status == "replaced" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    if as_json:
        print_json({"directory": str(directory), "stored": stored, "replaced": replaced, "skipped": skipped,
                    "files": [{"path": str(r.path), "status": r.status, "sop_instance_uid": r.sop_instance_uid,
                               "message": r.message} for r in results]})
    else:
        console_out().print(f"imported {stored + replaced} instance(s) into {directory} "
                            f"({replaced} replaced), skipped {skipped} file(s)")
    return EXIT_FAILURE if results and stored + replaced == 0 else EXIT_OK


def _identity(settings: Settings) -> Any:
    from openigrt.archive.store import Identity

    return Identity(settings.network.implementation_class_uid, settings.network.implementation_version_name)


@archive_group.command("ls")
@_dir_option
@click.option("--instances", is_flag=True, help="List every instance, not only series.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_options
def ls_command(*, settings: Settings, directory: Path, instances: bool, as_json: bool) -> int:
    """Show what the archive holds: counts, one line per series (or per instance with --instances)."""
    from openigrt.archive.store import ArchiveStore
    from openigrt.errors import CacheError

    if not (directory / "index.sqlite").exists():
        raise CacheError(f"{directory} is not an archive directory (no index.sqlite); create one with "
                         "`openigrt archive import --dir DIR PATH...` or `openigrt archive serve --dir DIR`")
    store = ArchiveStore(directory)
    try:
        summary = store.index.summary()
        series = store.index.series_table()
        rows = store.index.instances() if instances else []
    finally:
        store.close()
    if as_json:
        data: dict[str, Any] = {"directory": str(directory), "patients": summary.patients, "studies": summary.studies,
                                "series": summary.series, "instances": summary.instances,
                                "size_bytes": summary.size_bytes, "series_list": series}
        if instances:
            data["instance_list"] = [_instance_json(r) for r in rows]
        print_json(data)
        return EXIT_OK
    _print_tables(directory, summary, series, rows, instances)
    return EXIT_OK


def _instance_json(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("patient_id", "patient_name", "study_instance_uid", "series_instance_uid", "modality", "sop_class_uid",
            "sop_instance_uid", "instance_number", "transfer_syntax_uid", "path", "size_bytes", "stored_at")
    return {k: row[k] for k in keep}


def _print_tables(directory: Path, summary: Any, series: list[dict[str, Any]], rows: list[dict[str, Any]],
                  instances: bool) -> None:
    from rich.table import Table

    from openigrt.net.sop import sop_class_name

    out = console_out()
    out.print(f"{directory}: {summary.patients} patient(s), {summary.studies} study(ies), {summary.series} series, "
              f"{summary.instances} instance(s), {summary.size_bytes / 1e6:.1f} MB")
    if instances:
        table = Table("Patient ID", "Modality", "SOP Class", "SOP Instance UID", "#", "Transfer Syntax")
        for r in rows:
            table.add_row(r["patient_id"], r["modality"], sop_class_name(r["sop_class_uid"]), r["sop_instance_uid"],
                          r["instance_number"], r["transfer_syntax_uid"])
    else:
        table = Table("Patient ID", "Patient Name", "Study Date", "Modality", "Series #", "Description", "Instances")
        for s in series:
            table.add_row(s["patient_id"], s["patient_name"], s["study_date"], s["modality"], s["series_number"],
                          s["series_description"], str(s["instances"]))
    if summary.instances:
        out.print(table)


def register(group: click.Group) -> None:
    group.add_command(archive_group)
