"""A received ErasureRequest: erase the copies its sender names, and prove it.

The sender erased a child's data and, as UK GDPR Article 19 asks, tells each
authority it disclosed the data to. This gateway erases the copies named
(by id and digest, and only those that sender sent it) exactly as an
erasure on request erases them here (``purge``: tombstones stay, derived
case threads, consent and existence entries go once nothing refers to
them), in the transaction that records the request. A copy the local
system never had is withdrawn first (a drop file not yet taken is taken
back); if the local system had any, the request is handed to it, so that it
erases its own copies. The signed receipt item says what was done: Action
``ERASED`` (``HandedOverAt``: since when the local system had the earliest
copy) or ``NOT_HELD``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, or_, select

from gateway.errors import PolicyRefusal
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import messages
from gateway.lifecycle import held, receiver
from gateway.lifecycle.held import Fate, Held
from gateway.model import ActionTaken, ErasureRequest
from gateway.retention import erasure, purge
from gateway.retention.plan import Due

RULE_REFERENCE = "erasure.request-reference"


def _said(erased: int, named: int, not_held: int, handed: list[str], run: str | None) -> str:
    parts = [f"erased {erased} of the {named} messages named" + (f" (run {run})" if run else "")]
    if not_held:
        parts.append(f"{not_held} not held here (never received from the sender, or erased)")
    if handed:
        parts.append(
            f"the local system had {len(handed)} of them since {min(handed)}: "
            "the request is passed on to it, to erase its copies"
        )
    elif erased:
        parts.append("none had reached the local system")
    return "; ".join(parts)


def on_erasure_request(ctx: ApplyContext, msg: Received) -> Effect:
    body = msg.env.body
    assert isinstance(body, ErasureRequest)
    receiver.to_an_inbox(msg)
    if not erasure.REFERENCE.match(body.request_ref):
        raise PolicyRefusal(
            RULE_REFERENCE,
            f"erasure request {msg.message_id}: its reference is not a council reference "
            "(letters, digits, / . _ -): it would be kept and audited here",
        )
    conn, authority = ctx.conn, msg.authority

    def effect() -> None:
        copies = [
            held.matching(held.sent_by(conn, authority, msg.sender, ref), ref)
            for ref in body.messages
        ]
        found = [c for c in copies if c is not None and c.has_body]
        why = f"erasure request {body.request_ref} from {msg.sender}"
        fates = [held.take_back(ctx.kit, conn, authority, c, why) for c in found]
        forwards = _forwards(ctx, authority, msg.sender, found, why)
        handed = sorted(
            f.handed_over_at
            for f in fates
            if f.action is ActionTaken.PASSED_ON and f.handed_over_at
        )
        report = None
        if found:
            pks = [c.pk for c in found] + [f.pk for f in forwards]
            which: ColumnElement[bool] = messages.c.id.in_(pks)
            due = erasure.due_where(conn, authority, which, why)
            report = purge.erase_in(
                ctx.kit,
                conn,
                authority,
                due,
                kind="ERASURE",
                actor=f"erasure request from {msg.sender}",
                basis=f"{erasure.ARTICLE[body.ground]}; request {body.request_ref} "
                f"from {msg.sender}",
                held_about_erased=False,
                also=lambda c: _pass_on(ctx, c, authority, forwards, body, msg.sender),
            )
            done = report
            ctx.later(lambda: _finish(ctx, done, due))
        said = _said(
            len(found),
            len(body.messages),
            len(body.messages) - len(found),
            [h.isoformat(timespec="seconds") for h in handed],
            report.run_id if report else None,
        )
        onward = sorted({f.recipient for f in forwards if f.left})
        if onward:
            said += (
                f"; it had been forwarded to {', '.join(onward)}: those copies are erased "
                "here and the request is passed on to each"
            )
        fate = Fate(
            ActionTaken.ERASED if found else ActionTaken.NOT_HELD,
            handed[0] if handed else None,
            said,
        )
        if not handed:
            ctx.keep_from_local_system(f"{why}: nothing to tell the local system ({said})")
        receiver.remember(conn, msg, "ERASURE", body.request_ref, fate, said, ctx.now)

    return effect


@dataclass(frozen=True)
class Forward:
    """This authority's own copy of an erased record, sent on to another authority."""

    pk: int
    message_id: str
    digest: str
    recipient: str
    left: bool  # it was sent (else it was still queued, and is now withdrawn)


def _forwards(
    ctx: ApplyContext, authority: str, sender: str, found: list[Held], why: str
) -> list[Forward]:
    """What this authority sent on of the copies to erase (the same record, to others,
    after the copy came: ``held.sent_on``); the ones still queued are withdrawn, so
    nothing of the record leaves any more."""
    copies = [c for c in found if c.content_digest]
    if not copies:
        return []
    rows = ctx.conn.execute(
        select(messages.c.id, messages.c.message_id, messages.c.digest, messages.c.recipient,
               messages.c.status)
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.OUTBOUND.value,
            or_(*(held.sent_on(authority, c) for c in copies)),
            messages.c.recipient.not_in([authority, sender]),
            HAS_BODY,
        )
        .order_by(messages.c.id)
    ).all()  # fmt: skip
    queued = [int(r.id) for r in rows if Status(r.status) in OUTBOX_STATES]
    # One a publisher holds may be on the wire now: it has left, and is told to erase.
    withdrawn = set(ctx.kit.ledger.transition_from(
        queued, OUTBOX_STATES, Status.WITHDRAWN, f"{why}: withdrawn before it was sent",
        ctx.conn, where=[ctx.kit.ledger.not_being_published(ctx.conn)], next_attempt_at=None,
    ))  # fmt: skip
    gone = {Status.WITHDRAWN.value, Status.REJECTED.value, Status.HELD_LOCAL.value}
    return [
        Forward(int(r.id), r.message_id, r.digest or "", r.recipient,
                int(r.id) not in withdrawn and r.status not in gone)
        for r in rows
    ]  # fmt: skip


def _pass_on(
    ctx: ApplyContext,
    conn: Connection,
    authority: str,
    forwards: list[Forward],
    body: ErasureRequest,
    sender: str,
) -> dict[str, int]:
    """Art 19 onward: an ErasureRequest to each authority a forward went to."""
    sent: dict[str, list[tuple[str, str]]] = {}
    for f in forwards:
        if f.left:
            sent.setdefault(f.recipient, []).append((f.message_id, f.digest))
    count = erasure.queue_notices(
        ctx.kit,
        conn,
        authority,
        {r: tuple(v) for r, v in sorted(sent.items())},
        body.ground,
        body.request_ref,
        f"erasure request from {sender}",
    )
    return {"erasure_notices": count} if count else {}


def _finish(ctx: ApplyContext, report: purge.RunReport, due: list[Due]) -> None:
    purge.finish(ctx.kit, report, due)
