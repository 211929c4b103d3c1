"""A certificate in KeyInfo whose public key cannot be read is no certificate.

Found by the inbound fuzzer: a KeyInfo certificate that parses as DER but
whose EC point is off the curve made ``Verifier.verify`` raise a bare
``ValueError`` ("Invalid key") instead of a cafgw error. The embedded
certificate is only a hint (and the regional CA's way in), so an unreadable
one is ignored and the message is checked against the pinned certificates.
"""

from __future__ import annotations

import re
from base64 import b64decode, b64encode
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from gateway.context import Gateway
from gateway.envelope import verifying
from gateway.errors import CafgwError
from tests.data.attacks import make_corpus
from tests.unit.corpus_gateway import opened_corpus_gateway

CORPUS = Path(__file__).resolve().parents[1] / "data" / "attacks"
GOOD = (CORPUS / "00-good.xml").read_bytes()
CERT = re.compile(rb"(<ds:X509Certificate>)([^<]+)(</ds:X509Certificate>)")
# The SubjectPublicKeyInfo of a P-256 key ends in BIT STRING(0x00 0x04 X Y).
EC_POINT = bytes.fromhex("03420004")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with opened_corpus_gateway(tmp_path) as gw:
        yield gw


def _with_key_off_the_curve(body: bytes) -> bytes:
    match = CERT.search(body)
    assert match is not None
    der = bytearray(b64decode(b"".join(match.group(2).split())))
    at = der.index(EC_POINT) + len(EC_POINT)
    der[at + 5] ^= 0x01  # one bit of X: the point leaves the curve
    broken = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(ValueError):
        broken.public_key()  # the case the fuzzer found
    return body[: match.start(2)] + b64encode(bytes(der)) + body[match.end(2) :]


def test_a_certificate_whose_key_cannot_be_read_is_ignored_and_the_pinned_one_decides(
    gateway: Gateway,
) -> None:
    verified = gateway.verifier.verify(_with_key_off_the_curve(GOOD))

    # KeyInfo is outside what is signed: the genuine signature still holds.
    assert verified.sender == "332"


def test_a_tampered_message_with_such_a_certificate_is_refused_with_a_cafgw_error(
    gateway: Gateway,
) -> None:
    tampered = _with_key_off_the_curve(GOOD).replace(
        b"<StartedOn>2026-09-02<", b"<StartedOn>2026-09-03<", 1
    )
    assert b"2026-09-03" in tampered

    with pytest.raises(CafgwError):
        gateway.verifier.verify(tampered)


def _with_unreadable_extension(body: bytes) -> bytes:
    """The genuine signer's key in a certificate whose BasicConstraints is not DER."""
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "332")])
    key = make_corpus.corpus_key("332")
    broken = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x05\x00"),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ValueError):
        list(broken.extensions)  # read lazily: what the trust store would meet later
    match = CERT.search(body)
    assert match is not None
    der = broken.public_bytes(serialization.Encoding.DER)
    return body[: match.start(2)] + b64encode(der) + body[match.end(2) :]


def test_a_certificate_whose_extensions_cannot_be_read_is_no_certificate(
    gateway: Gateway,
) -> None:
    body = _with_unreadable_extension(GOOD)
    text = CERT.search(body)
    assert text is not None

    assert verifying._certificate_of(text.group(2).decode()) is None
    assert gateway.verifier.verify(body).sender == "332"
