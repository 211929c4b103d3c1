"""End-to-end body encryption: round trip, tampering, wrong key, and the inbound rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.encryption import DecryptionKeys, decrypt_envelope, encrypt_envelope
from gateway.errors import SignatureError
from gateway.ledger.status import Direction, Status
from gateway.services.receiving import handle_batch
from gateway.settings import EncryptionSettings
from gateway.transport.base import Delivery
from gateway.transport.topology import Topology
from tests.data.attacks import make_corpus
from tests.unit.corpus_gateway import corpus_gateway, write_identity

NS = "{urn:caf-exchange:1}"
LIMITS = {"max_bytes": 1_000_000, "max_depth": 64}


def _plain() -> etree._Element:
    return make_corpus.message("encryption-test")


def _encrypted() -> etree._Element:
    return encrypt_envelope(_plain(), make_corpus.corpus_cert("336"))


def _keys(tmp_path: Path, label: str = "336") -> DecryptionKeys:
    write_identity(tmp_path, "336", label)
    return DecryptionKeys.load(tmp_path, "336")


def test_the_body_is_replaced_by_ciphertext_and_decrypts_to_the_same_body(
    tmp_path: Path,
) -> None:
    root = _encrypted()
    data = etree.tostring(root)
    assert "Siobhán".encode() not in data and b"J332412014017" not in data
    assert root.find(NS + "Assessment") is None
    back = decrypt_envelope(root, _keys(tmp_path), **LIMITS)
    for part in ("Header", "Assessment"):
        got, want = back.find(NS + part), _plain().find(NS + part)
        assert got is not None and want is not None
        assert etree.tostring(got, method="c14n") == etree.tostring(want, method="c14n")


def test_a_comment_the_sender_encrypted_into_a_text_does_not_cut_it(tmp_path: Path) -> None:
    plain = _plain()
    notes = plain.find(f"{NS}Assessment//{NS}Notes")
    assert notes is not None and notes.text == "Asthma, missed appointments"
    notes.text = "Asthma, "
    notes.append(etree.Comment("x"))
    notes[-1].tail = "missed appointments"
    back = decrypt_envelope(
        encrypt_envelope(plain, make_corpus.corpus_cert("336")), _keys(tmp_path), **LIMITS
    )
    got = back.find(f"{NS}Assessment//{NS}Notes")
    assert got is not None
    assert got.text == "Asthma, missed appointments"
    assert len(got) == 0


def test_a_changed_ciphertext_does_not_decrypt(tmp_path: Path) -> None:
    root = _encrypted()
    text = root.find(f"{NS}EncryptedBody/{NS}CipherText")
    assert text is not None and text.text
    text.text = ("B" if text.text[0] != "B" else "C") + text.text[1:]
    with pytest.raises(SignatureError, match="does not decrypt"):
        decrypt_envelope(root, _keys(tmp_path), **LIMITS)


def test_a_body_moved_into_another_messages_envelope_does_not_decrypt(tmp_path: Path) -> None:
    root = _encrypted()
    message_id = root.find(f"{NS}Header/{NS}MessageId")
    assert message_id is not None
    message_id.text = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(SignatureError, match="does not decrypt"):
        decrypt_envelope(root, _keys(tmp_path), **LIMITS)


def test_a_body_for_another_key_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="does not hold"):
        decrypt_envelope(_encrypted(), _keys(tmp_path, "333"), **LIMITS)


@pytest.fixture
def paired(tmp_path: Path) -> Iterator[Gateway]:
    gw = corpus_gateway(tmp_path)
    pairs = EncryptionSettings(pairs=(("332", "336"),))
    try:
        yield dataclasses.replace(gw, settings=gw.settings.model_copy(update={"encryption": pairs}))
    finally:
        gw.ledger.engine.dispose()


def _deliver(gw: Gateway, data: bytes) -> list[object]:
    delivery = Delivery(
        Topology().inbox("336"), "336.Assessment.332", data, None, {}, 0, 1, user_id="guest"
    )
    handle_batch(gw, [delivery])
    return gw.ledger.find(authority="336", direction=Direction.INBOUND)  # type: ignore[return-value]


def test_an_encrypted_message_is_verified_then_decrypted_and_recorded_in_clear(
    paired: Gateway,
) -> None:
    data = make_corpus.signer("332").sign(_encrypted())
    (record,) = _deliver(paired, data)
    assert record.status == Status.VERIFIED  # type: ignore[attr-defined]
    (item,) = paired.ledger.inbox("336", 10, include_restricted=True)
    stored = xmlsafe.parse(item.body, **LIMITS)
    assert stored.find(NS + "Assessment") is not None
    assert record.digest == make_corpus.hashlib.sha256(data).hexdigest()  # type: ignore[attr-defined]


def test_a_clear_body_between_an_encrypted_pair_is_quarantined(paired: Gateway) -> None:
    data = (Path(make_corpus.HERE) / "00-good.xml").read_bytes()
    (record,) = _deliver(paired, data)
    assert record.status == Status.QUARANTINED  # type: ignore[attr-defined]
    assert "arrived in clear" in (record.reason or "")  # type: ignore[attr-defined]
