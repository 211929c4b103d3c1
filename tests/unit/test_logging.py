"""Structured JSON logs: ids from context or extra, personal data never emitted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.logging_setup import json_handler, log_context

pytestmark = pytest.mark.timeout(30)

MESSAGE_ID = "9b2d4f6a-8c0e-4a1b-9c3d-5e7f9a1b3c5d"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("cafgw.test.logging")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = json_handler(stream)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_level_logger_and_message(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.warning("published %d messages", 3)
    (entry,) = lines(stream)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "cafgw.test.logging"
    assert entry["message"] == "published 3 messages"
    assert "message_id" not in entry


def test_message_and_correlation_ids_come_from_the_log_context(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    with log_context(message_id=MESSAGE_ID, correlation_id="332-DUD-2026-00417", authority="332"):
        logger.info("signed")
    logger.info("outside")
    inside, outside = lines(stream)
    assert inside["message_id"] == MESSAGE_ID
    assert inside["correlation_id"] == "332-DUD-2026-00417"
    assert inside["authority"] == "332"
    assert "message_id" not in outside


def test_ids_passed_as_extra_are_carried(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info("dead-lettered", extra={"message_id": MESSAGE_ID, "attempts": 6})
    (entry,) = lines(stream)
    assert entry["message_id"] == MESSAGE_ID
    assert entry["attempts"] == 6


def test_personal_data_fields_are_refused(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.info(
        "received",
        extra={
            "message_id": MESSAGE_ID,
            "upn": "A123456789012",
            "dob": "2015-03-02",
            "postcode": "B69 4LT",
            "given_name": "Amelia",
        },
    )
    raw = stream.getvalue()
    (entry,) = lines(stream)
    for value in ("A123456789012", "2015-03-02", "B69 4LT", "Amelia"):
        assert value not in raw
    assert entry["redacted_fields"] == ["dob", "given_name", "postcode", "upn"]
    assert entry["message_id"] == MESSAGE_ID


def test_identifiers_inside_the_message_text_are_redacted_but_message_ids_kept(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.warning(
        "record for UPN %s, NHS %s at %s in message %s",
        "A123456789012",
        "943 476 5919",
        "b69 4lt",
        MESSAGE_ID,
    )
    (entry,) = lines(stream)
    message = str(entry["message"])
    assert "A123456789012" not in message
    assert "943 476 5919" not in message
    assert "b69 4lt" not in message
    assert message.count("[redacted]") == 3
    assert MESSAGE_ID in message


def test_exception_text_is_redacted_too(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise ValueError("bad NHS number 9434765919")
    except ValueError:
        logger.exception("conversion failed")
    (entry,) = lines(stream)
    assert "9434765919" not in stream.getvalue()
    assert "ValueError" in str(entry["exception"])


def test_identifiers_in_other_extra_fields_are_redacted(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = logged
    logger.info("rejected", extra={"reason": "UPN A123456789012 failed its check"})
    (entry,) = lines(stream)
    assert entry["reason"] == "UPN [redacted] failed its check"
