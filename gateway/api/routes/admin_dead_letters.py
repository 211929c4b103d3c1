"""/v1/admin/dead-letters: dead letters of every kind, listed and replayed (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller
from gateway.api.deps import AdminDep, GatewayDep
from gateway.api.problems import conflict
from gateway.context import Gateway
from gateway.errors import ConflictError, NotFoundError
from gateway.services import dead_letters

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["admin"])

CodeQuery = Annotated[str | None, Query(pattern=r"^[0-9]{3}$", description="LA code")]
DIGEST = r"^[0-9a-f]{64}$"
# One copy among parked messages sharing an id: SHA-256 (hex) of its bytes.
DigestQuery = Annotated[str | None, Query(pattern=DIGEST)]

# The person behind the admin key, recorded as given in the audit entry.
RequestedBy = Annotated[
    str | None, Query(max_length=64, pattern=r"^[\w .@-]+$", alias="requested_by")
]


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    kind: str
    authority: str
    sender: str
    recipient: str
    message_type: str
    reason: str | None
    attempts: int
    dead_lettered_at: datetime | None
    digest: str | None = Field(
        default=None,
        description="SHA-256 (hex) of its bytes; names one parked copy among others under "
        "its message id (replay ?digest=)",
    )
    erased: bool = Field(
        default=False,
        description="its body was erased here (retention, an erasure): nothing to replay "
        "(a replay answers 409); it needs nobody (dismissed)",
    )

    @classmethod
    def of(cls, d: dead_letters.DeadLetter) -> DeadLetterOut:
        return cls(
            message_id=d.message_id,
            kind=d.kind.value,
            authority=d.authority,
            sender=d.sender,
            recipient=d.recipient,
            message_type=d.message_type,
            reason=d.reason,
            attempts=d.attempts,
            dead_lettered_at=d.dead_lettered_at,
            digest=d.digest,
            erased=d.erased,
        )


class ReplayedOut(BaseModel):
    message_id: str
    authority: str
    kind: str
    status: str


def _hosted(gw: Gateway, authority: str | None) -> tuple[str, ...]:
    if authority is None:
        return gw.hosted
    if authority not in gw.hosted:
        raise NotFoundError(f"authority {authority} is not hosted by this gateway")
    return (authority,)


def _actor(who: Caller, requested_by: str | None) -> str:
    # The name given is a claim; the key that made the request says who did.
    return who.named(requested_by)


@router.get("", response_model=list[DeadLetterOut])
def listing(
    gw: GatewayDep,
    _who: AdminDep,
    authority: CodeQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DeadLetterOut]:
    """Dead letters with their kind, reason and attempts (every hosted authority by default)."""
    return [
        DeadLetterOut.of(d)
        for code in _hosted(gw, authority)
        for d in dead_letters.list_dead_letters(gw, code, limit)
    ]


class ReplayItem(BaseModel):
    authority: str = Field(pattern=r"^[0-9]{3}$")
    message_id: str = Field(min_length=1, max_length=64)
    digest: str | None = Field(default=None, pattern=DIGEST)


class ReplayManyIn(BaseModel):
    items: list[ReplayItem] = Field(min_length=1, max_length=500)
    requested_by: str | None = Field(default=None, max_length=64, pattern=r"^[\w .@'-]+$")


class ReplayOutcome(BaseModel):
    authority: str
    message_id: str
    digest: str | None = None
    replayed: bool
    status: str | None = None
    detail: str | None = None


@router.post("/replay", response_model=list[ReplayOutcome])
def replay_many(body: ReplayManyIn, gw: GatewayDep, who: AdminDep) -> list[ReplayOutcome]:
    """Replay several dead letters (each as the single replay does); an outcome per item.

    One that cannot be replayed (not hosted, not dead-lettered any more, or an id that
    different dead letters share, with no digest to say which) is reported with why;
    the others are replayed all the same.
    """
    actor = _actor(who, body.requested_by)
    out = []
    for item in body.items:
        try:
            _hosted(gw, item.authority)
            done = dead_letters.replay(
                gw, item.authority, item.message_id, actor=actor, digest=item.digest
            )
        except (NotFoundError, ConflictError) as exc:
            out.append(ReplayOutcome(**item.model_dump(), replayed=False, detail=str(exc)))
            continue
        out.append(ReplayOutcome(**item.model_dump(), replayed=True, status=done.status.value))
    return out


@router.post(
    "/{message_id}/replay",
    response_model=ReplayedOut,
    responses=conflict(
        "Different messages are dead-lettered under the id (parked, or in the ledger): the "
        "error names up to ten, each with its sender or recipient and digest; replay one "
        "with ?digest="
    ),
)
def replay(
    message_id: str,
    gw: GatewayDep,
    who: AdminDep,
    authority: CodeQuery = None,
    requested_by: RequestedBy = None,
    digest: DigestQuery = None,
) -> ReplayedOut:
    """Replay one dead letter: same message id, failure count reset, REPLAYED recorded.

    409 when different messages are dead-lettered under the id: the error names them;
    replay one with ``?digest=``."""
    message_id = message_id[:64]
    code = authority or dead_letters.authority_of(gw, message_id, digest)
    _hosted(gw, code)
    done = dead_letters.replay(gw, code, message_id, actor=_actor(who, requested_by), digest=digest)
    return ReplayedOut(
        message_id=done.message_id,
        authority=done.authority,
        kind=done.kind.value,
        status=done.status.value,
    )
