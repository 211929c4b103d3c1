"""Shared CLI plumbing: settings once per invocation, errors as one clear line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from gateway.errors import CafgwError, ConfigError
from gateway.settings import Settings, load_settings

# Piped into a file or CI log, rich would assume 80 columns and fold tables
# and file:row:column error lines; a wider page keeps each on one line.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = typer.Option(None, "--config", help="configuration directory (default: ./config)")


def settings_from(config: Path | None) -> Settings:
    return load_settings(config)


def new_table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells wrap whole, never cut: a long word folds onto the next line."""
    found = Table(title=title)
    for header in headers:
        found.add_column(header, overflow="fold")
    return found


def acting_authority(settings: Settings, given: str | None) -> str:
    """The authority a command acts for: ``--authority``, or the only one this gateway hosts."""
    if given is not None:
        if given not in settings.hosted:
            raise ConfigError(
                f"authority {given} is not hosted by this gateway (hosted: "
                f"{', '.join(settings.hosted) or 'none'}; see hosted: in config/gateway.yaml)"
            )
        return given
    if len(settings.hosted) == 1:
        return settings.hosted[0]
    raise ConfigError(
        f"this gateway hosts {', '.join(settings.hosted) or 'no authority'}: "
        "say which one acts with --authority CODE"
    )


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Report a CafgwError as one line on stderr with exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CafgwError as exc:
            err_console.print(
                f"[red]error:[/red] {exc}", markup=True, highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
