"""Message rates per authority: sent, delivered, received and failing, over time.

Counted from the status history (a message entering a status) and the
failed handovers, never from current statuses, so a message that failed
and was then delivered counts once in each. Receipts are left out: they
are the gateway's own bookkeeping, not messages a person sent.

- sent: outbound, entered ``SENT`` (a re-send counts again);
- delivered: outbound, entered ``DELIVERED`` (the recipient's signed receipt);
- received: inbound, entered ``VERIFIED``;
- failing: outbound ``RETRYING``, ``DEAD_LETTERED``, ``REJECTED``,
  ``UNDELIVERABLE``; inbound ``QUARANTINED``, ``DEAD_LETTERED``,
  ``UNDELIVERABLE``; and every failed handover to the local system.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, cast, func, select
from sqlalchemy.types import Integer

from gateway.connectors.tables import handover_failures
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed
from gateway.ops.tally import seconds_between

KINDS = ("sent", "delivered", "received", "failing")
_OUT, _IN = Direction.OUTBOUND.value, Direction.INBOUND.value
KIND_OF: dict[tuple[str, str], str] = {
    (_OUT, Status.SENT.value): "sent",
    (_OUT, Status.DELIVERED.value): "delivered",
    (_IN, Status.VERIFIED.value): "received",
    **{
        (_OUT, s.value): "failing"
        for s in (Status.RETRYING, Status.DEAD_LETTERED, Status.REJECTED, Status.UNDELIVERABLE)
    },
    **{
        (_IN, s.value): "failing"
        for s in (Status.QUARANTINED, Status.DEAD_LETTERED, Status.UNDELIVERABLE)
    },
}
_STATUSES = sorted({status for _, status in KIND_OF})


def _bucket(conn: Connection, at: Any, start: datetime, step_s: int) -> Any:
    return cast(func.floor(seconds_between(conn, at, start) / step_s), Integer)


def counts_since(
    ledger: Ledger, since: datetime, codes: Sequence[str]
) -> dict[tuple[str, str], int]:
    """Per (authority, kind): how many since ``since``."""
    series = series_of(ledger, codes, since, step_s=10**9, buckets=1)
    return {(code, kind): values[0] for (code, kind), values in series.items()}


def series_of(
    ledger: Ledger, codes: Sequence[str], start: datetime, step_s: int, buckets: int
) -> dict[tuple[str, str], list[int]]:
    """Per (authority, kind): counts in ``buckets`` consecutive steps from ``start``."""
    out = {(code, kind): [0] * buckets for code in codes for kind in KINDS}
    if not codes:
        return out
    with ledger.transaction() as conn:
        bucket = _bucket(conn, history.c.at, start, step_s)
        rows = conn.execute(
            select(
                messages.c.authority, messages.c.direction, history.c.status, bucket, func.count()
            )
            .join(messages, messages.c.id == history.c.message_pk)
            .where(
                history.c.at >= start,
                history.c.status.in_(_STATUSES),
                # The history since ``start`` found by its time, then its messages: by
                # the authority SQLite read every message of it, and the history of
                # each, at every look at the dashboard (issue 14).
                unindexed(messages.c.authority).in_(list(codes)),
                messages.c.message_type != "Receipt",
            )
            .group_by(messages.c.authority, messages.c.direction, history.c.status, bucket)
        ).all()
        failed_bucket = _bucket(conn, handover_failures.c.at, start, step_s)
        failed = conn.execute(
            select(handover_failures.c.authority, failed_bucket, func.count())
            .where(
                handover_failures.c.at >= start,
                handover_failures.c.authority.in_(list(codes)),
            )
            .group_by(handover_failures.c.authority, failed_bucket)
        ).all()
    for code, direction, status, index, n in rows:
        kind = KIND_OF.get((direction, status))
        if kind is not None and 0 <= int(index) < buckets:
            out[(code, kind)][int(index)] += int(n)
    for code, index, n in failed:
        if 0 <= int(index) < buckets:
            out[(code, "failing")][int(index)] += int(n)
    return out
