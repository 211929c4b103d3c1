"""Sign canonical envelopes: enveloped XMLDSig in C (python-xmlsec, libxmlsec1).

The signature covers the whole ``Envelope`` (one reference, ``URI=""``) with
exclusive C14N and SHA-256, ECDSA P-256 by default (RSA-2048+ accepted), and
carries the signer's certificate in ``KeyInfo`` so that ``xmlsec1`` can check
it too. The reference's digest is computed here, over the document in
exclusive C14N before the signature is added (what the enveloped-signature
transform leaves), and libxmlsec1 signs ``SignedInfo`` (``dsig``).
Verification is :mod:`gateway.envelope.verifying` (re-exported here).
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from xmlsec import constants as xs

from gateway.cpu_budget import BUDGET
from gateway.envelope import dsig
from gateway.envelope.dsig import DS
from gateway.envelope.keys import parse_private_key
from gateway.envelope.verifying import Verified, Verifier, spki
from gateway.errors import ConfigError, SignatureError

__all__ = ["Signer", "Verified", "Verifier"]


class Signer:
    """Signs envelopes with one authority's key; the key is loaded once."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        dsig.check_libxml2()
        key = parse_private_key(key_pem)
        try:
            self.certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ConfigError("signing certificate is not a readable PEM certificate") from exc
        if spki(self.certificate.public_key()) != spki(key.public_key()):
            raise ConfigError("signing certificate does not belong to the signing key")
        try:
            kind = dsig.key_kind(key, "signing key")
        except SignatureError as exc:
            raise ConfigError(str(exc)) from exc
        self._method = xs.TransformEcdsaSha256 if kind == "EC" else xs.TransformRsaSha256
        self._key = dsig.private_key(key)
        # Wrapped at 64 columns like xmlsec1's own output.
        der = b64encode(self.certificate.public_bytes(Encoding.DER)).decode()
        self._certificate_text = "\n".join(der[i : i + 64] for i in range(0, len(der), 64))

    @classmethod
    def from_files(cls, key_path: Path, cert_path: Path) -> Signer:
        """Load the PEM key and certificate of an identity (see ``keys``)."""
        try:
            return cls(key_path.read_bytes(), cert_path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{exc.filename}: cannot read ({exc.strerror})") from exc

    @BUDGET.stage("sign")
    def sign(self, root: etree._Element) -> bytes:
        """Return ``root`` serialised (UTF-8) with an enveloped signature as last child.

        ``root`` itself gains the signature.
        """
        if root.get("Id") is not None or root.get("ID") is not None:
            # An Id on the root invites '#id' references; ours are always URI="".
            raise SignatureError("refusing to sign: the root element has an Id attribute")
        if next(root.iter(f"{{{DS}}}Signature"), None) is not None:
            raise SignatureError("refusing to sign: the document already holds a ds:Signature")
        # What the reference (URI="", enveloped-signature, exclusive C14N)
        # covers: the document as it is now, before the signature is added.
        digest = hashlib.sha256(dsig.c14n(root, "refusing to sign")).digest()
        signature = xmlsec.template.create(root, xs.TransformExclC14N, self._method, ns="ds")
        root.append(signature)
        reference = xmlsec.template.add_reference(signature, xs.TransformSha256, uri="")
        xmlsec.template.add_transform(reference, xs.TransformEnveloped)
        xmlsec.template.add_transform(reference, xs.TransformExclC14N)
        _child(reference, "DigestValue").text = b64encode(digest).decode()
        try:
            value = dsig.sign_signed_info(self._key, self._method, _child(signature, "SignedInfo"))
        except (xmlsec.Error, SignatureError) as exc:
            root.remove(signature)
            raise SignatureError(f"signing failed: {exc}") from exc
        _child(signature, "SignatureValue").text = b64encode(value).decode()
        # KeyInfo is not covered by the signature: it only tells a reader (and
        # xmlsec1) which certificate to check against; no verifier trusts it.
        key_info = etree.SubElement(signature, f"{{{DS}}}KeyInfo")
        data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = self._certificate_text
        signature[-1].tail = "\n"
        return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True))


def _child(parent: etree._Element, name: str) -> etree._Element:
    """The ``ds:`` element ``name`` in the template xmlsec made (always present)."""
    found = parent.find(f".//{{{DS}}}{name}")
    assert found is not None, name
    return found
