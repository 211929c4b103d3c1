"""Adapter ``sandwell-xml``: Sandwell's FWI question/answer form export (ISO-8859-1 XML).

Forms are streamed with ``lxml.etree.iterparse`` (no DTD, no entities, no
network) and each is cleared once converted, so memory does not grow with
the file. Code lists and field coverage live in
``config/adapters/sandwell-xml.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from adapters.base import Adapter, Result
from adapters.sandwell.mapping import FwiSettings, load_settings
from adapters.sandwell.reader import FwiHeader, convert_form
from adapters.sandwell.writer import write_export
from gateway.errors import MalformedInputError
from gateway.model import Assessment

NAME = "sandwell-xml"
ROOT = "FWIExport"
RECORD = "Form"
_POSITION = re.compile(r",? line \d+, column \d+$")


class SandwellXmlAdapter:
    """FWI XML export in, canonical assessments out; and back."""

    name = NAME
    version = "1.0"

    def __init__(self, settings: FwiSettings) -> None:
        self.settings = settings
        self.authority: str | None = settings.authority

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """Yield one result per ``Form``; a file that is not an FWI export is malformed."""
        events = etree.iterparse(
            stream,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        header, depth, index = FwiHeader(), 0, 0
        try:
            for event, element in events:
                if event == "start":
                    depth += 1
                    if depth == 1:
                        header = _header(element, source)
                    continue
                depth -= 1
                if depth != 1:
                    continue
                if element.tag == RECORD:
                    yield convert_form(element, index, header, self.settings, source)
                    index += 1
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
        except etree.XMLSyntaxError as exc:
            line, column = exc.position
            reason = _POSITION.sub("", exc.msg)
            raise MalformedInputError(
                f"{source}: line {line}, column {column}: not well-formed XML: {reason}"
            ) from exc

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """An FWI export (ISO-8859-1 XML) holding ``assessments`` as forms."""
        return write_export(assessments, self.settings)


def _header(root: etree._Element, source: str) -> FwiHeader:
    if root.getroottree().docinfo.internalDTD is not None:
        raise MalformedInputError(f"{source}: line 1: a DOCTYPE is not allowed in an FWI export")
    if root.tag != ROOT:
        raise MalformedInputError(
            f"{source}: line {root.sourceline}: not an FWI export: root element is "
            f"{root.tag!r}, expected {ROOT!r}"
        )
    return FwiHeader(root.get("source"), root.get("authority"))


def create(mapping_path: Path, known_authorities: frozenset[str]) -> Adapter:
    """Build the adapter from its mapping file (``MappingError`` if it is invalid)."""
    return SandwellXmlAdapter(load_settings(mapping_path, known_authorities))
