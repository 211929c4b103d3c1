"""GET /v1/children/{ref}/report: the subject-access report, as JSON, HTML or PDF."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gateway.api.deps import CallerDep, GatewayDep, OwnAuthorityDep
from gateway.subject_access import html, report

router = APIRouter(tags=["subject access"])

# The page is self-contained: no script, its own inline style, nothing fetched.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class ReportFormat(StrEnum):
    JSON = "json"
    HTML = "html"
    PDF = "pdf"


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report (JSON, or with ``format`` an HTML page or a PDF)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/html": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get("/v1/children/{ref}/report", response_class=Response, responses=RESPONSES)
def subject_access_report(
    ref: str,
    gw: GatewayDep,
    authority: OwnAuthorityDep,
    who: CallerDep,
    format: Annotated[ReportFormat, Query()] = ReportFormat.JSON,
) -> Response:
    """What this authority holds and shared about one child (UK GDPR Article 15).

    ``ref`` is a child key, UPN, NHS number or one of the authority's case
    references. Every disclosure (to whom, when, on what basis, which
    fields), what was received, every consent decision, every recorded
    opening of the records, and recalls and corrections; nothing about
    any other child.
    """
    found = report.build(gw, authority, ref[:200], who.actor)
    if format is ReportFormat.HTML:
        return HTMLResponse(html.render_html(found), headers=PAGE_HEADERS)
    if format is ReportFormat.PDF:
        # Imported here: fpdf costs every gateway process ~45 MB of RSS
        # (issue 14: < 150 MB per process) for a report asked for rarely.
        from gateway.subject_access import pdf  # noqa: PLC0415

        name = f"subject-access-{authority}-{found.generated_at:%Y%m%d}.pdf"
        return Response(
            pdf.render_pdf(found),
            media_type="application/pdf",
            headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(found.to_dict(), headers={"Cache-Control": "no-store"})
