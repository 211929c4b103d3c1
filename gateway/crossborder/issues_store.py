"""The regional issues log's store: this authority's copy of the region's log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
)

from gateway.crossborder.tables import metadata
from gateway.ledger.store import as_utc
from gateway.model import IssueKind, IssueLogEntry
from gateway.policy.issues_log import check

issues_log = Table(
    "issues_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("entry_id", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reported_by_la", String(3), nullable=False),
    Column("concerns_la", String(3)),
    Column("raised_on", Date, nullable=False),
    Column("description", Text, nullable=False),
    Column("received_from", String(3)),
    Column("message_id", String(64)),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority", "entry_id", name="uq_issue_entry"),
)


@dataclass(frozen=True)
class LoggedIssue:
    entry: IssueLogEntry
    received_from: str | None
    logged_at: datetime


def store(
    conn: Connection,
    authority: str,
    entry: IssueLogEntry,
    now: datetime,
    received_from: str | None = None,
    message_id: str | None = None,
) -> bool:
    """Keep ``entry`` in ``authority``'s copy of the regional log; False if already there."""
    check(entry)
    known = conn.execute(
        select(issues_log.c.id).where(
            issues_log.c.authority == authority, issues_log.c.entry_id == entry.entry_id
        )
    ).first()
    if known is not None:
        return False
    conn.execute(
        insert(issues_log).values(
            authority=authority,
            entry_id=entry.entry_id,
            kind=entry.kind.value,
            reported_by_la=entry.reported_by_la,
            concerns_la=entry.concerns_la,
            raised_on=entry.raised_on,
            description=entry.description,
            received_from=received_from,
            message_id=message_id,
            logged_at=now,
        )
    )
    return True


def listing(conn: Connection, authority: str, limit: int = 500) -> list[LoggedIssue]:
    rows = conn.execute(
        select(issues_log)
        .where(issues_log.c.authority == authority)
        .order_by(issues_log.c.id.desc())
        .limit(limit)
    ).all()
    return [
        LoggedIssue(
            IssueLogEntry(
                entry_id=r.entry_id,
                kind=IssueKind(r.kind),
                reported_by_la=r.reported_by_la,
                concerns_la=r.concerns_la,
                description=r.description,
                raised_on=r.raised_on
                if isinstance(r.raised_on, date)
                else date.fromisoformat(r.raised_on),
            ),
            r.received_from,
            as_utc(r.logged_at),
        )
        for r in rows
    ]
