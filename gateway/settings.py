"""Settings: read and validated once at start, then passed in.

``config/gateway.yaml`` holds the gateway's own settings and
``config/authorities.yaml`` the region directory. Environment variables
``CAFGW_<SECTION>__<KEY>`` override YAML values (``CAFGW_DATABASE__URL``).
A bad value is reported with the file and the dotted key that holds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import ConfigError

ENV_PREFIX = "CAFGW_"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(_Frozen):
    name: str
    email: str | None = None
    role: str | None = None


class ConnectorSettings(_Frozen):
    kind: Literal["pull", "webhook", "file"] = "pull"
    url: str | None = None
    hmac_secret_file: str | None = None
    directory: str | None = None

    @model_validator(mode="after")
    def _needs_target(self) -> ConnectorSettings:
        if self.kind == "webhook" and not self.url:
            raise ValueError("a webhook connector needs 'url'")
        if self.kind == "file" and not self.directory:
            raise ValueError("a file connector needs 'directory'")
        return self


class Authority(_Frozen):
    code: str
    name: str
    adapter: str | None = None
    certificate: str | None = None
    coordinator: Contact
    line_manager: Contact
    connector: ConnectorSettings = ConnectorSettings()


class RegionalGroup(_Frozen):
    name: str
    email: str | None = None


class Directory(_Frozen):
    """The region directory from ``authorities.yaml``."""

    regional_group: RegionalGroup
    authorities: Mapping[str, Authority]

    def get(self, code: str) -> Authority:
        try:
            return self.authorities[code]
        except KeyError:
            raise ConfigError(
                f"authority {code!r} is not in the region directory (authorities.yaml)"
            ) from None

    def __contains__(self, code: object) -> bool:
        return code in self.authorities


class BrokerSettings(_Frozen):
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    exchange: str = "caf.exchange"
    escalation_exchange: str = "caf.escalation"
    prefetch: int = Field(default=200, ge=1)


class DatabaseSettings(_Frozen):
    url: str = "sqlite:///var/ledger.db"


class ApiSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class Limits(_Frozen):
    max_message_bytes: int = Field(default=2_000_000, ge=1024)
    max_xml_depth: int = Field(default=64, ge=8)
    future_skew_s: int = Field(default=60, ge=0)
    max_age_s: int = Field(default=14 * 24 * 3600, ge=60)


class DeliverySettings(_Frozen):
    receipt_deadline_s: float = Field(default=60, gt=0)
    resend_budget: int = Field(default=5, ge=0)
    retry_budget: int = Field(default=5, ge=0)
    retry_backoff_s: tuple[float, ...] = (1, 5, 30, 120, 600)
    local_ack_deadline_s: float = Field(default=5 * 24 * 3600, gt=0)

    def worst_case_s(self) -> float:
        """How long a message may keep being retried or re-sent at most."""
        backoff = sum(self.retry_backoff_s[: self.retry_budget]) + (
            max(0, self.retry_budget - len(self.retry_backoff_s))
            * (self.retry_backoff_s[-1] if self.retry_backoff_s else 0)
        )
        return self.receipt_deadline_s * (self.resend_budget + 1) + backoff


class Settings(_Frozen):
    """Everything the gateway reads at start."""

    config_dir: Path
    broker: BrokerSettings = BrokerSettings()
    database: DatabaseSettings = DatabaseSettings()
    hosted: tuple[str, ...] = ()
    keys_dir: Path = Path("var/keys")
    api_keys_file: Path = Path("var/api-keys.json")
    authorities_file: Path = Path("authorities.yaml")
    adapters_dir: Path = Path("adapters")
    api: ApiSettings = ApiSettings()
    limits: Limits = Limits()
    delivery: DeliverySettings = DeliverySettings()
    delivery_overrides: Mapping[str, DeliverySettings] = Field(default_factory=dict)
    directory: Directory

    def delivery_for(self, code: str) -> DeliverySettings:
        return self.delivery_overrides.get(code, self.delivery)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for code in self.hosted:
            if code not in self.directory:
                raise ValueError(f"hosted: {code!r} is not in authorities.yaml")
        for code, delivery in {"default": self.delivery, **self.delivery_overrides}.items():
            if delivery.worst_case_s() >= self.limits.max_age_s:
                raise ValueError(
                    f"limits.max_age_s ({self.limits.max_age_s}) must exceed the retry "
                    f"budget of {code} ({delivery.worst_case_s():.0f} s), or re-sent "
                    "messages would be refused as stale"
                )
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG_DIR":
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"environment {name}: {key!r} is not a section")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        target[keys[-1]] = value


def _describe(exc: ValidationError, path: Path) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: {key}: {err['msg']}")
    return "\n".join(lines)


def load_directory(path: Path) -> Directory:
    """Read ``authorities.yaml``."""
    data = _read_yaml(path)
    raw = data.get("authorities")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: authorities: expected a mapping of LA code to authority")
    try:
        return Directory.model_validate(
            {
                "regional_group": data.get("regional_group", {"name": "Regional group"}),
                "authorities": {
                    str(code): {"code": str(code), **(entry or {})} for code, entry in raw.items()
                },
            }
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc


def load_settings(
    config_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``gateway.yaml`` and ``authorities.yaml`` from ``config_dir``.

    Relative paths in the settings are resolved against the project root
    (the parent of ``config_dir``).
    """
    env = os.environ if env is None else env
    if config_dir is None:
        config_dir = Path(env.get(ENV_PREFIX + "CONFIG_DIR", "config"))
    config_dir = config_dir.resolve()
    path = config_dir / "gateway.yaml"
    data = _read_yaml(path)
    _apply_env(data, env)
    for key, value in (overrides or {}).items():
        data[key] = value
    root = config_dir.parent
    directory_path = config_dir / data.get("authorities_file", "authorities.yaml")
    directory = load_directory(directory_path)
    overrides_raw = data.pop("authority_delivery", {}) or {}
    try:
        settings = Settings.model_validate(
            {
                **data,
                "config_dir": config_dir,
                "directory": directory,
                "delivery_overrides": overrides_raw,
            }
        )
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    return settings.model_copy(
        update={
            "keys_dir": _under(root, settings.keys_dir),
            "api_keys_file": _under(root, settings.api_keys_file),
            "adapters_dir": _under(config_dir, settings.adapters_dir),
            "database": DatabaseSettings(url=_sqlite_under(root, settings.database.url)),
        }
    )


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def _sqlite_under(root: Path, url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(root / url[len(prefix) :])
    return url
