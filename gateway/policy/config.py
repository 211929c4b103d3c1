"""Policy settings from ``config/policy.yaml``: read once per file, then passed in.

Which consent scopes cover which purpose, which special category fields
each purpose may carry, the review period after a child moves area, and
where the regional existence-query key is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ConfigError
from gateway.model import ConsentScope, Purpose
from gateway.settings import Settings

SpecialField = Literal["ethnicity", "religion", "health_notes"]

FILE_NAME = "policy.yaml"


class PolicySettings(BaseModel):
    """The cross-border policy knobs (see docs/policy.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose_scopes: Mapping[Purpose, tuple[ConsentScope, ...]] = Field(
        default_factory=lambda: {p: (ConsentScope.SHARE_CROSS_BORDER,) for p in Purpose}
    )
    special_category: Mapping[Purpose, frozenset[SpecialField]] = Field(default_factory=dict)
    review_after_days: int = Field(default=28, ge=1, le=365)
    existence_key_file: Path = Path("var/secrets/regional-existence.key")

    def scopes_for(self, purpose: Purpose) -> tuple[ConsentScope, ...]:
        """Consent scopes any one of which covers ``purpose`` (cross-border)."""
        return self.purpose_scopes.get(purpose, (ConsentScope.SHARE_CROSS_BORDER,))

    def special_fields(self, purpose: Purpose | None) -> frozenset[SpecialField]:
        if purpose is None:
            return frozenset()
        return self.special_category.get(purpose, frozenset())


@functools.lru_cache(maxsize=16)
def load_policy(path: Path) -> PolicySettings:
    """Read and validate one policy file (cached: each file is read once)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        policy = PolicySettings.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from exc
    key = policy.existence_key_file
    if not key.is_absolute():
        policy = policy.model_copy(update={"existence_key_file": path.parent.parent / key})
    return policy


def policy_of(settings: Settings) -> PolicySettings:
    """The policy settings next to ``settings``' configuration (read once per file)."""
    return _policy_at(settings.config_dir / FILE_NAME)


@functools.lru_cache(maxsize=32)
def _policy_at(path: Path) -> PolicySettings:
    # Settings are read once, not per message: this is on the receiving hot path.
    return load_policy(path)
