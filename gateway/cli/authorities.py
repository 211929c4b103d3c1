"""``cafgw authorities``: the region directory in force, and checking a changed authorities.yaml."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.cli.common import ConfigOption, console, friendly, new_table, settings_from
from gateway.services import directory_admin

authorities_app = typer.Typer(
    help="The region directory (authorities.yaml): list it, check a change before reloading it."
)


@authorities_app.command("list")
@friendly
def list_authorities(config: Path | None = ConfigOption) -> None:
    """Every authority of the region directory, with its adapter and connector."""
    settings = settings_from(config)
    table = new_table("code", "name", "adapter", "connector", "hosted", title="region directory")
    for a in settings.directory.authorities.values():
        hosted = "yes" if a.code in settings.hosted else ""
        table.add_row(a.code, a.name, a.adapter or "", a.connector.kind, hosted)
    console.print(table)


@authorities_app.command("validate")
@friendly
def validate(
    file: Path | None = typer.Argument(
        None, dir_okay=False, help="the changed file (default: the one in force)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Check authorities.yaml as a reload would (directory, settings, adapters, certificates).

    Nothing is put in force: reload it with POST /v1/admin/authorities/reload."""
    settings = settings_from(config)
    change = directory_admin.prepare(settings, file.resolve() if file else None).change
    console.print(
        f"valid, against the directory in force: {change.summary()}",
        highlight=False,
        soft_wrap=True,
    )
