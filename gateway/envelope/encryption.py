"""End-to-end encryption of a message body to the recipient's key.

For authority pairs that switch it on (``encryption.pairs``), the body
element is replaced by an ``EncryptedBody`` before signing, so the broker
and its operator see only the Header. The scheme is ECDH-ES on P-256: a
fresh ephemeral key per message agrees a secret with the recipient's
certificate key (the same P-256 key it signs with), HKDF-SHA256 derives an
AES-256 key, AES-256-GCM encrypts the serialised body with the message id,
sender, recipient and type as associated data (a body cannot be moved into
another message's envelope).

The signature is made over the envelope holding the ciphertext, so the
receiver verifies before it decrypts anything; see docs/security.md for why.
"""

from __future__ import annotations

import os
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from lxml import etree

from gateway.envelope import xmlsafe
from gateway.envelope.keys import load_private_key
from gateway.errors import ConfigError, SignatureError
from gateway.model import NAMESPACE

__all__ = [
    "ALGORITHM",
    "DecryptionKeys",
    "decrypt_envelope",
    "encrypt_envelope",
    "is_encrypted",
    "key_id",
]

ALGORITHM = "ECDH-ES+HKDF-SHA256+A256GCM"
NS = f"{{{NAMESPACE}}}"
ENCRYPTED_BODY = NS + "EncryptedBody"
_INFO = b"cafgw e2e body v1"
_NONCE_BYTES = 12
# Keys that may decrypt: the active one and, around a key rotation, the
# staged and the previous one (senders encrypt to any certificate in force).
_KEY_FILES = ("key.pem", "key-next.pem", "key-previous.pem")


def key_id(public: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of a public key's SubjectPublicKeyInfo: names the key, whatever certificate."""
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return digest.finalize()


@dataclass(frozen=True)
class DecryptionKeys:
    """An authority's private keys by :func:`key_id` (hex) of their public key."""

    by_fingerprint: Mapping[str, ec.EllipticCurvePrivateKey]

    @classmethod
    def load(cls, keys_dir: Path, code: str) -> DecryptionKeys:
        """The hosted authority's EC keys found in ``<keys_dir>/<code>``."""
        found: dict[str, ec.EllipticCurvePrivateKey] = {}
        for name in _KEY_FILES:
            key_path = keys_dir / code / name
            if not key_path.is_file():
                continue
            key = load_private_key(key_path)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                found[key_id(key.public_key()).hex()] = key
        return cls(found)


def is_encrypted(root: etree._Element) -> bool:
    """Whether an Envelope carries an ``EncryptedBody``."""
    return root.find(ENCRYPTED_BODY) is not None


def _aad(header: etree._Element) -> bytes:
    values = []
    for name in ("MessageId", "Sender", "Recipient", "MessageType"):
        found = header.find(NS + name)
        values.append("" if found is None else "".join(str(t) for t in found.itertext()).strip())
    return "\x1f".join(values).encode("utf-8")


def _derive(shared: bytes, ephemeral_point: bytes, recipient_fp: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_INFO + ephemeral_point + recipient_fp,
    )
    return hkdf.derive(shared)


def encrypt_envelope(root: etree._Element, recipient_cert: x509.Certificate) -> etree._Element:
    """Replace the body of the unsigned Envelope ``root`` by its ``EncryptedBody`` (in place)."""
    public = recipient_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ConfigError(
            "end-to-end encryption needs the recipient's P-256 certificate "
            f"({recipient_cert.subject.rfc4514_string()} has another key type)"
        )
    header, body = _parts(root)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    recipient_fp = key_id(public)
    key = _derive(ephemeral.exchange(ec.ECDH(), public), point, recipient_fp)
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = etree.tostring(body, encoding="UTF-8")
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(header))
    encrypted = etree.Element(ENCRYPTED_BODY)
    for name, value in (
        ("Algorithm", ALGORITHM),
        ("RecipientKey", recipient_fp.hex()),
        ("EphemeralKey", b64encode(point).decode("ascii")),
        ("Nonce", b64encode(nonce).decode("ascii")),
        ("CipherText", b64encode(ciphertext).decode("ascii")),
    ):
        etree.SubElement(encrypted, NS + name).text = value
    root.replace(body, encrypted)
    return root


def decrypt_envelope(
    root: etree._Element, keys: DecryptionKeys, *, max_bytes: int, max_depth: int
) -> etree._Element:
    """A copy of the verified Envelope ``root`` with its body decrypted, signature dropped.

    Raises :class:`SignatureError` when the body cannot be decrypted (wrong
    key, altered ciphertext or associated data) or is not one body element.
    """
    copy = etree.fromstring(etree.tostring(root), xmlsafe.parser())
    header, encrypted = _parts(copy)
    if encrypted.tag != ENCRYPTED_BODY:
        raise SignatureError("the body is not encrypted")

    def field(name: str) -> str:
        found = encrypted.find(NS + name)
        if found is None or not found.text:
            raise SignatureError(f"EncryptedBody has no {name}")
        return found.text.strip()

    if field("Algorithm") != ALGORITHM:
        raise SignatureError(f"EncryptedBody algorithm {field('Algorithm')[:40]!r} not allowed")
    key = keys.by_fingerprint.get(field("RecipientKey"))
    if key is None:
        raise SignatureError(
            "EncryptedBody is for a key this gateway does not hold "
            f"(key sha256:{field('RecipientKey')[:16]})"
        )
    try:
        point = b64decode(field("EphemeralKey"), validate=True)
        nonce = b64decode(field("Nonce"), validate=True)
        ciphertext = b64decode(field("CipherText"), validate=True)
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise SignatureError(f"EncryptedBody is malformed: {exc}") from exc
    if len(nonce) != _NONCE_BYTES:
        raise SignatureError("EncryptedBody nonce must be 12 bytes")
    derived = _derive(
        key.exchange(ec.ECDH(), ephemeral), point, bytes.fromhex(field("RecipientKey"))
    )
    try:
        plaintext = AESGCM(derived).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        raise SignatureError(
            "EncryptedBody does not decrypt (altered, or encrypted for another message)"
        ) from None
    body = xmlsafe.parse(plaintext, max_bytes=max_bytes, max_depth=max_depth)
    # As for the clear envelope (verifying.py): a comment may split text, and
    # nothing downstream should read a comment-split text differently.
    etree.strip_tags(body, etree.Comment)
    if not str(body.tag).startswith(NS):
        raise SignatureError("the decrypted body is not of namespace " + NAMESPACE)
    copy.replace(encrypted, body)
    for signature in copy.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        copy.remove(signature)
    return copy


def _parts(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    children = [c for c in root if isinstance(c.tag, str)]
    if len(children) < 2 or children[0].tag != NS + "Header":
        raise SignatureError("an Envelope needs a Header and a body")
    return children[0], children[1]
