"""The one receiving pipeline: every queue's deliveries go through it.

For each delivery, whatever the queue (a hosted authority's inbox, its
escalation queue, the regional group's): the checks (``checks``), then the
created-at window for a new id and deduplication by (sender, message id,
digest), then the features' appliers, which judge what the sender may change
(refusing with a rule's name) before anything is changed. The whole batch is
recorded in one transaction and only then acknowledged to the broker.

Replicas of the gateway consume the same queues, so two of them may hold the
same message (a re-send, a redelivery) or two messages of one case thread at
once. The recording transaction first takes advisory locks on each
message's identity, its case thread and (for local records) its content
(``gateway.ledger.locks``), and only then reads what is already recorded: of
two replicas, the second waits for the first to commit and then finds the
message recorded, so it is recorded and applied once, never failing on a
unique key.
Refusals are quarantined (recorded with the reason, a REJECTED receipt owed
where the sender is proven); a ledger failure is transient (the broker
retries the batch). Receipts received settle the sender's own messages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from gateway.context import Gateway
from gateway.cpu_budget import BUDGET
from gateway.errors import (
    LedgerError,
    LedgerUnavailableError,
    NotReceivedYet,
    OutageError,
    PolicyRefusal,
)
from gateway.feature import ApplyContext, Received
from gateway.ledger import locks
from gateway.ledger.records import InboundKnown, NewMessage
from gateway.ledger.savepoints import Failed, in_savepoint
from gateway.ledger.status import Direction, Status
from gateway.model import (
    ERASURE_NAMED_MAX,
    Correction,
    Envelope,
    ErasureRequest,
    LegalBasis,
    MessageType,
    Purpose,
    Recall,
    Receipt,
    ReceiptOutcome,
)
from gateway.policy.child import child_key
from gateway.services import delivery, receipts
from gateway.services.receiving.check_pool import CheckPool
from gateway.services.receiving.checks import (
    Passed,
    Refused,
    Source,
    check,
    source_of,
    unverified_reply_to,
)
from gateway.transport.base import Delivery, Disposition, Verdict
from gateway.transport.topology import REGIONAL
from gateway.wakeups import RECEIPTS, unmark

log = logging.getLogger(__name__)

# A batch of at most this many deliveries is receipted by the transactions that
# record it (``_Receipt``). Larger batches mean a backlog (the consumer's batches
# grow with it, up to ``Batching.batch_max``): the receipt loop then covers several
# batches with one receipt, and the consumer does not wait for each one's confirm
# (flat out 10,000 signing every batch's receipt: 686 and 669 msgs/s, against 704
# and 707; docs/performance.md, issue 14).
INLINE_RECEIPTS_MAX = 16


RECEIPT_STATUS = {
    ReceiptOutcome.ACCEPTED: Status.DELIVERED,
    ReceiptOutcome.DUPLICATE: Status.DELIVERED,
    ReceiptOutcome.REJECTED: Status.REJECTED,
    ReceiptOutcome.UNDELIVERABLE: Status.UNDELIVERABLE,
}


def handle_batch(
    gw: Gateway,
    deliveries: Sequence[Delivery],
    in_flight: ReceiptsInFlight | None = None,
    checks: CheckPool | None = None,
) -> list[Disposition]:
    """Process a batch from any consumed queues; one disposition per delivery, in order.

    A message whose processing raises something unexpected (a bug, or a
    poison message an applier cannot take) must not hold up the rest: the
    batch, rolled back whole, is processed again one message at a time, and
    only the one that fails again gets RETRY. The broker then retries it
    with backoff and parks it once its budget is spent.

    ``in_flight``: the consumer's receipts awaiting their confirms. The
    batch's own receipt joins them rather than being waited for. Those of
    earlier batches whose confirms are in by the end of this batch's
    transaction are marked in it (no commit and no flush of their own); the
    others are settled once this batch has sent its own (their confirms have
    had this batch's time to arrive). Without it, the batch's receipt is
    confirmed before this returns.

    ``checks``: worker processes that share the batch's checks with this thread
    (``check_pool``); None: this thread checks every message.
    """
    earlier = in_flight.take() if in_flight is not None else ReceiptsInFlight()
    try:
        out = _isolated(_Turn(gw, in_flight, earlier), deliveries, checks)
    except OutageError:
        if in_flight is not None:
            in_flight.put_back(earlier)  # settled once the ledger answers again
        raise
    earlier.finish()
    if in_flight is not None:
        in_flight.put_back(earlier)  # what the ledger could not settle now
    return out


@dataclass(frozen=True)
class _Turn:
    """What every step of one batch's processing shares: the gateway, the consumer's
    receipts awaiting their confirms (``in_flight``, which the batch's own receipt
    joins; None: confirmed before ``handle_batch`` returns) and the earlier batches'
    receipts the batch's transactions mark where their confirms are in (``settling``)."""

    gw: Gateway
    in_flight: ReceiptsInFlight | None
    settling: ReceiptsInFlight


def _isolated(
    turn: _Turn,
    deliveries: Sequence[Delivery],
    checks: CheckPool | None,
    behind: frozenset[tuple[str, str]] = frozenset(),
) -> list[Disposition]:
    try:
        return _handle(turn, deliveries, checks, behind)
    except OutageError:
        raise  # the ledger is down: the consumer holds the batch, unsettled, until it answers
    except Exception as exc:  # why everything: isolating an unknown failure is the point
        if len(deliveries) == 1:
            return [_failed_alone(deliveries[0].message_id, deliveries[0].queue, exc)]
        log.warning(
            "a batch of %d failed with %s; processing it one by one",
            len(deliveries),
            type(exc).__name__,
        )
        return _one_by_one(turn, deliveries)


def _one_by_one(turn: _Turn, deliveries: Sequence[Delivery]) -> list[Disposition]:
    """Each delivery alone, originals first (``_originals_first``, by the unverified
    header: the checks may be what failed), after their batch (or source) failed
    unexpectedly.

    One that names an earlier one retried here (a recall, a correction) is retried
    with it (``_record``): alone, it would be judged without its original and
    refused for good. The earlier one is known by the sender its routing key
    names (which the broker checked against the publishing account) and the id
    it was published with (its checks may be what failed), and matched against
    the later one's signed sender and ``in_reply_to``: a publisher can pose only
    as itself, so lying about the id delays only its own messages.
    """
    keys = [_key(d) for d in deliveries]
    out: dict[int, Disposition] = {}
    retried: set[tuple[str, str]] = set()
    for i in _originals_first(keys, [_unverified_names(turn.gw, d) for d in deliveries]):
        (got,) = _isolated(turn, [deliveries[i]], None, frozenset(retried))
        key = keys[i]
        if _failed(got) and key is not None:
            retried.add(key)
        out[i] = got
    return [out[i] for i in range(len(deliveries))]


def _unverified_names(gw: Gateway, delivery: Delivery) -> tuple[str, str] | None:
    """What ``_names`` would say of ``delivery``, from its unverified header and the
    sender its routing key names: only to order the batch (a message only moves
    later, after one of its own sender's), never to act on."""
    named = unverified_reply_to(gw, delivery.body)
    if named is None:
        return None
    return (delivery.routing_key.rsplit(".", 1)[-1], named)


def _failed_alone(message_id: str | None, queue: str, exc: Exception) -> Disposition:
    """RETRY for one message whose processing failed on its own."""
    # The exception text may quote message content; the type says enough.
    log.error(
        "processing %s from %s failed with %s; the broker will retry it",
        message_id,
        queue,
        type(exc).__name__,
        extra={"message_id": message_id},
    )
    return Disposition(Verdict.RETRY, f"processing failed: {type(exc).__name__}")


def _handle(
    turn: _Turn,
    deliveries: Sequence[Delivery],
    checks: CheckPool | None,
    behind: frozenset[tuple[str, str]] = frozenset(),
) -> list[Disposition]:
    by_source: dict[Source, list[int]] = {}
    for index, one in enumerate(deliveries):
        by_source.setdefault(source_of(turn.gw, one), []).append(index)
    out: list[Disposition | None] = [None] * len(deliveries)
    inline = len(deliveries) <= INLINE_RECEIPTS_MAX
    for source, indexes in by_source.items():
        batch = [deliveries[i] for i in indexes]
        try:
            results = _record(turn, source, batch, inline, checks, behind)
        except OutageError:
            raise
        except Exception as exc:  # why everything: isolating an unknown failure is the point
            # Its checks failed: nothing of this source is recorded. Only its own
            # messages are taken one by one; another source's, committed already,
            # would be taken for re-sends (a DUPLICATE note, their receipt sent again).
            if len(batch) == 1:
                results = [_failed_alone(batch[0].message_id, batch[0].queue, exc)]
            else:
                log.warning(
                    "%d messages for %s failed with %s; checking them one by one",
                    len(batch),
                    source.owner,
                    type(exc).__name__,
                )
                results = _one_by_one(turn, batch)
        for i, result in zip(indexes, results, strict=True):
            out[i] = result
    return [d for d in out if d is not None]


def _record(
    turn: _Turn,
    source: Source,
    deliveries: Sequence[Delivery],
    inline: bool,
    checks: CheckPool | None,
    behind: frozenset[tuple[str, str]] = frozenset(),
) -> list[Disposition]:
    """The runs of ``deliveries`` recorded in turn, originals first
    (``_originals_first``); ``behind``: (sender, id) of messages of their batch
    taken before them and retried (``_one_by_one``)."""
    if checks is None:
        checked = [check(turn.gw, source, d) for d in deliveries]
    else:
        checked = checks.check(turn.gw, source, deliveries)
    order = _originals_first([_key(d) for d in deliveries], [_names(c) for c in checked])
    recorded = _recorded_runs(
        turn, source, [deliveries[i] for i in order], [checked[i] for i in order],
        inline, behind,
    )  # fmt: skip
    by_position = dict(zip(order, recorded, strict=True))
    return [by_position[i] for i in range(len(checked))]


def _key(delivery: Delivery) -> tuple[str, str] | None:
    """A delivery as ``behind`` knows it: the sender its broker-checked routing key
    names and the id it was published with (its checks may be what failed)."""
    if not delivery.message_id:
        return None
    return (delivery.routing_key.rsplit(".", 1)[-1], delivery.message_id)


def _keys(delivery: Delivery, item: Passed | Refused) -> set[tuple[str, str]]:
    """Every key a message naming this one may match: ``_key``'s, and the signed
    sender and id where it passed its checks (a delivery without an AMQP id)."""
    key = _key(delivery)
    keys = set() if key is None else {key}
    if isinstance(item, Passed):
        keys.add((item.verified.sender, item.verified.message_id))
    return keys


def _names(item: Passed | Refused) -> tuple[str, str] | None:
    """The message of its own sender that ``item`` names (a recall's, a correction's
    original), as ``_key`` knows that one; None when it names none."""
    if not isinstance(item, Passed) or item.env.header.in_reply_to is None:
        return None
    return (item.verified.sender, item.env.header.in_reply_to)


def _originals_first(
    keys: Sequence[tuple[str, str] | None], names: Sequence[tuple[str, str] | None]
) -> list[int]:
    """The batch's positions in the order it is recorded: a message that names one
    of its sender's not yet placed (a recall that overtook its original, whose retry
    came back behind it; a correction of a correction) goes right after it, so it
    is judged with it. A message only ever moves later: one put ahead of another
    sender's could take the id that sender's message holds. Messages naming each
    other (a cycle, which only a broken or hostile sender sends) go after the
    rest of the batch, in their order."""
    where: dict[tuple[str, str], int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            where.setdefault(key, i)
    after: dict[int, list[int]] = {}
    order: list[int] = []
    placed: set[int] = set()

    def place(first: int) -> None:
        todo = [first]
        while todo:  # a long chain is no deep recursion
            i = todo.pop()
            if i in placed:
                continue  # a cycle, come round again
            order.append(i)
            placed.add(i)
            todo.extend(reversed(after.pop(i, [])))

    for i, name in enumerate(names):
        named = where.get(name) if name is not None else None
        if named is not None and named != i and named not in placed:
            after.setdefault(named, []).append(i)
        else:
            place(i)
    for i in range(len(names)):  # in a cycle, none placed the other
        if i not in placed:
            place(i)
    return order


def _recorded_runs(
    turn: _Turn,
    source: Source,
    deliveries: Sequence[Delivery],
    checked: list[Passed | Refused],
    inline: bool,
    behind: frozenset[tuple[str, str]],
) -> list[Disposition]:
    """The runs of ``checked`` (in the order they are to be recorded) recorded in turn.

    A correction that names one of the batch to be retried (a failure, or taken
    before it and retried: ``behind``) is retried with it: judged without its
    original on its last try, it would be refused for good. A recall is judged
    (``_stands_alone``). The rest are recorded: nothing else ties them to a
    failure (one message's fault must not spend the retries of another sender's,
    nor park a recall whose original is recorded here)."""
    out: list[Disposition | None] = [None] * len(checked)
    retried = set(behind)
    for run in _runs(checked):
        kept = []
        for i in run:
            if _names(checked[i]) in retried and not _stands_alone(checked[i]):
                out[i] = Disposition(Verdict.RETRY, _BEHIND_A_RETRY)
                retried.update(_keys(deliveries[i], checked[i]))
            else:
                kept.append(i)
        if not kept:
            continue
        items = [checked[i] for i in kept]
        results = _recorded_run(turn, source, deliveries, checked, items, inline)
        for i, result in zip(kept, results, strict=True):
            out[i] = result
            if _failed(result):
                retried.update(_keys(deliveries[i], checked[i]))
    return [d for d in out if d is not None]


def _stands_alone(item: Passed | Refused) -> bool:
    """A recall judged without its original stands (``lifecycle.receiver``), and the
    original, when its retry comes, is withdrawn on arrival: nothing to hold it back
    for. (Held back, it could come after its original's retry, which would then be
    handed over first.)"""
    return isinstance(item, Passed) and isinstance(item.env.body, Recall)


def _recorded_run(
    turn: _Turn,
    source: Source,
    deliveries: Sequence[Delivery],
    checked: list[Passed | Refused],
    run: list[Passed | Refused],
    inline: bool,
) -> list[Disposition]:
    """``run`` recorded in its transaction; if that fails unexpectedly (a bug, or a
    poison message an applier cannot take), rolled back and recorded one message at
    a time, so only the one that fails again gets RETRY. The runs before it are
    committed: taken again, they would be taken for re-sends."""
    try:
        return _record_checked(turn, source, run, inline)
    except OutageError:
        raise
    except Exception as exc:  # why everything: isolating an unknown failure is the point
        if len(run) == 1:
            one = deliveries[_index_of(checked, run[0])]
            return [_failed_alone(one.message_id, one.queue, exc)]
        log.warning(
            "a run of %d for %s failed with %s; recording it one by one",
            len(run),
            source.owner,
            type(exc).__name__,
        )
        return [
            d
            for item in run
            for d in _recorded_run(turn, source, deliveries, checked, [item], inline)
        ]


def _index_of(checked: list[Passed | Refused], item: Passed | Refused) -> int:
    return next(i for i, c in enumerate(checked) if c is item)


@dataclass(frozen=True)
class Waiting(Disposition):
    """RETRY for a message that names one not received yet (``NotReceivedYet``): it
    waits for its original. Nothing failed, so what names it in its batch is judged
    (and waits in turn), not held back behind it as behind a failure."""


def _failed(d: Disposition) -> bool:
    return d.verdict is Verdict.RETRY and not isinstance(d, Waiting)


def _waits(gw: Gateway, item: Passed, early: NotReceivedYet) -> Waiting | None:
    """RETRY while the broker has retries left for ``item``; None on its last try.

    The budget is the one the transport keeps for the queue's authority
    (``Settings.delivery_for``, as ``RabbitTransport.from_settings`` reads it):
    a smaller one would park the message on its last try, unanswered; a larger
    one would refuse it with retries left."""
    budget = gw.settings.delivery_for(item.source.owner).retry_budget
    if item.attempt >= budget:
        return None
    log.info(
        "%s from %s: %s; retried to wait for it (retry %d of %d)",
        item.verified.message_id,
        item.verified.sender,
        early.reason,
        item.attempt + 1,
        budget,
        extra={"message_id": item.verified.message_id, "authority": item.source.owner},
    )
    return Waiting(Verdict.RETRY, f"waiting for the message it names: {early.reason}")


_ACK = Disposition(Verdict.ACK)
_BEHIND_A_RETRY = "an earlier message of its batch is to be retried: retried with it"
# Told to the sender in its REJECTED receipt: whose message holds the id is not.
ID_TAKEN = (
    "message id already used by another message at this authority: an id names one "
    "message (send it under a new id)"
)


def _runs(checked: list[Passed | Refused]) -> list[list[int]]:
    """The batch's positions, cut before any message that names an earlier one of the
    same batch.

    A recall or correction judges the original as recorded; when both arrive in
    one batch, the original must be recorded (and committed) first. So does an
    erasure request the messages it names (one of them behind it in the batch is
    erased as it arrives: its request stands, ``gateway.lifecycle.standing``). A
    run's erasure requests name at most ``ERASURE_NAMED_MAX`` messages: each id is
    locked while the run is recorded, and the server's lock table is not without end.
    """
    runs: list[list[int]] = [[]]
    ids: set[str] = set()
    locked = 0  # ids of messages named by the run's erasure requests (``_lock_names``)
    for i, item in enumerate(checked):
        named = _named_ids(item)
        erasure = isinstance(item, Passed) and isinstance(item.env.body, ErasureRequest)
        if not ids.isdisjoint(named) or (erasure and locked + len(named) > ERASURE_NAMED_MAX):
            runs.append([])
            ids = set()
            locked = 0
        locked += len(named) if erasure else 0
        runs[-1].append(i)
        if isinstance(item, Passed):
            ids.add(item.verified.message_id)
    return [r for r in runs if r]


def _named_ids(item: Passed | Refused) -> frozenset[str]:
    """The ids of the messages ``item`` is about (a recall's, a correction's original;
    those of the messages an erasure request names that it may stand for), as its
    sender sent them."""
    if not isinstance(item, Passed):
        return frozenset()
    body = item.env.body
    named: set[str] = set()
    if isinstance(body, ErasureRequest):
        named.update(r.message_id for r in body.standing_for())
    elif isinstance(body, Recall | Correction):
        named.add(body.original.message_id)
    if item.env.header.in_reply_to is not None:
        named.add(item.env.header.in_reply_to)
    return frozenset(named)


def _record_checked(
    turn: _Turn, source: Source, checked: Sequence[Passed | Refused], inline: bool
) -> list[Disposition]:
    """Record ``checked`` in one transaction (with its receipt when ``inline``); the
    receipts of earlier batches (``turn.settling``) whose confirms are in are marked in
    it too."""
    gw, settling = turn.gw, turn.settling
    deliveries = checked
    owner = source.owner
    # Taken by the checks (re-encoding a body to canonical XML costs ~0.07 ms).
    contents = [c.content if isinstance(c, Passed) else None for c in checked]
    try:
        receipts: list[tuple[Envelope, Receipt]] = []
        resend_receipts: set[str] = set()
        applied: list[ApplyContext] = []  # of the messages accepted: what they ask after
        own_receipt: _Receipt | None = None  # signed by this transaction, if any
        waiting: dict[int, Disposition] = {}  # index -> RETRY: what it names is not here
        settled: list[delivery.InFlight] = []  # earlier receipts marked by it
        with gw.ledger.transaction() as conn:
            # First: what another replica may be recording at this moment is ours
            # to read only once it committed (or rolled back).
            locks.xact_lock(conn, _lock_names(owner, checked, contents))
            # One read for what is known of every message (``seen``) and of every row
            # the batch may record (``_without_repeats``), by the keys ``_accepted``
            # and ``_quarantine`` record under.
            recorded = gw.ledger.inbound_known(owner, _recorded_pairs(checked), conn)
            seen = recorded.seen
            earlier_content = _same_content(gw, conn, owner, checked, contents)
            new: list[NewMessage] = []
            fresh: dict[tuple[str, str], str] = {}
            holders = dict(recorded.holders)  # id -> its sender, with the batch's own
            repeats: dict[tuple[str, str], str] = {}
            batch: dict[str, Any] = {}  # the features' reads for the whole batch
            for index, (item, content) in enumerate(zip(checked, contents, strict=True)):
                if isinstance(item, Refused):
                    new.append(_quarantine(item))
                    continue
                key = (item.verified.sender, item.verified.message_id)
                known = seen.get(key)
                known_digest = known.digest if known else fresh.get(key)
                is_receipt = item.env.header.message_type == MessageType.RECEIPT
                if known_digest is not None:
                    if known_digest != item.verified.digest:
                        new.append(
                            _quarantine(
                                _refusal(
                                    item,
                                    "message id already used with a different digest "
                                    "(forgery or replay)",
                                    proven=False,
                                )
                            )
                        )
                        continue
                    if known is not None:
                        gw.ledger.note(known.pk, Status.DUPLICATE, "re-sent by the sender", conn)
                        if known.receipt_message_id:
                            resend_receipts.add(known.receipt_message_id)
                    if is_receipt:
                        assert isinstance(item.env.body, Receipt)
                        receipts.append((item.env, item.env.body))
                    continue
                quarantined = recorded.rows.get((*key, item.verified.digest))
                if quarantined is not None:
                    # These bytes were quarantined before (``seen`` leaves such rows
                    # out): the first decision stands, and nothing is applied now that
                    # the ledger would keep as quarantined (a created-at now in the
                    # window, a policy that would now accept).
                    gw.ledger.note(
                        quarantined, Status.DUPLICATE, "received again; quarantined before", conn
                    )
                    continue
                holder = holders.get(item.verified.message_id)
                if holder is not None and holder != item.verified.sender:
                    # The local system acknowledges, the drop folder names and "not
                    # ours" records a message by its id: a second sender's message
                    # under it would be taken for (or overwrite) the first. The
                    # holder is named here only: the reason goes back to the sender.
                    log.warning(
                        "%s from %s: its id is %s's",
                        item.verified.message_id,
                        item.verified.sender,
                        holder,
                        extra={"message_id": item.verified.message_id, "authority": owner},
                    )
                    new.append(_quarantine(_refusal(item, ID_TAKEN, proven=True)))
                    continue
                problem = _window_problem(gw, item.env)
                if problem is not None:
                    new.append(_quarantine(_refusal(item, problem, proven=False)))
                    continue
                ctx = ApplyContext(conn, gw.clock(), gw, batch=batch)
                withdrawn = _withdrawn_on_arrival(gw, ctx, item)
                if withdrawn is not None:
                    applied.append(ctx)
                    # Its sender recalled it before it came: nothing it says takes
                    # effect, and the local system never has it (a copy of an earlier
                    # record too: the recall names this message).
                    fresh[key] = item.verified.digest
                    holders[item.verified.message_id] = item.verified.sender
                    kept_back = (Status.WITHDRAWN, withdrawn)
                    new.append(_accepted(item, content, settled=kept_back, restricted=True))
                    continue
                if content is not None:
                    earlier = repeats.get((item.verified.sender, content)) or earlier_content.get(
                        (item.verified.sender, content)
                    )
                    if earlier is not None:
                        # The same local record again (re-exported, released and re-sent,
                        # or sent under a new id): recorded and receipted, never handed
                        # to the local system a second time.
                        fresh[key] = item.verified.digest
                        holders[item.verified.message_id] = item.verified.sender
                        new.append(_accepted(item, content, same_as=earlier))
                        continue
                try:
                    _apply(gw, ctx, item)
                except NotReceivedYet as early:
                    wait = _waits(gw, item, early)
                    if wait is not None:
                        waiting[index] = wait  # nothing recorded: judged again when retried
                        continue
                    reason = f"policy {early} (not received after {item.attempt} retries)"
                    new.append(_quarantine(_refusal(item, reason, proven=True)))
                    continue
                except PolicyRefusal as refusal:
                    new.append(_quarantine(_refusal(item, f"policy {refusal}", proven=True)))
                    continue
                applied.append(ctx)
                if content is not None:
                    # Only once accepted: a copy refused by policy is quarantined, not
                    # received, and a later copy in the batch is judged on its own (as
                    # in a later batch: ``same_content`` leaves quarantined rows out).
                    repeats[(item.verified.sender, content)] = item.verified.message_id
                fresh[key] = item.verified.digest
                holders[item.verified.message_id] = item.verified.sender
                new.append(_accepted(item, content, settled=ctx.settled))
                if is_receipt:
                    assert isinstance(item.env.body, Receipt)
                    receipts.append((item.env, item.env.body))
            kept = _without_repeats(gw, new, conn, recorded)
            pks = gw.ledger.record(kept, conn)
            for ctx in applied:
                for action in ctx.after_record:
                    action()
            if inline:
                own_receipt = _Receipt.of(gw, conn, pks, kept)
            # Settled in the transaction that records the receipt: the sends are
            # DELIVERED the moment the receipt is durably ours, one commit less.
            for env, receipt in receipts:
                gw.ledger.mark_delivered(
                    owner,
                    [
                        (
                            i.message_id,
                            i.digest,
                            RECEIPT_STATUS[i.outcome],
                            i.reason or f"receipt {env.header.message_id}",
                        )
                        for i in receipt.items
                    ],
                    env.header.sender,
                    conn,
                )
            # No transaction (and no flush) of their own for earlier receipts.
            settled = settling.mark_ready(conn)
            # A re-send is answered with the original receipt (same id and bytes), in
            # this transaction: a failure after its commit would have turned a
            # recorded batch into RETRY and skipped its follow-ups.
            gw.ledger.send_again(
                owner,
                sorted(resend_receipts),
                "sender re-sent a message this receipt covers",
                conn,
            )
        settling.marked(settled)
    except LedgerUnavailableError:
        raise  # not this batch's fault: held, not retried by the broker
    except LedgerError as exc:
        log.error("ledger failed while recording a batch for %s: %s", owner, exc)
        return [Disposition(Verdict.RETRY, f"ledger: {exc}") for _ in deliveries]
    for action in (a for ctx in applied for a in ctx.after_commit):
        try:
            action()
        except Exception:  # why everything: the message is recorded; a follow-up may not undo it
            log.exception("an action after recording a message failed; it is retried later")
    if own_receipt is not None:
        own_receipt.publish(turn.in_flight)
    return [waiting.get(i, _ACK) for i in range(len(deliveries))]


class _Receipt:
    """The receipt of a small batch's own messages, signed by the transaction that
    records them and sent by the consumer before it acknowledges them (issue 14); its
    confirm is awaited later (``ReceiptsInFlight``).

    At a trickle a message then waits for no other thread: without this, the
    receipt loop is woken, claims the rows in a transaction of its own, signs,
    records and publishes. Only the rows this transaction recorded are claimed
    (``Ledger.claim_receipts_due(pks=...)``): uncommitted, no other turn can
    have read them, so no message is receipted twice. Signed last before the
    commit (``LedgerCore.before_commit``), after the batch's audit entries, so
    the receipt's audit head covers them, as the receipt loop's would. In a
    savepoint: a failure to sign is rolled back and left to the receipt loop,
    never fails the batch. Published only on a publishing connection open now
    and with a short confirm timeout (``receipts.publish_signed(open_only=True)``):
    the consumer never waits for a reconnect; what does not go out goes back to
    the outbox for the sender loop.
    """

    def __init__(self, gw: Gateway, pks: list[int]) -> None:
        self.gw = gw
        self.pks = pks
        self.signed = receipts.Signed()

    @classmethod
    def of(
        cls, gw: Gateway, conn: Connection, pks: list[int], kept: Sequence[NewMessage]
    ) -> _Receipt | None:
        """Registered on ``conn`` when the batch recorded messages owed a receipt."""
        due = [pk for pk, m in zip(pks, kept, strict=True) if m.receipt_due]
        if not due:
            return None
        receipt = cls(gw, due)
        if not gw.ledger.before_commit(conn, receipt.sign):
            return None
        return receipt

    def sign(self, conn: Connection) -> None:
        gw = self.gw

        def sign() -> receipts.Signed:
            due = gw.ledger.claim_receipts_due(conn, gw.hosted, len(self.pks), self.pks)
            return receipts.sign(gw, conn, due)

        with BUDGET.timed("receipt"):
            # The batch is recorded; its receipt can wait, unless the failure took the
            # batch's transaction with it (then ``in_savepoint`` raises: the batch is
            # retried, or held through an outage).
            signed = in_savepoint(conn, sign, "signing a received batch's receipt")
            if isinstance(signed, Failed):
                log.error(
                    "the receipt of a received batch is left to the receipt loop",
                    exc_info=signed.error,
                )
                return
            self.signed = signed
            # No turn of the receipt loop is owed for these; but one is if anything
            # else is owed a receipt (an applier may have made an older message owe
            # one again, in this transaction or another): the loop stays woken then.
            if signed.covered == len(self.pks) and not gw.ledger.receipts_owed(conn, gw.hosted):
                unmark(conn, RECEIPTS)

    def publish(self, in_flight: ReceiptsInFlight | None) -> None:
        """Once the batch is durable, before it is acknowledged: sent, and with
        ``in_flight`` left there to be confirmed, else confirmed now."""
        try:
            with BUDGET.timed("receipt"):
                started = receipts.start_signed(self.gw, self.signed, open_only=True)
        except Exception:  # why everything: the batch is recorded and must be acknowledged
            log.exception(
                "the receipt of a received batch was not published; "
                "the sender loop publishes it once its claim lapses"
            )
            return
        if started is None:
            return
        if in_flight is None:
            _settle(started)
        else:
            in_flight.add(started)


class ReceiptsInFlight:
    """Receipts the consumer sent and has not yet seen confirmed (issue 14).

    The consumer acknowledges a batch once it is durably recorded, with its
    receipt recorded and claimed in the same transaction: from then on the
    ledger answers for the receipt (a receipt not marked sent goes out again
    from the outbox once its claim lapses), so the consumer need not wait for
    the broker's confirm before it takes the next batch. It settles them (marks
    each SENT, or gives it back to the outbox) in the next batch's transaction
    when their confirms are in by then (``mark_ready``), else after that batch,
    whenever it has nothing to hand over or is reconnecting (``settle_ready``, the
    consumer's idle hook: those confirmed, or past their confirm timeout, by
    then), and all of them when it stops (``finish``). One the ledger cannot
    settle for now (an outage) stays here for a later turn. Used by the
    consuming thread only.
    """

    def __init__(self) -> None:
        self._started: list[delivery.InFlight] = []

    def __len__(self) -> int:
        return len(self._started)

    def add(self, started: delivery.InFlight) -> None:
        self._started.append(started)

    def take(self) -> ReceiptsInFlight:
        """Those sent so far, handed over to the caller to settle; none are left here."""
        taken = ReceiptsInFlight()
        taken._started, self._started = self._started, []
        return taken

    def put_back(self, taken: ReceiptsInFlight) -> None:
        """Take back, first in line, what ``take`` handed over and is not settled."""
        self._started[:0] = taken._started
        taken._started = []

    def mark_ready(self, conn: Connection) -> list[delivery.InFlight]:
        """Mark, in ``conn``'s transaction, those whose every message has its outcome
        (confirmed, refused or failed: the batch's own transaction, no commit and no
        flush of their own); pass what this returns to ``marked`` once it committed.
        One past its confirm timeout is left to be settled alone (giving it up may
        wait a moment for the broker's IO thread, not to be done holding the ledger's
        writer). Marked in a savepoint: if that fails, none is marked and all stay to
        be settled alone."""
        ready = [started for started in self._started if started.confirmed]
        if not ready:
            return []

        def mark() -> None:
            for started in ready:
                started.mark(conn)

        with BUDGET.timed("receipt"):
            # These can wait (settled on their own after the batch), unless the failure
            # took the batch's transaction with it (then ``in_savepoint`` raises: the
            # batch is retried, or held through an outage).
            marked = in_savepoint(conn, mark, "marking earlier receipts sent")
        if isinstance(marked, Failed):
            log.error("receipts in flight are settled on their own", exc_info=marked.error)
            return []
        return ready

    def marked(self, settled: list[delivery.InFlight]) -> None:
        """Those ``mark_ready`` marked are committed: settled, no longer here."""
        for started in settled:
            started.marked()
        done = {id(started) for started in settled}
        self._started = [s for s in self._started if id(s) not in done]

    def settle_ready(self) -> None:
        """Settle those whose confirms are in or whose confirm timeout has passed (so
        given up: back to the outbox); the others wait for a later turn."""
        ready: list[delivery.InFlight] = []
        waiting: list[delivery.InFlight] = []
        for started in self._started:  # one look each: a confirm may land meanwhile
            (ready if started.ready else waiting).append(started)
        self._started = waiting
        self._started[:0] = [s for s in ready if not _settle(s)]

    def finish(self) -> None:
        """Settle all, waiting for their confirms (each up to its publish's timeout);
        those the ledger cannot settle now stay."""
        started, self._started = self._started, []
        self._started = [s for s in started if not _settle(s)]


def _settle(started: delivery.InFlight) -> bool:
    """Settle one; False if the ledger does not answer (to be tried again)."""
    try:
        with BUDGET.timed("receipt"):
            receipts.finish_signed(started)
    except OutageError as exc:
        log.warning("a receipt in flight is settled once the ledger answers: %s", exc)
        return False
    except Exception:  # why everything: the batch is recorded and acknowledged already
        log.exception(
            "the receipt of a received batch was not marked sent; "
            "the sender loop publishes it again once its claim lapses"
        )
    return True


def _same_content(
    gw: Gateway,
    conn: Connection,
    owner: str,
    checked: Sequence[Passed | Refused],
    contents: Sequence[str | None],
) -> dict[tuple[str, str], str]:
    """(sender, content digest) -> the first message that carried it to ``owner`` before
    this batch: one read per sender in the batch, not one per message."""
    by_sender: dict[str, list[str]] = {}
    for item, content in zip(checked, contents, strict=True):
        if isinstance(item, Passed) and content is not None:
            by_sender.setdefault(item.verified.sender, []).append(content)
    return {
        (sender, content): message_id
        for sender, digests in by_sender.items()
        for content, message_id in gw.ledger.same_content(conn, owner, sender, digests).items()
    }


def _lock_names(
    owner: str, checked: Sequence[Passed | Refused], contents: Sequence[str | None]
) -> list[str]:
    """What the recording transaction locks: each message's id (whoever sent it: an
    id names one message, ``InboundKnown.holders``), and for those that passed,
    their case thread and (local records) their content."""
    names = []
    for item, content in zip(checked, contents, strict=True):
        if isinstance(item, Refused):
            names.append(f"inbound:{owner}:{item.message_id}")
            continue
        sender = item.verified.sender
        names.append(f"inbound:{owner}:{item.verified.message_id}")
        names.append(locks.thread(owner, item.env.header.correlation_id))
        header = item.env.header
        if isinstance(item.env.body, Recall | ErasureRequest):
            # A recall or erasure request that stands (``gateway.lifecycle.standing``)
            # and what it names coming in another replica's batch: one waits for the
            # other, whatever thread it names, so neither misses the other.
            names.extend(f"inbound:{owner}:{named}" for named in sorted(_named_ids(item)))
        if header.purpose == Purpose.EXISTENCE_CHECK and header.legal_basis == (
            LegalBasis.SAFEGUARDING
        ):
            # Its sender's daily rate is counted from the ledger: one replica at a time.
            names.append(f"existence-rate:{owner}:{sender}")
        if content is not None:
            names.append(f"content:{owner}:{sender}:{content}")
    return names


def _received(item: Passed) -> Received:
    return Received(
        authority=item.source.owner,
        route=item.source.route,
        env=item.env,
        digest=item.verified.digest,
        body=item.raw,
    )


def _withdrawn_on_arrival(gw: Gateway, ctx: ApplyContext, item: Passed) -> str | None:
    """Why a feature withdraws ``item`` as it arrives (``Feature.on_arrival``), if one does."""
    for feature in gw.features:
        if feature.on_arrival is not None:
            with BUDGET.timed("appliers"):
                why = feature.on_arrival(ctx, _received(item))
            if why is not None:
                return why
    return None


def _apply(gw: Gateway, ctx: ApplyContext, item: Passed) -> None:
    """Every feature judges first (any may refuse); only then does each change its state."""
    received = _received(item)
    with BUDGET.timed("appliers"):
        judged = [
            applier(ctx, received) for applier in gw.appliers.get(item.env.header.message_type, ())
        ]
        for effect in judged:
            if effect is not None:
                effect()


def _window_problem(gw: Gateway, env: Envelope) -> str | None:
    now = gw.clock()
    limits = gw.settings.limits
    created = env.header.created_at
    if created > now + timedelta(seconds=limits.future_skew_s):
        return (
            f"created-at {created.isoformat()} is more than {limits.future_skew_s} s in the future"
        )
    if created < now - timedelta(seconds=limits.max_age_s):
        return (
            f"created-at {created.isoformat()} is older than {limits.max_age_s} s "
            "(stale or replayed)"
        )
    return None


def _refusal(item: Passed, reason: str, *, proven: bool) -> Refused:
    return Refused(
        item.source,
        reason,
        item.verified.sender,
        item.verified.message_id,
        item.env.header.message_type.value,
        item.verified.digest,
        proven,
    )


def _quarantine(bad: Refused) -> NewMessage:
    log.warning(
        "quarantined %s from %s: %s",
        bad.message_id,
        bad.sender,
        bad.reason,
        extra={"message_id": bad.message_id, "authority": bad.source.owner},
    )
    owner = bad.source.owner
    return NewMessage(
        message_id=bad.message_id,
        direction=Direction.INBOUND,
        authority=owner,
        sender=bad.sender,
        recipient=owner,
        message_type=bad.message_type,
        correlation_id="?",
        legal_basis="?",
        statuses=((Status.RECEIVED, None), (Status.QUARANTINED, bad.reason)),
        digest=bad.digest,
        receipt_due=bad.signature_ok and owner != REGIONAL,
        route=bad.source.route,
        route_to=owner,
    )


def _accepted(
    item: Passed,
    content: str | None,
    same_as: str | None = None,
    settled: tuple[Status, str] | None = None,
    restricted: bool = False,
) -> NewMessage:
    header = item.env.header
    # A correction is about the child (and case) of the record it carries.
    record = getattr(item.env.body, "replacement", item.env.body)
    child = getattr(record, "child", None)
    owner = item.source.owner
    statuses: tuple[tuple[Status, str | None], ...] = (
        (Status.RECEIVED, None),
        (Status.VERIFIED, item.verified.note),
    )
    if same_as is not None:
        statuses = (
            *statuses,
            (
                Status.DUPLICATE,
                f"identical to {same_as}, already received from {header.sender}; "
                "not handed to the local system again",
            ),
        )
    if settled is not None:
        statuses = (*statuses, settled)
    return NewMessage(
        message_id=header.message_id,
        direction=Direction.INBOUND,
        authority=owner,
        sender=header.sender,
        recipient=header.recipient,
        message_type=header.message_type.value,
        correlation_id=header.correlation_id,
        legal_basis=header.legal_basis.value,
        statuses=statuses,
        case_ref=getattr(record, "case_ref", None),
        purpose=header.purpose.value if header.purpose else None,
        digest=item.verified.digest,
        body=item.raw,
        receipt_due=header.message_type != MessageType.RECEIPT and owner != REGIONAL,
        child_key=child_key(child) if child is not None else None,
        route=item.source.route,
        route_to=owner,
        content_digest=content,
        restricted=restricted,
    )


def _recorded_pairs(checked: Sequence[Passed | Refused]) -> list[tuple[str, str]]:
    """The ``(sender, message_id)`` of each row the batch may record: a refusal's, and
    for a message that passed, the signed one (quarantined) and its header's (accepted).
    A row under a pair left out here would be taken for new, and refused by the
    ledger's unique key (the batch retried) if it were not."""
    pairs = []
    for item in checked:
        if isinstance(item, Refused):
            pairs.append((item.sender, item.message_id))
            continue
        pairs.append((item.verified.sender, item.verified.message_id))
        pairs.append((item.env.header.sender, item.env.header.message_id))
    return pairs


def _without_repeats(
    gw: Gateway, new: list[NewMessage], conn: Connection, recorded: InboundKnown
) -> list[NewMessage]:
    """Drop rows already recorded with the same (sender, id, digest), noting the repeat.

    A peer that got no receipt re-sends the same bytes; a message quarantined
    the first time is quarantined again, and the evidence row must not be
    duplicated (nor may the unique key fail the whole batch). The first
    decision on those bytes stands: the repeat is noted on the existing row.
    ``recorded``, read at the start of the transaction, holds them (no second
    read: ``_recorded_pairs``).
    """
    keys = [(m.sender, m.message_id, m.digest) for m in new]
    existing = recorded.rows
    kept: list[NewMessage] = []
    seen: set[tuple[str, str, str | None]] = set()
    for message, key in zip(new, keys, strict=True):
        if key in existing:
            last = message.statuses[-1][1] if message.statuses else None
            gw.ledger.note(existing[key], Status.DUPLICATE, last or "received again", conn)
        elif key not in seen:
            kept.append(message)
        seen.add(key)
    return kept
