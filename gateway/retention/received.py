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

A message named that has not come yet (it failed here for a moment and waits in
a delay queue, or was parked by this authority's broker) is not lost to the
request: the request **stands** for it (``gateway.lifecycle.standing``), as a
recall does, and says so in its receipt item. When the message comes (same
sender, id and digest, dated no later than the request) it is recorded
withdrawn and restricted, no applier runs on it, and it is erased in the
transaction that records it (``on_arrival``); the request is receipted again,
``ERASED``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, or_, select

from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import LedgerError, NotReceivedYet, PolicyRefusal
from gateway.feature import ApplyContext, Effect, Received
from gateway.ledger.bodies import BODY, HAS_BODY
from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.tables import messages
from gateway.lifecycle import held, receiver, standing
from gateway.lifecycle.held import Fate, Held
from gateway.lifecycle.sender import NOT_RECALLABLE_TYPES
from gateway.model import ERASURE_NAMED_MAX, ActionTaken, ErasureRequest, MessageType
from gateway.retention import erasure, purge
from gateway.retention.plan import Due
from gateway.wakeups import RECEIPTS

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
        found, stood, not_standing = _judged(ctx, msg, body)
        named = len(body.named())
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
            named,
            named - len(found) - stood - not_standing,
            [h.isoformat(timespec="seconds") for h in handed],
            report.run_id if report else None,
        )
        if stood:
            said += f"; {stood} not received here yet: {STANDS}"
        if not_standing:
            said += (
                f"; {not_standing} not received here yet cannot stand (as many "
                f"requests and recalls of {msg.sender} already stand here, or more "
                f"than {ERASURE_NAMED_MAX} named in one request)"
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


STANDS = (
    "the request stands for them: each record is erased should it come, before the "
    "local system has it, and this request receipted again"
)
# Kept for a message erased on arrival, so its own receipt item says so.
KIND_ARRIVAL = "ERASED_EARLY"
# What a request's receipt item says once messages it stood for came (after what it
# said when it came, which is kept before this).
SINCE = "; since: "


def _judged(ctx: ApplyContext, msg: Received, body: ErasureRequest) -> tuple[list[Held], int, int]:
    """The copies held here of what ``body`` names (with a body still), how many of the
    rest it now stands for (not received here yet, ``receiver.original``), and how
    many of those could not stand (one too many of the id or of the sender, or named
    past the first ``ERASURE_NAMED_MAX``: a sender from before 2026-12-07). A message
    of another sender's under an id, or another digest than the one this sender's
    message under it has, is not held: the request does not stand for it. A message is
    one id: a second digest named for an id is not held either (a request that named
    two digests of a message not come yet stood for both, and broke its run)."""
    found: list[Held] = []
    stood = not_standing = 0
    may = {r.message_id for r in body.standing_for()}
    for ref in body.named().values():
        try:
            copy = receiver.original(ctx, msg, ref, "erasure request")
        except NotReceivedYet:
            if not standing.can_name(ref):
                continue
            if ref.message_id not in may or not standing.may_stand(ctx, msg, ref):
                not_standing += 1
                continue
            standing.stand(ctx, msg, ref, standing.Kind.ERASURE)
            stood += 1
            continue
        except PolicyRefusal:
            continue
        if copy.has_body:
            found.append(copy)
    return found, stood, not_standing


def on_arrival(ctx: ApplyContext, msg: Received) -> str | None:
    """A new record an erasure request of its sender stands for (same sender, id and
    digest, ``gateway.lifecycle.standing``): withdrawn as it arrives (the reason is
    returned: recorded withdrawn and restricted, no applier run, never handed over),
    erased once its row is in (``ApplyContext.once_recorded``), and each request
    receipted again, ``ERASED``. A recall standing for it too is resolved with it
    (``receiver.recalled_on_arrival``). None for every other record."""
    if msg.env.header.message_type.value in NOT_RECALLABLE_TYPES:
        return None
    rows = standing.matching(ctx, msg)
    requests = [r for r in rows if r.kind is standing.Kind.ERASURE]
    if not requests:
        return None
    recalled = receiver.recalled_on_arrival(ctx, msg, rows)
    ids = [r.message_id for r in requests]
    conn = ctx.conn
    for request in ids:
        _said_again(ctx, msg, request)
    receiver.receipt_again(conn, msg.authority, msg.sender, ids)
    ctx.kit.ledger.announce(conn, RECEIPTS)
    named = ", ".join(ids)
    first = min(r.at for r in requests).isoformat(timespec="seconds")
    why = (
        f"its erasure was asked by {msg.sender} before it came (erasure request {named}, "
        f"standing since {first}): withdrawn on arrival, before the local system had it, "
        "and erased"
    )
    if recalled:
        why += f"; {recalled}"
    receiver.audited(
        ctx, msg, f"standing erasure request from {msg.sender}", "ERASURE_ON_ARRIVAL",
        f"erasure request {named}: {why}",
    )  # fmt: skip
    # A correction's item is read by its sender as what was done about the original
    # it corrects, which stands as it was: the correction itself is refused.
    if msg.env.header.message_type is MessageType.CORRECTION:
        fate = Fate(ActionTaken.REFUSED, None, f"{why}; the original stands as it was")
    else:
        fate = Fate(ActionTaken.ERASED, None, why)
    receiver.remember(conn, msg, KIND_ARRIVAL, ids[0], fate, fate.said, ctx.now)
    ctx.once_recorded(lambda: _erase_arrived(ctx, msg, ids, why))
    return why


def _said_again(ctx: ApplyContext, msg: Received, request: str) -> None:
    """The receipt item of ``request`` now that ``msg``, which it stood for, came:
    ``ERASED``, and how many of what it stood for came (after what it said first)."""
    came, stood = standing.tally(ctx.conn, msg.authority, msg.sender, request)
    now = f"{came} of the {stood} it stood for came and {'was' if came == 1 else 'were'} "
    now += "erased on arrival" + (f"; {stood - came} still stand" if came < stood else "")
    receiver.restate(
        ctx.conn, msg.authority, msg.sender, request, ActionTaken.ERASED,
        lambda before: before.partition(SINCE)[0] + SINCE + now, ctx.now,
    )  # fmt: skip


def _erase_arrived(ctx: ApplyContext, msg: Received, requests: list[str], why: str) -> None:
    """Erase ``msg``, recorded withdrawn a moment ago in this transaction, as a received
    erasure request erases what it names (``purge.erase_in``: its body goes, its
    tombstone stays)."""
    conn, authority = ctx.conn, msg.authority
    which = (
        (messages.c.direction == Direction.INBOUND.value)
        & (messages.c.sender == msg.sender)
        & (messages.c.message_id == msg.message_id)
        & (messages.c.digest == msg.digest)
    )
    due = erasure.due_where(conn, authority, which, f"erasure request from {msg.sender}")
    if not due:
        raise LedgerError(
            f"message {msg.message_id} from {msg.sender}: an erasure request stands for it "
            "and it was not recorded, so it cannot be erased as it arrives"
        )
    report = purge.erase_in(
        ctx.kit,
        conn,
        authority,
        due,
        kind="ERASURE",
        actor=f"standing erasure request from {msg.sender}",
        basis=_basis(ctx, msg.sender, authority, requests),
        held_about_erased=False,
        notes=(why,),
    )
    ctx.later(lambda: _finish(ctx, report, due))


def _basis(ctx: ApplyContext, sender: str, authority: str, requests: list[str]) -> str:
    """The ground and reference of the first of ``requests`` (their bodies, recorded
    here, say what was asked; no personal data), as an erasure on request says them."""
    limits = ctx.settings.limits
    body = ctx.conn.execute(
        select(BODY).where(
            messages.c.authority == authority,
            messages.c.direction == Direction.INBOUND.value,
            messages.c.sender == sender,
            messages.c.message_id == requests[0],
        )
    ).scalar()
    standing_since = f"from {sender} (message {requests[0]}), standing: erased on arrival"
    if body is None:
        return f"erasure request {standing_since}"
    root = xmlsafe.parse(
        bytes(body), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
    )
    request = element_to_envelope(root).body
    assert isinstance(request, ErasureRequest)  # recorded as one, and decoded when received
    return f"{erasure.ARTICLE[request.ground]}; request {request.request_ref} {standing_since}"


@dataclass(frozen=True)
class Forward:
    """This authority's own copy of an erased record, sent on to another authority."""

    pk: int
    message_id: str
    digest: str
    recipient: str
    left: bool  # it was sent (else it was still queued, and is now withdrawn)
    withdrawn: bool = False  # withdrawn from the outbox by this request


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
                int(r.id) not in withdrawn and r.status not in gone, int(r.id) in withdrawn)
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
    """Art 19 onward: an ErasureRequest to each authority a forward went to; and the
    forwards withdrawn before they left, counted as the run's own (``_unqueue``)."""
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
    withdrawn = sum(f.withdrawn for f in forwards)
    counts = {"erasure_notices": count, purge.WITHDRAWN_FROM_OUTBOX: withdrawn}
    return {what: n for what, n in counts.items() if n}


def _finish(ctx: ApplyContext, report: purge.RunReport, due: list[Due]) -> None:
    purge.finish(ctx.kit, report, due)
