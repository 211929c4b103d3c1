"""What needs a human, per authority: one definition for the dashboard, metrics and alerts.

A message needs a human while it is in one of these states:

- ``DEAD_LETTERED``: sent with no receipt after the whole budget, or refused
  for good by the local system (replay it once the cause is fixed);
- ``QUARANTINED``: a received message that failed verification, schema or
  policy (a possible forgery or replay);
- ``REJECTED``: a local record that could not be converted, or a send the
  recipient refused;
- ``UNDELIVERABLE``: the recipient's local system never acknowledged it;
- ``HANDOVER_FAILING``: received and verified, but the webhook or file drop
  keeps failing; the message waits and is retried (the local system must be
  mended long before the acknowledgement deadline);
- ``RETRYING``: re-sent after a missing receipt (moves on by itself, shown
  so that a rising count is seen).

A human may *dismiss* a message in a final state (who and why are recorded,
with an audit entry); it then leaves the list until it changes status again.
The ledger dismisses one whose body was erased here: nothing is left to act
on (``gateway.ledger.dismissed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
)

from gateway.errors import ConflictError, NotFoundError
from gateway.ledger import audit, dismissed, locks
from gateway.ledger.core import as_utc
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import EITHER_DIRECTION, dismissals, messages, under_id
from gateway.ledger.unindexed import unindexed


class Need(StrEnum):
    DEAD_LETTERED = "DEAD_LETTERED"
    QUARANTINED = "QUARANTINED"
    REJECTED = "REJECTED"
    UNDELIVERABLE = "UNDELIVERABLE"
    HANDOVER_FAILING = "HANDOVER_FAILING"
    RETRYING = "RETRYING"


# Final states a human may take off the list; the others move on by themselves.
DISMISSABLE = dismissed.DISMISSABLE
_BY_STATUS = (*DISMISSABLE, Status.RETRYING)
# Received, verified, waiting for a push handover (see gateway.connectors.state).
_WAITING = (Status.VERIFIED.value, Status.REPLAYED.value)
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Dismissed:
    message_id: str
    authority: str
    status: Status
    actor: str
    reason: str
    at: datetime
    already: bool = False
    """Dismissed before, in this status (a second click, a colleague a moment earlier):
    who, why and when are that dismissal's, and nothing was recorded now."""


def _handover_failing() -> ColumnElement[bool]:
    return and_(
        messages.c.direction == Direction.INBOUND.value,
        messages.c.status.in_(_WAITING),
        messages.c.attempts > 0,
        messages.c.message_type != "Receipt",
    )


# Every status that may need a human, and both directions, named beside the
# conditions below, which say nothing SQLite can search an index by (an OR):
# so the authority's messages in these statuses are found by ``ix_messages_inbox``
# (authority, direction, status), where every message of the authority was read
# at each scrape of the metrics and each look at the dashboard (issue 14).
_MAY_NEED = sorted({*(s.value for s in _BY_STATUS), *_WAITING})


def _needing(codes: Sequence[str]) -> ColumnElement[bool]:
    return and_(
        messages.c.authority.in_(list(codes)),
        EITHER_DIRECTION,
        messages.c.status.in_(_MAY_NEED),
        or_(
            and_(messages.c.status.in_([s.value for s in _BY_STATUS]), dismissed.not_dismissed()),
            _handover_failing(),
        ),
    )


def need_of(status: Status, direction: Direction, attempts: int) -> Need | None:
    """Why a message in this state needs a human (None if it does not)."""
    if status in _BY_STATUS:
        return Need(status.value)
    if direction == Direction.INBOUND and status.value in _WAITING and attempts > 0:
        return Need.HANDOVER_FAILING
    return None


def counts(ledger: Ledger, codes: Sequence[str]) -> dict[tuple[str, Need], int]:
    """Messages needing a human (not dismissed), by (authority, need)."""
    # Written without bound parameters, so PostgreSQL sees one expression in both places.
    tried = case(
        (messages.c.attempts > literal_column("0"), literal_column("1")), else_=literal_column("0")
    )
    query = (
        select(messages.c.authority, messages.c.direction, messages.c.status, tried, func.count())
        .where(_needing(codes))
        .group_by(messages.c.authority, messages.c.direction, messages.c.status, tried)
    )
    out: dict[tuple[str, Need], int] = {}
    with ledger.transaction() as conn:
        for code, direction, status, tried, n in conn.execute(query).all():
            need = need_of(Status(status), Direction(direction), 1 if tried else 0)
            if need is not None:
                out[(code, need)] = out.get((code, need), 0) + int(n)
    return out


def records(ledger: Ledger, codes: Sequence[str], limit: int) -> list[MessageRecord]:
    """Messages needing a human (not dismissed), most recently changed first."""
    if not codes:
        return []
    # Ordered by a value no index holds: by ``ix_messages_changed`` SQLite would walk
    # every message of the authority, newest first, to find the few that need a
    # human, where the statuses' index finds them alone (``unindexed``).
    query = (
        ledger._record_select()
        .where(_needing(codes))
        .order_by(unindexed(messages.c.updated_at).desc(), messages.c.id.desc())
        .limit(limit)
    )
    with ledger.transaction() as conn:
        return [ledger._to_record(r) for r in conn.execute(query).all()]


def dismiss(
    ledger: Ledger,
    authority: str,
    message_id: str,
    actor: str,
    reason: str,
    sender: str | None = None,
    status: Status | None = None,
) -> list[Dismissed]:
    """Take ``authority``'s message off the list, recording who and why (and an audit entry).

    A message dismissed before in the status it has now answers with that
    dismissal (``already``: who, why and when), recording nothing.
    NotFoundError if the authority has no such message in a dismissable state.
    ``sender``: only its rows. An id may be under rows of several senders (a
    message refused because another's holds its id, a forged delivery under
    ``?``): without a sender, ConflictError names them, so that dismissing the
    evidence never takes another sender's message off the list. ``status``: only
    its rows in that status (a sender's dead letter and its refused re-send
    under the same id are dismissed one at a time; the dashboard sends both).
    """
    reason = reason.strip()[:MAX_REASON_CHARS]
    if not reason:
        raise NotFoundError("say why the message is dismissed (a reason is required)")
    done: list[Dismissed] = []
    with ledger.transaction() as conn:
        # A second dismissal at the same moment (a double click) waits for this one and
        # then finds the message dismissed: one dismissal, one audit entry.
        locks.xact_lock(conn, [f"dismiss:{authority}:{message_id}"])
        rows = conn.execute(
            select(
                messages.c.id,
                messages.c.status,
                messages.c.direction,
                messages.c.sender,
                messages.c.recipient,
                messages.c.digest,
            ).where(
                *_asking(authority, message_id, sender, status),
                dismissed.not_dismissed(),
            )
        ).all()
        senders = sorted({r.sender for r in rows})
        if sender is None and len(senders) > 1:
            raise ConflictError(
                f"message id {message_id} of {authority} is under messages from "
                f"{', '.join(senders)}: say whose to dismiss (sender)"
            )
        if not rows:
            earlier = _dismissed_before(conn, authority, message_id, sender, status)
            if earlier:
                return earlier
            raise NotFoundError(
                f"message {message_id} of {authority} is not waiting for a human "
                "(only dead-lettered, quarantined, rejected or undeliverable messages "
                "can be dismissed)"
            )
        now = ledger.clock()
        events = []
        for pk, row_status, direction, row_sender, recipient, digest in rows:
            conn.execute(
                insert(dismissals).values(
                    message_pk=pk,
                    authority=authority,
                    status=row_status,
                    actor=actor[:128],
                    reason=reason,
                    at=now,
                )
            )
            counterparty = recipient if direction == Direction.OUTBOUND.value else row_sender
            events.append(
                audit.AuditEvent(
                    actor=actor[:128],
                    action="DISMISS",
                    authority=authority,
                    counterparty=counterparty if len(counterparty) == 3 else None,
                    message_id=message_id,
                    digest=digest,
                    detail=f"{row_status} dismissed: {reason}",
                )
            )
            done.append(
                Dismissed(message_id, authority, Status(row_status), actor[:128], reason, now)
            )
        audit.append(ledger, events, conn)
    return done


def _asking(
    authority: str, message_id: str, sender: str | None, status: Status | None
) -> list[ColumnElement[bool]]:
    """The rows of ``authority``'s message in a state that asks a human to act, of one
    sender, in one status, where named; found by the id (``under_id``: the status is
    no index's column here)."""
    state = unindexed(messages.c.status)
    chosen = [under_id(authority, message_id), state.in_([s.value for s in DISMISSABLE])]
    if sender is not None:
        chosen.append(messages.c.sender == sender)
    return chosen if status is None else [*chosen, state == status.value]


def _dismissed_before(
    conn: Connection,
    authority: str,
    message_id: str,
    sender: str | None,
    status: Status | None,
) -> list[Dismissed]:
    """The dismissals in force of ``authority``'s message (in the status it still has),
    the latest per row."""
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.status,
            dismissals.c.actor,
            dismissals.c.reason,
            dismissals.c.at,
        )
        .join(dismissals, dismissed.in_force())
        .where(
            *_asking(authority, message_id, sender, status),
        )
        .order_by(messages.c.id, dismissals.c.id)
    ).all()
    latest = {int(pk): (status, actor, reason, at) for pk, status, actor, reason, at in rows}
    return [
        Dismissed(message_id, authority, Status(status), actor, reason, as_utc(at), already=True)
        for status, actor, reason, at in latest.values()
    ]


@dataclass(frozen=True)
class Dismissal:
    """Who took a message off the list, why, and in which status."""

    status: Status
    actor: str
    reason: str
    at: datetime


def dismissals_of(ledger: Ledger, pk: int) -> list[Dismissal]:
    """Every dismissal of the message row ``pk``, oldest first."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(dismissals.c.status, dismissals.c.actor, dismissals.c.reason, dismissals.c.at)
            .where(dismissals.c.message_pk == pk)
            .order_by(dismissals.c.id)
        ).all()
    return [Dismissal(Status(s), a, r, as_utc(at)) for s, a, r, at in rows]
