"""The model <-> XML codec: exact round trips, canonical lexical forms, precise errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.envelope.codec import (
    body_from_element,
    body_to_element,
    element_to_envelope,
    envelope_to_bytes,
    envelope_to_element,
    header_from_element,
)
from gateway.envelope.schema import SchemaValidator
from gateway.errors import SchemaError
from gateway.model import (
    BODY_TYPE,
    AccessEvent,
    AccessKind,
    AccessNotice,
    ActionStatus,
    ActionTaken,
    Address,
    Assessment,
    Attendee,
    Audience,
    Carer,
    CaseEvent,
    CaseStatus,
    Child,
    ConsentAction,
    ConsentChange,
    ConsentRecord,
    ConsentRole,
    ConsentScope,
    Correction,
    Detail,
    Dispute,
    DisputeAction,
    DisputeEvent,
    DisputeParty,
    DisputeStage,
    Element,
    ElementAssessment,
    Envelope,
    ErasureGround,
    ErasureRequest,
    Evaluation,
    EventType,
    Flag,
    FlagCode,
    Gender,
    Header,
    Identifier,
    IssueKind,
    IssueLogEntry,
    LeadProfessionalPeriod,
    LegalBasis,
    LineManager,
    MessageRef,
    MessageType,
    Notification,
    NotificationType,
    Outcome,
    PlanAction,
    Practitioner,
    PractitionerView,
    Purpose,
    Recall,
    RecallReason,
    Receipt,
    ReceiptItem,
    ReceiptOutcome,
    Safeguarding,
    School,
    TacMeeting,
    Withdrawal,
)
from gateway.outbox import content_digest, written_content_digest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "schemas" / "examples").glob("*.xml"))
NS = "{urn:caf-exchange:1}"
DS = "http://www.w3.org/2000/09/xmldsig#"

VALIDATOR = SchemaValidator()


def _load(path: Path) -> etree._Element:
    return etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()


def _reparse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False))


# --- strategies: valid instances of every dataclass ------------------------------

_chars = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
TEXT = st.text(alphabet=st.one_of(_chars, st.sampled_from("\n\t\r ")), max_size=30)
REQUIRED_TEXT = st.text(
    alphabet=st.one_of(_chars, st.sampled_from("\n\t")), min_size=1, max_size=30
)
NAME = st.text(alphabet=_chars, min_size=1, max_size=20).filter(lambda s: s.strip(" ") != "")
REF = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/._:-]{0,24}", fullmatch=True)
LA = st.from_regex(r"[0-9]{3}", fullmatch=True)
UUID = st.uuids().map(str)
POSTCODE = st.from_regex(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", fullmatch=True)
EMAIL = st.from_regex(r"[a-z0-9._%+-]{1,10}@[a-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True)
DIGEST = st.from_regex(r"(sha256:)?[0-9a-f]{64}", fullmatch=True)
SCHEME = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,10}", fullmatch=True).filter(
    lambda s: s not in ("UPN", "NHS")
)
DATES = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=1)),
        timezone(timedelta(hours=-5)),
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-14)),
        timezone(timedelta(minutes=1, seconds=30)),  # not expressible in XSD: sent as UTC
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31), timezones=OFFSETS
)
DATE_OR_INSTANT = st.one_of(DATES, INSTANTS)


T = TypeVar("T")


def opt(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


def tuples(strategy: st.SearchStrategy[T], **kw: Any) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(strategy, max_size=3, **kw).map(tuple)


IDENTIFIERS = st.one_of(
    st.builds(Identifier, st.just("UPN"), st.from_regex(r"[A-Z][0-9]{11}[0-9A-Z]", fullmatch=True)),
    st.builds(Identifier, st.just("NHS"), st.from_regex(r"[0-9]{10}", fullmatch=True)),
    st.builds(Identifier, SCHEME, REF),
)
CHILDREN = st.builds(
    Child,
    given_name=NAME,
    family_name=NAME,
    date_of_birth=opt(DATES),
    gender=st.sampled_from(Gender),
    preferred_name=opt(NAME),
    identifiers=tuples(IDENTIFIERS),
    address=opt(
        st.builds(Address, line1=opt(NAME), town=opt(NAME), postcode=opt(POSTCODE), la_code=opt(LA))
    ),
    school=opt(st.builds(School, name=NAME, la_code=opt(LA))),
    ethnicity=opt(NAME),
    religion=opt(NAME),
    language=opt(NAME),
    interpreter_needed=opt(st.booleans()),
    local_person_id=opt(REF),
)
PRACTITIONERS = st.builds(
    Practitioner,
    name=NAME,
    role=opt(NAME),
    organisation=opt(NAME),
    la_code=opt(LA),
    email=opt(EMAIL),
)
CONSENTS = st.builds(
    ConsentRecord,
    given=st.booleans(),
    given_by=opt(NAME),
    role=opt(st.sampled_from(ConsentRole)),
    role_text=opt(NAME),
    gillick_competent=st.booleans(),
    recorded_at=opt(DATE_OR_INSTANT),
    scopes=tuples(st.sampled_from(ConsentScope)),
    named_las=tuples(LA),
    withdrawn=tuples(
        st.builds(Withdrawal, scope=st.sampled_from(ConsentScope), at=opt(INSTANTS), by=opt(NAME))
    ),
)
ASSESSMENTS = st.builds(
    Assessment,
    case_ref=REF,
    child=CHILDREN,
    initiator=opt(PRACTITIONERS),
    started_on=opt(DATES),
    status=st.sampled_from(CaseStatus),
    carers=tuples(
        st.builds(
            Carer,
            name=NAME,
            relationship=opt(NAME),
            parental_responsibility=opt(st.booleans()),
            interpreter_needed=opt(st.booleans()),
            language=opt(NAME),
        )
    ),
    completed_on=opt(DATES),
    consent=opt(CONSENTS),
    elements=tuples(
        st.builds(
            ElementAssessment,
            element=st.sampled_from(Element),
            rating=opt(st.integers(1, 4)),
            concern=opt(st.booleans()),
            notes=opt(TEXT),
        ),
        unique_by=lambda e: e.element,
    ),
    strengths=opt(TEXT),
    needs=opt(TEXT),
    outcome=opt(st.sampled_from(Outcome)),
    actions=tuples(
        st.builds(
            PlanAction,
            seq=st.integers(1, 10**9),
            description=REQUIRED_TEXT,
            owner=opt(NAME),
            owner_la=opt(LA),
            due=opt(DATES),
            status=opt(st.sampled_from(ActionStatus)),
        ),
        unique_by=lambda a: a.seq,
    ),
    lead_professionals=tuples(
        st.builds(
            LeadProfessionalPeriod,
            practitioner=PRACTITIONERS,
            from_date=opt(DATES),
            to_date=opt(DATES),
        )
    ),
    tac_meetings=tuples(
        st.builds(
            TacMeeting,
            held_on=DATE_OR_INSTANT,
            venue=opt(NAME),
            attendees=tuples(st.builds(Attendee, name=NAME, role=opt(NAME), la_code=opt(LA))),
            lead_professional_agreed=opt(PRACTITIONERS),
        )
    ),
    events=tuples(
        st.builds(
            CaseEvent,
            type=st.sampled_from(EventType),
            at=INSTANTS,
            name=opt(NAME),
            la_code=opt(LA),
            from_la=opt(LA),
            to_la=opt(LA),
            new_postcode=opt(POSTCODE),
            scope=opt(st.sampled_from(ConsentScope)),
        )
    ),
    flags=tuples(
        st.builds(
            Flag,
            code=st.sampled_from(FlagCode),
            la_code=opt(LA),
            text=opt(TEXT),
            decided_by=opt(NAME),
            decided_by_role=opt(NAME),
            inform_family=opt(st.booleans()),
            reason=opt(TEXT),
        )
    ),
    child_views=opt(TEXT),
    source_system=opt(NAME),
)
PARTIES = st.builds(
    DisputeParty,
    name=NAME,
    la_code=LA,
    line_manager=st.builds(LineManager, name=NAME, email=opt(EMAIL), role=opt(NAME)),
    role=opt(NAME),
    organisation=opt(NAME),
)
CONSENT_CHANGES = st.builds(
    ConsentChange,
    case_ref=REF,
    child=CHILDREN,
    action=st.sampled_from(ConsentAction),
    consent=CONSENTS,
)
REFS = st.builds(MessageRef, message_id=UUID, digest=DIGEST)
LIFECYCLE = st.one_of(
    st.builds(
        Recall,
        original=REFS,
        reason=st.sampled_from(RecallReason),
        explanation=opt(TEXT),
        follows=opt(REFS),
    ),
    st.builds(
        Correction,
        original=REFS,
        explanation=REQUIRED_TEXT,
        replacement=st.one_of(ASSESSMENTS, CONSENT_CHANGES),
    ),
    st.builds(
        AccessNotice,
        events=st.lists(
            st.builds(
                AccessEvent,
                message_id=UUID,
                digest=DIGEST,
                at=INSTANTS,
                kind=st.sampled_from(AccessKind),
                by=opt(NAME),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        ErasureRequest,
        request_ref=REF,
        ground=st.sampled_from(ErasureGround),
        messages=st.lists(REFS, min_size=1, max_size=3).map(tuple),
    ),
)
BODIES = st.one_of(
    ASSESSMENTS,
    CONSENT_CHANGES,
    LIFECYCLE,
    st.builds(
        Notification,
        type=st.sampled_from(NotificationType),
        case_ref=opt(REF),
        summary=REQUIRED_TEXT,
        audience=st.sampled_from(Audience),
        child=opt(CHILDREN),
        language=opt(NAME),
        details=tuples(st.builds(Detail, name=NAME, value=TEXT)),
    ),
    st.builds(
        Dispute,
        dispute_id=REF,
        case_ref=REF,
        subject=REQUIRED_TEXT,
        asked=REQUIRED_TEXT,
        raised_by=PARTIES,
        against=PARTIES,
        stage=st.sampled_from(DisputeStage),
        deadline=opt(INSTANTS),
        history=tuples(
            st.builds(
                DisputeEvent,
                at=INSTANTS,
                action=st.sampled_from(DisputeAction),
                by=NAME,
                stage=st.sampled_from(DisputeStage),
                text=opt(TEXT),
            )
        ),
        outcome=opt(TEXT),
        interim_arrangement=opt(TEXT),
        resolved=st.booleans(),
    ),
    st.builds(
        IssueLogEntry,
        entry_id=REF,
        kind=st.sampled_from(IssueKind),
        reported_by_la=LA,
        concerns_la=opt(LA),
        description=REQUIRED_TEXT,
        raised_on=DATES,
    ),
    st.builds(
        Evaluation,
        case_ref=REF,
        child_views=opt(TEXT),
        family_views=opt(TEXT),
        practitioner_views=tuples(
            st.builds(PractitionerView, name=NAME, la_code=opt(LA), views=REQUIRED_TEXT)
        ),
        cross_border_impact=opt(TEXT),
    ),
    st.builds(
        Receipt,
        items=st.lists(
            st.builds(
                ReceiptItem,
                message_id=UUID,
                digest=DIGEST,
                outcome=st.sampled_from(ReceiptOutcome),
                reason=opt(TEXT),
                action=opt(st.sampled_from(ActionTaken)),
                handed_over_at=opt(INSTANTS),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
    ),
)
HEADERS = st.builds(
    Header,
    message_id=UUID,
    correlation_id=REF,
    message_type=st.just(MessageType.ASSESSMENT),  # replaced to match the body
    sender=LA,
    recipient=LA,
    created_at=INSTANTS,
    legal_basis=st.sampled_from(LegalBasis),
    schema_version=st.sampled_from(["1.0", "1.1"]),
    in_reply_to=opt(UUID),
    purpose=opt(st.sampled_from(Purpose)),
    consent_ref=opt(REF),
    safeguarding=opt(
        st.builds(Safeguarding, approver=NAME, reason=REQUIRED_TEXT, approver_role=opt(NAME))
    ),
)
ENVELOPES = st.builds(
    lambda h, b: Envelope(dataclasses.replace(h, message_type=BODY_TYPE[type(b)]), b),
    HEADERS,
    BODIES,
)


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_decodes_and_reencodes_to_an_equal_envelope(path: Path) -> None:
    env = element_to_envelope(_load(path))
    assert element_to_envelope(envelope_to_element(env)) == env
    assert element_to_envelope(_reparse(envelope_to_bytes(env))) == env


def test_there_is_one_example_per_body_type() -> None:
    bodies = {type(element_to_envelope(_load(p)).body) for p in EXAMPLES}
    assert bodies == set(BODY_TYPE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENVELOPES)
def test_random_valid_envelopes_round_trip_exactly_and_validate(env: Envelope) -> None:
    root = envelope_to_element(env)
    VALIDATOR.validate(root)
    assert element_to_envelope(root) == env
    data = envelope_to_bytes(env)
    reparsed = _reparse(data)
    VALIDATOR.validate(reparsed)
    assert element_to_envelope(reparsed) == env
    assert envelope_to_bytes(element_to_envelope(reparsed)) == data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_content_digest_read_from_a_written_envelope_equals_the_body_written_alone(
    path: Path,
) -> None:
    # The outbox takes it from the envelope it has written; the sender's policy and
    # the receiver compute it from the body: the two must never differ.
    env = element_to_envelope(_load(path))
    assert written_content_digest(envelope_to_element(env)) == content_digest(env.body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENVELOPES)
def test_random_envelopes_have_the_same_content_digest_either_way(env: Envelope) -> None:
    assert written_content_digest(envelope_to_element(env)) == content_digest(env.body)


def test_the_dudley_example_carries_row_one_of_the_register() -> None:
    env = element_to_envelope(_load(ROOT / "schemas" / "examples" / "assessment.xml"))
    a = env.body
    assert isinstance(a, Assessment)
    assert a.case_ref == "DUD-2026-00417"
    assert a.child.identifier("UPN") == "J332412014017"
    assert a.child.identifier("NHS") == "9990000018"
    assert (a.child.given_name, a.child.family_name) == ("Siobhán", "O’Neill")
    assert a.child.date_of_birth == date(2014, 3, 14)
    assert a.child.address == Address(postcode="WV14 0QL", la_code="336")
    assert a.consent is not None and a.consent.named_las == ("336", "333")
    assert ConsentScope.SHARE_CROSS_BORDER in a.consent.active_scopes()
    assert [x.due for x in a.actions] == [date(2026, 9, 30), date(2026, 10, 15), date(2026, 10, 31)]
    assert a.outcome is Outcome.MULTI_AGENCY
    assert a.tac_meetings[0].held_on == date(2026, 9, 23)
    assert {e.element for e in a.elements} >= {Element.HEALTH, Element.HOUSING}


# --- canonical lexical forms ----------------------------------------------------------


def _receipt_envelope(created_at: datetime) -> Envelope:
    header = Header(
        message_id="3f6c2a9e-5b1d-4c8e-9a7f-0d2e4b6a8c10",
        correlation_id="C-1",
        message_type=MessageType.RECEIPT,
        sender="332",
        recipient="336",
        created_at=created_at,
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    item = ReceiptItem("3f6c2a9e-5b1d-4c8e-9a7f-0d2e4b6a8c11", "ab" * 32, ReceiptOutcome.ACCEPTED)
    return Envelope(header, Receipt((item,)))


def _created_at_text(env: Envelope) -> str:
    return envelope_to_element(env).findtext(f"{NS}Header/{NS}CreatedAt") or ""


def test_encoding_is_deterministic_utf8_with_a_declaration() -> None:
    env = _receipt_envelope(datetime(2026, 9, 24, 8, 15, tzinfo=UTC))
    data = envelope_to_bytes(env)
    assert data == envelope_to_bytes(env)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_utc_is_written_as_z_and_other_offsets_are_kept() -> None:
    assert _created_at_text(_receipt_envelope(datetime(2026, 9, 24, 8, 15, tzinfo=UTC))) == (
        "2026-09-24T08:15:00Z"
    )
    bst = timezone(timedelta(hours=1))
    env = _receipt_envelope(datetime(2026, 9, 24, 9, 15, 0, 250000, tzinfo=bst))
    assert _created_at_text(env) == "2026-09-24T09:15:00.250000+01:00"
    decoded = element_to_envelope(envelope_to_element(env)).header.created_at
    assert decoded.utcoffset() == timedelta(hours=1)


def test_an_offset_xsd_cannot_express_is_sent_as_the_same_instant_in_utc() -> None:
    odd = timezone(timedelta(minutes=1, seconds=30))
    env = _receipt_envelope(datetime(2026, 9, 24, 8, 16, 30, tzinfo=odd))
    assert _created_at_text(env) == "2026-09-24T08:15:00Z"
    assert element_to_envelope(envelope_to_element(env)) == env


@pytest.mark.parametrize(
    "held_on",
    [date(2026, 7, 16), datetime(2026, 7, 16, 10, 0, tzinfo=timezone(timedelta(hours=1)))],
    ids=["date", "datetime"],
)
def test_tac_meeting_held_on_round_trips_as_a_date_or_a_datetime(held_on: date) -> None:
    body = _minimal_assessment(tac_meetings=(TacMeeting(held_on=held_on),))
    decoded = body_from_element(body_to_element(body))
    assert isinstance(decoded, Assessment)
    assert decoded.tac_meetings[0].held_on == held_on
    assert type(decoded.tac_meetings[0].held_on) is type(held_on)


def test_a_body_alone_is_a_valid_document() -> None:
    body = _minimal_assessment()
    el = body_to_element(body)
    assert el.tag == f"{NS}Assessment"
    VALIDATOR.validate(el)
    assert body_from_element(el) == body


def _minimal_assessment(**changes: object) -> Assessment:
    base = Assessment(
        case_ref="DUD-1",
        child=Child(given_name="A", family_name="B"),
        initiator=None,
        started_on=None,
        status=CaseStatus.DRAFT,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- decoding errors name the element ----------------------------------------------------


def _example(name: str) -> etree._Element:
    return _load(ROOT / "schemas" / "examples" / name)


def _decode_error(root: etree._Element) -> str:
    with pytest.raises(SchemaError) as info:
        element_to_envelope(root)
    return str(info.value)


def test_a_trailing_signature_is_ignored_when_decoding() -> None:
    root = _example("receipt.xml")
    expected = element_to_envelope(root)
    sig = etree.SubElement(root, f"{{{DS}}}Signature")
    etree.SubElement(sig, f"{{{DS}}}SignedInfo")
    assert element_to_envelope(root) == expected
    assert header_from_element(root) == expected.header


def test_a_bad_date_is_reported_with_its_path() -> None:
    root = _example("assessment.xml")
    dob = root.find(f"{NS}Assessment/{NS}Child/{NS}DateOfBirth")
    assert dob is not None
    dob.text = "2014-02-30"
    assert "/Envelope/Assessment/Child/DateOfBirth" in _decode_error(root)


def test_a_bad_code_in_a_repeated_element_is_reported_with_its_position() -> None:
    root = _example("assessment.xml")
    scope = root.findall(f"{NS}Assessment/{NS}Consent/{NS}Scopes/{NS}Scope")[1]
    scope.text = "SHARE_EVERYWHERE"
    message = _decode_error(root)
    assert "/Envelope/Assessment/Consent/Scopes/Scope[2]" in message
    assert "SHARE_EVERYWHERE" in message


def test_a_missing_required_element_is_reported_with_its_path() -> None:
    root = _example("assessment.xml")
    child = root.find(f"{NS}Assessment/{NS}Child")
    assert child is not None
    child.remove(child[0])
    assert "/Envelope/Assessment/Child/GivenName: required element is missing" in _decode_error(
        root
    )


def test_an_unknown_element_is_refused() -> None:
    root = _example("issue-log-entry.xml")
    body = root[1]
    etree.SubElement(body, f"{NS}Colour").text = "blue"
    assert "/Envelope/IssueLogEntry/Colour" in _decode_error(root)


def test_a_body_that_contradicts_the_message_type_is_refused() -> None:
    root = _example("receipt.xml")
    mt = root.find(f"{NS}Header/{NS}MessageType")
    assert mt is not None
    mt.text = "Assessment"
    assert "/Envelope/Header/MessageType" in _decode_error(root)


def test_an_envelope_without_a_body_or_with_two_is_refused() -> None:
    root = _example("receipt.xml")
    body = root[1]
    root.remove(body)
    assert "body is missing" in _decode_error(root)
    root.append(body)
    root.append(_example("receipt.xml")[1])
    assert "exactly one body" in _decode_error(root)


def test_a_naive_datetime_cannot_be_encoded() -> None:
    env = _receipt_envelope(datetime(2026, 9, 24, 8, 15))
    with pytest.raises(SchemaError, match="/Envelope/Header/CreatedAt"):
        envelope_to_element(env)


def test_text_that_xml_cannot_carry_gives_a_schema_error_naming_the_element() -> None:
    body = _minimal_assessment(strengths="bell\x07")
    with pytest.raises(SchemaError, match="/Assessment/Strengths"):
        body_to_element(body)


def test_a_signature_anywhere_but_at_the_end_is_refused() -> None:
    root = _example("receipt.xml")
    root.insert(1, etree.Element(f"{{{DS}}}Signature"))
    assert "/Envelope/Signature" in _decode_error(root)
