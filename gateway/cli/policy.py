"""``cafgw consent``, ``cases``, ``issues-log``, ``existence`` and ``agreements``.

Reads come from the ledger; sends are recorded in the outbox and published
by the running gateway (``cafgw run``). A policy refusal prints its rule.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from gateway.cases import store as cases
from gateway.cli.common import (
    ConfigOption,
    acting_authority,
    console,
    friendly,
    new_table,
    print_json,
    settings_from,
)
from gateway.context import Gateway, build
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.model import Child, Evaluation, Identifier, Safeguarding
from gateway.policy import existence
from gateway.runtime import open_transport
from gateway.services import coordination, views

consent_app = typer.Typer(help="The consent register: the consent in force and its history.")
cases_app = typer.Typer(
    help="Case threads: governing authority, parties, lead professionals, notices."
)
existence_app = typer.Typer(help="Existence queries with keyed hashes (and the regional key).")
agreements_app = typer.Typer(help="Prior agreements to deliver services outside one's own area.")

AuthorityOption = typer.Option(
    None, "--authority", help="the authority acting (default: the only one hosted here)"
)
JsonOption = typer.Option(False, "--json", help="print JSON")


def _gateway(config: Path | None) -> Gateway:
    settings = settings_from(config)
    return build(settings, open_transport(settings))


def _acting(config: Path | None, authority: str | None) -> tuple[Gateway, str]:
    gw = _gateway(config)
    return gw, acting_authority(gw.settings, authority)


def _case(gw: Gateway, authority: str, ref: str) -> views.CaseView:
    """A case thread by its correlation id or by the case reference it carries."""
    try:
        return views.case_of(gw, authority, ref)
    except NotFoundError:
        with gw.ledger.transaction() as conn:
            thread = cases.find_by_case_ref(conn, authority, ref[:64])
        if thread is None:
            raise NotFoundError(
                f"case {ref} not found at {authority} (neither a thread id nor a case reference)"
            ) from None
        return views.case_of(gw, authority, thread.correlation_id)


def _refusal(exc: PolicyRefusal) -> typer.Exit:
    console.print(f"[red]refused by rule {exc.rule}[/red]: {exc.reason}", highlight=False)
    return typer.Exit(3)


@consent_app.command("show")
@friendly
def consent_show(
    ref: str = typer.Argument(..., help="child key, UPN, NHS number or case reference"),
    authority: str | None = AuthorityOption,
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """The consent in force for a child and every decision recorded."""
    gw, code = _acting(config, authority)
    v = views.consent_of(gw, code, ref)
    if as_json:
        print_json(
            {
                "child_key": v.child_key,
                "given": v.given,
                "decided_by_child": v.decided_by_child,
                "active_scopes": v.active_scopes,
                "withdrawn_scopes": v.withdrawn_scopes,
                "named_las": v.named_las,
                "consent_ref": v.consent_ref,
                "history": [
                    {
                        "source": e.source,
                        "action": e.action.value,
                        "role": e.consent.role.value if e.consent.role else None,
                        "gillick_competent": e.consent.gillick_competent,
                        "scopes": [s.value for s in e.consent.scopes],
                        "withdrawn": [w.scope.value for w in e.consent.withdrawn],
                    }
                    for e in v.history
                ],
            }
        )
        return
    state = "given" if v.given else "NOT given"
    who = " (the Gillick-competent child's own decision)" if v.decided_by_child else ""
    console.print(
        f"consent {state}{who}; in force: {', '.join(v.active_scopes) or 'none'}", highlight=False
    )
    if v.withdrawn_scopes:
        console.print(f"withdrawn: {', '.join(v.withdrawn_scopes)}", highlight=False)
    if v.named_las:
        console.print(f"named authorities: {', '.join(v.named_las)}", highlight=False)
    table = new_table("#", "source", "action", "role", "Gillick", "scopes", "withdrawn")
    for e in v.history:
        table.add_row(
            str(e.entry_id),
            e.source,
            e.action.value,
            e.consent.role.value if e.consent.role else "-",
            "yes" if e.consent.gillick_competent else "no",
            ", ".join(s.value for s in e.consent.scopes),
            ", ".join(w.scope.value for w in e.consent.withdrawn),
        )
    console.print(table)


@cases_app.command("show")
@friendly
def cases_show(
    correlation_id: str = typer.Argument(
        ..., help="the case thread id (correlation id) or the case reference"
    ),
    authority: str | None = AuthorityOption,
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """A case thread: who governs, parties, lead professionals, notices and messages."""
    gw, code = _acting(config, authority)
    v = _case(gw, code, correlation_id)
    t = v.thread
    if as_json:
        print_json(
            {
                "correlation_id": t.correlation_id,
                "case_ref": t.case_ref,
                "initiating_la": t.initiating_la,
                "residence_la": t.residence_la,
                "governing_la": t.governing_la,
                "governing_since": t.governing_since,
                "inform_family": t.inform_family,
                "parties": t.parties,
                "lead_professionals": [x.__dict__ for x in t.leads],
                "log": [
                    {
                        "at": e.at,
                        "kind": e.kind,
                        "counterparty": e.counterparty,
                        "message_id": e.message_id,
                        "detail": e.detail,
                    }
                    for e in t.log
                ],
            }
        )
        return
    console.print(f"[bold]{t.case_ref}[/bold] thread {t.correlation_id}", highlight=False)
    console.print(
        f"initiated in {t.initiating_la}; child lives in {t.residence_la}; governed by "
        f"{t.governing_la} (since {t.governing_since or 'the start'}); funding requests to "
        f"{t.residence_la}; parties {', '.join(t.parties)}",
        highlight=False,
    )
    for x in t.leads:
        views_note = "child's views recorded" if x.child_views else "child's views NOT recorded"
        console.print(
            f"lead professional: {x.name} ({x.la_code}) from {x.since or '-'}; {views_note}",
            highlight=False,
        )
    table = new_table("at", "what", "with", "detail")
    for e in t.log:
        table.add_row(
            e.at.isoformat(timespec="seconds"), e.kind, e.counterparty or "-", e.detail or ""
        )
    console.print(table)


@cases_app.command("evaluate")
@friendly
def cases_evaluate(
    correlation_id: str = typer.Argument(...),
    authority: str | None = AuthorityOption,
    child_views: str = typer.Option(None, "--child-views"),
    family_views: str = typer.Option(None, "--family-views"),
    practitioner: list[str] = typer.Option([], "--practitioner", help="NAME|LA|VIEWS, repeatable"),
    impact: str = typer.Option(None, "--cross-border-impact"),
    config: Path | None = ConfigOption,
) -> None:
    """Send the lead professional's evaluation to the local and the involved coordinators."""
    from gateway.model import PractitionerView  # noqa: PLC0415

    gw, authority = _acting(config, authority)
    v = _case(gw, authority, correlation_id)
    views_in = []
    for spec in practitioner:
        name, la, text = [*spec.split("|", 2), "", ""][:3]
        views_in.append(PractitionerView(name, la or None, text))
    evaluation = Evaluation(
        v.thread.case_ref or correlation_id, child_views, family_views, tuple(views_in), impact
    )
    try:
        sent = coordination.send_evaluation(gw, authority, v.thread.correlation_id, evaluation)
    except PolicyRefusal as exc:
        raise _refusal(exc) from None
    for s in sent:
        console.print(f"{s.recipient}: {s.status.value} {s.reason or ''}".rstrip(), highlight=False)


@friendly
def issues_log_command(
    authority: str | None = AuthorityOption,
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """The regional issues log (service gaps, cross-border risks; no personal data)."""
    gw, code = _acting(config, authority)
    found = views.issues_of(gw, code)
    if as_json:
        print_json(
            [
                {**i.entry.__dict__, "kind": i.entry.kind.value, "received_from": i.received_from}
                for i in found
            ]
        )
        return
    table = new_table("entry", "kind", "reported by", "concerns", "raised", "description")
    for i in found:
        e = i.entry
        table.add_row(
            e.entry_id,
            e.kind.value,
            e.reported_by_la,
            e.concerns_la or "-",
            e.raised_on.isoformat(),
            e.description,
        )
    console.print(table)


@existence_app.command("init-key")
@friendly
def existence_init_key(config: Path | None = ConfigOption) -> None:
    """Create the regional HMAC key file named in policy.yaml (never commit it)."""
    path = settings_from(config).policy.existence_key_file
    made = existence.create_key(path)
    console.print(
        f"{'created' if made else 'kept the existing'} regional key at {path}", highlight=False
    )


@existence_app.command("ask")
@friendly
def existence_ask(
    recipient: str = typer.Argument(..., help="the authority to ask"),
    authority: str | None = AuthorityOption,
    given_name: str = typer.Option(..., "--given-name"),
    family_name: str = typer.Option(..., "--family-name"),
    dob: str = typer.Option(None, "--dob", help="date of birth, YYYY-MM-DD"),
    upn: str = typer.Option(None, "--upn"),
    nhs: str = typer.Option(None, "--nhs"),
    approver: str = typer.Option(None, "--safeguarding-approver"),
    reason: str = typer.Option(None, "--safeguarding-reason"),
    config: Path | None = ConfigOption,
) -> None:
    """Ask whether a CAF exists for a child (consent for the check, or safeguarding)."""
    ids = tuple(
        x
        for x in (Identifier("UPN", upn) if upn else None, Identifier("NHS", nhs) if nhs else None)
        if x
    )
    child = Child(
        given_name, family_name, date.fromisoformat(dob) if dob else None, identifiers=ids
    )
    safeguarding = Safeguarding(approver, reason) if approver and reason else None
    try:
        sent = coordination.ask_existence(
            *_acting(config, authority), recipient, child, safeguarding
        )
    except PolicyRefusal as exc:
        raise _refusal(exc) from None
    console.print(f"query {sent.message_id} to {recipient} queued", highlight=False)


@existence_app.command("answer")
@friendly
def existence_show(
    message_id: str = typer.Argument(...),
    authority: str | None = AuthorityOption,
    config: Path | None = ConfigOption,
) -> None:
    """The answer to an existence query, once it has arrived."""
    found = views.existence_answer(*_acting(config, authority), message_id)
    console.print(found.describe(), highlight=False)


@existence_app.command("held")
@friendly
def existence_held(
    authority: str | None = AuthorityOption,
    config: Path | None = ConfigOption,
) -> None:
    """Safeguarding-basis existence queries waiting for the coordinator's decision."""
    waiting = coordination.held_existence_queries(*_acting(config, authority))
    for q in waiting:
        console.print(
            f"{q.message_id}  from {q.requester}  approver {q.approver} ({q.approver_role})  "
            f"reason {q.reason!r}  received {q.received_at:%Y-%m-%d %H:%M}",
            highlight=False,
        )
    if not waiting:
        console.print("no existence query waits", highlight=False)


@existence_app.command("decide")
@friendly
def existence_decide(
    message_id: str = typer.Argument(...),
    approve: bool = typer.Option(..., "--approve/--refuse", help="answer it, or send nothing"),
    by: str = typer.Option(..., "--by", help="the coordinator deciding"),
    authority: str | None = AuthorityOption,
    config: Path | None = ConfigOption,
) -> None:
    """Approve (answer) or refuse (send nothing) a held existence query."""
    try:
        done = coordination.decide_existence_query(
            *_acting(config, authority), message_id, approve, by
        )
    except PolicyRefusal as exc:
        raise _refusal(exc) from None
    q = done.query
    if done.already:
        when = q.decided_at.isoformat(timespec="seconds") if q.decided_at else "earlier"
        console.print(
            f"{message_id}: already {(q.decision or '').lower()} by {q.decided_by} at {when}; "
            "nothing done again",
            highlight=False,
        )
        return
    console.print(f"{message_id}: {'answered' if approve else 'refused'}", highlight=False)


@agreements_app.command("add")
@friendly
def agreements_add(
    practitioner: str = typer.Argument(...),
    delivery_la: str = typer.Option(..., "--delivery-la"),
    line_manager: str = typer.Option(..., "--line-manager"),
    coordinator: str = typer.Option(..., "--coordinator"),
    authority: str | None = AuthorityOption,
    config: Path | None = ConfigOption,
) -> None:
    """Record a prior agreement (practitioner, line manager, local CAF coordinator)."""
    try:
        coordination.record_agreement(
            *_acting(config, authority), practitioner, delivery_la, line_manager, coordinator
        )
    except PolicyRefusal as exc:
        raise _refusal(exc) from None
    console.print(
        f"agreement recorded: {practitioner} may deliver in {delivery_la}", highlight=False
    )
