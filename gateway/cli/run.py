"""``cafgw run``: the gateway (worker + HTTP API), optionally with the demo."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from gateway import logging_setup
from gateway.api.auth import ApiKeys
from gateway.cli.common import ConfigOption, console, friendly, new_table, settings_from
from gateway.cli.reports import outcome_table, summary
from gateway.context import Gateway
from gateway.heap import cap_malloc_arenas
from gateway.ledger.status import Direction, Status
from gateway.policy import existence
from gateway.private_files import write_private
from gateway.runtime import Running, api_base, open_gateway, secure_state, serve, start_worker
from gateway.services import outbound

DEMO_SAMPLE = ("332", "dudley-csv", "tests/data/dudley-332/caf-register-2026-09.csv")


def _demo_credentials(gw: Gateway, keys: ApiKeys) -> dict[str, str]:
    """API keys for the demo authorities, kept (mode 600) so reruns reuse them."""
    path = gw.settings.api_keys_file.parent / "demo-credentials.json"
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    creds = {
        code: keys.issue(code, holder=f"demo user of {code}", holder_role="demo")
        for code in gw.hosted
    }
    creds["admin"] = keys.issue(None, "admin", holder="demo administrator", holder_role="demo")
    write_private(path, json.dumps(creds, indent=2))
    return creds


def _read_key(path: Path, code: str) -> str:
    """A shell snippet that reads one key from the credentials file (so it is never shown)."""
    script = "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])"
    return f"python3 -c '{script}' {path} {code}"


def _feed_demo(running: Running, root: Path) -> None:
    gw = running.gw
    authority, adapter, relative = DEMO_SAMPLE
    sample = root / relative
    console.print(f"\n[bold]Feeding the Dudley sample[/bold] {sample} as {authority} ({adapter})")
    with sample.open("rb") as stream:
        report = outbound.submit_local(gw, authority, adapter, stream, sample.name)
    console.print(outcome_table(report, "Dudley records"))
    console.print(summary(report), highlight=False, soft_wrap=True)
    sent_ids = [m for o in report.outcomes if o.status == Status.SIGNED for m in o.message_ids]
    deadline = time.monotonic() + 15
    records = []
    while time.monotonic() < deadline:
        records = [
            r
            for m in sent_ids
            for r in gw.ledger.find(
                message_id=m, authority=authority, direction=Direction.OUTBOUND, with_history=False
            )
        ]
        if records and all(r.status in (Status.DELIVERED, Status.REJECTED) for r in records):
            break
        time.sleep(0.2)
    status_table = new_table(
        *("message id", "type", "to", "status"), title="Delivery of what was sent"
    )
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
    cap_malloc_arenas()  # before any thread: see gateway.heap
    logging_setup.configure(verbose=verbose)
    settings = settings_from(config)
    secure_state(settings)
    gw = open_gateway(settings, create_keys=demo)
    running = start_worker(gw)
    keys = ApiKeys(settings.api_keys_file)
    base = api_base(settings)
    try:
        console.print(
            f"cafgw hosting {', '.join(gw.hosted)} on {settings.broker.url.split('@')[-1]}, "
            f"ledger {settings.database.url}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"API and dashboard on {base}/ (API docs {base}/docs); choose the port with "
            "CAFGW_API__PORT, the broker with CAFGW_BROKER__URL, the ledger with "
            "CAFGW_DATABASE__URL",
            highlight=False,
            soft_wrap=True,
        )
        if demo:
            # The regional existence-query key: in production every gateway is
            # given the same secret file; the demo makes one on first run.
            existence.create_key(settings.policy.existence_key_file)
            _demo_credentials(gw, keys)
            creds_path = settings.api_keys_file.parent / "demo-credentials.json"
            _feed_demo(running, settings.config_dir.parent)
            console.print(
                f"\n[bold]Where to look[/bold]\n"
                f"  dashboard:  {base}/\n"
                f"  API docs:   {base}/docs\n"
                f"  API keys of the demo authorities: {creds_path} (mode 0600; "
                "never printed)\n"
                f"  inbox of Wolverhampton (336):\n"
                f'    curl -H "Authorization: Bearer $({_read_key(creds_path, "336")})" '
                f"{base}/v1/inbox\n"
                f"  a message's history (rejected records: every problem by row and column):\n"
                f"    .venv/bin/cafgw status MESSAGE_ID\n"
                f"  all messages:         .venv/bin/cafgw messages\n"
                f"Press Ctrl+C to stop.",
                # Paths and commands whole on their lines, whatever the terminal's width
                # (piped to a log, the console is 160 wide): to be copied as printed.
                soft_wrap=True,
            )
        serve(running, keys)
    finally:
        running.close()
