"""Codec of the data-protection lifecycle bodies: Recall, Correction, AccessNotice,
ErasureRequest (and the message references they share).

A Correction carries a whole replacement body; the replacement's own codec
(assessment or bodies) writes and reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from gateway.envelope.codec.assessment import read_assessment, write_assessment
from gateway.envelope.codec.bodies import (
    read_consent_change,
    read_evaluation,
    read_notification,
    write_consent_change,
    write_evaluation,
    write_notification,
)
from gateway.envelope.codec.xml import (
    NS,
    Fields,
    items,
    parse_enum,
    parse_instant,
    problem,
    put,
    put_instant,
    sub,
)
from gateway.model import (
    AccessEvent,
    AccessKind,
    AccessNotice,
    Assessment,
    ConsentChange,
    Correction,
    ErasureGround,
    ErasureRequest,
    Evaluation,
    MessageRef,
    Notification,
    Recall,
    RecallReason,
)

# --- shared ----------------------------------------------------------------------


def write_ref(el: etree._Element, ref: MessageRef) -> None:
    put(el, "MessageId", ref.message_id)
    put(el, "Digest", ref.digest)


def read_ref(el: etree._Element) -> MessageRef:
    f = Fields(el)
    ref = MessageRef(message_id=f.text("MessageId"), digest=f.text("Digest"))
    f.done()
    return ref


# --- Recall -----------------------------------------------------------------------


def write_recall(el: etree._Element, body: Recall) -> None:
    """Fill a ``Recall`` element."""
    write_ref(sub(el, "Original"), body.original)
    put(el, "Reason", str(body.reason))
    put(el, "Explanation", body.explanation)
    if body.follows is not None:
        write_ref(sub(el, "Follows"), body.follows)


def read_recall(el: etree._Element) -> Recall:
    """Decode a ``Recall`` element."""
    f = Fields(el)
    body = Recall(
        original=f.conv("Original", read_ref),
        reason=f.enum("Reason", RecallReason),
        explanation=f.opt_text("Explanation"),
        follows=f.opt_conv("Follows", read_ref),
    )
    f.done()
    return body


# --- Correction -------------------------------------------------------------------

Replacement = Assessment | ConsentChange | Notification | Evaluation


def write_correction(el: etree._Element, body: Correction) -> None:
    """Fill a ``Correction`` element."""
    write_ref(sub(el, "Original"), body.original)
    put(el, "Explanation", body.explanation)
    holder = sub(el, "Replacement")
    new = body.replacement
    if isinstance(new, Assessment):
        write_assessment(sub(holder, "Assessment"), new)
    elif isinstance(new, ConsentChange):
        write_consent_change(sub(holder, "ConsentChange"), new)
    elif isinstance(new, Notification):
        write_notification(sub(holder, "Notification"), new)
    else:
        write_evaluation(sub(holder, "Evaluation"), new)


def _read_replacement(el: etree._Element) -> Replacement:
    children = [c for c in el if isinstance(c.tag, str)]
    if len(children) != 1:
        raise problem(el, "a Replacement holds exactly one body")
    child = children[0]
    readers: dict[str, Callable[[etree._Element], Replacement]] = {
        NS + "Assessment": read_assessment,
        NS + "ConsentChange": read_consent_change,
        NS + "Notification": read_notification,
        NS + "Evaluation": read_evaluation,
    }
    reader = readers.get(str(child.tag))
    if reader is None:
        raise problem(child, "not a body a Correction may carry")
    return reader(child)


def read_correction(el: etree._Element) -> Correction:
    """Decode a ``Correction`` element."""
    f = Fields(el)
    body = Correction(
        original=f.conv("Original", read_ref),
        explanation=f.text("Explanation"),
        replacement=f.conv("Replacement", _read_replacement),
    )
    f.done()
    return body


# --- AccessNotice -----------------------------------------------------------------


def write_access_notice(el: etree._Element, body: AccessNotice) -> None:
    """Fill an ``AccessNotice`` element."""
    for event in body.events:
        eel = sub(el, "Event")
        put(eel, "MessageId", event.message_id)
        put(eel, "Digest", event.digest)
        put_instant(eel, "At", event.at)
        put(eel, "Kind", str(event.kind))
        put(eel, "By", event.by)


def _read_event(el: etree._Element) -> AccessEvent:
    f = Fields(el)
    event = AccessEvent(
        message_id=f.text("MessageId"),
        digest=f.text("Digest"),
        at=f.conv("At", parse_instant),
        kind=f.enum("Kind", AccessKind),
        by=f.opt_text("By"),
    )
    f.done()
    return event


def read_access_notice(el: etree._Element) -> AccessNotice:
    """Decode an ``AccessNotice`` element."""
    return AccessNotice(events=tuple(_read_event(e) for e in items(el, "Event")))


# --- ErasureRequest ---------------------------------------------------------------


def write_erasure_request(el: etree._Element, body: ErasureRequest) -> None:
    """Fill an ``ErasureRequest`` element."""
    put(el, "RequestRef", body.request_ref)
    put(el, "Ground", str(body.ground))
    for ref in body.messages:
        write_ref(sub(el, "Message"), ref)


def read_erasure_request(el: etree._Element) -> ErasureRequest:
    """Decode an ``ErasureRequest`` element (RequestRef, Ground, then Message repeated)."""
    children = [c for c in el if isinstance(c.tag, str)]
    head = children[:2]
    if [c.tag for c in head] != [NS + "RequestRef", NS + "Ground"]:
        raise problem(el, "expected RequestRef then Ground")
    refs = []
    for child in children[2:]:
        if child.tag != NS + "Message":
            raise problem(child, "unexpected element, expected Message")
        refs.append(read_ref(child))
    if not refs:
        raise problem(el, "required element is missing", "Message")
    return ErasureRequest(
        request_ref=head[0].text or "",
        ground=parse_enum(head[1], ErasureGround),
        messages=tuple(refs),
    )
