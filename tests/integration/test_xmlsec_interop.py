"""Interoperability with xmlsec1: our signatures verify there, and theirs here.

The design requires that a signed message verifies with ``xmlsec1`` as well
as with our own code, so that an LA can check a message with standard tools.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_xml import Authority, build_envelope, make_authority, text_of
from lxml import etree

from gateway.envelope.keys import load_certificate
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore

XMLSEC1 = shutil.which("xmlsec1")

pytestmark = pytest.mark.skipif(
    XMLSEC1 is None, reason="xmlsec1 not installed (apt-get install -y xmlsec1)"
)

SIGNATURE_TEMPLATE = b"""\
<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
<ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>
<ds:Reference URI="">
<ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
</ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
<ds:DigestValue/>
</ds:Reference>
</ds:SignedInfo>
<ds:SignatureValue/>
<ds:KeyInfo><ds:X509Data/></ds:KeyInfo>
</ds:Signature>"""


def xmlsec1(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert XMLSEC1 is not None
    return subprocess.run(
        [XMLSEC1, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def dudley(tmp_path: Path) -> Authority:
    return make_authority("332", tmp_path / "keys")


@pytest.fixture
def signed_file(tmp_path: Path, dudley: Authority) -> Path:
    path = tmp_path / "signed.xml"
    path.write_bytes(Signer(dudley.key_pem, dudley.cert_pem).sign(build_envelope()))
    return path


@pytest.mark.parametrize("trust_option", ["--trusted-pem", "--pubkey-cert-pem"])
def test_xmlsec1_accepts_a_document_cafgw_signed(
    signed_file: Path, dudley: Authority, trust_option: str
) -> None:
    result = xmlsec1("--verify", trust_option, dudley.identity.cert_path, signed_file)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stderr


def test_xmlsec1_rejects_a_tampered_document(
    tmp_path: Path, signed_file: Path, dudley: Authority
) -> None:
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(
        signed_file.read_bytes().replace(b"<GivenName>Amelia<", b"<GivenName>Amelie<")
    )
    result = xmlsec1("--verify", "--trusted-pem", dudley.identity.cert_path, tampered)
    assert result.returncode != 0
    assert "FAIL" in result.stderr


def test_xmlsec1_rejects_a_document_signed_by_another_authority(
    tmp_path: Path, signed_file: Path
) -> None:
    stranger = make_authority("336", tmp_path / "other")
    result = xmlsec1("--verify", "--trusted-pem", stranger.identity.cert_path, signed_file)
    assert result.returncode != 0


def test_cafgw_verifies_a_document_xmlsec1_signed(tmp_path: Path, dudley: Authority) -> None:
    root = build_envelope(sender="332")
    root.append(etree.fromstring(SIGNATURE_TEMPLATE))
    template = tmp_path / "template.xml"
    template.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    out = tmp_path / "by-xmlsec1.xml"
    keys = f"{dudley.identity.key_path},{dudley.identity.cert_path}"
    result = xmlsec1("--sign", "--privkey-pem", keys, "--output", out, template)
    assert result.returncode == 0, result.stderr

    trust = TrustStore.from_mapping({"332": [load_certificate(dudley.identity.cert_path)]})
    verified = Verifier(trust, max_bytes=2_000_000, max_depth=64).verify(out.read_bytes())
    assert verified.sender == "332"
    assert text_of(verified.root, "Assessment/Child/GivenName") == "Amelia"


def test_xmlsec1_accepts_the_signed_bytes_a_receiver_keeps(
    tmp_path: Path, signed_file: Path, dudley: Authority
) -> None:
    # What the receiver records and hands over (the canonical signed form,
    # comments gone) is still a document any LA can check with xmlsec1.
    tampered = signed_file.read_bytes().replace(b">Amelia<", b">Am<!--x-->elia<")
    trust = TrustStore.from_mapping({"332": [load_certificate(dudley.identity.cert_path)]})
    verified = Verifier(trust, max_bytes=2_000_000, max_depth=64).verify(tampered)
    kept = tmp_path / "kept.xml"
    kept.write_bytes(verified.signed_bytes)
    assert b"<!--" not in verified.signed_bytes
    result = xmlsec1("--verify", "--trusted-pem", dudley.identity.cert_path, kept)
    assert result.returncode == 0, result.stderr
