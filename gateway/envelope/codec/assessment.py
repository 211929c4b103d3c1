"""Codec of the ``Assessment`` body: elements, plan, lead professionals, TAC, events, flags."""

from __future__ import annotations

from lxml import etree

from gateway.envelope.codec.parts import (
    read_carer,
    read_child,
    read_consent,
    read_practitioner,
    write_carer,
    write_child,
    write_consent,
    write_practitioner,
)
from gateway.envelope.codec.plan import (
    read_action,
    read_element_assessment,
    read_lead_professional,
    read_tac_meeting,
    write_action,
    write_element_assessment,
    write_tac_meeting,
)
from gateway.envelope.codec.xml import (
    Fields,
    fmt_bool,
    fmt_date,
    items,
    parse_bool,
    parse_date,
    parse_instant,
    put,
    put_instant,
    sub,
)
from gateway.model import (
    Assessment,
    CaseEvent,
    CaseStatus,
    ConsentScope,
    EventType,
    Flag,
    FlagCode,
    Outcome,
)


def write_assessment(el: etree._Element, a: Assessment) -> None:
    """Fill an ``Assessment`` element."""
    put(el, "CaseRef", a.case_ref)
    put(el, "Status", str(a.status))
    put(el, "StartedOn", fmt_date(a.started_on))
    put(el, "CompletedOn", fmt_date(a.completed_on))
    put(el, "SourceSystem", a.source_system)
    write_child(sub(el, "Child"), a.child)
    if a.carers:
        carers = sub(el, "Carers")
        for carer in a.carers:
            write_carer(sub(carers, "Carer"), carer)
    if a.initiator is not None:
        write_practitioner(sub(el, "Initiator"), a.initiator)
    if a.consent is not None:
        write_consent(sub(el, "Consent"), a.consent)
    if a.elements:
        elements = sub(el, "Elements")
        for ea in a.elements:
            write_element_assessment(sub(elements, "Element"), ea)
    put(el, "Strengths", a.strengths)
    put(el, "Needs", a.needs)
    put(el, "ChildViews", a.child_views)
    put(el, "Outcome", None if a.outcome is None else str(a.outcome))
    if a.actions:
        actions = sub(el, "Actions")
        for action in a.actions:
            write_action(sub(actions, "Action"), action)
    if a.lead_professionals:
        leads = sub(el, "LeadProfessionals")
        for period in a.lead_professionals:
            lel = sub(leads, "LeadProfessional")
            write_practitioner(sub(lel, "Practitioner"), period.practitioner)
            put(lel, "FromDate", fmt_date(period.from_date))
            put(lel, "ToDate", fmt_date(period.to_date))
    if a.tac_meetings:
        meetings = sub(el, "TacMeetings")
        for meeting in a.tac_meetings:
            write_tac_meeting(sub(meetings, "TacMeeting"), meeting)
    if a.events:
        events = sub(el, "Events")
        for event in a.events:
            _write_event(sub(events, "Event"), event)
    if a.flags:
        flags = sub(el, "Flags")
        for flag in a.flags:
            _write_flag(sub(flags, "Flag"), flag)


def read_assessment(el: etree._Element) -> Assessment:
    """Decode an ``Assessment`` element."""
    f = Fields(el)
    assessment = Assessment(
        case_ref=f.text("CaseRef"),
        status=f.enum("Status", CaseStatus),
        started_on=f.opt_conv("StartedOn", parse_date),
        completed_on=f.opt_conv("CompletedOn", parse_date),
        source_system=f.opt_text("SourceSystem"),
        child=f.conv("Child", read_child),
        carers=tuple(read_carer(c) for c in items(f.opt("Carers"), "Carer")),
        initiator=f.opt_conv("Initiator", read_practitioner),
        consent=f.opt_conv("Consent", read_consent),
        elements=tuple(read_element_assessment(e) for e in items(f.opt("Elements"), "Element")),
        strengths=f.opt_text("Strengths"),
        needs=f.opt_text("Needs"),
        child_views=f.opt_text("ChildViews"),
        outcome=f.opt_enum("Outcome", Outcome),
        actions=tuple(read_action(a) for a in items(f.opt("Actions"), "Action")),
        lead_professionals=tuple(
            read_lead_professional(p) for p in items(f.opt("LeadProfessionals"), "LeadProfessional")
        ),
        tac_meetings=tuple(read_tac_meeting(m) for m in items(f.opt("TacMeetings"), "TacMeeting")),
        events=tuple(_read_event(e) for e in items(f.opt("Events"), "Event")),
        flags=tuple(_read_flag(g) for g in items(f.opt("Flags"), "Flag")),
    )
    f.done()
    return assessment


def _write_event(el: etree._Element, event: CaseEvent) -> None:
    put(el, "Type", str(event.type))
    put_instant(el, "At", event.at)
    put(el, "Name", event.name)
    put(el, "LA", event.la_code)
    put(el, "FromLA", event.from_la)
    put(el, "ToLA", event.to_la)
    put(el, "NewPostcode", event.new_postcode)
    put(el, "Scope", None if event.scope is None else str(event.scope))


def _read_event(el: etree._Element) -> CaseEvent:
    f = Fields(el)
    event = CaseEvent(
        type=f.enum("Type", EventType),
        at=f.conv("At", parse_instant),
        name=f.opt_text("Name"),
        la_code=f.opt_text("LA"),
        from_la=f.opt_text("FromLA"),
        to_la=f.opt_text("ToLA"),
        new_postcode=f.opt_text("NewPostcode"),
        scope=f.opt_enum("Scope", ConsentScope),
    )
    f.done()
    return event


def _write_flag(el: etree._Element, flag: Flag) -> None:
    put(el, "Code", str(flag.code))
    put(el, "LA", flag.la_code)
    put(el, "Text", flag.text)
    put(el, "DecidedBy", flag.decided_by)
    put(el, "DecidedByRole", flag.decided_by_role)
    put(el, "InformFamily", fmt_bool(flag.inform_family))
    put(el, "Reason", flag.reason)


def _read_flag(el: etree._Element) -> Flag:
    f = Fields(el)
    flag = Flag(
        code=f.enum("Code", FlagCode),
        la_code=f.opt_text("LA"),
        text=f.opt_text("Text"),
        decided_by=f.opt_text("DecidedBy"),
        decided_by_role=f.opt_text("DecidedByRole"),
        inform_family=f.opt_conv("InformFamily", parse_bool),
        reason=f.opt_text("Reason"),
    )
    f.done()
    return flag
