"""/docs and /redoc: the API's reference pages, served with their scripts from this gateway.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so offline (as a
gateway on an authority's network often is) they were blank, and every
visitor's browser fetched code from a third party (issue 13, item 10). The
scripts and styles come from the pinned ``fastapi-offline`` package (its
``static`` folder: Swagger UI and ReDoc as released) and are served under
``/docs/static/``. The pages and ``/openapi.json`` are public: they describe
the interface and hold no data (``docs/security.md``, "Public routes").
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from gateway.errors import NotFoundError

router = APIRouter(include_in_schema=False)

STATIC = Path(str(files("fastapi_offline") / "static"))
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_PREFIX = "/docs/static"
_TITLE = "cafgw API"
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        swagger_js_url=f"{_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{_PREFIX}/favicon.png",
    )
    page.headers.update(_HEADERS)
    return page


@router.get("/redoc")
def redoc() -> HTMLResponse:
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        redoc_js_url=f"{_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{_PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    page.headers.update(_HEADERS)
    return page


@router.get(_PREFIX + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFoundError(f"no documentation asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=_HEADERS)
