"""The one outbound decision for a local record: from what the sender knows to
what it will do. Pure: ``services.outbound`` reads what is known (``Known``),
calls ``decide_record`` and carries the decision out; nothing here reads or
writes the ledger.

A decision says: the consent decision to record (or why the export's consent
is stale and the record refused); every message the record produces with its
fate (``rules.plan_record``); which of them are identical to what was already
sent (never sent twice); which held copies new consent releases and which a
later export supersedes (a record is held or sent once per recipient, in its
latest version); which queued sends a withdrawal stops; and the sender's own
case thread as it now stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from adapters.base import Converted
from gateway.cases.store import CaseThread
from gateway.model import (
    BODY_TYPE,
    Assessment,
    ConsentAction,
    ConsentRecord,
    ConsentScope,
    IssueLogEntry,
    LegalBasis,
    MessageType,
    Purpose,
)
from gateway.outbox import content_digest
from gateway.policy import notices, rules, sharing
from gateway.policy.consent import (
    LOCAL,
    Effective,
    RegisterEntry,
    Stale,
    action_of,
    effective,
    is_repeat,
    stale,
)
from gateway.policy.governing import plan_digest
from gateway.policy.own_thread import LogLine, thread_after
from gateway.policy.plan import RULE_PLAN_CHANGE
from gateway.settings import Directory, PolicySettings

# Bodies whose identical content is never sent twice to one recipient.
RECORD_TYPES = frozenset({MessageType.ASSESSMENT, MessageType.CONSENT_CHANGE})


@dataclass(frozen=True)
class HeldCopy:
    """A record kept HELD_LOCAL (it may not leave yet) with its intended recipient."""

    pk: int
    message_id: str
    recipient: str
    purpose: Purpose
    case_ref: str | None


@dataclass(frozen=True)
class QueuedCopy:
    """A disclosure of the child queued but not yet sent."""

    pk: int
    recipient: str


@dataclass(frozen=True)
class Known:
    """What the sending authority knows that bears on one record of one child."""

    authority: str
    directory: Directory
    policy: PolicySettings
    now: datetime
    consent_history: tuple[RegisterEntry, ...]
    thread: CaseThread | None
    sent_notices: frozenset[str] = frozenset()
    # Of those the record asks about (``Reads``): whether they are recorded.
    agreements: frozenset[tuple[str, str]] = frozenset()
    known_issue_ids: frozenset[str] = frozenset()
    past_recipients: tuple[str, ...] = ()
    held: tuple[HeldCopy, ...] = ()
    queued: tuple[QueuedCopy, ...] = ()
    # (recipient, content digest) -> the message that already carried it
    sent_content: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # What the reader left out because this record cannot need it (``reads_for``):
    # the child's past recipients and queued copies matter only to a record that
    # newly withdraws consent, held copies of the child's other cases only to one
    # that newly gives it. False: ``past_recipients``/``queued``, or ``held``
    # beyond this record's case, were not read, and a decision that needs them
    # refuses to be taken without them.
    withdrawal_read: bool = True
    all_held_read: bool = True
    # The agreements and issues-log entries looked up (``Reads``); None: all the
    # authority has. A plan that asks about one not looked up is not taken.
    agreements_read: frozenset[tuple[str, str]] | None = None
    issue_ids_read: frozenset[str] | None = None


@dataclass(frozen=True)
class ConsentStep:
    """What a record does to the sender's consent register, judged before writing."""

    before: Effective
    after: Effective
    new: NewConsent | None = None
    stale: Stale | None = None
    # Scopes in force before the record and not after it (a withdrawal).
    newly_withdrawn: frozenset[ConsentScope] = frozenset()

    @property
    def adds(self) -> bool:
        """The record records consent that withdraws nothing (held copies may go)."""
        return self.new is not None and not self.newly_withdrawn


@dataclass(frozen=True)
class Reads:
    """Which of the child's wider history a record's decision needs read."""

    withdrawal: bool  # past recipients and queued copies
    all_held: bool  # held copies of every case of the child, not only the record's
    # The agreements and issues-log entries the plan asks about (``notices``): the
    # record's own, not all the authority has recorded.
    agreements: frozenset[tuple[str, str]] = frozenset()
    issue_ids: frozenset[str] = frozenset()


def reads_for(
    history: tuple[RegisterEntry, ...],
    record: Converted,
    now: datetime,
    authority: str,
    correlation_id: str,
) -> Reads:
    """What ``decide_record`` will need beyond the record's own case, from the consent
    history and the record alone: the reader reads only that (issue 14: these reads
    grew with every earlier record about the child, and with every agreement and
    issues-log entry the authority had recorded)."""
    step = consent_step(history, record, now)
    return Reads(
        withdrawal=bool(step.newly_withdrawn),
        all_held=step.adds,
        agreements=notices.agreements_asked(record.assessment),
        issue_ids=notices.issue_ids_asked(authority, correlation_id, record.assessment),
    )


@dataclass(frozen=True)
class NewConsent:
    """A consent decision to add to the sender's own register."""

    case_ref: str
    consent: ConsentRecord
    action: ConsentAction


@dataclass(frozen=True)
class Release:
    """A held copy that the consent now in force lets go."""

    held: HeldCopy
    consent_ref: str | None


@dataclass
class RecordDecision:
    consent: Effective
    stale: Stale | None = None
    new_consent: NewConsent | None = None
    items: list[rules.Planned] = field(default_factory=list)
    # index in ``items`` -> the message id that already carried identical content
    already_sent: dict[int, str] = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    # held copies replaced by the item at that index (same case, same recipient)
    superseded: list[tuple[HeldCopy, int]] = field(default_factory=list)
    stops: list[QueuedCopy] = field(default_factory=list)
    thread: CaseThread | None = None
    log: list[LogLine] = field(default_factory=list)
    issues: list[IssueLogEntry] = field(default_factory=list)


def consent_step(
    history: tuple[RegisterEntry, ...], record: Converted, now: datetime
) -> ConsentStep:
    """The consent a record brings, judged against the register's ``history``: stale,
    a repeat (no new entry), or a new entry, and what it withdraws."""
    a = record.assessment
    before = effective(history)
    submitted = a.consent or (record.consent.consent if record.consent else None)
    if submitted is None:
        return ConsentStep(before, before)
    action = action_of(submitted)
    too_old = stale(history, LOCAL, action, submitted)
    if too_old is not None:
        return ConsentStep(before, before, stale=too_old)
    if is_repeat(history, LOCAL, action, submitted):
        return ConsentStep(before, before)
    new = NewConsent(a.case_ref, submitted, action)
    after = effective(with_new(history, new, now))
    return ConsentStep(before, after, new, None, before.active_scopes() - after.active_scopes())


def with_new(
    history: tuple[RegisterEntry, ...], new: NewConsent, now: datetime
) -> tuple[RegisterEntry, ...]:
    """The history as it will be once ``new`` is recorded (for judging before writing)."""
    entry = RegisterEntry(
        entry_id=max((e.entry_id for e in history), default=0) + 1,
        case_ref=new.case_ref,
        source=LOCAL,
        message_id=None,
        action=new.action,
        consent=new.consent,
        entered_at=now,
    )
    return (*history, entry)


def _check_asked(known: Known, a: Assessment, correlation_id: str) -> None:
    """LookupError when the plan will ask about an agreement or issues-log entry that
    was not looked up: read as absent, it would send a notice again."""
    if known.agreements_read is not None and not (
        notices.agreements_asked(a) <= known.agreements_read
    ):
        raise LookupError(f"{a.case_ref}: the record's out-of-area agreements were not read")
    if known.issue_ids_read is not None and not (
        notices.issue_ids_asked(known.authority, correlation_id, a) <= known.issue_ids_read
    ):
        raise LookupError(f"{a.case_ref}: the record's service gaps were not looked up")


def decide_record(known: Known, record: Converted, correlation_id: str) -> RecordDecision:
    """Everything one converted local record leads to (see the module's docstring)."""
    a = record.assessment
    step = consent_step(known.consent_history, record, known.now)
    if step.stale is not None:
        return RecordDecision(consent=step.before, stale=step.stale)
    new, after, newly = step.new, step.after, step.newly_withdrawn
    if newly and not known.withdrawal_read:
        raise LookupError(
            f"{a.case_ref}: the record withdraws consent, but the child's past recipients "
            "and queued copies were not read"
        )
    if step.adds and not known.all_held_read:
        raise LookupError(
            f"{a.case_ref}: the record gives consent, but the child's held copies were not read"
        )
    _check_asked(known, a, correlation_id)
    decision = RecordDecision(consent=after, new_consent=new)
    thread = known.thread
    ctx = rules.RecordContext(
        authority=known.authority,
        directory=known.directory,
        policy=known.policy,
        assessment=a,
        consent_change=record.consent,
        requested=record.share_with,
        purpose=record.purpose,
        consent=after,
        correlation_id=correlation_id,
        today=known.now.date(),
        newly_withdrawn=newly,
        withdrawal_recipients=known.past_recipients if newly else (),
        sent_notices=known.sent_notices,
        agreements=known.agreements,
        known_issue_ids=known.known_issue_ids,
        inform_family=thread.inform_family if thread else None,
    )
    plan = rules.plan_record(ctx)
    digest_now = plan_digest(a)
    consent_ref = after.reference(known.authority)
    items = plan.items
    if (
        thread is not None
        and thread.plan_digest
        and thread.plan_digest != digest_now
        and consent_ref == thread.plan_consent_ref
    ):
        items = _refuse_plan_change(items)
    decision.items = items
    decision.issues = list(plan.issues)
    _mark_already_sent(known, decision)
    _supersede_and_release(known, decision, a.case_ref, new is not None and not newly)
    if newly:
        decision.stops = [
            q
            for q in known.queued
            if sharing.covers(
                after, known.policy, known.authority, q.recipient, Purpose.SHARE_CROSS_BORDER
            )
            is not None
        ]
    sent = any(
        i.role == rules.Role.RECORD and i.sendable and n not in decision.already_sent
        for n, i in enumerate(items)
    )
    decision.thread, decision.log = thread_after(
        known.authority,
        known.thread,
        correlation_id,
        record,
        plan,
        digest_now,
        consent_ref,
        sent=sent,
    )
    return decision


def _refuse_plan_change(items: list[rules.Planned]) -> list[rules.Planned]:
    reason = (
        "the plan (actions or lead professional) changed but the consent is the one the "
        "previous plan relied on; it is the child's plan: record the consent for the change"
    )
    return [
        replace(p, refusal=sharing.Refusal(RULE_PLAN_CHANGE, reason, p.recipient))
        if p.role == rules.Role.RECORD and p.sendable
        else p
        for p in items
    ]


def _mark_already_sent(known: Known, decision: RecordDecision) -> None:
    """Identical content already sent to a recipient is not sent to it again."""
    for index, item in enumerate(decision.items):
        if not item.sendable or item.role != rules.Role.RECORD:
            continue
        if BODY_TYPE[type(item.body)] not in RECORD_TYPES:
            continue
        earlier = known.sent_content.get((item.recipient, content_digest(item.body)))
        if earlier is not None:
            decision.already_sent[index] = earlier


def _supersede_and_release(
    known: Known, decision: RecordDecision, case_ref: str, consent_added: bool
) -> None:
    """A held copy is superseded by this record's own message for the same recipient
    (sent or held again: the latest version is the one that counts); held copies
    that are not superseded are released when new consent covers them."""
    replaced: dict[str, int] = {}
    for index, item in enumerate(decision.items):
        if item.role == rules.Role.RECORD and BODY_TYPE[type(item.body)] == MessageType.ASSESSMENT:
            replaced.setdefault(item.recipient, index)
    for held in known.held:
        if held.case_ref == case_ref and held.recipient in replaced:
            decision.superseded.append((held, replaced[held.recipient]))
            continue
        if not consent_added or not decision.consent.given:
            continue
        if (
            sharing.covers(
                decision.consent, known.policy, known.authority, held.recipient, held.purpose
            )
            is None
        ):
            decision.releases.append(Release(held, decision.consent.reference(known.authority)))


def personal(item: rules.Planned) -> bool:
    """Whether a planned message carries personal data."""
    return item.legal_basis != LegalBasis.NO_PERSONAL_DATA
