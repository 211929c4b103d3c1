"""An API application on an in-memory gateway, with keys for two authorities and an admin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway, build
from gateway.settings import load_settings
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SecuredApp:
    app: FastAPI
    gw: Gateway
    dudley: str
    wolves: str
    admin: str


def secured_app(tmp_path: Path) -> SecuredApp:
    settings = load_settings(
        ROOT / "config",
        env={},
        overrides={
            "hosted": ["332", "336"],
            "keys_dir": str(tmp_path / "keys"),
            "database": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "api_keys_file": str(tmp_path / "api-keys.json"),
        },
    )
    transport = MemoryTransport()
    transport.declare(settings.hosted)
    gw = build(settings, transport, create_keys=True)
    keys = ApiKeys(settings.api_keys_file)
    dudley, wolves = keys.issue("332"), keys.issue("336")
    admin = keys.issue(None, "admin")
    return SecuredApp(create_app(gw, keys), gw, dudley, wolves, admin)
