"""A recorded message is cut to the widths its columns are declared with."""

from __future__ import annotations

from sqlalchemy import String

from gateway.ledger.records import CODE_WIDTH, MESSAGE_ID_WIDTH, MESSAGE_TYPE_WIDTH
from gateway.ledger.tables import messages


def test_the_widths_a_message_is_cut_to_are_those_of_the_messages_table() -> None:
    declared = {
        name: column.type.length
        for name, column in messages.c.items()
        if isinstance(column.type, String)
    }
    assert declared["message_id"] == MESSAGE_ID_WIDTH
    assert declared["sender"] == declared["recipient"] == CODE_WIDTH
    assert declared["message_type"] == MESSAGE_TYPE_WIDTH
