"""What stands at a recipient for a record not received yet: a recall, or an erasure request.

A recall or an erasure request can reach the recipient before the record it
names: the record failed there for a moment and waits in a delay queue, was
parked by the recipient's broker (to be replayed by an administrator), or
another replica is still recording it. What it asks then **stands**
(``lifecycle_standing``): ids, digests and times, nothing personal. The
record, when it comes from the same sender under the id and with the digest
named, and dated no later than what named it, is taken back as it arrives
(``matching``, asked of every new record of a sender with something standing):
withdrawn for a recall (``lifecycle.receiver.on_arrival``), withdrawn and
erased for an erasure request (``retention.received.on_arrival``).

Read by when it came here, not the date its sender signed: something that came
longer ago than ``limits.max_age_s`` (and the skew allowed) can no longer match
(its record would be refused as stale), and is neither read nor counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from gateway.feature import ApplyContext, Received
from gateway.ledger.records import MESSAGE_ID_WIDTH
from gateway.ledger.store import as_utc
from gateway.lifecycle.tables import standing
from gateway.model import MessageRef


class Kind(StrEnum):
    """What stands: a recall (the record is withdrawn on arrival) or an erasure
    request (withdrawn and erased)."""

    RECALL = "RECALL"
    ERASURE = "ERASURE"


# What may stand of one record (by id, whatever digest is named), recalls and erasure
# requests together: more say nothing new (a broken or hostile sender's). And of one
# sender at one authority: an honest one has a few, whose records are on their way.
STANDING_MAX = 4
SENDER_STANDING_MAX = 256
# A digest as the checks write it (SHA-256, hex): what the record's must equal.
DIGEST_LENGTH = 64


@dataclass(frozen=True)
class Standing:
    """One recall or erasure request standing for a record that just came."""

    pk: int
    kind: Kind
    message_id: str  # of the recall or erasure request
    at: datetime  # when it came here


_LIVE = (standing.c.authority == bindparam("authority")) & (standing.c.at >= bindparam("since"))
_OPEN = standing.c.resolved_at.is_(None)
# Read for every new record of a sender with something standing here (``matching``):
# by the index on (authority, sender, original_id).
_MATCHING = (
    select(standing.c.id, standing.c.kind, standing.c.recall_id, standing.c.at)
    .where(
        _LIVE,
        _OPEN,
        standing.c.sender == bindparam("sender"),
        standing.c.original_id == bindparam("original_id"),
        standing.c.original_digest == bindparam("digest"),
        standing.c.recall_created_at >= bindparam("created_at"),
    )
    .order_by(standing.c.id)
)
# Before something stands (``may_stand``): what stands of the same id, whatever
# digest, and of its sender.
_OF_ONE_ID = select(func.count()).where(
    _LIVE,
    _OPEN,
    standing.c.sender == bindparam("sender"),
    standing.c.original_id == bindparam("original_id"),
)
_OF_ONE_SENDER = select(func.count()).select_from(
    select(standing.c.id)
    .where(_LIVE, _OPEN, standing.c.sender == bindparam("sender"))
    .limit(bindparam("most"))
    .subquery()
)
# Once a received batch: the senders with something standing here, by the index on
# (authority, at).
_SENDERS = select(standing.c.sender).where(_LIVE, _OPEN).distinct()
_SENDERS_KEY = "lifecycle.standing"


def _since(ctx: ApplyContext) -> datetime:
    limits = ctx.settings.limits
    return ctx.now - timedelta(seconds=limits.max_age_s + limits.future_skew_s)


def _keys(ctx: ApplyContext, msg: Received, original_id: str) -> dict[str, Any]:
    """The parameters every read shares: whose, and how recent."""
    return {
        "authority": msg.authority,
        "since": _since(ctx),
        "sender": msg.sender,
        "original_id": original_id,
    }


def can_name(ref: MessageRef) -> bool:
    """Whether a recorded message could have the id and digest ``ref`` names."""
    return len(ref.message_id) <= MESSAGE_ID_WIDTH and len(ref.digest) == DIGEST_LENGTH


def may_stand(ctx: ApplyContext, msg: Received, ref: MessageRef) -> bool:
    """Whether ``msg`` may stand for ``ref``: not one too many of that id or of its
    sender (recalls and erasure requests counted together)."""
    keys = {**_keys(ctx, msg, ref.message_id), "most": SENDER_STANDING_MAX}
    conn = ctx.conn
    return (
        int(conn.execute(_OF_ONE_ID, keys).scalar_one()) < STANDING_MAX
        and int(conn.execute(_OF_ONE_SENDER, keys).scalar_one()) < SENDER_STANDING_MAX
    )


def stand(ctx: ApplyContext, msg: Received, ref: MessageRef, kind: Kind) -> None:
    """``msg`` (a recall or erasure request) stands for ``ref``, not received here yet."""
    ctx.conn.execute(
        insert(standing).values(
            authority=msg.authority,
            sender=msg.sender,
            kind=kind.value,
            original_id=ref.message_id,
            original_digest=ref.digest,
            recall_id=msg.message_id,
            recall_created_at=as_utc(msg.env.header.created_at),
            at=ctx.now,
        )
    )
    # A record later in this transaction may be the one it names. Only once the batch
    # looked (``matching``): a set begun here would hide every other sender's.
    senders = ctx.batch.get(_SENDERS_KEY)
    if senders is not None:
        senders.add(msg.sender)


def matching(ctx: ApplyContext, msg: Received) -> list[Standing]:
    """What stands here for ``msg`` (same sender, id and digest), oldest first: only
    what was made after the record. One made before it names a record not yet made,
    which an honest sender never does (a hostile one could, to hold a receipt for a
    record the recipient's staff never saw).

    One look a batch for the senders with something standing here, and one for each
    record only of those (issue 14)."""
    senders = ctx.batch.get(_SENDERS_KEY)
    if senders is None:
        keys = {"authority": msg.authority, "since": _since(ctx)}
        found = {str(r[0]) for r in ctx.conn.execute(_SENDERS, keys).all()}
        senders = ctx.batch[_SENDERS_KEY] = found
    if msg.sender not in senders:
        return []
    keys = {
        **_keys(ctx, msg, msg.message_id),
        "digest": msg.digest,
        "created_at": as_utc(msg.env.header.created_at),
    }
    return [
        Standing(int(r.id), Kind(r.kind), str(r.recall_id), as_utc(r.at))
        for r in ctx.conn.execute(_MATCHING, keys).all()
    ]


def resolve(ctx: ApplyContext, rows: list[Standing]) -> None:
    """``rows`` no longer stand: the record they name came."""
    ctx.conn.execute(
        update(standing).where(standing.c.id.in_([r.pk for r in rows])).values(resolved_at=ctx.now)
    )


def tally(conn: Connection, authority: str, sender: str, message_id: str) -> tuple[int, int]:
    """Of what ``message_id`` (``sender``'s recall or erasure request) stood for at
    ``authority``: how many came, of how many."""
    came, stood = conn.execute(
        select(func.count(standing.c.resolved_at), func.count()).where(
            standing.c.authority == authority,
            standing.c.sender == sender,
            standing.c.recall_id == message_id,
        )
    ).one()
    return int(came), int(stood)
