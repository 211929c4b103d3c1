"""A received batch reads what is recorded of its messages once (issue 14): the one
read answers both whether a message is new (rows not quarantined) and whether a row
to record is there already (any status), so a repeat of quarantined bytes is still
noted on the first row, never recorded twice, whatever the second decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from support.clock import Clock
from support.gateways import memory_gateway
from support.received import assessments
from support.sql import captured

from gateway.context import Gateway
from gateway.feature import ApplyContext, Received
from gateway.ledger.status import Direction, Status
from gateway.model import MessageType
from gateway.services.receiving import handle_batch
from gateway.transport.base import Verdict


# The read of inbound rows by id, whoever sent them (``InboundQueries.inbound_known``).
def _by_id(sql: str) -> bool:
    return "messages.receipt_message_id" in sql and "messages.message_id IN" in sql


def _spied(gw: Gateway) -> tuple[Gateway, list[str]]:
    """``gw`` with one more Assessment applier, which lists the ids it was given."""
    applied: list[str] = []

    def spy(_ctx: ApplyContext, received: Received) -> None:
        applied.append(received.env.header.message_id)

    appliers = dict(gw.appliers)
    appliers[MessageType.ASSESSMENT] = (*appliers.get(MessageType.ASSESSMENT, ()), spy)
    return replace(gw, appliers=appliers), applied


def test_bytes_quarantined_once_are_noted_again_not_recorded_again_with_one_read_a_batch(
    tmp_path: Path,
) -> None:
    clock = Clock.starting_now()
    gw, applied = _spied(memory_gateway(tmp_path, ("332", "336"), clock=clock))
    (delivery,) = assessments(gw, gw, ["DUD-1"])
    clock.advance(-120)  # created two minutes ahead of the receiver's clock: quarantined
    reads = []
    for now in (clock.now, clock.now, clock.now + timedelta(seconds=240)):
        # The third time its created-at is in the window: it would be accepted, but the
        # first decision on these bytes stands.
        clock.set(now)
        with captured(gw.ledger.engine) as statements:
            assert [d.verdict for d in handle_batch(gw, [delivery])] == [Verdict.ACK]
        reads.append(sum(_by_id(sql) for sql, _ in statements))
    assert reads == [1, 1, 1]
    assert applied == []  # nothing of a message the ledger keeps as quarantined was applied
    (row,) = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    assert row.status is Status.QUARANTINED
    assert [h.status for h in row.history] == [
        Status.RECEIVED,
        Status.QUARANTINED,
        Status.DUPLICATE,
        Status.DUPLICATE,
    ]


def test_a_message_recorded_once_is_a_duplicate_the_second_time_with_one_read_a_batch(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    first, second = assessments(gw, gw, ["DUD-1", "DUD-2"])
    for batch in ([first], [first, second]):
        with captured(gw.ledger.engine) as statements:
            assert {d.verdict for d in handle_batch(gw, batch)} == {Verdict.ACK}
        assert sum(_by_id(sql) for sql, _ in statements) == 1
    rows = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    assert sorted(r.status for r in rows) == [Status.VERIFIED, Status.VERIFIED]
    (again,) = [r for r in rows if r.message_id == first.message_id]
    assert [h.status for h in again.history][-1] is Status.DUPLICATE


def test_another_authoritys_gateway_resending_bytes_quarantined_here_changes_nothing_here(
    tmp_path: Path,
) -> None:
    # As councils deploy it: 332 on a gateway of its own, 336 on another, each with
    # its own ledger; one set of identities. What 332 sends is its statement: bytes
    # 336's gateway quarantined stay quarantined, whatever 332 sends them again.
    clock = Clock.starting_now()
    keys = {"keys_dir": str(tmp_path / "keys")}
    sender = memory_gateway(tmp_path / "332", ("332",), clock=clock, **keys)
    receiver, applied = _spied(memory_gateway(tmp_path / "336", ("336",), clock=clock, **keys))
    (delivery,) = assessments(sender, receiver, ["DUD-1"])
    clock.advance(-120)  # created ahead of the receiver's clock: quarantined
    assert [d.verdict for d in handle_batch(receiver, [delivery])] == [Verdict.ACK]
    clock.advance(240)  # the same bytes again, their created-at now in the window
    assert [d.verdict for d in handle_batch(receiver, [delivery])] == [Verdict.ACK]
    assert applied == []
    (row,) = receiver.ledger.find(authority="336", direction=Direction.INBOUND)
    assert row.status is Status.QUARANTINED
    assert [h.status for h in row.history][-1] is Status.DUPLICATE
    assert not sender.ledger.find(authority="332", direction=Direction.INBOUND)
