"""FastAPI dependencies: the gateway, the key store and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from gateway.api.auth import ApiKeys, Caller
from gateway.context import Gateway
from gateway.errors import AccessDeniedError, NotFoundError


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def api_keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


def caller(
    keys: Annotated[ApiKeys, Depends(api_keys)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller:
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    return keys.authenticate(token)


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not who.is_admin:
        raise AccessDeniedError("this endpoint needs the admin role")
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


GatewayDep = Annotated[Gateway, Depends(gateway)]
CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]
AuthorityDep = Annotated[str, Depends(acting_authority)]
