"""Checked access to one XML element of a record (attributes, text, children).

The XML twin of ``jsonview``: values are trimmed strings (empty is
``None``), Y/N flags, dates and LA codes, each problem reported through
``RecordCheck`` with the element path so the record is rejected, not the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, tzinfo

from lxml import etree

from adapters.checks import RecordCheck
from adapters.sandwell.fwi_dates import parse_fwi


class XmlView:
    """An element at ``path`` inside a record."""

    def __init__(self, element: etree._Element, path: str, check: RecordCheck) -> None:
        self.element = element
        self.path = path
        self.check = check

    def where(self, attribute: str) -> str:
        """The path of ``attribute`` of this element."""
        return f"{self.path}/@{attribute}"

    def attr(self, name: str, required: bool = False) -> str | None:
        """The attribute ``name``, trimmed; empty is ``None``."""
        value = (self.element.get(name) or "").strip() or None
        if value is None and required:
            self.check.add(self.where(name), "required value is missing")
        return value

    def text(self) -> str | None:
        """The text content, trimmed; empty is ``None``."""
        return "".join(str(t) for t in self.element.itertext()).strip() or None

    def yes_no(self, name: str) -> bool | None:
        """A ``Y``/``N`` attribute."""
        value = self.attr(name)
        if value is None:
            return None
        if value.upper() in ("Y", "N"):
            return value.upper() == "Y"
        self.check.add(self.where(name), "must be Y or N", value)
        return None

    def la(self, name: str) -> str | None:
        """An attribute holding a DfE LA code."""
        return self.check.la(self.attr(name), self.where(name))

    def when(self, name: str, zone: tzinfo, required: bool = False) -> date | datetime | None:
        """An attribute holding ``DD-MON-YYYY`` (or ``DD-MON-YYYY HH:MM``)."""
        value = self.attr(name, required)
        if value is None:
            return None
        try:
            return parse_fwi(value, zone)
        except ValueError as exc:
            self.check.add(self.where(name), str(exc), value)
            return None

    def day(self, name: str, zone: tzinfo, required: bool = False) -> date | None:
        """An attribute holding a date (a time of day, if any, is dropped)."""
        value = self.when(name, zone, required)
        return value.astimezone(zone).date() if isinstance(value, datetime) else value

    def child(self, tag: str) -> XmlView | None:
        """The first child element ``tag``."""
        return next(self.children(tag), None)

    def children(self, tag: str) -> Iterator[XmlView]:
        """The child elements ``tag``, with their positions in the path."""
        for number, element in enumerate(self.element.iterchildren(tag), start=1):
            yield XmlView(element, f"{self.path}/{tag}[{number}]", self.check)

    def grandchildren(self, tag: str, child_tag: str) -> Iterator[XmlView]:
        """The ``child_tag`` elements inside every ``tag`` child."""
        for holder in self.children(tag):
            yield from holder.children(child_tag)
