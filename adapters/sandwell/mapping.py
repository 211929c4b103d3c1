"""The mapping of ``sandwell-xml``: code lists and settings from its YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.codelists import CodeList, FieldCoverage, read_mapping_file
from gateway.errors import MappingError
from gateway.model import (
    ActionStatus,
    CaseStatus,
    ConsentRole,
    ConsentScope,
    Element,
    FlagCode,
    Gender,
    Outcome,
)

Summary = Literal["strengths", "needs", "outcome", "child_views"]
SUMMARIES: tuple[Summary, ...] = ("strengths", "needs", "outcome", "child_views")


def summary(value: str) -> Summary:
    """A summary answer's target field (``ValueError`` if it is not one)."""
    for known in SUMMARIES:
        if value == known:
            return known
    raise ValueError(value)


@dataclass(frozen=True)
class FwiCodes:
    """The code lists of the FWI export."""

    case_status: CodeList[CaseStatus]
    gender: CodeList[Gender]
    ethnicity: CodeList[str]
    religion: CodeList[str]
    outcome: CodeList[Outcome]
    question: CodeList[Element]
    summary: CodeList[Summary]
    consent_scope: CodeList[ConsentScope]
    consent_role: CodeList[ConsentRole]
    action_status: CodeList[ActionStatus]
    flag: CodeList[FlagCode]


@dataclass(frozen=True)
class FwiSettings:
    """Everything the FWI reader and writer need, from the mapping file."""

    authority: str
    source_system: str
    zone: ZoneInfo
    codes: FwiCodes
    coverage: FieldCoverage
    known_authorities: frozenset[str] = frozenset()


def load_settings(path: Path, known_authorities: frozenset[str] = frozenset()) -> FwiSettings:
    """Read and check ``sandwell-xml.yaml``."""
    mapping = read_mapping_file(path)
    zone_name = mapping.text("timezone", "Europe/London")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(f"{path}: timezone {zone_name!r} is not a known time zone") from exc
    codes = FwiCodes(
        case_status=mapping.codes("case_status", CaseStatus),
        gender=mapping.codes("gender", Gender),
        ethnicity=mapping.codes("ethnicity", str),
        religion=mapping.codes("religion", str),
        outcome=mapping.codes("outcome", Outcome),
        question=mapping.codes("question", Element),
        summary=mapping.codes("summary", summary),
        consent_scope=mapping.codes("consent_scope", ConsentScope),
        consent_role=mapping.codes("consent_role", ConsentRole),
        action_status=mapping.codes("action_status", ActionStatus),
        flag=mapping.codes("flag", FlagCode),
    )
    return FwiSettings(
        authority=mapping.text("authority"),
        source_system=mapping.text("source_system"),
        zone=zone,
        codes=codes,
        coverage=mapping.coverage("/"),
        known_authorities=known_authorities,
    )
