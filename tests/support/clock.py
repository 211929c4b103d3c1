"""The one settable clock of the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Monday 5 October 2026, 10:00 in London (09:00 UTC): a working day, for the
# dispute deadlines counted in working days.
MONDAY = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand; pass it to ``build`` as the gateway's clock."""

    def __init__(self, start: datetime = MONDAY) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        self.now += timedelta(seconds=seconds, **delta)

    @classmethod
    def starting_now(cls) -> Clock:
        """A clock that starts at the real now (for keys and certificates valid from today)."""
        return cls(datetime.now(UTC).replace(microsecond=0))


class CpuClock:
    """A CPU-seconds clock (as ``time.process_time``) the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds
