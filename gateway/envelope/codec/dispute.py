"""Codec of the ``Dispute`` body: parties with their line managers, stage, history."""

from __future__ import annotations

from lxml import etree

from gateway.envelope.codec.xml import (
    Fields,
    fmt_bool,
    items,
    parse_bool,
    parse_instant,
    put,
    put_instant,
    sub,
)
from gateway.model import (
    Dispute,
    DisputeAction,
    DisputeEvent,
    DisputeParty,
    DisputeStage,
    LineManager,
)


def write_dispute(el: etree._Element, body: Dispute) -> None:
    """Fill a ``Dispute`` element."""
    put(el, "DisputeId", body.dispute_id)
    put(el, "CaseRef", body.case_ref)
    put(el, "Subject", body.subject)
    put(el, "Asked", body.asked)
    _write_party(sub(el, "RaisedBy"), body.raised_by)
    _write_party(sub(el, "Against"), body.against)
    put(el, "Stage", str(body.stage))
    put_instant(el, "Deadline", body.deadline)
    if body.history:
        history = sub(el, "History")
        for event in body.history:
            hel = sub(history, "Event")
            put_instant(hel, "At", event.at)
            put(hel, "Action", str(event.action))
            put(hel, "By", event.by)
            put(hel, "Stage", str(event.stage))
            put(hel, "Text", event.text)
    put(el, "Outcome", body.outcome)
    put(el, "InterimArrangement", body.interim_arrangement)
    put(el, "Resolved", fmt_bool(body.resolved))


def read_dispute(el: etree._Element) -> Dispute:
    """Decode a ``Dispute`` element."""
    f = Fields(el)
    body = Dispute(
        dispute_id=f.text("DisputeId"),
        case_ref=f.text("CaseRef"),
        subject=f.text("Subject"),
        asked=f.text("Asked"),
        raised_by=f.conv("RaisedBy", _read_party),
        against=f.conv("Against", _read_party),
        stage=f.enum("Stage", DisputeStage),
        deadline=f.opt_conv("Deadline", parse_instant),
        history=tuple(_read_dispute_event(e) for e in items(f.opt("History"), "Event")),
        outcome=f.opt_text("Outcome"),
        interim_arrangement=f.opt_text("InterimArrangement"),
        resolved=f.conv("Resolved", parse_bool),
    )
    f.done()
    return body


def _write_party(el: etree._Element, party: DisputeParty) -> None:
    put(el, "Name", party.name)
    put(el, "Role", party.role)
    put(el, "Organisation", party.organisation)
    put(el, "LA", party.la_code)
    manager = sub(el, "LineManager")
    put(manager, "Name", party.line_manager.name)
    put(manager, "Role", party.line_manager.role)
    put(manager, "Email", party.line_manager.email)


def _read_party(el: etree._Element) -> DisputeParty:
    f = Fields(el)
    party = DisputeParty(
        name=f.text("Name"),
        role=f.opt_text("Role"),
        organisation=f.opt_text("Organisation"),
        la_code=f.text("LA"),
        line_manager=f.conv("LineManager", _read_line_manager),
    )
    f.done()
    return party


def _read_line_manager(el: etree._Element) -> LineManager:
    f = Fields(el)
    manager = LineManager(name=f.text("Name"), role=f.opt_text("Role"), email=f.opt_text("Email"))
    f.done()
    return manager


def _read_dispute_event(el: etree._Element) -> DisputeEvent:
    f = Fields(el)
    event = DisputeEvent(
        at=f.conv("At", parse_instant),
        action=f.enum("Action", DisputeAction),
        by=f.text("By"),
        stage=f.enum("Stage", DisputeStage),
        text=f.opt_text("Text"),
    )
    f.done()
    return event
