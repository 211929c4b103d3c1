"""``cafgw disputes``: list, show, raise, comment, escalate and resolve disputes.

Commands record in the ledger; the running gateway (``cafgw run``) sends the
signed messages and escalation notices from its outboxes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.api.auth import ApiKeys
from gateway.api.dispute_schemas import DisputeOut
from gateway.cli.common import ConfigOption, console, friendly, new_table, print_json, settings_from
from gateway.context import Gateway, build
from gateway.disputes import service
from gateway.disputes.service import DisputeView, NewDispute, PartyInput
from gateway.model import DisputeStage, LineManager
from gateway.runtime import open_transport
from gateway.transport.topology import REGIONAL

disputes_app = typer.Typer(help="Disputes between authorities and their escalation ladder.")

AuthorityOption = typer.Option(..., "--authority", help="the party's LA code (hosted here)")
ByOption = typer.Option(..., "--by", help="the name of the person acting")


def _gateway(config: Path | None) -> Gateway:
    settings = settings_from(config)
    return build(settings, open_transport(settings))


def _render(views: list[DisputeView], as_json: bool) -> None:
    if as_json:
        print_json([DisputeOut.of(v).model_dump(mode="json") for v in views])
        return
    table = new_table("dispute", "case", "with", "stage", "deadline", "state")
    for v in views:
        other = service.counterpart(v) or f"{v.parties[0]}/{v.parties[1]}"
        state = "resolved" if v.resolved else ("OVERDUE" if v.overdue else "open")
        deadline = v.deadline.isoformat() if v.deadline else "-"
        table.add_row(v.dispute_id, v.case_ref, other, v.stage.value, deadline, state)
    console.print(table)


def _show(view: DisputeView, as_json: bool) -> None:
    if as_json:
        print_json(DisputeOut.of(view).model_dump(mode="json"))
        return
    console.print(f"[bold]{view.dispute_id}[/bold] case {view.case_ref}: {view.subject}")
    console.print(f"asked: {view.asked}", highlight=False)
    for label, p in (("raised by", view.raised_by), ("against", view.against)):
        console.print(
            f"{label}: {p.name} ({p.la_code}), line manager {p.line_manager.name}",
            highlight=False,
        )
    state = "resolved: " + (view.outcome or "") if view.resolved else f"deadline {view.deadline}"
    console.print(f"stage {view.stage.value}; {state}", highlight=False)
    if view.interim_arrangement:
        console.print(f"interim arrangement: {view.interim_arrangement}", highlight=False)
    for e in view.history:
        console.print(
            f"  {e.at.isoformat()} {e.action.value} {e.stage.value} by {e.by}"
            + (f": {e.text}" if e.text else ""),
            highlight=False,
        )


@disputes_app.command("list")
@friendly
def list_(
    authority: str = typer.Option(..., "--authority", help="LA code, or 'regional'"),
    stage: DisputeStage | None = typer.Option(None, "--stage"),
    overdue: bool = typer.Option(False, "--overdue", help="only overdue disputes"),
    open_only: bool = typer.Option(False, "--open", help="only unresolved disputes"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Disputes of an authority (or the regional group), newest first."""
    gw = _gateway(config)
    views = service.list_disputes(
        gw.kit,
        [authority],
        stage=stage,
        overdue=True if overdue else None,
        resolved=False if open_only else None,
    )
    _render(views, as_json)


@disputes_app.command("show")
@friendly
def show(
    dispute_id: str,
    authority: str = typer.Option(..., "--authority", help="LA code, or 'regional'"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """One dispute with its history."""
    _show(service.get_dispute(_gateway(config).kit, authority, dispute_id), as_json)


@disputes_app.command("raise")
@friendly
def raise_(
    authority: str = AuthorityOption,
    case_ref: str = typer.Option(..., "--case"),
    subject: str = typer.Option(..., "--subject"),
    asked: str = typer.Option(..., "--asked", help="what you ask the other party for"),
    name: str = typer.Option(..., "--name", help="the raising practitioner"),
    line_manager: str | None = typer.Option(None, "--line-manager"),
    against_la: str = typer.Option(..., "--against-la"),
    against_name: str = typer.Option(..., "--against-name"),
    against_line_manager: str | None = typer.Option(None, "--against-line-manager"),
    consent_ref: str | None = typer.Option(None, "--consent-ref"),
    no_personal_data: bool = typer.Option(False, "--no-personal-data"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Raise a dispute against another authority's practitioner or decision."""
    request = NewDispute(
        case_ref=case_ref,
        subject=subject,
        asked=asked,
        raised_by=PartyInput(
            name, authority, line_manager=LineManager(line_manager) if line_manager else None
        ),
        against=PartyInput(
            against_name,
            against_la,
            line_manager=LineManager(against_line_manager) if against_line_manager else None,
        ),
        consent_ref=consent_ref,
        no_personal_data=no_personal_data,
    )
    _show(service.raise_dispute(_gateway(config).kit, authority, request), as_json)


@disputes_app.command("comment")
@friendly
def comment(
    dispute_id: str,
    text: str = typer.Argument(...),
    authority: str = AuthorityOption,
    by: str = ByOption,
    config: Path | None = ConfigOption,
) -> None:
    """Add a comment; the other party receives it."""
    _show(service.comment(_gateway(config).kit, authority, dispute_id, by, text), False)


@disputes_app.command("escalate")
@friendly
def escalate(
    dispute_id: str,
    reason: str = typer.Option(..., "--reason", help="why it cannot wait for the deadline"),
    authority: str = AuthorityOption,
    by: str = ByOption,
    from_stage: DisputeStage | None = typer.Option(
        None,
        "--from-stage",
        help="the stage you saw (cafgw disputes show): refused if the dispute has left it "
        "meanwhile, so running the command again does not climb a second stage",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Escalate to the next stage now."""
    kit = _gateway(config).kit
    _show(service.escalate(kit, authority, dispute_id, by, reason, from_stage), False)


@disputes_app.command("resolve")
@friendly
def resolve(
    dispute_id: str,
    outcome: str = typer.Option(..., "--outcome"),
    interim: str | None = typer.Option(None, "--interim", help="interim arrangement for the child"),
    authority: str = AuthorityOption,
    by: str = ByOption,
    config: Path | None = ConfigOption,
) -> None:
    """Record the outcome; stops the clock and notifies both parties."""
    view = service.resolve(_gateway(config).kit, authority, dispute_id, by, outcome, interim)
    _show(view, False)


@disputes_app.command("regional-key")
@friendly
def regional_key(config: Path | None = ConfigOption) -> None:
    """Issue an API key for the regional coordinators group (shown once)."""
    settings = settings_from(config)
    key = ApiKeys(settings.api_keys_file).issue(
        REGIONAL,
        holder=settings.directory.regional_group.name,
        holder_role="regional coordinators group",
    )
    console.print(key, highlight=False)
