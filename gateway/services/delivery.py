"""The sender side of delivery: publish the outbox, re-send what got no receipt.

The ledger is the outbox. A message leaves the outbox only when the broker
confirmed it; one the broker could not route, refused, or lost with the
connection stays (or returns) and is published again. A message with no
signed receipt by its deadline is re-sent with the same id and bytes until
its budget is spent, then dead-lettered with the reason, unless the
recipient's visible backlog explains the wait (``services.backlog``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection

from gateway.context import Gateway
from gateway.errors import CafgwError, TransportError
from gateway.ledger import dismissed
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.handoff import Claimed
from gateway.ledger.records import OutboxItem
from gateway.ledger.status import Route, Status
from gateway.services.backlog import Action, decide_all
from gateway.transport.base import (
    OutgoingMessage,
    PendingPublish,
    PublishOutcome,
    Settled,
    routing_key,
)
from gateway.transport.topology import REGIONAL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishSummary:
    confirmed: int = 0
    returned: int = 0
    failed: int = 0
    claimed: int = 0  # of them, taken by a claim of the outbox (not handed over)


def publish_outbox(
    gw: Gateway,
    limit: int = 500,
    handed: Sequence[Claimed] = (),
    *,
    claim: bool = True,
    requeue: Callable[[list[Claimed]], None] | None = None,
) -> PublishSummary:
    """Publish ``handed`` (rows this process recorded claimed for its sender loop:
    ``gateway.ledger.handoff``) that are still queued and, if ``claim``, claim and
    publish up to ``limit`` more outbox messages of the hosted authorities, in one
    publish.
    If the ledger fails before anything is published, ``handed`` goes to ``requeue``
    (back to the hand-off) rather than waiting out its claim.

    Messages routed to an inbox travel on the main exchange, escalation
    notices on the escalation exchange. A message with a receipt to wait for
    (everything but receipts and notices for the regional group, who sign
    none) gets its sender's receipt deadline.
    """
    now = gw.clock()
    lease = outbox_lease(gw)
    claimed: list[OutboxItem] = []
    try:
        if claim and limit > 0:
            claimed = gw.ledger.claim_outbox(limit, gw.hosted, now, now + lease)
        # Stopped, recalled or erased since it was handed over: not published.
        queued = gw.ledger.still_queued([i.pk for c in handed for i in c.items])
    except CafgwError:
        if handed and requeue is not None:
            requeue(list(handed))
        if claimed:
            # Claimed, then the ledger failed: back now if it answers, not once the
            # lease lapses (published by no one meanwhile).
            _give_back(gw, [Claimed(tuple(claimed), now + lease)])
        raise
    groups = [Claimed(tuple(i for i in c.items if i.pk in queued), c.held_until) for c in handed]
    if claimed:
        groups.append(Claimed(tuple(claimed), now + lease))
    return replace(_publish(gw, groups, now, lease, wake=False), claimed=len(claimed))


def _give_back(gw: Gateway, claims: list[Claimed]) -> None:
    """Release ``claims`` after a ledger failure, if the ledger answers; else their
    leases lapse, and another loop or replica takes them then."""
    try:
        gw.ledger.release_claims(claims, wake=True)
    except CafgwError as exc:
        log.warning("claims kept until their lease lapses: %s", exc)


def outbox_lease(gw: Gateway) -> timedelta:
    """How long a claim on outbox rows lasts.

    It outlasts a publish (database.outbox_lease_s > broker.confirm_timeout_s,
    checked when the settings load): a replica that dies mid-publish leaves its
    claims to the others after it runs out.
    """
    return timedelta(seconds=gw.settings.database.outbox_lease_s)


# The longest a publish with ``open_only`` waits for the broker's confirms.
INLINE_CONFIRM_S = 2.0


def publish_claimed(
    gw: Gateway, items: Sequence[OutboxItem], held_until: datetime, *, open_only: bool = False
) -> PublishSummary:
    """Publish ``items``, recorded by this process already claimed until ``held_until``
    (``Ledger.record(claimed_until=...)``), without waiting for the sender loop to
    claim them: one transaction and one hop between threads less.

    Whatever does not go out (no broker, a refusal, no confirm) goes back to the
    outbox at once and wakes the sender loops, which publish it as any other.
    ``open_only``: for a thread that must not wait on the broker (the consumer,
    which must keep its own connection's heartbeats): only on a publishing
    connection open now, never opening one, and waiting at most
    ``INLINE_CONFIRM_S`` for the confirms.
    """
    return start_claimed(gw, items, held_until, open_only=open_only).finish()


def start_claimed(
    gw: Gateway, items: Sequence[OutboxItem], held_until: datetime, *, open_only: bool = False
) -> InFlight:
    """``publish_claimed``, returning once the messages are sent: ``InFlight.finish``
    waits for their confirms and marks each row by its outcome. The claim covers the
    wait: finish well within it (``database.outbox_lease_s``)."""
    lease = outbox_lease(gw)
    return _start(
        gw, [Claimed(tuple(items), held_until)], gw.clock(), lease, wake=True, open_only=open_only
    )


def _publish(
    gw: Gateway,
    groups: list[Claimed],
    now: datetime,
    lease: timedelta,
    *,
    wake: bool,
) -> PublishSummary:
    """Publish rows this process claimed, each group until its ``held_until``, and
    mark each by its outcome (``_start``, then ``InFlight.finish``)."""
    return _start(gw, groups, now, lease, wake=wake).finish()


def _start(
    gw: Gateway,
    groups: list[Claimed],
    now: datetime,
    lease: timedelta,
    *,
    wake: bool,
    open_only: bool = False,
) -> InFlight:
    """Start publishing rows this process claimed, each group until its ``held_until``.
    ``wake``: give back what fails with a wake-up (``release_claims``). ``open_only``:
    see ``publish_claimed``."""
    if open_only:
        claims = [c for c in groups if c.items]
    else:
        claims = _connected(gw, groups, lease, wake=wake)
    items = [i for c in claims for i in c.items]
    if not items:
        return InFlight(gw, [], Settled(()), now, wake=wake)
    escalation_exchange = gw.topology.escalation_exchange
    outgoing = [
        OutgoingMessage(
            routing_key=routing_key(i.route_to, i.message_type, i.sender),
            body=i.body,
            message_id=i.message_id,
            headers={"x-cafgw-sender": i.sender},
            exchange=escalation_exchange if i.route is Route.ESCALATION else None,
        )
        for i in items
    ]
    timeout_s = gw.settings.broker.confirm_timeout_s
    if open_only:
        timeout_s = min(timeout_s, INLINE_CONFIRM_S)
    try:
        pending = gw.transport.start_publish(outgoing, timeout_s, open_only=open_only)
    except TransportError:
        # The connection was lost again on the way (or no node answers): nothing
        # was sent, so the rows go back now, not once their claims lapse.
        gw.ledger.release_claims(claims, wake=wake)
        raise
    return InFlight(gw, claims, pending, now, wake=wake)


class InFlight:
    """Outbox rows published, their confirms not yet awaited (``start_claimed``)."""

    def __init__(
        self,
        gw: Gateway,
        claims: list[Claimed],
        pending: PendingPublish,
        now: datetime,
        *,
        wake: bool,
    ) -> None:
        self._gw = gw
        self._claims = claims  # what failed goes back with the claim it was held by
        self._items = [i for c in claims for i in c.items]
        self._pending = pending
        self._now = now  # receipt deadlines run from here
        self._wake = wake

    @property
    def confirmed(self) -> bool:
        """Every message has its outcome from the broker: ``mark`` waits for nothing."""
        return self._pending.done

    @property
    def ready(self) -> bool:
        """Every message has its outcome, or the confirm timeout has passed: ``finish``
        waits for nothing but the ledger."""
        return self._pending.done or self._pending.overdue

    def finish(self) -> PublishSummary:
        """Wait for the confirms (up to the publish's timeout) and mark each row by its
        outcome: SENT with its receipt deadline, or back to the outbox."""
        summary = self.mark(None)
        self.marked()
        return summary

    def mark(self, conn: Connection | None) -> PublishSummary:
        """``finish``'s marks, in ``conn``'s transaction when given (a transaction each
        otherwise): once that transaction has committed, call ``marked``; one rolled
        back leaves this publish to be finished again."""
        gw, now = self._gw, self._now
        if not self._items:
            return PublishSummary()
        results = self._pending.results()
        confirmed_unreceipted: list[int] = []
        confirmed_by_deadline: dict[float, list[int]] = {}
        returned: list[tuple[int, str]] = []
        failed: set[int] = set()
        for item, result in zip(self._items, results, strict=True):
            if result.outcome == PublishOutcome.CONFIRMED:
                if item.message_type == "Receipt" or item.route_to == REGIONAL:
                    confirmed_unreceipted.append(item.pk)
                else:
                    deadline = gw.settings.delivery_for(item.sender).receipt_deadline_s
                    confirmed_by_deadline.setdefault(deadline, []).append(item.pk)
            elif result.outcome == PublishOutcome.RETURNED:
                returned.append((item.pk, result.reason or "no queue is bound for the recipient"))
            else:
                failed.add(item.pk)
        gw.ledger.mark_sent(confirmed_unreceipted, None, conn=conn)
        for deadline, pks in confirmed_by_deadline.items():
            gw.ledger.mark_sent(pks, now + timedelta(seconds=deadline), conn=conn)
        for pk, reason in returned:
            # Unroutable: the recipient's queue does not exist (yet). Count it as a
            # send attempt so that the re-send budget bounds it.
            gw.ledger.mark_sent(
                [pk],
                now + timedelta(seconds=gw.settings.delivery.receipt_deadline_s),
                reason=f"returned by the broker: {reason}",
                conn=conn,
            )
        if failed:
            back = [
                Claimed(tuple(i for i in c.items if i.pk in failed), c.held_until)
                for c in self._claims
            ]
            gw.ledger.release_claims(back, wake=self._wake, conn=conn)
        return PublishSummary(
            sum(len(p) for p in confirmed_by_deadline.values()) + len(confirmed_unreceipted),
            len(returned),
            len(failed),
        )

    def marked(self) -> None:
        """The marks of ``mark`` are committed: a second ``finish`` marks nothing again."""
        self._items, self._claims = [], []


def _connected(
    gw: Gateway, groups: list[Claimed], lease: timedelta, *, wake: bool
) -> list[Claimed]:
    """The items of ``groups`` whose claim still holds once the publisher's connection
    is open, with the claim each is held by now (a renewed one's new ``held_until``).

    Opening it (after a loss: another node, with backoff) is not covered by
    the lease, so after a new connection the claim is renewed from now and
    only the rows still ours are published; a row another replica took
    meanwhile is left to it. So is a group whose claim has less left than a
    publish may take (rows handed over by ``gateway.ledger.handoff`` that
    waited). With no broker, the claims go back at once for a replica that
    has one.
    """
    try:
        reconnected = gw.transport.connect_publisher()
    except TransportError:
        gw.ledger.release_claims(groups, wake=wake)
        raise
    # What a publish may take: a claim with less left is renewed first.
    needed = timedelta(seconds=gw.settings.broker.confirm_timeout_s)
    out: list[Claimed] = []
    for index, group in enumerate(groups):
        now = gw.clock()
        if not reconnected and group.held_until - now >= needed:
            out.append(group)
            continue
        renewed_until = now + lease
        pks = [i.pk for i in group.items]
        try:
            held = gw.ledger.renew_claims(pks, group.held_until, renewed_until)
        except CafgwError:
            _give_back(gw, [*out, *groups[index:]])  # each with the claim it is held by
            raise
        out.append(Claimed(tuple(i for i in group.items if i.pk in held), renewed_until))
    return out


RESEND_LOOP = "the re-send loop"
NOT_RESENT = "not sent again: its body was erased here"


def resend_overdue(gw: Gateway, limit: int = 500) -> int:
    """Re-queue sent messages whose receipt is overdue, or dead-letter them; returns count.

    Each move is conditional on the row still being SENT with its deadline
    past: a receipt that arrives between the read and the write wins, and the
    message stays DELIVERED instead of being sent again; a replica that
    re-sent it meanwhile wins too, so each overdue attempt is re-sent once.
    """
    now = gw.clock()
    overdue = [r for r in gw.ledger.receipt_overdue(now, limit) if r.authority in gw.hosted]
    dead: dict[str, list[int]] = {}
    again: dict[str, list[int]] = {}
    wait: dict[tuple[str, float, bool], list[int]] = {}
    for record, decision in zip(overdue, decide_all(gw, overdue), strict=True):
        if decision.action is Action.DEAD:
            dead.setdefault(decision.reason, []).append(record.pk)
        elif decision.action is Action.RESEND:
            again.setdefault(decision.reason, []).append(record.pk)
        else:
            deadline_s = gw.settings.delivery_for(record.authority).receipt_deadline_s
            wait.setdefault((decision.reason, deadline_s, decision.backlog), []).append(record.pk)
    for (reason, deadline_s, backlog), pks in wait.items():
        gw.ledger.wait_longer_for_receipt(
            pks, now + timedelta(seconds=deadline_s), reason, now, backlog=backlog
        )
    changed = 0
    with gw.ledger.transaction() as conn:
        for reason, pks in dead.items():
            changed += _dead_letter(gw, conn, pks, now, reason)
        for reason, pks in again.items():
            changed += len(
                gw.ledger.move_overdue(pks, now, Status.RETRYING, reason, conn, where=[HAS_BODY])
            )
            # Erased here while it waited: there is nothing to send again. It left, and may
            # be held there (its recipient is asked to erase it where an erasure did it):
            # a dead letter at once. (Re-queued, the claim would withdraw it, as if it had
            # never left.)
            changed += _dead_letter(gw, conn, pks, now, f"{reason}; {NOT_RESENT}", ~HAS_BODY)
    return changed


def _dead_letter(
    gw: Gateway,
    conn: Connection,
    pks: Sequence[int],
    now: datetime,
    reason: str,
    *where: ColumnElement[bool],
) -> int:
    """Dead-letter those of ``pks`` still overdue (and meeting ``where``); one erased here
    while it waited (retention, an erasure) has nothing left to replay, and nobody is
    asked to act on it (``dismissed.erased``). How many moved."""
    moved = gw.ledger.move_overdue(
        pks, now, Status.DEAD_LETTERED, reason, conn, where=where, next_attempt_at=None
    )
    dismissed.erased(gw.ledger, conn, moved, RESEND_LOOP)
    return len(moved)
