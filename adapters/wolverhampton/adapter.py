"""Adapter ``wolverhampton-json``: Wolverhampton's Early Help Module episode export.

The export is one JSON object with header values (``system``,
``localAuthority``) and an ``episodes`` array that is streamed one episode
at a time. Code lists and the field coverage live in
``config/adapters/wolverhampton-json.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from adapters.base import Adapter, Result
from adapters.json_stream import iter_export
from adapters.wolverhampton.mapping import EhmSettings, ExportHeader, load_settings
from adapters.wolverhampton.reader import convert_episode
from adapters.wolverhampton.writer import write_export
from gateway.errors import MalformedInputError
from gateway.model import Assessment

NAME = "wolverhampton-json"


class WolverhamptonJsonAdapter:
    """EHM JSON export in, canonical assessments out; and back."""

    name = NAME
    version = "1.0"

    def __init__(self, settings: EhmSettings) -> None:
        self.settings = settings
        self.authority: str | None = settings.authority

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """Yield one result per episode; a file that is not an EHM export is malformed."""
        header = ExportHeader()
        seen_episodes = False
        for entry in iter_export(
            stream, source, "episodes", max_value_chars=self.settings.max_record_chars
        ):
            if entry.index is not None:
                yield convert_episode(entry.value, entry.index, header, self.settings, source)
            elif entry.key == "system" and isinstance(entry.value, str):
                header = ExportHeader(entry.value.strip() or None, header.la_code)
            elif entry.key == "localAuthority" and isinstance(entry.value, dict):
                code = entry.value.get("code")
                header = ExportHeader(header.system, str(code) if code is not None else None)
            seen_episodes = seen_episodes or entry.key == "episodes"
        if not seen_episodes:
            raise MalformedInputError(f"{source}: not an EHM export: no 'episodes' list")

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """An EHM export (UTF-8 JSON) holding ``assessments`` as episodes."""
        return write_export(assessments, self.settings)


def create(mapping_path: Path, known_authorities: frozenset[str]) -> Adapter:
    """Build the adapter from its mapping file (``MappingError`` if it is invalid)."""
    return WolverhamptonJsonAdapter(load_settings(mapping_path, known_authorities))
