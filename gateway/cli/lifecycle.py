"""``cafgw recall``, ``correct``, ``recalls`` and ``not-ours``.

The recall or correction is signed and queued in the ledger here; the
running gateway (``cafgw run``) publishes it, and shows the recipient's
proof of what was done in ``cafgw recalls`` once its receipt is back.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, console, friendly, print_json, settings_from
from gateway.context import Gateway, build
from gateway.envelope import xmlsafe
from gateway.envelope.codec import body_from_element
from gateway.errors import PolicyRefusal
from gateway.lifecycle import not_ours, outcomes, sender
from gateway.model import RecallReason
from gateway.runtime import open_transport

AuthorityOption = typer.Option(..., "--authority", help="the authority acting (hosted here)")
ByOption = typer.Option(None, "--by", help="who asked (default: the login name)")


def _gateway(config: Path | None) -> Gateway:
    settings = settings_from(config)
    return build(settings, open_transport(settings))


def _print(s: sender.Sent) -> None:
    console.print(
        f"{s.original_id} -> {s.recipient}: {s.status.value} {s.message_id or ''} {s.detail}",
        highlight=False,
    )


def _refused(exc: PolicyRefusal) -> typer.Exit:
    console.print(f"[red]refused by rule {exc.rule}[/red]: {exc.reason}", highlight=False)
    return typer.Exit(3)


@friendly
def recall(
    message_id: str = typer.Argument(..., help="the message this authority sent"),
    authority: str = AuthorityOption,
    reason: RecallReason = typer.Option(..., "--reason"),
    explanation: str = typer.Option(None, "--explanation", help="no personal data"),
    by: str | None = ByOption,
    config: Path | None = ConfigOption,
) -> None:
    """Recall a message: withdrawn if still queued, else a signed Recall to its recipient."""
    try:
        _print(
            sender.recall(
                _gateway(config),
                authority,
                message_id,
                reason,
                explanation,
                by or getpass.getuser(),
                again=True,
            )
        )
    except PolicyRefusal as exc:
        raise _refused(exc) from None


@friendly
def correct(
    message_id: str = typer.Argument(..., help="the message (or correction) to supersede"),
    file: Path = typer.Option(
        ..., "--file", exists=True, dir_okay=False, help="corrected body XML"
    ),
    authority: str = AuthorityOption,
    explanation: str = typer.Option(..., "--explanation", help="what was wrong"),
    by: str | None = ByOption,
    config: Path | None = ConfigOption,
) -> None:
    """Send a correction: the whole corrected body (canonical XML) supersedes the message."""
    gw = _gateway(config)
    limits = gw.settings.limits
    root = xmlsafe.parse(
        file.read_bytes(), max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
    )
    gw.schema.validate(root)
    try:
        replacement = sender.replacement_of_body(body_from_element(root))
        _print(
            sender.correct(
                gw, authority, message_id, replacement, explanation, by or getpass.getuser()
            )
        )
    except PolicyRefusal as exc:
        raise _refused(exc) from None


@friendly
def recalls(
    message_id: str = typer.Argument(None, help="one original (default: the newest)"),
    authority: str = AuthorityOption,
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Recalls and corrections sent, with what each recipient proved was done."""
    gw = _gateway(config)
    with gw.ledger.transaction() as conn:
        found = outcomes.outcomes_of(conn, authority, message_id)
    if as_json:
        print_json(
            [
                {
                    **{k: v for k, v in o.__dict__.items()},
                    "summary": o.describe(),
                }
                for o in found
            ]
        )
        return
    table = Table("kind", "original", "to", "reason", "sent", "outcome")
    for o in found:
        table.add_row(
            o.kind,
            o.original_id,
            o.recipient,
            o.reason,
            o.requested_at.isoformat(timespec="seconds"),
            o.describe(),
        )
    console.print(table)


@friendly
def not_ours_command(
    message_id: str = typer.Argument(..., help="a message this authority received"),
    authority: str = AuthorityOption,
    by: str | None = ByOption,
    config: Path | None = ConfigOption,
) -> None:
    """Say a received message was not for this authority: its sender will recall it."""
    done = not_ours.not_ours(_gateway(config), authority, message_id, by or getpass.getuser())
    if done.already_said:
        when = done.at.isoformat(timespec="seconds") if done.at else "earlier"
        console.print(
            f"{done.message_id}: already said by {done.by} at {when}; {done.sender} was asked "
            f"then to recall it (notice {done.notice_id}), nothing sent again",
            highlight=False,
        )
        return
    state = "withdrawn from the inbox; " if done.withdrawn else ""
    console.print(
        f"{done.message_id}: {state}{done.sender} asked to recall it (notice {done.notice_id})",
        highlight=False,
    )
