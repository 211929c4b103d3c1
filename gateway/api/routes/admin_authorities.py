"""/v1/admin/authorities: reload the region directory (authorities.yaml) without a restart.

Admin role only. The new file is checked in full first (the directory, the
settings that name its authorities, the adapters and pinned certificates);
a fault is refused with 422 naming the file and key, and the directory in
force does not change. Every reload and refusal is audited with the caller.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from gateway.api.deps import AdminDep, GatewayDep
from gateway.errors import ConfigError
from gateway.services import directory_admin

router = APIRouter(prefix="/v1/admin/authorities", tags=["admin"])


@router.get("")
def listing(gw: GatewayDep, _admin: AdminDep) -> list[dict[str, Any]]:
    """The authorities in force: code, name, adapter and connector kind."""
    return [
        {
            "code": a.code,
            "name": a.name,
            "adapter": a.adapter,
            "connector": a.connector.kind,
            "hosted": a.code in gw.hosted,
        }
        for a in gw.settings.directory.authorities.values()
    ]


@router.post("/reload", response_model=None)
def reload_directory(
    gw: GatewayDep,
    who: AdminDep,
    requested_by: Annotated[
        str | None, Query(max_length=64, pattern=r"^[\w .@'-]+$", description="the person asking")
    ] = None,
) -> dict[str, Any] | JSONResponse:
    """Read authorities.yaml again; if anything in it is invalid, nothing changes."""
    actor = f"{requested_by} ({who.actor})" if requested_by else who.actor
    try:
        change = directory_admin.reload(gw, actor[:128])
    except ConfigError as exc:
        return JSONResponse(
            {
                "error": type(exc).__name__,
                "detail": str(exc),
                "reloaded": False,
                "note": "the directory in force is unchanged",
            },
            status_code=422,
        )
    return {"reloaded": True, **asdict(change)}
