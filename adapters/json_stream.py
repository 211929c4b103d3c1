"""Stream a JSON export whose records are one top-level array.

``iter_export`` walks the top-level object key by key: small values are
decoded whole, and the elements of the record array (``episodes``) are
decoded one at a time with ``json.JSONDecoder.raw_decode`` over a buffer
that is trimmed as it goes, so memory depends on the largest record, not
on the size of the file. Anything that is not well-formed JSON is one
``MalformedInputError`` naming the file, line and column.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from gateway.errors import MalformedInputError

_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class JsonEntry:
    """A top-level value (``index`` None) or one element of the record array."""

    key: str
    value: object
    index: int | None = None


class _Scanner:
    """A character buffer over a UTF-8 byte stream that remembers line and column."""

    def __init__(self, stream: BinaryIO, source: str, max_value_chars: int, chunk: int) -> None:
        self.stream, self.source = stream, source
        self.max_value_chars, self.chunk = max_value_chars, chunk
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self.json = json.JSONDecoder()
        self.buf, self.pos, self.eof = "", 0, False
        self.bytes_read, self.lines_before, self.col_base = 0, 0, 0

    def fail(self, reason: str, at: int | None = None) -> MalformedInputError:
        at = self.pos if at is None else at
        newlines = self.buf.count("\n", 0, at)
        if newlines:
            line, col = self.lines_before + newlines + 1, at - self.buf.rfind("\n", 0, at)
        else:
            line, col = self.lines_before + 1, self.col_base + at + 1
        return MalformedInputError(f"{self.source}: line {line}, column {col}: {reason}")

    def fill(self) -> None:
        self._trim()
        data = self.stream.read(max(self.chunk, len(self.buf) - self.pos))
        try:
            self.buf += self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise MalformedInputError(
                f"{self.source}: byte {self.bytes_read + exc.start}: not UTF-8 ({exc.reason})"
            ) from exc
        self.bytes_read += len(data)
        self.eof = not data

    def _trim(self) -> None:
        if self.pos < self.chunk:
            return
        gone = self.buf[: self.pos]
        newlines = gone.count("\n")
        if newlines:
            self.lines_before += newlines
            self.col_base = len(gone) - gone.rfind("\n") - 1
        else:
            self.col_base += len(gone)
        self.buf, self.pos = self.buf[self.pos :], 0

    def peek(self) -> str:
        """The next character after whitespace, or ``""`` at the end of input."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.fill()

    def take(self, allowed: str, what: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            found = f"found {char!r}" if char else "the file ends"
            raise self.fail(f"expected {what}, {found}")
        self.pos += 1
        return char

    def value(self) -> object:
        """Decode one JSON value, reading more input until it is complete."""
        self.peek()
        while True:
            try:
                value, end = self.json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise self.fail(exc.msg, exc.pos) from exc
                if len(self.buf) - self.pos > self.max_value_chars:
                    raise self.fail(
                        f"{exc.msg}, or a record over {self.max_value_chars} characters", exc.pos
                    ) from exc
            except RecursionError as exc:
                raise self.fail("JSON nested too deeply") from exc
            else:
                if end < len(self.buf) or self.eof:  # a number may go on in the next chunk
                    self.pos = end
                    return value
            self.fill()


def iter_export(
    stream: BinaryIO,
    source: str,
    array_key: str,
    *,
    max_value_chars: int = 4_000_000,
    chunk_chars: int = 65_536,
) -> Iterator[JsonEntry]:
    """Yield the top-level values of a JSON object, and each element of ``array_key``."""
    scan = _Scanner(stream, source, max_value_chars, chunk_chars)
    scan.take("{", "a JSON object")
    if scan.peek() == "}":
        scan.pos += 1
    else:
        while True:
            key = scan.value()
            if not isinstance(key, str):
                raise scan.fail("expected a key string")
            scan.take(":", "':'")
            if key == array_key:
                yield from _array(scan, key)
            else:
                yield JsonEntry(key, scan.value())
            if scan.take(",}", "',' or '}'") == "}":
                break
    if scan.peek():
        raise scan.fail("unexpected data after the end of the JSON object")


def _array(scan: _Scanner, key: str) -> Iterator[JsonEntry]:
    scan.take("[", f"a list for {key!r}")
    if scan.peek() == "]":
        scan.pos += 1
        yield JsonEntry(key, [])  # tells the caller the (empty) list was there
        return
    index = 0
    while True:
        yield JsonEntry(key, scan.value(), index)
        index += 1
        if scan.take(",]", "',' or ']'") == "]":
            return
