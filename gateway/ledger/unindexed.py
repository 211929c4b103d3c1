"""A column SQLite must not search by: ``+column``, SQLite's own way to say so.

With no statistics (the ledger never runs ``ANALYZE``), SQLite's planner takes an
equality on any indexed column for a search that finds about ten rows. On
``messages.authority`` it finds every message of the authority: a read that
walks the ledger in key order a page at a time (the retention's plan) then read
and sorted every message of the authority for each page. ``unindexed(column)``
is rendered ``+column`` on SQLite, which keeps the same value but is no index's
column, and as the column elsewhere (PostgreSQL plans by its statistics).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnClause, FunctionElement
from sqlalchemy.types import String


class unindexed(FunctionElement[str]):  # noqa: N801 - used as a function, as SQLAlchemy's are
    """``column`` as a value no index of SQLite's is searched by."""

    type = String()
    inherit_cache = True

    def __init__(self, column: ColumnClause[str] | ColumnElement[str]) -> None:
        super().__init__(column)


@compiles(unindexed)
def _plain(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unary_plus(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)
