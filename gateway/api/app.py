"""The FastAPI application: routers per resource, errors mapped once."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gateway.api import deps
from gateway.api.auth import ApiKeys
from gateway.api.problems import problem
from gateway.api.rate_limit import KeyRateLimiter
from gateway.api.routes import (
    admin_adapters,
    admin_authorities,
    admin_dead_letters,
    dashboard,
    docs,
    health,
    inbox,
    messages,
    ops,
)
from gateway.api.routes import cases as case_routes
from gateway.api.routes import children as children_routes
from gateway.api.routes import disclosures as disclosure_routes
from gateway.api.routes import disputes as dispute_routes
from gateway.api.routes import issues_log as issues_log_routes
from gateway.api.routes import lifecycle as lifecycle_routes
from gateway.api.routes import subject_access as subject_access_routes
from gateway.context import Gateway
from gateway.errors import CafgwError


def create_app(gw: Gateway, api_keys: ApiKeys) -> FastAPI:
    app = FastAPI(
        title="cafgw",
        version="1.0",
        description="Cross-border CAF gateway: submit, track and receive signed CAF messages.",
        # FastAPI's pages load their scripts from a CDN: ours serve them from here.
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = gw
    app.state.api_keys = api_keys
    app.state.rate_limiter = KeyRateLimiter(gw.settings.api.rate_per_minute)
    deps.install(app)  # before the routers: authentication, size limits, error docs

    @app.exception_handler(CafgwError)
    async def _cafgw_error(_request: Request, exc: CafgwError) -> JSONResponse:
        status_code, body, headers = problem(exc)
        return JSONResponse(body, status_code=status_code, headers=headers)

    for router in (
        health.router,
        docs.router,
        messages.router,
        inbox.router,
        ops.router,
        dashboard.router,
        dispute_routes.router,
        admin_adapters.router,
        admin_authorities.router,
        admin_dead_letters.router,
        children_routes.router,
        disclosure_routes.router,
        case_routes.router,
        issues_log_routes.router,
        lifecycle_routes.router,
        subject_access_routes.router,
    ):
        app.include_router(router)
    return app
