"""The dashboard page at ``/``, its assets, and the JSON it polls (``/v1/dashboard``).

The page itself holds no data: the script asks for an API key, keeps it in
sessionStorage and sends it as a Bearer header, so the dashboard obeys the
same rules as the API (an authority sees only its own data; admin sees all
and may replay dead letters).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from gateway.api.deps import AdminDep, CallerDep, GatewayDep
from gateway.api.routes.ops import OpsDep
from gateway.dashboard import browser
from gateway.dashboard.view import DEFAULT_RANGE_S, RANGES_S, DashboardView, build_view
from gateway.errors import NotFoundError
from gateway.ledger.status import Direction, Status
from gateway.model import MessageType
from gateway.services import dead_letters

HERE = Path(__file__).resolve().parents[2] / "dashboard"
ASSETS = {
    "dashboard.js": "text/javascript",
    "charts.js": "text/javascript",
    "browser.js": "text/javascript",
    "dashboard.css": "text/css",
    "recalls.js": "text/javascript",  # the recall outcomes piece (docs/data-protection.md)
}
# The page loads only its own script and style and talks only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)

router = APIRouter(tags=["dashboard"])


class ReplayIn(BaseModel):
    authority: str = Field(pattern=r"^[0-9]{3}$")
    message_id: str = Field(min_length=1, max_length=64)
    digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ReplayOut(BaseModel):
    authority: str
    message_id: str
    status: str


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The dashboard shell; its script fetches the data."""
    html = _templates.get_template("dashboard.html").render(
        statuses=[s.value for s in Status],
        message_types=[t.value for t in MessageType],
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFoundError(f"no dashboard asset {name!r}")
    return FileResponse(HERE / "static" / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/v1/dashboard", response_model=DashboardView)
def dashboard(
    gw: GatewayDep,
    who: CallerDep,
    ops: OpsDep,
    range_s: Annotated[
        int, Query(alias="range", description=f"chart range in seconds: {sorted(RANGES_S)}")
    ] = DEFAULT_RANGE_S,
) -> DashboardView:
    """Delivery status for the caller's authorities (every hosted one for an admin)."""
    if range_s not in RANGES_S:
        raise NotFoundError(f"no chart range {range_s}; ranges are {sorted(RANGES_S)}")
    return build_view(gw, who, ops.probe, range_s)


Code = Annotated[str | None, Query(pattern=r"^[0-9]{3}$")]
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/v1/dashboard/messages", response_model=browser.Found)
def browse(
    gw: GatewayDep,
    who: CallerDep,
    authority: Code = None,
    message_id: Text = None,
    case_ref: Text = None,
    child: Annotated[
        str | None,
        Query(max_length=200, description="UPN, NHS number, child key or case reference"),
    ] = None,
    status: Annotated[Status | None, Query()] = None,
    direction: Annotated[Direction | None, Query()] = None,
    message_type: Annotated[str | None, Query(max_length=32)] = None,
    counterparty: Code = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    receipts: bool = False,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> browser.Found:
    """Search the caller's messages (an admin's: every hosted authority's), newest first.

    ``child`` needs an authority's own key (403 for the admin role).
    """
    return browser.find(
        gw,
        who,
        browser.Query(
            authority=authority,
            message_id=message_id,
            case_ref=case_ref,
            child=child,
            status=status,
            direction=direction,
            message_type=message_type,
            counterparty=counterparty,
            created_from=created_from,
            created_to=created_to,
            include_receipts=receipts,
            offset=offset,
        ),
    )


@router.get("/v1/dashboard/messages/{message_id}", response_model=browser.Detail)
def message_detail(message_id: str, gw: GatewayDep, who: CallerDep) -> browser.Detail:
    """One message: every copy the caller may see, its status history and audit entries."""
    return browser.detail(gw, who, message_id)


@router.post("/v1/dashboard/replay", response_model=ReplayOut)
def replay(body: ReplayIn, gw: GatewayDep, who: AdminDep) -> ReplayOut:
    """Replay a dead-lettered outbound message (admin only); it is published again."""
    if body.authority not in gw.hosted:
        raise NotFoundError(f"authority {body.authority} is not hosted by this gateway")
    done = dead_letters.replay(
        gw, body.authority, body.message_id, actor=who.actor, digest=body.digest
    )
    return ReplayOut(authority=done.authority, message_id=done.message_id, status=done.status.value)
