"""Act only on what was signed: the verifier hands back the canonical signed form.

Exclusive C14N signs no comments, so a comment inserted after signing still
verifies; what is read, recorded and handed over must be the signed form,
in which the comment does not exist.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from helpers_xml import DS, Authority, build_envelope, make_authority, text_of
from lxml import etree

from gateway.envelope import dsig
from gateway.envelope.keys import load_certificate
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import SignatureError, UnsafeXmlError

SUMMARY = "Overcrowded flat, needs housing advice"


@pytest.fixture
def dudley(tmp_path: Path) -> Authority:
    return make_authority("332", tmp_path / "keys")


@pytest.fixture
def verifier(dudley: Authority) -> Verifier:
    trust = TrustStore.from_mapping({"332": [load_certificate(dudley.identity.cert_path)]})
    return Verifier(trust, max_bytes=2_000_000, max_depth=64)


@pytest.fixture
def signed(dudley: Authority) -> bytes:
    return Signer(dudley.key_pem, dudley.cert_pem).sign(build_envelope(summary=SUMMARY))


def test_signed_bytes_are_the_canonical_document_and_verify_again(
    signed: bytes, verifier: Verifier
) -> None:
    verified = verifier.verify(signed)
    assert verified.signed_bytes == dsig.c14n(etree.fromstring(signed))
    assert verified.comments_removed == 0
    assert verified.note is None
    again = verifier.verify(verified.signed_bytes)
    assert again.signed_bytes == verified.signed_bytes
    assert again.message_id == verified.message_id


def test_the_signed_content_hashes_to_the_signed_digest_value(
    signed: bytes, verifier: Verifier
) -> None:
    verified = verifier.verify(signed)
    assert verified.root.find(f"{{{DS}}}Signature") is None
    digest_value = etree.fromstring(signed).findtext(f".//{{{DS}}}DigestValue")
    assert digest_value is not None
    assert hashlib.sha256(dsig.c14n(verified.root)).digest() == base64.b64decode(digest_value)


def test_a_comment_inserted_into_signed_text_is_gone_from_everything_handed_on(
    signed: bytes, verifier: Verifier
) -> None:
    tampered = signed.replace(b"Overcrowded flat", b"Over<!--x-->crowded flat")
    assert tampered != signed
    verified = verifier.verify(tampered)
    assert text_of(verified.root, "Assessment/Needs") == SUMMARY
    assert b"<!--" not in verified.signed_bytes
    assert verified.signed_bytes == verifier.verify(signed).signed_bytes
    assert verified.comments_removed == 1
    assert verified.note is not None and "comment" in verified.note
    # The digest for duplicates and receipts stays that of the bytes received.
    assert verified.digest == hashlib.sha256(tampered).hexdigest()


def test_a_comment_in_the_header_cannot_change_who_sent_it(
    signed: bytes, verifier: Verifier
) -> None:
    verified = verifier.verify(signed.replace(b"<Sender>332<", b"<Sender>33<!--6-->2<"))
    assert verified.sender == "332"
    assert text_of(verified.root, "Header/Sender") == "332"


def test_a_cdata_section_carrying_the_signed_text_is_normalised(
    signed: bytes, verifier: Verifier
) -> None:
    tampered = signed.replace(SUMMARY.encode(), b"<![CDATA[" + SUMMARY.encode() + b"]]>")
    verified = verifier.verify(tampered)
    assert b"CDATA" not in verified.signed_bytes
    assert text_of(verified.root, "Assessment/Needs") == SUMMARY


def test_markup_smuggled_in_a_cdata_section_is_content_altered(
    signed: bytes, verifier: Verifier
) -> None:
    tampered = signed.replace(
        b"Overcrowded flat", b"<![CDATA[Overcrowded flat</Needs><Status>CLOSED]]>"
    )
    with pytest.raises(SignatureError, match="content altered"):
        verifier.verify(tampered)


def test_a_processing_instruction_inside_the_signed_content_is_refused(
    signed: bytes, verifier: Verifier
) -> None:
    tampered = signed.replace(b"Overcrowded flat", b"Overcrowded<?cafgw skip?> flat")
    with pytest.raises(UnsafeXmlError, match="processing instruction"):
        verifier.verify(tampered)
