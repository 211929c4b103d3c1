"""The monitoring queries (counters, latency, rates, what needs a human) give the same
answers on SQLite and on PostgreSQL, whose time arithmetic and id ordering differ."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from ops_helpers import Clock, FakeProbe, make_gateway, put

from gateway import metrics
from gateway.ledger.id_order import LAG_S
from gateway.ledger.status import Direction, Status
from gateway.ops import attention, rates
from tests.unit.test_metrics import labels, parse

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_counters_latency_rates_and_needs_agree_on_both_databases(
    tmp_path: Path, ledger_url: str
) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock, database={"url": ledger_url})
    try:
        start = clock()
        _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
        clock.advance(90)
        gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
        put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.RETRYING)
        put(gw, "336", "332", Status.RECEIVED, Status.QUARANTINED, direction=Direction.INBOUND)
        put(gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
        clock.advance(LAG_S + 1)  # PostgreSQL counts a row once it is LAG_S old

        registry = metrics.build_registry(gw, FakeProbe())
        got = parse(metrics.render(registry))
        assert got[("cafgw_ledger_up", ())] == 1
        sent = labels(
            authority="332", direction="OUTBOUND", message_type="Assessment", status="SENT"
        )
        assert got[("cafgw_transitions_total", sent)] == 2
        assert got[("cafgw_retries_total", labels(authority="332"))] == 1
        assert got[("cafgw_delivery_latency_seconds_sum", labels(authority="332"))] == 90
        bucket = "cafgw_delivery_latency_seconds_bucket"
        assert got[(bucket, labels(authority="332", le="60.0"))] == 0
        assert got[(bucket, labels(authority="332", le="120.0"))] == 1
        # Counted once: a second scrape adds nothing, a new registry recounts the same.
        assert parse(metrics.render(registry))[("cafgw_transitions_total", sent)] == 2
        fresh = parse(metrics.render(metrics.build_registry(gw, FakeProbe())))
        assert fresh[("cafgw_transitions_total", sent)] == 2

        series = rates.series_of(gw.ledger, ["332", "336"], start, step_s=60, buckets=3)
        assert series[("332", "sent")] == [1, 1, 0]
        assert series[("332", "delivered")] == [0, 1, 0]
        assert series[("332", "failing")] == [0, 1, 0]
        assert series[("336", "received")] == [0, 1, 0]
        assert series[("336", "failing")] == [0, 1, 0]
        since = rates.counts_since(gw.ledger, start - timedelta(seconds=1), ["332"])
        assert since[("332", "sent")] == 2

        needs = attention.counts(gw.ledger, ["332", "336"])
        assert needs == {
            ("332", attention.Need.RETRYING): 1,
            ("336", attention.Need.QUARANTINED): 1,
        }
    finally:
        gw.ledger.engine.dispose()
