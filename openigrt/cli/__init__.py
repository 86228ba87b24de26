"""The ``openigrt`` command line.

Each command group lives in its own module ``openigrt/cli/cmd_<area>.py`` exposing
``register(group: click.Group) -> None``; modules are discovered here, so areas do not edit a
shared list. Keep module-level imports light (import SimpleITK, scipy, pynetdicom inside the
command functions; rich too, through ``common.console_out/console_err/escape``): every
``openigrt`` start imports all ``cmd_*`` modules, and ``tests/cli/test_startup.py`` checks that
``openigrt echo`` imports none of numpy's heavy neighbours (scipy, SimpleITK, numba, matplotlib).

Exit codes: 0 success, 1 failure (one clear message), 2 usage or configuration error.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import traceback
from collections.abc import Sequence

import click

from openigrt import __version__
from openigrt.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, console_err, escape
from openigrt.errors import ConfigError, OpenIGRTError


#: Environment variable that makes an unexpected exception print its traceback.
TRACEBACK_ENV = "OPENIGRT_TRACEBACK"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="openigrt")
def cli() -> None:
    """OpenIGRT: IGRT patient-setup imaging node (DICOM, plan checks, virtual imager, matching)."""


def _register_commands(group: click.Group) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            module.register(group)


_register_commands(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raises, never prints a traceback).

    ``main(["--version"])`` is how tests call it in-process.
    """
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="openigrt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.exceptions.Abort:
        console_err().print("[red]aborted[/red]")
        return EXIT_FAILURE
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ConfigError as exc:
        console_err().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_USAGE
    except OpenIGRTError as exc:
        console_err().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        console_err().print("[red]interrupted[/red]")
        return 130
    except SystemExit as exc:  # a command called sys.exit(code)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_FAILURE
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        logging.getLogger("openigrt").debug("internal error", exc_info=True)
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        console_err().print(f"[red]internal error:[/red] {escape(type(exc).__name__)}: {escape(str(exc))} "
                            f"(a bug in OpenIGRT; set {TRACEBACK_ENV}=1 for the traceback)", highlight=False)
        return EXIT_FAILURE
    return rv if isinstance(rv, int) else EXIT_OK
