"""The canonical message model of namespace ``urn:caf-exchange:1``.

Frozen, typed data that every layer passes around: adapters produce it,
``gateway.envelope.codec`` turns it into XML and back, policy reads it.
Field names follow the XSD in ``schemas/caf-exchange-1.xsd``; dates are
``datetime.date``, instants are timezone-aware ``datetime.datetime`` (UTC
when produced by cafgw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

NAMESPACE = "urn:caf-exchange:1"
SCHEMA_VERSION = "1.0"


class MessageType(StrEnum):
    ASSESSMENT = "Assessment"
    CONSENT_CHANGE = "ConsentChange"
    NOTIFICATION = "Notification"
    DISPUTE = "Dispute"
    ISSUE_LOG_ENTRY = "IssueLogEntry"
    EVALUATION = "Evaluation"
    RECEIPT = "Receipt"
    RECALL = "Recall"
    CORRECTION = "Correction"
    ACCESS_NOTICE = "AccessNotice"
    ERASURE_REQUEST = "ErasureRequest"


class LegalBasis(StrEnum):
    CONSENT = "CONSENT"
    SAFEGUARDING = "SAFEGUARDING"
    CONSENT_WITHDRAWAL = "CONSENT_WITHDRAWAL"
    NO_PERSONAL_DATA = "NO_PERSONAL_DATA"


class Purpose(StrEnum):
    """Why a message is sent; consent must cover the purpose (issue 6)."""

    SHARE_CROSS_BORDER = "SHARE_CROSS_BORDER"
    INVITE_TO_TAC = "INVITE_TO_TAC"
    EXISTENCE_CHECK = "EXISTENCE_CHECK"
    FUNDING_REQUEST = "FUNDING_REQUEST"
    CASE_TRANSFER = "CASE_TRANSFER"
    SAFEGUARDING_REFERRAL = "SAFEGUARDING_REFERRAL"
    COORDINATION = "COORDINATION"
    DISPUTE_RESOLUTION = "DISPUTE_RESOLUTION"
    EVALUATION = "EVALUATION"


class Gender(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"
    OTHER = "OTHER"
    NOT_KNOWN = "NOT_KNOWN"


class Domain(StrEnum):
    """The three domains of the assessment framework triangle."""

    DEVELOPMENT = "DEVELOPMENT"
    PARENTING = "PARENTING"
    FAMILY_ENVIRONMENT = "FAMILY_ENVIRONMENT"


class Element(StrEnum):
    """The 19 elements of the framework; every local dimension maps onto one."""

    HEALTH = "Health"
    EDUCATION = "Education"
    EMOTIONAL_AND_BEHAVIOURAL_DEVELOPMENT = "EmotionalAndBehaviouralDevelopment"
    IDENTITY = "Identity"
    FAMILY_AND_SOCIAL_RELATIONSHIPS = "FamilyAndSocialRelationships"
    SOCIAL_PRESENTATION = "SocialPresentation"
    SELF_CARE_SKILLS = "SelfCareSkills"
    BASIC_CARE = "BasicCare"
    ENSURING_SAFETY = "EnsuringSafety"
    EMOTIONAL_WARMTH = "EmotionalWarmth"
    STIMULATION = "Stimulation"
    GUIDANCE_AND_BOUNDARIES = "GuidanceAndBoundaries"
    STABILITY = "Stability"
    FAMILY_HISTORY_AND_FUNCTIONING = "FamilyHistoryAndFunctioning"
    WIDER_FAMILY = "WiderFamily"
    HOUSING = "Housing"
    EMPLOYMENT_AND_INCOME = "EmploymentAndIncome"
    SOCIAL_INTEGRATION = "SocialIntegration"
    COMMUNITY_RESOURCES = "CommunityResources"


ELEMENT_DOMAIN: dict[Element, Domain] = {
    **{
        e: Domain.DEVELOPMENT
        for e in (
            Element.HEALTH,
            Element.EDUCATION,
            Element.EMOTIONAL_AND_BEHAVIOURAL_DEVELOPMENT,
            Element.IDENTITY,
            Element.FAMILY_AND_SOCIAL_RELATIONSHIPS,
            Element.SOCIAL_PRESENTATION,
            Element.SELF_CARE_SKILLS,
        )
    },
    **{
        e: Domain.PARENTING
        for e in (
            Element.BASIC_CARE,
            Element.ENSURING_SAFETY,
            Element.EMOTIONAL_WARMTH,
            Element.STIMULATION,
            Element.GUIDANCE_AND_BOUNDARIES,
            Element.STABILITY,
        )
    },
    **{
        e: Domain.FAMILY_ENVIRONMENT
        for e in (
            Element.FAMILY_HISTORY_AND_FUNCTIONING,
            Element.WIDER_FAMILY,
            Element.HOUSING,
            Element.EMPLOYMENT_AND_INCOME,
            Element.SOCIAL_INTEGRATION,
            Element.COMMUNITY_RESOURCES,
        )
    },
}


class Outcome(StrEnum):
    NO_FURTHER_ACTION = "NO_FURTHER_ACTION"
    SINGLE_AGENCY = "SINGLE_AGENCY"
    MULTI_AGENCY = "MULTI_AGENCY"
    SAFEGUARDING_REFERRAL = "SAFEGUARDING_REFERRAL"


class CaseStatus(StrEnum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    SUBMITTED = "SUBMITTED"
    CLOSED = "CLOSED"


class ActionStatus(StrEnum):
    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    CANCELLED = "CANCELLED"


class ConsentScope(StrEnum):
    RECORD = "RECORD"
    SHARE_WITHIN_LA = "SHARE_WITHIN_LA"
    SHARE_CROSS_BORDER = "SHARE_CROSS_BORDER"
    INVITE_TO_TAC = "INVITE_TO_TAC"
    EXISTENCE_CHECK = "EXISTENCE_CHECK"


class ConsentAction(StrEnum):
    GIVEN = "GIVEN"
    REFUSED = "REFUSED"
    WITHDRAWN = "WITHDRAWN"


class ConsentRole(StrEnum):
    PARENT = "PARENT"
    CARER = "CARER"
    CHILD = "CHILD"
    OTHER = "OTHER"


class EventType(StrEnum):
    LEAD_PROFESSIONAL_ALLOCATED = "LEAD_PROFESSIONAL_ALLOCATED"
    CHILD_MOVED = "CHILD_MOVED"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"


class FlagCode(StrEnum):
    SERVICE_GAP = "SERVICE_GAP"
    SIGNIFICANT_HARM = "SIGNIFICANT_HARM"
    NOTIFY_AUTHORITY = "NOTIFY_AUTHORITY"


class NotificationType(StrEnum):
    CROSS_BORDER_CASE_IDENTIFIED = "CROSS_BORDER_CASE_IDENTIFIED"
    EXISTENCE_QUERY = "EXISTENCE_QUERY"
    EXISTENCE_ANSWER = "EXISTENCE_ANSWER"
    ASSESSMENT_COMPLETED = "ASSESSMENT_COMPLETED"
    LEAD_PROFESSIONAL_ALLOCATED = "LEAD_PROFESSIONAL_ALLOCATED"
    GOVERNING_AUTHORITY_CHANGED = "GOVERNING_AUTHORITY_CHANGED"
    CHILD_MOVED_AREA = "CHILD_MOVED_AREA"
    CASE_TRANSFER = "CASE_TRANSFER"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    CONSENT_NEEDED = "CONSENT_NEEDED"
    SIGNIFICANT_HARM_REFERRAL = "SIGNIFICANT_HARM_REFERRAL"
    FUNDING_REQUEST = "FUNDING_REQUEST"
    FUNDING_PROBLEM = "FUNDING_PROBLEM"
    SERVICE_GAP = "SERVICE_GAP"
    TAC_INVITATION = "TAC_INVITATION"
    OUT_OF_AREA_SERVICE = "OUT_OF_AREA_SERVICE"
    FAMILY_NOTICE = "FAMILY_NOTICE"
    UNDELIVERABLE = "UNDELIVERABLE"
    # the recipient says a message was not for it ("not ours"): its sender recalls it
    MISDIRECTED = "MISDIRECTED"


class Audience(StrEnum):
    PROFESSIONAL = "PROFESSIONAL"
    FAMILY = "FAMILY"


class DisputeStage(StrEnum):
    PRACTITIONERS = "PRACTITIONERS"
    COORDINATORS = "COORDINATORS"
    REGIONAL_GROUP = "REGIONAL_GROUP"
    LINE_MANAGERS = "LINE_MANAGERS"


class DisputeAction(StrEnum):
    RAISED = "RAISED"
    COMMENTED = "COMMENTED"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"


class IssueKind(StrEnum):
    SERVICE_GAP = "SERVICE_GAP"
    CROSS_BORDER_RISK = "CROSS_BORDER_RISK"


class ReceiptOutcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    UNDELIVERABLE = "UNDELIVERABLE"


class RecallReason(StrEnum):
    """Why the sender takes a message back."""

    MISDIRECTED = "MISDIRECTED"  # sent to an authority that is not a party
    WRONG_CHILD = "WRONG_CHILD"  # about another child
    NO_BASIS = "NO_BASIS"  # sent without consent or another legal basis
    WRONG_CONTENT = "WRONG_CONTENT"  # not to be relied on; no correction follows
    OTHER = "OTHER"


class ErasureGround(StrEnum):
    """Why personal data must be erased: the grounds of UK GDPR Article 17(1)(a)-(e)."""

    NO_LONGER_NECESSARY = "NO_LONGER_NECESSARY"
    CONSENT_WITHDRAWN = "CONSENT_WITHDRAWN"
    OBJECTION = "OBJECTION"
    UNLAWFUL = "UNLAWFUL"
    LEGAL_OBLIGATION = "LEGAL_OBLIGATION"


class AccessKind(StrEnum):
    """How a received record was opened at the receiving authority."""

    LOCAL_ACK = "LOCAL_ACK"  # its local system acknowledged (took) it
    API_READ = "API_READ"  # a person read it through the gateway's API
    LOCAL_DOWNLOAD = "LOCAL_DOWNLOAD"  # it was served in the local format


class ActionTaken(StrEnum):
    """What a receiving gateway did about a recall, correction or erasure notice."""

    WITHDRAWN = "WITHDRAWN"  # taken out of the inbox before the local system had it
    PASSED_ON = "PASSED_ON"  # the local system had it (HandedOverAt); the notice went to it
    ERASED = "ERASED"  # erased here (tombstone kept)
    NOT_HELD = "NOT_HELD"  # nothing of it is held here
    REFUSED = "REFUSED"  # not acted on (Reason says why, e.g. not from the original's sender)


# --- shared parts -----------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """An identifier of a child: ``UPN``, ``NHS`` or a local scheme."""

    scheme: str
    value: str


@dataclass(frozen=True)
class Address:
    line1: str | None = None
    town: str | None = None
    postcode: str | None = None
    la_code: str | None = None


@dataclass(frozen=True)
class School:
    name: str
    la_code: str | None = None


@dataclass(frozen=True)
class Child:
    """Identity of the child; the stable key is UPN, else NHS, else name + DOB."""

    given_name: str
    family_name: str
    date_of_birth: date | None = None
    gender: Gender = Gender.NOT_KNOWN
    preferred_name: str | None = None
    identifiers: tuple[Identifier, ...] = ()
    address: Address | None = None
    school: School | None = None
    ethnicity: str | None = None
    religion: str | None = None
    language: str | None = None
    interpreter_needed: bool | None = None
    local_person_id: str | None = None

    def identifier(self, scheme: str) -> str | None:
        for ident in self.identifiers:
            if ident.scheme == scheme:
                return ident.value
        return None


@dataclass(frozen=True)
class Carer:
    name: str
    relationship: str | None = None
    parental_responsibility: bool | None = None
    interpreter_needed: bool | None = None
    language: str | None = None


@dataclass(frozen=True)
class Practitioner:
    name: str
    role: str | None = None
    organisation: str | None = None
    la_code: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class ElementAssessment:
    """One element: rating 1 (no concern) to 4 (severe), or a concern flag."""

    element: Element
    rating: int | None = None
    concern: bool | None = None
    notes: str | None = None

    @property
    def domain(self) -> Domain:
        return ELEMENT_DOMAIN[self.element]


@dataclass(frozen=True)
class PlanAction:
    """A SMART action of the plan."""

    seq: int
    description: str
    owner: str | None = None
    owner_la: str | None = None
    due: date | None = None
    status: ActionStatus | None = None
    # Where the action is delivered, when that is not the owner's own authority.
    delivery_la: str | None = None


@dataclass(frozen=True)
class LeadProfessionalPeriod:
    practitioner: Practitioner
    from_date: date | None = None
    to_date: date | None = None


@dataclass(frozen=True)
class Attendee:
    name: str
    role: str | None = None
    la_code: str | None = None


@dataclass(frozen=True)
class TacMeeting:
    held_on: datetime | date
    venue: str | None = None
    attendees: tuple[Attendee, ...] = ()
    lead_professional_agreed: Practitioner | None = None


@dataclass(frozen=True)
class CaseEvent:
    """A dated event in the case: lead professional allocated, child moved, ..."""

    type: EventType
    at: datetime
    name: str | None = None
    la_code: str | None = None
    from_la: str | None = None
    to_la: str | None = None
    new_postcode: str | None = None
    scope: ConsentScope | None = None


@dataclass(frozen=True)
class Flag:
    code: FlagCode
    la_code: str | None = None
    text: str | None = None
    decided_by: str | None = None
    decided_by_role: str | None = None
    inform_family: bool | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Withdrawal:
    scope: ConsentScope
    at: datetime | None = None
    by: str | None = None


@dataclass(frozen=True)
class ConsentRecord:
    """Consent as the local system recorded it, with scopes and withdrawals."""

    given: bool
    given_by: str | None = None
    role: ConsentRole | None = None
    role_text: str | None = None
    gillick_competent: bool = False
    recorded_at: datetime | date | None = None
    scopes: tuple[ConsentScope, ...] = ()
    named_las: tuple[str, ...] = ()
    withdrawn: tuple[Withdrawal, ...] = ()

    def active_scopes(self) -> frozenset[ConsentScope]:
        if not self.given:
            return frozenset()
        gone = {w.scope for w in self.withdrawn}
        return frozenset(s for s in self.scopes if s not in gone)


# --- bodies -----------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    case_ref: str
    child: Child
    initiator: Practitioner | None
    started_on: date | None
    status: CaseStatus
    carers: tuple[Carer, ...] = ()
    completed_on: date | None = None
    consent: ConsentRecord | None = None
    elements: tuple[ElementAssessment, ...] = ()
    strengths: str | None = None
    needs: str | None = None
    outcome: Outcome | None = None
    actions: tuple[PlanAction, ...] = ()
    lead_professionals: tuple[LeadProfessionalPeriod, ...] = ()
    tac_meetings: tuple[TacMeeting, ...] = ()
    events: tuple[CaseEvent, ...] = ()
    flags: tuple[Flag, ...] = ()
    child_views: str | None = None
    source_system: str | None = None


@dataclass(frozen=True)
class ConsentChange:
    case_ref: str
    child: Child
    action: ConsentAction
    consent: ConsentRecord


@dataclass(frozen=True)
class Detail:
    name: str
    value: str


@dataclass(frozen=True)
class Notification:
    type: NotificationType
    case_ref: str | None
    summary: str
    audience: Audience = Audience.PROFESSIONAL
    child: Child | None = None
    language: str | None = None
    details: tuple[Detail, ...] = ()


@dataclass(frozen=True)
class LineManager:
    name: str
    email: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class DisputeParty:
    name: str
    la_code: str
    line_manager: LineManager
    role: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class DisputeEvent:
    at: datetime
    action: DisputeAction
    by: str
    stage: DisputeStage
    text: str | None = None


@dataclass(frozen=True)
class Dispute:
    dispute_id: str
    case_ref: str
    subject: str
    asked: str
    raised_by: DisputeParty
    against: DisputeParty
    stage: DisputeStage
    deadline: datetime | None = None
    history: tuple[DisputeEvent, ...] = ()
    outcome: str | None = None
    interim_arrangement: str | None = None
    resolved: bool = False


@dataclass(frozen=True)
class IssueLogEntry:
    entry_id: str
    kind: IssueKind
    reported_by_la: str
    concerns_la: str | None
    description: str
    raised_on: date


@dataclass(frozen=True)
class PractitionerView:
    name: str
    la_code: str | None
    views: str


@dataclass(frozen=True)
class Evaluation:
    case_ref: str
    child_views: str | None
    family_views: str | None
    practitioner_views: tuple[PractitionerView, ...] = ()
    cross_border_impact: str | None = None


@dataclass(frozen=True)
class ReceiptItem:
    message_id: str
    digest: str
    outcome: ReceiptOutcome
    reason: str | None = None
    # For a recall, correction or erasure notice: what was done about the original.
    action: ActionTaken | None = None
    handed_over_at: datetime | None = None


@dataclass(frozen=True)
class AuditHead:
    """The newest entry of an audit chain: its sequence number and hash (0 when empty)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class HeldAuditHead:
    """A head of the recipient's audit chain the signer holds, and the receipt it came in."""

    seq: int
    hash: str
    reported_in: str


@dataclass(frozen=True)
class Receipt:
    items: tuple[ReceiptItem, ...]
    # The signer's audit chain head when it signed (None in receipts from before).
    audit_head: AuditHead | None = None
    # Heads of the recipient's chain the signer holds, given back to be checked.
    held_heads: tuple[HeldAuditHead, ...] = ()


@dataclass(frozen=True)
class MessageRef:
    """One earlier message, by its id and the digest of its exact bytes."""

    message_id: str
    digest: str


@dataclass(frozen=True)
class Recall:
    """The sender takes back a message it sent (only the original's sender may)."""

    original: MessageRef
    reason: RecallReason
    explanation: str | None = None  # free text for the coordinator; no personal data
    # A recall passed on by an authority that had forwarded the original: the recall it follows.
    follows: MessageRef | None = None


@dataclass(frozen=True)
class Correction:
    """A corrected version that supersedes an earlier message (or an earlier correction)."""

    original: MessageRef
    explanation: str
    replacement: Assessment | ConsentChange | Notification | Evaluation


@dataclass(frozen=True)
class AccessEvent:
    """A received record was opened at the receiving authority."""

    message_id: str
    digest: str
    at: datetime
    kind: AccessKind
    by: str | None = None  # a role or system, never a person's name


@dataclass(frozen=True)
class AccessNotice:
    """Access events batched back to the sender of the records."""

    events: tuple[AccessEvent, ...]


# Messages a sender names in one ErasureRequest at most (more go in further requests),
# and those of a request a recipient stands for (and locks each id of while it records
# the request): the first so many it names. A request from a sender before 2026-12-07
# may name more: the rest are erased if held, never stood for.
ERASURE_NAMED_MAX = 256


@dataclass(frozen=True)
class ErasureRequest:
    """The sender erased its copies of these messages and asks the recipient to erase its own."""

    request_ref: str  # the sending council's request reference; never a name
    ground: ErasureGround
    messages: tuple[MessageRef, ...]

    def named(self) -> dict[str, MessageRef]:
        """What it names, by id: the first digest named for each, in order (a message
        is one id; a second digest named for it is not that message)."""
        first: dict[str, MessageRef] = {}
        for ref in self.messages:
            first.setdefault(ref.message_id, ref)
        return first

    def standing_for(self) -> list[MessageRef]:
        """What a recipient may stand for: the first ``ERASURE_NAMED_MAX`` it names."""
        return list(self.named().values())[:ERASURE_NAMED_MAX]


Body = (
    Assessment
    | ConsentChange
    | Notification
    | Dispute
    | IssueLogEntry
    | Evaluation
    | Receipt
    | Recall
    | Correction
    | AccessNotice
    | ErasureRequest
)

BODY_TYPE: dict[type, MessageType] = {
    Assessment: MessageType.ASSESSMENT,
    ConsentChange: MessageType.CONSENT_CHANGE,
    Notification: MessageType.NOTIFICATION,
    Dispute: MessageType.DISPUTE,
    IssueLogEntry: MessageType.ISSUE_LOG_ENTRY,
    Evaluation: MessageType.EVALUATION,
    Receipt: MessageType.RECEIPT,
    Recall: MessageType.RECALL,
    Correction: MessageType.CORRECTION,
    AccessNotice: MessageType.ACCESS_NOTICE,
    ErasureRequest: MessageType.ERASURE_REQUEST,
}


# --- envelope ---------------------------------------------------------------


@dataclass(frozen=True)
class Safeguarding:
    """Who approved sharing without consent, and why (basis SAFEGUARDING)."""

    approver: str
    reason: str
    approver_role: str | None = None


@dataclass(frozen=True)
class Header:
    message_id: str
    correlation_id: str
    message_type: MessageType
    sender: str
    recipient: str
    created_at: datetime
    legal_basis: LegalBasis
    schema_version: str = SCHEMA_VERSION
    in_reply_to: str | None = None
    purpose: Purpose | None = None
    consent_ref: str | None = None
    safeguarding: Safeguarding | None = None


@dataclass(frozen=True)
class Envelope:
    header: Header
    body: Body = field()

    def __post_init__(self) -> None:
        expected = BODY_TYPE[type(self.body)]
        if expected != self.header.message_type:
            raise ValueError(f"header says {self.header.message_type} but body is {expected}")
