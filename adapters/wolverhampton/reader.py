"""One EHM episode (decoded JSON) -> a canonical ``Assessment``, or its problems."""

from __future__ import annotations

import re
from datetime import date

from adapters.base import Rejected, Result
from adapters.checks import RecordCheck
from adapters.results import to_result
from adapters.wolverhampton.jsonview import JsonView
from adapters.wolverhampton.mapping import EhmSettings, ExportHeader
from adapters.wolverhampton.parts import (
    read_child,
    read_consent,
    read_events,
    read_flags,
    read_practitioner,
    when,
)
from gateway.errors import FieldProblem
from gateway.model import (
    Assessment,
    Attendee,
    Carer,
    CaseEvent,
    ElementAssessment,
    EventType,
    LeadProfessionalPeriod,
    PlanAction,
    Practitioner,
    TacMeeting,
)

_ATTENDEE = re.compile(r"^(?P<name>.*?)\s*\((?P<la>\d{3})\)$")


def convert_episode(
    value: object, index: int, header: ExportHeader, settings: EhmSettings, source: str
) -> Result:
    """Convert one element of ``episodes``; every problem found is reported."""
    if not isinstance(value, dict):
        problem = FieldProblem(source, f"episodes[{index}]", "", "an episode must be an object")
        return Rejected(source, problem.record, (problem,))
    episode_id = value.get("episodeId")
    record = episode_id.strip() if isinstance(episode_id, str) else ""
    check = RecordCheck(source, record or f"episodes[{index}]")
    episode = JsonView(value, "", check)
    return to_result(
        check,
        _assessment(episode, header, settings),
        settings.known_authorities,
        "consent.sharingWith",
    )


def _assessment(ep: JsonView, header: ExportHeader, settings: EhmSettings) -> Assessment | None:
    check, codes = ep.check, settings.codes
    default_la = check.la(header.la_code, "localAuthority.code") or settings.authority
    case_ref = ep.text("episodeId", required=True)
    status = check.code(codes.case_status, ep.text("status", required=True), "status")
    started = check.day(ep.text("startedOn"), "startedOn")
    child_view = ep.obj("child", required=True)
    child = read_child(child_view, settings) if child_view else None
    initiator = None
    if (practitioner := ep.obj("practitioner")) is not None:
        initiator = read_practitioner(practitioner, default_la)
    consent = None
    if (consent_view := ep.obj("consent")) is not None:
        consent = read_consent(consent_view, settings)
    assess = ep.obj("assessment") or JsonView({}, "assessment", check)
    tac = tuple(_tac(m, settings) for m in ep.objects("tacMeetings"))
    events = read_events(ep, settings)
    if "leadProfessionals" in ep.value:
        leads = tuple(_lead(v, check) for v in ep.objects("leadProfessionals"))
    else:
        leads = _leads_from_events(events, tac, settings)
    if case_ref is None or status is None or child is None:
        return None
    return Assessment(
        case_ref=case_ref,
        child=child,
        initiator=initiator,
        started_on=started,
        status=status,
        carers=tuple(_carers(ep)),
        completed_on=check.day(assess.text("completedOn"), "assessment.completedOn"),
        consent=consent,
        elements=tuple(_elements(assess, settings)),
        strengths=assess.text("strengths"),
        needs=assess.text("needs"),
        outcome=check.code(codes.outcome, assess.text("outcome"), "assessment.outcome"),
        actions=tuple(_actions(ep, settings)),
        lead_professionals=leads,
        tac_meetings=tac,
        events=events,
        flags=read_flags(ep, settings),
        child_views=assess.text("childViews"),
        source_system=header.system or settings.source_system,
    )


def _carers(ep: JsonView) -> list[Carer]:
    return [
        Carer(
            name=c.text("name", required=True) or "",
            relationship=c.text("relationship"),
            parental_responsibility=c.flag("parentalResponsibility"),
            interpreter_needed=c.flag("interpreterNeeded"),
            language=c.text("language"),
        )
        for c in ep.objects("carers")
    ]


def _elements(assess: JsonView, settings: EhmSettings) -> list[ElementAssessment]:
    dims = assess.obj("dimensions")
    if dims is None:
        return []
    found = []
    for key in dims.keys():  # noqa: SIM118 (a JsonView is not a dict)
        element = dims.check.code(settings.codes.dimension, key, dims.where(key))
        dim = dims.obj(key, required=True)
        if element is None or dim is None:
            continue
        rating = dim.check.rating(dim.raw("rating"), dim.where("rating"))
        found.append(ElementAssessment(element, rating, dim.flag("concern"), dim.text("notes")))
    return found


def _actions(ep: JsonView, settings: EhmSettings) -> list[PlanAction]:
    check = ep.check
    return [
        PlanAction(
            seq=seq,
            description=a.text("action", required=True) or "",
            owner=a.text("owner"),
            owner_la=check.la(a.text("ownerLaCode"), a.where("ownerLaCode")),
            due=check.day(a.text("due"), a.where("due")),
            status=check.code(settings.codes.action_status, a.text("status"), a.where("status")),
        )
        for seq, a in enumerate(ep.objects("plan"), start=1)
    ]


def _tac(meeting: JsonView, settings: EhmSettings) -> TacMeeting:
    check = meeting.check
    held = meeting.text("heldOn", required=True)
    attendees: list[Attendee] = []
    for where, item in meeting.items("attendees"):
        if isinstance(item, str):
            match = _ATTENDEE.match(item.strip())
            name, la = (match["name"], match["la"]) if match else (item.strip(), None)
            attendees.append(Attendee(name, la_code=check.la(la, where)))
        elif isinstance(item, dict):
            view = JsonView(item, where, check)
            attendees.append(
                Attendee(
                    view.text("name", required=True) or "",
                    view.text("role"),
                    check.la(view.text("laCode"), view.where("laCode")),
                )
            )
        else:
            check.add(where, "must be a name or an object", repr(item)[:60])
    agreed = meeting.obj("leadProfessionalAgreed")
    return TacMeeting(
        held_on=when(held, meeting.where("heldOn"), check, settings) or date.min,
        venue=meeting.text("venue"),
        attendees=tuple(attendees),
        lead_professional_agreed=read_practitioner(agreed, None) if agreed else None,
    )


def _lead(view: JsonView, check: RecordCheck) -> LeadProfessionalPeriod:
    return LeadProfessionalPeriod(
        practitioner=read_practitioner(view, None),
        from_date=check.day(view.text("from"), view.where("from")),
        to_date=check.day(view.text("to"), view.where("to")),
    )


def _leads_from_events(
    events: tuple[CaseEvent, ...], tac: tuple[TacMeeting, ...], settings: EhmSettings
) -> tuple[LeadProfessionalPeriod, ...]:
    """EHM keeps no lead professional history: it is the allocation events."""
    agreed = {
        m.lead_professional_agreed.name: m.lead_professional_agreed
        for m in tac
        if m.lead_professional_agreed is not None
    }
    allocations = [e for e in events if e.type is EventType.LEAD_PROFESSIONAL_ALLOCATED and e.name]
    periods = []
    for number, event in enumerate(allocations):
        name = event.name or ""
        known = agreed.get(name)
        who = Practitioner(
            name,
            role=known.role if known else None,
            organisation=known.organisation if known else None,
            la_code=event.la_code or (known.la_code if known else None),
        )
        after = allocations[number + 1 :]
        until = after[0].at.astimezone(settings.zone).date() if after else None
        since = event.at.astimezone(settings.zone).date()
        periods.append(LeadProfessionalPeriod(who, since, until))
    return tuple(periods)
