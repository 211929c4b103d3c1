"""``cafgw send``, ``status`` and ``messages``: the ledger from the command line."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.api.schemas import MessageOut, SubmitOut
from gateway.cli import reports
from gateway.cli.common import (
    ConfigOption,
    acting_authority,
    console,
    err_console,
    friendly,
    new_table,
    print_json,
    settings_from,
)
from gateway.cli.reports import outcome_table
from gateway.context import build, load_adapters
from gateway.ledger import search
from gateway.ledger.status import Status
from gateway.ledger.store import Ledger, authorities_held
from gateway.runtime import check_broker, open_transport
from gateway.services import delivery, outbound


@friendly
def send(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    authority: str | None = typer.Option(
        None, "--authority", help="the sending authority (default: the only one hosted here)"
    ),
    adapter: str = typer.Option(..., "--adapter"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    config: Path | None = ConfigOption,
) -> None:
    """Convert a local export and send every record that may leave; report each one."""
    settings = settings_from(config)
    authority = acting_authority(settings, authority)
    outbound.own_adapter(load_adapters(settings), adapter, authority)  # before any connection
    check_broker(settings.broker.nodes)
    gw = build(settings, open_transport(settings))
    try:
        if settings.broker.declare_topology:
            gw.transport.declare(gw.hosted)
        errors = 0
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed} records"),
            TextColumn("{task.fields[rate]:.0f} rec/s"),
            TextColumn("[red]{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task(f"converting {file.name}", total=None, rate=0.0, errors=0)
            started = time.monotonic()

            def tick(outcome: outbound.RecordOutcome) -> None:
                nonlocal errors
                errors += outcome.status == Status.REJECTED
                done = progress.tasks[task].completed + 1
                rate = done / max(time.monotonic() - started, 1e-6)
                progress.update(task, completed=done, rate=rate, errors=errors)

            with file.open("rb") as stream:
                report = outbound.submit_local(gw, authority, adapter, stream, file.name, tick)
        published = 0
        while True:
            summary = delivery.publish_outbox(gw)
            published += summary.confirmed
            if summary.confirmed == 0:
                break
        if as_json:
            print_json(SubmitOut.of(report).model_dump(mode="json"))
        else:
            for o in report.outcomes:
                if o.status == Status.REJECTED:
                    for reason in o.reasons:
                        err_console.print(reason, markup=False, highlight=False, soft_wrap=True)
            console.print(outcome_table(report, f"{file.name}: what happened to each record"))
            console.print(
                f"{reports.summary(report)}; {published} messages published "
                "(cafgw status MESSAGE_ID follows one)",
                highlight=False,
                soft_wrap=True,
            )
        if report.rejected:
            raise typer.Exit(1)
    finally:
        gw.transport.close()


def _table(records: list, title: str) -> Table:  # type: ignore[type-arg]
    table = new_table(
        *("message id", "dir", "authority", "from", "to", "type", "status", "reason"), title=title
    )
    for r in records:
        table.add_row(
            r.message_id,
            r.direction.value[:3],
            r.authority,
            r.sender,
            r.recipient,
            r.message_type,
            r.status.value,
            r.reason or "",
        )
    return table


@friendly
def status(
    message_id: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Status history of a message (every copy this gateway holds)."""
    ledger = Ledger.open(settings_from(config).database.url)
    with ledger.transaction() as conn:
        held = authorities_held(conn)  # named, the id's index finds the copies
    records = ledger.find(message_id=message_id, authorities=held)
    if not records:
        err_console.print(f"message {message_id} not found")
        raise typer.Exit(1)
    if as_json:
        print_json([MessageOut.of(r).model_dump(mode="json") for r in records])
        return
    for r in records:
        console.print(
            f"{r.direction.value} {r.sender} -> {r.recipient} {r.message_type} "
            f"(held by {r.authority})"
        )
        for h in r.history:
            console.print(
                f"  {h.at.isoformat()}  {h.status.value:<16} {h.reason or ''}", highlight=False
            )


@friendly
def messages(
    status_: Status | None = typer.Option(None, "--status"),
    authority: str | None = typer.Option(None, "--authority"),
    since: datetime | None = typer.Option(None, "--since"),
    limit: int = typer.Option(100, "--limit", min=1, max=search.MAX_LIMIT),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """List messages in the ledger (receipts too), newest first; --since: changed since."""
    ledger = Ledger.open(settings_from(config).database.url)
    with ledger.transaction() as conn:
        held = (authority,) if authority else authorities_held(conn)
    records = search.search(
        ledger,
        search.Criteria(
            authorities=held,
            statuses=(status_,) if status_ else (),
            updated_from=since,
            include_receipts=True,
            limit=limit,
        ),
    )
    if as_json:
        print_json([MessageOut.of(r).model_dump(mode="json") for r in records])
        return
    console.print(_table(records, f"{len(records)} messages"))
