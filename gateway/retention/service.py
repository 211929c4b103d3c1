"""Retention runs: plan (a dry run) and apply, for one authority or every hosted one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.crossborder import existence_held
from gateway.crossborder.existence_held import HeldQuery
from gateway.errors import TransportError
from gateway.feature import Kit
from gateway.retention import held_queries, local_copies, purge
from gateway.retention.local_copies import ParkedCopy
from gateway.retention.plan import Due, Plan, plan

JOB_ACTOR = "retention job"
BASIS = "UK GDPR Art 5(1)(e) storage limitation: retention period passed (config/retention.yaml)"


@dataclass(frozen=True)
class RetentionPlan:
    """What a run would erase at one authority now."""

    plan: Plan
    parked: tuple[ParkedCopy, ...]
    notes: tuple[str, ...] = ()
    held: tuple[HeldQuery, ...] = ()
    """Held existence queries past ``existence_held_days`` (``held_queries``)."""
    held_received: tuple[Due, ...] = ()
    """Their ledger rows as received, erased with them; and those of ``about_erased``."""
    about_erased: tuple[HeldQuery, ...] = ()
    """The other held queries the run closes ``ERASED`` or scrubs: about a child whose
    last case it erases (``held_queries.foreseen``), or whose row as received it erases
    by that row's own rule. For a dry run's count (``foresee``): the run finds them
    again as it erases."""
    foreseen: dict[str, int] = field(default_factory=dict)
    """For a dry run (``foresee``): what the run would also do to the rows it erases, as
    they stand now (``purge.foreseen``: withdrawn from the inbox or the outbox, left to
    nobody)."""


def planned(
    kit: Kit, authority: str, limit: int | None = None, *, foresee: bool = True
) -> RetentionPlan:
    """What is past its period at ``authority`` (nothing is changed). ``foresee``: also
    what the run finds as it erases (``about_erased``), which only a dry run shows."""
    kit.outbox.signer(authority)  # only hosted authorities have a ledger side here
    rules = kit.settings.retention
    now = kit.clock()
    with kit.ledger.transaction() as conn:
        found = plan(conn, authority, rules, kit.settings.limits, now, limit)
        held = tuple(held_queries.past(kit, conn, authority, now))
        about: tuple[HeldQuery, ...] = ()
        if foresee:
            about = tuple(held_queries.foreseen(conn, authority, found.due, held))
            counted = {q.message_id for q in (*held, *about)}
            about += tuple(
                q
                for q in existence_held.received_as(conn, authority, found.pks())
                if q.message_id not in counted
            )
        rows = held_queries.received(conn, authority, held, held_queries.RULE)
        rows += held_queries.received(conn, authority, about, held_queries.ERASED_CHILD_RULE)
        due_pks = found.pks()
        rows = [d for d in rows if d.pk not in due_pks]
        foreseen = (
            purge.foreseen(
                kit, conn, authority, (*found.due, *rows), earlier=limit or purge.SWEEP_MAX
            )
            if foresee
            else {}
        )
    cutoff = now - timedelta(days=rules.dead_letter_days)
    parked: tuple[ParkedCopy, ...] = ()
    notes: tuple[str, ...] = ()
    try:
        parked = tuple(local_copies.parked_before(kit, authority, cutoff))
    except TransportError as exc:
        # The ledger's part does not wait for the broker; the next run looks again.
        notes = (f"parked dead letters not checked: {exc}",)
    return RetentionPlan(found, parked, notes, held, tuple(rows), about, foreseen)


def dry_report(planned_run: RetentionPlan, started: datetime) -> purge.RunReport:
    """The report ``apply`` would give, without erasing anything."""
    p = planned_run.plan
    due = (*p.due, *planned_run.held_received)
    closing = len(planned_run.held) + len(planned_run.about_erased)
    foreseen = dict(planned_run.foreseen)
    withdrawn = foreseen.pop(purge.WITHDRAWN_FROM_INBOX, 0)
    state = {held_queries.COUNT: closing} if closing else {}
    by_rule = p.by_rule()
    for row in planned_run.held_received:
        by_rule[row.rule] = by_rule.get(row.rule, 0) + 1
    return purge.RunReport(
        run_id="(dry run)",
        authority=p.authority,
        kind="RETENTION",
        actor=JOB_ACTOR,
        basis=BASIS,
        dry_run=True,
        started_at=started,
        finished_at=started,
        messages=len(due),
        by_rule=dict(sorted(by_rule.items())),
        withdrawn=withdrawn,
        parked=len(planned_run.parked),
        message_ids=tuple(d.message_id for d in due),
        more=p.more,
        notes=planned_run.notes,
        state={**state, **{k: v for k, v in foreseen.items() if v}},
    )


def apply(
    kit: Kit, authority: str, actor: str = JOB_ACTOR, limit: int | None = None
) -> purge.RunReport:
    """Erase what is past its period at ``authority``; the report of what was done."""
    todo = planned(kit, authority, limit, foresee=False)
    return purge.erase(
        kit,
        authority,
        todo.plan.due,
        kind="RETENTION",
        actor=actor,
        basis=BASIS,
        parked=todo.parked,
        held=todo.held,
        more=todo.plan.more,
        notes=todo.notes,
        dismiss_earlier=limit or purge.SWEEP_MAX,
    )


def apply_all(kit: Kit, actor: str = JOB_ACTOR) -> list[purge.RunReport]:
    """One run for every hosted authority."""
    return [apply(kit, code, actor) for code in kit.hosted]
