"""HTTP plumbing of the DICOMweb client over httpx: one configured client, bounded requests, errors.

Every request is bounded twice: httpx's timeouts (``remote.timeout``) limit each wait for
progress (connect: ``remote.connect_timeout``), and ``remote.request_timeout`` limits the whole
request including a streamed body (checked between chunks), so a server that trickles bytes
cannot hold us either. Failures become the exceptions of :mod:`openigrt.errors`, each naming the
method and URL:

=====================================  ==========================================================
connection refused, DNS, TLS handshake  :class:`~openigrt.errors.ConnectionFailed`
no progress / request too long          :class:`~openigrt.errors.HttpTimeout`
HTTP status >= 300 (when asked)         :class:`~openigrt.errors.HttpStatusError` (``status``, ``url``)
broken HTTP, body cut short             :class:`~openigrt.errors.BadResponse`
connection lost                         :class:`~openigrt.errors.NetworkError`
=====================================  ==========================================================

Path segments that come from a server (Study/Series/SOP Instance UIDs in a QIDO-RS answer) are
only put into a URL after :func:`openigrt.uids.is_valid_uid` accepted them (digits and dots), so
an answer cannot redirect a request elsewhere (``..``, ``/``, ``?``). Environment proxies and
``.netrc`` are ignored (``trust_env=False``); redirects are not followed (a 3xx is an error that
names the new location).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx

from openigrt import __version__
from openigrt.config import DicomWebRemote
from openigrt.errors import BadResponse, ConnectionFailed, HttpStatusError, HttpTimeout, NetworkError
from openigrt.uids import is_valid_uid

LOG = logging.getLogger("openigrt.net.dicomweb")

#: Bytes per read of a streamed body.
READ_CHUNK_BYTES: Final = 256 * 1024
#: Largest JSON answer (QIDO-RS result, STOW-RS response) we read.
MAX_JSON_BYTES: Final = 64 * 1024 * 1024
#: How much of an error answer's body is read to explain it.
ERROR_BODY_BYTES: Final = 4096
#: Idle keep-alive connections are dropped after this (Orthanc closes them after 1 s).
KEEPALIVE_EXPIRY_S: Final = 0.5
USER_AGENT: Final = f"OpenIGRT/{__version__}"
JSON_TYPES: Final = ("application/dicom+json", "application/json")


def _verify(remote: DicomWebRemote) -> ssl.SSLContext | bool:
    if not remote.url.lower().startswith("https:"):
        return True
    if not remote.verify_tls:
        LOG.warning("TLS certificate verification is OFF for %s (remote.verify_tls = false)", remote.url)
        return False
    ctx = ssl.create_default_context(cafile=str(remote.ca_bundle) if remote.ca_bundle else None)
    if remote.ca_bundle is None:
        import certifi

        ctx.load_verify_locations(certifi.where())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _auth(remote: DicomWebRemote) -> httpx.BasicAuth | None:
    return httpx.BasicAuth(remote.username, remote.password) if remote.username else None


class HttpSession:
    """One httpx client towards the DICOMweb base URL of *remote* (thread-safe)."""

    def __init__(self, remote: DicomWebRemote, *, transport: httpx.BaseTransport | None = None) -> None:
        self.remote = remote
        self.base = remote.url.rstrip("/")
        headers = {"User-Agent": USER_AGENT}
        if remote.authorization:
            headers["Authorization"] = remote.authorization
        self._client = httpx.Client(
            timeout=httpx.Timeout(remote.timeout, connect=remote.connect_timeout), verify=_verify(remote),
            auth=_auth(remote), headers=headers, follow_redirects=False, trust_env=False, transport=transport,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=KEEPALIVE_EXPIRY_S))

    def close(self) -> None:
        self._client.close()

    def url(self, *segments: str, params: Mapping[str, str | list[str]] | None = None) -> str:
        """``base/seg1/seg2…?params``; every segment must be a fixed name or a valid UID."""
        for seg in segments:
            if seg not in ("studies", "series", "instances") and not is_valid_uid(seg):
                raise BadResponse(f"refusing to build a URL with the path segment {seg[:80]!r} (not a UID)")
        url = "/".join([self.base, *(quote(s, safe="") for s in segments)])
        return url + ("?" + urlencode(params, doseq=True) if params else "")

    @contextmanager
    def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
               content: Any = None, what: str = "") -> Iterator[StreamedResponse]:
        """Send a request and yield its response with the body not yet read (see the module docstring).

        GET requests are retried once when the server closed a kept-alive connection before answering.
        """
        label = f"{what} {method} {url}".strip()
        deadline = time.monotonic() + self.remote.request_timeout
        attempts = 2 if method == "GET" else 1
        answered = False
        for attempt in range(attempts):
            try:
                with self._client.stream(method, url, headers=headers, content=content) as rsp:
                    answered = True
                    yield StreamedResponse(rsp, label, deadline, self.remote.request_timeout)
                return
            except httpx.RemoteProtocolError as exc:
                if not answered and attempt + 1 < attempts and "without sending" in str(exc):
                    LOG.debug("%s: %s; retrying once", label, exc)
                    continue
                raise BadResponse(f"{label}: the server broke the HTTP exchange: {exc}") from None
            except httpx.TimeoutException as exc:
                raise HttpTimeout(f"{label}: {_timeout_text(exc, self.remote)}") from None
            except httpx.ConnectError as exc:
                raise ConnectionFailed(f"{label}: cannot connect: {_reason(exc)}") from None
            except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
                raise NetworkError(f"{label}: connection lost: {_reason(exc)}") from None
            except httpx.HTTPError as exc:
                raise NetworkError(f"{label}: {type(exc).__name__}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__context__ or exc.__cause__
    if "Errno 111" in text or "Connection refused" in text or (cause and "Connection refused" in str(cause)):
        return "connection refused"
    return text


def _timeout_text(exc: httpx.TimeoutException, remote: DicomWebRemote) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"no connection within {remote.connect_timeout:g} s (remote.connect_timeout)"
    if isinstance(exc, httpx.WriteTimeout):
        return f"the server took no data for {remote.timeout:g} s (remote.timeout)"
    return f"no answer for {remote.timeout:g} s (remote.timeout)"


class StreamedResponse:
    """An HTTP response whose body is read in bounded chunks."""

    def __init__(self, rsp: httpx.Response, label: str, deadline: float, request_timeout: float) -> None:
        self._rsp = rsp
        self.label = label
        self.url = str(rsp.request.url)
        self.status = rsp.status_code
        self.headers = rsp.headers
        self._deadline = deadline
        self._request_timeout = request_timeout
        self.received = 0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def status_text(self) -> str:
        return f"HTTP {self.status} {self._rsp.reason_phrase}".rstrip()

    def iter_bytes(self) -> Iterator[bytes]:
        """The body in chunks; raises HttpTimeout past ``remote.request_timeout``."""
        for chunk in self._rsp.iter_bytes(READ_CHUNK_BYTES):
            self.received += len(chunk)
            if time.monotonic() > self._deadline:
                raise HttpTimeout(f"{self.label}: not finished within {self._request_timeout:g} s "
                                  f"(remote.request_timeout; {self.received} bytes received)")
            yield chunk

    def read_limited(self, limit: int) -> bytes:
        """The whole body, at most *limit* bytes (BadResponse beyond)."""
        out = bytearray()
        for chunk in self.iter_bytes():
            out += chunk
            if len(out) > limit:
                raise BadResponse(f"{self.label}: answer larger than {limit} bytes")
        return bytes(out)

    def error(self) -> HttpStatusError:
        """The HttpStatusError for this (error) response, with a short extract of its body."""
        try:
            detail = error_detail(self.read_limited(ERROR_BODY_BYTES * 16)[:ERROR_BODY_BYTES])
        except NetworkError:
            detail = ""
        where = f" (redirected to {self.headers['location']})" if 300 <= self.status < 400 and "location" in self.headers else ""
        text = f"{self.label}: {self.status_text()}{where}" + (f": {detail}" if detail else "")
        return HttpStatusError(text, status=self.status, url=self.url)

    def raise_for_status(self) -> None:
        """Raise :meth:`error` unless the status is 2xx."""
        if not 200 <= self.status < 300:
            raise self.error()

    def json(self) -> Any:
        """The body as JSON (BadResponse unless the Content-Type is JSON and the body parses)."""
        media = self.content_type.split(";")[0].strip().lower()
        if media not in JSON_TYPES:
            raise BadResponse(f"{self.label}: expected application/dicom+json, got {self.content_type or 'no content type'!r}")
        raw = self.read_limited(MAX_JSON_BYTES)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadResponse(f"{self.label}: the JSON answer does not parse: {exc}") from None


def error_detail(raw: bytes) -> str:
    """A one-line explanation from an error body (Orthanc's JSON ``Message``/``Details``, else the text)."""
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("Message", "message", "Details", "error", "detail") if doc.get(k)]
        if parts:
            text = "; ".join(dict.fromkeys(parts))
    return " ".join(text.split())[:200]
