"""Build canonical-looking envelopes and forged signatures for tests.

The real codec lives in ``gateway.envelope.codec``; these helpers build the
few elements the signing tests need with lxml directly, so that the
signing tests do not depend on the codec or the XSD.
"""

from __future__ import annotations

import uuid
from base64 import b64encode
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import xmlsec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from lxml import etree
from xmlsec import constants as xs

from gateway.envelope.keys import Identity, generate_identity, load_private_key

NS = "urn:caf-exchange:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
_NSMAP = {None: NS}


def q(name: str) -> str:
    """Clark name of a canonical element."""
    return f"{{{NS}}}{name}"


def build_envelope(
    *,
    sender: str = "332",
    recipient: str = "336",
    message_id: str | None = None,
    message_type: str = "Assessment",
    created_at: datetime | None = None,
    summary: str = "Needs support with school attendance",
) -> etree._Element:
    """A small Envelope with a Header and an Assessment-like body."""
    root = etree.Element(q("Envelope"), nsmap=_NSMAP)
    header = etree.SubElement(root, q("Header"))
    values = {
        "MessageId": message_id or str(uuid.uuid4()),
        "Sender": sender,
        "Recipient": recipient,
        "CreatedAt": (created_at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "MessageType": message_type,
    }
    for name, value in values.items():
        etree.SubElement(header, q(name)).text = value
    body = etree.SubElement(root, q(message_type))
    etree.SubElement(body, q("CaseRef")).text = "CAF-2026-0042"
    child = etree.SubElement(body, q("Child"))
    etree.SubElement(child, q("GivenName")).text = "Amelia"
    etree.SubElement(child, q("FamilyName")).text = "Hughes"
    etree.SubElement(body, q("Needs")).text = summary
    return root


def text_of(root: etree._Element, path: str) -> str:
    """Text of the element at ``path`` (names without namespace, '/'-separated)."""
    found = root.find("/".join(q(p) for p in path.split("/")))
    assert found is not None, path
    return found.text or ""


@dataclass(frozen=True)
class Authority:
    """A test authority: its identity and PEM bytes."""

    code: str
    identity: Identity

    @property
    def key_pem(self) -> bytes:
        return self.identity.key_path.read_bytes()

    @property
    def cert_pem(self) -> bytes:
        return self.identity.cert_path.read_bytes()


def make_authority(
    code: str, keys_dir: Path, *, valid_days: int = 825, now: datetime | None = None
) -> Authority:
    identity = generate_identity(
        code, f"Authority {code}", keys_dir, valid_days=valid_days, now=now, force=True
    )
    return Authority(code, identity)


def signature_of(root: etree._Element) -> etree._Element:
    found = root.find(f"{{{DS}}}Signature")
    assert found is not None
    return found


def resign(doc: bytes, key_path: Path) -> bytes:
    """Recompute SignatureValue over a hand-edited SignedInfo (ECDSA-SHA256).

    Lets a test build a signature that is cryptographically valid but has a
    shape the verifier must refuse (two references, XPath transforms, ...).
    """
    key = load_private_key(key_path)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    root = etree.fromstring(doc)
    signature = signature_of(root)
    info = signature.find(f"{{{DS}}}SignedInfo")
    assert info is not None
    c14n = etree.tostring(info, method="c14n", exclusive=True, with_comments=False)
    r, s = utils.decode_dss_signature(key.sign(c14n, ec.ECDSA(hashes.SHA256())))
    value = signature.find(f"{{{DS}}}SignatureValue")
    assert value is not None
    value.text = b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def sign_with(
    root: etree._Element,
    key_pem: bytes,
    *,
    method: object = xs.TransformEcdsaSha256,
    digest: object = xs.TransformSha256,
    c14n: object = xs.TransformExclC14N,
    cert_pem: bytes | None = None,
) -> bytes:
    """Sign ``root`` with libxmlsec1 directly, with any algorithms (SHA-1 included).

    Our Signer refuses what attackers do not: this builds genuine signatures
    with the algorithms the verifier must refuse.
    """
    signature = xmlsec.template.create(root, c14n, method, ns="ds")  # type: ignore[arg-type]
    root.append(signature)
    reference = xmlsec.template.add_reference(signature, digest, uri="")  # type: ignore[arg-type]
    xmlsec.template.add_transform(reference, xs.TransformEnveloped)
    xmlsec.template.add_transform(reference, xs.TransformExclC14N)
    key = xmlsec.Key.from_memory(key_pem, xs.KeyDataFormatPem)
    if cert_pem is not None:
        key.load_cert_from_memory(cert_pem, xs.KeyDataFormatCertPem)
        xmlsec.template.x509_data_add_certificate(
            xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        )
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.sign(signature)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))
