"""``ledger.as_utc``: every time the ledger compares is an aware datetime in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gateway.ledger.core import as_utc


def test_a_naive_time_from_sqlite_is_taken_as_utc() -> None:
    assert as_utc(datetime(2026, 12, 7, 9, 30)) == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert as_utc(datetime(2026, 12, 7, 9, 30)).tzinfo is UTC


def test_a_signed_time_with_an_offset_is_the_same_instant_written_in_utc() -> None:
    # SQLite compares the times it keeps as text: 10:30+01:00 must be kept as 09:30 UTC,
    # or it sorts after 10:00 UTC although it came half an hour before.
    local = datetime(2026, 6, 7, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    got = as_utc(local)
    assert got.tzinfo is UTC
    assert (got.hour, got.minute) == (9, 30)
    assert got == local
