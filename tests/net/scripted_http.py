"""A scripted DICOMweb server on loopback: each request is answered by a test-defined route.

Used to drive the DICOMweb client into every failure the real Orthanc will not produce on demand
(500, 404, timeouts, truncated or mislabelled bodies, STOW-RS responses with failures)::

    with ScriptedHttp() as server:
        server.route("GET", "/studies/1/series/2/instances/3", Reply(500, body=b"boom"))
        url = server.base_url            # http://127.0.0.1:PORT/dicom-web

A route is a :class:`Reply` or a function ``(Request) -> Reply``; an unrouted request gets 404.
Every request is recorded (``server.requests``). Threads are daemons and every wait is bounded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = "/dicom-web"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below ROOT, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Reply:
    """An answer. *declared_length* (when set) is sent as Content-Length although only *body* follows
    (the connection is then closed: a truncated body); *delay_s* waits before answering."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    declared_length: int | None = None
    delay_s: float = 0.0
    trickle_s: float = 0.0  # send the body 64 bytes at a time, this long apart


def json_reply(doc: Any, status: int = 200, content_type: str = "application/dicom+json") -> Reply:
    return Reply(status, {"Content-Type": content_type}, json.dumps(doc).encode())


def multipart_reply(parts: list[bytes], *, boundary: str = "scripted-boundary-1", part_type: str = "application/dicom",
                    close: bool = True, declared_length: int | None = None) -> Reply:
    body = b"".join(f"--{boundary}\r\nContent-Type: {part_type}\r\nContent-Length: {len(p)}\r\n\r\n".encode() + p
                    + b"\r\n" for p in parts)
    if close:
        body += f"--{boundary}--\r\n".encode()
    return Reply(200, {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'}, body,
                 declared_length=declared_length)


Route = Reply | Callable[[Request], Reply]


class ScriptedHttp:
    """The server; use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                path = parts.path[len(ROOT):] if parts.path.startswith(ROOT) else parts.path
                req = Request(self.command, path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(req)
                    route = server.routes.get((self.command, path))
                reply = route(req) if callable(route) else route or Reply(404, {"Content-Type": "text/plain"},
                                                                            b"no such resource")
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(reply.declared_length if reply.declared_length is not None
                                                           else len(reply.body)))
                    if reply.declared_length is not None:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    step = 64 if reply.trickle_s else max(1, len(reply.body))
                    for i in range(0, len(reply.body), step):
                        self.wfile.write(reply.body[i:i + step])
                        self.wfile.flush()
                        time.sleep(reply.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if reply.declared_length is not None:
                    self.close_connection = True

            do_GET = do_POST = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}{ROOT}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def remote(self) -> str:
        """The ``--remote`` value."""
        return "dicomweb+" + self.base_url

    def route(self, method: str, path: str, reply: Route) -> None:
        with self._lock:
            self.routes[(method, path)] = reply

    def seen(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def __enter__(self) -> ScriptedHttp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
