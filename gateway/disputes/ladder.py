"""The escalation ladder: practitioners, CAF coordinators, (optionally) the
regional coordinators group, then the line managers of both parties.

From the guidance: disputes "which cannot be resolved by negotiation between
those practitioners and their respective CAF Managers/Co-ordinators ... should
be escalated through direct line management of both parties".
"""

from __future__ import annotations

from gateway.model import DisputeStage

LADDER: tuple[DisputeStage, ...] = (
    DisputeStage.PRACTITIONERS,
    DisputeStage.COORDINATORS,
    DisputeStage.REGIONAL_GROUP,
    DisputeStage.LINE_MANAGERS,
)
FINAL = DisputeStage.LINE_MANAGERS


def rank(stage: DisputeStage) -> int:
    """Position on the ladder (0 = practitioners); stages only ever climb."""
    return LADDER.index(stage)


def next_stage(stage: DisputeStage, *, regional: bool = True) -> DisputeStage | None:
    """The stage after ``stage`` (None at the top); the regional stage may be skipped."""
    for candidate in LADDER[rank(stage) + 1 :]:
        if candidate is DisputeStage.REGIONAL_GROUP and not regional:
            continue
        return candidate
    return None


def higher(a: DisputeStage, b: DisputeStage) -> DisputeStage:
    """The later of two stages (both gateways converge on the highest one)."""
    return a if rank(a) >= rank(b) else b
