"""The ``cafgw`` command line."""

from __future__ import annotations

import typer

from gateway.cli import documents, messages, run
from gateway.cli.keys import api_keys_app, keys_app

app = typer.Typer(
    name="cafgw",
    help="Cross-border CAF gateway: convert, sign, send and track CAF messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("convert")(documents.convert)
app.command("validate")(documents.validate)
app.command("sign")(documents.sign)
app.command("verify")(documents.verify)
app.command("send")(messages.send)
app.command("status")(messages.status)
app.command("messages")(messages.messages)
app.add_typer(keys_app, name="keys")
app.add_typer(api_keys_app, name="api-keys")


def main() -> None:
    app()
