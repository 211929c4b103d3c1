"""Disputes over the real RabbitMQ between two gateways with their own ledgers,
the clock moved by hand (never slept on): the ladder climbs to both line
managers' escalation queues, a resolution stops it, a restart keeps it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.context import Gateway
from gateway.disputes import escalations, service
from gateway.errors import NotFoundError
from gateway.model import DisputeStage
from tests.dispute_helpers import Clock, dispute_settings, request
from tests.integration.gateways import running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _settings(tmp_path: Path, name: str, hosted: tuple[str, ...], vhost: str, **extra: Any) -> Any:
    return dispute_settings(
        tmp_path,
        hosted,
        f"sqlite:///{tmp_path / f'{name}.db'}",
        broker={"url": vhost, "prefetch": 50},
        **extra,
    )


def _stage(gw: Gateway, code: str, dispute_id: str) -> DisputeStage | None:
    try:
        return service.get_dispute(gw.kit, code, dispute_id).stage
    except NotFoundError:
        return None


def _roles(gw: Gateway, owner: str, dispute_id: str) -> dict[str, str]:
    return {
        e.addressee.role: e.addressee.name
        for e in escalations.for_dispute(gw.ledger, owner, dispute_id)
    }


def test_an_ignored_dispute_climbs_four_stages_to_both_line_managers_queues(
    tmp_path: Path, vhost: str
) -> None:
    clock = Clock()
    dudley = _settings(tmp_path, "dudley", ("332",), vhost, disputes={"consume_regional": True})
    wolves = _settings(tmp_path, "wolves", ("336",), vhost, disputes={"consume_regional": False})
    with running(wolves, clock) as b, running(dudley, clock) as a:
        raised = service.raise_dispute(a.kit, "332", request())
        dispute_id = raised.dispute_id
        wait_for(lambda: _stage(b, "336", dispute_id) is not None, what="the dispute at 336")
        for expected, notified in (
            (DisputeStage.COORDINATORS, ((a, "332", "COORDINATOR"), (b, "336", "COORDINATOR"))),
            (DisputeStage.REGIONAL_GROUP, ((a, "regional", "REGIONAL_GROUP"),)),
            (DisputeStage.LINE_MANAGERS, ((a, "332", "LINE_MANAGER"), (b, "336", "LINE_MANAGER"))),
        ):
            deadline = service.get_dispute(a.kit, "332", dispute_id).deadline
            assert deadline is not None
            clock.set(deadline)  # nobody acted: the worker's clock escalates it
            wait_for(
                lambda e=expected: (
                    _stage(a, "332", dispute_id) is e and _stage(b, "336", dispute_id) is e
                ),
                what=f"both copies at {expected}",
            )
            # The clock jumps working days at a time: each stage's notices must be in
            # before it jumps again, or they would arrive outside the created-at window.
            wait_for(
                lambda n=notified: all(
                    role in _roles(gw, owner, dispute_id) for gw, owner, role in n
                ),
                what=f"the {expected} escalation notices",
            )
        wait_for(
            lambda: (
                "LINE_MANAGER" in _roles(a, "332", dispute_id)
                and "LINE_MANAGER" in _roles(b, "336", dispute_id)
                and "REGIONAL_GROUP" in _roles(a, "regional", dispute_id)
            ),
            what="escalations recorded from both authorities' escalation queues",
        )
        assert _roles(a, "332", dispute_id) == {
            "COORDINATOR": "Dudley CAF Co-ordinator",
            "LINE_MANAGER": "Ruth Evans",
        }
        assert _roles(b, "336", dispute_id) == {
            "COORDINATOR": "Wolverhampton CAF Co-ordinator",
            "LINE_MANAGER": "Wolverhampton Early Help Service Manager",
        }
        history = [
            (e.action.value, e.stage.value)
            for e in service.get_dispute(b.kit, "336", dispute_id).history
        ]
        assert history == [
            ("RAISED", "PRACTITIONERS"),
            ("ESCALATED", "COORDINATORS"),
            ("ESCALATED", "REGIONAL_GROUP"),
            ("ESCALATED", "LINE_MANAGERS"),
        ]


def test_resolving_at_stage_two_stops_the_ladder(tmp_path: Path, vhost: str) -> None:
    clock = Clock()
    dudley = _settings(tmp_path, "dudley", ("332",), vhost)
    wolves = _settings(tmp_path, "wolves", ("336",), vhost, disputes={"consume_regional": False})
    with running(wolves, clock) as b, running(dudley, clock) as a:
        dispute_id = service.raise_dispute(a.kit, "332", request()).dispute_id
        wait_for(lambda: _stage(b, "336", dispute_id) is not None, what="the dispute at 336")
        deadline = service.get_dispute(a.kit, "332", dispute_id).deadline
        assert deadline is not None
        clock.set(deadline)
        wait_for(
            lambda: _stage(b, "336", dispute_id) is DisputeStage.COORDINATORS,
            what="coordinators stage at 336",
        )
        service.resolve(
            b,
            "336",
            dispute_id,
            "Wolverhampton CAF Co-ordinator",
            "Wolverhampton funds it.",
            "Dudley's support worker continues meanwhile.",
        )
        wait_for(
            lambda: service.get_dispute(a.kit, "332", dispute_id).resolved,
            what="the resolution at 332",
        )
        wait_for(
            lambda: (
                {e.kind for e in escalations.for_dispute(a.ledger, "332", dispute_id)}
                == {"ESCALATION", "RESOLUTION"}
                and {e.kind for e in escalations.for_dispute(b.ledger, "336", dispute_id)}
                == {"ESCALATION", "RESOLUTION"}
            ),
            what="both parties told of the resolution",
        )
        # months later, nothing is left to escalate on either side
        assert service.escalate_due(a.kit, clock() + timedelta(days=120)) == 0
        assert service.escalate_due(b.kit, clock() + timedelta(days=120)) == 0
        for gw, code in ((a, "332"), (b, "336")):
            view = service.get_dispute(gw.kit, code, dispute_id)
            assert view.stage is DisputeStage.COORDINATORS and view.deadline is None
            assert view.interim_arrangement == "Dudley's support worker continues meanwhile."


def test_a_restart_mid_stage_keeps_the_deadline(tmp_path: Path, vhost: str) -> None:
    clock = Clock()
    settings = _settings(tmp_path, "both", ("332", "336"), vhost)
    with running(settings, clock) as gw:
        dispute_id = service.raise_dispute(gw.kit, "332", request()).dispute_id
        clock.advance(days=3)  # mid-stage
        before = service.get_dispute(gw.kit, "332", dispute_id).deadline
    assert before is not None
    with running(settings, clock) as gw:
        assert service.get_dispute(gw.kit, "332", dispute_id).deadline == before
        clock.set(before - timedelta(seconds=1))
        assert service.escalate_due(gw.kit) == 0
        clock.set(before)
        wait_for(
            lambda: _stage(gw, "332", dispute_id) is DisputeStage.COORDINATORS,
            what="the escalation after the restart",
        )
