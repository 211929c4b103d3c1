"""Which commits wait for the disk: all of them but the sender's leases and SENT.

``Ledger.transaction(durable=False)`` relaxes one transaction (SQLite in WAL:
``synchronous=NORMAL`` for it; PostgreSQL: ``synchronous_commit`` off), for
writes a re-send repairs if a power cut takes them back (docs/delivery.md,
"What a commit waits for"). Every other transaction, and every connection the
pool hands out afterwards, stays durable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from local_systems import signed_inbound
from sqlalchemy import Connection, Engine, insert, select
from support.gateways import memory_gateway

from gateway.ledger import core
from gateway.ledger.store import Ledger
from gateway.ledger.tables import job_leases

DURABLE = {"sqlite": "2", "postgresql": "on"}  # PRAGMA synchronous=FULL; synchronous_commit
RELAXED = {"sqlite": "1", "postgresql": "off"}


def _level(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        return str(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())


def _pooled_levels(ledger: Ledger, count: int = 4) -> list[str]:
    """The level of ``count`` connections checked out at once (the pool's, reused)."""
    with ExitStack() as stack:
        conns = [stack.enter_context(ledger.engine.connect()) for _ in range(count)]
        levels = [_level(c) for c in conns]
        for c in conns:
            c.rollback()
        return levels


def test_a_relaxed_transaction_commits_and_every_pooled_connection_stays_durable(
    ledger_url: str,
) -> None:
    ledger = Ledger.open(ledger_url)
    name = ledger.engine.dialect.name
    with ledger.transaction(durable=False) as conn:
        assert _level(conn) == RELAXED[name]
        conn.execute(insert(job_leases).values(job="relaxed", holder="t", until=ledger.clock()))
    with ledger.transaction() as conn:
        assert _level(conn) == DURABLE[name]
        assert conn.execute(select(job_leases.c.job)).scalars().all() == ["relaxed"]
    assert _pooled_levels(ledger) == [DURABLE[name]] * 4


def test_a_relaxed_transaction_that_fails_is_rolled_back_and_its_connection_made_durable(
    ledger_url: str,
) -> None:
    ledger = Ledger.open(ledger_url)
    name = ledger.engine.dialect.name
    with pytest.raises(RuntimeError), ledger.transaction(durable=False) as conn:
        conn.execute(insert(job_leases).values(job="lost", holder="t", until=ledger.clock()))
        raise RuntimeError("the work failed")
    with ledger.transaction() as conn:
        assert conn.execute(select(job_leases.c.job)).scalars().all() == []
    assert _pooled_levels(ledger) == [DURABLE[name]] * 4


def test_the_sender_relaxes_its_claims_and_sent_but_records_messages_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    levels: list[str] = []
    relaxed = core._relaxed

    @contextmanager
    def spy(engine: Engine) -> Iterator[Connection]:
        with relaxed(engine) as conn:
            levels.append(_level(conn))
            yield conn

    monkeypatch.setattr(core, "_relaxed", spy)
    signed = signed_inbound(gw, "332", "336", 2)
    with gw.ledger.transaction() as conn:
        pks = gw.ledger.record([replace(m, receipt_due=False) for m in signed], conn)
        assert _level(conn) == DURABLE["sqlite"]
    assert levels == []
    now = gw.clock()
    items = gw.ledger.claim_outbox(10, None, now, now + timedelta(seconds=60))
    assert sorted(i.pk for i in items) == sorted(pks)
    gw.ledger.release_claims(pks[:1])
    gw.ledger.mark_sent(pks[1:], now + timedelta(seconds=60))
    assert levels == [RELAXED["sqlite"]] * 3  # claim, give-back, SENT
    assert _pooled_levels(gw.ledger) == [DURABLE["sqlite"]] * 4
