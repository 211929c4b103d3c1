"""Codec of the parts several bodies share: child, carer, practitioner, consent.

``write_x(el, value)`` fills an element already created in its place;
``read_x(el)`` decodes one. Child order follows ``schemas/caf-exchange-1.xsd``.
"""

from __future__ import annotations

from lxml import etree

from gateway.envelope.codec.xml import (
    NS,
    Fields,
    attr,
    fmt_bool,
    items,
    parse_bool,
    parse_date,
    parse_date_or_instant,
    parse_enum,
    parse_instant,
    problem,
    put,
    put_attr,
    put_date_or_instant,
    put_instant,
    sub,
)
from gateway.model import (
    Address,
    Carer,
    Child,
    ConsentRecord,
    ConsentRole,
    ConsentScope,
    Gender,
    Identifier,
    Practitioner,
    School,
    Withdrawal,
)

# Identifier schemes with an element of their own (their format is in the XSD).
_SCHEME_ELEMENTS = ("UPN", "NHS")


def write_child(el: etree._Element, child: Child) -> None:
    """Fill a ``Child`` element."""
    put(el, "GivenName", child.given_name)
    put(el, "FamilyName", child.family_name)
    put(el, "PreferredName", child.preferred_name)
    put(el, "DateOfBirth", None if child.date_of_birth is None else child.date_of_birth.isoformat())
    put(el, "Gender", str(child.gender))
    if child.identifiers:
        ids = sub(el, "Identifiers")
        for ident in child.identifiers:
            if ident.scheme in _SCHEME_ELEMENTS:
                put(ids, ident.scheme, ident.value)
            else:
                put(ids, "Identifier", ident.value)
                put_attr(ids[-1], "scheme", ident.scheme)
    if child.address is not None:
        write_address(sub(el, "Address"), child.address)
    if child.school is not None:
        school = sub(el, "School")
        put(school, "Name", child.school.name)
        put(school, "LA", child.school.la_code)
    put(el, "Ethnicity", child.ethnicity)
    put(el, "Religion", child.religion)
    put(el, "Language", child.language)
    put(el, "InterpreterNeeded", fmt_bool(child.interpreter_needed))
    put(el, "LocalPersonId", child.local_person_id)


def read_child(el: etree._Element) -> Child:
    """Decode a ``Child`` element."""
    f = Fields(el)
    given_name = f.text("GivenName")
    family_name = f.text("FamilyName")
    preferred_name = f.opt_text("PreferredName")
    date_of_birth = f.opt_conv("DateOfBirth", parse_date)
    gender = f.enum("Gender", Gender)
    identifiers = tuple(_read_identifier(i) for i in _identifier_items(f.opt("Identifiers")))
    address = f.opt_conv("Address", read_address)
    school = f.opt_conv("School", _read_school)
    child = Child(
        given_name=given_name,
        family_name=family_name,
        date_of_birth=date_of_birth,
        gender=gender,
        preferred_name=preferred_name,
        identifiers=identifiers,
        address=address,
        school=school,
        ethnicity=f.opt_text("Ethnicity"),
        religion=f.opt_text("Religion"),
        language=f.opt_text("Language"),
        interpreter_needed=f.opt_conv("InterpreterNeeded", parse_bool),
        local_person_id=f.opt_text("LocalPersonId"),
    )
    f.done()
    return child


def _identifier_items(el: etree._Element | None) -> list[etree._Element]:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str)]


def _read_identifier(el: etree._Element) -> Identifier:
    tag = el.tag
    name = tag[len(NS) :] if isinstance(tag, str) and tag.startswith(NS) else None
    if name in _SCHEME_ELEMENTS:
        return Identifier(scheme=name, value=el.text or "")
    if name == "Identifier":
        return Identifier(scheme=attr(el, "scheme"), value=el.text or "")
    raise problem(el, "unexpected element, expected UPN, NHS or Identifier")


def write_address(el: etree._Element, address: Address) -> None:
    """Fill an ``Address`` element."""
    put(el, "Line1", address.line1)
    put(el, "Town", address.town)
    put(el, "Postcode", address.postcode)
    put(el, "LA", address.la_code)


def read_address(el: etree._Element) -> Address:
    """Decode an ``Address`` element."""
    f = Fields(el)
    address = Address(
        line1=f.opt_text("Line1"),
        town=f.opt_text("Town"),
        postcode=f.opt_text("Postcode"),
        la_code=f.opt_text("LA"),
    )
    f.done()
    return address


def _read_school(el: etree._Element) -> School:
    f = Fields(el)
    school = School(name=f.text("Name"), la_code=f.opt_text("LA"))
    f.done()
    return school


def write_carer(el: etree._Element, carer: Carer) -> None:
    """Fill a ``Carer`` element."""
    put(el, "Name", carer.name)
    put(el, "Relationship", carer.relationship)
    put(el, "ParentalResponsibility", fmt_bool(carer.parental_responsibility))
    put(el, "InterpreterNeeded", fmt_bool(carer.interpreter_needed))
    put(el, "Language", carer.language)


def read_carer(el: etree._Element) -> Carer:
    """Decode a ``Carer`` element."""
    f = Fields(el)
    carer = Carer(
        name=f.text("Name"),
        relationship=f.opt_text("Relationship"),
        parental_responsibility=f.opt_conv("ParentalResponsibility", parse_bool),
        interpreter_needed=f.opt_conv("InterpreterNeeded", parse_bool),
        language=f.opt_text("Language"),
    )
    f.done()
    return carer


def write_practitioner(el: etree._Element, practitioner: Practitioner) -> None:
    """Fill a ``Practitioner``-typed element (Initiator, LeadProfessionalAgreed, ...)."""
    put(el, "Name", practitioner.name)
    put(el, "Role", practitioner.role)
    put(el, "Organisation", practitioner.organisation)
    put(el, "LA", practitioner.la_code)
    put(el, "Email", practitioner.email)


def read_practitioner(el: etree._Element) -> Practitioner:
    """Decode a ``Practitioner``-typed element."""
    f = Fields(el)
    practitioner = Practitioner(
        name=f.text("Name"),
        role=f.opt_text("Role"),
        organisation=f.opt_text("Organisation"),
        la_code=f.opt_text("LA"),
        email=f.opt_text("Email"),
    )
    f.done()
    return practitioner


def write_consent(el: etree._Element, consent: ConsentRecord) -> None:
    """Fill a ``Consent`` element."""
    put(el, "Given", fmt_bool(consent.given))
    put(el, "GivenBy", consent.given_by)
    put(el, "Role", None if consent.role is None else str(consent.role))
    put(el, "RoleText", consent.role_text)
    put(el, "GillickCompetent", fmt_bool(consent.gillick_competent))
    put_date_or_instant(el, "RecordedAt", consent.recorded_at)
    if consent.scopes:
        scopes = sub(el, "Scopes")
        for scope in consent.scopes:
            put(scopes, "Scope", str(scope))
    if consent.named_las:
        named = sub(el, "NamedLAs")
        for code in consent.named_las:
            put(named, "LA", code)
    if consent.withdrawn:
        withdrawals = sub(el, "Withdrawals")
        for w in consent.withdrawn:
            wel = sub(withdrawals, "Withdrawal")
            put(wel, "Scope", str(w.scope))
            put_instant(wel, "At", w.at)
            put(wel, "By", w.by)


def read_consent(el: etree._Element) -> ConsentRecord:
    """Decode a ``Consent`` element."""
    f = Fields(el)
    consent = ConsentRecord(
        given=f.conv("Given", parse_bool),
        given_by=f.opt_text("GivenBy"),
        role=f.opt_enum("Role", ConsentRole),
        role_text=f.opt_text("RoleText"),
        gillick_competent=f.conv("GillickCompetent", parse_bool),
        recorded_at=f.opt_conv("RecordedAt", parse_date_or_instant),
        scopes=tuple(parse_enum(s, ConsentScope) for s in items(f.opt("Scopes"), "Scope")),
        named_las=tuple(la.text or "" for la in items(f.opt("NamedLAs"), "LA")),
        withdrawn=tuple(_read_withdrawal(w) for w in items(f.opt("Withdrawals"), "Withdrawal")),
    )
    f.done()
    return consent


def _read_withdrawal(el: etree._Element) -> Withdrawal:
    f = Fields(el)
    withdrawal = Withdrawal(
        scope=f.enum("Scope", ConsentScope),
        at=f.opt_conv("At", parse_instant),
        by=f.opt_text("By"),
    )
    f.done()
    return withdrawal
