"""Dead letters of every kind, listed with their reason and attempts, and replayed.

Three kinds, one list:

- ``OUTBOUND``: a sent message that got no signed receipt within its re-send
  budget (ledger ``DEAD_LETTERED``). Replay moves it to ``REPLAYED`` with its
  send count reset; the sender loop publishes the same id and bytes again
  (the receiver deduplicates by id and digest).
- ``PARKED``: a received message whose processing failed past the retry
  budget, or whose consumer never settled it (``x-delivery-limit``); it sits
  in the authority's parking queue on the broker. Replay moves it back to the
  inbox with its attempt count reset and the same message id, and records
  ``REPLAYED`` in the ledger (a ``parked_replays`` row, plus a history entry
  on the message's own row when it has one). A message id is whatever its
  publisher set: where different messages are dead-lettered under one (another
  sender's message, a forgery under a genuine id; parked, or in the ledger), a
  replay by the id alone is refused naming them, and one is replayed by its id
  and digest.
- ``LOCAL``: a received message that the local system refused for good
  (a webhook answering 4xx; ledger ``DEAD_LETTERED`` on the inbound row).
  Replay moves it to ``REPLAYED`` with its attempts reset; the handover loop
  delivers it again.

Every replay appends a ``REPLAY`` entry naming who asked to the audit log,
in the same transaction as the ledger record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, insert, select

from gateway.context import Gateway
from gateway.errors import ConflictError, NotFoundError
from gateway.ledger import audit
from gateway.ledger.bodies import HAS_BODY, without_body
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages, parked_replays, under_id
from gateway.transport.base import Delivery, parked_key
from gateway.transport.retry import attempt_of, parked_reason

log = logging.getLogger(__name__)

PEEK_LIMIT = 1000  # parked messages looked at per authority when listing or replaying all


class DeadLetterKind(StrEnum):
    OUTBOUND = "OUTBOUND"  # sent; no receipt within the re-send budget
    PARKED = "PARKED"  # received; processing failed past the retry budget (broker)
    LOCAL = "LOCAL"  # received; refused by the local system


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    authority: str  # the hosted authority it belongs to (sender or recipient)
    recipient: str
    message_type: str
    reason: str | None
    attempts: int  # sends (OUTBOUND), processing tries (PARKED), handover tries (LOCAL)
    dead_lettered_at: datetime | None  # None when the broker did not say
    kind: DeadLetterKind = DeadLetterKind.OUTBOUND
    sender: str = ""
    digest: str | None = None
    """SHA-256 (hex) of the message's bytes: the ledger's, or the parked body's
    (``parked_key``), which names one parked copy among others under its id."""
    erased: bool = False
    """Its body was erased here (its retention period, an erasure): there is nothing to
    replay (a replay answers 409), and it is dismissed (``gateway.ledger.dismissed``)."""


@dataclass(frozen=True)
class Replayed:
    message_id: str
    authority: str
    kind: DeadLetterKind
    status: Status = Status.REPLAYED


def _from_ledger(
    gw: Gateway, authority: str, limit: int, message_id: str | None = None
) -> list[DeadLetter]:
    records = gw.ledger.find(
        message_id=message_id,
        authority=authority,
        status=Status.DEAD_LETTERED,
        limit=limit,
        with_history=False,
    )
    erased: set[int] = set()
    if records:
        with gw.ledger.transaction() as conn:
            erased = without_body(conn, [r.pk for r in records])
    return [
        DeadLetter(
            message_id=r.message_id,
            authority=r.authority,
            recipient=r.recipient,
            message_type=r.message_type,
            reason=r.reason,
            attempts=r.attempts,
            dead_lettered_at=r.updated_at,
            kind=DeadLetterKind.OUTBOUND
            if r.direction == Direction.OUTBOUND
            else DeadLetterKind.LOCAL,
            sender=r.sender,
            digest=r.digest,
            erased=r.pk in erased,
        )
        for r in records
    ]


def parked_attempts(delivery: Delivery) -> int:
    """Processing tries a parked message had: the original, its retries, unsettled returns."""
    return 1 + attempt_of(delivery.headers) + max(0, delivery.delivery_count)


def _parked_at(delivery: Delivery) -> datetime | None:
    deaths = delivery.headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        when = deaths[0].get("time")
        if isinstance(when, datetime):
            return when
    return None


def _letter(authority: str, d: Delivery) -> DeadLetter:
    key = d.routing_key.split(".")
    # Only a key addressed to this authority names a type and a sender (a message
    # planted with a key of another shape, e.g. the parking queue's name, does not).
    ours = len(key) == 3 and key[0] == authority
    recipient, message_type, sender = key if ours else (authority, "?", "?")
    return DeadLetter(
        message_id=d.message_id or "?",
        authority=authority,
        recipient=recipient,
        message_type=message_type,
        reason=parked_reason(d.headers),
        attempts=parked_attempts(d),
        dead_lettered_at=_parked_at(d),
        kind=DeadLetterKind.PARKED,
        sender=sender,
        digest=parked_key(d.message_id, d.body)[1],
    )


def _parked(gw: Gateway, authority: str, limit: int) -> list[DeadLetter]:
    return [_letter(authority, d) for d in gw.transport.peek_parked(authority, limit)]


def list_dead_letters(
    gw: Gateway, authority: str, limit: int = 200, include_parked: bool = True
) -> list[DeadLetter]:
    """Dead letters of ``authority``: ledger ones newest first, then the parking queue's."""
    found = _from_ledger(gw, authority, limit)
    if include_parked and len(found) < limit:
        found.extend(_parked(gw, authority, min(limit - len(found), PEEK_LIMIT)))
    return found


def _audit(
    gw: Gateway,
    conn: Connection,
    actor: str,
    authority: str,
    counterparty: str | None,
    message_id: str,
    digest: str | None,
    detail: str,
) -> None:
    audit.append(
        gw.ledger,
        [
            audit.AuditEvent(
                actor=actor,
                action="REPLAY",
                authority=authority,
                counterparty=counterparty if counterparty and len(counterparty) <= 3 else None,
                message_id=message_id,
                digest=digest,
                detail=detail,
            )
        ],
        conn,
    )


def _replay_ledger(
    gw: Gateway, authority: str, message_id: str, actor: str, digest: str | None
) -> Replayed | None:
    with gw.ledger.transaction() as conn:
        row = conn.execute(
            select(
                messages.c.id,
                messages.c.direction,
                messages.c.sender,
                messages.c.recipient,
                messages.c.digest,
                HAS_BODY.label("held"),
            )
            .where(
                under_id(authority, message_id),
                messages.c.status == Status.DEAD_LETTERED.value,
                *(() if digest is None else (messages.c.digest == digest,)),
            )
            .with_for_update()
        ).first()
        if row is None:
            return None
        if not row.held:
            # Erased here (its retention period, an erasure request): replayed, it would
            # go out, or to the local system, empty. (The body's row is not locked: one
            # erased just after this is withdrawn when claimed, never sent empty.)
            raise ConflictError(
                f"dead letter {message_id} of {authority} was erased here: "
                "there is nothing left to replay"
            )
        outbound = row[1] == Direction.OUTBOUND.value
        gw.ledger.transition(
            [row[0]],
            Status.REPLAYED,
            f"replayed by {actor}; failure count reset",
            conn,
            attempts=0,
            next_attempt_at=None,
        )
        kind = DeadLetterKind.OUTBOUND if outbound else DeadLetterKind.LOCAL
        _audit(
            gw,
            conn,
            actor,
            authority,
            row[3] if outbound else row[2],
            message_id,
            row[4],
            f"{kind.value.lower()} dead letter replayed",
        )
    return Replayed(message_id, authority, kind)


class _NothingParked(Exception):
    """Nothing was parked under the id: the replay record is rolled back."""


def _replay_parked(
    gw: Gateway,
    authority: str,
    message_id: str,
    actor: str,
    seen: DeadLetter | None,
    digest: str | None,
) -> Replayed:
    with gw.ledger.transaction() as conn:
        now = gw.ledger.clock()
        conn.execute(
            insert(parked_replays).values(
                authority=authority,
                message_id=message_id[:64],
                sender=seen.sender[:16] if seen else None,
                message_type=seen.message_type[:32] if seen else None,
                reason=seen.reason if seen else None,
                attempts=seen.attempts if seen else 0,
                status=Status.REPLAYED.value,
                actor=actor[:128],
                at=now,
            )
        )
        rows = conn.execute(
            select(messages.c.id, messages.c.digest).where(
                messages.c.direction == Direction.INBOUND.value,
                messages.c.authority == authority,
                messages.c.message_id == message_id,
                *(() if digest is None else (messages.c.digest == digest,)),
            )
        ).all()
        for pk, _digest in rows:
            gw.ledger.note(pk, Status.REPLAYED, f"parked copy replayed by {actor}", conn)
        _audit(
            gw,
            conn,
            actor,
            authority,
            seen.sender if seen else None,
            message_id,
            digest or (rows[0][1] if rows else None),
            "parked message replayed to the inbox",
        )
        # Inside the transaction: if nothing was parked under this id, the
        # record above is rolled back.
        if gw.transport.replay_parked(authority, message_id, digest) == 0:
            raise _NothingParked
    return Replayed(message_id, authority, DeadLetterKind.PARKED)


def _in_ledger(
    gw: Gateway, authority: str, message_id: str, digest: str | None
) -> list[DeadLetter]:
    """The ledger's dead letters of ``authority`` under ``message_id`` (with ``digest``,
    when given)."""
    return [
        d
        for d in _from_ledger(gw, authority, PEEK_LIMIT, message_id)
        if d.message_id == message_id and digest in (None, d.digest)
    ]


def under(
    gw: Gateway, authority: str, message_id: str, digest: str | None = None
) -> list[DeadLetter]:
    """The dead letters of ``authority`` under ``message_id`` (with ``digest``, when
    given): ledger ones, and every copy parked for it however deep in the parking queue.
    With a digest a ledger one names, the parking queue is not read: the message is
    named, and a replay of it needs no broker."""
    found = _in_ledger(gw, authority, message_id, digest)
    if digest is not None and found:
        return found
    parked = [_letter(authority, d) for d in gw.transport.parked_with(authority, message_id)]
    return found + [d for d in parked if digest in (None, d.digest)]


def replay(
    gw: Gateway, authority: str, message_id: str, actor: str, digest: str | None = None
) -> Replayed:
    """Replay the dead letter ``message_id`` of ``authority``, whatever its kind; with
    ``digest``, the one whose bytes have it.

    NotFoundError when ``authority`` has no such dead letter; ConflictError, naming them,
    when dead letters with different bytes share the id (a ledger one, parked copies) and
    no digest says which: nothing is replayed then.
    """
    digest = digest.lower() if digest else None
    found = under(gw, authority, message_id, digest)
    if not found:
        which = "" if digest is None else f" with digest {digest}"
        raise NotFoundError(
            f"message {message_id}{which} of {authority} is not dead-lettered (nothing to replay)"
        )
    each = _one_each(found)
    if len(each) > 1:
        raise ConflictError(_different(authority, message_id, each))
    # One message (a parked one perhaps parked more than once): replayed by its digest,
    # so nothing parked under the id since the look goes with it.
    the = each[0].digest
    if any(d.kind is not DeadLetterKind.PARKED for d in found):
        done = _replay_ledger(gw, authority, message_id, actor, the)
        if done is not None:
            return done
    seen = next((d for d in found if d.kind is DeadLetterKind.PARKED), None)
    if seen is not None:
        try:
            return _replay_parked(gw, authority, message_id, actor, seen, the)
        except _NothingParked:
            pass
    raise NotFoundError(
        f"message {message_id} of {authority} is not dead-lettered any more (replayed meanwhile?)"
    )


SHOWN = 10  # dead letters a refusal names, of those sharing an id


def _different(authority: str, message_id: str, each: list[DeadLetter]) -> str:
    def one(d: DeadLetter) -> str:
        if d.kind is DeadLetterKind.OUTBOUND:
            return f"an outbound dead letter to {d.recipient} (digest {d.digest or 'not recorded'})"
        where = "parked" if d.kind is DeadLetterKind.PARKED else "a local dead letter"
        return f"{where} from {d.sender} (digest {d.digest or 'not recorded'})"

    listed = "; ".join(one(d) for d in each[:SHOWN])
    more = f"; and {len(each) - SHOWN} more" if len(each) > SHOWN else ""
    return (
        f"{len(each)} different messages of {authority} are dead-lettered under message id "
        f"{message_id}: {listed}{more}. Replay one by its digest (a message id is whatever "
        "its publisher set: one may be another sender's, or a forgery under a genuine id)"
    )


def _one_each(letters: list[DeadLetter]) -> list[DeadLetter]:
    """The first of each digest, in order."""
    seen: dict[str | None, DeadLetter] = {}
    for letter in letters:
        seen.setdefault(letter.digest, letter)
    return list(seen.values())


def replay_all(gw: Gateway, authority: str, actor: str) -> list[Replayed]:
    """Replay every dead letter of ``authority`` (the parking queue up to PEEK_LIMIT), but
    those erased here: there is nothing to replay of them."""
    done = []
    letters = list_dead_letters(gw, authority, limit=PEEK_LIMIT)
    erased = [d for d in letters if d.erased]
    if erased:
        log.info("%d dead letters of %s were erased here: none replayed", len(erased), authority)
    for letter in (d for d in letters if not d.erased):
        try:
            done.append(replay(gw, authority, letter.message_id, actor, letter.digest))
        except NotFoundError:
            # Replayed meanwhile (by another admin, or with an earlier copy of it).
            log.info("dead letter %s of %s already replayed", letter.message_id, authority)
        except ConflictError as exc:  # a ledger row with no digest beside other messages
            log.warning("dead letter %s of %s not replayed: %s", letter.message_id, authority, exc)
    return done


def authority_of(gw: Gateway, message_id: str, digest: str | None = None) -> str:
    """The hosted authority holding dead letter ``message_id`` (with ``digest``, when
    given); NotFoundError if none."""
    wanted = digest.lower() if digest else None
    for code in gw.hosted:  # the ledger first: it needs no broker
        if _in_ledger(gw, code, message_id, wanted):
            return code
    for code in gw.hosted:
        if under(gw, code, message_id, wanted):
            return code
    raise NotFoundError(f"no dead letter {message_id} in the hosted authorities")
