"""The message browser: search, and one message's whole story (history and audit).

Authorised like the API: an authority searches and opens only its own
messages (another authority's message is "not found", never "forbidden"),
an admin every hosted authority's. Searching by child (UPN, NHS number,
child key or case reference) is for an authority's own key only, and leaves
out records restricted after consent was withdrawn; the admin role runs the
gateway and is not given a way to look children up. What is shown is what
the dashboard shows everywhere: ids, types, authorities, statuses, counts
and redacted reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from gateway.api.auth import Caller
from gateway.context import Gateway
from gateway.crossborder.children import resolve_child
from gateway.dashboard.lines import MessageLine, lines_of, safe_reason
from gateway.errors import ForbiddenError, NotFoundError
from gateway.ledger import search
from gateway.ledger.core import as_utc
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import audit
from gateway.ops import attention
from gateway.ops.redact import redact_text

PAGE = 50


@dataclass(frozen=True)
class Query:
    """What the browser's search form sends."""

    authority: str | None = None
    message_id: str | None = None
    case_ref: str | None = None
    child: str | None = None
    status: Status | None = None
    direction: Direction | None = None
    message_type: str | None = None
    counterparty: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    include_receipts: bool = False
    offset: int = 0


@dataclass(frozen=True)
class Found:
    lines: list[MessageLine]
    offset: int
    more: bool


@dataclass(frozen=True)
class HistoryLine:
    status: str
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: datetime
    actor: str
    action: str
    authority: str
    counterparty: str | None
    legal_basis: str | None
    detail: str | None


@dataclass(frozen=True)
class Copy:
    """One ledger row of the message (a gateway hosting both ends holds two)."""

    line: MessageLine
    legal_basis: str
    created_at: datetime
    digest: str | None
    history: list[HistoryLine]
    dismissals: list[str]


@dataclass(frozen=True)
class Detail:
    message_id: str
    copies: list[Copy]
    audit: list[AuditLine]


def authorities_for(gw: Gateway, who: Caller, authority: str | None) -> tuple[str, ...]:
    """The authorities ``who`` may look into, narrowed to ``authority`` if given."""
    if who.is_admin:
        if authority is None:
            return gw.hosted
        if authority not in gw.hosted:
            raise NotFoundError(f"authority {authority} is not hosted by this gateway")
        return (authority,)
    if authority is not None and authority != who.authority:
        raise NotFoundError(f"authority {authority} not found")
    return tuple(code for code in gw.hosted if code == who.authority)


def find(gw: Gateway, who: Caller, q: Query) -> Found:
    """A page of messages matching ``q`` that ``who`` may see, newest first."""
    codes = authorities_for(gw, who, q.authority)
    child_key = None
    if q.child:
        if who.is_admin or who.authority is None:
            raise ForbiddenError(
                "searching by child needs the authority's own key: the admin role runs "
                "the gateway and does not look children up"
            )
        child_key = resolve_child(gw, who.authority, q.child.strip()[:200])
    records = search.search(
        gw.ledger,
        search.Criteria(
            authorities=codes,
            message_id=q.message_id or None,
            case_ref=q.case_ref or None,
            child_key=child_key,
            statuses=(q.status,) if q.status else (),
            direction=q.direction,
            message_type=q.message_type or None,
            counterparty=q.counterparty or None,
            created_from=q.created_from,
            created_to=q.created_to,
            include_receipts=q.include_receipts,
            include_restricted=child_key is None,
            limit=PAGE + 1,
            offset=q.offset,
        ),
    )
    return Found(
        lines_of(gw.ledger, records[:PAGE], who, gw.clock()), q.offset, len(records) > PAGE
    )


def detail(gw: Gateway, who: Caller, message_id: str) -> Detail:
    """Every copy of ``message_id`` that ``who`` may see, with history and audit entries."""
    codes = authorities_for(gw, who, None)
    records = gw.ledger.find(message_id=message_id[:64], authorities=codes)
    if not records:
        raise NotFoundError(f"message {message_id} not found")
    lines = lines_of(gw.ledger, records, who, now=gw.clock())
    copies = [
        Copy(
            line=line,
            legal_basis=r.legal_basis,
            created_at=r.created_at,
            digest=r.digest,
            history=[
                HistoryLine(h.status.value, h.at, safe_reason(h.status, h.reason))
                for h in r.history
            ],
            dismissals=[
                f"{d.status.value} dismissed by {d.actor} at {d.at.isoformat()}: "
                + redact_text(d.reason)
                for d in attention.dismissals_of(gw.ledger, r.pk)
            ],
        )
        for r, line in zip(records, lines, strict=True)
    ]
    with gw.ledger.transaction() as conn:
        rows = conn.execute(
            select(audit)
            .where(audit.c.message_id == message_id[:64], audit.c.authority.in_(sorted(codes)))
            .order_by(audit.c.seq)
        ).mappings()
        entries = [
            AuditLine(
                seq=int(r["seq"]),
                at=as_utc(r["at"]),
                actor=r["actor"],
                action=r["action"],
                authority=r["authority"],
                counterparty=r["counterparty"],
                legal_basis=r["legal_basis"],
                detail=redact_text(r["detail"]) if r["detail"] else None,
            )
            for r in rows
        ]
    return Detail(message_id=records[0].message_id, copies=copies, audit=entries)
