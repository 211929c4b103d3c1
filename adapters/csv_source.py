"""Streaming reader of a CSV export: decoding, header, numbered rows.

Reads one line at a time, so memory stays flat whatever the file size.
Every way the file as a whole can be unreadable (bytes not in the declared
encoding, a file re-saved as UTF-8, a cut-off last row, a missing header)
becomes one ``MalformedInputError`` naming the file and the place.
Row numbers are as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from adapters.csv_cells import restore
from gateway.errors import MalformedInputError

_UTF8_NAMES = {"utf-8", "utf-8-sig"}


@dataclass(frozen=True)
class CsvRow:
    """One data row: its number (header = 1) and its cells by column name."""

    number: int
    cells: Mapping[str, str]


class CsvSource:
    """A CSV export being read: ``header`` is read on opening, ``rows()`` streams the rest."""

    def __init__(
        self, stream: BinaryIO, source: str, encoding: str, max_field_chars: int = 65536
    ) -> None:
        self.source = source
        self.encoding = codecs.lookup(encoding).name
        self.max_field_chars = max_field_chars
        self._reader = csv.reader(self._lines(stream), strict=True)
        self._number = 0
        first = self._next()
        if first is None or not any(cell.strip() for cell in first):
            raise MalformedInputError(f"{source}: the file is empty; expected a header row")
        self.header = tuple(cell.strip() for cell in first)
        seen: set[str] = set()
        for column in self.header:
            if column in seen:
                raise MalformedInputError(f"{source}: column {column} appears twice in the header")
            seen.add(column)

    def rows(self) -> Iterator[CsvRow]:
        """The data rows; blank lines are skipped but still counted."""
        width = len(self.header)
        while (cells := self._next()) is not None:
            if not cells:
                continue
            if len(cells) != width:
                hint = " (is the file truncated?)" if len(cells) < width else ""
                raise MalformedInputError(
                    f"{self.source}: row {self._number} has {len(cells)} fields but the header "
                    f"has {width}{hint}"
                )
            if max(map(len, cells)) > self.max_field_chars:
                self._too_long(cells)
            # A cell the gateway wrote as text (a formula quoted) reads as it was written.
            yield CsvRow(
                self._number, {c: restore(v) for c, v in zip(self.header, cells, strict=True)}
            )

    def _too_long(self, cells: list[str]) -> None:
        column, cell = next(
            (c, v) for c, v in zip(self.header, cells, strict=True) if len(v) > self.max_field_chars
        )
        raise MalformedInputError(
            f"{self.source}: row {self._number} column {column} holds {len(cell)} characters, "
            f"more than {self.max_field_chars} (an unclosed quote?)"
        )

    def _next(self) -> list[str] | None:
        try:
            cells = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise MalformedInputError(
                f"{self.source}: row {self._number + 1} cannot be parsed as CSV: {exc}"
                + (" (is the file truncated?)" if "end of data" in str(exc) else "")
            ) from None
        self._number += 1
        return cells

    def _lines(self, stream: BinaryIO) -> Iterator[str]:
        """Decoded lines (line ends kept, as csv wants), checking every byte."""
        offset = 0
        for line_no, raw in enumerate(stream, start=1):
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise MalformedInputError(
                    f"{self.source}: byte 0x{raw[exc.start]:02X} at offset {offset + exc.start} "
                    f"(line {line_no}) is not valid {self.encoding}; export the file again "
                    f"as {self.encoding}"
                ) from None
            nul = raw.find(b"\x00")
            if nul >= 0:
                raise MalformedInputError(
                    f"{self.source}: NUL byte at offset {offset + nul} "
                    f"(line {line_no}); the file is not {self.encoding} text (UTF-16?)"
                )
            if self.encoding not in _UTF8_NAMES and not raw.isascii() and _is_utf8(raw):
                first = next(i for i, b in enumerate(raw) if b > 0x7F)
                raise MalformedInputError(
                    f"{self.source}: bytes at offset {offset + first} (line {line_no}) are "
                    f"UTF-8, but the file must be {self.encoding}; export it again as "
                    f"{self.encoding}"
                )
            offset += len(raw)
            yield text


def _is_utf8(raw: bytes) -> bool:
    """Whether non-ASCII bytes form valid UTF-8 (Windows-1252 text almost never does)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
