"""``cafgw retention plan|apply`` and ``cafgw children erase``: erasing with tombstones.

``plan`` is the dry run: what is past its period now, by rule, nothing
changed. ``apply`` erases it (the worker's ``retention`` job does the same
every ``interval_s``). ``children erase`` erases one child on request.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, console, friendly, print_json, settings_from
from gateway.context import Gateway, build
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.retention import erasure, service
from gateway.retention.purge import RunReport
from gateway.runtime import open_gateway, open_transport
from gateway.subject_access import html
from gateway.subject_access import report as subject_report

retention_app = typer.Typer(
    help="Retention: erase personal data past its period, keep tombstones.",
    no_args_is_help=True,
)
children_app = typer.Typer(
    help="One child's data: subject-access report, erasure on request.", no_args_is_help=True
)
AuthorityOption = typer.Option(None, "--authority", help="only this LA code (default: all hosted)")
JsonOption = typer.Option(False, "--json", help="print JSON")
ByOption = typer.Option(None, "--by", help="who asked (default: the login name)")


def _gateway(config: Path | None) -> Gateway:
    return open_gateway(settings_from(config))


def _codes(gw: Gateway, authority: str | None) -> tuple[str, ...]:
    if authority is None:
        return gw.hosted
    if authority not in gw.hosted:
        raise NotFoundError(f"authority {authority} is not hosted by this gateway")
    return (authority,)


def report_json(report: RunReport) -> dict[str, object]:
    return {
        "run_id": report.run_id,
        "authority": report.authority,
        "kind": report.kind,
        "dry_run": report.dry_run,
        "actor": report.actor,
        "basis": report.basis,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat(),
        **report.summary(),
        "more_due": report.more,
        "message_ids": list(report.message_ids),
        "notes": list(report.notes),
    }


def _print(report: RunReport) -> None:
    verb = "would erase" if report.dry_run else "erased"
    console.print(
        f"[bold]{report.authority}[/bold] {report.kind.lower()} {report.run_id}: {verb} "
        f"{report.messages} messages, {report.parked} parked dead letters"
        + ("" if report.dry_run else f", {report.local_files} local files")
        + (" (more are due: run again)" if report.more else ""),
        highlight=False,
    )
    for rule, count in report.by_rule.items():
        console.print(f"  {count:6d}  {rule}", highlight=False)
    for what, count in report.state.items():
        console.print(f"  {count:6d}  {what.replace('_', ' ')}", highlight=False)
    for note in report.notes:
        console.print(f"  note: {note}", highlight=False)


@retention_app.command("plan")
@friendly
def plan(
    authority: str | None = AuthorityOption,
    limit: int = typer.Option(500, "--limit", help="messages looked at per authority"),
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """Dry run: what is past its retention period now, by rule (nothing is changed)."""
    gw = _gateway(config)
    try:
        out = []
        for code in _codes(gw, authority):
            todo = service.planned(gw, code, limit)
            report = service.dry_report(todo, gw.clock())
            out.append(report)
            if not as_json:
                _print(report)
                table = Table("message", "type", "status", "rule", "counted from", "due since")
                for d in todo.plan.due[:20]:
                    table.add_row(
                        d.message_id,
                        d.message_type,
                        d.status,
                        d.rule,
                        d.since,
                        d.due_at.date().isoformat(),
                    )
                if todo.plan.due:
                    console.print(table)
        if as_json:
            print_json([report_json(r) for r in out])
    finally:
        gw.transport.close()


@retention_app.command("apply")
@friendly
def apply(
    authority: str | None = AuthorityOption,
    by: str | None = ByOption,
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """Erase what is past its retention period; tombstones stay; report what was done."""
    gw = _gateway(config)
    try:
        actor = by or getpass.getuser()
        reports = [service.apply(gw, code, actor) for code in _codes(gw, authority)]
    finally:
        gw.transport.close()
    if as_json:
        print_json([report_json(r) for r in reports])
        return
    for report in reports:
        _print(report)


@children_app.command("report")
@friendly
def report_command(
    ref: str = typer.Argument(..., help="child key, UPN, NHS number or case reference"),
    authority: str = typer.Option(..., "--authority", help="the authority answering"),
    fmt: str = typer.Option("json", "--format", help="json, html or pdf"),
    out: Path | None = typer.Option(None, "--out", help="write here (default: stdout)"),
    config: Path | None = ConfigOption,
) -> None:
    """Subject-access report: every disclosure, consent decision, opening and recall."""
    if fmt not in ("json", "html", "pdf"):
        raise typer.BadParameter("--format must be json, html or pdf")
    gw = build(settings_from(config), open_transport(settings_from(config)))
    found = subject_report.build(gw, authority, ref, f"{getpass.getuser()} via cafgw report")
    if fmt == "pdf":
        from gateway.subject_access import pdf  # noqa: PLC0415 - fpdf is heavy (~45 MB RSS)

        data = pdf.render_pdf(found)
    elif fmt == "html":
        data = html.render_html(found).encode("utf-8")
    else:
        data = (json.dumps(found.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if out is None:
        if fmt == "pdf":
            raise typer.BadParameter("--format pdf needs --out FILE")
        sys.stdout.write(data.decode("utf-8"))
        return
    out.write_bytes(data)
    console.print(f"report written to {out}", highlight=False)


@children_app.command("erase")
@friendly
def erase(
    ref: str = typer.Argument(..., help="child key, UPN, NHS number or case reference"),
    authority: str = typer.Option(..., "--authority", help="the authority erasing (hosted here)"),
    ground: erasure.ErasureGround = typer.Option(..., "--ground", help="UK GDPR Art 17(1) ground"),
    reference: str = typer.Option(..., "--reference", help="the council's request reference"),
    by: str | None = ByOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would go; change nothing"),
    as_json: bool = JsonOption,
    config: Path | None = ConfigOption,
) -> None:
    """Erase everything this authority holds about one child (tombstones stay)."""
    gw = _gateway(config)
    try:
        if dry_run:
            todo = erasure.plan_erasure(gw, authority, ref, reference)
            result = {
                "authority": authority,
                "dry_run": True,
                "messages": len(todo.due),
                "case_threads": len(todo.threads),
                "parked_dead_letters": len(todo.parked),
                "disclosed_to": {k: len(v) for k, v in todo.disclosed_to.items()},
                "message_ids": [d.message_id for d in todo.due],
            }
            if as_json:
                print_json(result)
            else:
                console.print(
                    f"would erase {result['messages']} messages on {result['case_threads']} case "
                    f"threads and {result['parked_dead_letters']} parked dead letters; personal "
                    f"data was sent to {', '.join(todo.disclosed_to) or 'no other authority'}",
                    highlight=False,
                )
            return
        try:
            report = erasure.erase_child(
                gw,
                authority,
                ref,
                ground=ground,
                reference=reference,
                actor=by or getpass.getuser(),
            )
        except PolicyRefusal as exc:
            console.print(f"[red]refused by rule {exc.rule}[/red]: {exc.reason}", highlight=False)
            raise typer.Exit(3) from None
    finally:
        gw.transport.close()
    if as_json:
        print_json(report_json(report))
    else:
        _print(report)
