"""One FWI ``Form`` element -> a canonical ``Assessment``, or its problems."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lxml import etree

from adapters.base import Result
from adapters.checks import RecordCheck
from adapters.results import to_result
from adapters.sandwell.mapping import FwiSettings
from adapters.sandwell.parts import read_consent, read_flags, read_subject
from adapters.sandwell.xmlview import XmlView
from gateway.model import (
    Assessment,
    Attendee,
    Carer,
    ElementAssessment,
    LeadProfessionalPeriod,
    Outcome,
    PlanAction,
    Practitioner,
    TacMeeting,
)


@dataclass(frozen=True)
class FwiHeader:
    """The attributes of the export root that its forms inherit."""

    source: str | None = None
    authority: str | None = None


def convert_form(
    element: etree._Element, index: int, header: FwiHeader, settings: FwiSettings, source: str
) -> Result:
    """Convert one ``Form``; every problem found is reported."""
    record = (element.get("id") or "").strip() or f"Form[{index}]"
    check = RecordCheck(source, record)
    form = XmlView(element, "Form", check)
    return to_result(
        check,
        _assessment(form, header, settings),
        settings.known_authorities,
        "Consent/Purpose/@la",
    )


def _assessment(form: XmlView, header: FwiHeader, settings: FwiSettings) -> Assessment | None:
    check, codes, zone = form.check, settings.codes, settings.zone
    default_la = check.la(header.authority, "FWIExport/@authority") or settings.authority
    case_ref = form.attr("id", required=True)
    status = check.code(codes.case_status, form.attr("state", required=True), form.where("state"))
    subject = form.child("Subject")
    if subject is None:
        check.add("Form/Subject", "required element is missing")
    child = read_subject(subject, settings) if subject else None
    author = form.child("Author")
    dates = form.child("Dates")
    consent = form.child("Consent")
    answers = _Answers(form, settings)
    if case_ref is None or status is None or child is None:
        return None
    return Assessment(
        case_ref=case_ref,
        child=child,
        initiator=practitioner(author, default_la) if author else None,
        started_on=dates.day("started", zone) if dates else None,
        status=status,
        carers=tuple(_carers(form)),
        completed_on=dates.day("completed", zone) if dates else None,
        consent=read_consent(consent, settings) if consent else None,
        elements=tuple(answers.elements),
        strengths=answers.summary.get("strengths"),
        needs=answers.summary.get("needs"),
        outcome=answers.outcome,
        actions=tuple(_actions(form, settings)),
        lead_professionals=tuple(
            LeadProfessionalPeriod(
                practitioner(lead, None), lead.day("from", zone), lead.day("to", zone)
            )
            for lead in form.children("LeadProfessional")
        ),
        tac_meetings=tuple(_meeting(m, settings) for m in form.children("TACMeeting")),
        flags=read_flags(form, settings),
        child_views=answers.summary.get("child_views"),
        source_system=header.source or settings.source_system,
    )


def practitioner(view: XmlView, default_la: str | None) -> Practitioner:
    """A practitioner (``Author``, ``LeadProfessional``, ``LeadAgreed``)."""
    la = view.la("la")
    return Practitioner(
        name=view.attr("name", required=True) or "",
        role=view.attr("role"),
        organisation=view.attr("org"),
        la_code=la if la is not None or view.attr("la") else default_la,
        email=view.attr("email"),
    )


class _Answers:
    """The ``Answers/Q`` of a form: element ratings and the summary answers."""

    def __init__(self, form: XmlView, settings: FwiSettings) -> None:
        codes, check = settings.codes, form.check
        self.elements: list[ElementAssessment] = []
        self.summary: dict[str, str] = {}
        self.outcome: Outcome | None = None
        for q in form.grandchildren("Answers", "Q"):
            code = q.attr("code", required=True)
            if code is None:
                continue
            q.path = f"Form/Answers/Q[@code='{code}']"
            element = codes.question.decode(code)
            target = codes.summary.decode(code)
            if element is not None:
                rating = check.rating(q.attr("score"), q.where("score"))
                self.elements.append(
                    ElementAssessment(element, rating, q.yes_no("concern"), q.text())
                )
            elif target == "outcome":
                self.outcome = check.code(codes.outcome, q.text(), q.path)
            elif target is not None and (text := q.text()) is not None:
                self.summary[target] = text
            else:
                known = ", ".join(codes.question.known() + codes.summary.known())
                check.add(q.path, f"unknown question code (known: {known})", code)


def _carers(form: XmlView) -> list[Carer]:
    return [
        Carer(
            name=c.attr("name", required=True) or "",
            relationship=c.attr("relationship"),
            parental_responsibility=c.yes_no("pr"),
            interpreter_needed=c.yes_no("interpreter"),
            language=c.attr("language"),
        )
        for c in form.grandchildren("Carers", "Carer")
    ]


def _actions(form: XmlView, settings: FwiSettings) -> list[PlanAction]:
    found = []
    for number, action in enumerate(form.grandchildren("Actions", "Action"), start=1):
        seq = action.attr("seq")
        if seq is not None and not (seq.isascii() and seq.isdigit()):
            action.check.add(action.where("seq"), "must be a whole number", seq)
        found.append(
            PlanAction(
                seq=int(seq) if seq and seq.isascii() and seq.isdigit() else number,
                description=action.text() or "",
                owner=action.attr("owner"),
                owner_la=action.la("ownerLa"),
                due=action.day("due", settings.zone),
                status=action.check.code(
                    settings.codes.action_status, action.attr("status"), action.where("status")
                ),
            )
        )
        if not found[-1].description:
            action.check.add(action.path, "an action needs a description")
    return found


def _meeting(meeting: XmlView, settings: FwiSettings) -> TacMeeting:
    agreed = meeting.child("LeadAgreed")
    return TacMeeting(
        held_on=meeting.when("date", settings.zone, required=True) or date.min,
        venue=meeting.attr("venue"),
        attendees=tuple(
            Attendee(a.attr("name", required=True) or "", a.attr("role"), a.la("la"))
            for a in meeting.children("Attendee")
        ),
        lead_professional_agreed=practitioner(agreed, None) if agreed else None,
    )
