"""``ledger.unindexed``: a column SQLite must not search by, and PostgreSQL sees plain."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.ledger.tables import messages
from gateway.ledger.unindexed import unindexed

WHEN = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


def test_sqlite_is_told_not_to_search_by_the_column_and_postgresql_sees_it_plain() -> None:
    query = select(messages.c.id).where(unindexed(messages.c.created_at) < WHEN)
    assert "WHERE +messages.created_at < ?" in str(query.compile(dialect=sqlite.dialect()))
    assert "WHERE messages.created_at < %(" in str(query.compile(dialect=postgresql.dialect()))


def test_a_time_compared_with_it_is_bound_as_one_compared_with_the_column() -> None:
    # Typed as text, a time without a zone reached PostgreSQL cast to a timestamp
    # without one, where the column's comparison casts it to one with a zone.
    naive = WHEN.replace(tzinfo=None)
    ours = select(messages.c.id).where(unindexed(messages.c.created_at) < naive)
    plain = select(messages.c.id).where(messages.c.created_at < naive)
    for query in (ours, plain):
        rendered = str(query.compile(dialect=postgresql.dialect()))
        assert rendered.endswith("s::TIMESTAMP WITH TIME ZONE"), rendered
    # Compared through the element's comparator, made of its type when it is made.
    assert unindexed(messages.c.created_at).comparator.type is messages.c.created_at.type
