"""The review workstation's HTTP application (Starlette; SPEC MATCH-7). Transport only.

Every request needs the access token, as the ``token`` query parameter (the URL printed by
``openigrt review``) or the ``openigrt_review`` cookie that the first request with the token
sets (HttpOnly, SameSite=Strict); anything else gets **403**. The business logic is in
:class:`openigrt.workflow.review_session.ReviewSession`; this module only moves its answers:

=========================================  ==============================================
``GET  /``                                 the page (``static/index.html``)
``GET  /static/…``                         its script and style sheet (no build step)
``GET  /api/session``                      every match: decision, what was matched, metric,
                                           couch correction and tolerances (JSON)
``POST /api/matches/{id}/render``          ``{"adjustment": {axis: value}, "slices": {plane: n}}``
                                           → the re-rendered views (binary, below)
``POST /api/matches/{id}/decision``        ``{"decision": "accepted"|"rejected", "adjustment": …,
                                           "matrix": the 4×4 the page showed}`` → 200, 409 if the
                                           match was already decided, 400 on bad input
=========================================  ==============================================

Render answer: ``uint32`` little-endian header length ``n``, ``n`` bytes of UTF-8 JSON (the
header: matrix, correction table, views with their overlays and the byte offset of each layer),
padding to a multiple of 4, then the float32 layers (row-major, little-endian), so the page
draws typed arrays in a canvas.
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openigrt.errors import OpenIGRTError
from openigrt.workflow.review_adjust import Adjustment
from openigrt.workflow.review_decide import AlreadyDecided
from openigrt.workflow.review_session import Rendering, ReviewSession

LOG = logging.getLogger("openigrt.web")
TOKEN_COOKIE = "openigrt_review"
TOKEN_PARAM = "token"
MAX_BODY_BYTES = 64 * 1024
FORBIDDEN_TEXT = "403 Forbidden: this review page needs the access token printed by `openigrt review`."


def _static_dir() -> str:
    return str(resources.files("openigrt.web") / "static")


class TokenGuard:
    """ASGI middleware: 403 without the token; sets the token cookie on a request that brought it."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get(TOKEN_PARAM)
        cookie = request.cookies.get(TOKEN_COOKIE)
        by_param = given is not None and secrets.compare_digest(given, self.token)
        if not (by_param or (cookie is not None and secrets.compare_digest(cookie, self.token))):
            await Response(FORBIDDEN_TEXT, status_code=403, media_type="text/plain")(scope, receive, send)
            return
        if not by_param:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie_value = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie_value.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def pack_rendering(rendering: Rendering) -> bytes:
    """The binary render answer (module docstring)."""
    header = dict(rendering.header)
    chunks: list[bytes] = []
    offset = 0
    views = []
    for v in rendering.views:
        layers = []
        for name, array in (("reference", v.reference), ("acquired", v.acquired)):
            data = np.ascontiguousarray(array, dtype="<f4").tobytes()
            layers.append({"name": name, "offset": offset, "length": len(data) // 4})
            chunks.append(data)
            offset += len(data)
        rows, cols = v.reference.shape
        views.append({"key": v.key, "title": v.title, "rows": rows, "cols": cols, "unit": v.unit,
                      "pixel_mm": list(v.pixel_mm), "overlays": v.overlays, "layers": layers,
                      "slice_index": v.slice_index, "slice_count": v.slice_count,
                      "slice_offset_mm": v.slice_offset_mm})
    header["views"] = views
    text = json.dumps(header, default=float).encode("utf-8")
    pad = (-(4 + len(text))) % 4
    return struct.pack("<I", len(text)) + text + b" " * pad + b"".join(chunks)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise OpenIGRTError(f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise OpenIGRTError("request body is not JSON") from None
    if not isinstance(doc, dict):
        raise OpenIGRTError("request body must be a JSON object")
    return doc


def _slices(doc: dict[str, Any]) -> dict[str, int]:
    raw = doc.get("slices") or {}
    if not isinstance(raw, dict):
        raise OpenIGRTError("slices must be an object {plane: index}")
    try:
        return {str(k): int(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise OpenIGRTError("slice indices must be integers") from None


def create_app(review: ReviewSession, *, token: str, on_decision: Callable[[], None] | None = None) -> ASGIApp:
    """The application serving *review*; *on_decision* is called after each stored decision."""
    import anyio.to_thread

    notify = on_decision or (lambda: None)

    def error_page(message: str, status: int) -> HTMLResponse:
        import html

        return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><title>OpenIGRT review: error</title>"
                            "</head><body><h1>OpenIGRT review</h1>"
                            f"<p id='error'>{html.escape(message)}</p></body></html>", status_code=status)

    async def index(request: Request) -> Response:
        try:
            await anyio.to_thread.run_sync(review.state)
        except OpenIGRTError as exc:
            return error_page(str(exc), 500)
        page = (resources.files("openigrt.web") / "static" / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def session(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(review.describe), headers={"Cache-Control": "no-store"})

    async def render(request: Request) -> Response:
        doc = await _json_body(request)
        adjustment = Adjustment.parse(doc.get("adjustment"))
        slices = _slices(doc)
        match_id = request.path_params["match_id"]
        rendering = await anyio.to_thread.run_sync(lambda: review.render(match_id, adjustment, slices))
        return Response(pack_rendering(rendering), media_type="application/octet-stream",
                        headers={"Cache-Control": "no-store"})

    async def decision(request: Request) -> Response:
        doc = await _json_body(request)
        adjustment = Adjustment.parse(doc.get("adjustment"))
        match_id = request.path_params["match_id"]
        who = f"browser at {request.client.host if request.client else 'unknown host'}"

        def run() -> dict[str, Any]:
            review.decide(match_id, str(doc.get("decision", "")), adjustment, shown_matrix=doc.get("matrix"),
                          decided_by=who)
            return review.describe()

        try:
            described = await anyio.to_thread.run_sync(run)
        except AlreadyDecided as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        notify()
        return JSONResponse(described)

    def guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """One clear answer for every failure: 400 (JSON) / error page for ours, 500 for a bug; no traceback."""

        async def run(request: Request) -> Response:
            api = request.url.path.startswith("/api/")
            try:
                return await endpoint(request)
            except OpenIGRTError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400) if api else error_page(str(exc), 500)
            except Exception as exc:  # a bug: one log line here, the traceback at debug level
                LOG.error("review page: internal error on %s: %s: %s", request.url.path, type(exc).__name__, exc)
                LOG.debug("traceback", exc_info=True)
                message = f"internal error ({type(exc).__name__}); see the openigrt log"
                return JSONResponse({"error": message}, status_code=500) if api else error_page(message, 500)

        return run

    app = Starlette(
        routes=[Route("/", guarded(index)), Route("/api/session", guarded(session)),
                Route("/api/matches/{match_id}/render", guarded(render), methods=["POST"]),
                Route("/api/matches/{match_id}/decision", guarded(decision), methods=["POST"]),
                Mount("/static", StaticFiles(directory=_static_dir()), name="static")])
    return TokenGuard(app, token=token)
