"""``cafgw adapters``: list the adapters in force and validate a mapping file."""

from __future__ import annotations

import io
from contextlib import nullcontext
from pathlib import Path

import typer

from adapters.generic import draft, reference
from gateway.cli.common import (
    ConfigOption,
    console,
    err_console,
    friendly,
    new_table,
    print_json,
    settings_from,
)
from gateway.cli.reports import outcome_table
from gateway.context import build, load_adapters
from gateway.errors import MappingError
from gateway.runtime import open_transport
from gateway.services import adapter_admin, preview

adapters_app = typer.Typer(
    help="Adapters: list them, validate a mapping, try one on an export, draft one from a sample."
)


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


@adapters_app.command("dry-run")
@friendly
def dry_run(
    export: Path = typer.Argument(..., exists=True, dir_okay=False, help="a local export"),
    authority: str = typer.Option(..., "--authority", help="the authority that would send it"),
    adapter: str | None = typer.Option(None, "--adapter", help="an adapter in force"),
    mapping: Path | None = typer.Option(
        None, "--mapping", exists=True, dir_okay=False, help="a draft mapping, not installed"
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
    config: Path | None = ConfigOption,
) -> None:
    """Convert an export and show what sending it would do (sent where, held or refused
    why), with an adapter in force or a draft mapping. Nothing is installed or kept."""
    if (adapter is None) == (mapping is None):
        raise MappingError("give either --adapter NAME (in force) or --mapping FILE (a draft)")
    settings = settings_from(config)
    gw = build(settings, open_transport(settings))
    data = export.read_bytes()
    with (
        adapter_admin.draft_adapter(
            mapping.read_text(encoding="utf-8"), str(mapping), settings.directory.authorities
        )
        if mapping is not None
        else nullcontext(gw.adapters.get(str(adapter)))
    ) as chosen:
        converted = adapter_admin.dry_run(
            chosen, authority, io.BytesIO(data), export.name, gw.schema, gw.clock
        )
        previewed = (
            preview.preview(gw, chosen, authority, io.BytesIO(data), export.name)
            if authority in gw.hosted
            else None
        )
    if as_json:
        print_json(
            {
                "converted": len(converted.records),
                "rejected": converted.rejected,
                "errors": converted.errors,
                "policy": None
                if previewed is None
                else [
                    {
                        "record": o.record,
                        "case_ref": o.case_ref,
                        "kind": o.kind,
                        "outcome": o.status.value,
                        "recipients": list(o.recipients),
                        "reasons": list(o.reasons),
                    }
                    for o in previewed.outcomes
                ],
            }
        )
        return
    for problem in converted.errors:
        err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"{len(converted.records)} records convert, {converted.rejected} rejected",
        highlight=False,
    )
    if previewed is None:
        console.print(
            f"{authority} is not hosted here: what policy would do is shown only for a "
            "hosted authority",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(outcome_table(previewed, f"if {authority} sent {export.name} now", kept=False))
    console.print(
        f"{preview.summary(previewed)}. Nothing was sent or kept.", highlight=False, soft_wrap=True
    )


@adapters_app.command("fields")
def fields(
    write: Path | None = typer.Option(
        None,
        "--write",
        dir_okay=False,
        help="put the reference between the markers of this page (docs/adapters.md)",
    ),
) -> None:
    """The canonical fields a mapping can fill, generated from gateway/model.py (markdown)."""
    if write is None:
        console.print(reference.field_reference(), markup=False, highlight=False, soft_wrap=True)
        return
    try:
        page = write.read_text(encoding="utf-8")
        write.write_text(reference.replace_in(page), encoding="utf-8")
    except (OSError, ValueError) as exc:
        err_console.print(f"{write}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(f"{write}: field reference updated", highlight=False)


@adapters_app.command("new")
@friendly
def new(
    name: str = typer.Argument(..., help="the adapter's name (the mapping file's name)"),
    from_sample: Path = typer.Option(
        ..., "--from-sample", exists=True, dir_okay=False, help="a sample export (CSV or JSON)"
    ),
    authority: str = typer.Option("TODO", "--authority", help="the DfE code of its authority"),
    out: Path | None = typer.Option(None, "--out", help="where to write it (default NAME.yaml)"),
    force: bool = typer.Option(False, "--force", help="overwrite the file if it exists"),
) -> None:
    """Draft a mapping from a sample export's header: guessed targets, TODO for the rest.

    The draft is not installed; cafgw adapters validate refuses it until every TODO
    is decided."""
    target = out or Path(f"{name}.yaml")
    if target.exists() and not force:
        err_console.print(
            f"{target} exists; choose another --out or add --force", markup=False, highlight=False
        )
        raise typer.Exit(1)
    made = draft.draft(name, authority, from_sample.read_bytes(), from_sample.name)
    target.write_text(made.text, encoding="utf-8")
    console.print(
        f"{target}: {len(made.guessed)} fields guessed, {len(made.todo)} TODO"
        + (f", still to map: {', '.join(made.missing)}" if made.missing else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"next: check each guess and decide each TODO, then cafgw adapters validate {target}",
        highlight=False,
        soft_wrap=True,
    )
