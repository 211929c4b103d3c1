"""Open and overdue disputes reach the dashboard and /metrics, without their subject."""

from __future__ import annotations

from pathlib import Path

import pytest
from ops_helpers import Clock, FakeProbe, make_gateway
from test_metrics import labels, scrape

from gateway.api.auth import Caller
from gateway.dashboard.view import build_view
from gateway.disputes import service
from tests.dispute_helpers import request

pytestmark = pytest.mark.timeout(60)


def test_an_open_dispute_shows_its_stage_and_deadline_and_follows_its_escalation(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request(no_personal_data=True, consent_ref=None))
    view = build_view(gw, Caller("332", "authority"), FakeProbe())
    (line,) = view.disputes
    assert (line.dispute_id, line.stage, line.overdue) == (
        raised.dispute_id,
        raised.stage.value,
        False,
    )
    assert "housing" not in repr(view.disputes)
    got = scrape(gw)
    assert got[("cafgw_disputes_open", labels(authority="332", stage=raised.stage.value))] == 1
    assert got[("cafgw_disputes_overdue", labels(authority="332"))] == 0

    assert raised.deadline is not None
    clock.now = raised.deadline + (raised.deadline - raised.created_at) * 4
    service.escalate_due(gw.kit)  # whatever the ladder does, nothing answers
    view = build_view(gw, Caller("332", "authority"), FakeProbe())
    overdue = [d for d in view.disputes if d.overdue]
    print("AFTER", view.disputes)
    assert overdue or all(d.stage != raised.stage.value for d in view.disputes)
