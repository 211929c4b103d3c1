"""Handing verified inbound messages to push connectors (webhook, file drop).

Each turn takes, per authority with a push connector, the waiting messages
whose next attempt is due (oldest first), a few at a time (``CLAIM``), and
hands them over one by one, recording each outcome in a short transaction of
its own before the next handover starts:

- TAKEN (webhook 2xx): ``DELIVERED_LOCAL`` then ``ACKNOWLEDGED``;
- PLACED (file staged): ``DELIVERED_LOCAL``, then the connector publishes it;
- REFUSED (permanent, e.g. HTTP 400): ``DEAD_LETTERED`` with the reason;
  replay it with ``cafgw dead-letters replay``;
- RETRY (endpoint down, 5xx, 408, 429, no directory): the turn stops for that
  authority and its waiting messages wait for the next backoff step
  (``delivery.local_retry_backoff_s``, the last step repeating) until the
  local system answers again or the acknowledgement deadline passes.

A crash after a handover and before it was recorded hands the message over
again: a webhook POST repeats with the same ``Idempotency-Key``; a file is
staged again under the same hidden name and published once (``filedrop``).
Because each outcome is recorded before the next handover starts, that is
at most the one message in flight when the process died.

Replicas of the gateway on one ledger share the work: each turn claims the
messages it hands over (a lease, ``state.claim``), so each message is handed
over once per attempt. A turn starts no handover once its lease is closer to
running out than two handover timeouts; what it did not reach goes back at
once. A killed replica's claims lapse and another replica takes them: the
one it was handing over when it died may reach the local system twice (same
``Idempotency-Key`` or file name, as after any crash); the others it had
claimed but not started only wait for the lease (``CLAIM`` at most).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection

from gateway.connectors import registry, state
from gateway.connectors.base import Connector, Handover, LocalMessage, Outcome
from gateway.errors import CafgwError
from gateway.feature import Kit
from gateway.ledger.status import Status
from gateway.settings import Settings

log = logging.getLogger(__name__)

TURN = 100  # handovers per authority per turn (one connector: one HTTP client)
# Messages claimed at a time. Not the repeat window (each handover is recorded
# before the next starts), but what a killed replica leaves waiting for its lease.
CLAIM = 10
SWEEP = 2000  # placed messages looked at per authority when checking what was taken
# A claim's lease: at least this, or four handover timeouts when those are longer. A
# replica killed mid-turn holds its claims this long; a turn starts no handover
# in the last two timeouts of its lease (what it did not reach goes back at once).
CLAIM_LEASE_S = 15.0

ConnectorFor = Callable[[Settings, str], Connector]


def deliver_pending(
    kit: Kit, limit: int = TURN, connector_for: ConnectorFor = registry.connector_for
) -> int:
    """One turn for every hosted authority with a push connector; messages settled."""
    settled = 0
    for code in registry.pushing(kit.settings):
        settled += _turn(kit, code, limit, connector_for)
    return settled


def _turn(kit: Kit, code: str, limit: int, connector_for: ConnectorFor) -> int:
    """Up to ``limit`` handovers for ``code``, claimed ``CLAIM`` at a time; messages settled."""
    timeout_s = kit.settings.delivery_for(code).local_timeout_s
    lease_s = max(CLAIM_LEASE_S, 4 * timeout_s)
    connector: Connector | None = None
    settled = 0
    try:
        while settled < limit:
            now = kit.clock()
            until = now + timedelta(seconds=lease_s)
            items = state.claim(kit.ledger, code, now, until, min(CLAIM, limit - settled))
            if not items:
                break
            started = time.monotonic()
            if connector is None:
                try:
                    connector = connector_for(kit.settings, code)
                except CafgwError as exc:
                    # One authority's broken connector must not hold up the others; it
                    # is a failed handover like any other, so it shows and alerts.
                    log.error("local delivery for %s: %s", code, exc)
                    with kit.ledger.transaction() as conn:
                        _defer(kit, conn, code, items[0], f"connector unusable: {exc}")
                    state.release(kit.ledger, [i.pk for i in items[1:]])
                    break
            done, finished = _hand_over(
                kit, code, connector, items, started + lease_s - 2 * timeout_s
            )
            settled += done
            if not finished:
                break  # the local system is unavailable, or the lease ran short
    finally:
        if connector is not None:
            connector.close()
    return settled


def _hand_over(
    kit: Kit, code: str, connector: Connector, items: list[LocalMessage], stop_at: float
) -> tuple[int, bool]:
    """Hand ``items`` over in order, each outcome recorded before the next handover starts.

    Returns how many were settled and whether the turn may go on (False when
    the local system asked to wait or the lease got too short).
    """
    settled = 0
    unsettled = [i.pk for i in items]  # claimed and not yet recorded either way
    try:
        for item in items:
            if time.monotonic() >= stop_at:
                return settled, False  # the claim could lapse mid-handover
            handover = connector.deliver(item)
            if handover.outcome is Outcome.RETRY:
                with kit.ledger.transaction() as conn:
                    _defer(kit, conn, code, item, f"handover failed: {handover.reason}")
                unsettled.remove(item.pk)
                log.warning(
                    "local system of %s unavailable (%s); next try in about %.0f s",
                    code,
                    handover.reason,
                    kit.settings.delivery_for(code).local_backoff().wait_s(item.attempts + 1),
                )
                return settled, False
            if _record(kit, code, connector, item, handover):
                connector.publish([item.message_id])
            unsettled.remove(item.pk)
            settled += 1
        return settled, True
    finally:
        # What was not reached (or not recorded) is free for the next turn at once.
        state.release(kit.ledger, unsettled)


def _record(
    kit: Kit, code: str, connector: Connector, item: LocalMessage, handover: Handover
) -> bool:
    """Record one handover's outcome in its own transaction; True if a placed file
    is now to be published."""
    ledger = kit.ledger
    reason = handover.reason
    with ledger.transaction() as conn:
        if handover.outcome is Outcome.REFUSED:
            state.move(
                ledger,
                conn,
                item.pk,
                state.WAITING,
                Status.DEAD_LETTERED,
                f"refused by the local system: {reason}",
                attempts=item.attempts + 1,
                next_attempt_at=None,
            )
            log.warning(
                "local system of %s refused %s: %s",
                code,
                item.message_id,
                reason,
                extra={"message_id": item.message_id, "authority": code},
            )
            return False
        moved = state.move(
            ledger,
            conn,
            item.pk,
            state.WAITING,
            Status.DELIVERED_LOCAL,
            f"handed to the local system ({connector.kind}): {reason}",
            next_attempt_at=None,
        )
        if not moved or handover.outcome is not Outcome.TAKEN:
            return moved
        state.move(
            ledger,
            conn,
            item.pk,
            {Status.DELIVERED_LOCAL},
            Status.ACKNOWLEDGED,
            f"the local system took it ({connector.kind})",
        )
        return False


def _defer(kit: Kit, conn: Connection, code: str, item: LocalMessage, reason: str) -> None:
    """Record a failed handover of ``item``; ``code`` waits for the next backoff step."""
    pause = kit.settings.delivery_for(code).local_backoff().jittered_s(item.attempts + 1)
    until = kit.clock() + timedelta(seconds=pause)
    state.defer(kit.ledger, conn, code, item, until, reason)


def sweep_taken(kit: Kit, limit: int = SWEEP) -> int:
    """Publish what a crash left staged, and acknowledge what local systems took away."""
    acknowledged = 0
    for code in registry.pushing(kit.settings):
        rows = state.placed(kit.ledger, code, limit)
        if not rows:
            continue
        try:
            connector = registry.connector_for(kit.settings, code)
        except CafgwError as exc:
            log.error("local delivery for %s: %s", code, exc)
            continue
        try:
            ids = [message_id for _, message_id in rows]
            connector.publish(ids)
            taken = connector.taken(ids)
        finally:
            connector.close()
        pks = [pk for pk, message_id in rows if message_id in taken]
        acknowledged += state.move_all(
            kit.ledger,
            pks,
            {Status.DELIVERED_LOCAL},
            Status.ACKNOWLEDGED,
            f"taken by the local system ({connector.kind})",
        )
    return acknowledged
