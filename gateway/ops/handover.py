"""How each authority's handover to its local system is going (webhook and file drop).

Read from the ledger: received messages still waiting for the local system,
and, while the handover keeps failing, since when and with what error (the
``handover_failures`` rows of the messages still waiting). The pull
connector has no handover of its own: its messages wait until the local
system asks (``GET /v1/inbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from gateway.connectors.tables import handover_failures
from gateway.context import Gateway
from gateway.ledger.core import as_utc
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.ledger.unindexed import unindexed

_WAITING = (Status.VERIFIED.value, Status.REPLAYED.value)


@dataclass(frozen=True)
class HandoverState:
    authority: str
    connector: str  # pull, webhook or file
    waiting: int  # received messages not yet handed over (pull: not yet fetched)
    failing: bool  # the last handover attempt failed and messages are waiting
    failing_since: datetime | None  # first failure of the messages still waiting
    last_error: str | None
    failures: int  # failed attempts on the messages still waiting


def handover_states(gw: Gateway, codes: Sequence[str]) -> dict[str, HandoverState]:
    """The handover state of each authority in ``codes``."""
    waiting_rows = (
        select(messages.c.authority, func.count(), func.max(messages.c.attempts))
        .where(
            messages.c.direction == Direction.INBOUND.value,
            messages.c.authority.in_(list(codes)),
            messages.c.status.in_(_WAITING),
            messages.c.message_type != "Receipt",
        )
        .group_by(messages.c.authority)
    )
    failed = (
        select(
            handover_failures.c.authority,
            func.min(handover_failures.c.at),
            func.max(handover_failures.c.id),
            func.count(),
        )
        .join(messages, messages.c.id == handover_failures.c.message_pk)
        .where(
            # The waiting messages found first (received, of the authorities, in these
            # statuses: the inbox index), then their failures: from the failures,
            # SQLite read every one the authority ever recorded at each look (issue 14).
            unindexed(handover_failures.c.authority).in_(list(codes)),
            messages.c.direction == Direction.INBOUND.value,
            messages.c.authority.in_(list(codes)),
            messages.c.status.in_(_WAITING),
            messages.c.attempts > 0,
        )
        .group_by(handover_failures.c.authority)
    )
    with gw.ledger.transaction() as conn:
        waiting = {a: (int(n), int(top or 0)) for a, n, top in conn.execute(waiting_rows).all()}
        failing = {
            a: (as_utc(since), int(last), int(n)) for a, since, last, n in conn.execute(failed)
        }
        errors = {
            a: reason
            for a, reason in conn.execute(
                select(handover_failures.c.authority, handover_failures.c.reason).where(
                    handover_failures.c.id.in_([last for _, last, _ in failing.values()])
                )
            ).all()
        }
    out = {}
    for code in codes:
        count, top_attempts = waiting.get(code, (0, 0))
        since, _, failures = failing.get(code, (None, 0, 0))
        out[code] = HandoverState(
            authority=code,
            connector=gw.settings.directory.get(code).connector.kind,
            waiting=count,
            failing=top_attempts > 0,
            failing_since=since if top_attempts > 0 else None,
            last_error=errors.get(code) if top_attempts > 0 else None,
            failures=failures,
        )
    return out
