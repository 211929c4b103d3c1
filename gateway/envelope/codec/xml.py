"""Primitives of the canonical codec: element names, lexical forms, error paths.

Writers append children in XSD order; readers take an element's children by
local name (``Fields``) and turn every problem into a ``SchemaError`` that
names the element path and source line. Kept free of model knowledge so that
the per-body codec modules stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from lxml import etree

from gateway.envelope.codec.canonical import Canonical, NotPlain
from gateway.errors import SchemaError
from gateway.model import NAMESPACE

NS = "{" + NAMESPACE + "}"
_NS_LEN = len(NS)
_MAX_OFFSET = timedelta(hours=14)  # xs:dateTime limit on time-zone offsets

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")
# What the writers fill: an lxml element, or one written straight to C14N for a
# content digest (``canonical``); the primitives below take either.
N = TypeVar("N", etree._Element, Canonical)


# --- paths and errors ---------------------------------------------------------


def _local(tag: object) -> str:
    if isinstance(tag, str):
        return tag[_NS_LEN:] if tag.startswith(NS) else etree.QName(tag).localname
    return "#node"


def path_of(el: etree._Element, child: str | None = None) -> str:
    """The element's path from the root, e.g. ``/Envelope/Assessment/Actions/Action[2]``."""
    parts: list[str] = [child] if child else []
    node: etree._Element | None = el
    while node is not None:
        name = _local(node.tag)
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


def problem(
    el: etree._Element | Canonical, reason: str, child: str | None = None
) -> SchemaError | NotPlain:
    """A SchemaError naming the element (or its missing child) and its line.

    Writing to C14N directly (``canonical``), ``NotPlain`` instead: the body is
    then written with lxml, whose error names the element.
    """
    if isinstance(el, Canonical):
        return NotPlain("refused by a writer")
    line = el.sourceline
    where = f"line {line}: " if line else ""
    return SchemaError([f"{where}{path_of(el, child)}: {reason}"])


# --- writing ------------------------------------------------------------------


def sub(parent: N, name: str) -> N:
    """Append an empty child element ``name`` of the canonical namespace."""
    if isinstance(parent, Canonical):
        return parent.child(name)
    return etree.SubElement(parent, NS + name)


def put(parent: N, name: str, value: str | None) -> None:
    """Append ``<name>value</name>`` unless value is None."""
    if value is None:
        return
    if isinstance(parent, Canonical):
        parent.leaf(name, value)
        return
    el = etree.SubElement(parent, NS + name)
    try:
        el.text = value
    except ValueError as exc:  # control characters, NUL: not representable in XML
        raise problem(el, f"text cannot be written as XML: {exc}") from exc


def put_attr(el: N, name: str, value: str) -> None:
    """Set attribute ``name``, converting lxml's refusal into a SchemaError."""
    if isinstance(el, Canonical):
        el.set(name, value)
        return
    try:
        el.set(name, value)
    except ValueError as exc:
        raise problem(el, f"attribute {name} cannot be written as XML: {exc}") from exc


def fmt_bool(value: bool | None) -> str | None:
    """xs:boolean lexical form."""
    if value is None:
        return None
    return "true" if value else "false"


def fmt_date(value: date | None) -> str | None:
    """xs:date lexical form (YYYY-MM-DD)."""
    return None if value is None else value.isoformat()


def fmt_int(value: int | None) -> str | None:
    """xs:integer lexical form."""
    return None if value is None else str(value)


def put_instant(parent: N, name: str, value: datetime | None) -> None:
    """Append an Instant: ISO 8601 keeping the offset, ``Z`` for UTC."""
    if value is None:
        return
    el = sub(parent, name)
    el.text = _instant_text(el, value)


def put_date_or_instant(parent: N, name: str, value: date | datetime | None) -> None:
    """Append a DateOrInstant: a datetime as an Instant, a date as a Date."""
    if value is None:
        return
    el = sub(parent, name)
    el.text = _instant_text(el, value) if isinstance(value, datetime) else value.isoformat()


def _instant_text(el: etree._Element | Canonical, value: datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise problem(el, "a datetime without a UTC offset cannot be sent")
    if offset.microseconds or offset.seconds % 60 or abs(offset) > _MAX_OFFSET:
        value = value.astimezone(UTC)  # same instant, in an offset XSD can express
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --- reading ------------------------------------------------------------------


# Local names of the canonical namespace's elements by their lxml tag, as decoding
# met them: one look-up per child instead of a type check, a prefix check and a
# slice. Bounded in number and in length: a peer's document may name elements the
# model has never heard of, up to libxml2's 50,000 bytes a name (the schema's longest
# is 23 characters).
_LOCAL_NAMES: dict[str, str] = {}
_LOCAL_NAMES_MAX = 1024
_LOCAL_NAME_MAX_CHARS = 64


def _local_name(child: etree._Element, tag: str) -> str:
    if not tag.startswith(NS):
        raise problem(child, "element of an unexpected namespace")
    name = tag[_NS_LEN:]
    if len(name) <= _LOCAL_NAME_MAX_CHARS and len(_LOCAL_NAMES) < _LOCAL_NAMES_MAX:
        _LOCAL_NAMES[tag] = name
    return name


class Fields:
    """The child elements of one element, taken by local name while decoding."""

    __slots__ = ("_kids", "el")

    def __init__(self, el: etree._Element) -> None:
        self.el = el
        kids: dict[str, etree._Element] = {}
        for child in el:
            tag = child.tag
            name = _LOCAL_NAMES.get(tag)
            if name is None:
                if not isinstance(tag, str):
                    continue  # comment or processing instruction
                name = _local_name(child, tag)
            if name in kids:
                raise problem(child, "element may occur only once here")
            kids[name] = child
        self._kids = kids

    def opt(self, name: str) -> etree._Element | None:
        """The child ``name``, or None."""
        return self._kids.pop(name, None)

    def req(self, name: str) -> etree._Element:
        """The child ``name``; missing is an error."""
        el = self._kids.pop(name, None)
        if el is None:
            raise problem(self.el, "required element is missing", name)
        return el

    def text(self, name: str) -> str:
        """The text of the child ``name`` (empty if it has none); missing is an error."""
        return self.req(name).text or ""

    def opt_text(self, name: str) -> str | None:
        """The text of the child ``name``, or None if there is no such child."""
        el = self._kids.pop(name, None)
        return None if el is None else el.text or ""

    def conv(self, name: str, parse: Callable[[etree._Element], T]) -> T:
        """The child ``name`` parsed by ``parse``; missing is an error."""
        return parse(self.req(name))

    def opt_conv(self, name: str, parse: Callable[[etree._Element], T]) -> T | None:
        """The child ``name`` parsed by ``parse``, or None."""
        el = self._kids.pop(name, None)
        return None if el is None else parse(el)

    def enum(self, name: str, cls: type[E]) -> E:
        """The code of the child ``name`` as a member of ``cls``; missing is an error."""
        return parse_enum(self.req(name), cls)

    def opt_enum(self, name: str, cls: type[E]) -> E | None:
        """The code of the child ``name`` as a member of ``cls``, or None."""
        el = self._kids.pop(name, None)
        return None if el is None else parse_enum(el, cls)

    def done(self) -> None:
        """Raise if any child was not taken: it has no place in the model."""
        for el in self._kids.values():
            raise problem(el, "unexpected element")


def items(el: etree._Element | None, name: str) -> Iterator[etree._Element]:
    """The ``name`` children of a list wrapper such as ``Actions``; none if absent."""
    if el is None:
        return
    tag = NS + name
    for child in el:
        if not isinstance(child.tag, str):
            continue
        if child.tag != tag:
            raise problem(child, f"unexpected element, expected {name}")
        yield child


def parse_enum(el: etree._Element, cls: type[E]) -> E:
    """The member of ``cls`` whose value is the element's text."""
    text = el.text or ""
    try:
        return cls(text)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise problem(el, f"{text!r} is not one of {allowed}") from None


def parse_bool(el: etree._Element) -> bool:
    """The xs:boolean value of the element."""
    text = (el.text or "").strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise problem(el, f"{text!r} is not a boolean (true or false)")


def parse_int(el: etree._Element) -> int:
    """The xs:integer value of the element."""
    text = (el.text or "").strip()
    try:
        return int(text)
    except ValueError:
        raise problem(el, f"{text!r} is not an integer") from None


def parse_date(el: etree._Element) -> date:
    """The Date (YYYY-MM-DD) value of the element."""
    text = (el.text or "").strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise problem(el, f"{text!r} is not a date (YYYY-MM-DD)")


def parse_instant(el: etree._Element) -> datetime:
    """The Instant value of the element, with its UTC offset."""
    text = (el.text or "").strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise problem(el, f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise problem(el, f"{text!r} has no UTC offset")
    return value


def parse_date_or_instant(el: etree._Element) -> date | datetime:
    """A datetime if the element holds a time, else a date."""
    text = el.text or ""
    return parse_instant(el) if "T" in text else parse_date(el)


def attr(el: etree._Element, name: str) -> str:
    """The attribute ``name``; missing is an error."""
    value: str | None = el.get(name)
    if value is None:
        raise problem(el, f"required attribute {name} is missing")
    return value
