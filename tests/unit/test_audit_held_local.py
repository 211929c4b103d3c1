"""``cafgw audit verify`` on a ledger fed the shipped samples: no false alarms.

A record held locally for lack of consent (HELD_LOCAL) never left, so it has
no DISCLOSURE entry and needs none; a message that did leave still must.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import audit as audit_table
from tests.policy_support import WOLVERHAMPTON, memory_gateway, submit


def test_a_held_local_transfer_is_not_reported_as_an_unaudited_disclosure(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("336",))
    try:
        report = submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "w.json")
        held = [o for o in report.outcomes if o.status == Status.HELD_LOCAL]
        assert held, "the Wolverhampton sample holds one record for lack of consent"
        assert audit.verify(gw.ledger) == []
    finally:
        gw.ledger.engine.dispose()


def test_a_sent_message_whose_disclosure_entry_was_deleted_is_still_reported(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("336",))
    try:
        submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "w.json")
        sent = [
            r
            for r in gw.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=100)
            if r.status == Status.SIGNED and r.legal_basis != "NO_PERSONAL_DATA"
        ]
        victim = sent[0].message_id
        with gw.ledger.transaction() as conn:
            conn.execute(delete(audit_table).where(audit_table.c.message_id == victim))
        problems = audit.verify(gw.ledger)
        assert any(victim in p and "no DISCLOSURE audit entry" in p for p in problems)
    finally:
        gw.ledger.engine.dispose()
