"""Canonical assessments -> an EHM episode export (UTF-8 JSON), for Wolverhampton's system."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from adapters.codelists import CodeList, T
from adapters.results import Encoder
from adapters.wolverhampton.mapping import EhmSettings
from gateway.model import (
    Assessment,
    CaseEvent,
    Child,
    ConsentRecord,
    Flag,
    Practitioner,
    TacMeeting,
)

Json = dict[str, object]


def write_export(assessments: Sequence[Assessment], settings: EhmSettings) -> bytes:
    """The export document; ``RecordError`` names any value EHM has no code for."""
    encoder = Encoder("wolverhampton-json")
    episodes = [_Episode(a, settings, encoder).render() for a in assessments]
    encoder.raise_problems()
    systems = {a.source_system for a in assessments}
    system = next(iter(systems)) if len(systems) == 1 else None
    document = {
        "exportedAt": datetime.now(settings.zone).isoformat(timespec="seconds"),
        "system": system or "cafgw",
        "localAuthority": {"code": settings.authority},
        "episodes": episodes,
    }
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")


def _compact(values: Json) -> Json:
    """Leave out what was not recorded."""
    return {key: value for key, value in values.items() if value is not None}


class _Episode:
    """Renders one assessment; code lookups go through the shared encoder."""

    def __init__(self, assessment: Assessment, settings: EhmSettings, encoder: Encoder) -> None:
        self.a, self.settings, self.codes, self.encoder = (
            assessment,
            settings,
            settings.codes,
            encoder,
        )

    def code(self, field: str, codes: CodeList[T], value: T | None) -> str | None:
        return self.encoder.code(codes, value, self.a.case_ref, field)

    def instant(self, value: datetime | date | None) -> str | None:
        if isinstance(value, datetime):
            return value.astimezone(self.settings.zone).isoformat(timespec="seconds")
        return value.isoformat() if value is not None else None

    def render(self) -> Json:
        a, codes = self.a, self.codes
        return _compact(
            {
                "episodeId": a.case_ref,
                "status": self.code("status", codes.case_status, a.status),
                "startedOn": self.instant(a.started_on),
                "child": self.child(a.child),
                "carers": [
                    _compact(
                        {
                            "name": c.name,
                            "relationship": c.relationship,
                            "parentalResponsibility": c.parental_responsibility,
                            "interpreterNeeded": c.interpreter_needed,
                            "language": c.language,
                        }
                    )
                    for c in a.carers
                ],
                "practitioner": _practitioner(a.initiator) if a.initiator else None,
                "consent": self.consent(a.consent) if a.consent else None,
                "assessment": {
                    "completedOn": self.instant(a.completed_on),
                    "dimensions": {
                        self.code("assessment.dimensions", codes.dimension, e.element)
                        or e.element.value: _compact(
                            {"rating": e.rating, "concern": e.concern, "notes": e.notes or ""}
                        )
                        for e in a.elements
                    },
                    "strengths": a.strengths or "",
                    "needs": a.needs or "",
                    "childViews": a.child_views,
                    "outcome": self.code("assessment.outcome", codes.outcome, a.outcome),
                },
                "plan": [
                    _compact(
                        {
                            "action": p.description,
                            "owner": p.owner,
                            "ownerLaCode": p.owner_la,
                            "due": self.instant(p.due),
                            "status": self.code("plan.status", codes.action_status, p.status),
                        }
                    )
                    for p in a.actions
                ],
                "tacMeetings": [self.meeting(m) for m in a.tac_meetings],
                "leadProfessionals": [
                    {
                        **_practitioner(lp.practitioner),
                        **_compact(
                            {"from": self.instant(lp.from_date), "to": self.instant(lp.to_date)}
                        ),
                    }
                    for lp in a.lead_professionals
                ],
                "events": [self.event(e) for e in a.events],
                "flags": [self.flag(f) for f in a.flags],
            }
        )

    def child(self, child: Child) -> Json:
        codes, address, school = self.codes, child.address, child.school
        return _compact(
            {
                "names": _compact(
                    {
                        "given": child.given_name,
                        "family": child.family_name,
                        "preferred": child.preferred_name,
                    }
                ),
                "personId": child.local_person_id,
                "birthDate": self.instant(child.date_of_birth),
                "sex": self.code("child.sex", codes.gender, child.gender),
                "ethnicity": self.code("child.ethnicity", codes.ethnicity, child.ethnicity),
                "religion": self.code("child.religion", codes.religion, child.religion),
                "language": child.language,
                "interpreterNeeded": child.interpreter_needed,
                "identifiers": [{"scheme": i.scheme, "value": i.value} for i in child.identifiers],
                "address": _compact(
                    {
                        "line1": address.line1,
                        "town": address.town,
                        "postcode": address.postcode,
                        "laCode": address.la_code,
                    }
                )
                if address
                else None,
                "school": _compact({"name": school.name, "laCode": school.la_code})
                if school
                else None,
            }
        )

    def consent(self, consent: ConsentRecord) -> Json:
        scope = self.codes.consent_scope
        given_by = _compact(
            {
                "name": consent.given_by,
                "role": self.code("consent.givenBy.role", self.codes.consent_role, consent.role),
                "gillickCompetent": consent.gillick_competent or None,
            }
        )
        return _compact(
            {
                "given": None if consent.given else False,
                "givenBy": given_by or None,
                "recordedAt": self.instant(consent.recorded_at),
                "scopes": [self.code("consent.scopes", scope, s) for s in consent.scopes],
                "sharingWith": list(consent.named_las),
                "withdrawn": [
                    _compact(
                        {
                            "scope": self.code("consent.withdrawn.scope", scope, w.scope),
                            "at": self.instant(w.at),
                            "by": w.by,
                        }
                    )
                    for w in consent.withdrawn
                ],
            }
        )

    def meeting(self, meeting: TacMeeting) -> Json:
        attendees: list[object] = [
            _compact({"name": p.name, "role": p.role, "laCode": p.la_code})
            if p.role
            else f"{p.name} ({p.la_code})"
            if p.la_code
            else p.name
            for p in meeting.attendees
        ]
        agreed = meeting.lead_professional_agreed
        return _compact(
            {
                "heldOn": self.instant(meeting.held_on),
                "venue": meeting.venue,
                "attendees": attendees,
                "leadProfessionalAgreed": _practitioner(agreed) if agreed else None,
            }
        )

    def event(self, event: CaseEvent) -> Json:
        scope = self.code("events.detail.scope", self.codes.consent_scope, event.scope)
        return {
            "type": self.code("events.type", self.codes.event_type, event.type),
            "at": self.instant(event.at),
            "detail": _compact(
                {
                    "name": event.name,
                    "laCode": event.la_code,
                    "fromLaCode": event.from_la,
                    "toLaCode": event.to_la,
                    "newPostcode": event.new_postcode,
                    "scope": scope,
                }
            ),
        }

    def flag(self, flag: Flag) -> Json:
        return _compact(
            {
                "code": self.code("flags.code", self.codes.flag, flag.code),
                "laCode": flag.la_code,
                "text": flag.text,
                "decidedBy": flag.decided_by,
                "decidedByRole": flag.decided_by_role,
                "informFamily": flag.inform_family,
                "reason": flag.reason,
            }
        )


def _practitioner(who: Practitioner) -> Json:
    return _compact(
        {
            "name": who.name,
            "role": who.role,
            "organisation": who.organisation,
            "laCode": who.la_code,
            "email": who.email,
        }
    )
