"""Per-authority RabbitMQ accounts: each authority publishes only as itself and
reads only its own queues.

RabbitMQ users are global to the broker, not per vhost, so every name
carries a tag of the vhost (``account_name``): ``cafgw-<vhost tag>-<code>``.
A second ``cafgw broker setup`` on another vhost makes other users and never
changes this vhost's passwords.

For each authority code one user with:

- a password read from ``CAFGW_BROKER_PASSWORD_<CODE>`` or from
  ``<secrets_dir>/<code>.password``, else generated there (mode 0600); the
  secrets directory must not be a tracked part of a git work tree;
- permissions (configure / write / read regular expressions on resource names):
  configure only its own queues, write only the two topic exchanges (never
  the retry, parking or requeue exchanges: they are direct exchanges, where
  topic permissions cannot pin the sender, and a message planted there would
  reach any inbox or parking queue), read only its own inbox, escalation and
  parking queues;
- topic permissions on ``<prefix>.exchange`` and ``<prefix>.escalation``: a
  routing key ``<recipient>.<type>.<sender>`` is accepted only if ``<sender>``
  is the authority itself, so a forged sender is refused by the broker
  (channel closed with ACCESS_REFUSED).

Relay users write the copies: the gateway's consumer publishes its retry and
park copies, and replays parked messages, as a relay user
(``broker.relay_url``) on ``<prefix>.relay``, a topic exchange whose binding
keys are queue names. ``relay-<code>`` (one per authority) may publish there
only keys naming ``<code>``'s own lanes (topic permissions) and read only its
parking queues; ``relay`` (one per vhost, for a gateway hosting several
authorities) may publish any lane's key and read every parking queue, so it
is trusted for the whole vhost. No account writes ``<prefix>.parking`` or
``<prefix>.requeue``: only the broker dead-letters there. The receiver
believes the ``x-cafgw-*`` headers (original routing key, original
publisher) only on messages its own relay user published (RabbitMQ
validates ``user_id``).

The regional host (the one gateway that consumes the regional group's
escalation queue) connects as its own authority: ``regional_host`` adds the
regional lane to that authority's reads and to its relay's lanes.

Passwords are passed to ``rabbitmqctl`` on standard input, never on its
command line (which other users of the host can read). Exchanges and queues
are declared by the administrator (``cafgw broker setup`` declares the
topology), so no authority needs configure rights on the shared exchanges.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from gateway.errors import ConfigError, TransportError
from gateway.private_files import make_private_dir
from gateway.transport.topology import REGIONAL

PASSWORD_ENV = "CAFGW_BROKER_PASSWORD_"  # noqa: S105 - a variable name, not a secret
RELAY = "relay"  # the account name's last part for a relay user of every lane
SETUP_WORKERS = 4  # accounts made at once by setup_accounts


def relay_of(code: str) -> str:
    """The account code of authority ``code``'s own relay (``relay-<code>``)."""
    return f"{RELAY}-{code}"


_CODE = re.compile(r"^[0-9]{3}$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")

# (arguments, standard input) -> standard output; raises TransportError on failure.
Runner = Callable[[Sequence[str], str | None], str]


def rabbitmqctl(args: Sequence[str], stdin: str | None = None) -> str:
    """Run ``rabbitmqctl`` (quiet) and return its output."""
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError as exc:
        raise TransportError(
            "rabbitmqctl not found; run on the broker host (or install rabbitmq-server)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise TransportError(f"rabbitmqctl {args[0]} timed out") from exc
    if done.returncode != 0:
        raise TransportError(
            f"rabbitmqctl {args[0]} failed ({done.returncode}): {done.stderr.strip()[:500]}"
        )
    return done.stdout


@dataclass(frozen=True)
class BrokerCredentials:
    """One authority's broker account; ``repr`` never shows the password."""

    code: str
    username: str
    password: str = field(repr=False)
    vhost: str

    def url(self, host: str = "127.0.0.1", port: int = 5672) -> str:
        """The amqp URL for this account (contains the password: do not log it)."""
        return (
            f"amqp://{quote(self.username, safe='')}:{quote(self.password, safe='')}"
            f"@{host}:{port}/{quote(self.vhost, safe='')}"
        )


@dataclass(frozen=True)
class Grants:
    """What an account may do, as RabbitMQ regular expressions."""

    configure: str
    write: str
    read: str
    topic_write: Mapping[str, str]  # exchange -> routing keys it may publish
    topic_read: Mapping[str, str]


def grants_for(code: str, prefix: str = "caf", *, regional_host: bool = False) -> Grants:
    """The least privileges that let ``code`` (an LA, ``regional``, ``relay`` or
    ``relay-<LA>``) run its part of a gateway.

    ``regional_host``: this LA's gateway (or this LA's relay) also serves the
    regional group's escalation lane.
    """
    p = re.escape(prefix)
    if code == RELAY or code.startswith(RELAY + "-"):
        return _relay_grants(code, p, prefix, regional_host)
    if not (_CODE.match(code) or code == REGIONAL):
        raise ConfigError(
            f"broker account: {code!r} is not an LA code (three digits), 'regional', "
            "'relay' or 'relay-<LA code>'"
        )
    own = re.escape(code)
    if code == REGIONAL:
        lanes = rf"^{p}\.(escalation|parking\.escalation|retry\.escalation)\.{own}(\..+)?$"
        return Grants(
            configure=lanes,
            write="^$",
            read=rf"^{p}\.(escalation|parking\.escalation)\.{own}$",
            topic_write={f"{prefix}.exchange": "^$", f"{prefix}.escalation": "^$"},
            topic_read={f"{prefix}.escalation": rf"^{own}\."},
        )
    lanes = (
        rf"^{p}\.(inbox|escalation|parking|parking\.escalation|retry|retry\.escalation)"
        rf"\.{own}(\..+)?$"
    )
    read = rf"^{p}\.(inbox|escalation|parking|parking\.escalation)\.{own}$"
    topic_read = rf"^{own}\."
    if regional_host:
        regional = grants_for(REGIONAL, prefix)
        lanes, read = f"{lanes}|{regional.configure}", f"{read}|{regional.read}"
        topic_read = rf"^({own}|{REGIONAL})\."
    return Grants(
        configure=lanes,
        # Publishing: only the two topic exchanges, where topic permissions pin the
        # sender. Retry and parking copies are the relay user's.
        write=rf"^{p}\.(exchange|escalation)$",
        read=read,
        topic_write={
            f"{prefix}.exchange": rf"^[0-9]{{3}}\.[A-Za-z]+\.{own}$",
            f"{prefix}.escalation": rf"^([0-9]{{3}}|{REGIONAL})\.Dispute\.{own}$",
        },
        topic_read={f"{prefix}.exchange": topic_read, f"{prefix}.escalation": topic_read},
    )


def _relay_grants(code: str, p: str, prefix: str, regional_host: bool) -> Grants:
    """Write only the relay exchange, with keys naming the lanes served; read only
    their parking queues (to peek, replay and erase). Nothing on the topic exchanges."""
    served = code.removeprefix(RELAY).removeprefix("-")
    if served and not _CODE.match(served):
        raise ConfigError(f"broker account: {code!r}: a relay is 'relay' or 'relay-<LA code>'")
    owners = ".+" if not served else re.escape(served)
    if served and regional_host:
        owners = f"({owners}|{REGIONAL})"
    return Grants(
        configure="^$",
        write=rf"^{p}\.relay$",
        read=rf"^{p}\.parking\.(escalation\.)?{owners}$",
        topic_write={
            f"{prefix}.relay": (
                rf"^{p}\.((inbox|escalation|parking|parking\.escalation)\.{owners}"
                rf"|retry\.(escalation\.)?{owners}\.[0-9]+)$"
            )
        },
        topic_read={},
    )


def grants_plan(
    codes: Sequence[str], prefix: str = "caf", regional_host: str | None = None
) -> dict[str, Grants]:
    """Each account's grants, as ``setup_accounts`` (and the Docker demo's broker
    definitions) give them."""
    hosts = () if regional_host is None else (regional_host, relay_of(regional_host))
    return {code: grants_for(code, prefix, regional_host=code in hosts) for code in codes}


def vhost_tag(vhost: str) -> str:
    """A short, readable, collision-safe tag of a vhost for user names."""
    readable = _NOT_NAME.sub("-", vhost).strip("-")[:24] or "root"
    return f"{readable}-{hashlib.sha256(vhost.encode()).hexdigest()[:6]}"


def account_name(code: str, vhost: str, user_prefix: str = "cafgw-") -> str:
    """The broker user of ``code`` (an LA, ``regional`` or ``relay``) on ``vhost``.

    RabbitMQ users are global, so the name carries the vhost's tag: the same
    authority on two vhosts has two users with their own passwords.
    """
    return f"{user_prefix}{vhost_tag(vhost)}-{code}"


def _inside_tracked_tree(path: Path) -> bool:
    """True when ``path`` lies in a git work tree and git does not ignore it."""
    for parent in [path, *path.parents]:
        if (parent / ".git").exists():
            done = subprocess.run(
                ["git", "-C", str(parent), "check-ignore", "-q", str(path)],
                capture_output=True,
                check=False,
            )
            return done.returncode != 0
    return False


def password_variable(code: str) -> str:
    """The environment variable that may hold ``code``'s password (``relay-332``:
    ``CAFGW_BROKER_PASSWORD_RELAY_332``)."""
    return PASSWORD_ENV + code.upper().replace("-", "_")


def password_for(code: str, secrets_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """The account's password: environment, else the secrets file, else a new one saved there."""
    env = os.environ if env is None else env
    from_env = env.get(password_variable(code))
    if from_env:
        return from_env
    path = secrets_dir / f"{code}.password"
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise ConfigError(f"{path}: the password file is empty")
        return text
    make_private_dir(secrets_dir, tighten_existing=True)
    password = secrets.token_urlsafe(32)
    # Created 0600 from the start: never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return password


def _users(run: Runner) -> set[str]:
    raw = run(["list_users", "--formatter", "json"], None)
    return {u["user"] for u in json.loads(raw or "[]")}


def _vhosts(run: Runner) -> set[str]:
    raw = run(["list_vhosts", "--formatter", "json"], None)
    return {v["name"] for v in json.loads(raw or "[]")}


def setup_accounts(
    vhost: str,
    codes: Sequence[str],
    secrets_dir: Path,
    *,
    prefix: str = "caf",
    user_prefix: str = "cafgw-",
    env: Mapping[str, str] | None = None,
    run: Runner = rabbitmqctl,
    regional_host: str | None = None,
) -> dict[str, BrokerCredentials]:
    """Create or update one account per code on ``vhost``; idempotent.

    ``codes`` are LA codes, optionally ``regional`` for the regional group's
    reader, ``relay-<code>`` for an authority's relay user and ``relay`` for
    a relay of every lane. ``regional_host``: the LA whose gateway consumes
    the regional queue (it and its relay get the regional lane). Returns each
    code's credentials (passwords stay in ``secrets_dir`` or the environment;
    never write them anywhere else).
    """
    secrets_dir = secrets_dir.resolve()
    if _inside_tracked_tree(secrets_dir):
        raise ConfigError(
            f"{secrets_dir}: broker passwords must not live in a tracked part of a git "
            "repository; use a directory outside it or one git ignores (e.g. secrets/)"
        )
    plans = grants_plan(codes, prefix, regional_host)
    if vhost not in _vhosts(run):
        run(["add_vhost", vhost], None)
    existing = _users(run)

    # Read or made one at a time (the secrets folder is made by the first).
    passwords = {code: password_for(code, secrets_dir, env) for code in plans}

    def account(code: str, grants: Grants) -> BrokerCredentials:
        user = account_name(code, vhost, user_prefix)
        password = passwords[code]
        verb = "change_password" if user in existing else "add_user"
        run([verb, user], password + "\n")
        run(
            ["set_permissions", "-p", vhost, user, grants.configure, grants.write, grants.read],
            None,
        )
        for exchange, write in grants.topic_write.items():
            read = grants.topic_read.get(exchange, "^$")
            run(["set_topic_permissions", "-p", vhost, user, exchange, write, read], None)
        return BrokerCredentials(code, user, password, vhost)

    # Each rabbitmqctl call starts an Erlang VM (about 0.8 s): the accounts are made a
    # few at a time (each account's own calls in order), not one call after another.
    with ThreadPoolExecutor(max_workers=SETUP_WORKERS) as pool:
        futures = {code: pool.submit(account, code, grants) for code, grants in plans.items()}
        return {code: future.result() for code, future in futures.items()}


def remove_accounts(
    vhost: str, codes: Sequence[str], *, user_prefix: str = "cafgw-", run: Runner = rabbitmqctl
) -> int:
    """Delete the accounts of ``codes`` on ``vhost`` that exist; how many were deleted."""
    existing = _users(run)
    removed = 0
    for code in codes:
        user = account_name(code, vhost, user_prefix)
        if user in existing:
            run(["delete_user", user], None)
            removed += 1
    return removed
