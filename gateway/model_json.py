"""The documented JSON form of a canonical message (``cafgw-local-json/1``), both ways.

A local system that has no place for a message type in its own format gets
this form from ``GET /v1/inbox?format=local`` (``docs/adapters.md``, *Local
renderings*). It is the canonical model itself, written plainly:

- an object per model object, with the field names of ``gateway/model.py``
  (which follow the XSD); a field that is empty (``null`` or an empty list)
  is left out;
- codes as their canonical values (``"SHARE_CROSS_BORDER"``), dates as
  ``YYYY-MM-DD``, instants as ISO 8601 with their UTC offset, lists as arrays;
- a field that may hold several kinds of object (a correction's
  ``replacement``) names its kind in ``"body_type"``.

``decode`` reads the form back into the same model objects, so what a local
system is given loses nothing of the signed message.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Any

from gateway import model

FORMAT = "cafgw-local-json/1"
CHOICE = "body_type"  # names the kind of object where a field may hold several
_HEADER_FIELDS = (
    "message_id",
    "correlation_id",
    "sender",
    "recipient",
    "created_at",
    "legal_basis",
    "purpose",
    "in_reply_to",
    "consent_ref",
)


def envelope_form(envelope: model.Envelope) -> dict[str, Any]:
    """The JSON form of a whole message: its header's routing facts and its body."""
    header = envelope.header
    out: dict[str, Any] = {"format": FORMAT, "message_type": header.message_type.value}
    for name in _HEADER_FIELDS:
        value = getattr(header, name)
        if value is not None:
            out[name] = encode(value)
    out["body"] = encode(envelope.body)
    return out


def encode(value: object) -> Any:
    """A model value as JSON-ready data."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            inner = getattr(value, f.name)
            if inner is None or inner == ():
                continue
            encoded = encode(inner)
            if _is_choice(type(value), f.name) and isinstance(encoded, dict):
                encoded = {CHOICE: type(inner).__name__, **encoded}
            out[f.name] = encoded
        return out
    return value


def decode_body(message_type: str, data: Any) -> model.Body:
    """The body a JSON form holds, as the model object of ``message_type``."""
    by_type = {t.value: cls for cls, t in model.BODY_TYPE.items()}
    try:
        cls = by_type[message_type]
    except KeyError:
        raise ValueError(f"{message_type!r} is not a message type") from None
    return typing.cast(model.Body, decode(cls, data, "body"))


def decode(hint: Any, data: Any, where: str) -> Any:
    """``data`` read as a value of the type ``hint`` (a model class, enum, date, ...)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if data is None:
            return None
        if len(args) == 1:
            return decode(args[0], data, where)
        if datetime in args and isinstance(data, str):
            return datetime.fromisoformat(data) if "T" in data else date.fromisoformat(data)
        if isinstance(data, dict) and CHOICE in data:
            chosen = next((a for a in args if getattr(a, "__name__", "") == data[CHOICE]), None)
            if chosen is None:
                raise ValueError(f"{where}: {CHOICE} {data[CHOICE]!r} is not one of {args}")
            return decode(chosen, {k: v for k, v in data.items() if k != CHOICE}, where)
        raise ValueError(f"{where}: cannot tell which of {args} {data!r} is")
    if origin is tuple:
        (inner, _) = typing.get_args(hint)
        return tuple(decode(inner, v, f"{where}[{i}]") for i, v in enumerate(data or ()))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_object(hint, data, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if hint is datetime:
        return datetime.fromisoformat(data)
    if hint is date:
        return date.fromisoformat(data)
    return data


def _decode_object(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {cls.__name__}")
    hints = typing.get_type_hints(cls, vars(model))
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            origin = typing.get_origin(hints[f.name])
            kwargs[f.name] = () if origin is tuple else None
    return cls(**kwargs)


def _is_choice(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls, vars(model))[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return sum(1 for a in args if dataclasses.is_dataclass(a)) > 1
