"""Retention periods from ``config/retention.yaml``: read once per file, then passed in."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import ConfigError
from gateway.model import CaseStatus, MessageType
from gateway.settings import Settings

FILE_NAME = "retention.yaml"
UNKNOWN_STATE = "UNKNOWN"
DEFAULT = "default"
STATES = (*(s.value for s in CaseStatus), UNKNOWN_STATE)
SIX_YEARS_DAYS = 6 * 365


class RetentionSettings(BaseModel):
    """How long each kind of message keeps its personal data (days)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_records: Mapping[str, Mapping[str, int]] = Field(
        default_factory=lambda: {UNKNOWN_STATE: {DEFAULT: SIX_YEARS_DAYS}}
    )
    held_local_days: int = Field(default=90, ge=1)
    rejected_days: int = Field(default=30, ge=1)
    quarantined_days: int = Field(default=180, ge=1)
    dead_letter_days: int = Field(default=90, ge=1)
    no_personal_data_days: int = Field(default=SIX_YEARS_DAYS, ge=1)
    interval_s: float = Field(default=3600, gt=0)
    batch: int = Field(default=500, ge=1, le=10_000)

    @field_validator("case_records")
    @classmethod
    def _known(cls, value: Mapping[str, Mapping[str, int]]) -> Mapping[str, Mapping[str, int]]:
        types = {t.value for t in MessageType} | {DEFAULT}
        for state, periods in value.items():
            if state not in STATES:
                raise ValueError(f"unknown case state {state!r}; states are {list(STATES)}")
            for name, days in periods.items():
                if name not in types:
                    raise ValueError(
                        f"{state}.{name}: unknown message type; use one of {sorted(types)}"
                    )
                if days < 1:
                    raise ValueError(f"{state}.{name}: must be at least 1 day")
        if DEFAULT not in value.get(UNKNOWN_STATE, {}):
            raise ValueError(f"{UNKNOWN_STATE}.{DEFAULT} must be set (the fallback period)")
        return value

    def case_days(self, state: str, message_type: str) -> tuple[int, str]:
        """Days a case record keeps its personal data, and the rule that says so."""
        for where in (state, UNKNOWN_STATE):
            periods = self.case_records.get(where, {})
            for name in (message_type, DEFAULT):
                if name in periods:
                    return periods[name], f"case_records.{where}.{name}"
        raise AssertionError("UNKNOWN.default is checked when the settings are read")


@functools.lru_cache(maxsize=16)
def load_retention(path: Path) -> RetentionSettings:
    """Read and validate one retention file (cached); defaults if it does not exist."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return RetentionSettings.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from exc


def retention_of(settings: Settings) -> RetentionSettings:
    """The retention settings next to ``settings``' configuration."""
    return load_retention(settings.config_dir / FILE_NAME)
