"""Finding messages: by id, case reference, child, status, direction, type, peer and date.

Read-only. The caller decides which authorities' rows may be searched
(``Criteria.authorities``); nothing outside them is ever read. Ids and case
references match as typed or by their beginning, so the first characters of
a message id found in a log line are enough.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select

from gateway.ledger.core import as_utc
from gateway.ledger.records import HistoryEntry, MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages

MIN_PREFIX = 4
MAX_LIMIT = 500


@dataclass(frozen=True)
class Criteria:
    """Every field given must match; ``authorities`` bounds the search."""

    authorities: tuple[str, ...]
    message_id: str | None = None
    case_ref: str | None = None
    child_key: str | None = None
    correlation_id: str | None = None
    statuses: tuple[Status, ...] = ()
    direction: Direction | None = None
    message_type: str | None = None
    counterparty: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    include_receipts: bool = False
    include_restricted: bool = True
    limit: int = 100
    offset: int = 0


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _exact_or_prefix(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    text = text.strip()
    if len(text) < MIN_PREFIX:
        return column == text
    return or_(column == text, column.like(_escape(text) + "%", escape="\\"))


def _conditions(c: Criteria) -> list[ColumnElement[bool]]:
    m = messages.c
    found: list[ColumnElement[bool]] = [m.authority.in_(list(c.authorities))]
    if c.message_id:
        found.append(_exact_or_prefix(m.message_id, c.message_id[:64]))
    if c.case_ref:
        found.append(_exact_or_prefix(m.case_ref, c.case_ref[:64]))
    if c.child_key:
        found.append(m.child_key == c.child_key)
    if c.correlation_id:
        found.append(m.correlation_id == c.correlation_id[:64])
    if c.statuses:
        found.append(m.status.in_([s.value for s in c.statuses]))
    if c.direction is not None:
        found.append(m.direction == c.direction.value)
    if c.message_type:
        found.append(m.message_type == c.message_type)
    elif not c.include_receipts:
        found.append(m.message_type != "Receipt")
    if c.counterparty:
        found.append(or_(m.sender == c.counterparty, m.recipient == c.counterparty))
    if c.created_from is not None:
        found.append(m.created_at >= c.created_from)
    if c.created_to is not None:
        found.append(m.created_at < c.created_to)
    if c.updated_from is not None:
        found.append(m.updated_at >= c.updated_from)
    if not c.include_restricted:
        found.append(m.restricted.is_(False))
    return found


def search(ledger: Ledger, c: Criteria) -> list[MessageRecord]:
    """Messages matching ``c``, newest first (without their history; ``Ledger.find`` adds it)."""
    if not c.authorities:
        return []
    query = (
        ledger._record_select()
        .where(*_conditions(c))
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(max(1, min(c.limit, MAX_LIMIT)))
        .offset(max(0, c.offset))
    )
    with ledger.transaction() as conn:
        return [ledger._to_record(r) for r in conn.execute(query).all()]


def with_history(ledger: Ledger, records: list[MessageRecord]) -> list[MessageRecord]:
    """``records`` with their status histories (one query)."""
    if not records:
        return records
    by_pk: dict[int, list[HistoryEntry]] = {r.pk: [] for r in records}
    with ledger.transaction() as conn:
        for pk, st, at, reason in conn.execute(
            select(history.c.message_pk, history.c.status, history.c.at, history.c.reason)
            .where(history.c.message_pk.in_(list(by_pk)))
            .order_by(history.c.id)
        ).all():
            by_pk[pk].append(HistoryEntry(Status(st), as_utc(at), reason))
    return [replace(r, history=tuple(by_pk[r.pk])) for r in records]
