"""``cafgw init --authority CODE DIR``: one authority's gateway directory, ready to run.

``DIR`` becomes the gateway's configuration directory (``cafgw run --config
DIR``), every relative path in it read against ``DIR``::

    gateway.yaml      hosted authority, broker, ledger, port; not the regional host
    authorities.yaml  the region directory (a copy: peers are listed there)
    policy.yaml, retention.yaml, adapters/<its own mapping>.yaml
    peers/            peers' certificates (cafgw peers add CODE CERT.pem)
    secrets/          0700: keys/CODE/key.pem + cert.pem, the audit chain key,
                      api-keys.json and local-system.key (every replica mounts it)
    var/              0700: the SQLite ledger, when SQLite is used

Nothing secret is printed: the local system's API key is written to
``secrets/local-system.key`` (0600) and its path shown.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import typer
import yaml

from gateway.api.auth import ApiKeys
from gateway.cli.common import console, friendly
from gateway.envelope.keys import generate_identity
from gateway.envelope.peers import exported
from gateway.errors import ConfigError
from gateway.ledger import audit_key
from gateway.private_files import make_private_dir, write_private
from gateway.settings import load_directory, load_settings

SHIPPED = Path(__file__).resolve().parents[2] / "config"
LOCAL_SYSTEM_KEY = "local-system.key"

_GATEWAY_YAML = """\
# Gateway of {name} ({code}), made by `cafgw init`.
# Every key can be overridden from the environment: CAFGW_<SECTION>__<KEY>
# (CAFGW_API__PORT=8081). A relative path here is read against this folder.
broker:
  url: {broker_url}
  # false with the per-authority broker account of `cafgw broker setup`
  declare_topology: true

database:
  # SQLite serves one gateway process. Replicas of this gateway share one
  # PostgreSQL ledger instead: postgresql+psycopg://USER:PASSWORD@HOST/ledger_{code}
  url: {database_url}

hosted: ["{code}"]

# The signing key (keys/{code}/), the audit chain key, the API keys (api-keys.json)
# and the region's existence-query key (regional-existence.key, the same file at
# every gateway of the region): one owner-only directory. Every replica of this
# gateway mounts this same directory; a replica never makes a key of its own.
secrets_dir: secrets

authorities_file: authorities.yaml
adapters_dir: adapters
# Peers' certificates, pinned with: cafgw peers add CODE CERT.pem
peers_dir: peers

api:
  host: 127.0.0.1
  port: {port}

disputes:
  # Exactly one gateway of the region consumes the regional group's escalation
  # queue (caf.escalation.regional): the one made with --regional-host.
  consume_regional: {regional}
"""


def _copy_policy(source: Path, target: Path) -> None:
    """policy.yaml without its key path: the key lives in secrets_dir (the default)."""
    text = source.read_text(encoding="utf-8")
    text = re.sub(
        r"(?m)^existence_key_file:.*$",
        "# existence_key_file: <secrets_dir>/regional-existence.key (the default)",
        text,
    )
    target.write_text(text, encoding="utf-8")


def _own_adapters(code: str, adapter: str | None, target: Path) -> list[str]:
    """Copy the shipped mappings that belong to ``code``; their names."""
    target.mkdir(exist_ok=True)
    copied = []
    for path in sorted((SHIPPED / "adapters").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if path.stem == adapter or str(data.get("authority", "")) == code:
            shutil.copy(path, target / path.name)
            copied.append(path.stem)
    return copied


@friendly
def init(
    folder: Path = typer.Argument(..., help="the gateway directory to make (its --config)"),
    authority: str = typer.Option(..., "--authority", help="DfE LA code this gateway hosts"),
    broker_url: str = typer.Option(
        "amqp://guest:guest@127.0.0.1:5672/%2F", "--broker-url", help="the region's RabbitMQ"
    ),
    database_url: str = typer.Option(
        "sqlite:///var/ledger.db",
        "--database-url",
        help="the ledger (a relative SQLite path is inside DIR)",
    ),
    port: int = typer.Option(8080, "--port", help="HTTP port of the API and dashboard"),
    region: Path = typer.Option(
        SHIPPED / "authorities.yaml", "--region", help="the region directory to copy"
    ),
    regional_host: bool = typer.Option(
        False,
        "--regional-host",
        help="this gateway consumes the regional group's escalation queue (one per region)",
    ),
    holder: str | None = typer.Option(
        None, "--holder", help="who the local system's API key names (default: its case system)"
    ),
) -> None:
    """Make one authority's gateway directory: settings, signing key, API key."""
    directory = load_directory(region.resolve())
    entry = directory.get(authority)
    if (folder / "gateway.yaml").exists():
        raise ConfigError(
            f"{folder / 'gateway.yaml'} exists: cafgw init makes a new gateway directory "
            "and never overwrites one"
        )
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(region, folder / "authorities.yaml")
    _copy_policy(SHIPPED / "policy.yaml", folder / "policy.yaml")
    shutil.copy(SHIPPED / "retention.yaml", folder / "retention.yaml")
    adapters = _own_adapters(authority, entry.adapter, folder / "adapters")
    (folder / "peers").mkdir(exist_ok=True)
    # The broker URL may carry a password: the settings file is the owner's alone.
    write_private(
        folder / "gateway.yaml",
        _GATEWAY_YAML.format(
            name=entry.name,
            code=authority,
            broker_url=broker_url,
            database_url=database_url,
            port=port,
            regional="true" if regional_host else "false",
        ),
    )
    settings = load_settings(folder, env={})
    assert settings.secrets_dir is not None  # written just above
    make_private_dir(settings.secrets_dir, tighten_existing=True)
    make_private_dir(folder / "var", tighten_existing=True)
    identity = generate_identity(authority, entry.name, settings.keys_dir)
    audit_key.ensure(settings.keys_dir)
    issued = ApiKeys(settings.api_keys_file).issue_key(
        authority,
        "authority",
        holder=holder or f"case system of {entry.name}",
        holder_role="case system (service)",
    )
    key_file = settings.secrets_dir / LOCAL_SYSTEM_KEY
    write_private(key_file, issued.key + "\n")
    _, cert = exported(authority, settings.keys_dir)

    shown = folder.as_posix()
    broker = broker_url.rsplit("@", maxsplit=1)[-1]  # never the password
    console.print(
        f"{entry.name} ({authority}): gateway directory {shown}/", highlight=False, emoji=False
    )
    console.print(
        f"  settings:     {shown}/gateway.yaml (broker {broker}, "
        f"port {port}, regional host: {'yes' if regional_host else 'no'})",
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
    console.print(
        f"  region:       {shown}/authorities.yaml, policy.yaml, retention.yaml; adapters: "
        f"{', '.join(adapters) or 'none yet (docs/adapters.md)'}",
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
    console.print(f"  signing key:  {identity.key_path} (mode 600)", highlight=False, emoji=False)
    console.print(f"  certificate:  {identity.cert_path}", highlight=False, emoji=False)
    for text in cert.fingerprints:
        console.print(f"                {text}", highlight=False, emoji=False)
    console.print(
        f"  API key of the local system: {key_file} (mode 600, key id "
        f"{issued.record.key_id}, expires {issued.record.expires_at:%Y-%m-%d}; never printed)",
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
    console.print(
        f"next: cafgw peers export --config {shown} --out {authority}.pem for your peers; "
        f"cafgw peers add CODE THEIR.pem --config {shown} for each of theirs; "
        f"then cafgw run --config {shown}",
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
