"""A search by a value's first characters that an index serves: a range, compared byte by byte.

``column LIKE 'abcd%'`` is served by no index of the ledger's: SQLite's ``LIKE``
ignores the case of ASCII letters, which its indexes do not, and PostgreSQL
uses an index for it only in the "C" collation. So a search of the message
search (``ledger.search``) by an id's or a case reference's first characters
read every message of the authority whenever fewer than a page matched: the
id found in a log line, or the case a worker asks about, on a ledger of years
(issue 14). ``starting_with`` is the same question as a range, ``prefix <=
value < the next prefix``, which an index on the value answers by reading the
matching rows alone.

A range is a prefix only in byte order. SQLite compares text so by default;
PostgreSQL compares it in the database's collation, where a linguistic one (an
``en_GB.UTF-8`` database, say) passes over hyphens at first, and
``'DUD-2026' < value < 'DUD-2027'`` is not the rows that begin ``DUD-2026``.
``bytewise(column)`` is therefore the column in the "C" collation on
PostgreSQL (the indexes that serve these ranges are made in it, migration
0013), and the column itself on SQLite.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.ledger.unindexed import AsColumn

_T = TypeVar("_T")

_LAST = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)  # no UTF-8 encodes these: not a value to bind


class bytewise(AsColumn[_T]):  # noqa: N801 - used as a function, as SQLAlchemy's are
    """``column`` compared byte by byte (code point by code point) on every database."""

    inherit_cache = True


@compiles(bytewise, "postgresql")
def _c_collation(element: bytewise[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


def fold_ascii(text: str) -> str:
    """``text`` with its ASCII letters in upper case and nothing else changed: what
    SQLite's ``upper()``, and PostgreSQL's in the "C" collation, make of it."""
    return text.translate(_UPPER)


_UPPER = {code: code - 32 for code in range(ord("a"), ord("z") + 1)}


def after(prefix: str) -> str | None:
    """The least text greater than every text beginning with ``prefix`` (None: none is)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code in _SURROGATES:
            code = _SURROGATES.stop
        if code <= _LAST:
            return "".join(chars) + chr(code)
    return None


def starting_with(value: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
    """``value`` begins with ``prefix``, byte by byte: a range of any index on ``value``
    (``value`` is compared as given: wrap it in ``bytewise`` on a column of text)."""
    end = after(prefix)
    if end is None:
        return value >= prefix
    return and_(value >= prefix, value < end)
