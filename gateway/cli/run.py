"""``cafgw run``: the gateway (worker + HTTP API), optionally with the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.table import Table

from gateway import logging_setup
from gateway.api.auth import ApiKeys
from gateway.cli.common import ConfigOption, console, friendly, settings_from
from gateway.context import Gateway
from gateway.ledger.status import Direction, Status
from gateway.policy import existence
from gateway.policy.config import policy_of
from gateway.runtime import Running, open_gateway, serve, start_worker
from gateway.services import outbound

DEMO_SAMPLE = ("332", "dudley-csv", "tests/data/dudley-332/caf-register-2026-09.csv")


def _demo_credentials(gw: Gateway, keys: ApiKeys) -> dict[str, str]:
    """API keys for the demo authorities, kept (mode 600) so reruns reuse them."""
    path = gw.settings.api_keys_file.parent / "demo-credentials.json"
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    creds = {code: keys.issue(code) for code in gw.hosted}
    creds["admin"] = keys.issue(None, "admin")
    path.write_text(json.dumps(creds, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return creds


def _feed_demo(running: Running, root: Path) -> None:
    gw = running.gw
    authority, adapter, relative = DEMO_SAMPLE
    sample = root / relative
    console.print(f"\n[bold]Feeding the Dudley sample[/bold] {sample} as {authority} ({adapter})")
    with sample.open("rb") as stream:
        report = outbound.submit_local(gw, authority, adapter, stream, sample.name)
    table = Table(title="Dudley records")
    for col in ("row", "case", "outcome", "to", "why"):
        table.add_column(col)
    for o in report.outcomes:
        why = "\n".join(o.reasons) if o.reasons else ""
        table.add_row(o.record, o.case_ref or "-", o.status.value, ", ".join(o.recipients), why)
    console.print(table)
    sent_ids = [m for o in report.outcomes if o.status == Status.SIGNED for m in o.message_ids]
    deadline = time.monotonic() + 15
    records = []
    while time.monotonic() < deadline:
        records = [
            r
            for m in sent_ids
            for r in gw.ledger.find(message_id=m, direction=Direction.OUTBOUND, with_history=False)
        ]
        if records and all(r.status in (Status.DELIVERED, Status.REJECTED) for r in records):
            break
        time.sleep(0.2)
    status_table = Table(title="Delivery of what was sent")
    for col in ("message id", "type", "to", "status"):
        status_table.add_column(col)
    for r in records:
        status_table.add_row(r.message_id, r.message_type, r.recipient, r.status.value)
    console.print(status_table)


@friendly
def run(
    demo: bool = typer.Option(False, "--demo", help="create demo keys and feed the Dudley sample"),
    config: Path | None = ConfigOption,
    verbose: bool = typer.Option(False, "--verbose"),
) -> None:
    """Run the gateway: consume inboxes, publish the outbox, serve the HTTP API."""
    logging_setup.configure(verbose=verbose)
    settings = settings_from(config)
    gw = open_gateway(settings, create_keys=demo)
    running = start_worker(gw)
    keys = ApiKeys(settings.api_keys_file)
    base = f"http://{settings.api.host}:{settings.api.port}"
    try:
        console.print(
            f"cafgw hosting {', '.join(gw.hosted)} on {settings.broker.url.split('@')[-1]}, "
            f"ledger {settings.database.url}"
        )
        if demo:
            # The regional existence-query key: in production every gateway is
            # given the same secret file; the demo makes one on first run.
            existence.create_key(policy_of(settings).existence_key_file)
            creds = _demo_credentials(gw, keys)
            creds_path = settings.api_keys_file.parent / "demo-credentials.json"
            _feed_demo(running, settings.config_dir.parent)
            console.print(
                f"\n[bold]Where to look[/bold]\n"
                f"  dashboard:  {base}/\n"
                f"  API docs:   {base}/docs\n"
                f"  inbox of Wolverhampton (336):\n"
                f"    curl -H 'Authorization: Bearer {creds['336']}' {base}/v1/inbox\n"
                f"  a message's history:  .venv/bin/cafgw status MESSAGE_ID\n"
                f"  all messages:         .venv/bin/cafgw messages\n"
                f"  API keys of the demo authorities: {creds_path}\n"
                f"Press Ctrl+C to stop."
            )
        serve(running, keys)
    finally:
        running.close()
