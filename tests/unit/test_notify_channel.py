"""A ledger's notification channel is named after its schema, always a valid one."""

from __future__ import annotations

import pytest

from gateway.ledger.notify import CHANNEL, channel_name


def test_the_default_schema_keeps_the_original_channel() -> None:
    assert channel_name("public") == CHANNEL == "cafgw_work"


def test_a_plain_schema_name_is_part_of_its_channel() -> None:
    assert channel_name("dudley") == "cafgw_work_dudley"
    assert channel_name("la_332") == "cafgw_work_la_332"


@pytest.mark.parametrize("schema", ["Ledger-B", 'we"ird', "ledger b", "x" * 41, "écoles", "a;drop"])
def test_any_other_schema_name_gets_a_digest_channel_that_is_a_short_identifier(
    schema: str,
) -> None:
    channel = channel_name(schema)

    assert channel.startswith("cafgw_work_")
    assert len(channel.encode()) <= 63  # PostgreSQL's identifier limit
    assert channel.replace("_", "").isalnum() and channel.isascii()


def test_different_schemas_get_different_channels() -> None:
    names = ["public", "ledger_a", "Ledger-B", "ledger-b", "x" * 41, "x" * 42]
    assert len({channel_name(n) for n in names}) == len(names)
