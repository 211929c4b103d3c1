"""/v1/children/{ref}/disclosures: who saw and who received this child's data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from gateway.api.deps import CallerDep, GatewayDep, OwnAuthorityDep
from gateway.crossborder.children import resolve_child
from gateway.services import access_log

router = APIRouter(tags=["consent"])


class AccessOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    action: str
    actor: str
    counterparty: str | None
    legal_basis: str | None
    message_id: str | None
    detail: str | None


class DisclosuresOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    child_key: str
    received: list[AccessOut]
    seen: list[AccessOut]
    other: list[AccessOut]


def _out(entries: tuple[access_log.AccessEntry, ...]) -> list[AccessOut]:
    return [AccessOut(**vars(e)) for e in entries]


@router.get("/v1/children/{ref}/disclosures", response_model=DisclosuresOut)
def disclosures(
    ref: str,
    gw: GatewayDep,
    authority: OwnAuthorityDep,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> DisclosuresOut:
    """Who received this child's data (``received``: each disclosure to another
    authority, with its legal basis) and who saw it here (``seen``: every read
    through the API, naming the API key's holder), newest first, from the
    audit chain. The child is named by child key, UPN, NHS number or case ref;
    this read is itself audited.
    """
    key = resolve_child(gw, authority, ref[:200])
    # Recorded before the answer is read, so the answer includes this read too.
    access_log.record(gw, authority, who.actor, [access_log.Read("disclosures", key)])
    found = access_log.disclosures(gw, authority, key, limit)
    return DisclosuresOut(
        child_key=found.child_key,
        received=_out(found.received),
        seen=_out(found.seen),
        other=_out(found.other),
    )
