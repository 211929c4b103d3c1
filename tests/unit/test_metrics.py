"""/metrics content: read from the ledger and the broker at scrape time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from ops_helpers import Clock, FakeProbe, make_gateway, put
from prometheus_client.parser import text_string_to_metric_families
from support.sql import captured, plans, unbounded

from gateway import metrics
from gateway.connectors.state import unacknowledged_before
from gateway.envelope.keys import ensure_identity
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger, make_engine

pytestmark = pytest.mark.timeout(60)


def scrape(gw: object, probe: FakeProbe | None = None) -> dict[tuple[str, tuple], float]:  # type: ignore[type-arg]
    registry = metrics.build_registry(gw, probe or FakeProbe())  # type: ignore[arg-type]
    return parse(metrics.render(registry))


def parse(text: bytes) -> dict[tuple[str, tuple], float]:  # type: ignore[type-arg]
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def labels(**kw: str) -> tuple:  # type: ignore[type-arg]
    return tuple(sorted(kw.items()))


def test_messages_are_counted_by_authority_direction_type_and_status(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DELIVERED)
    put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DELIVERED)
    put(
        gw,
        "336",
        "332",
        Status.RECEIVED,
        Status.VERIFIED,
        direction=Direction.INBOUND,
        message_type="Notification",
    )
    got = scrape(gw)
    key = labels(
        authority="332", direction="OUTBOUND", message_type="Assessment", status="DELIVERED"
    )
    assert got[("cafgw_messages", key)] == 2
    key = labels(
        authority="336", direction="INBOUND", message_type="Notification", status="VERIFIED"
    )
    assert got[("cafgw_messages", key)] == 1
    assert got[("cafgw_ledger_up", ())] == 1


def test_latency_histogram_measures_acceptance_to_signed_receipt(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    clock.advance(3)
    gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
    got = scrape(gw)
    bucket = "cafgw_delivery_latency_seconds_bucket"
    assert got[(bucket, labels(authority="332", le="2.5"))] == 0
    assert got[(bucket, labels(authority="332", le="5.0"))] == 1
    assert got[("cafgw_delivery_latency_seconds_sum", labels(authority="332"))] == 3
    assert got[("cafgw_delivery_latency_seconds_count", labels(authority="332"))] == 1


def test_a_scrape_counts_what_changed_since_the_last_by_the_historys_keys(
    tmp_path: Path,
) -> None:
    # Issue 14: the latency histogram's read named the messages' direction, by which
    # SQLite found every message ever sent (then each one's history in the window) at
    # every scrape, however little had changed since the last.
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    for _ in range(3):
        _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
        gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
    scrape(gw)
    _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
    with captured(gw.ledger.engine) as statements:
        got = scrape(gw)
    assert got[("cafgw_delivery_latency_seconds_count", labels(authority="332"))] == 4
    window = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "FROM status_history JOIN messages" in " ".join(sql.split())
    }
    assert len(window) == 2, window  # the transitions, and the latency histogram
    for sql, plan in window.items():
        assert plan.splitlines()[0] == (
            "SEARCH status_history USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
        ), f"{sql}\n{plan}"
        assert not unbounded(plan), f"{sql}\n{plan}"


WAITING = "SEARCH messages USING INDEX ix_messages_inbox (authority=? AND direction=? AND status=?)"


def test_a_scrapes_count_of_messages_waiting_since_before_a_time_reads_only_the_waiting(
    tmp_path: Path,
) -> None:
    # Issue 14: given an index on when each message was made (migration 0012), SQLite
    # counted the unfinished made before the cutoff from it, every message made before
    # it (nearly all of them) read at every scrape; the statuses' index finds the
    # waiting alone. So too the local systems' acknowledgement deadline.
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    put(gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
    clock.advance(7200)
    with captured(gw.ledger.engine) as statements:
        scrape(gw)
        unacknowledged_before(gw.ledger, "332", clock(), 10)
    before = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "messages.created_at <" in sql
    }
    # The scrape's counts (sent, received), and the deadline's read.
    assert sorted("count(*)" in sql for sql in before) == [False, True, True], list(before)
    for sql, plan in before.items():
        assert plan.splitlines()[0] == WAITING, f"{sql}\n{plan}"


def test_retries_and_dead_letters_only_grow_and_a_new_collector_recounts_the_same(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path)
    registry = metrics.build_registry(gw, FakeProbe())
    _, pk = put(gw, "332", "333", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.RETRYING)
    first = parse(metrics.render(registry))
    assert first[("cafgw_retries_total", labels(authority="332"))] == 1
    assert first[("cafgw_dead_letters_total", labels(authority="332"))] == 0
    gw.ledger.transition([pk], Status.SENT)
    gw.ledger.transition([pk], Status.RETRYING)
    gw.ledger.transition([pk], Status.SENT)
    gw.ledger.transition([pk], Status.DEAD_LETTERED, "no receipt from 333 after 3 sends")
    second = parse(metrics.render(registry))
    assert second[("cafgw_retries_total", labels(authority="332"))] == 2
    assert second[("cafgw_dead_letters_total", labels(authority="332"))] == 1
    # A restarted gateway reads the same history and reports the same totals.
    assert scrape(gw)[("cafgw_retries_total", labels(authority="332"))] == 2


def test_overdue_receipts_and_stuck_messages_follow_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED)
    gw.ledger.mark_sent([pk], clock() + timedelta(seconds=60))
    got = scrape(gw)
    assert got[("cafgw_receipts_overdue", labels(authority="332"))] == 0
    clock.advance(61)
    got = scrape(gw)
    assert got[("cafgw_receipts_overdue", labels(authority="332"))] == 1
    assert got[("cafgw_messages_stuck", labels(authority="332", direction="OUTBOUND"))] == 0
    clock.advance(gw.settings.worst_case_s("332"))
    got = scrape(gw)
    assert got[("cafgw_messages_stuck", labels(authority="332", direction="OUTBOUND"))] == 1


def test_an_unacknowledged_inbound_message_is_stuck_after_the_local_deadline(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    put(gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
    clock.advance(gw.settings.delivery_for("336").local_ack_deadline_s + 1)
    got = scrape(gw)
    assert got[("cafgw_messages_stuck", labels(authority="336", direction="INBOUND"))] == 1


def test_queue_depths_come_from_the_broker_and_a_missing_queue_is_left_out(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path)
    got = scrape(gw, FakeProbe(depths={"caf.inbox.332": 7, "caf.parking.332": None}))
    assert got[("cafgw_queue_messages", labels(queue="caf.inbox.332"))] == 7
    assert ("cafgw_queue_messages", labels(queue="caf.parking.332")) not in got
    assert got[("cafgw_broker_up", ())] == 1


def test_an_unreachable_broker_is_reported_without_failing_the_scrape(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    got = scrape(gw, FakeProbe(up=False))
    assert got[("cafgw_broker_up", ())] == 0
    assert got[("cafgw_ledger_up", ())] == 1


def test_an_unreachable_ledger_is_reported_without_failing_the_scrape(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    dead = Ledger(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"), gw.clock)
    got = scrape(replace(gw, ledger=dead))
    assert got[("cafgw_ledger_up", ())] == 0
    assert got[("cafgw_broker_up", ())] == 1


def test_certificate_expiry_days_count_down_with_the_clock(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    before = scrape(gw)[("cafgw_certificate_expiry_seconds", labels(authority="336"))]
    clock.advance(10 * 86400)
    after = scrape(gw)[("cafgw_certificate_expiry_seconds", labels(authority="336"))]
    assert before - after == pytest.approx(10 * 86400)
    assert 800 * 86400 < before <= 825 * 86400


def test_trust_in_every_peer_certificate_is_reported_with_its_expiry(tmp_path: Path) -> None:
    clock = Clock()
    # A peer (Sandwell) whose certificate this gateway pins but does not host.
    ensure_identity("333", "Sandwell", tmp_path / "keys", now=clock())
    gw = make_gateway(tmp_path, clock=clock)
    got = scrape(gw)
    pinned = {
        dict(key[1])["authority"]: value
        for key, value in got.items()
        if key[0] == "cafgw_pinned_certificate_expiry_seconds"
    }
    assert set(pinned) == set(gw.verifier.trust.codes())
    assert "333" in pinned and "333" not in gw.hosted
    clock.advance(800 * 86400)
    later = scrape(gw)[("cafgw_pinned_certificate_expiry_seconds", labels(authority="332"))]
    assert later == pytest.approx(pinned["332"] - 800 * 86400)
    assert later < 30 * 86400  # inside the warning window the alert rule watches


def test_unacknowledged_and_consumer_counts_per_queue_are_exported_when_known(
    tmp_path: Path,
) -> None:
    from gateway.ops.broker import QueueStats  # noqa: PLC0415

    gw = make_gateway(tmp_path)
    probe = FakeProbe(
        stats={
            "caf.inbox.332": QueueStats("caf.inbox.332", 4, 2, 1, "management"),
            "caf.inbox.336": QueueStats("caf.inbox.336", 7, None, 0, "passive"),
        }
    )
    got = scrape(gw, probe)
    assert got[("cafgw_queue_messages", labels(queue="caf.inbox.332"))] == 4
    assert got[("cafgw_queue_messages_unacknowledged", labels(queue="caf.inbox.332"))] == 2
    assert got[("cafgw_queue_consumers", labels(queue="caf.inbox.332"))] == 1
    assert ("cafgw_queue_messages_unacknowledged", labels(queue="caf.inbox.336")) not in got
    assert got[("cafgw_queue_consumers", labels(queue="caf.inbox.336"))] == 0


class _Timed:
    """A read that takes ``took`` seconds on a clock of the test's own."""

    def __init__(self, took: float) -> None:
        self.now, self.took, self.reads = 0.0, took, 0

    def clock(self) -> float:
        return self.now

    def read(self) -> int:
        self.reads += 1
        self.now += self.took
        return self.reads


def test_a_costly_whole_ledger_count_is_made_again_only_once_fifty_times_its_cost_passed() -> None:
    timed = _Timed(took=1.0)  # a ledger of some 700,000 messages
    counts = metrics.Recount(timed.read, clock=timed.clock)
    assert counts.get() == 1
    timed.now += 15  # the next scrape: the last count is given again
    assert counts.get() == 1
    timed.now += 32  # 48 s after it was begun (it took 1 s)
    assert counts.get() == 1 and timed.reads == 1
    timed.now += 2  # 50 s
    assert counts.get() == 2


def test_a_cheap_count_is_made_at_every_scrape() -> None:
    timed = _Timed(took=0.005)  # a ledger of a few thousand messages
    counts = metrics.Recount(timed.read, clock=timed.clock)
    assert [counts.get() for _ in range(3)] == [1, 2, 3]


def test_a_count_held_up_for_long_is_made_again_within_five_minutes() -> None:
    timed = _Timed(took=30.0)  # a ledger locked for 30 s (a migration, a stalled disk)
    counts = metrics.Recount(timed.read, clock=timed.clock)
    assert counts.get() == 1
    timed.now = 299.0
    assert counts.get() == 1
    timed.now = 300.0
    assert counts.get() == 2
