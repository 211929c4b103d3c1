"""``cafgw audit verify`` detects any altered, inserted or deleted audit entry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from gateway.cli import app
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import audit as audit_table

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("CAFGW_DATABASE__URL", url)
    # Keys of the test's own: the project's var/keys holds an audit key once `make run`
    # has run in the checkout, and a chain of unkeyed entries then reads as rewritten.
    monkeypatch.setenv("CAFGW_KEYS_DIR", str(tmp_path / "keys"))
    found = Ledger.open(url)
    messages = []
    events = []
    for n in range(4):
        message_id = str(uuid.uuid4())
        digest = f"{n:064x}"
        messages.append(
            NewMessage(
                message_id=message_id,
                direction=Direction.OUTBOUND,
                authority="332",
                sender="332",
                recipient="336",
                message_type="Assessment",
                correlation_id=str(uuid.uuid4()),
                legal_basis="CONSENT",
                statuses=((Status.ACCEPTED, None), (Status.SIGNED, None)),
                digest=digest,
                body=b"<Envelope/>",
            )
        )
        events.append(
            audit.AuditEvent(
                actor="gateway",
                action="DISCLOSURE",
                authority="332",
                counterparty="336",
                legal_basis="CONSENT",
                message_id=message_id,
                digest=digest,
                detail=f"Assessment CASE-{n}",
            )
        )
    with found.transaction() as conn:
        found.record(messages, conn)
        audit.append(found, events, conn)
    return found


def _verify(*extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify", "--config", str(ROOT / "config"), *extra])
    return result.exit_code, " ".join(result.output.split())


def _head() -> str:
    result = runner.invoke(app, ["audit", "head", "--config", str(ROOT / "config")])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_an_intact_log_verifies(ledger: Ledger) -> None:
    code, output = _verify("--expect-head", _head())
    assert (code, output) == (0, "audit log intact: 4 entries")


def test_an_altered_entry_is_detected(ledger: Ledger) -> None:
    with ledger.transaction() as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 2).values(counterparty="330"))
    code, output = _verify()
    assert code == 1
    assert "audit entry 2: content altered" in output


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link(ledger: Ledger) -> None:
    entry = next(e for e in audit.entries(ledger) if e.seq == 2)
    forged = audit.AuditEvent(**{**vars(entry.event), "counterparty": "330"})
    new_hash = audit._entry_hash(entry.seq, entry.at, forged, entry.prev_hash)
    with ledger.transaction() as conn:
        conn.execute(
            update(audit_table)
            .where(audit_table.c.seq == 2)
            .values(counterparty="330", hash=new_hash)
        )
    code, output = _verify()
    assert code == 1
    assert "audit entry 3: previous hash does not match entry 2" in output


def test_a_deleted_entry_in_the_middle_is_detected(ledger: Ledger) -> None:
    with ledger.transaction() as conn:
        conn.execute(delete(audit_table).where(audit_table.c.seq == 2))
    code, output = _verify()
    assert code == 1
    assert "audit entry 2 is missing" in output
    assert "has no DISCLOSURE audit entry" in output


def test_a_deleted_last_entry_is_detected_by_the_head_and_the_disclosures(
    ledger: Ledger,
) -> None:
    head = _head()
    with ledger.transaction() as conn:
        conn.execute(delete(audit_table).where(audit_table.c.seq == 4))
    code, output = _verify("--expect-head", head)
    assert code == 1
    assert "audit entry 4 (the recorded head) is missing" in output
    assert "has no DISCLOSURE audit entry" in output
