"""A received original as the recipient holds it, and taking it back from the local system.

A recall, correction or erasure request names an earlier message by id and
digest. Only that message's sender may name it: the recipient looks it up
among what that sender sent it, so a request from anyone else finds nothing
(and learns nothing about what others sent). Then either the local system
never had it, and it is withdrawn from the inbox (a drop file not yet taken
is taken back through the connector), or it had it since its handover, and
the notice is passed on to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, select
from sqlalchemy.orm import aliased

from gateway.connectors import registry
from gateway.errors import CafgwError
from gateway.feature import Kit
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import HANDED_OVER, Direction, Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import history, messages
from gateway.model import ActionTaken, MessageRef

log = logging.getLogger(__name__)

# States in which a message the local system never had can still be withdrawn.
WITHDRAWABLE = (
    Status.VERIFIED,
    Status.REPLAYED,
    Status.DEAD_LETTERED,
    Status.UNDELIVERABLE,
    Status.DELIVERED_LOCAL,
)


@dataclass(frozen=True)
class Held:
    """One received message, as much as acting on it needs (nothing personal)."""

    pk: int
    message_id: str
    sender: str
    message_type: str
    status: Status
    digest: str
    content_digest: str | None
    has_body: bool


@dataclass(frozen=True)
class Fate:
    """What became of a held original: the receipt item's Action, HandedOverAt, and why."""

    action: ActionTaken
    handed_over_at: datetime | None
    said: str


def sent_on(authority: str, copy: Held) -> ColumnElement[bool]:
    """The outbound messages of ``authority``, which holds ``copy``, that may have sent
    its record on: the same content, recorded after the copy came.

    None when the holder had that content before the copy came: sent by itself
    (its own record, echoed back by the copy's sender: any party may sign a body
    it was given as its own message), or received from another party (what it
    sends on is that party's record). Taken for forwards of the copy, the copy's
    sender's recall or erasure request made the holder recall or erase records
    that are its own or another's at every other authority; a party's message is
    its statement, never a change to another's records (found by reviews,
    2026-12-06).
    """
    earlier = aliased(messages)
    return and_(
        messages.c.sender == authority,
        messages.c.content_digest == copy.content_digest,
        messages.c.id > copy.pk,
        ~exists().where(
            earlier.c.direction == Direction.OUTBOUND.value,
            earlier.c.authority == authority,
            earlier.c.sender == authority,
            earlier.c.content_digest == copy.content_digest,
            earlier.c.id < copy.pk,
        ),
        ~exists().where(
            earlier.c.direction == Direction.INBOUND.value,
            earlier.c.authority == authority,
            earlier.c.sender != copy.sender,
            earlier.c.content_digest == copy.content_digest,
            earlier.c.status != Status.QUARANTINED.value,
            earlier.c.id < copy.pk,
        ),
    )


def _held(m: Any) -> Held:
    return Held(
        pk=int(m["id"]),
        message_id=m["message_id"],
        sender=m["sender"],
        message_type=m["message_type"],
        status=Status(m["status"]),
        digest=m["digest"] or "",
        content_digest=m["content_digest"],
        has_body=bool(m["has_body"]),
    )


def sent_by(conn: Connection, authority: str, sender: str, ref: MessageRef) -> list[Held]:
    """Every copy ``authority`` recorded of ``ref``'s id from ``sender`` (any digest)."""
    rows = conn.execute(
        select(messages, HAS_BODY.label("has_body"))
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.INBOUND.value,
            messages.c.sender == sender,
            messages.c.message_id == ref.message_id[:64],
            messages.c.message_type != "Receipt",
        )
        .order_by(messages.c.id)
    ).all()
    return [_held(r._mapping) for r in rows]


def matching(copies: list[Held], ref: MessageRef) -> Held | None:
    """The copy whose digest is the one ``ref`` names (a forged twin never matches)."""
    return next((c for c in copies if c.digest == ref.digest), None)


def handed_over_at(conn: Connection, pk: int) -> datetime | None:
    """When the local system first had message ``pk``, if it ever did."""
    at = conn.execute(
        select(func.min(history.c.at)).where(
            history.c.message_pk == pk, history.c.status.in_(HANDED_OVER)
        )
    ).scalar()
    return None if at is None else as_utc(at)


def _identical_handed(conn: Connection, authority: str, held: Held) -> datetime | None:
    """For a copy not handed over because identical content was: when that content was."""
    if held.content_digest is None:
        return None
    earlier = [
        int(r[0])
        for r in conn.execute(
            select(messages.c.id).where(
                messages.c.authority == authority,
                messages.c.direction == Direction.INBOUND.value,
                messages.c.sender == held.sender,
                messages.c.content_digest == held.content_digest,
                messages.c.id != held.pk,
            )
        ).all()
    ]
    times = [t for t in (handed_over_at(conn, pk) for pk in earlier) if t is not None]
    return min(times) if times else None


def _taken_back(kit: Kit, authority: str, message_id: str) -> bool:
    """Whether the connector took back a message placed for (not taken by) the local system."""
    try:
        connector = registry.connector_for(kit.settings, authority)
    except CafgwError as exc:
        log.error("cannot take back %s from %s's local system: %s", message_id, authority, exc)
        return False
    try:
        return connector.withdraw(message_id)
    finally:
        connector.close()


def take_back(kit: Kit, conn: Connection, authority: str, held: Held, why: str) -> Fate:
    """Withdraw ``held`` from the local system's inbox if it never had it (``WITHDRAWN``);
    otherwise say since when it had it (``PASSED_ON``), or that it is not held here."""
    if held.status is Status.QUARANTINED:
        return Fate(ActionTaken.NOT_HELD, None, "it was refused on receipt: never held here")
    if not held.has_body:
        return Fate(ActionTaken.NOT_HELD, None, "it had already been erased here")
    if held.status is Status.WITHDRAWN:
        said = "it had already been withdrawn before the local system had it"
        return Fate(ActionTaken.WITHDRAWN, None, said)
    handed = handed_over_at(conn, held.pk)
    if held.status is Status.DUPLICATE:
        handed = _identical_handed(conn, authority, held)
    placed_only = held.status is Status.DELIVERED_LOCAL and _taken_back(
        kit, authority, held.message_id
    )
    if (handed is None or placed_only) and held.status in WITHDRAWABLE:
        moved = kit.ledger.transition_from(
            [held.pk],
            WITHDRAWABLE,
            Status.WITHDRAWN,
            f"{why}: withdrawn before the local system had it",
            conn,
            next_attempt_at=None,
            restricted=True,
        )
        if moved:
            return Fate(ActionTaken.WITHDRAWN, None, "withdrawn before the local system had it")
    if handed is None:
        return Fate(ActionTaken.WITHDRAWN, None, "never handed to the local system")
    return Fate(
        ActionTaken.PASSED_ON,
        handed,
        f"the local system had it since {handed.isoformat(timespec='seconds')}",
    )
