"""The Docker deployment files agree with each other and with the project
(no Docker engine here: the files are read and cross-checked)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from gateway.settings import load_settings
from gateway.transport.accounts import account_name, relay_of, setup_accounts
from gateway.transport.retry import RetryPolicy
from gateway.transport.topology import Topology, plan, topology_for

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
GATEWAYS = {"gw-332": "332", "gw-333": "333", "gw-336": "336"}
_SPEC = importlib.util.spec_from_file_location(
    "make_definitions", DOCKER / "rabbitmq" / "make_definitions.py"
)
assert _SPEC is not None and _SPEC.loader is not None
MAKE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(MAKE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCKER / "rabbitmq" / "definitions.json").read_text())
    return data


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a relative path or a named volume)."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        found[target] = source
    return found


def test_compose_runs_rabbitmq_with_management_postgres_prometheus_and_three_gateways(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"rabbitmq", "postgres", "prometheus", *GATEWAYS}
    assert "management" in services["rabbitmq"]["image"]
    assert services["postgres"]["image"].startswith("postgres:")
    for name in GATEWAYS:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER / services[name]["build"]["context"] / "docker/Dockerfile").is_file()


def test_every_bind_mount_exists_and_every_named_volume_is_declared_and_used(
    compose: dict[str, Any],
) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for target, source in mounts(service).items():
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} (for {target}) is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert declared == used


def test_each_gateway_has_its_own_key_volume_broker_user_and_database(
    compose: dict[str, Any],
) -> None:
    brokers, databases, keys = set(), set(), set()
    for name, code in GATEWAYS.items():
        service = compose["services"][name]
        variables = env(service)
        assert variables["LA_CODE"] == code
        assert set(variables["LA_PEERS"].split()) == set(GATEWAYS.values()) - {code}
        broker = urlparse(variables["CAFGW_BROKER__URL"])
        database = urlparse(variables["CAFGW_DATABASE__URL"])
        relay = urlparse(variables["CAFGW_BROKER__RELAY_URL"])
        assert broker.username == account_name(code, "caf") and broker.path == "/caf"
        assert relay.username == account_name(relay_of(code), "caf") and relay.path == "/caf"
        assert database.username == f"ledger_{code}" and database.path == f"/ledger_{code}"
        brokers.add(broker.username)
        databases.add(database.username)
        keys.add(mounts(service)["/var/lib/cafgw/secrets"])
        assert mounts(service)["/var/lib/cafgw/secrets"] == f"secrets-{code}"
    assert len(brokers) == len(databases) == len(keys) == 3


def _rabbit_hash_matches(password: str, stored: str) -> bool:
    raw = base64.b64decode(stored)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_broker_users_exist_with_the_passwords_compose_gives_the_gateways(
    compose: dict[str, Any], definitions: dict[str, Any]
) -> None:
    users = {u["name"]: u for u in definitions["users"]}
    for name in GATEWAYS:
        for variable in ("CAFGW_BROKER__URL", "CAFGW_BROKER__RELAY_URL"):
            url = urlparse(env(compose["services"][name])[variable])
            user = users[url.username]
            assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
            assert _rabbit_hash_matches(url.password or "", user["password_hash"])
            assert user["tags"] == []
    assert "caf" in {v["name"] for v in definitions["vhosts"]}


def test_ledger_roles_and_databases_match_the_gateways_urls(compose: dict[str, Any]) -> None:
    sql = (DOCKER / "postgres" / "init.sql").read_text()
    for name in GATEWAYS:
        url = urlparse(env(compose["services"][name])["CAFGW_DATABASE__URL"])
        assert f"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}';" in sql
        assert f"CREATE DATABASE {url.path[1:]} OWNER {url.username};" in sql


def test_the_definitions_are_what_make_definitions_writes(definitions: dict[str, Any]) -> None:
    # Regenerate with .venv/bin/python docker/rabbitmq/make_definitions.py
    assert definitions == MAKE.demo_definitions()


def test_the_demo_accounts_get_exactly_what_cafgw_broker_setup_grants(
    definitions: dict[str, Any], tmp_path: Path
) -> None:
    """``setup_accounts`` on the demo's codes (with the regional host), its rabbitmqctl
    calls recorded: every permission and topic permission matches the file."""
    calls: list[list[str]] = []

    def run(args: Sequence[str], stdin: str | None) -> str:
        calls.append(list(args))
        return "[]"

    codes = [*GATEWAYS.values(), "regional", *(relay_of(c) for c in GATEWAYS.values())]
    setup_accounts("caf", codes, tmp_path / "secrets", env={}, run=run, regional_host="332")
    granted = {
        (c[3], c[4], c[5], c[6]) for c in calls if c[0] == "set_permissions"
    }  # user, configure, write, read
    topics = {(c[3], c[4], c[5], c[6]) for c in calls if c[0] == "set_topic_permissions"}
    shipped = {
        (p["user"], p["configure"], p["write"], p["read"])
        for p in definitions["permissions"]
        if p["user"] != "cafgw-ops"
    }
    shipped_topics = {
        (p["user"], p["exchange"], p["write"], p["read"]) for p in definitions["topic_permissions"]
    }
    assert (shipped, shipped_topics) == (granted, topics)


def _plan_of(definitions: dict[str, Any]) -> tuple[set[str], set[str], set[tuple[str, str, str]]]:
    return (
        {f"{e['name']}:{e['type']}" for e in definitions["exchanges"]},
        {q["name"] for q in definitions["queues"]},
        {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]},
    )


def test_the_broker_declares_the_topology_the_gateways_would(
    definitions: dict[str, Any],
) -> None:
    exchanges, queues, bindings = _plan_of(definitions)
    for code in GATEWAYS.values():
        settings = load_settings(DOCKER / "config" / code, env={})
        assert settings.broker.declare_topology is False  # its account may not
        policy = RetryPolicy.from_delivery(settings.delivery)
        wanted = plan(topology_for(settings.broker), [code], lambda _c, p=policy: p)
        assert {f"{e.name}:{e.kind}" for e in wanted.exchanges} == exchanges
        assert {q.name for q in wanted.queues} <= queues
        assert {(b.exchange, b.queue, b.key) for b in wanted.bindings} <= bindings
        args = {q["name"]: q["arguments"] for q in definitions["queues"]}
        for q in wanted.queues:
            assert args[q.name] == dict(q.arguments), q.name


@pytest.mark.parametrize("code", sorted(GATEWAYS.values()))
def test_no_authority_user_may_write_retry_parking_requeue_or_the_relay_exchange(
    definitions: dict[str, Any], code: str
) -> None:
    """Issue 13, item 2: authority accounts cannot write retry or parking at all."""
    (perm,) = [p for p in definitions["permissions"] if p["user"] == account_name(code, "caf")]
    write = re.compile(perm["write"])
    t = Topology()
    for exchange in (t.relay_exchange, t.parking_exchange, t.requeue_exchange, "caf.retry"):
        assert not write.search(exchange), f"{code} may write {exchange}"
    assert write.search(t.exchange) and write.search(t.escalation_exchange)
    read = re.compile(perm["read"])
    other = next(c for c in GATEWAYS.values() if c != code)
    assert read.search(t.inbox(code)) and not read.search(t.inbox(other))
    (topic,) = [
        p
        for p in definitions["topic_permissions"]
        if p["user"] == account_name(code, "caf") and p["exchange"] == t.exchange
    ]
    assert re.search(topic["write"], f"{other}.Assessment.{code}")
    assert not re.search(topic["write"], f"{other}.Assessment.{other}")


@pytest.mark.parametrize("code", sorted(GATEWAYS.values()))
def test_an_authoritys_relay_may_copy_only_into_its_own_lanes(
    definitions: dict[str, Any], code: str
) -> None:
    user = account_name(relay_of(code), "caf")
    (perm,) = [p for p in definitions["permissions"] if p["user"] == user]
    (topic,) = [p for p in definitions["topic_permissions"] if p["user"] == user]
    t = Topology()
    assert re.fullmatch(perm["write"], t.relay_exchange) and topic["exchange"] == t.relay_exchange
    for exchange in (t.exchange, t.escalation_exchange, t.parking_exchange, t.requeue_exchange):
        assert not re.search(perm["write"], exchange)
    other = next(c for c in GATEWAYS.values() if c != code)
    for key in (t.inbox(code), t.parking(code), f"caf.retry.{code}.1", t.escalation(code)):
        assert re.search(topic["write"], key), key
    for key in (t.inbox(other), t.parking(other), f"caf.retry.{other}.1", t.escalation(other)):
        assert not re.search(topic["write"], key), key
    regional = re.search(topic["write"], t.escalation("regional"))
    assert bool(regional) == (code == "332")  # only the regional host's relay


@pytest.mark.parametrize("name", sorted(GATEWAYS))
def test_each_gateway_config_loads_and_hosts_only_its_authority(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    code = GATEWAYS[name]
    variables = env(service)
    config_dir = Path(variables["CAFGW_CONFIG_DIR"])
    source = mounts(service)[str(config_dir)]
    settings = load_settings(DOCKER / source, env=variables)
    assert settings.hosted == (code,)
    assert settings.broker.url == variables["CAFGW_BROKER__URL"]
    assert settings.api.host == "0.0.0.0"
    assert settings.secrets_dir == Path("/var/lib/cafgw/secrets")
    assert settings.keys_dir == Path("/var/lib/cafgw/secrets/keys")
    assert settings.api_keys_file == Path("/var/lib/cafgw/secrets/api-keys.json")
    # The region directory it reads is the one mounted beside its config.
    assert mounts(service)[str(config_dir.parent / "authorities.yaml")] == (
        "./config/authorities.yaml"
    )
    certs = mounts(service)["/var/lib/cafgw/certs"]
    assert certs == "certs"
    for peer in GATEWAYS.values():
        pinned = settings.directory.get(peer).certificate
        assert pinned == f"/var/lib/cafgw/certs/{peer}.pem"


def test_the_dockerfile_copies_what_exists_and_runs_the_entrypoint() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert 'ENTRYPOINT ["cafgw-entrypoint"]' in text
    entrypoint = DOCKER / "entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111
    assert "cafgw keys init" in entrypoint.read_text()


def test_prometheus_scrapes_every_gateway_and_loads_the_alert_rules(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for t in group["targets"]
    }
    assert targets == {f"{name}:8080" for name in GATEWAYS}
    service = mounts(compose["services"]["prometheus"])
    for rule_file in config["rule_files"]:
        assert (DOCKER / "prometheus" / rule_file).is_file()
        assert f"/etc/prometheus/{rule_file}" in service


def test_exactly_one_gateway_consumes_the_regional_escalation_queue(
    compose: dict[str, Any],
) -> None:
    consumers = []
    for name in GATEWAYS:
        variables = env(compose["services"][name])
        source = mounts(compose["services"][name])[variables["CAFGW_CONFIG_DIR"]]
        if load_settings(DOCKER / source, env=variables).disputes.consume_regional:
            consumers.append(name)
    assert consumers == ["gw-332"]


def test_every_published_port_can_be_chosen_by_the_host_and_defaults_to_loopback(
    compose: dict[str, Any],
) -> None:
    published = [
        (name, port)
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert published, "compose publishes no port"
    for name, port in published:
        match = re.fullmatch(
            r"\$\{CAFGW_HOST:-127\.0\.0\.1\}:\$\{(CAFGW_PORT_\w+):-\d+\}:\d+", port
        )
        assert match, f"{name}: host port {port!r} is fixed or not on loopback by default"
        assert match.group(1) in (ROOT / "docs" / "operations.md").read_text(), (
            f"{name}: {match.group(1)} is not documented in docs/operations.md"
        )
