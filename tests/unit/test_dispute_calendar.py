"""Working days in England and Wales, and the ladder's order."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from gateway.disputes import ladder
from gateway.disputes.calendar import WorkingCalendar
from gateway.errors import ConfigError
from gateway.model import DisputeStage
from gateway.settings import DisputeSettings

CAL = WorkingCalendar(ZoneInfo("Europe/London"), time(17, 0))


def test_weekends_are_not_working_days() -> None:
    # Friday 9 October 2026 + 1 working day = Monday 12 October
    assert CAL.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 12)


def test_easter_bank_holidays_are_skipped() -> None:
    # Thursday 2 April 2026; Good Friday 3 April and Easter Monday 6 April are closed
    assert CAL.add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)


def test_christmas_and_the_substitute_boxing_day_are_skipped() -> None:
    # Thursday 24 Dec 2026; 25 Dec (Fri) and Boxing Day observed on Monday 28 Dec
    assert CAL.add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)


def test_a_deadline_falls_at_five_pm_london_time_in_utc() -> None:
    summer = CAL.deadline(datetime(2026, 7, 6, 9, 0, tzinfo=UTC), 5)
    winter = CAL.deadline(datetime(2026, 11, 9, 9, 0, tzinfo=UTC), 5)
    assert summer == datetime(2026, 7, 13, 16, 0, tzinfo=UTC)  # BST
    assert winter == datetime(2026, 11, 16, 17, 0, tzinfo=UTC)  # GMT


def test_a_dispute_raised_late_on_friday_counts_from_monday() -> None:
    friday_evening = datetime(2026, 10, 9, 22, 30, tzinfo=UTC)
    assert CAL.deadline(friday_evening, 1) == datetime(2026, 10, 12, 16, 0, tzinfo=UTC)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.deadline(datetime(2026, 10, 9, 9, 0), 1)


def test_an_unknown_time_zone_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"disputes\.timezone"):
        WorkingCalendar.from_settings(DisputeSettings(timezone="Mars/Olympus"))


def test_stage_settings_keep_defaults_for_stages_left_out() -> None:
    settings = DisputeSettings.model_validate({"working_days": {"COORDINATORS": 3}})
    assert settings.working_days == {
        "PRACTITIONERS": 10,
        "COORDINATORS": 3,
        "REGIONAL_GROUP": 10,
        "LINE_MANAGERS": 10,
    }


def test_stage_settings_refuse_unknown_stages_and_zero_days() -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        DisputeSettings.model_validate({"working_days": {"HEADTEACHERS": 3}})
    with pytest.raises(ValueError, match="at least 1"):
        DisputeSettings.model_validate({"working_days": {"COORDINATORS": 0}})


def test_the_ladder_climbs_and_may_skip_the_regional_group() -> None:
    assert ladder.next_stage(DisputeStage.PRACTITIONERS) is DisputeStage.COORDINATORS
    assert ladder.next_stage(DisputeStage.COORDINATORS) is DisputeStage.REGIONAL_GROUP
    assert (
        ladder.next_stage(DisputeStage.COORDINATORS, regional=False) is DisputeStage.LINE_MANAGERS
    )
    assert ladder.next_stage(DisputeStage.LINE_MANAGERS) is None
    assert ladder.higher(DisputeStage.LINE_MANAGERS, DisputeStage.COORDINATORS) is (
        DisputeStage.LINE_MANAGERS
    )
