"""What happened to each record of a submission, and the audit entry of a disclosure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.ledger.status import Status


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one record of a submission (or to the notices it caused)."""

    record: str
    case_ref: str | None
    status: Status
    message_ids: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    kind: str = "record"  # "record", or "notices" for the notices a record caused


@dataclass
class SubmitReport:
    """What happened to every record of one submission, in the order accepted."""

    source: str
    outcomes: list[RecordOutcome] = field(default_factory=list)

    def add(self, outcomes: list[RecordOutcome]) -> None:
        """Take one accepted batch's outcomes (called once per batch, as it is accepted)."""
        self.outcomes.extend(outcomes)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status and o.kind == "record")

    @property
    def queued(self) -> int:
        return self.count(Status.SIGNED)

    @property
    def held(self) -> int:
        return self.count(Status.HELD_LOCAL)

    @property
    def rejected(self) -> int:
        return self.count(Status.REJECTED)


Progress = Callable[[RecordOutcome], None]
