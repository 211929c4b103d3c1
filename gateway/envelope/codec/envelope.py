"""The ``Envelope``: its header, and which body codec reads or writes the body.

The public entry points of the codec (re-exported by ``gateway.envelope.codec``).
A trailing ``ds:Signature`` is ignored when decoding; signing is
``gateway.envelope.signing``'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from lxml import etree

from gateway.cpu_budget import BUDGET
from gateway.envelope import xmlsafe
from gateway.envelope.codec.assessment import read_assessment, write_assessment
from gateway.envelope.codec.bodies import (
    read_consent_change,
    read_evaluation,
    read_issue_log_entry,
    read_notification,
    read_receipt,
    write_consent_change,
    write_evaluation,
    write_issue_log_entry,
    write_notification,
    write_receipt,
)
from gateway.envelope.codec.canonical import DECLARATION, Canonical, NotPlain
from gateway.envelope.codec.dispute import read_dispute, write_dispute
from gateway.envelope.codec.lifecycle import (
    read_access_notice,
    read_correction,
    read_erasure_request,
    read_recall,
    write_access_notice,
    write_correction,
    write_erasure_request,
    write_recall,
)
from gateway.envelope.codec.xml import (
    NS,
    Fields,
    parse_instant,
    problem,
    put,
    put_instant,
    sub,
)
from gateway.errors import SchemaError
from gateway.model import (
    BODY_TYPE,
    NAMESPACE,
    AccessNotice,
    Assessment,
    Body,
    ConsentChange,
    Correction,
    Dispute,
    Envelope,
    ErasureRequest,
    Evaluation,
    Header,
    IssueLogEntry,
    LegalBasis,
    MessageType,
    Notification,
    Purpose,
    Recall,
    Safeguarding,
)

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
# Default namespace, no prefix. Typed Any: lxml-stubs wrongly refuse a None key.
_NSMAP: Any = {None: NAMESPACE}
_SIGNATURE = "{" + DSIG_NS + "}Signature"


_READERS: dict[str, Callable[[etree._Element], Body]] = {
    MessageType.ASSESSMENT: read_assessment,
    MessageType.CONSENT_CHANGE: read_consent_change,
    MessageType.NOTIFICATION: read_notification,
    MessageType.DISPUTE: read_dispute,
    MessageType.ISSUE_LOG_ENTRY: read_issue_log_entry,
    MessageType.EVALUATION: read_evaluation,
    MessageType.RECEIPT: read_receipt,
    MessageType.RECALL: read_recall,
    MessageType.CORRECTION: read_correction,
    MessageType.ACCESS_NOTICE: read_access_notice,
    MessageType.ERASURE_REQUEST: read_erasure_request,
}


# --- encoding -------------------------------------------------------------------


@BUDGET.stage("codec")
def envelope_to_element(env: Envelope) -> etree._Element:
    """The unsigned ``Envelope`` element of a message."""
    root = etree.Element(NS + "Envelope", nsmap=_NSMAP)
    _write_header(sub(root, "Header"), env.header)
    _write_body(sub(root, _body_name(env.body)), env.body)
    return root


def envelope_to_bytes(env: Envelope) -> bytes:
    """The unsigned message as UTF-8 XML with a declaration; same envelope, same bytes."""
    data: bytes = etree.tostring(envelope_to_element(env), xml_declaration=True, encoding="UTF-8")
    return data


@BUDGET.stage("codec")
def written_envelope(env: Envelope) -> tuple[etree._Element, bytes]:
    """``envelope_to_element``'s element, and ``body_octets`` of its body, from one
    writing of the message in C14N (``canonical``); ``NotPlain`` where only lxml may
    write it, and then nothing is written.

    The element is lxml's parse of the Envelope's octets: the tree
    ``envelope_to_element`` builds, for less (issue 14: the 5 KB example Assessment
    and its content digest 0.20 ms with lxml, 0.14 ms so), since the writing in C14N
    is plain string work and libxml2 builds the tree in C. The two trees are the
    same but for what XML does not tell apart (attributes in name order, an empty
    element's text None rather than ""): their C14N, which the signature covers,
    is the same octets (``tests/unit/test_written_envelope.py``).
    """
    header = Canonical("Header")
    # mypy checks the writers against lxml's element, not Canonical (see body_octets).
    _write_header(cast(etree._Element, header), env.header)
    name = _body_name(env.body)
    body = Canonical(name)
    _write_body(cast(etree._Element, body), env.body)
    inner = body.written()
    document = f"<Envelope{DECLARATION}>{header.written()}{inner}</Envelope>"
    # Our own octets, in C14N: nothing from a peer. The hardened parser all the same;
    # what it will not take (a text node past libxml2's 10 MB) is left to lxml's writing.
    try:
        root = etree.fromstring(document.encode(), xmlsafe.parser())
    except etree.XMLSyntaxError as exc:
        raise NotPlain("refused by the parser") from exc
    # The body as the root of its own document: the namespace declared in its start tag.
    alone = f"<{name}{DECLARATION}{inner[len(name) + 1 :]}"
    return root, alone.encode()


def body_to_element(body: Body) -> etree._Element:
    """A body on its own, as the root element of a document (for display and tests)."""
    el = etree.Element(NS + _body_name(body), nsmap=_NSMAP)
    _write_body(el, body)
    return el


def body_octets(body: Body) -> bytes:
    """``body_to_element``'s document in C14N 1.0, written without building it
    (``canonical``); ``NotPlain`` where only lxml may write it."""
    el = Canonical(_body_name(body))
    # mypy checks the writers against lxml's element, not Canonical;
    # tests/unit/test_canonical_body.py does, at run time, for every message type.
    _write_body(cast(etree._Element, el), body)
    return el.octets()


def _body_name(body: Body) -> str:
    try:
        return str(BODY_TYPE[type(body)])
    except KeyError:
        raise SchemaError([f"/Envelope: {type(body).__name__} is not a message body"]) from None


def _write_body(el: etree._Element, body: Body) -> None:
    if isinstance(body, Assessment):
        write_assessment(el, body)
    elif isinstance(body, ConsentChange):
        write_consent_change(el, body)
    elif isinstance(body, Notification):
        write_notification(el, body)
    elif isinstance(body, Dispute):
        write_dispute(el, body)
    elif isinstance(body, IssueLogEntry):
        write_issue_log_entry(el, body)
    elif isinstance(body, Evaluation):
        write_evaluation(el, body)
    elif isinstance(body, Recall):
        write_recall(el, body)
    elif isinstance(body, Correction):
        write_correction(el, body)
    elif isinstance(body, AccessNotice):
        write_access_notice(el, body)
    elif isinstance(body, ErasureRequest):
        write_erasure_request(el, body)
    else:
        write_receipt(el, body)


def _write_header(el: etree._Element, h: Header) -> None:
    put(el, "MessageId", h.message_id)
    put(el, "CorrelationId", h.correlation_id)
    put(el, "InReplyTo", h.in_reply_to)
    put(el, "MessageType", str(h.message_type))
    put(el, "Sender", h.sender)
    put(el, "Recipient", h.recipient)
    put_instant(el, "CreatedAt", h.created_at)
    put(el, "SchemaVersion", h.schema_version)
    put(el, "LegalBasis", str(h.legal_basis))
    put(el, "Purpose", None if h.purpose is None else str(h.purpose))
    put(el, "ConsentRef", h.consent_ref)
    if h.safeguarding is not None:
        sg = sub(el, "Safeguarding")
        put(sg, "Approver", h.safeguarding.approver)
        put(sg, "ApproverRole", h.safeguarding.approver_role)
        put(sg, "Reason", h.safeguarding.reason)


# --- decoding -------------------------------------------------------------------


@BUDGET.stage("codec")
def element_to_envelope(root: etree._Element) -> Envelope:
    """The message an ``Envelope`` element carries; a trailing ds:Signature is ignored."""
    header_el, body_el = _envelope_parts(root)
    header = _read_header(header_el)
    body = body_from_element(body_el)
    try:
        return Envelope(header=header, body=body)
    except ValueError as exc:
        raise problem(header_el, str(exc), "MessageType") from None


def header_from_element(root: etree._Element) -> Header:
    """The header of an ``Envelope`` element (or of a ``Header`` element), body unread."""
    if root.tag == NS + "Header":
        return _read_header(root)
    header_el, _ = _envelope_parts(root)
    return _read_header(header_el)


def body_from_element(el: etree._Element) -> Body:
    """The body a body element (``Assessment``, ``Receipt``, ...) carries."""
    tag = el.tag
    name = tag[len(NS) :] if isinstance(tag, str) and tag.startswith(NS) else ""
    reader = _READERS.get(name)
    if reader is None and name == "EncryptedBody":
        raise problem(el, "the body is encrypted: decrypt it (gateway.envelope.encryption) first")
    if reader is None:
        raise problem(el, "not a message body of " + NAMESPACE)
    return reader(el)


def _envelope_parts(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    if root.tag != NS + "Envelope":
        raise problem(root, f"the root element must be Envelope of namespace {NAMESPACE}")
    children = [c for c in root if isinstance(c.tag, str)]
    if children and children[-1].tag == _SIGNATURE:
        children.pop()
    for child in children:
        if not str(child.tag).startswith(NS):
            raise problem(child, "element of an unexpected namespace here")
    if not children or children[0].tag != NS + "Header":
        raise problem(root, "required element is missing", "Header")
    if len(children) == 1:
        raise problem(root, "the message body is missing", "(body)")
    if len(children) > 2:
        raise problem(children[2], "an Envelope carries exactly one body")
    return children[0], children[1]


def _read_header(el: etree._Element) -> Header:
    f = Fields(el)
    header = Header(
        message_id=f.text("MessageId"),
        correlation_id=f.text("CorrelationId"),
        in_reply_to=f.opt_text("InReplyTo"),
        message_type=f.enum("MessageType", MessageType),
        sender=f.text("Sender"),
        recipient=f.text("Recipient"),
        created_at=f.conv("CreatedAt", parse_instant),
        schema_version=f.text("SchemaVersion"),
        legal_basis=f.enum("LegalBasis", LegalBasis),
        purpose=f.opt_enum("Purpose", Purpose),
        consent_ref=f.opt_text("ConsentRef"),
        safeguarding=f.opt_conv("Safeguarding", _read_safeguarding),
    )
    f.done()
    return header


def _read_safeguarding(el: etree._Element) -> Safeguarding:
    f = Fields(el)
    safeguarding = Safeguarding(
        approver=f.text("Approver"),
        approver_role=f.opt_text("ApproverRole"),
        reason=f.text("Reason"),
    )
    f.done()
    return safeguarding
