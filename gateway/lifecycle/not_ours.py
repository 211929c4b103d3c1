""" "Not ours": a recipient says a message was not for it; its sender recalls it.

The recipient's gateway takes the message out of its local system's inbox
if it was not handed over yet, restricts it (the inbox no longer serves
it) and sends the sender a signed ``MISDIRECTED`` notice (no personal
data) naming the message. The sender's gateway then recalls the message
on its own (``feature.on_misdirected``), which answers with the proof of
what was done.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from gateway.errors import NotFoundError
from gateway.feature import Kit
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Audience, Detail, LegalBasis, Notification, NotificationType, Purpose
from gateway.outbox import new_envelope


@dataclass(frozen=True)
class NotOurs:
    message_id: str
    sender: str
    notice_id: str
    withdrawn: bool


def not_ours(kit: Kit, authority: str, message_id: str, actor: str) -> NotOurs:
    """Tell the sender of ``message_id`` (received by ``authority``) that it was not ours."""
    kit.outbox.signer(authority)
    with kit.ledger.transaction() as conn:
        row = conn.execute(
            select(messages).where(
                messages.c.authority == authority,
                messages.c.direction == Direction.INBOUND.value,
                messages.c.message_id == message_id[:64],
                messages.c.status != Status.QUARANTINED.value,
                messages.c.message_type != "Receipt",
            )
        ).first()
        if row is None:
            raise NotFoundError(f"message {message_id} not found")
        m = row._mapping
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
        if not moved:
            kit.ledger.note(
                m["id"],
                Status(m["status"]),
                f"not ours ({actor}): the sender was asked to recall it",
                conn,
            )
    return NotOurs(m["message_id"], m["sender"], env.header.message_id, bool(moved))
