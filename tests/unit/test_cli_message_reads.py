"""``cafgw status`` and ``cafgw messages`` find their messages by index, naming the
authorities a ledger row may be of: before, a look-up by id read every message of the
ledger, and a list of one authority's, or of those changed since a time, every message
of the authority (issue 14)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ops_helpers import Clock, make_gateway, put
from sqlalchemy import Engine
from support.sql import captured, plans, unbounded
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ledger.core import make_engine
from gateway.ledger.status import Status
from gateway.ledger.store import authorities_held
from gateway.ledger.tables import messages

pytestmark = pytest.mark.timeout(120)

CONFIG = Path(__file__).resolve().parents[2] / "config"
runner = CliRunner()
# The newest messages of an authority, walked from the end of its index and no further
# than the limit: no sort.
NEWEST = "SEARCH messages USING INDEX ix_messages_made (authority=?)"


def _cafgw(tmp_path: Path, *args: str) -> tuple[str, list[tuple[str, Any]]]:
    env = {
        "CAFGW_KEYS_DIR": str(tmp_path / "keys"),
        "CAFGW_DATABASE__URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CAFGW_HOSTED": '["332"]',
    }
    with captured(Engine) as statements:
        done = runner.invoke(app, [*args, "--json", "--config", str(CONFIG)], env=env)
    assert done.exit_code == 0, done.output
    return done.output, statements


def _whole_reads(tmp_path: Path, statements: list[tuple[str, Any]]) -> dict[str, str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        found = plans(engine, [(s, p) for s, p in statements if "FROM messages" in s])
    finally:
        engine.dispose()
    return {
        sql: plan
        for sql, plan in found.items()
        if unbounded(plan) and not (plan.startswith(NEWEST) and "TEMP B-TREE" not in plan)
    }


def test_a_message_is_looked_up_by_id_in_the_id_index(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332",))
    wanted, _ = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED)
    shown, statements = _cafgw(tmp_path, "status", wanted)
    assert [m["message_id"] for m in json.loads(shown)] == [wanted]
    assert _whole_reads(tmp_path, statements) == {}


def test_a_copy_held_for_an_authority_no_longer_in_the_directory_is_still_found(
    tmp_path: Path,
) -> None:
    # The authorities a look-up names are those the ledger holds messages of (a second
    # review: naming the directory's alone, a council removed from it was lost to both).
    gw = make_gateway(tmp_path, hosted=("332",))
    gone, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED)
    with gw.ledger.transaction() as conn:
        conn.execute(messages.update().where(messages.c.id == pk).values(authority="329"))
    shown, _ = _cafgw(tmp_path, "status", gone)
    assert [(m["message_id"], m["authority"]) for m in json.loads(shown)] == [(gone, "329")]
    listed, _ = _cafgw(tmp_path, "messages")
    assert [m["message_id"] for m in json.loads(listed)] == [gone]
    with gw.ledger.transaction() as conn:
        assert authorities_held(conn) == ("329",)


def test_messages_are_listed_newest_first_receipts_too_by_index(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, hosted=("332",), clock=clock)
    oldest, _ = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    clock.advance(60)
    rejected, _ = put(gw, "332", "336", Status.ACCEPTED, Status.REJECTED)
    clock.advance(60)
    receipt, _ = put(gw, "332", "336", Status.ACCEPTED, message_type="Receipt")
    since = (clock() - timedelta(seconds=30)).isoformat()

    def listed(*args: str) -> list[str]:
        shown, statements = _cafgw(tmp_path, "messages", *args)
        assert _whole_reads(tmp_path, statements) == {}, args
        return [m["message_id"] for m in json.loads(shown)]

    assert listed() == [receipt, rejected, oldest]
    assert listed("--authority", "332", "--limit", "2") == [receipt, rejected]
    assert listed("--status", "REJECTED") == [rejected]
    assert listed("--since", since) == [receipt]
    assert listed("--authority", "336") == []


def test_a_list_longer_than_a_search_page_is_refused_by_name(tmp_path: Path) -> None:
    make_gateway(tmp_path, hosted=("332",))
    done = runner.invoke(
        app,
        ["messages", "--limit", "501", "--config", str(CONFIG)],
        env={"CAFGW_DATABASE__URL": f"sqlite:///{tmp_path / 'ledger.db'}"},
    )
    assert done.exit_code == 2
    assert "--limit" in done.output
