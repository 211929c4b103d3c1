"""Sign canonical envelopes and verify signed ones (enveloped XMLDSig).

Signatures cover the whole ``Envelope`` (one reference, ``URI=""``) with
exclusive C14N and SHA-256, ECDSA P-256 by default (RSA-2048+ accepted), and
carry the signer's certificate in ``KeyInfo`` so that ``xmlsec1`` can check
them too. Verification trusts only the certificates pinned for the header's
sender, never the one inside the message, and hands back only what was
signed (:attr:`Verified.root`). signxml and lxml exceptions are mapped into
:mod:`gateway.errors` here and nowhere else.
"""

from __future__ import annotations

import hashlib
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature, SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from gateway.cpu_budget import BUDGET
from gateway.envelope import xmlsafe
from gateway.envelope.keys import parse_private_key
from gateway.envelope.trust import TrustStore
from gateway.errors import ConfigError, SignatureError, TrustError
from gateway.model import NAMESPACE

__all__ = ["DIGEST_ALGORITHMS", "SIGNATURE_METHODS", "Signer", "Verified", "Verifier"]

SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
    }
)
DIGEST_ALGORITHMS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
DS = "http://www.w3.org/2000/09/xmldsig#"
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_ENVELOPED = SignatureConstructionMethod.enveloped.value
_INCLUSIVE_NAMESPACES = "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"
_MAX_HEADER_CHARS = 100
_SIGNATURE_PARTS = frozenset(f"{{{DS}}}{n}" for n in ("SignedInfo", "SignatureValue", "KeyInfo"))
_SIGNED_INFO_PARTS = frozenset(
    f"{{{DS}}}{n}" for n in ("CanonicalizationMethod", "SignatureMethod", "Reference")
)
_X509_DATA = f"{{{DS}}}X509Data"
_X509_PARTS = frozenset(
    f"{{{DS}}}{n}" for n in ("X509Certificate", "X509IssuerSerial", "X509SubjectName", "X509SKI")
)


class Signer:
    """Signs envelopes with one authority's key; the key is loaded once."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        self._key = parse_private_key(key_pem)
        try:
            self.certificate = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise ConfigError("signing certificate is not a readable PEM certificate") from exc
        if _spki(self.certificate.public_key()) != _spki(self._key.public_key()):
            raise ConfigError("signing certificate does not belong to the signing key")
        self._cert_chain = [self.certificate]
        is_ec = isinstance(self._key, ec.EllipticCurvePrivateKey)
        algorithm = SignatureMethod.ECDSA_SHA256 if is_ec else SignatureMethod.RSA_SHA256
        self._signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=algorithm,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

    @classmethod
    def from_files(cls, key_path: Path, cert_path: Path) -> Signer:
        """Load the PEM key and certificate of an identity (see ``keys``)."""
        try:
            return cls(key_path.read_bytes(), cert_path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{exc.filename}: cannot read ({exc.strerror})") from exc

    @BUDGET.stage("sign")
    def sign(self, root: etree._Element) -> bytes:
        """Return ``root`` serialised (UTF-8) with an enveloped signature as last child."""
        # signxml signs "#<Id>" instead of the whole document when the root
        # has an Id, and fills a placeholder Signature if there is one.
        if root.get("Id") is not None or root.get("ID") is not None:
            raise SignatureError("refusing to sign: the root element has an Id attribute")
        if next(root.iter(f"{{{DS}}}Signature"), None) is not None:
            raise SignatureError("refusing to sign: the document already holds a ds:Signature")
        try:
            signed = self._signer.sign(root, key=self._key, cert=self._cert_chain)
        except (SignXMLException, ValueError, etree.LxmlError) as exc:
            raise SignatureError(f"signing failed: {exc}") from exc
        return bytes(etree.tostring(signed, encoding="UTF-8", xml_declaration=True))


@dataclass(frozen=True)
class Verified:
    """A verified message: only what was signed, and who signed it."""

    root: etree._Element
    """The signed Envelope (without its ds:Signature), re-parsed from the canonical bytes."""
    sender: str
    """LA code of the sender; its pinned certificate verified the signature."""
    message_id: str
    digest: str
    """SHA-256 hex of the message bytes as received (for the dedup table and receipts)."""
    certificate: x509.Certificate
    """The pinned certificate that verified the signature."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Verifier:
    """Checks signed envelopes against the trust store; safe to share between threads."""

    def __init__(
        self,
        trust: TrustStore,
        *,
        max_bytes: int,
        max_depth: int,
        clock: Callable[[], datetime] = _utc_now,
        namespaces: frozenset[str] = frozenset({NAMESPACE}),
    ) -> None:
        self._trust = trust
        self._max_bytes = max_bytes
        self._max_depth = max_depth
        self._clock = clock
        self._namespaces = namespaces

    @BUDGET.stage("verify")
    def verify(self, data: bytes) -> Verified:
        """Verify ``data``; raise ``UnsafeXmlError``, ``TrustError`` or ``SignatureError``."""
        with BUDGET.timed("parse"):
            root = xmlsafe.parse(data, max_bytes=self._max_bytes, max_depth=self._max_depth)
        message_id, sender = self._header(root, "unverified message")
        where = f"message {message_id} from {sender}"
        signature = _check_signature_shape(root, where)
        now = self._clock()
        embedded = _embedded_certificate(signature)
        candidates = self._trust.current_for(sender, now)
        if embedded is not None and self._trust.issued_by_ca_for(sender, embedded, now):
            # Vouched for by the regional CA for this LA code: trusted because
            # the CA signed it, not because the message carries it.
            candidates.append(embedded)
        if not candidates:
            raise TrustError(f"{where}: {self._no_certificate(sender, now)}")
        foreign = None
        if embedded is not None:
            # Compared by key, not by certificate: a re-issued certificate for
            # the same key is the same signer.
            named = _spki(embedded.public_key())
            # Try the certificate that the message names first: with several
            # pinned (rotation overlap) that saves a failed attempt.
            candidates.sort(key=lambda c: _spki(c.public_key()) != named)
            if all(_spki(c.public_key()) != named for c in candidates):
                foreign = embedded
        current = candidates
        signed_root, cert = self._verify_pinned(root, current, foreign, sender, where, now)
        if self._header(signed_root, where) != (message_id, sender):
            raise SignatureError(f"{where}: the signed header differs from the one read")
        return Verified(
            root=signed_root,
            sender=sender,
            message_id=message_id,
            digest=hashlib.sha256(data).hexdigest(),
            certificate=cert,
        )

    @property
    def trust(self) -> TrustStore:
        """The trust store this verifier consults (for expiry reports)."""
        return self._trust

    def _no_certificate(self, sender: str, now: datetime) -> str:
        try:
            pinned = self._trust.certificates_for(sender)
        except TrustError as exc:
            if self._trust.has_regional_ca:
                return f"{exc}, and the regional CA issued no valid certificate in KeyInfo for it"
            return str(exc)
        windows = ", ".join(
            f"{c.not_valid_before_utc:%Y-%m-%d}..{c.not_valid_after_utc:%Y-%m-%d}" for c in pinned
        )
        return (
            f"no certificate pinned for {sender} is valid at {now:%Y-%m-%dT%H:%M:%SZ} "
            f"(valid {windows}, or retired after a key rotation); pin the sender's current "
            "certificate"
        )

    def _verify_pinned(
        self,
        root: etree._Element,
        candidates: list[x509.Certificate],
        foreign: x509.Certificate | None,
        sender: str,
        where: str,
        now: datetime,
    ) -> tuple[etree._Element, x509.Certificate]:
        config = SignatureConfiguration(
            require_x509=True,
            location="./",
            expect_references=1,
            signature_methods=SIGNATURE_METHODS,
            digest_algorithms=DIGEST_ALGORITHMS,
            verification_time=now,
        )
        for cert in candidates:
            try:
                # A new XMLVerifier per attempt: verify() keeps state on the instance.
                result = XMLVerifier().verify(
                    root, x509_cert=cert, parser=xmlsafe.parser(), expect_config=config
                )
            except InvalidDigest as exc:
                # The signature over SignedInfo matched this key, so the
                # content itself was altered after signing.
                raise SignatureError(f"{where}: content altered after signing ({exc})") from exc
            except InvalidCertificate as exc:
                raise TrustError(f"{where}: {exc}") from exc
            except InvalidSignature:
                continue  # maybe another pinned certificate (rotation overlap)
            except (SignXMLException, ValueError, etree.LxmlError) as exc:
                raise SignatureError(f"{where}: malformed signature: {exc}") from exc
            signed = result.signed_xml if isinstance(result, VerifyResult) else None
            if signed is None:
                raise SignatureError(f"{where}: signed content is not XML")
            return signed, cert
        if foreign is not None:
            raise TrustError(
                f"{where}: signed with a certificate that is not pinned for {sender} "
                f"({foreign.subject.rfc4514_string()})"
            )
        raise SignatureError(
            f"{where}: signature does not verify with the certificate(s) pinned for {sender}"
        )

    def _header(self, root: etree._Element, where: str) -> tuple[str, str]:
        qname = etree.QName(root)
        if qname.localname != "Envelope" or qname.namespace not in self._namespaces:
            raise SignatureError(f"{where}: root is {root.tag}, expected an Envelope")
        ns = qname.namespace
        header = next((c for c in root if isinstance(c.tag, str)), None)
        if header is None or header.tag != f"{{{ns}}}Header":
            raise SignatureError(f"{where}: the first child of Envelope must be Header")
        values = []
        for name in ("MessageId", "Sender"):
            found = header.find(f"{{{ns}}}{name}")
            # itertext() skips comments, so "33<!---->2" reads as "332".
            text = "" if found is None else "".join(str(t) for t in found.itertext()).strip()
            if not text:
                raise SignatureError(f"{where}: Header has no {name}")
            # Unverified text ends up in logs and error messages: keep it short and plain.
            if len(text) > _MAX_HEADER_CHARS or not text.isprintable():
                raise SignatureError(f"{where}: Header {name} is not a plain identifier")
            values.append(text)
        return values[0], values[1]


def _spki(key: object) -> bytes:
    public_bytes: Callable[[Encoding, PublicFormat], bytes] = key.public_bytes  # type: ignore[attr-defined]
    return public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _check_signature_shape(root: etree._Element, where: str) -> etree._Element:
    """Refuse every signature shape but ours, before any cryptography runs.

    signxml would accept more (several references, ``#id`` references,
    other transforms, ``ds:Object``); the design allows exactly one
    enveloped signature over the whole document.
    """
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if not signatures:
        raise SignatureError(f"{where}: not signed (no ds:Signature)")
    last = [c for c in root if isinstance(c.tag, str)][-1]
    if len(signatures) > 1 or signatures[0] is not last:
        raise SignatureError(
            f"{where}: expected exactly one ds:Signature, as the last child of Envelope "
            f"(found {len(signatures)}, last child {etree.QName(last).localname})"
        )
    signature = signatures[0]
    for part in signature:
        if isinstance(part.tag, str) and part.tag not in _SIGNATURE_PARTS:
            # ds:Object is where wrapping attacks hide a second document.
            name = etree.QName(part).localname
            raise SignatureError(f"{where}: {name} not allowed in ds:Signature")
    info = signature.find(f"{{{DS}}}SignedInfo")
    if info is None:
        raise SignatureError(f"{where}: ds:Signature has no SignedInfo")
    for part in info:
        if isinstance(part.tag, str) and part.tag not in _SIGNED_INFO_PARTS:
            name = etree.QName(part).localname
            raise SignatureError(f"{where}: {name} not allowed in ds:SignedInfo")
    _check_key_info(signature, where)
    _expect_algorithm(info, "CanonicalizationMethod", {_EXC_C14N}, where)
    _expect_algorithm(info, "SignatureMethod", {m.value for m in SIGNATURE_METHODS}, where)
    references = info.findall(f"{{{DS}}}Reference")
    if len(references) != 1:
        raise SignatureError(f"{where}: expected exactly one reference, found {len(references)}")
    reference = references[0]
    if reference.get("URI") != "":
        raise SignatureError(
            f'{where}: the reference must cover the whole document (URI=""), '
            f"not {reference.get('URI')!r}"
        )
    transforms = reference.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    algorithms = [t.get("Algorithm") for t in transforms]
    if _ENVELOPED not in algorithms:
        raise SignatureError(f"{where}: the reference lacks the enveloped-signature transform")
    for transform, algorithm in zip(transforms, algorithms, strict=True):
        if algorithm not in (_ENVELOPED, _EXC_C14N):
            raise SignatureError(f"{where}: transform {algorithm} not allowed")
        if any(isinstance(c.tag, str) and c.tag != _INCLUSIVE_NAMESPACES for c in transform):
            raise SignatureError(f"{where}: unexpected content in transform {algorithm}")
    _expect_algorithm(reference, "DigestMethod", {d.value for d in DIGEST_ALGORITHMS}, where)
    return signature


def _check_key_info(signature: etree._Element, where: str) -> None:
    # KeyInfo may only name certificates: RetrievalMethod, KeyName or
    # KeyValue would invite fetching or trusting a key the message supplies.
    info = signature.find(f"{{{DS}}}KeyInfo")
    if info is None:
        return
    for part in info:
        if not isinstance(part.tag, str):
            continue
        if part.tag != _X509_DATA:
            raise SignatureError(
                f"{where}: {etree.QName(part).localname} not allowed in ds:KeyInfo"
            )
        for item in part:
            if isinstance(item.tag, str) and item.tag not in _X509_PARTS:
                raise SignatureError(
                    f"{where}: {etree.QName(item).localname} not allowed in ds:X509Data"
                )


def _expect_algorithm(parent: etree._Element, name: str, allowed: set[str], where: str) -> None:
    element = parent.find(f"{{{DS}}}{name}")
    algorithm = None if element is None else element.get("Algorithm")
    if algorithm not in allowed:
        raise SignatureError(f"{where}: {name} {algorithm} not allowed")


def _embedded_certificate(signature: etree._Element) -> x509.Certificate | None:
    """The first certificate in KeyInfo, for diagnostics only (never trusted)."""
    element = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if element is None or not element.text:
        return None
    try:
        return x509.load_der_x509_certificate(b64decode(element.text))
    except ValueError:
        return None
