"""QIDO-RS: search for studies, series and instances; locate one instance by SOP Instance UID (PS3.18 10.6).

:func:`locate` is the DICOMweb twin of :func:`openigrt.net.qr.locate` (NET-3 and its documented
extension), with the same result type :class:`~openigrt.net.qr.FindResult`:

1. ``GET {base}/studies/{study}/series/{series}/instances?SOPInstanceUID=uid`` when both parents
   are known, ``{base}/studies/{study}/instances?…`` when only the study is, else the all-instances
   search ``{base}/instances?SOPInstanceUID=uid``; the answer's Study/Series Instance UIDs are asked
   for with ``includefield`` and completed from the path when the server leaves them out.
2. Hierarchical fallback, when that answer is empty or an error and a parent is unknown: the
   studies (all, or the known one), the series of each, then the instance in each series — as
   for a strictly hierarchical DIMSE provider.

Only the UID keys are read from a ``application/dicom+json`` answer, and only values that are
valid UIDs are kept (the rest of a server's answer is never interpreted). "Not found" is data
(``FindResult.found`` false, ``message`` naming the URL and what it answered); HTTP error
statuses and malformed answers are "not found" with their reason, except that 401/403/407 end the
search at once; connection failures and timeouts raise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from openigrt.errors import BadResponse, HttpStatusError
from openigrt.net.dicomweb.http import HttpSession
from openigrt.net.qr import FindResult, Match
from openigrt.uids import is_valid_uid

LOG = logging.getLogger("openigrt.net.dicomweb.qido")

STUDY_INSTANCE_UID: Final = "0020000D"
SERIES_INSTANCE_UID: Final = "0020000E"
SOP_INSTANCE_UID: Final = "00080018"
ACCEPT_JSON: Final = {"Accept": "application/dicom+json"}
#: HTTP statuses after which searching further is pointless (authentication / authorisation).
AUTH_STATUSES: Final = frozenset({401, 403, 407})


def search(http: HttpSession, *segments: str, params: Mapping[str, str | list[str]] | None = None) -> list[dict[str, Any]]:
    """One QIDO-RS request; the answer's objects (``[]`` for 204 No Content).

    Raises HttpStatusError for a non-2xx answer, BadResponse for one that is not a JSON array of
    objects, and ConnectionFailed / HttpTimeout / NetworkError when we cannot talk.
    """
    url = http.url(*segments, params=params)
    with http.stream("GET", url, headers=ACCEPT_JSON, what="QIDO-RS") as rsp:
        if rsp.status == 204:
            return []
        rsp.raise_for_status()
        doc = rsp.json()
    if not isinstance(doc, list) or not all(isinstance(o, dict) for o in doc):
        raise BadResponse(f"QIDO-RS GET {url}: the answer is not a JSON array of data sets")
    return doc


def uid_value(obj: Mapping[str, Any], tag: str) -> str:
    """The first value of a UID attribute in a DICOM JSON object, ``""`` when absent or not a valid UID."""
    element = obj.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or not values or not isinstance(values[0], str):
        return ""
    value = values[0].strip()
    return value if is_valid_uid(value) else ""


def _matches(objs: list[dict[str, Any]], uid: str, study: str | None, series: str | None) -> list[Match]:
    out = []
    for o in objs:
        found = uid_value(o, SOP_INSTANCE_UID)
        if found not in ("", uid):  # a server that ignores the filter must not mislead us
            continue
        out.append(Match(uid, uid_value(o, STUDY_INSTANCE_UID) or study or "",
                         uid_value(o, SERIES_INSTANCE_UID) or series or ""))
    return out


def _instance_search(http: HttpSession, uid: str, study: str | None, series: str | None) -> list[Match]:
    params = {"SOPInstanceUID": uid, "includefield": [STUDY_INSTANCE_UID, SERIES_INSTANCE_UID]}
    if study and series:
        segments: tuple[str, ...] = ("studies", study, "series", series, "instances")
    elif study:
        segments = ("studies", study, "instances")
    else:
        segments = ("instances",)
    return _matches(search(http, *segments, params=params), uid, study, series)


def locate(http: HttpSession, uid: str, *, study: str | None = None, series: str | None = None) -> FindResult:
    """Find one instance (see the module docstring); "not found" is data."""
    label = http.url(*_segments(study, series), params={"SOPInstanceUID": uid})
    try:
        matches = _instance_search(http, uid, study, series)
        first = f"QIDO-RS GET {label} answered no match"
    except (HttpStatusError, BadResponse) as exc:
        matches, first = [], str(exc)
        if isinstance(exc, HttpStatusError) and exc.status in AUTH_STATUSES:
            return FindResult(uid, (), None, first)
    if matches:
        return FindResult(uid, tuple(matches), None, "")
    if study and series:
        return FindResult(uid, (), None, first)
    LOG.info("%s; searching the hierarchy", first)
    found = _hierarchical(http, uid, study)
    if found:
        return FindResult(uid, tuple(found), None, "", fallback_used=True)
    return FindResult(uid, (), None, first + " (hierarchical search found nothing either)", fallback_used=True)


def _segments(study: str | None, series: str | None) -> tuple[str, ...]:
    if study and series:
        return ("studies", study, "series", series, "instances")
    return ("studies", study, "instances") if study else ("instances",)


def _hierarchical(http: HttpSession, uid: str, study: str | None) -> list[Match]:
    studies = [study] if study else _uids(http, STUDY_INSTANCE_UID, "studies",
                                          params={"includefield": STUDY_INSTANCE_UID})
    for st in studies:
        for se in _uids(http, SERIES_INSTANCE_UID, "studies", st, "series",
                        params={"includefield": SERIES_INSTANCE_UID}):
            try:
                hits = _instance_search(http, uid, st, se)
            except (HttpStatusError, BadResponse) as exc:
                LOG.info("%s", exc)
                continue
            if hits:
                return hits
    return []


def _uids(http: HttpSession, tag: str, *segments: str, params: Mapping[str, str]) -> list[str]:
    try:
        objs = search(http, *segments, params=params)
    except (HttpStatusError, BadResponse) as exc:
        LOG.info("%s", exc)
        return []
    return sorted({v for v in (uid_value(o, tag) for o in objs) if v})
