"""The TMS as the workflow sees it, whatever the protocol: echo, locate, retrieve into the cache, store.

Two implementations share this interface and its result types
(:class:`~openigrt.net.qr.FindResult`, :class:`~openigrt.net.qr.MoveReport`,
:class:`~openigrt.net.store.StoreReport`):

* :class:`openigrt.net.client.DicomClient` — DIMSE: C-ECHO, C-FIND, C-MOVE to our Storage SCP,
  C-STORE (``[remote] ae_title/host/port``, ``--remote AET@HOST:PORT``);
* :class:`openigrt.net.dicomweb.client.DicomWebClient` — DICOMweb: QIDO-RS, WADO-RS, STOW-RS
  (``[remote] protocol = "dicomweb"``, ``--remote dicomweb+http(s)://HOST:PORT/PATH``).

Both put what they retrieve through the same durable cache write
(:meth:`openigrt.net.cache.InstanceCache.store`), give one result per instance (which the
session records, so resuming works the same), and raise from :mod:`openigrt.errors` only when
they cannot talk.

>>> from openigrt.config import load_settings
>>> with open_tms(load_settings(None, {"remote": "dicomweb+http://127.0.0.1:1/dicom-web"})) as tms:
...     tms.protocol, str(tms.remote)
('DICOMweb', 'dicomweb+http://127.0.0.1:1/dicom-web')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from openigrt.config import Settings
from openigrt.net.cache import InstanceCache
from openigrt.net.qr import FindResult, MoveReport, MoveResult
from openigrt.net.store import InstanceResult, StoreReport


class TmsClient(Protocol):
    """What loading a patient and closing a fraction need from the TMS."""

    #: ``"DIMSE"`` or ``"DICOMweb"`` (for messages).
    protocol: str
    #: What the verification is called in messages (``"C-ECHO"``, ``"the DICOMweb echo (QIDO-RS)"``).
    echo_name: str

    @property
    def remote(self) -> Any:
        """The peer; ``str()`` of it names it in every message."""

    @property
    def cache(self) -> InstanceCache:
        """The cache retrieved instances land in."""

    def echo(self) -> float:
        """Verify the TMS answers; the round trip in s. Raises NetworkError (naming the peer) otherwise."""

    def locate(self, sop_instance_uid: str, *, study_instance_uid: str | None = None,
               series_instance_uid: str | None = None) -> FindResult:
        """Find one instance and its Study/Series; "not found" is data. Raises NetworkError when we cannot talk."""

    def retrieve(self, sop_instance_uids: Sequence[str], *, study_instance_uid: str | None = None,
                 series_instance_uid: str | None = None,
                 progress: Callable[[int, int, MoveResult], None] | None = None) -> MoveReport:
        """Bring the instances into :attr:`cache`; one result per instance; never raises for network trouble."""

    def store(self, items: Sequence[Any], *,
              progress: Callable[[int, int, InstanceResult], None] | None = None) -> StoreReport:
        """Store files/Datasets; one result per instance; never raises for network trouble."""


@contextmanager
def open_tms(settings: Settings, *, cache: InstanceCache | None = None) -> Iterator[TmsClient]:
    """The configured TMS client (DICOMweb when ``settings.dicomweb`` is set, else DIMSE), closed afterwards.

    Raises ConfigError when no TMS is configured.
    """
    client: Any
    if settings.dicomweb is not None:
        from openigrt.net.dicomweb.client import DicomWebClient

        client = DicomWebClient(settings, cache=cache)
        try:
            yield client
        finally:
            client.close()
        return
    from openigrt.net.client import DicomClient

    yield DicomClient(settings, cache=cache)
