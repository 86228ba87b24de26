"""Serving the review workstation (uvicorn in a thread) and the fraction's ``--decision web``.

* :func:`check_bind` — loopback only unless remote access is explicitly allowed.
* :class:`ReviewServer` — binds the socket itself (port 0 = any free port, known before the URL
  is printed), runs uvicorn in a daemon thread, stops within a bounded time. Opens no browser.
* :func:`web_decider` — the fraction's decision callback for ``--decision web``: on the first
  proposed match it serves the session's review, announces the URL and waits (bounded by
  ``review.decision_timeout_s``) until every match is decided in the browser; the decisions are
  already in the session state (:mod:`openigrt.workflow.review_decide`), so the fraction just
  re-reads it and goes on to store. Ctrl-C stops the server and leaves the session resumable.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openigrt.config import Settings
from openigrt.errors import ConfigError, WorkflowError
from openigrt.workflow.fraction import Decision
from openigrt.workflow.review_session import ReviewSession

LOG = logging.getLogger("openigrt.web")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.25
#: After the last decision, keep serving this long so the browser gets its answers.
LINGER_S = 1.0


def is_loopback(host: str) -> bool:
    """True when every address *host* resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, *, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless *allow_remote* (raises ConfigError, one line)."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError("--bind", f"{host} is not a loopback address; the review page would be reachable from "
                                    "other machines: give --allow-remote (or review.allow_remote = true) to mean it")


class ReviewServer:
    """The review page of *review* on ``http://host:port`` (a context manager; see the module docstring)."""

    def __init__(self, review: ReviewSession, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 on_decision: Callable[[], None] | None = None) -> None:
        self.review = review
        self.host = host
        self.token = token or secrets.token_urlsafe(32)
        self.requested_port = port
        self.port = port
        self.on_decision = on_decision
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> ReviewServer:
        import uvicorn

        from openigrt.web.app import create_app

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host.strip("[]"), self.requested_port))
        except OSError as exc:
            sock.close()
            raise ConfigError("--port", f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror}") from None
        sock.listen(64)
        self.port = int(sock.getsockname()[1])
        app = create_app(self.review, token=self.token, on_decision=self.on_decision)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="openigrt-review")
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise WorkflowError(f"the review server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_decided(review: ReviewSession, *, timeout_s: float) -> bool:
    """Poll the session state until no match is proposed; False when *timeout_s* passed first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if review.all_decided():
            return True
        time.sleep(POLL_S)
    return review.all_decided()


def web_decider(session_dir: Path, settings: Settings, *, announce: Callable[[str], None],
                host: str | None = None, port: int | None = None, allow_remote: bool | None = None,
                timeout_s: float | None = None) -> Callable[[Any, Any], Decision]:
    """The fraction's decision callback for ``--decision web`` (module docstring)."""
    host = host or settings.review.bind_address
    port = settings.review.port if port is None else port
    timeout_s = settings.review.decision_timeout_s if timeout_s is None else timeout_s
    check_bind(host, allow_remote=settings.review.allow_remote if allow_remote is None else allow_remote)

    def decide(outcome: Any, record: Any) -> Decision:
        review = ReviewSession(session_dir, settings)
        if not review.all_decided():
            with ReviewServer(review, host=host, port=port) as server:
                announce(server.url)
                decided = wait_until_decided(review, timeout_s=timeout_s)
                time.sleep(LINGER_S)
            if not decided:
                raise WorkflowError(f"not every match was decided in the browser within {timeout_s:.0f} s; "
                                    f"nothing stored, the session in {session_dir} stays resumable")
        return Decision(recorded=True)

    return decide
