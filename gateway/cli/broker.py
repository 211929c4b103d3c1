"""``cafgw broker setup``: one RabbitMQ account per authority, least privilege."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import typer

from gateway.cli.common import ConfigOption, console, friendly, new_table, settings_from
from gateway.errors import BrokerUnavailableError, ConfigError, TransportError
from gateway.runtime import check_broker
from gateway.transport.accounts import (
    PASSWORD_ENV,
    RELAY,
    password_variable,
    relay_of,
    setup_accounts,
)
from gateway.transport.queue_survey import QueueSurvey
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.reconnect import (
    ConnectionRefused,
    ReconnectPolicy,
    open_blocking,
    parameters,
    unavailable,
    where,
)
from gateway.transport.topology import REGIONAL

broker_app = typer.Typer(
    help="Broker administration: check the broker, per-authority accounts and permissions, "
    "moving queues into the shape the gateway declares."
)


@broker_app.command("check")
@friendly
def check(config: Path | None = ConfigOption) -> None:
    """Say whether RabbitMQ answers at broker.url (CAFGW_BROKER__URL wins) and accepts the login;
    for a cluster (broker.urls), each node in turn: one live node is enough."""
    settings = settings_from(config)
    check_broker(settings.broker.nodes)
    failures: list[str] = []
    for url in settings.broker.nodes:
        params = parameters(url, ReconnectPolicy(), settings.broker.tls)
        try:
            conn = open_blocking(params)
        except ConnectionRefused as exc:
            raise BrokerUnavailableError(str(exc)) from exc
        except TransportError as exc:
            failures.append(unavailable(params, exc).args[0])
            if len(settings.broker.nodes) > 1:
                console.print(f"{where(params)}: not answering", highlight=False)
            continue
        conn.close()
        console.print(
            f"RabbitMQ answers at {where(params)}, vhost {params.virtual_host!r}", highlight=False
        )
    if len(failures) == len(settings.broker.nodes):
        raise BrokerUnavailableError("; ".join(failures))


@broker_app.command("setup")
@friendly
def setup(
    secrets_dir: Path = typer.Option(
        Path("secrets/broker"),
        "--secrets-dir",
        help="where each authority's password is read from or created (<code>.password, 0600); "
        f"{PASSWORD_ENV}<CODE> in the environment wins",
    ),
    authority: list[str] = typer.Option(
        [], "--authority", help="LA code (repeatable); default: every authority in the directory"
    ),
    vhost: str | None = typer.Option(None, "--vhost", help="default: the vhost of broker.url"),
    regional: bool = typer.Option(
        True, "--regional/--no-regional", help="also an account that reads the regional queue"
    ),
    declare: bool = typer.Option(
        True, "--declare/--no-declare", help="declare exchanges and queues (as broker.url's user)"
    ),
    regional_host: str | None = typer.Option(
        None,
        "--regional-host",
        help="the LA whose gateway consumes the regional escalation queue "
        "(disputes.consume_regional): it and its relay may read and copy that lane",
    ),
    shared_relay: bool = typer.Option(
        True,
        "--shared-relay/--no-shared-relay",
        help="also the relay of every lane (for a gateway hosting several authorities); "
        "each authority always gets a relay of its own lanes (relay-<code>)",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Create or update the accounts; publishing is allowed only with routing keys
    that name the authority itself as sender (RabbitMQ topic permissions), and each
    authority's relay may copy only into its own lanes."""
    settings = settings_from(config)
    codes = list(authority) or sorted(settings.directory.authorities)
    for code in codes:
        settings.directory.get(code)
    if regional_host is not None and regional_host not in codes:
        raise ConfigError(f"--regional-host {regional_host}: not one of the accounts' {codes}")
    if vhost is None:
        vhost = unquote(urlparse(settings.broker.url).path.lstrip("/")) or "/"
    prefix = settings.broker.exchange.removesuffix(".exchange")
    if declare:
        transport = RabbitTransport(settings.broker)
        try:
            transport.declare(codes)
        finally:
            transport.close()
    relays = [relay_of(code) for code in codes] + ([RELAY] if shared_relay else [])
    made = setup_accounts(
        vhost,
        [*codes, *([REGIONAL] if regional else []), *relays],
        secrets_dir,
        prefix=prefix,
        user_prefix=settings.broker.user_prefix,
        regional_host=regional_host,
    )
    table = new_table("account", "user", "vhost", "password")
    for code, creds in made.items():
        where = f"{password_variable(code)} or {secrets_dir}/{code}.password"
        table.add_row(code, creds.username, creds.vhost, where)
    console.print(table)
    console.print(
        "Give each gateway its authority's account in broker.url and that authority's relay "
        "(relay-<code>) in broker.relay_url: the only account that may write retry and "
        "parking copies into its lanes ('relay' may write every lane's: only for a gateway "
        "hosting several authorities). The passwords are not shown.",
        highlight=False,
    )


@broker_app.command("migrate-queues")
@friendly
def migrate_queues(
    apply: bool = typer.Option(
        False,
        "--apply",
        help="move the queues (every gateway of the vhost stopped); default: only show them",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Show (with --apply: fix) the queues of the hosted authorities' lanes whose type or
    arguments differ from what the gateway declares: each one's messages are moved to
    <queue>.migrating, the queue declared anew, and the messages moved back."""
    settings = settings_from(config)
    transport = RabbitTransport.from_settings(settings)
    try:
        found = transport.survey_queues(settings.hosted)
        _show_survey(found, transport.vhost, apply)
        if not apply:
            if any(s.needs_move for s in found):
                console.print("Nothing changed. Stop the gateways, then run again with --apply.")
            return
        moved = transport.migrate_queues(settings.hosted)
    finally:
        transport.close()
    table = new_table("queue", "moved out", "moved back", title="moved")
    for done in moved:
        table.add_row(done.queue, str(done.held), str(done.returned))
    console.print(table)
    console.print(
        f"{len(moved)} queue(s) of vhost {transport.vhost!r} now have the wanted shape.",
        highlight=False,
    )


def _show_survey(found: list[QueueSurvey], vhost: str, apply: bool) -> None:
    """The survey as a table: every queue to move, or one line when there is none."""
    todo = [s for s in found if s.needs_move]
    if not todo:
        console.print(
            f"All {len(found)} queues of vhost {vhost!r} that exist have the wanted shape; "
            "nothing to move.",
            highlight=False,
        )
        return
    title = f"vhost {vhost!r}: " + ("moving" if apply else "would move (dry run)")
    table = new_table("queue", "what is wrong", "messages", "held", "to do", title=title)
    for s in todo:
        table.add_row(
            s.name,
            (s.wrong or "(queue as wanted)") if s.found else "(queue missing)",
            "-" if s.found is None else str(s.found.ready),
            "-" if s.holding is None else str(s.holding.ready),
            s.action,
        )
    console.print(table)
