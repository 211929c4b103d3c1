"""The only signature shape we accept, checked before any cryptography runs.

libxmlsec1 would verify far more than the design allows (several references,
``#id`` references, XPath and XSLT transforms, ``ds:Object``, keys named in
``KeyInfo``). Every rule of ``docs/security.md`` ("Verification rules") is
written out here, in our code, so that none depends on how a library is
configured:

- exactly one ``ds:Signature``, the last element child of ``Envelope``;
- inside it only ``SignedInfo``, ``SignatureValue`` and ``KeyInfo`` (no
  ``ds:Object``, where wrapping attacks hide a second document);
- ``SignedInfo`` holds exactly one ``CanonicalizationMethod`` (exclusive
  C14N), one ``SignatureMethod`` (``dsig.SIGNATURE_METHODS``) and one
  ``Reference``;
- the reference has ``URI=""`` (the whole document), exactly two transforms,
  enveloped-signature then exclusive C14N, and a SHA-256/384/512 digest.
  That chain is the one the verifier computes itself (``dsig``): a message
  that declares any other is refused, so what a message says it signed and
  what we digest are the same octets. For the same reason neither C14N may
  carry an ``InclusiveNamespaces`` that names a prefix (an empty
  ``PrefixList``, which some tools write, changes nothing);
- no element inside ``SignatureMethod``, ``DigestMethod``, ``DigestValue``
  or ``SignatureValue``;
- ``KeyInfo`` may hold only ``X509Data`` with certificates or their names
  (never ``RetrievalMethod``, ``KeyName`` or ``KeyValue``): the key always
  comes from the trust store.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64decode
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from gateway.envelope.dsig import (
    DIGEST_METHODS,
    DS,
    ENVELOPED,
    EXC_C14N,
    SIGNATURE_METHODS,
    SignatureMethod,
)
from gateway.errors import SignatureError

_SIGNATURE = f"{{{DS}}}Signature"
_SIGNATURE_PARTS = frozenset(f"{{{DS}}}{n}" for n in ("SignedInfo", "SignatureValue", "KeyInfo"))
_SIGNED_INFO_PARTS = frozenset(
    f"{{{DS}}}{n}" for n in ("CanonicalizationMethod", "SignatureMethod", "Reference")
)
_REFERENCE_PARTS = frozenset(f"{{{DS}}}{n}" for n in ("Transforms", "DigestMethod", "DigestValue"))
_X509_DATA = f"{{{DS}}}X509Data"
_INCLUSIVE_NAMESPACES = f"{{{EXC_C14N}}}InclusiveNamespaces"
_X509_PARTS = frozenset(
    f"{{{DS}}}{n}" for n in ("X509Certificate", "X509IssuerSerial", "X509SubjectName", "X509SKI")
)


@dataclass(frozen=True)
class Shape:
    """A signature that has the one allowed shape, with its parts read out."""

    signature: etree._Element
    signed_info: etree._Element
    method: SignatureMethod
    method_uri: str
    digest: Callable[[bytes], hashlib._Hash]
    """hashlib constructor of the reference's DigestMethod."""
    digest_value: bytes
    signature_value: bytes


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _children(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _one(parent: etree._Element, name: str, where: str) -> etree._Element:
    found = parent.findall(f"{{{DS}}}{name}")
    if len(found) != 1:
        raise SignatureError(
            f"{where}: expected exactly one {name} in {_local(parent)}, found {len(found)}"
        )
    return found[0]


def _base64(element: etree._Element, where: str) -> bytes:
    try:
        return b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{where}: {_local(element)} is not base64") from exc


def check_shape(root: etree._Element, where: str) -> Shape:
    """The signature of ``root`` if it has the allowed shape; SignatureError naming the rule."""
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise SignatureError(f"{where}: not signed (no ds:Signature)")
    last = _children(root)[-1]
    if len(signatures) > 1 or signatures[0] is not last:
        raise SignatureError(
            f"{where}: expected exactly one ds:Signature, as the last child of Envelope "
            f"(found {len(signatures)}, last child {_local(last)})"
        )
    signature = signatures[0]
    for part in _children(signature):
        if part.tag not in _SIGNATURE_PARTS:
            raise SignatureError(f"{where}: {_local(part)} not allowed in ds:Signature")
    info = _one(signature, "SignedInfo", where)
    value = _one(signature, "SignatureValue", where)
    for part in _children(info):
        if part.tag not in _SIGNED_INFO_PARTS:
            raise SignatureError(f"{where}: {_local(part)} not allowed in ds:SignedInfo")
    _check_key_info(signature, where)
    c14n_method = _one(info, "CanonicalizationMethod", where)
    _expect_algorithm(c14n_method, {EXC_C14N}, where)
    _expect_empty(c14n_method, where, c14n=True)
    method_el = _one(info, "SignatureMethod", where)
    method_uri = _expect_algorithm(method_el, set(SIGNATURE_METHODS), where)
    _expect_empty(method_el, where)
    references = info.findall(f"{{{DS}}}Reference")
    if len(references) != 1:
        raise SignatureError(f"{where}: expected exactly one reference, found {len(references)}")
    reference = references[0]
    if reference.get("URI") != "":
        raise SignatureError(
            f'{where}: the reference must cover the whole document (URI=""), '
            f"not {reference.get('URI')!r}"
        )
    for part in _children(reference):
        if part.tag not in _REFERENCE_PARTS:
            raise SignatureError(f"{where}: {_local(part)} not allowed in ds:Reference")
    _check_transforms(reference, where)
    digest_method = _one(reference, "DigestMethod", where)
    digest_uri = _expect_algorithm(digest_method, set(DIGEST_METHODS), where)
    digest_value = _one(reference, "DigestValue", where)
    # Elements inside a value would hide part of its text from _base64.
    for element in (digest_method, digest_value, value):
        _expect_empty(element, where)
    return Shape(
        signature=signature,
        signed_info=info,
        method=SIGNATURE_METHODS[method_uri],
        method_uri=method_uri,
        digest=DIGEST_METHODS[digest_uri],
        digest_value=_base64(digest_value, where),
        signature_value=_base64(value, where),
    )


def _check_transforms(reference: etree._Element, where: str) -> None:
    holders = reference.findall(f"{{{DS}}}Transforms")
    if len(holders) != 1:
        raise SignatureError(f"{where}: the reference lacks the enveloped-signature transform")
    transforms = _children(holders[0])
    algorithms = [t.get("Algorithm") for t in transforms]
    if any(t.tag != f"{{{DS}}}Transform" for t in transforms) or ENVELOPED not in algorithms:
        raise SignatureError(f"{where}: the reference lacks the enveloped-signature transform")
    for transform, algorithm in zip(transforms, algorithms, strict=True):
        if algorithm not in (ENVELOPED, EXC_C14N):
            raise SignatureError(f"{where}: transform {algorithm} not allowed")
        _expect_empty(transform, where, c14n=algorithm == EXC_C14N)
    if algorithms != [ENVELOPED, EXC_C14N]:
        raise SignatureError(
            f"{where}: the reference's transforms must be enveloped-signature then exclusive "
            f"C14N, once each (found {len(algorithms)}: {', '.join(map(str, algorithms))})"
        )


def _expect_empty(element: etree._Element, where: str, *, c14n: bool = False) -> None:
    """No element inside ``element``; in a C14N method (``c14n``), an
    ``InclusiveNamespaces`` that names no prefix (some tools write one): a prefix
    list would change the canonical form from the one the verifier computes."""
    for child in _children(element):
        no_prefix = not (child.get("PrefixList") or "").split()
        if c14n and child.tag == _INCLUSIVE_NAMESPACES and no_prefix:
            continue
        named = element.get("Algorithm")
        raise SignatureError(
            f"{where}: {_local(child)} not allowed in {_local(element)}"
            + (f" {named}" if named else "")
        )


def _check_key_info(signature: etree._Element, where: str) -> None:
    # KeyInfo may only name certificates: RetrievalMethod, KeyName or
    # KeyValue would invite fetching or trusting a key the message supplies.
    for info in signature.findall(f"{{{DS}}}KeyInfo"):
        for part in _children(info):
            if part.tag != _X509_DATA:
                raise SignatureError(f"{where}: {_local(part)} not allowed in ds:KeyInfo")
            for item in _children(part):
                if item.tag not in _X509_PARTS:
                    raise SignatureError(f"{where}: {_local(item)} not allowed in ds:X509Data")


def _expect_algorithm(element: etree._Element, allowed: set[str], where: str) -> str:
    algorithm = element.get("Algorithm")
    if algorithm not in allowed:
        raise SignatureError(f"{where}: {_local(element)} {algorithm} not allowed")
    return algorithm
