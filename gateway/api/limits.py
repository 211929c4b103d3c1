"""Request size limits, enforced before a route reads the body.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is
answered 413 at once; a body streamed without one is counted as it arrives
and cut off with 413 as soon as it passes the limit, so a caller cannot make
the gateway buffer more than the limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BYTES = 1024 * 1024
"""JSON requests (disputes, acknowledgements, admin actions)."""
UPLOAD_MAX_BYTES = 200 * 1024 * 1024
"""Local exports submitted to an adapter (``POST /v1/messages?adapter=...``); the app
uses ``limits.max_upload_bytes`` from the settings."""
PATH_LIMITS: Mapping[str, int] = {"/v1/messages": UPLOAD_MAX_BYTES}


class _TooLarge(HTTPException):
    # An HTTPException, so that code reading the body inside the app (which
    # re-raises HTTPExceptions but turns other errors into 400) answers 413.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes")
        self.limit = limit


class RequestSizeLimit:
    """Refuse request bodies over the limit of their path with 413."""

    def __init__(
        self,
        app: ASGIApp,
        default_max_bytes: int = DEFAULT_MAX_BYTES,
        path_limits: Mapping[str, int] = PATH_LIMITS,
    ) -> None:
        self.app = app
        self.default_max_bytes = default_max_bytes
        self.path_limits = dict(path_limits)

    def limit_for(self, path: str) -> int:
        return self.path_limits.get(path.rstrip("/") or "/", self.default_max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _refuse(send, limit)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": "RequestTooLarge",
            "detail": f"request body over the limit of {limit} bytes",
            "maximum": limit,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
