"""End-to-end body encryption between Dudley (332) and Wolverhampton (336).

With ``encryption.pairs: [[332, 336]]`` the body travels as an
``EncryptedBody`` inside the signed envelope. A spy queue bound on the real
broker reads the bytes as the broker holds them: none of the sample
children's names or identifiers may appear; Wolverhampton still receives
and records the plain assessment.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pika
import pytest
from lxml import etree

from gateway.envelope.signing import Verifier
from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[1] / "data"
EXPORT = DATA / "dudley-332" / "caf-register-2026-09.csv"
SPY = "spy.wire.336"


def _sample_secrets() -> list[str]:
    """Every child's forename, surname, UPN, NHS number and postcode in the export."""
    text = EXPORT.read_bytes().decode("cp1252")
    found = set()
    for row in csv.DictReader(io.StringIO(text)):
        for column in ("FORENAME", "SURNAME", "UPN", "NHS_NO", "POSTCODE"):
            value = (row.get(column) or "").strip()
            if len(value) >= 4:
                found.add(value)
    return sorted(found)


def _spy(vhost: str) -> pika.BlockingConnection:
    connection = pika.BlockingConnection(pika.URLParameters(vhost))
    channel = connection.channel()
    channel.queue_declare(SPY, durable=False)
    channel.queue_bind(SPY, "caf.exchange", "336.#")
    return connection


def _captured(connection: pika.BlockingConnection) -> list[bytes]:
    channel = connection.channel()
    bodies = []
    while True:
        method, _props, body = channel.basic_get(SPY, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_the_broker_sees_only_headers_when_encryption_is_on_for_the_pair(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(
        tmp_path,
        ("332", "333", "336"),
        f"sqlite:///{tmp_path / 'l.db'}",
        vhost,
        encryption={"pairs": [["332", "336"]]},
    )
    secrets = _sample_secrets()
    assert "J332412014017" in secrets and "O\u2019Neill" in secrets
    with running(settings) as gw:
        spy = _spy(vhost)
        try:
            with EXPORT.open("rb") as stream:
                outbound.submit_local(gw, "332", "dudley-csv", stream, "register.csv")
            to_wolves = [
                r
                for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND)
                if r.recipient == "336" and r.status != Status.REJECTED
            ]
            assert to_wolves, "the export sends nothing to Wolverhampton"
            wait_for(
                lambda: all(
                    gw.ledger.find(message_id=r.message_id, direction=Direction.OUTBOUND)[0].status
                    == Status.DELIVERED
                    for r in to_wolves
                ),
                what="Wolverhampton's receipts",
            )
            wire = _captured(spy)
        finally:
            spy.close()
        assert len(wire) >= len(to_wolves)
        for data in wire:
            root = etree.fromstring(data)
            assert root.find("{urn:caf-exchange:1}EncryptedBody") is not None
            for secret in secrets:
                for encoding in ("utf-8", "cp1252"):
                    needle = secret.encode(encoding, "ignore")
                    assert needle not in data, f"{secret!r} readable on the wire"
        # The signature covers the ciphertext: the wire bytes verify as they are.
        verifier: Verifier = gw.verifier
        for data in wire:
            assert verifier.verify(data).sender == "332"
        # Wolverhampton recorded the plain assessment for its local system.
        inbox = gw.ledger.inbox("336", 100, include_restricted=True)
        bodies = b"".join(i.body for i in inbox)
        assert "Siobh\u00e1n".encode() in bodies
        assert b"EncryptedBody" not in bodies


def test_a_pair_without_encryption_sends_the_body_in_clear(tmp_path: Path, vhost: str) -> None:
    # The control: the same export without the pair is readable on the wire,
    # so the test above is not passing because of something else.
    settings = make_settings(
        tmp_path, ("332", "333", "336"), f"sqlite:///{tmp_path / 'l.db'}", vhost
    )
    with running(settings) as gw:
        spy = _spy(vhost)
        try:
            with EXPORT.open("rb") as stream:
                outbound.submit_local(gw, "332", "dudley-csv", stream, "register.csv")
            wait_for(
                lambda: bool(gw.ledger.inbox("336", 10, include_restricted=True)),
                what="delivery to 336",
            )
            wire = _captured(spy)
        finally:
            spy.close()
        assert any(b"J332412014017" in data for data in wire)
