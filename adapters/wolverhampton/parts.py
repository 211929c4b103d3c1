"""Parts of an EHM episode: child, practitioner, consent, events and flags."""

from __future__ import annotations

from datetime import date, datetime

from adapters.checks import RecordCheck
from adapters.wolverhampton.jsonview import JsonView
from adapters.wolverhampton.mapping import EhmSettings
from gateway.model import (
    Address,
    CaseEvent,
    Child,
    ConsentRecord,
    Flag,
    Gender,
    Identifier,
    Practitioner,
    School,
    Withdrawal,
)


def when(
    value: str | None, field: str, check: RecordCheck, settings: EhmSettings
) -> datetime | date | None:
    """A date-time (in UTC) if the value has a time of day, else a date."""
    if value is not None and len(value) <= 10:
        return check.day(value, field)
    return check.instant(value, settings.zone, field)


def read_child(child: JsonView, settings: EhmSettings) -> Child | None:
    """The child's identity; ``None`` when the names are missing."""
    check, codes = child.check, settings.codes
    names = child.obj("names", required=True)
    given = names.text("given", required=True) if names else None
    family = names.text("family", required=True) if names else None
    address = child.obj("address")
    school = child.obj("school")
    sex = check.code(codes.gender, child.text("sex"), child.where("sex"))
    result = Child(
        given_name=given or "",
        family_name=family or "",
        date_of_birth=check.day(child.text("birthDate"), child.where("birthDate")),
        gender=sex or Gender.NOT_KNOWN,
        preferred_name=names.text("preferred") if names else None,
        identifiers=tuple(_identifiers(child)),
        address=_address(address) if address else None,
        school=_school(school) if school else None,
        ethnicity=check.code(codes.ethnicity, child.text("ethnicity"), child.where("ethnicity")),
        religion=check.code(codes.religion, child.text("religion"), child.where("religion")),
        language=child.text("language"),
        interpreter_needed=child.flag("interpreterNeeded"),
        local_person_id=child.text("personId"),
    )
    return result if given and family else None


def _identifiers(child: JsonView) -> list[Identifier]:
    found = []
    for ident in child.objects("identifiers"):
        scheme = (ident.text("scheme", required=True) or "").upper()
        value = ident.text("value", required=True)
        where = ident.where("value")
        if scheme == "UPN":
            value = ident.check.upn(value, where)
        elif scheme == "NHS":
            value = ident.check.nhs(value, where)
        if scheme and value:
            found.append(Identifier(scheme, value))
    return found


def _address(view: JsonView) -> Address:
    return Address(
        line1=view.text("line1"),
        town=view.text("town"),
        postcode=view.check.postcode(view.text("postcode"), view.where("postcode")),
        la_code=view.check.la(view.text("laCode"), view.where("laCode")),
    )


def _school(view: JsonView) -> School:
    return School(
        name=view.text("name", required=True) or "",
        la_code=view.check.la(view.text("laCode"), view.where("laCode")),
    )


def read_practitioner(view: JsonView, default_la: str | None) -> Practitioner:
    """A practitioner; without ``laCode`` the practitioner works for ``default_la``."""
    la = view.check.la(view.text("laCode"), view.where("laCode"))
    return Practitioner(
        name=view.text("name", required=True) or "",
        role=view.text("role"),
        organisation=view.text("organisation"),
        la_code=la if la is not None or "laCode" in view.value else default_la,
        email=view.text("email"),
    )


def read_consent(view: JsonView, settings: EhmSettings) -> ConsentRecord:
    """The consent block: who gave it, its scopes, named LAs and withdrawals."""
    check, codes = view.check, settings.codes
    given_by = view.obj("givenBy")
    role_text = given_by.text("role") if given_by else None
    role_where = view.where("givenBy.role")
    given = view.flag("given")
    return ConsentRecord(
        given=given is not False,
        given_by=given_by.text("name") if given_by else None,
        role=check.code(codes.consent_role, role_text, role_where),
        gillick_competent=bool(given_by and given_by.flag("gillickCompetent")),
        recorded_at=when(view.text("recordedAt"), view.where("recordedAt"), check, settings),
        scopes=tuple(
            scope
            for where, code in view.texts("scopes")
            if (scope := check.code(codes.consent_scope, code, where)) is not None
        ),
        named_las=tuple(
            la for where, code in view.texts("sharingWith") if (la := check.la(code, where))
        ),
        withdrawn=tuple(
            Withdrawal(
                scope, check.instant(w.text("at"), settings.zone, w.where("at")), w.text("by")
            )
            for w in view.objects("withdrawn")
            if (
                scope := check.code(
                    codes.consent_scope, w.text("scope", required=True), w.where("scope")
                )
            )
            is not None
        ),
    )


def read_events(ep: JsonView, settings: EhmSettings) -> tuple[CaseEvent, ...]:
    """The dated case events (lead professional allocated, child moved, ...)."""
    check, codes = ep.check, settings.codes
    events = []
    for event in ep.objects("events"):
        kind = check.code(codes.event_type, event.text("type", required=True), event.where("type"))
        at = check.instant(event.text("at", required=True), settings.zone, event.where("at"))
        detail = event.obj("detail") or JsonView({}, event.where("detail"), check)
        scope = check.code(codes.consent_scope, detail.text("scope"), detail.where("scope"))
        if kind is None or at is None:
            continue
        events.append(
            CaseEvent(
                type=kind,
                at=at,
                name=detail.text("name"),
                la_code=check.la(detail.text("laCode"), detail.where("laCode")),
                from_la=check.la(detail.text("fromLaCode"), detail.where("fromLaCode")),
                to_la=check.la(detail.text("toLaCode"), detail.where("toLaCode")),
                new_postcode=check.postcode(
                    detail.text("newPostcode"), detail.where("newPostcode")
                ),
                scope=scope,
            )
        )
    return tuple(events)


def read_flags(ep: JsonView, settings: EhmSettings) -> tuple[Flag, ...]:
    """Service gap, significant harm and notify-authority flags."""
    check = ep.check
    flags = []
    for flag in ep.objects("flags"):
        code = check.code(settings.codes.flag, flag.text("code", required=True), flag.where("code"))
        if code is None:
            continue
        flags.append(
            Flag(
                code=code,
                la_code=check.la(flag.text("laCode"), flag.where("laCode")),
                text=flag.text("text"),
                decided_by=flag.text("decidedBy"),
                decided_by_role=flag.text("decidedByRole"),
                inform_family=flag.flag("informFamily"),
                reason=flag.text("reason"),
            )
        )
    return tuple(flags)
