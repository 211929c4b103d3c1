"""Parts of an FWI form: the subject (child), consent and flags."""

from __future__ import annotations

from datetime import date, datetime

from adapters.sandwell.fwi_dates import parse_fwi
from adapters.sandwell.mapping import FwiSettings
from adapters.sandwell.xmlview import XmlView
from gateway.model import (
    Address,
    Child,
    ConsentRecord,
    ConsentScope,
    Flag,
    Gender,
    Identifier,
    School,
    Withdrawal,
)

SUBJECT_FIELDS = (
    "FORENAME", "SURNAME", "PREFERRED", "DOB", "GENDER", "ETHNICITY", "RELIGION", "LANGUAGE",
    "INTERPRETER", "UPN", "NHSNO", "ADDRESS1", "TOWN", "POSTCODE", "RESIDENT_LA", "SCHOOL",
    "SCHOOL_LA",
)  # fmt: skip


def read_subject(subject: XmlView, settings: FwiSettings) -> Child | None:
    """The child, from ``Subject/Field[@name]``; ``None`` without both names."""
    check, codes = subject.check, settings.codes
    values: dict[str, str | None] = {}
    where: dict[str, str] = {}
    for field in subject.children("Field"):
        name = field.attr("name", required=True) or ""
        path = f"{subject.path}/Field[@name='{name}']"
        if name not in SUBJECT_FIELDS:
            check.add(path, "unknown Subject field", name)
        elif name in values:
            check.add(path, "given more than once")
        values[name], where[name] = field.text(), path
    for required in ("FORENAME", "SURNAME"):
        if not values.get(required):
            check.add(f"{subject.path}/Field[@name='{required}']", "required value is missing")

    def get(name: str) -> str | None:
        return values.get(name)

    def at(name: str) -> str:
        return where.get(name, f"{subject.path}/Field[@name='{name}']")

    upn = check.upn(get("UPN"), at("UPN"))
    nhs = check.nhs(get("NHSNO"), at("NHSNO"))
    interpreter = get("INTERPRETER")
    if interpreter is not None and interpreter.upper() not in ("Y", "N"):
        check.add(at("INTERPRETER"), "must be Y or N", interpreter)
    address = Address(
        line1=get("ADDRESS1"),
        town=get("TOWN"),
        postcode=check.postcode(get("POSTCODE"), at("POSTCODE")),
        la_code=check.la(get("RESIDENT_LA"), at("RESIDENT_LA")),
    )
    school = get("SCHOOL")
    child = Child(
        given_name=get("FORENAME") or "",
        family_name=get("SURNAME") or "",
        date_of_birth=_birth_date(subject, get("DOB"), at("DOB"), settings),
        gender=check.code(codes.gender, get("GENDER"), at("GENDER")) or Gender.NOT_KNOWN,
        preferred_name=get("PREFERRED"),
        identifiers=tuple(
            Identifier(scheme, value) for scheme, value in (("UPN", upn), ("NHS", nhs)) if value
        ),
        address=address if address != Address() else None,
        school=School(school, check.la(get("SCHOOL_LA"), at("SCHOOL_LA"))) if school else None,
        ethnicity=check.code(codes.ethnicity, get("ETHNICITY"), at("ETHNICITY")),
        religion=check.code(codes.religion, get("RELIGION"), at("RELIGION")),
        language=get("LANGUAGE"),
        interpreter_needed=None if interpreter is None else interpreter.upper() == "Y",
        local_person_id=subject.attr("personId"),
    )
    return child if child.given_name and child.family_name else None


def _birth_date(
    subject: XmlView, value: str | None, field: str, settings: FwiSettings
) -> date | None:
    if value is None:
        return None
    try:
        parsed = parse_fwi(value, settings.zone)
    except ValueError as exc:
        subject.check.add(field, str(exc), value)
        return None
    return parsed.astimezone(settings.zone).date() if isinstance(parsed, datetime) else parsed


def read_consent(consent: XmlView, settings: FwiSettings) -> ConsentRecord:
    """``Consent``: Y/N, who, role, date, ``Purpose`` scopes (with LAs) and withdrawals."""
    check, codes, zone = consent.check, settings.codes, settings.zone
    scopes: list[ConsentScope] = []
    named: list[str] = []
    for purpose in consent.children("Purpose"):
        scope = check.code(
            codes.consent_scope, purpose.attr("code", required=True), purpose.where("code")
        )
        if scope is not None and scope not in scopes:
            scopes.append(scope)
        if (la := purpose.la("la")) is not None and la not in named:
            named.append(la)
    withdrawn = []
    for gone in consent.children("Withdrawn"):
        scope = check.code(
            codes.consent_scope, gone.attr("code", required=True), gone.where("code")
        )
        at = gone.when("date", zone)
        if isinstance(at, datetime) or at is None:
            instant = at
        else:
            instant = datetime.combine(at, datetime.min.time(), tzinfo=zone)
        if scope is not None:
            withdrawn.append(Withdrawal(scope, instant, gone.attr("by")))
    given = consent.yes_no("given")
    if given is None:
        check.add(consent.where("given"), "required Y or N is missing")
    role = consent.attr("byRole")
    return ConsentRecord(
        given=bool(given),
        given_by=consent.attr("by"),
        role=check.code(codes.consent_role, role, consent.where("byRole")),
        gillick_competent=bool(consent.yes_no("gillick")),
        recorded_at=consent.when("date", zone),
        scopes=tuple(scopes),
        named_las=tuple(named),
        withdrawn=tuple(withdrawn),
    )


def read_flags(form: XmlView, settings: FwiSettings) -> tuple[Flag, ...]:
    """``Flags/Flag``: service gap, significant harm, notify an authority."""
    flags = []
    for flag in form.grandchildren("Flags", "Flag"):
        code = flag.check.code(
            settings.codes.flag, flag.attr("code", required=True), flag.where("code")
        )
        if code is None:
            continue
        flags.append(
            Flag(
                code=code,
                la_code=flag.la("la"),
                text=flag.text(),
                decided_by=flag.attr("decidedBy"),
                decided_by_role=flag.attr("decidedByRole"),
                inform_family=flag.yes_no("informFamily"),
                reason=flag.attr("reason"),
            )
        )
    return tuple(flags)
