"""Signing and verification: round trip, tampering, trust, and signature-shape attacks."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from helpers_xml import (
    DS,
    Authority,
    build_envelope,
    make_authority,
    q,
    resign,
    sign_with,
    signature_of,
    text_of,
)
from lxml import etree
from xmlsec import constants as xs

from gateway.envelope.keys import load_certificate
from gateway.envelope.signing import Signer, Verifier
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, SignatureError, TrustError, UnsafeXmlError
from gateway.settings import Authority as DirectoryEntry
from gateway.settings import Contact, Directory, RegionalGroup

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
XPATH_TRANSFORM = "http://www.w3.org/TR/1999/REC-xpath-19991116"
INCLUSIVE_NAMESPACES = f"{{{EXC_C14N}}}InclusiveNamespaces"


def find(root: etree._Element, name: str) -> etree._Element:
    found = root.find(q(name))
    assert found is not None, name
    return found


@pytest.fixture
def dudley(tmp_path: Path) -> Authority:
    return make_authority("332", tmp_path / "keys")


@pytest.fixture
def wolverhampton(tmp_path: Path) -> Authority:
    return make_authority("336", tmp_path / "keys")


@pytest.fixture
def trust(dudley: Authority, wolverhampton: Authority) -> TrustStore:
    return TrustStore.from_mapping(
        {a.code: [load_certificate(a.identity.cert_path)] for a in (dudley, wolverhampton)}
    )


@pytest.fixture
def verifier(trust: TrustStore) -> Verifier:
    return Verifier(trust, max_bytes=2_000_000, max_depth=64)


def sign(authority: Authority, root: etree._Element | None = None) -> bytes:
    return Signer(authority.key_pem, authority.cert_pem).sign(
        build_envelope() if root is None else root
    )


# --- round trip ---------------------------------------------------------------


def test_a_signed_envelope_verifies_and_yields_only_the_signed_data(
    dudley: Authority, verifier: Verifier
) -> None:
    root = build_envelope(sender="332", message_id="6f1c2b1e-0000-4000-8000-000000000001")
    data = sign(dudley, root)
    verified = verifier.verify(data)
    assert verified.sender == "332"
    assert verified.message_id == "6f1c2b1e-0000-4000-8000-000000000001"
    assert verified.digest == hashlib.sha256(data).hexdigest()
    assert verified.certificate == load_certificate(dudley.identity.cert_path)
    assert verified.root.tag == q("Envelope")
    assert verified.root.find(f"{{{DS}}}Signature") is None
    assert text_of(verified.root, "Assessment/Child/GivenName") == "Amelia"


def test_the_signature_is_enveloped_exclusive_c14n_sha256_ecdsa_with_the_certificate(
    dudley: Authority,
) -> None:
    root = etree.fromstring(sign(dudley))
    signature = root[-1]
    assert signature.tag == f"{{{DS}}}Signature"
    ns = {"ds": DS}
    assert signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=ns) == [
        EXC_C14N
    ]
    assert signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=ns) == [
        xs.TransformEcdsaSha256.href
    ]
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ns) == [""]
    digest_path = "ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm"
    assert signature.xpath(digest_path, namespaces=ns) == [xs.TransformSha256.href]
    assert signature.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=ns)


def test_an_rsa_2048_identity_signs_and_verifies(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "333")])
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
    signer = Signer(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )
    verifier = Verifier(TrustStore.from_mapping({"333": [cert]}), max_bytes=10**6, max_depth=64)
    assert verifier.verify(signer.sign(build_envelope(sender="333"))).sender == "333"


def test_a_signer_refuses_a_certificate_of_another_key(
    dudley: Authority, wolverhampton: Authority
) -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        Signer(dudley.key_pem, wolverhampton.cert_pem)


def test_a_signer_refuses_to_sign_twice(dudley: Authority) -> None:
    with pytest.raises(SignatureError, match="already holds a ds:Signature"):
        sign(dudley, etree.fromstring(sign(dudley)))


# --- tampering ----------------------------------------------------------------


def test_a_tampered_body_is_refused(dudley: Authority, verifier: Verifier) -> None:
    data = sign(dudley).replace(b"<GivenName>Amelia<", b"<GivenName>Amelie<")
    with pytest.raises(SignatureError, match="altered"):
        verifier.verify(data)


def test_a_tampered_header_is_refused(dudley: Authority, verifier: Verifier) -> None:
    data = sign(dudley).replace(b"<Recipient>336<", b"<Recipient>333<")
    with pytest.raises(SignatureError, match="altered"):
        verifier.verify(data)


def test_a_header_rewritten_to_another_pinned_sender_is_a_trust_error(
    dudley: Authority, verifier: Verifier
) -> None:
    data = sign(dudley).replace(b"<Sender>332<", b"<Sender>336<")
    with pytest.raises(TrustError, match="not pinned for 336"):
        verifier.verify(data)


def test_a_message_signed_by_another_authority_for_a_claimed_sender_is_a_trust_error(
    wolverhampton: Authority, verifier: Verifier
) -> None:
    data = sign(wolverhampton, build_envelope(sender="332"))
    with pytest.raises(TrustError, match=r"from 332: .*not pinned for 332"):
        verifier.verify(data)


def test_a_sender_without_a_pinned_certificate_is_a_trust_error(
    dudley: Authority, verifier: Verifier
) -> None:
    with pytest.raises(TrustError, match="unknown sender '999'"):
        verifier.verify(sign(dudley, build_envelope(sender="999")))


def test_an_unsigned_envelope_is_refused(verifier: Verifier) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verifier.verify(etree.tostring(build_envelope()))


# --- certificate validity and rotation -------------------------------------------


def test_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=400)
    old = make_authority("332", tmp_path, valid_days=30, now=long_ago)
    verifier = Verifier(
        TrustStore.from_mapping({"332": [load_certificate(old.identity.cert_path)]}),
        max_bytes=10**6,
        max_depth=64,
    )
    with pytest.raises(TrustError, match="no certificate pinned for 332 is valid"):
        verifier.verify(sign(old))


def test_a_certificate_not_yet_valid_is_refused(dudley: Authority, trust: TrustStore) -> None:
    verifier = Verifier(
        trust,
        max_bytes=10**6,
        max_depth=64,
        clock=lambda: datetime.now(UTC) - timedelta(days=1),
    )
    with pytest.raises(TrustError, match="is valid at"):
        verifier.verify(sign(dudley))


def test_both_certificates_verify_during_a_key_rotation_overlap(tmp_path: Path) -> None:
    old = make_authority("332", tmp_path / "old")
    new = make_authority("332", tmp_path / "new")
    pinned = [load_certificate(a.identity.cert_path) for a in (old, new)]
    verifier = Verifier(TrustStore.from_mapping({"332": pinned}), max_bytes=10**6, max_depth=64)
    assert verifier.verify(sign(old)).certificate == pinned[0]
    assert verifier.verify(sign(new)).certificate == pinned[1]


# --- see what is signed ----------------------------------------------------------


def test_a_comment_injected_into_signed_text_does_not_change_what_is_read(
    dudley: Authority, verifier: Verifier
) -> None:
    data = sign(dudley, build_envelope(summary="Needs support with school attendance"))
    data = data.replace(b"Needs support with", b"Needs<!-- x --> support with")
    data = data.replace(b"<Sender>332<", b"<Sender>33<!---->2<")
    verified = verifier.verify(data)
    assert verified.sender == "332"
    assert text_of(verified.root, "Header/Sender") == "332"
    assert text_of(verified.root, "Assessment/Needs") == "Needs support with school attendance"


def test_a_forged_envelope_wrapped_in_a_ds_object_is_refused(
    dudley: Authority, verifier: Verifier
) -> None:
    root = etree.fromstring(sign(dudley))
    forged = build_envelope(sender="332", summary="forged")
    ds_object = etree.SubElement(signature_of(root), f"{{{DS}}}Object")
    ds_object.append(forged)
    with pytest.raises(SignatureError, match="Object not allowed"):
        verifier.verify(etree.tostring(root))


def test_a_signed_envelope_moved_into_a_ds_object_of_a_forged_one_is_refused(
    dudley: Authority, verifier: Verifier
) -> None:
    original = etree.fromstring(sign(dudley))
    signature = copy.deepcopy(signature_of(original))
    forged = build_envelope(sender="332", summary="forged")
    forged.append(signature)
    etree.SubElement(signature, f"{{{DS}}}Object").append(original)
    with pytest.raises(SignatureError):
        verifier.verify(etree.tostring(forged))


def test_a_second_signature_is_refused(dudley: Authority, verifier: Verifier) -> None:
    root = etree.fromstring(sign(dudley))
    find(root, "Assessment").append(copy.deepcopy(signature_of(root)))
    with pytest.raises(SignatureError, match="exactly one ds:Signature"):
        verifier.verify(etree.tostring(root))


# --- algorithms and signature shape -------------------------------------------------


@pytest.mark.parametrize(
    ("signature_method", "digest"),
    [
        (xs.TransformEcdsaSha1, xs.TransformSha256),
        (xs.TransformEcdsaSha256, xs.TransformSha1),
    ],
    ids=["sha1-signature", "sha1-digest"],
)
def test_a_genuine_sha1_signature_is_refused(
    dudley: Authority, verifier: Verifier, signature_method: object, digest: object
) -> None:
    signed = sign_with(build_envelope(), dudley.key_pem, method=signature_method, digest=digest)
    with pytest.raises(SignatureError, match="not allowed"):
        verifier.verify(signed)


def _edit_signed_info(data: bytes, edit: str) -> bytes:
    root = etree.fromstring(data)
    info = signature_of(root).find(f"{{{DS}}}SignedInfo")
    assert info is not None
    reference = info.find(f"{{{DS}}}Reference")
    assert reference is not None
    if edit == "two-references":
        info.append(copy.deepcopy(reference))
    elif edit == "id-reference":
        reference.set("URI", "#body")
        find(root, "Assessment").set("Id", "body")
    elif edit == "xpath-transform":
        transforms = reference.find(f"{{{DS}}}Transforms")
        xpath = etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=XPATH_TRANSFORM)
        etree.SubElement(xpath, f"{{{DS}}}XPath").text = "not(ancestor::*[local-name()='Needs'])"
    elif edit == "c14n-with-comments":
        method = info.find(f"{{{DS}}}CanonicalizationMethod")
        assert method is not None
        method.set("Algorithm", EXC_C14N + "WithComments")
    elif edit == "transforms-reversed":
        transforms = reference.find(f"{{{DS}}}Transforms")
        assert transforms is not None
        transforms.append(transforms[0])  # enveloped-signature now comes last
    elif edit == "enveloped-only":
        transforms = reference.find(f"{{{DS}}}Transforms")
        assert transforms is not None
        transforms.remove(transforms[1])  # then inclusive C14N would apply by default
    elif edit == "inclusive-namespaces":
        transforms = reference.find(f"{{{DS}}}Transforms")
        assert transforms is not None
        etree.SubElement(transforms[1], INCLUSIVE_NAMESPACES, PrefixList="ds")
    elif edit == "c14n-inclusive-namespaces":
        method = info.find(f"{{{DS}}}CanonicalizationMethod")
        assert method is not None
        etree.SubElement(method, INCLUSIVE_NAMESPACES, PrefixList="ds")
    return etree.tostring(root)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("two-references", "exactly one reference, found 2"),
        ("id-reference", "whole document"),
        ("xpath-transform", "transform .*xpath.* not allowed"),
        ("c14n-with-comments", "CanonicalizationMethod .*WithComments not allowed"),
        ("transforms-reversed", "must be enveloped-signature then exclusive C14N, once each"),
        ("enveloped-only", "must be enveloped-signature then exclusive C14N, once each"),
        ("inclusive-namespaces", "InclusiveNamespaces not allowed in Transform"),
        ("c14n-inclusive-namespaces", "InclusiveNamespaces not allowed in CanonicalizationMethod"),
    ],
)
def test_a_validly_signed_but_unexpected_signature_shape_is_refused(
    dudley: Authority, verifier: Verifier, edit: str, reason: str
) -> None:
    data = resign(_edit_signed_info(sign(dudley), edit), dudley.identity.key_path)
    with pytest.raises(SignatureError, match=reason):
        verifier.verify(data)


@pytest.mark.parametrize("where", ["CanonicalizationMethod", "Transform"])
def test_an_inclusive_namespaces_that_names_no_prefix_is_accepted(
    dudley: Authority, verifier: Verifier, where: str
) -> None:
    # Some tools write an empty PrefixList: the canonical form is unchanged.
    root = etree.fromstring(sign(dudley))
    info = signature_of(root).find(f"{{{DS}}}SignedInfo")
    assert info is not None
    holder = info.find(f".//{{{DS}}}{where}[@Algorithm='{EXC_C14N}']")
    assert holder is not None
    etree.SubElement(holder, INCLUSIVE_NAMESPACES, PrefixList=" ")
    data = resign(etree.tostring(root), dudley.identity.key_path)
    assert verifier.verify(data).sender == "332"


@pytest.mark.parametrize(
    "where", ["SignatureMethod", "Reference/{ds}DigestMethod", "Reference/{ds}DigestValue"]
)
def test_an_element_inside_a_method_or_value_of_signed_info_is_refused(
    dudley: Authority, verifier: Verifier, where: str
) -> None:
    # The base64 of a value is read from its text; an element would hide part of it.
    root = etree.fromstring(sign(dudley))
    path = f"{{{DS}}}SignedInfo/{{{DS}}}" + where.format(ds="{" + DS + "}")
    found = signature_of(root).find(path)
    assert found is not None
    etree.SubElement(found, f"{{{DS}}}Extra")
    data = resign(etree.tostring(root), dudley.identity.key_path)
    with pytest.raises(SignatureError, match="Extra not allowed in"):
        verifier.verify(data)


def test_an_element_inside_signature_value_is_refused(
    dudley: Authority, verifier: Verifier
) -> None:
    root = etree.fromstring(sign(dudley))
    value = signature_of(root).find(f"{{{DS}}}SignatureValue")
    assert value is not None
    etree.SubElement(value, f"{{{DS}}}Extra")
    with pytest.raises(SignatureError, match="Extra not allowed in SignatureValue"):
        verifier.verify(etree.tostring(root))


@pytest.mark.parametrize("where", ["Envelope", "Needs", "SignedInfo"])
def test_a_relative_namespace_uri_is_refused_as_a_signature_error(
    dudley: Authority, verifier: Verifier, where: str
) -> None:
    # Exclusive C14N has no form for it: a clear refusal, not an lxml exception
    # that would send the message round the broker's retries.
    root = etree.fromstring(sign(dudley))
    target = root if where == "Envelope" else next(root.iter(f"{{*}}{where}"))
    target.set("{urn:x}a", "1")
    data = etree.tostring(root).replace(b'xmlns:ns0="urn:x"', b'xmlns:ns0="relative"')
    assert b'xmlns:ns0="relative"' in data
    with pytest.raises(SignatureError, match="cannot be put in exclusive C14N"):
        verifier.verify(data)


def test_signing_a_tree_with_a_relative_namespace_uri_is_refused(dudley: Authority) -> None:
    root = etree.fromstring(
        b'<Envelope xmlns="urn:caf-exchange:1" xmlns:r="rel"><Header/></Envelope>'
    )
    with pytest.raises(
        SignatureError, match=r"refusing to sign: .*cannot be put in exclusive C14N"
    ):
        sign(dudley, root)


def _sign_in_context(root: etree._Element, key_pem: bytes, ns: str | None) -> bytes:
    """libxmlsec1's own enveloped signature (it canonicalises SignedInfo in place)."""
    signature = xmlsec.template.create(root, xs.TransformExclC14N, xs.TransformEcdsaSha256, ns=ns)
    root.append(signature)
    reference = xmlsec.template.add_reference(signature, xs.TransformSha256, uri="")
    xmlsec.template.add_transform(reference, xs.TransformEnveloped)
    xmlsec.template.add_transform(reference, xs.TransformExclC14N)
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(key_pem, xs.KeyDataFormatPem)
    ctx.sign(signature)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.mark.parametrize(
    "context",
    [
        "signature-in-default-namespace",
        "ds-declared-on-envelope",
        "xml-lang-on-envelope",
        "unused-namespace-on-envelope",
    ],
)
def test_a_signature_libxmlsec1_made_in_any_namespace_context_verifies(
    dudley: Authority, verifier: Verifier, context: str
) -> None:
    # The verifier canonicalises SignedInfo as a copied subtree (lxml), libxmlsec1
    # in place: for exclusive C14N the octets must be the same wherever it sits.
    nsmap = {None: "urn:caf-exchange:1"}
    if context == "ds-declared-on-envelope":
        nsmap["ds"] = DS
    if context == "unused-namespace-on-envelope":
        nsmap["u"] = "urn:unused"
    root = etree.Element("{urn:caf-exchange:1}Envelope", nsmap=nsmap)  # type: ignore[arg-type]
    for child in build_envelope(sender="332"):
        root.append(child)
    if context == "xml-lang-on-envelope":
        root.set(XML_LANG, "en")
    ns = None if context == "signature-in-default-namespace" else "ds"
    data = _sign_in_context(root, dudley.key_pem, ns)
    verified = verifier.verify(data)
    assert verified.sender == "332"
    assert text_of(verified.root, "Header/Sender") == "332"


# --- hostile input reaches verify ---------------------------------------------------


def test_a_doctype_is_refused_by_verify_before_parsing(verifier: Verifier) -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Envelope xmlns="urn:caf-exchange:1">&x;</Envelope>'
    )
    with pytest.raises(UnsafeXmlError, match="DOCTYPE not allowed"):
        verifier.verify(data)


def test_an_oversize_message_is_refused_by_verify(dudley: Authority, trust: TrustStore) -> None:
    data = sign(dudley)
    verifier = Verifier(trust, max_bytes=len(data) - 1, max_depth=64)
    with pytest.raises(UnsafeXmlError, match=f"message is {len(data)} bytes"):
        verifier.verify(data)


def test_deep_nesting_is_refused_by_verify(dudley: Authority, verifier: Verifier) -> None:
    root = build_envelope()
    node = find(root, "Assessment")
    for _ in range(70):
        node = etree.SubElement(node, q("Note"))
    with pytest.raises(UnsafeXmlError, match="nesting deeper than 64"):
        verifier.verify(sign(dudley, root))


# --- trust store ------------------------------------------------------------------


def _directory(**certificates: str | None) -> Directory:
    contact = Contact(name="Someone")
    return Directory(
        regional_group=RegionalGroup(name="Region"),
        authorities={
            code.lstrip("_"): DirectoryEntry(
                code=code.lstrip("_"),
                name=f"LA {code}",
                certificate=cert,
                coordinator=contact,
                line_manager=contact,
            )
            for code, cert in certificates.items()
        },
    )


def test_the_trust_store_pins_configured_and_discovered_certificates(
    tmp_path: Path, dudley: Authority, wolverhampton: Authority
) -> None:
    keys = tmp_path / "keys"
    rotated = make_authority("336", tmp_path / "next")
    (keys / "336" / "cert-next.pem").write_bytes(rotated.cert_pem)
    store = TrustStore.from_directory(_directory(_332="332/cert.pem", _336=None, _333=None), keys)
    assert store.certificates_for("332") == (load_certificate(dudley.identity.cert_path),)
    assert len(store.certificates_for("336")) == 2
    assert "333" not in store
    with pytest.raises(TrustError, match="unknown sender '333'"):
        store.certificates_for("333")


def test_a_configured_certificate_that_is_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"authorities.332.certificate"):
        TrustStore.from_directory(_directory(_332="nowhere.pem"), tmp_path)


def test_a_certificate_naming_another_la_is_a_config_error(
    tmp_path: Path, wolverhampton: Authority
) -> None:
    with pytest.raises(ConfigError, match="names LA 336"):
        TrustStore.from_directory(_directory(_332="336/cert.pem"), tmp_path / "keys")
