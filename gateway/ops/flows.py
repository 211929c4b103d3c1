"""Who sends to whom, and how it is going: the sender x recipient matrix.

Counted over messages created in the last ``window`` (receipts and a
record's own rejection, sender = recipient, left out). Each message is
counted once, from the sender's ledger row when the sender is one of the
viewer's authorities, else from the recipient's (a message between two
authorities hosted here has both rows). A cell's state is the worst of its
messages: failing, then held, then in flight, then delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select

from gateway.ledger.core import as_utc
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history, messages
from gateway.ledger.unindexed import unindexed

_DONE = {
    Direction.OUTBOUND: {Status.DELIVERED, Status.ACKNOWLEDGED},
    Direction.INBOUND: {Status.VERIFIED, Status.DELIVERED_LOCAL, Status.ACKNOWLEDGED},
}
_FAILING = {
    Status.RETRYING,
    Status.DEAD_LETTERED,
    Status.REJECTED,
    Status.UNDELIVERABLE,
    Status.QUARANTINED,
}


@dataclass(frozen=True)
class Flow:
    sender: str
    recipient: str
    delivered: int
    in_flight: int
    failing: int
    held: int
    last_at: datetime

    @property
    def total(self) -> int:
        return self.delivered + self.in_flight + self.failing + self.held

    @property
    def state(self) -> str:
        if self.failing:
            return "failing"
        if self.held:
            return "held"
        if self.in_flight:
            return "in_flight"
        return "delivered"


def _classify(direction: Direction, status: Status) -> str:
    if status in _FAILING:
        return "failing"
    if status == Status.HELD_LOCAL:
        return "held"
    if status in _DONE[direction]:
        return "delivered"
    return "in_flight"


def flows(ledger: Ledger, codes: Sequence[str], since: datetime) -> list[Flow]:
    """The matrix cells with traffic since ``since``, as seen by ``codes``."""
    if not codes:
        return []
    visible = set(codes)
    cols = (
        messages.c.direction,
        messages.c.sender,
        messages.c.recipient,
        messages.c.status,
    )
    query = (
        select(*cols, func.count(), func.max(messages.c.updated_at))
        .where(
            # The messages made since ``since`` among those whose history has a line
            # since then (each message's first line is written with it, at the time it
            # is made, and history lines are never deleted): found by the history's
            # time, where by the authority SQLite read every message of it at each
            # look at the dashboard (issue 14).
            messages.c.id.in_(select(history.c.message_pk).where(history.c.at >= since)),
            unindexed(messages.c.authority).in_(list(codes)),
            messages.c.created_at >= since,
            messages.c.message_type != "Receipt",
            messages.c.sender != messages.c.recipient,
        )
        .group_by(*cols)
    )
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    cells: dict[tuple[str, str], Flow] = {}
    for direction_, sender, recipient, status_, n, last in rows:
        direction = Direction(direction_)
        if direction == Direction.INBOUND and sender in visible:
            continue  # the sender's own row counts it
        kind = _classify(direction, Status(status_))
        cell = cells.get((sender, recipient)) or Flow(sender, recipient, 0, 0, 0, 0, as_utc(last))
        cells[(sender, recipient)] = replace(
            cell,
            **{kind: getattr(cell, kind) + int(n)},
            last_at=max(cell.last_at, as_utc(last)),
        )
    return sorted(cells.values(), key=lambda f: (f.sender, f.recipient))
