"""The ledger's schema in tests: a ledger made the way it was before migrations, rows
to prove an upgrade kept, the code's tables against the migrated database, and a
copy of the migrations with a revision of the test's own.

The pre-migration ledger is built from SQL frozen when migrations began
(``tests/data/ledger/created-before-migrations.*.sql``, what ``create_all``
made then), not from today's tables, so the test of adopting one stays true
as the schema moves on.
"""

from __future__ import annotations

import re
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, Index, MetaData, inspect, text
from sqlalchemy.schema import CreateIndex

from gateway.features import schema
from gateway.ledger import migrate
from gateway.ledger.core import make_engine
from gateway.ledger.migrate import MIGRATIONS
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger

DATA = Path(__file__).resolve().parents[1] / "data" / "ledger"
# Created at start on existing ledgers since issue 14 (tables.ADDED_INDEXES then):
# a ledger last run before that has none of them.
ISSUE_14_INDEXES = ("ix_messages_content", "ix_messages_child", "ix_messages_case")


def create_before_migrations(engine: Engine, *, with_issue_14_indexes: bool = True) -> None:
    """Make the ledger on ``engine`` as ``create_all`` made it before migrations."""
    sql = (DATA / f"created-before-migrations.{engine.dialect.name}.sql").read_text()
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in body.split(";\n") if s.strip()]
    if not with_issue_14_indexes:
        statements = [s for s in statements if not any(ix in s for ix in ISSUE_14_INDEXES)]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


# Rows of the pre-migration tables, in the columns those had (keys left to the
# database, as the gateway does), and how to read them back.
_ROWS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "messages": (
        "message_id, direction, authority, sender, recipient, message_type, "
        "correlation_id, legal_basis, status, attempts, created_at, updated_at, "
        "receipt_due, restricted, route, child_key, content_digest",
        [
            {
                "message_id": f"m-{n}",
                "direction": "OUTBOUND" if n % 2 else "INBOUND",
                "authority": "332",
                "sender": "332",
                "recipient": "336",
                "message_type": "Assessment",
                "correlation_id": f"c-{n}",
                "legal_basis": "consent",
                "status": "SENT",
                "attempts": n,
                "created_at": f"2026-11-0{n} 10:00:00+00:00",
                "updated_at": f"2026-11-0{n} 11:00:00+00:00",
                "receipt_due": False,
                "restricted": False,
                "route": "inbox",
                "child_key": f"k-{n}",
                "content_digest": f"{n:064x}",
            }
            for n in range(1, 4)
        ],
    ),
    "status_history": (
        "message_pk, status, at, reason",
        [
            {
                "message_pk": n,
                "status": "SENT",
                "at": "2026-11-01 10:00:00+00:00",
                "reason": f"reason {n}",
            }
            for n in range(1, 4)
        ],
    ),
    "audit_log": (
        "seq, at, actor, action, authority, prev_hash, hash",
        [
            {
                "seq": 1,
                "at": "2026-11-01 10:00:00+00:00",
                "actor": "gateway",
                "action": "SEND",
                "authority": "332",
                "prev_hash": "0" * 64,
                "hash": "a" * 64,
            },
        ],
    ),
    "case_threads": (
        "authority, correlation_id, owner, case_ref, child_key, parties, leads, updated_at",
        [
            {
                "authority": "332",
                "correlation_id": "c-1",
                "owner": "332",
                "case_ref": "CASE-1",
                "child_key": "k-1",
                "parties": '["332", "336"]',
                "leads": "[]",
                "updated_at": "2026-11-01 10:00:00+00:00",
            },
        ],
    ),
}


def insert_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        for table, (columns, rows) in _ROWS.items():
            names = [c.strip() for c in columns.split(",")]
            conn.execute(
                text(
                    f"INSERT INTO {table} ({', '.join(names)}) "
                    f"VALUES ({', '.join(':' + n for n in names)})"
                ),
                rows,
            )


def read_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The rows ``insert_rows`` wrote, as the database holds them now."""
    with engine.connect() as conn:
        return {
            table: [
                tuple(r)
                for r in conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1")).all()
            ]
            for table, (columns, _) in _ROWS.items()
        }


def new_message() -> NewMessage:
    return NewMessage(
        message_id="m-new",
        direction=Direction.OUTBOUND,
        authority="332",
        sender="332",
        recipient="336",
        message_type="Assessment",
        correlation_id="c-new",
        legal_basis="consent",
        statuses=((Status.ACCEPTED, None),),
    )


def code_tables() -> MetaData:
    """Every table of the code (the ledger's and every standard feature's), in one MetaData."""
    merged = MetaData()
    for part in schema():
        for table in part.tables.values():
            table.to_metadata(merged)
    return merged


def differences(engine: Engine) -> list[Any]:
    """What the migrated database on ``engine`` and the code's tables disagree on
    (Alembic's autogenerate comparison: tables, columns, types, indexes, constraints;
    and the condition of each partial index, which Alembic does not compare)."""
    with engine.connect() as conn, warnings.catch_warnings():
        # Alembic skips the indexes on expressions, saying so: compared below instead.
        warnings.filterwarnings("ignore", "autogenerate skipping .*expression-based index")
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        on_expressions = {name for name, _ in _expression_indexes(conn.dialect.name)}
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda _o, name, kind, _r, _c: (
                    kind != "index" or name not in on_expressions
                ),
            },
        )
        return (
            list(compare_metadata(context, code_tables()))
            + _partial_differences(conn)
            + _expression_differences(conn)
        )


def _condition(sql: str) -> str:
    """An index's condition as both databases can be compared by: PostgreSQL writes
    ``((purpose)::text = 'X'::text)`` what SQLite keeps as ``purpose = 'X'``, and the
    code names the column with its table."""
    return re.sub(r"::\w+|[()\s]|\b\w+\.(?=[a-z_])", "", sql).lower()


def _indexes_made(conn: Connection) -> list[tuple[str, str]]:
    """Each index of the database on ``conn`` (those of constraints aside on SQLite), by
    name, with the ``CREATE INDEX`` that makes it."""
    if conn.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    return [(str(name), str(sql)) for name, sql in conn.execute(text(query)).all()]


def _partial_differences(conn: Connection) -> list[Any]:
    dialect = conn.dialect.name
    found = _indexes_made(conn)
    built = {
        name: _condition(sql.split(" WHERE ", 1)[1]) for name, sql in found if " WHERE " in sql
    }
    wanted = {
        str(index.name): _condition(
            str(where.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        )
        for table in code_tables().tables.values()
        for index in table.indexes
        if (where := index.dialect_options[dialect].get("where")) is not None
    }
    return [
        ("partial index condition", name, built.get(name), wanted.get(name))
        for name in sorted(set(built) | set(wanted))
        if built.get(name) != wanted.get(name)
    ]


def _columns(sql: str) -> str:
    """An index's columns and expressions, from its ``CREATE INDEX``, as both databases
    can be compared by (``_condition``)."""
    return _condition(sql.split(" WHERE ", 1)[0].split("(", 1)[1])


def _on_expression(index: Index) -> bool:
    """Whether ``index`` holds an expression, not only columns."""
    return any(not isinstance(e, Column) for e in index.expressions)


def _expression_indexes(dialect: str) -> list[tuple[str, Index]]:
    """The code's indexes on an expression made on ``dialect`` (some on one database only:
    ``Index.ddl_if``, which SQLAlchemy keeps on the index with no public way to read it,
    and ``to_metadata`` does not copy)."""
    found = []
    for part in schema():
        for table in part.tables.values():
            for index in table.indexes:
                only = getattr(index, "_ddl_if", None)
                if _on_expression(index) and (only is None or only.dialect in (None, dialect)):
                    found.append((str(index.name), index))
    return found


def _expression_differences(conn: Connection) -> list[Any]:
    """Indexes on an expression, which Alembic does not compare (SQLite's it cannot even
    read): missing, unexpected, or on other expressions than the code's."""
    dialect = conn.dialect
    wanted = {
        name: _columns(str(CreateIndex(index).compile(dialect=dialect)))
        for name, index in _expression_indexes(dialect.name)
    }
    # Alembic compares the code's indexes of columns only; one it does not know of is an
    # index made here that the code has on another database only, or an expression index
    # the code does not have.
    compared = {
        str(index.name)
        for table in code_tables().tables.values()
        for index in table.indexes
        if not _on_expression(index)
    }
    built = {
        name: _columns(sql)
        for name, sql in _indexes_made(conn)
        if name.startswith("ix_") and name not in compared
    }
    return [
        ("expression index", name, built.get(name), wanted.get(name))
        for name in sorted(set(built) | set(wanted))
        if built.get(name) != wanted.get(name)
    ]


def migrations_with(folder: Path, revision: str) -> Path:
    """A copy of the ledger's migrations in ``folder`` with one more revision (the text
    of a module whose ``down_revision`` is today's head)."""
    copy = folder / "migrations"
    shutil.copytree(MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "versions" / "v9000_test_revision.py").write_text(revision)
    return copy


def adopted_with_its_rows(url: str, *, with_issue_14_indexes: bool) -> Ledger:
    """A ledger made at ``url`` the pre-migration way and filled, then opened: it is
    at the newest revision with its rows as they were, the issue-14 indexes and no
    difference from the code, and a new message takes the next key. The caller
    disposes of the returned ledger's engine."""
    engine = make_engine(url)
    create_before_migrations(engine, with_issue_14_indexes=with_issue_14_indexes)
    insert_rows(engine)
    kept = read_rows(engine)
    engine.dispose()

    ledger = Ledger.open(url)
    try:
        assert ledger.schema_revision() == migrate.head()
        assert read_rows(ledger.engine) == kept
        indexes = {i["name"] for i in inspect(ledger.engine).get_indexes("messages")}
        assert set(ISSUE_14_INDEXES) <= indexes
        assert differences(ledger.engine) == []
        # and the code works on it: a new message takes the next key
        assert ledger.record([new_message()]) == [4]
    except BaseException:
        ledger.engine.dispose()
        raise
    return ledger


def downgrade(conn: Connection, to: str) -> None:
    """Alembic's ``downgrade`` to ``to`` on ``conn`` (the gateway itself never downgrades)."""
    script = ScriptDirectory.from_config(migrate.alembic_config(MIGRATIONS))
    config = migrate.alembic_config(MIGRATIONS)
    config.attributes["connection"] = conn

    def steps(revision: Any, _context: MigrationContext) -> Any:
        return script._downgrade_revs(to, revision)

    with EnvironmentContext(config, script, fn=steps, destination_rev=to):
        script.run_env()


# Messages as revision 0002 kept them, the signed body in the row: two with one
# (5 KB, as a signed document is), one without (recorded without one, or erased).
_BODIES = {1: b"<signed n='1'>" + b"x" * 5000 + b"</signed>", 2: None, 3: b"<signed n='3'/>"}


def bodies_moved_and_back(url: str) -> None:
    """A ledger at revision 0002 with bodies in ``messages`` upgraded: each body is in
    ``message_bodies`` under its message's key, a message without one has no row there,
    ``messages`` has no body any more and the code reads the bodies; downgraded again,
    each body is back in its row and the table is gone."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, to="0002")
        columns, rows = _ROWS["messages"]
        names = [c.strip() for c in columns.split(",")] + ["body"]
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO messages ({', '.join(names)}) "
                    f"VALUES ({', '.join(':' + n for n in names)})"
                ),
                [{**row, "body": _BODIES[n]} for n, row in enumerate(rows, start=1)],
            )

        with engine.begin() as conn:
            assert migrate.upgrade(conn).after == migrate.head()
        assert differences(engine) == []
        with engine.connect() as conn:
            moved = conn.execute(
                text("SELECT message_pk, body FROM message_bodies ORDER BY message_pk")
            ).all()
        assert [(pk, bytes(body)) for pk, body in moved] == [
            (pk, body) for pk, body in _BODIES.items() if body is not None
        ]
        assert "body" not in {c["name"] for c in inspect(engine).get_columns("messages")}
        ledger = Ledger(engine)
        for pk, body in _BODIES.items():
            assert ledger.body_of("332", Direction.OUTBOUND if pk % 2 else Direction.INBOUND,
                                  f"m-{pk}") == body  # fmt: skip

        with engine.begin() as conn:
            downgrade(conn, "0002")
        assert not inspect(engine).has_table("message_bodies")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT id, body FROM messages ORDER BY id")).all()
        assert [(pk, None if body is None else bytes(body)) for pk, body in back] == list(
            _BODIES.items()
        )
    finally:
        engine.dispose()


def standing_kept_across_0009(url: str) -> None:
    """A ledger at revision 0008 with a recall standing upgraded: the recall still stands
    (``kind`` RECALL), the schema is the code's, and one erasure request may stand for
    two messages (the unique key names what stands); downgraded again, what stood for
    the erasure is gone and the recall stands as it did."""
    row = {
        "authority": "336", "sender": "332", "original_id": "m-1", "original_digest": "d" * 64,
        "recall_id": "r-1", "recall_created_at": datetime(2026, 12, 7, tzinfo=UTC),
        "at": datetime(2026, 12, 7, tzinfo=UTC),
    }  # fmt: skip

    def insert(names: list[str]) -> Any:
        return text(
            f"INSERT INTO lifecycle_standing ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)})"
        )

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn, to="0008")
        with engine.begin() as conn:
            conn.execute(insert(list(row)), [row])
        with engine.begin() as conn:
            assert migrate.upgrade(conn).after == migrate.head()
        assert differences(engine) == []
        erasure = {**row, "recall_id": "e-1", "kind": "ERASURE"}
        with engine.begin() as conn:
            conn.execute(insert(list(erasure)), [erasure, {**erasure, "original_id": "m-2"}])
        with engine.connect() as conn:
            kept = conn.execute(
                text("SELECT recall_id, original_id, kind FROM lifecycle_standing ORDER BY id")
            ).all()
        assert [tuple(r) for r in kept] == [
            ("r-1", "m-1", "RECALL"), ("e-1", "m-1", "ERASURE"), ("e-1", "m-2", "ERASURE"),
        ]  # fmt: skip

        with engine.begin() as conn:
            downgrade(conn, "0008")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT recall_id, original_id FROM lifecycle_standing")).all()
        assert [tuple(r) for r in back] == [("r-1", "m-1")]
        assert "kind" not in {c["name"] for c in inspect(engine).get_columns("lifecycle_standing")}
    finally:
        engine.dispose()
