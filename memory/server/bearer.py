"""The ASGI middleware that names the caller of every HTTP request, REST and MCP alike.

It reads ``Authorization: Bearer <token>``, answers 401 (JSON, with ``WWW-Authenticate``) when the
token is missing or unknown, and otherwise runs the request with :data:`auth.current_principal` set,
so a route finds its caller (``auth.caller()``) without being handed it. Paths in ``public`` (the
health check, the explorer's static page, the OpenAPI document) pass without a token, with no caller
named unless a known token came.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from memory.server.auth import TokenTable, current_principal

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BearerAuth:
    def __init__(self, app: ASGIApp, tokens: TokenTable, public: Collection[str] = ()) -> None:
        self.app = app
        self.tokens = tokens
        self.public = tuple(public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        header = _header(scope, b"authorization")
        principal = self.tokens.from_header(header)
        if principal is None and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.public):
            await _unauthorized(send, "a bearer token is required" if header is None else "the bearer token is not known")
            return
        reset = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(reset)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _unauthorized(send: Send, message: str) -> None:
    body = json.dumps({"error": "Unauthorized", "message": message}).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer realm="tiermem"')]})
    await send({"type": "http.response.body", "body": body})
