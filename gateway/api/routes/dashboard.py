"""The dashboard page at ``/``, its assets, and the JSON it polls (``/v1/dashboard``).

The page itself holds no data: the script asks for an API key, keeps it in
sessionStorage and sends it as a Bearer header, so the dashboard obeys the
same rules as the API (an authority sees only its own data; admin sees all
and may replay dead letters).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from gateway.api.deps import AdminDep, CallerDep, GatewayDep
from gateway.api.routes.ops import OpsDep
from gateway.dashboard.view import DashboardView, build_view
from gateway.errors import NotFoundError
from gateway.services import dead_letters

HERE = Path(__file__).resolve().parents[2] / "dashboard"
ASSETS = {
    "dashboard.js": "text/javascript",
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


class ReplayOut(BaseModel):
    authority: str
    message_id: str
    status: str


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The dashboard shell; its script fetches the data."""
    html = _templates.get_template("dashboard.html").render(
        panels=("attention", "awaiting", "disputes", "recent")
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFoundError(f"no dashboard asset {name!r}")
    return FileResponse(HERE / "static" / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.get("/v1/dashboard", response_model=DashboardView)
def dashboard(gw: GatewayDep, who: CallerDep, ops: OpsDep) -> DashboardView:
    """Delivery status for the caller's authorities (every hosted one for an admin)."""
    return build_view(gw, who, ops.probe)


@router.post("/v1/dashboard/replay", response_model=ReplayOut)
def replay(body: ReplayIn, gw: GatewayDep, who: AdminDep) -> ReplayOut:
    """Replay a dead-lettered outbound message (admin only); it is published again."""
    if body.authority not in gw.hosted:
        raise NotFoundError(f"authority {body.authority} is not hosted by this gateway")
    done = dead_letters.replay(
        gw, body.authority, body.message_id, actor=f"{who.role} via dashboard"
    )
    return ReplayOut(authority=done.authority, message_id=done.message_id, status=done.status.value)
