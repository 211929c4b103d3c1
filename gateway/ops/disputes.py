"""Open disputes for monitoring: id, stage, deadline and whether it is overdue.

Only these fields leave here: a dispute's subject and parties may describe a
child, so the dashboard and metrics never see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.context import Gateway
from gateway.disputes import service


@dataclass(frozen=True)
class DisputeLine:
    dispute_id: str
    authority: str
    stage: str
    deadline: datetime | None
    overdue: bool


def open_disputes(gw: Gateway, authorities: Sequence[str]) -> list[DisputeLine]:
    """Open disputes of ``authorities`` with stage and deadline; overdue ones first."""
    lines = [
        DisputeLine(
            dispute_id=d.dispute_id,
            authority=code,
            stage=d.stage.value,
            deadline=d.deadline,
            overdue=d.overdue,
        )
        for code in authorities
        for d in service.open_disputes(gw.kit, code)
    ]
    far = datetime.max.replace(tzinfo=gw.clock().tzinfo)
    return sorted(lines, key=lambda d: (not d.overdue, d.deadline or far))
