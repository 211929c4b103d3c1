"""The FastAPI application: routers per resource, errors mapped once."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.api.auth import ApiKeys
from gateway.api.routes import health, inbox, messages
from gateway.context import Gateway
from gateway.errors import (
    AccessDeniedError,
    CafgwError,
    MalformedInputError,
    NotFoundError,
    PolicyRefusal,
    RecordError,
    SchemaError,
    UnknownAdapterError,
    UnsafeXmlError,
)

STATUS_OF: list[tuple[type[CafgwError], int]] = [
    (AccessDeniedError, 401),
    (NotFoundError, 404),
    (PolicyRefusal, 422),
    (SchemaError, 422),
    (RecordError, 422),
    (UnsafeXmlError, 400),
    (MalformedInputError, 400),
    (UnknownAdapterError, 400),
]


def _status(exc: CafgwError) -> int:
    for kind, code in STATUS_OF:
        if isinstance(exc, kind):
            return code
    return 503


def create_app(gw: Gateway, api_keys: ApiKeys) -> FastAPI:
    app = FastAPI(
        title="cafgw",
        version="1.0",
        description="Cross-border CAF gateway: submit, track and receive signed CAF messages.",
    )
    app.state.gateway = gw
    app.state.api_keys = api_keys

    @app.exception_handler(CafgwError)
    async def _cafgw_error(_request: Request, exc: CafgwError) -> JSONResponse:
        body: dict[str, object] = {"error": type(exc).__name__, "detail": str(exc)}
        if isinstance(exc, PolicyRefusal):
            body["rule"] = exc.rule
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AccessDeniedError) else None
        return JSONResponse(body, status_code=_status(exc), headers=headers)

    for router in (health.router, messages.router, inbox.router):
        app.include_router(router)
    return app
