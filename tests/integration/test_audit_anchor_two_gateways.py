"""The audit chain anchored at the peers, on the real broker: Dudley's, Sandwell's and
Wolverhampton's gateways each with their own ledger, signing keys and audit key. The
heads of Dudley's chain that Wolverhampton holds come back to Dudley in Wolverhampton's
signed receipts; cutting Dudley's chain back (while it runs) raises the metric the
alert fires on, and a rewrite with Dudley's own audit key fails `cafgw audit verify`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import delete, insert
from support.audit_pair import notify
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Gateway
from gateway.ledger import audit, audit_anchor, audit_key, audit_verify
from gateway.ledger.store import Ledger
from gateway.ledger.tables import audit as audit_table
from gateway.ledger.tables import audit_subjects
from gateway.metrics import LedgerCollector
from tests.integration.gateways import wait_for
from tests.integration.sovereignty_region import DUDLEY, region

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _mismatch(gw: Gateway) -> dict[tuple[str, str], float]:
    families = {f.name: f for f in LedgerCollector(gw).collect()}
    return {
        (s.labels["authority"], s.labels["peer"]): s.value
        for s in families["cafgw_audit_anchor_mismatch"].samples
    }


def _rewrite_with_the_key(ledger: Ledger, seq: int, detail: str) -> None:
    """What the host's own administrator can do: change an entry, recompute every hash."""
    chain = audit.entries(ledger, limit=100_000)
    prev = audit.GENESIS
    with ledger.transaction() as conn:
        conn.execute(delete(audit_table))
        for e in chain:
            event = e.event
            if e.seq == seq:
                event = audit.AuditEvent(**{**vars(e.event), "detail": detail})
            digest = audit._entry_hash(e.seq, e.at, event, prev, ledger.audit_key)
            row = {**vars(event), "seq": e.seq, "at": e.at, "prev_hash": prev, "hash": digest}
            row.pop("child_key")
            conn.execute(insert(audit_table).values(**row))
            prev = digest


def test_a_peer_holding_the_head_detects_a_cut_or_rewritten_chain_of_a_running_gateway(
    tmp_path: Path, vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with region(tmp_path, vhost, audit={"anchor_check_s": 0.2}) as r:
        dudley, wolverhampton = r.gw("332"), r.gw("336")
        assert dudley.settings.keys_dir != wolverhampton.settings.keys_dir
        r.submit("332", DUDLEY.read_bytes(), DUDLEY.name)  # Dudley's chain grows
        wait_for(lambda: audit.count(dudley.ledger) > 2, what="Dudley's disclosures audited")
        # Wolverhampton writes to Dudley: Dudley's receipt reports its head...
        notify(wolverhampton, "336", "332")
        wait_for(
            lambda: any(h["seq"] > 0 for h in audit_anchor.peer_heads(wolverhampton.ledger, "332")),
            what="Wolverhampton keeping Dudley's head",
        )
        # ...and Wolverhampton's receipt of Dudley's next message gives it back.
        notify(dudley, "332", "336")
        wait_for(
            lambda: any(a.seq > 0 for a in audit_anchor.anchors(dudley.ledger)),
            what="Dudley's head given back by Wolverhampton",
        )
        anchor = max(audit_anchor.anchors(dudley.ledger), key=lambda a: a.seq)
        assert (anchor.authority, anchor.peer) == ("332", "336")
        assert audit.verify(dudley.ledger) == []
        wait_for(lambda: _mismatch(dudley) == {("332", "336"): 0}, what="a clean check")

        # A copy of Dudley's ledger as it is now, for the rewrite below.
        copy = tmp_path / "dudley-copy.db"
        src = sqlite3.connect(dudley.settings.database.url.removeprefix("sqlite:///"))
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()

        # Dudley's administrator cuts its chain back, below the head Wolverhampton holds.
        with dudley.ledger.transaction() as conn:
            conn.execute(delete(audit_subjects).where(audit_subjects.c.seq >= anchor.seq))
            conn.execute(delete(audit_table).where(audit_table.c.seq >= anchor.seq))
        wait_for(
            lambda: _mismatch(dudley) == {("332", "336"): 1},
            what="the job seeing the cut chain (cafgw_audit_anchor_mismatch 1)",
        )
        problems = audit.verify(dudley.ledger)
        assert any("cut off" in p and "peer 336" in p for p in problems), problems

    # The copy rewritten whole with Dudley's audit key: a chain that verifies by itself.
    key = audit_key.load(dudley.settings.keys_dir)
    assert key is not None
    ledger = Ledger.open(f"sqlite:///{copy}", audit_key=key)
    try:
        _rewrite_with_the_key(ledger, 1, "nothing was disclosed")
        assert audit_verify.chain_problems(audit.entries(ledger, limit=100_000), key) == []
    finally:
        ledger.engine.dispose()
    monkeypatch.setenv("CAFGW_DATABASE__URL", f"sqlite:///{copy}")
    monkeypatch.setenv("CAFGW_KEYS_DIR", str(dudley.settings.keys_dir))
    done = CliRunner().invoke(app, ["audit", "verify", "--config", str(dudley.settings.config_dir)])
    assert done.exit_code == 1, done.output
    assert f"peer 336 holds audit head {anchor.seq}:" in done.output
    assert "rewritten" in done.output
