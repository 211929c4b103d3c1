"""A declarative mapping (``kind: csv`` or ``kind: json``), read and checked in full.

This is what lets an administrator add an authority with a YAML file and
no code (see ``docs/adapters.md``). Every fault is a ``MappingError``
naming the key, found when the mapping is loaded or validated, never
later on a record.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.codelists import CodeList, FieldCoverage, MappingFile, load_codelist
from adapters.generic.fields import (
    CODE_LISTS,
    GROUP_REQUIRED,
    REQUIRED,
    Target,
    parse_target,
    unknown_target_hint,
)
from gateway.errors import MappingError
from gateway.identifiers import DFE_LA_CODES, format_date, la_code_problem, parse_date

KINDS = ("csv", "json")
ISO = "iso"  # a date or date-time format meaning ISO 8601
GROUP_MARK = "{n}"


@dataclass(frozen=True)
class FieldRule:
    """One mapped local field (a CSV column, possibly with ``{n}``, or a JSON path)."""

    source: str
    target: Target

    def field(self, n: int | None) -> str:
        """The local field name of group member ``n`` (CSV column or JSON path)."""
        return self.source if n is None else self.source.replace(GROUP_MARK, str(n))


@dataclass(frozen=True)
class GenericMapping:
    """Everything a generic reader and writer take from the mapping file."""

    where: str
    kind: str
    name: str
    version: str
    authority: str
    encoding: str
    source_system: str | None
    date_formats: tuple[str, ...]
    datetime_formats: tuple[str, ...]
    zone: ZoneInfo
    true_tokens: tuple[str, ...]
    false_tokens: tuple[str, ...]
    list_separator: str
    max_field_chars: int
    records: str | None  # json: the key of the record array
    header: tuple[str, ...]  # csv: the column order written
    min_groups: Mapping[str, int]
    rules: tuple[FieldRule, ...]
    coverage: FieldCoverage
    codes: Mapping[str, CodeList[str]]

    def rule_for(self, target: str) -> FieldRule | None:
        """The rule filling ``target``, if the mapping maps it."""
        return next((r for r in self.rules if r.target.text == target), None)

    def maps_group(self, group: str) -> bool:
        return any(r.target.group == group for r in self.rules)


def load_generic(file: MappingFile) -> GenericMapping:
    """Check a parsed mapping file whose ``kind`` is ``csv`` or ``json``."""
    where = str(file.path)
    data = file.data
    kind = data.get("kind")
    if kind not in KINDS:
        raise MappingError(f"{where}: kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    encoding = file.text("encoding", "utf-8")
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise MappingError(f"{where}: encoding: {encoding!r} is not a known encoding") from None
    if kind == "json" and encoding not in ("utf-8", "utf-8-sig"):
        raise MappingError(f"{where}: encoding: a JSON export must be utf-8, got {encoding!r}")
    authority = file.text("authority")
    if problem := la_code_problem(authority):
        raise MappingError(f"{where}: authority: {problem}")
    zone_name = file.text("timezone", "Europe/London")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"{where}: timezone: {zone_name!r} is not a known time zone") from None
    true_tokens = _tokens(data.get("true_tokens", ["Y"]), f"{where}: true_tokens")
    false_tokens = _tokens(data.get("false_tokens", ["N"]), f"{where}: false_tokens")
    if both := set(true_tokens) & set(false_tokens):
        raise MappingError(f"{where}: false_tokens: {sorted(both)} also in true_tokens")
    coverage = file.coverage("." if kind == "json" else "\x00")
    if both := set(coverage.mapped) & set(coverage.ignored):
        raise MappingError(f"{where}: fields.ignored: {sorted(both)} are also mapped")
    for field, why in coverage.ignored.items():
        if not why.strip() or why.strip().upper().startswith("TODO"):
            raise MappingError(f"{where}: fields.ignored.{field}: say why it is ignored")
    codes = _codes(data.get("codes", {}), where)
    records = file.text("records") if kind == "json" else None
    rules = tuple(_rule(s, t, kind, records, codes, where) for s, t in coverage.mapped.items())
    _check_rules(rules, kind, where)
    header = _header(data.get("header"), coverage, where) if kind == "csv" else ()
    if kind == "json":
        for field in coverage.ignored:
            if not field.startswith(f"{records}[]") and ("[" in field or "." in field):
                raise MappingError(
                    f"{where}: fields.ignored.{field}: outside {records}[] only top-level keys "
                    "may be named"
                )
    return GenericMapping(
        where=where,
        kind=kind,
        name=file.text("name"),
        version=file.text("version"),
        authority=authority,
        encoding=encoding,
        source_system=file.text("source_system") if "source_system" in data else None,
        date_formats=_formats(data.get("date_formats", [ISO]), "date_formats", where, _date_ok),
        datetime_formats=_formats(
            data.get("datetime_formats", [ISO]), "datetime_formats", where, _datetime_ok
        ),
        zone=zone,
        true_tokens=true_tokens,
        false_tokens=false_tokens,
        list_separator=file.text("list_separator", ";"),
        max_field_chars=file.number("max_field_chars", 4_000_000 if kind == "json" else 65536),
        records=records,
        header=header,
        min_groups=_min_groups(data.get("min_groups", {}), rules, where),
        rules=rules,
        coverage=coverage,
        codes=codes,
    )


def _rule(
    source: str,
    target_text: str,
    kind: str,
    records: str | None,
    codes: Mapping[str, CodeList[str]],
    where: str,
) -> FieldRule:
    key = f"{where}: fields.mapped.{source}"
    target = parse_target(target_text.strip())
    if target is None:
        raise MappingError(
            f"{key}: {target_text!r} is not a canonical field a mapping can fill; "
            f"{unknown_target_hint(target_text.strip())}"
        )
    if target.slot.codes is not None and target.slot.codes not in codes:
        raise MappingError(f"{key}: {target.text} needs the code list codes.{target.slot.codes}")
    if kind == "csv":
        if GROUP_MARK in source and target.group is None:
            raise MappingError(f"{key}: only a repeated group field may contain {GROUP_MARK}")
        if source.count(GROUP_MARK) > 1:
            raise MappingError(f"{key}: {GROUP_MARK} may appear once")
    else:
        prefix = f"{records}[]."
        if not source.startswith(prefix):
            raise MappingError(f"{key}: a mapped JSON path must start with {prefix}")
        lists = source.removeprefix(prefix).count("[]")
        if target.group is not None and lists != 1:
            raise MappingError(
                f"{key}: a repeated group field needs exactly one list step '[]' inside the "
                f"record (nested lists cannot be mapped; ignore them)"
            )
        if target.group is None and lists:
            raise MappingError(f"{key}: {target.text} is one value; its path cannot hold '[]'")
    return FieldRule(source, target)


def _check_rules(rules: Sequence[FieldRule], kind: str, where: str) -> None:
    seen: dict[tuple[str, str | None], str] = {}
    groups: dict[str, list[FieldRule]] = {}
    for rule in rules:
        t = rule.target
        ident = (t.text, None)
        if ident in seen:
            raise MappingError(
                f"{where}: fields.mapped.{rule.source}: {t.text} is already filled by {seen[ident]}"
            )
        seen[ident] = rule.source
        if t.group is not None:
            groups.setdefault(t.group, []).append(rule)
    for needed in REQUIRED:
        if needed not in {t for t, _ in seen}:
            raise MappingError(f"{where}: fields.mapped: no field maps to {needed}")
    consent = {t for t, _ in seen if t.startswith("ConsentRecord.")}
    if consent and "ConsentRecord.given" not in consent:
        raise MappingError(
            f"{where}: fields.mapped: consent fields are mapped but no field maps to "
            "ConsentRecord.given"
        )
    for group, members in groups.items():
        for key_part in GROUP_REQUIRED[group]:
            if not any(r.target.part == key_part for r in members):
                raise MappingError(
                    f"{where}: fields.mapped: {group} fields are mapped but none maps to "
                    f"{group}.{key_part}"
                )
        if kind == "csv":
            marked = {GROUP_MARK in r.source for r in members}
            if len(marked) > 1:
                raise MappingError(
                    f"{where}: fields.mapped.{members[0].source}: the {group} columns must all "
                    f"contain {GROUP_MARK} or none of them"
                )
        else:
            lists = {r.source[: r.source.rindex("[]")] for r in members}
            if len(lists) > 1:
                raise MappingError(
                    f"{where}: fields.mapped.{members[0].source}: the {group} fields must all "
                    f"be in the same list, not {sorted(lists)}"
                )


def _codes(raw: object, where: str) -> Mapping[str, CodeList[str]]:
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: codes must be a mapping of code list name to list")
    out: dict[str, CodeList[str]] = {}
    for name, value in raw.items():
        if name not in CODE_LISTS:
            raise MappingError(
                f"{where}: codes.{name}: not a code list (known: {', '.join(CODE_LISTS)})"
            )
        if name == "la":
            out[name] = _la_names(value, where)
        else:
            out[name] = load_codelist(value, name, CODE_LISTS[name], where)
    return MappingProxyType(out)


def _la_code(value: str) -> str:
    if problem := la_code_problem(value):
        raise ValueError(problem)
    return value


def _la_names(raw: object, where: str) -> CodeList[str]:
    """``codes.la``: authority names as the export writes them -> DfE LA codes.

    ``names: dfe`` adds every name of ``gateway/data/dfe_la_codes.yaml``
    ("Dudley" -> 332); ``decode`` adds or overrides local spellings, and its
    first name for a code is the one written back.
    """
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: codes.la must be a mapping with names: dfe and/or decode")
    names = raw.get("names")
    if names not in (None, "dfe"):
        raise MappingError(f"{where}: codes.la.names: only 'dfe' (the DfE register), got {names!r}")
    decode = raw.get("decode", {})
    if not isinstance(decode, Mapping):
        raise MappingError(f"{where}: codes.la.decode must map a local name to a DfE LA code")
    register = {n: c for c, n in DFE_LA_CODES.items()} if names == "dfe" else {}
    if not decode and not register:
        raise MappingError(f"{where}: codes.la: give names: dfe or a decode mapping")
    merged = {
        **{str(k): str(v) for k, v in decode.items()},
        **{n: c for n, c in register.items() if n not in decode},
    }
    return load_codelist({**raw, "decode": merged}, "la", _la_code, where)


def _header(raw: object, coverage: FieldCoverage, where: str) -> tuple[str, ...]:
    declared = [*coverage.mapped, *coverage.ignored]
    if raw is None:
        return tuple(declared)
    header = _strings(raw, f"{where}: header")
    if set(header) != set(declared) or len(header) != len(set(header)):
        raise MappingError(
            f"{where}: header: must list each column of fields.mapped and fields.ignored "
            f"once; differences: {sorted(set(header) ^ set(declared))}"
        )
    return tuple(header)


def _min_groups(raw: object, rules: Sequence[FieldRule], where: str) -> Mapping[str, int]:
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: min_groups must map a group to a number")
    out: dict[str, int] = {}
    for group, count in raw.items():
        if not any(r.target.group == group for r in rules):
            raise MappingError(f"{where}: min_groups.{group}: no mapped field is in this group")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise MappingError(f"{where}: min_groups.{group}: must be a whole number")
        out[str(group)] = count
    return MappingProxyType(out)


def _strings(raw: Any, key: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw) or not raw:
        raise MappingError(f"{key}: must be a non-empty list of strings")
    return list(raw)


def _tokens(raw: Any, key: str) -> tuple[str, ...]:
    if isinstance(raw, list) and any(isinstance(x, bool) for x in raw):
        raise MappingError(f"{key}: quote the tokens (YAML reads Yes/No/true/false as booleans)")
    return tuple(_strings(raw, key))


def _formats(raw: Any, name: str, where: str, ok: Any) -> tuple[str, ...]:
    formats = _strings(raw, f"{where}: {name}")
    for fmt in formats:
        if fmt != ISO and not ok(fmt):
            raise MappingError(f"{where}: {name}: {fmt!r} is not a usable format")
    return tuple(formats)


def _date_ok(fmt: str) -> bool:
    sample = date(2001, 12, 31)
    try:
        return parse_date(format_date(sample, fmt), fmt) == sample
    except ValueError:
        return False


_TIME_DIRECTIVES = re.compile(r"%[HMS]")


def _datetime_ok(fmt: str) -> bool:
    sample = datetime(2001, 12, 31, 23, 59, tzinfo=UTC)
    try:
        parsed = datetime.strptime(sample.strftime(fmt), fmt)
    except ValueError:
        return False
    return bool(_TIME_DIRECTIVES.search(fmt)) and parsed.date() == sample.date()
