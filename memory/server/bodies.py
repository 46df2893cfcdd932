"""Request bodies: a size limit, strict JSON, models that refuse unknown fields and wrong types.

:class:`BodyLimit` answers 413 before anything is parsed: at once when the declared
Content-Length is over the limit, else as soon as the bytes read pass it (a chunked body).
Starlette's own limit answers in plain text; this one answers in the server's JSON shape.

Python's json module takes NaN, Infinity and numbers that overflow a float (1e999); no store and
no JSON client can, so :class:`JSONBodyRoute` refuses them as malformed JSON (400) before a model
sees them. :class:`Strict` models refuse a value of the wrong type rather than convert it ("5" is
not a step number), and name any field they do not know (422).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.datastructures import Default, DefaultPlaceholder
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory.server.errors import error_response


class BodyLimit:
    """ASGI middleware: request bodies of at most ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self) -> str:
        return f"the request body is larger than the server takes ({self.max_bytes} bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "ContentTooLarge", self._refusal())(scope, receive, send)
            return
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:  # the route's body read fails: answered by errors.py's handler
                    raise HTTPException(413, self._refusal())
            return message

        await self.app(scope, counted, send)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"the number {text} is out of range", text, 0)
    return value


def _not_json(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


class JSONBodyRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_constant=_not_json, parse_float=_finite)
        return self._json


_INFERRED = Default(None)  # FastAPI's own marker: no response_model given, infer it from the return type


class JSONBodyRoute(APIRoute):
    """A route whose body is parsed by :class:`JSONBodyRequest`, and whose answer goes out as its
    function returned it: the return annotation documents the answer in the OpenAPI document but is
    not validated again, which for a plain ``def`` route would cost a second hop to the thread pool
    (0.1-0.4 ms a request; the routes build their answers from the engine's own): a plain route encodes
    its answer in its own thread."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, response_model: Any = _INFERRED,
                 status_code: int | None = None, responses: dict[int | str, dict[str, Any]] | None = None,
                 **options: Any) -> None:
        if isinstance(response_model, DefaultPlaceholder):
            returned = get_typed_return_annotation(endpoint)
            if returned is not None:
                responses = {status_code or 200: {"model": returned}, **(responses or {})}
            response_model = None
            if not inspect.iscoroutinefunction(endpoint):
                endpoint = _encoded(endpoint, status_code or 200)
        super().__init__(path, endpoint, response_model=response_model, status_code=status_code, responses=responses,
                         **options)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(JSONBodyRequest(request.scope, request.receive))

        return handle


def _encoded(endpoint: Callable[..., Any], status_code: int) -> Callable[..., Any]:
    """``endpoint`` answering JSON it encodes itself, in the thread it runs in (pydantic's encoder, as a
    response model's would: FastAPI's own encoder, on the event loop, took 4 ms for 100 memories)."""

    @functools.wraps(endpoint)
    def encoded(*args: Any, **kwargs: Any) -> Any:
        answer = endpoint(*args, **kwargs)
        if isinstance(answer, Response):
            return answer
        return Response(to_json(answer), status_code=status_code, media_type="application/json")

    return encoded
