"""Verify signed envelopes, and hand back only what was signed.

One parse per message (``xmlsafe``: size and depth limits before and while
parsing, no DTD, no entities, no processing instructions). Then, in order:

1. comments are removed from the tree and counted: exclusive C14N never
   signs them, so nothing may read them (``docs/security.md``, "Act only on
   what was signed");
2. the signature must have the one allowed shape (``dsig_rules``);
3. the key comes from the trust store, pinned for the header's sender (or
   issued by the regional CA for that LA code), never from ``KeyInfo``, and
   must be ECDSA P-256 or RSA-2048+ matching the SignatureMethod;
4. libxmlsec1 verifies the signature over ``SignedInfo`` in exclusive C14N
   (``dsig.signed_info_verifies``), with the pinned key and the allowed
   ``SignatureMethod``;
5. the document without its signature is put in exclusive C14N here, and its
   digest must equal the signed ``DigestValue``. This is the reference's
   whole processing: the rules admit one chain only (enveloped-signature then
   exclusive C14N of ``URI=""``), so no transform a message declares is ever
   run, and what we hand on is, octet for octet, what the signature covers.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from gateway.cpu_budget import BUDGET
from gateway.envelope import dsig, xmlsafe
from gateway.envelope.dsig import DS
from gateway.envelope.dsig_rules import Shape, check_shape
from gateway.envelope.trust import TrustStore
from gateway.errors import SignatureError, TrustError
from gateway.model import NAMESPACE

__all__ = ["Verified", "Verifier", "spki"]

_MAX_HEADER_CHARS = 100


@dataclass(frozen=True)
class Verified:
    """A verified message: only what was signed, and who signed it."""

    root: etree._Element
    """The signed Envelope, without its ds:Signature or any comment: the signed content."""
    signed_bytes: bytes
    """The document as signed, in exclusive C14N: the content the signature's digest
    covers, octet for octet, followed by its ds:Signature (so ``xmlsec1`` still
    verifies it). Nothing else: no comments, no CDATA sections, nothing outside the
    root. This is what is recorded, handed over and shown."""
    sender: str
    """LA code of the sender; its pinned certificate verified the signature."""
    message_id: str
    digest: str
    """SHA-256 hex of the message bytes as received (for the dedup table and receipts)."""
    certificate: x509.Certificate
    """The pinned certificate that verified the signature."""
    comments_removed: int = 0
    """Comments the document carried; none is signed, all were dropped."""

    @property
    def note(self) -> str | None:
        """What verification took away, for the message's history (None: nothing)."""
        if not self.comments_removed:
            return None
        return (
            f"{self.comments_removed} comment(s) removed: comments are not covered "
            "by the signature (inserted after signing?)"
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def spki(key: object) -> bytes:
    """A public key's SubjectPublicKeyInfo (DER): what identifies a signer."""
    public_bytes: Callable[[Encoding, PublicFormat], bytes] = key.public_bytes  # type: ignore[attr-defined]
    return public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


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
        dsig.check_libxml2()
        self._trust = trust
        self._max_bytes = max_bytes
        self._max_depth = max_depth
        self._clock = clock
        self._namespaces = namespaces

    @property
    def trust(self) -> TrustStore:
        """The trust store this verifier consults (for expiry reports)."""
        return self._trust

    def replace_trust(self, trust: TrustStore) -> None:
        """Consult ``trust`` from now on (a reloaded region directory); one rebinding."""
        self._trust = trust

    @BUDGET.stage("verify")
    def verify(self, data: bytes, *, now: datetime | None = None) -> Verified:
        """Verify ``data``; raise ``UnsafeXmlError``, ``TrustError`` or ``SignatureError``.

        ``now``: when the signer's certificate must be valid (this verifier's clock
        when None).
        """
        with BUDGET.timed("parse"):
            root = xmlsafe.parse(data, max_bytes=self._max_bytes, max_depth=self._max_depth)
        comments = sum(1 for _ in root.iter(etree.Comment))
        if comments:
            etree.strip_tags(root, etree.Comment)  # their text is kept in place
        message_id, sender = self._header(root, "unverified message")
        where = f"message {message_id} from {sender}"
        shape = check_shape(root, where)
        now = self._clock() if now is None else now
        candidates, foreign = self._candidates(shape, sender, where, now)
        cert = self._verify_with(shape, candidates, foreign, sender, where)
        signed_bytes = dsig.c14n(root, where)
        _detach(shape.signature)
        content = dsig.c14n(root, where)
        if not hmac.compare_digest(shape.digest(content).digest(), shape.digest_value):
            # The signature over SignedInfo is good, so the content (whose
            # digest SignedInfo carries) was altered after signing.
            raise SignatureError(f"{where}: content altered after signing (digest mismatch)")
        return Verified(
            root=root,
            signed_bytes=signed_bytes,
            sender=sender,
            message_id=message_id,
            digest=hashlib.sha256(data).hexdigest(),
            certificate=cert,
            comments_removed=comments,
        )

    def _candidates(
        self, shape: Shape, sender: str, where: str, now: datetime
    ) -> tuple[list[x509.Certificate], x509.Certificate | None]:
        """Certificates that may sign for ``sender`` now, the one KeyInfo names first.

        The second value is the message's own certificate when no candidate
        has its key (for the error message only: it is never trusted).
        """
        embedded = _embedded_certificate(shape.signature)
        candidates = self._trust.current_for(sender, now)
        if embedded is not None and self._trust.issued_by_ca_for(sender, embedded, now):
            # Vouched for by the regional CA for this LA code: trusted because
            # the CA signed it, not because the message carries it.
            candidates.append(embedded)
        if not candidates:
            raise TrustError(f"{where}: {self._no_certificate(sender, now)}")
        if embedded is None:
            return candidates, None
        # Compared by key, not by certificate: a re-issued certificate for the
        # same key is the same signer. Trying the one the message names first
        # saves a failed attempt during a rotation overlap.
        named = _certificate_spki(embedded)
        candidates.sort(key=lambda c: _certificate_spki(c) != named)
        if all(_certificate_spki(c) != named for c in candidates):
            return candidates, embedded
        return candidates, None

    def _verify_with(
        self,
        shape: Shape,
        candidates: list[x509.Certificate],
        foreign: x509.Certificate | None,
        sender: str,
        where: str,
    ) -> x509.Certificate:
        """The candidate whose key signed ``SignedInfo``, or the error that says why none.

        The content's digest is checked by the caller, once, whichever key this is.
        """
        usable = False
        octets = dsig.c14n(shape.signed_info, where)
        for cert in candidates:
            key, kind = dsig.public_key(cert)
            if kind != shape.method.key_kind:
                continue  # an ECDSA method cannot be checked with an RSA key, and back
            usable = True
            if dsig.signed_info_verifies(key, shape.method, octets, shape.signature_value):
                return cert
            # else maybe another pinned certificate (rotation overlap)
        if foreign is not None:
            raise TrustError(
                f"{where}: signed with a certificate that is not pinned for {sender} "
                f"({foreign.subject.rfc4514_string()})"
            )
        if not usable:
            raise SignatureError(
                f"{where}: SignatureMethod {shape.method_uri} does not fit the key(s) pinned "
                f"for {sender}"
            )
        raise SignatureError(
            f"{where}: signature does not verify with the certificate(s) pinned for {sender}"
        )

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
            text = "" if found is None else "".join(str(t) for t in found.itertext()).strip()
            if not text:
                raise SignatureError(f"{where}: Header has no {name}")
            # Unverified text ends up in logs and error messages: keep it short and plain.
            if len(text) > _MAX_HEADER_CHARS or not text.isprintable():
                raise SignatureError(f"{where}: Header {name} is not a plain identifier")
            values.append(text)
        return values[0], values[1]


def _detach(element: etree._Element) -> None:
    """Remove ``element`` but keep the text after it (lxml drops a removed element's tail)."""
    parent = element.getparent()
    assert parent is not None
    tail = element.tail or ""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(element)


def _embedded_certificate(signature: etree._Element) -> x509.Certificate | None:
    """The first certificate in KeyInfo, for diagnostics and the regional CA only."""
    element = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if element is None or not element.text:
        return None
    return _certificate_of(element.text)


@lru_cache(maxsize=64)
def _certificate_of(text: str) -> x509.Certificate | None:
    # Cached: every message of a peer carries the same certificate text.
    # cryptography reads a certificate's parts lazily, at first use: read
    # every part the verifier and the trust store use now, so one that cannot
    # be read (a point off the curve, an unknown algorithm, a malformed name,
    # a duplicated extension) makes it no certificate, vouching for nothing.
    try:
        certificate = x509.load_der_x509_certificate(b64decode(text))
        spki(certificate.public_key())
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        _ = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
        _ = list(certificate.extensions)
    except (
        ValueError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ):
        return None
    return certificate


@lru_cache(maxsize=256)
def _certificate_spki(certificate: x509.Certificate) -> bytes:
    return spki(certificate.public_key())
