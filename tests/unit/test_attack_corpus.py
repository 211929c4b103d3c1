"""Every hostile message of tests/data/attacks/ is quarantined with the right reason.

Each corpus file is delivered through the real inbound path
(``services.inbound.handle_batch``) of a gateway hosting Wolverhampton (336)
on the in-memory transport and a temporary SQLite ledger, with the clock and
trust store the corpus was made for (see ``make_corpus.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.status import Direction, Status
from gateway.services.receiving import handle_batch
from gateway.transport.base import Delivery, Verdict
from gateway.transport.provenance import provenance_for
from gateway.transport.topology import Topology
from tests.data.attacks import make_corpus
from tests.unit.corpus_gateway import opened_corpus_gateway

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "attacks"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
ATTACKS = [m for m in MANIFEST if m["name"] != "good" and m["outcome"] == "quarantined"]
NORMALISED = [m for m in MANIFEST if m["outcome"] == "normalised"]
BY_NAME = {m["name"]: m for m in MANIFEST}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """Wolverhampton's gateway, as the corpus expects it."""
    with opened_corpus_gateway(tmp_path) as gw:
        yield gw


def _deliver(gw: Gateway, entry: dict[str, object], tag: int = 1) -> None:
    data = (CORPUS / str(entry["file"])).read_bytes()
    inbox = str(entry["inbox"])
    # What the transport makes of it: the key the broker delivered and the account it
    # validated (user_id); x-cafgw-* headers only from the relay (here: guest).
    origin = provenance_for(gw.settings.broker, Topology()).origin(
        str(entry["exchange"]),
        str(entry["routing_key"]),
        None if entry["user_id"] is None else str(entry["user_id"]),
        dict(entry["headers"]),  # type: ignore[call-overload]
    )
    delivery = Delivery(
        queue=Topology().inbox(inbox),
        routing_key=origin.routing_key,
        body=data,
        message_id=None,
        headers=origin.headers,
        delivery_count=0,
        tag=tag,
        user_id=origin.user_id,
    )
    (disposition,) = handle_batch(gw, [delivery])
    # Permanent problems are recorded, so the broker may forget the message.
    assert disposition.verdict == Verdict.ACK


def _inbound(gw: Gateway) -> list:  # type: ignore[type-arg]
    return gw.ledger.find(authority="336", direction=Direction.INBOUND)


def test_the_corpus_has_at_least_thirty_attacks_each_with_an_expected_reason() -> None:
    assert len(ATTACKS) >= 30
    assert all(m["expect"] for m in ATTACKS)
    assert all((CORPUS / m["file"]).is_file() for m in MANIFEST)


def test_the_security_document_counts_the_corpus_as_it_is() -> None:
    text = " ".join((ROOT / "docs" / "security.md").read_text(encoding="utf-8").split())
    counted = f"holds {len(ATTACKS)} hostile messages, {len(NORMALISED)} that must be accepted"
    assert counted in text


def test_the_security_documents_groups_name_every_corpus_file_once() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    table = text[text.index("| group | files | what each asserts |") :].split("\n\n")[0]
    named: list[int] = []
    for row in table.splitlines()[2:]:
        for part in row.split("|")[2].split(","):
            first, _, last = part.strip().partition("–")
            named += range(int(first), int(last or first) + 1)
    attacks = [int(m["file"][:2]) for m in MANIFEST if m["name"] != "good"]
    assert sorted(named) == sorted(attacks)


def test_the_committed_manifest_matches_the_generator() -> None:
    # Signatures are randomised, so the files are not compared byte for byte;
    # what each file is, where it goes and why it must fail must not drift.
    generated = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(attack).items()}
        for attack, _data in make_corpus.build().values()
    ]
    committed = [{k: v for k, v in m.items() if k != "file"} for m in MANIFEST]
    assert committed == generated


def test_the_genuine_control_message_is_accepted(gateway: Gateway) -> None:
    _deliver(gateway, BY_NAME["good"])
    (record,) = _inbound(gateway)
    assert record.status == Status.VERIFIED


@pytest.mark.parametrize("attack", ATTACKS, ids=[m["name"] for m in ATTACKS])
def test_a_hostile_message_is_quarantined_with_its_reason(
    gateway: Gateway, attack: dict[str, object]
) -> None:
    for name in attack["before"]:  # type: ignore[attr-defined]
        _deliver(gateway, BY_NAME[name])
    _deliver(gateway, attack, tag=2)
    quarantined = [r for r in _inbound(gateway) if r.status == Status.QUARANTINED]
    assert len(quarantined) == 1, [(r.status, r.reason) for r in _inbound(gateway)]
    reason = quarantined[0].reason or ""
    assert str(attack["expect"]) in reason, reason
    # Nothing of it reaches the local system: only the control message may.
    attack_bytes = (CORPUS / str(attack["file"])).read_bytes()
    served = gateway.ledger.inbox("336", 100, include_restricted=True)
    assert all(i.pk != quarantined[0].pk and i.body != attack_bytes for i in served)
    assert len(served) == len(attack["before"])  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", NORMALISED, ids=[m["name"] for m in NORMALISED])
def test_what_the_signature_does_not_cover_never_reaches_the_local_system(
    gateway: Gateway, entry: dict[str, object]
) -> None:
    _deliver(gateway, entry)
    (record,) = _inbound(gateway)
    assert record.status == Status.VERIFIED
    verified_note = next(h.reason for h in record.history if h.status == Status.VERIFIED)
    if entry["expect"]:
        assert str(entry["expect"]) in (verified_note or ""), verified_note
    else:
        assert verified_note is None
    (served,) = gateway.ledger.inbox("336", 100, include_restricted=True)
    received = (CORPUS / str(entry["file"])).read_bytes()
    assert served.body != received
    assert str(entry["intact"]).encode() in served.body
    assert str(entry["absent"]).encode() not in served.body
    for marker in (b"<!--", b"<![CDATA[", b"<?"):
        assert marker not in served.body
    # What is decoded is the signed text, whole.
    env = element_to_envelope(xmlsafe.parse(served.body, max_bytes=10**6, max_depth=64))
    assert env.header.sender == "332"


def test_a_resent_message_is_a_counted_duplicate_not_a_second_delivery(
    gateway: Gateway,
) -> None:
    _deliver(gateway, BY_NAME["good"])
    _deliver(gateway, BY_NAME["good"], tag=2)
    (record,) = _inbound(gateway)
    assert record.status == Status.VERIFIED
    assert [h.status for h in record.history].count(Status.DUPLICATE) == 1


def test_quarantined_messages_are_counted_per_authority(gateway: Gateway) -> None:
    names = ["tampered-body", "stale", "doctype"]
    for tag, name in enumerate(names, start=1):
        _deliver(gateway, BY_NAME[name], tag)
    counts: Callable[[], dict[tuple[str, str, str], int]] = gateway.ledger.counts
    assert counts()[("336", "INBOUND", "QUARANTINED")] == len(names)
