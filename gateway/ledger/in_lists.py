"""``IN`` over the short lists the hot paths bind, without expanding parameters.

SQLAlchemy renders an expanding parameter (``bindparam(name, expanding=True)``)
into the statement's text at every execution, once its values are known:
65,000-70,000 instructions each (callgrind, a warm statement on SQLite), more
than a quarter of a whole one-row SELECT. A receipt's transaction at the
sender bound eight of them (issue 14, docs/performance.md). Here a statement
is built once per list *size* instead, one bound parameter per item
(``name_0``, ``name_1``, ...), and a list is padded to its size by repeating
its last item, which an ``IN`` test does not notice: the same rows match. A
list longer than the largest size takes the expanding form, as before.

Constants that never come from data (statuses) are written into the text
(``among``): nothing to bind at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, literal_column

# The sizes statements are built for. Each is a statement of its own in
# SQLAlchemy's compiled cache and in SQLite's prepared statements (where an
# expanding list of each length was one as well): few, doubling.
SIZES = (1, 2, 4, 8, 16)
EXPANDING = 0
"""The size of a list longer than ``SIZES`` allows: bound as one expanding parameter."""

_CONSTANT = re.compile(r"[A-Z_]+")


def size_of(values: Sequence[Any]) -> int:
    """The size a list of ``values`` (at least one) is bound as: the smallest of
    ``SIZES`` that holds it, else ``EXPANDING``."""
    if not values:
        raise ValueError("an IN list needs at least one value")
    for size in SIZES:
        if len(values) <= size:
            return size
    return EXPANDING


def in_list(column: ColumnElement[Any], name: str, size: int) -> ColumnElement[bool]:
    """``column IN (:name_0, ..., :name_<size-1>)``; ``EXPANDING``: ``column IN :name``
    expanding. Bind the values with ``bind(name, values, size)``."""
    if size == EXPANDING:
        return column.in_(bindparam(name, expanding=True, type_=column.type))
    return column.in_([bindparam(f"{name}_{i}", type_=column.type) for i in range(size)])


def bind(name: str, values: Sequence[Any], size: int) -> dict[str, Any]:
    """The parameters of ``in_list(column, name, size)`` for ``values``: padded to
    ``size`` by repeating the last value."""
    if size == EXPANDING:
        return {name: list(values)}
    if not values or len(values) > size:
        raise ValueError(f"{len(values)} values bound to an IN list of {size}")
    padded = [*values, *[values[-1]] * (size - len(values))]
    return {f"{name}_{i}": value for i, value in enumerate(padded)}


def among(column: ColumnElement[Any], constants: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('A', 'B', ...)``, the constants (upper-case names, such as
    statuses) written into the statement, sorted: nothing bound per execution."""
    values = sorted({str(c) for c in constants})
    if not values:
        raise ValueError("an IN list needs at least one value")
    for value in values:
        if not _CONSTANT.fullmatch(value):
            raise ValueError(f"{value!r} is not a constant that may be written into SQL")
    return column.in_([literal_column(f"'{value}'", column.type) for value in values])
