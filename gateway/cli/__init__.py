"""The ``cafgw`` command line."""

from __future__ import annotations

import typer

from gateway.cli import documents, init, lifecycle, messages, run
from gateway.cli.adapters import adapters_app
from gateway.cli.api_keys import api_keys_app
from gateway.cli.audit import audit_app
from gateway.cli.authorities import authorities_app
from gateway.cli.broker import broker_app
from gateway.cli.dead_letters import dead_letters_app
from gateway.cli.disputes import disputes_app
from gateway.cli.keys import keys_app
from gateway.cli.ledger import ledger_app
from gateway.cli.peers import peers_app
from gateway.cli.policy import (
    agreements_app,
    cases_app,
    consent_app,
    existence_app,
    issues_log_command,
)
from gateway.cli.retention import children_app, retention_app

app = typer.Typer(
    name="cafgw",
    help="Cross-border CAF gateway: convert, sign, send and track CAF messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("init")(init.init)
app.command("run")(run.run)
app.command("convert")(documents.convert)
app.command("validate")(documents.validate)
app.command("sign")(documents.sign)
app.command("verify")(documents.verify)
app.command("send")(messages.send)
app.command("status")(messages.status)
app.command("messages")(messages.messages)
app.add_typer(keys_app, name="keys")
app.add_typer(peers_app, name="peers")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(audit_app, name="audit")
app.add_typer(ledger_app, name="ledger")
app.add_typer(disputes_app, name="disputes")
app.add_typer(broker_app, name="broker")
app.add_typer(adapters_app, name="adapters")
app.add_typer(authorities_app, name="authorities")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(consent_app, name="consent")
app.add_typer(cases_app, name="cases")
app.add_typer(existence_app, name="existence")
app.add_typer(agreements_app, name="agreements")
app.command("issues-log")(issues_log_command)
app.command("recall")(lifecycle.recall)
app.command("correct")(lifecycle.correct)
app.command("recalls")(lifecycle.recalls)
app.command("not-ours")(lifecycle.not_ours_command)
app.add_typer(retention_app, name="retention")
app.add_typer(children_app, name="children")


def _plain_help(typer_app: typer.Typer) -> None:
    """Plain click help for every command: rich's panels cut words (and the choices of
    an option) at 80 columns and show a flag as ``--json <bool>``, which takes no value."""
    typer_app.rich_markup_mode = None
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)


_plain_help(app)


def main() -> None:
    app()
