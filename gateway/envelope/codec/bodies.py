"""Codec of the small bodies: ConsentChange, Notification, IssueLogEntry, Evaluation, Receipt.

Each has a ``write_x(el, body)`` and a ``read_x(el)``; ``Assessment`` and
``Dispute`` have modules of their own.
"""

from __future__ import annotations

from lxml import etree

from gateway.envelope.codec.parts import read_child, read_consent, write_child, write_consent
from gateway.envelope.codec.xml import (
    NS,
    Fields,
    attr,
    fmt_date,
    fmt_int,
    items,
    parse_date,
    parse_instant,
    parse_int,
    problem,
    put,
    put_attr,
    put_instant,
    sub,
)
from gateway.model import (
    ActionTaken,
    Audience,
    AuditHead,
    ConsentAction,
    ConsentChange,
    Detail,
    Evaluation,
    HeldAuditHead,
    IssueKind,
    IssueLogEntry,
    Notification,
    NotificationType,
    PractitionerView,
    Receipt,
    ReceiptItem,
    ReceiptOutcome,
)

# --- ConsentChange --------------------------------------------------------------


def write_consent_change(el: etree._Element, body: ConsentChange) -> None:
    """Fill a ``ConsentChange`` element."""
    put(el, "CaseRef", body.case_ref)
    put(el, "Action", str(body.action))
    write_child(sub(el, "Child"), body.child)
    write_consent(sub(el, "Consent"), body.consent)


def read_consent_change(el: etree._Element) -> ConsentChange:
    """Decode a ``ConsentChange`` element."""
    f = Fields(el)
    body = ConsentChange(
        case_ref=f.text("CaseRef"),
        action=f.enum("Action", ConsentAction),
        child=f.conv("Child", read_child),
        consent=f.conv("Consent", read_consent),
    )
    f.done()
    return body


# --- Notification ---------------------------------------------------------------


def write_notification(el: etree._Element, body: Notification) -> None:
    """Fill a ``Notification`` element."""
    put(el, "Type", str(body.type))
    put(el, "CaseRef", body.case_ref)
    put(el, "Audience", str(body.audience))
    put(el, "Summary", body.summary)
    put(el, "Language", body.language)
    if body.child is not None:
        write_child(sub(el, "Child"), body.child)
    if body.details:
        details = sub(el, "Details")
        for detail in body.details:
            put(details, "Detail", detail.value)
            put_attr(details[-1], "name", detail.name)


def read_notification(el: etree._Element) -> Notification:
    """Decode a ``Notification`` element."""
    f = Fields(el)
    body = Notification(
        type=f.enum("Type", NotificationType),
        case_ref=f.opt_text("CaseRef"),
        audience=f.enum("Audience", Audience),
        summary=f.text("Summary"),
        language=f.opt_text("Language"),
        child=f.opt_conv("Child", read_child),
        details=tuple(
            Detail(name=attr(d, "name"), value=d.text or "")
            for d in items(f.opt("Details"), "Detail")
        ),
    )
    f.done()
    return body


# --- IssueLogEntry --------------------------------------------------------------


def write_issue_log_entry(el: etree._Element, body: IssueLogEntry) -> None:
    """Fill an ``IssueLogEntry`` element."""
    put(el, "EntryId", body.entry_id)
    put(el, "Kind", str(body.kind))
    put(el, "ReportedByLA", body.reported_by_la)
    put(el, "ConcernsLA", body.concerns_la)
    put(el, "RaisedOn", fmt_date(body.raised_on))
    put(el, "Description", body.description)


def read_issue_log_entry(el: etree._Element) -> IssueLogEntry:
    """Decode an ``IssueLogEntry`` element."""
    f = Fields(el)
    body = IssueLogEntry(
        entry_id=f.text("EntryId"),
        kind=f.enum("Kind", IssueKind),
        reported_by_la=f.text("ReportedByLA"),
        concerns_la=f.opt_text("ConcernsLA"),
        raised_on=f.conv("RaisedOn", parse_date),
        description=f.text("Description"),
    )
    f.done()
    return body


# --- Evaluation -----------------------------------------------------------------


def write_evaluation(el: etree._Element, body: Evaluation) -> None:
    """Fill an ``Evaluation`` element."""
    put(el, "CaseRef", body.case_ref)
    put(el, "ChildViews", body.child_views)
    put(el, "FamilyViews", body.family_views)
    if body.practitioner_views:
        views = sub(el, "PractitionerViews")
        for view in body.practitioner_views:
            vel = sub(views, "PractitionerView")
            put(vel, "Name", view.name)
            put(vel, "LA", view.la_code)
            put(vel, "Views", view.views)
    put(el, "CrossBorderImpact", body.cross_border_impact)


def read_evaluation(el: etree._Element) -> Evaluation:
    """Decode an ``Evaluation`` element."""
    f = Fields(el)
    body = Evaluation(
        case_ref=f.text("CaseRef"),
        child_views=f.opt_text("ChildViews"),
        family_views=f.opt_text("FamilyViews"),
        practitioner_views=tuple(
            _read_view(v) for v in items(f.opt("PractitionerViews"), "PractitionerView")
        ),
        cross_border_impact=f.opt_text("CrossBorderImpact"),
    )
    f.done()
    return body


def _read_view(el: etree._Element) -> PractitionerView:
    f = Fields(el)
    view = PractitionerView(name=f.text("Name"), la_code=f.opt_text("LA"), views=f.text("Views"))
    f.done()
    return view


# --- Receipt --------------------------------------------------------------------


def write_receipt(el: etree._Element, body: Receipt) -> None:
    """Fill a ``Receipt`` element."""
    for item in body.items:
        iel = sub(el, "Item")
        put(iel, "MessageId", item.message_id)
        put(iel, "Digest", item.digest)
        put(iel, "Outcome", str(item.outcome))
        put(iel, "Reason", item.reason)
        put(iel, "Action", None if item.action is None else str(item.action))
        put_instant(iel, "HandedOverAt", item.handed_over_at)
    if body.audit_head is not None:
        hel = sub(el, "AuditHead")
        put(hel, "Seq", fmt_int(body.audit_head.seq))
        put(hel, "Hash", body.audit_head.hash)
    for held in body.held_heads:
        hel = sub(el, "HeldAuditHead")
        put(hel, "Seq", fmt_int(held.seq))
        put(hel, "Hash", held.hash)
        put(hel, "ReportedIn", held.reported_in)


def read_receipt(el: etree._Element) -> Receipt:
    """Decode a ``Receipt`` element."""
    found: list[ReceiptItem] = []
    head: AuditHead | None = None
    held: list[HeldAuditHead] = []
    for child in el:
        if not isinstance(child.tag, str):
            continue
        name = child.tag[len(NS) :] if child.tag.startswith(NS) else ""
        if name == "AuditHead" and head is None and not held:
            f = Fields(child)
            head = AuditHead(seq=f.conv("Seq", parse_int), hash=f.text("Hash"))
            f.done()
        elif name == "HeldAuditHead":
            f = Fields(child)
            held.append(
                HeldAuditHead(
                    seq=f.conv("Seq", parse_int),
                    hash=f.text("Hash"),
                    reported_in=f.text("ReportedIn"),
                )
            )
            f.done()
        elif name == "Item" and head is None and not held:
            found.append(_read_receipt_item(child))
        else:
            raise problem(child, "unexpected element in Receipt")
    return Receipt(items=tuple(found), audit_head=head, held_heads=tuple(held))


def _read_receipt_item(el: etree._Element) -> ReceiptItem:
    f = Fields(el)
    item = ReceiptItem(
        message_id=f.text("MessageId"),
        digest=f.text("Digest"),
        outcome=f.enum("Outcome", ReceiptOutcome),
        reason=f.opt_text("Reason"),
        action=f.opt_enum("Action", ActionTaken),
        handed_over_at=f.opt_conv("HandedOverAt", parse_instant),
    )
    f.done()
    return item
