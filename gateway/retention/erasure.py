"""Erasure on request: everything an authority holds about one child, now.

The child is named by a child key, UPN, NHS number or one of the
authority's case references. Every message about the child, and every
message on the child's case threads, is erased as a retention purge would
erase it (tombstones stay); the child's consent decisions lose their
personal fields; parked dead letters about the child go from the broker;
safeguarding existence queries held here about the child lose their hashes,
approver and reason, and are erased as received (``held_queries``).
The ground is one of UK GDPR Art 17(1)(a)-(e) and the reference is the
council's own request reference: neither may carry personal data, since
both are kept and written to the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from gateway.cases.tables import case_threads
from gateway.crossborder import existence_asked
from gateway.crossborder.children import resolve_child
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.feature import Kit
from gateway.ledger.status import DISCLOSING, HAS_LEFT, OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import about_child, history, messages, of_child
from gateway.lifecycle.tables import recalls
from gateway.model import (
    ERASURE_NAMED_MAX,
    ErasureGround,
    ErasureRequest,
    LegalBasis,
    MessageRef,
)
from gateway.outbox import new_envelope
from gateway.retention import held_queries, local_copies, purge
from gateway.retention.local_copies import ParkedCopy
from gateway.retention.plan import Due, due_where

__all__ = ["ARTICLE", "ErasureGround", "ErasurePlan", "due_where", "erase_child", "plan_erasure"]

RULE_REFERENCE = "erasure.reference"
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,63}$")


ARTICLE = {
    ErasureGround.NO_LONGER_NECESSARY: "UK GDPR Art 17(1)(a): no longer necessary",
    ErasureGround.CONSENT_WITHDRAWN: "UK GDPR Art 17(1)(b): consent withdrawn",
    ErasureGround.OBJECTION: "UK GDPR Art 17(1)(c): objection under Art 21(1)",
    ErasureGround.UNLAWFUL: "UK GDPR Art 17(1)(d): unlawfully processed",
    ErasureGround.LEGAL_OBLIGATION: "UK GDPR Art 17(1)(e): legal obligation to erase",
}


@dataclass(frozen=True)
class ErasurePlan:
    """Everything erasing one child at one authority touches."""

    child_key: str
    due: tuple[Due, ...]
    threads: tuple[str, ...]
    parked: tuple[ParkedCopy, ...]
    # recipient -> ((message id, digest), ...) of the personal data sent to it
    disclosed_to: dict[str, tuple[tuple[str, str], ...]]


def _threads(conn: Connection, authority: str, key: str) -> set[str]:
    found = {
        r[0]
        for r in conn.execute(
            select(messages.c.correlation_id).where(
                messages.c.authority == authority, of_child(key)
            )
        ).all()
    }
    found.update(
        r[0]
        for r in conn.execute(
            select(case_threads.c.correlation_id).where(
                case_threads.c.authority == authority, case_threads.c.child_key == key
            )
        ).all()
    )
    # The existence queries asked about the child: their rows carry no child key.
    found.update(existence_asked.threads_about(conn, authority, key))
    return found


def _due(conn: Connection, authority: str, key: str, threads: set[str], rule: str) -> list[Due]:
    found = {
        d.pk: d
        for part in about_child(key, threads)
        for d in due_where(conn, authority, part, rule)
    }
    return [found[pk] for pk in sorted(found)]


def plan_erasure(kit: Kit, authority: str, ref: str, reference: str) -> ErasurePlan:
    """What erasing the child ``ref`` at ``authority`` would erase (nothing changes)."""
    kit.outbox.signer(authority)
    if not REFERENCE.match(reference):
        raise PolicyRefusal(
            RULE_REFERENCE,
            "the request reference must be the council's own reference (letters, digits, "
            "/ . _ -; at most 64), never a name: it is kept and audited",
        )
    key = resolve_child(kit, authority, ref)
    rule = f"erasure request {reference}"
    with kit.ledger.transaction() as conn:
        threads = _threads(conn, authority, key)
        due = _due(conn, authority, key, threads, rule)
        # Shown by a dry run; ``purge.erase_in`` finds them again when it erases.
        asked = held_queries.naming_erased(conn, authority, threads)
        seen = {d.pk for d in due}
        due += [d for d in held_queries.received(conn, authority, asked, rule) if d.pk not in seen]
        disclosed = _recipients(conn, authority, due, now=False)
    parked = tuple(local_copies.parked_about(kit, authority, key))
    if not due and not threads and not parked:
        raise NotFoundError(f"child {ref} not found")
    return ErasurePlan(key, tuple(due), tuple(sorted(threads)), parked, disclosed)


def queue_notices(
    kit: Kit,
    conn: Connection,
    authority: str,
    disclosed_to: dict[str, tuple[tuple[str, str], ...]],
    ground: ErasureGround,
    reference: str,
    actor: str,
) -> int:
    """Queue signed ErasureRequests to each authority in ``disclosed_to`` (Art 19), naming
    the (message id, digest) sent there, at most ``ERASURE_NAMED_MAX`` a request (more go
    in further requests under the same reference); each is kept for its recipient's
    receipt. How many were queued."""
    queued = 0
    for recipient, sent in disclosed_to.items():
        for first in range(0, len(sent), ERASURE_NAMED_MAX):
            named = tuple(MessageRef(m, d) for m, d in sent[first : first + ERASURE_NAMED_MAX])
            _queue_notice(kit, conn, authority, recipient, named, ground, reference, actor)
            queued += 1
    return queued


def _queue_notice(
    kit: Kit,
    conn: Connection,
    authority: str,
    recipient: str,
    named: tuple[MessageRef, ...],
    ground: ErasureGround,
    reference: str,
    actor: str,
) -> None:
    env = new_envelope(
        kit.clock,
        sender=authority,
        recipient=recipient,
        body=ErasureRequest(reference, ground, named),
        correlation=reference,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    message = kit.outbox.sign(env)
    kit.ledger.record([message], conn)
    conn.execute(
        insert(recalls).values(
            authority=authority,
            kind="ERASURE",
            message_id=env.header.message_id,
            original_id=reference,
            original_digest="",
            recipient=recipient,
            reason=ground.value,
            actor=actor[:128],
            requested_at=kit.clock(),
        )
    )


def _notices(
    kit: Kit,
    authority: str,
    todo: ErasurePlan,
    ground: ErasureGround,
    reference: str,
    actor: str,
) -> Callable[[Connection], dict[str, int]]:
    """Queue signed ErasureRequests to each authority the child's data went to (Art 19),
    ``queue_notices``."""

    def queue(conn: Connection) -> dict[str, int]:
        disclosed = _recipients(conn, authority, todo.due, now=True)
        sent = queue_notices(kit, conn, authority, disclosed, ground, reference, actor)
        return {"erasure_notices": sent} if sent else {}

    return queue


def _recipients(
    conn: Connection, authority: str, due: Sequence[Due], *, now: bool
) -> dict[str, tuple[tuple[str, str], ...]]:
    """recipient -> (message id, digest) of the disclosing messages of ``due`` that went
    there or may have: ever sent (their history has ``SENT``: one re-sent or replayed
    since is back in the outbox), left or failed to (``HAS_LEFT``, ``UNDELIVERABLE``,
    ``DEAD_LETTERED``). ``now``: read in the erasing transaction once the outbox gave up
    what had not left (``purge``), where a row still in the outbox is one a publisher
    holds, which may be on the wire, and one published since the plan is seen; else
    (the plan, a dry run) the statuses planned, a queued row taken as withdrawn."""
    wanted = {
        d.pk: d
        for d in due
        if d.direction == Direction.OUTBOUND.value
        and d.recipient != authority
        and d.legal_basis in DISCLOSING
        and d.digest
    }
    pks = sorted(wanted)
    status = {pk: wanted[pk].status for pk in pks}
    sent_once: set[int] = set()
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        if now:
            status.update(
                (int(r.id), str(r.status))
                for r in conn.execute(
                    select(messages.c.id, messages.c.status).where(messages.c.id.in_(chunk))
                )
            )
        sent_once.update(
            conn.execute(
                select(history.c.message_pk).where(
                    history.c.message_pk.in_(chunk), history.c.status == Status.SENT.value
                )
            ).scalars()
        )
    going = {*HAS_LEFT, Status.UNDELIVERABLE.value, Status.DEAD_LETTERED.value}
    if now:
        going.update(s.value for s in OUTBOX_STATES)
    sent: dict[str, dict[tuple[str, str], None]] = {}
    for pk in pks:
        if pk in sent_once or status[pk] in going:
            d = wanted[pk]
            sent.setdefault(d.recipient, {})[(d.message_id, d.digest or "")] = None
    return {r: tuple(v) for r, v in sorted(sent.items())}


def erase_child(
    kit: Kit,
    authority: str,
    ref: str,
    *,
    ground: ErasureGround,
    reference: str,
    actor: str,
) -> purge.RunReport:
    """Erase everything ``authority`` holds about the child ``ref``, and ask every authority
    its data was sent to to erase theirs (signed ErasureRequest); the report."""
    todo = plan_erasure(kit, authority, ref, reference)
    return purge.erase(
        kit,
        authority,
        todo.due,
        kind="ERASURE",
        actor=actor,
        basis=f"{ARTICLE[ground]}; request {reference}",
        parked=todo.parked,
        threads=todo.threads,
        children=(todo.child_key,),
        also=_notices(kit, authority, todo, ground, reference, actor),
    )
