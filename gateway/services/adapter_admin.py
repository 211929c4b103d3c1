"""Administering adapters: list, validate a mapping, dry-run a file, reload mappings.

Used by the admin HTTP routes and the ``cafgw adapters`` commands. A dry
run converts and schema-checks, but signs nothing, sends nothing and
records nothing. A reload builds every adapter first and puts the new set
in force only if all of them are valid; otherwise the error names the
file and key and the previous set stays in force.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import yaml
from lxml import etree

from adapters import registry
from adapters.base import Adapter, Converted
from adapters.codelists import MappingFile
from adapters.generic import adapter as generic
from gateway.cases.identity import correlation_id
from gateway.context import AdapterSet, Gateway, load_adapters
from gateway.envelope.codec import envelope_to_element
from gateway.envelope.schema import SchemaValidator
from gateway.errors import CafgwError, FieldProblem, MappingError, SchemaError
from gateway.model import LegalBasis
from gateway.outbox import new_envelope
from gateway.services.directory_admin import audit_for_hosted


@dataclass(frozen=True)
class AdapterInfo:
    """What an administrator sees of one adapter."""

    name: str
    version: str
    authority: str | None
    kind: str  # "csv" or "json" for declarative mappings, "built-in" otherwise


def info(adapter: Adapter) -> AdapterInfo:
    """The description of ``adapter``."""
    mapping = getattr(adapter, "mapping", None)
    kind = getattr(mapping, "kind", None) if adapter.name not in registry.MODULES else None
    return AdapterInfo(adapter.name, adapter.version, adapter.authority, kind or "built-in")


def describe(adapters: AdapterSet) -> list[AdapterInfo]:
    """Every adapter in force, by name."""
    return [info(adapters.by_name[name]) for name in sorted(adapters.by_name)]


def validate_mapping(text: str, source: str = "mapping") -> AdapterInfo:
    """Check a mapping file's text in full; ``MappingError`` names the first bad key.

    A mapping with ``kind:`` is declarative; one naming a built-in adapter
    (``name:`` or ``adapter:``) is checked by that adapter's own loader.
    """
    with draft_adapter(text, source) as adapter:
        return info(adapter)


@contextmanager
def draft_adapter(
    text: str, source: str = "mapping", authorities: Mapping[str, object] | None = None
) -> Iterator[Adapter]:
    """The adapter a mapping file's text describes, without installing it.

    ``MappingError`` names the first bad key. For a built-in adapter the text
    lives in a temporary directory for as long as the adapter is used.
    """
    known = authorities or {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"{source}: a mapping file must be a YAML mapping")
    if "kind" in data:
        yield generic.from_mapping(MappingFile(Path(source), data), frozenset(known))
        return
    name = data.get("name") or data.get("adapter")
    if name not in registry.MODULES:
        raise MappingError(
            f"{source}: kind: missing; a declarative mapping needs kind: "
            f"{' or '.join(registry.kinds())} (or name a built-in adapter: "
            f"{', '.join(registry.names())})"
        )
    with tempfile.TemporaryDirectory(prefix="cafgw-mapping-") as tmp:
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            adapter = registry.create(str(name), Path(tmp), known)
        except MappingError as exc:
            raise MappingError(str(exc).replace(str(path), source)) from None
        yield adapter


RELOADED = "ADAPTERS_RELOADED"
RELOAD_REFUSED = "ADAPTERS_RELOAD_REFUSED"


def reload(gw: Gateway, actor: str) -> list[AdapterInfo]:
    """Load every mapping again and put the new set in force, or change nothing; audited
    for every hosted authority either way, naming ``actor`` (the mappings decide how
    each one's exports are read, as the directory, whose reload is audited too)."""
    try:
        fresh = load_adapters(gw.settings)
    except CafgwError as exc:
        audit_for_hosted(
            gw, actor, RELOAD_REFUSED, f"refused, the mappings in force are unchanged: {exc}"[:500]
        )
        raise
    gw.adapters.replace(fresh)
    found = describe(gw.adapters)
    audit_for_hosted(
        gw, actor, RELOADED, f"{len(found)} adapters: {', '.join(a.name for a in found)}"[:500]
    )
    return found


@dataclass(frozen=True)
class DryRecord:
    """One record that converted: its canonical envelope (unsigned, never sent)."""

    record: str
    case_ref: str
    canonical: str


@dataclass
class DryRunReport:
    """What a dry run found: every good record's canonical XML and every error."""

    adapter: str
    source: str
    records: list[DryRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rejected: int = 0


def dry_run(
    adapter: Adapter,
    authority: str,
    stream: BinaryIO,
    source: str,
    schema: SchemaValidator,
    clock: Callable[[], datetime],
) -> DryRunReport:
    """Convert ``stream`` as ``authority`` would send it; nothing is signed, sent or recorded.

    Raises ``MalformedInputError`` when the file as a whole cannot be read.
    """
    report = DryRunReport(adapter.name, source)
    for result in adapter.read(stream, source):
        if not isinstance(result, Converted):
            report.rejected += 1
            report.errors.extend(str(p) for p in result.problems)
            continue
        case = result.assessment.case_ref
        env = new_envelope(
            clock,
            sender=authority,
            recipient=authority,
            body=result.assessment,
            correlation=correlation_id(authority, case),
            legal_basis=LegalBasis.CONSENT,
            consent_ref=f"{authority}/{case}/consent",
        )
        element = envelope_to_element(env)
        try:
            schema.validate(element, env.header.message_id)
        except SchemaError as exc:
            report.rejected += 1
            report.errors.extend(
                str(FieldProblem(source, result.record, "(canonical)", p)) for p in exc.problems
            )
            continue
        xml = etree.tostring(element, encoding="unicode", pretty_print=True)
        report.records.append(DryRecord(result.record, case, xml))
    return report
