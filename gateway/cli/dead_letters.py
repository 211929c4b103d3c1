"""``cafgw dead-letters list|replay``: dead letters of every kind, with reason and attempts.

Works beside a running gateway: the ledger and the broker's parking queues
are read directly; a replayed message is picked up by the running worker.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import typer

from gateway.cli.common import (
    ConfigOption,
    console,
    err_console,
    friendly,
    new_table,
    print_json,
    settings_from,
)
from gateway.context import Gateway, build
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.runtime import check_broker, open_transport
from gateway.services import dead_letters

dead_letters_app = typer.Typer(
    help="Dead letters: sent messages without receipt, parked and refused received ones.",
    no_args_is_help=True,
)


def _gateway(config: Path | None) -> Gateway:
    settings = settings_from(config)
    check_broker(settings.broker.nodes)
    return build(settings, open_transport(settings))


def _codes(gw: Gateway, authority: str | None) -> tuple[str, ...]:
    if authority is None:
        return gw.hosted
    if authority not in gw.hosted:
        raise NotFoundError(f"authority {authority} is not hosted by this gateway")
    return (authority,)


@friendly
def list_(
    authority: str | None = typer.Option(None, "--authority", help="only this LA code"),
    limit: int = typer.Option(200, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """List dead letters with their kind, reason and attempts."""
    gw = _gateway(config)
    try:
        found = [
            d
            for code in _codes(gw, authority)
            for d in dead_letters.list_dead_letters(gw, code, limit)
        ]
    finally:
        gw.transport.close()
    if as_json:
        print_json(
            [
                {
                    "message_id": d.message_id,
                    "kind": d.kind.value,
                    "authority": d.authority,
                    "sender": d.sender,
                    "recipient": d.recipient,
                    "message_type": d.message_type,
                    "reason": d.reason,
                    "attempts": d.attempts,
                    "dead_lettered_at": d.dead_lettered_at,
                    "digest": d.digest,
                    "erased": d.erased,
                }
                for d in found
            ]
        )
        return
    table = new_table(
        *("message id", "digest", "kind", "authority", "from", "to", "type", "attempts", "reason"),
        title=f"{len(found)} dead letters",
    )
    for d in found:
        table.add_row(
            d.message_id,
            (d.digest or "")[:12],
            f"{d.kind.value} (erased)" if d.erased else d.kind.value,
            d.authority,
            d.sender,
            d.recipient,
            d.message_type,
            str(d.attempts),
            d.reason or "",
        )
    console.print(table)


@friendly
def replay(
    message_id: str | None = typer.Argument(None, help="the dead letter's message id"),
    replay_all: bool = typer.Option(False, "--all", help="replay every dead letter"),
    authority: str | None = typer.Option(None, "--authority", help="only this LA code"),
    by: str | None = typer.Option(None, "--by", help="who asks (default: the OS user)"),
    digest: str | None = typer.Option(
        None,
        "--digest",
        help="only the copy with this SHA-256 (list --json shows it): for parked copies "
        "with different bodies under one id",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Replay one dead letter (ID) or all of them (--all): same id, failure count reset."""
    if (message_id is None) == (not replay_all):
        err_console.print("give either a message id or --all")
        raise typer.Exit(2)
    if digest is not None and (replay_all or not re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
        raise PolicyRefusal(
            "dead-letters.digest",
            "--digest names one dead letter, not with --all"
            if replay_all
            else f"--digest {digest!r}: a digest is 64 hexadecimal characters (SHA-256); "
            "cafgw dead-letters list --json shows each one whole",
        )
    actor = f"{by or getpass.getuser()} via CLI"
    gw = _gateway(config)
    try:
        if replay_all:
            total = 0
            for code in _codes(gw, authority):
                done = dead_letters.replay_all(gw, code, actor)
                total += len(done)
                for r in done:
                    console.print(f"{r.message_id} {r.authority} {r.kind.value}: REPLAYED")
            console.print(f"{total} dead letters replayed", highlight=False)
            return
        assert message_id is not None
        code = authority or dead_letters.authority_of(gw, message_id, digest)
        _codes(gw, code)
        r = dead_letters.replay(gw, code, message_id, actor, digest)
        console.print(f"{r.message_id} {r.authority} {r.kind.value}: REPLAYED", highlight=False)
    finally:
        gw.transport.close()


dead_letters_app.command("list")(list_)
dead_letters_app.command("replay")(replay)
