"""XMLDSig in C: the python-xmlsec (libxmlsec1) binding and the algorithms we allow.

python-xmlsec works on lxml's trees directly, so both must use the *same*
libxml2: a tree built by one libxml2 and read by another crashes the process
or worse. The wheels pinned together in ``requirements.lock`` (xmlsec 1.3.17
and lxml 6.1.3) both carry libxml2 2.14.6; :func:`check_libxml2` refuses to
start otherwise. xmlsec's exceptions are mapped into :mod:`gateway.errors`
here and in ``signing`` / ``verifying``, nowhere else.

Allowed, and nothing else: exclusive C14N (without comments) for
``SignedInfo`` and as the reference's last transform, the enveloped-signature
transform, SHA-256/384/512 digests, ECDSA on P-256 or RSA of at least 2048
bits with SHA-256/384/512. No SHA-1, no HMAC, no XPath or XSLT.

The one reference we allow (``URI=""``, enveloped-signature then exclusive
C14N) always means the same octets: the document without its signature, in
exclusive C14N. ``signing`` and ``verifying`` compute those octets and their
digest here, with libxml2's C14N (the code libxmlsec1 itself calls), and
libxmlsec1 signs and checks only ``SignedInfo`` (:func:`sign_signed_info`,
:func:`signed_info_verifies`). libxmlsec1 therefore runs no reference
transform at all: whatever a message declares, what is digested is fixed by
our code (``docs/security.md``, "Verification rules").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from lxml import etree
from xmlsec import constants as xs

from gateway.errors import ConfigError, SignatureError

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = xs.TransformExclC14N.href
ENVELOPED = xs.TransformEnveloped.href
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class SignatureMethod:
    """One allowed ``SignatureMethod``: its xmlsec transform and the key it needs."""

    transform: Any  # an xmlsec transform constant (xs.Transform...)
    key_kind: str  # "EC" or "RSA"


SIGNATURE_METHODS: dict[str, SignatureMethod] = {
    t.href: SignatureMethod(t, kind)
    for t, kind in (
        (xs.TransformEcdsaSha256, "EC"),
        (xs.TransformEcdsaSha384, "EC"),
        (xs.TransformEcdsaSha512, "EC"),
        (xs.TransformRsaSha256, "RSA"),
        (xs.TransformRsaSha384, "RSA"),
        (xs.TransformRsaSha512, "RSA"),
    )
}
DIGEST_METHODS: dict[str, Callable[[bytes], hashlib._Hash]] = {
    xs.TransformSha256.href: hashlib.sha256,
    xs.TransformSha384.href: hashlib.sha384,
    xs.TransformSha512.href: hashlib.sha512,
}


def libxml2_mismatch(
    lxml_version: str,
    lxml_libxml2: tuple[tuple[int, ...], tuple[int, ...]],
    xmlsec_version: str,
    xmlsec_libxml2: tuple[tuple[int, ...], tuple[int, ...]],
) -> str | None:
    """Why lxml and python-xmlsec may not share trees, or None when they may.

    Each ``*_libxml2`` is (runtime, compiled-against) libxml2 version.
    """
    if len({*lxml_libxml2, *xmlsec_libxml2}) == 1:
        return None

    def show(v: tuple[int, ...]) -> str:
        return ".".join(map(str, v))

    return (
        f"python-xmlsec {xmlsec_version} uses libxml2 {show(xmlsec_libxml2[0])} "
        f"(built against {show(xmlsec_libxml2[1])}) but lxml {lxml_version} uses libxml2 "
        f"{show(lxml_libxml2[0])} (built against {show(lxml_libxml2[1])}); they must use the "
        "same libxml2 or signing and verification corrupt memory. Install the pair pinned "
        "together in requirements.lock (make, or pip install -r requirements.lock), or build "
        "both against the system libxml2: pip install --no-binary lxml,xmlsec "
        f"lxml=={lxml_version} xmlsec=={xmlsec_version}"
    )


@lru_cache(maxsize=1)
def check_libxml2() -> None:
    """Refuse to sign or verify when lxml and python-xmlsec use different libxml2 builds."""
    problem = libxml2_mismatch(
        metadata.version("lxml"),
        (etree.LIBXML_VERSION, etree.LIBXML_COMPILED_VERSION),
        metadata.version("xmlsec"),
        (xmlsec.get_libxml_version(), xmlsec.get_libxml_compiled_version()),
    )
    if problem is not None:
        raise ConfigError(problem)


def key_kind(key: object, where: str) -> str:
    """``"EC"`` (P-256) or ``"RSA"`` (2048 bits or more); anything else is refused."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SignatureError(f"{where}: EC key on {key.curve.name}; only P-256 is allowed")
        return "EC"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise SignatureError(
                f"{where}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required"
            )
        return "RSA"
    raise SignatureError(f"{where}: {type(key).__name__} keys are not allowed (ECDSA or RSA)")


def private_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> xmlsec.Key:
    """The xmlsec form of a signing key: the bare key, no certificate.

    A key with a certificate attached costs xmlsec a copy of the certificate
    on every use (about 0.1 ms); the certificate goes into KeyInfo by hand.
    """
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return xmlsec.Key.from_memory(pem, xs.KeyDataFormatPem)


@lru_cache(maxsize=256)
def public_key(certificate: x509.Certificate) -> tuple[xmlsec.Key, str]:
    """The xmlsec form of a pinned certificate's key, and its kind (``key_kind``).

    Only the bare public key: xmlsec never sees the certificate, so nothing
    in it (or in the message's KeyInfo) can stand in for the pin.
    """
    pub = certificate.public_key()
    kind = key_kind(pub, f"pinned certificate {certificate.subject.rfc4514_string()}")
    pem = pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return xmlsec.Key.from_memory(pem, xs.KeyDataFormatPem), kind


def sign_signed_info(key: xmlsec.Key, method: Any, signed_info: etree._Element) -> bytes:
    """``key``'s signature (``method``, an xmlsec transform) over ``signed_info`` in exclusive C14N.

    ECDSA values come back as XMLDSig wants them (r || s), not DER.
    """
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    return bytes(ctx.sign_binary(c14n(signed_info), method))


def signed_info_verifies(
    key: xmlsec.Key, method: SignatureMethod, octets: bytes, value: bytes
) -> bool:
    """Whether ``value`` is ``key``'s ``method`` signature over ``octets``, the
    ``SignedInfo`` in exclusive C14N (``c14n``).

    Only these octets reach libxmlsec1; the reference's digest is checked by
    the caller, over content it canonicalised itself.
    """
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    try:
        ctx.verify_binary(octets, method.transform, value)
    except xmlsec.Error:
        return False
    return True


def c14n(element: etree._Element, where: str = "document") -> bytes:
    """Exclusive C14N without comments: the form every signed octet is in.

    SignatureError naming ``where`` when the tree has none (C14N refuses a
    relative namespace URI such as ``xmlns:x="rel"``).
    """
    try:
        return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))
    except etree.C14NError as exc:
        raise SignatureError(
            f"{where}: {etree.QName(element).localname} cannot be put in exclusive C14N "
            f"(a relative namespace URI?): {exc}"
        ) from exc
