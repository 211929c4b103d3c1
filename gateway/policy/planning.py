"""The vocabulary of planning what a local record produces: each planned message
(``Planned``), what the planner is given (``RecordContext``) and what it
returns (``RecordPlan``); shared by ``rules`` (the record itself),
``notices`` (the notices the guidance asks for) and ``safeguarding``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from gateway.model import (
    Assessment,
    Body,
    ConsentChange,
    ConsentScope,
    IssueLogEntry,
    LegalBasis,
    Purpose,
    Safeguarding,
)
from gateway.policy.consent import Effective
from gateway.policy.governing import Governing
from gateway.policy.sharing import Refusal, covers
from gateway.settings import Directory, PolicySettings

RULE_UNKNOWN_RECIPIENT = "sharing.unknown-recipient"


class Role(StrEnum):
    RECORD = "record"  # the record itself (what the practitioner asked to share)
    NOTICE = "notice"  # a notice the guidance asks for


@dataclass(frozen=True)
class Planned:
    """One message to record: sent (no refusal, not held), held, or refused."""

    recipient: str
    body: Body
    legal_basis: LegalBasis
    purpose: Purpose | None
    role: Role
    consent_ref: str | None = None
    safeguarding: Safeguarding | None = None
    held: Refusal | None = None
    refusal: Refusal | None = None
    notice_key: str | None = None

    @property
    def sendable(self) -> bool:
        return self.held is None and self.refusal is None


@dataclass(frozen=True)
class RecordContext:
    authority: str
    directory: Directory
    policy: PolicySettings
    assessment: Assessment
    consent_change: ConsentChange | None
    requested: tuple[str, ...]
    purpose: Purpose
    consent: Effective
    correlation_id: str
    today: date
    newly_withdrawn: frozenset[ConsentScope] = frozenset()
    withdrawal_recipients: tuple[str, ...] = ()
    sent_notices: frozenset[str] = frozenset()
    agreements: frozenset[tuple[str, str]] = frozenset()
    known_issue_ids: frozenset[str] = frozenset()
    inform_family: bool | None = None


@dataclass
class RecordPlan:
    governing: Governing
    items: list[Planned] = field(default_factory=list)
    issues: list[IssueLogEntry] = field(default_factory=list)
    inform_family: bool | None = None
    review_by: date | None = None


def coverage(ctx: RecordContext, recipient: str, purpose: Purpose) -> Refusal | None:
    """Why the consent in force does not cover ``recipient`` for ``purpose`` (None: it does)."""
    return covers(ctx.consent, ctx.policy, ctx.authority, recipient, purpose)


def consent_id(ctx: RecordContext) -> str:
    """Names the decision in force (its content, not where it is stored)."""
    entry = ctx.consent.entry
    if entry is None:
        return "none"
    return hashlib.sha256(entry.fingerprint().encode("utf-8")).hexdigest()[:16]
