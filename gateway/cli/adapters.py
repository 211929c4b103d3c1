"""``cafgw adapters``: list the adapters in force and validate a mapping file."""

from __future__ import annotations

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
from gateway.context import load_adapters
from gateway.errors import MappingError
from gateway.services import adapter_admin

adapters_app = typer.Typer(help="Adapters: list them, validate a mapping file.")


@adapters_app.command("list")
@friendly
def list_adapters(
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
    config: Path | None = ConfigOption,
) -> None:
    """Every adapter with a mapping in the adapters directory, with its version."""
    settings = settings_from(config)
    infos = adapter_admin.describe(load_adapters(settings))
    if as_json:
        print_json(
            [
                {"name": a.name, "version": a.version, "authority": a.authority, "kind": a.kind}
                for a in infos
            ]
        )
        return
    table = new_table(
        *("name", "version", "authority", "kind"),
        title=f"{len(infos)} adapters in {settings.adapters_dir}",
    )
    for a in infos:
        table.add_row(a.name, a.version, a.authority or "", a.kind)
    console.print(table)


@adapters_app.command("validate")
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="mapping YAML file"),
) -> None:
    """Check a mapping file in full; a fault names the key. Exit 1 if it is invalid."""
    try:
        text = file.read_text(encoding="utf-8")
        found = adapter_admin.validate_mapping(text, str(file))
    except UnicodeDecodeError as exc:
        err_console.print(f"{file}: not UTF-8 text (byte {exc.start})", highlight=False)
        raise typer.Exit(1) from None
    except MappingError as exc:
        err_console.print(f"INVALID: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if found.name != file.stem and found.kind != "built-in":
        err_console.print(
            f"{file}: note: put it in the adapters directory as {found.name}.yaml "
            "(the name must match the file name)",
            markup=False,
            highlight=False,
        )
    console.print(
        f"{file}: valid — adapter {found.name} version {found.version} "
        f"({found.kind}, authority {found.authority})",
        highlight=False,
        soft_wrap=True,
    )
