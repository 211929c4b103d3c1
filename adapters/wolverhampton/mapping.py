"""The mapping of ``wolverhampton-json``: code lists and settings from its YAML file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.codelists import CodeList, FieldCoverage, MappingFile, read_mapping_file
from gateway.errors import MappingError
from gateway.model import (
    ActionStatus,
    CaseStatus,
    ConsentRole,
    ConsentScope,
    Element,
    EventType,
    FlagCode,
    Gender,
    Outcome,
)


@dataclass(frozen=True)
class EhmCodes:
    """The code lists of the EHM export."""

    case_status: CodeList[CaseStatus]
    gender: CodeList[Gender]
    ethnicity: CodeList[str]
    religion: CodeList[str]
    outcome: CodeList[Outcome]
    dimension: CodeList[Element]
    consent_scope: CodeList[ConsentScope]
    consent_role: CodeList[ConsentRole]
    action_status: CodeList[ActionStatus]
    event_type: CodeList[EventType]
    flag: CodeList[FlagCode]

    @classmethod
    def load(cls, mapping: MappingFile) -> EhmCodes:
        return cls(
            case_status=mapping.codes("case_status", CaseStatus),
            gender=mapping.codes("gender", Gender),
            ethnicity=mapping.codes("ethnicity", str),
            religion=mapping.codes("religion", str),
            outcome=mapping.codes("outcome", Outcome),
            dimension=mapping.codes("dimension", Element),
            consent_scope=mapping.codes("consent_scope", ConsentScope),
            consent_role=mapping.codes("consent_role", ConsentRole),
            action_status=mapping.codes("action_status", ActionStatus),
            event_type=mapping.codes("event_type", EventType),
            flag=mapping.codes("flag", FlagCode),
        )


@dataclass(frozen=True)
class EhmSettings:
    """Everything the EHM reader and writer need, from the mapping file."""

    authority: str
    source_system: str
    zone: ZoneInfo
    max_record_chars: int
    codes: EhmCodes
    coverage: FieldCoverage
    known_authorities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExportHeader:
    """The top-level values of an export that its episodes inherit."""

    system: str | None = None
    la_code: str | None = None


def load_settings(path: Path, known_authorities: frozenset[str] = frozenset()) -> EhmSettings:
    """Read and check ``wolverhampton-json.yaml``."""
    mapping = read_mapping_file(path)
    zone_name = mapping.text("timezone", "Europe/London")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(f"{path}: timezone {zone_name!r} is not a known time zone") from exc
    return EhmSettings(
        authority=mapping.text("authority"),
        source_system=mapping.text("source_system"),
        zone=zone,
        max_record_chars=mapping.number("max_record_chars", 4_000_000),
        codes=EhmCodes.load(mapping),
        coverage=mapping.coverage("."),
        known_authorities=known_authorities,
    )
