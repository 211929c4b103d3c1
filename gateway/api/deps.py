"""FastAPI dependencies: the gateway, the key store and the authenticated caller.

Access rules live here so that every route gets them by default:
:func:`install` puts :func:`authenticated` in front of every route of the
application (only the paths in :data:`PUBLIC_PATHS` answer without a key)
and documents the error answers on every operation. A route that needs the
admin role asks for ``AdminDep``; a route about one authority's data asks
for ``AuthorityDep`` (another authority's resource is a 404, never a 403
that would confirm it exists).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.openapi.utils import get_openapi

from gateway.api.auth import ApiKeys, Caller
from gateway.api.limits import RequestSizeLimit
from gateway.api.problems import ERROR_SCHEMA
from gateway.api.rate_limit import KeyRateLimiter
from gateway.context import Gateway
from gateway.errors import ForbiddenError, NotFoundError

PUBLIC_PATHS = frozenset(
    {
        "/healthz",  # liveness: says "ok", nothing else
        "/readyz",  # readiness of ledger and broker, no data
        "/metrics",  # aggregate counts for Prometheus; no identifiers, no message ids
        "/",  # the dashboard shell; its script fetches /v1/dashboard with a key
        "/dashboard/static/{name}",
        "/openapi.json",  # the interface's description: paths and schemas, no data
        "/docs",  # Swagger UI page (reads /openapi.json; each call it makes needs a key)
        "/redoc",  # ReDoc page, the same description read-only
        "/docs/static/{name}",  # their scripts and styles, served from here (no CDN)
    }
)
"""Route paths that answer without an API key; everything else needs one."""

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {}},
}
_ERRORS = {
    "400": "The request could not be read",
    "401": "Missing or unknown API key",
    "403": "The API key lacks the role this endpoint needs",
    "404": "Not found, or not the caller's to see",
    "413": "The request body is over the size limit",
    "422": "The request or its content was refused",
    "429": "The API key is over its request rate; retry after Retry-After seconds",
    "503": "The ledger or broker is unavailable; try again",
}


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def api_keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


def caller(
    request: Request,
    keys: Annotated[ApiKeys, Depends(api_keys)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    """The caller of an API key (``Authorization: Bearer <key>``), or 401."""
    found: Caller | None = getattr(request.state, "caller", None)
    if found is not None:
        return found
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    who = keys.authenticate(token)
    limiter: KeyRateLimiter = request.app.state.rate_limiter
    limiter.hit(who)  # 429 with Retry-After past the key's budget
    request.state.caller = who
    return who


def authenticated(
    request: Request,
    keys: Annotated[ApiKeys, Depends(api_keys)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Application-wide: a valid API key unless the route is public."""
    route = request.scope.get("route")
    if getattr(route, "path", None) in PUBLIC_PATHS:
        return
    caller(request, keys, authorization)


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.is_admin:
        raise ForbiddenError("this endpoint needs the admin role")
    return who


def acting_authority(
    who: Annotated[Caller, Depends(caller)],
    gw: Annotated[Gateway, Depends(gateway)],
    authority: Annotated[str | None, Query(pattern=r"^[0-9]{3}$")] = None,
) -> str:
    """The authority the caller acts for: its own, or any hosted one for an admin."""
    if who.is_admin:
        if authority is None:
            raise NotFoundError("an admin must name the authority (?authority=CODE)")
        chosen = authority
    else:
        if authority is not None and authority != who.authority:
            raise NotFoundError(f"authority {authority} not found")
        assert who.authority is not None
        chosen = who.authority
    if chosen not in gw.hosted:
        raise NotFoundError(f"authority {chosen} is not hosted by this gateway")
    return chosen


def own_authority(
    who: Annotated[Caller, Depends(caller)],
    authority: Annotated[str, Depends(acting_authority)],
) -> str:
    """The caller's own authority, for a read about one child: the admin role keeps
    the gateway running and is given no way to look children up (docs/operations.md),
    as ``/v1/messages?child=`` and the dashboard's browser already refused it."""
    if who.is_admin:
        raise ForbiddenError("looking a child up needs the authority's own key, not the admin role")
    return authority


def install(app: FastAPI) -> None:
    """Authentication on every route, request size limits, documented error answers.

    Call right after creating the app, before any router is included: the
    application's dependencies are copied into each route when it is added.
    """
    app.router.dependencies.append(Depends(authenticated))
    gw: Gateway = app.state.gateway
    app.add_middleware(
        RequestSizeLimit, path_limits={"/v1/messages": gw.settings.limits.max_upload_bytes}
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _document_errors(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_errors(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A per-authority or admin API key (cafgw api-keys issue)",
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, text in _ERRORS.items():
                error = {"$ref": ERROR_SCHEMA}
                found = responses.get(code)
                media = (found or {}).get("content", {}).get("application/json")
                if media is not None and "schema" in media:
                    # FastAPI's own answer (e.g. 422 request validation) or ours.
                    media["schema"] = {"anyOf": [media["schema"], error]}
                    continue
                responses[code] = {
                    "description": text,
                    "content": {"application/json": {"schema": error}},
                }
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"apiKey": []}]


GatewayDep = Annotated[Gateway, Depends(gateway)]
CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]
AuthorityDep = Annotated[str, Depends(acting_authority)]
OwnAuthorityDep = Annotated[str, Depends(own_authority)]
