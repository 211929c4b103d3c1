"""Codec of the parts of an ``Assessment`` about the plan and the team.

Element assessments, SMART plan actions, lead professional periods and TAC
meetings; ``assessment`` puts them in place.
"""

from __future__ import annotations

from lxml import etree

from gateway.envelope.codec.parts import read_practitioner, write_practitioner
from gateway.envelope.codec.xml import (
    Fields,
    attr,
    fmt_bool,
    fmt_date,
    fmt_int,
    items,
    parse_bool,
    parse_date,
    parse_date_or_instant,
    parse_int,
    problem,
    put,
    put_attr,
    put_date_or_instant,
    sub,
)
from gateway.model import (
    ELEMENT_DOMAIN,
    ActionStatus,
    Attendee,
    Element,
    ElementAssessment,
    LeadProfessionalPeriod,
    PlanAction,
    TacMeeting,
)


def write_element_assessment(el: etree._Element, ea: ElementAssessment) -> None:
    """Fill an ``Element`` element (name and domain attributes, rating, concern, notes)."""
    put_attr(el, "name", str(ea.element))
    domain = ELEMENT_DOMAIN.get(ea.element)
    if domain is None:
        raise problem(el, f"{ea.element!r} is not an element of the framework")
    el.set("domain", str(domain))
    put(el, "Rating", fmt_int(ea.rating))
    put(el, "Concern", fmt_bool(ea.concern))
    put(el, "Notes", ea.notes)


def read_element_assessment(el: etree._Element) -> ElementAssessment:
    """Decode an ``Element`` element; a domain attribute must be the element's own."""
    name = attr(el, "name")
    try:
        element = Element(name)
    except ValueError:
        raise problem(el, f"{name!r} is not an element of the framework") from None
    domain = el.get("domain")
    if domain is not None and domain != ELEMENT_DOMAIN[element]:
        raise problem(el, f"{name} belongs to domain {ELEMENT_DOMAIN[element]}, not {domain}")
    f = Fields(el)
    ea = ElementAssessment(
        element=element,
        rating=f.opt_conv("Rating", parse_int),
        concern=f.opt_conv("Concern", parse_bool),
        notes=f.opt_text("Notes"),
    )
    f.done()
    return ea


def write_action(el: etree._Element, action: PlanAction) -> None:
    """Fill an ``Action`` element of the plan."""
    put_attr(el, "seq", str(action.seq))
    put(el, "Description", action.description)
    put(el, "Owner", action.owner)
    put(el, "OwnerLA", action.owner_la)
    put(el, "Due", fmt_date(action.due))
    put(el, "Status", None if action.status is None else str(action.status))
    put(el, "DeliveryLA", action.delivery_la)


def read_action(el: etree._Element) -> PlanAction:
    """Decode an ``Action`` element of the plan."""
    seq = attr(el, "seq")
    try:
        number = int(seq)
    except ValueError:
        number = 0
    if number < 1:
        raise problem(el, f"seq {seq!r} is not a positive integer")
    f = Fields(el)
    action = PlanAction(
        seq=number,
        description=f.text("Description"),
        owner=f.opt_text("Owner"),
        owner_la=f.opt_text("OwnerLA"),
        due=f.opt_conv("Due", parse_date),
        status=f.opt_enum("Status", ActionStatus),
        delivery_la=f.opt_text("DeliveryLA"),
    )
    f.done()
    return action


def read_lead_professional(el: etree._Element) -> LeadProfessionalPeriod:
    """Decode a ``LeadProfessional`` element."""
    f = Fields(el)
    period = LeadProfessionalPeriod(
        practitioner=f.conv("Practitioner", read_practitioner),
        from_date=f.opt_conv("FromDate", parse_date),
        to_date=f.opt_conv("ToDate", parse_date),
    )
    f.done()
    return period


def write_tac_meeting(el: etree._Element, meeting: TacMeeting) -> None:
    """Fill a ``TacMeeting`` element."""
    put_date_or_instant(el, "HeldOn", meeting.held_on)
    put(el, "Venue", meeting.venue)
    if meeting.attendees:
        attendees = sub(el, "Attendees")
        for attendee in meeting.attendees:
            ael = sub(attendees, "Attendee")
            put(ael, "Name", attendee.name)
            put(ael, "Role", attendee.role)
            put(ael, "LA", attendee.la_code)
    if meeting.lead_professional_agreed is not None:
        write_practitioner(sub(el, "LeadProfessionalAgreed"), meeting.lead_professional_agreed)


def read_tac_meeting(el: etree._Element) -> TacMeeting:
    """Decode a ``TacMeeting`` element."""
    f = Fields(el)
    meeting = TacMeeting(
        held_on=f.conv("HeldOn", parse_date_or_instant),
        venue=f.opt_text("Venue"),
        attendees=tuple(_read_attendee(a) for a in items(f.opt("Attendees"), "Attendee")),
        lead_professional_agreed=f.opt_conv("LeadProfessionalAgreed", read_practitioner),
    )
    f.done()
    return meeting


def _read_attendee(el: etree._Element) -> Attendee:
    f = Fields(el)
    attendee = Attendee(name=f.text("Name"), role=f.opt_text("Role"), la_code=f.opt_text("LA"))
    f.done()
    return attendee
