"""Structured JSON logs that carry the message and correlation ids, never personal data.

One JSON object per line: time, level, logger, message, and the ids of the
message being worked on. Ids come from ``extra={"message_id": ...}`` on a
call, or from :func:`log_context` around a piece of work (contextvars, so
each thread and task has its own). :class:`PersonalDataFilter` drops any
field named like personal data and redacts identifier-shaped text from the
message, so a careless ``log.info("%s", child)`` cannot leak a UPN.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.ops.redact import is_personal_field, redact_text

message_id_var: ContextVar[str | None] = ContextVar("cafgw_message_id", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("cafgw_correlation_id", default=None)
authority_var: ContextVar[str | None] = ContextVar("cafgw_authority", default=None)

CONTEXT_FIELDS = ("message_id", "correlation_id", "authority")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_HANDLER_NAME = "cafgw-json"


@contextmanager
def log_context(
    message_id: str | None = None,
    correlation_id: str | None = None,
    authority: str | None = None,
) -> Iterator[None]:
    """Every log line inside the block carries these ids."""
    tokens = [
        (var, var.set(value))
        for var, value in (
            (message_id_var, message_id),
            (correlation_id_var, correlation_id),
            (authority_var, authority),
        )
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class PersonalDataFilter(logging.Filter):
    """Refuses to emit personal data: drops such fields, redacts identifiers in text."""

    def filter(self, record: logging.LogRecord) -> bool:
        dropped = [k for k in vars(record) if k not in _STANDARD and is_personal_field(k)]
        for key in dropped:
            delattr(record, key)
        if dropped:
            record.redacted_fields = sorted(dropped)
        # Format once here so that arguments are redacted along with the text.
        record.msg = redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _json_safe(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the context ids and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = {
            "message_id": message_id_var.get(),
            "correlation_id": correlation_id_var.get(),
            "authority": authority_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not is_personal_field(key):
                entry[key] = _json_safe(value)
        for key, value in context.items():
            if value is not None:
                entry.setdefault(key, value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler writing filtered JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter())
    return handler


def configure(verbose: bool = False, stream: TextIO | None = None) -> None:
    """Send every log record, as filtered JSON, to ``stream``; replaces earlier set-ups."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(json_handler(stream))
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # uvicorn's own handlers would print plain text past the filter.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # pika logs every failed connection attempt at ERROR with a traceback (hundreds
    # of lines a minute while the broker is down); its errors reach cafgw as
    # exceptions, and gateway.transport.link says once when the broker goes and comes
    # back. --verbose shows pika's own account too.
    logging.getLogger("pika").setLevel(logging.INFO if verbose else logging.CRITICAL)
