"""Disputes: raise, comment, escalate, resolve, and the clock that escalates them.

Every action runs in one ledger transaction: the state change, its history
event, the signed snapshot for the other party (ordinary outbox) and the
escalation notices (notice outbox) commit together. The clock is the raising
party's gateway: ``escalate_due`` moves each of its open disputes whose stage
deadline has passed one step up the ladder, with a conditional update so that
of several gateway processes on one ledger exactly one does it.

A dispute never blocks the child's plan: nothing in the outbound policy
consults disputes; the current plan stands until the dispute is resolved.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from gateway.cases.identity import correlation_id
from gateway.disputes import escalations, ladder, store
from gateway.disputes.calendar import WorkingCalendar
from gateway.disputes.messages import counterpart_of, queue_notices, send_to_counterpart
from gateway.disputes.store import StoredDispute
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.feature import Kit
from gateway.model import (
    Dispute,
    DisputeAction,
    DisputeEvent,
    DisputeParty,
    DisputeStage,
    LegalBasis,
    LineManager,
)
from gateway.transport.topology import REGIONAL

CLOCK_ACTOR = "cafgw"


@dataclass(frozen=True)
class PartyInput:
    """A party as the raiser describes it; the line manager defaults from the directory."""

    name: str
    la_code: str
    role: str | None = None
    organisation: str | None = None
    line_manager: LineManager | None = None


@dataclass(frozen=True)
class NewDispute:
    case_ref: str
    subject: str
    asked: str
    raised_by: PartyInput
    against: PartyInput
    consent_ref: str | None = None
    no_personal_data: bool = False
    interim_arrangement: str | None = None


@dataclass(frozen=True)
class DisputeView:
    """A dispute as one party (or the regional group) sees it."""

    dispute_id: str
    view_of: str  # the authority whose copy this is, or "regional"
    case_ref: str
    subject: str
    asked: str
    raised_by: DisputeParty
    against: DisputeParty
    stage: DisputeStage
    deadline: datetime | None
    resolved: bool
    outcome: str | None
    interim_arrangement: str | None
    overdue: bool
    overdue_escalations: int
    history: tuple[DisputeEvent, ...]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    @property
    def parties(self) -> tuple[str, str]:
        return self.raised_by.la_code, self.against.la_code


def _now(kit: Kit, now: datetime | None = None) -> datetime:
    return (now or kit.clock()).astimezone(UTC).replace(microsecond=0)


def _calendar(kit: Kit) -> WorkingCalendar:
    return WorkingCalendar.from_settings(kit.settings.disputes)


def stage_deadline(kit: Kit, stage: DisputeStage, start: datetime) -> datetime:
    """When ``stage``, entered at ``start``, escalates by itself."""
    days = kit.settings.disputes.working_days[stage.value]
    return _calendar(kit).deadline(start, days)


def _view(stored: StoredDispute, overdue_escalations: int, now: datetime) -> DisputeView:
    d = stored.dispute
    final_passed = (
        not d.resolved and d.stage is ladder.FINAL and d.deadline is not None and d.deadline <= now
    )
    return DisputeView(
        dispute_id=d.dispute_id,
        view_of=stored.authority,
        case_ref=d.case_ref,
        subject=d.subject,
        asked=d.asked,
        raised_by=d.raised_by,
        against=d.against,
        stage=d.stage,
        deadline=d.deadline,
        resolved=d.resolved,
        outcome=d.outcome,
        interim_arrangement=d.interim_arrangement,
        overdue=not d.resolved and (overdue_escalations > 0 or final_passed),
        overdue_escalations=overdue_escalations,
        history=d.history,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        resolved_at=stored.resolved_at,
    )


def _views(kit: Kit, stored: Sequence[StoredDispute]) -> list[DisputeView]:
    owners = sorted({s.authority for s in stored})
    overdue = escalations.overdue_counts(kit.ledger, owners) if owners else {}
    now = _now(kit)
    return [_view(s, overdue.get((s.authority, s.dispute.dispute_id), 0), now) for s in stored]


def _party(kit: Kit, given: PartyInput) -> DisputeParty:
    manager = given.line_manager
    if manager is None:
        # Authority teams report to the line manager named in authorities.yaml.
        contact = kit.settings.directory.get(given.la_code).line_manager
        manager = LineManager(name=contact.name, email=contact.email, role=contact.role)
    return DisputeParty(
        name=given.name,
        la_code=given.la_code,
        line_manager=manager,
        role=given.role,
        organisation=given.organisation,
    )


def _hosted(kit: Kit, authority: str) -> None:
    if authority not in kit.hosted:
        raise NotFoundError(f"authority {authority} is not hosted by this gateway")


def _event(
    now: datetime, action: DisputeAction, by: str, stage: DisputeStage, text: str | None
) -> DisputeEvent:
    return DisputeEvent(at=now, action=action, by=by.strip(), stage=stage, text=text)


def _required(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise PolicyRefusal(f"dispute.{name}", f"{name} must not be empty")
    return value.strip()


def raise_dispute(kit: Kit, authority: str, request: NewDispute) -> DisputeView:
    """Record a new dispute raised by a practitioner of ``authority`` and tell the other party."""
    _hosted(kit, authority)
    if request.raised_by.la_code != authority:
        raise PolicyRefusal(
            "dispute.raised-by",
            f"the raising party's LA {request.raised_by.la_code} is not the caller {authority}",
        )
    other = request.against.la_code
    if other == authority:
        raise PolicyRefusal(
            "dispute.counterpart", "a dispute is between practitioners of two different authorities"
        )
    if other not in kit.settings.directory:
        raise PolicyRefusal("dispute.counterpart", f"authority {other} is not in authorities.yaml")
    if request.consent_ref:
        basis, consent = LegalBasis.CONSENT, request.consent_ref.strip()
    elif request.no_personal_data:
        basis, consent = LegalBasis.NO_PERSONAL_DATA, None
    else:
        raise PolicyRefusal(
            "dispute.legal-basis",
            "give the consent reference the case is shared under (consent_ref), or state "
            "explicitly that the dispute carries no personal data (no_personal_data)",
        )
    now = _now(kit)
    raiser = _party(kit, request.raised_by)
    body = Dispute(
        dispute_id=f"DSP-{authority}-{uuid.uuid4().hex[:16]}",
        case_ref=_required(request.case_ref, "case_ref"),
        subject=_required(request.subject, "subject"),
        asked=_required(request.asked, "asked"),
        raised_by=raiser,
        against=_party(kit, request.against),
        stage=DisputeStage.PRACTITIONERS,
        deadline=stage_deadline(kit, DisputeStage.PRACTITIONERS, now),
        history=(_event(now, DisputeAction.RAISED, raiser.name, DisputeStage.PRACTITIONERS, None),),
        interim_arrangement=request.interim_arrangement,
    )
    with kit.ledger.transaction() as conn:
        store.insert_dispute(
            conn,
            authority,
            body,
            correlation_id=correlation_id(authority, body.case_ref),
            legal_basis=basis.value,
            consent_ref=consent,
            source=authority,
            now=now,
        )
        stored = store.load(conn, authority, body.dispute_id)
        assert stored is not None
        send_to_counterpart(kit.outbox, stored, authority, conn)
    return _views(kit, [stored])[0]


def _open_for_action(kit: Kit, authority: str, dispute_id: str, conn: Connection) -> StoredDispute:
    stored = store.load(conn, authority, dispute_id, lock=True)
    if stored is None:
        raise NotFoundError(f"dispute {dispute_id} not found")
    if stored.dispute.resolved:
        raise PolicyRefusal("dispute.resolved", _resolved_already(stored.dispute))
    return stored


def _resolved_already(dispute: Dispute) -> str:
    """Why nothing more may be done: who resolved the dispute, when, with what outcome
    (a second click, or a colleague a moment earlier, learns it here)."""
    done = [e for e in dispute.history if e.action == DisputeAction.RESOLVED]
    if not done:
        return f"dispute {dispute.dispute_id} was resolved; its record is closed"
    last = done[-1]
    return (
        f"dispute {dispute.dispute_id} was resolved by {last.by} at "
        f"{last.at.isoformat(timespec='seconds')} ({dispute.outcome or last.text}); "
        "its record is closed"
    )


def comment(kit: Kit, authority: str, dispute_id: str, by: str, text: str) -> DisputeView:
    """Add a comment to an open dispute; the other party receives it."""
    _hosted(kit, authority)
    by, text = _required(by, "by"), _required(text, "text")
    now = _now(kit)
    with kit.ledger.transaction() as conn:
        stored = _open_for_action(kit, authority, dispute_id, conn)
        event = _event(now, DisputeAction.COMMENTED, by, stored.dispute.stage, text)
        # The same comment in the same second (a double click) is the same event, held
        # already: the other party was sent it, so nothing new is sent.
        fresh = stored
        if store.add_events(conn, stored.pk, [event], authority):
            store.touch(conn, stored.pk, now)
            reloaded = store.load(conn, authority, dispute_id)
            assert reloaded is not None
            fresh = reloaded
            send_to_counterpart(kit.outbox, fresh, authority, conn)
    return _views(kit, [fresh])[0]


def _climb(
    kit: Kit,
    authority: str,
    stored: StoredDispute,
    by: str,
    reason: str,
    now: datetime,
    conn: Connection,
    *,
    only_if_due: bool,
) -> StoredDispute | None:
    """One step up the ladder; None if another process moved it first."""
    old = stored.dispute.stage
    new = ladder.next_stage(old, regional=kit.settings.disputes.regional_stage)
    if new is None:
        raise PolicyRefusal(
            "dispute.top-stage",
            f"dispute {stored.dispute.dispute_id} is already with the line managers of both "
            "parties, the last stage",
        )
    deadline = stage_deadline(kit, new, now)
    if not store.advance(conn, stored.pk, old, new, deadline, now, only_if_due=only_if_due):
        return None
    event = _event(now, DisputeAction.ESCALATED, by, new, reason)
    store.add_events(conn, stored.pk, [event], authority)
    fresh = store.load(conn, authority, stored.dispute.dispute_id)
    assert fresh is not None
    send_to_counterpart(kit.outbox, fresh, authority, conn)
    queue_notices(kit.outbox, fresh, authority, conn)
    return fresh


def escalate(
    kit: Kit,
    authority: str,
    dispute_id: str,
    by: str,
    reason: str,
    from_stage: DisputeStage | None = None,
) -> DisputeView:
    """Either party escalates an open dispute before its deadline, with a reason.

    ``from_stage``: the stage the caller saw and escalates from. Two requests at once
    (a double click) or a retry after a lost answer otherwise climb twice: the second
    waits for the first's lock, then climbs again from where the first left it,
    skipping a stage and sending a second round of notices. Given, a dispute that
    has left it meanwhile is refused instead.
    """
    _hosted(kit, authority)
    by, reason = _required(by, "by"), _required(reason, "reason")
    now = _now(kit)
    with kit.ledger.transaction() as conn:
        stored = _open_for_action(kit, authority, dispute_id, conn)
        _still_at(stored, from_stage)
        fresh = _climb(kit, authority, stored, by, reason, now, conn, only_if_due=False)
        if fresh is None:
            raise PolicyRefusal(
                "dispute.moved", f"dispute {dispute_id} changed meanwhile; look at it again"
            )
    return _views(kit, [fresh])[0]


def _still_at(stored: StoredDispute, from_stage: DisputeStage | None) -> None:
    """Refuse an escalation from ``from_stage`` of a dispute (read under its lock) that
    has already left it: escalated meanwhile, by this caller's first click or anyone."""
    stage = stored.dispute.stage
    if from_stage is not None and stage is not from_stage:
        raise PolicyRefusal(
            "dispute.moved",
            f"dispute {stored.dispute.dispute_id} is at the {stage.value} stage, no longer "
            f"at {from_stage.value}: it was escalated meanwhile; look at it again",
        )


def resolve(
    kit: Kit,
    authority: str,
    dispute_id: str,
    by: str,
    outcome: str,
    interim_arrangement: str | None = None,
) -> DisputeView:
    """Record the outcome (and any interim arrangement for the child), stop the clock,
    and notify both parties."""
    _hosted(kit, authority)
    by, outcome = _required(by, "by"), _required(outcome, "outcome")
    now = _now(kit)
    with kit.ledger.transaction() as conn:
        stored = _open_for_action(kit, authority, dispute_id, conn)
        interim = interim_arrangement or stored.dispute.interim_arrangement
        if not store.mark_resolved(conn, stored.pk, outcome, interim, now):
            raise PolicyRefusal("dispute.resolved", f"dispute {dispute_id} was already resolved")
        event = _event(now, DisputeAction.RESOLVED, by, stored.dispute.stage, outcome)
        store.add_events(conn, stored.pk, [event], authority)
        escalations.close_for_dispute(conn, authority, dispute_id)
        fresh = store.load(conn, authority, dispute_id)
        assert fresh is not None
        send_to_counterpart(kit.outbox, fresh, authority, conn)
        queue_notices(kit.outbox, fresh, authority, conn)
    return _views(kit, [fresh])[0]


def escalate_due(kit: Kit, now: datetime | None = None, limit: int = 100) -> int:
    """Escalate every open dispute owned here whose stage deadline has passed.

    Safe with several gateway processes on one ledger: the stage moves by a
    conditional update, so exactly one process escalates each dispute.
    """
    moment = _now(kit, now)
    with kit.ledger.transaction() as conn:
        candidates = store.due(conn, kit.hosted, moment, limit)
    done = 0
    for pk, authority, dispute_id, stage in candidates:
        with kit.ledger.transaction() as conn:
            stored = store.load(conn, authority, dispute_id)
            if stored is None or stored.pk != pk or stored.dispute.stage is not stage:
                continue
            reason = f"the {stage.value.lower().replace('_', ' ')} stage deadline passed"
            if _climb(kit, authority, stored, CLOCK_ACTOR, reason, moment, conn, only_if_due=True):
                done += 1
    return done


def get_dispute(kit: Kit, viewer: str, dispute_id: str) -> DisputeView:
    """``viewer``'s copy (an LA code or ``regional``); NotFoundError for anyone else."""
    with kit.ledger.transaction() as conn:
        stored = store.load(conn, viewer, dispute_id)
    if stored is None:
        raise NotFoundError(f"dispute {dispute_id} not found")
    return _views(kit, [stored])[0]


def list_disputes(
    kit: Kit,
    viewers: Sequence[str] | None,
    *,
    stage: DisputeStage | None = None,
    overdue: bool | None = None,
    involving: str | None = None,
    resolved: bool | None = None,
    limit: int = 500,
) -> list[DisputeView]:
    """Copies held for ``viewers`` (None: all, for an admin), filtered."""
    with kit.ledger.transaction() as conn:
        stored = store.load_many(
            conn, viewers, stage=stage, resolved=resolved, involving=involving, limit=limit
        )
    views = _views(kit, stored)
    if overdue is not None:
        views = [v for v in views if v.overdue == overdue]
    return views


def open_disputes(kit: Kit, authority: str) -> list[DisputeView]:
    """Unresolved disputes of ``authority`` (an LA code or ``regional``), for the dashboard;
    ``overdue`` marks those whose escalation went unacknowledged or whose last stage passed."""
    return list_disputes(kit, [authority], resolved=False)


def counterpart(view: DisputeView) -> str | None:
    """The other party seen from the copy's holder (None for the regional group's copy)."""
    if view.view_of == REGIONAL:
        return None
    body_parties = view.parties
    return body_parties[1] if body_parties[0] == view.view_of else body_parties[0]


__all__ = [
    "DisputeView",
    "NewDispute",
    "PartyInput",
    "comment",
    "counterpart_of",
    "escalate",
    "escalate_due",
    "get_dispute",
    "list_disputes",
    "open_disputes",
    "raise_dispute",
    "resolve",
]
