"""The keyed audit chain: a rewrite by someone who can write the database but not
read the audit key is detected, and the chain never silently downgrades."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update

from gateway.errors import LedgerError
from gateway.ledger import audit, audit_key
from gateway.ledger.store import Ledger
from gateway.ledger.tables import audit as audit_table

KEY = bytes(range(32))


def _events(n: int, start: int = 0) -> list[audit.AuditEvent]:
    return [
        audit.AuditEvent("gateway", "REPLAY", "332", detail=f"event {i}")
        for i in range(start, start + n)
    ]


def _ledger(tmp_path: Path, key: bytes | None) -> Ledger:
    return Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", audit_key=key)


def _append(ledger: Ledger, events: list[audit.AuditEvent]) -> None:
    with ledger.transaction() as conn:
        audit.append(ledger, events, conn)


def _rewrite_without_the_key(ledger: Ledger, detail: str) -> None:
    """What a database writer can do: change an entry and recompute every hash (SHA-256)."""
    chain = audit.entries(ledger)
    prev = audit.GENESIS
    with ledger.transaction() as conn:
        conn.execute(delete(audit_table))
        for e in chain:
            event = (
                e.event if e.seq != 2 else audit.AuditEvent(**{**vars(e.event), "detail": detail})
            )
            digest = audit._entry_hash(e.seq, e.at, event, prev)
            row = {**vars(event), "seq": e.seq, "at": e.at, "prev_hash": prev, "hash": digest}
            row.pop("child_key")
            conn.execute(insert(audit_table).values(**row))
            prev = digest


def test_a_whole_rewrite_with_recomputed_hashes_passes_an_unkeyed_chain(tmp_path: Path) -> None:
    # Why the chain is keyed: without a key, anyone who can write the table wins.
    ledger = _ledger(tmp_path, None)
    _append(ledger, _events(4))
    _rewrite_without_the_key(ledger, "nothing happened")
    assert audit.verify(ledger) == []


def test_a_whole_rewrite_without_the_key_is_detected_in_a_keyed_chain(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, KEY)
    _append(ledger, _events(4))
    assert audit.verify(ledger) == []
    _rewrite_without_the_key(ledger, "nothing happened")
    problems = audit.verify(ledger)
    assert any("newest audit entry (4) is not keyed" in p for p in problems)


def test_a_plain_chain_continues_keyed_after_a_marker_entry(tmp_path: Path) -> None:
    plain = _ledger(tmp_path, None)
    _append(plain, _events(2))
    plain.engine.dispose()
    keyed = _ledger(tmp_path, KEY)
    _append(keyed, _events(2, start=2))
    actions = [e.event.action for e in audit.entries(keyed)]
    assert actions == ["REPLAY", "REPLAY", audit.KEYED_ACTION, "REPLAY", "REPLAY"]
    assert audit.verify(keyed) == []
    # A plain entry slipped in after the keyed ones reads as a rewrite.
    last = audit.entries(keyed)[-1]
    forged = audit._entry_hash(last.seq, last.at, last.event, last.prev_hash)
    with keyed.transaction() as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == last.seq).values(hash=forged))
    problems = audit.verify(keyed)
    assert any("entry 5 is not keyed but entry 3 is" in p for p in problems)


def test_a_process_without_the_key_refuses_to_append_after_keyed_entries(tmp_path: Path) -> None:
    _append(_ledger(tmp_path, KEY), _events(1))
    with pytest.raises(LedgerError, match="no audit key"):
        _append(_ledger(tmp_path, None), _events(1))


def test_the_key_is_made_once_owner_only_and_reused(tmp_path: Path) -> None:
    first = audit_key.ensure(tmp_path / "keys")
    assert audit_key.ensure(tmp_path / "keys") == first == audit_key.load(tmp_path / "keys")
    assert len(first) == 32
    (tmp_path / "keys" / audit_key.FILE_NAME).chmod(0o644)
    with pytest.raises(Exception, match="owner only"):
        audit_key.load(tmp_path / "keys")
