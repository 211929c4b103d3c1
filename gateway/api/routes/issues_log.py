"""/v1/issues-log: the regional issues log (service gaps, cross-border risks; no personal data)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from gateway.api.deps import AuthorityDep, GatewayDep
from gateway.services import views

router = APIRouter(prefix="/v1/issues-log", tags=["issues-log"])


class IssueOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry_id: str
    kind: str
    reported_by_la: str
    concerns_la: str | None
    raised_on: date
    description: str
    received_from: str | None
    logged_at: datetime


@router.get("", response_model=list[IssueOut])
def issues(
    gw: GatewayDep,
    authority: AuthorityDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[IssueOut]:
    """The region's issues log as this authority's gateway holds it, newest first."""
    return [
        IssueOut(
            entry_id=i.entry.entry_id,
            kind=i.entry.kind.value,
            reported_by_la=i.entry.reported_by_la,
            concerns_la=i.entry.concerns_la,
            raised_on=i.entry.raised_on,
            description=i.entry.description,
            received_from=i.received_from,
            logged_at=i.logged_at,
        )
        for i in views.issues_of(gw, authority, limit)
    ]
