"""A process gives back only the outbox claims it holds (``Ledger.release_claims``).

A claim is a lease: a publish that outlasts it (a stalled broker, a paused
process) may find the row claimed by another replica since. When that publish
then fails, clearing the row's claim would take it from the replica publishing
it: whoever claims next publishes it a second time, and a consent withdrawal
(``stop_queued``) would stop a row that is going out that moment, the ledger
saying "stopped" of a message that was sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from local_systems import signed_inbound
from ops_helpers import make_gateway
from sqlalchemy import select
from support.clock import Clock
from support.databases import on_both
from support.gateways import claimed_until
from support.outbound import queued

from gateway.context import Gateway
from gateway.errors import BrokerUnavailableError
from gateway.ledger.handoff import Claimed, Handoff
from gateway.ledger.status import Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.services import delivery
from gateway.transport.base import OutgoingMessage, PublishOutcome, PublishResult
from gateway.transport.memory import MemoryTransport

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def _status(ledger: Ledger, pk: int) -> str:
    with ledger.transaction() as conn:
        return str(conn.scalar(select(messages.c.status).where(messages.c.id == pk)))


@on_both
def test_a_claim_another_replica_took_after_ours_lapsed_is_not_given_back_by_us(
    ledger: Ledger,
) -> None:
    # From now: stop_queued reads the ledger's own clock, real time here, and must find
    # the other replica's claim still live (a fixed time would pass and let it lapse).
    t0 = datetime.now(UTC) - LEASE
    (pk,) = ledger.record([queued()])
    (ours,) = ledger.claim_outbox(10, None, t0, t0 + LEASE)
    later = t0 + LEASE + timedelta(seconds=1)
    (theirs,) = ledger.claim_outbox(10, None, later, later + LEASE)  # ours lapsed
    assert theirs.pk == ours.pk == pk

    ledger.release_claims([Claimed((ours,), t0 + LEASE)])  # our publish failed

    assert ledger.claim_outbox(10, None, later, later + LEASE) == []  # still theirs
    with ledger.transaction() as conn:
        assert ledger.stop_queued([pk], "consent withdrawn", conn) == []
    assert _status(ledger, pk) == Status.SIGNED.value


@on_both
def test_a_claim_still_ours_is_given_back_at_once(ledger: Ledger) -> None:
    first, second = (ledger.record([queued(n=n)])[0] for n in (1, 2))
    claimed = ledger.claim_outbox(10, None, T0, T0 + LEASE)
    assert [i.pk for i in claimed] == [first, second]

    ledger.release_claims([Claimed(tuple(claimed), T0 + LEASE)])

    assert [i.pk for i in ledger.claim_outbox(10, None, T0, T0 + LEASE)] == [first, second]


def _handed_one(tmp_path: Path) -> tuple[MemoryTransport, Clock, Handoff, int, Claimed, Gateway]:
    """A gateway with one message handed over to its sender loop and taken, not yet
    published."""
    transport = MemoryTransport()
    clock = Clock(T0)
    gw = make_gateway(tmp_path, hosted=("332", "336"), clock=clock, transport=transport)
    handoff = Handoff(delivery.outbox_lease(gw), lambda: None, 10, gw.ledger.release_claims)
    gw.ledger.handoff = handoff
    (message,) = signed_inbound(gw, "332", "336", 1)
    (pk,) = gw.ledger.record([message])
    (claimed,) = handoff.take(10)
    return transport, clock, handoff, pk, claimed, gw


def _nacked(
    outgoing: Sequence[OutgoingMessage], timeout_s: float = 30.0, *, open_only: bool = False
) -> list[PublishResult]:
    return [PublishResult(m.message_id, PublishOutcome.FAILED, "nacked") for m in outgoing]


def test_a_publish_that_outlasted_its_claim_and_failed_leaves_the_row_to_the_replica_that_took_it(
    tmp_path: Path,
) -> None:
    transport = MemoryTransport()
    clock = Clock(T0)
    gw = make_gateway(tmp_path, hosted=("332", "336"), clock=clock, transport=transport)
    (message,) = signed_inbound(gw, "332", "336", 1)
    (pk,) = gw.ledger.record([message])
    lease = delivery.outbox_lease(gw)
    taken: list[datetime] = []

    def stalled(
        outgoing: Sequence[OutgoingMessage], timeout_s: float = 30.0, *, open_only: bool = False
    ) -> list[PublishResult]:
        # The broker stalls past the claim; another replica claims the row meanwhile
        # and publishes it; then this publish fails.
        clock.advance(lease.total_seconds() + 1)
        now = clock()
        assert [i.pk for i in gw.ledger.claim_outbox(10, None, now, now + lease)] == [pk]
        taken.append(now + lease)
        return [PublishResult(m.message_id, PublishOutcome.FAILED, "no confirm") for m in outgoing]

    transport.publish = stalled  # type: ignore[method-assign]
    summary = delivery.publish_outbox(gw)

    assert summary.failed == 1
    assert claimed_until(gw, pk) is not None  # the other replica's claim stands
    now = clock()
    assert gw.ledger.claim_outbox(10, None, now, now + lease) == []
    with gw.ledger.transaction() as conn:
        assert gw.ledger.stop_queued([pk], "consent withdrawn", conn) == []
    assert _status(gw.ledger, pk) == Status.SIGNED.value


def test_a_failed_publish_of_a_claim_still_held_gives_the_row_back_at_once(
    tmp_path: Path,
) -> None:
    transport, clock, _handoff, pk, claimed, gw = _handed_one(tmp_path)
    transport.publish = _nacked  # type: ignore[method-assign]
    assert delivery.publish_outbox(gw, handed=[claimed], claim=False).failed == 1

    assert claimed_until(gw, pk) is None
    now = clock()
    assert [i.pk for i in gw.ledger.claim_outbox(10, None, now, now + LEASE)] == [pk]


def test_a_claim_renewed_before_a_failed_publish_is_given_back_by_its_renewal(
    tmp_path: Path,
) -> None:
    transport, clock, _handoff, pk, claimed, gw = _handed_one(tmp_path)
    lease = delivery.outbox_lease(gw).total_seconds()
    confirm = gw.settings.broker.confirm_timeout_s
    clock.advance(lease - confirm + 1)  # less left than a publish may take: renewed first
    transport.publish = _nacked  # type: ignore[method-assign]

    assert delivery.publish_outbox(gw, handed=[claimed], claim=False).failed == 1

    assert claimed_until(gw, pk) is None  # not left claimed until the renewal lapses


def test_a_connection_lost_as_the_publish_starts_gives_the_claims_back_at_once(
    tmp_path: Path,
) -> None:
    transport, _clock, _handoff, pk, claimed, gw = _handed_one(tmp_path)

    def lost(*_args: object, **_kwargs: object) -> object:
        raise BrokerUnavailableError("connection lost again")

    transport.start_publish = lost  # type: ignore[method-assign]
    with pytest.raises(BrokerUnavailableError):
        delivery.publish_outbox(gw, handed=[claimed], claim=False)

    assert claimed_until(gw, pk) is None
    assert _status(gw.ledger, pk) == Status.SIGNED.value


def test_a_publish_on_the_open_connection_only_gives_back_what_it_could_not_send(
    tmp_path: Path,
) -> None:
    transport, _clock, _handoff, pk, claimed, gw = _handed_one(tmp_path)
    transport.available = False  # no connection open: the consumer's inline publish

    summary = delivery.publish_claimed(gw, claimed.items, claimed.held_until, open_only=True)

    assert summary.failed == 1
    assert claimed_until(gw, pk) is None
