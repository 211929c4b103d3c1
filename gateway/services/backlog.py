"""Whether a message with no receipt yet should be sent again: look at the recipient first.

A fixed receipt deadline turns a recipient's backlog (a slow or stopped
gateway, a broker outage) into waves of re-sends that only lengthen the
queue, and, once the re-send budget is spent, into dead letters for
messages that are safe in the recipient's inbox. So before re-sending, the
sender looks at what it can see:

1. older than ``limits.max_age_s``: the recipient would refuse it as stale,
   so it is dead-lettered (a true dead letter);
2. the recipient's retry delay queues hold messages (or the broker would
   not count them), and this one could be among them: it could last have
   been in the inbox (its last send, or the last look that found the inbox
   holding messages, unless a later message sent once was receipted since it
   then left the inbox) less than the recipient's whole retry window, every
   delay in full, plus a receipt deadline ago. It may be failing there for a
   moment, or waiting for another message (a correction that overtook its
   original waits for it through the retries), and will be judged again;
   wait another deadline, no send counted. Out of order, so a later message
   receipted proves nothing here;
3. the recipient has receipted a later message of ours on the same queue
   (sent once, after this one; for a copy sent again, one made after its
   last send): queues are first in, first out, so it has passed this one,
   whose receipt is lost: re-send now, whatever its inbox holds (but a copy
   whose re-send budget is spent is not dead-lettered on the times alone
   while the inbox holds messages: it waits as in 5);
4. the broker cannot be asked: nothing can be sent anyway; wait another
   deadline, no send counted;
5. the recipient's inbox holds messages: this one is presumably among them
   and a copy would only queue behind it; wait another deadline, no send
   counted, however long the backlog lasts;
6. otherwise (the inbox is empty or gone): re-send, or dead-letter once the
   re-send budget is spent, as before.

Only sends count towards the budget, so neither a backlog nor a message
retried at its recipient ends in a false dead letter, and waiting costs the
broker nothing. The retry window is this gateway's retry policy for the
recipient (the region's, unless overridden): a recipient retrying longer may
still see a message re-sent, whose copy it drops as a repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.context import Gateway
from gateway.errors import TransportError
from gateway.ledger.records import MessageRecord, Receipted
from gateway.ledger.status import Route
from gateway.settings import DeliverySettings
from gateway.transport.base import InboxState

log = logging.getLogger(__name__)


class Action(StrEnum):
    RESEND = "RESEND"
    WAIT = "WAIT"
    DEAD = "DEAD"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    backlog: bool = False
    """WAIT because the recipient's inbox held messages or could not be looked at: the
    message may still have been in it (``Ledger.last_in_inbox``)."""


def decide(
    record: MessageRecord,
    delivery: DeliverySettings,
    *,
    inbox: InboxState | None,
    passed: bool,
    now: datetime,
    max_age_s: float,
    retry_window_s: float = 0.0,
    last_in_inbox: datetime | None = None,
) -> Decision:
    """What to do with ``record``, overdue at ``now``; ``inbox`` None: the broker did not
    answer. ``retry_window_s``: how long the recipient may go on retrying a message;
    ``last_in_inbox``: when the message could last have been in its inbox (its creation
    when None)."""
    to = record.recipient
    deadline = f"{delivery.receipt_deadline_s:.0f} s"
    if record.created_at + timedelta(seconds=max_age_s) <= now:
        return Decision(
            Action.DEAD,
            f"no receipt from {to} within limits.max_age_s ({max_age_s:.0f} s): "
            "it would now be refused as stale",
        )
    since = record.created_at if last_in_inbox is None else last_in_inbox
    retried_until = since + timedelta(seconds=retry_window_s + delivery.receipt_deadline_s)
    if inbox is not None and _may_be_retried(inbox) and now < retried_until:
        held = (
            "its retry queues could not be counted"
            if inbox.retrying is None
            else f"its retry queues hold {inbox.retrying} message(s)"
        )
        # No time of its own in the reason: rows waiting alike are moved together.
        return Decision(
            Action.WAIT,
            f"no receipt from {to} yet: {held}, each judged again after its delay (failing "
            "there for a moment, or waiting for another message), perhaps this one; not "
            f"re-sent while it may still be retried there, looking again in {deadline}",
            # Still perhaps in the inbox, unless a later message sent once was receipted:
            # then it has left it, and the window is not moved on.
            backlog=inbox.waiting > 0 and not passed,
        )
    if not passed:
        if inbox is None:
            return Decision(
                Action.WAIT,
                f"no receipt from {to} yet and the broker cannot be asked about its inbox; "
                f"not re-sent, looking again in {deadline}",
                backlog=True,
            )
        if inbox.exists and inbox.waiting > 0:
            return Decision(
                Action.WAIT,
                f"no receipt from {to} yet: its inbox holds {inbox.waiting} message(s) "
                f"({inbox.consumers} consumer(s)), presumably this one among them; not re-sent, "
                f"looking again in {deadline}",
                backlog=True,
            )
    if delivery.resend_backoff().exhausted(record.attempts):
        if passed and record.attempts > 1 and inbox is not None and inbox.waiting > 0:
            # Passed, it would be re-sent; but a copy's last chance is not taken on
            # the times alone (replicas' clocks may disagree) while the inbox may
            # still hold it: it waits, as the backlog rule has it, until max_age_s.
            return Decision(
                Action.WAIT,
                f"no receipt from {to} after {record.attempts} sends, the last allowed; "
                f"its inbox holds {inbox.waiting} message(s), perhaps this one; not "
                f"dead-lettered, looking again in {deadline}",
                backlog=True,
            )
        return Decision(
            Action.DEAD,
            f"no receipt from {to} after {record.attempts} sends ({deadline} each)",
        )
    why = f"no receipt from {to} within {deadline}"
    if passed:
        why = f"{to} has receipted later messages"
    return Decision(Action.RESEND, f"{why}; re-sending (send {record.attempts + 1})")


def _may_be_retried(inbox: InboxState) -> bool:
    """Whether a message of ours may be in the recipient's retry queues now."""
    return inbox.exists and (inbox.retrying is None or inbox.retrying > 0)


def decide_all(gw: Gateway, overdue: Sequence[MessageRecord]) -> list[Decision]:
    """A decision for each overdue record (of hosted authorities), one broker look per pass."""
    now = gw.clock()
    recipients = sorted({r.recipient for r in overdue})
    states: dict[str, InboxState] | None
    try:
        states = gw.transport.inbox_states(recipients) if recipients else {}
    except TransportError as exc:  # BrokerUnavailableError included
        log.warning("cannot look at the recipients' inboxes (%s); nothing re-sent this time", exc)
        states = None
    # Read only where the recipient's retry queues may hold it: a backlog's passes
    # (the inbox full, the retry queues empty) do not pay for it.
    retried = {code for code, state in (states or {}).items() if _may_be_retried(state)}
    last_in_inbox = gw.ledger.last_in_inbox([r.pk for r in overdue if r.recipient in retried])
    # Per queue: a message on another route (an escalation queue) passes nothing here.
    # One made before every overdue message of its queue passed none of them
    # (``_passed``), so the read looks no further back than the oldest of them.
    oldest: dict[tuple[str, str, Route], int] = {}
    for r in overdue:
        queue = _queue(r)
        oldest[queue] = min(r.pk, oldest.get(queue, r.pk))
    latest = {
        queue: gw.ledger.latest_receipted_single_send(*queue, after_pk=pk)
        for queue, pk in oldest.items()
    }
    # A copy sent again is read only where a later message could have passed it.
    last_sent = gw.ledger.last_sent(
        [
            r.pk
            for r in overdue
            if r.attempts > 1
            and (found := latest[_queue(r)]) is not None
            and found.created_at > r.created_at
        ]
    )
    return [
        decide(
            r,
            gw.settings.delivery_for(r.authority),
            inbox=None if states is None else states.get(r.recipient),
            passed=_passed(r, latest[_queue(r)], last_sent.get(r.pk)),
            now=now,
            max_age_s=gw.settings.limits.max_age_s,
            retry_window_s=gw.settings.delivery_for(r.recipient).retry_window_s(),
            last_in_inbox=last_in_inbox.get(r.pk),
        )
        for r in overdue
    ]


def _queue(record: MessageRecord) -> tuple[str, str, Route]:
    return (record.authority, record.recipient, record.route)


def _passed(record: MessageRecord, latest: Receipted | None, last_sent: datetime | None) -> bool:
    """Whether ``latest`` (receipted, sent once) went into the queue after ``record``."""
    if latest is None:
        return False
    if record.attempts == 1:
        # A message sent once has its place in the queue fixed by its outbox order.
        return latest.pk > record.pk
    # A copy sent again went in at its last send, later than messages with higher
    # keys. That send's SENT is written once the broker confirmed it: a message made
    # after it was published after the copy. Without that time, nothing is known.
    return last_sent is not None and latest.created_at > last_sent
