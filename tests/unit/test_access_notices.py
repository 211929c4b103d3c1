"""Access notices (in-memory region): when Wolverhampton opens a record Dudley sent it,
Dudley learns it once per opening, batched in one signed notice, never with the reader's
name; an authority that has not switched them on sends none."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_support import envelope_of, pump, settings_for
from retention_support import dudley_shared, region
from support.clock import Clock
from support.sql import captured, plans, unbounded

from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import access
from gateway.model import AccessKind, AccessNotice
from gateway.services import access_log

pytestmark = pytest.mark.timeout(120)


def _sent(gw: Gateway, recipient: str) -> MessageRecord:
    return next(
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=500)
        if r.recipient == recipient and r.message_type == "Assessment"
    )


def _copy(gw: Gateway, code: str, message_id: str) -> MessageRecord:
    [row] = gw.ledger.find(message_id=message_id, authority=code, direction=Direction.INBOUND)
    return row


def _notices(gw: Gateway) -> list[MessageRecord]:
    return [
        r
        for r in gw.ledger.find(authority="332", direction=Direction.INBOUND, limit=500)
        if r.message_type == "AccessNotice"
    ]


def _read(gw: Gateway, code: str, pk: int, what: str) -> None:
    """A person reads the record through the API, as GET /v1/inbox records it."""
    access_log.record(gw, code, "Jo Bloggs", access_log.inbox_reads(gw, code, [pk], what))


def _noticing(tmp_path: Path) -> tuple[Clock, Gateway]:
    """The region with Wolverhampton (336) sending access notices every minute, switched
    on before Dudley shares Siobhán's records."""
    clock = Clock.starting_now()
    on = {"336": {"access_notices": True, "access_notice_batch_s": 60}}
    gw = region(tmp_path, clock, settings_for(tmp_path, authority_delivery=on))
    access.send_access_notices(gw)  # switched on from now
    dudley_shared(gw)
    return clock, gw


def test_a_batch_reads_the_acknowledgements_since_the_last_by_the_historys_keys(
    tmp_path: Path,
) -> None:
    # Issue 14: the acknowledgements since the last batch were found from every message
    # the authority had received (by its authority and direction), at every batch.
    clock, gw = _noticing(tmp_path)
    to_336 = _sent(gw, "336")
    assert gw.ledger.acknowledge_local("336", to_336.message_id)
    clock.advance(seconds=61)
    with captured(gw.ledger.engine) as statements:
        pump(gw)
    [notice] = _notices(gw)
    assert notice.sender == "336"
    (plan,) = [
        p
        for sql, p in plans(gw.ledger.engine, statements).items()
        if "FROM status_history JOIN messages" in " ".join(sql.split())
        and "status_history.status = ?" in sql
    ]
    assert plan.splitlines()[0] == (
        "SEARCH status_history USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
    ), plan
    assert not unbounded(plan), plan


def test_openings_reach_the_sender_once_each_in_one_batched_signed_notice(
    tmp_path: Path,
) -> None:
    clock, gw = _noticing(tmp_path)
    to_336, to_333 = _sent(gw, "336"), _sent(gw, "333")
    copy = _copy(gw, "336", to_336.message_id)
    _read(gw, "336", copy.pk, "inbox")
    _read(gw, "336", copy.pk, "inbox (local format)")
    assert gw.ledger.acknowledge_local("336", to_336.message_id)
    assert gw.ledger.acknowledge_local("333", to_333.message_id)  # 333 sends no notices
    pump(gw)
    assert _notices(gw) == []  # batched: nothing before the batch is due
    clock.advance(seconds=61)
    pump(gw)
    [notice] = _notices(gw)
    assert notice.sender == "336" and notice.status == Status.WITHDRAWN  # not for the local system
    env = envelope_of(gw, notice)
    assert env is not None and isinstance(env.body, AccessNotice)
    assert sorted(e.kind for e in env.body.events) == sorted(
        [AccessKind.API_READ, AccessKind.LOCAL_DOWNLOAD, AccessKind.LOCAL_ACK]
    )
    assert {e.message_id for e in env.body.events} == {to_336.message_id}
    assert {e.digest for e in env.body.events} == {to_336.digest}
    body = gw.ledger.body_of("332", Direction.INBOUND, notice.message_id) or b""
    assert b"Jo Bloggs" not in body  # the reader's name stays at Wolverhampton
    opened = [
        h
        for h in gw.ledger.find(message_id=to_336.message_id, authority="332")[0].history
        if h.status == Status.ACCESSED
    ]
    assert len(opened) == 3 and all("opened at 336" in (h.reason or "") for h in opened)
    assert not any(
        h.status == Status.ACCESSED
        for h in gw.ledger.find(message_id=to_333.message_id, authority="332")[0].history
    )
    # Once per opening: nothing new, nothing sent; a new read is the next batch's only event.
    clock.advance(seconds=61)
    pump(gw)
    assert len(_notices(gw)) == 1
    _read(gw, "336", copy.pk, "inbox")
    clock.advance(seconds=61)
    pump(gw)
    later = [n for n in _notices(gw) if n.message_id != notice.message_id]
    assert len(later) == 1
    env = envelope_of(gw, later[0])
    assert env is not None and isinstance(env.body, AccessNotice)
    assert [e.kind for e in env.body.events] == [AccessKind.API_READ]
    assert audit.verify(gw.ledger) == []
