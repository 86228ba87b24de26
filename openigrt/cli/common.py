"""Shared pieces of the CLI: exit codes, consoles, the common options, JSON output, logging.

Common options (every network/file command takes them, so scripts need no config file)::

    --config FILE  --ae-title AET  --port N  --cache DIR  --remote AET@HOST:PORT|dicomweb+http(s)://HOST/PATH
    --allow AET@HOST (repeatable)  --set section.key=value (repeatable)  -v/--verbose
    --tls/--no-tls  --tls-cert FILE  --tls-key FILE  --tls-ca FILE  --tls-require-client-cert/--no-...

``@common_options`` adds them and passes a loaded :class:`~openigrt.config.Settings` to the
command as the keyword argument ``settings``.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from openigrt.config import Settings, load_settings, parse_set_option

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

# rich (~50 ms to import) is imported where something is rendered, not at start-up: every
# ``openigrt`` run imports this module (tests/cli/test_startup.py checks the start-up import set).

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


def console_out() -> Console:
    """Console on stdout (data, reports)."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def console_err() -> Console:
    """Console on stderr (progress, errors, logs)."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``rich.markup.escape`` (imported on first use)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler writing to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(verbose: int, log_file: Path | None = None) -> None:
    """Log to stderr (WARNING, INFO with -v, DEBUG with -vv) and optionally to a file (DEBUG).

    On a terminal the stderr handler is rich's; otherwise (pipes, files, CI logs) it is a plain
    one-line-per-record handler, so logs are not wrapped and stay greppable. Only the handlers
    this function installed earlier are replaced (other handlers, e.g. pytest's, are kept).
    """
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    stream: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        stream = RichHandler(console=console_err(), show_path=False, markup=False)
    else:
        stream = _StderrHandler()
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stream.setLevel(level)
    handlers: list[logging.Handler] = [stream]
    if log_file is not None:
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG)
        handlers.append(fh)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_openigrt", False):
            root.removeHandler(h)
            h.close() if isinstance(h, logging.FileHandler) else None
    for h in handlers:
        h._openigrt = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.DEBUG if log_file else level)
    # pynetdicom repeats our own errors and is chatty at INFO: silent by default, warnings with -v,
    # everything with -vv
    logging.getLogger("pynetdicom").setLevel(
        logging.DEBUG if verbose >= 2 else logging.WARNING if verbose == 1 else logging.CRITICAL)


def tls_overrides(tls: bool | None = None, cert: Path | None = None, key: Path | None = None, ca: Path | None = None,
                  require_client_cert: bool | None = None) -> dict[str, Any]:
    """The ``[tls]`` overrides of the ``--tls*`` options (``--tls`` = TLS to the TMS and on our SCP).

    >>> tls_overrides(True, ca=Path("ca.pem"))
    {'tls.listen': True, 'tls.remote': True, 'tls.ca_bundle': 'ca.pem'}
    """
    out: dict[str, Any] = {}
    if tls is not None:
        out["tls.listen"] = out["tls.remote"] = tls
    for name, value in (("certificate", cert), ("private_key", key), ("ca_bundle", ca)):
        if value is not None:
            out[f"tls.{name}"] = str(value)
    if require_client_cert is not None:
        out["tls.require_client_certificate"] = require_client_cert
    return out


def settings_from_options(
    config: Path | None,
    ae_title: str | None = None,
    port: int | None = None,
    cache: Path | None = None,
    remote: str | None = None,
    allow: tuple[str, ...] = (),
    set_: tuple[str, ...] = (),
    tls: dict[str, Any] | None = None,
) -> Settings:
    """Build Settings from a config file plus command-line overrides (raises ConfigError).

    The named options win over ``--set`` (*tls*: from :func:`tls_overrides`).
    """
    overrides: dict[str, Any] = dict(parse_set_option(s) for s in set_)
    overrides.update(tls or {})
    if ae_title is not None:
        overrides["local.ae_title"] = ae_title
    if port is not None:
        overrides["local.port"] = port
    if cache is not None:
        overrides["paths.cache_dir"] = str(cache)
    if remote is not None:
        overrides["remote"] = remote
    if allow:
        overrides["allowed"] = list(allow)
    return load_settings(config, overrides)


def common_options(func: F) -> F:
    """Add the common options and pass ``settings=Settings`` to the command."""

    @click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  envvar="OPENIGRT_CONFIG", help="TOML configuration file (env OPENIGRT_CONFIG).")
    @click.option("--ae-title", default=None, help="Our AE title [StreamService].")
    @click.option("--port", type=int, default=None, help="Our listening port [58051].")
    @click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Cache directory for received instances and session state.")
    @click.option("--remote", default=None, metavar="AET@HOST:PORT | dicomweb+http(s)://HOST:PORT/PATH",
                  help="The TMS: Q/R provider, storage destination and an allowed caller (DIMSE), or a "
                       "DICOMweb service (QIDO-RS, WADO-RS, STOW-RS).")
    @click.option("--allow", multiple=True, metavar="AET@HOST", help="Further allowed caller (repeatable).")
    @click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
                  help="Override any config key, e.g. --set network.dimse_timeout=30 (repeatable).")
    @click.option("--tls/--no-tls", "tls", default=None,
                  help="DICOM TLS (BCP 195) to the TMS and on our SCP (tls.remote, tls.listen).")
    @click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PEM",
                  help="Our certificate (tls.certificate).")
    @click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PEM",
                  help="Its private key (tls.private_key).")
    @click.option("--tls-ca", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PEM",
                  help="CA certificates our peers' certificates must chain to (tls.ca_bundle).")
    @click.option("--tls-require-client-cert/--no-tls-require-client-cert", "tls_require_client_cert", default=None,
                  help="Our SCP refuses TLS clients without a trusted certificate [yes].")
    @click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
    @click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Also write a debug log to this file.")
    @functools.wraps(func)
    def wrapper(*args: Any, config: Path | None, ae_title: str | None, port: int | None, cache: Path | None,
                remote: str | None, allow: tuple[str, ...], set_: tuple[str, ...], tls: bool | None,
                tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None, tls_require_client_cert: bool | None,
                verbose: int, log_file: Path | None, **kwargs: Any) -> Any:
        setup_logging(verbose, log_file)
        settings = settings_from_options(config, ae_title, port, cache, remote, allow, set_,
                                         tls_overrides(tls, tls_cert, tls_key, tls_ca, tls_require_client_cert))
        return func(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Write *data* as indented JSON on stdout (numpy scalars/arrays and Paths converted)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
