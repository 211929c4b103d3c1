"""The audit chain anchored at the peers: two gateways with their own ledgers exchange
receipts carrying their chain heads; each checks its chain against the heads of it the
other gives back. Cutting off or rewriting (even with the audit key) anything the peer
has seen is detected; an untampered or purged chain passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import delete, select
from support.audit_pair import anchored, cut_off, notify, pair_of, rewrite_with_the_key
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Gateway
from gateway.envelope.codec import element_to_envelope, envelope_to_element
from gateway.envelope.schema import SchemaValidator
from gateway.errors import SchemaError
from gateway.ledger import audit, audit_anchor, audit_verify
from gateway.ledger.status import Status
from gateway.ledger.tables import audit as audit_table
from gateway.ledger.tables import audit_anchors, audit_peer_heads, audit_subjects
from gateway.metrics import LedgerCollector
from gateway.model import (
    NAMESPACE,
    AuditHead,
    Receipt,
)
from gateway.retention import service

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
NS = "{" + NAMESPACE + "}"


def _metric(gw: Gateway) -> dict[tuple[str, str], float]:
    families = {f.name: f for f in LedgerCollector(gw).collect()}
    family = families["cafgw_audit_anchor_mismatch"]
    return {(s.labels["authority"], s.labels["peer"]): s.value for s in family.samples}


def _check(gw: Gateway) -> dict[tuple[str, str], float]:
    audit_anchor.check(gw.ledger, gw.clock())
    return _metric(gw)


def test_an_untampered_chain_contains_every_head_its_peer_holds(tmp_path: Path) -> None:
    pair, anchor = anchored(tmp_path)
    # What 336's gateway holds is what Dudley's receipt reported, in that receipt.
    with pair.others.ledger.transaction() as conn:
        held = conn.execute(
            select(
                audit_peer_heads.c.seq, audit_peer_heads.c.hash, audit_peer_heads.c.message_id
            ).where(audit_peer_heads.c.peer == "332")
        ).all()
    assert (anchor.seq, anchor.hash, anchor.reported_in) in {tuple(r) for r in held}
    (receipt,) = pair.dudley.ledger.find(message_id=anchor.reported_in, authority="332")
    assert receipt.message_type == "Receipt"
    assert audit.verify(pair.dudley.ledger) == []
    assert audit.verify(pair.others.ledger) == []
    assert _check(pair.dudley) == {("332", "336"): 0}


def test_cutting_off_entries_a_peer_has_seen_is_detected(tmp_path: Path) -> None:
    pair, anchor = anchored(tmp_path)
    # The host's administrator deletes the newest entries, down to before the head 336 holds.
    cut_off(pair.dudley, anchor.seq)
    # The cut chain is consistent in itself (only the DISCLOSURE check might notice).
    assert (
        audit_verify.chain_problems(audit.entries(pair.dudley.ledger), pair.dudley.ledger.audit_key)
        == []
    )
    problems = audit.verify(pair.dudley.ledger)
    assert any(
        f"peer 336 holds audit head {anchor.seq}:" in p and "cut off" in p for p in problems
    ), problems
    assert _check(pair.dudley) == {("332", "336"): 1}


def test_a_whole_rewrite_with_recomputed_keyed_hashes_is_detected(tmp_path: Path) -> None:
    pair, anchor = anchored(tmp_path)
    rewrite_with_the_key(pair.dudley, 1, "nothing was disclosed")
    # The rewritten chain verifies by itself: only the peer's head shows it.
    assert (
        audit_verify.chain_problems(audit.entries(pair.dudley.ledger), pair.dudley.ledger.audit_key)
        == []
    )
    problems = audit.verify(pair.dudley.ledger)
    assert any(
        f"peer 336 holds audit head {anchor.seq}:" in p and "rewritten" in p for p in problems
    ), problems
    # The job's check reads only the anchored entries, and sees it too.
    (status,) = audit_anchor.check(pair.dudley.ledger, pair.dudley.clock(), walk=False)
    assert status.mismatches == 1
    assert status.detail is not None and "rewritten" in status.detail
    assert _check(pair.dudley) == {("332", "336"): 1}


def test_an_entry_changed_below_the_head_without_recomputing_is_detected(
    tmp_path: Path,
) -> None:
    pair, _ = anchored(tmp_path)
    with pair.dudley.ledger.transaction() as conn:
        conn.execute(
            audit_table.update().where(audit_table.c.seq == 1).values(detail="nothing happened")
        )
    problems = audit.verify(pair.dudley.ledger)
    assert any("no longer verifies from entry 1" in p for p in problems), problems
    assert _check(pair.dudley) == {("332", "336"): 1}


def test_a_purged_ledger_still_contains_every_head_its_peer_holds(tmp_path: Path) -> None:
    pair, _ = anchored(tmp_path)
    rejected = pair.dudley.ledger.find(authority="332", status=Status.REJECTED, limit=10)
    assert rejected
    pair.clock.advance(days=31)
    report = service.apply(pair.dudley, "332", "test")
    assert report.by_rule.get("rejected_days", 0) >= 1
    erased = pair.dudley.ledger.find(authority="332", status=Status.REJECTED, limit=10)
    assert all(r.history[-1].status == Status.ERASED for r in erased)
    assert audit.verify(pair.dudley.ledger) == []
    assert _check(pair.dudley) == {("332", "336"): 0}


def test_the_job_checks_once_per_interval_and_the_metric_follows(tmp_path: Path) -> None:
    from gateway.anchoring.feature import check_anchors  # noqa: PLC0415

    pair, anchor = anchored(tmp_path)
    assert check_anchors(pair.dudley.kit) == 0
    assert _metric(pair.dudley) == {("332", "336"): 0}
    with pair.dudley.ledger.transaction() as conn:
        conn.execute(delete(audit_subjects).where(audit_subjects.c.seq >= anchor.seq))
        conn.execute(delete(audit_table).where(audit_table.c.seq >= anchor.seq))
    check_anchors(pair.dudley.kit)  # within the interval: not checked again yet
    assert _metric(pair.dudley) == {("332", "336"): 0}
    pair.clock.advance(seconds=pair.dudley.settings.audit.anchor_check_s)
    check_anchors(pair.dudley.kit)
    assert _metric(pair.dudley) == {("332", "336"): 1}


def test_an_auditor_checks_a_chain_against_every_head_exported_at_its_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair, anchor = anchored(tmp_path)
    runner = CliRunner()

    def cafgw(gw: Gateway, *args: str) -> tuple[int, str]:
        monkeypatch.setenv("CAFGW_DATABASE__URL", gw.settings.database.url)
        monkeypatch.setenv("CAFGW_KEYS_DIR", str(gw.settings.keys_dir))
        done = runner.invoke(app, [*args, "--config", str(gw.settings.config_dir)])
        return done.exit_code, done.output

    code, exported = cafgw(pair.others, "audit", "heads", "--peer", "332")
    assert code == 0, exported
    assert f'"seq": {anchor.seq}' in exported
    heads = tmp_path / "heads-336.jsonl"
    heads.write_text(exported, encoding="utf-8")
    # Only the exported heads count: the anchors Dudley keeps are gone too.
    with pair.dudley.ledger.transaction() as conn:
        conn.execute(delete(audit_anchors))
    code, out = cafgw(pair.dudley, "audit", "verify", "--peer-heads", str(heads))
    assert code == 0, out
    assert "contains all" in out
    with pair.dudley.ledger.transaction() as conn:
        conn.execute(delete(audit_subjects).where(audit_subjects.c.seq >= anchor.seq))
        conn.execute(delete(audit_table).where(audit_table.c.seq >= anchor.seq))
    code, out = cafgw(pair.dudley, "audit", "verify", "--peer-heads", str(heads))
    assert code == 1
    assert "cut off" in out


def test_receipts_carry_no_heads_when_switched_off_for_peers_not_yet_upgraded(
    tmp_path: Path,
) -> None:
    pair = pair_of(tmp_path, heads_in_receipts=False)
    notify(pair.others, "336", "332")
    notify(pair.dudley, "332", "336")
    pair.settle()
    for gw in (pair.dudley, pair.others):
        with gw.ledger.transaction() as conn:
            assert conn.execute(select(audit_peer_heads)).all() == []
            assert conn.execute(select(audit_anchors)).all() == []
        assert audit.verify(gw.ledger) == []


def test_an_authority_on_the_same_ledger_neither_holds_nor_gives_back_its_heads(
    tmp_path: Path,
) -> None:
    pair = pair_of(tmp_path)
    notify(pair.dudley, "332", "332")  # within the authority: its own gateway receipts it
    notify(pair.others, "336", "333")  # between two authorities of one gateway
    notify(pair.others, "336", "332")  # and between gateways, which anchors
    pair.settle()
    notify(pair.dudley, "332", "336")
    notify(pair.dudley, "332", "332")
    pair.settle()

    def peers(gw: Gateway) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        with gw.ledger.transaction() as conn:
            heads = conn.execute(select(audit_peer_heads.c.authority, audit_peer_heads.c.peer))
            kept = conn.execute(select(audit_anchors.c.authority, audit_anchors.c.peer))
            return {tuple(r) for r in heads}, {tuple(r) for r in kept}

    assert peers(pair.dudley) == ({("332", "336")}, {("332", "336")})
    assert peers(pair.others) == ({("336", "332")}, set())
    assert _check(pair.dudley) == {("332", "336"): 0}


def test_the_example_receipt_carries_a_head_and_one_given_back() -> None:
    root = etree.parse(str(ROOT / "schemas" / "examples" / "receipt.xml")).getroot()
    SchemaValidator().validate(root)
    body = element_to_envelope(root).body
    assert isinstance(body, Receipt)
    assert body.audit_head == AuditHead(1207, "5d41402abc4b2a76b9719d911017c592" * 2)
    (held,) = body.held_heads
    assert (held.seq, held.reported_in) == (884, "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
    again = element_to_envelope(envelope_to_element(element_to_envelope(root))).body
    assert again == body


def test_a_receipt_without_heads_from_an_older_gateway_still_validates() -> None:
    root = etree.parse(str(ROOT / "schemas" / "examples" / "receipt.xml")).getroot()
    receipt = root.find(f"{NS}Receipt")
    assert receipt is not None
    for name in ("AuditHead", "HeldAuditHead"):
        for el in receipt.findall(f"{NS}{name}"):
            receipt.remove(el)
    SchemaValidator().validate(root)
    body = element_to_envelope(root).body
    assert isinstance(body, Receipt)
    assert (body.audit_head, body.held_heads) == (None, ())


@pytest.mark.parametrize(
    ("xpath", "value"),
    [("AuditHead/Hash", "not-a-hash"), ("AuditHead/Seq", "-1"), ("HeldAuditHead/ReportedIn", "x")],
)
def test_a_malformed_head_is_refused_by_the_schema(xpath: str, value: str) -> None:
    root = etree.parse(str(ROOT / "schemas" / "examples" / "receipt.xml")).getroot()
    path = "/".join(f"{NS}{p}" for p in ("Receipt", *xpath.split("/")))
    el = root.find(path)
    assert el is not None
    el.text = value
    with pytest.raises(SchemaError):
        SchemaValidator().validate(root)


def test_a_head_after_a_held_head_is_refused_by_the_decoder() -> None:
    root = etree.parse(str(ROOT / "schemas" / "examples" / "receipt.xml")).getroot()
    receipt = root.find(f"{NS}Receipt")
    assert receipt is not None
    head = receipt.find(f"{NS}AuditHead")
    assert head is not None
    receipt.remove(head)
    receipt.append(head)
    with pytest.raises(SchemaError, match="unexpected element in Receipt"):
        element_to_envelope(root)
