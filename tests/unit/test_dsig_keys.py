"""XMLDSig through libxmlsec1: which keys may sign, where the key comes from, one libxml2."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from helpers_xml import DS, build_envelope, make_authority, sign_with, signature_of
from lxml import etree
from xmlsec import constants as xs

from gateway.envelope import dsig, dsig_rules
from gateway.envelope.keys import load_certificate
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, SignatureError


def _identity(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, code: str = "332"
) -> tuple[bytes, x509.Certificate]:
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, code)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, cert


def _verifier(cert: x509.Certificate, code: str = "332") -> Verifier:
    return Verifier(TrustStore.from_mapping({code: [cert]}), max_bytes=10**6, max_depth=64)


# --- keys --------------------------------------------------------------------


def test_a_p384_key_cannot_be_a_signing_key() -> None:
    pem, cert = _identity(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError, match="only P-256 is allowed"):
        Signer(pem, cert.public_bytes(serialization.Encoding.PEM))


def test_a_message_verified_against_a_pinned_p384_key_is_refused() -> None:
    pem, cert = _identity(ec.generate_private_key(ec.SECP384R1()))
    data = sign_with(build_envelope(), pem, method=xs.TransformEcdsaSha384)
    with pytest.raises(SignatureError, match="EC key on secp384r1; only P-256 is allowed"):
        _verifier(cert).verify(data)


def test_a_message_verified_against_a_pinned_rsa_1024_key_is_refused() -> None:
    pem, cert = _identity(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    data = sign_with(build_envelope(), pem, method=xs.TransformRsaSha256)
    with pytest.raises(SignatureError, match="RSA key of 1024 bits; at least 2048 required"):
        _verifier(cert).verify(data)


def test_an_ecdsa_signature_method_does_not_fit_a_pinned_rsa_key() -> None:
    ec_pem, _ = _identity(ec.generate_private_key(ec.SECP256R1()))
    _, rsa_cert = _identity(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    data = sign_with(build_envelope(), ec_pem)
    with pytest.raises(SignatureError, match="does not fit the key"):
        _verifier(rsa_cert).verify(data)


def test_the_key_comes_from_the_trust_store_whatever_key_info_says(tmp_path: Path) -> None:
    base = tmp_path
    dudley = make_authority("332", base / "a")
    rogue = make_authority("332", base / "rogue")
    pinned = load_certificate(dudley.identity.cert_path)
    # Signed by the pinned key, but KeyInfo names a rogue certificate: verifies
    # with the pin, and the result names the pin.
    root = etree.fromstring(Signer(dudley.key_pem, dudley.cert_pem).sign(build_envelope()))
    rogue_root = etree.fromstring(Signer(rogue.key_pem, rogue.cert_pem).sign(build_envelope()))
    pinned_info = copy.deepcopy(signature_of(root).find(f"{{{DS}}}KeyInfo"))
    signature_of(root).replace(
        signature_of(root).find(f"{{{DS}}}KeyInfo"),  # type: ignore[arg-type]
        copy.deepcopy(signature_of(rogue_root).find(f"{{{DS}}}KeyInfo")),  # type: ignore[arg-type]
    )
    verified = _verifier(pinned).verify(etree.tostring(root))
    assert verified.certificate == pinned
    # Signed by the rogue key and naming the pinned certificate: refused.
    forged = etree.fromstring(Signer(rogue.key_pem, rogue.cert_pem).sign(build_envelope()))
    signature_of(forged).replace(
        signature_of(forged).find(f"{{{DS}}}KeyInfo"),  # type: ignore[arg-type]
        pinned_info,  # type: ignore[arg-type]
    )
    with pytest.raises(SignatureError, match="does not verify with the certificate"):
        _verifier(pinned).verify(etree.tostring(forged))


def test_a_reference_covering_less_than_the_document_fails_even_past_the_transform_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Defence in depth: the verifier never runs a transform a message
    # declares. It digests the whole document itself, so a reference that
    # libxmlsec1 would accept (an XPath filter keeping only the Header) cannot
    # vouch for a body changed after signing, even if dsig_rules let it by.
    pem, cert = _identity(ec.generate_private_key(ec.SECP256R1()))
    root = build_envelope()
    signature = xmlsec.template.create(root, xs.TransformExclC14N, xs.TransformEcdsaSha256, ns="ds")
    root.append(signature)
    reference = xmlsec.template.add_reference(signature, xs.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, xs.TransformEnveloped)
    header_only = xmlsec.template.add_transform(reference, xs.TransformXPath)
    etree.SubElement(
        header_only, f"{{{DS}}}XPath"
    ).text = "ancestor-or-self::*[local-name()='Header']"
    xmlsec.template.add_transform(reference, xs.TransformExclC14N)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(pem, xs.KeyDataFormatPem)
    ctx.sign(signature)
    body = root.find(".//{urn:caf-exchange:1}Needs")
    assert body is not None
    body.text = "changed after signing"
    # libxmlsec1, running the declared transforms, finds nothing wrong:
    check = xmlsec.SignatureContext()
    check.key = dsig.public_key(cert)[0]
    check.verify(signature_of(root))
    monkeypatch.setattr(dsig_rules, "_check_transforms", lambda reference, where: None)
    with pytest.raises(SignatureError, match="content altered after signing"):
        _verifier(cert).verify(etree.tostring(root))


# --- one libxml2 -------------------------------------------------------------------


def test_lxml_and_python_xmlsec_share_one_libxml2_here() -> None:
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION
    dsig.check_libxml2()  # raises ConfigError otherwise


def test_a_libxml2_mismatch_names_both_packages_their_libxml2_and_the_fix() -> None:
    problem = dsig.libxml2_mismatch(
        "6.1.3", ((2, 14, 6), (2, 14, 6)), "1.3.17", ((2, 13, 8), (2, 13, 8))
    )
    assert problem is not None
    assert "python-xmlsec 1.3.17 uses libxml2 2.13.8" in problem
    assert "lxml 6.1.3 uses libxml2 2.14.6" in problem
    assert "requirements.lock" in problem
    assert dsig.libxml2_mismatch("6.1.3", ((2, 14, 6),) * 2, "1.3.17", ((2, 14, 6),) * 2) is None
