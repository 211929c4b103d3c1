""" "Not ours": a recipient says a message was not for it; its sender recalls it.

The recipient's gateway takes the message out of its local system's inbox
if it was not handed over yet, restricts it (the inbox no longer serves
it) and sends the sender a signed ``MISDIRECTED`` notice (no personal
data) naming the message. The sender's gateway then recalls the message
on its own (``feature.on_misdirected``), which answers with the proof of
what was done.

It is said once per message: the notice sent is recorded
(``lifecycle_not_ours``) under a lock on the received message's row, and
saying it again (a double click, an API call retried after a timeout, two
people at once) answers with that notice and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from gateway.errors import NotFoundError
from gateway.feature import Kit
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.lifecycle.tables import not_ours as said
from gateway.model import Audience, Detail, LegalBasis, Notification, NotificationType, Purpose
from gateway.outbox import new_envelope


@dataclass(frozen=True)
class NotOurs:
    message_id: str
    sender: str
    notice_id: str
    withdrawn: bool
    # Said before: ``notice_id`` is the notice sent then, and nothing was sent now.
    already_said: bool = False
    by: str = ""
    at: datetime | None = None


def not_ours(kit: Kit, authority: str, message_id: str, actor: str) -> NotOurs:
    """Tell the sender of ``message_id`` (received by ``authority``) that it was not ours."""
    kit.outbox.signer(authority)
    with kit.ledger.transaction() as conn:
        row = conn.execute(
            select(messages)
            .where(
                messages.c.authority == authority,
                messages.c.direction == Direction.INBOUND.value,
                messages.c.message_id == message_id[:64],
                messages.c.status != Status.QUARANTINED.value,
                messages.c.message_type != "Receipt",
            )
            # Locked: two callers at once decide one after the other, the second seeing
            # the first's notice (on SQLite this takes the write lock now).
            .with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"message {message_id} not found")
        m = row._mapping
        before = _said_before(conn, authority, m["message_id"])
        if before is not None:
            return before
        moved = kit.ledger.transition_from(
            [m["id"]],
            (Status.VERIFIED, Status.REPLAYED),
            Status.WITHDRAWN,
            f"not ours ({actor}): withdrawn before the local system had it",
            conn,
            next_attempt_at=None,
        )
        conn.execute(update(messages).where(messages.c.id == m["id"]).values(restricted=True))
        env = new_envelope(
            kit.clock,
            sender=authority,
            recipient=m["sender"],
            body=Notification(
                type=NotificationType.MISDIRECTED,
                case_ref=None,
                summary=f"Message {m['message_id']} was not for {authority}: please recall it.",
                audience=Audience.PROFESSIONAL,
                details=(Detail("digest", m["digest"] or ""),),
            ),
            correlation=m["correlation_id"],
            legal_basis=LegalBasis.NO_PERSONAL_DATA,
            purpose=Purpose.COORDINATION,
            in_reply_to=m["message_id"],
        )
        kit.ledger.record([kit.outbox.sign(env)], conn)
        conn.execute(
            said.insert().values(
                authority=authority,
                message_id=m["message_id"],
                sender=m["sender"],
                notice_id=env.header.message_id,
                actor=actor[:128],
                at=kit.clock(),
            )
        )
        if not moved:
            kit.ledger.note(
                m["id"],
                Status(m["status"]),
                f"not ours ({actor}): the sender was asked to recall it",
                conn,
            )
    return NotOurs(m["message_id"], m["sender"], env.header.message_id, bool(moved))


def _said_before(conn: Connection, authority: str, message_id: str) -> NotOurs | None:
    row = conn.execute(
        select(said).where(said.c.authority == authority, said.c.message_id == message_id)
    ).first()
    if row is None:
        return None
    m = row._mapping
    return NotOurs(
        m["message_id"],
        m["sender"],
        m["notice_id"],
        withdrawn=False,
        already_said=True,
        by=m["actor"],
        at=m["at"],
    )
