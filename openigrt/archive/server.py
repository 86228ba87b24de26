"""The embedded archive as a running network node (ARCHIVE-1): :class:`EmbeddedArchive`.

>>> import tempfile
>>> with EmbeddedArchive(tempfile.mkdtemp(), port=0) as archive:   # doctest: +SKIP
...     archive.import_paths(["tests/data/real"])
...     archive.add_destination(RemoteAE.parse("OPENIGRT@127.0.0.1:58051"))
...     print(archive.remote)              # what an SCU connects to
OPENIGRT_ARCHIVE@127.0.0.1:40123
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from openigrt.archive.destinations import DESTINATIONS_FILE, MoveDestinations
from openigrt.archive.model import Model
from openigrt.archive.query import Operation, build_identifier, parse_identifier
from openigrt.archive.scp import ArchiveServices, MoveSCP, iter_find_matches, storage_classes, supported_contexts
from openigrt.archive.store import ArchiveStore, Identity, ImportReport, ImportResult
from openigrt.config import RemoteAE, Settings
from openigrt.errors import NetworkError
from openigrt.net.scp import Rejection

if TYPE_CHECKING:  # pragma: no cover
    from pydicom import Dataset

LOG = logging.getLogger("openigrt.archive")

DEFAULT_ARCHIVE_AE_TITLE: Final = "OPENIGRT_ARCHIVE"
#: How often the server loop checks for shutdown, s.
_POLL_INTERVAL: Final = 0.2


class EmbeddedArchive:
    """A Q/R + Storage SCP archive on an on-disk store, run in background threads.

    Parameters
    ----------
    directory
        Archive directory (files + SQLite index); created when missing, reused when present.
    ae_title
        The archive's AE title (Called AE Title it answers to).
    port
        TCP port; 0 picks a free one (read it back from :attr:`port` after :meth:`start`).
    bind_address
        Address to listen on (loopback by default).
    destinations
        Known C-MOVE destinations, besides ``DIR/destinations.toml``.
    settings
        Timeouts, PDU sizes and our implementation identity (``[network]``); defaults otherwise.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, directory: Path | str, *, ae_title: str = DEFAULT_ARCHIVE_AE_TITLE, port: int = 0,
                 bind_address: str = "127.0.0.1", destinations: Iterable[RemoteAE] = (),
                 settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.ae_title = ae_title
        self.bind_address = bind_address
        self._requested_port = port
        net = self.settings.network
        self.store = ArchiveStore(directory, identity=Identity(net.implementation_class_uid,
                                                               net.implementation_version_name))
        self.destinations = MoveDestinations(destinations, toml_path=self.store.directory / DESTINATIONS_FILE)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def port(self) -> int:
        """The listening port (the one picked when constructed with 0)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def remote(self) -> RemoteAE:
        """How an SCU reaches the archive (``AET@HOST:PORT``)."""
        host = "127.0.0.1" if self.bind_address in ("0.0.0.0", "") else self.bind_address
        return RemoteAE(self.ae_title, host, self.port)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmbeddedArchive:
        """Start listening; returns self. Raises NetworkError when the port cannot be bound."""
        if self.running:
            return self
        from openigrt.archive.acceptor import ArchiveServer
        from openigrt.net.acceptor import AcceptorConfig
        from openigrt.net.connections import AcceptorLimits
        from openigrt.net.tls import acceptor_tls, tls_note

        self.store.reconcile()
        net = self.settings.network
        mover = MoveSCP(store=self.store, destinations=self.destinations, ae_title=self.ae_title, settings=self.settings)
        services = ArchiveServices(self.store, mover, self.ae_title)
        supported = supported_contexts()
        config = AcceptorConfig(
            ae_title=self.ae_title, supported=supported, storage_classes=storage_classes(supported),
            check_access=self._check_access, on_store=services.on_store,
            implementation_class_uid=net.implementation_class_uid,
            implementation_version_name=net.implementation_version_name, limits=AcceptorLimits.from_network(net),
            wrap_socket=acceptor_tls(self.settings))
        try:
            server = ArchiveServer((self.bind_address, self._requested_port), config, services)
        except OSError as exc:
            raise NetworkError(f"archive {self.ae_title}: cannot listen on {self.bind_address}:"
                               f"{self._requested_port} ({exc.strerror or exc})") from None
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL_INTERVAL},
                                  name=f"archive-{self.ae_title}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        LOG.info("archive %s listening on %s:%d%s (%d instances in %s); move destinations: %s%s", self.ae_title,
                 self.bind_address, self.port, tls_note(self.settings.tls) if self.settings.tls.listen else "",
                 self.store.index.summary().instances, self.directory,
                 ", ".join(str(d) for d in self.destinations.all()) or "none",
                 " (DICOM TLS unless destinations.toml says tls = false)" if self.settings.tls.remote else "")
        return self

    def _check_access(self, called: str, calling: str, address: str) -> Rejection | None:
        """Accept any calling AE; the Called AE Title must be ours (PS3.8 A-ASSOCIATE-RJ 1/1/7)."""
        if called.strip() != self.ae_title:
            return Rejection(1, 1, 7, f"called AE title {called.strip()!r} is not ours ({self.ae_title!r})")
        LOG.info("association from %s@%s", calling.strip(), address)
        return None

    def stop(self) -> None:
        """Stop listening and abort open associations."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is not None:
            server.shutdown()
            server.abort_all()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def sockets(self) -> list[Any]:
        """Sockets of the associations being served (tests read their options)."""
        return self._server.sockets() if self._server is not None else []

    def close(self) -> None:
        """Stop and close the index."""
        self.stop()
        self.store.close()

    def __enter__(self) -> EmbeddedArchive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, stop: threading.Event) -> None:
        """Block until *stop* is set (the CLI's ``serve`` loop)."""
        while not stop.wait(_POLL_INTERVAL):
            if not self.running:
                raise NetworkError(f"archive {self.ae_title}: server thread ended unexpectedly")

    # ------------------------------------------------------------------ content
    def add_destination(self, destination: RemoteAE) -> None:
        """Make *destination* a known C-MOVE destination."""
        self.destinations.add(destination)

    def import_paths(self, paths: Iterable[Path | str], *,
                     progress: Callable[[ImportResult], None] | None = None) -> ImportReport:
        """Import files/directories into the archive (see :meth:`ArchiveStore.import_paths`)."""
        return self.store.import_paths(paths, progress=progress)

    def query(self, level: str = "IMAGE", *, model: Model = Model.STUDY_ROOT, **keys: Any) -> list[Dataset]:
        """Run a C-FIND locally (same matching as the SCP) and return the response identifiers.

        Keys are DICOM keywords; ``""`` requests a return key, a value matches
        (``PatientName="RANDO*"``, ``StudyDate="20110101-"``, ``SOPInstanceUID=[uid1, uid2]``).

        Raises DicomInputError when the identifier is invalid (what the SCP answers A900).
        """
        from pydicom import Dataset

        identifier = Dataset()
        identifier.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(identifier, keyword, value)
        q = parse_identifier(identifier, model=model, operation=Operation.FIND)
        return [build_identifier(q, row, file_ds, retrieve_ae_title=self.ae_title)
                for row, file_ds in iter_find_matches(self.store, q)]


def parse_destination_options(values: Iterable[str]) -> list[RemoteAE]:
    """Parse repeated ``--destination AET@HOST:PORT`` options (ConfigError names the bad one)."""
    return [RemoteAE.parse(text, key=f"--destination[{i}]") for i, text in enumerate(values)]
