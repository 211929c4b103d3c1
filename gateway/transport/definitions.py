"""A RabbitMQ definitions document with the accounts and topology ``cafgw broker setup``
makes, for a broker that loads its definitions at boot (``load_definitions``).

The users, permissions and topic permissions come from ``accounts.grants_plan``
(what ``setup_accounts`` passes to ``rabbitmqctl``), the exchanges, queues and
bindings from ``topology.plan`` (what ``declare`` creates), so the Docker
demo's broker cannot drift from what a real deployment gets.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.transport.accounts import account_name, grants_plan
from gateway.transport.topology import Plan

HASHING = "rabbit_password_hashing_sha256"


def password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's SHA-256 password hash: base64(salt + sha256(salt + password))."""
    if len(salt) != 4:
        raise ValueError("RabbitMQ password salts are 4 bytes")
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


@dataclass(frozen=True)
class Accounts:
    """The accounts to define on ``vhost`` and how to get their passwords."""

    vhost: str
    codes: Sequence[str]
    password: Callable[[str], str] = field(repr=False)  # account code -> password
    salt: Callable[[str], bytes]  # user name -> 4 bytes
    prefix: str = "caf"
    user_prefix: str = "cafgw-"
    regional_host: str | None = None
    administrators: Mapping[str, str] = field(default_factory=dict, repr=False)  # name -> pw


def definitions(accounts: Accounts, topology: Plan) -> dict[str, Any]:
    """The whole definitions document (JSON-ready)."""
    vhost = accounts.vhost
    users: list[dict[str, Any]] = []
    permissions: list[dict[str, str]] = []
    topic_permissions: list[dict[str, str]] = []
    for name, password in accounts.administrators.items():
        users.append(_user(name, password, accounts.salt(name), ["administrator"]))
        permissions.append(_permission(name, vhost, ".*", ".*", ".*"))
    plan = grants_plan(accounts.codes, accounts.prefix, accounts.regional_host)
    for code, grants in plan.items():
        name = account_name(code, vhost, accounts.user_prefix)
        users.append(_user(name, accounts.password(code), accounts.salt(name), []))
        permissions.append(_permission(name, vhost, grants.configure, grants.write, grants.read))
        for exchange, write in grants.topic_write.items():
            topic_permissions.append(
                {
                    "user": name,
                    "vhost": vhost,
                    "exchange": exchange,
                    "write": write,
                    "read": grants.topic_read.get(exchange, "^$"),
                }
            )
    return {
        "rabbit_version": "3.13.0",
        "vhosts": [{"name": vhost}],
        "users": users,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "parameters": [],
        "policies": [],
        "exchanges": [_exchange(e.name, e.kind, vhost) for e in topology.exchanges],
        "queues": [_queue(q.name, q.arguments, vhost) for q in topology.queues],
        "bindings": [_binding(b.exchange, b.queue, b.key, vhost) for b in topology.bindings],
    }


def _user(name: str, password: str, salt: bytes, tags: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": password_hash(password, salt),
        "hashing_algorithm": HASHING,
        "tags": tags,
        "limits": {},
    }


def _permission(user: str, vhost: str, configure: str, write: str, read: str) -> dict[str, str]:
    return {"user": user, "vhost": vhost, "configure": configure, "write": write, "read": read}


def _exchange(name: str, kind: str, vhost: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def _queue(name: str, arguments: Mapping[str, object], vhost: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "durable": True,
        "auto_delete": False,
        "arguments": dict(arguments),
    }


def _binding(exchange: str, queue: str, key: str, vhost: str) -> dict[str, Any]:
    return {
        "source": exchange,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }
