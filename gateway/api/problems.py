"""Errors as HTTP answers, in one place: the status, the JSON body, the headers."""

from __future__ import annotations

from typing import Any

from gateway.errors import (
    AccessDeniedError,
    CafgwError,
    ConflictError,
    ForbiddenError,
    InputLimitError,
    MalformedInputError,
    NotFoundError,
    PolicyRefusal,
    RateLimitedError,
    RecordError,
    SchemaError,
    UnknownAdapterError,
    UnsafeXmlError,
)

# The API's one error shape in the OpenAPI document (``gateway.api.deps``).
ERROR_SCHEMA = "#/components/schemas/Error"


def conflict(description: str) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses`` for a 409 it may answer, saying when."""
    return {
        409: {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}},
        }
    }


STATUS_OF: list[tuple[type[CafgwError], int]] = [
    (RateLimitedError, 429),
    (ForbiddenError, 403),
    (ConflictError, 409),
    (AccessDeniedError, 401),
    (NotFoundError, 404),
    (PolicyRefusal, 422),
    (SchemaError, 422),
    (RecordError, 422),
    (UnsafeXmlError, 400),
    (InputLimitError, 413),
    (MalformedInputError, 400),
    (UnknownAdapterError, 400),
]


def status_of(exc: CafgwError) -> int:
    for kind, code in STATUS_OF:
        if isinstance(exc, kind):
            return code
    return 503


def problem(exc: CafgwError) -> tuple[int, dict[str, object], dict[str, str] | None]:
    """The HTTP status, body and headers that answer ``exc``."""
    body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, PolicyRefusal):
        body["rule"] = exc.rule
    if isinstance(exc, InputLimitError):
        body["limit"] = exc.limit
        body["maximum"] = exc.maximum
    headers: dict[str, str] | None = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, AccessDeniedError) and not isinstance(exc, ForbiddenError):
        headers = {"WWW-Authenticate": "Bearer"}
    return status_of(exc), body, headers
