"""The Dudley CSV mapping (``config/adapters/dudley-csv.yaml``), read and checked at start.

The mapping names, for every column of the export, the canonical field it
fills (``fields.mapped``) or why it is ignored (``fields.ignored``); the
reader looks columns up by their target, so the Python code holds no
column names. Code lists and consent scopes live here too. Any fault is a
``MappingError`` naming the key.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.codelists import CodeList, read_mapping_file
from gateway.errors import MappingError
from gateway.identifiers import la_code_problem
from gateway.model import CaseStatus, ConsentRole, ConsentScope, Element, Gender, Outcome

GROUP_MARK = "{n}"
ELEMENT_PREFIX = "Assessment.elements."


class Target(StrEnum):
    """The canonical fields one fixed column fills (values of ``fields.mapped``)."""

    CASE_REF = "Assessment.case_ref"
    UPN = "Child.identifiers.UPN"
    NHS = "Child.identifiers.NHS"
    GIVEN_NAME = "Child.given_name"
    FAMILY_NAME = "Child.family_name"
    DOB = "Child.date_of_birth"
    GENDER = "Child.gender"
    POSTCODE = "Child.address.postcode"
    HOME_LA = "Child.address.la_code"
    SCHOOL = "Child.school.name"
    INITIATOR = "Assessment.initiator.name"
    INITIATOR_ROLE = "Assessment.initiator.role"
    INITIATOR_ORG = "Assessment.initiator.organisation"
    INITIATOR_LA = "Assessment.initiator.la_code"
    STARTED = "Assessment.started_on"
    CONSENT_GIVEN = "ConsentRecord.given"
    CONSENT_BY = "ConsentRecord.given_by"
    CONSENT_ROLE = "ConsentRecord.role"
    CONSENT_DATE = "ConsentRecord.recorded_at"
    SHARE_CROSS_BORDER = "ConsentRecord.scopes.SHARE_CROSS_BORDER"
    SHARE_WITH = "ConsentRecord.named_las"
    STRENGTHS = "Assessment.strengths"
    NEEDS = "Assessment.needs"
    OUTCOME = "Assessment.outcome"
    LEAD_NAME = "Assessment.lead_professionals.name"
    LEAD_ORG = "Assessment.lead_professionals.organisation"
    LEAD_LA = "Assessment.lead_professionals.la_code"
    TAC_DATE = "Assessment.tac_meetings.held_on"
    STATUS = "Assessment.status"


class ActionPart(StrEnum):
    """The columns of one repeated ``ACTION_{n}`` group."""

    DESCRIPTION = "Assessment.actions.description"
    OWNER = "Assessment.actions.owner"
    DUE = "Assessment.actions.due"


@dataclass(frozen=True)
class ActionColumns:
    """Column name patterns of the repeated action groups, ``{n}`` standing for 1, 2, ..."""

    patterns: Mapping[ActionPart, str]

    def column(self, part: ActionPart, n: int) -> str:
        return self.patterns[part].replace(GROUP_MARK, str(n))

    def group_of(self, column: str) -> tuple[ActionPart, int] | None:
        """Which part of which group ``column`` is, or ``None``."""
        for part, pattern in self.patterns.items():
            before, _, after = pattern.partition(GROUP_MARK)
            found = re.fullmatch(re.escape(before) + r"([1-9][0-9]*)" + re.escape(after), column)
            if found:
                return part, int(found.group(1))
        return None


@dataclass(frozen=True)
class DudleyMapping:
    """Everything the Dudley reader and writer take from the mapping file."""

    path: Path
    name: str
    version: str
    authority: str
    encoding: str
    date_format: str
    list_separator: str
    flag_yes: str
    flag_no: str
    max_field_chars: int
    header: tuple[str, ...]  # with the ACTION_{n} patterns in place
    min_action_groups: int
    columns: Mapping[Target, str]
    elements: Mapping[str, Element]  # column -> element
    actions: ActionColumns
    mapped: Mapping[str, str]  # column (or pattern) -> target, as in the file
    ignored: Mapping[str, str]  # column -> why
    consent_scopes: tuple[ConsentScope, ...]
    cross_border_scopes: tuple[ConsentScope, ...]
    gillick_roles: frozenset[str]
    gender: CodeList[Gender]
    outcome: CodeList[Outcome]
    status: CodeList[CaseStatus]
    consent_role: CodeList[ConsentRole]

    def col(self, target: Target) -> str:
        """The column that fills ``target``."""
        return self.columns[target]

    def fixed_columns(self) -> tuple[str, ...]:
        """Header columns that are not part of an action group."""
        return tuple(c for c in self.header if GROUP_MARK not in c)

    def header_for(self, groups: int) -> list[str]:
        """The export header with ``groups`` action groups."""
        out: list[str] = []
        for column in self.header:
            if column == self.actions.patterns[ActionPart.DESCRIPTION]:
                for n in range(1, groups + 1):
                    out.extend(self.actions.column(part, n) for part in ActionPart)
            elif GROUP_MARK not in column:
                out.append(column)
        return out


def load_mapping(path: Path) -> DudleyMapping:
    """Read and check the Dudley mapping file."""
    file = read_mapping_file(path)
    where = str(path)
    coverage = file.coverage()
    columns: dict[Target, str] = {}
    elements: dict[str, Element] = {}
    patterns: dict[ActionPart, str] = {}
    for column, target in coverage.mapped.items():
        key = f"{where}: fields.mapped.{column}"
        if target in Target.__members__.values():
            if Target(target) in columns:
                raise MappingError(
                    f"{key}: {target} is already filled by {columns[Target(target)]}"
                )
            columns[Target(target)] = column
        elif target in ActionPart.__members__.values():
            if GROUP_MARK not in column:
                raise MappingError(f"{key}: an action column must contain {GROUP_MARK}")
            patterns[ActionPart(target)] = column
        elif target.startswith(ELEMENT_PREFIX):
            try:
                elements[column] = Element(target.removeprefix(ELEMENT_PREFIX))
            except ValueError:
                raise MappingError(f"{key}: {target!r} names no framework element") from None
        else:
            raise MappingError(f"{key}: {target!r} is not a canonical field this adapter fills")
    for needed in Target:
        if needed not in columns:
            raise MappingError(f"{where}: fields.mapped: no column maps to {needed.value}")
    for part in ActionPart:
        if part not in patterns:
            raise MappingError(f"{where}: fields.mapped: no column maps to {part.value}")
    header = _strings(file.data.get("header"), f"{where}: header")
    declared = set(coverage.mapped) | set(coverage.ignored)
    if set(header) != declared or len(header) != len(set(header)):
        raise MappingError(
            f"{where}: header must list each column of fields.mapped and fields.ignored once; "
            f"differences: {sorted(set(header) ^ declared)}"
        )
    encoding = file.text("encoding")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise MappingError(f"{where}: encoding: {encoding!r} is not a known encoding") from None
    authority = file.text("authority")
    if la_code_problem(authority):
        raise MappingError(f"{where}: authority: {la_code_problem(authority)}")
    scopes = file.data.get("consent_scopes")
    if not isinstance(scopes, Mapping):
        raise MappingError(f"{where}: consent_scopes must map 'given' and 'cross_border'")
    return DudleyMapping(
        path=path,
        name=file.text("name"),
        version=file.text("version"),
        authority=authority,
        encoding=encoding,
        date_format=file.text("date_format"),
        list_separator=file.text("list_separator"),
        flag_yes=file.text("flag_yes"),
        flag_no=file.text("flag_no"),
        max_field_chars=file.number("max_field_chars", 65536),
        header=tuple(header),
        min_action_groups=file.number("min_action_groups", 1),
        columns=MappingProxyType(columns),
        elements=MappingProxyType(elements),
        actions=ActionColumns(MappingProxyType(patterns)),
        mapped=coverage.mapped,
        ignored=coverage.ignored,
        consent_scopes=_scopes(scopes.get("given"), f"{where}: consent_scopes.given"),
        cross_border_scopes=_scopes(
            scopes.get("cross_border"), f"{where}: consent_scopes.cross_border"
        ),
        gillick_roles=frozenset(
            _strings(
                file.data.get("gillick_competent_roles", []), f"{where}: gillick_competent_roles"
            )
        ),
        gender=file.codes("gender", Gender),
        outcome=file.codes("outcome", Outcome),
        status=file.codes("status", CaseStatus),
        consent_role=file.codes("consent_role", ConsentRole),
    )


def _strings(raw: Any, key: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise MappingError(f"{key} must be a list of strings")
    return list(raw)


def _scopes(raw: Any, key: str) -> tuple[ConsentScope, ...]:
    try:
        return tuple(ConsentScope(s) for s in _strings(raw, key))
    except ValueError as exc:
        raise MappingError(f"{key}: {exc}") from None
