"""What is past its retention period: read-only, so ``cafgw retention plan`` is a dry run.

Each message of an authority not yet erased is judged by the first rule that
applies to it:

- its status: QUARANTINED, REJECTED, HELD_LOCAL and DEAD_LETTERED inputs
  have short periods of their own, counted from their last change;
- a message on a case thread: the period for the case's state and the
  message's type, counted from when the case was closed (CLOSED) or from
  the last message on the thread (any other state); never from before the
  message's own last change;
- any other message without personal data: ``no_personal_data_days``.

A rejected input's reasons quote the values that were wrong (a UPN, a
postcode), so its status history is scrubbed as well.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, RowMapping, and_, bindparam, select

from gateway.ledger.status import Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import messages
from gateway.ledger.unindexed import unindexed
from gateway.model import LegalBasis
from gateway.retention.cases import ThreadState, thread_states
from gateway.retention.tables import tombstones
from gateway.settings import UNKNOWN_STATE, Limits, RetentionSettings


@dataclass(frozen=True)
class Due:
    """One message whose personal data is due for erasure, and why."""

    pk: int
    message_id: str
    direction: str
    status: str
    message_type: str
    correlation_id: str
    sender: str
    recipient: str
    legal_basis: str
    digest: str | None
    created_at: datetime
    rule: str
    days: int
    since: str  # what the period counts from
    anchor_at: datetime
    due_at: datetime
    scrub_reasons: bool = False


@dataclass(frozen=True)
class Plan:
    authority: str
    now: datetime
    due: tuple[Due, ...] = ()
    more: bool = False  # more rows are due than one run takes (``batch``)
    states: dict[str, ThreadState] = field(default_factory=dict)

    def by_rule(self) -> dict[str, int]:
        return dict(sorted(Counter(d.rule for d in self.due).items()))

    def pks(self) -> set[int]:
        return {d.pk for d in self.due}


_STATUS_RULES: dict[str, tuple[str, bool]] = {
    Status.QUARANTINED.value: ("quarantined_days", False),
    Status.REJECTED.value: ("rejected_days", True),
    Status.HELD_LOCAL.value: ("held_local_days", False),
    Status.DEAD_LETTERED.value: ("dead_letter_days", False),
}


def _judge(
    row: object, states: dict[str, ThreadState], rules: RetentionSettings, now: datetime
) -> Due | None:
    r = row._mapping  # type: ignore[attr-defined]
    updated = as_utc(r["updated_at"])
    created = as_utc(r["created_at"])
    scrub = False
    if r["status"] in _STATUS_RULES:
        name, scrub = _STATUS_RULES[r["status"]]
        days, rule, since, anchor = int(getattr(rules, name)), name, "its last change", updated
    elif r["correlation_id"] in states and (
        states[r["correlation_id"]].state != UNKNOWN_STATE
        or r["legal_basis"] != LegalBasis.NO_PERSONAL_DATA.value
    ):
        thread = states[r["correlation_id"]]
        days, rule = rules.case_days(thread.state, r["message_type"])
        if thread.closed_at is not None:
            since, anchor = "the case was closed", max(thread.closed_at, created)
        else:
            since, anchor = "the last message on the case", max(thread.last_activity, created)
    else:
        days, rule, since, anchor = (
            rules.no_personal_data_days,
            "no_personal_data_days",
            "its last change",
            updated,
        )
    due_at = anchor + timedelta(days=days)
    if due_at > now:
        return None
    return _due(r, rule, days, since, anchor, due_at, scrub)


def _due(
    r: RowMapping,
    rule: str,
    days: int,
    since: str,
    anchor: datetime,
    due_at: datetime,
    scrub: bool,
) -> Due:
    return Due(
        pk=int(r["id"]),
        message_id=r["message_id"],
        direction=r["direction"],
        status=r["status"],
        message_type=r["message_type"],
        correlation_id=r["correlation_id"],
        sender=r["sender"],
        recipient=r["recipient"],
        legal_basis=r["legal_basis"],
        digest=r["digest"],
        created_at=as_utc(r["created_at"]),
        rule=rule,
        days=days,
        since=since,
        anchor_at=anchor,
        due_at=due_at,
        scrub_reasons=scrub,
    )


def _shortest(rules: RetentionSettings) -> int:
    periods = [d for p in rules.case_records.values() for d in p.values()]
    periods += [
        rules.held_local_days,
        rules.rejected_days,
        rules.quarantined_days,
        rules.dead_letter_days,
        rules.no_personal_data_days,
    ]
    return min(periods)


PAGE = 500  # messages a plan reads at a time, at least


def plan(
    conn: Connection,
    authority: str,
    rules: RetentionSettings,
    limits: Limits,
    now: datetime,
    limit: int | None = None,
) -> Plan:
    """Messages of ``authority`` past their retention period at ``now`` (oldest first)."""
    take = limit or rules.batch
    # Every period counts from no earlier than when the message was recorded, so
    # nothing recorded more recently than the shortest period can be due.
    horizon = now - timedelta(days=_shortest(rules))
    query = (
        select(
            messages.c.id,
            messages.c.message_id,
            messages.c.direction,
            messages.c.status,
            messages.c.message_type,
            messages.c.correlation_id,
            messages.c.sender,
            messages.c.recipient,
            messages.c.legal_basis,
            messages.c.digest,
            messages.c.created_at,
            messages.c.updated_at,
        )
        .select_from(messages.outerjoin(tombstones, and_(tombstones.c.message_pk == messages.c.id)))
        .where(
            # Walked in key order, each page after the last (an OFFSET read and sorted
            # every message of the authority again for each page: a ledger of a
            # million messages kept for years was read 2,000 times over at every run;
            # issue 14). By the authority's index SQLite would do the same, so on
            # SQLite the walk reads every row once, another hosted authority's too.
            unindexed(messages.c.authority) == authority,
            tombstones.c.id.is_(None),
            messages.c.created_at <= horizon,
            messages.c.id > bindparam("after"),
        )
        .order_by(messages.c.id)
    )
    due: list[Due] = []
    states: dict[str, ThreadState] = {}
    after, page = 0, max(take, PAGE)
    while len(due) <= take:
        rows = conn.execute(query.limit(page), {"after": after}).all()
        if not rows:
            break
        after = rows[-1].id
        fresh = {r.correlation_id for r in rows} - set(states)
        states.update(thread_states(conn, authority, fresh, limits))
        for row in rows:
            found = _judge(row, states, rules, now)
            if found is not None:
                due.append(found)
        if len(rows) < page:
            break  # the last page: another read would walk the newest rows again
    return Plan(authority, now, tuple(due[:take]), len(due) > take, states)


def due_where(conn: Connection, authority: str, which: ColumnElement[bool], rule: str) -> list[Due]:
    """``authority``'s messages (no receipts) matching ``which`` and not yet erased, as due
    now under ``rule``."""
    rows = conn.execute(
        select(messages)
        .select_from(messages.outerjoin(tombstones, and_(tombstones.c.message_pk == messages.c.id)))
        .where(
            messages.c.authority == authority,
            tombstones.c.id.is_(None),
            messages.c.message_type != "Receipt",
            which,
        )
        .order_by(messages.c.id)
    ).all()
    out = []
    for r in rows:
        m = r._mapping
        now = as_utc(m["updated_at"])
        out.append(_due(m, rule, 0, "the request", now, now, m["status"] == "REJECTED"))
    return out


def emptied(
    conn: Connection, authority: str, threads: Collection[str], erasing: Sequence[Due] = ()
) -> set[str]:
    """Of ``threads``, those with no message of ``authority`` left unerased (once the
    rows ``erasing`` are too: a dry run's question)."""
    wanted = sorted(t for t in threads if t)
    pks = {d.pk for d in erasing}
    # The ids only when some rows are to be set aside; otherwise one row a thread.
    columns = (messages.c.correlation_id, messages.c.id) if pks else (messages.c.correlation_id,)
    left: set[str] = set()
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(*columns)
            .select_from(messages.outerjoin(tombstones, tombstones.c.message_pk == messages.c.id))
            .where(
                messages.c.authority == authority,
                messages.c.correlation_id.in_(wanted[start : start + 500]),
                tombstones.c.id.is_(None),
            )
            .distinct()
        )
        left.update(str(r[0]) for r in rows if not pks or r[1] not in pks)
    return set(wanted) - left
