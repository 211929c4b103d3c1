"""What a block of code runs on a database: its statements (for query-plan tests) and
its commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement run on ``engine`` (SQL text, parameters) while the block runs."""
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
