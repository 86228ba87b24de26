"""WADO-RS: retrieve instances into the cache (PS3.18 10.4), as C-MOVE does for DIMSE (NET-6, LOAD-3).

``GET {base}/studies/{study}/series/{series}/instances/{uid}`` (or ``…/series/{series}`` for a
whole series) with ``Accept: multipart/related; type="application/dicom"; transfer-syntax=*``:
the server sends what it stores, so the data set bytes we cache are the bytes it holds. The body
is parsed as it arrives (:class:`~openigrt.net.dicomweb.multipart.MultipartReader`); each part
is checked and written through :meth:`openigrt.net.cache.InstanceCache.store` (temporary name,
fsync, rename, index: the durable write of the Storage SCP) before the next one is read, so at
most one instance is in memory.

A part is refused (the instance fails, named) when it is not ``application/dicom``, not a Part
10 file, not a well-formed data set (:func:`openigrt.net.header.inspect`), or not the instance
asked for. A part in a transfer syntax our Storage SCP would not accept (anything but Implicit /
Explicit VR Little Endian) is asked for again with ``transfer-syntax=1.2.840.10008.1.2.1``, so
the cache holds what a C-MOVE would have brought.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from openigrt.errors import BadResponse, CacheError, DicomInputError, UnsupportedObjectError
from openigrt.net import sop
from openigrt.net.cache import CachedInstance, InstanceCache
from openigrt.net.dicomweb.http import HttpSession, StreamedResponse
from openigrt.net.dicomweb.multipart import MultipartReader, Part, parse_media_type
from openigrt.net.header import inspect, split_part10

LOG = logging.getLogger("openigrt.net.dicomweb.wado")

#: Largest single instance we accept in a WADO-RS answer (bytes; it is held in memory once).
MAX_INSTANCE_BYTES: Final = 1024 * 1024 * 1024
DICOM: Final = "application/dicom"
ACCEPT_AS_STORED: Final = f'multipart/related; type="{DICOM}"; transfer-syntax=*'
ACCEPT_EXPLICIT_LE: Final = f'multipart/related; type="{DICOM}"; transfer-syntax={sop.EXPLICIT_VR_LITTLE_ENDIAN}'


@dataclass
class Fetched:
    """What one WADO-RS answer brought: cached rows, and why wanted instances were refused."""

    stored: dict[str, CachedInstance] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # uid -> reason
    convert: set[str] = field(default_factory=set)  # uids sent in a transfer syntax we do not keep
    problems: list[str] = field(default_factory=list)  # parts not attributable to a wanted uid
    error: str = ""  # the answer as a whole was unusable from here on (truncated, wrong type, …)

    def reason(self, uid: str) -> str:
        """Why *uid* is not in :attr:`stored`."""
        if uid in self.refused:
            return self.refused[uid]
        if self.error:
            return self.error
        if self.problems:
            return self.problems[0]
        return "the answer held no instance with this SOP Instance UID"


def fetch(http: HttpSession, cache: InstanceCache, url: str, wanted: set[str], *,
          accept: str = ACCEPT_AS_STORED) -> Fetched:
    """GET *url* and cache every wanted instance of the answer (see the module docstring).

    Raises HttpStatusError for a non-2xx answer and the connection errors of
    :meth:`HttpSession.stream`; anything wrong inside a 2xx answer is recorded in the result.
    """
    out = Fetched()
    with http.stream("GET", url, headers={"Accept": accept}, what="WADO-RS") as rsp:
        rsp.raise_for_status()
        try:
            _read_parts(rsp, cache, wanted, out)
        except BadResponse as exc:
            out.error = f"{rsp.label}: {exc}" if rsp.label not in str(exc) else str(exc)
    return out


def _read_parts(rsp: StreamedResponse, cache: InstanceCache, wanted: set[str], out: Fetched) -> None:
    media = parse_media_type(rsp.content_type)
    if media.type == DICOM:  # a single instance without multipart framing: tolerated
        _take(Part(1, {"content-type": DICOM}, rsp.read_limited(MAX_INSTANCE_BYTES)), rsp.label, cache, wanted, out)
        return
    if media.type != "multipart/related" or media.params.get("type", DICOM).lower() != DICOM:
        raise BadResponse(f'expected multipart/related; type="{DICOM}", got {rsp.content_type or "no content type"!r}')
    if "boundary" not in media.params:
        raise BadResponse("multipart/related answer without a boundary parameter")
    reader = MultipartReader(media.params["boundary"], max_part_bytes=MAX_INSTANCE_BYTES)
    for chunk in rsp.iter_bytes():
        for part in reader.feed(chunk):
            _take(part, rsp.label, cache, wanted, out)
    reader.close()


def _take(part: Part, label: str, cache: InstanceCache, wanted: set[str], out: Fetched) -> None:
    """Check one part and store it in the cache when it is a wanted instance."""
    name = f"part {part.index}"
    if part.content_type not in ("", DICOM):
        out.problems.append(f"{label}: {name} is {part.content_type!r}, not {DICOM}")
        return
    try:
        split = split_part10(part.body, name=name)
    except DicomInputError as exc:
        out.problems.append(f"{label}: {exc}")
        return
    ts = split.transfer_syntax_uid
    body = memoryview(part.body)[split.dataset_offset:]
    header = None
    try:
        header = inspect(body, transfer_syntax_uid=ts)
        uid = header.sop_instance_uid
    except UnsupportedObjectError:  # big endian / deflated: only a conversion helps
        uid = split.media_sop_instance_uid
    except DicomInputError as exc:
        _refuse(out, split.media_sop_instance_uid, wanted, f"{label}: {name}: {exc}")
        return
    if uid not in wanted:
        LOG.debug("%s: %s is %s, not asked for", label, name, uid)
        out.problems.append(f"{label}: the server sent instance {uid or '?'}, not the one asked for")
        return
    if header is None or ts not in sop.SCP_TRANSFER_SYNTAXES:
        out.convert.add(uid)
        out.refused[uid] = (f"{label}: sent in transfer syntax {ts}, and the server did not convert it to "
                            "Explicit VR Little Endian when asked")
        return
    try:
        out.stored[uid] = cache.store(body, transfer_syntax_uid=ts, header=header, checked=True)
    except (DicomInputError, CacheError) as exc:
        out.refused[uid] = f"{label}: {name} not cached: {exc}"


def _refuse(out: Fetched, uid: str, wanted: set[str], reason: str) -> None:
    if uid in wanted:
        out.refused[uid] = reason
    else:
        out.problems.append(reason)
