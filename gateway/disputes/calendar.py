"""Working days in England and Wales: weekends and bank holidays excluded.

A stage of N working days that starts at some instant ends at ``end_of_day``
(local time) of the N-th working day after the day it started, so a dispute
raised on a Friday afternoon before a bank holiday Monday gets its full
allowance. The clock is always passed in; nothing here reads the time.
"""

from __future__ import annotations

import functools
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.errors import ConfigError
from gateway.settings import DisputeSettings


def bank_holidays() -> Container[date]:
    """England and Wales bank holidays (the same days; Scotland and NI differ)."""
    return _BankHolidays()


class _BankHolidays:
    """The ``holidays`` package's calendar, loaded at the first question.

    Importing ``holidays`` loads every country's calendar (~11 MB of a gateway
    process): a gateway that never dates a dispute stage never pays for it.
    """

    def __contains__(self, day: object) -> bool:
        return day in _england_and_wales()


@functools.cache
def _england_and_wales() -> Container[date]:
    import holidays  # noqa: PLC0415 (see _BankHolidays)

    return holidays.country_holidays("GB", subdiv="ENG")


@dataclass(frozen=True)
class WorkingCalendar:
    """Adds working days to instants in a local time zone."""

    zone: ZoneInfo
    end_of_day: time
    closed: Container[date] = field(default_factory=bank_holidays)

    @classmethod
    def from_settings(cls, settings: DisputeSettings) -> WorkingCalendar:
        try:
            zone = ZoneInfo(settings.timezone)
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                f"disputes.timezone: unknown time zone {settings.timezone!r}"
            ) from exc
        hours, minutes = (int(p) for p in settings.end_of_day.split(":"))
        return cls(zone, time(hours, minutes))

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closed

    def add_working_days(self, day: date, count: int) -> date:
        """The ``count``-th working day after ``day`` (``day`` itself never counts)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        current = day
        left = count
        while left:
            current += timedelta(days=1)
            if self.is_working_day(current):
                left -= 1
        return current

    def deadline(self, start: datetime, working_days: int) -> datetime:
        """End of the ``working_days``-th working day after ``start``, in UTC."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local_day = start.astimezone(self.zone).date()
        last = self.add_working_days(local_day, working_days)
        return datetime.combine(last, self.end_of_day, tzinfo=self.zone).astimezone(UTC)
