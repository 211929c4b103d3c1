"""Handing verified inbound messages to push connectors (webhook, file drop).

Each turn takes, per authority with a push connector, the waiting messages
whose next attempt is due (oldest first), hands them over one by one and
records the outcomes in one transaction:

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

Replicas of the gateway on one ledger share the work: each turn claims the
messages it hands over (a lease, ``state.claim``), so each message is handed
over once per attempt. A turn starts no handover once its lease is closer to
running out than two handover timeouts; what it did not reach goes back at
once. A killed replica's claims lapse and another replica takes them (its
local system may then see that message twice, with the same
``Idempotency-Key`` or file name, as after any crash).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import Connection

from gateway.connectors import registry, state
from gateway.connectors.base import Connector, Handover, LocalMessage, Outcome
from gateway.errors import CafgwError
from gateway.feature import Kit
from gateway.ledger.status import Status

log = logging.getLogger(__name__)

TURN = 100  # messages per authority per turn (and per ledger transaction)
SWEEP = 2000  # placed messages looked at per authority when checking what was taken
# A claim's lease: at least this, or four handover timeouts when those are longer. A
# replica killed mid-turn holds its claims this long; a turn starts no handover
# in the last two timeouts of its lease (what it did not reach goes back at once).
CLAIM_LEASE_S = 15.0


def deliver_pending(kit: Kit, limit: int = TURN) -> int:
    """One turn for every hosted authority with a push connector; messages settled."""
    settled = 0
    for code in registry.pushing(kit.settings):
        timeout_s = kit.settings.delivery_for(code).local_timeout_s
        lease_s = max(CLAIM_LEASE_S, 4 * timeout_s)
        now = kit.clock()
        items = state.claim(kit.ledger, code, now, now + timedelta(seconds=lease_s), limit)
        if not items:
            continue
        started = time.monotonic()
        try:
            connector = registry.connector_for(kit.settings, code)
        except CafgwError as exc:
            # One authority's broken connector must not hold up the others; it is a
            # failed handover like any other, so it shows and alerts.
            log.error("local delivery for %s: %s", code, exc)
            with kit.ledger.transaction() as conn:
                _defer(kit, conn, code, items[0], f"connector unusable: {exc}")
            state.release(kit.ledger, [i.pk for i in items[1:]])
            continue
        try:
            budget_s = lease_s - 2 * timeout_s
            settled += _hand_over(kit, code, connector, items, started + budget_s)
        finally:
            connector.close()
    return settled


def _hand_over(
    kit: Kit, code: str, connector: Connector, items: list[LocalMessage], stop_at: float
) -> int:
    done: list[tuple[LocalMessage, Handover]] = []
    failed: tuple[LocalMessage, Handover] | None = None
    for item in items:
        if time.monotonic() >= stop_at:
            break  # the claim would lapse mid-handover: the rest go back below
        handover = connector.deliver(item)
        if handover.outcome is Outcome.RETRY:
            failed = (item, handover)
            break
        done.append((item, handover))
    to_publish: list[str] = []
    try:
        _record_outcomes(kit, code, connector, done, failed, to_publish)
    finally:
        # What was not reached (or not recorded) is free for the next turn at once.
        state.release(kit.ledger, [i.pk for i in items])
    connector.publish(to_publish)
    if failed is not None:
        log.warning(
            "local system of %s unavailable (%s); next try in about %.0f s",
            code,
            failed[1].reason,
            kit.settings.delivery_for(code).local_backoff().wait_s(failed[0].attempts + 1),
        )
    return len(done)


def _record_outcomes(
    kit: Kit,
    code: str,
    connector: Connector,
    done: list[tuple[LocalMessage, Handover]],
    failed: tuple[LocalMessage, Handover] | None,
    to_publish: list[str],
) -> None:
    ledger = kit.ledger
    with ledger.transaction() as conn:
        for item, handover in done:
            reason = handover.reason
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
                continue
            moved = state.move(
                ledger,
                conn,
                item.pk,
                state.WAITING,
                Status.DELIVERED_LOCAL,
                f"handed to the local system ({connector.kind}): {reason}",
                next_attempt_at=None,
            )
            if moved and handover.outcome is Outcome.TAKEN:
                state.move(
                    ledger,
                    conn,
                    item.pk,
                    {Status.DELIVERED_LOCAL},
                    Status.ACKNOWLEDGED,
                    f"the local system took it ({connector.kind})",
                )
            elif moved:
                to_publish.append(item.message_id)
        if failed is not None:
            item, handover = failed
            _defer(kit, conn, code, item, f"handover failed: {handover.reason}")


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
