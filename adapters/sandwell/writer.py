"""Canonical assessments -> an FWI form export (ISO-8859-1 XML), for Sandwell's system.

FWI has no place for case events or identifiers other than UPN and NHS
number; those are not written (the canonical message still carries them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from lxml import etree

from adapters.codelists import CodeList, T
from adapters.results import Encoder
from adapters.sandwell.fwi_dates import format_fwi
from adapters.sandwell.mapping import FwiSettings, Summary
from gateway.model import Assessment, Child, ConsentRecord, ConsentScope, Practitioner


def write_export(assessments: Sequence[Assessment], settings: FwiSettings) -> bytes:
    """The export document; ``RecordError`` names any value FWI has no code for."""
    encoder = Encoder("sandwell-xml")
    systems = {a.source_system for a in assessments}
    system = next(iter(systems)) if len(systems) == 1 else None
    root = etree.Element("FWIExport")
    root.set("generated", format_fwi(datetime.now(settings.zone), settings.zone))
    root.set("source", system or "cafgw")
    root.set("authority", settings.authority)
    for assessment in assessments:
        _Form(assessment, settings, encoder).render(root)
    encoder.raise_problems()
    data = etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1", pretty_print=True)
    return data if isinstance(data, bytes) else data.encode("iso-8859-1")


def _element(
    parent: etree._Element, tag: str, text: str | None = None, **attrs: object
) -> etree._Element:
    """A child element; attributes that are ``None`` are left out."""
    element = etree.SubElement(parent, tag)
    for name, value in attrs.items():
        if value is not None:
            element.set(name, str(value))
    if text is not None:
        element.text = text
    return element


def _yn(value: bool | None) -> str | None:
    return None if value is None else "Y" if value else "N"


class _Form:
    """Renders one assessment as a ``Form``."""

    def __init__(self, assessment: Assessment, settings: FwiSettings, encoder: Encoder) -> None:
        self.a, self.settings, self.codes, self.encoder = (
            assessment,
            settings,
            settings.codes,
            encoder,
        )

    def code(self, field: str, codes: CodeList[T], value: T | None) -> str | None:
        return self.encoder.code(codes, value, self.a.case_ref, field)

    def when(self, value: date | datetime | None) -> str | None:
        return None if value is None else format_fwi(value, self.settings.zone)

    def day(self, value: date | datetime | None) -> str | None:
        if isinstance(value, datetime):
            value = value.astimezone(self.settings.zone).date()
        return self.when(value)

    def render(self, root: etree._Element) -> None:
        a, codes = self.a, self.codes
        form = _element(
            root,
            "Form",
            id=a.case_ref,
            template="CAF_V3",
            state=self.code("Form/@state", codes.case_status, a.status),
        )
        self.subject(form, a.child)
        if a.carers:
            carers = _element(form, "Carers")
            for c in a.carers:
                _element(
                    carers,
                    "Carer",
                    name=c.name,
                    relationship=c.relationship,
                    pr=_yn(c.parental_responsibility),
                    interpreter=_yn(c.interpreter_needed),
                    language=c.language,
                )
        if a.initiator:
            self.practitioner(form, "Author", a.initiator)
        _element(form, "Dates", started=self.day(a.started_on), completed=self.day(a.completed_on))
        if a.consent:
            self.consent(form, a.consent)
        self.answers(form)
        if a.actions:
            actions = _element(form, "Actions")
            for p in a.actions:
                _element(
                    actions,
                    "Action",
                    p.description,
                    seq=p.seq,
                    owner=p.owner,
                    ownerLa=p.owner_la,
                    due=self.day(p.due),
                    status=self.code("Action/@status", codes.action_status, p.status),
                )
        for m in a.tac_meetings:
            meeting = _element(form, "TACMeeting", date=self.when(m.held_on), venue=m.venue)
            for who in m.attendees:
                _element(meeting, "Attendee", name=who.name, role=who.role, la=who.la_code)
            if m.lead_professional_agreed:
                self.practitioner(meeting, "LeadAgreed", m.lead_professional_agreed)
        for lp in a.lead_professionals:
            lead = self.practitioner(form, "LeadProfessional", lp.practitioner)
            for name, value in (("from", lp.from_date), ("to", lp.to_date)):
                if value is not None:
                    lead.set(name, self.day(value) or "")
        if a.flags:
            flags = _element(form, "Flags")
            for f in a.flags:
                _element(
                    flags,
                    "Flag",
                    f.text,
                    code=self.code("Flag/@code", codes.flag, f.code),
                    la=f.la_code,
                    decidedBy=f.decided_by,
                    decidedByRole=f.decided_by_role,
                    informFamily=_yn(f.inform_family),
                    reason=f.reason,
                )

    def subject(self, form: etree._Element, child: Child) -> None:
        codes, address, school = self.codes, child.address, child.school
        subject = _element(form, "Subject", personId=child.local_person_id)
        fields = {
            "FORENAME": child.given_name,
            "SURNAME": child.family_name,
            "PREFERRED": child.preferred_name,
            "DOB": self.day(child.date_of_birth),
            "GENDER": self.code("Subject/GENDER", codes.gender, child.gender),
            "ETHNICITY": self.code("Subject/ETHNICITY", codes.ethnicity, child.ethnicity),
            "RELIGION": self.code("Subject/RELIGION", codes.religion, child.religion),
            "LANGUAGE": child.language,
            "INTERPRETER": _yn(child.interpreter_needed),
            "UPN": child.identifier("UPN"),
            "NHSNO": child.identifier("NHS"),
            "ADDRESS1": address.line1 if address else None,
            "TOWN": address.town if address else None,
            "POSTCODE": address.postcode if address else None,
            "RESIDENT_LA": address.la_code if address else None,
            "SCHOOL": school.name if school else None,
            "SCHOOL_LA": school.la_code if school else None,
        }
        for name, value in fields.items():
            if value is not None:
                _element(subject, "Field", value, name=name)

    def practitioner(self, parent: etree._Element, tag: str, who: Practitioner) -> etree._Element:
        return _element(
            parent,
            tag,
            name=who.name,
            role=who.role,
            org=who.organisation,
            la=who.la_code,
            email=who.email,
        )

    def consent(self, form: etree._Element, consent: ConsentRecord) -> None:
        scopes = self.codes.consent_scope
        element = _element(
            form,
            "Consent",
            given=_yn(consent.given),
            by=consent.given_by,
            byRole=self.code("Consent/@byRole", self.codes.consent_role, consent.role),
            gillick="Y" if consent.gillick_competent else None,
            date=self.day(consent.recorded_at),
        )
        for scope in consent.scopes:
            code = self.code("Consent/Purpose/@code", scopes, scope)
            las = consent.named_las if scope is ConsentScope.SHARE_CROSS_BORDER else ()
            for la in las or (None,):
                _element(element, "Purpose", code=code, la=la)
        for gone in consent.withdrawn:
            _element(
                element,
                "Withdrawn",
                code=self.code("Consent/Withdrawn/@code", scopes, gone.scope),
                date=self.when(gone.at),
                by=gone.by,
            )

    def answers(self, form: etree._Element) -> None:
        a, codes = self.a, self.codes
        answers = _element(form, "Answers")
        for e in a.elements:
            code = self.code("Answers/Q/@code", codes.question, e.element)
            _element(answers, "Q", e.notes, code=code, score=e.rating, concern=_yn(e.concern))
        outcome = self.code("Answers/SUM.OUTCOME", codes.outcome, a.outcome)
        summaries: dict[Summary, str | None] = {
            "strengths": a.strengths,
            "needs": a.needs,
            "outcome": outcome,
            "child_views": a.child_views,
        }
        for target, text in summaries.items():
            if text is not None:
                _element(
                    answers, "Q", text, code=self.code("Answers/Q/@code", codes.summary, target)
                )
