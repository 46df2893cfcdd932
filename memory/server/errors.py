"""Every error the HTTP server answers, as one JSON shape: ``{"error": <name>, "message": <text>}``.

tiermem's exception tree is mapped to status codes in one place (:func:`status_of`):

    UnauthenticatedError                                        401
    AccessDeniedError (OutOfBoundsError too)                    403
    MemoryNotFoundError, NotFoundError                          404
    DuplicateTaskError, TaskOwnershipError, ConflictError       409
    InvalidInputError                                           400
    MissingExtraError (the feature's extra is not installed)    501
    TierUnavailableError, OutcomeUnknownError,                  503
    StoreIncompleteError, or any error a store that did not
    answer caused
    any other MemoryAPIException (the engine failed, or the      500
    server's configuration did: MemoryConfigException)

``error`` is the exception's class name. The HTTP layer's own refusals use the status's name: a body
that is not JSON is 400 ``MalformedJSON``, one that does not fit the request's schema is 422
``ValidationError``, a body over the size limit 413 ``ContentTooLarge``, an unknown path 404
``NotFound``, a missing or unknown token 401 ``Unauthorized`` (memory/server/bearer.py).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from memory.server.auth import UnauthenticatedError
from memory.team.errors import AccessDeniedError, DuplicateTaskError, NotFoundError, TaskOwnershipError
from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryNotFoundError,
    MemoryStoreException,
    MissingExtraError,
    OutcomeUnknownError,
    StoreIncompleteError,
    TierUnavailableError,
)

log = logging.getLogger("memory.server")


class ConflictError(MemoryStoreException):
    """The request cannot be done in the state the data is in (a promoted pattern staged again)."""


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: str
    message: str


# first match wins: subclasses before the classes they derive from
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (UnauthenticatedError, 401),
    (AccessDeniedError, 403),
    (MemoryNotFoundError, 404),
    (NotFoundError, 404),
    (DuplicateTaskError, 409),
    (TaskOwnershipError, 409),
    (ConflictError, 409),
    (MissingExtraError, 501),
    (InvalidInputError, 400),
    (TierUnavailableError, 503),
    (OutcomeUnknownError, 503),
    (StoreIncompleteError, 503),
)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def status_of(error: MemoryAPIException) -> int:
    """The HTTP status for one of tiermem's errors (the table in the module docstring)."""
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    if any(isinstance(cause, TierUnavailableError) for cause in _causes(error)):
        return 503  # a read or write error the engine raised because a store did not answer
    return 500


def error_response(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _message(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


async def _engine_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, MemoryAPIException)
    status = status_of(error)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, _message(error), exc_info=error)
    headers = {"WWW-Authenticate": 'Bearer realm="tiermem"'} if status == 401 else None
    return error_response(status, type(error).__name__, _message(error), headers)


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location) or "request"


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = list(error.errors())
    malformed = [p for p in problems if p.get("type") == "json_invalid"]
    if malformed:
        reason = (malformed[0].get("ctx") or {}).get("error", "JSON decode error")
        return error_response(400, "MalformedJSON", f"the request body is not JSON: {reason}")
    shown = [f"{_where(tuple(p.get('loc', ())))}: {p.get('msg', 'invalid')}" for p in problems[:10]]
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return error_response(422, "ValidationError", "; ".join(shown) + more)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    try:
        phrase = http.HTTPStatus(error.status_code).phrase
    except ValueError:
        phrase = "Error"
    name = "ContentTooLarge" if error.status_code == 413 else "".join(  # 413's name since RFC 9110
        word.capitalize() for word in phrase.replace("-", " ").split())
    message = str(error.detail) if error.detail else phrase
    return error_response(error.status_code, name, message, dict(error.headers) if error.headers else None)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=error)
    return error_response(500, "InternalServerError", "the server failed unexpectedly; its log says why")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one JSON shape."""
    app.add_exception_handler(MemoryAPIException, _engine_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


_DESCRIPTIONS = {
    400: "bad input: the message names it",
    401: "no bearer token, or an unknown one",
    403: "the token's tier is too low, or it is bound to another agent or team",
    404: "no such agent, memory, task, result, session or pattern",
    409: "the data is not in a state that allows it (a task id taken, a task held by another agent)",
    413: "the request body is over the size limit",
    422: "the request does not fit its schema",
    503: "a store (Redis, SQL) did not answer",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a group of routes, for the OpenAPI document."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}
