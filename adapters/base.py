"""The adapter contract: a local export in, canonical records out (and back).

Adapters know only the canonical model (``gateway.model``) and the error
types; no queues, no web, no database. They stream: ``read`` yields one
result per record without loading the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from gateway.errors import FieldProblem
from gateway.model import Assessment, ConsentChange, Purpose


@dataclass(frozen=True)
class Converted:
    """A record that converted cleanly.

    ``share_with`` and ``purpose`` are what the practitioner asked for in the
    local record (Dudley's ``SHARE_WITH``); policy decides what may leave.
    """

    source: str
    record: str  # row number or record id, as used in error messages
    assessment: Assessment
    consent: ConsentChange | None
    share_with: tuple[str, ...] = ()
    purpose: Purpose = Purpose.SHARE_CROSS_BORDER


@dataclass(frozen=True)
class Rejected:
    """A record with problems; nothing of it is sent."""

    source: str
    record: str
    problems: tuple[FieldProblem, ...]


Result = Converted | Rejected


class Adapter(Protocol):
    """One local format, both directions."""

    name: str
    version: str
    authority: str | None  # LA code whose system uses this format, if fixed

    def read(self, stream: BinaryIO, source: str) -> Iterator[Result]:
        """Yield one result per record of a local export.

        Raises ``MalformedInputError`` if the file as a whole cannot be read.
        """

    def write(self, assessments: Sequence[Assessment]) -> bytes:
        """Render canonical assessments in this local format (inbound)."""
