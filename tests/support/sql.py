"""What a block of code runs on a database: its statements (for query-plan tests) and
its commits."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def captured(engine: Engine | type[Engine]) -> Iterator[list[tuple[str, Any]]]:
    """Every statement run on ``engine`` (SQL text, parameters) while the block runs; on
    every engine, given the class (a command that opens its own)."""
    seen: list[tuple[str, Any]] = []

    def before(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def commits_during(engine: Engine, work: Callable[[], object]) -> int:
    """How many transactions committed on ``engine`` while ``work`` ran."""
    count = 0

    def counted(_conn: Any) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "commit", counted)
    try:
        work()
    finally:
        event.remove(engine, "commit", counted)
    return count


# A search constrained by nothing but the authority (and direction): every row of
# that authority is read, however few the statement wants.
AUTHORITY_ONLY = re.compile(
    r"\((?:authority=\?|direction=\?)(?: AND (?:authority|direction)=\?)?\)"
)


def plans(
    engine: Engine, statements: list[tuple[str, Any]], kinds: tuple[str, ...] = ("SELECT", "UPDATE")
) -> dict[str, str]:
    """SQLite's query plan of each distinct statement of ``kinds`` among ``statements``."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        for sql, params in statements:
            if sql in out or not sql.lstrip().upper().startswith(kinds):
                continue
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, tuple(params)).all()
            out[sql] = "\n".join(str(r[-1]) for r in rows)
    return out


_OWN_RESULTS = ("SCAN anon_", "SCAN (subquery-", "SCAN CONSTANT")


def unbounded(plan: str) -> list[str]:
    """The lines of ``plan`` that read a whole table, or every row of an authority (a
    subquery's own result, and an empty list's one constant row, scanned, aside)."""
    return [
        line
        for line in plan.splitlines()
        if ("SCAN" in line and not line.startswith(_OWN_RESULTS)) or AUTHORITY_ONLY.search(line)
    ]
