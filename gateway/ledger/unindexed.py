"""A column SQLite must not search by: ``+column``, SQLite's own way to say so.

With no statistics (the ledger never runs ``ANALYZE``), SQLite's planner takes an
equality on any indexed column for a search that finds about ten rows. On
``messages.authority`` or ``direction`` it finds every message of the authority,
or every message sent: a read that should start elsewhere then read them all.
So it was for the retention's plan, walking the ledger in key order a page at a
time (every message of the authority read and sorted for each page), and for
the reads of a window of the status history joined to its messages (the
metrics' and the dashboard's rates, the access notices' acknowledgements),
which began from every message of the authority. ``unindexed(column)`` is
rendered ``+column`` on SQLite, which keeps the same value but is no index's
column, and as the column elsewhere (PostgreSQL plans by its statistics).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnClause, FunctionElement

_T = TypeVar("_T")


class AsColumn(FunctionElement[_T]):
    """A column as written on most databases, and otherwise on some (a subclass's
    ``@compiles`` for them), of the column's type: a value compared with it is bound as
    one compared with the column would be."""

    inherit_cache = True

    def __init__(self, column: ColumnClause[_T] | ColumnElement[_T]) -> None:
        self.type = column.type  # first: the element's comparator is made of its type
        super().__init__(column)


@compiles(AsColumn)
def _plain(element: AsColumn[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


class unindexed(AsColumn[_T]):  # noqa: N801 - used as a function, as SQLAlchemy's are
    """``column`` as a value no index of SQLite's is searched by."""

    inherit_cache = True


@compiles(unindexed, "sqlite")
def _unary_plus(element: unindexed[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)
