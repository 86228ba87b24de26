"""Known C-MOVE destinations of the archive (ARCHIVE-1): AE title -> host:port.

A C-MOVE names its destination only by AE title (PS3.4 C.4.2.1.4); the archive resolves it
from its own table, the union of

* destinations given on the command line (``--destination AET@HOST:PORT``) or to
  :class:`~openigrt.archive.server.EmbeddedArchive` / :meth:`MoveDestinations.add`, and
* the file ``DIR/destinations.toml`` of the archive directory, re-read whenever it changes::

      # either a list of strings ...
      destinations = ["OPENIGRT@127.0.0.1:58051"]
      # ... or tables
      [[destination]]
      ae_title = "STORESCP"
      host = "127.0.0.1"
      port = 11113
      tls = true          # optional: DICOM TLS to this one (default: the archive's tls.remote)

Given destinations win over the file's when both name the same AE title. An unknown AE title
is answered with status A801 (Move destination unknown).

>>> d = MoveDestinations([RemoteAE.parse("STORESCP@127.0.0.1:11113")])
>>> d.get("STORESCP")
RemoteAE(ae_title='STORESCP', host='127.0.0.1', port=11113)
>>> d.get("NOBODY") is None
True
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from openigrt.config import RemoteAE
from openigrt.errors import ConfigError

LOG = logging.getLogger("openigrt.archive")

DESTINATIONS_FILE: Final = "destinations.toml"


def parse_destinations_toml(path: Path) -> dict[str, RemoteAE]:
    """Read a destinations file; raise ConfigError naming the file and entry when it is invalid."""
    return _parse(path)[0]


def _parse(path: Path) -> tuple[dict[str, RemoteAE], dict[str, bool]]:
    """The destinations of a file, and the ``tls`` flag of those tables that give one."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    unknown = set(doc) - {"destinations", "destination"}
    if unknown:
        raise ConfigError(f"{path}:{sorted(unknown)[0]}", "unknown key (expected 'destinations' or [[destination]])")
    out: dict[str, RemoteAE] = {}
    listed = doc.get("destinations", [])
    if not isinstance(listed, list):
        raise ConfigError(f"{path}:destinations", "expected a list of 'AET@HOST:PORT' strings")
    for i, text in enumerate(listed):
        remote = RemoteAE.parse(str(text), key=f"{path}:destinations[{i}]")
        out[remote.ae_title] = remote
    tables = doc.get("destination", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}:destination", "expected [[destination]] tables")
    tls: dict[str, bool] = {}
    for i, table in enumerate(tables):
        remote = _from_table(table, key=f"{path}:destination[{i}]")
        out[remote.ae_title] = remote
        if "tls" in table:
            if not isinstance(table["tls"], bool):
                raise ConfigError(f"{path}:destination[{i}].tls", f"expected true or false, got {table['tls']!r}")
            tls[remote.ae_title] = table["tls"]
    return out, tls


def _from_table(table: Any, *, key: str) -> RemoteAE:
    if not isinstance(table, Mapping) or not {"ae_title", "host", "port"} <= set(table):
        raise ConfigError(key, "needs ae_title, host and port")
    unknown = set(table) - {"ae_title", "host", "port", "tls"}
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown key (known: ae_title, host, port, tls)")
    return RemoteAE.parse(f"{table['ae_title']}@{table['host']}:{table['port']}", key=key)


def format_destinations_toml(destinations: Iterable[RemoteAE]) -> str:
    """Render destinations as a ``destinations.toml`` document.

    >>> print(format_destinations_toml([RemoteAE("A", "127.0.0.1", 104)]), end="")
    # Known C-MOVE destinations of this archive (AE title -> host:port).
    [[destination]]
    ae_title = "A"
    host = "127.0.0.1"
    port = 104
    """
    lines = ["# Known C-MOVE destinations of this archive (AE title -> host:port)."]
    for d in destinations:
        lines += ["[[destination]]", f'ae_title = "{d.ae_title}"', f'host = "{d.host}"', f"port = {d.port}"]
    return "\n".join(lines) + "\n"


class MoveDestinations:
    """Thread-safe table of known move destinations.

    Parameters
    ----------
    given
        Destinations from the command line or the API.
    toml_path
        Optional destinations file, re-read when its modification time or size changes. A file
        that becomes invalid while the archive runs is logged and the last good table is kept.
    """

    def __init__(self, given: Iterable[RemoteAE] = (), *, toml_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._given: dict[str, RemoteAE] = {d.ae_title: d for d in given}
        self._path = toml_path
        self._stamp: tuple[int, int] | None = None
        self._from_file: dict[str, RemoteAE] = {}
        self._file_tls: dict[str, bool] = {}
        if toml_path is not None and toml_path.exists():
            self._from_file, self._file_tls = _parse(toml_path)  # invalid at start: ConfigError
            self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat() if self._path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st is not None else None

    def _refresh(self) -> None:
        if self._path is None:
            return
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            table, tls = _parse(self._path) if stamp is not None else ({}, {})
        except (ConfigError, OSError) as exc:
            LOG.error("move destinations file %s ignored (keeping the previous table): %s", self._path, exc)
            return
        self._from_file, self._file_tls, self._stamp = table, tls, stamp
        LOG.info("move destinations reloaded from %s: %s", self._path, ", ".join(map(str, table.values())) or "none")

    def add(self, destination: RemoteAE) -> None:
        """Add or replace a destination (by AE title)."""
        with self._lock:
            self._given[destination.ae_title] = destination

    def get(self, ae_title: str) -> RemoteAE | None:
        """The destination for *ae_title* (leading/trailing spaces ignored), or None."""
        key = ae_title.strip()
        with self._lock:
            self._refresh()
            return self._given.get(key) or self._from_file.get(key)

    def tls(self, ae_title: str) -> bool | None:
        """The ``tls`` flag the file gives the destination *ae_title*, or None (the archive's default)."""
        key = ae_title.strip()
        with self._lock:
            return None if key in self._given else self._file_tls.get(key)

    def all(self) -> tuple[RemoteAE, ...]:
        """Every known destination, sorted by AE title."""
        with self._lock:
            self._refresh()
            merged = {**self._from_file, **self._given}
        return tuple(merged[k] for k in sorted(merged))
